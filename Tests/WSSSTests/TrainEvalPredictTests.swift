import ArgumentParser
import Checkpoints
import Datasets
import Foundation
import Pipeline
import HDF5
import Imaging
import Reporting
import Testing
import Training

@testable import wsss

/// `wsss train`, `eval` and `predict` on a small synthetic dataset, in process: fine-tuning into
/// another class count, and eval/predict agreeing with each other and with `wsss score`.
@Suite(.serialized) struct TrainEvalPredictTests {
    let root: String
    /// A 7-class model trained for a few iterations on `root`.
    let checkpoint: String

    init() throws {
        root = NSTemporaryDirectory() + "wsss-tep-\(UUID().uuidString)"
        var synth = try Synth.parse(["--out", root, "--train", "6", "--val", "3", "--test", "2", "--size", "48", "--seed", "11"])
        try synth.run()
        try Self.recipe(root: root).write(toFile: root + "/recipe.yaml", atomically: true, encoding: .utf8)
        var train = try TrainCommand.parse([
            "--recipe", root + "/recipe.yaml", "--labels", root + "/SegmentationClass", "--out", root + "/seg", "--threads", "1",
        ])
        try train.run()
        checkpoint = root + "/seg/final.h5"
    }

    static func recipe(root: String, train: String = "iterations: 4, lr: 0.001") -> String {
        """
        data: {root: \(root)}
        model: {depth: 18, width_divisor: 16, frozen_bn: false, msc: false}
        train: {\(train), batch: 2, accumulation: 1, crop: 48, scales: [0.9, 1.1], scale_sampling: uniform, checkpoint_every: 100, keep_last: 1, eval_every: 0, log_every: 1}
        run: {dir: \(root)/runs}
        """
    }

    /// A copy of the dataset whose 6 shapes are merged into 2 classes (round: disc, ring; angular:
    /// the rest), so its DeepLab has 3 outputs instead of 7.
    func threeClassCopy() throws -> String {
        let copy = root + "-3"
        let fm = FileManager.default
        for folder in ["JPEGImages", "ImageSets"] { try fm.copyItem(atPath: "\(root)/\(folder)", toPath: "\(copy)/\(folder)") }
        try fm.createDirectory(atPath: copy + "/SegmentationClass", withIntermediateDirectories: true)
        try "background\nround\nangular\n".write(toFile: copy + "/classes.txt", atomically: true, encoding: .utf8)
        let merged: [UInt8] = [0, 1, 2, 2, 2, 1, 2]  // background, disc, box, triangle, cross, ring, diamond
        for name in try fm.contentsOfDirectory(atPath: root + "/SegmentationClass") {
            var labels = try LabelMap.read(from: "\(root)/SegmentationClass/\(name)")
            labels.values = labels.values.map { $0 == LabelMap.ignore ? $0 : merged[Int($0)] }
            try labels.writePNG(to: "\(copy)/SegmentationClass/\(name)")
        }
        return copy
    }

