import Foundation

/// The class names of a dataset, background first: index i is label value i.
public struct ClassNames: Equatable, Sendable {
    public let names: [String]

    public init(_ names: [String]) {
        precondition(!names.isEmpty && names.count < 255, "ClassNames: \(names.count) classes (1…254 supported)")
        self.names = names
    }

    public var count: Int { names.count }

    /// Index of a class name (exact, or case-insensitive), nil when unknown.
    public func index(of name: String) -> Int? {
        names.firstIndex(of: name) ?? names.firstIndex { $0.caseInsensitiveCompare(name) == .orderedSame }
    }

    /// PASCAL VOC 2012: background and the 20 object classes, in label order.
    public static let voc = ClassNames([
        "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
        "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
    ])

    /// The classes of a dataset folder: its `classes.txt` when present (the synthetic set and
    /// converted COCO write one), else VOC's.
    /// - Throws: `DatasetError` for an unreadable classes.txt.
    public static func of(datasetRoot root: String) throws -> ClassNames {
        let local = root + "/classes.txt"
        return FileManager.default.fileExists(atPath: local) ? try load(local) : .voc
    }

    /// `voc` or a file with one class name per line (background first; blank lines and # comments skipped).
    public static func load(_ spec: String) throws -> ClassNames {
        if spec == "voc" { return .voc }
        guard let text = try? String(contentsOfFile: spec, encoding: .utf8) else {
            throw DatasetError.missingFile(path: spec, what: "class list")
        }
        let names = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty && !$0.hasPrefix("#") }
        guard names.count >= 2 else {
            throw DatasetError.badClassList(path: spec, reason: "needs background and at least one class")
        }
        guard Set(names).count == names.count else { throw DatasetError.badClassList(path: spec, reason: "duplicate names") }
        guard names.count < 255 else { throw DatasetError.badClassList(path: spec, reason: "at most 254 classes") }
        return ClassNames(names)
    }
}
