import Autograd
import Datasets
import Foundation
import Layers
import PseudoLabels

// The recipe's sections as typed values. Each property's initial value is the key's default
// (the one place defaults live); `CodingKeys` are the YAML key names. `Recipe` decodes a file
// into these once; the library's stages and the CLI read the typed fields.

/// A section of a recipe: a Codable struct whose defaults are its initial values.
public protocol RecipeSection: Codable, Equatable, Sendable {
    associatedtype Keys: CodingKey & CaseIterable
    /// The section's name in YAML ("train").
    static var name: String { get }
    /// Every key at its default.
    init()
    /// The defaults a recipe's keys `given` are laid over: `init()`, unless a key of the section
    /// picks a preset (`cam.preset`).
    static func defaults(given values: [String: Any]) -> Self
}

extension RecipeSection {
    public static func defaults(given values: [String: Any]) -> Self { Self() }

    /// The YAML key names of the section, in declaration order.
    public static var keyNames: [String] { Keys.allCases.map(\.stringValue) }

    /// "section.key" → the value as text ("null" when unset), for provenance records and
    /// messages: what a stage's output depends on.
    public var textValues: [String: String] {
        var out: [String: String] = [:]
        for (key, value) in Self.propertyValues(of: self) { out["\(Self.name).\(key)"] = recipeText(value) }
        return out
    }

    /// The section's values by YAML key, with their Swift types. A Mirror lists the stored
    /// properties; a property's name is its key without underscores, in other case
    /// (`aspp_weight_lr_mult` ↔ `asppWeightLRMult`; a test checks every key is found).
    static func propertyValues(of section: Self) -> [(key: String, value: Any)] {
        let byFolded = Dictionary(uniqueKeysWithValues: keyNames.map { ($0.replacingOccurrences(of: "_", with: ""), $0) })
        return Mirror(reflecting: section).children.compactMap { child in
            guard let label = child.label, let key = byFolded[label.lowercased()] else { return nil }
            return (key, child.value)
        }
    }

    /// The keys whose value lies outside the recipe's range for it (the same rules a recipe file
    /// is checked by), each with the rule as a phrase ("a number in [0, 1]"): how a section
    /// filled from command-line flags is validated.
    public var violations: [(key: String, rule: String, value: String)] {
        Self.propertyValues(of: self).compactMap { key, value in
            guard let (rule, test) = Recipe.ranges["\(Self.name).\(key)"] else { return nil }
            let mirror = Mirror(reflecting: value)
            let unwrapped: Any? = mirror.displayStyle == .optional ? mirror.children.first?.value : value
            guard let unwrapped else { return nil }
            // Typed lists reach the rules as YAML's [Any].
            let yaml: Any = (unwrapped as? [Double]).map { $0 as [Any] } ?? unwrapped
            return test(yaml) ? nil : (key, rule, recipeText(unwrapped))
        }
    }

    /// "caffe or torchvision" when `key` holds a `RecipeChoice`, else nil.
    static func choices(of key: String) -> String? {
        func phrase<T: RecipeChoice>(_ value: T) -> String { T.choices }
        guard let value = propertyValues(of: Self()).first(where: { $0.key == key })?.value as? any RecipeChoice else {
            return nil
        }
        return phrase(value)
    }
}

/// A value as recipe text: Optional.none is "null", enums their YAML spelling, numbers as Swift prints them.
func recipeText(_ value: Any) -> String {
    let mirror = Mirror(reflecting: value)
    if mirror.displayStyle == .optional {
        guard let wrapped = mirror.children.first?.value else { return "null" }
        return recipeText(wrapped)
    }
    return "\(value)"
}

/// A recipe value chosen from a fixed list: decoding anything else is an error listing the choices.
public protocol RecipeChoice: CaseIterable, RawRepresentable, Codable, Sendable, CustomStringConvertible
where RawValue: Decodable & CustomStringConvertible {}

extension RecipeChoice {
    /// "a, b or c".
    public static var choices: String {
        let all = allCases.map { $0.rawValue.description }
        return all.count == 1 ? all[0] : all.dropLast().joined(separator: ", ") + " or " + all.last!
    }

    /// Decodes the raw value, refusing one outside the list.
    static func decodeChoice(from decoder: Decoder) throws -> Self {
        let container = try decoder.singleValueContainer()
        guard let raw = try? container.decode(RawValue.self), let value = Self(rawValue: raw) else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "must be \(choices)")
        }
        return value
    }

    public var description: String { rawValue.description }
}

