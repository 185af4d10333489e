import Checkpoints
import Datasets
import Foundation
import Imaging
import Pipeline
import PseudoLabels
import Testing
import Training

/// The Pipeline library as a Swift user drives it (no CLI): the run folder's paths, provenance
/// and its cosmetic keys, `pseudo.proposals` parsed once, the inputs checked before anything
/// runs, and a run whose records say what each output was made from.
@Suite struct PipelineLibraryTests {
    /// A tiny synthetic set (no SAM stand-in masks) in a fresh temporary folder.
    static func dataset() throws -> String {
        let root = NSTemporaryDirectory() + "wsss-pipelib-\(UUID().uuidString)"
        var options = SyntheticDataset.Options()
        (options.train, options.val, options.test, options.size, options.seed) = (4, 2, 1, 40, 3)
        try SyntheticDataset.write(to: root, options: options)
        return root
    }

    static func recipe(root: String, extra: String = "") throws -> Recipe {
        try Recipe(
            text: """
                data: {root: \(root)}
                run: {dir: \(root)/run, seed: 0, threads: 1}
                pseudo: {source: gt}
                model: {depth: 18, width_divisor: 16, frozen_bn: true, msc: false}
                train: {iterations: 2, batch: 2, crop: 40, lr: 0.001, checkpoint_every: 100, eval_every: 0, log_every: 1}
                eval: {splits: [val]}
                \(extra)
                """, path: "test-recipe")
    }

    @Test func runLayoutNamesEveryPath() {
        let layout = RunLayout(root: "runs/x")
        #expect(layout.camCheckpoint == "runs/x/cam/cam_final.h5")
        #expect(layout.cams(split: "train") == "runs/x/cam/cams_train.h5")
        #expect(layout.pseudoScore(.seplFelzenszwalb) == "runs/x/pseudo/sepl-felzenszwalb/score.json")
        #expect(layout.segmenterName(.sepl, seed: 3) == "sepl_seed3" && layout.segmenterName(.gt) == "gt")
        #expect(layout.segmenterCheckpoint("gt") == "runs/x/segmenter_gt/final.h5")
        #expect(layout.evaluation("cam", split: "test") == "runs/x/segmenter_cam/eval_test.json")
        #expect(layout.record("eval/sepl/val") == "runs/x/provenance_eval_sepl_val.json")
    }

    @Test func cosmeticKeysNeverCountAsChanges() {
        let old = Provenance(["train.lr": "0.01", "train.log_every": "10", "run.threads": "2"])
        let new = Provenance(
            ["train.lr": "0.01", "train.log_every": "50", "run.threads": "8", "x": "1"],
            upstream: [("cam_train", Provenance(["cam.checkpoint_every": "7"]))])
        #expect(new.changes(from: old) == ["x: - → 1"])
        #expect(Provenance(["train.lr": "0.02"]).changes(from: old).contains("train.lr: 0.01 → 0.02"))
    }

    @Test func proposalSpecsParseOnce() throws {
        #expect(try ProposalSpec("sam") == .sam)
        #expect(try ProposalSpec("felzenszwalb") == .felzenszwalb)
        #expect(try ProposalSpec("sa1b:masks", relativeTo: "/data") == .folder(.sa1b, path: "/data/masks"))
        #expect(try ProposalSpec("index:/abs", relativeTo: "/data") == .folder(.index, path: "/abs"))
        #expect(throws: PipelineError.self) { try ProposalSpec("foo:bar") }
        #expect(throws: PipelineError.self) { try ProposalSpec("masks:") }
        #expect { try ProposalSpec("masks:nope", relativeTo: "/nonexistent").checkFolder(rule: "the rule") } throws: { error in
            error.localizedDescription.contains("/nonexistent/nope") && error.localizedDescription.contains("the rule")
        }
    }

    @Test func inputsAreCheckedBeforeAnythingRuns() throws {
        let root = try Self.dataset()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let bad = try Pipeline(
            recipe: try Recipe(
                text: try Self.recipe(root: root, extra: "cam: {init: missing_cam.h5}").text, path: "test-recipe",
                overrides: ["pseudo.source=cam"]))
        #expect { try bad.run() } throws: { error in error.localizedDescription.contains("cam.init: ") }
        #expect(!FileManager.default.fileExists(atPath: root + "/run"))
        // 'none' is random initialisation for cam.init as for model.init.
        #expect(throws: Never.self) {
            try Pipeline(recipe: try Self.recipe(root: root, extra: "cam: {init: none}")).checkInputs()
        }
    }

    /// A custom proposal source, as Examples/CustomProposals plugs it in, and the records a run leaves.
    struct Tiles: ProposalSource {
        var name: String { "tiles" }
        func proposals(for id: String, image: Image) throws -> [SegmentMask] {
            let (w, h) = (image.width, image.height)
            return (0..<4).map { k in
                SegmentMask(
                    width: w, height: h,
                    bitmap: (0..<(w * h)).map { i in (i % w < w / 2) == (k % 2 == 0) && (i / w < h / 2) == (k < 2) })
            }
        }
    }

    @Test func aRunRecordsWhatEachOutputWasMadeFrom() throws {
        let root = try Self.dataset()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let recipe = try Self.recipe(root: root, extra: "")
        let text = recipe.text.replacingOccurrences(
            of: "pseudo: {source: gt}", with: "pseudo: {source: sepl, seeds: SegmentationClass}")
        let pipeline = try Pipeline(recipe: try Recipe(text: text, path: "test-recipe"))
        pipeline.proposalSources[.sepl] = Tiles()
        var steps: [String] = []
        pipeline.events.stepStarted = { steps.append($0.description) }
        let summary = try pipeline.run()
        #expect(steps == ["pseudo/sepl", "train/sepl", "eval/sepl/val"])
        let layout = pipeline.layout
        let folder = try #require(Provenance.read(layout.pseudoLabels(.sepl) + "/provenance.json"))
        #expect(folder.values["custom.proposals"] == "tiles" && folder.values["source"] == "sepl")
        let checkpoint = try Checkpoint.metadata(at: layout.segmenterCheckpoint("sepl"))
        #expect(checkpoint.provenance["pseudo/sepl:custom.proposals"] == "tiles")
        #expect(checkpoint.labels.contains(layout.pseudoLabels(.sepl)))
        #expect(summary.segmenters[.sepl]?.labels == checkpoint.labels)
        #expect(Provenance.read(layout.record("train/sepl"))?.values == checkpoint.provenance)
        // summary.json decodes back into the summary (Codable), in its established layout.
        let data = try Data(contentsOf: URL(fileURLWithPath: layout.summary))
        let decoded = try JSONDecoder().decode(PipelineSummary.self, from: data)
        #expect(decoded.source == .sepl && decoded.pseudoMIoU == summary.pseudoMIoU && decoded.stepSeconds == summary.stepSeconds)
        #expect(decoded.segmenters[.sepl]?.miou == summary.segmenters[.sepl]?.miou)
        #expect(decoded.segmenters[.sepl]?.labels == checkpoint.labels)
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(
            object["val_miou"] is Double && object["test_miou"] is NSNull
                && object["checkpoint"] as? String == layout.segmenterCheckpoint("sepl"))
        // A second run reuses everything.
        steps = []
        let again = try pipeline.run()
        #expect(Set(again.reusedSteps) == ["pseudo/sepl", "train/sepl", "eval/sepl/val"])
    }
}
