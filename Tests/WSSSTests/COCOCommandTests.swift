import ArgumentParser
import Datasets
import Foundation
import Imaging
import Testing

@testable import wsss

/// The COCO route end to end on the built-in COCO-format synthetic set: synth --format coco →
/// coco convert (train and val) → data check → a short pipeline (CAM seeds, segmenter, eval) with
/// the 81 classes of COCO.
@Suite struct COCOCommandTests {
    func synthesizedAndConverted() throws -> (coco: String, root: String) {
        let base = NSTemporaryDirectory() + "wsss-coco-cli-\(UUID().uuidString)"
        let coco = base + "/coco", root = base + "/COCO2014"
        var synth = try Synth.parse([
            "--format", "coco", "--out", coco, "--train", "8", "--val", "4", "--size", "48", "--seed", "2",
        ])
        try synth.run()
        for split in ["train", "val"] {
            var convert = try COCOCommand.Convert.parse([
                "--annotations", "\(coco)/annotations/instances_\(split).json", "--images", "\(coco)/\(split)", "--out", root,
                "--split", split,
            ])
            try convert.run()
        }
        return (coco, root)
    }

    @Test func synthConvertCheckAndAShortPipeline() throws {
        let (_, root) = try synthesizedAndConverted()
        let classes = try ClassNames.load(root + "/classes.txt")
        #expect(classes.count == 81 && classes.names[10] == "traffic_light" && classes.names[80] == "toothbrush")
        // train skips its unannotated first image; val keeps it.
        let train = try String(contentsOfFile: root + "/ImageSets/Segmentation/train.txt", encoding: .utf8).split(separator: "\n")
        let val = try String(contentsOfFile: root + "/ImageSets/Segmentation/val.txt", encoding: .utf8).split(separator: "\n")
        #expect(train.count == 7 && val.count == 4)
        // 81 classes: the table lists the classes some image has, and counts the rest on one line.
        let report = try VOCDataset(
            root: root, split: "train", classes: classes, imageLabelFile: root + "/image_labels_train.txt"
        ).check()
        #expect(report.text.contains("classes in no image not shown") && !report.text.contains("zebra"))
        #expect(report.imagesPerClass.count == 80 && report.problems.isEmpty)
        for split in ["train", "val"] {
            var check = try DataCommand.Check.parse([
                "--root", root, "--split", split, "--image-labels", root + "/image_labels_\(split).txt",
            ])
            try check.run()
        }
        let runDir = root + "/run"
        try """
        data: {root: \(root), image_labels: image_labels.txt}
        run: {dir: \(runDir), seed: 0}
        cam: {iterations: 2, batch: 2, crop: 32, width_divisor: 16, frozen_bn: false, inference_scales: [1.0], bg_threshold: 0.3, checkpoint_every: 100}
        pseudo: {source: cam}
        model: {depth: 18, width_divisor: 16, frozen_bn: false, msc: false}
        train: {iterations: 2, batch: 2, crop: 32, lr: 0.001, checkpoint_every: 100, eval_every: 0, log_every: 1}
        eval: {splits: [val]}
        """.write(toFile: root + "/recipe.yaml", atomically: true, encoding: .utf8)
        var pipeline = try PipelineCommand.parse(["--recipe", root + "/recipe.yaml", "--threads", "1"])
        try pipeline.run()
        let data = try #require(FileManager.default.contents(atPath: runDir + "/summary.json"))
        let summary = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect((summary["val_miou"] as? Double).map { $0 >= 0 && $0 <= 100 } == true)
    }

    @Test func aBadFileIsOneErrorAndARerunKeepsFinishedImages() throws {
        let (coco, root) = try synthesizedAndConverted()
        var again = try COCOCommand.Convert.parse([
            "--annotations", "\(coco)/annotations/instances_train.json", "--images", "\(coco)/train", "--out", root, "--json",
        ])
        try again.run()
        let cut = coco + "/cut.json"
        let text = try Data(contentsOf: URL(fileURLWithPath: "\(coco)/annotations/instances_train.json"))
        try text.prefix(text.count - 40).write(to: URL(fileURLWithPath: cut))
        let bad = try COCOCommand.Convert.parse(["--annotations", cut, "--images", "\(coco)/train", "--out", root + "-bad"])
        #expect { try bad.run() } throws: { error in
            error.localizedDescription.hasPrefix("\(cut): malformed JSON at byte")
                && error.localizedDescription.contains("truncated")
        }
        #expect(throws: (any Error).self) { try Synth.parse(["--format", "coco", "--out", root + "-x", "--proposals"]) }
    }
}
