import Autograd
import Layers

// segment_anything/modeling/image_encoder.py (itself from detectron2's ViTDet backbone). SAM's
// builder always sets use_abs_pos, use_rel_pos and qkv_bias, and LayerNorm eps 1e-6; so does this
// port. window_partition, window_unpartition, get_rel_pos and add_decomposed_rel_pos are tensor
// ops of Autograd (`windowPartitioned`, `windowUnpartitioned`, `relativePositions`,
// `decomposedRelativePosition`).

/// The ViT image encoder (image_encoder.py, `ImageEncoderViT`): patch embedding, absolute
/// position embedding, transformer blocks (windowed or global attention with decomposed relative
/// positions) and a convolutional neck to the prompt width.
///
/// Keys: `pos_embed`, `patch_embed.proj.*`, `blocks.<i>.*`, `neck.{0,1,2,3}.*`.
public final class ImageEncoderViT: Module {
    /// Side of the square input in pixels.
    public let imageSize: Int
    /// [1, imageSize/patch, imageSize/patch, embedDim], added to the patch embedding.
    public let posEmbed: Tensor
    /// Patches to tokens (`patch_embed`).
    public let patchEmbed: PatchEmbed
    /// The transformer blocks, windowed except `globalAttnIndexes`.
    public let blocks: ModuleList<Block>
    /// conv1x1 (no bias) → LayerNorm2d → conv3x3 (no bias) → LayerNorm2d.
    public let neck: Sequential

    /// The encoder of `_build_sam` for these sizes (defaults: ViT-B); weights not initialised.
    public init(
        imageSize: Int = 1024, patchSize: Int = 16, inChannels: Int = 3, embedDim: Int = 768, depth: Int = 12,
        numHeads: Int = 12, mlpRatio: Double = 4, outChannels: Int = 256, windowSize: Int = 14,
        globalAttnIndexes: [Int] = [2, 5, 8, 11]
    ) {
        self.imageSize = imageSize
        let side = imageSize / patchSize
        patchEmbed = PatchEmbed(patchSize: patchSize, inChannels: inChannels, embedDim: embedDim)
        posEmbed = Tensor.parameter(uninitialized: [1, side, side, embedDim])
        blocks = ModuleList(
            (0..<depth).map { i in
                Block(
                    dim: embedDim, numHeads: numHeads, mlpRatio: mlpRatio,
                    windowSize: globalAttnIndexes.contains(i) ? 0 : windowSize, inputSize: (side, side))
            })
        var generator = SeededGenerator(seed: 0)  // Conv2d draws weights; load(from:) replaces them
        let conv1 = Conv2d(inputChannels: embedDim, outputChannels: outChannels, kernelSize: 1, generator: &generator)
        let norm1 = LayerNorm2d(outChannels)
        let conv2 = Conv2d(
            inputChannels: outChannels, outputChannels: outChannels, kernelSize: 3, padding: 1,
            generator: &generator)
        let norm2 = LayerNorm2d(outChannels)
        neck = Sequential([conv1, norm1, conv2, norm2]) { x in norm2(conv2(norm1(conv1(x)))) }
    }

    public var namedParameters: [(String, Tensor)] { [("pos_embed", posEmbed)] }
    public var namedChildren: [(String, Module)] { [("patch_embed", patchEmbed), ("blocks", blocks), ("neck", neck)] }

    /// Tokens before the first block: patch embedding plus the absolute position embedding.
    /// [B, 3, S, S] → [B, S/p, S/p, embedDim].
    public func embed(_ x: Tensor) -> Tensor { patchEmbed(x) + posEmbed }

    /// The image embedding. [B, 3, imageSize, imageSize] (normalised, padded) →
    /// [B, outChannels, imageSize/p, imageSize/p].
    public func callAsFunction(_ x: Tensor) -> Tensor { embeddingAndFirstGlobal(x).embedding }

    /// The embedding and the output of the first global block [B, s, s, dim] (SAM-HQ's
    /// `interm_embeddings[0]`; nil without global blocks).
    public func embeddingAndFirstGlobal(_ x: Tensor) -> (embedding: Tensor, firstGlobal: Tensor?) {
        // Block after block the same large activations recur: reused, not zeroed afresh.
        guard GradMode.isEnabled else { return TensorStorage.reusingLargeBuffers(limit: 256 << 20) { encode(x) } }
        return encode(x)
    }

    private func encode(_ x: Tensor) -> (embedding: Tensor, firstGlobal: Tensor?) {
        var tokens = embed(x)
        var first: Tensor?
        for block in blocks.elements {
            tokens = block(tokens)
            if first == nil && block.windowSize == 0 { first = tokens }
        }
        return (neck(tokens.permuted([0, 3, 1, 2])), first)
    }
}

/// A pre-norm transformer block with windowed or global attention (image_encoder.py, `Block`).
/// Keys: `norm1.*`, `attn.*`, `norm2.*`, `mlp.lin{1,2}.*`.
public final class Block: Module {
    /// Before attention (eps 1e-6).
    public let norm1: LayerNorm
    /// Windowed or global self-attention.
    public let attn: ImageEncoderViT.Attention
    /// Before the MLP (eps 1e-6).
    public let norm2: LayerNorm
    /// dim → dim·mlpRatio → dim, GELU.
    public let mlp: MLPBlock
    /// Side of the attention windows in tokens; 0 for global attention.
    public let windowSize: Int

