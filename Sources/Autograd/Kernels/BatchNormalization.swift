// The raw batch norm of `Tensor.batchNorm` (Ops/BatchNorm.swift): per-channel statistics, the
// affine map and the gradients over pointers and explicit sizes [batch, channels, spatial].

extension Kernels {
    /// Training-mode statistics of x [batch, channels, spatial]: `mean` and `invStd` =
    /// 1/sqrt(biased variance + eps) per channel, and the running buffers moved towards the batch
    /// by `momentum`, the variance unbiased by m/(m-1) as torch.nn.functional.batch_norm does.
    public static func batchNormTrainingStatistics(
        x: UnsafePointer<Float>, batch: Int, channels: Int, spatial: Int, momentum: Float, eps: Float,
        runningMean: UnsafeMutablePointer<Float>, runningVar: UnsafeMutablePointer<Float>,
        mean: UnsafeMutablePointer<Float>, invStd: UnsafeMutablePointer<Float>
    ) {
        let m = batch * spatial
        // `invStd` holds the biased variance until the loop below turns it into 1/sqrt(var + eps).
        channelMoments(x: x, batch: batch, channels: channels, spatial: spatial, mean: mean, variance: invStd)
        for ch in 0..<channels {
            let variance = invStd[ch]
            runningMean[ch] = (1 - momentum) * runningMean[ch] + momentum * mean[ch]
            runningVar[ch] = (1 - momentum) * runningVar[ch] + momentum * variance * Float(m) / Float(m - 1)
            invStd[ch] = 1 / (variance + eps).squareRoot()
        }
    }

    /// Eval or frozen statistics: `mean` = the running mean, `invStd` = 1/sqrt(running var + eps).
    public static func batchNormRunningStatistics(
        runningMean: UnsafePointer<Float>, runningVar: UnsafePointer<Float>, eps: Float, channels: Int,
        mean: UnsafeMutablePointer<Float>, invStd: UnsafeMutablePointer<Float>
    ) {
        for ch in 0..<channels {
            mean[ch] = runningMean[ch]
            invStd[ch] = 1 / (runningVar[ch] + eps).squareRoot()
        }
    }

    /// The affine form of batch norm per channel: scale = γ·invStd, shift = β - mean·scale.
    public static func batchNormScaleAndShift(
        gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>, mean: UnsafePointer<Float>, invStd: UnsafePointer<Float>,
        channels: Int, scale: UnsafeMutablePointer<Float>, shift: UnsafeMutablePointer<Float>
    ) {
        for ch in 0..<channels {
            scale[ch] = gamma[ch] * invStd[ch]
            shift[ch] = beta[ch] - mean[ch] * scale[ch]
        }
    }

    /// Per-channel mean and biased variance of x [batch, channels, spatial] (two passes, Double
    /// sums): `channelSums`, then `channelSquaredDeviations` from the rounded mean.
    public static func channelMoments(
        x: UnsafePointer<Float>, batch: Int, channels: Int, spatial: Int,
        mean: UnsafeMutablePointer<Float>, variance: UnsafeMutablePointer<Float>
    ) {
        let m = Double(batch * spatial)
        let sums = UnsafeMutablePointer<Double>.allocate(capacity: channels)
        defer { sums.deallocate() }
        channelSums(x: x, batch: batch, channels: channels, spatial: spatial, into: sums)
        for c in 0..<channels { mean[c] = Float(sums[c] / m) }
        channelSquaredDeviations(x: x, batch: batch, channels: channels, spatial: spatial, from: mean, into: sums)
        for c in 0..<channels { variance[c] = Float(sums[c] / m) }
    }

    /// Σ x per channel of x [batch, channels, spatial]: each sample's plane summed in Float, the
    /// planes added in Double. Split across processes, the per-process results add up to the
    /// same Double (a sum of a few Floats in Double is exact unless their magnitudes differ by
    /// more than 2^29), which is what lets SyncBatchNorm reproduce one process's statistics.
    public static func channelSums(
        x: UnsafePointer<Float>, batch: Int, channels: Int, spatial: Int, into out: UnsafeMutablePointer<Double>
    ) {
        parallelFor(channels) { r in
            for c in r {
                var s = 0.0
                for n in 0..<batch { s += Double(sum(x + (n * channels + c) * spatial, count: spatial)) }
                out[c] = s
            }
        }
    }

    /// Σ (x − mean[c])² per channel of x [batch, channels, spatial], planes in Float, added in
    /// Double (as `channelSums`).
    public static func channelSquaredDeviations(
        x: UnsafePointer<Float>, batch: Int, channels: Int, spatial: Int, from mean: UnsafePointer<Float>,
        into out: UnsafeMutablePointer<Double>
    ) {
        parallelFor(channels) { r in
            for c in r {
                var v = 0.0
                for n in 0..<batch {
                    v += Double(sumOfSquaredDeviations(x + (n * channels + c) * spatial, count: spatial, from: mean[c]))
                }
                out[c] = v
            }
        }
    }

