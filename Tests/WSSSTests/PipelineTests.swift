import Foundation
import HDF5
import Testing

@testable import wsss

/// `wsss pipeline` end to end on a tiny synthetic set: every stage runs, summary.json holds the
/// numbers, and a second run with --compare skips what exists and trains only the new segmenters.
@Suite struct PipelineTests {
    func summary(_ runDir: String) throws -> [String: Any] {
        let data = try #require(FileManager.default.contents(atPath: runDir + "/summary.json"))
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    func modified(_ path: String) throws -> Date {
        try #require(try FileManager.default.attributesOfItem(atPath: path)[.modificationDate] as? Date)
    }

    @Test func runsEveryStageThenResumesWithCompare() throws {
        let root = NSTemporaryDirectory() + "wsss-pipe-\(UUID().uuidString)"
        var synth = try Synth.parse([
            "--out", root, "--train", "6", "--val", "2", "--test", "2", "--size", "40", "--seed", "8", "--proposals",
        ])
        try synth.run()
        let runDir = root + "/run"
        try """
        data: {root: \(root)}
        run: {dir: \(runDir), seed: 0}
        cam: {iterations: 3, batch: 2, crop: 40, width_divisor: 16, frozen_bn: false, inference_scales: [1.0], bg_threshold: 0.3, checkpoint_every: 100}
        pseudo: {source: sepl, proposals: "sa1b:SAMStandIn", compare: [cam, sepl-felzenszwalb, gt]}
        model: {depth: 18, width_divisor: 16, frozen_bn: false, msc: false}
        train: {iterations: 3, batch: 2, crop: 40, lr: 0.001, checkpoint_every: 100, eval_every: 0, log_every: 1}
        eval: {splits: [val, test]}
        """.write(toFile: root + "/recipe.yaml", atomically: true, encoding: .utf8)
        var pipeline = try PipelineCommand.parse(["--recipe", root + "/recipe.yaml", "--threads", "1"])
        try pipeline.run()
        let first = try summary(runDir)
        let pseudo = try #require(first["pseudo_miou"] as? [String: Double])
        #expect(Set(pseudo.keys) == ["sepl", "cam", "sepl-felzenszwalb", "gt"])
        #expect(pseudo["gt"] == 100)
        #expect(first["source"] as? String == "sepl")
        // The synthetic set's masks are named for what they are: an oracle, not SAM.
        let proposals = try #require(first["proposals"] as? [String: String])
        #expect(proposals == ["sepl": "SAM stand-in, derived from ground truth", "sepl-felzenszwalb": "Felzenszwalb segments"])
        #expect((first["val_miou"] as? Double).map { $0 >= 0 && $0 <= 100 } == true)
        #expect(first["test_miou"] is Double)
        let checkpoint = try #require(first["checkpoint"] as? String)
        #expect(checkpoint == runDir + "/segmenter_sepl/final.h5")
        let stages = try #require(first["stage_seconds"] as? [String: Double])
        #expect(Set(stages.keys) == ["cam_train", "cam_infer", "pseudo", "train", "eval"])
        let steps = try #require(first["step_seconds"] as? [String: Double])
        #expect(steps.keys.contains("train/sepl") && steps.keys.contains("eval/sepl/test"))
        #expect(!FileManager.default.fileExists(atPath: runDir + "/segmenter_cam"))
        let seplTrained = try modified(checkpoint), camTrained = try modified(runDir + "/cam/cam_final.h5")
        // report.html: self-contained, with the tables, the curves and the panels inlined.
        let report = try String(contentsOfFile: runDir + "/report.html", encoding: .utf8)
        for text in [
            "Pseudo-labels (train split)", "<td>sepl (SAM stand-in, derived from ground truth) *</td>", "Training curves: sepl",
            "Stage times", "Recipe",
        ] {
            #expect(report.contains(text), "report.html lacks \(text)")
        }
        #expect(report.components(separatedBy: "data:image/png;base64,").count > 2)
        #expect(!report.contains("src=\"http") && !report.contains("href=\"http"))

        // Again with --compare: CAM, pseudo-labels and the SEPL segmenter are reused.
        pipeline = try PipelineCommand.parse(["--recipe", root + "/recipe.yaml", "--threads", "1", "--compare"])
        try pipeline.run()
        let second = try summary(runDir)
        #expect(try modified(checkpoint) == seplTrained)
        #expect(try modified(runDir + "/cam/cam_final.h5") == camTrained)
        for source in ["cam", "sepl-felzenszwalb", "gt"] {
            #expect(FileManager.default.fileExists(atPath: "\(runDir)/segmenter_\(source)/final.h5"))
        }
        let segmenters = try #require(second["segmenters"] as? [String: [String: Any]])
        #expect(Set(segmenters.keys) == ["sepl", "cam", "sepl-felzenszwalb", "gt"])
        let reusedSteps = try #require(second["step_seconds"] as? [String: Double])
        #expect(reusedSteps["train/sepl"] == steps["train/sepl"], "a skipped step keeps the time of the run that made it")
        #expect(second["val_miou"] as? Double == first["val_miou"] as? Double)
    }

    /// What a broken pipeline would fail: a segmenter trained on ground truth beats the same
    /// network barely trained (a loss, gradient, optimizer, label or evaluation bug leaves them
    /// level).
    @Test func trainingOnGroundTruthBeatsAnUntrainedModel() throws {
        let root = NSTemporaryDirectory() + "wsss-learns-\(UUID().uuidString)"
        try Synth.parse(["--out", root, "--train", "8", "--val", "4", "--test", "1", "--size", "40", "--seed", "5"]).run()
        func run(_ name: String, iterations: Int, lr: Double) throws -> [String: Any] {
            let runDir = root + "/" + name
            try """
            data: {root: \(root), test_split: val}
            run: {dir: \(runDir), seed: 1}
            pseudo: {source: gt}
            model: {depth: 18, width_divisor: 16, frozen_bn: false, msc: false}
            train: {iterations: \(iterations), batch: 4, crop: 40, lr: \(lr), checkpoint_every: 1000, eval_every: 0, log_every: 10}
            eval: {splits: [val]}
            """.write(toFile: root + "/\(name).yaml", atomically: true, encoding: .utf8)
            try PipelineCommand.parse(["--recipe", root + "/\(name).yaml", "--threads", "1"]).run()
            return try summary(runDir)
        }
        let trained = try run("trained", iterations: 60, lr: 0.05), untrained = try run("untrained", iterations: 1, lr: 1e-9)
        let (a, b) = (try #require(trained["val_miou"] as? Double), try #require(untrained["val_miou"] as? Double))
        #expect(a > b + 10, "trained on ground truth: val mIoU \(a), barely trained: \(b)")
    }

    /// `--seeds 2`: two segmenters per source (run.seed and run.seed + 1), mean ± std reported.
    @Test func trainsEachSegmenterWithSeveralSeeds() throws {
        let root = NSTemporaryDirectory() + "wsss-seeds-\(UUID().uuidString)"
        var synth = try Synth.parse(["--out", root, "--train", "4", "--val", "2", "--test", "1", "--size", "40", "--seed", "3"])
        try synth.run()
        let runDir = root + "/run"
        try """
        data: {root: \(root)}
        run: {dir: \(runDir), seed: 4}
        pseudo: {source: gt}
        model: {depth: 18, width_divisor: 16, frozen_bn: false, msc: false}
        train: {iterations: 2, batch: 2, crop: 40, lr: 0.01, checkpoint_every: 100, eval_every: 0, log_every: 1}
        eval: {splits: [val]}
        """.write(toFile: root + "/recipe.yaml", atomically: true, encoding: .utf8)
        try PipelineCommand.parse(["--recipe", root + "/recipe.yaml", "--threads", "1", "--seeds", "2"]).run()
        let s = try summary(runDir)
        #expect(FileManager.default.fileExists(atPath: runDir + "/segmenter_gt/final.h5"))
        #expect(FileManager.default.fileExists(atPath: runDir + "/segmenter_gt_seed5/final.h5"))
        let seedValues = try #require(s["val_miou_seeds"] as? [Double])
        #expect(seedValues.count == 2)
        let mean = try #require(s["val_miou"] as? Double)
        #expect(abs(mean - (seedValues[0] + seedValues[1]) / 2) < 1e-9)
        let std = try #require(s["val_miou_std"] as? Double)
        #expect(abs(std - abs(seedValues[0] - seedValues[1]) / 2.0.squareRoot()) < 1e-9)
        // The two seeds start from different weights, so they end elsewhere.
        let a = try HDF5File(path: runDir + "/segmenter_gt/final.h5", mode: .read)
        let b = try HDF5File(path: runDir + "/segmenter_gt_seed5/final.h5", mode: .read)
        let name = try #require(try a.datasetNames(under: "/parameters").first)
        #expect(try a.read(name).scalars != b.read(name).scalars)
    }

    /// A recipe with `pseudo.proposals: sam`: the pipeline runs our SAM (the tiny official model of
    /// Tests/Fixtures/sam) into run.dir/sam_masks and SEPL uses those masks; boxes prompt SAM.
    @Test func runsSAMFromTheRecipe() throws {
        let sam = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent(
            "Fixtures/sam"
        ).path
        let root = NSTemporaryDirectory() + "wsss-pipe-sam-\(UUID().uuidString)"
        try Synth.parse(["--out", root, "--train", "3", "--val", "1", "--test", "1", "--size", "40", "--seed", "9"]).run()
        let runDir = root + "/run"
        try """
        data: {root: \(root), test_split: val}
        run: {dir: \(runDir), seed: 0}
        pseudo: {source: sepl, seeds: \(root)/SegmentationClass, proposals: sam, sam_checkpoint: \(sam)/sam_tiny.pth, sam_config: \(sam)/sam_tiny.yaml, compare: [boxes]}
        sam: {points_per_side: 4, pred_iou_thresh: 0.0, stability_score_thresh: 0.0}
        model: {depth: 18, width_divisor: 16, frozen_bn: false, msc: false}
        train: {iterations: 1, batch: 1, crop: 40, lr: 0.001, checkpoint_every: 100, eval_every: 0, log_every: 1}
        eval: {splits: [val]}
        """.write(toFile: root + "/recipe.yaml", atomically: true, encoding: .utf8)
        try PipelineCommand.parse(["--recipe", root + "/recipe.yaml", "--threads", "1"]).run()
        let ids = try String(contentsOfFile: root + "/ImageSets/Segmentation/train.txt", encoding: .utf8).split(separator: "\n")
            .map(String.init)
        #expect(
            Set(try FileManager.default.contentsOfDirectory(atPath: runDir + "/sam_masks"))
                == Set(ids.map { $0 + ".json" } + ["provenance.json"]))
        let pseudo = try #require(try summary(runDir)["pseudo_miou"] as? [String: Double])
        #expect(Set(pseudo.keys) == ["sepl", "boxes"])
        for source in ["sepl", "boxes"] {
            for id in ids { #expect(FileManager.default.fileExists(atPath: "\(runDir)/pseudo/\(source)/\(id).png")) }
        }
    }

    /// Sun et al.'s route from a recipe with only the two official checkpoints and the vocabulary:
    /// Grounding DINO (the reduced official model of Tests/Fixtures/gdino, random weights, so its
    /// boxes mean nothing) prompted with each image's classes, each box prompting SAM (the tiny
    /// official SAM); no CAM is trained. The detections stay in the run folder and are reused.
    @Test func runsGroundingDINOAndSAMFromTheRecipe() throws {
        let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures").path
        let (sam, gdino) = (fixtures + "/sam", fixtures + "/gdino")
        let root = NSTemporaryDirectory() + "wsss-pipe-gdino-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: root) }
        try Synth.parse(["--out", root, "--train", "2", "--val", "1", "--test", "1", "--size", "40", "--seed", "5"]).run()
        let runDir = root + "/run"
        try """
        data: {root: \(root), test_split: val}
        run: {dir: \(runDir), seed: 0}
        pseudo: {source: boxes, sam_checkpoint: \(sam)/sam_tiny.pth, sam_config: \(sam)/sam_tiny.yaml, detector_checkpoint: \(gdino)/tiny_model.pth, detector_vocab: \(gdino)/bert_tiny/vocab.txt, detector_config: \(gdino)/tiny_config.yaml, detector_size: [64, 90], box_threshold: 0.5, text_threshold: 0.0}
        model: {depth: 18, width_divisor: 16, frozen_bn: false, msc: false}
        train: {iterations: 1, batch: 1, crop: 40, lr: 0.001, checkpoint_every: 100, eval_every: 0, log_every: 1}
        eval: {splits: [val]}
        """.write(toFile: root + "/recipe.yaml", atomically: true, encoding: .utf8)
        try PipelineCommand.parse(["--recipe", root + "/recipe.yaml", "--threads", "1"]).run()
        #expect(!FileManager.default.fileExists(atPath: runDir + "/cam"), "Sun et al.'s route needs no CAM")
        let detections = runDir + "/detections/train.json"
        let all = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: detections))) as? [String: Any])
        #expect(all.count == 2)
        for id in ["synth_train_00000", "synth_train_00001"] {
            #expect(FileManager.default.fileExists(atPath: "\(runDir)/pseudo/boxes/\(id).png"))
        }
        let made = try modified(detections)
        try PipelineCommand.parse(["--recipe", root + "/recipe.yaml", "--threads", "1"]).run()
        #expect(try modified(detections) == made, "an unchanged recipe reuses the detections")
        // Another threshold redoes the detections.
        try PipelineCommand.parse(["--recipe", root + "/recipe.yaml", "--threads", "1", "--set", "pseudo.box_threshold=0.6"])
            .run()
        #expect(try modified(detections) > made)
    }

    /// Changing a key reruns the stages that read it and those after them; --no-rerun refuses.
    @Test func aChangedRecipeRerunsTheStagesThatDependOnIt() throws {
        let root = NSTemporaryDirectory() + "wsss-pipe-prov-\(UUID().uuidString)"
        try Synth.parse([
            "--out", root, "--train", "4", "--val", "1", "--test", "1", "--size", "40", "--seed", "2", "--proposals",
        ]).run()
        let runDir = root + "/run"
        try """
        data: {root: \(root), test_split: val}
        run: {dir: \(runDir), seed: 0}
        pseudo: {source: sepl, seeds: SegmentationClass, proposals: "sa1b:SAMStandIn", compare: [gt]}
        model: {depth: 18, width_divisor: 16, frozen_bn: false, msc: false}
        train: {iterations: 2, batch: 2, crop: 40, lr: 0.001, checkpoint_every: 100, eval_every: 0, log_every: 1}
        eval: {splits: [val]}
        """.write(toFile: root + "/recipe.yaml", atomically: true, encoding: .utf8)
        let args = ["--recipe", root + "/recipe.yaml", "--threads", "1", "--compare"]
        try PipelineCommand.parse(args).run()
        let sepl = runDir + "/pseudo/sepl/score.json", gtModel = runDir + "/segmenter_gt/final.h5",
            seplModel = runDir + "/segmenter_sepl/final.h5"
        let (seplLabels, gtTrained, seplTrained) = (try modified(sepl), try modified(gtModel), try modified(seplModel))
        // SEPL's mask share changes: SEPL's labels and segmenter are redone; the GT ones are not.
        #expect { try PipelineCommand.parse(args + ["--set", "pseudo.mask_share=0.6", "--no-rerun"]).run() } throws: { error in
            "\(error.localizedDescription)".contains("pseudo.mask_share: 0.5 → 0.6")
        }
        #expect(try modified(sepl) == seplLabels, "--no-rerun leaves everything as it was")
        try PipelineCommand.parse(args + ["--set", "pseudo.mask_share=0.6"]).run()
        #expect(try modified(sepl) > seplLabels && (try modified(seplModel)) > seplTrained)
        #expect(try modified(gtModel) == gtTrained)
        #expect(
            try FileManager.default.contentsOfDirectory(atPath: runDir + "/pseudo").contains { $0.hasPrefix("sepl.replaced-") })
        // The same recipe again: nothing reruns.
        let again = try modified(seplModel)
        try PipelineCommand.parse(args + ["--set", "pseudo.mask_share=0.6"]).run()
        #expect(try modified(seplModel) == again)
    }
}
