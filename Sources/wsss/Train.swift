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

    @Option(
        help: ArgumentHelp(
            "The products of the CAM classifier and the segmenter (what the command runs of them): fp32, bf16 mixed precision (bf16 inputs, fp32 sums, as PyTorch's CPU autocast; emulated where the CPU has no AVX512-BF16: for accuracy, not speed) or auto (bf16 only where the CPU has it); --set run.precision=… as a flag. (default: run.precision, fp32)",
            valueName: "fp32|bf16|auto"))
    var precision: ComputePrecision?

    func load() throws -> Recipe {
        try Recipe(path: recipe, overrides: overrides + (precision.map { ["run.precision=\($0.rawValue)"] } ?? []))
    }
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
            "Initialise from a checkpoint: ours, or an official torchvision / deeplab-pytorch .pth (names matching model.init_exclude are skipped). (default: model.init)",
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
