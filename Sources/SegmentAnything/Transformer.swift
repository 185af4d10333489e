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
    /// - Returns: the processed tokens [B, N, C] and image tokens [B, h·w, C].
    public func callAsFunction(imageEmbedding: Tensor, imagePE: Tensor, pointEmbedding: Tensor) -> (queries: Tensor, keys: Tensor)
    {
        // B x C x H x W -> B x HW x C
        func tokens(_ x: Tensor) -> Tensor {
            x.reshaped(to: [x.shape[0], x.shape[1], x.shape[2] * x.shape[3]]).permuted([0, 2, 1])
        }
        let keyPE = tokens(imagePE)
        var queries = pointEmbedding
        var keys = tokens(imageEmbedding)
        for layer in layers.elements {
            (queries, keys) = layer(queries: queries, keys: keys, queryPE: pointEmbedding, keyPE: keyPE)
        }
        let q = queries + pointEmbedding
        let k = keys + keyPE
        queries = normFinalAttn(queries + finalAttnTokenToImage(q: q, k: k, v: keys))
        if keys.shape[0] != queries.shape[0] { keys = keys.expanded(to: [queries.shape[0]] + keys.shape.dropFirst()) }
        return (queries, keys)
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
    public func callAsFunction(queries: Tensor, keys: Tensor, queryPE: Tensor, keyPE: Tensor) -> (queries: Tensor, keys: Tensor) {
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
        let k = keys + keyPE
        queries = norm2(queries + crossAttnTokenToImage(q: q, k: k, v: keys))
        // MLP block
        queries = norm3(queries + mlp(queries))
        // Cross attention block, image embedding attending to tokens
        q = queries + queryPE
        keys = norm4(keys + crossAttnImageToToken(q: k, k: q, v: queries))
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
            let (q, k, v) = (separateHeads(qProj(q)), separateHeads(kProj(k)), separateHeads(vProj(v)))
            let scale = 1 / Float(q.shape[2]).squareRoot()
            let out = Tensor.scaledDotProductAttention(query: q, key: k, value: v, scale: scale, relativePosition: nil)
            return outProj(recombineHeads(out))
        }

        /// `callAsFunction` without a tape when the keys are few (the prompt's 7 tokens seen by
        /// the 4096 image tokens): the output projection of `concat_h(A_h V_h)` is
        /// `Σ_h A_h (V_h W_hᵀ)`, one product of the [Nq, heads·Nk] probabilities with the
        /// [heads·Nk, C] projected values — for SAM's image→token attention 4096×56×256 instead
        /// of 4096×128×256 multiply-adds per prompt, and no [Nq, internal] output. The same sums
        /// regrouped (rounding-level differences). Queries may be shared (batch 1) by B key sets.
        func attendingFewKeys(q: Tensor, k: Tensor, v: Tensor) -> Tensor {
            let (bq, nq, bk, nk) = (q.shape[0], q.shape[1], k.shape[0], k.shape[1])
            let (heads, d, c) = (numHeads, internalDim / numHeads, embeddingDim)
            let batch = max(bq, bk)
            let qh = separateHeads(qProj(q))  // [bq·heads, nq, d]
            let kh = separateHeads(kProj(k))  // [bk·heads, nk, d]
            let vh = vProj(v).reshaped(to: [bk, nk, heads, d]).permuted([2, 0, 1, 3]).reshaped(to: [heads, bk * nk, d])
            // Probabilities [batch, nq, heads·nk].
            let probabilities: Tensor
            if bq == 1 && bk > 1 {
                let keys = kh.reshaped(to: [bk, heads, nk, d]).permuted([1, 0, 2, 3]).reshaped(to: [heads, bk * nk, d])
                let scores = Tensor.matmul(qh, keys, transposeB: true) * Tensor(scalar: 1 / Float(d).squareRoot())
                probabilities = scores.reshaped(to: [heads, nq, bk, nk]).softmax(alongAxis: 3).permuted([2, 1, 0, 3])
                    .reshaped(to: [batch, nq, heads * nk])
            } else {
                let scores = Tensor.matmul(qh, kh, transposeB: true) * Tensor(scalar: 1 / Float(d).squareRoot())
                probabilities = scores.reshaped(to: [batch, heads, nq, nk]).softmax(alongAxis: 3).permuted([0, 2, 1, 3])
                    .reshaped(to: [batch, nq, heads * nk])
            }
            // Values through each head's columns of the output projection: [batch, heads·nk, C].
            let columns = outProj.weight.reshaped(to: [c, heads, d]).permuted([1, 2, 0])  // [heads, d, C]
            let projected = Tensor.matmul(vh, columns).reshaped(to: [heads, bk, nk, c]).permuted([1, 0, 2, 3])
                .reshaped(to: [bk, heads * nk, c])
            let out = Tensor.matmul(probabilities, projected)
            if let bias = outProj.bias {
                Kernels.addRowVector(out.storage.base, bias.storage.base, rows: out.count / c, columns: c)
            }
            return out
        }
    }
}
