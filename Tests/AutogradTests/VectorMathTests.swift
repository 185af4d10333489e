import Autograd
import Foundation
import Testing

/// Kernels/VectorMath.swift against libm.
@Suite struct VectorMathTests {
    @Test func exponentiateMatchesExpf() {
        // -90 … 10 in steps that hit every lane and the scalar tail (count % 8 = 3).
        let values = (0..<1003).map { Float($0) * 0.1 - 90 }
        var out = [Float](repeating: 0, count: values.count)
        let total = values.withUnsafeBufferPointer { x in
            out.withUnsafeMutableBufferPointer { y in
                Kernels.exponentiate(x.baseAddress!, y.baseAddress!, count: values.count, shift: 2)
            }
        }
        var worst: Float = 0, expected = 0.0
        for (x, y) in zip(values, out) {
            let reference = expf(x - 2)
            expected += Double(reference)
            // Below e^-87.3 the kernel flushes to 0; compare absolutely there.
            let error = reference > 1e-37 ? abs(y - reference) / reference : abs(y - reference)
            worst = max(worst, error)
        }
        #expect(worst < 5e-7, "worst relative error \(worst)")
        #expect(abs(Double(total) - expected) / expected < 1e-6)
    }

    @Test func maximumFindsTheLargestInEveryPosition() {
        for count in [1, 7, 8, 9, 17, 32] {
            for at in 0..<count {
                var x = (0..<count).map { -Float($0) }
                x[at] = 5
                #expect(x.withUnsafeBufferPointer { Kernels.maximum($0.baseAddress!, count: count) } == 5)
            }
        }
    }

    /// The vector GELU (lanes) against x·Φ(x) in Double, relative to |y| itself: the negative
    /// tail, where y is tiny, keeps its digits too (torch's 1 + erf(x/√2) in float loses them all
    /// below x ≈ -5). Past x = -5 the error grows as z²·2⁻²⁴ (z = x/√2), from e^(-z²) with z²
    /// rounded to Float, hence the looser bound there.
    @Test func geluMatchesDoublePrecision() {
        let values = (0..<2001).map { Float($0) * 0.01 - 12 }
        var out = [Float](repeating: 0, count: values.count), slope = out
        let ones = [Float](repeating: 1, count: values.count)
        values.withUnsafeBufferPointer { x in
            out.withUnsafeMutableBufferPointer { Kernels.gelu(x.baseAddress!, $0.baseAddress!, count: values.count) }
            slope.withUnsafeMutableBufferPointer {
                Kernels.geluBackward(x.baseAddress!, ones, $0.baseAddress!, count: values.count)
            }
        }
        for (i, x) in values.enumerated() {
            let v = Double(x)
            let cdf = 0.5 * erfc(-v / 2.0.squareRoot())
            let y = v * cdf, dy = cdf + v * exp(-0.5 * v * v) / (2 * Double.pi).squareRoot()
            let bound = x >= -5 ? 2e-6 : 5e-5
            let error = abs(Double(out[i]) - y) / abs(y), slopeError = abs(Double(slope[i]) - dy) / max(abs(dy), 1e-30)
            if abs(y) > 1e-30 && error > bound { Issue.record("gelu(\(x)): relative error \(error)") }
            if abs(dy) > 1e-30 && slopeError > bound && abs(Double(slope[i]) - dy) > 1e-7 {
                Issue.record("gelu'(\(x)): relative error \(slopeError)")
            }
        }
    }
}
