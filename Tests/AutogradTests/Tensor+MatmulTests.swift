import Autograd
import Testing

/// Parity fixtures: scripts/fixtures/make_transformer_op_fixtures.py, matmul_cases and linear_cases.
@Suite struct MatmulTests {
    @Test(arguments: try OpFixtures.cases("matmul", file: OpFixtures.transformer).map(\.name))
    func matmulMatchesPyTorch(_ name: String) throws {
        let fixture = try OpFixtures.Case("/matmul/\(name)", file: OpFixtures.transformer)
        let (ta, tb) = (try fixture.int("transpose_a") != 0, try fixture.int("transpose_b") != 0)
        try expectParity(fixture, inputs: ["a", "b"], caseName: name) { t in
            Tensor.matmul(t[0], t[1], transposeA: ta, transposeB: tb)
        }
    }

    @Test(arguments: try OpFixtures.cases("linear", file: OpFixtures.transformer).map(\.name))
    func linearMatchesPyTorch(_ name: String) throws {
        let fixture = try OpFixtures.Case("/linear/\(name)", file: OpFixtures.transformer)
        let names = fixture.has("bias") ? ["x", "weight", "bias"] : ["x", "weight"]
        try expectParity(fixture, inputs: names, caseName: name) { t in
            Tensor.linear(t[0], weight: t[1], bias: t.count > 2 ? t[2] : nil)
        }
    }

    @Test(arguments: [(false, false), (true, false), (false, true), (true, true)])
    func finiteDifferences(_ transpose: (a: Bool, b: Bool)) {
        let a = randn(transpose.a ? [2, 4, 3] : [2, 3, 4], seed: 1)
        let b = randn(transpose.b ? [2, 5, 4] : [2, 4, 5], seed: 2)
        checkGradients([a, b]) { t in Tensor.matmul(t[0], t[1], transposeA: transpose.a, transposeB: transpose.b) }
        let shared = randn(transpose.b ? [5, 4] : [4, 5], seed: 3)
        checkGradients([a, shared]) { t in Tensor.matmul(t[0], t[1], transposeA: transpose.a, transposeB: transpose.b) }
    }

    @Test func linearFiniteDifferences() {
        checkGradients([randn([2, 3, 4], seed: 4), randn([5, 4], seed: 5), randn([5], seed: 6)]) { t in
            Tensor.linear(t[0], weight: t[1], bias: t[2])
        }
    }

    /// Many small batches run on several threads; the result must not depend on the split.
    @Test func manySmallBatchesMatchOneByOne() {
        let a = randn([64, 3, 5], seed: 7), b = randn([64, 5, 2], seed: 8)
        let y = withoutGrad { Tensor.matmul(a, b) }
        for i in [0, 17, 63] {
            let one = withoutGrad {
                Tensor.matmul(
                    a.slice(alongAxis: 0, i..<(i + 1)).reshaped(to: [3, 5]),
                    b.slice(alongAxis: 0, i..<(i + 1)).reshaped(to: [5, 2]))
            }
            expectClose(y.slice(alongAxis: 0, i..<(i + 1)).reshaped(to: [3, 2]), one, tolerance: 1e-6, "batch \(i)")
        }
    }

    /// The tape-free feed-forward (blocks of rows, each block's two products on one thread) equals
    /// the composed ops: 1000 rows of a 2048-wide hidden layer run as four blocks of 256.
    @Test(arguments: [FeedForwardActivation.relu, .gelu])
    func feedForwardEqualsTheComposedOps(_ activation: FeedForwardActivation) throws {
        let x = randn([2, 500, 24], seed: 9)
        let (w1, b1, w2, b2) = (
            randn([2048, 24], seed: 10), randn([2048], seed: 11), randn([24, 2048], seed: 12), randn([24], seed: 13)
        )
        let composed = withoutGrad {
            let h = Tensor.linear(x, weight: w1, bias: b1)
            return Tensor.linear(activation == .relu ? h.relu() : h.gelu(), weight: w2, bias: b2)
        }
        let fused = try #require(
            withoutGrad { Tensor.feedForward(x, weight1: w1, bias1: b1, activation: activation, weight2: w2, bias2: b2) })
        #expect(fused.shape == [2, 500, 24])
        expectClose(fused, composed, tolerance: 1e-5, "feedForward")
        let unbiased = try #require(
            withoutGrad { Tensor.feedForward(x, weight1: w1, bias1: nil, activation: activation, weight2: w2, bias2: nil) })
        let reference = withoutGrad {
            let h = Tensor.linear(x, weight: w1, bias: nil)
            return Tensor.linear(activation == .relu ? h.relu() : h.gelu(), weight: w2, bias: nil)
        }
        expectClose(unbiased, reference, tolerance: 1e-5, "feedForward without biases")
        // With a tape that needs it, the caller composes the recorded ops.
        let weight = randn([2048, 24], seed: 14).requiringGrad()
        #expect(Tensor.feedForward(x, weight1: weight, bias1: b1, activation: activation, weight2: w2, bias2: b2) == nil)
    }
}
