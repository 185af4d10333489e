import Autograd
import Foundation
import HDF5
import Testing
import TorchCheckpoint

@testable import SegmentAnything

/// The assembled model against the official package (fixtures: scripts/fixtures/make_sam_fixtures.py).
@Suite struct SamTests {
    /// Our module tree declares exactly the official state_dict keys and shapes, in order. The
    /// weights are allocated but never touched, so even ViT-H costs no resident memory here.
    @Test(arguments: [
        ("vit_b", SAMConfiguration.vitB), ("vit_l", .vitL), ("vit_h", .vitH), ("vit_t", .mobileSAM),
        ("vit_t_hq", SAMConfiguration.mobileSAM.withHQ),
    ])
    func keysEqualTheOfficialStateDict(name: String, configuration: SAMConfiguration) throws {
        let official = try SAMFixtures.keys(name)
        let ours = SAM(configuration: configuration).stateDictShapes
        #expect(ours.map(\.name) == official.map(\.name), "\(name): key lists differ")
        let misshaped = zip(ours, official).filter { $0.0.name == $0.1.name && $0.0.shape != $0.1.shape }
        #expect(
            misshaped.isEmpty,
            "\(name): shapes differ: \(misshaped.prefix(3).map { "\($0.0.name) \($0.0.shape) vs \($0.1.shape)" })")
    }

    /// ViT-B's encoder is about 0.94 TFLOP at 1024² (12 blocks of 28.9 G multiply-adds in
    /// products, four global attentions of 25.8 G, eight windowed ones of 1.5 G); ViT-H about 5.9.
    @Test func encoderFLOPsFollowTheArchitecture() throws {
        let b = try #require(SAMConfiguration.vitB.encoderFLOPs), h = try #require(SAMConfiguration.vitH.encoderFLOPs)
        #expect(abs(b / 0.9417e12 - 1) < 1e-3, "ViT-B: \(b)")
        #expect(h > 5.5e12 && h < 6.5e12, "ViT-H: \(h)")
        #expect(SAMConfiguration.mobileSAM.encoderFLOPs == nil)
    }

    @Test func tinyKeysEqualTheFixtureWeights() throws {
        let reader = try HDF5StateDict(path: SAMFixtures.weightsHDF5)
        let ours = SAM(configuration: try SAMFixtures.configuration()).stateDictShapes
        #expect(Dictionary(uniqueKeysWithValues: ours.map { ($0.name, $0.shape) }) == reader.tensorShapes)
    }

    @Test(arguments: [
        ("vit_b", SAMConfiguration.vitB), ("vit_l", .vitL), ("vit_h", .vitH), ("vit_t", .mobileSAM),
        ("vit_t_hq", SAMConfiguration.mobileSAM.withHQ),
    ])
    func configurationInferredFromOfficialShapes(name: String, configuration: SAMConfiguration) throws {
        let shapes = Dictionary(uniqueKeysWithValues: try SAMFixtures.keys(name).map { ($0.name, $0.shape) })
        #expect(try SAMConfiguration.inferred(fromShapes: shapes, path: "\(name).pth") == configuration)
    }

    @Test func tinyConfigurationInferredFromItsWeights() throws {
        let reader = try HDF5StateDict(path: SAMFixtures.weightsHDF5)
        // The decoder's head count is the one size no tensor shape records.
        let tiny = try SAMFixtures.configuration()
        #expect(
            try SAMConfiguration.inferred(
                fromShapes: reader.tensorShapes, path: reader.path, decoderNumHeads: tiny.decoderNumHeads) == tiny)
        let model = try SAM.loaded(from: reader, decoderNumHeads: tiny.decoderNumHeads)
        #expect(model.configuration == tiny)
    }

    @Test func shapesOfNoSAMAreRefusedByName() {
        #expect {
            try SAMConfiguration.inferred(fromShapes: ["conv1.weight": [64, 3, 7, 7]], path: "resnet.pth")
        } throws: { error in
            error.localizedDescription == "resnet.pth: not a Segment Anything checkpoint: no tensor 'image_encoder.pos_embed'"
        }
    }

    @Test func loadingRefusesMissingUnexpectedAndMisshapedKeysInOneError() throws {
        let reader = try HDF5StateDict(path: SAMFixtures.weightsHDF5)
        var tensors = try Dictionary(uniqueKeysWithValues: reader.tensorShapes.keys.map { ($0, try reader.tensor(named: $0)) })
        tensors["mask_decoder.iou_token.weight"] = nil
        tensors["mask_decoder.extra.weight"] = Tensor(zeros: [2])
        tensors["image_encoder.pos_embed"] = Tensor(zeros: [1, 4, 4, 32])
        let model = SAM(configuration: try SAMFixtures.configuration())
        #expect {
            try model.load(from: MemoryStateDict(path: "broken.pth", tensors: tensors))
        } throws: { error in
            guard case .mismatch(let path, let missing, let unexpected, let misshaped) = error as? SAMWeightsError else {
                return false
            }
            let text = error.localizedDescription
            return path == "broken.pth" && missing == ["mask_decoder.iou_token.weight"]
                && unexpected == ["mask_decoder.extra.weight"]
                && misshaped == ["image_encoder.pos_embed [1, 4, 4, 32] vs [1, 8, 8, 32]"] && text.hasPrefix("broken.pth: ")
                && text.contains("missing mask_decoder.iou_token.weight") && text.contains("unexpected mask_decoder.extra.weight")
        }
    }

    @Test func loadingFillsEveryTensorWithTheFileValues() throws {
        let model = try SAMFixtures.model()
        let file = try HDF5File(path: SAMFixtures.weightsHDF5, mode: .read)
        for (name, tensor) in model.stateDict() {
            #expect(tensor.scalars == (try file.read("/parameters/" + name)).scalars, "\(name)")
        }
    }

    @Test func hdf5ReaderNamesTheFileItCannotUse() throws {
        #expect(throws: HDF5Error.self) { try HDF5StateDict(path: "/nonexistent/sam.h5") }
        // An HDF5 file without /parameters or /buffers.
        #expect(throws: SAMWeightsError.noTensors(path: SAMFixtures.path("sam_tiny_masks.h5"))) {
            try HDF5StateDict(path: SAMFixtures.path("sam_tiny_masks.h5"))
        }
    }

    @Test func preprocessNormalisesAndPadsBottomRight() throws {
        let model = try SAMFixtures.model()
        let file = try SAMFixtures.encoder()
        let resized = try SAMFixtures.image(file, "resized")
        let x = Tensor(shape: [1, resized.height, resized.width, 3], values: resized.pixels.map(Float.init)).permuted([
            0, 3, 1, 2,
        ])
        expectClose(model.preprocess(x), try file.read("encoder/input"), tolerance: 1e-6, "preprocess")
    }

    /// sam.py's batched `forward` gives what SamPredictor gives for the same prompt.
    @Test func forwardOverImagesMatchesThePredictorsReference() throws {
        let model = try SAMFixtures.model()
        let (encoderFile, file) = (try SAMFixtures.encoder(), try SAMFixtures.outputs())
        let resized = try SAMFixtures.image(encoderFile, "resized")
        let image = Tensor(shape: [resized.height, resized.width, 3], values: resized.pixels.map(Float.init)).permuted([2, 0, 1])
        let b = try file.read("cases/box/box")
        let box = ResizeLongestSide(targetLength: 64).applyBoxes(
            [(Double(b[0]), Double(b[1]), Double(b[2]), Double(b[3]))], originalSize: (75, 100))[0]
        let boxes = Tensor(shape: [1, 4], values: [Float(box.x0), Float(box.y0), Float(box.x1), Float(box.y1)])
        let input = SAM.Input(image: image, originalSize: (75, 100), boxes: boxes)
        let outputs = model([input, input], multimaskOutput: true)
        #expect(outputs.count == 2)
        for output in outputs {
            let lowRes = try file.read("cases/box/multi/low_res")
            expectClose(output.lowResLogits, lowRes.reshaped(to: [1] + lowRes.shape), "forward low-res logits")
            let masks = try file.read("cases/box/multi/masks")
            expectMasksAgree(output.masks, masks.reshaped(to: [1] + masks.shape), "forward masks")
        }
    }

    @Test func postprocessCropsThePaddingAndResizesToTheOriginal() throws {
        let model = try SAMFixtures.model()
        // A ramp along x at 32x32 (the decoder's resolution): after upscaling to 64, cropping to
        // 48x64 and resizing to 75x100, rows stay equal and x still increases.
        let ramp = Tensor(shape: [1, 1, 32, 32], values: (0..<1024).map { Float($0 % 32) })
        let y = model.postprocessMasks(ramp, inputSize: (48, 64), originalSize: (75, 100))
        #expect(y.shape == [1, 1, 75, 100])
        #expect(y[0, 0, 0, 10] == y[0, 0, 74, 10] && y[0, 0, 0, 10] < y[0, 0, 0, 90])
    }

    @Test(arguments: [(48, 64, 75, 100), (64, 40, 64, 40), (64, 64, 64, 64), (30, 64, 20, 43)])
    func postprocessEqualsTheComposedReference(_ sizes: (Int, Int, Int, Int)) throws {
        let model = try SAMFixtures.model()
        var g = SeededGenerator(seed: 8)
        let masks = Tensor.randomNormal([2, 3, 16, 16], using: &g)
        let input = (sizes.0, sizes.1), original = (sizes.2, sizes.3)
        let y = withoutGrad { model.postprocessMasks(masks, inputSize: input, originalSize: original) }
        let reference = withoutGrad { model.postprocessMasksPlain(masks, inputSize: input, originalSize: original) }
        #expect(y.shape == reference.shape)
        #expect(y.scalars == reference.scalars)
    }
}

