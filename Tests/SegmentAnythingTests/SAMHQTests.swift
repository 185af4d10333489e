import Autograd
import Foundation
import HDF5
import Testing
import TorchCheckpoint

@testable import SegmentAnything

/// SAM-HQ against the official `segment_anything_hq` package on a reduced model with random
/// float16 weights (Tests/Fixtures/sam/sam_hq_tiny.*, scripts/fixtures/make_sam_hq_fixtures.py).
@Suite struct SAMHQTests {
    static func model() throws -> SAM {
        try SAMWeights.load(
            SAMFixtures.path("sam_hq_tiny.pth"),
            configuration: try SAMConfiguration.load(path: SAMFixtures.path("sam_hq_tiny.yaml")))
    }

    static func outputs() throws -> HDF5File { try HDF5File(path: SAMFixtures.path("sam_hq_tiny.h5"), mode: .read) }

    @Test func encoderKeepsTheFirstGlobalBlock() throws {
        let predictor = SAMPredictor(model: try Self.model())
        try predictor.setImage(try SAMFixtures.image(try SAMFixtures.encoder(), "image"))
        let file = try Self.outputs()
        expectClose(try #require(predictor.intermediateFeatures), try file.read("encoder/first_global"), "first global block")
        expectClose(try #require(predictor.features), try file.read("encoder/embedding"), "embedding")
    }

    @Test(arguments: ["point", "box"])
    func predictorMatchesTheReference(_ name: String) throws {
        try Self.expectReferencePredictions(model: try Self.model(), file: try Self.outputs(), prompt: name, side: 32)
    }

    /// The predictor on the fixture image against an HQ fixture's `<prompt>/<multi|single>_<sum|hq>`
    /// groups: one [side, side] mask per prompt, logits within 1e-3 of the reference's scale, IoU
    /// within 1e-4 (random weights predict IoUs near 0: compared absolutely, as the SAM tests do).
    static func expectReferencePredictions(model: SAM, file: HDF5File, prompt name: String, side: Int) throws {
        let predictor = SAMPredictor(model: model)
        try predictor.setImage(try SAMFixtures.image(try SAMFixtures.encoder(), "image"))
        for multimask in [true, false] {
            for hqOnly in [false, true] {
                predictor.hqTokenOnly = hqOnly
                let result =
                    name == "point"
                    ? try predictor.predict(points: [(x: 60, y: 30)], labels: [1], multimaskOutput: multimask)
                    : try predictor.predict(box: (x0: 10, y0: 8, x1: 70, y1: 60), multimaskOutput: multimask)
                let group = "\(name)/\(multimask ? "multi" : "single")_\(hqOnly ? "hq" : "sum")"
                let low = result.lowResLogits, iou = result.iouPredictions
                #expect(low.shape == [1, side, side], "\(group): one mask per prompt")
                expectClose(low.reshaped(to: [1] + low.shape), try file.read("\(group)/low_res"), tolerance: 1e-3, group)
                let expectedIoU = try file.read("\(group)/iou").scalars
                #expect(
                    zip(iou.scalars, expectedIoU).allSatisfy { abs($0 - $1) < 1e-4 },
                    "\(group): IoU \(iou.scalars) vs \(expectedIoU)")
            }
        }
    }

    @Test func configurationIsReadOffTheShapes() throws {
        let checkpoint = try TorchCheckpoint(path: SAMFixtures.path("sam_hq_tiny.pth"))
        let inferred = try SAMConfiguration.inferred(
            fromShapes: checkpoint.tensorShapes, path: checkpoint.path, decoderNumHeads: 2)
        #expect(inferred == (try SAMConfiguration.load(path: SAMFixtures.path("sam_hq_tiny.yaml"))))
    }

    /// Our SAM-HQ ViT-B declares the official `sam_model_registry["vit_b"]` keys of segment_anything_hq.
    @Test func fullModelKeysAreTheOfficialOnes() throws {
        var configuration = SAMConfiguration.vitB
        configuration.hq = true
        let ours = SAM(configuration: configuration).stateDictShapes
        let official = try SAMFixtures.keys("vit_b_hq")
        #expect(ours.map(\.name) == official.map(\.name))
        #expect(zip(ours, official).allSatisfy { $0.0.shape == $0.1.shape })
    }
}

extension SAMHQTests {
    /// The automatic mask generator runs on SAM-HQ as the official one does: one mask per point
    /// (with every candidate kept, at most one record per point of the grid).
    @Test func generatorTakesOneMaskPerPoint() throws {
        let predictor = SAMPredictor(model: try Self.model())
        var options = AutomaticMaskGeneratorOptions()
        (options.pointsPerSide, options.predIoUThresh, options.stabilityScoreThresh, options.boxNMSThresh) = (4, 0, 0, 1)
        let generator = try AutomaticMaskGenerator(predictor: predictor, options: options)
        let records = try generator.generate(try SAMFixtures.image(try SAMFixtures.encoder(), "image"))
        let direct = try (0..<16).map { i -> Float in
            try predictor.predict(points: [(x: Float(i % 4) * 25 + 12.5, y: Float(i / 4) * 18.75 + 9.375)], labels: [1])
                .iouPredictions.scalars[0]
        }
        #expect(!records.isEmpty && records.count <= 16)
        // Each record's predicted IoU is its point's single HQ prediction.
        for record in records {
            #expect(direct.contains { abs($0 - Float(record.predictedIoU)) < 1e-4 }, "IoU \(record.predictedIoU)")
        }
    }
}

extension SAMHQTests {
    /// The generator's path (`MaskDecoder.predictHQNeeded`: IoU token first, the HQ hypernetwork
    /// folded into `embedding_maskfeature`'s last convolution, the image features made once)
    /// gives `predictHQ`'s IoUs, and its masks for every prompt above the threshold; the others
    /// are left zero. On SAM-HQ and light HQ-SAM, multimask or not, HQ token alone or summed.
    @Test(arguments: ["vit", "tiny_vit"])
    func thresholdedDecodingMatchesTheFullDecoder(_ encoder: String) throws {
        let model = encoder == "vit" ? try Self.model() : try LightHQSAMTests.model()
        let predictor = SAMPredictor(model: model)
        try predictor.setImage(try SAMFixtures.image(try SAMFixtures.encoder(), "image"))
        let count = 12
        let coordinates = (0..<count).flatMap { i -> [Float] in [Float(i % 4) * 15 + 5, Float(i / 4) * 14 + 6] }
        let points = PointPrompts(
            coordinates: Tensor(shape: [count, 1, 2], values: coordinates), labels: Array(repeating: 1, count: count))
        for multimask in [true, false] {
            for hqOnly in [false, true] {
                predictor.hqTokenOnly = hqOnly
                let full = predictor.decode(points: points, multimask: multimask)
                let scores = full.iou.scalars
                #expect(full.lowRes.shape[0] == count && full.lowRes.shape[1] == 1)
                // About half pass; midway between two predictions, so the rounding of the two
                // paths' IoUs (within 1e-5) cannot move a prompt across it.
                let sorted = scores.sorted()
                let threshold = (sorted[count / 2 - 1] + sorted[count / 2]) / 2
                #expect(sorted[count / 2] - sorted[count / 2 - 1] > 1e-4, "\(encoder): tied IoUs")
                let fast = predictor.decode(points: points, multimask: multimask, iouThreshold: threshold)
                let label = "\(encoder) multimask \(multimask) hq only \(hqOnly)"
                #expect(fast.lowRes.shape == full.lowRes.shape, "\(label)")
                #expect(zip(fast.iou.scalars, scores).allSatisfy { abs($0 - $1) < 1e-5 }, "\(label): IoU")
                let plane = full.lowRes.count / count
                let (a, b) = (fast.lowRes.scalars, full.lowRes.scalars)
                let scale = b.map(abs).max()!
                var kept = 0
                for p in 0..<count {
                    let rows = (p * plane)..<((p + 1) * plane)
                    if scores[p] > threshold {
                        kept += 1
                        let error = rows.map { abs(a[$0] - b[$0]) }.max()!
                        #expect(error < 1e-4 * scale, "\(label): prompt \(p) differs by \(error) (scale \(scale))")
                    } else {
                        #expect(rows.allSatisfy { a[$0] == 0 }, "\(label): prompt \(p) below the threshold is not zero")
                    }
                }
                #expect(kept > 0 && kept < count, "\(label): \(kept) of \(count) kept")
            }
        }
    }
}
