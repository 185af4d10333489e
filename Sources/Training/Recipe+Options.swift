import Datasets
import Foundation
import Layers
import PseudoLabels

// A recipe's sections as the typed options the library's stages take (one path per value:
// recipe → these structs → the stage; the CLI flags fill the same structs).
extension Recipe {
    /// The dataset of a split: `data.root`, its classes (`data.classes`, else `<root>/classes.txt`,
    /// else VOC's) and image-level labels (`data.image_labels`).
    public func dataset(split: String, labels: String? = nil, requireLabels: Bool = false) throws -> VOCDataset {
        let root = try required(data.root, "data.root")
        let classes: ClassNames
        if let c = data.classes {
            classes = try ClassNames.load(c == "voc" ? c : try dataPath(c))
        } else {
            classes = try ClassNames.of(datasetRoot: root)
        }
        let fromMasks = data.imageLabels == "masks"
        return try VOCDataset(
            root: root, split: split, classes: classes, labels: labels,
            imageLabelFile: fromMasks ? nil : try data.imageLabels.map(dataPath), requireLabels: requireLabels,
            imageLabelsFromMasks: fromMasks)
    }

    /// The split evaluated while training (`data.val_split`), nil when `train.eval_every` is 0.
    /// - Throws: `RecipeError` when evaluation is asked for and the split cannot be read (a
    ///   missing list or labels must not silently turn evaluation off).
    public func validationDataset() throws -> VOCDataset? {
        guard train.evalEvery > 0 else { return nil }
        do {
            return try dataset(split: data.valSplit, requireLabels: true)
        } catch {
            throw RecipeError(
                path: path,
                message: "train.eval_every is \(train.evalEvery) but the validation split '\(data.valSplit)' cannot be used: "
                    + "\(error.localizedDescription) (set train.eval_every: 0 to train without evaluating)")
        }
    }

    /// `run.dir`, or an error naming the key.
    public func runDirectory() throws -> String { try required(run.dir, "run.dir") }

    public var segmentationOptions: SegmentationOptions {
        var o = SegmentationOptions()
        o.depth = model.depth
        o.widthDivisor = model.widthDivisor
        o.frozenBN = model.frozenBN
        o.msc = model.msc
        o.iterations = train.iterations
        o.batchSize = train.batch
        o.accumulation = train.accumulation
        o.cropSize = train.crop
        o.scales = train.scales
        o.scaleSampling = train.scaleSampling
        o.labelResize = train.labelResize
        o.preprocessing = train.preprocessing
        o.learningRate = Float(train.lr)
        o.learningRateStep = train.lrStep
        o.asppWeightLRMultiplier = Float(train.asppWeightLRMult)
        o.asppBiasLRMultiplier = Float(train.asppBiasLRMult)
        o.power = Float(train.power)
        o.momentum = Float(train.momentum)
        o.weightDecay = Float(train.weightDecay)
        o.checkpointEvery = train.checkpointEvery
        o.keepLast = train.keepLast
        o.evalEvery = train.evalEvery
        o.logEvery = train.logEvery
        o.seed = UInt64(run.seed)
        o.precision = run.precision.resolved
        return o
    }

    /// Whether evaluation scores the MSC max-fused logits: `eval.msc`, else `model.msc`.
    public var evaluatesMSC: Bool { eval.msc ?? model.msc }

    public var camOptions: CAMTrainingOptions {
        var o = CAMTrainingOptions()
        o.iterations = cam.iterations
        o.batchSize = cam.batch
        o.cropSize = cam.crop
        (o.scaleLow, o.scaleHigh) = (cam.scales.first ?? 1, cam.scales.last ?? 1)
        o.learningRate = Float(cam.lr)
        o.classifierLRMultiplier = Float(cam.classifierLRMult)
        o.weightDecay = Float(cam.weightDecay)
        o.momentum = Float(cam.momentum)
        o.resizeLong = cam.resizeLong
        o.widthDivisor = cam.widthDivisor
        o.frozenBN = cam.frozenBN
        o.bnAffine = cam.bnAffine
        o.frozenStages = cam.frozenStages
        o.inference = cam.makeCAM
        o.inferenceScales = cam.inferenceScales
        o.checkpointEvery = cam.checkpointEvery
        o.seed = UInt64(run.seed)
        o.precision = run.precision.resolved
        return o
    }

    /// The pseudo-label rule of a source (`pseudo.source` and `pseudo.compare` values).
    public func pseudoLabelMethod(_ source: LabelSource) throws -> PseudoLabelMethod {
        pseudo.method(source, detections: try pseudo.detections.map(dataPath))
    }

    /// A dataset file or folder named in the recipe (pseudo.seeds, pseudo.detections, pseudo.labels,
    /// pseudo.proposals, data.classes, data.image_labels): relative to data.root unless absolute.
    /// Other paths (checkpoints, run.dir) are relative to the working directory.
    public func dataPath(_ path: String) throws -> String {
        path.hasPrefix("/") ? path : try required(data.root, "data.root") + "/" + path
    }

    /// Seeds: `pseudo.seeds` (a folder of label PNGs) or the pipeline's CAMs thresholded at `cam.bg_threshold`.
    public func seedSource(camFile: String) throws -> SeedSource {
        if let seeds = pseudo.seeds { return .folder(try dataPath(seeds)) }
        return .cams(path: camFile, threshold: CAMThreshold(background: Float(cam.bgThreshold)))
    }

    /// The segmenter's initial weights (`model.init`) as a checkpoint path, or nil for random.
    public func segmenterInit(runDirectory: String) -> String? {
        switch model.`init` {
        case .none: nil
        case .camClassifier: RunLayout(root: runDirectory).camCheckpoint
        case .checkpoint(let path): path
        }
    }
}
