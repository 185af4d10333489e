import Autograd

/// The shape of a ResNet: depth, block style, widths, per-stage stride and dilation.
public struct ResNetConfiguration: Codable, Equatable, Sendable {
    /// 18, 34, 50 or 101 (`ResNetDepth`).
    public var depth: Int
    public var style: BlockStyle
    /// Stem output channels (64 in the reference networks).
    public var stemChannels: Int
    /// Bottleneck/basic widths of layer1…layer4 (64, 128, 256, 512 in the reference networks).
    public var planes: [Int]
    /// Stride of the first block of layer1…layer4.
    public var strides: [Int]
    /// Dilation of every block of layer1…layer4 (caffe DeepLab dilates all blocks of a stage).
    public var dilations: [Int]
    /// Stem max pool rounding: ceil as caffe (DeepLab-v2), floor as torchvision.
    public var stemPoolCeil: Bool
    /// Batch norm always uses running statistics and keeps γ, β fixed.
    public var frozenBN: Bool
    /// With `frozenBN`, γ and β of the bottleneck stages stay trainable (IRN's `FixedBatchNorm`,
    /// net/resnet50.py; its stem BN is frozen by resnet50_cam.py's Net.train).
    public var bnAffine = false

    public init(
        depth: Int, style: BlockStyle, stemChannels: Int = 64, planes: [Int] = [64, 128, 256, 512],
        strides: [Int] = [1, 2, 2, 2], dilations: [Int] = [1, 1, 1, 1], stemPoolCeil: Bool = false, frozenBN: Bool = false
    ) {
        precondition(ResNetDepth(rawValue: depth) != nil, "ResNet: depth \(depth) is not \(ResNetDepth.phrase)")
        precondition(planes.count == 4 && strides.count == 4 && dilations.count == 4, "ResNet: four stages")
        self.depth = depth
        self.style = style
        self.stemChannels = stemChannels
        self.planes = planes
        self.strides = strides
        self.dilations = dilations
        self.stemPoolCeil = stemPoolCeil
        self.frozenBN = frozenBN
    }

    /// Blocks per stage.
    public var blocks: [Int] {
        switch depth {
        case 18: [2, 2, 2, 2]
        case 34, 50: [3, 4, 6, 3]
        default: [3, 4, 23, 3]
        }
    }

    public var usesBottlenecks: Bool { depth >= 50 }
    /// Channels of layer4's output.
    public var outputChannels: Int { planes[3] * (usesBottlenecks ? Bottleneck.expansion : BasicBlock.expansion) }
    /// Input size ÷ feature size.
    public var outputStride: Int { 4 * strides.reduce(1, *) }

    /// The same network with every width divided by `divisor` (tests and the built-in demo run
    /// narrow versions of the full-depth networks).
    public func narrowed(by divisor: Int) -> ResNetConfiguration {
        var c = self
        c.stemChannels = max(1, stemChannels / divisor)
        c.planes = planes.map { max(1, $0 / divisor) }
        return c
    }

    /// DeepLab-v2's backbone: ResNet-101, caffe blocks, output stride 8 (layer3 dilation 2,
    /// layer4 dilation 4), ceil-mode stem pool, frozen BN.
    public static let deepLabV2 = ResNetConfiguration(
        depth: 101, style: .caffe, strides: [1, 2, 1, 1], dilations: [1, 1, 2, 4], stemPoolCeil: true, frozenBN: true)

    /// The CAM network's backbone, as IRN: ResNet-50, torchvision blocks, output stride 16
    /// (layer4 stride 1, no dilation), frozen BN.
    public static let camResNet50 = ResNetConfiguration(depth: 50, style: .torchvision, strides: [1, 2, 2, 1], frozenBN: true)
}

/// A stage: blocks named "0", "1", … (torchvision's `layerN.M.` keys).
public final class ResNetStage: Module {
    public let blocks: [ResidualBlock]
    init(_ blocks: [ResidualBlock]) { self.blocks = blocks }
    public var namedChildren: [(String, Module)] { blocks.enumerated().map { (String($0.offset), $0.element) } }
    public func callAsFunction(_ x: Tensor) -> Tensor { blocks.reduce(x) { $1($0) } }
}

/// A ResNet feature extractor (no classifier): stem, then layer1…layer4.
/// Keys match torchvision's `resnetNN().state_dict()` without `fc.*`.
public final class ResNet: Module {
    public let configuration: ResNetConfiguration
    public let conv1: Conv2d
    public let bn1: BatchNorm2d
    public let layers: [ResNetStage]

