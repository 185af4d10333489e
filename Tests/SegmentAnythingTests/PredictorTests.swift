import Autograd
import Foundation
import HDF5
import Imaging
import PseudoLabels
import Testing

@testable import SegmentAnything

/// SAMPredictor end to end against the official SamPredictor: image in, masks out.
@Suite struct PredictorTests {
    static func predictor() throws -> SAMPredictor {
        let predictor = SAMPredictor(model: try SAMFixtures.model())
        try predictor.setImage(try SAMFixtures.image(try SAMFixtures.encoder(), "image"))
        return predictor
    }

    @Test func setImageComputesTheReferenceEmbedding() throws {
        let predictor = try Self.predictor()
        #expect(predictor.originalSize == (75, 100) && predictor.inputSize == (48, 64))
        expectClose(try predictor.imageEmbedding(), try SAMFixtures.encoder().read("encoder/neck"), "image embedding")
    }

    @Test(arguments: SAMFixtures.cases)
    func predictMatchesTheReference(name: String) throws {
        let predictor = try Self.predictor()
        let (file, logitsFile) = (try SAMFixtures.outputs(), try SAMFixtures.maskLogits())
        let group = "cases/\(name)"
        var points: [(x: Float, y: Float)]?, labels: [Int]?, box: (x0: Float, y0: Float, x1: Float, y1: Float)?
        if file.contains("\(group)/point_coords") {
            let c = try file.read("\(group)/point_coords")
            points = (0..<c.shape[0]).map { (c[$0, 0], c[$0, 1]) }
            labels = try file.readLabels("\(group)/point_labels").values.map(Int.init)
        }
        if file.contains("\(group)/box") {
            let b = try file.read("\(group)/box")
            box = (b[0], b[1], b[2], b[3])
        }
        let maskInput = file.contains("\(group)/mask_input") ? try file.read("\(group)/mask_input") : nil
        for (mode, multimask) in [("single", false), ("multi", true)] {
            let p = try predictor.predict(
                points: points, labels: labels, box: box, maskInput: maskInput, multimaskOutput: multimask)
            expectClose(p.lowResLogits, try file.read("\(group)/\(mode)/low_res"), "\(name) \(mode) low-res logits")
            expectClose(p.iouPredictions, try file.read("\(group)/\(mode)/iou"), "\(name) \(mode) IoU")
            expectMasksAgree(p.masks, try file.read("\(group)/\(mode)/masks"), "\(name) \(mode)")
            if logitsFile.contains("\(name)/\(mode)") {
                let logits = try predictor.predict(
                    points: points, labels: labels, box: box, maskInput: maskInput, multimaskOutput: multimask, returnLogits: true
                )
                expectClose(logits.masks, try logitsFile.read("\(name)/\(mode)"), "\(name) \(mode) logits at image size")
                #expect(SAMPredictor.thresholded(logits.masks).scalars == p.masks.scalars)
            }
        }
    }

    @Test func masksAsBitmapsAndSegmentProposals() throws {
        let predictor = try Self.predictor()
        let p = try predictor.predict(
            boxes: [(x0: 5, y0: 5, x1: 50, y1: 40), (x0: 30, y0: 20, x1: 95, y1: 70)], multimaskOutput: true)
        let bitmaps = p.bitmaps(), proposals = p.segmentMasks()
        #expect(bitmaps.count == 6 && proposals.count == 6 && bitmaps[0].count == 75 * 100)
        let masks = p.masks.scalars
        #expect(bitmaps[4].enumerated().allSatisfy { $0.element == (masks[4 * 7500 + $0.offset] > 0.5) })
        #expect(proposals[4].predictedIoU == p.iouPredictions[1, 1])
        // A pixel (x, y) of proposal k is in its bitmap at y · width + x.
        let (x, y) = (40, 30)
        #expect(proposals[4].runs.contains { $0.contains(Int32(x * 75 + y)) } == bitmaps[4][y * 100 + x])
    }

