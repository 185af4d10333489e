import Autograd
import Layers
import SegmentAnything

// groundingdino/models/GroundingDINO/backbone/swin_transformer.py (the detection Swin, from
// Swin-Transformer-Object-Detection): patch embedding, stages of windowed attention blocks with
// every second block shifted by half a window, patch merging between stages, and a LayerNorm on
// each returned stage. Inputs of any size: the right and bottom are zero-padded to whole patches
// and windows, and the padding takes part in attention unmasked, as in the reference.

/// The sizes of a Swin Transformer (`build_swin_transformer`'s named variants).
public struct SwinConfiguration: Sendable, Equatable, Codable {
    public var embedDim: Int
    public var depths: [Int]
    public var heads: [Int]
    public var windowSize: Int
    public var mlpRatio: Double
    public var patchSize: Int

    public init(embedDim: Int, depths: [Int], heads: [Int], windowSize: Int, mlpRatio: Double = 4, patchSize: Int = 4) {
        (self.embedDim, self.depths, self.heads, self.windowSize, self.mlpRatio, self.patchSize) = (
            embedDim, depths, heads, windowSize, mlpRatio, patchSize
        )
    }

    /// `swin_T_224_1k` (Grounding DINO's Swin-T OGC).
    public static let tiny = SwinConfiguration(embedDim: 96, depths: [2, 2, 6, 2], heads: [3, 6, 12, 24], windowSize: 7)
    /// `swin_B_384_22k` (Grounding DINO's Swin-B).
    public static let base = SwinConfiguration(embedDim: 128, depths: [2, 2, 18, 2], heads: [4, 8, 16, 32], windowSize: 12)

    /// `build_swin_transformer`'s variants by their official names.
    public static let named: [String: SwinConfiguration] = [
        "swin_T_224_1k": .tiny,
        "swin_B_224_22k": SwinConfiguration(embedDim: 128, depths: [2, 2, 18, 2], heads: [4, 8, 16, 32], windowSize: 7),
        "swin_B_384_22k": .base,
        "swin_L_224_22k": SwinConfiguration(embedDim: 192, depths: [2, 2, 18, 2], heads: [6, 12, 24, 48], windowSize: 7),
        "swin_L_384_22k": SwinConfiguration(embedDim: 192, depths: [2, 2, 18, 2], heads: [6, 12, 24, 48], windowSize: 12),
    ]

    /// Channels of stage i (C·2^i).
    public func channels(ofStage i: Int) -> Int { embedDim << i }
}

/// Swin's patch embedding: zero-pad to whole patches, a patch×patch convolution of stride patch,
/// LayerNorm over the channels. Keys: `proj.*`, `norm.*`.
public final class SwinPatchEmbed: Module {
    public let proj: Conv2d
    public let norm: LayerNorm
    public let patchSize: Int

    public init(patchSize: Int, embedDim: Int) {
        var generator = SeededGenerator(seed: 0)  // loading replaces the drawn weights
        proj = Conv2d(
            inputChannels: 3, outputChannels: embedDim, kernelSize: patchSize, stride: patchSize, bias: true,
            generator: &generator)
        norm = LayerNorm(embedDim)
        self.patchSize = patchSize
    }

    public var namedChildren: [(String, Module)] { [("proj", proj), ("norm", norm)] }

    /// [B, 3, H, W] → tokens [B, h, w, C] with h = ⌈H/p⌉, w = ⌈W/p⌉.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        norm(
            proj(x.zeroPadded(height: roundUp(x.shape[2], patchSize), width: roundUp(x.shape[3], patchSize)))
                .permuted([0, 2, 3, 1]))
    }
}

/// Window multi-head self-attention with a learned relative-position bias per head
/// (`WindowAttention`). Keys: `qkv.*`, `proj.*`, `relative_position_bias_table`
/// ([(2ws−1)², heads]); the checkpoint's `relative_position_index` is recomputed, not loaded.
public final class SwinWindowAttention: Module {
    public let qkv: Linear
    public let proj: Linear
    public let relativePositionBiasTable: Tensor
    public let heads: Int
    public let windowSize: Int
    /// For each (query, key) pair of a window, its row of the table: (dy + ws − 1)(2ws − 1) + dx + ws − 1.
    public let relativePositionIndex: [Int]

