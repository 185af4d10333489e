import CMPI
import Foundation

/// An MPI failure: the call, this process's rank and Open MPI's own message.
public enum DistributedError: LocalizedError, Equatable {
    /// An MPI call returned an error code (`MPI_ERRORS_RETURN` is set, so a dead peer surfaces here
    /// instead of aborting inside the library).
    case mpi(call: String, rank: Int, message: String)
    /// The ranks disagree on something they must share (e.g. a batch smaller than the rank count).
    case mismatch(String)
    /// A collective did not finish within the watchdog's time: a peer is gone or stuck.
    case timedOut(call: String, rank: Int, seconds: Double)

    public var errorDescription: String? {
        switch self {
        case .mpi(let call, let rank, let message): "rank \(rank): \(call) failed: \(message)"
        case .mismatch(let message): message
        case .timedOut(let call, let rank, let seconds):
            "rank \(rank): \(call) did not complete within \(Int(seconds)) s (another rank died or hangs; WSSS_COLLECTIVE_TIMEOUT sets the limit)"
        }
    }
}

/// The ranks of a data-parallel job: MPI's world communicator when the process was started by
/// `mpirun`/`srun`, or a single process (rank 0 of 1, every collective a no-op) otherwise, so
/// the same binary runs with and without MPI.
public final class Communicator: @unchecked Sendable {
    /// This process's rank, 0..<size.
    public let rank: Int
    /// The number of processes.
    public let size: Int
    /// Whether MPI was initialised (false for the single-process fallback).
    public let usesMPI: Bool

    private init(rank: Int, size: Int, usesMPI: Bool) {
        (self.rank, self.size, self.usesMPI) = (rank, size, usesMPI)
    }

    /// One process, no MPI.
    public static let single = Communicator(rank: 0, size: 1, usesMPI: false)

    nonisolated(unsafe) private static var started: Communicator?

    /// Whether a launcher started this process as one of several ranks: Open MPI's mpirun
    /// (`OMPI_COMM_WORLD_SIZE`), a PMI launcher (`PMI_SIZE`, `PMIX_RANK`) or Slurm's srun
    /// (`SLURM_NTASKS` with `SLURM_PROCID`, which a plain `sbatch` script without srun also has,
    /// hence the step id check).
    public static func launchedByMPI(environment: [String: String] = ProcessInfo.processInfo.environment) -> Bool {
        if environment["OMPI_COMM_WORLD_SIZE"] != nil || environment["PMI_SIZE"] != nil || environment["PMIX_RANK"] != nil {
            return true
        }
        return environment["SLURM_NTASKS"] != nil && environment["SLURM_STEP_ID"] != nil
    }

    /// The world communicator: initialises MPI once when launched by a launcher
    /// (`launchedByMPI`), else `single`. Sets `MPI_ERRORS_RETURN`, so MPI failures become
    /// `DistributedError`s the caller can report before aborting the job.
    /// - Throws: `DistributedError.mpi` when MPI_Init fails.
    public static func world() throws -> Communicator {
        if let started { return started }
        guard launchedByMPI() else {
            started = single
            return single
        }
        var provided: Int32 = 0
        // FUNNELED: only the training thread calls MPI (our worker pool never does).
        try check(MPI_Init_thread(nil, nil, Int32(MPI_THREAD_FUNNELED), &provided), "MPI_Init_thread", rank: -1)
        var rank: Int32 = 0
        var size: Int32 = 0
        try check(MPI_Comm_set_errhandler(cmpi_comm_world(), cmpi_errors_return()), "MPI_Comm_set_errhandler", rank: -1)
        try check(MPI_Comm_rank(cmpi_comm_world(), &rank), "MPI_Comm_rank", rank: -1)
        try check(MPI_Comm_size(cmpi_comm_world(), &size), "MPI_Comm_size", rank: Int(rank))
        let world = Communicator(rank: Int(rank), size: Int(size), usesMPI: true)
        world.startWatchdog()
        started = world
        return world
    }

    /// The communicator `world()` made, or `single` when none was made.
    public static var current: Communicator { started ?? single }

    /// Whether this rank writes files (checkpoints, logs, pictures): rank 0 only.
    public var isWriter: Bool { rank == 0 }

    /// Ends MPI cleanly (every rank must call it); a no-op without MPI.
    public func finalize() {
        guard usesMPI else { return }
        var done: Int32 = 0
        MPI_Finalized(&done)
        if done == 0 { MPI_Finalize() }
    }

