import Autograd
import Datasets
import Distributed
import Evaluation
import Foundation
import Imaging
import PseudoLabels
import Reporting
import SegmentAnything
import Training

/// A step of a pipeline run, as events, records and summaries name it: "cam_train",
/// "cam_infer", "sam_masks", "pseudo/<source>", "train/<segmenter>", "eval/<segmenter>/<split>"
/// (`description`).
public enum PipelineStep: Hashable, Sendable, CustomStringConvertible {
    case camTrain
    case camInfer
    case samMasks
    /// Grounding DINO over the training split (`pseudo.detector_checkpoint`).
    case detect
    case pseudo(LabelSource)
    /// A segmenter's training (`RunLayout.segmenterName`: the source, `_seed<s>` for extra seeds).
    case train(segmenter: String)
    case eval(segmenter: String, split: String)

    public var description: String {
        switch self {
        case .camTrain: "cam_train"
        case .camInfer: "cam_infer"
        case .samMasks: "sam_masks"
        case .detect: "detect"
        case .pseudo(let source): "pseudo/\(source.rawValue)"
        case .train(let name): "train/\(name)"
        case .eval(let name, let split): "eval/\(name)/\(split)"
        }
    }

    /// Whether its progress counts training iterations (else images).
    public var countsIterations: Bool {
        switch self {
        case .camTrain, .train: true
        case .camInfer, .samMasks, .detect, .pseudo, .eval: false
        }
    }
}

/// What a running pipeline tells its caller: steps as they start or are skipped, progress within
/// a step, one-line messages and tables. The CLI turns these into progress bars and stderr lines;
/// a Swift caller may ignore them or log them its own way.
public struct PipelineEvents {
    /// A step starts.
    public var stepStarted: (PipelineStep) -> Void = { _ in }
    /// A step is skipped because its output exists and is current (the path).
    public var stepSkipped: (PipelineStep, String) -> Void = { _, _ in }
    /// Progress within a step: done, total, a short detail ("loss 0.213").
    public var progress: (_ step: PipelineStep, _ done: Int, _ total: Int, _ detail: String) -> Void = { _, _, _, _ in }
    /// A message for the log (tables included).
    public var message: (String) -> Void = { _ in }
    public init() {}
}

/// One segmenter's results.
public struct SegmenterResult: Codable, Sendable {
    /// The first seed's final checkpoint.
    public var checkpoint: String
    /// Where its training labels came from (as the checkpoint records it).
    public var labels = ""
    /// mIoU (%) per evaluated split (the mean over seeds with `Pipeline.seeds` > 1).
    public var miou: [String: Double] = [:]
    /// With several seeds: the sample standard deviation of the mIoU, and each seed's mIoU.
    public var miouStd: [String: Double] = [:]
    public var seedMIoU: [String: [Double]] = [:]
}

/// What a pipeline run produced (also written to `run.dir/summary.json`, `Codable`).
public struct PipelineSummary: Codable, Sendable {
    public var source: LabelSource
    /// Pseudo-label mIoU (%) against ground truth, per source.
    public var pseudoMIoU: [LabelSource: Double] = [:]
    public var segmenters: [LabelSource: SegmenterResult] = [:]
    /// What each SEPL or boxes source's proposals were ("SAM stand-in, derived from ground
    /// truth", "Felzenszwalb segments", "SAM automatic masks (sam_vit_b.pth)"), for the tables.
    public var proposals: [LabelSource: String] = [:]

    /// A source as tables name it: "sepl (SAM stand-in, derived from ground truth)".
    public func label(_ source: LabelSource) -> String {
        proposals[source].map { "\(source.rawValue) (\($0))" } ?? source.rawValue
    }
    /// Seconds per step and per stage (the part of the step name before "/").
    public var stepSeconds: [String: Double] = [:]
    /// Steps whose outputs existed; their times are those of the run that made them.
    public var reusedSteps: [String] = []

    public var stageSeconds: [String: Double] {
        var out: [String: Double] = [:]
        for (step, seconds) in stepSeconds { out[String(step.prefix { $0 != "/" }), default: 0] += seconds }
        return out
    }

    /// The table the CLI prints at the end.
    public var table: String {
        let width = max(24, (Array(pseudoMIoU.keys) + Array(segmenters.keys)).map { label($0).count + 2 }.max() ?? 0)
        var lines = ["", "pseudo-labels (train)".padding(toLength: width + 2, withPad: " ", startingAt: 0) + "  mIoU (%)"]
        for (name, miou) in pseudoMIoU.sorted(by: { $0.value < $1.value }) {
            lines.append(
                "  " + label(name).padding(toLength: width, withPad: " ", startingAt: 0) + String(format: " %7.2f", miou))
        }
        lines.append("")
        let seeds = segmenters.values.map { $0.seedMIoU.values.map(\.count).max() ?? 1 }.max() ?? 1
        lines.append(
            "segmenter trained on".padding(toLength: width + 2, withPad: " ", startingAt: 0)
                + (seeds > 1 ? "  val mIoU (mean ± std)  test mIoU, \(seeds) seeds" : "  val mIoU  test mIoU"))
        for (name, r) in segmenters.sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
            func cell(_ split: String, _ width: Int) -> String {
                guard let m = r.miou[split] else { return String(repeating: " ", count: width - 1) + "-" }
                let text = r.miouStd[split].map { String(format: "%.2f ± %.2f", m, $0) } ?? String(format: "%.2f", m)
                return String(repeating: " ", count: max(0, width - text.count)) + text
            }
            let spread = !r.miouStd.isEmpty
            let v = cell("val", spread ? 15 : 8), t = cell("test", spread ? 16 : 9)
            lines.append(
                "  " + (label(name) + (name == source ? " *" : "")).padding(toLength: width, withPad: " ", startingAt: 0)
                    + " \(v) \(t)")
        }
        lines.append("")
        lines.append("stage          seconds")
        for (name, seconds) in stageSeconds.sorted(by: { $0.key < $1.key }) {
            lines.append("  " + name.padding(toLength: 12, withPad: " ", startingAt: 0) + String(format: " %7.1f", seconds))
        }
        if !reusedSteps.isEmpty {
            lines.append(
                "  (skipped, outputs existed; times from the run that made them: \(reusedSteps.joined(separator: ", ")))")
        }
        return lines.joined(separator: "\n")
    }
}

