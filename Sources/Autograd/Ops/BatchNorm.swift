import Foundation

extension Tensor {
    /// Batch normalisation over the channels of an NCHW tensor, as torch.nn.functional.batch_norm.
    ///
    /// Training (`training: true`): normalises with the batch mean and biased variance and
    /// updates `runningMean`/`runningVar` in place with `momentum` (the running variance takes
    /// the unbiased batch variance, as PyTorch). Otherwise (eval, or frozen BN as DeepLab-v2
    /// trains it): an affine map with the running statistics, y = (x - mean) / sqrt(var + eps) · γ + β.
    /// - Parameters:
    ///   - weight, bias: γ and β, [C] (gradients flow to them when they require grad).
    ///   - runningMean, runningVar: [C] buffers.
    /// - Returns: [N, C, H, W].
    public func batchNorm(
        weight: Tensor, bias: Tensor, runningMean: Tensor, runningVar: Tensor,
        training: Bool, momentum: Float = 0.1, eps: Float = 1e-5
    ) -> Tensor {
        precondition(rank >= 2, "batchNorm: input \(shape) needs a channel axis")
        let c = shape[1]
        for t in [weight, bias, runningMean, runningVar] {
            precondition(t.shape == [c], "batchNorm: parameter \(t.shape) for input \(shape)")
        }
        let (n, spatial) = (shape[0], shape[2...].product)
        let m = n * spatial
        let mean = Tensor(uninitialized: [c]), invStd = Tensor(uninitialized: [c])
        if training {
            precondition(m > 1, "batchNorm: training needs more than one value per channel, got input \(shape)")
            Kernels.channelMoments(
                x: storage.base, batch: n, channels: c, spatial: spatial,
                mean: mean.storage.base, variance: invStd.storage.base)
            let rm = runningMean.storage.base, rv = runningVar.storage.base
            for ch in 0..<c {
                let variance = invStd.storage.base[ch]
                rm[ch] = (1 - momentum) * rm[ch] + momentum * mean.storage.base[ch]
                rv[ch] = (1 - momentum) * rv[ch] + momentum * variance * Float(m) / Float(m - 1)
                invStd.storage.base[ch] = 1 / (variance + eps).squareRoot()
            }
        } else {
            for ch in 0..<c {
                mean.storage.base[ch] = runningMean.storage.base[ch]
                invStd.storage.base[ch] = 1 / (runningVar.storage.base[ch] + eps).squareRoot()
            }
        }
        // y = x · scale + shift with scale = γ·invStd, shift = β - mean·scale.
        let scale = Tensor(uninitialized: [c]), shift = Tensor(uninitialized: [c])
        for ch in 0..<c {
            scale.storage.base[ch] = weight.storage.base[ch] * invStd.storage.base[ch]
            shift.storage.base[ch] = bias.storage.base[ch] - mean.storage.base[ch] * scale.storage.base[ch]
        }
        let y = Tensor(uninitialized: shape)
        Kernels.channelAffine(
            x: storage.base, scale: scale.storage.base, shift: shift.storage.base,
            y: y.storage.base, batch: n, channels: c, spatial: spatial)
        let x = detached()
        let needX = requiresGrad, needW = weight.requiresGrad, needB = bias.requiresGrad
        return recorded(y, name: training ? "batch_norm" : "batch_norm_frozen", inputs: [self, weight, bias]) { dy in
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
                        gamma: weight.storage.base, sumDy: sums.dy, sumDyXhat: sums.dyXhat, dx: out.storage.base,
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

extension Kernels {
    /// Per-channel mean and biased variance of x [batch, channels, spatial] (two passes, Double sums).
    public static func channelMoments(
        x: UnsafePointer<Float>, batch: Int, channels: Int, spatial: Int,
        mean: UnsafeMutablePointer<Float>, variance: UnsafeMutablePointer<Float>
    ) {
        let m = Double(batch * spatial)
        parallelFor(channels) { r in
            for c in r {
                var s = 0.0
                for n in 0..<batch { s += Double(sum(x + (n * channels + c) * spatial, count: spatial)) }
                let mu = Float(s / m)
                var v = 0.0
                for n in 0..<batch {
                    v += Double(sumOfSquaredDeviations(x + (n * channels + c) * spatial, count: spatial, from: mu))
                }
                mean[c] = mu
                variance[c] = Float(v / m)
            }
        }
    }

    /// y = x · scale[c] + shift[c] over x [batch, channels, spatial].
    public static func channelAffine(
        x: UnsafePointer<Float>, scale: UnsafePointer<Float>, shift: UnsafePointer<Float>,
        y: UnsafeMutablePointer<Float>, batch: Int, channels: Int, spatial: Int
    ) {
        parallelFor(batch * channels, minimumPerThread: Swift.max(1, 16384 / Swift.max(spatial, 1))) { r in
            for row in r {
                let a = scale[row % channels], b = shift[row % channels]
                let px = x + row * spatial, py = y + row * spatial
                for i in 0..<spatial { py[i] = px[i] * a + b }
            }
        }
    }

    /// Per-channel Σ dy and Σ dy·(x - mean)·invStd.
    public static func channelGradientSums(
        dy: UnsafePointer<Float>, x: UnsafePointer<Float>, mean: UnsafePointer<Float>, invStd: UnsafePointer<Float>,
        batch: Int, channels: Int, spatial: Int
    ) -> (dy: [Float], dyXhat: [Float]) {
        var sumDy = [Float](repeating: 0, count: channels), sumDyXhat = [Float](repeating: 0, count: channels)
        sumDy.withUnsafeMutableBufferPointer { sd in
            sumDyXhat.withUnsafeMutableBufferPointer { sdx in
                let (sdp, sdxp) = (sd.baseAddress!, sdx.baseAddress!)
                parallelFor(channels) { r in
                    for c in r {
                        var a = 0.0, b = 0.0
                        let mu = mean[c]
                        for n in 0..<batch {
                            let o = (n * channels + c) * spatial
                            let (pa, pb) = sumAndCenteredDot(dy + o, x + o, count: spatial, mu: mu)
                            a += Double(pa)
                            b += Double(pb)
                        }
                        sdp[c] = Float(a)
                        sdxp[c] = Float(b) * invStd[c]
                    }
                }
            }
        }
        return (sumDy, sumDyXhat)
    }

    /// Input gradient of training-mode batch norm:
    /// dx = γ·invStd/m · (m·dy - Σdy - x̂·Σ(dy·x̂)), m = batch·spatial.
    public static func batchNormInputGradient(
        dy: UnsafePointer<Float>, x: UnsafePointer<Float>, mean: UnsafePointer<Float>, invStd: UnsafePointer<Float>,
        gamma: UnsafePointer<Float>, sumDy: [Float], sumDyXhat: [Float], dx: UnsafeMutablePointer<Float>,
        batch: Int, channels: Int, spatial: Int
    ) {
        let m = Float(batch * spatial)
        parallelFor(batch * channels, minimumPerThread: Swift.max(1, 16384 / Swift.max(spatial, 1))) { r in
            for row in r {
                let c = row % channels
                let k = gamma[c] * invStd[c] / m, mu = mean[c], s = invStd[c]
                let sd = sumDy[c], sdx = sumDyXhat[c]
                let (px, pdy, pdx) = (x + row * spatial, dy + row * spatial, dx + row * spatial)
                for i in 0..<spatial {
                    let xhat = (px[i] - mu) * s
                    pdx[i] = k * (m * pdy[i] - sd - xhat * sdx)
                }
            }
        }
    }
}
