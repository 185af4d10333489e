import Autograd
import Layers

// segment_anything/modeling/transformer.py.

/// The mask decoder's transformer (transformer.py, `TwoWayTransformer`): prompt tokens and image
/// tokens attend to each other in `depth` blocks, then the tokens attend to the image once more.
/// Keys: `layers.<i>.*`, `final_attn_token_to_image.*`, `norm_final_attn.*`.
public final class TwoWayTransformer: Module {
    /// Number of two-way blocks.
    public let depth: Int
    /// Token width.
    public let embeddingDim: Int
    /// Attention heads.
    public let numHeads: Int
    /// Hidden width of the token MLPs.
    public let mlpDim: Int
    /// The blocks; the first skips the query position encoding in self-attention.
    public let layers: ModuleList<TwoWayAttentionBlock>
    /// The last tokens → image attention.
    public let finalAttnTokenToImage: TwoWayTransformer.Attention
    /// After it (eps 1e-5).
    public let normFinalAttn: LayerNorm

    /// The transformer of `_build_sam` (ReLU MLPs, cross-attention at half width); weights not initialised.
    public init(depth: Int, embeddingDim: Int, numHeads: Int, mlpDim: Int, attentionDownsampleRate: Int = 2) {
        self.depth = depth
        self.embeddingDim = embeddingDim
        self.numHeads = numHeads
        self.mlpDim = mlpDim
        layers = ModuleList(
            (0..<depth).map { i in
                TwoWayAttentionBlock(
                    embeddingDim: embeddingDim, numHeads: numHeads, mlpDim: mlpDim,
                    attentionDownsampleRate: attentionDownsampleRate, skipFirstLayerPE: i == 0)
            })
        finalAttnTokenToImage = Attention(embeddingDim: embeddingDim, numHeads: numHeads, downsampleRate: attentionDownsampleRate)
        normFinalAttn = LayerNorm(embeddingDim)
    }

    public var namedChildren: [(String, Module)] {
        [("layers", layers), ("final_attn_token_to_image", finalAttnTokenToImage), ("norm_final_attn", normFinalAttn)]
    }

    /// - Parameters:
    ///   - imageEmbedding: [B, C, h, w], or [1, C, h, w] shared by the B prompts (what the
    ///     reference's repeated embedding holds when the dense prompt is the no-mask one).
    ///   - imagePE: the position encoding of the image, [B or 1, C, h, w] (broadcast over B).
    ///   - pointEmbedding: the query tokens, [B, N, C].
    ///   - outputTokens: without a tape, only the first this many tokens go through the final
    ///     attention and come back (the decoder reads its IoU and mask tokens, not the prompt's);
    ///     nil for all N.
    /// - Returns: the processed tokens [B, N (or outputTokens), C] and image tokens [B, h·w, C].
    public func callAsFunction(imageEmbedding: Tensor, imagePE: Tensor, pointEmbedding: Tensor, outputTokens: Int? = nil)
        -> (queries: Tensor, keys: Tensor)
    {
        let encoded = blocks(imageEmbedding: imageEmbedding, imagePE: imagePE, pointEmbedding: pointEmbedding)
        var (queries, keys) = (encoded.queries, encoded.keys)
        let keyPE = encoded.keyPE
        if let n = outputTokens, !GradMode.isEnabled, n < queries.shape[1] {
            queries = finalAttention(
                tokens: 0..<n, queries: queries, keys: keys, keysWithPE: keys + keyPE, pointEmbedding: pointEmbedding)
        } else {
            let q = queries + pointEmbedding
            queries = normFinalAttn(queries + finalAttnTokenToImage(q: q, k: keys + keyPE, v: keys))
        }
        if keys.shape[0] != queries.shape[0] { keys = keys.expanded(to: [queries.shape[0]] + keys.shape.dropFirst()) }
        return (queries, keys)
    }

