import Autograd
import Checkpoints
import Distributed
import Foundation
import HDF5
import Layers
import Reporting

/// Set by SIGINT/SIGTERM once `install()` ran; callers hand `{ StopRequest.requested != 0 }`
/// to the training loops as their `shouldStop`.
public enum StopRequest {
    nonisolated(unsafe) public static var requested: sig_atomic_t = 0

    /// Installs handlers for SIGINT and SIGTERM that set `requested`.
    public static func install() {
        signal(SIGINT) { _ in StopRequest.requested = 1 }
        signal(SIGTERM) { _ in StopRequest.requested = 1 }
    }
}

/// What a training run reports per logged iteration.
public struct TrainingProgress: Sendable {
    public var iteration: Int
    public var loss: Float
    public var learningRate: Float
    public var imagesPerSecond: Double
}

/// Whether a training run continues an earlier one.
public enum Resume: Equatable, Sendable {
    /// A fresh run (a folder holding checkpoints is refused unless `overwrite`).
    case never
    /// The newest checkpoint in the run folder, or a fresh run when there is none.
    case latest
    /// This checkpoint.
    case checkpoint(String)

    /// The command-line spelling: "auto" is `.latest`, anything else a checkpoint path.
    public init(argument: String) { self = argument == "auto" ? .latest : .checkpoint(argument) }
}

/// Thrown after a SIGINT/SIGTERM once the checkpoint is safely written.
public struct TrainingInterrupted: LocalizedError {
    public let iteration: Int
    public let checkpoint: String
    public var errorDescription: String? {
        "stopped at iteration \(iteration); checkpoint \(checkpoint) (resume with --resume auto)"
    }
}

/// What every training run shares around its steps (the CAM classifier's and DeepLab's): the
/// run folder's lock (rank 0), the start-up of a fresh or resumed run, the JSON Lines log and
/// TensorBoard events (rank 0 only, flushed as they are written), checkpoints written atomically
/// with errors that name the last good one, and the stop decision every rank agrees on.
public final class TrainingRun {
    public let directory: String
    public let communicator: Communicator
    /// Checkpoint file names start with this ("" for DeepLab, "cam_" for the CAM classifier).
    public let prefix: String
    let lock: RunFolder.Lock?
    /// The run's log and events; nil on ranks other than 0 and before `openLogs`.
    public private(set) var log: TrainingLog?
    public private(set) var board: TensorBoardWriter?
    /// The checkpoint written (or resumed from) last.
    public var lastSaved: String?

    /// Whether this rank writes files.
    public var writer: Bool { communicator.isWriter }

    /// Takes the folder's lock (rank 0; it creates the folder).
    /// - Throws: `RunFolderError` when another run holds the folder or it cannot be made.
    public init(directory: String, prefix: String = "", communicator: Communicator = .single) throws {
        self.directory = directory
        self.prefix = prefix
        self.communicator = communicator
        lock = communicator.isWriter ? try RunFolder.Lock(directory: directory) : nil
    }

    /// The newest checkpoint of this run's kind in the folder.
    public var latestCheckpoint: String? { RunFolder.latestCheckpoint(in: directory, prefix: prefix) }

    /// Readies the folder (`RunFolder.prepare`: stale temporaries removed; a fresh run refuses
    /// earlier checkpoints unless `overwrite`, which moves them aside) and waits for every rank.
    /// Call it only once everything that can fail on the inputs has been checked, so a failed
    /// `--overwrite` leaves the earlier run where it was. Returns where earlier files went.
    @discardableResult
    public func prepare(resuming: Bool, overwrite: Bool, runFiles: [String]) throws -> String? {
        let moved = try lock.flatMap {
            try RunFolder.prepare($0, prefix: prefix, resuming: resuming, overwrite: overwrite, runFiles: runFiles)
        }
        try communicator.barrier()
        return moved
    }

    /// Opens the log `logName` (cut back to `start`, the iteration a resumed run continues
    /// from) and a TensorBoard event file (a resumed run adds one; TensorBoard joins them by step).
    public func openLogs(logName: String, start: Int) throws {
        guard writer else { return }
        let path = "\(directory)/\(logName)"
        try TrainingLog.truncate(path, throughIteration: start)
        log = TrainingLog(path: path)
        board = try TensorBoardWriter(logDirectory: directory)
        // Steps a killed run logged past its checkpoint are dropped from the earlier files'
        // curves (TensorBoard's session-start purge), so the curve continues from the checkpoint.
        if start > 0 { try board?.purge(fromStep: start + 1) }
    }

    /// Writes `model` (and the momentum) to `path` in the folder (rank 0; the others only note
    /// the path), then removes all but the newest `keepLast` periodic checkpoints when given.
    /// - Throws: `TrainingError.nonFiniteWeights` (nothing written) or `.checkpointNotWritten` (a
    ///   full or read-only disk), each naming the last good checkpoint.
    public func save(_ model: Module, optimizer: SGD, metadata: CheckpointMetadata, name: String, keepLast: Int? = nil) throws {
        let path = "\(directory)/\(name)"
        guard writer else {
            lastSaved = path
            return
        }
        do {
            try Checkpoint.save(model, optimizer: optimizer, metadata: metadata, to: path)
        } catch CheckpointError.nonFinite(_, let tensors) {
            throw TrainingError.nonFiniteWeights(iteration: metadata.iteration, tensors: tensors, lastCheckpoint: lastGood)
        } catch let error as HDF5Error {
            // The temporary file is gone and the older checkpoints stay.
            throw TrainingError.checkpointNotWritten(reason: error.localizedDescription, lastCheckpoint: lastGood)
        }
        lastSaved = path
        if let keepLast {
            let periodic = "\(prefix)iter_"
            let names = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [])
                .filter { $0.hasPrefix(periodic) && $0.hasSuffix(".h5") }.sorted()
            for old in names.dropLast(max(1, keepLast)) { try? FileManager.default.removeItem(atPath: "\(directory)/\(old)") }
        }
    }

    /// The last good checkpoint, for messages: the one written last, else the newest in the folder.
    public var lastGood: String? { lastSaved ?? latestCheckpoint }

    /// The name of a periodic checkpoint ("iter_000100.h5", "cam_iter_000100.h5").
    public func periodicName(_ iteration: Int) -> String { "\(prefix)iter_\(String(format: "%06d", iteration)).h5" }
}
