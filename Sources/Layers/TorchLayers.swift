import Autograd

// Generic torch.nn layers (SAM is built from them; any port of a torch model can be). Each
// keeps torch's parameter names and shapes, so state_dict keys come out verbatim.
//
// Their parameters are allocated but not initialised: a model made of them loads a checkpoint
// (SAM's `load(from:)` writes every parameter and refuses partial checkpoints). Not touching the
// memory keeps building ViT-H (2.5 GB of weights) cheap until it is loaded.

extension Tensor {
    /// A parameter of `shape`, allocated but not initialised (see above): for models that
    /// always load their weights.
    public static func parameter(uninitialized shape: [Int]) -> Tensor { Tensor(uninitialized: shape).requiringGrad() }
}

/// torch.nn.Linear: y = x Wᵀ + b over the last axis.
public final class Linear: Module {
    /// [outputFeatures, inputFeatures].
    public let weight: Tensor
    /// [outputFeatures], or nil.
    public let bias: Tensor?

    /// An inputFeatures → outputFeatures layer (torch's in_features, out_features); weights not
    /// initialised.
    public init(inputFeatures: Int, outputFeatures: Int, bias: Bool = true) {
        weight = Tensor.parameter(uninitialized: [outputFeatures, inputFeatures])
        self.bias = bias ? Tensor.parameter(uninitialized: [outputFeatures]) : nil
    }

    public var namedParameters: [(String, Tensor)] { [("weight", weight)] + (bias.map { [("bias", $0)] } ?? []) }

    /// The weight rounded to bf16 and packed (`Module.setPrecision(.bf16)`); used instead of
    /// `weight` whenever no tape records. Made from the weight's values at the time: load
    /// weights first.
    public private(set) var packedBF16: PackedBF16?

    /// Packs the weight as bf16 (true) or drops the packed copy (false).
    public func useBF16(_ on: Bool) {
        packedBF16 = on ? PackedBF16(weight.storage.base, k: weight.shape[1], n: weight.shape[0], transposed: true) : nil
    }

    /// [..., inputFeatures] → [..., outputFeatures].
    public func callAsFunction(_ x: Tensor) -> Tensor {
        if let packedBF16, !GradMode.isEnabled { return Tensor.linear(x, packed: packedBF16, bias: bias) }
        return Tensor.linear(x, weight: weight, bias: bias)
    }
}

/// torch.nn.LayerNorm over the last axis, with affine weight and bias.
public final class LayerNorm: Module {
    /// [dim].
    public let weight: Tensor
    /// [dim].
    public let bias: Tensor
    /// torch's default is 1e-5; SAM's image encoder passes 1e-6 (build_sam.py's `norm_layer`).
    public let epsilon: Float

    /// A normalisation over `dim` features; weights not initialised.
    public init(_ dim: Int, epsilon: Float = 1e-5) {
        weight = Tensor.parameter(uninitialized: [dim])
        bias = Tensor.parameter(uninitialized: [dim])
        self.epsilon = epsilon
    }

    public var namedParameters: [(String, Tensor)] { [("weight", weight), ("bias", bias)] }

    /// [..., dim] → [..., dim].
    public func callAsFunction(_ x: Tensor) -> Tensor { x.layerNorm(weight: weight, bias: bias, epsilon: epsilon) }
}

/// torch.nn.Embedding as SAM uses it: a table of learned vectors read whole (`.weight`), never
/// indexed.
public final class Embedding: Module {
    /// [count, dimensions].
    public let weight: Tensor

    /// A table of `count` vectors of `dimensions` (torch's num_embeddings, embedding_dim); not
    /// initialised.
    public init(count: Int, dimensions: Int) { weight = Tensor.parameter(uninitialized: [count, dimensions]) }

    public var namedParameters: [(String, Tensor)] { [("weight", weight)] }
}

/// torch.nn.ConvTranspose2d (groups 1, no padding, as SAM's output upscaling).
public final class ConvTranspose2d: Module {
    /// [inputChannels, outputChannels, kernel, kernel] (torch's layout for transposed convolutions).
    public let weight: Tensor
    /// [outputChannels].
    public let bias: Tensor
    /// Output step per input pixel (the kernel side in SAM).
    public let stride: Int

