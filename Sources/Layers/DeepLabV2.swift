import Autograd

/// Atrous spatial pyramid pooling of DeepLab-v2 (Chen et al. 2017, Sec. 3.3, "ASPP-L"): four
/// 3x3 convolutions with dilation = padding = 6, 12, 18, 24, each features → classes with bias,
/// summed. Keys `aspp.c0.weight` … `aspp.c3.bias`, as deeplab-pytorch.
public final class ASPP: Module {
    public let branches: [Conv2d]
    public static let rates = [6, 12, 18, 24]

    public init(inChannels: Int, classes: Int, rates: [Int] = ASPP.rates, generator: inout SeededGenerator) {
        branches = rates.map { rate in
            let conv = Conv2d(
                inputChannels: inChannels, outputChannels: classes, kernelSize: 3, padding: rate, dilation: rate,
                bias: true, generator: &generator)
            // DeepLab-v2 initialises the classifier N(0, 0.01), bias 0.
            var g = generator
            conv.weight.assign(from: Tensor.randomNormal(conv.weight.shape, standardDeviation: 0.01, using: &g))
            generator = g
            return conv
        }
    }

    public var namedChildren: [(String, Module)] { branches.enumerated().map { ("c\($0.offset)", $0.element) } }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        branches.dropFirst().reduce(branches[0](x)) { $0 + $1(x) }
    }
}

/// Logits of a multi-scale (MSC) forward pass.
public struct MultiScaleLogits {
    /// Logits of the input at scale 1.0, [N, classes, h, w].
    public var full: Tensor
    /// Logits of the rescaled inputs (0.75, 0.5 by default), at their own sizes.
    public var scaled: [Tensor]
    /// Pixel-wise maximum of all logits, upsampled to `full`'s size.
    public var fused: Tensor
}

/// DeepLab-v2: a dilated ResNet-101 (output stride 8) and ASPP. Keys: torchvision's ResNet keys
/// at top level (`conv1.weight`, `layer3.22.conv2.weight`, …) plus `aspp.c{0-3}.{weight,bias}`.
public final class DeepLabV2: Module {
    /// The architecture name checkpoints carry.
    public static let architecture = "deeplabv2-resnet101"

    public let backbone: ResNet
    public let aspp: ASPP
    public let classes: Int
    /// Extra input scales of MSC training and inference (deeplab-pytorch: 0.5, 0.75).
    public let pyramidScales: [Double]

    public init(
        classes: Int, backbone configuration: ResNetConfiguration = .deepLabV2, pyramidScales: [Double] = [0.75, 0.5],
        seed: UInt64 = 0
    ) {
        var g = SeededGenerator(seed: seed)
        backbone = ResNet(configuration, generator: &g)
        aspp = ASPP(inChannels: configuration.outputChannels, classes: classes, generator: &g)
        self.classes = classes
        self.pyramidScales = pyramidScales
    }

    public var namedChildren: [(String, Module)] { backbone.namedChildren + [("aspp", aspp)] }

    /// Single-scale logits at 1/8 resolution: [N, classes, ⌈H/8⌉, ⌈W/8⌉].
    public func callAsFunction(_ x: Tensor) -> Tensor { aspp(backbone(x)) }

    /// MSC (deeplab-pytorch's `MSC`): the network on the input and on its bilinear rescalings
    /// (scale_factor, align_corners false); the rescaled logits are upsampled to the full
    /// logits' size and all are fused by a pixel-wise max. Training puts a loss on each of
    /// `full`, `scaled` and `fused`; evaluation uses `fused`.
    public func multiScale(_ x: Tensor) -> MultiScaleLogits {
        let full = self(x)
        let size = (full.shape[2], full.shape[3])
        let scaled = pyramidScales.map { self(x.resizedBilinear(scaleFactor: $0, alignCorners: false)) }
        let all = [full] + scaled.map { $0.resizedBilinear(to: size, alignCorners: false) }
        let stacked = Tensor.concat(all.map { $0.reshaped(to: [1] + $0.shape) }, alongAxis: 0)
        return MultiScaleLogits(full: full, scaled: scaled, fused: stacked.max(alongAxis: 0))
    }
}