    /// The two-way blocks without the final attention: the query tokens [B, N, C], the image
    /// tokens [B (or 1 with no block), hw, C] and the image's position encoding as tokens [1, hw, C].
    /// With `shared` (inference, every prompt on one image embedding), its tokens and first-block
    /// projections stand for `imageEmbedding`'s and `imagePE`'s, which are then not read.
    /// With `trace` (inference), each block's image→token attention and norm are recorded in it.
    func blocks(
        imageEmbedding: Tensor, imagePE: Tensor, pointEmbedding: Tensor, shared: SharedImage? = nil,
        trace: ImageTokenTrace? = nil
    ) -> (queries: Tensor, keys: Tensor, keyPE: Tensor) {
        let keyPE = shared?.keyPE ?? Self.tokens(imagePE)
        var queries = pointEmbedding
        var keys = shared?.keys ?? Self.tokens(imageEmbedding)
        trace?.start(keys)
        for (index, layer) in layers.elements.enumerated() {
            (queries, keys) = layer(
                queries: queries, keys: keys, queryPE: pointEmbedding, keyPE: keyPE, shared: index == 0 ? shared : nil,
                trace: trace)
        }
        return (queries, keys, keyPE)
    }

    /// [B, C, H, W] → [B, H·W, C].
    static func tokens(_ x: Tensor) -> Tensor {
        x.reshaped(to: [x.shape[0], x.shape[1], x.shape[2] * x.shape[3]]).permuted([0, 2, 1])
    }

    /// The first block's image side when every prompt of a call shares it (one image embedding,
    /// no mask input): the image tokens and their position encoding as tokens [1, hw, C], their
    /// sum, and the three projections of them the first block makes (token → image keys and
    /// values, image → token queries). The same for every decoder call on one image, so the
    /// predictor computes it once per image instead of once per call of 8 prompts.
    public struct SharedImage {
        let keys: Tensor
        let keyPE: Tensor
        let keysWithPE: Tensor
        let tokenToImageKeys: Tensor
        let tokenToImageValues: Tensor
        let imageToTokenQueries: Tensor
    }

    /// `SharedImage` of an image embedding (dense prompt embedding included) [1, C, h, w] and its
    /// position encoding [1, C, h, w].
    public func sharedImage(imageEmbedding: Tensor, imagePE: Tensor) -> SharedImage {
        precondition(
            imageEmbedding.rank == 4 && imageEmbedding.shape[0] == 1 && imagePE.shape == imageEmbedding.shape,
            "sharedImage: one embedding [1, C, h, w] and its position encoding, got \(imageEmbedding.shape) and \(imagePE.shape)")
        return withoutGrad {
            let keys = Self.tokens(imageEmbedding), keyPE = Self.tokens(imagePE)
            let keysWithPE = keys + keyPE
            let first = layers.elements[0]
            return SharedImage(
                keys: keys, keyPE: keyPE, keysWithPE: keysWithPE,
                tokenToImageKeys: first.crossAttnTokenToImage.kProj(keysWithPE),
                tokenToImageValues: first.crossAttnTokenToImage.vProj(keys),
                imageToTokenQueries: first.crossAttnImageToToken.qProj(keysWithPE))
        }
    }

    /// The final token → image attention and its norm for the query tokens `tokens` only
    /// (inference): each query attends on its own and is normalised on its own, so any subset
    /// gets the values the whole set would. `keysWithPE` is `keys + keyPE`; `pointEmbedding` the
    /// query tokens' position encoding as given to the blocks. Returns [B, tokens.count, C].
    func finalAttention(tokens: Range<Int>, queries: Tensor, keys: Tensor, keysWithPE: Tensor, pointEmbedding: Tensor)
        -> Tensor
    {
        let chosen = queries.slice(alongAxis: 1, tokens)
        let q = chosen + pointEmbedding.slice(alongAxis: 1, tokens)
        return normFinalAttn(chosen + finalAttnTokenToImage(q: q, k: keysWithPE, v: keys))
    }
}

