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

/// What a running pipeline tells its caller: steps as they start or are skipped, progress within
/// a step, one-line messages and tables. The CLI turns these into progress bars and stderr lines;
/// a Swift caller may ignore them or log them its own way.
public struct PipelineEvents {
    /// A step ("cam_train", "pseudo/sepl", "train/sepl", "eval/sepl/val") starts.
    public var stepStarted: (String) -> Void = { _ in }
    /// A step is skipped because its output exists (the path).
    public var stepSkipped: (String, String) -> Void = { _, _ in }
    /// Progress within a step: done, total, a short detail ("loss 0.213").
    public var progress: (_ step: String, _ done: Int, _ total: Int, _ detail: String) -> Void = { _, _, _, _ in }
    /// A message for the log (tables included).
    public var message: (String) -> Void = { _ in }
    public init() {}
}

/// One segmenter's results.
public struct SegmenterResult: Sendable {
    /// The first seed's final checkpoint.
    public var checkpoint: String
    /// mIoU (%) per evaluated split (the mean over seeds with `Pipeline.seeds` > 1).
    public var miou: [String: Double] = [:]
    /// With several seeds: the sample standard deviation of the mIoU, and each seed's mIoU.
    public var miouStd: [String: Double] = [:]
    public var seedMIoU: [String: [Double]] = [:]
}

/// What a pipeline run produced (also written to `run.dir/summary.json`).
public struct PipelineSummary: Sendable {
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

    /// summary.json's object.
    public var jsonObject: [String: Any] {
        let main = segmenters[source]
        var object: [String: Any] = [
            "pseudo_miou": Dictionary(uniqueKeysWithValues: pseudoMIoU.map { ($0.key.rawValue, $0.value) }), "stage_seconds": stageSeconds, "step_seconds": stepSeconds, "checkpoint": main?.checkpoint ?? NSNull(),
            "val_miou": main?.miou["val"] ?? NSNull(), "test_miou": main?.miou["test"] ?? NSNull(), "source": source.rawValue,
            "val_miou_std": main?.miouStd["val"] ?? NSNull(), "test_miou_std": main?.miouStd["test"] ?? NSNull(),
            "val_miou_seeds": main?.seedMIoU["val"] ?? NSNull(), "test_miou_seeds": main?.seedMIoU["test"] ?? NSNull(),
            "proposals": Dictionary(uniqueKeysWithValues: proposals.map { ($0.key.rawValue, $0.value) }),
        ]
        if segmenters.count > 1 {
            object["segmenters"] = Dictionary(uniqueKeysWithValues: segmenters.map { source, r -> (String, [String: Any]) in
                var entry: [String: Any] = ["checkpoint": r.checkpoint]
                for (split, miou) in r.miou { entry["\(split)_miou"] = miou }
                for (split, std) in r.miouStd { entry["\(split)_miou_std"] = std }
                for (split, values) in r.seedMIoU { entry["\(split)_miou_seeds"] = values }
                return (source.rawValue, entry)
            })
        }
        return object
    }