extension Preprocessing: RecipeChoice {}
extension SEPLMerge.Rule: RecipeChoice {}
extension BoxMerge.PaintOrder: RecipeChoice {}
extension ResNetDepth: RecipeChoice {}
extension ScaleSampling: RecipeChoice {}
extension ComputePrecision: RecipeChoice {}
extension NearestRule: RecipeChoice {}

/// `model.arch`: the segmenter (depth and width are separate keys).
public enum SegmenterArchitecture: String, RecipeChoice {
    case deeplabV2ResNet = "deeplabv2-resnet101"
    public init(from decoder: Decoder) throws { self = try Self.decodeChoice(from: decoder) }
}

/// Where pseudo-labels come from (`pseudo.source`, `pseudo.compare`).
public enum LabelSource: String, RecipeChoice, Comparable {
    /// CAM seeds thresholded at `cam.bg_threshold` (or `pseudo.seeds`).
    case cam
    /// SEPL: each class-agnostic mask takes the class of the seeds it covers.
    case sepl
    /// SEPL on Felzenszwalb segments (`pseudo.felzenszwalb`) whatever `pseudo.proposals` names:
    /// what the rule gains without SAM (or the synthetic set's oracle stand-in).
    case seplFelzenszwalb = "sepl-felzenszwalb"
    /// Box-prompted masks from detections (`pseudo.detections`).
    case boxes
    /// The ground truth (the fully-supervised upper bound).
    case gt
    /// The seed folder `pseudo.seeds` as it is.
    case folder
    public init(from decoder: Decoder) throws { self = try Self.decodeChoice(from: decoder) }
    /// By name, for tables.
    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
}

/// `model.init`: the segmenter's initial weights.
public enum SegmenterInit: Codable, Equatable, Sendable, CustomStringConvertible {
    /// Random initialisation.
    case none
    /// The pipeline's own CAM classifier (`<run.dir>/cam/cam_final.h5`), whose backbone stands in
    /// for ImageNet weights when none can be downloaded (the demo).
    case camClassifier
    /// A checkpoint file (relative to the working directory).
    case checkpoint(String)

    public init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() { self = .none; return }
        switch try container.decode(String.self) {
        case "none", "": self = .none
        case "cam": self = .camClassifier
        case let path: self = .checkpoint(path)
        }
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }

    public var description: String {
        switch self {
        case .none: "none"
        case .camClassifier: "cam"
        case .checkpoint(let path): path
        }
    }
}

/// `data:` — the dataset (VOC layout).
public struct DataSection: RecipeSection {
    public static let name = "data"
    public var root: String?
    public var trainSplit = "train"
    public var valSplit = "val"
    public var testSplit = "test"
    /// "voc" or a classes.txt (relative to `root`); default: `<root>/classes.txt` if present, else VOC's.
    public var classes: String?
    /// An image-level label file (relative to `root`), or `masks`: read them off the label PNGs.
    public var imageLabels: String?
    public init() {}
    public enum CodingKeys: String, CodingKey, CaseIterable {
        case root, trainSplit = "train_split", valSplit = "val_split", testSplit = "test_split", classes, imageLabels =
            "image_labels"
    }
    public typealias Keys = CodingKeys
}

/// `run:` — where a run lives and how it runs.
public struct RunSection: RecipeSection {
    public static let name = "run"
    public var dir: String?
    public var threads: Int?
    public var seed = 0
    /// In a data-parallel run (`--distributed`), training-mode batch norm computes its statistics
    /// over the whole batch across the ranks (SyncBatchNorm), so results do not depend on the rank
    /// count; false: each rank's shard alone (cheaper, as plain DDP). Frozen BN is unaffected.
    public var syncBN = true
    /// The arithmetic of the segmenter's and the CAM classifier's products (training, evaluation,
    /// prediction): fp32, bf16 mixed precision (products take bf16 inputs and sum in fp32, as
    /// PyTorch's CPU autocast; weights, norms, losses and the optimizer stay fp32), or auto (bf16
    /// only where the CPU multiplies bf16).
    public var precision = ComputePrecision.fp32
    public init() {}
    public enum CodingKeys: String, CodingKey, CaseIterable { case dir, threads, seed, syncBN = "sync_bn", precision }
    public typealias Keys = CodingKeys
}

extension CAMInference: RecipeChoice {}

/// `cam.preset`: which defaults the other `cam` keys start from.
public enum CAMPreset: String, RecipeChoice {
    /// Ours (`CAMSection()`).
    case wsss
    /// IRN's CAM classifier as jiwoon-ahn/irn runs it (`CAMSection.irn`, `CAMTrainingOptions.irn`).
    case irn
    public init(from decoder: Decoder) throws { self = try Self.decodeChoice(from: decoder) }
}