/// The official `.pth` of the tiny model (torch.save of its state_dict) loads to the same values.
@Suite struct TorchCheckpointLoadingTests {
    @Test func pthAndHDF5CopiesLoadTheSameModel() throws {
        let checkpoint = try TorchCheckpoint(path: SAMFixtures.path("sam_tiny.pth"))
        let fromPth = SAM(configuration: try SAMFixtures.configuration())
        try fromPth.load(from: checkpoint)
        let fromHDF5 = try SAMFixtures.model()
        for ((name, a), (_, b)) in zip(fromPth.stateDict(), fromHDF5.stateDict()) {
            #expect(a.scalars == b.scalars, "\(name)")
        }
        let tiny = try SAMFixtures.configuration()
        #expect(try SAM.loaded(from: checkpoint, decoderNumHeads: tiny.decoderNumHeads).configuration == tiny)
    }
}

/// Weights a model must not run on are refused by name (issue 26): NaN or ±inf anywhere (one
/// gives an all-NaN embedding), and integer or boolean tensors (cast to float without a word).
@Suite struct SAMUnusableWeightsTests {
    /// The fixture weights with one tensor altered or reported as stored otherwise.
    final class Altered: StateDictReader {
        let base: HDF5StateDict
        let poisoned: String?
        let integer: String?
        init(poisoned: String? = nil, integer: String? = nil) throws {
            base = try HDF5StateDict(path: SAMFixtures.weightsHDF5)
            (self.poisoned, self.integer) = (poisoned, integer)
        }
        var path: String { "altered.pth" }
        var tensorShapes: [String: [Int]] { base.tensorShapes }
        func tensor(named name: String) throws -> Tensor {
            let t = try base.tensor(named: name)
            if name == poisoned { t.storage.base[0] = .infinity }
            return t
        }
        func isStoredAsFloat(_ name: String) -> Bool { name != integer }
    }

