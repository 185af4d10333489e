import ArgumentParser
import Autograd
import Datasets
import Evaluation
import HDF5
import Foundation
import Imaging
import PseudoLabels
import SegmentAnything
import Training

/// Recipe-driven settings shared by train and pipeline.
struct RecipeOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Recipe YAML (recipes/*.yaml). (required)", valueName: "file"))
    var recipe: String

    @Option(name: .customLong("set"), help: ArgumentHelp("Override a recipe value, e.g. --set train.iterations=100 (repeatable; default: none).", valueName: "section.key=value"))
    var overrides: [String] = []

    func load() throws -> Recipe { try Recipe(path: recipe, overrides: overrides) }
}

extension Recipe {
    func dataset(split: String, labels: String? = nil, requireLabels: Bool = false) throws -> VOCDataset {
        let root = try requiredString("data", "root")
        let classes: ClassNames
        if let c = string("data", "classes") { classes = try ClassNames.load(c) } else {
            classes = FileManager.default.fileExists(atPath: root + "/classes.txt") ? try ClassNames.load(root + "/classes.txt") : .voc
        }
        return try VOCDataset(root: root, split: split, classes: classes, labels: labels, imageLabelFile: string("data", "image_labels"),
                              requireLabels: requireLabels)
    }

    var segmentationOptions: SegmentationOptions {
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

    var camOptions: CAMTrainingOptions {
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
    func pseudoLabelMethod(_ source: String) throws -> PseudoLabelMethod {
        switch source {
        case "cam", "folder": return .seeds
        case "sepl":
            return .sepl(SEPLMerge(
                maskShare: double("pseudo", "mask_share"), regionShare: double("pseudo", "region_share"), ignoreConflicts: bool("pseudo", "ignore_conflicts")))
        case "boxes": return .boxes(BoxMerge(scoreThreshold: double("pseudo", "box_threshold")), detections: string("pseudo", "detections"))
        case "gt": return .groundTruth
        default: throw RecipeError(path: path, message: "'pseudo.source'/'pseudo.compare': unknown source '\(source)' (cam, sepl, boxes, gt, folder)")
        }
    }

    /// Seeds: `pseudo.seeds` (a folder of label PNGs) or the pipeline's CAMs thresholded at `cam.bg_threshold`.
    func seedSource(camFile: String) throws -> SeedSource {
        if let seeds = string("pseudo", "seeds") { return .folder(seeds) }
        return .cams(path: camFile, threshold: CAMThreshold(background: Float(double("cam", "bg_threshold"))))
    }

    /// The `sam:` section as the mask generator's options.
    var samGeneratorOptions: AutomaticMaskGeneratorOptions {
        var o = AutomaticMaskGeneratorOptions()
        o.pointsPerSide = int("sam", "points_per_side")!
        o.pointsPerBatch = int("sam", "points_per_batch")!
        o.predIoUThresh = double("sam", "pred_iou_thresh")
        o.stabilityScoreThresh = double("sam", "stability_score_thresh")
        o.stabilityScoreOffset = double("sam", "stability_score_offset")
        o.boxNMSThresh = double("sam", "box_nms_thresh")
        o.cropNLayers = int("sam", "crop_n_layers")!
        o.cropNMSThresh = double("sam", "crop_nms_thresh")
        o.cropOverlapRatio = double("sam", "crop_overlap_ratio")
        o.cropNPointsDownscaleFactor = int("sam", "crop_n_points_downscale_factor")!
        o.minMaskRegionArea = int("sam", "min_mask_region_area")!
        return o
    }

    /// The segmenter's initial weights: `model.init`, where the value `cam` means the
    /// pipeline's own CAM classifier (`<run.dir>/cam/cam_final.h5`) — its backbone stands in for
    /// ImageNet weights when none can be downloaded (the demo).
    func segmenterInit(runDirectory: String) -> String? {
        guard let value = string("model", "init"), value != "none" else { return nil }
        return value == "cam" ? runDirectory + "/cam/cam_final.h5" : value
    }

    func validateForTraining() throws {
        guard segmentationOptions.preprocessing.rawValue == string("train", "preprocessing") else {
            throw RecipeError(path: path, message: "'train.preprocessing' must be caffe or torchvision")
        }
        guard string("model", "arch") == "deeplabv2-resnet101" else {
            throw RecipeError(path: path, message: "'model.arch' must be deeplabv2-resnet101 (depth and width are separate keys)")
        }
        guard [18, 34, 50, 101].contains(int("model", "depth")!) else { throw RecipeError(path: path, message: "'model.depth' must be 18, 34, 50 or 101") }
    }
}

/// `wsss train`: DeepLab-v2 on a folder of (pseudo-)labels.
struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train", abstract: "Train DeepLab-v2 on pseudo-labels (or any labels) from a recipe.",
        discussion: "Labels: the recipe's pseudo.labels folder (or --labels); checkpoints iter_N.h5 (last K kept) and final.h5, train.jsonl and curves.png go to --out (default: <run.dir>/segmenter). Ctrl-C or SIGTERM writes a checkpoint and exits; --resume auto continues from the newest one.")

    @OptionGroup var recipeOptions: RecipeOptions
    @OptionGroup var runtime: RuntimeOptions
    @Option(help: ArgumentHelp("Label folder overriding pseudo.labels (relative to the data root or absolute), or 'gt' for the ground truth (the fully-supervised upper bound). (default: pseudo.labels; one of the two is required)", valueName: "dir|gt")) var labels: String?
    @Option(help: ArgumentHelp("Run folder. (default: <run.dir>/segmenter)", valueName: "dir")) var out: String?
    @Option(help: ArgumentHelp("Initialise from a checkpoint (names matching model.init_exclude are skipped). (default: model.init)", valueName: "file")) var initFrom: String?
    @Option(help: ArgumentHelp("Resume: a checkpoint or 'auto' (the newest in the run folder). (default: none, a fresh run)", valueName: "file|auto")) var resume: String?
    @Flag(help: "With --resume: continue even if the recipe's training settings differ from the checkpoint's (they are listed). (default: off, refused)") var allowRecipeChange = false
    @Flag(help: "Start a fresh run in a folder that holds checkpoints, moving the earlier run's files to <out>/replaced-<date>/ (nothing is deleted). (default: off, such a folder is refused)") var overwrite = false

    func run() throws {
        let recipe = try recipeOptions.load()
        try runtime.apply(defaultThreads: recipe.int("run", "threads"))
        try recipe.validateForTraining()
        let runDir = try out ?? (recipe.requiredString("run", "dir") + "/segmenter")
        // A weakly-supervised run must never train on the ground truth by accident.
        guard let source = labels ?? recipe.string("pseudo", "labels") else {
            throw ValidationError("no label source: give --labels DIR (pseudo-labels), set pseudo.labels in \(recipe.path), or --labels gt for the fully-supervised upper bound")
        }
        let labelFolder: String? = source == "gt" ? nil : source
        Log.info("train: labels " + (labelFolder.map { "from \($0)" } ?? "from the ground truth (fully supervised: an upper bound, not a WSSS result)"))
        let path = try trainSegmenter(recipe: recipe, labels: labelFolder, runDirectory: runDir, initFrom: initFrom ?? recipe.segmenterInit(runDirectory: try recipe.requiredString("run", "dir")), resume: resume,
                                  overwrite: overwrite, allowRecipeChange: allowRecipeChange)
        Log.info("train: \(path)")
    }
}

/// Shared by `train` and `pipeline`.
func trainSegmenter(
    recipe: Recipe, labels: String?, runDirectory: String, initFrom: String?, resume: String?, overwrite: Bool = false, allowRecipeChange: Bool = false
) throws -> String {
    let options = recipe.segmentationOptions
    let dataset = try recipe.dataset(split: recipe.string("data", "train_split")!, labels: labels, requireLabels: true)
    let validation = try? recipe.dataset(split: recipe.string("data", "val_split")!, requireLabels: true)
    StopRequest.install()
    let progress = ProgressBar("train", total: options.iterations, unit: "it")
    var shown = 0  // iterations the bar shows; a resumed run's first report jumps to its iteration
    do {
        return try SegmentationTraining.train(
            dataset: dataset, validation: validation, options: options, recipeText: recipe.text, runDirectory: runDirectory,
            initFrom: initFrom, initExclude: recipe.strings("model", "init_exclude"), resume: resume, overwrite: overwrite,
            allowChangedOptions: allowRecipeChange, notice: { Log.info("train: \($0)") },
            report: { p in
                progress.advance(by: max(0, p.iteration - shown), extra: String(format: "loss %.4f lr %.2e %.1f img/s", p.loss, p.learningRate, p.imagesPerSecond))
                shown = max(shown, p.iteration)
            },
            evaluated: { iteration, miou in Log.info(String(format: "train: iteration %d val mIoU %.2f%%", iteration, miou)) })
    } catch let stop as TrainingInterrupted {
        Log.info("train: \(stop.localizedDescription)")
        throw ExitCode(130)
    }
}

/// `wsss eval`: mIoU of a checkpoint on a labelled split.
struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval", abstract: "Evaluate a DeepLab-v2 checkpoint on a labelled split: per-class IoU table and mIoU.",
        discussion: "Logits are upsampled bilinearly to each image's size; --scales/--flip average softmax scores over scales and mirror images.")

    @OptionGroup var data: DatasetOptions
    @OptionGroup var runtime: RuntimeOptions
    @Option(help: ArgumentHelp("Checkpoint (final.h5). (required)", valueName: "file")) var checkpoint: String
    @Option(help: ArgumentHelp("Scales, e.g. 0.5,0.75,1.0,1.25,1.5.", valueName: "list")) var scales = "1.0"
    @Flag(help: "Also average over horizontal flips.") var flip = false
    @Flag(help: "Print one JSON object (as `wsss score --json`).") var json = false

    func run() throws {
        try runtime.apply()
        let report = try evaluateCheckpoint(checkpoint, dataset: try data.dataset(requireLabels: true),
                                            scales: try parseNumbers(scales, option: "--scales", positive: true), flip: flip)
        if json { printJSON(report.report.jsonObject(images: report.images)) } else {
            print(report.report.table(title: "\(checkpoint) on \(data.split): \(report.images) images"))
        }
    }
}

func evaluateCheckpoint(_ checkpoint: String, dataset: VOCDataset, scales: [Double], flip: Bool, predictions: String? = nil) throws -> (report: SegmentationReport, images: Int) {
    let (model, options, classes) = try SegmentationTraining.load(checkpoint)
    guard classes.count == dataset.classes.count else {
        throw TrainingError.badCheckpoint(path: checkpoint, reason: "has \(classes.count) classes, the dataset \(dataset.classes.count)")
    }
    let progress = ProgressBar("eval \(dataset.split)", total: dataset.samples.count)
    if let predictions { try FileManager.default.createDirectory(atPath: predictions, withIntermediateDirectories: true) }
    let matrix = try SegmentationTraining.evaluate(
        model: model, dataset: dataset, preprocessing: options.preprocessing, scales: scales.isEmpty ? [1] : scales, flip: flip,
        onImage: { id, labels in if let predictions { try labels.writePNG(to: "\(predictions)/\(id).png") } },
        progress: { progress.advance() })
    return (matrix.report(classNames: dataset.classes.names), dataset.samples.count)
}

/// `wsss predict`: palette PNGs for a split (e.g. VOC test for the evaluation server).
struct PredictCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "predict", abstract: "Write predicted label PNGs for a split in the VOC evaluation-server layout.",
        discussion: "Files go to <out>/results/VOC2012/Segmentation/comp6_<split>_cls/<id>.png (palette PNGs); --overlays adds <out>/overlays/<id>.png; --save-logits writes per-image class scores at image resolution to <out>/scores.h5 (/<id>: float32 [classes, H, W], softmax).")

    @OptionGroup var data: DatasetOptions
    @OptionGroup var runtime: RuntimeOptions
    @Option(help: ArgumentHelp("Checkpoint (final.h5). (required)", valueName: "file")) var checkpoint: String
    @Option(help: ArgumentHelp("Output folder. (required)", valueName: "dir")) var out: String
    @Option(help: ArgumentHelp("Scales.", valueName: "list")) var scales = "1.0"
    @Flag(help: "Also average over horizontal flips.") var flip = false
    @Flag(help: "Write overlays of the predictions on the images.") var overlays = false
    @Flag(help: "Write softmax class scores to scores.h5 in the output folder.") var saveLogits = false

    func run() throws {
        try runtime.apply()
        let dataset = try data.dataset()
        let (model, options, _) = try SegmentationTraining.load(checkpoint)
        let folder = "\(out)/results/VOC2012/Segmentation/comp6_\(data.split)_cls"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        if overlays { try FileManager.default.createDirectory(atPath: "\(out)/overlays", withIntermediateDirectories: true) }
        let progress = ProgressBar("predict \(data.split)", total: dataset.samples.count)
        let scaleList = try parseNumbers(scales, option: "--scales", positive: true)
        func process(_ scores: HDF5File?) throws {
            for sample in dataset.samples {
                let image = try Image.readRGB(from: sample.imagePath)
                let result = SegmentationTraining.predict(model: model, image: image, preprocessing: options.preprocessing, scales: scaleList, flip: flip)
                try result.labels.writePNG(to: "\(folder)/\(sample.id).png")
                if overlays { try image.overlaid(with: result.labels).writePNG(to: "\(out)/overlays/\(sample.id).png") }
                try scores?.write(result.scores, at: "/\(sample.id)")
                progress.advance()
            }
        }
        if saveLogits { try HDF5File.writeAtomically(to: "\(out)/scores.h5") { try process($0) } } else { try process(nil) }
        Log.info("predict: \(dataset.samples.count) PNGs in \(folder)")
    }
}
