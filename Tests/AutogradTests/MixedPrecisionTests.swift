import Autograd
import CKernels
import Testing

/// bf16 mixed precision (`Kernels.withProducts`): products take bf16 inputs and sum in fp32,
/// everything else stays fp32.
@Suite struct MixedPrecisionTests {
    /// Values rounded to bf16 (nearest even), as fp32.
    static func roundedToBF16(_ x: Tensor) -> Tensor {
        Tensor(shape: x.shape, values: x.scalars.map { Float(bitPattern: UInt32(wsss_bf16_round($0)) << 16) })
    }

    /// The emulation computes exactly the fp32 product of the operands rounded to bf16 (every
    /// product of two bf16 values is exact in fp32), for every transpose and leading dimension.
    @Test(arguments: [(false, false), (true, false), (false, true), (true, true)])
    func roundedProductsAreTheProductsOfRoundedOperands(_ transpose: (a: Bool, b: Bool)) {
        let (m, n, k) = (37, 150, 70)
        let a = randn(transpose.a ? [k, m] : [m, k], seed: 1), b = randn(transpose.b ? [n, k] : [k, n], seed: 2)
        let bf16 = Kernels.withProducts(.bf16Rounded) { Tensor.matmul(a, b, transposeA: transpose.a, transposeB: transpose.b) }
        let exact = Tensor.matmul(
            Self.roundedToBF16(a), Self.roundedToBF16(b), transposeA: transpose.a, transposeB: transpose.b)
        let fp32 = Tensor.matmul(a, b, transposeA: transpose.a, transposeB: transpose.b)
        #expect(bf16.scalars == exact.scalars)
        #expect(bf16.scalars != fp32.scalars, "the products were not rounded")
        #expect(relativeError(bf16, fp32) < 1e-2)
        #expect(Kernels.productArithmetic == .fp32, "the scope did not restore fp32")
    }

    /// Our bf16 kernel's route (B packed per product, A transposed when stored so, beta) sums
    /// the same exact products as the emulation, in another order: equal to fp32 rounding.
    @Test(arguments: [(false, false), (true, false), (false, true), (true, true)])
    func kernelRouteMatchesTheEmulation(_ transpose: (a: Bool, b: Bool)) {
        let (m, n, k) = (21, 45, 33)
        let a = randn(transpose.a ? [k, m] : [m, k], seed: 3), b = randn(transpose.b ? [n, k] : [k, n], seed: 4)
        let c0 = randn([m, n], seed: 5)
        // beta, and alpha (attention's scale, applied to the finished sums).
        for (alpha, beta): (Float, Float) in [(1, 0.5), (0.125, 0)] {
            func run(_ arithmetic: ProductArithmetic) -> [Float] {
                let c = Tensor(shape: c0.shape, values: c0.scalars)
                Kernels.withProducts(arithmetic) {
                    Kernels.gemm(
                        transA: transpose.a, transB: transpose.b, m: m, n: n, k: k, alpha: alpha, a: a.storage.base,
                        b: b.storage.base, beta: beta, c: c.storage.base)
                }
                return c.scalars
            }
            let (kernel, emulated) = (run(.bf16Kernel), run(.bf16Rounded))
            let scale = emulated.map(abs).max()!
            #expect(zip(kernel, emulated).allSatisfy { abs($0 - $1) <= 1e-5 * scale }, "alpha \(alpha), beta \(beta)")
        }
    }

