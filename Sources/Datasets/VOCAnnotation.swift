import Foundation
import Pickle

#if canImport(FoundationXML)
    import FoundationXML
#endif

/// Object class names from a PASCAL VOC annotation XML: every `<object><name>`, including
/// objects marked `difficult` or `truncated` (they are still present in the image), but not the
/// `<part><name>` entries of person layouts (head, hand, foot).
public enum VOCAnnotation {
    public static func objectNames(at path: String) throws -> [String] {
        guard let data = FileManager.default.contents(atPath: path) else {
            guard FileManager.default.fileExists(atPath: path) else {
                throw DatasetError.missingFile(path: path, what: "annotation XML")
            }
            throw DatasetError.badAnnotation(
                path: path, reason: access(path, R_OK) != 0 ? "cannot read: \(String(cString: strerror(errno)))" : "cannot read")
        }
        let collector = Collector()
        let parser = XMLParser(data: data)
        parser.delegate = collector
        guard parser.parse() else {
            throw DatasetError.badAnnotation(
                path: path, reason: parser.parserError.map { "\($0.localizedDescription)" } ?? "not XML")
        }
        // Foundation's parser on Linux accepts a document cut short, so require the closing tag.
        guard collector.closedAnnotation else {
            throw DatasetError.badAnnotation(path: path, reason: "no complete <annotation> element (truncated?)")
        }
        return collector.names
    }

    final class Collector: NSObject, XMLParserDelegate {
        var names: [String] = []
        var path: [String] = []
        var text = ""
        var closedAnnotation = false

        func parser(
            _ parser: XMLParser, didStartElement element: String, namespaceURI: String?, qualifiedName: String?,
            attributes: [String: String] = [:]
        ) {
            path.append(element)
            text = ""
        }

        func parser(_ parser: XMLParser, foundCharacters string: String) { text += string }

        func parser(_ parser: XMLParser, didEndElement element: String, namespaceURI: String?, qualifiedName: String?) {
            // annotation > object > name, not annotation > object > part > name.
            if element == "name", path.count >= 2, path[path.count - 2] == "object" {
                names.append(text.trimmingCharacters(in: .whitespacesAndNewlines))
            }
            if element == "annotation" && path.count == 1 { closedAnnotation = true }
            path.removeLast()
        }
    }
}

/// A plain image-label file for datasets without XML: one line per image, its id followed by
/// class names or indices (`2008_000123 dog person` or `2008_000123 12 15`); `#` comments.
/// A `.npy` file is read as IRN's `cls_labels.npy` (`readNumpy`).
public enum ImageLabelFile {
    /// Image id → object class indices (background excluded).
    public static func read(_ path: String, classes: ClassNames) throws -> [String: Set<Int>] {
        if path.lowercased().hasSuffix(".npy") { return try readNumpy(path, classes: classes) }
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw DatasetError.missingFile(path: path, what: "image-label file")
        }
        var labels: [String: Set<Int>] = [:]
        // Split on any line break: "\r\n" is one Character in Swift, so splitting on "\n" would
        // leave a CRLF file as one line.
        for (number, line) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "," }).map(String.init)
            guard let id = fields.first, !id.hasPrefix("#") else { continue }
            var set = Set<Int>()
            for field in fields.dropFirst() {
                if let index = Int(field) {
                    guard index > 0 && index < classes.count else {
                        throw DatasetError.badLabelFile(
                            path: path, line: number + 1,
                            reason: "class index \(index) out of range 1…\(classes.count - 1)")
                    }
                    set.insert(index)
                } else if let index = classes.index(of: field), index > 0 {
                    set.insert(index)
                } else {
                    throw DatasetError.unknownClass(name: field, path: path, line: number + 1)
                }
            }
            guard labels[id] == nil else {
                throw DatasetError.badLabelFile(path: path, line: number + 1, reason: "image '\(id)' listed twice")
            }
            labels[id] = set
        }
        return labels
    }
}

extension ImageLabelFile {
    /// IRN's `voc12/cls_labels.npy` (voc12/make_cls_labels.py: `np.save` of a dict from image
    /// number to a float32 vector over the object classes; voc12/dataloader.py loads it with
    /// `np.load(…, allow_pickle=True).item()`), read without running pickle code
    /// (`NumpyFile.loadDictionary`). Integer keys are image numbers, turned into ids as IRN's
    /// `decode_int_filename` does (2007000032 → "2007_000032"); string keys are ids. Each vector
    /// has one entry per object class (classes.count − 1), each 0 or 1 (IRN's loss targets);
    /// class k + 1 is present where entry k is 1.
    /// - Throws: `DatasetError.missingFile`, `.badLabelArray` naming the file and the entry.
    public static func readNumpy(_ path: String, classes: ClassNames) throws -> [String: Set<Int>] {
        guard FileManager.default.fileExists(atPath: path) else {
            throw DatasetError.missingFile(path: path, what: "image-label file")
        }
        let entries: [(key: NumpyKey, value: NumpyArray)]
        do { entries = try NumpyFile.loadDictionary(path) } catch let error as TorchCheckpointError {
            throw DatasetError.badLabelArray(path: path, reason: error.localizedDescription)
        }
        var labels: [String: Set<Int>] = [:]
        for (key, array) in entries {
            let id: String
            switch key {
            case .string(let s): id = s
            case .int(let n):
                let digits = String(n)
                guard digits.count > 4 else {
                    throw DatasetError.badLabelArray(path: path, reason: "image number \(n) is not YYYYNNNNNN")
                }
                id = digits.prefix(4) + "_" + digits.dropFirst(4)
            }
            guard array.values.count == classes.count - 1 else {
                throw DatasetError.badLabelArray(
                    path: path,
                    reason: "'\(id)' has \(array.values.count) entries, the \(classes.count - 1) object classes need one each")
            }
            guard array.values.allSatisfy({ $0 == 0 || $0 == 1 }) else {
                throw DatasetError.badLabelArray(path: path, reason: "'\(id)' holds values other than 0 and 1: \(array.values)")
            }
            labels[id] = Set(array.values.indices.filter { array.values[$0] == 1 }.map { $0 + 1 })
        }
        return labels
    }
}
