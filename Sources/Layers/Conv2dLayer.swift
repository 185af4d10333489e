import Autograd
import Foundation

/// A 2-D convolution with its weight (and optional bias): torch.nn.Conv2d (groups = 1).
public final class Conv2d: Module {
    public let weight: Tensor
    public let bias: Tensor?
    public let stride, padding, dilation: Int

    /// A square `kernelSize` convolution from `inputChannels` to `outputChannels`: weight
    /// [outputChannels, inputChannels, kernelSize, kernelSize], bias [outputChannels].
    ///
    /// Weights are drawn with Kaiming-normal (fan_out, ReLU gain) as torchvision's ResNet
    /// initialises convolutions; biases start at zero. Channel counts are labelled (as
    /// mlx-swift's `Conv2d(inputChannels:outputChannels:kernelSize:)`) so they cannot swap silently.
    public init(
        inputChannels: Int, outputChannels: Int, kernelSize: Int, stride: Int = 1, padding: Int = 0, dilation: Int = 1,
        bias: Bool = false, generator: inout SeededGenerator
    ) {
        let fanOut = Float(outputChannels * kernelSize * kernelSize)
        weight = Tensor.randomNormal(
            [outputChannels, inputChannels, kernelSize, kernelSize],
            standardDeviation: (2 / fanOut).squareRoot(), using: &generator
        ).requiringGrad()
        self.bias = bias ? Tensor(zeros: [outputChannels]).requiringGrad() : nil
        self.stride = stride
        self.padding = padding
        self.dilation = dilation
    }

    public var namedParameters: [(String, Tensor)] { [("weight", weight)] + (bias.map { [("bias", $0)] } ?? []) }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        x.conv2d(weight: weight, bias: bias, stride: stride, padding: padding, dilation: dilation)
    }
}

/// Batch normalisation over channels: torch.nn.BatchNorm2d (eps 1e-5, momentum 0.1).
///
/// `frozen` (DeepLab-v2) always normalises with the running statistics and keeps γ and β fixed:
/// they get no gradient and are not trainable parameters. `frozen` with `trainableAffine` is
/// IRN's `FixedBatchNorm` (net/resnet50.py): running statistics always, γ and β still learnt.
public final class BatchNorm2d: Module {
    public let weight: Tensor
    public let bias: Tensor
    public let runningMean: Tensor
    public let runningVar: Tensor
    /// torch's `num_batches_tracked` (kept so key lists match; counts training steps).
    public let numBatchesTracked: Tensor
    public let eps: Float
    public let momentum: Float
    public private(set) var isTraining = true
    public let frozen: Bool
    /// When set, training-mode statistics cover every process of a data-parallel job
    /// (`syncBatchNorm`, as torch.nn.SyncBatchNorm); nil: this process's batch only.
    public var crossProcessSum: CrossProcessSum?

    public init(_ channels: Int, frozen: Bool = false, trainableAffine: Bool = false, eps: Float = 1e-5, momentum: Float = 0.1) {
        let gamma = Tensor(repeating: 1, shape: [channels]), beta = Tensor(zeros: [channels])
        let fixedAffine = frozen && !trainableAffine
        weight = fixedAffine ? gamma : gamma.requiringGrad()
        bias = fixedAffine ? beta : beta.requiringGrad()
        runningMean = Tensor(zeros: [channels])
        runningVar = Tensor(repeating: 1, shape: [channels])
        numBatchesTracked = Tensor(zeros: [])
        self.eps = eps
        self.momentum = momentum
        self.frozen = frozen
    }

    public var namedParameters: [(String, Tensor)] { [("weight", weight), ("bias", bias)] }
    public var namedBuffers: [(String, Tensor)] {
        [("running_mean", runningMean), ("running_var", runningVar), ("num_batches_tracked", numBatchesTracked)]
    }
    public func setTrainingFlag(_ training: Bool) { isTraining = training }

    /// Normalises `x`; with `relu`, also applies ReLU in the same pass (`bn(x).relu()`).
    public func callAsFunction(_ x: Tensor, relu: Bool = false) -> Tensor {
        let batchStatistics = isTraining && !frozen
        if batchStatistics && GradMode.isEnabled { numBatchesTracked.storage.base[0] += 1 }
        if batchStatistics, let crossProcessSum {
            return x.syncBatchNorm(
                weight: weight, bias: bias, runningMean: runningMean, runningVar: runningVar,
                momentum: momentum, eps: eps, relu: relu, sum: crossProcessSum)
        }
        return x.batchNorm(
            weight: weight, bias: bias, runningMean: runningMean, runningVar: runningVar,
            training: batchStatistics, momentum: momentum, eps: eps, relu: relu)
    }
}
