import Autograd
import Foundation

/// A check, before anything is allocated, that a run's sizes fit the memory this process may
/// use: a typo such as `crop: 100000` would otherwise end in an allocation failure (a crash)
/// inside the tensor layer, after the run folder was set up.
public enum MemoryBudget {
    /// Bytes this process may allocate: physical memory, or the address-space limit (`ulimit -v`)
    /// when that is lower.
    public static var available: Int { MemoryLimit.available }

    /// Most bytes of freed activations a training loop keeps for its next steps: a sixth of
    /// `available`, at most 4 GB.
    public static var stepBufferReuse: Int { min(4 << 30, available / 6) }

    /// Runs a training loop with its freed large activations (32 MB and more) kept for the next
    /// allocations of the same size, up to `stepBufferReuse` bytes (`TensorStorage.reusingLargeBuffers`).
    /// Every step allocates the same activations again, and a fresh mapping's pages are zeroed by
    /// the kernel on first touch: at the VOC recipe's CAM step (batch 16 at 512²) that zeroing was
    /// 19% of the step (28.3 → 20.6 s per step on 2 Zen 3 cores; peak RSS 5.4 → 6.8 GB).
    public static func reusingStepBuffers<R>(_ body: () throws -> R) rethrows -> R {
        try TensorStorage.reusingLargeBuffers(limit: stepBufferReuse, body)
    }

    /// Throws `TrainingError.tooLarge` when a batch of `batch` RGB float crops of `crop` pixels
    /// square — the input alone, a lower bound on what a step needs — exceeds `available`.
    public static func checkTrainingBatch(batch: Int, crop: Int) throws {
        let (pixels, overflow1) = crop.multipliedReportingOverflow(by: crop)
        let (values, overflow2) = pixels.multipliedReportingOverflow(by: 3 * max(batch, 1))
        let (bytes, overflow3) = values.multipliedReportingOverflow(by: MemoryLayout<Float>.size)
        let needed = overflow1 || overflow2 || overflow3 ? Int.max : bytes
        let available = available
        if needed > available {
            throw TrainingError.tooLarge(what: "crop \(crop) px at batch \(batch)", needed: needed, available: available)
        }
    }
}
