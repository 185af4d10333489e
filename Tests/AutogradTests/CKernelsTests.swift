import Autograd
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

    /// GELU: the same bits from every build (also for the scalar tail and the AVX-512 masked one), within 2e-6 relative of
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
        defer {
            wsss_kernels_set_use_fma(-1)
            wsss_kernels_set_use_avx512(-1)
        }
        wsss_kernels_set_use_fma(0)
        let portable = run()
        wsss_kernels_set_use_fma(1)
        wsss_kernels_set_use_avx512(0)
        let fused = run()
        #expect(portable.map(\.bitPattern) == fused.map(\.bitPattern))
        wsss_kernels_set_use_avx512(1)  // the automatic choice where the CPU has no AVX-512F
        let wide = run()
        #expect(portable.map(\.bitPattern) == wide.map(\.bitPattern), "the AVX-512 build")
        for (v, y) in zip(x, portable) where v.isFinite {
            let exact = Double(v) * 0.5 * (1 + erf(Double(v) / 2.0.squareRoot()))
            #expect(abs(Double(y) - exact) <= max(2e-6 * abs(exact), 1e-9), "gelu(\(v)) = \(y), exact \(exact)")
        }
        #expect(portable[portable.count - 2] == .infinity && portable[portable.count - 1].isNaN)
    }

    /// Layer norm of a row: the same bits from both builds, and within float rounding of the
    /// double-precision formula (row lengths around the 16-lane blocks).
    @Test(arguments: [1, 15, 16, 17, 256, 257])
    func layerNormRowBothBuildsAgree(count: Int) {
        let x = Self.data(count, seed: 4), w = Self.data(count, seed: 5), b = Self.data(count, seed: 6)
        func run() -> ([Float], Float, Float) {
            var (y, mean, r) = ([Float](repeating: .nan, count: count), Float.nan, Float.nan)
            wsss_layer_norm_row(x, w, b, count, 1e-5, &y, &mean, &r)
            return (y, mean, r)
        }
        defer { wsss_kernels_set_use_fma(-1) }
        wsss_kernels_set_use_fma(0)
        let portable = run()
        wsss_kernels_set_use_fma(1)
        let fused = run()
        #expect(portable.0.map(\.bitPattern) == fused.0.map(\.bitPattern))
        #expect(portable.1.bitPattern == fused.1.bitPattern && portable.2.bitPattern == fused.2.bitPattern)
        let mu = x.reduce(0.0) { $0 + Double($1) } / Double(count)
        let variance = x.reduce(0.0) { $0 + (Double($1) - mu) * (Double($1) - mu) } / Double(count)
        let r = 1 / (variance + 1e-5).squareRoot()
        #expect(abs(Double(portable.1) - mu) <= 1e-5 * max(1, abs(mu)) && abs(Double(portable.2) - r) <= 1e-5 * r)
        for k in 0..<count {
            let exact = (Double(x[k]) - mu) * r * Double(w[k]) + Double(b[k])
            #expect(abs(Double(portable.0[k]) - exact) <= 1e-4 * max(1, abs(exact)), "element \(k)")
        }
    }

    /// Softmax numerators: the same bits from both builds, each within 3e-7 relative of exp in
    /// double, and the sum within float rounding.
    @Test(arguments: [1, 7, 8, 9, 4099])
    func exponentiateBothBuildsAgree(count: Int) {
        let x = Self.data(count, seed: 7).map { $0 / 2 }
        let shift = x.max() ?? 0
        func run() -> ([Float], Float) {
            var y = [Float](repeating: .nan, count: count)
            let total = wsss_exponentiate(x, &y, count, shift)
            return (y, total)
        }
        defer { wsss_kernels_set_use_fma(-1) }
        wsss_kernels_set_use_fma(0)
        let portable = run()
        wsss_kernels_set_use_fma(1)
        let fused = run()
        #expect(portable.0.map(\.bitPattern) == fused.0.map(\.bitPattern) && portable.1.bitPattern == fused.1.bitPattern)
        var sum = 0.0
        for (v, e) in zip(x, portable.0) {
            let exact = Foundation.exp(Double(v - shift))
            sum += exact
            if exact > 1e-37 { #expect(abs(Double(e) - exact) <= 3e-7 * exact, "exp(\(v - shift))") }
        }
        #expect(abs(Double(portable.1) - sum) <= 1e-5 * sum)
    }

    /// Softmax rows (masked vectors below eight values): the same bits from both builds, each
    /// row within 1e-6 of the softmax in double and summing to 1.
    @Test(arguments: [1, 3, 7, 8, 9, 33])
    func softmaxRowsBothBuildsAgree(length: Int) {
        let rows = 5
        let x = Self.data(rows * length, seed: 9).map { $0 * 3 }
        func run() -> [Float] {
            var y = [Float](repeating: .nan, count: x.count)
            wsss_softmax_rows(x, &y, rows, length)
            return y
        }
        defer {
            wsss_kernels_set_use_fma(-1)
            wsss_kernels_set_use_avx512(-1)
        }
        wsss_kernels_set_use_fma(0)
        let portable = run()
        wsss_kernels_set_use_fma(1)
        wsss_kernels_set_use_avx512(0)
        let fused = run()
        #expect(portable.map(\.bitPattern) == fused.map(\.bitPattern))
        wsss_kernels_set_use_avx512(1)  // the automatic choice where the CPU has no AVX-512F
        let wide = run()
        #expect(portable.map(\.bitPattern) == wide.map(\.bitPattern), "the AVX-512 build")
        for r in 0..<rows {
            let row = x[(r * length)..<((r + 1) * length)].map(Double.init)
            let best = row.max()!
            let total = row.reduce(0) { $0 + Foundation.exp($1 - best) }
            for (k, v) in row.enumerated() {
                let expected = Foundation.exp(v - best) / total
                #expect(abs(Double(portable[r * length + k]) - expected) <= 1e-6, "row \(r), value \(k)")
            }
        }
    }
}