    /// Stops every rank of the job with `code` (MPI_Abort): what a rank does after an error it
    /// cannot share with the others, so no peer waits forever in a collective.
    public func abort(code: Int32) {
        guard usesMPI else { return }
        MPI_Abort(cmpi_comm_world(), code)
    }

    /// Waits until every rank arrives.
    /// - Throws: `DistributedError.mpi`.
    public func barrier() throws {
        guard usesMPI else { return }
        try collective("MPI_Barrier") { MPI_Barrier(cmpi_comm_world()) }
    }

    /// Waits until every rank arrives without spinning: a non-blocking barrier polled every
    /// `poll` seconds, for ranks that idle while rank 0 alone runs a long stage (MPI_Barrier
    /// busy-waits, taking a core from the rank that works).
    /// - Throws: `DistributedError.mpi`.
    public func waitForAll(poll: Double = 0.01) throws {
        guard usesMPI else { return }
        var request: MPI_Request? = cmpi_request_null()
        try Self.check(MPI_Ibarrier(cmpi_comm_world(), &request), "MPI_Ibarrier", rank: rank)
        let pending = Request(handle: request, rank: rank)
        while try !pending.test() { usleep(useconds_t(poll * 1e6)) }
    }

    /// Rank 0's `value` on every rank (MPI_Bcast of one number): how ranks share a decision
    /// only rank 0 may take (it alone reads and moves the run folder's records).
    /// - Throws: `DistributedError.mpi`.
    public func broadcast(_ value: Double, root: Int = 0) throws -> Double {
        guard usesMPI else { return value }
        var v = value
        try collective("MPI_Bcast") { MPI_Bcast(&v, 1, cmpi_double(), Int32(root), cmpi_comm_world()) }
        return v
    }

    /// Sums `count` floats at `buffer` across the ranks, in place (MPI_Allreduce).
    /// - Throws: `DistributedError.mpi`.
    public func allreduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws {
        guard usesMPI, count > 0 else { return }
        try collective("MPI_Allreduce") {
            MPI_Allreduce(mpiInPlace, buffer, Int32(count), cmpi_float(), cmpi_sum(), cmpi_comm_world())
        }
    }

    /// The element-wise sum of `values` over the ranks (every rank passes the same count).
    /// - Throws: `DistributedError.mpi`.
    public func allreduceSum(_ values: [Double]) throws -> [Double] {
        guard usesMPI, !values.isEmpty else { return values }
        var result = values
        try result.withUnsafeMutableBufferPointer { b in
            try collective("MPI_Allreduce") {
                MPI_Allreduce(mpiInPlace, b.baseAddress, Int32(b.count), cmpi_double(), cmpi_sum(), cmpi_comm_world())
            }
        }
        return result
    }

