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
    /// Stages that get no gradient, counted as IRN's resnet50_cam.py counts them (stage 1 = stem +
    /// layer1, stage 2 = layer2, …): their output is detached (IRN: `stage2(x).detach()`, which
    /// with conv1/bn1's requires_grad False leaves stages 1–2 untouched by the optimiser). 0–4.
    public let frozenStages: Int

    public init(classes: Int, backbone configuration: ResNetConfiguration = .camResNet50, frozenStages: Int = 0, seed: UInt64 = 0)
    {
        precondition((0...4).contains(frozenStages), "CAMNetwork: frozenStages \(frozenStages) is not 0…4")
        var g = SeededGenerator(seed: seed)
        backbone = ResNet(configuration, generator: &g)
        classifier = Conv2d(inputChannels: configuration.outputChannels, outputChannels: classes, kernelSize: 1, generator: &g)
        self.classes = classes
        self.frozenStages = frozenStages
    }

    public var namedChildren: [(String, Module)] { backbone.namedChildren + [("classifier", classifier)] }

    /// The parameters an optimiser updates: the trainable ones outside the frozen stages, as
    /// (backbone, classifier) — IRN's `trainable_parameters()` groups, less the parameters that
    /// never receive a gradient there.
    public var optimizedParameters: (backbone: [(name: String, tensor: Tensor)], classifier: [(name: String, tensor: Tensor)]) {
        let frozenPrefixes = (frozenStages > 0 ? ["conv1.", "bn1."] : []) + (0..<frozenStages).map { "layer\($0 + 1)." }
        let backbone = trainableParameters.filter { p in
            !p.name.hasPrefix("classifier.") && !frozenPrefixes.contains { p.name.hasPrefix($0) }
        }
        return (backbone, classifier.parameters(prefix: "classifier.").filter { $0.tensor.requiresGrad })
    }

    /// layer4 features [N, outputChannels, ~H/16, ~W/16]; the frozen stages run without recording
    /// (the same values as IRN's detach, without keeping their activations for a backward pass).
    public func features(_ x: Tensor) -> Tensor {
        func stage(_ index: Int, _ x: Tensor) -> Tensor { backbone.layers[index](index == 0 ? backbone.stem(x) : x) }
        var y = x
        if frozenStages > 0 { y = withoutGrad { (0..<frozenStages).reduce(x) { stage($1, $0) } } }
        for index in frozenStages..<4 { y = stage(index, y) }
        return y
    }

    /// Image-level class scores [N, classes] for images [N, 3, H, W].
    public func callAsFunction(_ x: Tensor) -> Tensor {
        classifier(features(x).globalAveragePooled()).reshaped(to: [x.shape[0], classes])
    }

    /// Class activation maps (Zhou et al. 2016, Eq. 2): M_c = ReLU(Σ_k w_k^c f_k) on the
    /// feature map, before any normalisation. [N, classes, H/16, W/16].
    public func activationMaps(_ x: Tensor) -> Tensor {
        features(x).conv2d(weight: classifier.weight).relu()
    }

    /// Multi-scale + flip CAMs at image resolution, as IRN's `make_cam`: for each scale the
    /// image is rescaled (bilinear), its CAM and its mirror image's (flipped back) are summed,
    /// upsampled to the image size (bilinear, align_corners false) and summed over scales; each
    /// class is then divided by its maximum (+1e-5). IRN upsamples to a multiple of 16 and
    /// crops and rescales the 8-bit image with PIL's bicubic filter; we resize the normalised
    /// image (bilinear) and the maps to the image size directly. `CAMTraining.irnCAMs` is IRN's.
    /// - Parameter image: [1, 3, H, W]. - Returns: [classes, H, W] in [0, 1].
    public func multiScaleActivationMaps(_ image: Tensor, scales: [Double] = [1.0, 0.5, 1.5, 2.0]) -> Tensor {
        precondition(
            image.rank == 4 && image.shape[0] == 1, "multiScaleActivationMaps: one image [1, 3, H, W], got \(image.shape)")
        let (h, w) = (image.shape[2], image.shape[3])
        return withoutGrad {
            var total: Tensor?
            for scale in scales {
                let x =
                    scale == 1
                    ? image
                    : image.resizedBilinear(
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