/// One two-way block (transformer.py, `TwoWayAttentionBlock`): token self-attention, tokens →
/// image cross-attention, token MLP (ReLU), image → tokens cross-attention, each followed by a
/// residual LayerNorm. The first block's self-attention sees the tokens without their position
/// encoding and has no residual (`skip_first_layer_pe`).
/// Keys: `self_attn`, `norm1`, `cross_attn_token_to_image`, `norm2`, `mlp`, `norm3`, `norm4`,
/// `cross_attn_image_to_token`.
public final class TwoWayAttentionBlock: Module {
    /// Token self-attention (full width).
    public let selfAttn: TwoWayTransformer.Attention
    /// After each sub-layer's residual, in order (eps 1e-5).
    public let norm1: LayerNorm
    /// Tokens attend to the image.
    public let crossAttnTokenToImage: TwoWayTransformer.Attention
    /// See `norm1`.
    public let norm2: LayerNorm
    /// Token MLP, ReLU.
    public let mlp: MLPBlock
    /// See `norm1`.
    public let norm3: LayerNorm
    /// After the image tokens' residual.
    public let norm4: LayerNorm
    /// The image attends to the tokens.
    public let crossAttnImageToToken: TwoWayTransformer.Attention
    /// Whether self-attention sees the bare tokens and has no residual (first block).
    public let skipFirstLayerPE: Bool

    /// A block of the reference's sizes; weights not initialised.
    public init(
        embeddingDim: Int, numHeads: Int, mlpDim: Int = 2048, attentionDownsampleRate: Int = 2, skipFirstLayerPE: Bool = false
    ) {
        selfAttn = TwoWayTransformer.Attention(embeddingDim: embeddingDim, numHeads: numHeads)
        norm1 = LayerNorm(embeddingDim)
        crossAttnTokenToImage = TwoWayTransformer.Attention(
            embeddingDim: embeddingDim, numHeads: numHeads, downsampleRate: attentionDownsampleRate)
        norm2 = LayerNorm(embeddingDim)
        mlp = MLPBlock(embeddingDim: embeddingDim, mlpDim: mlpDim, activation: .relu)
        norm3 = LayerNorm(embeddingDim)
        norm4 = LayerNorm(embeddingDim)
        crossAttnImageToToken = TwoWayTransformer.Attention(
            embeddingDim: embeddingDim, numHeads: numHeads, downsampleRate: attentionDownsampleRate)
        self.skipFirstLayerPE = skipFirstLayerPE
    }

    public var namedChildren: [(String, Module)] {
        [
            ("self_attn", selfAttn), ("norm1", norm1), ("cross_attn_token_to_image", crossAttnTokenToImage), ("norm2", norm2),
            ("mlp", mlp), ("norm3", norm3), ("norm4", norm4), ("cross_attn_image_to_token", crossAttnImageToToken),
        ]
    }

    /// queries [B, N, C], keys [B, hw, C], their position encodings (broadcastable) → both updated.
    /// keys may be [1, hw, C], shared by the B queries (one image, B prompts): they come back [B, hw, C].
    /// `shared` (inference): `keys` and `keyPE` are its tokens, and its projections are used
    /// instead of projecting them again. `trace` (inference) records the image→token attention's
    /// probabilities and values and the last norm's statistics.
    public func callAsFunction(
        queries: Tensor, keys: Tensor, queryPE: Tensor, keyPE: Tensor, shared: TwoWayTransformer.SharedImage? = nil
    ) -> (queries: Tensor, keys: Tensor) {
        self(queries: queries, keys: keys, queryPE: queryPE, keyPE: keyPE, shared: shared, trace: nil)
    }