    @Test func batchedBoxesMatchTheReference() throws {
        let predictor = try Self.predictor()
        let file = try SAMFixtures.outputs()
        let b = try file.read("batched_boxes/boxes")
        let boxes = (0..<3).map { (x0: b[$0, 0], y0: b[$0, 1], x1: b[$0, 2], y1: b[$0, 3]) }
        let p = try predictor.predict(boxes: boxes, multimaskOutput: false)
        #expect(p.masks.shape == [3, 1, 75, 100])
        expectClose(p.lowResLogits, try file.read("batched_boxes/low_res"), "batched boxes low-res logits")
        expectClose(p.iouPredictions, try file.read("batched_boxes/iou"), "batched boxes IoU")
        expectMasksAgree(p.masks, try file.read("batched_boxes/masks"), "batched boxes")
    }

    /// The call the automatic mask generator makes (`_process_batch` → `predict_torch`).
    @Test func predictLogitsIsTheMaskGeneratorsCall() throws {
        let predictor = try Self.predictor()
        let file = try SAMFixtures.outputs()
        let c = try file.read("batched_points/points")
        let points = (0..<3).map { (x: c[$0, 0], y: c[$0, 1]) }
        let generator: any PromptablePredictor = predictor
        let (logits, iou) = generator.predictLogits(points: points, labels: [1, 1, 1], multimask: true)
        #expect(logits.shape == [3, 3, 75, 100] && iou.shape == [3, 3])
        expectClose(iou, try file.read("batched_points/iou"), "batched points IoU")
        expectMasksAgree(SAMPredictor.thresholded(logits), try file.read("batched_points/masks"), "batched points")
        let batch = try predictor.predictBatch(
            points: PointPrompts(coordinates: predictor.inputFrame(points).reshaped(to: [3, 1, 2]), labels: [1, 1, 1]),
            boxes: nil,
            maskInput: nil, multimaskOutput: true)
        expectClose(batch.lowResLogits, try file.read("batched_points/low_res"), "batched points low-res logits")
    }

