import Autograd
import Layers

// segment_anything/modeling/common.py (its LayerNorm2d is a generic layer: Layers/TorchLayers.swift).

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