/// bf16 products (CKernels' bf16.c): rounding, the portable kernel against the same sums in
/// Swift, and the AVX512-BF16 kernel against the portable one where the CPU has it.
@Suite(.serialized) struct BF16KernelTests {
    static func bf16(_ x: Float) -> Float { Float(bitPattern: UInt32(wsss_bf16_round(x)) << 16) }

    @Test func roundingIsToNearestEven() {
        #expect(wsss_bf16_round(1) == 0x3F80)
        #expect(wsss_bf16_round(Float(bitPattern: 0x3F80_8000)) == 0x3F80, "tie rounds to even (down)")
        #expect(wsss_bf16_round(Float(bitPattern: 0x3F81_8000)) == 0x3F82, "tie rounds to even (up)")
        #expect(wsss_bf16_round(Float(bitPattern: 0x3F80_8001)) == 0x3F81)
        #expect(wsss_bf16_round(-2.5) == 0xC020)
        #expect(wsss_bf16_round(.infinity) == 0x7F80 && wsss_bf16_round(Float.greatestFiniteMagnitude) == 0x7F80)
        #expect(Self.bf16(.nan).isNaN)
    }

    /// Sizes with an odd k, columns past a panel, rows past a 4-row step, and beta 1.
    @Test(arguments: [(1, 1, 1), (5, 17, 3), (9, 40, 33), (4, 16, 64), (13, 35, 128)])
    func portableKernelSumsPairsInOrder(_ size: (m: Int, n: Int, k: Int)) {
        let (m, n, k) = size
        var g = SeededGenerator(seed: UInt64(m * 1000 + n * 10 + k))
        let a = Tensor.randomNormal([m, k], using: &g).scalars, b = Tensor.randomNormal([k, n], using: &g).scalars
        let bt = (0..<(n * k)).map { b[($0 % k) * n + $0 / k] }  // [n, k]
        defer {
            wsss_sbgemm_set_hardware(-1)
            wsss_kernels_set_use_fma(-1)
        }
        wsss_sbgemm_set_hardware(0)
        // The baseline loop and the AVX2+FMA one (an exact product plus acc rounds as an fma does).
        for (fused, (transposed, source)) in [(0, (false, b)), (1, (false, b)), (0, (true, bt)), (1, (true, bt))] {
            wsss_kernels_set_use_fma(Int32(fused))
            let packed = source.withUnsafeBufferPointer { PackedBF16($0.baseAddress!, k: k, n: n, transposed: transposed) }
            for beta: Float in [0, 1] {
                var c = (0..<(m * n)).map { Float($0 % 7) - 3 }
                let before = c
                a.withUnsafeBufferPointer { ap in
                    c.withUnsafeMutableBufferPointer {
                        Kernels.sbgemm(m: m, a: ap.baseAddress!, packed: packed, beta: beta, c: $0.baseAddress!)
                    }
                }
                for i in 0..<m {
                    for j in 0..<n {
                        // One running sum in k order, from beta·C.
                        var acc: Float = beta == 0 ? 0 : beta * before[i * n + j]
                        for p in stride(from: 0, to: k, by: 2) {
                            if p + 1 < k { acc = acc + Self.bf16(a[i * k + p + 1]) * Self.bf16(b[(p + 1) * n + j]) }
                            acc = acc + Self.bf16(a[i * k + p]) * Self.bf16(b[p * n + j])
                        }
                        let expected = acc
                        if c[i * n + j].bitPattern != expected.bitPattern {
                            Issue.record(
                                "\(m)x\(n)x\(k) transposed \(transposed) beta \(beta): C[\(i),\(j)] \(c[i * n + j]) vs \(expected)"
                            )
                            return
                        }
                    }
                }
            }
        }
    }

