import CKernels
import Foundation
import Testing

/// The AVX2+FMA and the baseline builds of the C reductions must give the same bits, so a
/// result does not depend on which CPU ran it.
@Suite(.serialized) struct CKernelsTests {
    static func data(_ count: Int, seed: UInt64) -> [Float] {
        var state = seed
        return (0..<count).map { _ in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int(state >> 40) % 2001 - 1000) / 37
        }
    }

    @Test(arguments: [0, 1, 7, 8, 15, 16, 17, 100, 4099])
    func bothBuildsAgreeBitForBitAndWithADoubleSum(count: Int) {
        let x = Self.data(count, seed: 1), dy = Self.data(count, seed: 2)
        let mu: Float = 0.75
        func run() -> (Float, Float, Float) {
            var (s, d): (Float, Float) = (0, 0)
            wsss_sum_and_centered_dot(dy, x, count, mu, &s, &d)
            return (wsss_sum_squared_deviations(x, count, mu), s, d)
        }
        defer { wsss_kernels_set_use_fma(-1) }
        wsss_kernels_set_use_fma(0)
        let portable = run()
        wsss_kernels_set_use_fma(1)
        let fused = run()
        #expect(
            portable.0.bitPattern == fused.0.bitPattern && portable.1.bitPattern == fused.1.bitPattern
                && portable.2.bitPattern == fused.2.bitPattern)
        let squares = x.reduce(0.0) { $0 + Double($1 - mu) * Double($1 - mu) }
        let sum = dy.reduce(0.0) { $0 + Double($1) }
        let dot = zip(dy, x).reduce(0.0) { $0 + Double($1.0) * Double($1.1 - mu) }
        #expect(abs(Double(portable.0) - squares) <= 1e-5 * max(1, squares))
        #expect(abs(Double(portable.1) - sum) <= 1e-4 * max(1, abs(sum) + Double(count)))
        #expect(abs(Double(portable.2) - dot) <= 1e-4 * max(1, abs(dot) + squares))
    }

    /// GELU: the same bits from both builds (also for the scalar tail), within 2e-6 relative of
    /// x·½·(1 + erf(x/√2)) in double (1e-9 absolute near 0), +∞ at +∞ and NaN at −∞ (−∞·0, as
    /// PyTorch's formula gives).
    @Test(arguments: [1, 13, 4099])
    func geluBothBuildsAgreeBitForBitAndWithErf(count: Int) {
        var x = Self.data(count, seed: 3).map { $0 / 4 }
        x += [0, -0.0, 1e-8, -1e-8, 5, -5, 9, -9, 40, -40, 200, -200, .infinity, -.infinity]
        func run() -> [Float] {
            var y = [Float](repeating: .nan, count: x.count)
            wsss_gelu(x, &y, x.count)
            return y
        }
        defer { wsss_kernels_set_use_fma(-1) }
        wsss_kernels_set_use_fma(0)
        let portable = run()
        wsss_kernels_set_use_fma(1)
        let fused = run()
        #expect(portable.map(\.bitPattern) == fused.map(\.bitPattern))
        for (v, y) in zip(x, portable) where v.isFinite {
            let exact = Double(v) * 0.5 * (1 + erf(Double(v) / 2.0.squareRoot()))
            #expect(abs(Double(y) - exact) <= max(2e-6 * abs(exact), 1e-9), "gelu(\(v)) = \(y), exact \(exact)")
        }
        #expect(portable[portable.count - 2] == .infinity && portable[portable.count - 1].isNaN)
    }
}
