import Autograd
import Distributed
import Evaluation
import Foundation
import Layers

/// What the training loops share across the ranks of a data-parallel job (docs/DISTRIBUTED.md).
extension Communicator {
    /// Copies rank 0's parameters and buffers into every rank's `module`, so all ranks start from
    /// identical weights even if their initialisation or checkpoint reads ever differed.
    /// - Throws: `DistributedError`.
    public func broadcastState(of module: Module) throws {
        guard size > 1 else { return }
        for (_, tensor) in module.stateDict() { try broadcast(tensor.storage.base, count: tensor.count) }
    }

    /// Makes `module`'s training-mode batch norm synchronise its statistics over the ranks
    /// (`syncBatchNorm`) when `enabled` and there are several ranks. A failed sum inside
    /// backward cannot throw: it stops the job naming this rank (`abort(reporting:)`).
    public func synchronizeBatchNorm(of module: Module, enabled: Bool) {
        guard size > 1, enabled else { return }
        module.synchronizeBatchNorm { [self] buffer in
            do { try allreduceSum(buffer) } catch { abort(reporting: error) }
        }
    }

    /// The confusion matrix summed over the ranks (each evaluated its share of the images).
    /// - Throws: `DistributedError`.
    public func sum(_ matrix: ConfusionMatrix) throws -> ConfusionMatrix {
        guard size > 1 else { return matrix }
        // Doubles hold pixel counts exactly up to 2^53.
        let summed = try allreduceSum((matrix.counts + matrix.unlabeled).map(Double.init)).map { Int($0) }
        let k = matrix.classCount * matrix.classCount
        return ConfusionMatrix(classCount: matrix.classCount, counts: Array(summed[..<k]), unlabeled: Array(summed[k...]))
    }

    /// The items of `items` this rank handles: every size-th, starting at its rank (inference
    /// and evaluation split their images this way).
    public func share<T>(of items: [T]) -> [T] {
        guard size > 1 else { return items }
        return stride(from: rank, to: items.count, by: size).map { items[$0] }
    }

    /// The step's loss summed over the ranks and whether any rank was asked to stop (its
    /// SIGINT/SIGTERM handler fired): one small allreduce, so every rank takes the same decision
    /// at the same iteration.
    /// - Throws: `DistributedError`.
    public func agree(loss: Float, stop: Bool) throws -> (loss: Float, stop: Bool) {
        guard size > 1 else { return (loss, stop) }
        let s = try allreduceSum([Double(loss), stop ? 1 : 0])
        return (Float(s[0]), s[1] > 0)
    }
}