    /// The blocked kernel over sizes that cross every block (192 rows, 256 k values, 1536
    /// columns), with A and B stored either way, beta 0, 1 and 0.5 and alpha 0.5: each output is one running
    /// sum in k order from beta·C, so the blocks do not change a bit (a sample of outputs checked
    /// against that sum; AVX512-BF16 where the CPU has it, and AVX2+FMA).
    @Test(arguments: [(false, false), (true, false), (false, true), (true, true)])
    func blockedProductsSumInOrderAcrossBlocks(_ transpose: (a: Bool, b: Bool)) {
        let (m, n, k) = (197, 1550, 261)
        var g = SeededGenerator(seed: 7)
        let a = Tensor.randomNormal([m, k], using: &g).scalars, b = Tensor.randomNormal([k, n], using: &g).scalars
        let storedA = transpose.a ? (0..<(m * k)).map { a[($0 % m) * k + $0 / m] } : a  // [k, m]
        let storedB = transpose.b ? (0..<(n * k)).map { b[($0 % k) * n + $0 / k] } : b  // [n, k]
        defer { wsss_sbgemm_set_hardware(-1) }
        let routes: [Int32] = wsss_bf16_supported() != 0 ? [1, 0] : [0]
        // (beta, alpha): alpha multiplies the finished sums (a power of two: exactly).
        let scalings: [(Float, Float)] = [(0, 1), (1, 1), (0.5, 1), (0, 0.5)]
        for (route, (beta, alpha)) in routes.flatMap({ r in scalings.map { (r, $0) } }) {
            wsss_sbgemm_set_hardware(route)
            var c = (0..<(m * n)).map { Float($0 % 11) - 5 }
            let before = c
            storedA.withUnsafeBufferPointer { ap in
                storedB.withUnsafeBufferPointer { bp in
                    c.withUnsafeMutableBufferPointer {
                        wsss_sbgemm_full(
                            transpose.a ? 1 : 0, transpose.b ? 1 : 0, m, n, k, alpha, ap.baseAddress!, transpose.a ? m : k,
                            bp.baseAddress!, transpose.b ? k : n, beta, $0.baseAddress!, n)
                    }
                }
            }
            for index in stride(from: 0, to: m * n, by: 97) {
                let (i, j) = (index / n, index % n)
                var acc: Float = beta == 0 ? 0 : beta * before[index]
                for p in stride(from: 0, to: k, by: 2) {
                    if p + 1 < k { acc = acc + Self.bf16(a[i * k + p + 1]) * Self.bf16(b[(p + 1) * n + j]) }
                    acc = acc + Self.bf16(a[i * k + p]) * Self.bf16(b[p * n + j])
                }
                acc *= alpha
                if c[index].bitPattern != acc.bitPattern {
                    Issue.record("route \(route) transposed \(transpose) beta \(beta): C[\(i),\(j)] \(c[index]) vs \(acc)")
                    return
                }
            }
        }
    }