    /// A square transposed convolution; weights not initialised.
    public init(inputChannels: Int, outputChannels: Int, kernelSize: Int, stride: Int) {
        weight = Tensor.parameter(uninitialized: [inputChannels, outputChannels, kernelSize, kernelSize])
        bias = Tensor.parameter(uninitialized: [outputChannels])
        self.stride = stride
    }

    public var namedParameters: [(String, Tensor)] { [("weight", weight), ("bias", bias)] }

    /// [N, inputChannels, H, W] → [N, outputChannels, (H-1)·stride + kernel, (W-1)·stride + kernel].
    public func callAsFunction(_ x: Tensor) -> Tensor {
        Tensor.convTranspose2d(x, weight: weight, bias: bias, stride: stride, padding: 0)
    }
}

/// torch.nn.Conv2d with groups = channels, no bias (MobileSAM's depthwise convolutions).
/// Keys: `weight` [channels, 1, k, k].
public final class DepthwiseConv2d: Module {
    /// [channels, 1, kernel, kernel].
    public let weight: Tensor
    /// Output step and zero padding on every side.
    public let stride, padding: Int

    /// A square depthwise convolution; weights not initialised.
    public init(channels: Int, kernelSize: Int, stride: Int = 1, padding: Int = 0) {
        weight = Tensor.parameter(uninitialized: [channels, 1, kernelSize, kernelSize])
        (self.stride, self.padding) = (stride, padding)
    }

    public var namedParameters: [(String, Tensor)] { [("weight", weight)] }

    /// [N, C, H, W] → [N, C, H', W'].
    public func callAsFunction(_ x: Tensor) -> Tensor {
        Tensor.depthwiseConv2d(x, weight: weight, bias: nil, stride: stride, padding: padding)
    }
}

/// torch.nn.GELU (exact, erf form) or torch.nn.ReLU as a module: no parameters, but it takes an
/// index in an nn.Sequential, so the keys of the layers after it keep their numbers.
public final class Activation: Module {
    /// The function applied.
    public enum Kind: Sendable {
        /// torch.nn.GELU(): x · Φ(x) with the erf form (approximate="none").
        case gelu
        /// torch.nn.ReLU.
        case relu
    }

    /// Which function.
    public let kind: Kind

    /// The activation `kind`.
    public init(_ kind: Kind) { self.kind = kind }

    /// The function element-wise; any shape.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        switch kind {
        case .gelu: x.gelu()
        case .relu: x.relu()
        }
    }
}

/// torch.nn.ModuleList: children named "0", "1", … in order.
public final class ModuleList<Element: Module>: Module {
    /// The children, in order.
    public let elements: [Element]

    /// A list of `elements`.
    public init(_ elements: [Element]) { self.elements = elements }

    public var namedChildren: [(String, Module)] { elements.enumerated().map { (String($0.offset), $0.element) } }

    /// The element at `index`.
    public subscript(index: Int) -> Element { elements[index] }

    /// Number of elements.
    public var count: Int { elements.count }
}

/// Layer normalisation over the channels of NCHW (common.py, `LayerNorm2d`, from ConvNeXt):
/// per pixel, (x - mean_c) / sqrt(var_c + eps) · weight + bias, with the biased variance and
/// eps 1e-6. Keys: `weight`, `bias` ([channels]).
public final class LayerNorm2d: Module {
    /// [channels].
    public let weight: Tensor
    /// [channels].
    public let bias: Tensor
    /// Added to the variance (1e-6, as the reference).
    public let epsilon: Float

    /// Weights allocated, not initialised.
    public init(_ channels: Int, epsilon: Float = 1e-6) {
        weight = Tensor.parameter(uninitialized: [channels])
        bias = Tensor.parameter(uninitialized: [channels])
        self.epsilon = epsilon
    }

    public var namedParameters: [(String, Tensor)] { [("weight", weight), ("bias", bias)] }

    /// [N, C, H, W] → [N, C, H, W].
    public func callAsFunction(_ x: Tensor) -> Tensor { x.layerNorm2d(weight: weight, bias: bias, epsilon: epsilon) }
}
