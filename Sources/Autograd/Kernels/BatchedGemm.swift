extension Kernels {
    /// C_i = op(A_i) op(B_i) for i in 0..<batch, row-major, where operand X_i starts at
    /// `x + i * strideX` (a stride of 0 shares one matrix across the batch). `transA`/`transB`:
    /// A_i stored as [k, m] / B_i as [n, k].
    ///
    /// Products too small for `gemm` to split across the pool (m·n·k < `gemmSplitSize`), and
    /// batches of at least two products per thread, are spread across our threads, one product
    /// per thread at a time (no thread waits for the other half of a split product, and no
    /// operand is packed by both); a few larger ones run one after another, each split by `gemm`
    /// itself. A shared,
    /// untransposed B with an untransposed A is one product over the stacked rows of all A_i.
    public static func batchedGemm(
        transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int, batch: Int,
        a: UnsafePointer<Float>, strideA: Int, b: UnsafePointer<Float>, strideB: Int,
        c: UnsafeMutablePointer<Float>, strideC: Int
    ) {
        if batch == 0 || m == 0 || n == 0 { return }
        if k == 0 {
            for i in 0..<batch { (c + i * strideC).update(repeating: 0, count: m * n) }
            return
        }
        if strideB == 0 && !transA && strideA == m * k && strideC == m * n {
            gemm(transB: transB, m: batch * m, n: n, k: k, a: a, b: b, c: c)
            return
        }
        if batch > 1 && (m * n * k < gemmSplitSize || batch >= 2 * Runtime.threads) {
            parallelFor(batch) { range in
                for i in range {
                    gemm(
                        transA: transA, transB: transB, m: m, n: n, k: k, a: a + i * strideA, b: b + i * strideB,
                        c: c + i * strideC)
                }
            }
        } else {
            for i in 0..<batch {
                gemm(transA: transA, transB: transB, m: m, n: n, k: k, a: a + i * strideA, b: b + i * strideB, c: c + i * strideC)
            }
        }
    }

    /// Σ_i op(A_i) op(B_i) into one C (the gradient of a matrix shared across a batch).
    public static func batchSummedGemm(
        transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int, batch: Int,
        a: UnsafePointer<Float>, strideA: Int, b: UnsafePointer<Float>, strideB: Int, c: UnsafeMutablePointer<Float>
    ) {
        if batch == 0 || k == 0 {
            c.update(repeating: 0, count: m * n)
            return
        }
        // Aᵀ·B over stacked [batch·k, m] and [batch·k, n] operands is the sum of the products.
        if transA && !transB && strideA == k * m && strideB == k * n {
            gemm(transA: true, m: m, n: n, k: batch * k, a: a, b: b, c: c)
            return
        }
        for i in 0..<batch {
            gemm(
                transA: transA, transB: transB, m: m, n: n, k: k, a: a + i * strideA, b: b + i * strideB,
                beta: i == 0 ? 0 : 1, c: c)
        }
    }

    /// The tile product size fused attention aims at (m·n·k; OpenBLAS 0.3.21's own single-thread
    /// limit, kept so the tiling — and so the results — did not change when OpenBLAS became
    /// single-threaded under our pool; each tile's products run on one thread either way).
    public static let singleThreadedGemmSize = 262_144
}