    @Test func aNonFiniteWeightIsRefusedByName() throws {
        let name = "image_encoder.patch_embed.proj.weight"
        #expect { try SAM.loaded(from: try Altered(poisoned: name)) } throws: { error in
            guard case SAMWeightsError.unusableValues(_, let nonFinite, _) = error else { return false }
            return nonFinite == [name] && error.localizedDescription.contains("NaN or infinite")
        }
    }

    @Test func anIntegerTensorIsRefusedByName() throws {
        let name = "mask_decoder.iou_token.weight"
        #expect { try SAM.loaded(from: try Altered(integer: name)) } throws: { error in
            guard case SAMWeightsError.unusableValues(_, _, let notFloat) = error else { return false }
            return notFloat == [name] && error.localizedDescription.contains("integer or boolean")
        }
    }

    @Test func configurationsBeyondAnyModelAreRefusedBeforeAllocating() throws {
        var c = SAMConfiguration.vitB
        c.imageSize = 1_000_000
        #expect { try c.validate(path: "big.yaml") } throws: { error in
            error.localizedDescription.contains("'image_size' must be at most 4096")
        }
        c = .vitB
        c.encoderEmbedDim = 8192
        c.encoderDepth = 256
        c.encoderNumHeads = 8
        #expect { try c.validate(path: "wide.yaml") } throws: { error in
            error.localizedDescription.contains("encoder alone needs")
        }
    }
}
