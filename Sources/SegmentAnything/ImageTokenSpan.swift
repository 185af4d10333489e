import Autograd
import Layers

// The first transposed convolution of the mask decoder's upscaling, taken through the few
// directions each prompt adds to the shared image tokens (docs/notes/sam-generator-plan.md, item 2).

extension TwoWayTransformer {
    /// How each prompt's image tokens are made, recorded by the blocks without a tape. A block
    /// changes the image tokens only by its image→token attention and norm: with keys k₋₁ the
    /// shared tokens (batch 1), block l makes x_l = k_{l−1} + b_l + A_l V_l (A_l the [hw, heads·n]
    /// probabilities over the prompt's n tokens, V_l those tokens' values through each head's
    /// output columns, b_l the output bias) and k_l = γ_l ⊙ (x_l − μ_l)·r_l + β_l. So any linear
    /// map of a prompt's final image tokens is the shared tokens' map scaled per token plus
    /// heads·n + 2 coefficients per block and token (`MaskDecoder.masksFromTrace`).
    final class ImageTokenTrace {
        /// One block's image→token attention and norm.
        struct Level {
            /// Batch b's token t reads its heads·n probabilities at b·batchStride + t·rowStride.
            let probabilities: Tensor
            let batchStride: Int
            let rowStride: Int
            /// [B, heads·n, C]: the prompt tokens' values through each head's output columns.
            let values: Tensor
            let outputBias: Tensor?
            /// The norm's statistics, [B·hw] each.
            let mean: TensorStorage
            let inverseStd: TensorStorage
            let norm: LayerNorm
        }

        /// The image tokens before the first block, [1, hw, C].
        private(set) var initial: Tensor?
        private(set) var levels: [Level] = []
        /// False once a block took a path that records nothing.
        private(set) var isValid = true
        private var pending: (probabilities: Tensor, batchStride: Int, rowStride: Int, values: Tensor, bias: Tensor?)?

        func start(_ keys: Tensor) {
            if keys.shape[0] == 1 { initial = keys } else { invalidate() }
        }

        func invalidate() {
            isValid = false
            pending = nil
        }

        /// The image→token attention of the current block (the few-keys paths).
        func attended(probabilities: Tensor, batchStride: Int, rowStride: Int, values: Tensor, outputBias: Tensor?) {
            pending = (probabilities, batchStride, rowStride, values, outputBias)
        }

        /// `norm(x)` for the block's x = residual + attention, recording the statistics: the same
        /// kernel and values as `norm(x)`.
        func normalise(_ x: Tensor, _ norm: LayerNorm) -> Tensor {
            guard isValid, let attention = pending, x.rank == 3 else {
                invalidate()
                return norm(x)
            }
            pending = nil
            let rows = x.shape[0] * x.shape[1]
            let y = Tensor(uninitialized: x.shape)
            let mean = TensorStorage(count: rows, zeroed: false), inverseStd = TensorStorage(count: rows, zeroed: false)
            Kernels.layerNorm(
                x.storage.base, weight: norm.weight.storage.base, bias: norm.bias.storage.base, y.storage.base,
                mean: mean.base, inverseStd: inverseStd.base, split: (rows, x.shape[2], 1), epsilon: norm.epsilon)
            levels.append(
                Level(
                    probabilities: attention.probabilities, batchStride: attention.batchStride,
                    rowStride: attention.rowStride, values: attention.values, outputBias: attention.bias, mean: mean,
                    inverseStd: inverseStd, norm: norm))
            return y
        }
    }
}

