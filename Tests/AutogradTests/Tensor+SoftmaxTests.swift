import Autograd
import Testing

@Suite struct SoftmaxTests {
    @Test func softmaxMatchesPyTorch() throws {
        try expectParity(try OpFixtures.Case("/softmax/nchw"), inputs: ["x"], caseName: "softmax") { t in
            t[0].softmax(alongAxis: 1)
        }
    }

    @Test(arguments: try OpFixtures.cases("log_softmax").map(\.name))
    func logSoftmaxMatchesPyTorch(_ name: String) throws {
        try expectParity(try OpFixtures.Case("/log_softmax/\(name)"), inputs: ["x"], caseName: name) { t in
            t[0].logSoftmax(alongAxis: 1)
        }
    }

    @Test func finiteDifferences() {
        let x = randn([2, 4, 2, 3], seed: 1)
        checkGradients([x]) { t in t[0].softmax(alongAxis: 1) }
        checkGradients([x]) { t in t[0].logSoftmax(alongAxis: 1) }
        checkGradients([randn([3, 5], seed: 2)]) { t in t[0].logSoftmax(alongAxis: 0) }
    }

    @Test func largeLogitsStayFinite() {
        let y = withoutGrad { Tensor(shape: [1, 3], values: [1000, 0, -1000]).logSoftmax(alongAxis: 1) }
        #expect(y.scalars.allSatisfy { $0.isFinite })
        #expect(abs(y[0, 0]) < 1e-6)
    }
}

/// Softmax over the last axis as attention uses it. Fixtures:
/// scripts/fixtures/make_transformer_op_fixtures.py, softmax_cases.
@Suite struct SoftmaxLastAxisTests {
    @Test(arguments: try OpFixtures.cases("softmax_last", file: OpFixtures.transformer).map(\.name))
    func matchesPyTorch(_ name: String) throws {
        let fixture = try OpFixtures.Case("/softmax_last/\(name)", file: OpFixtures.transformer)
        try expectParity(fixture, inputs: ["x"], caseName: name) { t in t[0].softmax(alongAxis: t[0].rank - 1) }
    }

    @Test func finiteDifferences() {
        checkGradients([randn([2, 3, 5], seed: 3, scale: 2)]) { t in t[0].softmax(alongAxis: 2) }
    }
}
