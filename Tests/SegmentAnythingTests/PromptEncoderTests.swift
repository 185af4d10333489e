import Autograd
import Testing

@testable import SegmentAnything

/// PromptEncoder against the official one: the prompts of each fixture case, mapped into the
/// input frame as the predictor maps them.
@Suite struct PromptEncoderTests {
    @Test func densePositionalEncodingMatches() throws {
        let model = try SAMFixtures.model()
        let pe = withoutGrad { model.promptEncoder.densePositionalEncoding() }
        expectClose(pe, try SAMFixtures.encoder().read("encoder/dense_pe"), "dense PE")
    }

    @Test(arguments: SAMFixtures.cases)
    func sparseAndDenseEmbeddingsMatch(name: String) throws {
        let model = try SAMFixtures.model()
        let file = try SAMFixtures.outputs()
        let group = "cases/\(name)"
        // The frame mapping needs only the sizes: 75x100 → 48x64 (no embedding is computed).
        let transform = ResizeLongestSide(targetLength: model.imageSize)
        let original = (height: 75, width: 100)
        var points: PointPrompts?
        if file.contains("\(group)/point_coords") {
            let c = try file.read("\(group)/point_coords")
            let mapped = transform.applyCoords(
                (0..<c.shape[0]).map { (Double(c[$0, 0]), Double(c[$0, 1])) }, originalSize: original)
            let labels = try file.readLabels("\(group)/point_labels").values.map(Int.init)
            points = PointPrompts(
                coordinates: Tensor(shape: [1, mapped.count, 2], values: mapped.flatMap { [Float($0.x), Float($0.y)] }),
                labels: labels)
        }
        var boxes: Tensor?
        if file.contains("\(group)/box") {
            let b = try file.read("\(group)/box")
            let m = transform.applyBoxes([(Double(b[0]), Double(b[1]), Double(b[2]), Double(b[3]))], originalSize: original)[0]
            boxes = Tensor(shape: [1, 4], values: [Float(m.x0), Float(m.y0), Float(m.x1), Float(m.y1)])
        }
        let masks =
            file.contains("\(group)/mask_input") ? try file.read("\(group)/mask_input").reshaped(to: [1, 1, 32, 32]) : nil
        let (sparse, dense) = withoutGrad { model.promptEncoder(points: points, boxes: boxes, masks: masks) }
        expectClose(sparse, try file.read("\(group)/sparse"), "\(name) sparse")
        expectClose(dense, try file.read("\(group)/dense"), "\(name) dense")
    }

    @Test func noPromptGivesOneEmptySparseRowAndTheNoMaskEmbedding() throws {
        let model = try SAMFixtures.model()
        let (sparse, dense) = withoutGrad { model.promptEncoder(points: nil, boxes: nil, masks: nil) }
        #expect(sparse.shape == [1, 0, 32] && dense.shape == [1, 32, 8, 8])
        let noMask = model.promptEncoder.noMaskEmbed.weight
        #expect(dense[0, 5, 3, 7] == noMask[0, 5])
    }

    @Test func aPadPointIsAddedOnlyWithoutABox() throws {
        let model = try SAMFixtures.model()
        let points = PointPrompts(coordinates: Tensor(shape: [2, 1, 2], values: [3, 4, 10, 20]), labels: [1, 0])
        let boxes = Tensor(shape: [2, 4], values: [1, 2, 30, 40, 5, 5, 9, 9])
        withoutGrad {
            #expect(model.promptEncoder(points: points, boxes: nil, masks: nil).sparse.shape == [2, 2, 32])
            #expect(model.promptEncoder(points: points, boxes: boxes, masks: nil).sparse.shape == [2, 3, 32])
        }
    }
}
