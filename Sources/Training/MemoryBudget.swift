import Autograd
import Foundation

/// A check, before anything is allocated, that a run's sizes fit the memory this process may
/// use: a typo such as `crop: 100000` would otherwise end in an allocation failure (a crash)
/// inside the tensor layer, after the run folder was set up.
public enum MemoryBudget {
    /// Bytes this process may allocate: physical memory, or the address-space limit (`ulimit -v`)
    /// when that is lower.
    public static var available: Int { MemoryLimit.available }

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
