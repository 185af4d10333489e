import Foundation

/// A problem with a dataset on disk, naming the file.
public enum DatasetError: LocalizedError, Equatable {
    case missingRoot(path: String)
    /// A dataset root or label folder that is a file.
    case notAFolder(path: String)
    case missingSplit(split: String, path: String)
    case missingFile(path: String, what: String)
    case badAnnotation(path: String, reason: String)
    case unknownClass(name: String, path: String, line: Int?)
    case badLabelFile(path: String, line: Int, reason: String)
    case labelSize(path: String, label: (Int, Int), image: (Int, Int))
    case classOutOfRange(path: String, value: UInt8, classCount: Int)
    case badClassList(path: String, reason: String)
    /// Training augmentation settings no image can be augmented with (scale or crop).
    case badAugmentation(reason: String)
    /// An empty split list, or one that names an image twice.
    case badSplitList(path: String, reason: String)
    /// An image-label array file (`cls_labels.npy`) that cannot be read as one, with numpy's or
    /// the pickle reader's reason.
    case badLabelArray(path: String, reason: String)

    public static func == (a: Self, b: Self) -> Bool { a.errorDescription == b.errorDescription }

    public var errorDescription: String? {
        switch self {
        case .missingRoot(let path): "\(path): dataset folder not found"
        case .notAFolder(let path): "\(path): is a file, not a folder"
        case .missingSplit(let split, let path): "\(path): no list for split '\(split)'"
        case .missingFile(let path, let what): "\(path): missing \(what)"
        case .badAnnotation(let path, let reason): "\(path): bad annotation (\(reason))"
        case .unknownClass(let name, let path, let line):
            "\(path)\(line.map { ":\($0)" } ?? ""): unknown class '\(name)'"
        case .badLabelFile(let path, let line, let reason): "\(path):\(line): \(reason)"
        case .labelSize(let path, let label, let image):
            "\(path): label is \(label.0)x\(label.1) but its image is \(image.0)x\(image.1)"
        case .classOutOfRange(let path, let value, let classCount):
            "\(path): class id \(value) out of range (0…\(classCount - 1), or 255 = ignore)"
        case .badClassList(let path, let reason): "\(path): bad class list (\(reason))"
        case .badSplitList(let path, let reason): "\(path): bad split list: \(reason)"
        case .badAugmentation(let reason): "training augmentation: \(reason)"
        case .badLabelArray(let path, let reason): "\(path): bad image-label array (\(reason))"
        }
    }
}
