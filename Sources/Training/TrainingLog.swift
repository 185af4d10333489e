import Foundation

/// A JSON Lines log of a training run (`train.jsonl` in the run folder): one object per logged
/// iteration (`iteration`, `loss`, `lr`, `images_per_s`, `time`: Unix seconds) and per evaluation
/// (`iteration`, `val_miou`). Appends, so a resumed run continues the same file.
public final class TrainingLog: @unchecked Sendable {
    public let path: String
    private let handle: FileHandle?

    public init(path: String) {
        self.path = path
        if !FileManager.default.fileExists(atPath: path) { FileManager.default.createFile(atPath: path, contents: nil) }
        handle = FileHandle(forWritingAtPath: path)
        _ = try? handle?.seekToEnd()
    }

    deinit { try? handle?.close() }

    public func write(_ object: [String: Any]) {
        guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
        else { return }
        handle?.write(data + Data("\n".utf8))
    }

    /// The entries of a log file (unreadable lines skipped).
    public static func read(_ path: String) -> [[String: Any]] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
    }
}

extension TrainingLog {
    /// Cuts a log back to the entries of iterations ≤ `iteration` (a resumed run repeats the
    /// iterations after its checkpoint, so their old lines would appear twice). Rewritten
    /// through a temporary file and a rename; a missing log is left missing.
    public static func truncate(_ path: String, throughIteration iteration: Int) throws {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return }
        var kept: [Substring] = []
        var dropped = false
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            if let done = object?["iteration"] as? Int, done > iteration { dropped = true } else { kept.append(line) }
        }
        guard dropped else { return }
        let temporary =
            (path as NSString).deletingLastPathComponent + "/." + (path as NSString).lastPathComponent + ".tmp-\(getpid())"
        let body = kept.isEmpty ? "" : kept.joined(separator: "\n") + "\n"
        try Data(body.utf8).write(to: URL(fileURLWithPath: temporary))
        guard rename(temporary, path) == 0 else {
            unlink(temporary)
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: path])
        }
    }
}
