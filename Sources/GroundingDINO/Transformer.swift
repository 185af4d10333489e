import Autograd
import Layers
import SegmentAnything

// Grounding DINO's transformer (transformer.py): the feature enhancer (per layer: image↔text
// fusion, text self-attention, deformable self-attention over the image tokens), language-guided
// query selection (two-stage "standard") and the cross-modality decoder with box refinement.

/// torch.nn.GroupNorm (eps 1e-5) over NCHW: channels in `groups` groups, each normalised over its
/// channels and pixels, then a per-channel affine. Keys `weight`, `bias`.
public final class GroupNorm: Module {
    public let weight: Tensor
    public let bias: Tensor
    public let groups: Int

    public init(groups: Int, channels: Int) {
        weight = Tensor.parameter(uninitialized: [channels])
        bias = Tensor.parameter(uninitialized: [channels])
        self.groups = groups
    }

    public var namedParameters: [(String, Tensor)] { [("weight", weight), ("bias", bias)] }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        let (b, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let size = c / groups * h * w
        let normalised = x.reshaped(to: [b, groups, size])
            .layerNorm(weight: Tensor(repeating: 1, shape: [size]), bias: Tensor(zeros: [size]), epsilon: 1e-5)
            .reshaped(to: [b, c, h, w])
        return normalised * weight.reshaped(to: [1, c, 1, 1]) + bias.reshaped(to: [1, c, 1, 1])
    }
}

/// Feed-forward of the transformer layers: linear1 → ReLU → linear2, added and normalised.
/// Keys `linear1.*`, `linear2.*` (the norm is the caller's).
struct FeedForward {
    let linear1: Linear
    let linear2: Linear
    init(dim: Int, hidden: Int) {
        linear1 = Linear(inputFeatures: dim, outputFeatures: hidden)
        linear2 = Linear(inputFeatures: hidden, outputFeatures: dim)
    }
    func callAsFunction(_ x: Tensor) -> Tensor {
        Tensor.feedForward(
            x, weight1: linear1.weight, bias1: linear1.bias, activation: .relu, weight2: linear2.weight, bias2: linear2.bias)
            ?? linear2(linear1(x).relu())
    }
    var children: [(String, Module)] { [("linear1", linear1), ("linear2", linear2)] }
}

/// The deformable self-attention layer over image tokens (`DeformableTransformerEncoderLayer`).
/// Keys `self_attn.*`, `norm1.*`, `linear1.*`, `linear2.*`, `norm2.*`.
public final class DeformableEncoderLayer: Module {
    public let selfAttn: DeformableAttention
    public let norm1: LayerNorm
    let ffn: FeedForward
    public let norm2: LayerNorm

    init(_ c: GroundingDINOConfiguration) {
        selfAttn = DeformableAttention(dim: c.hiddenDim, heads: c.heads, levels: c.levels, points: c.encoderPoints)
        norm1 = LayerNorm(c.hiddenDim)
        ffn = FeedForward(dim: c.hiddenDim, hidden: c.feedForward)
        norm2 = LayerNorm(c.hiddenDim)
    }

    public var namedChildren: [(String, Module)] {
        [("self_attn", selfAttn), ("norm1", norm1)] + ffn.children + [("norm2", norm2)]
    }

    func callAsFunction(_ src: Tensor, pos: Tensor, reference: Tensor, shapes: [(height: Int, width: Int)]) -> Tensor {
        let x = norm1(src + selfAttn(query: src + pos, value: src, reference: reference, shapes: shapes))
        return norm2(x + ffn(x))
    }
}

/// The text enhancer layer (`TransformerEncoderLayer` of transformer_vanilla.py, post-norm):
/// self-attention with the sub-sentence mask and the text position embedding on q and k.
/// Keys `self_attn.*`, `linear1.*`, `linear2.*`, `norm1.*`, `norm2.*`.
public final class TextEnhancerLayer: Module {
    public let selfAttn: TorchMultiheadAttention
    let ffn: FeedForward
    public let norm1: LayerNorm
    public let norm2: LayerNorm

    init(_ c: GroundingDINOConfiguration) {
        selfAttn = TorchMultiheadAttention(dim: c.hiddenDim, heads: c.heads / 2)
        ffn = FeedForward(dim: c.hiddenDim, hidden: c.feedForward / 2)
        norm1 = LayerNorm(c.hiddenDim)
        norm2 = LayerNorm(c.hiddenDim)
    }

    public var namedChildren: [(String, Module)] {
        [("self_attn", selfAttn)] + ffn.children + [("norm1", norm1), ("norm2", norm2)]
    }

    func callAsFunction(_ text: Tensor, pos: Tensor, mask: Tensor) -> Tensor {
        let qk = text + pos
        let x = norm1(text + selfAttn(query: qk, key: qk, value: text, bias: mask))
        return norm2(x + ffn(x))
    }
}

/// One decoder layer (`DeformableTransformerDecoderLayer`, post-norm): query self-attention,
/// cross-attention to the text, deformable cross-attention to the image, feed-forward.
public final class DecoderLayer: Module {
    public let crossAttn: DeformableAttention
    public let norm1: LayerNorm
    public let caText: TorchMultiheadAttention
    public let catextNorm: LayerNorm
    public let selfAttn: TorchMultiheadAttention
    public let norm2: LayerNorm
    let ffn: FeedForward
    public let norm3: LayerNorm

    init(_ c: GroundingDINOConfiguration) {
        crossAttn = DeformableAttention(dim: c.hiddenDim, heads: c.heads, levels: c.levels, points: c.decoderPoints)
        norm1 = LayerNorm(c.hiddenDim)
        caText = TorchMultiheadAttention(dim: c.hiddenDim, heads: c.heads)
        catextNorm = LayerNorm(c.hiddenDim)
        selfAttn = TorchMultiheadAttention(dim: c.hiddenDim, heads: c.heads)
        norm2 = LayerNorm(c.hiddenDim)
        ffn = FeedForward(dim: c.hiddenDim, hidden: c.feedForward)
        norm3 = LayerNorm(c.hiddenDim)
    }

    public var namedChildren: [(String, Module)] {
        [
            ("cross_attn", crossAttn), ("norm1", norm1), ("ca_text", caText), ("catext_norm", catextNorm),
            ("self_attn", selfAttn), ("norm2", norm2),
        ] + ffn.children + [("norm3", norm3)]
    }

    func callAsFunction(
        _ target: Tensor, queryPos: Tensor, reference: Tensor, memory: Tensor, memoryText: Tensor,
        shapes: [(height: Int, width: Int)]
    ) -> Tensor {
        let q = target + queryPos
        var t = norm2(target + selfAttn(query: q, key: q, value: target))
        t = catextNorm(t + caText(query: t + queryPos, key: memoryText, value: memoryText))
        t = norm1(t + crossAttn(query: t + queryPos, value: memory, reference: reference, shapes: shapes))
        return norm3(t + ffn(t))
    }
}
