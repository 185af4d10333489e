import Foundation

/// Grounding DINO's inputs that cannot be used, each naming the file.
public enum GroundingDINOError: LocalizedError, Equatable {
    /// A `vocab.txt` that is missing, unreadable or lacks BERT's special tokens.
    case vocabulary(path: String, reason: String)
    /// A checkpoint whose keys or shapes do not fit the model.
    case mismatch(path: String, missing: [String], unexpected: [String], misshaped: [String])
    /// A checkpoint, configuration or input that cannot be used, and why.
    case unusable(path: String, reason: String)

    public var errorDescription: String? {
        switch self {
        case .vocabulary(let path, let reason): return "\(path): vocabulary \(reason)"
        case .mismatch(let path, let missing, let unexpected, let misshaped):
            var parts: [String] = []
            func listed(_ keys: [String]) -> String { keys.prefix(5).joined(separator: ", ") + (keys.count > 5 ? ", …" : "") }
            if !missing.isEmpty { parts.append("missing \(missing.count) keys (\(listed(missing)))") }
            if !unexpected.isEmpty { parts.append("\(unexpected.count) keys the model does not have (\(listed(unexpected)))") }
            if !misshaped.isEmpty { parts.append("\(misshaped.count) keys of another shape (\(listed(misshaped)))") }
            return "\(path): not a Grounding DINO checkpoint of this configuration: " + parts.joined(separator: "; ")
        case .unusable(let path, let reason): return "\(path): \(reason)"
        }
    }
}