/// `cam:` — the CAM classifier (IRN's train_cam.py / make_cam.py defaults).
public struct CAMSection: RecipeSection {
    public static let name = "cam"
    public var preset = CAMPreset.wsss
    public var iterations = 3300
    public var batch = 16
    public var crop = 512
    public var scales = [0.5, 1.5]
    /// IRN's long-side range (`Augmentation.resizeLong`) instead of `scales`; null: `scales`.
    public var resizeLong: [Int]?
    public var lr = 0.01
    public var classifierLRMult = 10.0
    public var weightDecay = 1e-4
    public var momentum = 0.9
    public var widthDivisor = 1
    public var frozenBN = true
    /// With `frozen_bn`, γ and β still train (IRN's FixedBatchNorm).
    public var bnAffine = false
    /// Stages without gradient, IRN's count (2: stem, layer1, layer2).
    public var frozenStages = 0
    /// A checkpoint to start from (relative to the working directory); `none` (the default) for
    /// random weights, as `model.init`.
    public var `init`: String?
    /// `init` as a path, nil for none.
    public var initPath: String? { `init`.flatMap { $0 == "none" || $0.isEmpty ? nil : $0 } }
    public var inferenceScales = [1.0, 0.5, 1.5, 2.0]
    public var makeCAM = CAMInference.wsss
    public var bgThreshold = 0.15
    public var checkpointEvery = 500
    public init() {}
    public enum CodingKeys: String, CodingKey, CaseIterable {
        case preset, iterations, batch, crop, scales, resizeLong = "resize_long", lr, classifierLRMult = "classifier_lr_mult"
        case weightDecay = "weight_decay", momentum, widthDivisor = "width_divisor", frozenBN = "frozen_bn", bnAffine =
            "bn_affine"
        case frozenStages = "frozen_stages", `init`, inferenceScales = "inference_scales", makeCAM = "make_cam"
        case bgThreshold = "bg_threshold", checkpointEvery = "checkpoint_every"
    }
    public typealias Keys = CodingKeys

    /// `cam.preset: irn`: the values of `CAMTrainingOptions.irn`, where that documents each (keys
    /// set beside the preset still override them; a test checks the two agree).
    public static var irn: CAMSection {
        var s = CAMSection()
        s.preset = .irn
        s.iterations = 3305
        s.resizeLong = [320, 640]
        s.lr = 0.1
        s.classifierLRMult = 10
        s.weightDecay = 1e-4
        s.momentum = 1e-4
        s.bnAffine = true
        s.frozenStages = 2
        s.makeCAM = .irn
        return s
    }

    public static func defaults(given values: [String: Any]) -> CAMSection {
        values["preset"] as? String == CAMPreset.irn.rawValue ? .irn : CAMSection()
    }
}

/// `pseudo:` — pseudo-labels (paths relative to `data.root`).
public struct PseudoSection: RecipeSection {
    public static let name = "pseudo"
    public var source = LabelSource.sepl
    /// "sa1b:DIR", "felzenszwalb" or "sam".
    public var proposals: String?
    public var seeds: String?
    public var detections: String?
    public var maskShare = 0.5
    public var regionShare = 0.85
    public var ignoreConflicts = false
    /// SEPL's procedure: ours (order-free) or the public code's, to the pixel.
    public var seplRule = SEPLMerge.Rule.orderFree
    public var boxThreshold = 0.3
    public var textThreshold = 0.25
    public var boxOrder = BoxMerge.PaintOrder.detection
    public var felzenszwalb = [100.0, 0.8, 20.0]
    public var compare: [LabelSource] = []
    public var labels: String?
    public var samCheckpoint: String?
    public var samConfig: String?
    public var samCache: String?
    /// Grounding DINO's weights (official .pth or our HDF5): with no `detections`, `boxes` runs
    /// the detector itself (Sun et al.'s route), its detections kept in the run folder.
    public var detectorCheckpoint: String?
    /// BERT's vocab.txt for the detector.
    public var detectorVocab: String?
    /// swin_t, swin_b or a YAML file of the official config's names (default: read off the weights).
    public var detectorConfig: String?
    /// The image sides the detector sees: the shorter resized to the first, the longer at most
    /// the second (the official transform's 800 and 1333).
    public var detectorSize = [800, 1333]
    public init() {}
    public enum CodingKeys: String, CodingKey, CaseIterable {
        case source, proposals, seeds, detections, maskShare = "mask_share", regionShare = "region_share"
        case ignoreConflicts = "ignore_conflicts", seplRule = "sepl_rule", boxThreshold = "box_threshold", textThreshold =
            "text_threshold"
        case boxOrder = "box_order", felzenszwalb, compare, labels
        case samCheckpoint = "sam_checkpoint", samConfig = "sam_config", samCache = "sam_cache"
        case detectorCheckpoint = "detector_checkpoint", detectorVocab = "detector_vocab", detectorConfig = "detector_config"
        case detectorSize = "detector_size"
    }
    public typealias Keys = CodingKeys
}

