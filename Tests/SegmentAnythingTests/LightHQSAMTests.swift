import Autograd
import Foundation
import HDF5
import Testing
import TorchCheckpoint

@testable import SegmentAnything

/// Light HQ-SAM (`sam_hq_vit_tiny.pth`: MobileSAM's TinyViT with SAM-HQ's decoder fed by TinyViT's
/// stage 1) against the official `segment_anything_hq` package on a reduced model: MobileSAM's
/// reduced weights (mobile_sam_tiny.pt) plus the HQ ones and the reference outputs in
/// light_hq_sam_tiny.h5 (scripts/fixtures/make_light_hq_sam_fixtures.py).
@Suite struct LightHQSAMTests {
    /// Two weight files read as one (the fixture keeps only the HQ weights beyond MobileSAM's).
    struct Merged: StateDictReader {
        let first: any StateDictReader, second: any StateDictReader
        var path: String { first.path + " + " + second.path }
        var tensorShapes: [String: [Int]] { first.tensorShapes.merging(second.tensorShapes) { a, _ in a } }
        func tensor(named name: String) throws -> Tensor {
            try (first.tensorShapes[name] != nil ? first : second).tensor(named: name)
        }
        func isStoredAsFloat(_ name: String) -> Bool {
            (first.tensorShapes[name] != nil ? first : second).isStoredAsFloat(name)
        }
    }

    static func outputs() throws -> HDF5File { try HDF5File(path: SAMFixtures.path("light_hq_sam_tiny.h5"), mode: .read) }

    static func model() throws -> SAM {
        let model = SAM(configuration: try SAMConfiguration.load(path: SAMFixtures.path("light_hq_sam_tiny.yaml")))
        try model.load(
            from: Merged(
                first: try TorchCheckpoint(path: SAMFixtures.path("mobile_sam_tiny.pt")),
                second: try HDF5StateDict(path: SAMFixtures.path("light_hq_sam_tiny.h5"))))
        return model
    }

    @Test func encoderKeepsStageOne() throws {
        let predictor = SAMPredictor(model: try Self.model())
        try predictor.setImage(try SAMFixtures.image(try SAMFixtures.encoder(), "image"))
        let file = try Self.outputs()
        let early = try #require(predictor.intermediateFeatures)
        #expect(early.shape == [1, 4, 4, 16])
        expectClose(early, try file.read("encoder/early"), "stage 1 (interm_embeddings[0])")
        expectClose(try #require(predictor.features), try file.read("encoder/embedding"), "embedding")
    }

    @Test(arguments: ["point", "box"])
    func predictorMatchesTheReference(_ name: String) throws {
        try SAMHQTests.expectReferencePredictions(model: try Self.model(), file: try Self.outputs(), prompt: name, side: 16)
    }

    /// `SAM.callAsFunction` (sam.py's batched `forward`) decodes SAM-HQ with its HQ token, as the
    /// predictor does: before, it ran the plain decoder on SAM-HQ weights (other tokens in the
    /// attention, no HQ mask) without a word.
    @Test func batchedForwardUsesTheHQDecoder() throws {
        let model = try Self.model()
        let image = try SAMFixtures.image(try SAMFixtures.encoder(), "image")
        let predictor = SAMPredictor(model: model)
        try predictor.setImage(image)
        let expected = try predictor.predict(box: (x0: 10, y0: 8, x1: 70, y1: 60), multimaskOutput: true)
        let resized = predictor.transform.applyImage(image)
        let pixels = Tensor(shape: [resized.height, resized.width, 3], values: resized.pixels.map(Float.init))
        let box = predictor.transform.applyBoxes([(10, 8, 70, 60)], originalSize: (image.height, image.width))[0]
        let input = SAM.Input(
            image: pixels.permuted([2, 0, 1]), originalSize: (image.height, image.width),
            boxes: Tensor(shape: [1, 4], values: [Float(box.x0), Float(box.y0), Float(box.x1), Float(box.y1)]))
        let output = try #require(model([input], multimaskOutput: true).first)
        #expect(output.lowResLogits.shape == [1, 1, 16, 16])
        expectClose(output.lowResLogits, expected.lowResLogits.reshaped(to: [1, 1, 16, 16]), tolerance: 1e-5, "logits")
        #expect(abs(output.iouPredictions.scalars[0] - expected.iouPredictions.scalars[0]) < 1e-5)
        let reference = try Self.outputs().read("box/multi_sum/low_res")
        expectClose(output.lowResLogits, reference, tolerance: 1e-3, "against segment_anything_hq")
    }

    @Test func namedConfigurationIsTheFullModel() throws {
        let c = try #require(SAMConfiguration.named.first { $0.name == "vit_tiny_hq" }?.configuration)
        #expect(c.hq && c.tinyViT == .mobileSAM && c.hqFeatureWidth == 160)
        #expect(SAM(configuration: c).maskDecoder.hq != nil)
    }
}