    public init(dim: Int, heads: Int, windowSize: Int) {
        qkv = Linear(inputFeatures: dim, outputFeatures: 3 * dim)
        proj = Linear(inputFeatures: dim, outputFeatures: dim)
        relativePositionBiasTable = Tensor.parameter(uninitialized: [(2 * windowSize - 1) * (2 * windowSize - 1), heads])
        (self.heads, self.windowSize) = (heads, windowSize)
        let n = windowSize * windowSize
        relativePositionIndex = (0..<(n * n)).map { pair in
            let (i, j) = (pair / n, pair % n)
            let (dy, dx) = (i / windowSize - j / windowSize, i % windowSize - j % windowSize)
            return (dy + windowSize - 1) * (2 * windowSize - 1) + dx + windowSize - 1
        }
    }

    public var namedParameters: [(String, Tensor)] { [("relative_position_bias_table", relativePositionBiasTable)] }
    public var namedChildren: [(String, Module)] { [("qkv", qkv), ("proj", proj)] }

    /// Windows [B·nW, N, C] → [B·nW, N, C]; `mask` [nW, N, N] (0 or −100) for shifted windows.
    public func callAsFunction(_ x: Tensor, mask: Tensor?) -> Tensor {
        let (windows, n, c) = (x.shape[0], x.shape[1], x.shape[2])
        let headDim = c / heads
        let parts = qkv(x).reshaped(to: [windows, n, 3, heads, headDim]).permuted([2, 0, 3, 1, 4])
        func part(_ k: Int) -> Tensor { parts.slice(alongAxis: 0, k..<(k + 1)).reshaped(to: [windows * heads, n, headDim]) }
        let q = part(0) * Float(1 / Double(headDim).squareRoot())
        var scores = Tensor.matmul(q, part(1), transposeB: true).reshaped(to: [windows, heads, n, n])
        let bias = relativePositionBiasTable.gatheringRows(relativePositionIndex).reshaped(to: [n, n, heads])
            .permuted([2, 0, 1]).reshaped(to: [1, heads, n, n])
        scores = scores + bias
        if let mask {
            let count = mask.shape[0]
            scores = (scores.reshaped(to: [windows / count, count, heads, n, n]) + mask.reshaped(to: [1, count, 1, n, n]))
                .reshaped(to: [windows, heads, n, n])
        }
        let attention = scores.softmax(alongAxis: 3).reshaped(to: [windows * heads, n, n])
        let out = Tensor.matmul(attention, part(2)).reshaped(to: [windows, heads, n, headDim]).permuted([0, 2, 1, 3])
        return proj(out.reshaped(to: [windows, n, c]))
    }
}

/// torch's two-layer MLP of Swin (`Mlp`): fc1 → GELU → fc2. Keys `fc1.*`, `fc2.*`.
public final class SwinMLP: Module {
    public let fc1: Linear
    public let fc2: Linear

    public init(dim: Int, hidden: Int) {
        fc1 = Linear(inputFeatures: dim, outputFeatures: hidden)
        fc2 = Linear(inputFeatures: hidden, outputFeatures: dim)
    }

    public var namedChildren: [(String, Module)] { [("fc1", fc1), ("fc2", fc2)] }
    public func callAsFunction(_ x: Tensor) -> Tensor {
        Tensor.feedForward(x, weight1: fc1.weight, bias1: fc1.bias, activation: .gelu, weight2: fc2.weight, bias2: fc2.bias)
            ?? fc2(fc1(x).gelu())
    }
}

/// One Swin block (`SwinTransformerBlock`): x + attention over (shifted) windows of norm1(x),
/// then x + mlp(norm2(x)). Keys `norm1.*`, `attn.*`, `norm2.*`, `mlp.*`.
public final class SwinBlock: Module {
    public let norm1: LayerNorm
    public let attn: SwinWindowAttention
    public let norm2: LayerNorm
    public let mlp: SwinMLP
    public let shift: Int