extension PseudoSection {
    /// How `source` turns seeds, proposals and boxes into labels, with this section's rule
    /// settings; `detections` is the detection file's path as resolved by the caller.
    public func method(_ source: LabelSource, detections: String?) -> PseudoLabelMethod {
        switch source {
        case .cam, .folder: .seeds
        case .sepl, .seplFelzenszwalb:
            .sepl(SEPLMerge(maskShare: maskShare, regionShare: regionShare, ignoreConflicts: ignoreConflicts, rule: seplRule))
        case .boxes:
            .boxes(
                BoxMerge(scoreThreshold: boxThreshold, textThreshold: textThreshold, order: boxOrder), detections: detections)
        case .gt: .groundTruth
        }
    }

    /// The recipe keys a source's labels depend on (changing SEPL's shares must not retrain the
    /// GT segmenter): what its provenance records.
    public static func provenanceKeys(_ source: LabelSource) -> [String] {
        let seeds = ["pseudo.seeds", "cam.bg_threshold"]
        let sam = ["pseudo.felzenszwalb", "pseudo.sam_checkpoint", "pseudo.sam_config"]
        switch source {
        case .gt: return []
        case .cam, .folder: return seeds
        case .seplFelzenszwalb:
            return seeds + [
                "pseudo.mask_share", "pseudo.region_share", "pseudo.ignore_conflicts", "pseudo.sepl_rule", "pseudo.felzenszwalb",
            ]
        case .sepl:
            return seeds + [
                "pseudo.proposals", "pseudo.mask_share", "pseudo.region_share", "pseudo.ignore_conflicts", "pseudo.sepl_rule",
            ] + sam + SAMSection.keyNames.map { "sam.\($0)" }.sorted()
        case .boxes:
            return seeds + [
                "pseudo.proposals", "pseudo.detections", "pseudo.box_threshold", "pseudo.text_threshold", "pseudo.box_order",
                "pseudo.detector_checkpoint", "pseudo.detector_vocab", "pseudo.detector_config", "pseudo.detector_size",
            ] + sam + ["sam.precision", "sam.hq_token_only"]
        }
    }

    /// Whether `boxes` runs Grounding DINO itself: a detector checkpoint and no detection file.
    public var runsDetector: Bool { detections == nil && detectorCheckpoint != nil }

    /// `felzenszwalb` as the segmenter's options (scale, sigma, minimum size).
    public var felzenszwalbOptions: Felzenszwalb.Options {
        .init(scale: felzenszwalb[0], sigma: felzenszwalb[1], minSize: Int(felzenszwalb[2]))
    }
}

/// `sam:` — SAM's automatic mask generator (`pseudo.proposals: sam`), named as the official
/// `SamAutomaticMaskGenerator` keyword arguments, with their defaults.
public struct SAMSection: RecipeSection {
    public static let name = "sam"
    public var pointsPerSide = 32
    public var pointsPerBatch = 64
    public var predIoUThresh = 0.88
    public var stabilityScoreThresh = 0.95
    public var stabilityScoreOffset = 1.0
    public var boxNMSThresh = 0.7
    public var cropNLayers = 0
    public var cropNMSThresh = 0.7
    public var cropOverlapRatio = 512.0 / 1500.0
    public var cropNPointsDownscaleFactor = 1
    public var minMaskRegionArea = 0
    /// The image encoder's arithmetic: fp32, bf16 (inputs rounded, fp32 sums) or auto (bf16 where
    /// the CPU multiplies bf16).
    public var precision = ComputePrecision.fp32
    /// SAM-HQ weights: masks from the HQ token alone (the official `hq_token_only`).
    public var hqTokenOnly = false
    public init() {}
    public enum CodingKeys: String, CodingKey, CaseIterable {
        case pointsPerSide = "points_per_side", pointsPerBatch = "points_per_batch", predIoUThresh = "pred_iou_thresh"
        case stabilityScoreThresh = "stability_score_thresh", stabilityScoreOffset = "stability_score_offset"
        case boxNMSThresh = "box_nms_thresh", cropNLayers = "crop_n_layers", cropNMSThresh = "crop_nms_thresh"
        case cropOverlapRatio = "crop_overlap_ratio", cropNPointsDownscaleFactor = "crop_n_points_downscale_factor"
        case minMaskRegionArea = "min_mask_region_area", precision, hqTokenOnly = "hq_token_only"
    }
    public typealias Keys = CodingKeys
}

