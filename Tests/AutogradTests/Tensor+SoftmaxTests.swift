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
