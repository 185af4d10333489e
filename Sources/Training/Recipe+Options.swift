import Datasets
import Foundation
import Layers
import PseudoLabels

// A recipe's sections as the typed options the library's stages take (one path per value:
// recipe → these structs → the stage; the CLI flags fill the same structs).
extension Recipe {
    public func dataset(split: String, labels: String? = nil, requireLabels: Bool = false) throws -> VOCDataset {
        let root = try requiredString("data", "root")
        let classes: ClassNames
        if let c = string("data", "classes") { classes = try ClassNames.load(c == "voc" ? c : try dataPath(c)) } else {
            classes = FileManager.default.fileExists(atPath: root + "/classes.txt") ? try ClassNames.load(root + "/classes.txt") : .voc
        }
        return try VOCDataset(root: root, split: split, classes: classes, labels: labels, imageLabelFile: try string("data", "image_labels").map(dataPath),
                              requireLabels: requireLabels)
    }

    public var segmentationOptions: SegmentationOptions {
        var o = SegmentationOptions()
        o.depth = int("model", "depth")!
        o.widthDivisor = int("model", "width_divisor")!
        o.frozenBN = bool("model", "frozen_bn")
        o.msc = bool("model", "msc")
        o.iterations = int("train", "iterations")!
        o.batchSize = int("train", "batch")!
        o.accumulation = int("train", "accumulation")!
        o.cropSize = int("train", "crop")!
        let s = doubles("train", "scales")
        (o.scaleLow, o.scaleHigh) = (s.first ?? 1, s.last ?? 1)
        o.preprocessing = Preprocessing(rawValue: string("train", "preprocessing")!) ?? .caffe
        o.learningRate = Float(double("train", "lr"))
        o.asppWeightLRMultiplier = Float(double("train", "aspp_weight_lr_mult"))
        o.asppBiasLRMultiplier = Float(double("train", "aspp_bias_lr_mult"))
        o.power = Float(double("train", "power"))
        o.momentum = Float(double("train", "momentum"))
        o.weightDecay = Float(double("train", "weight_decay"))
        o.checkpointEvery = int("train", "checkpoint_every")!
        o.keepLast = int("train", "keep_last")!
        o.evalEvery = int("train", "eval_every")!
        o.logEvery = int("train", "log_every")!
        o.seed = UInt64(int("run", "seed")!)
        return o
    }

    public var camOptions: CAMTrainingOptions {
        var o = CAMTrainingOptions()
        o.iterations = int("cam", "iterations")!
        o.batchSize = int("cam", "batch")!
        o.cropSize = int("cam", "crop")!
        let s = doubles("cam", "scales")
        (o.scaleLow, o.scaleHigh) = (s.first ?? 1, s.last ?? 1)
        o.learningRate = Float(double("cam", "lr"))
        o.classifierLRMultiplier = Float(double("cam", "classifier_lr_mult"))
        o.weightDecay = Float(double("cam", "weight_decay"))
        o.widthDivisor = int("cam", "width_divisor")!
        o.frozenBN = bool("cam", "frozen_bn")
        o.inferenceScales = doubles("cam", "inference_scales")
        o.checkpointEvery = int("cam", "checkpoint_every")!
        o.seed = UInt64(int("run", "seed")!)
        return o
    }

    /// The pseudo-label rule of a source name (`pseudo.source` and `pseudo.compare` values).
    public func pseudoLabelMethod(_ source: String) throws -> PseudoLabelMethod {
        switch source {
        case "cam", "folder": return .seeds
        case "sepl":
            return .sepl(SEPLMerge(
                maskShare: double("pseudo", "mask_share"), regionShare: double("pseudo", "region_share"), ignoreConflicts: bool("pseudo", "ignore_conflicts")))
        case "boxes":
            return .boxes(BoxMerge(scoreThreshold: double("pseudo", "box_threshold")), detections: try string("pseudo", "detections").map(dataPath))
        case "gt": return .groundTruth
        default: throw RecipeError(path: path, message: "'pseudo.source'/'pseudo.compare': unknown source '\(source)' (cam, sepl, boxes, gt, folder)")
        }
    }

    /// A dataset file or folder named in the recipe (pseudo.seeds, pseudo.detections, pseudo.labels,
    /// pseudo.proposals): relative to data.root unless absolute. Other paths (checkpoints, run.dir)
    /// are relative to the working directory.
    public func dataPath(_ path: String) throws -> String {
        path.hasPrefix("/") ? path : try requiredString("data", "root") + "/" + path
    }

    /// Seeds: `pseudo.seeds` (a folder of label PNGs) or the pipeline's CAMs thresholded at `cam.bg_threshold`.
    public func seedSource(camFile: String) throws -> SeedSource {
        if let seeds = string("pseudo", "seeds") { return .folder(try dataPath(seeds)) }
        return .cams(path: camFile, threshold: CAMThreshold(background: Float(double("cam", "bg_threshold"))))
    }

    /// The segmenter's initial weights: `model.init`, where the value `cam` means the
    /// pipeline's own CAM classifier (`<run.dir>/cam/cam_final.h5`) — its backbone stands in for
    /// ImageNet weights when none can be downloaded (the demo).
    public func segmenterInit(runDirectory: String) -> String? {
        guard let value = string("model", "init"), value != "none" else { return nil }
        return value == "cam" ? runDirectory + "/cam/cam_final.h5" : value
    }

    public func validateForTraining() throws {
        guard segmentationOptions.preprocessing.rawValue == string("train", "preprocessing") else {
            throw RecipeError(path: path, message: "'train.preprocessing' must be caffe or torchvision")
        }
        guard string("model", "arch") == "deeplabv2-resnet101" else {
            throw RecipeError(path: path, message: "'model.arch' must be deeplabv2-resnet101 (depth and width are separate keys)")
        }
        guard [18, 34, 50, 101].contains(int("model", "depth")!) else { throw RecipeError(path: path, message: "'model.depth' must be 18, 34, 50 or 101") }
    }
}