    func callAsFunction(
        queries: Tensor, keys: Tensor, queryPE: Tensor, keyPE: Tensor, shared: TwoWayTransformer.SharedImage?,
        trace: TwoWayTransformer.ImageTokenTrace?
    ) -> (queries: Tensor, keys: Tensor) {
        var queries = queries, keys = keys
        // Self attention block
        if skipFirstLayerPE {
            queries = selfAttn(q: queries, k: queries, v: queries)
        } else {
            let q = queries + queryPE
            queries = queries + selfAttn(q: q, k: q, v: queries)
        }
        queries = norm1(queries)
        // Cross attention block, tokens attending to image embedding
        var q = queries + queryPE
        // keys do not change until norm4, so the reference's second `keys + key_pe` equals this
        // one: computed once (at 64 prompts it is a 268 MB tensor).
        let k = shared?.keysWithPE ?? keys + keyPE
        let attended =
            shared.flatMap {
                crossAttnTokenToImage.attending(q: q, projectedKeys: $0.tokenToImageKeys, projectedValues: $0.tokenToImageValues)
            } ?? crossAttnTokenToImage(q: q, k: k, v: keys)
        queries = norm2(queries + attended)
        // MLP block
        queries = norm3(queries + mlp(queries))
        // Cross attention block, image embedding attending to tokens
        q = queries + queryPE
        let summed = crossAttnImageToToken(
            q: k, k: q, v: queries, residual: keys, projectedQueries: shared?.imageToTokenQueries, trace: trace)
        keys = trace?.normalise(summed, norm4) ?? norm4(summed)
        return (queries, keys)
    }
}

extension TwoWayTransformer {
    /// Multi-head attention whose projections may shrink the width by `downsampleRate`
    /// (transformer.py, `Attention`). Keys: `q_proj`, `k_proj`, `v_proj`, `out_proj`.
    public final class Attention: Module {
        /// Width of the inputs and output.
        public let embeddingDim: Int
        /// embeddingDim / downsampleRate.
        public let internalDim: Int
        /// Heads over the internal width.
        public let numHeads: Int
        /// Projections embeddingDim → internalDim (q, k, v) and back (out).
        public let qProj: Linear
        /// See `qProj`.
        public let kProj: Linear
        /// See `qProj`.
        public let vProj: Linear
        /// See `qProj`.
        public let outProj: Linear

        /// Attention of `numHeads` heads at embeddingDim / downsampleRate; weights not initialised.
        public init(embeddingDim: Int, numHeads: Int, downsampleRate: Int = 1) {
            self.embeddingDim = embeddingDim
            internalDim = embeddingDim / downsampleRate
            self.numHeads = numHeads
            precondition(
                internalDim % numHeads == 0, "Attention: \(numHeads) heads must divide the internal width \(internalDim)")
            qProj = Linear(inputFeatures: embeddingDim, outputFeatures: internalDim)
            kProj = Linear(inputFeatures: embeddingDim, outputFeatures: internalDim)
            vProj = Linear(inputFeatures: embeddingDim, outputFeatures: internalDim)
            outProj = Linear(inputFeatures: internalDim, outputFeatures: embeddingDim)
        }

        public var namedChildren: [(String, Module)] {
            [("q_proj", qProj), ("k_proj", kProj), ("v_proj", vProj), ("out_proj", outProj)]
        }

        /// [B, N, C] → [B·heads, N, C/heads] (`_separate_heads`).
        func separateHeads(_ x: Tensor) -> Tensor {
            let (b, n, c) = (x.shape[0], x.shape[1], x.shape[2])
            return x.reshaped(to: [b, n, numHeads, c / numHeads]).permuted([0, 2, 1, 3]).reshaped(to: [
                b * numHeads, n, c / numHeads,
            ])
        }

        /// [B·heads, N, d] → [B, N, heads·d] (`_recombine_heads`).
        func recombineHeads(_ x: Tensor) -> Tensor {
            let (bh, n, d) = (x.shape[0], x.shape[1], x.shape[2])
            return x.reshaped(to: [bh / numHeads, numHeads, n, d]).permuted([0, 2, 1, 3]).reshaped(to: [
                bh / numHeads, n, numHeads * d,
            ])
        }