    public init(dim: Int, heads: Int, windowSize: Int, shift: Int, mlpRatio: Double) {
        norm1 = LayerNorm(dim)
        attn = SwinWindowAttention(dim: dim, heads: heads, windowSize: windowSize)
        norm2 = LayerNorm(dim)
        mlp = SwinMLP(dim: dim, hidden: Int(Double(dim) * mlpRatio))
        self.shift = shift
    }

    public var namedChildren: [(String, Module)] { [("norm1", norm1), ("attn", attn), ("norm2", norm2), ("mlp", mlp)] }

    /// Tokens [B, H, W, C] → [B, H, W, C]; `mask` is the stage's shifted-window mask.
    public func callAsFunction(_ x: Tensor, mask: Tensor?) -> Tensor {
        let recording = GradMode.isEnabled && (x.requiresGrad || stateDict().contains { $0.tensor.requiresGrad })
        if !recording { return inference(x, mask: mask) }
        let (h, w) = (x.shape[1], x.shape[2])
        let ws = attn.windowSize
        var y = norm1(x).zeroPadded(height: roundUp(h, ws), width: roundUp(w, ws), axes: (1, 2))
        if shift > 0 { y = y.rolled(by: -shift, alongAxis: 1).rolled(by: -shift, alongAxis: 2) }
        let (windows, padded) = y.windowPartitioned(windowSize: ws)
        let c = x.shape[3]
        let attended = attn(windows.reshaped(to: [windows.shape[0], ws * ws, c]), mask: shift > 0 ? mask : nil)
        y = Tensor.windowUnpartitioned(
            attended.reshaped(to: [windows.shape[0], ws, ws, c]), windowSize: ws, paddedSize: padded, size: padded)
        if shift > 0 { y = y.rolled(by: shift, alongAxis: 1).rolled(by: shift, alongAxis: 2) }
        if padded.height > h { y = y.slice(alongAxis: 1, 0..<h) }
        if padded.width > w { y = y.slice(alongAxis: 2, 0..<w) }
        let z = x + y
        return z + mlp(norm2(z))
    }
}

extension SwinBlock {
    /// The block without a tape: the shifted, padded windows gathered in one pass and scattered
    /// back in one pass (the same values as pad, roll, partition and their inverses, without
    /// their five copies of the stage's tokens).
    func inference(_ x: Tensor, mask: Tensor?) -> Tensor {
        let (b, h, w, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let ws = attn.windowSize
        let (hp, wp) = (roundUp(h, ws), roundUp(w, ws))
        let (nh, nw) = (hp / ws, wp / ws)
        let count = b * nh * nw
        let normed = norm1(x)
        /// The source pixel of row r, column q of window (batch, wy, wx), nil in the padding.
        func source(_ batch: Int, _ wy: Int, _ wx: Int, _ r: Int, _ q: Int) -> Int? {
            let (y, xx) = ((wy * ws + r + shift) % hp, (wx * ws + q + shift) % wp)
            return y < h && xx < w ? ((batch * h + y) * w + xx) * c : nil
        }
        let windows = Tensor(uninitialized: [count, ws * ws, c])
        let (src, dst) = (normed.storage.base, windows.storage.base)
        parallelFor(count * ws, minimumPerThread: 16) { range in
            for index in range {
                let (window, r) = (index / ws, index % ws)
                let (batch, wy, wx) = (window / (nh * nw), (window / nw) % nh, window % nw)
                for q in 0..<ws {
                    let out = dst + ((window * ws + r) * ws + q) * c
                    if let from = source(batch, wy, wx, r, q) {
                        out.update(from: src + from, count: c)
                    } else {
                        out.update(repeating: 0, count: c)
                    }
                }
            }
        }
        let attended = attn(windows, mask: shift > 0 ? mask : nil)
        // Back to the image, each pixel from its window (padding dropped), plus the shortcut.
        let y = Tensor(uninitialized: x.shape)
        let (a, o, shortcut) = (attended.storage.base, y.storage.base, x.storage.base)
        parallelFor(count * ws, minimumPerThread: 16) { range in
            for index in range {
                let (window, r) = (index / ws, index % ws)
                let (batch, wy, wx) = (window / (nh * nw), (window / nw) % nh, window % nw)
                for q in 0..<ws {
                    guard let to = source(batch, wy, wx, r, q) else { continue }
                    let from = a + ((window * ws + r) * ws + q) * c
                    for k in 0..<c { o[to + k] = shortcut[to + k] + from[k] }
                }
            }
        }
        return y + mlp(norm2(y))
    }
}

/// Swin's downsampling between stages (`PatchMerging`): zero-pad to even sizes, gather each 2×2
/// neighbourhood in the order (0,0), (1,0), (0,1), (1,1), LayerNorm(4C), Linear(4C → 2C, no bias).
public final class SwinPatchMerging: Module {
    public let norm: LayerNorm
    public let reduction: Linear

