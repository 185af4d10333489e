import CBLAS
import CKernels

/// How the matrix products of `Kernels.gemm` (every convolution lowering and `matmul`, forward
/// and backward) multiply: fp32, or bf16 inputs with fp32 accumulation.
public enum ProductArithmetic: Int32, Sendable, CaseIterable {
    /// OpenBLAS sgemm on the fp32 values.
    case fp32
    /// Both operands rounded to bf16 (nearest even), then OpenBLAS sgemm: every product of two
    /// bf16 values is exact in fp32, so this computes the bf16 products with fp32 sums (in
    /// OpenBLAS's order) at about sgemm's speed — the emulation on CPUs without bf16
    /// arithmetic, for accuracy checks.
    case bf16Rounded
    /// Our bf16 kernel (`Kernels.sbgemm`: B packed in bf16 per product, VDPBF16PS on AVX512-BF16,
    /// the same sums in the portable kernel elsewhere).
    case bf16Kernel

    /// For logs.
    public var name: String {
        switch self {
        case .fp32: "fp32"
        case .bf16Rounded: "bf16 (emulated: operands rounded to bf16, sgemm sums; this CPU has no bf16 arithmetic)"
        case .bf16Kernel: Kernels.bf16Hardware ? "bf16 (AVX512-BF16)" : "bf16 (portable kernel)"
        }
    }
}

extension Kernels {
    /// The arithmetic of this thread's products right now (`withProducts`); fp32 outside any
    /// such scope. Per thread: `parallelFor`'s workers take the caller's for each job, and other
    /// threads (concurrent tests, an app's other work) keep their own.
    public static var productArithmetic: ProductArithmetic {
        ProductArithmetic(rawValue: wsss_product_arithmetic()) ?? .fp32
    }

    /// The arithmetic `precision` selects on this CPU: bf16 runs our kernel where the CPU
    /// multiplies bf16 (AVX512-BF16) and the rounded-operand emulation elsewhere.
    public static func productArithmetic(for precision: ComputePrecision) -> ProductArithmetic {
        precision.resolved == .bf16 ? (bf16Hardware ? .bf16Kernel : .bf16Rounded) : .fp32
    }

    /// Runs `body` with the products of `Kernels.gemm` in `arithmetic` (mixed precision as
    /// PyTorch's CPU autocast: products take bf16 inputs and accumulate in fp32; everything that is
    /// not a product — norms, softmax, losses, the optimizer and the weights themselves — stays
    /// fp32). Restores the previous arithmetic afterwards.
    public static func withProducts<T>(_ arithmetic: ProductArithmetic, _ body: () throws -> T) rethrows -> T {
        let previous = wsss_product_arithmetic()
        wsss_set_product_arithmetic(arithmetic.rawValue)
        defer { wsss_set_product_arithmetic(previous) }
        return try body()
    }

    /// `withProducts(productArithmetic(for: precision), body)`.
    public static func withProducts<T>(in precision: ComputePrecision, _ body: () throws -> T) rethrows -> T {
        try withProducts(productArithmetic(for: precision), body)
    }

    /// One product of `sgemm` in bf16 (`productArithmetic` is not fp32).
    static func mixedPrecisionProduct(
        _ transA: Bool, _ transB: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Float, _ a: UnsafePointer<Float>, _ lda: Int,
        _ b: UnsafePointer<Float>, _ ldb: Int, _ beta: Float, _ c: UnsafeMutablePointer<Float>, _ ldc: Int
    ) {
        guard m > 0 && n > 0 else { return }
        guard k > 0 else {
            // No products: C = beta·C, as sgemm.
            for i in 0..<m { for j in 0..<n { c[i * ldc + j] = beta == 0 ? 0 : beta * c[i * ldc + j] } }
            return
        }
        if productArithmetic == .bf16Kernel && (alpha == 1 || beta == 0) {
            // Our kernel packs (and rounds) both operands itself, transposed or not; alpha scales
            // the finished sums (attention's 1/√d).
            wsss_sbgemm_full(transA ? 1 : 0, transB ? 1 : 0, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
            return
        }
        let (aRows, aColumns) = transA ? (k, m) : (m, k)
        let roundedA = UnsafeMutablePointer<Float>.allocate(capacity: aRows * aColumns)
        defer { roundedA.deallocate() }
        wsss_round_to_bf16_rows(a, lda, aRows, aColumns, roundedA)
        let (bRows, bColumns) = transB ? (n, k) : (k, n)
        let roundedB = UnsafeMutablePointer<Float>.allocate(capacity: bRows * bColumns)
        defer { roundedB.deallocate() }
        wsss_round_to_bf16_rows(b, ldb, bRows, bColumns, roundedB)
        cblas_sgemm(
            CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
            Int32(m), Int32(n), Int32(k), alpha, roundedA, Int32(aColumns), roundedB, Int32(bColumns), beta, c, Int32(ldc))
    }
}