/// The whole method from one recipe: CAM classifier → CAMs → pseudo-labels per source →
/// DeepLab-v2 per source → evaluation, into `run.dir` (paths: `RunLayout`). Each step whose
/// output exists and was made from the same inputs is skipped, so an interrupted run resumes
/// where it stopped; an output this pipeline has no record of making is refused (or moved aside
/// with `overwrite`), never reported as the recipe's. Every input the recipe names is checked
/// before the first step runs (`checkInputs`). Pseudo-label sources can be swapped from Swift:
/// `proposalSources[source]` replaces the recipe's proposals, `boxPrompter` the SAM box
/// prompts, `seedSource` the recipe's seeds (CAMs or `pseudo.seeds`).
public final class Pipeline {
    public let recipe: Recipe
    /// Train (and evaluate) a segmenter for every `pseudo.compare` source too.
    public var compare = false
    public var proposalSources: [LabelSource: ProposalSource] = [:]
    /// Segmenters trained per source, with seeds run.seed, run.seed + 1, …; tables report the
    /// mean ± standard deviation of their mIoU.
    public var seeds = 1
    public var boxPrompter: BoxPrompter?
    public var seedSource: SeedSource?
    public var events = PipelineEvents()
    /// Asked after every training step; true saves a checkpoint and stops the run
    /// (`TrainingInterrupted`), which a later run resumes.
    public var shouldStop: () -> Bool = { false }
    /// A finished stage whose recipe values changed since it ran is rerun (with every stage after
    /// it; the old outputs are moved aside) — or, when true, the run stops listing the changes.
    public var refuseReruns = false
    /// Outputs in the run folder that this pipeline has no record of making (a checkpoint from a
    /// separate `wsss train`, files copied in) are moved aside as `<name>.replaced-<time>` and
    /// redone, instead of stopping the run.
    public var overwrite = false
    /// The ranks of a data-parallel run (`wsss pipeline --distributed`): the training stages run
    /// data-parallel, CAM inference, pseudo-labels and the evaluations split their images across
    /// the ranks (docs/DISTRIBUTED.md); rank 0 alone decides what is current and writes records.
    public var communicator = Communicator.single

    /// - Throws: `RecipeError` when the recipe names no `run.dir` or `data.root`.
    public init(recipe: Recipe) throws {
        _ = try recipe.runDirectory()
        _ = try recipe.required(recipe.data.root, "data.root")
        self.recipe = recipe
    }

    public var runDirectory: String { recipe.run.dir ?? "" }
    /// Every path of the run folder.
    public var layout: RunLayout { RunLayout(root: runDirectory) }

    /// The pseudo-label sources this run makes: `pseudo.source`, then `pseudo.compare`'s.
    public var sources: [LabelSource] {
        var sources = [recipe.pseudo.source]
        for source in recipe.pseudo.compare where !sources.contains(source) { sources.append(source) }
        return sources
    }

    /// Whether a source reads the pipeline's own CAMs (no `seedSource`, no `pseudo.seeds`).
    public var needsCAM: Bool {
        // Boxes read seeds only when no detector gives them (boxes from the CAM's components).
        seedSource == nil && recipe.pseudo.seeds == nil
            && sources.contains {
                [.cam, .sepl, .seplFelzenszwalb].contains($0)
                    || ($0 == .boxes && recipe.pseudo.detections == nil && !recipe.pseudo.runsDetector)
            }
    }

    /// Runs every stage and writes `summary.json` and `report.html`.
    /// - Throws: an input error from `checkInputs` before anything runs, then the first stage's
    ///   error (`TrainingInterrupted` after SIGINT/SIGTERM once the checkpoint is saved),
    ///   `RunFolderError` when another run holds the folder, `PipelineError` for an output this
    ///   pipeline did not make.
    @discardableResult
    public func run() throws -> PipelineSummary {
        try checkInputs()
        // One pipeline per run folder (stages lock their own sub-folders too); rank 0 holds it.
        let lock = communicator.isWriter ? try RunFolder.Lock(directory: try recipe.runDirectory()) : nil
        defer { withExtendedLifetime(lock) {} }
        if let lock { RunFolder.removeStaleTemporaries(in: lock.directory) }
        return try PipelineRun(self).execute()
    }
}

/// A thread-safe running count (progress from worker threads).
final class Counter: @unchecked Sendable {
    private var value = 0
    private let lock = NSLock()
    func next() -> Int {
        lock.lock()
        defer { lock.unlock() }
        value += 1
        return value
    }
}