        /// q [B, Nq, C], k and v [B, Nk, C] → [B, Nq, C]. The reference divides the scores by
        /// sqrt(C/heads); here the scale multiplies them (a rounding-level difference).
        ///
        /// Either side may have batch 1 and be shared by all B of the other (the image tokens of
        /// a batch of prompts on one image, which the reference repeats B times): shared k and v
        /// are projected once and the B·Nq queries attend to them as one set; shared queries are
        /// projected once and read by every batch's attention. Each score and output is the same
        /// sum as with B copies.
        public func callAsFunction(q: Tensor, k: Tensor, v: Tensor) -> Tensor {
            precondition(
                k.shape[0] == v.shape[0] && (q.shape[0] == k.shape[0] || q.shape[0] == 1 || k.shape[0] == 1),
                "Attention: q \(q.shape), k \(k.shape), v \(v.shape) batches neither equal nor 1")
            if k.shape[0] == 1 && q.shape[0] > 1 {
                let (b, n, c) = (q.shape[0], q.shape[1], q.shape[2])
                return self(q: q.reshaped(to: [1, b * n, c]), k: k, v: v).reshaped(to: [b, n, embeddingDim])
            }
            if !GradMode.isEnabled && k.shape[1] * numHeads < internalDim {
                return attendingFewKeys(q: q, k: k, v: v)
            }
            if !GradMode.isEnabled && q.shape[1] * numHeads < internalDim && q.shape[0] == k.shape[0] {
                return attendingFewQueries(q: q, k: k, v: v)
            }
            let (q, k, v) = (separateHeads(qProj(q)), separateHeads(kProj(k)), separateHeads(vProj(v)))
            let scale = 1 / Float(q.shape[2]).squareRoot()
            let out = Tensor.scaledDotProductAttention(query: q, key: k, value: v, scale: scale, relativePosition: nil)
            return outProj(recombineHeads(out))
        }

        /// `residual + self(q: q, k: k, v: v)`, the sum the blocks take after image→token
        /// attention; without a tape and with few keys the residual (and the output bias) seed
        /// the output product instead of costing two more passes over [B, 4096, C].
        /// - Parameter residual: [B or 1, Nq, C] (a shared one is added to every batch).
        /// `projectedQueries`: `qProj(q)` when already computed (a shared q of batch 1).
        public func callAsFunction(q: Tensor, k: Tensor, v: Tensor, residual: Tensor, projectedQueries: Tensor? = nil) -> Tensor {
            self(q: q, k: k, v: v, residual: residual, projectedQueries: projectedQueries, trace: nil)
        }

        /// The residual form; `trace` (inference) records the few-keys path's probabilities and
        /// values, or is invalidated when the general path runs.
        func callAsFunction(
            q: Tensor, k: Tensor, v: Tensor, residual: Tensor, projectedQueries: Tensor?, trace: ImageTokenTrace?
        ) -> Tensor {
            guard
                !GradMode.isEnabled && k.shape[1] * numHeads < internalDim && k.shape[0] == v.shape[0]
                    && (q.shape[0] == k.shape[0] || q.shape[0] == 1)
            else {
                trace?.invalidate()
                return residual + self(q: q, k: k, v: v)
            }
            return attendingFewKeys(q: q, k: k, v: v, residual: residual, projectedQueries: projectedQueries, trace: trace)
        }

