import Foundation

/// Sums the values in place across the processes of a data-parallel job (every process passes
/// the same count, in the same order): the collective `syncBatchNorm` needs. Autograd knows
/// nothing of MPI; the training code hands one in.
public typealias CrossProcessSum = (UnsafeMutableBufferPointer<Double>) -> Void

extension Tensor {
    /// Training-mode batch normalisation whose statistics cover the whole batch spread over the
    /// processes of a data-parallel job, as torch.nn.SyncBatchNorm: per channel, the mean and
    /// biased variance over every process's N·H·W values (and the running statistics updated
    /// from them, the variance unbiased by the global count), and in backward the sums Σdy and
    /// Σdy·x̂ that the input gradient needs summed over the processes too. The γ and β gradients
    /// stay this process's share (the data-parallel gradient sum adds them up), as SyncBatchNorm
    /// under DDP. With `sum` doing nothing (one process) this is `batchNorm(training: true)`.
    ///
    /// The statistics are one process's to the bit: each process adds its samples' per-plane
    /// Float sums in Double, and Doubles of a few Floats add up exactly whatever the grouping,
    /// so the mean (first sum), then the squared deviations from that rounded mean (second sum),
    /// and in backward Σdy and Σdy·(x − mean) come out as one process's `batchNorm` computes
    /// them. Bitwise-equal statistics matter: a deep net with batch norm that trains amplifies a
    /// rounding difference layer by layer (≈ 1.1× per layer in ResNet-50 at initialisation) until
    /// a ReLU near zero flips and the gradients part by 1e-2.
    public func syncBatchNorm(
        weight: Tensor, bias: Tensor, runningMean: Tensor, runningVar: Tensor, momentum: Float = 0.1, eps: Float = 1e-5,
        relu: Bool = false, sum: @escaping CrossProcessSum
    ) -> Tensor {
        let (n, c, spatial) = batchNormSizes("syncBatchNorm", [weight, bias, runningMean, runningVar])
        let mean = Tensor(uninitialized: [c]), invStd = Tensor(uninitialized: [c])
        // Sum 1: Σx per channel, and the count.
        var first = [Double](repeating: 0, count: c + 1)
        first.withUnsafeMutableBufferPointer { b in
            Kernels.channelSums(x: storage.base, batch: n, channels: c, spatial: spatial, into: b.baseAddress!)
            b[c] = Double(n * spatial)
            sum(b)
        }
        let total = first[c]
        precondition(total > 1, "syncBatchNorm: training needs more than one value per channel over all processes, got \(total)")
        // In Float from here, as `batchNormTrainingStatistics`: one process gets its bits exactly.
        for ch in 0..<c { mean.storage.base[ch] = Float(first[ch] / total) }
        // Sum 2: Σ(x − mean)² from the global mean.
        var second = [Double](repeating: 0, count: c)
        second.withUnsafeMutableBufferPointer { b in
            Kernels.channelSquaredDeviations(
                x: storage.base, batch: n, channels: c, spatial: spatial, from: mean.storage.base, into: b.baseAddress!)
            sum(b)
        }
        for ch in 0..<c {
            let mu = mean.storage.base[ch], variance = Float(second[ch] / total)
            invStd.storage.base[ch] = 1 / (variance + eps).squareRoot()
            // As torch: the running variance takes the unbiased estimate, over the global count.
            runningMean.storage.base[ch] = (1 - momentum) * runningMean.storage.base[ch] + momentum * mu
            runningVar.storage.base[ch] =
                (1 - momentum) * runningVar.storage.base[ch] + momentum * variance * Float(total) / Float(total - 1)
        }
        let scale = Tensor(uninitialized: [c]), shift = Tensor(uninitialized: [c])
        Kernels.batchNormScaleAndShift(
            gamma: weight.storage.base, beta: bias.storage.base, mean: mean.storage.base, invStd: invStd.storage.base,
            channels: c, scale: scale.storage.base, shift: shift.storage.base)
        let y = Tensor(uninitialized: shape)
        (relu ? Kernels.channelAffineReLU : Kernels.channelAffine)(
            storage.base, scale.storage.base, shift.storage.base, y.storage.base, n, c, spatial)
        let needX = requiresGrad, needW = weight.requiresGrad, needB = bias.requiresGrad
        let output = relu ? y.detached() : nil
        let x = detached()
        return recorded(y, name: "sync_batch_norm" + (relu ? "_relu" : ""), inputs: [self, weight, bias]) { upstream in
            let dy = output.map { Tensor.reluGradient(upstream, output: $0) } ?? upstream
            var raw = [Double](repeating: 0, count: 2 * c)
            raw.withUnsafeMutableBufferPointer {
                Kernels.channelGradientSums(
                    dy: dy.storage.base, x: x.storage.base, mean: mean.storage.base, batch: n, channels: c, spatial: spatial,
                    into: $0.baseAddress!)
            }
            // γ and β get this process's share; the data-parallel gradient sum adds them up.
            let local = Kernels.gradientSums(raw, invStd: invStd.storage.base, channels: c)
            var dx: Tensor?
            if needX {
                // Every process takes part in the sum, whether or not it needs dx, in one order.
                raw.withUnsafeMutableBufferPointer { sum($0) }
                let global = Kernels.gradientSums(raw, invStd: invStd.storage.base, channels: c)
                let out = Tensor(uninitialized: x.shape)
                Kernels.batchNormInputGradient(
                    dy: dy.storage.base, x: x.storage.base, mean: mean.storage.base, invStd: invStd.storage.base,
                    gamma: weight.storage.base, sumDy: global.dy, sumDyXhat: global.dyXhat, count: Int(total),
                    dx: out.storage.base, batch: n, channels: c, spatial: spatial)
                dx = out
            }
            return [
                dx, needW ? Tensor(shape: [c], values: local.dyXhat) : nil, needB ? Tensor(shape: [c], values: local.dy) : nil,
            ]
        }
    }
}
