import Foundation

/// The decomposed relative-position terms of a fused attention call, as raw pointers:
/// height [B, qh, qw, kh] and width [B, qh, qw, kw] (segment_anything `add_decomposed_rel_pos`).
public struct RelativePositionTables {
    public var height: UnsafePointer<Float>
    public var width: UnsafePointer<Float>
    public var keyHeight: Int
    public var keyWidth: Int

    /// Tables for keys laid out as a keyHeight × keyWidth grid (S = keyHeight · keyWidth).
    public init(height: UnsafePointer<Float>, width: UnsafePointer<Float>, keyHeight: Int, keyWidth: Int) {
        self.height = height
        self.width = width
        self.keyHeight = keyHeight
        self.keyWidth = keyWidth
    }
}

extension Kernels {
    /// out = softmax(q·kᵀ·scale + bias) · v without materialising the L×S scores: for each tile of
    /// `queryTile` queries, keys are visited in tiles, scores come from one sgemm, the relative-
    /// position terms height[b, i, j, kr] + width[b, i, j, kc] of key (kr, kc) are added, and an
    /// online softmax keeps a running maximum m and sum l per query so that the output tile is
    /// rescaled by exp(m_old - m_new) whenever the maximum grows (Milakov & Gimelshein 2018;
    /// FlashAttention, Dao et al. 2022, Alg. 1). Memory: O(queryTile · (keyTile + Dv)) per thread.
    ///
    /// - Parameters: q [B, L, D], k [B, S, D], v [B, S, Dv], out [B, L, Dv].
    /// Work is split over B × query tiles; tiles are sized so each sgemm is small enough for
    /// OpenBLAS to run it on the calling thread (`singleThreadedGemmSize`).
    public static func fusedAttention(
        q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>,
        batch: Int, queries: Int, keys: Int, depth: Int, valueDepth: Int, scale: Float,
        relativePosition bias: RelativePositionTables?, queryTile: Int = 64, keyTile: Int? = nil
    ) {
        if batch == 0 || queries == 0 || valueDepth == 0 { return }
        if keys == 0 {
            out.update(repeating: .nan, count: batch * queries * valueDepth)
            return
        }
        let tq = Swift.max(1, Swift.min(queryTile, queries))
        let tk = Swift.max(1, Swift.min(keys, keyTile ?? Swift.min(512, Swift.max(16, singleThreadedGemmSize / (tq * Swift.max(depth, valueDepth, 1))))))
        let tiles = (queries + tq - 1) / tq
        parallelFor(batch * tiles) { range in
            let scores = UnsafeMutablePointer<Float>.allocate(capacity: tq * tk)
            let acc = UnsafeMutablePointer<Float>.allocate(capacity: tq * valueDepth)
            let runningMax = UnsafeMutablePointer<Float>.allocate(capacity: tq)
            let runningSum = UnsafeMutablePointer<Float>.allocate(capacity: tq)
            defer {
                scores.deallocate()
                acc.deallocate()
                runningMax.deallocate()
                runningSum.deallocate()
            }
            for item in range {
                let b = item / tiles, q0 = (item % tiles) * tq, rows = Swift.min(tq, queries - q0)
                acc.update(repeating: 0, count: rows * valueDepth)
                runningMax.update(repeating: -.infinity, count: rows)
                runningSum.update(repeating: 0, count: rows)
                let qTile = q + (b * queries + q0) * depth
                var s0 = 0
                while s0 < keys {
                    let cols = Swift.min(tk, keys - s0)
                    gemm(
                        transB: true, m: rows, n: cols, k: depth, alpha: scale, a: qTile, lda: depth,
                        b: k + (b * keys + s0) * depth, ldb: depth, c: scores, ldc: tk)
                    for r in 0..<rows {
                        let row = scores + r * tk
                        if let bias {
                            let query = b * queries + q0 + r
                            let h = bias.height + query * bias.keyHeight, w = bias.width + query * bias.keyWidth
                            var kr = s0 / bias.keyWidth, kc = s0 % bias.keyWidth
                            for c in 0..<cols {
                                row[c] += h[kr] + w[kc]
                                kc += 1
                                if kc == bias.keyWidth { kc = 0; kr += 1 }
                            }
                        }
                        var best = row[0]
                        for c in 1..<Swift.max(cols, 1) { best = Swift.max(best, row[c]) }
                        let newMax = Swift.max(runningMax[r], best)
                        let correction = expf(runningMax[r] - newMax)
                        var total: Float = 0
                        for c in 0..<cols {
                            let e = expf(row[c] - newMax)
                            row[c] = e
                            total += e
                        }
                        runningSum[r] = runningSum[r] * correction + total
                        runningMax[r] = newMax
                        if correction != 1 {
                            let a = acc + r * valueDepth
                            for d in 0..<valueDepth { a[d] *= correction }
                        }
                    }
                    gemm(
                        m: rows, n: valueDepth, k: cols, a: scores, lda: tk, b: v + (b * keys + s0) * valueDepth,
                        ldb: valueDepth, beta: 1, c: acc, ldc: valueDepth)
                    s0 += cols
                }
                let o = out + (b * queries + q0) * valueDepth
                for r in 0..<rows {
                    let inverse = 1 / runningSum[r]
                    let a = acc + r * valueDepth, dst = o + r * valueDepth
                    for d in 0..<valueDepth { dst[d] = a[d] * inverse }
                }
            }
        }
    }
}