        /// `callAsFunction(q:k:v:)` with keys and values shared by every batch ([1, Nk, C]) and
        /// already projected (`kProj(k)`, `vProj(v)`), where that call would take the general
        /// path (no tape, many keys, many queries in all); nil otherwise.
        func attending(q: Tensor, projectedKeys: Tensor, projectedValues: Tensor) -> Tensor? {
            let (b, n, c) = (q.shape[0], q.shape[1], q.shape[2])
            guard
                !GradMode.isEnabled && projectedKeys.shape[0] == 1 && projectedValues.shape == projectedKeys.shape
                    && projectedKeys.shape[1] * numHeads >= internalDim && b * n * numHeads >= internalDim
            else { return nil }
            let queries = separateHeads(qProj(q.reshaped(to: [1, b * n, c])))
            let scale = 1 / Float(queries.shape[2]).squareRoot()
            let out = Tensor.scaledDotProductAttention(
                query: queries, key: separateHeads(projectedKeys), value: separateHeads(projectedValues), scale: scale,
                relativePosition: nil)
            return outProj(recombineHeads(out)).reshaped(to: [b, n, embeddingDim])
        }

        /// `callAsFunction` without a tape when the keys are few (the prompt's 7 tokens seen by
        /// the 4096 image tokens): the output projection of `concat_h(A_h V_h)` is
        /// `Σ_h A_h (V_h W_hᵀ)`, one product of the [Nq, heads·Nk] probabilities with the
        /// [heads·Nk, C] projected values — for SAM's image→token attention 4096×56×256 instead
        /// of 4096×128×256 multiply-adds per prompt, and no [Nq, internal] output. The same sums
        /// regrouped (rounding-level differences). Queries may be shared (batch 1) by B key sets;
        /// otherwise the batches pair up (`attendingFewKeysPerBatch`). With `residual` the result
        /// is `residual + attention` (see `callAsFunction(q:k:v:residual:)`).
        func attendingFewKeys(
            q: Tensor, k: Tensor, v: Tensor, residual: Tensor? = nil, projectedQueries: Tensor? = nil,
            trace: ImageTokenTrace? = nil
        ) -> Tensor {
            let (bq, nq, bk, nk) = (q.shape[0], q.shape[1], k.shape[0], k.shape[1])
            if bq == bk { return attendingFewKeysPerBatch(q: q, k: k, v: v, residual: residual, trace: trace) }
            precondition(bq == 1, "Attention: \(bq) query batches for \(bk) key batches")
            let (heads, d) = (numHeads, internalDim / numHeads)
            let width = bk * heads * nk
            // The shared queries against every batch's keys in one product: the keys laid out
            // block-diagonally, [internal, (batch, head, key)] with head h's column reading only
            // rows h·d ..< (h+1)·d, scaled. Scores [nq, (batch, head, key)]: each (batch, head)
            // softmax is a run of nk, and batch b's probabilities are columns b·heads·nk + ….
            let projected = kProj(k)  // [bk, nk, heads·d]
            let keys = Tensor(zeros: [internalDim, width])
            let scale = 1 / Float(d).squareRoot()
            let (kp, kd) = (projected.storage.base, keys.storage.base)
            for b in 0..<bk {
                for h in 0..<heads {
                    for j in 0..<nk {
                        let column = (b * heads + h) * nk + j
                        for e in 0..<d { kd[(h * d + e) * width + column] = kp[(b * nk + j) * internalDim + h * d + e] * scale }
                    }
                }
            }
            let queries = projectedQueries ?? qProj(q)  // [1, nq, internal]
            let scores = Tensor(uninitialized: [nq, width])
            Kernels.gemm(m: nq, n: width, k: internalDim, a: queries.storage.base, b: kd, c: scores.storage.base)
            let probabilities = scores.reshaped(to: [nq * bk * heads, nk]).softmax(alongAxis: 1)
            let values = projectedValues(v)  // [bk, heads·nk, C]
            trace?.attended(
                probabilities: probabilities, batchStride: heads * nk, rowStride: width, values: values, outputBias: outProj.bias)
            let out = seededOutput(batch: bk, rows: nq, residual: residual)
            let c = embeddingDim
            parallelFor(bk) { range in
                for b in range {
                    Kernels.gemm(
                        m: nq, n: c, k: heads * nk, a: probabilities.storage.base + b * heads * nk, lda: width,
                        b: values.storage.base + b * heads * nk * c, beta: 1, c: out.storage.base + b * nq * c)
                }
            }
            return out
        }