extension MaskDecoder {
    /// `masksByTokenRows` for the traced batch's prompts `prompts`, with the first transposed
    /// convolution taken through the trace instead of each prompt's image tokens. With
    /// G_D = W (the convolution as [C, (ky, kx, o)]) and G_l = diag(γ_l) G_{l+1}, the final tokens'
    /// product is
    ///
    ///     k_{D−1} W = ρ₀ (k₋₁ G₀) + Σ_l ρ_l [A_l (V_l G_l) − μ_l 1ᵀG_l + (b_l + β_{l−1}) G_l] + β_{D−1} W
    ///
    /// with ρ_l = r_l ⋯ r_{D−1} per token (β₋₁ = 0): the shared tokens' product once per call,
    /// then per prompt a [hw, Σ(heads·n + 2)] · [Σ(heads·n + 2), 4·C/4] product — for SAM's two
    /// blocks k = 116 instead of 256 (4096×116×256 multiply-adds per prompt instead of
    /// 4096×256×256). The same sums regrouped (rounding-level differences; `masksByTokenRows`
    /// on the traced image tokens is the oracle).
    /// - Parameters: hyperIn [prompts.count, M, C/8]; prompts: indices into the traced batch.
    func masksFromTrace(
        hyperIn: Tensor, trace: TwoWayTransformer.ImageTokenTrace, prompts: [Int], height h: Int, width w: Int
    ) -> Tensor {
        let levels = trace.levels
        guard let initial = trace.initial, trace.isValid, !levels.isEmpty else {
            preconditionFailure("MaskDecoder.masksFromTrace: an incomplete trace")
        }
        precondition(
            hyperIn.shape[0] == prompts.count,
            "MaskDecoder.masksFromTrace: hypernetwork outputs \(hyperIn.shape) for \(prompts.count) prompts")
        let up1 = upscalingLayers.up1
        let (c, hw) = (transformerDim, h * w)
        let w1 = firstUpscalingMatrix
        let n = w1.shape[1]
        var g = [Tensor](repeating: w1, count: levels.count + 1)
        for l in levels.indices.reversed() { g[l] = levels[l].norm.weight.reshaped(to: [c, 1]) * g[l + 1] }
        // Per prompt and block: heads·n rows V_l G_l, then 1ᵀG_l (for −μ_l), then (b_l + β_{l−1}) G_l.
        let widths = levels.map { $0.values.shape[1] + 2 }
        let depth = widths.reduce(0, +)
        let count = prompts.count
        let basis = Tensor(uninitialized: [count, depth, n])
        let ones = Tensor(shape: [1, c], values: [Float](repeating: 1, count: c))
        var offset = 0
        for (l, level) in levels.enumerated() {
            let rows = level.values.shape[1]
            let values = level.values.reshaped(to: [level.values.shape[0], rows * c]).gatheringRows(prompts)
            let products = Tensor.matmul(values.reshaped(to: [count * rows, c]), g[l])  // [count·rows, n]
            var constant = level.outputBias ?? Tensor(zeros: [c])
            if l > 0 { constant = constant + levels[l - 1].norm.bias }
            let extra = Tensor.matmul(Tensor.concat([ones, constant.reshaped(to: [1, c])], alongAxis: 0), g[l])  // [2, n]
            for k in 0..<count {
                let target = basis.storage.base + (k * depth + offset) * n
                target.update(from: products.storage.base + k * rows * n, count: rows * n)
                (target + rows * n).update(from: extra.storage.base, count: 2 * n)
            }
            offset += widths[l]
        }
        let seed = Tensor.matmul(initial.reshaped(to: [hw, c]), g[0])  // [hw, n]
        let constant = Tensor.matmul(levels[levels.count - 1].norm.bias.reshaped(to: [1, c]), w1)
        let upBias = up1.bias.scalars
        for i in 0..<n { constant.storage.base[i] += upBias[i % upBias.count] }
        // Each block's pointers, read per token without touching the tensors' references.
        let reads = levels.enumerated().map { l, level in
            (
                probabilities: UnsafePointer(level.probabilities.storage.base), batchStride: level.batchStride,
                rowStride: level.rowStride, rows: widths[l] - 2, mean: UnsafePointer(level.mean.base),
                inverseStd: UnsafePointer(level.inverseStd.base)
            )
        }
        let (seedBase, constants, basisBase) = (seed.storage.base, constant.storage.base, basis.storage.base)
        // The raw pointers above read these: kept alive until the masks are made.
        return withExtendedLifetime((seed, constant, basis, levels)) {
            upscaledByTokenRows(hyperIn: hyperIn, height: h, width: w, scratchCount: w * depth + levels.count) {
                k, row, pixels, scratch in
                let b = prompts[k]
                let (coefficients, scales) = (scratch, scratch + w * depth)
                for t in 0..<w {
                    let statistic = b * hw + row * w + t
                    var rho: Float = 1
                    for l in reads.indices.reversed() {
                        rho *= reads[l].inverseStd[statistic]
                        scales[l] = rho
                    }
                    var column = coefficients + t * depth
                    for (l, read) in reads.enumerated() {
                        let (rows, scale) = (read.rows, scales[l])
                        let p = read.probabilities + b * read.batchStride + (row * w + t) * read.rowStride
                        for j in 0..<rows { column[j] = scale * p[j] }
                        column[rows] = -scale * read.mean[statistic]
                        column[rows + 1] = scale
                        column += rows + 2
                    }
                    let (target, shared, s0) = (pixels + t * n, seedBase + (row * w + t) * n, scales[0])
                    for i in 0..<n { target[i] = constants[i] + s0 * shared[i] }
                }
                Kernels.gemm(m: w, n: n, k: depth, a: coefficients, b: basisBase + k * depth * n, beta: 1, c: pixels)
            }
        }
    }
}
