import CKernels

/// The right-hand side of bf16 products, packed once (weights rounded once at load):
/// `Kernels.sbgemm` multiplies fp32 rows by it with fp32 accumulation (CKernels' bf16.c).
public final class PackedBF16: @unchecked Sendable {
    /// Rows of B (the products' inner size).
    public let k: Int
    /// Columns of B (the products' output width).
    public let n: Int
    let values: UnsafeMutablePointer<UInt16>

    /// B [k, n] row-major with leading dimension `ldb`, or, `transposed`, stored as [n, k] (a
    /// Linear weight [out, in] is B transposed): rounded to bf16 (nearest even) and packed.
    public init(_ b: UnsafePointer<Float>, k: Int, n: Int, ldb: Int? = nil, transposed: Bool = false) {
        precondition(k >= 1 && n >= 1, "PackedBF16: sizes \(k)x\(n)")
        (self.k, self.n) = (k, n)
        let count = wsss_sbgemm_packed_count(k, n)
        values = .allocate(capacity: count)
        wsss_sbgemm_pack_b(b, ldb ?? (transposed ? k : n), transposed ? 1 : 0, k, n, values)
    }

    deinit { values.deallocate() }
}

extension Kernels {
    /// Whether bf16 products run on the CPU's bf16 arithmetic (AVX512-BF16: Zen 4/5, Cooper
    /// Lake, Sapphire Rapids and later) rather than the portable kernel.
    public static var bf16Hardware: Bool { wsss_sbgemm_uses_hardware() != 0 }

    /// C[m, n] = A[m, k] · B (+ beta · C): A rounded to bf16 as it is read, B `packed`, every
    /// output an fp32 sum over k-pairs in VDPBF16PS's order (the portable kernel follows the
    /// SDM's rounding step by step). Rows are split across the pool in blocks of 16.
    public static func sbgemm(
        m: Int, a: UnsafePointer<Float>, lda: Int? = nil, packed: PackedBF16, beta: Float = 0,
        c: UnsafeMutablePointer<Float>, ldc: Int? = nil
    ) {
        let (lda, ldc, n, k) = (lda ?? packed.k, ldc ?? packed.n, packed.n, packed.k)
        let blocks = (m + 15) / 16
        parallelFor(blocks, minimumPerThread: Swift.max(1, (1 << 20) / Swift.max(16 * n * k, 1))) { r in
            let i0 = r.lowerBound * 16, i1 = Swift.min(m, r.upperBound * 16)
            wsss_sbgemm(i1 - i0, n, k, a + i0 * lda, lda, packed.values, beta, c + i0 * ldc, ldc)
        }
    }
}

/// The arithmetic of inference products (`--precision`, `sam.precision`): fp32 throughout, or
/// bf16 inputs with fp32 accumulation for the products of linear layers (as PyTorch's CPU
/// autocast), norms, softmax and the rest staying fp32; `auto` is bf16 where the CPU multiplies
/// bf16 (AVX512-BF16) and fp32 elsewhere.
public enum ComputePrecision: String, Sendable, CaseIterable, Codable {
    case fp32, bf16, auto

    /// `auto` decided for this CPU.
    public var resolved: ComputePrecision {
        self == .auto ? (Kernels.bf16Hardware ? .bf16 : .fp32) : self
    }

    /// For logs: the precision, and for bf16 which kernel runs it.
    public var describe: String {
        switch resolved {
        case .bf16: Kernels.bf16Hardware ? "bf16 (AVX512-BF16)" : "bf16 (emulated: this CPU has no bf16 arithmetic)"
        default: self == .auto ? "fp32 (auto: this CPU has no bf16 arithmetic)" : "fp32"
        }
    }
}

extension Tensor {
    /// `linear(x, weight:, bias:)` with the weight packed as bf16 (inference only: no tape):
    /// x rounded to bf16 as it is read, fp32 accumulation, then the fp32 bias.
    /// - Parameters: x [..., packed.k]; bias [packed.n] or nil.
    public static func linear(_ x: Tensor, packed: PackedBF16, bias: Tensor?) -> Tensor {
        precondition(
            x.rank >= 1 && x.shape[x.rank - 1] == packed.k,
            "linear: input \(x.shape) does not match a bf16 weight of \(packed.n)x\(packed.k)")
        precondition(!GradMode.isEnabled || !x.requiresGrad, "linear: bf16 weights are for inference (no tape)")
        let rows = x.count / packed.k
        let y = Tensor(uninitialized: Array(x.shape.dropLast()) + [packed.n])
        Kernels.sbgemm(m: rows, a: x.storage.base, packed: packed, c: y.storage.base)
        if let bias { Kernels.addRowVector(y.storage.base, bias.storage.base, rows: rows, columns: packed.n) }
        return y
    }
}
