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
            let bias = Tensor.decomposedRelativePosition(
                query: t[0], tableHeight: t[1], tableWidth: t[2], querySize: qs, keySize: ks)
            return Tensor.concat([bias.height.reshaped(to: [-1]), bias.width.reshaped(to: [-1])], alongAxis: 0)
        }
    }

    /// The composed path with gradients, and the fused kernel (forward only) on the same case.
    @Test(arguments: try OpFixtures.cases("attention", file: file).map(\.name))
    func attentionMatchesPyTorch(_ name: String) throws {
        let fixture = try OpFixtures.Case("/attention/\(name)", file: Self.file)
        let setup = try Setup(fixture)
        try expectParity(fixture, inputs: setup.inputs, caseName: name, setup.run)
        let inputs = try setup.inputs.map { try fixture.tensor($0) }
        let fused = withoutGrad { setup.run(inputs) }
        expectClose(fused, try fixture.tensor("y"), tolerance: Tolerance.forward, "\(name) fused")
    }

    @Test func finiteDifferences() {
        let (b, qs, ks, d) = (2, (h: 2, w: 3), (h: 3, w: 2), 3)
        let inputs = [
            randn([b, qs.h * qs.w, d], seed: 1), randn([b, ks.h * ks.w, d], seed: 2), randn([b, ks.h * ks.w, 2], seed: 3),
            randn([b, qs.h, qs.w, ks.h], seed: 4), randn([b, qs.h, qs.w, ks.w], seed: 5),
        ]
        checkGradients(inputs) { t in
            Tensor.scaledDotProductAttention(
                query: t[0], key: t[1], value: t[2], scale: 0.6,
                relativePosition: RelativePositionBias(height: t[3], width: t[4], querySize: qs, keySize: ks))
        }
        // Tables resized (5 → 5 rows is exact for height, 4 → 5 interpolates width).
        checkGradients([inputs[0], randn([5, d], seed: 6), randn([4, d], seed: 7)]) { t in
            let bias = Tensor.decomposedRelativePosition(
                query: t[0], tableHeight: t[1], tableWidth: t[2], querySize: qs, keySize: ks)
            return Tensor.concat([bias.height.reshaped(to: [-1]), bias.width.reshaped(to: [-1])], alongAxis: 0)
        }
        checkGradients([randn([4, 3], seed: 8)]) { t in Tensor.relativePositions(t[0], querySize: 5, keySize: 3) }
    }

    /// The fused kernel against the composed oracle with tiles that do not divide L or S, a
    /// non-square rel-pos grid and large scores (the running maximum must rescale the sums).
    @Test(arguments: [(16, 32), (7, 5), (64, 512), (100, 1)])
    func fusedMatchesComposed(_ tiles: (query: Int, key: Int)) {
        let (b, qs, ks, d, dv) = (3, (h: 7, w: 10), (h: 10, w: 13), 8, 5)
        let (l, s) = (qs.h * qs.w, ks.h * ks.w)
        let q = randn([b, l, d], seed: 11, scale: 2), k = randn([b, s, d], seed: 12, scale: 2), v = randn([b, s, dv], seed: 13)
        let bias = RelativePositionBias(
            height: randn([b, qs.h, qs.w, ks.h], seed: 14, scale: 3), width: randn([b, qs.h, qs.w, ks.w], seed: 15, scale: 3),
            querySize: qs, keySize: ks)
        let expected = withoutGrad {
            Tensor.scaledDotProductAttention(
                query: q, key: k, value: v, scale: 1.5, relativePosition: bias, implementation: .composed)
        }
        let y = Tensor(uninitialized: [b, l, dv])
        Kernels.fusedAttention(
            q: q.storage.base, k: k.storage.base, v: v.storage.base, out: y.storage.base, batch: b, queries: l, keys: s,
            depth: d, valueDepth: dv, scale: 1.5,
            relativePosition: RelativePositionTables(
                height: bias.height.storage.base, width: bias.width.storage.base, keyHeight: ks.h, keyWidth: ks.w),
            queryTile: tiles.query, keyTile: tiles.key)
        expectClose(y, expected, tolerance: 1e-5, "fused tiles \(tiles)")
        let automatic = withoutGrad {
            Tensor.scaledDotProductAttention(query: q, key: k, value: v, scale: 1.5, relativePosition: bias)
        }
        expectClose(automatic, expected, tolerance: 1e-5, "automatic without grad")
    }

    /// Queries of batch 2 shared by 3·2 key sets: fused and composed equal attention on the
    /// explicitly repeated queries (batch i reads query i mod 2), and gradients reach the shared query.
    @Test func sharedQueriesEqualRepeatedOnes() {
        let q = randn([2, 9, 4], seed: 31), k = randn([6, 5, 4], seed: 32), v = randn([6, 5, 3], seed: 33)
        let repeated = Tensor.concat([q, q, q], alongAxis: 0)
        let expected = withoutGrad {
            Tensor.scaledDotProductAttention(query: repeated, key: k, value: v, scale: 0.7, implementation: .composed)
        }
        for implementation in [AttentionImplementation.fused, .composed] {
            let y = withoutGrad {
                Tensor.scaledDotProductAttention(query: q, key: k, value: v, scale: 0.7, implementation: implementation)
            }
            expectClose(y, expected, tolerance: 1e-6, "shared queries \(implementation)")
        }
        checkGradients([randn([1, 3, 2], seed: 34), randn([2, 4, 2], seed: 35), randn([2, 4, 2], seed: 36)]) { t in
            Tensor.scaledDotProductAttention(query: t[0], key: t[1], value: t[2], scale: 1)
        }
    }

    @Test func recordingUsesTheComposedPath() {
        let q = randn([1, 4, 2], seed: 21).requiringGrad(), k = randn([1, 3, 2], seed: 22), v = randn([1, 3, 2], seed: 23)
        let y = Tensor.scaledDotProductAttention(query: q, key: k, value: v, scale: 1)
        #expect(y.tape().map(\.name).contains("softmax"))
        let plain = withoutGrad { Tensor.scaledDotProductAttention(query: q, key: k, value: v, scale: 1) }
        #expect(plain.tape().isEmpty)
    }

    /// A fixture's computation from its inputs: plain, given bias tables, SAM rel-pos tables,
    /// or a windowed block with padding (window_partition → attention → window_unpartition).
    struct Setup {
        var inputs = ["query", "key", "value"]
        var scale: Float
        var windowSize: Int?
        var querySize = (h: 0, w: 0), keySize = (h: 0, w: 0)
        var tables = false, directBias = false

        init(_ fixture: OpFixtures.Case) throws {
            scale = Float(try fixture.double("scale"))
            windowSize = try? fixture.int("window_size")
            directBias = fixture.has("height")
            tables = fixture.has("table_h")
            if directBias { inputs += ["height", "width"] }
            if tables { inputs += ["table_h", "table_w"] }
            if (directBias || tables) && windowSize == nil {
                querySize = (try fixture.int("query_h"), try fixture.int("query_w"))
                keySize = (try fixture.int("key_h"), try fixture.int("key_w"))
            }
        }

        func run(_ t: [Tensor]) -> Tensor {
            if let ws = windowSize {
                let (h, w, c) = (t[0].shape[1], t[0].shape[2], t[0].shape[3])
                var padded = (height: 0, width: 0)
                let parts = t[0..<3].map { x -> Tensor in
                    let (windows, size) = x.windowPartitioned(windowSize: ws)
                    padded = size
                    return windows.reshaped(to: [-1, ws * ws, c])
                }
                let bias = Tensor.decomposedRelativePosition(
                    query: parts[0], tableHeight: t[3], tableWidth: t[4], querySize: (ws, ws), keySize: (ws, ws))
                let y = Tensor.scaledDotProductAttention(
                    query: parts[0], key: parts[1], value: parts[2], scale: scale, relativePosition: bias)
                return Tensor.windowUnpartitioned(
                    y.reshaped(to: [-1, ws, ws, c]), windowSize: ws, paddedSize: padded, size: (h, w))
            }
            var bias: RelativePositionBias?
            if directBias { bias = RelativePositionBias(height: t[3], width: t[4], querySize: querySize, keySize: keySize) }
            if tables {
                bias = Tensor.decomposedRelativePosition(
                    query: t[0], tableHeight: t[3], tableWidth: t[4], querySize: querySize, keySize: keySize)
            }
            return Tensor.scaledDotProductAttention(query: t[0], key: t[1], value: t[2], scale: scale, relativePosition: bias)
        }
    }
}
