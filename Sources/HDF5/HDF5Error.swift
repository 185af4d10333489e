import Foundation

/// A problem with an HDF5 file, naming the file and what went wrong.
public enum HDF5Error: LocalizedError, Equatable {
    case missingFile(path: String)
    case notHDF5(path: String)
    case cannotOpen(path: String)
    case cannotCreate(path: String)
    case missingDataset(name: String, path: String)
    case wrongShape(name: String, path: String, expected: [Int], found: [Int])
    case unsupportedType(name: String, path: String, what: String)
    case readFailed(name: String, path: String)
    case writeFailed(name: String, path: String)
    case missingAttribute(name: String, object: String, path: String)
    /// A dataset whose declared size the file does not back (never written, cut short, or a
    /// decompression bomb): refused before allocating.
    case unbacked(name: String, path: String, shape: [Int], declaredBytes: Int, storedBytes: Int)
    /// A dataset whose bytes do not match the CRC-32 stored beside them: the file was damaged.
    case checksumMismatch(name: String, path: String, stored: UInt32, computed: UInt32)
    /// A path that exists but cannot be opened as a file: a folder, a dangling symbolic link, a
    /// link loop, no permission.
    case notAFile(path: String, reason: String)
    /// The operating system refused: `operation` is "create", "write", …; `reason` its message
    /// ("No space left on device", "Read-only file system").
    case fileSystem(path: String, operation: String, reason: String)

    public var errorDescription: String? {
        switch self {
        case .missingFile(let path): "\(path): no such file"
        case .notHDF5(let path): "\(path): not an HDF5 file (or truncated)"
        case .cannotOpen(let path): "\(path): cannot open as HDF5 (corrupt or truncated?)"
        case .cannotCreate(let path): "\(path): cannot create HDF5 file"
        case .missingDataset(let name, let path): "\(path): no dataset '\(name)'"
        case .wrongShape(let name, let path, let expected, let found):
            "\(path): dataset '\(name)' has shape \(found), expected \(expected)"
        case .unsupportedType(let name, let path, let what): "\(path): '\(name)' has an unsupported type (\(what))"
        case .readFailed(let name, let path): "\(path): cannot read '\(name)' (corrupt or truncated file?)"
        case .writeFailed(let name, let path): "\(path): cannot write '\(name)'"
        case .missingAttribute(let name, let object, let path): "\(path): '\(object)' has no attribute '\(name)'"
        case .notAFile(let path, let reason): "\(path): cannot open (\(reason))"
        case .checksumMismatch(let name, let path, let stored, let computed):
            "\(path): dataset '\(name)' fails its CRC-32 check (stored \(String(stored, radix: 16)), computed \(String(computed, radix: 16))): the file was altered or damaged"
        case .unbacked(let name, let path, let shape, let declared, let stored):
            "\(path): dataset '\(name)' declares shape \(shape) (\(declared) bytes) but the file stores \(stored) bytes of it (never written, cut short, or too large to read)"
        case .fileSystem(let path, let operation, let reason): "\(path): cannot \(operation): \(reason)"
        }
    }
}
