import Autograd
import Layers

// MobileSAM's image encoder: mobile_sam/modeling/tiny_vit_sam.py (`TinyViT` and its parts), as
// `build_sam_vit_t` builds it.

/// The sizes of a TinyViT image encoder (the keyword arguments of `TinyViT` in
/// `build_sam_vit_t`). MobileSAM's is `.mobileSAM`.
public struct TinyViTConfiguration: Codable, Equatable, Sendable {
    /// Width of each of the four stages.
    public var embedDims = [64, 128, 160, 320]
    /// Blocks per stage (stage 0: MBConv blocks; 1…3: attention blocks).
    public var depths = [2, 2, 6, 2]
    /// Attention heads of each stage (stage 0's is unused).
    public var numHeads = [2, 4, 5, 10]
    /// Attention window side of each stage (stage 0's is unused).
    public var windowSizes = [7, 7, 14, 7]
    /// MLP width as a multiple of the stage width.
    public var mlpRatio = 4.0
    /// MBConv hidden width as a multiple of stage 0's width.
    public var mbconvExpandRatio = 4.0
    /// Kernel side of the blocks' depthwise convolution.
    public var localConvSize = 3
    /// Classes of the ImageNet head SAM never runs (its weights are in the checkpoint: 1000).
    public var numClasses = 1000

    public init() {}

    /// MobileSAM's encoder (`mobile_sam.pt`).
    public static let mobileSAM = TinyViTConfiguration()

    /// The stride of the patch merging after stage `i` (0…2): 2, 2, then 1. The official code
    /// keeps the resolution when merging into 320, 448 or 576 channels, and sizes its stages as
    /// if only the last merge did (`input_resolution` of stage 3 is that of stage 2): every
    /// model it can run has these strides, the image embedding a sixteenth of the input side.
    public func mergeStride(after i: Int) -> Int { i == 2 ? 1 : 2 }

    /// Side of the token grid of stage `i` for a square input of `imageSize` pixels.
    public func resolution(ofStage i: Int, imageSize: Int) -> Int {
        var side = imageSize / 4
        for j in 0..<i { side = (side - 1) / mergeStride(after: j) + 1 }
        return side
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case embedDims = "embed_dims", depths, numHeads = "num_heads", windowSizes = "window_sizes"
        case mlpRatio = "mlp_ratio", mbconvExpandRatio = "mbconv_expand_ratio", localConvSize = "local_conv_size"
        case numClasses = "num_classes"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = TinyViTConfiguration()
        embedDims = try c.decodeIfPresent([Int].self, forKey: .embedDims) ?? d.embedDims
        depths = try c.decodeIfPresent([Int].self, forKey: .depths) ?? d.depths
        numHeads = try c.decodeIfPresent([Int].self, forKey: .numHeads) ?? d.numHeads
        windowSizes = try c.decodeIfPresent([Int].self, forKey: .windowSizes) ?? d.windowSizes
        mlpRatio = try c.decodeIfPresent(Double.self, forKey: .mlpRatio) ?? d.mlpRatio
        mbconvExpandRatio = try c.decodeIfPresent(Double.self, forKey: .mbconvExpandRatio) ?? d.mbconvExpandRatio
        localConvSize = try c.decodeIfPresent(Int.self, forKey: .localConvSize) ?? d.localConvSize
        numClasses = try c.decodeIfPresent(Int.self, forKey: .numClasses) ?? d.numClasses
    }

