extension Tensor {
    /// Batched matrix product op(a) · op(b), as torch.matmul on (optionally transposed) operands.
    ///
    /// - Parameters:
    ///   - a: [..., M, K], or [..., K, M] when `transposeA`.
    ///   - b: [..., K, N], or [..., N, K] when `transposeB`; its leading (batch) dimensions equal
    ///     a's, or b has rank 2 and is shared by every batch (torch broadcasting of a weight).
    /// - Returns: [..., M, N] with a's batch dimensions.
    ///
    /// One cblas_sgemm per batch (small batches spread across cores, see `Kernels.batchedGemm`).
    /// Backward: dA = dC · op(B)ᵀ and dB = op(A)ᵀ · dC in the stored layouts; a shared b gets the
    /// sum over batches.
    public static func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool = false, transposeB: Bool = false) -> Tensor {
        precondition(a.rank >= 2 && b.rank >= 2, "matmul: operands \(a.shape) and \(b.shape) need at least two axes")
        let batchShape = Array(a.shape.dropLast(2))
        let shared = b.rank == 2 && a.rank > 2
        precondition(
            shared || Array(b.shape.dropLast(2)) == batchShape,
            "matmul: batch dimensions of \(a.shape) and \(b.shape) differ (b must match or be a matrix)")
        let (ra, rb) = (a.rank, b.rank)
        let (m, k) = transposeA ? (a.shape[ra - 1], a.shape[ra - 2]) : (a.shape[ra - 2], a.shape[ra - 1])
        let (kb, n) = transposeB ? (b.shape[rb - 1], b.shape[rb - 2]) : (b.shape[rb - 2], b.shape[rb - 1])
        precondition(
            k == kb,
            "matmul: inner sizes differ: \(a.shape)\(transposeA ? "ᵀ" : "") · \(b.shape)\(transposeB ? "ᵀ" : "")")
        let batch = batchShape.product
        let strideB = shared ? 0 : k * n
        let y = Tensor(uninitialized: batchShape + [m, n])
        Kernels.batchedGemm(
            transA: transposeA, transB: transposeB, m: m, n: n, k: k, batch: batch,
            a: a.storage.base, strideA: m * k, b: b.storage.base, strideB: strideB, c: y.storage.base, strideC: m * n)
        let (ca, cb) = (a.detached(), b.detached())
        let (needA, needB) = (a.requiresGrad, b.requiresGrad)
        return record(y, name: "matmul", inputs: [a, b]) { dy in
            var da: Tensor?, db: Tensor?
            if needA {
                let g = Tensor(uninitialized: ca.shape)
                if transposeA {
                    // A stored [K, M]: dA = op(B) · dCᵀ.
                    Kernels.batchedGemm(
                        transA: transposeB, transB: true, m: k, n: m, k: n, batch: batch,
                        a: cb.storage.base, strideA: strideB, b: dy.storage.base, strideB: m * n,
                        c: g.storage.base, strideC: m * k)
                } else {
                    Kernels.batchedGemm(
                        transA: false, transB: !transposeB, m: m, n: k, k: n, batch: batch,
                        a: dy.storage.base, strideA: m * n, b: cb.storage.base, strideB: strideB,
                        c: g.storage.base, strideC: m * k)
                }
                da = g
            }
            if needB {
                let g = Tensor(uninitialized: cb.shape)
                // dB = op(A)ᵀ · dC, or (B stored [N, K]) dCᵀ · op(A).
                let (tA, tB, rows, cols) = transposeB ? (true, transposeA, n, k) : (!transposeA, false, k, n)
                let (first, firstStride, second, secondStride) =
                    transposeB
                    ? (dy.storage.base, m * n, ca.storage.base, m * k) : (ca.storage.base, m * k, dy.storage.base, m * n)
                if shared {
                    Kernels.batchSummedGemm(
                        transA: tA, transB: tB, m: rows, n: cols, k: m, batch: batch, a: first, strideA: firstStride,
                        b: second, strideB: secondStride, c: g.storage.base)
                } else {
                    Kernels.batchedGemm(
                        transA: tA, transB: tB, m: rows, n: cols, k: m, batch: batch, a: first, strideA: firstStride,
                        b: second, strideB: secondStride, c: g.storage.base, strideC: k * n)
                }
                db = g
            }
            return [da, db]
        }
    }

    /// A fully connected layer, as torch.nn.functional.linear: y = x · weightᵀ + bias.
    /// - Parameters:
    ///   - x: [..., in].
    ///   - weight: [out, in] (torch nn.Linear layout).
    ///   - bias: [out] or nil.
    /// - Returns: [..., out]. One sgemm over the flattened leading dimensions.
    public static func linear(_ x: Tensor, weight: Tensor, bias: Tensor?) -> Tensor {
        precondition(
            x.rank >= 1 && weight.rank == 2 && x.shape[x.rank - 1] == weight.shape[1],
            "linear: input \(x.shape) does not match weight \(weight.shape) ([out, in])")
        let (outFeatures, inFeatures) = (weight.shape[0], weight.shape[1])
        if let bias { precondition(bias.shape == [outFeatures], "linear: bias \(bias.shape) for weight \(weight.shape)") }
        let rows = x.count / Swift.max(inFeatures, 1)
        let y = Tensor(uninitialized: Array(x.shape.dropLast()) + [outFeatures])
        Kernels.gemm(
            transB: true, m: rows, n: outFeatures, k: inFeatures, a: x.storage.base, b: weight.storage.base, c: y.storage.base)
        if let bias { Kernels.addRowVector(y.storage.base, bias.storage.base, rows: rows, columns: outFeatures) }
        let (cx, cw) = (x.detached(), weight.detached())
        let needX = x.requiresGrad, needW = weight.requiresGrad, needB = bias?.requiresGrad ?? false
        var inputs = [x, weight]
        if let bias { inputs.append(bias) }
        return record(y, name: "linear", inputs: inputs) { dy in
            var dx: Tensor?, dw: Tensor?, db: Tensor?
            if needX {
                let g = Tensor(uninitialized: cx.shape)
                Kernels.gemm(m: rows, n: inFeatures, k: outFeatures, a: dy.storage.base, b: cw.storage.base, c: g.storage.base)
                dx = g
            }
            if needW {
                let g = Tensor(uninitialized: cw.shape)
                Kernels.gemm(
                    transA: true, m: outFeatures, n: inFeatures, k: rows, a: dy.storage.base, b: cx.storage.base,
                    c: g.storage.base)
                dw = g
            }
            if needB {
                let g = Tensor(uninitialized: [outFeatures])
                Kernels.columnSums(dy.storage.base, rows: rows, columns: outFeatures, into: g.storage.base)
                db = g
            }
            return [dx, dw] + (bias == nil ? [] : [db])
        }
    }
}
