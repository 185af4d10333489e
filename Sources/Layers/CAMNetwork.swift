import Autograd

/// The CAM classifier (IRN's `resnet50_cam`, Ahn et al. 2019): a ResNet-50 at output stride
/// 16, global average pooling and a 1x1 classifier without bias over the object classes
/// (background excluded), trained with the multi-label soft-margin loss.
/// Keys: torchvision ResNet keys plus `classifier.weight`.
public final class CAMNetwork: Module {
    /// The architecture name checkpoints carry.
    public static let architecture = "cam-resnet50"

    public let backbone: ResNet
    public let classifier: Conv2d
    /// Object classes (background excluded).
    public let classes: Int

    public init(classes: Int, backbone configuration: ResNetConfiguration = .camResNet50, seed: UInt64 = 0) {
        var g = SeededGenerator(seed: seed)
        backbone = ResNet(configuration, generator: &g)
        classifier = Conv2d(inputChannels: configuration.outputChannels, outputChannels: classes, kernelSize: 1, generator: &g)
        self.classes = classes
    }

    public var namedChildren: [(String, Module)] { backbone.namedChildren + [("classifier", classifier)] }

    /// Image-level class scores [N, classes] for images [N, 3, H, W].
    public func callAsFunction(_ x: Tensor) -> Tensor {
        classifier(backbone(x).globalAveragePooled()).reshaped(to: [x.shape[0], classes])
    }

    /// Class activation maps (Zhou et al. 2016, Eq. 2): M_c = ReLU(Σ_k w_k^c f_k) on the
    /// feature map, before any normalisation. [N, classes, H/16, W/16].
    public func activationMaps(_ x: Tensor) -> Tensor {
        backbone(x).conv2d(weight: classifier.weight).relu()
    }

    /// Multi-scale + flip CAMs at image resolution, as IRN's `make_cam`: for each scale the
    /// image is rescaled (bilinear), its CAM and its mirror image's (flipped back) are summed,
    /// upsampled to the image size (bilinear, align_corners false) and summed over scales; each
    /// class is then divided by its maximum (+1e-5). IRN upsamples to a multiple of 16 and
    /// crops; we resize to the image size directly.
    /// - Parameter image: [1, 3, H, W]. - Returns: [classes, H, W] in [0, 1].
    public func multiScaleActivationMaps(_ image: Tensor, scales: [Double] = [1.0, 0.5, 1.5, 2.0]) -> Tensor {
        precondition(image.rank == 4 && image.shape[0] == 1, "multiScaleActivationMaps: one image [1, 3, H, W], got \(image.shape)")
        let (h, w) = (image.shape[2], image.shape[3])
        return withoutGrad {
            var total: Tensor?
            for scale in scales {
                let x = scale == 1 ? image : image.resizedBilinear(
                    to: (Int((Double(h) * scale).rounded()), Int((Double(w) * scale).rounded())), alignCorners: false)
                let pair = Tensor.concat([x, x.flipped(alongAxis: 3)], alongAxis: 0)
                let maps = activationMaps(pair)
                let summed = maps.slice(alongAxis: 0, 0..<1) + maps.slice(alongAxis: 0, 1..<2).flipped(alongAxis: 3)
                let up = summed.resizedBilinear(to: (h, w), alignCorners: false)
                total = total.map { $0 + up } ?? up
            }
            let maps = total!.reshaped(to: [classes, h, w])
            let peak = maps.max(alongAxis: 2, keepingDims: true).max(alongAxis: 1, keepingDims: true) + 1e-5
            return maps / peak
        }
    }
}