    /// Why these sizes cannot build a model, or nil.
    func problem() -> String? {
        for (key, list) in [
            ("embed_dims", embedDims), ("depths", depths), ("num_heads", numHeads), ("window_sizes", windowSizes),
        ]
        where list.count != 4 {
            return "'tiny_vit.\(key)' must list 4 stages, got \(list.count)"
        }
        for (key, list, limit) in [
            ("embed_dims", embedDims, 8192), ("depths", depths, 256), ("num_heads", numHeads, 256),
            ("window_sizes", windowSizes, 256),
        ] {
            if let bad = list.first(where: { $0 < 1 || $0 > limit }) {
                return "'tiny_vit.\(key)' holds \(bad), outside 1…\(limit)"
            }
        }
        for i in 1..<4 where embedDims[i] % numHeads[i] != 0 {
            return "'tiny_vit.embed_dims' \(embedDims[i]) of stage \(i) is not a multiple of its \(numHeads[i]) heads"
        }
        guard mlpRatio > 0 && mlpRatio <= 64, mbconvExpandRatio > 0 && mbconvExpandRatio <= 64 else {
            return "'tiny_vit.mlp_ratio' and 'tiny_vit.mbconv_expand_ratio' must be in (0, 64]"
        }
        guard localConvSize >= 1 && localConvSize <= 31 && localConvSize % 2 == 1 else {
            return "'tiny_vit.local_conv_size' must be odd, 1…31, got \(localConvSize)"
        }
        guard numClasses >= 1 && numClasses <= 100_000 else {
            return "'tiny_vit.num_classes' must be 1…100000, got \(numClasses)"
        }
        return nil
    }
}

/// TinyViT, MobileSAM's image encoder (tiny_vit_sam.py, `TinyViT`): a convolutional patch
/// embedding to a quarter of the input side, a stage of MBConv blocks, three stages of windowed
/// attention blocks (each with a depthwise convolution between attention and MLP), patch merging
/// between stages, and SAM's neck (1×1 conv, LayerNorm2d, 3×3 conv, LayerNorm2d).
///
/// Keys as the official `state_dict`: `patch_embed.seq.{0,2}.{c,bn}.*`, `layers.<i>.blocks.<j>.*`,
/// `layers.<i>.downsample.*`, `norm_head.*`, `head.*` (the ImageNet classifier, kept so the key
/// list is the official one; SAM never runs it), `neck.{0,1,2,3}.*`. Batch norms use their
/// running statistics; inference only.
public final class TinyViT: Module {
    /// Input side in pixels.
    public let imageSize: Int
    /// The sizes it was built with.
    public let configuration: TinyViTConfiguration
    /// Two stride-2 3×3 convolutions with batch norm and GELU: [B, 3, S, S] → [B, d₀, S/4, S/4].
    public let patchEmbed: PatchEmbed
    /// Stage 0 (`ConvLayer`), then stages 1…3 (`BasicLayer`), as `layers.<i>`.
    public let layers: Sequential
    /// Stage 0.
    public let convLayer: ConvLayer
    /// Stages 1…3.
    public let basicLayers: [BasicLayer]
    /// The unused ImageNet head (`norm_head`, `head`).
    public let normHead: LayerNorm
    /// See `normHead`.
    public let head: Linear
    /// d₃ → out: 1×1 conv, LayerNorm2d, 3×3 conv, LayerNorm2d (no conv biases).
    public let neck: Sequential

    /// The encoder of `build_sam_vit_t` with `configuration`'s sizes, `outChannels` (256) out;
    /// weights not initialised.
    public init(imageSize: Int, configuration c: TinyViTConfiguration, outChannels: Int) {
        self.imageSize = imageSize
        configuration = c
        patchEmbed = PatchEmbed(inChannels: 3, embedDim: c.embedDims[0])
        let hidden = Int(Double(c.embedDims[0]) * c.mbconvExpandRatio)
        convLayer = ConvLayer(
            dim: c.embedDims[0], depth: c.depths[0], hidden: hidden,
            downsample: PatchMerging(dim: c.embedDims[0], outDim: c.embedDims[1], stride: c.mergeStride(after: 0)))
        basicLayers = (1..<4).map { i in
            let side = c.resolution(ofStage: i, imageSize: imageSize)
            return BasicLayer(
                dim: c.embedDims[i], resolution: (side, side), depth: c.depths[i], numHeads: c.numHeads[i],
                windowSize: c.windowSizes[i], mlpRatio: c.mlpRatio, localConvSize: c.localConvSize,
                downsample: i < 3
                    ? PatchMerging(dim: c.embedDims[i], outDim: c.embedDims[i + 1], stride: c.mergeStride(after: i)) : nil)
        }
        let (stage0, stages) = (convLayer, basicLayers)
        layers = Sequential([stage0] + stages) { x in
            var tokens = stage0(x)
            for stage in stages { tokens = stage(tokens) }
            return tokens
        }
        normHead = LayerNorm(c.embedDims[3])
        head = Linear(inputFeatures: c.embedDims[3], outputFeatures: c.numClasses)
        let conv1 = TinyViT.conv(c.embedDims[3], outChannels, kernel: 1)
        let norm1 = LayerNorm2d(outChannels)
        let conv2 = TinyViT.conv(outChannels, outChannels, kernel: 3, padding: 1)
        let norm2 = LayerNorm2d(outChannels)
        neck = Sequential([conv1, norm1, conv2, norm2]) { x in norm2(conv2(norm1(conv1(x)))) }
    }

