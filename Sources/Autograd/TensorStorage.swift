import Foundation

/// A reference-counted, 64-byte aligned buffer of Float32 values: the memory behind a `Tensor`.
///
/// Ops never write into the storage of their inputs. The optimizer and batch-norm running
/// statistics update parameter and buffer storage in place, as PyTorch does.
public final class TensorStorage: @unchecked Sendable {
    /// First element. Valid for `count` elements while the storage is alive.
    public let base: UnsafeMutablePointer<Float>
    /// Number of Float32 elements.
    public let count: Int

    /// Allocates `count` elements, zero-filled when `zeroed` is true (uninitialised otherwise).
    public init(count: Int, zeroed: Bool = true) {
        precondition(count >= 0, "TensorStorage: negative element count \(count)")
        let bytes = max(count, 1) * MemoryLayout<Float>.stride
        var raw = LargeBufferPool.shared.take(bytes: bytes)
        if raw == nil {
            // 64-byte alignment: a cache line, and what AVX-512 loads prefer.
            let status = posix_memalign(&raw, 64, bytes)
            precondition(status == 0 && raw != nil, "TensorStorage: cannot allocate \(count) floats")
            TensorStorage.adviseHugePages(raw!, bytes: bytes)
        }
        base = raw!.bindMemory(to: Float.self, capacity: max(count, 1))
        self.count = count
        if zeroed { base.initialize(repeating: 0, count: count) }
    }

    deinit {
        let bytes = max(count, 1) * MemoryLayout<Float>.stride
        if !LargeBufferPool.shared.park(UnsafeMutableRawPointer(base), bytes: bytes) { free(base) }
    }

    /// Buffers at least this large get huge-page advice. Those above glibc's mmap threshold (64 MB,
    /// `Runtime.tuneAllocator`) are fresh mmaps, so every use of one page-faults all of it in.
    static let hugePageMinimumBytes = 32 << 20

    /// Asks the kernel to back the 2 MB-aligned inside of a large buffer with transparent huge
    /// pages (MADV_HUGEPAGE; honoured when THP is "madvise" or "always"): a 268 MB activation
    /// then faults in 134 pages instead of 65 536, which took about a fifth of SAM's mask decoder
    /// time at 64 prompts. Zeroing the pages costs the same; failure is harmless and ignored.
    static func adviseHugePages(_ raw: UnsafeMutableRawPointer, bytes: Int) {
        guard bytes >= hugePageMinimumBytes else { return }
        let huge = 2 << 20
        let start = (Int(bitPattern: raw) + huge - 1) & ~(huge - 1)
        let end = (Int(bitPattern: raw) + bytes) & ~(huge - 1)
        guard end > start, let pointer = UnsafeMutableRawPointer(bitPattern: start) else { return }
        _ = madvise(pointer, end - start, MADV_HUGEPAGE)
    }
}
