import Testing

@testable import Autograd

/// The vector reductions against Double sums, for counts around the 8- and 16-lane steps.
@Suite struct ReductionKernelTests {
    let counts = [0, 1, 7, 8, 9, 15, 16, 17, 31, 33, 1000]

    func values(_ n: Int, seed: UInt64) -> [Float] {
        var g = SeededGenerator(seed: seed)
        return (0..<n).map { _ in Float(Int(g.next() % 2001) - 1000) / 250 }
    }

    @Test func sumsMatchDoubleSums() {
        for n in counts {
            let x = values(n, seed: 1), dy = values(n, seed: 2)
            let mu: Float = 0.37
            let sum = x.reduce(0.0) { $0 + Double($1) }
            let squares = x.reduce(0.0) { $0 + Double($1 - mu) * Double($1 - mu) }
            let dot = zip(dy, x).reduce(0.0) { $0 + Double($1.0) * Double($1.1 - mu) }
            x.withUnsafeBufferPointer { px in
                dy.withUnsafeBufferPointer { pdy in
                    let (p, q) = (
                        px.baseAddress ?? UnsafePointer(bitPattern: 64)!, pdy.baseAddress ?? UnsafePointer(bitPattern: 64)!
                    )
                    #expect(abs(Double(Kernels.sum(p, count: n)) - sum) <= 1e-4 * max(1, abs(sum)), "n=\(n)")
                    #expect(
                        abs(Double(Kernels.sumOfSquaredDeviations(p, count: n, from: mu)) - squares) <= 1e-4 * max(1, squares),
                        "n=\(n)")
                    let (a, b) = Kernels.sumAndCenteredDot(q, p, count: n, mu: mu)
                    #expect(abs(Double(a) - dy.reduce(0.0) { $0 + Double($1) }) <= 1e-3, "n=\(n)")
                    #expect(abs(Double(b) - dot) <= 1e-4 * max(1, abs(dot)), "n=\(n)")
                }
            }
        }
    }

    @Test func reluBackwardPassesGradientOnlyWherePositive() {
        for n in counts {
            var y = values(n, seed: 3), dy = values(n, seed: 4)
            if n > 2 { y[1] = 0; y[2] = .nan }
            var dx = [Float](repeating: -1, count: n)
            if n > 0 { Kernels.reluBackward(&dy, &y, &dx, count: n) }
            #expect(dx == (0..<n).map { y[$0] > 0 ? dy[$0] : 0 }, "n=\(n)")
        }
    }
}
