import Autograd
import Testing

/// Fused batch norm + ReLU and residual add + ReLU: the same bits as the ops they replace,
/// forward and every gradient, and central differences of their own.
@Suite struct FusedOpsTests {
    /// Output and the gradients of every input of `f` for one random upstream gradient.
    static func run(_ inputs: [Tensor], _ f: ([Tensor]) -> Tensor) -> (y: [Float], grads: [[Float]?]) {
        let leaves = inputs.map { $0.copy().requiringGrad() }
        let y = f(leaves)
        let weights = randn(y.shape, seed: 99)
        (y * weights).sum().backward()
        return (y.scalars, leaves.map { $0.grad?.scalars })
    }

    /// (training, affine trains): batch statistics; frozen statistics with trained γ, β; all frozen (DeepLab-v2).
    @Test(arguments: [(true, true), (false, true), (false, false)])
    func batchNormReLUEqualsBatchNormThenReLU(training: Bool, affine: Bool) {
        // Frozen statistics: x away from 0 and β = 0 with mean 0, so no ε step crosses ReLU's kink
        // (central differences mean nothing there).
        let x0 = randn([2, 3, 5, 4], seed: 1), w = randn([3], seed: 2)
        let x = training ? x0 : Tensor(shape: x0.shape, values: x0.scalars.map { $0 + ($0 < 0 ? -0.5 : 0.5) })
        let b = training ? randn([3], seed: 3) : Tensor(zeros: [3])
        let mean: Float = training ? 0.1 : 0
        func bn(_ t: [Tensor], relu: Bool) -> Tensor {
            let (weight, bias) = affine ? (t[1], t[2]) : (t[1].detached(), t[2].detached())
            return t[0].batchNorm(
                weight: weight, bias: bias, runningMean: Tensor(repeating: mean, shape: [3]),
                runningVar: Tensor(repeating: 1.5, shape: [3]), training: training, relu: relu)
        }
        let fused = Self.run([x, w, b]) { bn($0, relu: true) }
        let separate = Self.run([x, w, b]) { bn($0, relu: false).relu() }
        #expect(fused.y == separate.y)
        #expect(fused.grads == separate.grads)
        if !affine { #expect(fused.grads[1] == nil && fused.grads[2] == nil) }
        checkGradients(affine ? [x, w, b] : [x], epsilon: 1e-3) { t in affine ? bn(t, relu: true) : bn([t[0], w, b], relu: true) }
    }

    @Test func addingReLUEqualsAddThenReLU() {
        let a = randn([2, 3, 4, 4], seed: 4), b = randn([2, 3, 4, 4], seed: 5)
        let fused = Self.run([a, b]) { $0[0].addingReLU($0[1]) }
        let separate = Self.run([a, b]) { ($0[0] + $0[1]).relu() }
        #expect(fused.y == separate.y && fused.grads == separate.grads)
        checkGradients([a, b], epsilon: 1e-3) { $0[0].addingReLU($0[1]) }
    }
}
