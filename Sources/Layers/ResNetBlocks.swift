import Autograd

/// Where a bottleneck block strides: caffe/MSRA ResNets (and the DeepLab-v2 weights converted
/// from them) stride on the first 1x1 convolution; torchvision strides on the 3x3.
public enum BlockStyle: String, Codable, Sendable {
    case caffe
    case torchvision
}

/// A residual block: x → F(x) + shortcut(x) → ReLU.
public protocol ResidualBlock: Module {
    func callAsFunction(_ x: Tensor) -> Tensor
}

/// The 1x1 projection shortcut: `downsample.0` (conv) and `downsample.1` (BN), torchvision keys.
public final class Downsample: Module {
    public let conv: Conv2d
    public let bn: BatchNorm2d

    init(
        inputChannels: Int, outputChannels: Int, stride: Int, frozenBN: Bool, bnAffine: Bool = false,
        generator: inout SeededGenerator
    ) {
        conv = Conv2d(
            inputChannels: inputChannels, outputChannels: outputChannels, kernelSize: 1, stride: stride,
            generator: &generator)
        bn = BatchNorm2d(outputChannels, frozen: frozenBN, trainableAffine: bnAffine)
    }

    public var namedChildren: [(String, Module)] { [("0", conv), ("1", bn)] }
    public func callAsFunction(_ x: Tensor) -> Tensor { bn(conv(x)) }
}

/// ResNet-50/101 bottleneck: 1x1 reduce, 3x3 (dilated), 1x1 expand (x4).
public final class Bottleneck: ResidualBlock {
    public static let expansion = 4
    public let conv1: Conv2d, bn1: BatchNorm2d
    public let conv2: Conv2d, bn2: BatchNorm2d
    public let conv3: Conv2d, bn3: BatchNorm2d
    public let downsample: Downsample?

    public init(
        inChannels: Int, planes: Int, stride: Int, dilation: Int, style: BlockStyle, frozenBN: Bool, bnAffine: Bool = false,
        generator: inout SeededGenerator
    ) {
        let out = planes * Bottleneck.expansion
        let (s1, s3) = style == .caffe ? (stride, 1) : (1, stride)
        conv1 = Conv2d(inputChannels: inChannels, outputChannels: planes, kernelSize: 1, stride: s1, generator: &generator)
        bn1 = BatchNorm2d(planes, frozen: frozenBN, trainableAffine: bnAffine)
        conv2 = Conv2d(
            inputChannels: planes, outputChannels: planes, kernelSize: 3, stride: s3, padding: dilation,
            dilation: dilation, generator: &generator)
        bn2 = BatchNorm2d(planes, frozen: frozenBN, trainableAffine: bnAffine)
        conv3 = Conv2d(inputChannels: planes, outputChannels: out, kernelSize: 1, generator: &generator)
        bn3 = BatchNorm2d(out, frozen: frozenBN, trainableAffine: bnAffine)
        downsample =
            stride != 1 || inChannels != out
            ? Downsample(
                inputChannels: inChannels, outputChannels: out, stride: stride, frozenBN: frozenBN, bnAffine: bnAffine,
                generator: &generator) : nil
    }

    public var namedChildren: [(String, Module)] {
        [("conv1", conv1), ("bn1", bn1), ("conv2", conv2), ("bn2", bn2), ("conv3", conv3), ("bn3", bn3)]
            + (downsample.map { [("downsample", $0)] } ?? [])
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        var y = bn1(conv1(x), relu: true)
        y = bn2(conv2(y), relu: true)
        y = bn3(conv3(y))
        return y.addingReLU(downsample?(x) ?? x)
    }
}

/// ResNet-18/34 basic block: two 3x3 convolutions.
public final class BasicBlock: ResidualBlock {
    public static let expansion = 1
    public let conv1: Conv2d, bn1: BatchNorm2d
    public let conv2: Conv2d, bn2: BatchNorm2d
    public let downsample: Downsample?

    public init(inChannels: Int, planes: Int, stride: Int, dilation: Int, frozenBN: Bool, generator: inout SeededGenerator) {
        conv1 = Conv2d(
            inputChannels: inChannels, outputChannels: planes, kernelSize: 3, stride: stride, padding: dilation,
            dilation: dilation, generator: &generator)
        bn1 = BatchNorm2d(planes, frozen: frozenBN)
        conv2 = Conv2d(
            inputChannels: planes, outputChannels: planes, kernelSize: 3, padding: dilation, dilation: dilation,
            generator: &generator)
        bn2 = BatchNorm2d(planes, frozen: frozenBN)
        downsample =
            stride != 1 || inChannels != planes
            ? Downsample(
                inputChannels: inChannels, outputChannels: planes, stride: stride, frozenBN: frozenBN,
                generator: &generator) : nil
    }

    public var namedChildren: [(String, Module)] {
        [("conv1", conv1), ("bn1", bn1), ("conv2", conv2), ("bn2", bn2)] + (downsample.map { [("downsample", $0)] } ?? [])
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        let y = bn2(conv2(bn1(conv1(x), relu: true)))
        return y.addingReLU(downsample?(x) ?? x)
    }
}
