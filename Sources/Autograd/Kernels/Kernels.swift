import CBLAS
import CKernels

/// Raw math on Float32 buffers: free functions over pointers and explicit sizes that know
/// nothing of tensors or the tape. Ops in `Ops/` call these and record their backward.
public enum Kernels {}

extension Kernels {
    /// C[m,n] = alpha * op(A) op(B) + beta * C, row-major, through cblas_sgemm.
    /// `transA`/`transB`: whether A is stored as [k,m] / B as [n,k].
    ///
    /// OpenBLAS is single-threaded (`Runtime.configure`); a product large enough to share is
    /// split into column blocks of C (or row blocks when C is tall) across `parallelFor`'s pool,
    /// one single-threaded sgemm per block (deterministic for a given thread count; the last
    /// bits may differ between thread counts, as with OpenBLAS's own threading). Inside a
    /// parallel chunk the product runs on its thread.
    @inline(__always)
    public static func gemm(
        transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int, alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int? = nil, b: UnsafePointer<Float>, ldb: Int? = nil,
        beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int? = nil
    ) {
        let lda = lda ?? (transA ? m : k), ldb = ldb ?? (transB ? k : n), ldc = ldc ?? n
        let threads = Runtime.threads
        guard threads > 1, m * n * k >= gemmSplitSize, max(m, n) >= 32 * threads else {
            sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
            return
        }
        if n >= m {
            // Column blocks of 16 (the AVX-512 kernel's width) so no block ends mid-register.
            let blocks = (n + 15) / 16
            parallelFor(blocks) { r in
                let j0 = r.lowerBound * 16, j1 = min(n, r.upperBound * 16)
                sgemm(transA, transB, m, j1 - j0, k, alpha, a, lda, transB ? b + j0 * ldb : b + j0, ldb, beta, c + j0, ldc)
            }
        } else {
            let blocks = (m + 15) / 16
            parallelFor(blocks) { r in
                let i0 = r.lowerBound * 16, i1 = min(m, r.upperBound * 16)
                sgemm(transA, transB, i1 - i0, n, k, alpha, transA ? a + i0 : a + i0 * lda, lda, b, ldb, beta, c + i0 * ldc, ldc)
            }
        }
    }

    /// Multiply-adds from which `gemm` splits a product across the pool: below ~1 M (a few µs)
    /// splitting costs more than it gains.
    public static let gemmSplitSize = 1 << 20

    @inline(__always)
    static func sgemm(
        _ transA: Bool, _ transB: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Float, _ a: UnsafePointer<Float>, _ lda: Int,
        _ b: UnsafePointer<Float>, _ ldb: Int, _ beta: Float, _ c: UnsafeMutablePointer<Float>, _ ldc: Int
    ) {
        guard wsss_product_arithmetic() == 0 else {
            mixedPrecisionProduct(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
            return
        }
        cblas_sgemm(
            CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
            Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// y += x.
    @inline(__always)
    public static func addInPlace(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, count: Int) {
        parallelFor(count, minimumPerThread: 1 << 16) { r in
            for i in r { y[i] += x[i] }
        }
    }

    /// Applies `f` element-wise from `x` into `y` (may alias).
    @inline(__always)
    public static func map(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int, _ f: (Float) -> Float
    ) {
        parallelFor(count, minimumPerThread: 1 << 16) { r in
            for i in r { y[i] = f(x[i]) }
        }
    }

    /// Combines `a` and `b` element-wise into `y` (same sizes; may alias).
    @inline(__always)
    public static func zip(
        _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
        count: Int, _ f: (Float, Float) -> Float
    ) {
        parallelFor(count, minimumPerThread: 1 << 16) { r in
            for i in r { y[i] = f(a[i], b[i]) }
        }
    }
}

// Dedicated loops for the hottest element-wise ops. The closure-taking `map`/`zip` above call
// their closure indirectly inside the parallel chunk (the optimiser does not specialise through
// `concurrentPerform`), which costs several times a plain loop on large activations.
extension Kernels {
    /// y = max(x, 0) (may alias).
    public static func relu(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int) {
        parallelFor(count, minimumPerThread: 1 << 16) { r in
            for i in r { y[i] = x[i] > 0 ? x[i] : 0 }
        }
    }

    /// y = max(a + b, 0): a residual sum and its ReLU in one pass (may alias).
    public static func addReLU(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int)
    {
        parallelFor(count, minimumPerThread: 1 << 16) { r in
            for i in r {
                let v = a[i] + b[i]
                y[i] = v > 0 ? v : 0
            }
        }
    }

    /// dx = dy where y > 0, else 0 (may alias).
    public static func reluBackward(
        _ dy: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>, count: Int
    ) {
        parallelFor(count, minimumPerThread: 1 << 16) { r in maskPositive(dy, y, dx, r) }
    }

    /// The element-wise binary operations with a dedicated loop.
    public enum BinaryOp: Sendable { case add, subtract, multiply }

    /// y = a (op) b element-wise (same sizes; may alias).
    public static func binary(
        _ op: BinaryOp, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
        count: Int
    ) {
        parallelFor(count, minimumPerThread: 1 << 16) { r in
            switch op {
            case .add: for i in r { y[i] = a[i] + b[i] }
            case .subtract: for i in r { y[i] = a[i] - b[i] }
            case .multiply: for i in r { y[i] = a[i] * b[i] }
            }
        }
    }
}

extension Kernels {
    /// One SGD step in a single pass over the three buffers, in torch.optim.SGD's order:
    /// d = g + wd·w;  v = firstStep ? d : μ·v + d;  w = w - lr·v.
    public static func sgdUpdate(
        weights w: UnsafeMutablePointer<Float>, gradient g: UnsafePointer<Float>, velocity v: UnsafeMutablePointer<Float>,
        count: Int, learningRate lr: Float, momentum mu: Float, weightDecay wd: Float, firstStep: Bool
    ) {
        parallelFor(count, minimumPerThread: 1 << 16) { r in
            if firstStep {
                for i in r {
                    let d = g[i] + wd * w[i]
                    v[i] = d
                    w[i] -= lr * d
                }
            } else {
                for i in r {
                    let d = g[i] + wd * w[i]
                    let vel = mu * v[i] + d
                    v[i] = vel
                    w[i] -= lr * vel
                }
            }
        }
    }
}