    @Test func fineTunesIntoAnotherClassCountKeepingTheBackbone() throws {
        let copy = try threeClassCopy()
        // At lr 0 every loaded parameter must come out unchanged (BN running statistics move; they are buffers).
        try Self.recipe(root: copy, train: "iterations: 2, lr: 0.0").write(
            toFile: copy + "/recipe.yaml", atomically: true, encoding: .utf8)
        var train = try TrainCommand.parse([
            "--recipe", copy + "/recipe.yaml", "--labels", "gt", "--out", copy + "/seg", "--init-from", checkpoint, "--threads",
            "1",
        ])
        try train.run()
        let source = try HDF5File(path: checkpoint, mode: .read)
        let tuned = try HDF5File(path: copy + "/seg/final.h5", mode: .read)
        let names = try tuned.datasetNames(under: "/parameters")
        let backbone = names.filter { !$0.contains("aspp") }
        #expect(backbone.count > 20)
        for name in backbone {
            #expect(
                try source.read(name).scalars == tuned.read(name).scalars, "\(name) was not taken from the 7-class checkpoint")
        }
        let classifier = try #require(names.first { $0.contains("aspp") && $0.hasSuffix("weight") })
        #expect(try tuned.read(classifier).shape.first == 3)
        #expect(try source.read(classifier).shape.first == 7)
        // Eval of the 3-class model on the 3-class copy works; on the 7-class set it is refused.
        let threeClass = try VOCDataset(
            root: copy, split: "val", classes: ClassNames.load(copy + "/classes.txt"), requireLabels: true)
        #expect(try evaluateCheckpoint(copy + "/seg/final.h5", dataset: threeClass, scales: [1], flip: false).images == 3)
        let sevenClass = try VOCDataset(
            root: root, split: "val", classes: ClassNames.load(root + "/classes.txt"), requireLabels: true)
        #expect(throws: TrainingError.self) {
            try evaluateCheckpoint(copy + "/seg/final.h5", dataset: sevenClass, scales: [1], flip: false)
        }
    }

    @Test func fineTuningWithoutExcludingTheClassifierNamesTheMisshapedTensors() throws {
        let copy = try threeClassCopy()
        try Self.recipe(root: copy).write(toFile: copy + "/recipe.yaml", atomically: true, encoding: .utf8)
        var train = try TrainCommand.parse([
            "--recipe", copy + "/recipe.yaml", "--labels", "gt", "--set", "model.init_exclude=[]", "--out", copy + "/seg",
            "--init-from", checkpoint, "--threads", "1",
        ])
        do {
            try train.run()
            Issue.record("a 7-class classifier was loaded into a 3-class model")
        } catch let error as CheckpointError {
            let message = error.localizedDescription
            #expect(message.contains(checkpoint) && message.contains("aspp"), "\(message)")
        }
        #expect(!FileManager.default.fileExists(atPath: copy + "/seg/final.h5"))
        // Another architecture (ResNet-50 in place of 18) is refused before any training too.
        train = try TrainCommand.parse([
            "--recipe", copy + "/recipe.yaml", "--labels", "gt", "--set", "model.depth=50", "--out", copy + "/seg50",
            "--init-from", checkpoint, "--threads", "1",
        ])
        #expect(throws: CheckpointError.self) { try train.run() }
    }

    @Test func evalAndPredictAgreeOnTheSyntheticTestSplit() throws {
        let dataset = try VOCDataset(
            root: root, split: "test", classes: ClassNames.load(root + "/classes.txt"), requireLabels: true)
        let evaluated = try evaluateCheckpoint(checkpoint, dataset: dataset, scales: [1, 0.75], flip: true)
        #expect(evaluated.images == 2)
        let out = root + "/predict"
        var predict = try PredictCommand.parse([
            "--root", root, "--split", "test", "--checkpoint", checkpoint, "--out", out, "--scales", "1,0.75", "--flip",
            "--overlays", "--save-logits", "--threads", "1",
        ])
        try predict.run()
        let folder = out + "/results/VOC2012/Segmentation/comp6_test_cls"
        let ids = dataset.samples.map(\.id)
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder).sorted() == ids.map { "\($0).png" }.sorted())
        // Scoring predict's PNGs gives eval's numbers.
        let matrix = try FolderScore.confusion(
            ids: ids, predictions: folder, groundTruth: root + "/SegmentationClass", classCount: 7)
        let report = matrix.report(classNames: dataset.classes.names)
        #expect(abs(report.meanIoU - evaluated.report.meanIoU) < 1e-9)
        // The saved scores are softmax maps at image size whose argmax is the PNG.
        let scores = try HDF5File(path: out + "/scores.h5", mode: .read)
        for id in ids {
            let labels = try LabelMap.read(from: "\(folder)/\(id).png")
            let map = try scores.read("/\(id)")
            #expect(map.shape == [7, labels.height, labels.width])
            let plane = labels.width * labels.height
            let values = map.scalars
            for p in stride(from: 0, to: plane, by: 7) {
                let column = (0..<7).map { values[$0 * plane + p] }
                #expect(abs(column.reduce(0, +) - 1) < 1e-4)
                #expect(Int(labels.values[p]) == column.indices.max { column[$0] < column[$1] }!)
            }
            // The overlay in a captioned panel with the legend of the classes it shows below it.
            let overlay = try Image.readRGB(from: "\(out)/overlays/\(id).png")
            #expect(overlay.width >= labels.width && overlay.height > labels.height + 16)
        }
    }

    /// `--msc on` scores the MSC max-fused logits in eval and predict alike; this checkpoint
    /// trained without MSC, so `auto` is the single-scale prediction.
    @Test func evalAndPredictAgreeOnTheMSCLogits() throws {
        let dataset = try VOCDataset(
            root: root, split: "test", classes: ClassNames.load(root + "/classes.txt"), requireLabels: true)
        let fused = try evaluateCheckpoint(checkpoint, dataset: dataset, scales: [1], flip: false, msc: true)
        let single = try evaluateCheckpoint(checkpoint, dataset: dataset, scales: [1], flip: false, msc: nil)
        #expect(
            try evaluateCheckpoint(checkpoint, dataset: dataset, scales: [1], flip: false, msc: false).report == single.report)
        let out = root + "/predict-msc"
        var predict = try PredictCommand.parse([
            "--root", root, "--split", "test", "--checkpoint", checkpoint, "--out", out, "--msc", "on", "--threads", "1",
        ])
        try predict.run()
        let folder = out + "/results/VOC2012/Segmentation/comp6_test_cls"
        let matrix = try FolderScore.confusion(
            ids: dataset.samples.map(\.id), predictions: folder, groundTruth: root + "/SegmentationClass", classCount: 7)
        #expect(abs(matrix.report(classNames: dataset.classes.names).meanIoU - fused.report.meanIoU) < 1e-9)
        #expect(try EvalCommand.parse(["--root", root, "--checkpoint", checkpoint, "--msc", "off"]).msc == .off)
    }

    @Test func aFreshRunInAFinishedFolderRefusesAndOverwriteMovesItAside() throws {
        let out = root + "/seg-again"
        try FileManager.default.copyItem(atPath: root + "/seg", toPath: out)
        let original = try Data(contentsOf: URL(fileURLWithPath: out + "/final.h5"))
        let args = ["--recipe", root + "/recipe.yaml", "--labels", root + "/SegmentationClass", "--out", out, "--threads", "1"]
        var again = try TrainCommand.parse(args)
        #expect { try again.run() } throws: { error in
            guard case RunFolderError.hasCheckpoints(let directory, let files) = error else { return false }
            return directory == out && files == ["final.h5"] && error.localizedDescription.contains("--overwrite")
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: out + "/final.h5")) == original, "final.h5 untouched")
        let overwrite = try TrainCommand.parse(args + ["--overwrite"])
        try overwrite.run()
        let aside = try #require(try FileManager.default.contentsOfDirectory(atPath: out).first { $0.hasPrefix("replaced-") })
        #expect(try Data(contentsOf: URL(fileURLWithPath: "\(out)/\(aside)/final.h5")) == original, "the earlier run is kept")
        #expect(
            try FileManager.default.contentsOfDirectory(atPath: "\(out)/\(aside)").contains {
                $0.hasPrefix("events.out.tfevents.")
            })
        #expect(
            try FileManager.default.contentsOfDirectory(atPath: out).filter { $0.hasPrefix("events.out.tfevents.") }.count == 1)
        #expect(FileManager.default.fileExists(atPath: out + "/final.h5"))
    }

    @Test func resumingWithAnotherRecipeIsRefusedListingTheChanges() throws {
        let out = root + "/seg-changed"
        try FileManager.default.copyItem(atPath: root + "/seg", toPath: out)
        let args = [
            "--recipe", root + "/recipe.yaml", "--labels", root + "/SegmentationClass", "--out", out, "--threads", "1",
            "--resume", "auto",
            "--set", "train.lr=0.002",
        ]
        var train = try TrainCommand.parse(args)
        #expect { try train.run() } throws: { error in
            guard case TrainingError.optionsChanged(let path, let keys) = error else { return false }
            return path == out + "/final.h5" && keys == ["learningRate: 0.001 → 0.002"]
        }
        train = try TrainCommand.parse(args + ["--allow-recipe-change"])
        try train.run()
    }

    /// `--precision bf16` (run.precision): the same run in bf16 mixed precision records it in
    /// its checkpoint, ends near the fp32 run's weights without equalling them, refuses to resume
    /// in fp32 without --allow-recipe-change, and predicts nearly the same labels.
    @Test func bf16TrainingRecordsItsPrecisionAndStaysNearFP32() throws {
        let out = root + "/seg-bf16"
        let args = [
            "--recipe", root + "/recipe.yaml", "--labels", root + "/SegmentationClass", "--out", out, "--threads", "1",
        ]
        var train = try TrainCommand.parse(args + ["--precision", "bf16"])
        try train.run()
        let (bf16, bf16Options, _) = try SegmentationTraining.load(out + "/final.h5")
        let (fp32, fp32Options, _) = try SegmentationTraining.load(checkpoint)
        #expect(bf16Options.precision == .bf16 && fp32Options.precision == .fp32)
        var (largest, difference) = (Float(0), Float(0))
        for ((_, a), (_, b)) in zip(bf16.stateDict(), fp32.stateDict()) {
            for (x, y) in zip(a.scalars, b.scalars) {
                (largest, difference) = (max(largest, abs(y)), max(difference, abs(x - y)))
            }
        }
        #expect(difference > 0 && difference < 1e-2 * largest, "weights differ by \(difference) of \(largest)")
        train = try TrainCommand.parse(args + ["--resume", "auto", "--set", "train.iterations=5"])
        #expect { try train.run() } throws: { error in
            guard case TrainingError.optionsChanged(_, let keys) = error else { return false }
            return keys.contains("precision: bf16 → fp32")
        }
        // bf16 inference of the fp32 model labels nearly every pixel as fp32 inference does.
        let dataset = try VOCDataset(root: root, split: "test", classes: ClassNames.load(root + "/classes.txt"))
        var (same, total) = (0, 0)
        for sample in dataset.samples {
            let image = try dataset.load(sample).image
            let a = SegmentationTraining.predict(model: fp32, image: image, preprocessing: fp32Options.preprocessing)
            let b = SegmentationTraining.predict(
                model: fp32, image: image, preprocessing: fp32Options.preprocessing, precision: .bf16)
            same += zip(a.labels.values, b.labels.values).filter { $0 == $1 }.count
            total += a.labels.values.count
            #expect(a.scores.scalars != b.scores.scalars)
        }
        #expect(Double(same) / Double(total) > 0.98, "\(same) of \(total) pixels agree")
    }

    @Test func predictTakesAFolderOfImagesOrOneImage() throws {
        let images = root + "/JPEGImages"
        let first = try #require(try FileManager.default.contentsOfDirectory(atPath: images).sorted().first)
        try PredictCommand.parse([
            "--images", images, "--checkpoint", checkpoint, "--out", root + "/pred-folder", "--threads", "1",
        ]).run()
        #expect(try FileManager.default.contentsOfDirectory(atPath: root + "/pred-folder").count == 11)
        try PredictCommand.parse([
            "--images", "\(images)/\(first)", "--checkpoint", checkpoint, "--out", root + "/pred-one", "--save-probabilities",
        ]).run()
        let id = (first as NSString).deletingPathExtension
        #expect(FileManager.default.fileExists(atPath: "\(root)/pred-one/\(id).png"))
        #expect(try HDF5File(path: root + "/pred-one/scores.h5", mode: .read).contains("/\(id)"))
        #expect(throws: (any Error).self) {
            try PredictCommand.parse(["--images", images, "--root", root, "--checkpoint", checkpoint, "--out", "/tmp/x"])
        }
    }

    /// `predict --crf` refines with the same CRF as `wsss crf` on the saved probabilities (the
    /// label PNGs are identical; that the CRF changes labels is DenseCRFTests' and
    /// CRFCommandTests' business: this 4-iteration net's predictions come out unchanged), and
    /// `eval --crf` runs with the CRF's flags.
    @Test func predictAndEvalWithTheCRFAgreeWithWsssCRF() throws {
        let images = root + "/JPEGImages"
        try PredictCommand.parse([
            "--images", images, "--checkpoint", checkpoint, "--out", root + "/pred-crf", "--crf", "--iterations", "3", "--pos-w",
            "60", "--pos-xy-std", "4",
            "--save-probabilities", "--threads", "1",
        ]).run()
        try CRFCommand.parse([
            "--images", images, "--scores", root + "/pred-crf/scores.h5", "--out", root + "/crf-again", "--iterations", "3",
            "--pos-w", "60", "--pos-xy-std", "4",
            "--threads", "1",
        ]).run()
        let names = try FileManager.default.contentsOfDirectory(atPath: root + "/crf-again").filter { $0.hasSuffix(".png") }
            .sorted()
        #expect(names.count == 11)
        for name in names {
            let viaPredict = try LabelMap.read(from: "\(root)/pred-crf/\(name)"),
                viaCRF = try LabelMap.read(from: "\(root)/crf-again/\(name)")
            #expect(viaPredict.values == viaCRF.values, "\(name)")
        }
        var eval = try EvalCommand.parse([
            "--root", root, "--checkpoint", checkpoint, "--crf", "--iterations", "3", "--json", "--threads", "1",
        ])
        try eval.run()
        #expect(throws: (any Error).self) {
            try EvalCommand.parse(["--root", root, "--checkpoint", checkpoint, "--crf", "--bi-rgb-std", "0"])
        }
    }

    @Test func trainingWritesTensorBoardEvents() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: root + "/seg").filter {
            $0.hasPrefix("events.out.tfevents.")
        }
        #expect(files.count == 1)
        let events = try TensorBoardEvents.read(path: "\(root)/seg/\(try #require(files.first))")
        let tags = Set(events.flatMap { $0.values.map(\.tag) })
        #expect(tags.isSuperset(of: ["train/loss", "train/lr", "train/images_per_s", "recipe"]))
        let losses = events.filter { $0.values.first?.tag == "train/loss" }.map(\.step)
        #expect(losses == [1, 2, 3, 4], "one loss per logged iteration")
    }

    @Test func trainingNeedsAnExplicitLabelSource() throws {
        let train = try TrainCommand.parse(["--recipe", root + "/recipe.yaml", "--out", root + "/seg-nolabels", "--threads", "1"])
        #expect { try train.run() } throws: { error in "\(error)".contains("--labels gt") }
        #expect(!FileManager.default.fileExists(atPath: root + "/seg-nolabels/final.h5"))
    }

    @Test func aDivergingRunKeepsOnlyFiniteCheckpoints() throws {
        let out = root + "/seg-diverge"
        try Self.recipe(root: root, train: "iterations: 12, lr: 1.0e12").replacingOccurrences(
            of: "checkpoint_every: 100", with: "checkpoint_every: 1"
        )
        .write(toFile: root + "/diverge.yaml", atomically: true, encoding: .utf8)
        let train = try TrainCommand.parse([
            "--recipe", root + "/diverge.yaml", "--labels", root + "/SegmentationClass", "--out", out, "--threads", "1",
        ])
        #expect { try train.run() } throws: { error in
            switch error as? TrainingError {
            case .nonFiniteLoss(_, let last)?, .nonFiniteWeights(_, _, let last)?:
                // The checkpoint named as the last good one is there and loads (loading checks every tensor).
                return last.map { (try? SegmentationTraining.load($0)) != nil } ?? true
            default: return false
            }
        }
        let left = RunFolder.checkpoints(in: out, prefix: "")
        for path in left { _ = try SegmentationTraining.load(path) }
    }
}
