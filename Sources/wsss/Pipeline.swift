import ArgumentParser
import Autograd
import Datasets
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
        discussion: "Outputs go to run.dir: cam/ (cam_final.h5, cams_<split>.h5), pseudo/<source>/ (label PNGs, score.json), segmenter_<source>/ (checkpoints, train.jsonl, curves.png), summary.json. A stage whose output exists is skipped, so an interrupted pipeline resumes where it stopped. --compare also trains segmenters on the pseudo.compare sources.")

    @OptionGroup var recipeOptions: RecipeOptions
    @OptionGroup var runtime: RuntimeOptions
    @Flag(help: "Train a segmenter for every source in pseudo.compare too, not only pseudo.source.") var compare = false

    func run() throws {
        let recipe = try recipeOptions.load()
        try runtime.apply(defaultThreads: recipe.int("run", "threads"))
        try recipe.validateForTraining()
        let runDir = try recipe.requiredString("run", "dir")
        let root = try recipe.requiredString("data", "root")
        // One pipeline per run folder (stages lock their own sub-folders too).
        let lock = try RunFolder.Lock(directory: runDir)
        defer { withExtendedLifetime(lock) {} }
        // Seconds per step ("train/sepl"); a skipped step keeps the time of the run that made its
        // output (from the previous summary.json), so a resumed pipeline still reports real times.
        let previousSummary = FileManager.default.contents(atPath: runDir + "/summary.json")
            .flatMap { try? JSONSerialization.jsonObject(with: $0) as? [String: Any] }
        let previousSteps = previousSummary?["step_seconds"] as? [String: Double] ?? [:]
        var stepSeconds: [String: Double] = [:]
        var reusedSteps: [String] = []
        var skipped = false
        func skip(_ path: String) {
            Log.info("skip: \(path) exists")
            skipped = true
        }
        func stage<T>(_ step: String, _ body: () throws -> T) rethrows -> T {
            let start = Date()
            Log.info("== \(step)")
            skipped = false
            defer {
                if skipped {
                    stepSeconds[step] = previousSteps[step] ?? 0
                    reusedSteps.append(step)
                } else {
                    stepSeconds[step] = Date().timeIntervalSince(start)
                }
            }
            return try body()
        }
        let trainSplit = recipe.string("data", "train_split")!
        let mainSource = recipe.string("pseudo", "source")!
        let sources = [mainSource] + recipe.strings("pseudo", "compare").filter { $0 != mainSource }
        let needsCAM = sources.contains { ["cam", "sepl", "boxes"].contains($0) } && recipe.string("pseudo", "seeds") == nil
        // 1. CAM classifier and CAMs.
        let camDir = runDir + "/cam"
        let camFile = "\(camDir)/cams_\(trainSplit).h5"
        if needsCAM {
            try stage("cam_train") {
                if FileManager.default.fileExists(atPath: camDir + "/cam_final.h5") { return skip(camDir + "/cam_final.h5") }
                try CAMCommand.train(dataset: try recipe.dataset(split: trainSplit), options: recipe.camOptions, out: camDir, initFrom: recipe.string("cam", "init"))
            }
            try stage("cam_infer") {
                if FileManager.default.fileExists(atPath: camFile) { return skip(camFile) }
                try CAMCommand.infer(dataset: try recipe.dataset(split: trainSplit), checkpoint: camDir + "/cam_final.h5", out: camFile, scales: nil)
            }
        }
        // 2. Pseudo-labels per source. SAM (pseudo.sam_checkpoint) is loaded once and shared: its
        // automatic masks feed SEPL (pseudo.proposals: sam), and boxes prompt it box by box.
        var samModel: SAM?
        func sam() throws -> SAM {
            if let samModel { return samModel }
            guard let checkpoint = recipe.string("pseudo", "sam_checkpoint") else {
                throw RecipeError(path: recipe.path, message: "'pseudo.proposals: sam' needs 'pseudo.sam_checkpoint' (an official sam_vit_*.pth)")
            }
            let model = try SAMModelOptions(checkpoint: checkpoint, config: recipe.string("pseudo", "sam_config")).load()
            samModel = model
            return model
        }
        func proposalSource(for source: String, dataset: VOCDataset) throws -> ProposalSource? {
            guard source == "sepl" || source == "boxes", let spec = recipe.string("pseudo", "proposals") else { return nil }
            if spec == "sam" {
                // Boxes with a SAM checkpoint prompt SAM with each box instead (Sun et al.).
                guard source == "sepl" else { return nil }
                return try Pseudo.samProposals(
                    dataset: dataset, model: try sam(), options: recipe.samGeneratorOptions, cache: recipe.string("pseudo", "sam_cache") ?? runDir + "/sam_masks")
            }
            let f = recipe.doubles("pseudo", "felzenszwalb")
            return try PseudoLabelStage.proposalSource(
                spec, felzenszwalb: .init(scale: f[0], sigma: f[1], minSize: Int(f[2])), relativeTo: root, setting: "\(recipe.path): 'pseudo.proposals'")
        }
        func boxPrompter(for source: String) throws -> BoxPrompter? {
            let spec = recipe.string("pseudo", "proposals")
            guard source == "boxes", let checkpoint = recipe.string("pseudo", "sam_checkpoint"), spec == nil || spec == "sam" else { return nil }
            return SAMBoxPrompter(model: try sam(), name: "sam:" + checkpoint)
        }
        var pseudoMIoU: [String: Double] = [:]
        for source in sources {
            let folder = "\(runDir)/pseudo/\(source)"
            let scorePath = folder + "/score.json"
            try stage("pseudo/\(source)") {
                if let data = FileManager.default.contents(atPath: scorePath),
                   let score = try? JSONSerialization.jsonObject(with: data) as? [String: Any], let miou = score["miou"] as? Double {
                    skip(scorePath)
                    pseudoMIoU[source] = miou
                    return
                }
                let dataset = try recipe.dataset(split: trainSplit)
                let labeler = try PseudoLabeler(
                    method: try recipe.pseudoLabelMethod(source), seeds: source == "gt" ? nil : try recipe.seedSource(camFile: camFile),
                    proposals: try proposalSource(for: source, dataset: dataset), boxPrompter: try boxPrompter(for: source),
                    classNames: dataset.classes.names)
                guard let (report, images) = try Pseudo.run(PseudoLabelStage(labeler: labeler, outDirectory: folder, visualize: 8), on: dataset, label: source)
                else { return }
                let object = report.jsonObject(images: images)
                try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]).write(to: URL(fileURLWithPath: scorePath))
                pseudoMIoU[source] = report.meanIoU
                Log.info(report.table(title: "pseudo-labels (\(source)) vs ground truth"))
            }
        }
        // 3. Segmenters and their evaluation.
        var results: [String: [String: Any]] = [:]
        for source in compare ? sources : [mainSource] {
            let segDir = "\(runDir)/segmenter_\(source)"
            let checkpoint = try stage("train/\(source)") { () -> String in
                let final = segDir + "/final.h5"
                if FileManager.default.fileExists(atPath: final) {
                    skip(final)
                    return final
                }
                return try trainSegmenter(recipe: recipe, labels: "\(runDir)/pseudo/\(source)".absolutePath, runDirectory: segDir,
                                          initFrom: recipe.segmenterInit(runDirectory: runDir), resume: "auto")
            }
            var entry: [String: Any] = ["checkpoint": checkpoint]
            for split in recipe.strings("eval", "splits") {
                try stage("eval/\(source)/\(split)") {
                    let evalPath = "\(segDir)/eval_\(split).json"
                    if let data = FileManager.default.contents(atPath: evalPath), let e = try? JSONSerialization.jsonObject(with: data) as? [String: Any] {
                        entry["\(split)_miou"] = e["miou"]
                        return skip(evalPath)
                    }
                    let dataset = try recipe.dataset(split: split, requireLabels: true)
                    let report = try evaluateCheckpoint(checkpoint, dataset: dataset, scales: recipe.doubles("eval", "scales"), flip: recipe.bool("eval", "flip"))
                    let object = report.report.jsonObject(images: report.images)
                    try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]).write(to: URL(fileURLWithPath: evalPath))
                    entry["\(split)_miou"] = report.report.meanIoU
                    Log.info(report.report.table(title: "segmenter (\(source) labels) on \(split)"))
                }
            }
            results[source] = entry
        }
        // 4. Summary.
        var stageSeconds: [String: Double] = [:]
        for (step, seconds) in stepSeconds { stageSeconds[String(step.prefix { $0 != "/" }), default: 0] += seconds }
        let main = results[mainSource] ?? [:]
        var summary: [String: Any] = [
            "pseudo_miou": pseudoMIoU, "stage_seconds": stageSeconds, "step_seconds": stepSeconds, "checkpoint": main["checkpoint"] ?? NSNull(),
            "val_miou": main["val_miou"] ?? NSNull(), "test_miou": main["test_miou"] ?? NSNull(), "source": mainSource,
        ]
        if results.count > 1 { summary["segmenters"] = results }
        try JSONSerialization.data(withJSONObject: summary, options: [.sortedKeys, .prettyPrinted]).write(to: URL(fileURLWithPath: runDir + "/summary.json"))
        print(Self.table(pseudo: pseudoMIoU, results: results, stages: stageSeconds, main: mainSource, reused: reusedSteps))
        print("summary: \(runDir)/summary.json")
    }

    static func table(pseudo: [String: Double], results: [String: [String: Any]], stages: [String: Double], main: String,
                      reused: [String] = []) -> String {
        var lines = ["", "pseudo-labels (train)      mIoU (%)"]
        for (source, miou) in pseudo.sorted(by: { $0.value < $1.value }) {
            lines.append("  " + source.padding(toLength: 24, withPad: " ", startingAt: 0) + String(format: " %7.2f", miou))
        }
        lines.append("")
        lines.append("segmenter trained on      val mIoU  test mIoU")
        for (source, r) in results.sorted(by: { $0.key < $1.key }) {
            let v = (r["val_miou"] as? Double).map { String(format: "%8.2f", $0) } ?? "       -"
            let t = (r["test_miou"] as? Double).map { String(format: "%9.2f", $0) } ?? "        -"
            lines.append("  " + (source + (source == main ? " *" : "")).padding(toLength: 24, withPad: " ", startingAt: 0) + " \(v) \(t)")
        }
        lines.append("")
        lines.append("stage          seconds")
        for (name, seconds) in stages.sorted(by: { $0.key < $1.key }) {
            lines.append("  " + name.padding(toLength: 12, withPad: " ", startingAt: 0) + String(format: " %7.1f", seconds))
        }
        if !reused.isEmpty {
            lines.append("  (skipped, outputs existed; times from the run that made them: \(reused.joined(separator: ", ")))")
        }
        return lines.joined(separator: "\n")
    }
}

extension String {
    var absolutePath: String { hasPrefix("/") ? self : FileManager.default.currentDirectoryPath + "/" + self }
}