    /// y = x · scale[c] + shift[c] over x [batch, channels, spatial].
    public static func channelAffine(
        x: UnsafePointer<Float>, scale: UnsafePointer<Float>, shift: UnsafePointer<Float>,
        y: UnsafeMutablePointer<Float>, batch: Int, channels: Int, spatial: Int
    ) {
        channelAffine(x: x, scale: scale, shift: shift, y: y, batch: batch, channels: channels, spatial: spatial, relu: false)
    }

    /// y = max(x · scale[c] + shift[c], 0) per channel of an NCHW tensor: batch norm and ReLU in
    /// one pass (the same values as `channelAffine` followed by `relu`).
    public static func channelAffineReLU(
        x: UnsafePointer<Float>, scale: UnsafePointer<Float>, shift: UnsafePointer<Float>,
        y: UnsafeMutablePointer<Float>, batch: Int, channels: Int, spatial: Int
    ) {
        channelAffine(x: x, scale: scale, shift: shift, y: y, batch: batch, channels: channels, spatial: spatial, relu: true)
    }

    /// The loop of both: inlined into each, so `relu` is a constant there.
    @inline(__always)
    private static func channelAffine(
        x: UnsafePointer<Float>, scale: UnsafePointer<Float>, shift: UnsafePointer<Float>,
        y: UnsafeMutablePointer<Float>, batch: Int, channels: Int, spatial: Int, relu: Bool
    ) {
        parallelFor(batch * channels, minimumPerThread: Swift.max(1, 16384 / Swift.max(spatial, 1))) { r in
            for row in r {
                let a = scale[row % channels], b = shift[row % channels]
                let px = x + row * spatial, py = y + row * spatial
                if relu {
                    for i in 0..<spatial {
                        let v = px[i] * a + b
                        py[i] = v > 0 ? v : 0
                    }
                } else {
                    for i in 0..<spatial { py[i] = px[i] * a + b }
                }
            }
        }
    }

    /// Per-channel Σ dy and Σ dy·(x - mean)·invStd.
    public static func channelGradientSums(
        dy: UnsafePointer<Float>, x: UnsafePointer<Float>, mean: UnsafePointer<Float>, invStd: UnsafePointer<Float>,
        batch: Int, channels: Int, spatial: Int
    ) -> (dy: [Float], dyXhat: [Float]) {
        var raw = [Double](repeating: 0, count: 2 * channels)
        raw.withUnsafeMutableBufferPointer {
            channelGradientSums(
                dy: dy, x: x, mean: mean, batch: batch, channels: channels, spatial: spatial, into: $0.baseAddress!)
        }
        return gradientSums(raw, invStd: invStd, channels: channels)
    }

    /// The raw sums behind `channelGradientSums`, in Double: `out[c]` = Σ dy and
    /// `out[channels + c]` = Σ dy·(x − mean) (not yet times invStd), each sample's plane in
    /// Float and the planes added in Double — so sums over processes add up exactly (SyncBatchNorm).
    public static func channelGradientSums(
        dy: UnsafePointer<Float>, x: UnsafePointer<Float>, mean: UnsafePointer<Float>,
        batch: Int, channels: Int, spatial: Int, into out: UnsafeMutablePointer<Double>
    ) {
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
                out[c] = a
                out[channels + c] = b
            }
        }
    }

    /// (Σ dy, Σ dy·x̂) in Float from the raw Double sums of `channelGradientSums(…into:)`.
    public static func gradientSums(_ raw: [Double], invStd: UnsafePointer<Float>, channels: Int) -> (
        dy: [Float], dyXhat: [Float]
    ) {
        precondition(raw.count == 2 * channels, "gradientSums: \(raw.count) sums for \(channels) channels")
        return ((0..<channels).map { Float(raw[$0]) }, (0..<channels).map { Float(raw[channels + $0]) * invStd[$0] })
    }

    /// Input gradient of training-mode batch norm:
    /// dx = γ·invStd/M · (M·dy - Σdy - x̂·Σ(dy·x̂)), where M is the number of values the
    /// statistics were taken over (`count`: batch·spatial in one process; over every process for
    /// SyncBatchNorm, with the sums over every process too).
    public static func batchNormInputGradient(
        dy: UnsafePointer<Float>, x: UnsafePointer<Float>, mean: UnsafePointer<Float>, invStd: UnsafePointer<Float>,
        gamma: UnsafePointer<Float>, sumDy: [Float], sumDyXhat: [Float], count: Int, dx: UnsafeMutablePointer<Float>,
        batch: Int, channels: Int, spatial: Int
    ) {
        let m = Float(count)
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