    /// The table the CLI prints at the end.
    public var table: String {
        let width = max(24, (Array(pseudoMIoU.keys) + Array(segmenters.keys)).map { label($0).count + 2 }.max() ?? 0)
        var lines = ["", "pseudo-labels (train)".padding(toLength: width + 2, withPad: " ", startingAt: 0) + "  mIoU (%)"]
        for (name, miou) in pseudoMIoU.sorted(by: { $0.value < $1.value }) {
            lines.append("  " + label(name).padding(toLength: width, withPad: " ", startingAt: 0) + String(format: " %7.2f", miou))
        }
        lines.append("")
        let seeds = segmenters.values.map { $0.seedMIoU.values.map(\.count).max() ?? 1 }.max() ?? 1
        lines.append("segmenter trained on".padding(toLength: width + 2, withPad: " ", startingAt: 0)
            + (seeds > 1 ? "  val mIoU (mean ± std)  test mIoU, \(seeds) seeds" : "  val mIoU  test mIoU"))
        for (name, r) in segmenters.sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
            func cell(_ split: String, _ width: Int) -> String {
                guard let m = r.miou[split] else { return String(repeating: " ", count: width - 1) + "-" }
                let text = r.miouStd[split].map { String(format: "%.2f ± %.2f", m, $0) } ?? String(format: "%.2f", m)
                return String(repeating: " ", count: max(0, width - text.count)) + text
            }
            let spread = !r.miouStd.isEmpty
            let v = cell("val", spread ? 15 : 8), t = cell("test", spread ? 16 : 9)
            lines.append("  " + (label(name) + (name == source ? " *" : "")).padding(toLength: width, withPad: " ", startingAt: 0) + " \(v) \(t)")
        }
        lines.append("")
        lines.append("stage          seconds")
        for (name, seconds) in stageSeconds.sorted(by: { $0.key < $1.key }) {
            lines.append("  " + name.padding(toLength: 12, withPad: " ", startingAt: 0) + String(format: " %7.1f", seconds))
        }
        if !reusedSteps.isEmpty {
            lines.append("  (skipped, outputs existed; times from the run that made them: \(reusedSteps.joined(separator: ", ")))")
        }
        return lines.joined(separator: "\n")
    }
}