    public init(_ c: ResNetConfiguration, generator: inout SeededGenerator) {
        configuration = c
        conv1 = Conv2d(
            inputChannels: 3, outputChannels: c.stemChannels, kernelSize: 7, stride: 2, padding: 3,
            generator: &generator)
        bn1 = BatchNorm2d(c.stemChannels, frozen: c.frozenBN)
        var inChannels = c.stemChannels
        var layers: [ResNetStage] = []
        for stage in 0..<4 {
            var blocks: [ResidualBlock] = []
            for b in 0..<c.blocks[stage] {
                let stride = b == 0 ? c.strides[stage] : 1
                if c.usesBottlenecks {
                    blocks.append(
                        Bottleneck(
                            inChannels: inChannels, planes: c.planes[stage], stride: stride, dilation: c.dilations[stage],
                            style: c.style, frozenBN: c.frozenBN, bnAffine: c.bnAffine, generator: &generator))
                    inChannels = c.planes[stage] * Bottleneck.expansion
                } else {
                    blocks.append(
                        BasicBlock(
                            inChannels: inChannels, planes: c.planes[stage], stride: stride, dilation: c.dilations[stage],
                            frozenBN: c.frozenBN, generator: &generator))
                    inChannels = c.planes[stage]
                }
            }
            layers.append(ResNetStage(blocks))
        }
        self.layers = layers
    }

    public var namedChildren: [(String, Module)] {
        [("conv1", conv1), ("bn1", bn1)] + layers.enumerated().map { ("layer\($0.offset + 1)", $0.element) }
    }

    /// - Parameter x: images [N, 3, H, W].
    /// - Returns: layer4 features [N, outputChannels, ~H/stride, ~W/stride].
    public func callAsFunction(_ x: Tensor) -> Tensor {
        layers.reduce(stem(x)) { $1($0) }
    }

    /// conv1, bn1, ReLU and the 3x3/2 max pool: [N, stemChannels, ~H/4, ~W/4].
    public func stem(_ x: Tensor) -> Tensor {
        bn1(conv1(x), relu: true).maxPool2d(kernelSize: 3, stride: 2, padding: 1, ceilMode: configuration.stemPoolCeil)
    }
}

extension ResNet {
    /// Multiply-add FLOPs (2 per multiply-add) of the convolutions of one forward pass on an
    /// H x W image, and the feature size. Pooling, BN and ReLU are not counted, as usual.
    public func convolutionFLOPs(height: Int, width: Int) -> (flops: Double, height: Int, width: Int) {
        func out(_ n: Int, _ c: Conv2d) -> Int {
            let k = c.weight.shape[2]
            return (n + 2 * c.padding - c.dilation * (k - 1) - 1) / c.stride + 1
        }
        func cost(_ c: Conv2d, _ h: Int, _ w: Int) -> (Double, Int, Int) {
            let (oh, ow) = (out(h, c), out(w, c))
            let s = c.weight.shape
            return (2 * Double(s[0] * s[1] * s[2] * s[3] * oh * ow), oh, ow)
        }
        var (total, h, w) = cost(conv1, height, width)
        let pool = { (n: Int) -> Int in
            let span = n + 2 - 3
            var o = (self.configuration.stemPoolCeil ? (span + 1) / 2 : span / 2) + 1
            if self.configuration.stemPoolCeil && (o - 1) * 2 >= n + 1 { o -= 1 }
            return o
        }
        (h, w) = (pool(h), pool(w))
        for stage in layers {
            for block in stage.blocks {
                let convs = block.namedChildren.compactMap { $0.1 as? Conv2d }
                var (bh, bw) = (h, w)
                for c in convs {
                    let (f, oh, ow) = cost(c, bh, bw)
                    total += f
                    (bh, bw) = (oh, ow)
                }
                if let down = block.namedChildren.first(where: { $0.0 == "downsample" })?.1 as? Downsample {
                    total += cost(down.conv, h, w).0
                }
                (h, w) = (bh, bw)
            }
        }
        return (total, h, w)
    }
}

extension DeepLabV2 {
    /// Convolution FLOPs of one single-scale forward pass (backbone + ASPP).
    public func convolutionFLOPs(height: Int, width: Int) -> Double {
        let (backbone, h, w) = self.backbone.convolutionFLOPs(height: height, width: width)
        let head = aspp.branches.reduce(0.0) { $0 + 2 * Double($1.weight.count * h * w) }
        return backbone + head
    }
}