    /// Sums `buffer` across the ranks, in place.
    /// - Throws: `DistributedError.mpi`.
    public func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Double>) throws {
        guard usesMPI, buffer.count > 0 else { return }
        try collective("MPI_Allreduce") {
            MPI_Allreduce(mpiInPlace, buffer.baseAddress, Int32(buffer.count), cmpi_double(), cmpi_sum(), cmpi_comm_world())
        }
    }

    /// Prints "wsss: rank r of N: <error>" to stderr and stops the whole job (MPI_Abort): for a
    /// failure inside a computation that cannot throw (a collective in a backward closure).
    public func abort(reporting error: Error) -> Never {
        let prefix = error is DistributedError ? "wsss: " : "wsss: rank \(rank) of \(size): "
        FileHandle.standardError.write(Data((prefix + error.localizedDescription + "\n").utf8))
        abort(code: 1)
        Foundation.exit(1)
    }

    /// The element-wise maximum of `values` over the ranks.
    /// - Throws: `DistributedError.mpi`.
    public func allreduceMax(_ values: [Double]) throws -> [Double] {
        guard usesMPI, !values.isEmpty else { return values }
        var result = values
        try result.withUnsafeMutableBufferPointer { b in
            try collective("MPI_Allreduce") {
                MPI_Allreduce(mpiInPlace, b.baseAddress, Int32(b.count), cmpi_double(), cmpi_max(), cmpi_comm_world())
            }
        }
        return result
    }

    /// Copies rank `root`'s `count` floats at `buffer` to every rank (MPI_Bcast).
    /// - Throws: `DistributedError.mpi`.
    public func broadcast(_ buffer: UnsafeMutablePointer<Float>, count: Int, root: Int = 0) throws {
        guard usesMPI, count > 0 else { return }
        try collective("MPI_Bcast") { MPI_Bcast(buffer, Int32(count), cmpi_float(), Int32(root), cmpi_comm_world()) }
    }

    /// Starts summing `count` floats at `buffer` in place without waiting (MPI_Iallreduce); the
    /// buffer must stay alive and untouched until the request completes.
    /// - Throws: `DistributedError.mpi`.
    public func startAllreduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws -> Request {
        guard usesMPI, count > 0 else { return Request(handle: nil, rank: rank) }
        var request: MPI_Request? = cmpi_request_null()
        try Self.check(
            MPI_Iallreduce(mpiInPlace, buffer, Int32(count), cmpi_float(), cmpi_sum(), cmpi_comm_world(), &request),
            "MPI_Iallreduce", rank: rank)
        return Request(handle: request, rank: rank)
    }

    /// An outstanding non-blocking collective.
    public final class Request {
        var handle: MPI_Request?
        let rank: Int
        init(handle: MPI_Request?, rank: Int) { (self.handle, self.rank) = (handle, rank) }

        /// Whether it finished; also lets MPI make progress on it (Open MPI has no progress
        /// thread, so polling between backward ops is what overlaps communication).
        /// - Throws: `DistributedError.mpi`.
        public func test() throws -> Bool {
            guard handle != nil, handle != cmpi_request_null() else { return true }
            var flag: Int32 = 0
            try Communicator.check(MPI_Test(&handle, &flag, cmpi_status_ignore()), "MPI_Test", rank: rank)
            return flag != 0
        }

        /// Waits for it, failing after `timeout` seconds (a peer that died mid-collective would
        /// otherwise keep this rank waiting forever).
        /// - Throws: `DistributedError.mpi`, `DistributedError.timedOut`.
        public func wait(timeout: Double = Communicator.collectiveTimeout) throws {
            let start = Date()
            while try !test() {
                if Date().timeIntervalSince(start) > timeout {
                    throw DistributedError.timedOut(call: "MPI_Iallreduce", rank: rank, seconds: timeout)
                }
                usleep(50)
            }
        }
    }

    /// Seconds a collective may take before `Request.wait` gives up and the watchdog ends a
    /// blocking one (`WSSS_COLLECTIVE_TIMEOUT`, default 600).
    public static let collectiveTimeout: Double =
        ProcessInfo.processInfo.environment["WSSS_COLLECTIVE_TIMEOUT"].flatMap(Double.init) ?? 600

    private var mpiInPlace: UnsafeMutableRawPointer? { cmpi_in_place() }

    // The watchdog: a blocking collective that outlives `collectiveTimeout` means a peer is
    // stuck (a dead one makes mpirun end the job by itself). It runs on its own thread, which
    // may not call MPI (MPI_THREAD_FUNNELED), so it names the call and ends this process; mpirun
    // then ends the others, as for any rank that exits without MPI_Finalize.
    private let watch = NSLock()
    private var busy: (call: String, since: Date)?

    private func collective(_ call: String, _ body: () -> Int32) throws {
        watch.lock()
        busy = (call, Date())
        watch.unlock()
        let code = body()
        watch.lock()
        busy = nil
        watch.unlock()
        try Self.check(code, call, rank: rank)
    }

    private func startWatchdog() {
        let thread = Thread { [self] in
            while true {
                sleep(1)
                watch.lock()
                let current = busy
                watch.unlock()
                if let current, Date().timeIntervalSince(current.since) > Self.collectiveTimeout {
                    let error = DistributedError.timedOut(call: current.call, rank: rank, seconds: Self.collectiveTimeout)
                    FileHandle.standardError.write(Data("wsss: \(error.localizedDescription)\n".utf8))
                    _exit(124)
                }
            }
        }
        thread.name = "wsss.mpi-watchdog"
        thread.start()
    }

    static func check(_ code: Int32, _ call: String, rank: Int) throws {
        guard code != cmpi_success() else { return }
        var text = [CChar](repeating: 0, count: Int(cmpi_max_error_string()) + 1)
        var length: Int32 = 0
        MPI_Error_string(code, &text, &length)
        throw DistributedError.mpi(call: call, rank: rank, message: String(cString: text))
    }
}
