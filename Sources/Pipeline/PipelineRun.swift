import Autograd
import Checkpoints
import Datasets
import Foundation
import PseudoLabels
import Reporting
import SegmentAnything
import Training

/// One execution of a `Pipeline`: the steps in order, each reused only when its provenance
/// matches, and the summary they fill. Every path comes from `RunLayout`; every step's inputs
/// and options from the recipe, once.
final class PipelineRun {
    let pipeline: Pipeline
    let recipe: Recipe
    let layout: RunLayout
    let root: String
    let writer: Bool
    var events: PipelineEvents { pipeline.events }
    var summary: PipelineSummary
    /// A skipped step keeps the time of the run that made its output (the previous summary.json).
    let previousSteps: [String: Double]
    /// The run folder's own TensorBoard events (pseudo-label scores); stages write theirs in their folders.
    let board: TensorBoardWriter?
    var samModel: SAM?
    var camTrainProvenance = Provenance([:])
    var camInferProvenance = Provenance([:])
    var pseudoProvenance: [LabelSource: Provenance] = [:]

    init(_ pipeline: Pipeline) throws {
        self.pipeline = pipeline
        recipe = pipeline.recipe
        layout = pipeline.layout
        root = try recipe.required(recipe.data.root, "data.root")
        writer = pipeline.communicator.isWriter
        summary = PipelineSummary(source: recipe.pseudo.source)
        previousSteps =
            FileManager.default.contents(atPath: layout.summary)
            .flatMap { try? JSONDecoder().decode(PipelineSummary.self, from: $0) }?.stepSeconds ?? [:]
        board = writer ? try TensorBoardWriter(logDirectory: layout.root) : nil
    }

    var needsCAM: Bool { pipeline.needsCAM }

    /// `run.precision` as this machine resolves it, for the provenance of the segmenter's training
    /// and evaluation; empty for fp32, so records written before the key existed still match.
    var precisionKey: [String: String] {
        let resolved = recipe.run.precision.resolved
        return resolved == .fp32 ? [:] : ["run.precision": resolved.rawValue]
    }

    /// The data keys every stage depends on.
    var dataKeys: [String: String] {
        recipe.effectiveValues(ofKeys: ["data.root", "data.train_split", "data.classes", "data.image_labels", "run.seed"])
    }

