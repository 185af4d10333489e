import Checkpoints
import Foundation

/// Problems with a run folder that would lose or mix up a run's files.
public enum RunFolderError: LocalizedError, Equatable {
    /// Another process holds the folder's lock.
    case locked(directory: String, pid: Int32?)
    /// A fresh run was asked for in a folder that holds an earlier run's checkpoints.
    case hasCheckpoints(directory: String, files: [String])
    /// The lock file cannot be created (read-only folder, no permission…).
    case unusable(directory: String, reason: String)

    public var errorDescription: String? {
        switch self {
        case .locked(let directory, let pid):
            "\(directory): another run is using this folder" + (pid.map { " (process \($0))" } ?? "")
                + "; wait for it, or choose another folder"
        case .hasCheckpoints(let directory, let files):
            "\(directory): holds checkpoints of an earlier run (\(files.prefix(4).joined(separator: ", "))\(files.count > 4 ? ", …" : "")); "
                + "continue it with --resume auto, or start over with --overwrite (the old files are moved aside, not deleted)"
        case .unusable(let directory, let reason): "\(directory): cannot use as a run folder: \(reason)"
        }
    }
}

/// Files of a run folder: its lock, its checkpoints and the start-up checks that keep one
/// run's files from being overwritten by another.
public enum RunFolder {
    /// The newest checkpoint `<prefix>iter_N.h5` or `<prefix>final.h5` (highest iteration).
    public static func latestCheckpoint(in directory: String, prefix: String) -> String? {
        var best: (Int, String)?
        for path in checkpoints(in: directory, prefix: prefix) {
            guard let meta = try? Checkpoint.metadata(at: path) else { continue }
            if best == nil || meta.iteration > best!.0 { best = (meta.iteration, path) }
        }
        return best?.1
    }

    /// Paths of `<prefix>iter_*.h5` and `<prefix>final.h5` in `directory`, sorted by name.
    public static func checkpoints(in directory: String, prefix: String) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.filter { ($0.hasPrefix(prefix + "iter_") || $0 == prefix + "final.h5") && $0.hasSuffix(".h5") }
            .sorted().map { "\(directory)/\($0)" }
    }

    /// An exclusive lock on a run folder (`flock` on `<dir>/.lock`, holding the owner's PID), held
    /// until the value is released or the process ends — a crashed run never leaves it locked.
    public final class Lock {
        public let directory: String
        private let descriptor: Int32

        /// Creates `directory` if needed and takes its lock.
        /// - Throws: `RunFolderError.locked` naming the holder's PID when another process has it.
        public init(directory: String) throws {
            self.directory = directory
            do {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            } catch {
                throw RunFolderError.unusable(directory: directory, reason: FileSystemReason.of(error))
            }
            let path = directory + "/.lock"
            let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
            guard fd >= 0 else { throw RunFolderError.unusable(directory: directory, reason: String(cString: strerror(errno))) }
            guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
                var buffer = [UInt8](repeating: 0, count: 32)
                let n = pread(fd, &buffer, 31, 0)
                close(fd)
                let pid =
                    n > 0
                    ? Int32(String(decoding: buffer[..<n], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) : nil
                throw RunFolderError.locked(directory: directory, pid: pid)
            }
            let text = Array("\(getpid())\n".utf8)
            _ = ftruncate(fd, 0)
            _ = pwrite(fd, text, text.count, 0)
            descriptor = fd
        }

        deinit { close(descriptor) }  // closing releases the flock
    }

    /// Removes the temporary files a killed writer leaves behind in `directory`: ours
    /// (`.<name>.tmp-<pid>`) and Foundation's atomic writes (`.dat.nosync<random>`). Only for a
    /// folder this process owns (its lock is held, or it is a command's own output folder).
    public static func removeStaleTemporaries(in directory: String) {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        for name in names where name.hasPrefix(".") && (name.contains(".tmp-") || name.hasPrefix(".dat.nosync")) {
            try? FileManager.default.removeItem(atPath: "\(directory)/\(name)")
        }
    }

    /// Start-up of a training run in a locked folder: removes temporary files left by a killed
    /// writer (`removeStaleTemporaries`), and for a fresh run (`resuming` false) refuses a folder
    /// holding checkpoints unless `overwrite`, which moves the earlier run's files into
    /// `<dir>/replaced-<date>/` with its `runFiles` and TensorBoard event files (nothing is deleted).
    /// - Returns: the folder the old files were moved to, if any.
    @discardableResult
    public static func prepare(_ lock: Lock, prefix: String, resuming: Bool, overwrite: Bool, runFiles: [String]) throws
        -> String?
    {
        let directory = lock.directory
        removeStaleTemporaries(in: directory)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        let existing = checkpoints(in: directory, prefix: prefix)
        guard !resuming, !existing.isEmpty else { return nil }
        guard overwrite else {
            throw RunFolderError.hasCheckpoints(directory: directory, files: existing.map { ($0 as NSString).lastPathComponent })
        }
        let formatter = DateFormatter()
        formatter.dateFormat = "yyyyMMdd-HHmmss"
        formatter.locale = Locale(identifier: "en_US_POSIX")
        var aside = "\(directory)/replaced-\(formatter.string(from: Date()))"
        var n = 1
        while FileManager.default.fileExists(atPath: aside) {
            aside = "\(directory)/replaced-\(formatter.string(from: Date()))-\(n)"; n += 1
        }
        do {
            try FileManager.default.createDirectory(atPath: aside, withIntermediateDirectories: false)
            // The earlier run's TensorBoard files go too, or its curves would mix with the new run's.
            let moved =
                existing.map { ($0 as NSString).lastPathComponent } + runFiles.filter { names.contains($0) }
                + names.filter { $0.hasPrefix("events.out.tfevents.") }
            for name in moved { try FileManager.default.moveItem(atPath: "\(directory)/\(name)", toPath: "\(aside)/\(name)") }
        } catch {
            throw RunFolderError.unusable(
                directory: directory, reason: "moving the earlier run aside failed: \(FileSystemReason.of(error))")
        }
        return aside
    }
}

/// The OS reason behind a Foundation file error, in a few words ("No space left on device").
public enum FileSystemReason {
    public static func of(_ error: Error) -> String {
        let ns = error as NSError
        if let underlying = ns.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
            return String(cString: strerror(Int32(underlying.code)))
        }
        if ns.domain == NSPOSIXErrorDomain { return String(cString: strerror(Int32(ns.code))) }
        // Foundation on Linux often gives only its own code (FoundationErrors.h): say it as the OS would.
        let known: [Int: String] = [
            4: "No such file or directory", 257: "Permission denied", 260: "No such file or directory", 513: "Permission denied",
            516: "File exists (a file, not a folder, has that name)", 640: "No space left on device",
            642: "Read-only file system",
        ]
        if ns.domain == NSCocoaErrorDomain, let reason = known[ns.code] { return reason }
        return ns.localizedFailureReason ?? ns.localizedDescription
    }
}
