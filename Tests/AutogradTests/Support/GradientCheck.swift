import Autograd
import Testing

/// Central-difference gradient check: compares the tape's gradient of L = Σ f(inputs) · r
/// (r fixed random weights) with (L(x + ε) - L(x - ε)) / 2ε per input element, sums in Double.
///
/// Float32 forward passes limit the accuracy: with ε = 1e-2 both the truncation error (ε²) and
/// round-off (1e-7·|L|/ε) are around 1e-4 relative, so the default tolerance is 1e-2 on
/// ‖analytic - numeric‖ / ‖numeric‖. Inputs of non-smooth ops (ReLU, max) are chosen away from
/// their kinks by the caller.
func checkGradients(
    _ inputs: [Tensor], epsilon: Float = 1e-2, tolerance: Double = 1e-2, seed: UInt64 = 7,
    sourceLocation: SourceLocation = #_sourceLocation, _ f: ([Tensor]) -> Tensor
) {
    let leaves = inputs.map { $0.copy().requiringGrad() }
    let probe = withoutGrad { f(leaves) }
    var generator = SeededGenerator(seed: seed)
    let weights = Tensor.randomNormal(probe.shape, using: &generator)
    func loss() -> Double {
        let y = withoutGrad { f(leaves) }
        var s = 0.0
        for (a, b) in zip(y.scalars, weights.scalars) { s += Double(a) * Double(b) }
        return s
    }
    let y = f(leaves)
    y.backward(gradient: weights)
    for (index, leaf) in leaves.enumerated() {
        guard let analytic = leaf.grad else {
            Issue.record("input \(index): no gradient", sourceLocation: sourceLocation)
            continue
        }
        var diff = 0.0, norm = 0.0
        let p = leaf.storage.base
        for j in 0..<leaf.count {
            let saved = p[j]
            p[j] = saved + epsilon
            let plus = loss()
            p[j] = saved - epsilon
            let minus = loss()
            p[j] = saved
            let numeric = (plus - minus) / (2 * Double(epsilon))
            let a = Double(analytic.storage.base[j])
            diff += (a - numeric) * (a - numeric)
            norm += numeric * numeric
        }
        let error = (diff / max(norm, 1e-20)).squareRoot()
        #expect(error <= tolerance, "input \(index): gradient error \(error) > \(tolerance)", sourceLocation: sourceLocation)
    }
}

/// A seeded normal tensor for tests.
func randn(_ shape: [Int], seed: UInt64, scale: Float = 1) -> Tensor {
    var g = SeededGenerator(seed: seed)
    return Tensor.randomNormal(shape, standardDeviation: scale, using: &g)
}
