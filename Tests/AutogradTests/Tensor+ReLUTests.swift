import Autograd
import Testing

@Suite struct ReLUTests {
    @Test func matchesPyTorch() throws {
        try expectParity(try OpFixtures.Case("/relu/nchw"), inputs: ["x"], caseName: "relu") { t in t[0].relu() }
    }

    @Test func finiteDifferences() {
        // Values at least 0.1 from the kink at 0, more than the step ε.
        let x = Tensor(shape: [2, 5], values: [-1.2, 0.3, 0.5, -0.4, 2, 0.15, -0.2, 1.1, -3, 0.7])
        checkGradients([x]) { t in t[0].relu() }
    }

    @Test func gradientAtZeroIsZero() {
        let x = Tensor(shape: [3], values: [0, 1, -1]).requiringGrad()
        x.relu().sum().backward()
        #expect(x.grad?.scalars == [0, 1, 0])
    }
}
