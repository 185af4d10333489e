import Autograd
import Foundation
import Testing

/// Kernels/VectorExp.swift against libm's expf.
@Suite struct VectorExpTests {
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
}
