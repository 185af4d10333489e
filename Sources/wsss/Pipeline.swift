import ArgumentParser
import Autograd
import Datasets
import Distributed
import Evaluation
import Foundation
import PseudoLabels
import Pipeline
import SegmentAnything
import Training

/// `wsss pipeline`: every stage from a recipe, each skipped when its output exists.
struct PipelineCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pipeline",
        abstract: "Run CAM training → CAMs → pseudo-labels → DeepLab-v2 training → val/test evaluation from one recipe.",
        discussion:
            "Outputs go to run.dir: cam/ (cam_final.h5, cams_<split>.h5), pseudo/<source>/ (label PNGs, score.json), segmenter_<source>/ (checkpoints, train.jsonl, curves.png), summary.json. Every input the recipe names is checked before the first stage runs. A stage whose output exists and was made from the same inputs (its provenance record, or the provenance a checkpoint or folder carries) is skipped, so an interrupted pipeline resumes where it stopped; a stage whose values changed is redone, with every stage after it (their old outputs moved aside as <name>.replaced-<time>), unless --no-rerun; an output the pipeline has no record of making is refused unless --overwrite. --compare also trains segmenters on the pseudo.compare sources."
    )

    @OptionGroup var recipeOptions: RecipeOptions
    @OptionGroup var runtime: RuntimeOptions
    @Flag(help: "Train a segmenter for every source in pseudo.compare too, not only pseudo.source.") var compare = false
    @Option(
        help: ArgumentHelp(
            "Train each segmenter with this many seeds (run.seed, run.seed + 1, …) and report mean ± standard deviation; the extra ones go to segmenter_<source>_seed<s>/.",
            valueName: "n"))
    var seeds = 1
    @Flag(
        help:
            "Stop, listing the changed keys, when a finished stage's recipe values changed, instead of redoing it and what follows (the old outputs are then moved aside). (default: off)"
    ) var noRerun = false
    @Flag(
        help:
            "Move outputs in run.dir that this pipeline has no record of making (a checkpoint from a separate `wsss train`, files copied in, SAM masks of unrecorded settings) aside as <name>.replaced-<time> and redo them, instead of stopping. (default: off, such outputs are refused)"
    ) var overwrite = false
    @Flag(
        help:
            "Under mpirun/srun: CAM and DeepLab training data-parallel over the ranks; CAM inference, pseudo-labels and evaluation split their images across them (docs/DISTRIBUTED.md). (default: off)"
    ) var distributed = false

    func run() throws {
        let recipe = try recipeOptions.load()
        let communicator = try startDistributed(distributed, command: "pipeline")
        try runtime.apply(defaultThreads: recipe.run.threads)
        let pipeline = try Pipeline(recipe: recipe)
        pipeline.communicator = communicator
        pipeline.compare = compare
        guard seeds >= 1 else { throw ValidationError("--seeds must be at least 1, got \(seeds)") }
        pipeline.seeds = seeds
        pipeline.refuseReruns = noRerun
        pipeline.overwrite = overwrite
        // Progress bars and log lines for the library's events: one bar per step that reports progress.
        var bars: [PipelineStep: ProgressBar] = [:]
        var shown: [PipelineStep: Int] = [:]
        pipeline.events.stepStarted = { Log.info("== \($0)") }
        pipeline.events.stepSkipped = { _, path in Log.info("skip: \(path) exists") }
        pipeline.events.message = { Log.info($0) }
        let lock = NSLock()
        pipeline.events.progress = { step, done, total, detail in
            lock.lock()
            defer { lock.unlock() }
            let bar: ProgressBar
            if let existing = bars[step] {
                bar = existing
            } else {
                bar = ProgressBar(step.description, total: total, unit: step.countsIterations ? "it" : "img")
                bars[step] = bar
                // A resumed step reports from where it stopped (training says so first, with the
                // checkpoint's iteration): start the bar there, out of the rate.
                let before = detail == "resumed" || done == 0 ? done : done - 1
                if before > 0 { bar.resume(at: before); shown[step] = before }
            }
            bar.advance(by: max(0, done - (shown[step] ?? 0)), extra: detail)
            shown[step] = max(shown[step] ?? 0, done)
        }
        StopRequest.install()
        pipeline.shouldStop = { StopRequest.requested != 0 }
        let summary: PipelineSummary
        do {
            summary = try pipeline.run()
        } catch let stop as TrainingInterrupted {
            Log.info("pipeline: \(stop.localizedDescription)")
            throw ExitCode(130)
        }
        guard communicator.isWriter else { return }
        print(summary.table)
        print("summary: \(pipeline.layout.summary)")
    }
}