    func execute() throws -> PipelineSummary {
        let trainSplit = recipe.data.trainSplit
        camTrainProvenance = Provenance(
            dataKeys.merging(
                recipe.effectiveValues(of: ["cam"], excluding: ["cam.inference_scales", "cam.make_cam", "cam.bg_threshold"])
            ) { a, _ in a }.merging(precisionKey) { a, _ in a })
        camInferProvenance = Provenance(
            recipe.effectiveValues(ofKeys: ["cam.inference_scales", "cam.make_cam"]).merging(precisionKey) { a, _ in a },
            upstream: [("cam_train", camTrainProvenance)])
        if needsCAM {
            try trainCAM(split: trainSplit)
            try inferCAMs(split: trainSplit)
        }
        for source in pipeline.sources { try makePseudoLabels(source, split: trainSplit) }
        for source in pipeline.compare ? pipeline.sources : [recipe.pseudo.source] {
            summary.segmenters[source] = try trainAndEvaluate(source)
        }
        guard writer else {
            try pipeline.communicator.waitForAll()
            return summary
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        try encoder.encode(summary).write(to: URL(fileURLWithPath: layout.summary), options: .atomic)
        events.message("report: \(try RunReport.write(summary: summary, recipeText: recipe.text, runDirectory: layout.root))")
        try pipeline.communicator.waitForAll()
        return summary
    }

    // MARK: Steps and their currency

    /// Runs one step: reuses its output when it is current (`reuse` reads what the summary needs
    /// from it and may return false to have it redone), else `make`s it and records its provenance.
    /// `carried` is the provenance the output itself holds (a checkpoint's attribute, a folder's
    /// provenance.json), read only when the run folder has no record of the step.
    func step(
        _ step: PipelineStep, output: String, provenance: Provenance, carried: () -> Provenance? = { nil }, stale: [String],
        reuse: () throws -> Bool = { true }, make: () throws -> Void
    ) throws {
        let start = Date()
        let name = step.description
        events.stepStarted(step)
        if try isCurrent(name, output: output, provenance: provenance, carried: carried, stale: stale), try reuse() {
            events.stepSkipped(step, output)
            summary.stepSeconds[name] = previousSteps[name] ?? 0
            summary.reusedSteps.append(name)
            return
        }
        try make()
        if writer { try provenance.write(layout.record(name)) }
        summary.stepSeconds[name] = Date().timeIntervalSince(start)
    }

    /// Rank 0 reads (and moves aside) the records; every rank follows its answer.
    func isCurrent(_ name: String, output: String, provenance: Provenance, carried: () -> Provenance?, stale: [String]) throws
        -> Bool
    {
        let communicator = pipeline.communicator
        guard communicator.size > 1 else {
            return try decideCurrent(name, output: output, provenance: provenance, carried: carried, stale: stale)
        }
        let mine =
            writer
            ? (try decideCurrent(name, output: output, provenance: provenance, carried: carried, stale: stale) ? 1.0 : 0.0) : 0
        return try communicator.broadcast(mine) != 0
    }

    /// The pipeline's own output (its record exists) is current when its provenance matches, and
    /// redone (moved aside) when it does not. An output without a record is current only when it
    /// carries matching provenance itself; otherwise this pipeline did not make it, and it is
    /// refused naming the way out — or, with `overwrite`, moved aside and redone.
    func decideCurrent(_ name: String, output: String, provenance: Provenance, carried: () -> Provenance?, stale: [String]) throws
        -> Bool
    {
        let exists = FileManager.default.fileExists(atPath: output)
        let record = layout.record(name)
        if let stored = Provenance.read(record) {
            let changes = provenance.changes(from: stored)
            if changes.isEmpty { return exists }
            if pipeline.refuseReruns {
                throw PipelineError(
                    recipe.path,
                    "\(name) was made with other settings (\(changes.joined(separator: "; "))); rerun without --no-rerun to redo it and what follows"
                )
            }
            // Outputs (finished or half-made) of other settings are moved aside, not reused or deleted.
            events.message("rerun \(name): the recipe changed: \(changes.joined(separator: "; "))")
            try moveAside(stale)
            try? FileManager.default.removeItem(atPath: record)
            return false
        }
        guard exists else { return false }
        let held = carried()
        let reasons = held.map { provenance.changes(from: $0) } ?? ["it holds no record of what made it"]
        if reasons.isEmpty {
            try provenance.write(record)
            return true
        }
        guard pipeline.overwrite else {
            throw PipelineError(
                recipe.path,
                "\(output) exists, but this pipeline did not make it for \(name) with this recipe (\(reasons.prefix(5).joined(separator: "; "))"
                    + (reasons.count > 5 ? "; …" : "")
                    + "), so it is not taken as the result; move it away, rerun with --overwrite "
                    + "(it is moved aside as <name>.replaced-<time>, nothing is deleted) or choose another run.dir")
        }
        events.message("\(name): \(output) was not made by this pipeline with this recipe: moved aside (--overwrite)")
        try moveAside(stale)
        return false
    }

    func moveAside(_ paths: [String]) throws {
        let stamp = Int(Date().timeIntervalSince1970)
        for path in paths where FileManager.default.fileExists(atPath: path) {
            try FileManager.default.moveItem(atPath: path, toPath: "\(path).replaced-\(stamp)")
        }
    }

    /// The provenance a checkpoint carries (nil when it has none or is unreadable).
    static func checkpointProvenance(_ path: String) -> Provenance? {
        guard let values = try? Checkpoint.metadata(at: path).provenance, !values.isEmpty else { return nil }
        return Provenance(values)
    }

    /// `path` made absolute against the working directory (the label folders training reads).
    static func absolute(_ path: String) -> String {
        path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
    }

    // MARK: CAMs

    func trainCAM(split: String) throws {
        try step(
            .camTrain, output: layout.camCheckpoint, provenance: camTrainProvenance,
            carried: { Self.checkpointProvenance(self.layout.camCheckpoint) }, stale: [layout.camDirectory]
        ) {
            let options = recipe.camOptions
            events.message("cam_train: precision: \(Kernels.productArithmetic(for: options.precision).name)")
            try CAMTraining.train(
                dataset: try recipe.dataset(split: split), options: options, outDirectory: layout.camDirectory,
                initFrom: recipe.cam.initPath, provenance: camTrainProvenance.values,
                progress: { iteration, loss in
                    self.events.progress(.camTrain, iteration, options.iterations, String(format: "loss %.4f", loss))
                },
                shouldStop: pipeline.shouldStop, communicator: pipeline.communicator, syncBatchNorm: recipe.run.syncBN)
        }
    }

    func inferCAMs(split: String) throws {
        let file = layout.cams(split: split)
        try step(.camInfer, output: file, provenance: camInferProvenance, stale: [file]) {
            try CAMStage.infer(
                dataset: try recipe.dataset(split: split), checkpoint: layout.camCheckpoint, out: file,
                scales: recipe.cam.inferenceScales, inference: recipe.cam.makeCAM, precision: recipe.run.precision.resolved,
                progress: { done, total in self.events.progress(.camInfer, done, total, "") },
                communicator: pipeline.communicator)
        }
    }

    // MARK: Segmenters

    /// `seeds` segmenters on a source's labels (run.seed, run.seed + 1, …; the first in
    /// segmenter_<source>, the others in segmenter_<source>_seed<s>), each evaluated on
    /// `eval.splits`; the mean and spread of their mIoU.
    func trainAndEvaluate(_ source: LabelSource) throws -> SegmenterResult {
        var result = SegmenterResult(checkpoint: "")
        var perSeed: [String: [Double]] = [:]
        for k in 0..<max(1, pipeline.seeds) {
            let seed = recipe.run.seed + k
            let name = layout.segmenterName(source, seed: k == 0 ? nil : seed)
            var trainValues = recipe.effectiveValues(of: ["model", "train"])
                .merging(recipe.effectiveValues(ofKeys: ["run.seed", "data.val_split"])) { a, _ in a }
            trainValues["run.seed"] = "\(seed)"
            trainValues.merge(precisionKey) { a, _ in a }
            let provenance = Provenance(trainValues, upstream: pseudoProvenance[source].map { [("pseudo/\(source)", $0)] } ?? [])
            let checkpoint = layout.segmenterCheckpoint(name)
            try step(
                .train(segmenter: name), output: checkpoint, provenance: provenance,
                carried: { Self.checkpointProvenance(checkpoint) },
                stale: [layout.segmenterDirectory(name)]
            ) {
                _ = try trainSegmenter(source: source, name: name, seed: seed, provenance: provenance)
            }
            if k == 0 {
                result.checkpoint = checkpoint
                result.labels = (try? Checkpoint.metadata(at: checkpoint).labels) ?? ""
            }
            for split in recipe.eval.splits {
                if let miou = try evaluate(name, split: split, upstream: provenance) { perSeed[split, default: []].append(miou) }
            }
        }
        for (split, values) in perSeed {
            let mean = values.reduce(0, +) / Double(values.count)
            result.miou[split] = mean
            if values.count > 1 {
                // Sample standard deviation over the seeds.
                result.miouStd[split] = (values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(values.count - 1))
                    .squareRoot()
                result.seedMIoU[split] = values
            }
        }
        return result
    }

    /// Where a source's training labels come from, in words (checkpoint, train.jsonl, TensorBoard, report).
    func labelDescription(_ source: LabelSource) -> String {
        let folder = layout.pseudoLabels(source)
        return source == .gt
            ? "the ground truth of \(recipe.data.trainSplit) (copied to \(folder))"
            : "\(summary.label(source)) pseudo-labels in \(folder)"
    }

    /// DeepLab-v2 on a source's label folder, resuming from its newest checkpoint when that
    /// checkpoint is this step's.
    func trainSegmenter(source: LabelSource, name: String, seed: Int, provenance: Provenance) throws -> String {
        let step = PipelineStep.train(segmenter: name)
        let iterations = recipe.train.iterations
        var stage = SegmenterStage(
            recipe: recipe, labels: Self.absolute(layout.pseudoLabels(source)), runDirectory: layout.segmenterDirectory(name))
        stage.labelDescription = labelDescription(source)
        stage.initFrom = recipe.segmenterInit(runDirectory: layout.root)
        stage.seed = seed
        stage.resume = .latest
        stage.overwrite = pipeline.overwrite
        stage.provenance = provenance.values
        var callbacks = SegmenterStage.Callbacks()
        callbacks.notice = { self.events.message("train: \($0)") }
        callbacks.started = { self.events.progress(step, $0, iterations, $0 > 0 ? "resumed" : "") }
        callbacks.shouldStop = pipeline.shouldStop
        callbacks.report = { p in
            self.events.progress(
                step, p.iteration, iterations,
                String(format: "loss %.4f lr %.2e %.1f img/s", p.loss, p.learningRate, p.imagesPerSecond))
        }
        callbacks.evaluated = { iteration, miou in
            self.events.message(String(format: "train: iteration %d val mIoU %.2f%%", iteration, miou))
        }
        return try stage.run(callbacks, communicator: pipeline.communicator)
    }

    /// A segmenter's mIoU on a split (nil on ranks other than 0 when reused: they only follow).
    func evaluate(_ name: String, split: String, upstream: Provenance) throws -> Double? {
        let provenance = Provenance(
            recipe.effectiveValues(ofKeys: ["eval.scales", "eval.flip"])
                .merging(["eval.msc": "\(recipe.evaluatesMSC)"]) { a, _ in a }
                .merging(recipe.crf.eval ? recipe.effectiveValues(of: ["crf"]) : [:]) { a, _ in a }.merging(["split": split]) {
                    a, _ in a
                }
                .merging(precisionKey) { a, _ in a },
            upstream: [("train/\(name)", upstream)])
        let path = layout.evaluation(name, split: split)
        let evalStep = PipelineStep.eval(segmenter: name, split: split)
        var miou: Double?
        try step(
            evalStep, output: path, provenance: provenance, stale: [path],
            reuse: {
                guard let data = FileManager.default.contents(atPath: path),
                    let e = try? JSONSerialization.jsonObject(with: data) as? [String: Any], let value = e["miou"] as? Double
                else { return false }
                miou = value
                return true
            }
        ) {
            let dataset = try recipe.dataset(split: split, requireLabels: true)
            let checkpoint = layout.segmenterCheckpoint(name)
            let report = try EvaluationStage.evaluate(
                checkpoint: checkpoint, dataset: dataset, scales: recipe.eval.scales, flip: recipe.eval.flip,
                msc: recipe.evaluatesMSC,
                crf: recipe.crf.eval ? recipe.crfParameters : nil, precision: recipe.run.precision.resolved,
                progress: { done, total in self.events.progress(evalStep, done, total, "") },
                communicator: pipeline.communicator)
            miou = report.meanIoU
            guard writer else { return }
            try Data(report.jsonText(images: dataset.samples.count).utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
            let chart = BarChart(report: report, title: "segmenter (\(name) labels) on \(split): per-class IoU")
            let base = (path as NSString).deletingPathExtension
            try chart.render(width: 800).writePNG(to: base + ".png")
            try chart.writeSVG(to: base + ".svg", width: 800)
            events.message(report.table(title: "segmenter (\(name) labels) on \(split)"))
        }
        return miou
    }
}
