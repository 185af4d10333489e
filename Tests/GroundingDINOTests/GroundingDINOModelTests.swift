import Autograd
import Foundation
import HDF5
import Imaging
import Testing
import TorchCheckpoint

@testable import GroundingDINO

/// The tiny model of scripts/fixtures/gdino_tiny.py (random weights, the official checkpoint
/// layout) against the official code's outputs, stage by stage (tiny_outputs.h5; intermediate
/// results stored as float16, so compared at 3e-3 of their scale).
@Suite struct GroundingDINOModelTests {
    static func model() throws -> GroundingDINO {
        try GroundingDINOWeights.load(
            GDINOFixtures.path("tiny_model.pth"),
            overrides: try GroundingDINOConfiguration.overrides(GDINOFixtures.path("tiny_config.yaml")))
    }

    static func tokenizer() throws -> BertTokenizer {
        try BertTokenizer(vocabularyFile: GDINOFixtures.path("bert_tiny/vocab.txt"))
    }

    @Test func thePromptGivesTheOfficialIDsMasksAndPositions() throws {
        let file = try GDINOFixtures.file("tiny_outputs.h5")
        guard case .string(let raw)? = try file.attribute(named: "raw_caption", on: "/text") else {
            Issue.record("no raw caption")
            return
        }
        let caption = TokenizedPrompt.normalizedCaption(raw)
        #expect(caption == "person . potted plant . tv monitor . dog.")
        let prompt = TokenizedPrompt(caption: caption, tokenizer: try Self.tokenizer())
        #expect(prompt.ids == (try file.readLabels("/text/input_ids").values.map(Int.init)))
        #expect(prompt.positionIDs == (try file.readLabels("/text/position_ids").values.map(Int.init)))
        #expect(prompt.selfAttention == (try file.readBytes("/text/text_self_attention_masks").bytes.map { $0 != 0 }))
        let phrases = try file.readBytes("/text/cate_to_token_mask").bytes.map { $0 != 0 }
        let t = prompt.ids.count
        #expect(prompt.phraseTokens.count == phrases.count / t)
        for (k, range) in prompt.phraseTokens.enumerated() {
            #expect((0..<t).filter { phrases[k * t + $0] } == Array(range))
        }
    }

    @Test func theTokenizerPromptMasksMatchOnEveryPrompt() throws {
        let file = try GDINOFixtures.file("tokenizer.h5")
        let tokenizer = try Self.tokenizer()
        for name in ["voc_three", "voc_all", "question_mark"] {
            let ids = try file.readLabels("/prompts/\(name)/input_ids").values.map(Int.init)
            let prompt = TokenizedPrompt(ids: ids, specialTokens: [101, 102, 1012, 1029])
            #expect(prompt.positionIDs == (try file.readLabels("/prompts/\(name)/position_ids").values.map(Int.init)), "\(name)")
            #expect(
                prompt.selfAttention == (try file.readBytes("/prompts/\(name)/text_self_attention_masks").bytes.map { $0 != 0 }),
                "\(name)")
        }
        _ = tokenizer
    }

    @Test func theImageTransformIsTheOfficialOne() throws {
        let file = try GDINOFixtures.file("tiny_outputs.h5")
        let sizes = try file.readLabels("/image/resize_sizes").values.map(Int.init)
        for row in stride(from: 0, to: sizes.count, by: 6) {
            let (w, h, size, maximum) = (sizes[row], sizes[row + 1], sizes[row + 2], sizes[row + 3])
            let out = GroundingDINOTransform.resizedSize(
                width: w, height: h, size: size, maximumSize: maximum < 0 ? nil : maximum)
            #expect(out.height == sizes[row + 4] && out.width == sizes[row + 5], "\(w)x\(h) at \(size)/\(maximum)")
        }
        let source = try file.readBytes("/image/source")
        let resized = try file.readBytes("/image/resized")
        let image = Image(width: source.shape[1], height: source.shape[0], channels: 3, pixels: source.bytes)
        let (h, w) = GroundingDINOTransform.resizedSize(width: image.width, height: image.height, size: 64, maximumSize: 90)
        #expect(h == resized.shape[0] && w == resized.shape[1])
        #expect(image.resizedLikePIL(height: h, width: w).pixels == resized.bytes)
    }

    @Test func everyStageMatchesTheOfficialModel() throws {
        let model = try Self.model()
        let file = try GDINOFixtures.file("tiny_outputs.h5")
        let resized = try file.readBytes("/image/resized")
        let image = GroundingDINOTransform.normalized(
            Image(width: resized.shape[1], height: resized.shape[0], channels: 3, pixels: resized.bytes))
        let prompt = TokenizedPrompt(caption: "person . potted plant . tv monitor . dog.", tokenizer: try Self.tokenizer())
        var trace: GroundingDINOTrace? = GroundingDINOTrace()
        let output = withoutGrad { model.forward(image: image, prompt: prompt, trace: &trace) }
        let t = try #require(trace)
        func close(_ a: Tensor?, _ name: String, _ tolerance: Double = 3e-3) throws {
            let expected = try file.read(name)
            guard let a else {
                Issue.record("\(name): not computed")
                return
            }
            let error = relativeError(a.reshaped(to: expected.shape), expected)
            #expect(error < tolerance, "\(name): relative error \(error)")
        }
        try close(t.encodedText, "/text/encoded_text")
        for k in 0..<3 { try close(t.backboneFeatures[k], "/backbone/feature_\(k)") }
        for k in 0..<4 { try close(t.projected[k], "/backbone/src_\(k)") }
        try close(t.memory, "/encoder/memory")
        try close(t.memoryText, "/encoder/memory_text")
        #expect(t.topk == (try file.readLabels("/two_stage/topk_proposals").values.map(Int.init)))
        for k in 0..<3 { try close(t.references[k].reshaped(to: [1, 20, 4]), "/decoder/reference_\(k)", 1e-4) }
        for k in 0..<2 { try close(t.decoderOutputs[k], "/decoder/layer_\(k)_output") }
        try close(output.logits, "/outputs/pred_logits", 1e-4)
        try close(output.boxes, "/outputs/pred_boxes", 1e-4)
    }
}

