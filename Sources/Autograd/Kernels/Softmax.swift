import CKernels
import Foundation

// The raw (log-)softmax of `Tensor.softmax` / `logSoftmax` (Ops/Tensor+Softmax.swift).

extension Kernels {
    /// (Log-)softmax over the middle axis of an (outer, n, inner) layout. The inner axis is the
    /// contiguous one (pixels of NCHW), so every pass runs along it.
    public static func softmax(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, split: (outer: Int, size: Int, inner: Int), log: Bool
    ) {
        let (outer, n, inner) = split
        if inner == 1 {
            softmaxRows(x, y, rows: outer, length: n, log: log)
            return
        }
        parallelFor(outer) { r in
            var best = [Float](repeating: 0, count: inner), total = [Float](repeating: 0, count: inner)
            for o in r {
                let src = x + o * n * inner, dst = y + o * n * inner
                for i in 0..<inner { best[i] = src[i]; total[i] = 0 }
                for k in 1..<Swift.max(n, 1) { for i in 0..<inner { best[i] = Swift.max(best[i], src[k * inner + i]) } }
                for k in 0..<n {
                    for i in 0..<inner {
                        let e = expf(src[k * inner + i] - best[i])
                        dst[k * inner + i] = e
                        total[i] += e
                    }
                }
                if log {
                    for i in 0..<inner { total[i] = logf(total[i]) + best[i] }
                    for k in 0..<n { for i in 0..<inner { dst[k * inner + i] = src[k * inner + i] - total[i] } }
                } else {
                    for i in 0..<inner { total[i] = 1 / total[i] }
                    for k in 0..<n { for i in 0..<inner { dst[k * inner + i] *= total[i] } }
                }
            }
        }
    }

    /// Backward of `softmax`: y is the forward output (softmax, or log-softmax when `log`).
    public static func softmaxBackward(
        dy: UnsafePointer<Float>, y: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>,
        split: (outer: Int, size: Int, inner: Int), log: Bool
    ) {
        let (outer, n, inner) = split
        if inner == 1 {
            // Rows along the last axis (attention scores): one pass for the dot, one for dx.
            parallelFor(outer, minimumPerThread: Swift.max(1, 4096 / Swift.max(n, 1))) { r in
                for o in r {
                    let g = dy + o * n, p = y + o * n, d = dx + o * n
                    var dot: Float = 0
                    if log {
                        for k in 0..<n { dot += g[k] }
                        for k in 0..<n { d[k] = g[k] - expf(p[k]) * dot }
                    } else {
                        for k in 0..<n { dot += g[k] * p[k] }
                        for k in 0..<n { d[k] = p[k] * (g[k] - dot) }
                    }
                }
            }
            return
        }
        parallelFor(outer) { r in
            var dot = [Float](repeating: 0, count: inner)
            for o in r {
                let base = o * n * inner
                for i in 0..<inner { dot[i] = 0 }
                for k in 0..<n {
                    for i in 0..<inner {
                        let j = base + k * inner + i
                        dot[i] += log ? dy[j] : dy[j] * y[j]
                    }
                }
                for k in 0..<n {
                    for i in 0..<inner {
                        let j = base + k * inner + i
                        dx[j] = log ? dy[j] - expf(y[j]) * dot[i] : y[j] * (dy[j] - dot[i])
                    }
                }
            }
        }
    }

    /// Softmax of contiguous rows (the last axis): the same passes as the strided form, each a
    /// plain loop over one row.
    static func softmaxRows(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, rows: Int, length n: Int, log: Bool) {
        if n == 0 { return }
        parallelFor(rows, minimumPerThread: Swift.max(1, 4096 / n)) { r in
            if !log {
                // Eight lanes at a time (`wsss_softmax_rows`, exponentials to ~2 ulp): libm's
                // scalar expf was most of the softmax time in attention, and rows shorter than
                // eight take one masked vector each.
                wsss_softmax_rows(x + r.lowerBound * n, y + r.lowerBound * n, r.count, n)
                return
            }
            for o in r {
                let src = x + o * n, dst = y + o * n
                let best = maximum(src, count: n)
                var total: Float = 0
                for k in 0..<n {
                    let e = expf(src[k] - best)
                    dst[k] = e
                    total += e
                }
                let shift = logf(total) + best
                for k in 0..<n { dst[k] = src[k] - shift }
            }
        }
    }
}