    /// - Parameter inputSize: the token grid (height, width), which sizes the relative-position
    ///   tables of a global block; a windowed block's tables are sized by its window.
    public init(dim: Int, numHeads: Int, mlpRatio: Double = 4, windowSize: Int = 0, inputSize: (Int, Int)) {
        norm1 = LayerNorm(dim, epsilon: 1e-6)
        attn = ImageEncoderViT.Attention(
            dim: dim, numHeads: numHeads, inputSize: windowSize == 0 ? inputSize : (windowSize, windowSize))
        norm2 = LayerNorm(dim, epsilon: 1e-6)
        mlp = MLPBlock(embeddingDim: dim, mlpDim: Int(Double(dim) * mlpRatio), activation: .gelu)
        self.windowSize = windowSize
    }

    public var namedChildren: [(String, Module)] { [("norm1", norm1), ("attn", attn), ("norm2", norm2), ("mlp", mlp)] }

    /// [B, H, W, dim] → [B, H, W, dim]. Windowed blocks pad H and W up to a multiple of the
    /// window (zeros, after norm1, as window_partition does) and crop the padding off afterwards.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        let shortcut = x
        var y = norm1(x)
        if windowSize > 0 {
            let (height, width) = (y.shape[1], y.shape[2])
            let (windows, paddedSize) = y.windowPartitioned(windowSize: windowSize)
            y = Tensor.windowUnpartitioned(attn(windows), windowSize: windowSize, paddedSize: paddedSize, size: (height, width))
        } else {
            y = attn(y)
        }
        y = shortcut + y
        return y + mlp(norm2(y))
    }
}

extension ImageEncoderViT {
    /// Multi-head self-attention over a token grid with decomposed relative positions
    /// (image_encoder.py, `Attention`; MViTv2's rel-pos, Li et al. 2022).
    /// Keys: `rel_pos_h` [2·h-1, headDim], `rel_pos_w` [2·w-1, headDim], `qkv.*`, `proj.*`.
    public final class Attention: Module {
        /// Attention heads; headDim = dim / numHeads.
        public let numHeads: Int
        /// headDim^-0.5.
        public let scale: Float
        /// dim → 3·dim (queries, keys, values).
        public let qkv: Linear
        /// dim → dim after the heads are merged.
        public let proj: Linear
        /// Relative-position table along the height, [2·h-1, headDim].
        public let relPosH: Tensor
        /// Relative-position table along the width, [2·w-1, headDim].
        public let relPosW: Tensor

        /// - Parameter inputSize: the (height, width) of the grids this layer attends over.
        public init(dim: Int, numHeads: Int, inputSize: (Int, Int)) {
            precondition(dim % numHeads == 0, "Attention: dim \(dim) is not a multiple of \(numHeads) heads")
            self.numHeads = numHeads
            let headDim = dim / numHeads
            scale = 1 / Float(headDim).squareRoot()
            qkv = Linear(inputFeatures: dim, outputFeatures: dim * 3)
            proj = Linear(inputFeatures: dim, outputFeatures: dim)
            relPosH = Tensor.parameter(uninitialized: [2 * inputSize.0 - 1, headDim])
            relPosW = Tensor.parameter(uninitialized: [2 * inputSize.1 - 1, headDim])
        }

        // Parameters before children, as torch's state_dict orders them.
        public var namedParameters: [(String, Tensor)] { [("rel_pos_h", relPosH), ("rel_pos_w", relPosW)] }
        public var namedChildren: [(String, Module)] { [("qkv", qkv), ("proj", proj)] }

        /// [B, H, W, dim] → [B, H, W, dim].
        public func callAsFunction(_ x: Tensor) -> Tensor {
            let (b, h, w, dim) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
            let headDim = dim / numHeads
            // qkv: [B, HW, 3, heads, hd] → [3, B·heads, HW, hd], as the reference's permute(2, 0, 3, 1, 4).
            let qkv = self.qkv(x).reshaped(to: [b, h * w, 3, numHeads, headDim]).permuted([2, 0, 3, 1, 4])
                .reshaped(to: [3, b * numHeads, h * w, headDim])
            func part(_ i: Int) -> Tensor { qkv.slice(alongAxis: 0, i..<(i + 1)).reshaped(to: [b * numHeads, h * w, headDim]) }
            let (q, k, v) = (part(0), part(1), part(2))
            // add_decomposed_rel_pos reads the unscaled query.
            let bias = Tensor.decomposedRelativePosition(
                query: q, tableHeight: relPosH, tableWidth: relPosW, querySize: (h, w), keySize: (h, w))
            let out = Tensor.scaledDotProductAttention(query: q, key: k, value: v, scale: scale, relativePosition: bias)
            let merged = out.reshaped(to: [b, numHeads, h, w, headDim]).permuted([0, 2, 3, 1, 4]).reshaped(to: [b, h, w, dim])
            return proj(merged)
        }
    }
}

/// Image to patch embedding (image_encoder.py, `PatchEmbed`): a patch×patch convolution with
/// stride patch, channels last. Keys: `proj.weight`, `proj.bias`.
public final class PatchEmbed: Module {
    /// [embedDim, 3, p, p] with bias, stride p.
    public let proj: Conv2d

    /// A patch embedding of `patchSize` pixels to `embedDim` channels.
    public init(patchSize: Int = 16, inChannels: Int = 3, embedDim: Int = 768) {
        var generator = SeededGenerator(seed: 0)  // load(from:) replaces the drawn weights
        proj = Conv2d(
            inputChannels: inChannels, outputChannels: embedDim, kernelSize: patchSize, stride: patchSize,
            bias: true, generator: &generator)
    }

    public var namedChildren: [(String, Module)] { [("proj", proj)] }

    /// [B, C, H, W] → [B, H/p, W/p, embedDim].
    public func callAsFunction(_ x: Tensor) -> Tensor { proj(x).permuted([0, 2, 3, 1]) }
}
