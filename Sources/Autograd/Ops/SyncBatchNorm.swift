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
    /// The global variance combines each process's moments without cancellation
    /// (Chan et al.'s parallel variance: Σ_r m_r (var_r + (mean_r − mean)²) / M), at the price of
    /// two sums in forward instead of one.
    /// - Parameters:
    ///   - weight, bias, runningMean, runningVar: [C], as `batchNorm`.
    ///   - sum: the cross-process sum.
    /// - Returns: [N, C, H, W].
    public func syncBatchNorm(
        weight: Tensor, bias: Tensor, runningMean: Tensor, runningVar: Tensor, momentum: Float = 0.1, eps: Float = 1e-5,
        relu: Bool = false, sum: @escaping CrossProcessSum
    ) -> Tensor {
        let (n, c, spatial) = batchNormSizes("syncBatchNorm", [weight, bias, runningMean, runningVar])
        let m = n * spatial
        let mean = Tensor(uninitialized: [c]), invStd = Tensor(uninitialized: [c])
        let localMean = Tensor(uninitialized: [c]), localVariance = Tensor(uninitialized: [c])
        Kernels.channelMoments(
            x: storage.base, batch: n, channels: c, spatial: spatial, mean: localMean.storage.base,
            variance: localVariance.storage.base)
        // Sum 1: m_r·mean_r per channel, and m_r.
        var first = [Double](repeating: 0, count: c + 1)
        for ch in 0..<c { first[ch] = Double(m) * Double(localMean.storage.base[ch]) }
        first[c] = Double(m)
        first.withUnsafeMutableBufferPointer { sum($0) }
        let total = first[c]
        precondition(total > 1, "syncBatchNorm: training needs more than one value per channel over all processes, got \(total)")
        // Sum 2: m_r·(var_r + (mean_r − mean)²).
        var second = [Double](repeating: 0, count: c)
        for ch in 0..<c {
            let d = Double(localMean.storage.base[ch]) - first[ch] / total
            second[ch] = Double(m) * (Double(localVariance.storage.base[ch]) + d * d)
        }
        second.withUnsafeMutableBufferPointer { sum($0) }
        for ch in 0..<c {
            // In Float from here, as `batchNormTrainingStatistics`: one process gets its bits exactly.
            let mu = Float(first[ch] / total), variance = Float(second[ch] / total)
            mean.storage.base[ch] = mu
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
            let sums = Kernels.channelGradientSums(
                dy: dy.storage.base, x: x.storage.base, mean: mean.storage.base,
                invStd: invStd.storage.base, batch: n, channels: c, spatial: spatial)
            var dx: Tensor?
            if needX {
                // Every process takes part in the sum, whether or not it needs dx, in one order.
                var global = sums.dy.map(Double.init) + sums.dyXhat.map(Double.init)
                global.withUnsafeMutableBufferPointer { sum($0) }
                // The kernel computes γ·invStd/m·(m·dy − S1 − x̂·S2) with this process's m; handing
                // it the global sums times m/M gives γ·invStd·(dy − ΣDy/M − x̂·Σ(dy·x̂)/M).
                let share = Double(m) / total
                let sumDy = (0..<c).map { Float(global[$0] * share) }
                let sumDyXhat = (0..<c).map { Float(global[c + $0] * share) }
                let out = Tensor(uninitialized: x.shape)
                Kernels.batchNormInputGradient(
                    dy: dy.storage.base, x: x.storage.base, mean: mean.storage.base, invStd: invStd.storage.base,
                    gamma: weight.storage.base, sumDy: sumDy, sumDyXhat: sumDyXhat, dx: out.storage.base,
                    batch: n, channels: c, spatial: spatial)
                dx = out
            }
            return [dx, needW ? Tensor(shape: [c], values: sums.dyXhat) : nil, needB ? Tensor(shape: [c], values: sums.dy) : nil]
        }
    }
}
