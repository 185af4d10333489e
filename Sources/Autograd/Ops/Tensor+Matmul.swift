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

/// The activation between a feed-forward block's two products.
public enum FeedForwardActivation: Sendable {
    case relu, gelu
}

extension Tensor {
    /// `activation(x W₁ᵀ + b₁) W₂ᵀ + b₂` over the last axis (torch's `linear2(act(linear1(x)))`),
    /// or nil when a tape is recording (`GradMode.isEnabled` and an input needs a gradient):
    /// then the caller composes the recorded ops.
    ///
    /// Without a tape the rows go through in blocks of about 2 MB of hidden activation, each
    /// block's two products on one thread, so the hidden layer — 4–8× the input's width — never
    /// exists whole: no fresh pages to fault in and zero, and it stays in cache between the
    /// products (Grounding DINO's encoder FFN at 800×1333 would otherwise allocate 182 MB per
    /// layer). Each output row is the same dot products as the composed ops.
    public static func feedForward(
        _ x: Tensor, weight1: Tensor, bias1: Tensor?, activation: FeedForwardActivation, weight2: Tensor, bias2: Tensor?
    ) -> Tensor? {
        let inputs = [x, weight1, weight2] + [bias1, bias2].compactMap { $0 }
        guard !GradMode.isEnabled || !inputs.contains(where: \.requiresGrad) else { return nil }
        let (hidden, features, out) = (weight1.shape[0], weight1.shape[1], weight2.shape[0])
        precondition(
            x.rank >= 1 && x.shape[x.rank - 1] == features && weight2.shape == [out, hidden]
                && (bias1.map { $0.shape == [hidden] } ?? true) && (bias2.map { $0.shape == [out] } ?? true),
            "feedForward: input \(x.shape), weights \(weight1.shape) and \(weight2.shape) do not chain")
        let rows = x.count / Swift.max(features, 1)
        let y = Tensor(uninitialized: Array(x.shape.dropLast()) + [out])
        let block = Swift.max(16, ((2 << 20) / (4 * Swift.max(hidden, 1))) / 16 * 16)
        let blocks = (rows + block - 1) / block
        let (xp, yp, w1, w2) = (x.storage.base, y.storage.base, weight1.storage.base, weight2.storage.base)
        let (b1, b2) = (bias1?.storage.base, bias2?.storage.base)
        // Chunks of about one block, handed to whichever thread is free (an even split waits on the slower half).
        let chunks = Swift.min(blocks, 1 << 12)
        Runtime.pool.run(chunks: chunks) { chunk in
            let scratch = UnsafeMutablePointer<Float>.allocate(capacity: Swift.min(block, rows) * hidden)
            defer { scratch.deallocate() }
            for index in (blocks * chunk / chunks)..<(blocks * (chunk + 1) / chunks) {
                let r0 = index * block, n = Swift.min(block, rows - r0)
                Kernels.gemm(transB: true, m: n, n: hidden, k: features, a: xp + r0 * features, b: w1, c: scratch)
                if let b1 { Kernels.addRowVector(scratch, b1, rows: n, columns: hidden) }
                switch activation {
                case .relu: Kernels.relu(scratch, scratch, count: n * hidden)
                case .gelu: Kernels.gelu(scratch, scratch, count: n * hidden)
                }
                Kernels.gemm(transB: true, m: n, n: out, k: hidden, a: scratch, b: w2, c: yp + r0 * out)
                if let b2 { Kernels.addRowVector(yp + r0 * out, b2, rows: n, columns: out) }
            }
        }
        return y
    }
}