    public var namedChildren: [(String, Module)] {
        [("patch_embed", patchEmbed), ("layers", layers), ("norm_head", normHead), ("head", head), ("neck", neck)]
    }

    /// Side of the image embedding in tokens (64 for MobileSAM at 1024).
    public var embeddingSize: Int { configuration.resolution(ofStage: 3, imageSize: imageSize) }

    /// The image embedding: [B, 3, S, S] (normalised, padded) → [B, out, s, s] (`forward_features`).
    public func callAsFunction(_ x: Tensor) -> Tensor { embeddingAndStage1(x).embedding }

    /// The embedding and stage 1's output (after its patch merging: [B, s, s, d₂] on the
    /// embedding's grid), which light HQ-SAM's decoder fuses (`interm_embeddings[0]` of
    /// segment_anything_hq's TinyViT).
    public func embeddingAndStage1(_ x: Tensor) -> (embedding: Tensor, stage1: Tensor) {
        guard GradMode.isEnabled else {
            // Stage 0's maps (256² × 256 at 1024) recur block after block: reused, not zeroed afresh.
            return TensorStorage.reusingLargeBuffers(limit: 512 << 20) { forward(x) }
        }
        return forward(x)
    }

    func forward(_ x: Tensor) -> (embedding: Tensor, stage1: Tensor) {
        var tokens = convLayer(patchEmbed(x))
        var stage1: Tensor?
        for (i, stage) in basicLayers.enumerated() {
            tokens = stage(tokens)  // stage 3's: [B, s·s, d₃]
            if i == 0 { stage1 = tokens }
        }
        let (b, side) = (tokens.shape[0], embeddingSize)
        let early = stage1!
        return (
            neck(tokens.reshaped(to: [b, side, side, tokens.shape[2]]).permuted([0, 3, 1, 2])),
            early.reshaped(to: [b, side, side, early.shape[2]])
        )
    }

    /// A convolution without bias, weights not initialised (loaded from a checkpoint).
    static func conv(_ inChannels: Int, _ outChannels: Int, kernel: Int, stride: Int = 1, padding: Int = 0) -> Conv2d {
        var g = SeededGenerator(seed: 0)
        return Conv2d(
            inputChannels: inChannels, outputChannels: outChannels, kernelSize: kernel, stride: stride, padding: padding,
            generator: &g)
    }
}

extension TinyViT {
    /// A convolution without bias followed by batch norm at its running statistics
    /// (`Conv2d_BN`). Keys: `c.weight`, `bn.*`. Depthwise when `groups` equals the channels.
    public final class Conv2dBN: Module {
        /// The convolution: a full one, or depthwise (`groups` = channels).
        public let c: Module
        /// Batch norm, eps 1e-5, always at its running statistics.
        public let bn: BatchNorm2d
        let forward: (Tensor) -> Tensor

        /// `a` → `b` channels; `depthwise` needs a = b.
        public init(_ a: Int, _ b: Int, kernel: Int = 1, stride: Int = 1, padding: Int = 0, depthwise: Bool = false) {
            let norm = BatchNorm2d(b, frozen: true)
            bn = norm
            if depthwise {
                precondition(a == b, "Conv2d_BN: a depthwise convolution keeps its \(a) channels, not \(b)")
                let conv = DepthwiseConv2d(channels: a, kernelSize: kernel, stride: stride, padding: padding)
                c = conv
                forward = { x in norm(conv(x)) }
            } else {
                let conv = TinyViT.conv(a, b, kernel: kernel, stride: stride, padding: padding)
                c = conv
                forward = { x in norm(conv(x)) }
            }
        }