    /// Against fp32 products: the error is bf16's rounding of the inputs, about 2⁻⁸ of Σ|a·b|.
    @Test func productsAreCloseToFP32() {
        let (m, n, k) = (24, 48, 256)
        var g = SeededGenerator(seed: 3)
        let a = Tensor.randomNormal([m, k], using: &g), b = Tensor.randomNormal([k, n], using: &g)
        let exact = Tensor.matmul(a, b).scalars
        let packed = PackedBF16(b.storage.base, k: k, n: n)
        var c = [Float](repeating: 0, count: m * n)
        c.withUnsafeMutableBufferPointer { Kernels.sbgemm(m: m, a: a.storage.base, packed: packed, c: $0.baseAddress!) }
        let (av, bv) = (a.scalars, b.scalars)
        for i in 0..<m {
            for j in 0..<n {
                let magnitude = (0..<k).reduce(Float(0)) { $0 + abs(av[i * k + $1] * bv[$1 * n + j]) }
                #expect(abs(c[i * n + j] - exact[i * n + j]) <= magnitude * 0.01, "C[\(i),\(j)]")
            }
        }
    }

    /// Where the CPU has AVX512-BF16 its kernel agrees with the portable one: the same bits
    /// when the instruction rounds after each product as Intel's SDM describes, within a few
    /// ulps of the magnitude if an implementation rounds the pair once (skipped elsewhere).
    @Test(.enabled(if: wsss_bf16_supported() != 0, "this CPU has no AVX512-BF16"))
    func hardwareKernelAgreesWithThePortableOne() throws {
        let (m, n, k) = (37, 70, 95)
        var g = SeededGenerator(seed: 4)
        let a = Tensor.randomNormal([m, k], using: &g), b = Tensor.randomNormal([k, n], using: &g)
        let packed = PackedBF16(b.storage.base, k: k, n: n)
        func run(_ hardware: Int32) -> [Float] {
            wsss_sbgemm_set_hardware(hardware)
            var c = [Float](repeating: 1, count: m * n)
            c.withUnsafeMutableBufferPointer {
                Kernels.sbgemm(m: m, a: a.storage.base, packed: packed, beta: 1, c: $0.baseAddress!)
            }
            return c
        }
        defer { wsss_sbgemm_set_hardware(-1) }
        let (hardware, portable) = (run(1), run(0))
        #expect(wsss_sbgemm_uses_hardware() == 0)
        let (av, bv) = (a.scalars, b.scalars)
        for i in 0..<m {
            for j in 0..<n {
                let magnitude = 1 + (0..<k).reduce(Float(0)) { $0 + abs(av[i * k + $1] * bv[$1 * n + j]) }
                #expect(abs(hardware[i * n + j] - portable[i * n + j]) <= magnitude * 1e-6, "C[\(i),\(j)]")
            }
        }
    }
}