        /// The output of a few-keys attention before its product: the output bias, plus the
        /// residual when there is one (shared by every batch when its batch is 1), [batch, rows, C].
        private func seededOutput(batch: Int, rows: Int, residual: Tensor?) -> Tensor {
            let c = embeddingDim
            let out = Tensor(uninitialized: [batch, rows, c])
            let plane = rows * c
            if let residual {
                precondition(
                    residual.shape == [batch, rows, c] || residual.shape == [1, rows, c],
                    "Attention: residual \(residual.shape) for [\(batch), \(rows), \(c)]")
                let shared = residual.shape[0] == 1
                for b in 0..<batch {
                    (out.storage.base + b * plane).update(from: residual.storage.base + (shared ? 0 : b * plane), count: plane)
                }
                if let bias = outProj.bias {
                    Kernels.addRowVector(out.storage.base, bias.storage.base, rows: batch * rows, columns: c)
                }
            } else if let bias = outProj.bias {
                for r in 0..<(batch * rows) { (out.storage.base + r * c).update(from: bias.storage.base, count: c) }
            } else {
                out.storage.base.initialize(repeating: 0, count: batch * plane)
            }
            return out
        }

        /// The values of the few keys through each head's columns of the output projection,
        /// [b, heads·nk, C] (`v` is [b, nk, C]).
        private func projectedValues(_ v: Tensor) -> Tensor {
            let (b, nk, heads, c) = (v.shape[0], v.shape[1], numHeads, embeddingDim)
            let d = internalDim / heads
            let vh = vProj(v).reshaped(to: [b, nk, heads, d]).permuted([2, 0, 1, 3]).reshaped(to: [heads, b * nk, d])
            let columns = outProj.weight.reshaped(to: [c, heads, d]).permuted([1, 2, 0])  // [heads, d, C]
            return Tensor.matmul(vh, columns).reshaped(to: [heads, b, nk, c]).permuted([1, 0, 2, 3])
                .reshaped(to: [b, heads * nk, c])
        }

        /// Projected rows `x` [b, n, heads·d] taken back through each head's rows of `weight`
        /// [heads·d, C] (a q, k or v projection's): [b, heads·n, C], row (h, i) = x_{i,h} · W_h.
        private func throughHeads(_ x: Tensor, of weight: Tensor) -> Tensor {
            let (b, n, heads, c) = (x.shape[0], x.shape[1], numHeads, weight.shape[1])
            let d = internalDim / heads
            let xh = x.reshaped(to: [b, n, heads, d]).permuted([2, 0, 1, 3]).reshaped(to: [heads, b * n, d])
            return Tensor.matmul(xh, weight.reshaped(to: [heads, d, c])).reshaped(to: [heads, b, n, c])
                .permuted([1, 0, 2, 3]).reshaped(to: [b, heads * n, c])
        }