    public init(dim: Int) {
        norm = LayerNorm(4 * dim)
        reduction = Linear(inputFeatures: 4 * dim, outputFeatures: 2 * dim, bias: false)
    }

    public var namedChildren: [(String, Module)] { [("reduction", reduction), ("norm", norm)] }

    /// [B, H, W, C] → [B, ⌈H/2⌉, ⌈W/2⌉, 2C].
    public func callAsFunction(_ x: Tensor) -> Tensor {
        let (b, h, w, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (h2, w2) = ((h + 1) / 2, (w + 1) / 2)
        let padded = x.zeroPadded(height: 2 * h2, width: 2 * w2, axes: (1, 2))
        // [B, h2, 2 (row), w2, 2 (column), C] → [B, h2, w2, column, row, C]: the reference's order.
        let merged = padded.reshaped(to: [b, h2, 2, w2, 2, c]).permuted([0, 1, 3, 4, 2, 5]).reshaped(to: [b, h2, w2, 4 * c])
        return reduction(norm(merged))
    }
}

/// One stage (`BasicLayer`): blocks alternating plain and shifted windows, then the optional
/// patch merging. Keys `blocks.<i>.*`, `downsample.*`.
public final class SwinStage: Module {
    public let blocks: ModuleList<SwinBlock>
    public let downsample: SwinPatchMerging?
    public let windowSize: Int

    public init(dim: Int, depth: Int, heads: Int, windowSize: Int, mlpRatio: Double, downsample: Bool) {
        blocks = ModuleList(
            (0..<depth).map {
                SwinBlock(
                    dim: dim, heads: heads, windowSize: windowSize, shift: $0 % 2 == 0 ? 0 : windowSize / 2, mlpRatio: mlpRatio)
            })
        self.downsample = downsample ? SwinPatchMerging(dim: dim) : nil
        self.windowSize = windowSize
    }

    public var namedChildren: [(String, Module)] {
        [("blocks", blocks)] + (downsample.map { [("downsample", $0 as Module)] } ?? [])
    }

    /// The stage's output before downsampling, and the downsampled tokens (nil for the last stage).
    public func callAsFunction(_ x: Tensor) -> (output: Tensor, next: Tensor?) {
        let mask = Self.shiftMask(height: x.shape[1], width: x.shape[2], windowSize: windowSize)
        var y = x
        for block in blocks.elements { y = block(y, mask: mask) }
        return (y, downsample.map { $0(y) })
    }