        public var namedChildren: [(String, Module)] { [("c", c), ("bn", bn)] }
        /// [B, a, H, W] → [B, b, H', W'].
        public func callAsFunction(_ x: Tensor) -> Tensor { forward(x) }
    }

    /// `PatchEmbed`: Conv2d_BN(3→d/2, 3×3/2) → GELU → Conv2d_BN(d/2→d, 3×3/2). Keys `seq.{0,2}.*`.
    public final class PatchEmbed: Module {
        public let seq: Sequential

        public init(inChannels: Int, embedDim: Int) {
            let conv1 = Conv2dBN(inChannels, embedDim / 2, kernel: 3, stride: 2, padding: 1)
            let act = Activation(.gelu)
            let conv2 = Conv2dBN(embedDim / 2, embedDim, kernel: 3, stride: 2, padding: 1)
            seq = Sequential([conv1, act, conv2]) { x in conv2(act(conv1(x))) }
        }

        public var namedChildren: [(String, Module)] { [("seq", seq)] }
        public func callAsFunction(_ x: Tensor) -> Tensor { seq(x) }
    }

    /// `MBConv`: 1×1 expansion, depthwise 3×3, 1×1 projection (each with batch norm, GELU after
    /// the first two), the shortcut added, then GELU. Keys `conv1`, `conv2`, `conv3`.
    public final class MBConv: Module {
        public let conv1: Conv2dBN
        public let conv2: Conv2dBN
        public let conv3: Conv2dBN

        public init(dim: Int, hidden: Int) {
            conv1 = Conv2dBN(dim, hidden)
            conv2 = Conv2dBN(hidden, hidden, kernel: 3, padding: 1, depthwise: true)
            conv3 = Conv2dBN(hidden, dim)
        }

        public var namedChildren: [(String, Module)] { [("conv1", conv1), ("conv2", conv2), ("conv3", conv3)] }
        /// [B, dim, H, W] → [B, dim, H, W].
        public func callAsFunction(_ x: Tensor) -> Tensor {
            (conv3(conv2(conv1(x).gelu()).gelu()) + x).gelu()
        }
    }

    /// `PatchMerging`: 1×1 conv, GELU, depthwise 3×3 conv (stride 2, or 1 into 320/448/576
    /// channels), GELU, 1×1 conv; tokens out. Keys `conv1`, `conv2`, `conv3`.
    public final class PatchMerging: Module {
        public let conv1: Conv2dBN
        public let conv2: Conv2dBN
        public let conv3: Conv2dBN

        public init(dim: Int, outDim: Int, stride: Int) {
            conv1 = Conv2dBN(dim, outDim)
            conv2 = Conv2dBN(outDim, outDim, kernel: 3, stride: stride, padding: 1, depthwise: true)
            conv3 = Conv2dBN(outDim, outDim)
        }

        public var namedChildren: [(String, Module)] { [("conv1", conv1), ("conv2", conv2), ("conv3", conv3)] }
        /// [B, dim, H, W] → tokens [B, H'·W', outDim].
        public func callAsFunction(_ x: Tensor) -> Tensor {
            let y = conv3(conv2(conv1(x).gelu()).gelu())
            let (b, c) = (y.shape[0], y.shape[1])
            return y.reshaped(to: [b, c, y.shape[2] * y.shape[3]]).permuted([0, 2, 1])
        }
    }

    /// Stage 0 (`ConvLayer`): MBConv blocks on the image-shaped map, then patch merging.
    /// Keys `blocks.<j>.*`, `downsample.*`.
    public final class ConvLayer: Module {
        public let blocks: ModuleList<MBConv>
        public let downsample: PatchMerging

        public init(dim: Int, depth: Int, hidden: Int, downsample: PatchMerging) {
            blocks = ModuleList((0..<depth).map { _ in MBConv(dim: dim, hidden: hidden) })
            self.downsample = downsample
        }

