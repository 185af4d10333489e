import Distributed
import Foundation
import Training

/// DeepLab-v2 trained on one label source, as `wsss train` and the pipeline's train steps run
/// it: the recipe's model and schedule, a label folder (or the ground truth), a run folder, and
/// the record of where the labels came from (checkpoint attribute `labels`, train.jsonl's first
/// line, TensorBoard's text tab, the report).
public struct SegmenterStage {
    public var recipe: Recipe
    /// The label folder (VOC palette PNGs), nil for the ground truth (the fully-supervised upper bound).
    public var labels: String?
    /// Where the labels came from, in words; `describe(labels:split:)` when not set.
    public var labelDescription: String?
    public var runDirectory: String
    /// Initial weights (names matching `model.init_exclude` are skipped); nil: random.
    public var initFrom: String?
    /// The seed (default `run.seed`).
    public var seed: Int?
    public var resume = Resume.never
    /// Move an earlier run in `runDirectory` aside instead of refusing it.
    public var overwrite = false
    /// Resume even when the recipe's training settings differ from the checkpoint's.
    public var allowRecipeChange = false
    /// What the run is made from (the pipeline's provenance); stored in every checkpoint, and a
    /// checkpoint made from other inputs is not resumed.
    public var provenance: [String: String] = [:]

    public init(recipe: Recipe, labels: String?, runDirectory: String) {
        (self.recipe, self.labels, self.runDirectory) = (recipe, labels, runDirectory)
    }

    /// "labels in DIR (sepl pseudo-labels)", or "the ground truth of train (…)": a folder's own
    /// provenance.json (written by `wsss pseudo` and the pipeline) names what made it.
    public static func describe(labels folder: String?, split: String) -> String {
        guard let folder else { return "the ground truth of \(split) (fully supervised: an upper bound, not a WSSS result)" }
        let record = Provenance.read(folder + "/provenance.json")
        let source = record?.values["source"].map { " (\($0) pseudo-labels)" } ?? ""
        return "labels in \(folder)\(source)"
    }

    /// Callbacks of a running training (all optional).
    public struct Callbacks {
        public var notice: (String) -> Void = { _ in }
        public var started: (Int) -> Void = { _ in }
        public var shouldStop: () -> Bool = { false }
        public var report: (TrainingProgress) -> Void = { _ in }
        public var evaluated: (Int, Double) -> Void = { _, _ in }
        public init() {}
    }

    /// Trains; returns the last checkpoint written.
    /// - Throws: `RecipeError` (a validation split that cannot be read while `train.eval_every` > 0),
    ///   dataset errors, and what `SegmentationTraining.train` throws.
    @discardableResult
    public func run(_ callbacks: Callbacks = Callbacks(), communicator: Communicator = .single) throws -> String {
        var options = recipe.segmentationOptions
        if let seed { options.seed = UInt64(seed) }
        let split = recipe.data.trainSplit
        let dataset = try recipe.dataset(split: split, labels: labels, requireLabels: true)
        let labelText = labelDescription ?? Self.describe(labels: labels, split: split)
        // The stored recipe says what this run trained on: its pseudo: section describes how the
        // pipeline makes labels, which a run on a given folder did not use.
        let recipeText = recipe.text + (recipe.text.hasSuffix("\n") ? "" : "\n") + "# trained on: \(labelText)\n"
        return try SegmentationTraining.train(
            dataset: dataset, validation: try recipe.validationDataset(), options: options, recipeText: recipeText,
            runDirectory: runDirectory, initFrom: initFrom, initExclude: recipe.model.initExclude,
            labels: labelText, provenance: provenance, resume: resume,
            overwrite: overwrite, allowChangedOptions: allowRecipeChange, notice: callbacks.notice, started: callbacks.started,
            shouldStop: callbacks.shouldStop, report: callbacks.report, evaluated: callbacks.evaluated,
            communicator: communicator, syncBatchNorm: recipe.run.syncBN)
    }
}
