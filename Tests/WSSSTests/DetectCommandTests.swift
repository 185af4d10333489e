import ArgumentParser
import Foundation
import GroundingDINO
import HDF5
import Imaging
import Testing

@testable import wsss

/// `wsss detect …` on the tiny official Grounding DINO (Tests/Fixtures/gdino, made by
/// scripts/fixtures/make_gdino_fixtures.py): the official checkpoint read as it is, its HDF5
/// copy, a split's detections feeding `wsss pseudo --source boxes`, reruns and bad inputs.
@Suite(.serialized) struct DetectCommandTests {
    static let gdino = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/gdino").path
    let directory = NSTemporaryDirectory() + "wsss-detect-\(UUID().uuidString)"
    var model: [String] {
        [
            "--checkpoint", Self.gdino + "/tiny_model.pth", "--vocab", Self.gdino + "/bert_tiny/vocab.txt", "--config",
            Self.gdino + "/tiny_config.yaml", "--size", "64", "--max-size", "90",
        ]
    }

    /// The official image and caption: the command's boxes are the official predict's.
    @Test func imageBoxesAreTheOfficialOnesFromEitherWeightFile() throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let reference = try HDF5File(path: Self.gdino + "/tiny_outputs.h5", mode: .read)
        let (bytes, shape) = try reference.readBytes("/image/resized")
        let image = directory + "/image.png"
        try Image(width: shape[1], height: shape[0], channels: 3, pixels: bytes).writePNG(to: image)
        try DetectCommand.Convert.parse([
            Self.gdino + "/tiny_model.pth", directory + "/tiny.h5", "--config", Self.gdino + "/tiny_config.yaml",
        ]).run()
        #expect(throws: CommandFailure.self) {
            try DetectCommand.Convert.parse([Self.gdino + "/tiny_model.pth", directory + "/tiny.h5"]).run()
        }
        let expected = try reference.readLabels("/predict/kept_queries").values.count
        for weights in [Self.gdino + "/tiny_model.pth", directory + "/tiny.h5"] {
            var args = model
            args[1] = weights
            if weights.hasSuffix(".h5") { args.removeSubrange(4..<6) }  // the HDF5 copy records its configuration
            let detector = try DetectCommand.ImageBoxes.parse(args + ["--image", image, "--caption", "x"]).model.detector()
            var options = detector.options
            (options.boxThreshold, options.textThreshold) = (0.95, 0.915)
            let boxes = GroundingDetectorRunner(detector, options).run(image, "Person . Potted plant . TV monitor . dog")
            #expect(boxes == expected, "\(weights)")
        }
    }

    /// A split's detections (Sun et al.'s prompts), reused on rerun, refused with other settings,
    /// and read by `wsss pseudo --source boxes`.
    @Test func runWritesDetectionsThatPseudoReads() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let root = directory + "/data"
        try Synth.parse(["--out", root, "--train", "2", "--val", "1", "--test", "1", "--size", "48", "--seed", "3"]).run()
        let out = directory + "/detections.json"
        let run = model + ["--root", root, "--split", "train", "--out", out, "--box-threshold", "0.5", "--text-threshold", "0"]
        try DetectCommand.Run.parse(run).run()
        let data = try Data(contentsOf: URL(fileURLWithPath: out))
        let all = try #require(try JSONSerialization.jsonObject(with: data) as? [String: [[String: Any]]])
        #expect(all.count == 2)
        #expect(all.values.allSatisfy { $0.allSatisfy { ($0["box"] as? [Double])?.count == 4 && $0["text_score"] is Double } })
        let part = out + ".parts/synth_train_00000.json"
        let stamp = try FileManager.default.attributesOfItem(atPath: part)[.modificationDate] as? Date
        try DetectCommand.Run.parse(run).run()
        #expect(try FileManager.default.attributesOfItem(atPath: part)[.modificationDate] as? Date == stamp)
        #expect { try DetectCommand.Run.parse(run.map { $0 == "0.5" ? "0.6" : $0 }).run() } throws: { error in
            error.localizedDescription.contains("box_threshold: 0.5 → 0.6") && error.localizedDescription.contains("--overwrite")
        }
        // The detections plug into the box route (no SAM here: boxes select proposals).
        try Pseudo.parse([
            "--root", root, "--split", "train", "--source", "boxes", "--detections", out, "--proposals",
            "felzenszwalb", "--out", directory + "/boxes",
        ]).run()
        #expect(FileManager.default.fileExists(atPath: directory + "/boxes/synth_train_00001.png"))
    }

    /// `wsss pseudo --source boxes --detector-checkpoint … --sam-checkpoint …`: the whole route in one command.
    @Test func pseudoRunsTheDetectorAndPromptsSAM() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let root = directory + "/data"
        try Synth.parse(["--out", root, "--train", "2", "--val", "1", "--test", "1", "--size", "40", "--seed", "6"]).run()
        let sam = Self.gdino + "/../sam"
        var args = [
            "--root", root, "--split", "train", "--source", "boxes", "--detector-checkpoint", Self.gdino + "/tiny_model.pth",
            "--detector-vocab", Self.gdino + "/bert_tiny/vocab.txt", "--detector-config", Self.gdino + "/tiny_config.yaml",
            "--sam-checkpoint", sam + "/sam_tiny.pth", "--sam-config", sam + "/sam_tiny.yaml", "--box-threshold", "0.5",
            "--text-threshold", "0", "--detector-size", "64,90", "--out", directory + "/boxes",
        ]
        try Pseudo.parse(args).run()
        #expect(FileManager.default.fileExists(atPath: directory + "/boxes/detections.json"))
        #expect(FileManager.default.fileExists(atPath: directory + "/boxes/synth_train_00001.png"))
        let made = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: directory + "/boxes/provenance.json")))
                as? [String: String])
        #expect(made["pseudo.detector_checkpoint"]?.hasSuffix("tiny_model.pth") == true)
        args += ["--detections", "x.json"]
        #expect(throws: (any Error).self) { try Pseudo.parse(args) }
    }

    @Test func badWeightsAndVocabulariesAreNamed() throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let sam = Self.gdino + "/../sam/sam_tiny.pth"
        #expect {
            try DetectCommand.ImageBoxes.parse([
                "--checkpoint", sam, "--vocab", Self.gdino + "/bert_tiny/vocab.txt", "--image", "x", "--caption", "x",
            ]).model.detector()
        } throws: {
            $0.localizedDescription.contains("sam_tiny.pth") && $0.localizedDescription.contains("Grounding DINO")
        }
        let vocab = directory + "/vocab.txt"
        try "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n".write(toFile: vocab, atomically: true, encoding: .utf8)
        var args = model
        args[3] = vocab
        #expect { try DetectCommand.ImageBoxes.parse(args + ["--image", "x", "--caption", "x"]).model.detector() } throws: {
            $0.localizedDescription.contains("vocab.txt") && $0.localizedDescription.contains("not its vocabulary")
        }
        #expect(throws: (any Error).self) {
            try DetectCommand.ImageBoxes.parse(model + ["--image", "x", "--caption", "x", "--box-threshold", "2"])
        }
    }
}

/// Runs a detector with other thresholds on an image file; returns the box count.
struct GroundingDetectorRunner {
    let detector: GroundingDetector
    init(_ detector: GroundingDetector, _ options: GroundingOptions) {
        var d = detector
        d.options = options
        self.detector = d
    }
    func run(_ path: String, _ caption: String) -> Int {
        guard let image = try? Image.readRGB(from: path) else { return -1 }
        return detector.detect(in: image, caption: caption).count
    }
}
