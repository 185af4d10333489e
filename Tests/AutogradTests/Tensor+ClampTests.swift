import Autograd
import Foundation
import Testing

@Suite struct ClampSigmoidTests {
    @Test func clampValuesAndGradient() {
        let x = Tensor(shape: [5], values: [-3, -1, 0, 1, 3]).requiringGrad()
        let y = x.clamped(min: -1, max: 2)
        #expect(y.scalars == [-1, -1, 0, 1, 2])
        y.backward(gradient: Tensor(repeating: 1, shape: [5]))
        // torch.clamp passes the gradient at the bounds themselves.
        #expect(x.grad?.scalars == [0, 1, 1, 1, 0])
        #expect(x.clamped(min: 0).scalars == [0, 0, 0, 1, 3] && x.clamped(max: 0).scalars == [-3, -1, 0, 0, 0])
    }

    @Test func clampFiniteDifferences() {
        // Values away from the bounds (the kinks).
        let x = Tensor(shape: [2, 3], values: [-2.3, -0.4, 0.2, 0.7, 1.6, 2.9])
        checkGradients([x]) { t in t[0].clamped(min: -1, max: 1.2) }
    }

    @Test func sigmoidValuesAndFiniteDifferences() {
        let x = Tensor(shape: [4], values: [-30, 0, 2, .infinity])
        let y = x.sigmoid().scalars
        #expect(abs(y[0] - Float(1 / (1 + exp(30.0)))) < 1e-18 && y[1] == 0.5 && abs(y[2] - 0.880797) < 1e-6 && y[3] == 1)
        checkGradients([randn([3, 4], seed: 5, scale: 2)]) { t in t[0].sigmoid() }
    }
}
