import CKernels
import Foundation

extension Kernels {
    /// Layer normalisation over the middle axis of an (outer, n, inner) layout: for every
    /// (o, i), the n values x[o, :, i] are normalised with their mean and biased variance,
    /// y = (x - μ) / √(σ² + ε) · weight + bias. inner = 1 is torch F.layer_norm over the last
    /// axis; (N, C, H·W) is SAM's LayerNorm2d. Writes μ and 1/√(σ² + ε) per (o, i) for backward.
    public static func layerNorm(
        _ x: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>,
        _ y: UnsafeMutablePointer<Float>, mean: UnsafeMutablePointer<Float>, inverseStd: UnsafeMutablePointer<Float>,
        split: (outer: Int, size: Int, inner: Int), epsilon: Float
    ) {
        let (outer, n, inner) = split
        let blocks = (inner + normBlock - 1) / normBlock
        parallelFor(outer * blocks, minimumPerThread: Swift.max(1, 4096 / Swift.max(n * Swift.min(inner, normBlock), 1))) {
            range in
            var sum = [Float](repeating: 0, count: normBlock), sq = [Float](repeating: 0, count: normBlock)
            for item in range {
                let o = item / blocks, lo = (item % blocks) * normBlock, hi = Swift.min(lo + normBlock, inner)
                let width = hi - lo
                let src = x + o * n * inner + lo, dst = y + o * n * inner + lo
                if inner == 1 {
                    // A contiguous row: two passes (mean, then squared deviations) for accuracy,
                    // in sixteen lanes (CKernels; the scalar sums were a chain of dependent adds).
                    wsss_layer_norm_row(src, weight, bias, n, epsilon, dst, mean + o, inverseStd + o)
                    continue
                }
                for i in 0..<width { sum[i] = 0; sq[i] = 0 }
                for k in 0..<n { let row = src + k * inner; for i in 0..<width { sum[i] += row[i] } }
                for i in 0..<width { sum[i] /= Float(n) }
                for k in 0..<n {
                    let row = src + k * inner
                    for i in 0..<width { let d = row[i] - sum[i]; sq[i] += d * d }
                }
                for i in 0..<width { sq[i] = 1 / (sq[i] / Float(n) + epsilon).squareRoot() }
                for k in 0..<n {
                    let row = src + k * inner, out = dst + k * inner
                    let w = weight[k], b = bias[k]
                    for i in 0..<width { out[i] = (row[i] - sum[i]) * sq[i] * w + b }
                }
                for i in 0..<width {
                    mean[o * inner + lo + i] = sum[i]
                    inverseStd[o * inner + lo + i] = sq[i]
                }
            }
        }
    }

    /// Gradients of `layerNorm` with x̂ = (x - μ)·r and g = dy·weight:
    /// dx = r · (g - mean(g) - x̂ · mean(g · x̂)) over the normalised axis; dWeight = Σ dy·x̂ and
    /// dBias = Σ dy over everything else. Any output may be nil.
    public static func layerNormBackward(
        _ x: UnsafePointer<Float>, weight: UnsafePointer<Float>, mean: UnsafePointer<Float>,
        inverseStd: UnsafePointer<Float>, dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>?,
        dWeight: UnsafeMutablePointer<Float>?, dBias: UnsafeMutablePointer<Float>?,
        split: (outer: Int, size: Int, inner: Int)
    ) {
        let (outer, n, inner) = split
        if let dx {
            let blocks = (inner + normBlock - 1) / normBlock
            parallelFor(outer * blocks, minimumPerThread: Swift.max(1, 4096 / Swift.max(n * Swift.min(inner, normBlock), 1))) {
                range in
                var mg = [Float](repeating: 0, count: normBlock), mgx = [Float](repeating: 0, count: normBlock)
                for item in range {
                    let o = item / blocks, lo = (item % blocks) * normBlock, hi = Swift.min(lo + normBlock, inner)
                    let width = hi - lo, base = o * n * inner + lo
                    let mu = mean + o * inner + lo, r = inverseStd + o * inner + lo
                    for i in 0..<width { mg[i] = 0; mgx[i] = 0 }
                    for k in 0..<n {
                        let xr = x + base + k * inner, gr = dy + base + k * inner, w = weight[k]
                        for i in 0..<width {
                            let g = gr[i] * w
                            mg[i] += g
                            mgx[i] += g * (xr[i] - mu[i]) * r[i]
                        }
                    }
                    for i in 0..<width { mg[i] /= Float(n); mgx[i] /= Float(n) }
                    for k in 0..<n {
                        let xr = x + base + k * inner, gr = dy + base + k * inner, out = dx + base + k * inner
                        let w = weight[k]
                        for i in 0..<width {
                            let xhat = (xr[i] - mu[i]) * r[i]
                            out[i] = r[i] * (gr[i] * w - mg[i] - xhat * mgx[i])
                        }
                    }
                }
            }
        }
        if dWeight == nil && dBias == nil { return }
        parallelFor(n, minimumPerThread: 8) { range in
            for k in range {
                var sw = 0.0, sb = 0.0
                for o in 0..<outer {
                    let xr = x + (o * n + k) * inner, gr = dy + (o * n + k) * inner
                    let mu = mean + o * inner, r = inverseStd + o * inner
                    var pw: Float = 0, pb: Float = 0
                    for i in 0..<inner {
                        pw += gr[i] * (xr[i] - mu[i]) * r[i]
                        pb += gr[i]
                    }
                    sw += Double(pw)
                    sb += Double(pb)
                }
                dWeight?[k] = Float(sw)
                dBias?[k] = Float(sb)
            }
        }
    }

    /// Pixels normalised together per work item (bounds the per-thread scratch).
    static let normBlock = 256
}
