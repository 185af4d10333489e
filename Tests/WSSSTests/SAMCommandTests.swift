import ArgumentParser
import Autograd
import Foundation
import HDF5
import Imaging
import Testing
import TorchCheckpoint

@testable import wsss

/// `wsss sam …` on the tiny official SAM (Tests/Fixtures/sam, made by scripts/fixtures/make_sam_fixtures.py):
/// the commands' files against the official package's outputs, reruns, shards and bad weights.
@Suite(.serialized) final class SAMCommandTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures").path
    let sam = fixtures + "/sam"
    let directory = NSTemporaryDirectory() + "wsss-samcli-\(UUID().uuidString)"

    deinit { try? FileManager.default.removeItem(atPath: directory) }

    /// The fixture image (100x75) as a PNG.
    func imagePNG() throws -> String {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let file = try HDF5File(path: sam + "/sam_tiny_encoder.h5", mode: .read)
        let (bytes, shape) = try file.readBytes("/image")
        let path = directory + "/image.png"
        try Image(width: shape[1], height: shape[0], channels: 3, pixels: bytes).writePNG(to: path)
        return path
    }

    @Test func predictWritesTheOfficialMasksForBatchedBoxes() throws {
        let image = try imagePNG()
        let reference = try HDF5File(path: sam + "/sam_tiny_outputs.h5", mode: .read)
        let boxes = try reference.read("/batched_boxes/boxes")
        var args = [
            "--checkpoint", sam + "/sam_tiny.pth", "--config", sam + "/sam_tiny.yaml", "--image", image, "--out",
            directory + "/p.h5", "--threads", "1",
        ]
        for k in 0..<3 { args += ["--box", (0..<4).map { "\(boxes[k, $0])" }.joined(separator: ",")] }
        try SAMCommand.Predict.parse(args).run()
        let out = try HDF5File(path: directory + "/p.h5", mode: .read)
        let masks = try out.readBytes("/masks", expectingShape: [3, 1, 75, 100]).bytes
        let expected = try reference.readBytes("/batched_boxes/masks").bytes
        let differing = zip(masks, expected).filter { $0 != $1 }.count
        #expect(Double(differing) / Double(expected.count) < 0.005, "\(differing) of \(expected.count) mask pixels differ")
        let iou = try out.read("/iou_predictions"), expectedIoU = try reference.read("/batched_boxes/iou")
        #expect(zip(iou.scalars, expectedIoU.scalars).allSatisfy { abs($0 - $1) < 1e-3 })
        #expect(try out.shape(of: "/low_res_logits") == [3, 1, 32, 32])
    }

    @Test func convertedWeightsEmbedLikeTheOfficialFile() throws {
        let image = try imagePNG()
        try SAMCommand.Convert.parse([sam + "/sam_tiny.pth", directory + "/tiny.h5"]).run()
        for weights in [sam + "/sam_tiny.pth", directory + "/tiny.h5"] {
            try SAMCommand.Embed.parse([
                "--checkpoint", weights, "--config", sam + "/sam_tiny.yaml", "--image", image, "--out", directory + "/e.h5",
                "--overwrite",
            ]).run()
            let embedding = try HDF5File(path: directory + "/e.h5", mode: .read).read("/embedding", expectingShape: [32, 8, 8])
            let neck = try HDF5File(path: sam + "/sam_tiny_encoder.h5", mode: .read).read("/encoder/neck")
            let scale = neck.scalars.map(abs).max()!
            let error = zip(embedding.scalars, neck.scalars).map { abs($0 - $1) }.max()! / scale
            #expect(error < 1e-3, "\(weights): relative error \(error)")
        }
    }

    /// `--precision bf16` embeds close to the official fp32 embedding (not equal: bf16 inputs),
    /// and MobileSAM's official-format file loads by its shapes through the same command.
    @Test func bf16AndMobileSAMEmbed() throws {
        let image = try imagePNG()
        try SAMCommand.Embed.parse([
            "--checkpoint", sam + "/sam_tiny.pth", "--config", sam + "/sam_tiny.yaml", "--image", image, "--out",
            directory + "/bf16.h5", "--precision", "bf16",
        ]).run()
        let embedding = try HDF5File(path: directory + "/bf16.h5", mode: .read).read("/embedding", expectingShape: [32, 8, 8])
        let neck = try HDF5File(path: sam + "/sam_tiny_encoder.h5", mode: .read).read("/encoder/neck")
        let scale = neck.scalars.map(abs).max()!
        let error = zip(embedding.scalars, neck.scalars).map { abs($0 - $1) }.max()! / scale
        #expect(error > 1e-5 && error < 0.03, "bf16 embedding: relative error \(error)")
        #expect(throws: (any Error).self) {
            try SAMCommand.Embed.parse([
                "--checkpoint", self.sam + "/sam_tiny.pth", "--image", image, "--out", "x.h5", "--precision", "fp16",
            ])
        }
        try SAMCommand.Embed.parse([
            "--checkpoint", sam + "/mobile_sam_tiny.pt", "--config", sam + "/mobile_sam_tiny.yaml", "--image", image, "--out",
            directory + "/mobile.h5",
        ]).run()
        let mobile = try HDF5File(path: directory + "/mobile.h5", mode: .read).read("/embedding", expectingShape: [16, 4, 4])
        let reference = try HDF5File(path: sam + "/mobile_sam_tiny.h5", mode: .read).read("/encoder/neck")
        let mobileScale = reference.scalars.map(abs).max()!
        #expect(zip(mobile.scalars, reference.scalars).map { abs($0 - $1) }.max()! / mobileScale < 1e-3)
    }

    /// SAM-HQ weights through `sam predict`: one mask per prompt; `--hq-token-only` changes the
    /// logits and is refused for plain SAM weights.
    @Test func predictRunsSAMHQ() throws {
        let image = try imagePNG()
        var outputs: [[Float]] = []
        for flag in [[], ["--hq-token-only"]] {
            try SAMCommand.Predict.parse(
                [
                    "--checkpoint", sam + "/sam_hq_tiny.pth", "--config", sam + "/sam_hq_tiny.yaml", "--image", image, "--point",
                    "60,30,1", "--out", directory + "/hq.h5", "--overwrite",
                ] + flag
            ).run()
            let out = try HDF5File(path: directory + "/hq.h5", mode: .read)
            outputs.append(try out.read("/low_res_logits", expectingShape: [1, 1, 32, 32]).scalars)
        }
        #expect(outputs[0] != outputs[1])
        #expect(throws: (any Error).self) {
            try SAMCommand.Predict.parse([
                "--checkpoint", self.sam + "/sam_tiny.pth", "--config", self.sam + "/sam_tiny.yaml", "--image", image, "--point",
                "60,30,1", "--out", self.directory + "/plain.h5", "--hq-token-only",
            ]).run()
        }
    }

    /// Light HQ-SAM (TinyViT + SAM-HQ's decoder) through `sam predict`: one HDF5 weight file made
    /// of MobileSAM's reduced weights and the fixture's HQ ones, the official logits out.
    @Test func predictRunsLightHQSAM() throws {
        let image = try imagePNG()
        let weights = directory + "/light_hq.h5"
        try FileManager.default.copyItem(atPath: sam + "/light_hq_sam_tiny.h5", toPath: weights)
        let mobile = try TorchCheckpoint(path: sam + "/mobile_sam_tiny.pt")
        let file = try HDF5File(path: weights, mode: .readWrite)
        for name in mobile.tensorNames { try file.write(try mobile.tensor(named: name), at: "/parameters/\(name)") }
        try SAMCommand.Predict.parse([
            "--checkpoint", weights, "--config", sam + "/light_hq_sam_tiny.yaml", "--image", image, "--box", "10,8,70,60",
            "--multimask", "--out", directory + "/light.h5",
        ]).run()
        let logits = try HDF5File(path: directory + "/light.h5", mode: .read).read(
            "/low_res_logits", expectingShape: [1, 1, 16, 16])
        let reference = try HDF5File(path: sam + "/light_hq_sam_tiny.h5", mode: .read).read("/box/multi_sum/low_res")
        let scale = reference.scalars.map(abs).max()!
        #expect(zip(logits.scalars, reference.scalars).map { abs($0 - $1) }.max()! / scale < 1e-3)
    }

    @Test func masksSkipFinishedImagesAndShard() throws {
        let images = directory + "/images"
        try FileManager.default.createDirectory(atPath: images, withIntermediateDirectories: true)
        let png = try imagePNG()
        for name in ["a", "b", "c"] { try FileManager.default.copyItem(atPath: png, toPath: "\(images)/\(name).png") }
        let common = [
            "--checkpoint", sam + "/sam_tiny.pth", "--config", sam + "/sam_tiny.yaml", "--images", images,
            "--points-per-side", "4", "--pred-iou-thresh", "0", "--stability-score-thresh", "0", "--out", directory + "/masks",
        ]
        try SAMCommand.Masks.parse(common + ["--shard", "1/2"]).run()
        #expect(Set(try FileManager.default.contentsOfDirectory(atPath: directory + "/masks")) == ["b.json", "provenance.json"])
        let first = try Data(contentsOf: URL(fileURLWithPath: directory + "/masks/b.json"))
        try FileManager.default.removeItem(atPath: directory + "/masks/b.json")
        try "[]".write(toFile: directory + "/masks/b.json", atomically: true, encoding: .utf8)  // a finished image stays as it is
        try SAMCommand.Masks.parse(common).run()
        #expect(
            Set(try FileManager.default.contentsOfDirectory(atPath: directory + "/masks")) == [
                "a.json", "b.json", "c.json", "provenance.json",
            ])
        #expect(try String(contentsOfFile: directory + "/masks/b.json", encoding: .utf8) == "[]")
        // The same image gives the same masks (scores may move in the last bits with the thread count other tests set).
        func masks(_ data: Data) throws -> [String] {
            let records = try #require(try JSONSerialization.jsonObject(with: data) as? [[String: Any]])
            return records.map {
                "\(($0["segmentation"] as? [String: Any])?["counts"] ?? "") \($0["area"] ?? "") \($0["bbox"] ?? "")"
            }
        }
        #expect(try masks(Data(contentsOf: URL(fileURLWithPath: directory + "/masks/a.json"))) == masks(first))
        #expect(throws: ValidationError.self) { try SAMCommand.Masks.parse(common + ["--shard", "2/2"]).run() }
    }

    @Test func weightsThatWouldRunCodeOrAreNotSAMAreRefusedByName() throws {
        let image = try imagePNG()
        let evil = Self.fixtures + "/pth/evil_os_system.pth"
        #expect {
            try SAMCommand.Embed.parse(["--checkpoint", evil, "--image", image, "--out", directory + "/x.h5"]).run()
        } throws: { error in
            error.localizedDescription.contains(evil) && error.localizedDescription.contains("os.system")
        }
        let deeplab = Self.fixtures + "/converted_deeplab.h5"
        #expect {
            try SAMCommand.Embed.parse(["--checkpoint", deeplab, "--image", image, "--out", directory + "/x.h5"]).run()
        } throws: { error in
            error.localizedDescription.contains(deeplab)
        }
        #expect(!FileManager.default.fileExists(atPath: directory + "/x.h5"))
    }

    @Test func pseudoComputesSAMMasksOnceAndPromptsSAMWithBoxes() throws {
        let root = directory + "/synth"
        try Synth.parse(["--out", root, "--train", "3", "--val", "1", "--test", "1", "--size", "48", "--seed", "4"]).run()
        let model = ["--sam-checkpoint", sam + "/sam_tiny.pth", "--sam-config", sam + "/sam_tiny.yaml"]
        let sepl =
            [
                "--root", root, "--split", "train", "--source", "sepl", "--seeds", root + "/SegmentationClass", "--proposals",
                "sam",
                "--points-per-side", "4", "--pred-iou-thresh", "0", "--stability-score-thresh", "0", "--out", directory + "/sepl",
            ] + model
        try Pseudo.parse(sepl).run()
        let cache = directory + "/sepl/sam_masks"
        let ids = try String(contentsOfFile: root + "/ImageSets/Segmentation/train.txt", encoding: .utf8).split(separator: "\n")
            .map(String.init)
        #expect(
            Set(try FileManager.default.contentsOfDirectory(atPath: cache)) == Set(ids.map { $0 + ".json" } + ["provenance.json"])
        )
        for id in ids { #expect(FileManager.default.fileExists(atPath: "\(directory)/sepl/\(id).png")) }
        // A rerun reuses the cached masks, untouched.
        let stamp = try FileManager.default.attributesOfItem(atPath: "\(cache)/\(ids[0]).json")[.modificationDate] as? Date
        try Pseudo.parse(sepl).run()
        #expect(try FileManager.default.attributesOfItem(atPath: "\(cache)/\(ids[0]).json")[.modificationDate] as? Date == stamp)
        // Other generator settings never reuse these masks: refused naming the setting, and with
        // --overwrite the old masks are moved aside and every image recomputed.
        let denser = sepl.map { $0 == "4" ? "5" : $0 }
        #expect { try Pseudo.parse(denser).run() } throws: { error in
            error.localizedDescription.contains("points_per_side: 4 → 5") && error.localizedDescription.contains("--overwrite")
        }
        try Pseudo.parse(denser + ["--overwrite"]).run()
        let recorded = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: cache + "/provenance.json")))
                as? [String: String])
        #expect(recorded["points_per_side"] == "5")
        #expect(try FileManager.default.attributesOfItem(atPath: "\(cache)/\(ids[0]).json")[.modificationDate] as? Date != stamp)
        #expect(
            try FileManager.default.contentsOfDirectory(atPath: directory + "/sepl").contains {
                $0.hasPrefix("sam_masks.replaced-")
            })
        // The label folder records what made it.
        let made = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: directory + "/sepl/provenance.json")))
                as? [String: String])
        #expect(made["source"] == "sepl" && made["pseudo.proposals"] == "sam" && made["made_by"] == "wsss pseudo")
        // Under the recipe's key names, the generator's settings included (a changed one is seen).
        #expect(made["sam.points_per_side"] == "5" && made["pseudo.mask_share"] == "0.5")
        // Boxes from the seeds' components, each prompted into SAM.
        try Pseudo.parse(
            [
                "--root", root, "--split", "train", "--source", "boxes", "--seeds", root + "/SegmentationClass", "--out",
                directory + "/boxes",
            ] + model
        ).run()
        for id in ids { #expect(FileManager.default.fileExists(atPath: "\(directory)/boxes/\(id).png")) }
        #expect(throws: ValidationError.self) {
            try Pseudo.parse([
                "--root", root, "--split", "train", "--source", "sepl", "--seeds", root + "/SegmentationClass", "--proposals",
                "sam", "--out", directory + "/x",
            ]).run()
        }
    }
}
