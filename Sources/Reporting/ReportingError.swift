import Foundation

/// A run artefact (event file, plot, report) that could not be written. Names the file.
public enum ReportingError: LocalizedError, Equatable {
    case writeFailed(path: String, reason: String)

    public var errorDescription: String? {
        switch self {
        case .writeFailed(let path, let reason): "\(path): cannot write: \(reason)"
        }
    }
}