/// `model:` — the segmenter.
public struct ModelSection: RecipeSection {
    public static let name = "model"
    public var arch = SegmenterArchitecture.deeplabV2ResNet
    public var depth = ResNetDepth.resnet101
    public var widthDivisor = 1
    public var frozenBN = true
    public var msc = true
    public var `init` = SegmenterInit.none
    public var initExclude = ["aspp.*"]
    public init() {}
    public enum CodingKeys: String, CodingKey, CaseIterable {
        case arch, depth, widthDivisor = "width_divisor", frozenBN = "frozen_bn", msc, `init`, initExclude = "init_exclude"
    }
    public typealias Keys = CodingKeys
}

/// `train:` — DeepLab-v2 training (deeplab-pytorch's VOC protocol, configs/voc12.yaml, by default).
public struct TrainSection: RecipeSection {
    public static let name = "train"
    public var iterations = 20000
    public var batch = 5
    public var accumulation = 2
    public var crop = 321
    public var scales = [0.5, 0.75, 1.0, 1.25, 1.5]
    /// `choice`: one of `scales` (deeplab-pytorch); `uniform`: between the first and the last.
    public var scaleSampling = ScaleSampling.choice
    /// Nearest rule of the label resizes (augmentation and MSC loss): `pil` (deeplab-pytorch) or `torch`.
    public var labelResize = NearestRule.pil
    public var preprocessing = Preprocessing.caffe
    public var lr = 2.5e-4
    /// Iterations between poly learning-rate updates (deeplab-pytorch's LR_DECAY).
    public var lrStep = 10
    public var asppWeightLRMult = 10.0
    public var asppBiasLRMult = 20.0
    public var power = 0.9
    public var momentum = 0.9
    public var weightDecay = 5e-4
    public var checkpointEvery = 1000
    public var keepLast = 3
    public var evalEvery = 2000
    public var logEvery = 10
    public init() {}
    public enum CodingKeys: String, CodingKey, CaseIterable {
        case iterations, batch, accumulation, crop, scales, scaleSampling = "scale_sampling", labelResize = "label_resize"
        case preprocessing, lr, lrStep = "lr_step"
        case asppWeightLRMult = "aspp_weight_lr_mult", asppBiasLRMult = "aspp_bias_lr_mult", power, momentum
        case weightDecay = "weight_decay", checkpointEvery = "checkpoint_every", keepLast = "keep_last"
        case evalEvery = "eval_every", logEvery = "log_every"
    }
    public typealias Keys = CodingKeys
}

/// `eval:` — evaluation of the final segmenter.
public struct EvalSection: RecipeSection {
    public static let name = "eval"
    public var scales = [1.0]
    public var flip = false
    /// Score the MSC model's max-fused logits (deeplab-pytorch's test); unset: as `model.msc`.
    public var msc: Bool?
    public var splits = ["val", "test"]
    public init() {}
    public enum CodingKeys: String, CodingKey, CaseIterable { case scales, flip, msc, splits }
    public typealias Keys = CodingKeys
}

/// `crf:` — the fully-connected CRF (deeplab-pytorch's names and defaults) and where it applies.
public struct CRFSection: RecipeSection {
    public static let name = "crf"
    /// Refine the segmenters' predictions with the CRF when the pipeline evaluates them.
    public var eval = false
    /// Refine the pseudo-labels (every source but gt) with the CRF before training on them.
    public var pseudo = false
    /// With `pseudo`: the probability given to a pixel's label (pydensecrf's unary_from_labels gt_prob).
    public var confidence = 0.7
    public var iterations = 10
    public var posW = 3.0
    public var posXYStd = 1.0
    public var biW = 4.0
    public var biXYStd = 67.0
    public var biRGBStd = 3.0
    public init() {}
    public enum CodingKeys: String, CodingKey, CaseIterable {
        case eval, pseudo, confidence, iterations, posW = "pos_w", posXYStd = "pos_xy_std", biW = "bi_w", biXYStd = "bi_xy_std",
            biRGBStd = "bi_rgb_std"
    }
    public typealias Keys = CodingKeys
}