        public var namedChildren: [(String, Module)] { [("blocks", blocks), ("downsample", downsample)] }
        /// [B, dim, H, W] → tokens [B, L', outDim].
        public func callAsFunction(_ x: Tensor) -> Tensor {
            var y = x
            for block in blocks.elements { y = block(y) }
            return downsample(y)
        }
    }

    /// A stage of attention blocks (`BasicLayer`), then patch merging unless it is the last.
    /// Keys `blocks.<j>.*`, `downsample.*`.
    public final class BasicLayer: Module {
        public let blocks: ModuleList<Block>
        public let downsample: PatchMerging?
        /// The token grid (height, width).
        public let resolution: (height: Int, width: Int)

        public init(
            dim: Int, resolution: (Int, Int), depth: Int, numHeads: Int, windowSize: Int, mlpRatio: Double,
            localConvSize: Int, downsample: PatchMerging?
        ) {
            blocks = ModuleList(
                (0..<depth).map { _ in
                    Block(
                        dim: dim, resolution: resolution, numHeads: numHeads, windowSize: windowSize, mlpRatio: mlpRatio,
                        localConvSize: localConvSize)
                })
            self.downsample = downsample
            self.resolution = resolution
        }

        public var namedChildren: [(String, Module)] {
            [("blocks", blocks)] + (downsample.map { [("downsample", $0 as Module)] } ?? [])
        }

        /// Tokens [B, H·W, dim] → [B, L', outDim] (or [B, H·W, dim] for the last stage).
        public func callAsFunction(_ x: Tensor) -> Tensor {
            var y = x
            for block in blocks.elements { y = block(y) }
            guard let downsample else { return y }
            let (b, c) = (y.shape[0], y.shape[2])
            return downsample(y.reshaped(to: [b, resolution.height, resolution.width, c]).permuted([0, 3, 1, 2]))
        }
    }

    /// `TinyViTBlock`: windowed attention (the grid zero-padded to whole windows; the padding
    /// tokens are attended to, as the official code does), residual; a depthwise convolution
    /// with batch norm on the token grid; the MLP with its own LayerNorm, residual.
    /// Keys `attn.*`, `local_conv.*`, `mlp.*`.
    public final class Block: Module {
        public let attn: Attention
        public let localConv: Conv2dBN
        public let mlp: MLP
        public let resolution: (height: Int, width: Int)
        public let windowSize: Int

        public init(dim: Int, resolution: (Int, Int), numHeads: Int, windowSize: Int, mlpRatio: Double, localConvSize: Int) {
            attn = Attention(dim: dim, keyDim: dim / numHeads, numHeads: numHeads, windowSize: windowSize)
            localConv = Conv2dBN(dim, dim, kernel: localConvSize, padding: localConvSize / 2, depthwise: true)
            mlp = MLP(dim: dim, hidden: Int(Double(dim) * mlpRatio))
            self.resolution = resolution
            self.windowSize = windowSize
        }

        // The official module order (mlp is registered before local_conv).
        public var namedChildren: [(String, Module)] { [("attn", attn), ("mlp", mlp), ("local_conv", localConv)] }

        /// Tokens [B, H·W, dim] → [B, H·W, dim].
        public func callAsFunction(_ x: Tensor) -> Tensor {
            let (b, l, c) = (x.shape[0], x.shape[1], x.shape[2])
            let (h, w) = resolution
            precondition(l == h * w, "TinyViT block: \(l) tokens for a \(h)x\(w) grid")
            // Windows of the un-normalised tokens: padding enters the attention's LayerNorm as zeros.
            let (windows, padded) = x.reshaped(to: [b, h, w, c]).windowPartitioned(windowSize: windowSize)
            let attended = attn(windows.reshaped(to: [windows.shape[0], windowSize * windowSize, c]))
                .reshaped(to: [windows.shape[0], windowSize, windowSize, c])
            var y =
                x
                + Tensor.windowUnpartitioned(attended, windowSize: windowSize, paddedSize: padded, size: (h, w))
                .reshaped(to: [b, l, c])
            y = localConv(y.permuted([0, 2, 1]).reshaped(to: [b, c, h, w])).reshaped(to: [b, c, l]).permuted([0, 2, 1])
            return y + mlp(y)
        }
    }

