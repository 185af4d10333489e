import Foundation

/// Keeps freed large tensor buffers for reuse inside a `TensorStorage.reusingLargeBuffers` scope.
///
/// Buffers above glibc's mmap threshold are fresh mappings each time, and the kernel zeroes every
/// page of them on first touch: with huge pages that zeroing was ~27% of SAM's mask decoder at 64
/// prompts, which allocates ~7.5 GB of 134-604 MB activations per batch, mostly of a few recurring
/// sizes. Inside a scope a freed buffer of at least `minimumBytes` is parked (up to `limitBytes`
/// in all) and handed to the next allocation of exactly its size; leaving the outermost scope
/// frees them all, so nothing is held between scopes.
final class LargeBufferPool: @unchecked Sendable {
    /// Smaller buffers go to malloc as usual.
    static let minimumBytes = 32 << 20
    /// Most bytes parked at once by default (peak RSS may grow by up to this much inside a scope).
    static let defaultLimitBytes = 1 << 30

    static let shared = LargeBufferPool()

    private let lock = NSLock()
    private var depth = 0
    private var parked: [Int: [UnsafeMutableRawPointer]] = [:]
    private var parkedBytes = 0
    /// The limit of the outermost open scope.
    private var limitBytes = LargeBufferPool.defaultLimitBytes

    /// A parked buffer of exactly `bytes`, if a scope is open and one is there.
    func take(bytes: Int) -> UnsafeMutableRawPointer? {
        guard bytes >= LargeBufferPool.minimumBytes else { return nil }
        lock.lock()
        defer { lock.unlock() }
        guard depth > 0, let buffer = parked[bytes]?.popLast() else { return nil }
        parkedBytes -= bytes
        return buffer
    }

    /// Parks `buffer` when a scope is open and it fits the limit; false when the caller must free it.
    func park(_ buffer: UnsafeMutableRawPointer, bytes: Int) -> Bool {
        guard bytes >= LargeBufferPool.minimumBytes else { return false }
        lock.lock()
        defer { lock.unlock() }
        guard depth > 0, parkedBytes + bytes <= limitBytes else { return false }
        parked[bytes, default: []].append(buffer)
        parkedBytes += bytes
        return true
    }

    func enter(limit: Int) {
        lock.lock()
        if depth == 0 {
            limitBytes = limit
            Runtime.holdHeapTop(true)
        }
        depth += 1
        lock.unlock()
    }

    func leave() {
        lock.lock()
        depth -= 1
        let outermost = depth == 0
        let released = outermost ? parked.values.flatMap { $0 } : []
        if outermost {
            parked = [:]
            parkedBytes = 0
        }
        // Under the lock: a scope opened meanwhile on another thread must not see the threshold reset.
        if outermost { Runtime.holdHeapTop(false) }
        lock.unlock()
        for buffer in released { free(buffer) }
    }

    /// Buffers of exactly `bytes` parked now (tests).
    func parkedCount(bytes: Int) -> Int {
        lock.lock()
        defer { lock.unlock() }
        return parked[bytes]?.count ?? 0
    }

    /// Frees every parked buffer, the scopes staying open.
    func releaseParked() {
        lock.lock()
        let released = parked.values.flatMap { $0 }
        parked = [:]
        parkedBytes = 0
        lock.unlock()
        for buffer in released { free(buffer) }
    }
}

extension TensorStorage {
    /// Runs `body` with freed buffers of 32 MB and more kept for reuse by later allocations of
    /// the same size (at most `limit` bytes parked, 1 GB by default; the outermost scope's limit
    /// holds), all released when the outermost scope ends. For inference loops that allocate the
    /// same large activations again and again (SAM's mask decoder, Grounding DINO's layers);
    /// nesting is allowed, and other threads' allocations share the pool meanwhile.
    /// Frees the buffers parked so far (the open scopes keep parking later ones): after work
    /// whose sizes will not recur, such as an evaluation between training steps.
    public static func releaseParkedBuffers() { LargeBufferPool.shared.releaseParked() }

    public static func reusingLargeBuffers<R>(limit: Int = 1 << 30, _ body: () throws -> R) rethrows -> R {
        LargeBufferPool.shared.enter(limit: limit)
        defer { LargeBufferPool.shared.leave() }
        return try body()
    }
}
