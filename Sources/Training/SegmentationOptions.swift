import Autograd
import Datasets
import Foundation
import Imaging
import Layers

/// DeepLab-v2 training settings (deeplab-pytorch's VOC protocol, configs/voc12.yaml, by default;
/// recipes override).
public struct SegmentationOptions: Codable, Equatable, Sendable {
    public var depth = ResNetDepth.resnet101
    public var widthDivisor = 1
    public var frozenBN = true
    public var msc = true
    public var iterations = 20000
    public var batchSize = 5
    public var accumulation = 2
    public var cropSize = 321
    /// The training scales: a set to choose from, or a range's ends (`scaleSampling`).
    public var scales = [0.5, 0.75, 1.0, 1.25, 1.5]
    public var scaleSampling = ScaleSampling.choice
    /// The nearest rule of every label resize: the augmentation's scaling and the MSC loss's
    /// labels at each logit size (deeplab-pytorch: PIL's NEAREST in both).
    public var labelResize = NearestRule.pil
    public var preprocessing = Preprocessing.caffe
    public var learningRate: Float = 2.5e-4
    /// Iterations between poly learning-rate updates (deeplab-pytorch's LR_DECAY: 10).
    public var learningRateStep = 10
    public var asppWeightLRMultiplier: Float = 10
    public var asppBiasLRMultiplier: Float = 20
    public var power: Float = 0.9
    public var momentum: Float = 0.9
    public var weightDecay: Float = 5e-4
    public var checkpointEvery = 1000
    public var keepLast = 3
    public var evalEvery = 2000
    public var logEvery = 10
    public var seed: UInt64 = 0
    /// The products' arithmetic as resolved on the machine that trains (fp32 or bf16; `auto`
    /// is decided before it gets here): `Kernels.withProducts(in:)` around training and
    /// evaluation. Checkpoints from before it existed trained in fp32.
    public var precision = ComputePrecision.fp32
    public init() {}

    /// Options (as encoded) that cannot change the trained weights: `--resume` never refuses them.
    public static let cosmeticKeys: Set<String> = ["checkpointEvery", "keepLast", "evalEvery", "logEvery"]

    enum CodingKeys: String, CodingKey {
        case depth, widthDivisor, frozenBN, msc, iterations, batchSize, accumulation, cropSize, scales, scaleSampling, labelResize
        case preprocessing, learningRate, learningRateStep, asppWeightLRMultiplier, asppBiasLRMultiplier, power, momentum
        case weightDecay, checkpointEvery, keepLast, evalEvery, logEvery, seed, precision
        /// Before `scales`: the ends of the uniform range.
        case scaleLow, scaleHigh
    }

    /// Decodes the options a checkpoint stores. Keys added since a checkpoint was written take
    /// the behaviour it was trained with, not today's defaults: a uniform scale range
    /// `scaleLow`…`scaleHigh`, torch-nearest labels and a rate updated every iteration.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        depth = try c.decode(ResNetDepth.self, forKey: .depth)
        widthDivisor = try c.decode(Int.self, forKey: .widthDivisor)
        frozenBN = try c.decode(Bool.self, forKey: .frozenBN)
        msc = try c.decode(Bool.self, forKey: .msc)
        iterations = try c.decode(Int.self, forKey: .iterations)
        batchSize = try c.decode(Int.self, forKey: .batchSize)
        accumulation = try c.decode(Int.self, forKey: .accumulation)
        cropSize = try c.decode(Int.self, forKey: .cropSize)
        if let list = try c.decodeIfPresent([Double].self, forKey: .scales) {
            scales = list
            scaleSampling = try c.decode(ScaleSampling.self, forKey: .scaleSampling)
        } else {
            scales = [try c.decode(Double.self, forKey: .scaleLow), try c.decode(Double.self, forKey: .scaleHigh)]
            scaleSampling = .uniform
        }
        labelResize = try c.decodeIfPresent(NearestRule.self, forKey: .labelResize) ?? .torch
        preprocessing = try c.decode(Preprocessing.self, forKey: .preprocessing)
        learningRate = try c.decode(Float.self, forKey: .learningRate)
        learningRateStep = try c.decodeIfPresent(Int.self, forKey: .learningRateStep) ?? 1
        asppWeightLRMultiplier = try c.decode(Float.self, forKey: .asppWeightLRMultiplier)
        asppBiasLRMultiplier = try c.decode(Float.self, forKey: .asppBiasLRMultiplier)
        power = try c.decode(Float.self, forKey: .power)
        momentum = try c.decode(Float.self, forKey: .momentum)
        weightDecay = try c.decode(Float.self, forKey: .weightDecay)
        checkpointEvery = try c.decode(Int.self, forKey: .checkpointEvery)
        keepLast = try c.decode(Int.self, forKey: .keepLast)
        evalEvery = try c.decode(Int.self, forKey: .evalEvery)
        logEvery = try c.decode(Int.self, forKey: .logEvery)
        seed = try c.decode(UInt64.self, forKey: .seed)
        precision = try c.decodeIfPresent(ComputePrecision.self, forKey: .precision) ?? .fp32
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(depth, forKey: .depth)
        try c.encode(widthDivisor, forKey: .widthDivisor)
        try c.encode(frozenBN, forKey: .frozenBN)
        try c.encode(msc, forKey: .msc)
        try c.encode(iterations, forKey: .iterations)
        try c.encode(batchSize, forKey: .batchSize)
        try c.encode(accumulation, forKey: .accumulation)
        try c.encode(cropSize, forKey: .cropSize)
        try c.encode(scales, forKey: .scales)
        try c.encode(scaleSampling, forKey: .scaleSampling)
        try c.encode(labelResize, forKey: .labelResize)
        try c.encode(preprocessing, forKey: .preprocessing)
        try c.encode(learningRate, forKey: .learningRate)
        try c.encode(learningRateStep, forKey: .learningRateStep)
        try c.encode(asppWeightLRMultiplier, forKey: .asppWeightLRMultiplier)
        try c.encode(asppBiasLRMultiplier, forKey: .asppBiasLRMultiplier)
        try c.encode(power, forKey: .power)
        try c.encode(momentum, forKey: .momentum)
        try c.encode(weightDecay, forKey: .weightDecay)
        try c.encode(checkpointEvery, forKey: .checkpointEvery)
        try c.encode(keepLast, forKey: .keepLast)
        try c.encode(evalEvery, forKey: .evalEvery)
        try c.encode(logEvery, forKey: .logEvery)
        try c.encode(seed, forKey: .seed)
        try c.encode(precision, forKey: .precision)
    }

    /// The training augmentation these options describe (crop, scales, label rule; flips on).
    public var augmentation: Augmentation {
        Augmentation(
            preprocessing: preprocessing, scale: ScaleJitter(scaleSampling, scales: scales), cropSize: cropSize, flip: true,
            labelResize: labelResize, sideRounding: scaleSampling.sideRounding)
    }

    /// The learning-rate schedule these options describe.
    public var schedule: PolySchedule {
        PolySchedule(baseLearningRate: learningRate, maxIterations: iterations, power: power, stepSize: learningRateStep)
    }

    public var backbone: ResNetConfiguration {
        var c = ResNetConfiguration.deepLabV2
        c.depth = depth.rawValue
        c = c.narrowed(by: widthDivisor)
        c.frozenBN = frozenBN
        return c
    }

    public func makeModel(classes: Int) -> DeepLabV2 { DeepLabV2(classes: classes, backbone: backbone, seed: seed) }
}