    /// The attention mask of shifted windows for an H × W stage (BasicLayer.forward): the padded
    /// plane cut into 3 × 3 regions by the window and the shift; 0 between tokens of one region,
    /// −100 otherwise. [nW, ws², ws²], windows row-major.
    public static func shiftMask(height h: Int, width w: Int, windowSize ws: Int) -> Tensor {
        let shift = ws / 2
        let (hp, wp) = (roundUp(h, ws), roundUp(w, ws))
        func region(_ i: Int, _ size: Int) -> Int { i < size - ws ? 0 : (i < size - shift ? 1 : 2) }
        let (nh, nw) = (hp / ws, wp / ws)
        let n = ws * ws
        var values = [Float](repeating: 0, count: nh * nw * n * n)
        for window in 0..<(nh * nw) {
            let (wy, wx) = (window / nw, window % nw)
            let labels = (0..<n).map { k in
                region(wy * ws + k / ws, hp) * 3 + region(wx * ws + k % ws, wp)
            }
            for i in 0..<n {
                for j in 0..<n where labels[i] != labels[j] { values[(window * n + i) * n + j] = -100 }
            }
        }
        return Tensor(shape: [nh * nw, n, n], values: values)
    }
}

/// The Swin Transformer backbone as Grounding DINO uses it (`backbone.0.*`): stages 1, 2 and 3
/// (of 0…3) returned, each through its own LayerNorm (`norm1`…`norm3`), as NCHW.
public final class SwinTransformer: Module {
    public let configuration: SwinConfiguration
    public let patchEmbed: SwinPatchEmbed
    public let layers: ModuleList<SwinStage>
    /// LayerNorms of the returned stages, keyed `norm<i>`.
    public let norms: [(Int, LayerNorm)]
    /// The stages returned (Grounding DINO: 1, 2, 3).
    public let outIndices: [Int]

    public init(_ configuration: SwinConfiguration, outIndices: [Int] = [1, 2, 3]) {
        self.configuration = configuration
        patchEmbed = SwinPatchEmbed(patchSize: configuration.patchSize, embedDim: configuration.embedDim)
        let stages = configuration.depths.count
        layers = ModuleList(
            (0..<stages).map { i in
                SwinStage(
                    dim: configuration.channels(ofStage: i), depth: configuration.depths[i], heads: configuration.heads[i],
                    windowSize: configuration.windowSize, mlpRatio: configuration.mlpRatio, downsample: i < stages - 1)
            })
        norms = outIndices.map { ($0, LayerNorm(configuration.channels(ofStage: $0))) }
        self.outIndices = outIndices
    }

    public var namedChildren: [(String, Module)] {
        [("patch_embed", patchEmbed), ("layers", layers)] + norms.map { ("norm\($0.0)", $0.1 as Module) }
    }

    /// Channels of the returned feature maps.
    public var outputChannels: [Int] { outIndices.map(configuration.channels(ofStage:)) }

    /// [B, 3, H, W] → the returned stages' features [B, C_i, h_i, w_i].
    public func callAsFunction(_ image: Tensor) -> [Tensor] {
        var x = patchEmbed(image)
        var outputs: [Tensor] = []
        for (i, stage) in layers.elements.enumerated() {
            let (output, next) = stage(x)
            if let norm = norms.first(where: { $0.0 == i })?.1 { outputs.append(norm(output).permuted([0, 3, 1, 2])) }
            guard let next else { break }
            x = next
        }
        return outputs
    }
}

/// The smallest multiple of `m` at least `n`.
func roundUp(_ n: Int, _ m: Int) -> Int { (n + m - 1) / m * m }

extension Tensor {
    /// Zero-padded at the bottom / right of two axes to `height` × `width` (NCHW's axes 2, 3 by default).
    func zeroPadded(height: Int, width: Int, axes: (Int, Int) = (2, 3)) -> Tensor {
        var x = self
        if height > x.shape[axes.0] {
            var padShape = x.shape
            padShape[axes.0] = height - x.shape[axes.0]
            x = Tensor.concat([x, Tensor(zeros: padShape)], alongAxis: axes.0)
        }
        if width > x.shape[axes.1] {
            var padShape = x.shape
            padShape[axes.1] = width - x.shape[axes.1]
            x = Tensor.concat([x, Tensor(zeros: padShape)], alongAxis: axes.1)
        }
        return x
    }

    /// torch.roll along one axis: element i moves to (i + shift) mod n.
    func rolled(by shift: Int, alongAxis axis: Int) -> Tensor {
        let n = shape[axis]
        let s = ((shift % n) + n) % n
        guard s != 0 else { return self }
        return Tensor.concat([slice(alongAxis: axis, (n - s)..<n), slice(alongAxis: axis, 0..<(n - s))], alongAxis: axis)
    }
}