extension GroundingDINOModelTests {
    /// The official `predict` on the tiny model: kept queries, scores, boxes and phrases, with and
    /// without `remove_combined`, at two text thresholds.
    @Test(arguments: ["predict", "predict_low_text_threshold"])
    func predictGivesTheOfficialBoxesAndPhrases(_ group: String) throws {
        let file = try GDINOFixtures.file("tiny_outputs.h5")
        func attribute(_ name: String) throws -> HDF5Attribute? { try file.attribute(named: name, on: "/" + group) }
        let boxThreshold = try #require(try attribute("box_threshold")?.doubleValue)
        let textThreshold = try #require(try attribute("text_threshold")?.doubleValue)
        let resized = try file.readBytes("/image/resized")
        let image = Image(width: resized.shape[1], height: resized.shape[0], channels: 3, pixels: resized.bytes)
        let kept = try file.readLabels("/\(group)/kept_queries").values.map(Int.init)
        let scores = try file.read("/\(group)/scores").scalars
        let boxes = try file.read("/\(group)/boxes").scalars
        for removeCombined in [false, true] {
            var options = GroundingOptions(
                boxThreshold: boxThreshold, textThreshold: textThreshold, removeCombined: removeCombined)
            // The fixture's image is already at the model's size (the official transform at 64 / 90).
            (options.size, options.maximumSize) = (64, 90)
            let detector = GroundingDetector(model: try Self.model(), tokenizer: try Self.tokenizer(), options: options)
            guard case .string(let raw)? = try file.attribute(named: "raw_caption", on: "/text"),
                case .string(let json)? = try attribute(removeCombined ? "remove_combined_phrases" : "phrases"),
                let phrases = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String]
            else {
                Issue.record("\(group): attributes missing")
                return
            }
            let found = detector.detect(in: image, caption: raw)
            #expect(found.map(\.query) == kept, "\(group)")
            #expect(found.map(\.phrase) == phrases, "\(group), remove_combined \(removeCombined)")
            for (k, box) in found.enumerated() where k < scores.count {
                #expect(abs(box.score - Double(scores[k])) < 1e-5)
                let (cx, cy, w, h) = (
                    Double(boxes[4 * k]), Double(boxes[4 * k + 1]), Double(boxes[4 * k + 2]), Double(boxes[4 * k + 3])
                )
                let expected = [(cx - w / 2) * 90, (cy - h / 2) * 60, (cx + w / 2) * 90, (cy + h / 2) * 60]
                let actual = [box.box.0, box.box.1, box.box.2, box.box.3]
                #expect(zip(actual, expected).allSatisfy { abs($0 - $1) < 1e-3 }, "\(actual) vs \(expected)")
            }
        }
    }
}
