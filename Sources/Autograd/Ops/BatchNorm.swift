import Foundation

extension Tensor {
    /// (N, C, H·W) of an NCHW input, checking that each per-channel parameter is [C] (`op` names
    /// the caller in the message).
    func batchNormSizes(_ op: String, _ parameters: [Tensor]) -> (n: Int, c: Int, spatial: Int) {
        precondition(rank >= 2, "\(op): input \(shape) needs a channel axis")
        let c = shape[1]
        for t in parameters { precondition(t.shape == [c], "\(op): parameter \(t.shape) for input \(shape)") }
        return (shape[0], c, shape[2...].product)
    }

    /// Batch normalisation over the channels of an NCHW tensor, as torch.nn.functional.batch_norm.
    ///
    /// Training (`training: true`): normalises with the batch mean and biased variance and
    /// updates `runningMean`/`runningVar` in place with `momentum` (the running variance takes
    /// the unbiased batch variance, as PyTorch). Otherwise (eval, or frozen BN as DeepLab-v2
    /// trains it): an affine map with the running statistics, y = (x - mean) / sqrt(var + eps) · γ + β.
    /// - Parameters:
    ///   - weight, bias: γ and β, [C] (gradients flow to them when they require grad).
    ///   - runningMean, runningVar: [C] buffers.
    ///   - relu: apply ReLU to the result in the same pass (`batchNorm(…).relu()` without the
    ///     intermediate tensor; the same values and gradients).
    /// - Returns: [N, C, H, W].
    public func batchNorm(
        weight: Tensor, bias: Tensor, runningMean: Tensor, runningVar: Tensor,
        training: Bool, momentum: Float = 0.1, eps: Float = 1e-5, relu: Bool = false
    ) -> Tensor {
        let (n, c, spatial) = batchNormSizes("batchNorm", [weight, bias, runningMean, runningVar])
        let m = n * spatial
        let mean = Tensor(uninitialized: [c]), invStd = Tensor(uninitialized: [c])
        if training {
            precondition(m > 1, "batchNorm: training needs more than one value per channel, got input \(shape)")
            Kernels.batchNormTrainingStatistics(
                x: storage.base, batch: n, channels: c, spatial: spatial, momentum: momentum, eps: eps,
                runningMean: runningMean.storage.base, runningVar: runningVar.storage.base,
                mean: mean.storage.base, invStd: invStd.storage.base)
        } else {
            Kernels.batchNormRunningStatistics(
                runningMean: runningMean.storage.base, runningVar: runningVar.storage.base, eps: eps, channels: c,
                mean: mean.storage.base, invStd: invStd.storage.base)
        }
        // y = x · scale + shift with scale = γ·invStd, shift = β - mean·scale.
        let scale = Tensor(uninitialized: [c]), shift = Tensor(uninitialized: [c])
        Kernels.batchNormScaleAndShift(
            gamma: weight.storage.base, beta: bias.storage.base, mean: mean.storage.base, invStd: invStd.storage.base,
            channels: c, scale: scale.storage.base, shift: shift.storage.base)
        let y = Tensor(uninitialized: shape)
        (relu ? Kernels.channelAffineReLU : Kernels.channelAffine)(
            storage.base, scale.storage.base, shift.storage.base, y.storage.base, n, c, spatial)
        let needX = requiresGrad, needW = weight.requiresGrad, needB = bias.requiresGrad
        let name = (training ? "batch_norm" : "batch_norm_frozen") + (relu ? "_relu" : "")
        // The output's ReLU mask, when fused: its gradient passes where y > 0 (y is released with the tape).
        let output = relu ? y.detached() : nil
        if !training && !needW && !needB {
            // Frozen statistics and affine (DeepLab-v2): dx = dy·scale, nothing else to keep or sum.
            return recorded(y, name: name, inputs: [self, weight, bias]) { dy in
                guard needX else { return [nil, nil, nil] }
                let dx = Tensor(uninitialized: dy.shape)
                if let output { Kernels.reluBackward(dy.storage.base, output.storage.base, dx.storage.base, count: dy.count) }
                let zero = Tensor(zeros: [c])
                Kernels.channelAffine(
                    x: (output == nil ? dy : dx).storage.base, scale: scale.storage.base, shift: zero.storage.base,
                    y: dx.storage.base, batch: n, channels: c, spatial: spatial)
                return [dx, nil, nil]
            }
        }
        let x = detached()
        return recorded(y, name: name, inputs: [self, weight, bias]) { upstream in
            let dy = output.map { Tensor.reluGradient(upstream, output: $0) } ?? upstream
            // Σ dy and Σ dy·x̂ per channel, with x̂ = (x - mean)·invStd.
            let sums = Kernels.channelGradientSums(
                dy: dy.storage.base, x: x.storage.base, mean: mean.storage.base,
                invStd: invStd.storage.base, batch: n, channels: c, spatial: spatial)
            var dx: Tensor?
            if needX {
                let out = Tensor(uninitialized: x.shape)
                if training {
                    // dx = γ·invStd/m · (m·dy - Σdy - x̂·Σ(dy·x̂))   (batch statistics depend on x)
                    Kernels.batchNormInputGradient(
                        dy: dy.storage.base, x: x.storage.base, mean: mean.storage.base, invStd: invStd.storage.base,
                        gamma: weight.storage.base, sumDy: sums.dy, sumDyXhat: sums.dyXhat, count: m, dx: out.storage.base,
                        batch: n, channels: c, spatial: spatial)
                } else {
                    let zero = Tensor(zeros: [c])
                    Kernels.channelAffine(
                        x: dy.storage.base, scale: scale.storage.base, shift: zero.storage.base,
                        y: out.storage.base, batch: n, channels: c, spatial: spatial)
                }
                dx = out
            }
            return [dx, needW ? Tensor(shape: [c], values: sums.dyXhat) : nil, needB ? Tensor(shape: [c], values: sums.dy) : nil]
        }
    }
}