        /// `attendingFewKeys` when every batch has its own queries (the 4096 image tokens of
        /// each prompt after the first block): the scores `(x W_qᵀ + b_q) · k̃` are
        /// `x · (W_q,hᵀ k̃_h) + b_q,h · k̃_h`, so the few projected keys go through the query
        /// projection ([b, heads·nk, C]) instead of every query token through it — for SAM
        /// 4096×256×56 instead of 4096×256×128 multiply-adds per prompt, and the probabilities
        /// come out in the [b, nq, heads·nk] order the output product reads. Same sums
        /// regrouped (rounding-level differences).
        private func attendingFewKeysPerBatch(q: Tensor, k: Tensor, v: Tensor, residual: Tensor?, trace: ImageTokenTrace?)
            -> Tensor
        {
            let (b, nq, nk, c) = (q.shape[0], q.shape[1], k.shape[1], embeddingDim)
            let heads = numHeads, d = internalDim / numHeads
            let scale = 1 / Float(d).squareRoot()
            let projectedKeys = kProj(k)  // [b, nk, heads·d]
            let keys = throughHeads(projectedKeys, of: qProj.weight) * Tensor(scalar: scale)  // [b, heads·nk, C]
            let scores = Tensor.matmul(q, keys, transposeB: true)  // [b, nq, heads·nk]
            if let bias = qProj.bias {
                // b_q,h · k̃_{j,h}: one constant per batch and (head, key), the same for every query.
                let constants = [Float](unsafeUninitializedCapacity: b * heads * nk) { out, count in
                    let (kp, bp) = (projectedKeys.storage.base, bias.storage.base)
                    for i in 0..<b {
                        for h in 0..<heads {
                            for j in 0..<nk {
                                var sum: Float = 0
                                for e in 0..<d { sum += bp[h * d + e] * kp[(i * nk + j) * heads * d + h * d + e] }
                                out[(i * heads + h) * nk + j] = sum * scale
                            }
                        }
                    }
                    count = b * heads * nk
                }
                constants.withUnsafeBufferPointer { row in
                    for i in 0..<b {
                        Kernels.addRowVector(
                            scores.storage.base + i * nq * heads * nk, row.baseAddress! + i * heads * nk, rows: nq,
                            columns: heads * nk)
                    }
                }
            }
            let probabilities = scores.reshaped(to: [b * nq * heads, nk]).softmax(alongAxis: 1)
            let values = projectedValues(v)
            trace?.attended(
                probabilities: probabilities, batchStride: nq * heads * nk, rowStride: heads * nk, values: values,
                outputBias: outProj.bias)
            let out = seededOutput(batch: b, rows: nq, residual: residual)
            parallelFor(b) { range in
                for i in range {
                    Kernels.gemm(
                        m: nq, n: c, k: heads * nk, a: probabilities.storage.base + i * nq * heads * nk,
                        b: values.storage.base + i * heads * nk * c, beta: 1, c: out.storage.base + i * nq * c)
                }
            }
            return out
        }

        /// `callAsFunction` without a tape when each batch has a few queries and its own many
        /// keys (a prompt's 7 tokens attending to its 4096 image tokens in the second block and
        /// the final attention). The scores `q̃_h · (k W_k,hᵀ + b_k,h)` are `(q̃_h W_k,h) · k`
        /// plus a constant per query that the softmax removes, and the output
        /// `Σ_t p_t (v_t W_v,hᵀ + b_v,h)` is `(Σ_t p_t v_t) W_v,hᵀ + b_v,h`: the queries go
        /// through the key projection and the probabilities read the raw keys and values — for
        /// SAM 2 × 56×4096×256 multiply-adds per prompt instead of 2 × 4096×256×128 for the
        /// key and value projections. Same sums regrouped (rounding-level differences).
        func attendingFewQueries(q: Tensor, k: Tensor, v: Tensor) -> Tensor {
            let (b, nq, c) = (q.shape[0], q.shape[1], embeddingDim)
            let heads = numHeads, d = internalDim / numHeads
            let queries = throughHeads(qProj(q), of: kProj.weight) * Tensor(scalar: 1 / Float(d).squareRoot())
            let probabilities = Tensor.matmul(queries, k, transposeB: true).softmax(alongAxis: 2)  // [b, heads·nq, nk]
            let context = Tensor.matmul(probabilities, v)  // [b, heads·nq, C]
            // Each head's context through its rows of the value projection: [heads, b·nq, d].
            let perHead = Tensor.matmul(
                context.reshaped(to: [b, heads, nq, c]).permuted([1, 0, 2, 3]).reshaped(to: [heads, b * nq, c]),
                vProj.weight.reshaped(to: [heads, d, c]), transposeB: true)
            var values = perHead.reshaped(to: [heads, b, nq, d]).permuted([1, 2, 0, 3]).reshaped(to: [b, nq, heads * d])
            if let bias = vProj.bias { values = values + bias }
            return outProj(values)
        }
    }
}
