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

    /// The bytes of the file at `path`.
    /// - Throws: `.missingFile` when nothing is there; `.malformed` for a folder or an unreadable file.
    static func contents(of path: String) throws -> Data {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw PseudoLabelError.missingFile(path: path)
        }
        guard !isDirectory.boolValue else { throw PseudoLabelError.malformed(path: path, reason: "is a folder, not a file") }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw PseudoLabelError.malformed(path: path, reason: "cannot read the file")
        }
        return data
    }

    public static func == (a: PseudoLabelError, b: PseudoLabelError) -> Bool {
        a.errorDescription == b.errorDescription
    }
}