/// The whole method from one recipe: CAM classifier → CAMs → pseudo-labels per source →
/// DeepLab-v2 per source → evaluation, into `run.dir`. Each step whose output exists is skipped,
/// so an interrupted run resumes where it stopped. Pseudo-label sources can be swapped from
/// Swift: `proposalSources[source]` replaces the recipe's proposals, `boxPrompter` the SAM box
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

    /// Runs every stage and writes `summary.json`.
    /// - Throws: the first stage's error (`TrainingInterrupted` after SIGINT/SIGTERM once the
    ///   checkpoint is saved), `RunFolderError` when another run holds the folder.
    @discardableResult
    public func run() throws -> PipelineSummary {
        let runDir = try recipe.runDirectory()
        let root = try recipe.required(recipe.data.root, "data.root")
        // One pipeline per run folder (stages lock their own sub-folders too); rank 0 holds it.
        let writer = communicator.isWriter
        let lock = writer ? try RunFolder.Lock(directory: runDir) : nil
        defer { withExtendedLifetime(lock) {} }
        // A skipped step keeps the time of the run that made its output (the previous summary.json).
        let previousSteps = (FileManager.default.contents(atPath: runDir + "/summary.json")
            .flatMap { try? JSONSerialization.jsonObject(with: $0) as? [String: Any] })?["step_seconds"] as? [String: Double] ?? [:]
        let mainSource = recipe.pseudo.source
        var summary = PipelineSummary(source: mainSource)
        // The run folder's own TensorBoard events (pseudo-label scores); stages write theirs in their folders.
        let board = writer ? try TensorBoardWriter(logDirectory: runDir) : nil
        var skipped = false
        func skip(_ step: String, _ path: String) {
            events.stepSkipped(step, path)
            skipped = true
        }
        func stage<T>(_ step: String, _ body: () throws -> T) rethrows -> T {
            let start = Date()
            events.stepStarted(step)
            skipped = false
            defer {
                if skipped {
                    summary.stepSeconds[step] = previousSteps[step] ?? 0
                    summary.reusedSteps.append(step)
                } else {
                    summary.stepSeconds[step] = Date().timeIntervalSince(start)
                }
            }
            return try body()
        }
        // Provenance: each finished output remembers the recipe values it was made from. Rank 0
        // reads (and moves aside) the records; every rank follows its answer.
        func isCurrent(_ step: String, output: String, provenance: Provenance, record: String, stale: [String]) throws -> Bool {
            guard communicator.size > 1 else { return try decideCurrent(step, output: output, provenance: provenance, record: record, stale: stale) }
            let mine = writer ? (try decideCurrent(step, output: output, provenance: provenance, record: record, stale: stale) ? 1.0 : 0.0) : 0
            return try communicator.broadcast(mine) != 0
        }
        func writeRecord(_ provenance: Provenance, _ record: String) throws { if writer { try provenance.write(record) } }
        func decideCurrent(_ step: String, output: String, provenance: Provenance, record: String, stale: [String]) throws -> Bool {
            let exists = FileManager.default.fileExists(atPath: output)
            if let stored = Provenance.read(record) {
                let changes = provenance.changes(from: stored)
                if !changes.isEmpty {
                    if refuseReruns {
                        throw PipelineError(recipe.path, "\(step) was made with other settings (\(changes.joined(separator: "; "))); rerun without --no-rerun to redo it and what follows")
                    }
                    // Outputs (finished or half-made) of other settings are moved aside, not reused or deleted.
                    events.message("rerun \(step): the recipe changed: \(changes.joined(separator: "; "))")
                    let stamp = Int(Date().timeIntervalSince1970)
                    for path in stale where FileManager.default.fileExists(atPath: path) {
                        try FileManager.default.moveItem(atPath: path, toPath: "\(path).replaced-\(stamp)")
                    }
                    try? FileManager.default.removeItem(atPath: record)
                    return false
                }
            } else if exists {
                try provenance.write(record)  // made before provenance was recorded: taken as current
            }
            return exists
        }
        let trainSplit = recipe.data.trainSplit
        var sources = [mainSource]
        for source in recipe.pseudo.compare where !sources.contains(source) { sources.append(source) }
        let dataKeys = recipe.effectiveValues(ofKeys: ["data.root", "data.train_split", "data.classes", "data.image_labels", "run.seed"])
        let camTrainProvenance = Provenance(
            dataKeys.merging(recipe.effectiveValues(of: ["cam"], excluding: ["cam.inference_scales", "cam.make_cam", "cam.bg_threshold"])) { a, _ in a })
        let camInferProvenance = Provenance(recipe.effectiveValues(ofKeys: ["cam.inference_scales", "cam.make_cam"]), upstream: [("cam_train", camTrainProvenance)])
        let needsCAM = seedSource == nil && recipe.pseudo.seeds == nil && sources.contains { [.cam, .sepl, .seplFelzenszwalb, .boxes].contains($0) }

        // 1. CAM classifier and CAMs.
        let camDir = runDir + "/cam"
        let camFile = "\(camDir)/cams_\(trainSplit).h5"
        if needsCAM {
            try stage("cam_train") {
                let record = runDir + "/provenance_cam_train.json"
                if try isCurrent("cam_train", output: camDir + "/cam_final.h5", provenance: camTrainProvenance, record: record, stale: [camDir]) {
                    return skip("cam_train", camDir + "/cam_final.h5")
                }
                let options = recipe.camOptions
                try CAMTraining.train(
                    dataset: try recipe.dataset(split: trainSplit), options: options, outDirectory: camDir, initFrom: recipe.cam.`init`,
                    progress: { iteration, loss in self.events.progress("cam_train", iteration, options.iterations, String(format: "loss %.4f", loss)) },
                    communicator: communicator, syncBatchNorm: recipe.run.syncBN)
                try writeRecord(camTrainProvenance, record)
            }
            try stage("cam_infer") {
                let record = runDir + "/provenance_cam_infer.json"
                if try isCurrent("cam_infer", output: camFile, provenance: camInferProvenance, record: record, stale: [camFile]) {
                    return skip("cam_infer", camFile)
                }
                try CAMStage.infer(
                    dataset: try recipe.dataset(split: trainSplit), checkpoint: camDir + "/cam_final.h5", out: camFile, scales: recipe.cam.inferenceScales,
                    inference: recipe.cam.makeCAM, progress: { done, total in self.events.progress("cam_infer", done, total, "") },
                    communicator: communicator)
                try writeRecord(camInferProvenance, record)
            }
        }

        // 2. Pseudo-labels per source; SAM (pseudo.sam_checkpoint) is loaded once and shared.
        var samModel: SAM?
        func sam() throws -> SAM {
            if let samModel { return samModel }
            guard let checkpoint = recipe.pseudo.samCheckpoint else {
                throw RecipeError(path: recipe.path, message: "'pseudo.proposals: sam' needs 'pseudo.sam_checkpoint' (an official sam_vit_*.pth)")
            }
            let model = try SAMWeights.load(checkpoint, configuration: try recipe.pseudo.samConfig.map(SAMConfiguration.resolve))
            samModel = model
            return model
        }
        func proposals(for source: LabelSource, dataset: VOCDataset) throws -> ProposalSource? {
            if let custom = proposalSources[source] { return custom }
            if source == .seplFelzenszwalb {
                let f = recipe.pseudo.felzenszwalb
                return FelzenszwalbProposals(options: .init(scale: f[0], sigma: f[1], minSize: Int(f[2])))
            }
            guard source == .sepl || source == .boxes, let spec = recipe.pseudo.proposals else { return nil }
            if spec == "sam" {
                // Boxes with a SAM checkpoint prompt SAM with each box instead (Sun et al.).
                guard source == .sepl else { return nil }
                let cache = recipe.pseudo.samCache ?? runDir + "/sam_masks"
                // Cached masks are only reused for the same model and generator settings.
                let samProvenance = Provenance(
                    recipe.effectiveValues(ofKeys: ["pseudo.sam_checkpoint", "pseudo.sam_config"]).merging(recipe.effectiveValues(of: ["sam"])) { a, _ in a })
                let record = cache + ".provenance.json"
                _ = try isCurrent("sam_masks", output: cache, provenance: samProvenance, record: record, stale: [cache])
                try FileManager.default.createDirectory(atPath: (cache as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                try writeRecord(samProvenance, record)
                var done = 0
                let result = try PseudoLabelStage.samProposals(for: dataset, model: try sam(), options: recipe.samGeneratorOptions, cache: cache) { _, found in
                    done += 1
                    self.events.progress("sam_masks", done, dataset.samples.count, found.map { "\($0) masks" } ?? "cached")
                }
                events.message("pseudo: SAM masks in \(cache) (\(result.computed) computed, \(result.cached) cached)")
                return result.source
            }
            let f = recipe.pseudo.felzenszwalb
            return try PseudoLabelStage.proposalSource(
                spec, felzenszwalb: .init(scale: f[0], sigma: f[1], minSize: Int(f[2])), relativeTo: root, setting: "\(recipe.path): 'pseudo.proposals'")
        }
        func prompter(for source: LabelSource) throws -> BoxPrompter? {
            guard source == .boxes else { return nil }
            if let boxPrompter { return boxPrompter }
            let spec = recipe.pseudo.proposals
            guard let checkpoint = recipe.pseudo.samCheckpoint, proposalSources[source] == nil, spec == nil || spec == "sam" else { return nil }
            return SAMBoxPrompter(model: try sam(), name: "sam:" + checkpoint)
        }
        /// What a source's proposals are, from the recipe alone (a finished stage is not rerun to learn it).
        func proposalDescription(for source: LabelSource) -> String? {
            if source == .boxes {
                // Say plainly where boxes and masks come from (docs/PSEUDO-LABELS.md, "Boxes").
                let boxes = recipe.pseudo.detections != nil
                    ? "detection boxes" : "boxes from the CAM seeds' connected components (our extension, not Sun et al.'s)"
                if boxPrompter != nil || (proposalSources[source] == nil && recipe.pseudo.samCheckpoint != nil
                                          && (recipe.pseudo.proposals == nil || recipe.pseudo.proposals == "sam")) {
                    return boxes + ", each prompting SAM"
                }
                guard let masks = proposalMasks(for: source) else { return nil }
                return boxes + " selecting proposals (no SAM: the proposal of best box IoU stands in for its mask): " + masks
            }
            return proposalMasks(for: source)
        }
        func proposalMasks(for source: LabelSource) -> String? {
            if let custom = proposalSources[source] { return custom.about ?? custom.name }
            if source == .seplFelzenszwalb { return "Felzenszwalb segments" }
            guard source == .sepl || source == .boxes else { return nil }
            guard let spec = recipe.pseudo.proposals else { return nil }
            switch spec {
            case "sam": return "SAM automatic masks, \(((recipe.pseudo.samCheckpoint ?? "?") as NSString).lastPathComponent)"
            case "felzenszwalb": return "Felzenszwalb segments"
            default:
                let directory = String(spec.drop { $0 != ":" }.dropFirst())
                let path = directory.hasPrefix("/") ? directory : root + "/" + directory
                return folderAbout(path) ?? spec
            }
        }
        var pseudoProvenance: [LabelSource: Provenance] = [:]
        for source in sources {
            let folder = "\(runDir)/pseudo/\(source)"
            let scorePath = folder + "/score.json"
            // The keys each source reads (changing SEPL's shares must not retrain the GT segmenter).
            let keys: [String]
            switch source {
            case .gt: keys = []
            case .cam, .folder: keys = ["pseudo.seeds", "cam.bg_threshold"]
            case .seplFelzenszwalb:
                keys = ["pseudo.seeds", "cam.bg_threshold", "pseudo.mask_share", "pseudo.region_share", "pseudo.ignore_conflicts", "pseudo.sepl_rule", "pseudo.felzenszwalb"]
            case .sepl:
                keys = ["pseudo.seeds", "cam.bg_threshold", "pseudo.proposals", "pseudo.mask_share", "pseudo.region_share", "pseudo.ignore_conflicts", "pseudo.sepl_rule",
                        "pseudo.felzenszwalb", "pseudo.sam_checkpoint", "pseudo.sam_config"] + SAMSection.keyNames.map { "sam.\($0)" }.sorted()
            case .boxes:
                keys = ["pseudo.seeds", "cam.bg_threshold", "pseudo.proposals", "pseudo.detections", "pseudo.box_threshold", "pseudo.text_threshold", "pseudo.box_order", "pseudo.felzenszwalb",
                        "pseudo.sam_checkpoint", "pseudo.sam_config"]
            }
            if let about = proposalDescription(for: source) { summary.proposals[source] = about }
            let refined = recipe.crf.pseudo && source != .gt
            var own = recipe.effectiveValues(ofKeys: keys + (refined ? ["crf.pseudo", "crf.confidence"] : [])).merging(dataKeys) { a, _ in a }
            if refined { own.merge(recipe.effectiveValues(of: ["crf"], excluding: ["crf.eval"])) { a, _ in a } }
            own["source"] = source.rawValue
            if let custom = proposalSources[source] { own["custom.proposals"] = custom.name }
            let provenance = Provenance(own, upstream: needsCAM && ![.gt, .folder].contains(source) ? [("cam_infer", camInferProvenance)] : [])
            pseudoProvenance[source] = provenance
            try stage("pseudo/\(source)") {
                let record = runDir + "/provenance_pseudo_\(source).json"
                if try isCurrent("pseudo/\(source)", output: scorePath, provenance: provenance, record: record, stale: [folder]),
                   let data = FileManager.default.contents(atPath: scorePath),
                   let score = try? JSONSerialization.jsonObject(with: data) as? [String: Any], let miou = score["miou"] as? Double {
                    skip("pseudo/\(source)", scorePath)
                    summary.pseudoMIoU[source] = miou
                    return
                }
                do {
                let dataset = try recipe.dataset(split: trainSplit)
                let seeds = source == .gt ? nil : try seedSource ?? recipe.seedSource(camFile: camFile)
                let labeler = try PseudoLabeler(
                    // Each rank computes proposals (SAM's masks) for the images it labels.
                    method: try recipe.pseudoLabelMethod(source), seeds: seeds,
                    proposals: try proposals(for: source, dataset: dataset.subset(communicator.share(of: dataset.samples))),
                    boxPrompter: try prompter(for: source), classNames: dataset.classes.names)
                let counter = Counter()
                var pseudoStage = PseudoLabelStage(labeler: labeler, outDirectory: folder, visualize: 8)
                if refined {
                    pseudoStage.refine = PseudoLabelStage.crfRefinement(recipe.crfParameters, classes: dataset.classes.count, confidence: Float(recipe.crf.confidence))
                }
                let share = communicator.share(of: dataset.samples).count
                let outcome = try pseudoStage.run(on: dataset, communicator: communicator) {
                    self.events.progress("pseudo/\(source)", counter.next(), share, "")
                }
                guard writer else { return }
                events.message("pseudo: \(outcome.images) label PNGs in \(folder)")
                for warning in outcome.warnings(split: trainSplit) { events.message("pseudo: warning: " + warning) }
                guard let report = outcome.report else { return events.message("pseudo: no ground truth to score against") }
                try JSONSerialization.data(withJSONObject: report.jsonObject(images: outcome.scoredImages), options: [.sortedKeys])
                    .write(to: URL(fileURLWithPath: scorePath))
                try provenance.write(record)
                summary.pseudoMIoU[source] = report.meanIoU
                try board?.addScalar("pseudo/mIoU/\(source)", report.meanIoU, step: 0)
                try board?.flush()
                events.message(report.table(title: "pseudo-labels (\(source)) vs ground truth"))
                }
            }
        }

        // 3. Segmenters and their evaluation: one per source, or `seeds` per source (run.seed,
        // run.seed + 1, …; the first in segmenter_<source>, the others in segmenter_<source>_seed<s>).
        for source in compare ? sources : [mainSource] {
            var result = SegmenterResult(checkpoint: "")
            var perSeed: [String: [Double]] = [:]
            for k in 0..<max(1, seeds) {
                let seed = recipe.run.seed + k
                let name = k == 0 ? "\(source)" : "\(source)_seed\(seed)"
                let segDir = "\(runDir)/segmenter_\(name)"
                var trainValues = recipe.effectiveValues(of: ["model", "train"]).merging(recipe.effectiveValues(ofKeys: ["run.seed", "data.val_split"])) { a, _ in a }
                trainValues["run.seed"] = "\(seed)"
                let trainProvenance = Provenance(trainValues, upstream: pseudoProvenance[source].map { [("pseudo/\(source)", $0)] } ?? [])
                let checkpoint = try stage("train/\(name)") { () -> String in
                    let final = segDir + "/final.h5"
                    let record = runDir + "/provenance_train_\(name).json"
                    if try isCurrent("train/\(name)", output: final, provenance: trainProvenance, record: record, stale: [segDir]) {
                        skip("train/\(name)", final)
                        return final
                    }
                    let path = try trainSegmenter(labels: Self.absolute("\(runDir)/pseudo/\(source)"), runDirectory: segDir, step: "train/\(name)", seed: seed)
                    try writeRecord(trainProvenance, record)
                    return path
                }
                if k == 0 { result.checkpoint = checkpoint }
                for split in recipe.eval.splits {
                    let evalProvenance = Provenance(
                        recipe.effectiveValues(ofKeys: ["eval.scales", "eval.flip"])
                            .merging(["eval.msc": "\(recipe.evaluatesMSC)"]) { a, _ in a }
                            .merging(recipe.crf.eval ? recipe.effectiveValues(of: ["crf"]) : [:]) { a, _ in a }.merging(["split": split]) { a, _ in a },
                        upstream: [("train/\(name)", trainProvenance)])
                    try stage("eval/\(name)/\(split)") {
                        let evalPath = "\(segDir)/eval_\(split).json"
                        let record = "\(runDir)/provenance_eval_\(name)_\(split).json"
                        if try isCurrent("eval/\(name)/\(split)", output: evalPath, provenance: evalProvenance, record: record, stale: [evalPath]),
                           let data = FileManager.default.contents(atPath: evalPath), let e = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                           let miou = e["miou"] as? Double {
                            perSeed[split, default: []].append(miou)
                            return skip("eval/\(name)/\(split)", evalPath)
                        }
                        let dataset = try recipe.dataset(split: split, requireLabels: true)
                        let report = try EvaluationStage.evaluate(
                            checkpoint: checkpoint, dataset: dataset, scales: recipe.eval.scales, flip: recipe.eval.flip,
                            msc: recipe.evaluatesMSC,
                            crf: recipe.crf.eval ? recipe.crfParameters : nil,
                            progress: { done, total in self.events.progress("eval/\(name)/\(split)", done, total, "") },
                            communicator: communicator)
                        perSeed[split, default: []].append(report.meanIoU)
                        guard writer else { return }
                        try JSONSerialization.data(withJSONObject: report.jsonObject(images: dataset.samples.count), options: [.sortedKeys])
                            .write(to: URL(fileURLWithPath: evalPath))
                        let chart = BarChart(report: report, title: "segmenter (\(name) labels) on \(split): per-class IoU")
                        try chart.render(width: 800).writePNG(to: "\(segDir)/eval_\(split).png")
                        try chart.writeSVG(to: "\(segDir)/eval_\(split).svg", width: 800)
                        try evalProvenance.write(record)
                        events.message(report.table(title: "segmenter (\(name) labels) on \(split)"))
                    }
                }
            }
            for (split, values) in perSeed {
                let mean = values.reduce(0, +) / Double(values.count)
                result.miou[split] = mean
                if values.count > 1 {
                    // Sample standard deviation over the seeds.
                    result.miouStd[split] = (values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(values.count - 1)).squareRoot()
                    result.seedMIoU[split] = values
                }
            }
            summary.segmenters[source] = result
        }
        guard writer else {
            try communicator.waitForAll()
            return summary
        }
        try JSONSerialization.data(withJSONObject: summary.jsonObject, options: [.sortedKeys, .prettyPrinted])
            .write(to: URL(fileURLWithPath: runDir + "/summary.json"))
        events.message("report: \(try RunReport.write(summary: summary, recipeText: recipe.text, runDirectory: runDir))")
        try communicator.waitForAll()
        return summary
    }

    /// DeepLab-v2 on a label folder into `runDirectory`, resuming from its newest checkpoint.
    func trainSegmenter(labels: String, runDirectory: String, step: String, seed: Int) throws -> String {
        var options = recipe.segmentationOptions
        options.seed = UInt64(seed)
        let dataset = try recipe.dataset(split: recipe.data.trainSplit, labels: labels, requireLabels: true)
        let validation = try? recipe.dataset(split: recipe.data.valSplit, requireLabels: true)
        return try SegmentationTraining.train(
            dataset: dataset, validation: validation, options: options, recipeText: recipe.text, runDirectory: runDirectory,
            initFrom: recipe.segmenterInit(runDirectory: try recipe.runDirectory()), initExclude: recipe.model.initExclude,
            resume: .latest, notice: { self.events.message("train: \($0)") },
            started: { self.events.progress(step, $0, options.iterations, $0 > 0 ? "resumed" : "") }, shouldStop: shouldStop,
            report: { p in
                self.events.progress(step, p.iteration, options.iterations, String(format: "loss %.4f lr %.2e %.1f img/s", p.loss, p.learningRate, p.imagesPerSecond))
            },
            evaluated: { iteration, miou in self.events.message(String(format: "train: iteration %d val mIoU %.2f%%", iteration, miou)) },
            communicator: communicator, syncBatchNorm: recipe.run.syncBN)
    }

    static func absolute(_ path: String) -> String { path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path }
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