    /// `predictLowResolution` is `predictLogits` before upscaling; with an IoU threshold the
    /// prompts none of whose masks reach it get zero logits and the rest are unchanged.
    @Test func lowResolutionPredictionsSkipPromptsBelowTheIoUThreshold() throws {
        let predictor = try Self.predictor()
        let points: [(x: Float, y: Float)] = (0..<12).map { (k: Int) -> (x: Float, y: Float) in
            (x: Float((8 * k) % 97), y: Float((5 * k) % 73))
        }
        let labels = [Int](repeating: 1, count: points.count)
        let all = try #require(predictor.predictLowResolution(points: points, labels: labels, multimask: true, iouThreshold: nil))
        let (logits, iou) = predictor.predictLogits(points: points, labels: labels, multimask: true)
        #expect(Array(all.logits.shape.prefix(2)) == [12, 3])
        expectClose(all.iou, iou, "IoU of the two paths")
        // Upscaling a plane as the generator does gives predictLogits's plane.
        let size: Int = logits.shape[2] * logits.shape[3]
        let plane: Int = all.logits.shape[2] * all.logits.shape[3]
        let buffer = UnsafeMutablePointer<Float>.allocate(capacity: size + all.upscaling.scratchCount)
        defer { buffer.deallocate() }
        all.upscaling.apply(all.logits.storage.base + 7 * plane, into: buffer, scratch: buffer + size)
        let reference = Array(logits.scalars[(7 * size)..<(8 * size)])
        let upscaled = Array(UnsafeBufferPointer(start: buffer, count: size))
        let largest = zip(reference, upscaled).map { abs($0 - $1) }.max() ?? 0
        #expect(largest <= 1e-4, "upscaled plane differs by \(largest)")

        let scores = iou.scalars
        let best: [Float] = (0..<12).map { (b: Int) -> Float in max(scores[b * 3], scores[b * 3 + 1], scores[b * 3 + 2]) }
        let threshold = best.sorted()[6]
        let some = try #require(
            predictor.predictLowResolution(points: points, labels: labels, multimask: true, iouThreshold: threshold))
        // The IoU token's final attention runs alone here (products over fewer rows): the same
        // IoUs up to rounding, and the skip decided on these.
        expectClose(some.iou, all.iou, tolerance: 1e-6, "IoU with the threshold")
        let someScores = some.iou.scalars
        var (skipped, kept) = (0, 0)
        for b in 0..<12 {
            let mine = some.logits.slice(alongAxis: 0, b..<(b + 1)), full = all.logits.slice(alongAxis: 0, b..<(b + 1))
            if max(someScores[b * 3], someScores[b * 3 + 1], someScores[b * 3 + 2]) > threshold {
                kept += 1
                expectClose(mine, full, "prompt \(b)")
            } else {
                skipped += 1
                #expect(mine.scalars.allSatisfy { $0 == 0 }, "prompt \(b) skipped")
            }
        }
        #expect(skipped >= 6 && kept >= 1)
    }

    @Test func badRequestsThrow() throws {
        let fresh = SAMPredictor(model: SAM(configuration: try SAMFixtures.configuration()))
        #expect(throws: SAMPredictorError.noImage) { try fresh.predict(points: [(1, 1)], labels: [1]) }
        #expect(throws: SAMPredictorError.emptyImage) { try fresh.setImage(Image(width: 0, height: 0, channels: 3)) }
        let predictor = try Self.predictor()
        #expect(throws: SAMPredictorError.labelCount(points: 2, labels: 1)) {
            try predictor.predict(points: [(1, 1), (2, 2)], labels: [1])
        }
        #expect(throws: SAMPredictorError.maskInputShape(got: [1, 16, 16], expected: [1, 32, 32])) {
            try predictor.predict(points: [(1, 1)], labels: [1], maskInput: Tensor(zeros: [1, 16, 16]))
        }
        #expect(throws: SAMPredictorError.emptyBatch) { try predictor.predict(boxes: []) }
        #expect(throws: SAMPredictorError.boxShape([2, 3])) {
            try predictor.predictBatch(points: nil, boxes: Tensor(zeros: [2, 3]), maskInput: nil)
        }
        #expect(throws: SAMPredictorError.batchSizes([1, 2])) {
            try predictor.predictBatch(
                points: PointPrompts(coordinates: Tensor(zeros: [1, 1, 2]), labels: [1]), boxes: Tensor(zeros: [2, 4]),
                maskInput: nil)
        }
    }
}

/// The whole pipeline: our automatic mask generator driving our predictor on the tiny model
/// gives the official SamAutomaticMaskGenerator's masks (Tests/Fixtures/amg/generator_<set>.json,
/// scripts/fixtures/make_amg_fixtures.py, same weights as sam_tiny.pth).
@Suite struct PredictorWithMaskGeneratorTests {
    @Test(arguments: ["single", "crops"])
    func generatorOnOurPredictorFindsTheOfficialMasks(set: String) throws {
        let predictor = SAMPredictor(model: try SAMFixtures.model())
        try expectMatchesOfficialGenerator(predictor: predictor, set: set)
        // And no extra masks: as many records as the official file.
        let options = try JSONDecoder().decode(
            [String: OfficialGeneratorOptions].self,
            from: try #require(FileManager.default.contents(atPath: "\(AMGFixtures.directory)/generator_options.json")))
        let image = try Image.readRGB(from: "\(AMGFixtures.directory)/image_96x72.png")
        let ours = try AutomaticMaskGenerator(predictor: predictor, options: try #require(options[set]).options).generate(image)
        let official = try SA1BProposals.read(path: "\(AMGFixtures.directory)/generator_\(set).json", width: 96, height: 72)
        #expect(ours.count == official.count)
    }
}
