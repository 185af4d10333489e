import Foundation

/// The decomposed relative-position terms of a fused attention call, as raw pointers:
/// height [B, qh, qw, kh] and width [B, qh, qw, kw] (segment_anything `add_decomposed_rel_pos`).
public struct RelativePositionTables {
    /// [B, qh, qw, kh]: the term of each query for each key row.
    public var height: UnsafePointer<Float>
    /// [B, qh, qw, kw]: the term of each query for each key column.
    public var width: UnsafePointer<Float>
    /// Key rows kh.
    public var keyHeight: Int
    /// Key columns kw (key s is row s / kw, column s % kw).
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
    /// Work is split over B × query tiles; tiles are sized so each sgemm stays small
    /// (`singleThreadedGemmSize`) and runs on its tile's thread (bf16 products: 512 keys).
    public static func fusedAttention(
        q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>,
        batch: Int, queries: Int, keys: Int, depth: Int, valueDepth: Int, scale: Float,
        relativePosition bias: RelativePositionTables?, queryTile: Int = 64, keyTile: Int? = nil
    ) {
        if batch == 0 || queries == 0 || valueDepth == 0 { return }
        if keys == 0 {
            // As the composed form: an empty softmax times an empty value matrix is 0.
            out.update(repeating: 0, count: batch * queries * valueDepth)
            return
        }
        let tq = Swift.max(1, Swift.min(queryTile, queries))
        // Under bf16 products our kernel packs both operands per product: longer key tiles
        // amortise that and the online softmax's rescaling (a tile of 64 queries × 512 keys is
        // 128 KB of scores, within a core's cache).
        let fp32Tile = Swift.min(512, Swift.max(16, singleThreadedGemmSize / (tq * Swift.max(depth, valueDepth, 1))))
        let tk = Swift.max(1, Swift.min(keys, keyTile ?? (productArithmetic != .fp32 ? 512 : fp32Tile)))
        let tiles = (queries + tq - 1) / tq
        // kᵀ [B, D, S] once (O(input) memory): q·kᵀ tiles are then plain NN products, which
        // OpenBLAS runs with its small-matrix kernel and no packing of either operand.
        let keysTransposed = TensorStorage(count: batch * keys * depth, zeroed: false)
        permute(k, keysTransposed.base, shape: [batch, keys, depth], axes: [0, 2, 1])
        let kT = UnsafePointer(keysTransposed.base)
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
                        m: rows, n: cols, k: depth, alpha: scale, a: qTile, lda: depth,
                        b: kT + b * depth * keys + s0, ldb: keys, c: scores, ldc: tk)
                    for r in 0..<rows {
                        let row = scores + r * tk
                        if let bias {
                            // Keys s0..<s0+cols cover runs of whole or partial key rows kr:
                            // add height[kr] to the run and width[kc] element-wise.
                            let query = b * queries + q0 + r
                            let h = bias.height + query * bias.keyHeight, w = bias.width + query * bias.keyWidth
                            var c = 0
                            while c < cols {
                                let s = s0 + c, kr = s / bias.keyWidth, kc = s % bias.keyWidth
                                let run = Swift.min(bias.keyWidth - kc, cols - c)
                                let hv = h[kr], dst = row + c, src = w + kc
                                for t in 0..<run { dst[t] += hv + src[t] }
                                c += run
                            }
                        }
                        let newMax = Swift.max(runningMax[r], maximum(row, count: cols))
                        let correction = expf(runningMax[r] - newMax)
                        let total = exponentiate(row, row, count: cols, shift: newMax)
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
