import Foundation

/// A problem with an image or label file, naming the file.
public enum ImageError: LocalizedError, Equatable {
    case missingFile(path: String)
    case emptyFile(path: String)
    case unknownFormat(path: String)
    case corrupt(path: String, reason: String)
    case unsupported(path: String, reason: String)
    /// More pixels than `ImageLimits.maxPixels` (a decompression bomb, or a limit set too low).
    case tooLarge(path: String, reason: String)
    case unknownLabelColor(path: String, red: UInt8, green: UInt8, blue: UInt8)
    case writeFailed(path: String, reason: String)
    /// A path that exists but cannot be read as a file: a folder, a dangling symbolic link, a
    /// link loop, no permission.
    case notAFile(path: String, reason: String)

    public var errorDescription: String? {
        switch self {
        case .missingFile(let path): "\(path): no such file"
        case .emptyFile(let path): "\(path): empty file (0 bytes)"
        case .unknownFormat(let path): "\(path): not a PNG or JPEG file"
        case .corrupt(let path, let reason): "\(path): corrupt or truncated image (\(reason))"
        case .unsupported(let path, let reason): "\(path): unsupported image (\(reason))"
        case .tooLarge(let path, let reason): "\(path): image too large: \(reason) (raise it with --max-image-pixels)"
        case .unknownLabelColor(let path, let r, let g, let b):
            "\(path): colour (\(r), \(g), \(b)) is not in the label palette"
        case .writeFailed(let path, let reason): "\(path): cannot write (\(reason))"
        case .notAFile(let path, let reason): "\(path): cannot read (\(reason))"
        }
    }
}
