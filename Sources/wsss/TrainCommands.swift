import ArgumentParser
import Autograd
import Datasets
import DenseCRF
import Distributed
import Evaluation
import HDF5
import Foundation
import Imaging
import Pipeline
import Reporting
import PseudoLabels
import SegmentAnything
import Training

/// Recipe-driven settings shared by train and pipeline.
struct RecipeOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Recipe YAML (recipes/*.yaml). (required)", valueName: "file"))
    var recipe: String

    @Option(
        name: .customLong("set"),
        help: ArgumentHelp(
            "Override a recipe value, e.g. --set train.iterations=100 (repeatable; default: none).",
            valueName: "section.key=value"))
    var overrides: [String] = []

    func load() throws -> Recipe { try Recipe(path: recipe, overrides: overrides) }
}

/// `wsss train`: DeepLab-v2 on a folder of (pseudo-)labels.
struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train", abstract: "Train DeepLab-v2 on pseudo-labels (or any labels) from a recipe.",
        discussion:
            "Labels: the recipe's pseudo.labels folder (or --labels); checkpoints iter_N.h5 (last K kept) and final.h5, train.jsonl and curves.png go to --out (default: <run.dir>/segmenter_<label folder name>, or segmenter_gt, as the pipeline names them). Ctrl-C or SIGTERM writes a checkpoint and exits; --resume auto continues from the newest one."
    )

    @OptionGroup var recipeOptions: RecipeOptions
    @OptionGroup var runtime: RuntimeOptions
    @Option(
        help: ArgumentHelp(
            "Label folder overriding pseudo.labels (relative to the working directory; pseudo.labels in a recipe is relative to data.root), or 'gt' for the ground truth (the fully-supervised upper bound). (default: pseudo.labels; one of the two is required)",
            valueName: "dir|gt")) var labels: String?
    @Option(
        help: ArgumentHelp("Run folder. (default: <run.dir>/segmenter_<label folder name>, or segmenter_gt)", valueName: "dir"))
    var out: String?
    @Option(
        help: ArgumentHelp(
            "Initialise from a checkpoint (names matching model.init_exclude are skipped). (default: model.init)",
            valueName: "file")) var initFrom: String?
    @Option(
        help: ArgumentHelp(
            "Resume: a checkpoint or 'auto' (the newest in the run folder). (default: none, a fresh run)", valueName: "file|auto"),
        transform: Resume.init(argument:)) var resume: Resume = .never
    @Flag(
        help:
            "With --resume: continue even if the recipe's training settings differ from the checkpoint's (they are listed). (default: off, refused)"
    ) var allowRecipeChange = false
    @Flag(
        help:
            "Start a fresh run in a folder that holds checkpoints, moving the earlier run's files to <out>/replaced-<date>/ (nothing is deleted). (default: off, such a folder is refused)"
    ) var overwrite = false
    @Flag(
        help:
            "Data-parallel training over the ranks of mpirun/srun (docs/DISTRIBUTED.md): each rank trains on its share of every batch, gradients are summed with MPI; run.threads applies per rank; only rank 0 writes. Without a launcher, one process. (default: off)"
    ) var distributed = false

    func run() throws {
        let recipe = try recipeOptions.load()
        let communicator = try startDistributed(distributed, command: "train")
        try runtime.apply(defaultThreads: recipe.run.threads)
        // A weakly-supervised run must never train on the ground truth by accident.
        guard let source = try labels.map({ $0 == "gt" ? $0 : absolutePath($0) }) ?? recipe.pseudo.labels.map(recipe.dataPath)
        else {
            throw CommandFailure(
                "no label source: give --labels DIR (pseudo-labels), set pseudo.labels in \(recipe.path), or --labels gt for the fully-supervised upper bound"
            )
        }
        let labelFolder: String? = source == "gt" ? nil : source
        // Named like the pipeline's segmenter folders: segmenter_<label source>.
        let layout = RunLayout(root: try recipe.runDirectory())
        var stage = SegmenterStage(
            recipe: recipe, labels: labelFolder,
            runDirectory: try out.map(absolutePath)
                ?? layout.segmenterDirectory(labelFolder.map { ($0 as NSString).lastPathComponent } ?? "gt"))
        stage.initFrom = initFrom ?? recipe.segmenterInit(runDirectory: layout.root)
        stage.resume = resume
        stage.overwrite = overwrite
        stage.allowRecipeChange = allowRecipeChange
        Log.info("train: " + SegmenterStage.describe(labels: labelFolder, split: recipe.data.trainSplit))
        Log.info("train: \(try trainSegmenter(stage, communicator: communicator))")
    }
}

/// Runs a segmenter stage with a progress bar; Ctrl-C or SIGTERM saves a checkpoint and exits 130.
func trainSegmenter(_ stage: SegmenterStage, communicator: Communicator = .single) throws -> String {
    StopRequest.install()
    let options = stage.recipe.segmentationOptions
    let progress = ProgressBar("train", total: options.iterations, unit: "it")
    var shown = 0  // iterations the bar shows; a resumed run's first report jumps to its iteration
    var callbacks = SegmenterStage.Callbacks()
    callbacks.notice = { Log.info("train: \($0)") }
    callbacks.shouldStop = { StopRequest.requested != 0 }
    callbacks.report = { p in
        // A resumed run's first report: the bar starts where the checkpoint left off.
        if shown == 0 && p.iteration > options.logEvery {
            progress.resume(at: p.iteration - options.logEvery); shown = p.iteration - options.logEvery
        }
        progress.advance(
            by: max(0, p.iteration - shown),
            extra: String(format: "loss %.4f lr %.2e %.1f img/s", p.loss, p.learningRate, p.imagesPerSecond))
        shown = max(shown, p.iteration)
    }
    callbacks.evaluated = { iteration, miou in Log.info(String(format: "train: iteration %d val mIoU %.2f%%", iteration, miou)) }
    do {
        return try stage.run(callbacks, communicator: communicator)
    } catch let stop as TrainingInterrupted {
        Log.info("train: \(stop.localizedDescription)")
        throw ExitCode(130)
    }
}

/// `--msc` of eval and predict: which logits are scored.
enum MSCChoice: String, ExpressibleByArgument, CaseIterable {
    /// As the checkpoint was trained (`model.msc`).
    case auto
    /// The MSC model's max-fused logits (deeplab-pytorch's test).
    case on
    /// The network's single-scale logits.
    case off

    /// The `msc` argument of `EvaluationStage.evaluate`: nil leaves it to the checkpoint.
    var value: Bool? {
        switch self {
        case .auto: nil
        case .on: true
        case .off: false
        }
    }

    static let help = ArgumentHelp(
        "Score the MSC max-fused logits of scales 1, 0.75, 0.5 (deeplab-pytorch's test), on, or the single-scale ones, off; auto: as the checkpoint trained (model.msc).",
        valueName: "mode")
}

/// `wsss eval`: mIoU of a checkpoint on a labelled split.
struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval", abstract: "Evaluate a DeepLab-v2 checkpoint on a labelled split: per-class IoU table and mIoU.",
        discussion:
            "Logits (MSC-fused for a checkpoint trained with MSC, unless --msc off) are upsampled bilinearly to each image's size; --scales/--flip average softmax scores over scales and mirror images."
    )

    @OptionGroup var data: EvalDatasetOptions
    @OptionGroup var runtime: RuntimeOptions
    @Option(help: ArgumentHelp("Checkpoint (final.h5). (required)", valueName: "file")) var checkpoint: String
    @Option(help: ArgumentHelp("Scales, e.g. 0.5,0.75,1.0,1.25,1.5.", valueName: "list")) var scales = "1.0"
    @Flag(help: "Also average over horizontal flips.") var flip = false
    @Option(help: MSCChoice.help) var msc = MSCChoice.auto
    @Flag(help: "Print one JSON object (as `wsss score --json`).") var json = false
    @Option(
        help: ArgumentHelp(
            "Also draw the per-class IoU as a bar chart: a PNG here and an SVG beside it. (default: none)", valueName: "file.png")
    ) var plot: String?
    @Flag(help: "Refine each prediction with the fully-connected CRF (docs/CRF.md; settings below) before scoring.") var crf =
        false
    @OptionGroup(title: "CRF (with --crf)") var crfOptions: CRFOptions
    @Flag(
        help:
            "Split the images across the ranks of mpirun/srun and sum their confusion matrices (docs/DISTRIBUTED.md); rank 0 prints. (default: off)"
    ) var distributed = false

    func run() throws {
        let communicator = try startDistributed(distributed, command: "eval")
        try runtime.apply()
        let report = try evaluateCheckpoint(
            checkpoint, dataset: try data.dataset(requireLabels: true),
            scales: try parseNumbers(
                scales, option: "--scales", positive: true, minimum: CAMCommand.minimumInferenceScale,
                maximum: CAMCommand.maximumInferenceScale), flip: flip,
            msc: msc.value, crf: crf ? crfOptions.parameters : nil, communicator: communicator)
        guard communicator.isWriter else { return }
        if let plot {
            let chart = BarChart(
                report: report.report, title: "\((checkpoint as NSString).lastPathComponent) on \(data.split): per-class IoU")
            try chart.render(width: 800).writePNG(to: plot)
            try chart.writeSVG(to: ((plot as NSString).deletingPathExtension) + ".svg", width: 800)
        }
        if json {
            print(report.report.jsonText(images: report.images))
        } else {
            print(report.report.table(title: "\(checkpoint) on \(data.split): \(report.images) images"))
        }
    }
}

func evaluateCheckpoint(
    _ checkpoint: String, dataset: VOCDataset, scales: [Double], flip: Bool, msc: Bool? = nil, crf: DenseCRF.Parameters? = nil,
    predictions: String? = nil, communicator: Communicator = .single
) throws -> (report: SegmentationReport, images: Int) {
    let progress = ProgressBar("eval \(dataset.split)", total: communicator.share(of: dataset.samples).count)
    if let predictions { try FileManager.default.createDirectory(atPath: predictions, withIntermediateDirectories: true) }
    let report = try EvaluationStage.evaluate(
        checkpoint: checkpoint, dataset: dataset, scales: scales, flip: flip, msc: msc, crf: crf,
        onImage: { id, labels in if let predictions { try labels.writePNG(to: "\(predictions)/\(id).png") } },
        progress: { _, _ in progress.advance() }, communicator: communicator)
    return (report, dataset.samples.count)
}

/// `wsss predict`: palette PNGs for a split (e.g. VOC test for the evaluation server).
struct PredictCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "predict",
        abstract:
            "Predict label PNGs with a DeepLab-v2 checkpoint: a dataset split (VOC server layout), a folder of images or one image.",
        discussion: """
            With --root/--split, files go to <out>/results/VOC2012/Segmentation/comp6_<split>_cls/<id>.png (palette PNGs); with \
            --images (a folder of .jpg/.jpeg/.png, or one file), to <out>/<id>.png. --overlays adds <out>/overlays/<id>.png; \
            --save-probabilities writes per-image class probabilities (softmax, averaged over scales and flips) at image \
            resolution to <out>/scores.h5 (/<id>: float32 [classes, H, W]), the input of a CRF.
            Example: wsss predict --checkpoint runs/demo/segmenter_sepl/final.h5 --images photos/ --out predictions/ --overlays
            """)

    @Option(help: ArgumentHelp("Dataset root in the VOC layout (with --split). (default: none; or --images)", valueName: "dir"))
    var root: String?
    @Option(help: ArgumentHelp("Image list under <root>/ImageSets/Segmentation.", valueName: "name")) var split = "val"
    @Option(
        help: ArgumentHelp(
            "A folder of images (.jpg, .jpeg, .png) or one image file. (default: none; or --root)", valueName: "dir|file"))
    var images: String?
    @OptionGroup var runtime: RuntimeOptions
    @Option(help: ArgumentHelp("Checkpoint (final.h5). (required)", valueName: "file")) var checkpoint: String
    @Option(help: ArgumentHelp("Output folder. (required)", valueName: "dir")) var out: String
    @Option(help: ArgumentHelp("Scales.", valueName: "list")) var scales = "1.0"
    @Flag(help: "Also average over horizontal flips.") var flip = false
    @Option(help: MSCChoice.help) var msc = MSCChoice.auto
    @Flag(help: "Write overlays of the predictions on the images.") var overlays = false
    @Flag(
        name: [.customLong("save-probabilities"), .customLong("save-logits")],
        help: "Write the class probabilities to scores.h5 in the output folder (--save-logits is the older name).")
    var saveProbabilities = false
    @Flag(
        help:
            "Refine each prediction with the fully-connected CRF (docs/CRF.md; settings below); scores.h5 keeps the network's probabilities."
    ) var crf = false
    @OptionGroup(title: "CRF (with --crf)") var crfOptions: CRFOptions

    func validate() throws {
        guard (root == nil) != (images == nil) else { throw ValidationError("give --root (with --split) or --images, not both") }
    }

    /// (id, image path) of every image to predict, and the folder the PNGs go to.
    func inputs() throws -> (items: [(id: String, path: String)], folder: String) {
        if let root {
            return (try ImageInputs.list(root: root, split: split), "\(out)/results/VOC2012/Segmentation/comp6_\(split)_cls")
        }
        return (try ImageInputs.list(images!), out)
    }

    func run() throws {
        try runtime.apply()
        let (items, folder) = try inputs()
        let (model, options, classes) = try SegmentationTraining.load(checkpoint)
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        if overlays { try FileManager.default.createDirectory(atPath: "\(out)/overlays", withIntermediateDirectories: true) }
        let progress = ProgressBar("predict", total: items.count)
        let scaleList = try parseNumbers(
            scales, option: "--scales", positive: true, minimum: CAMCommand.minimumInferenceScale,
            maximum: CAMCommand.maximumInferenceScale)
        let refiner = crf ? DenseCRF(parameters: crfOptions.parameters) : nil
        let fused = msc.value ?? options.msc
        func process(_ scores: HDF5File?) throws {
            for item in items {
                let image = try Image.readRGB(from: item.path)
                let result = SegmentationTraining.predict(
                    model: model, image: image, preprocessing: options.preprocessing, scales: scaleList, flip: flip, msc: fused)
                let labels =
                    try refiner.map {
                        try $0.infer(
                            image: image, probabilities: result.scores.scalars, classes: result.scores.shape[0], source: item.path
                        ).labels
                    } ?? result.labels
                try labels.writePNG(to: "\(folder)/\(item.id).png")
                if overlays {
                    // With the legend of the classes it shows, as the pseudo-label panels.
                    try Image.panels(
                        [(item.id, image.overlaid(with: labels))], legend: Image.classLegend(names: classes, present: [labels])
                    )
                    .writePNG(to: "\(out)/overlays/\(item.id).png")
                }
                try scores?.write(result.scores, at: "/\(item.id)")
                progress.advance()
            }
        }
        if saveProbabilities {
            try HDF5File.writeAtomically(to: "\(out)/scores.h5") { try process($0) }
        } else {
            try process(nil)
        }
        Log.info("predict: \(counted(items.count, "PNG")) in \(folder)")
    }
}
