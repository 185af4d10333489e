import Foundation

/// A problem with a pseudo-label input (CAM file, proposals, seeds, detections), naming the file.
public enum PseudoLabelError: LocalizedError, Equatable {
    case missingFile(path: String)
    case malformed(path: String, reason: String)
    case sizeMismatch(path: String, expected: (width: Int, height: Int), found: (width: Int, height: Int))
    case classOutOfRange(path: String, value: Int, classes: Int)
    /// A method was set up without an input it needs (no file is involved yet).
    case missingInput(method: String, needs: String)

    public var errorDescription: String? {
        switch self {
        case .missingFile(let path): "\(path): no such file or folder"
        case .malformed(let path, let reason): "\(path): \(reason)"
        case .sizeMismatch(let path, let e, let f):
            "\(path): size \(f.width)x\(f.height) does not match the image (\(e.width)x\(e.height))"
        case .classOutOfRange(let path, let value, let classes):
            "\(path): class id \(value) is out of range (0-\(classes - 1) or 255)"
        case .missingInput(let method, let needs): "pseudo-label source \(method) needs \(needs)"
        }
    }

    public static func == (a: PseudoLabelError, b: PseudoLabelError) -> Bool {
        a.errorDescription == b.errorDescription
    }
}