    /// Every convolution lowering, forward and both gradients, within bf16's tolerance of fp32:
    /// 1e-2 of the largest value (bf16 keeps 8 significant bits, 2⁻⁹ ≈ 2e-3 relative rounding
    /// per operand; measured 2–5e-3), and not equal to it.
    @Test(arguments: [
        (ConvAlgorithm.im2col, 1, 1), (.pointwise, 1, 0), (.tapwise, 2, 2), (.stackedTaps, 2, 2), (.winograd, 1, 1),
        (.winograd4, 1, 1),
    ])
    func convolutionStaysWithinBF16Tolerance(_ algorithm: ConvAlgorithm, dilation: Int, padding: Int) {
        let kernel = algorithm == .pointwise ? 1 : 3
        let x = randn([2, 24, 13, 11], seed: 6)
        let w = randn([32, 24, kernel, kernel], seed: 7, scale: 0.1)
        let bias = randn([32], seed: 8)
        func run(_ arithmetic: ProductArithmetic) -> [[Float]] {
            let (xi, wi, bi) = (x.detached().requiringGrad(), w.detached().requiringGrad(), bias.detached().requiringGrad())
            return Kernels.withProducts(arithmetic) {
                let y = xi.conv2d(weight: wi, bias: bi, padding: padding, dilation: dilation, algorithm: algorithm)
                let dy = randn(y.shape, seed: 9)
                (y * dy).sum().backward()
                return [y.scalars, xi.grad!.scalars, wi.grad!.scalars, bi.grad!.scalars]
            }
        }
        let (fp32, bf16) = (run(.fp32), run(.bf16Rounded))
        for (name, (p, q)) in zip(["output", "input gradient", "weight gradient"], zip(fp32, bf16)) {
            let scale = p.map(abs).max()!
            let error = zip(p, q).map { abs($0 - $1) }.max()! / scale
            #expect(error < 1e-2 && error > 0, "\(algorithm) \(name): \(error)")
        }
        #expect(fp32[3] == bf16[3], "the bias gradient is a sum, not a product: fp32")
        // The kernel route (AVX512-BF16 where the CPU has it, else the portable kernel) sums the
        // same products in another order: the lowerings' strided operands reach it intact.
        let viaKernel = run(.bf16Kernel)
        for (name, (p, q)) in zip(["output", "input gradient", "weight gradient"], zip(bf16, viaKernel)) {
            let scale = p.map(abs).max()!
            let error = zip(p, q).map { abs($0 - $1) }.max()! / scale
            #expect(error < 1e-5, "\(algorithm) \(name), kernel against emulation: \(error)")
        }
    }

    /// F(4x4, 3x3) rounds its transformed tiles too coarsely for bf16 (5–7% of the largest
    /// output): under bf16 products it runs as F(2x2, 3x3), asked for or chosen.
    @Test func winograd4BecomesWinograd2InBF16() {
        let g = WindowGeometry(
            inHeight: 41, inWidth: 41, kernelHeight: 3, kernelWidth: 3, stride: (1, 1), padding: (2, 2), dilation: (2, 2))
        #expect(ConvAlgorithm.winograd4.resolved(inChannels: 256, outChannels: 256, geometry: g) == .winograd4)
        #expect(ConvAlgorithm.automatic.resolved(inChannels: 256, outChannels: 256, geometry: g) == .winograd4)
        Kernels.withProducts(.bf16Rounded) {
            #expect(ConvAlgorithm.winograd4.resolved(inChannels: 256, outChannels: 256, geometry: g) == .winograd)
            #expect(ConvAlgorithm.automatic.resolved(inChannels: 256, outChannels: 256, geometry: g) == .winograd)
        }
    }

    /// The pool's workers run a job's products in its caller's arithmetic, and other threads
    /// keep theirs (a product split across the pool is rounded in every block).
    @Test func workersFollowTheCaller() {
        let a = randn([256, 300], seed: 10), b = randn([300, 256], seed: 11)
        let split = Kernels.withProducts(.bf16Rounded) { Tensor.matmul(a, b) }  // large enough to split
        let exact = Tensor.matmul(Self.roundedToBF16(a), Self.roundedToBF16(b))
        #expect(split.scalars == exact.scalars)
        #expect(Tensor.matmul(a, b).scalars != split.scalars)
    }

    @Test func automaticPrecisionFollowsTheCPU() {
        #expect(Kernels.productArithmetic(for: .fp32) == .fp32)
        #expect(Kernels.productArithmetic(for: .bf16) == (Kernels.bf16Hardware ? .bf16Kernel : .bf16Rounded))
        #expect(Kernels.productArithmetic(for: .auto) == (Kernels.bf16Hardware ? .bf16Kernel : .fp32))
    }
}