    /// `Attention` with a learned bias per head and |Δy|, |Δx| offset inside the window
    /// (LeViT's attention biases): LayerNorm, qkv laid out per head as [q (kd), k (kd), v (d)],
    /// softmax(q·kᵀ/√kd + bias), proj. Keys `norm.*`, `qkv.*`, `proj.*`, `attention_biases`
    /// [heads, ws²] (offset (a, b) is column a·ws + b, the order the official code meets them).
    public final class Attention: Module {
        public let norm: LayerNorm
        public let qkv: Linear
        public let proj: Linear
        public let attentionBiases: Tensor
        public let numHeads: Int
        public let keyDim: Int
        public let windowSize: Int
        /// For each (query, key) pair of a window, its column of `attentionBiases`.
        let offsetIndex: [Int]

        public init(dim: Int, keyDim: Int, numHeads: Int, windowSize: Int) {
            (self.keyDim, self.numHeads, self.windowSize) = (keyDim, numHeads, windowSize)
            norm = LayerNorm(dim)
            qkv = Linear(inputFeatures: dim, outputFeatures: 3 * keyDim * numHeads)
            proj = Linear(inputFeatures: keyDim * numHeads, outputFeatures: dim)
            attentionBiases = Tensor.parameter(uninitialized: [numHeads, windowSize * windowSize])
            let n = windowSize * windowSize
            offsetIndex = (0..<(n * n)).map { pair in
                let (i, j) = (pair / n, pair % n)
                return abs(i / windowSize - j / windowSize) * windowSize + abs(i % windowSize - j % windowSize)
            }
        }

        public var namedParameters: [(String, Tensor)] { [("attention_biases", attentionBiases)] }
        public var namedChildren: [(String, Module)] { [("norm", norm), ("qkv", qkv), ("proj", proj)] }

        /// Windows [B', N, dim] (N = ws²) → [B', N, dim].
        public func callAsFunction(_ x: Tensor) -> Tensor {
            let (windows, n, heads, kd) = (x.shape[0], x.shape[1], numHeads, keyDim)
            precondition(n == windowSize * windowSize, "TinyViT attention: \(n) tokens for a window of \(windowSize)")
            let parts = qkv(norm(x)).reshaped(to: [windows, n, heads, 3, kd]).permuted([3, 0, 2, 1, 4])
            func part(_ k: Int) -> Tensor { parts.slice(alongAxis: 0, k..<(k + 1)).reshaped(to: [windows * heads, n, kd]) }
            let q = part(0) * Float(1 / Double(kd).squareRoot())
            let bias = attentionBiases.permuted([1, 0]).gatheringRows(offsetIndex).reshaped(to: [n, n, heads])
                .permuted([2, 0, 1]).reshaped(to: [1, heads, n, n])
            let scores = Tensor.matmul(q, part(1), transposeB: true).reshaped(to: [windows, heads, n, n]) + bias
            let attention = scores.softmax(alongAxis: 3).reshaped(to: [windows * heads, n, n])
            let out = Tensor.matmul(attention, part(2)).reshaped(to: [windows, heads, n, kd]).permuted([0, 2, 1, 3])
            return proj(out.reshaped(to: [windows, n, heads * kd]))
        }
    }

    /// `Mlp`: LayerNorm, fc1, GELU, fc2. Keys `norm.*`, `fc1.*`, `fc2.*`.
    public final class MLP: Module {
        public let norm: LayerNorm
        public let fc1: Linear
        public let fc2: Linear

        public init(dim: Int, hidden: Int) {
            norm = LayerNorm(dim)
            fc1 = Linear(inputFeatures: dim, outputFeatures: hidden)
            fc2 = Linear(inputFeatures: hidden, outputFeatures: dim)
        }

        public var namedChildren: [(String, Module)] { [("norm", norm), ("fc1", fc1), ("fc2", fc2)] }
        public func callAsFunction(_ x: Tensor) -> Tensor {
            let y = norm(x)
            return Tensor.feedForward(
                y, weight1: fc1.weight, bias1: fc1.bias, activation: .gelu, weight2: fc2.weight, bias2: fc2.bias)
                ?? fc2(fc1(y).gelu())
        }
    }
}
