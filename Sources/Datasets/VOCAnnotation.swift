import Foundation

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
            throw DatasetError.badAnnotation(path: path, reason: parser.parserError.map { "\($0.localizedDescription)" } ?? "not XML")
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

        func parser(_ parser: XMLParser, didStartElement element: String, namespaceURI: String?, qualifiedName: String?,
                    attributes: [String: String] = [:]) {
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
public enum ImageLabelFile {
    /// Image id → object class indices (background excluded).
    public static func read(_ path: String, classes: ClassNames) throws -> [String: Set<Int>] {
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
                        throw DatasetError.badLabelFile(path: path, line: number + 1,
                                                        reason: "class index \(index) out of range 1…\(classes.count - 1)")
                    }
                    set.insert(index)
                } else if let index = classes.index(of: field), index > 0 {
                    set.insert(index)
                } else {
                    throw DatasetError.unknownClass(name: field, path: path, line: number + 1)
                }
            }
            guard labels[id] == nil else { throw DatasetError.badLabelFile(path: path, line: number + 1, reason: "image '\(id)' listed twice") }
            labels[id] = set
        }
        return labels
    }
}
