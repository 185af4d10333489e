import Autograd
import Testing

/// Parity fixtures: scripts/fixtures/make_transformer_op_fixtures.py, attention_cases,
/// rel_pos_cases and decomposed_cases (torch F.scaled_dot_product_attention and
/// segment_anything image_encoder.py get_rel_pos / add_decomposed_rel_pos).
@Suite struct AttentionTests {
    static let file = OpFixtures.transformer

    @Test(arguments: try OpFixtures.cases("rel_pos", file: file).map(\.name))
    func relativePositionsMatchSAM(_ name: String) throws {
        let fixture = try OpFixtures.Case("/rel_pos/\(name)", file: Self.file)
        let (q, k) = (try fixture.int("query_size"), try fixture.int("key_size"))
        try expectParity(fixture, inputs: ["table"], caseName: name) { t in
            Tensor.relativePositions(t[0], querySize: q, keySize: k)
        }
    }

    @Test(arguments: try OpFixtures.cases("decomposed_rel_pos", file: file).map(\.name))
    func decomposedRelativePositionMatchesSAM(_ name: String) throws {
        let fixture = try OpFixtures.Case("/decomposed_rel_pos/\(name)", file: Self.file)
        let qs = (h: try fixture.int("query_h"), w: try fixture.int("query_w"))
        let ks = (h: try fixture.int("key_h"), w: try fixture.int("key_w"))
        try expectParity(fixture, inputs: ["query", "table_h", "table_w"], caseName: name) { t in
            let bias = Tensor.decomposedRelativePosition(query: t[0], tableHeight: t[1], tableWidth: t[2], querySize: qs, keySize: ks)
            return Tensor.concat([bias.height.reshaped(to: [-1]), bias.width.reshaped(to: [-1])], alongAxis: 0)
        }
    }

    /// The composed path with gradients, and the fused kernel (forward only) on the same case.
    @Test(arguments: try OpFixtures.cases("attention", file: file).map(\.name))
    func attentionMatchesPyTorch(_ name: String) throws {
        let fixture = try OpFixtures.Case("/attention/\(name)", file: Self.file)
        let scale = Float(try fixture.double("scale"))
        let names = ["query", "key", "value"] + (fixture.has("height") ? ["height", "width"] : fixture.has("table_h") ? ["table_h", "table_w"] : [])
        let op = { (t: [Tensor]) -> Tensor in
            try! Self.attention(fixture, t, scale: scale)
        }
        try expectParity(fixture, inputs: names, caseName: name, op)
        let inputs = try names.map { try fixture.tensor($0) }
        let fused = withoutGrad { op(inputs) }
        expectClose(fused, try fixture.tensor("y"), tolerance: Tolerance.forward, "\(name) fused")
    }

    /// The fixture's computation from its inputs: plain, given bias tables, SAM rel-pos tables,
    /// or a windowed block with padding.
    static func attention(_ fixture: OpFixtures.Case, _ t: [Tensor], scale: Float) throws -> Tensor {
        if fixture.has("window_size") {
            let ws = try fixture.int("window_size")
            let (h, w, c) = (t[0].shape[1], t[0].shape[2], t[0].shape[3])
            var padded = (height: 0, width: 0)
            let parts = t[0..<3].map { x -> Tensor in
                let (windows, size) = x.windowPartitioned(windowSize: ws)
                padded = size
                return windows.reshaped(to: [-1, ws * ws, c])
            }
            let bias = Tensor.decomposedRelativePosition(query: parts[0], tableHeight: t[3], tableWidth: t[4], querySize: (ws, ws), keySize: (ws, ws))
            let y = Tensor.scaledDotProductAttention(query: parts[0], key: parts[1], value: parts[2], scale: scale, relativePosition: bias)
            return Tensor.windowUnpartitioned(y.reshaped(to: [-1, ws, ws, c]), windowSize: ws, paddedSize: padded, size: (h, w))
        }
        guard t.count == 5 else { return Tensor.scaledDotProductAttention(query: t[0], key: t[1], value: t[2], scale: scale) }
        let qs = (h: try fixture.int("query_h"), w: try fixture.int("query_w"))
        let ks = (h: try fixture.int("key_h"), w: try fixture.int("key_w"))
        let bias =
            fixture.has("height")
            ? RelativePositionBias(height: t[3], width: t[4], querySize: qs, keySize: ks)
            : Tensor.decomposedRelativePosition(query: t[0], tableHeight: t[3], tableWidth: t[4], querySize: qs, keySize: ks)
        return Tensor.scaledDotProductAttention(query: t[0], key: t[1], value: t[2], scale: scale, relativePosition: bias)
    }
}
