import Checkpoints
import Foundation
import Pipeline
import Testing
import Training

@testable import wsss

/// Issue 25's scenarios: no result may silently come from a stale or foreign file. A checkpoint
/// the pipeline did not make is never reported as the recipe's; SAM masks of other settings are
/// never reused; a failed --overwrite leaves the earlier run in place; a wrong relative path fails
/// before anything trains, naming the rule; the label source is recorded with the run.
@Suite(.serialized) struct ProvenanceTests {
    let root: String

    init() throws {
        root = NSTemporaryDirectory() + "wsss-prov-\(UUID().uuidString)"
        let synth = try Synth.parse([
            "--out", root, "--train", "4", "--val", "2", "--test", "1", "--size", "40", "--seed", "5", "--proposals",
        ])
        try synth.run()
    }

    /// A tiny pipeline recipe with the ground truth as the only source (no CAM stage).
    func recipe(_ name: String, extra: String = "") throws -> String {
        let path = "\(root)/\(name).yaml"
        try """
        data: {root: \(root)}
        run: {dir: \(root)/\(name), seed: 0, threads: 1}
        pseudo: {source: gt}
        model: {depth: 18, width_divisor: 16, frozen_bn: true, msc: false}
        train: {iterations: 2, batch: 2, crop: 40, lr: 0.001, checkpoint_every: 100, eval_every: 0, log_every: 1}
        eval: {splits: [val]}
        \(extra)
        """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func aForeignCheckpointIsNeverReportedAsTheRecipes() throws {
        let recipe = try recipe("foreign")
        let run = root + "/foreign"
        // A separate `wsss train` (other iterations) into the folder the pipeline uses for gt.
        let train = try TrainCommand.parse([
            "--recipe", recipe, "--labels", "gt", "--out", run + "/segmenter_gt", "--set", "train.iterations=3",
        ])
        try train.run()
        let foreign = try Data(contentsOf: URL(fileURLWithPath: run + "/segmenter_gt/final.h5"))
        #expect { try PipelineCommand.parse(["--recipe", recipe]).run() } throws: { error in
            let message = error.localizedDescription
            return message.contains("segmenter_gt/final.h5") && message.contains("did not make it")
                && message.contains("--overwrite")
        }
        #expect(!FileManager.default.fileExists(atPath: run + "/summary.json"), "nothing was reported")
        #expect(try Data(contentsOf: URL(fileURLWithPath: run + "/segmenter_gt/final.h5")) == foreign, "the file is untouched")
        // --overwrite moves it aside and trains the recipe's own segmenter.
        try PipelineCommand.parse(["--recipe", recipe, "--overwrite"]).run()
        let aside = try FileManager.default.contentsOfDirectory(atPath: run).filter { $0.hasPrefix("segmenter_gt.replaced-") }
        #expect(aside.count == 1)
        #expect(try Data(contentsOf: URL(fileURLWithPath: "\(run)/\(aside[0])/final.h5")) == foreign)
        let metadata = try Checkpoint.metadata(at: run + "/segmenter_gt/final.h5")
        #expect(metadata.iteration == 2)
        #expect(metadata.provenance["train.iterations"] == "2")
        #expect(metadata.labels.contains("ground truth"))
        // Its record lost, the pipeline's own checkpoint is still recognised by what it carries.
        try FileManager.default.removeItem(atPath: run + "/provenance_train_gt.json")
        let before = try Data(contentsOf: URL(fileURLWithPath: run + "/segmenter_gt/final.h5"))
        try PipelineCommand.parse(["--recipe", recipe]).run()
        #expect(try Data(contentsOf: URL(fileURLWithPath: run + "/segmenter_gt/final.h5")) == before, "reused, not retrained")
        #expect(FileManager.default.fileExists(atPath: run + "/provenance_train_gt.json"))
        // The summary and the report say what the segmenter trained on.
        let summary = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: run + "/summary.json")))
                as? [String: Any])
        #expect((summary["labels"] as? String)?.contains("ground truth") == true)
        #expect(try String(contentsOfFile: run + "/report.html", encoding: .utf8).contains("the ground truth of train"))
        #expect(try !String(contentsOfFile: run + "/summary.json", encoding: .utf8).contains("\\/"), "slashes are not escaped")
    }

    @Test func aHalfFinishedForeignRunIsNotResumed() throws {
        let recipe = try recipe("half")
        let run = root + "/half"
        // A checkpoint of another run, as a killed separate run would leave it.
        try TrainCommand.parse([
            "--recipe", recipe, "--labels", "gt", "--out", run + "/segmenter_gt", "--set", "train.iterations=1",
        ]).run()
        try FileManager.default.moveItem(atPath: run + "/segmenter_gt/final.h5", toPath: run + "/segmenter_gt/iter_000001.h5")
        #expect { try PipelineCommand.parse(["--recipe", recipe]).run() } throws: { error in
            guard case TrainingError.foreignCheckpoint(let path, _) = error else { return false }
            return path.hasSuffix("iter_000001.h5") && error.localizedDescription.contains("--overwrite")
        }
        try PipelineCommand.parse(["--recipe", recipe, "--overwrite"]).run()
        #expect(try Checkpoint.metadata(at: run + "/segmenter_gt/final.h5").iteration == 2)
    }

    @Test func aWrongRelativePathFailsBeforeAnythingRuns() throws {
        let recipe = try recipe("paths", extra: "cam: {iterations: 2, batch: 2, crop: 40, width_divisor: 16}")
        let run = root + "/paths"
        #expect {
            try PipelineCommand.parse([
                "--recipe", recipe, "--set", "pseudo.source=sepl", "--set", "pseudo.proposals=masks:nope_png",
            ]).run()
        } throws: { error in
            let message = error.localizedDescription
            return message.contains("\(root)/nope_png") && message.contains("relative to data.root")
        }
        #expect(!FileManager.default.fileExists(atPath: run), "no stage ran, no file was written (not even an event file)")
        #expect {
            try PipelineCommand.parse(["--recipe", recipe, "--set", "model.init=missing.h5"]).run()
        } throws: { error in
            error.localizedDescription.contains("missing.h5") && error.localizedDescription.contains("working directory")
        }
        // A missing validation split no longer turns evaluation off silently.
        #expect {
            try PipelineCommand.parse(["--recipe", recipe, "--set", "train.eval_every=1", "--set", "data.val_split=nosuch"]).run()
        } throws: { error in
            error.localizedDescription.contains("train.eval_every") && error.localizedDescription.contains("nosuch")
        }
        #expect(!FileManager.default.fileExists(atPath: run))
    }

    @Test func aFailedOverwriteLeavesTheEarlierRunInPlace() throws {
        let recipe = try recipe("overwrite")
        let out = root + "/overwrite/seg"
        try TrainCommand.parse(["--recipe", recipe, "--labels", "gt", "--out", out]).run()
        let files = Set(try FileManager.default.contentsOfDirectory(atPath: out))
        // Initial weights that cannot be loaded (the classifier included, with another shape).
        let other = root + "/overwrite/other"
        try TrainCommand.parse(["--recipe", recipe, "--labels", "gt", "--out", other, "--set", "model.width_divisor=8"]).run()
        #expect {
            try TrainCommand.parse([
                "--recipe", recipe, "--labels", "gt", "--out", out, "--overwrite", "--init-from", other + "/final.h5", "--set",
                "model.init_exclude=[]",
            ]).run()
        } throws: { _ in true }
        #expect(Set(try FileManager.default.contentsOfDirectory(atPath: out)) == files, "nothing moved")
    }

    @Test func aLabelFolderIsRecordedAndCosmeticKeysDoNotBlockAResume() throws {
        let recipe = try recipe("labels")
        let out = root + "/labels/seg"
        let labels = root + "/SegmentationClass"
        try TrainCommand.parse(["--recipe", recipe, "--labels", labels, "--out", out]).run()
        #expect(try Checkpoint.metadata(at: out + "/final.h5").labels == "labels in \(labels)")
        // The stored recipe says what the run trained on, whatever its pseudo: section describes.
        #expect(try Checkpoint.metadata(at: out + "/final.h5").recipe.hasSuffix("# trained on: labels in \(labels)\n"))
        let first =
            try String(contentsOfFile: out + "/train.jsonl", encoding: .utf8).split(separator: "\n").first.map(String.init) ?? ""
        #expect(first.contains("\"labels\"") && first.contains("SegmentationClass"))
        // Log, evaluation and checkpoint cadence cannot change the weights: a resume takes them.
        try TrainCommand.parse([
            "--recipe", recipe, "--labels", labels, "--out", out, "--resume", "auto", "--set", "train.log_every=2", "--set",
            "train.checkpoint_every=50", "--set", "train.eval_every=0",
        ]).run()
        #expect(try Checkpoint.metadata(at: out + "/final.h5").iteration == 2)
    }
}
