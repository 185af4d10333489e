import Autograd
import Layers

// segment_anything/modeling/common.py.

/// Two linear layers with an activation between them (common.py, `MLPBlock`): the ViT blocks'
/// MLP (GELU) and the two-way transformer's (ReLU).
/// Keys: `lin1.{weight,bias}`, `lin2.{weight,bias}`.
public final class MLPBlock: Module {
    /// embeddingDim → mlpDim.
    public let lin1: Linear
    /// mlpDim → embeddingDim.
    public let lin2: Linear
    /// Between the two layers (no parameters).
    public let act: Activation

    /// Weights allocated, not initialised (see TorchLayers.swift).
    public init(embeddingDim: Int, mlpDim: Int, activation: Activation.Kind = .gelu) {
        lin1 = Linear(inputFeatures: embeddingDim, outputFeatures: mlpDim)
        lin2 = Linear(inputFeatures: mlpDim, outputFeatures: embeddingDim)
        act = Activation(activation)
    }

    public var namedChildren: [(String, Module)] { [("lin1", lin1), ("lin2", lin2), ("act", act)] }

    /// [..., embeddingDim] → [..., embeddingDim].
    public func callAsFunction(_ x: Tensor) -> Tensor { lin2(act(lin1(x))) }
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
        weight = parameter([channels])
        bias = parameter([channels])
        self.epsilon = epsilon
    }

    public var namedParameters: [(String, Tensor)] { [("weight", weight), ("bias", bias)] }

    /// [N, C, H, W] → [N, C, H, W].
    public func callAsFunction(_ x: Tensor) -> Tensor { x.layerNorm2d(weight: weight, bias: bias, epsilon: epsilon) }
}
