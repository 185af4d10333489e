import Autograd
import Foundation
import HDF5
import Testing
import TorchCheckpoint

@testable import SegmentAnything

/// MobileSAM (TinyViT + SAM's decoder) against the official `mobile_sam` code on a reduced model
/// with random float16 weights: Tests/Fixtures/sam/mobile_sam_tiny.*, written by
/// scripts/fixtures/make_mobile_sam_fixtures.py.
@Suite struct MobileSAMTests {
    static func outputs() throws -> HDF5File { try HDF5File(path: SAMFixtures.path("mobile_sam_tiny.h5"), mode: .read) }

    /// The official file, read directly (float16 tensors, batch-norm counters as integers).
    static func model() throws -> SAM {
        try SAMWeights.load(
            SAMFixtures.path("mobile_sam_tiny.pt"),
            configuration: try SAMConfiguration.load(path: SAMFixtures.path("mobile_sam_tiny.yaml")))
    }

    @Test func everyStageMatchesTheReference() throws {
        let model = try Self.model()
        let encoder = try #require(model.imageEncoder as? TinyViT)
        let file = try Self.outputs()
        let predictor = SAMPredictor(model: model)
        try predictor.setImage(try SAMFixtures.image(try SAMFixtures.encoder(), "image"))
        let input = withoutGrad { () -> Tensor in
            // The predictor's own input: the resized image, normalised and padded.
            let resized = predictor.transform.applyImage(try! SAMFixtures.image(try! SAMFixtures.encoder(), "image").rgb())
            let x = Tensor(
                shape: [1, resized.height, resized.width, 3], values: resized.pixels.map(Float.init)
            ).permuted([0, 3, 1, 2])
            return model.preprocess(x)
        }
        try withoutGrad {
            let patches = encoder.patchEmbed(input)
            expectClose(patches, try file.read("encoder/patch_embed"), "patch_embed")
            var tokens = encoder.convLayer(patches)
            expectClose(tokens, try file.read("encoder/layer_0"), "layer 0 (MBConv, merging)")
            for (i, stage) in encoder.basicLayers.enumerated() {
                tokens = stage(tokens)
                expectClose(tokens, try file.read("encoder/layer_\(i + 1)"), "layer \(i + 1)")
            }
            expectClose(encoder(input), try file.read("encoder/neck"), "image embedding")
            expectClose(try #require(predictor.features), try file.read("encoder/neck"), "predictor features")
        }
    }

    @Test(arguments: ["point", "box"])
    func predictorMatchesTheReference(_ name: String) throws {
        let model = try Self.model()
        let file = try Self.outputs()
        let predictor = SAMPredictor(model: model)
        try predictor.setImage(try SAMFixtures.image(try SAMFixtures.encoder(), "image"))
        let result =
            name == "point"
            ? try predictor.predict(points: [(x: 60, y: 30)], labels: [1], multimaskOutput: true)
            : try predictor.predict(box: (x0: 10, y0: 8, x1: 70, y1: 60), multimaskOutput: true)
        let lowRes = result.lowResLogits
        expectClose(
            lowRes.reshaped(to: [1] + lowRes.shape), try file.read("predictor/\(name)/low_res"), tolerance: 1e-3,
            "\(name) low-res logits")
        let iou = result.iouPredictions
        expectClose(iou.reshaped(to: [1] + iou.shape), try file.read("predictor/\(name)/iou"), tolerance: 1e-3, "\(name) IoU")
    }

    /// The shapes alone give the YAML's configuration, but for the input side and stage 0's head
    /// count (an MBConv stage: no attention), which no shape holds.
    @Test func configurationIsReadOffTheShapes() throws {
        let checkpoint = try TorchCheckpoint(path: SAMFixtures.path("mobile_sam_tiny.pt"))
        var inferred = try SAMConfiguration.inferred(
            fromShapes: checkpoint.tensorShapes, path: checkpoint.path, decoderNumHeads: 2)
        #expect(inferred.imageSize == 1024)
        #expect(inferred.tinyViT?.numHeads[0] == TinyViTConfiguration().numHeads[0])
        inferred.imageSize = 64
        inferred.tinyViT?.numHeads[0] = 1
        #expect(inferred == (try SAMConfiguration.load(path: SAMFixtures.path("mobile_sam_tiny.yaml"))))
    }
}

/// bf16 inference of the image encoder (every product) against fp32, on the reduced SAM and
/// MobileSAM (AVX512-BF16 where the CPU has it, else the AVX2 or portable kernel: the same sums).
@Suite struct BF16InferenceTests {
    static func compare(_ model: SAM, _ name: String) throws -> (embedding: Float, logits: Float, iou: Float) {
        let image = try SAMFixtures.image(try SAMFixtures.encoder(), "image")
        func run() throws -> (Tensor, Tensor) {
            let predictor = SAMPredictor(model: model)
            try predictor.setImage(image)
            let out = try predictor.predict(points: [(x: 60, y: 30)], labels: [1], multimaskOutput: true, returnLogits: true)
            return (try #require(predictor.features), out.masks)
        }
        model.precision = .fp32
        let (e32, m32) = try run()
        model.precision = .bf16
        let (e16, m16) = try run()
        model.precision = .fp32
        func relative(_ a: Tensor, _ b: Tensor) -> Float {
            let (x, y) = (a.scalars, b.scalars)
            let diff = zip(x, y).reduce(Float(0)) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }
            return (diff / max(y.reduce(Float(0)) { $0 + $1 * $1 }, 1e-30)).squareRoot()
        }
        let (a, b) = (m16.scalars.map { $0 > 0 }, m32.scalars.map { $0 > 0 })
        let union = zip(a, b).filter { $0 || $1 }.count, both = zip(a, b).filter { $0 && $1 }.count
        let iou = union == 0 ? 1 : Float(both) / Float(union)
        return (relative(e16, e32), relative(m16, m32), iou)
    }

    @Test func reducedSAMStaysCloseToFP32() throws {
        let error = try Self.compare(try SAMFixtures.model(), "reduced SAM")
        #expect(error.embedding > 0 && error.embedding < 0.01, "bf16 changes the embedding, by about bf16's precision")
        #expect(error.logits < 0.01 && error.iou >= 0.99)
    }

    @Test func reducedMobileSAMStaysCloseToFP32() throws {
        let error = try Self.compare(try MobileSAMTests.model(), "reduced MobileSAM")
        #expect(error.embedding > 0 && error.embedding < 0.01)
        #expect(error.logits < 0.01 && error.iou >= 0.99)
    }

    /// Packed weights follow a reload; fp32 drops them.
    @Test func weightsArePackedAgainAfterLoading() throws {
        let model = try SAMFixtures.model()
        model.precision = .bf16
        let linear = try #require((model.imageEncoder as? ImageEncoderViT)?.blocks[0].attn.qkv)
        let before = try #require(linear.packedBF16)
        try model.load(from: HDF5StateDict(path: SAMFixtures.weightsHDF5))
        #expect(linear.packedBF16 !== before)
        model.precision = .fp32
        #expect(linear.packedBF16 == nil)
    }
}
