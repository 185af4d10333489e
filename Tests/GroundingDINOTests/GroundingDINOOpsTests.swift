import Autograd
import HDF5
import Testing

@testable import GroundingDINO

/// The pieces of the official code one by one (ops.h5, written by make_gdino_fixtures.py).
@Suite struct GroundingDINOOpsTests {
    /// BiAttentionBlock with padding on both sides, and with logits beyond the ±50000 clamps (a
    /// row that falls to uniform attention): outputs and input gradients.
    @Test(arguments: ["masked", "clamped"])
    func fusionBlockMatchesTheOfficialCode(_ name: String) throws {
        let file = try GDINOFixtures.file("ops.h5")
        let group = "/bi_attention/\(name)"
        let block = BiAttentionBlock(imageDim: 8, textDim: 6, embedDim: 8, heads: 2)
        try loadWeights(block, from: file, group: "/bi_attention/masked/weights")
        if name == "clamped" {
            // The fixture scales these two weights by 600 to push the logits past the clamps.
            for p in [block.vProj.weight, block.lProj.weight] { p.assign(from: withoutGrad { p * 600 }) }
        }
        let v = try file.read("\(group)/v").requiringGrad(), l = try file.read("\(group)/l").requiringGrad()
        let imagePadding = try file.readBytes("\(group)/attention_mask_v").bytes.map { $0 != 0 }
        let textPadding = try file.readBytes("\(group)/attention_mask_l").bytes.map { $0 != 0 }
        // The inference path (no tape, strided heads) first, then the recorded one with gradients.
        let fast = withoutGrad { block(v: v, l: l, imagePadding: imagePadding, textPadding: textPadding) }
        #expect(relativeError(fast.v, try file.read("\(group)/out_v")) < 1e-5, "\(name): out_v without a tape")
        #expect(relativeError(fast.l, try file.read("\(group)/out_l")) < 1e-5, "\(name): out_l without a tape")
        let (outV, outL) = block(v: v, l: l, imagePadding: imagePadding, textPadding: textPadding)
        #expect(relativeError(outV, try file.read("\(group)/out_v")) < 1e-5, "\(name): out_v")
        #expect(relativeError(outL, try file.read("\(group)/out_l")) < 1e-5, "\(name): out_l")
        let y = Tensor.concat([outV.reshaped(to: [outV.count]), outL.reshaped(to: [outL.count])], alongAxis: 0)
        y.backward(gradient: try file.read("\(group)/dy"))
        #expect(relativeError(try #require(v.grad), try file.read("\(group)/dv")) < 1e-4, "\(name): dv")
        #expect(relativeError(try #require(l.grad), try file.read("\(group)/dl")) < 1e-4, "\(name): dl")
    }

    @Test func sineEncodingsMatchTheOfficialCode() throws {
        let file = try GDINOFixtures.file("ops.h5")
        // PositionEmbeddingSineHW, 8 features, on the unpadded image of the fixture's batch 0.
        let mask = try file.readBytes("/sine/position_embedding_sine_hw/mask")
        let expected = try file.read("/sine/position_embedding_sine_hw/y")
        let (h, w) = (mask.shape[1], mask.shape[2])
        let batch = (0..<mask.shape[0]).first { k in mask.bytes[(k * h * w)..<((k + 1) * h * w)].allSatisfy { $0 == 0 } }
        let k = try #require(batch, "the fixture has no unpadded image")
        let plane = expected.slice(alongAxis: 0, k..<(k + 1))
        #expect(relativeError(SineEncoding.image(height: h, width: w, count: 8), plane) < 1e-6)
        // Text positions.
        let ids = try file.readLabels("/sine/text_position/position_ids").values.map(Int.init)
        #expect(relativeError(SineEncoding.text(positionIDs: [ids], count: 256), try file.read("/sine/text_position/y")) < 1e-5)
        // Boxes and points (128 features per coordinate, order y, x, w, h).
        for d in [2, 4] {
            let pos = try file.read("/sine/gen_sineembed_for_position_\(d)/pos")
            let y = SineEncoding.boxes(pos.reshaped(to: [pos.count / d, d]), count: 128)
            #expect(
                relativeError(
                    y.reshaped(to: [pos.count / d, 1, 128 * d]), try file.read("/sine/gen_sineembed_for_position_\(d)/y")) < 1e-5)
        }
    }

    /// Proposals of a level wider than 50 cells: its first and last columns are invalid (+∞, memory zeroed).
    @Test func encoderProposalsMatchTheOfficialCode() throws {
        let file = try GDINOFixtures.file("ops.h5")
        let shapes = try file.readLabels("/gen_encoder_output_proposals/wide/spatial_shapes").values.map(Int.init)
        let levels = stride(from: 0, to: shapes.count, by: 2).map { (height: shapes[$0], width: shapes[$0 + 1]) }
        let (proposals, valid) = GroundingDINO.proposals(levels)
        let expected = try file.read("/gen_encoder_output_proposals/wide/output_proposals")
        #expect(proposals.shape == expected.shape)
        var worst = 0.0
        for (a, b) in zip(proposals.scalars, expected.scalars) {
            if b.isInfinite { #expect(a == b) } else { worst = max(worst, Double(abs(a - b))) }
        }
        #expect(worst < 1e-5)
        let memory = try file.read("/gen_encoder_output_proposals/wide/memory")
        let kept = memory * Tensor(shape: [1, valid.count, 1], values: valid.map { $0 ? 1 : 0 })
        #expect(relativeError(kept, try file.read("/gen_encoder_output_proposals/wide/output_memory")) == 0)
    }

    @Test func inverseSigmoidMatchesTheOfficialCode() throws {
        let file = try GDINOFixtures.file("ops.h5")
        let x = try file.read("/inverse_sigmoid/case/x")
        #expect(relativeError(GroundingDINO.inverseSigmoid(x), try file.read("/inverse_sigmoid/case/y")) < 1e-6)
    }
}
