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
        var raw: UnsafeMutableRawPointer?
        // 64-byte alignment: a cache line, and what AVX-512 loads prefer.
        let status = posix_memalign(&raw, 64, max(count, 1) * MemoryLayout<Float>.stride)
        precondition(status == 0 && raw != nil, "TensorStorage: cannot allocate \(count) floats")
        base = raw!.bindMemory(to: Float.self, capacity: max(count, 1))
        self.count = count
        if zeroed { base.initialize(repeating: 0, count: count) }
    }

    deinit { free(base) }
}
