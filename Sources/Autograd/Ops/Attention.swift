/// Decomposed relative-position terms of SAM's image-encoder attention
/// (segment_anything/modeling/image_encoder.py `add_decomposed_rel_pos`, after MViTv2): the
/// score of query (i, j) and key (k, l) gets height[b, i, j, k] + width[b, i, j, l].
public struct RelativePositionBias {
    /// [B, qh, qw, kh].
    public var height: Tensor
    /// [B, qh, qw, kw].
    public var width: Tensor
    /// Query grid (L = h · w).
    public var querySize: (h: Int, w: Int)
    /// Key grid (S = h · w).
    public var keySize: (h: Int, w: Int)

    /// The terms for queries on a querySize grid and keys on a keySize grid.
    public init(height: Tensor, width: Tensor, querySize: (h: Int, w: Int), keySize: (h: Int, w: Int)) {
        self.height = height
        self.width = width
        self.querySize = querySize
        self.keySize = keySize
    }
}

/// How `scaledDotProductAttention` is computed.
public enum AttentionImplementation: Sendable {
    /// Composed when a tape is recorded, fused otherwise.
    case automatic
    /// matmul → scale → add bias → softmax → matmul, every step on the tape (the oracle).
    case composed
    /// The tiled online-softmax kernel (`Kernels.fusedAttention`); records nothing, so it is
    /// only allowed when no gradient is wanted.
    case fused
}

extension Tensor {
    /// Attention softmax(q·kᵀ·scale + bias)·v, as torch.nn.functional.scaled_dot_product_attention
    /// with `scale`, plus SAM's decomposed relative positions.
    /// - Parameters:
    ///   - query: [B, L, D], or [Bq, L, D] with Bq dividing B: batch i then uses query i mod Bq
    ///     (a query shared by B / Bq key sets, e.g. one image's tokens against every prompt's,
    ///     without the B-fold copy); key: [B, S, D]; value: [B, S, Dv].
    ///   - relativePosition: terms with height [B, qh, qw, kh], width [B, qh, qw, kw],
    ///     L = qh·qw and S = kh·kw; nil for none.
    ///   - implementation: `.automatic` composes ops when gradients are recorded (any input
    ///     requires grad and grad mode is on) and otherwise runs the fused kernel, whose memory is
    ///     O(tile) instead of L×S (SAM ViT-B global blocks: 12 × 4096² scores would be 805 MB).
    /// - Returns: [B, L, Dv].
    public static func scaledDotProductAttention(
        query: Tensor, key: Tensor, value: Tensor, scale: Float, relativePosition: RelativePositionBias? = nil,
        implementation: AttentionImplementation = .automatic
    ) -> Tensor {
        precondition(
            query.rank == 3 && key.rank == 3 && value.rank == 3 && query.shape[0] > 0 && key.shape[0] % query.shape[0] == 0
                && value.shape[0] == key.shape[0] && key.shape[2] == query.shape[2] && value.shape[1] == key.shape[1]
                && (relativePosition == nil || key.shape[0] == query.shape[0]),
            "scaledDotProductAttention: query \(query.shape), key \(key.shape), value \(value.shape) are not [B, L, D], [B, S, D], [B, S, Dv]"
        )
        let (b, l, s) = (key.shape[0], query.shape[1], key.shape[1])
        if let bias = relativePosition {
            let (qh, qw, kh, kw) = (bias.querySize.h, bias.querySize.w, bias.keySize.h, bias.keySize.w)
            precondition(
                qh * qw == l && kh * kw == s && bias.height.shape == [b, qh, qw, kh] && bias.width.shape == [b, qh, qw, kw],
                "scaledDotProductAttention: relative positions height \(bias.height.shape), width \(bias.width.shape) for query \(query.shape), key \(key.shape), sizes \(bias.querySize) and \(bias.keySize)"
            )
        }
        var inputs = [query, key, value]
        if let bias = relativePosition { inputs += [bias.height, bias.width] }
        let recording = GradMode.isEnabled && inputs.contains { $0.requiresGrad }
        let composing = implementation == .composed || (implementation == .automatic && recording)
        var query = query
        if composing && query.shape[0] != b {
            // The composed form repeats shared queries (a broadcast add, so their gradient sums back).
            let (shared, d) = (query.shape[0], query.shape[2])
            query = (query.reshaped(to: [1, shared, l, d]) + Tensor(zeros: [b / shared, shared, l, d])).reshaped(to: [b, l, d])
        }
        switch implementation {
        case .composed:
            return composedAttention(query: query, key: key, value: value, scale: scale, relativePosition: relativePosition)
        case .automatic where recording:
            return composedAttention(query: query, key: key, value: value, scale: scale, relativePosition: relativePosition)
        case .fused, .automatic:
            precondition(
                !recording, "scaledDotProductAttention: the fused kernel records no gradient; use .composed or withoutGrad")
            let y = Tensor(uninitialized: [b, l, value.shape[2]])
            let tables = relativePosition.map {
                RelativePositionTables(
                    height: $0.height.storage.base, width: $0.width.storage.base, keyHeight: $0.keySize.h,
                    keyWidth: $0.keySize.w)
            }
            let (d, dv) = (query.shape[2], value.shape[2])
            // One call per group of `shared` key sets, all reading the same queries.
            for group in 0..<(b / query.shape[0]) {
                let first = group * query.shape[0]
                Kernels.fusedAttention(
                    q: query.storage.base, k: key.storage.base + first * s * d, v: value.storage.base + first * s * dv,
                    out: y.storage.base + first * l * dv, batch: query.shape[0], queries: l, keys: s, depth: d,
                    valueDepth: dv, scale: scale, relativePosition: tables)
            }
            return y
        }
    }

    /// The composed form: every step is an op on the tape, so all five inputs get gradients.
    static func composedAttention(
        query: Tensor, key: Tensor, value: Tensor, scale: Float, relativePosition: RelativePositionBias?
    ) -> Tensor {
        let (b, l, s) = (query.shape[0], query.shape[1], key.shape[1])
        var scores = matmul(query, key, transposeB: true) * scale
        if let bias = relativePosition {
            let (qh, qw, kh, kw) = (bias.querySize.h, bias.querySize.w, bias.keySize.h, bias.keySize.w)
            scores =
                (scores.reshaped(to: [b, qh, qw, kh, kw]) + bias.height.reshaped(to: [b, qh, qw, kh, 1])
                + bias.width.reshaped(to: [b, qh, qw, 1, kw])).reshaped(to: [b, l, s])
        }
        return matmul(scores.softmax(alongAxis: 2), value)
    }

    /// SAM's `get_rel_pos`: the rows of a relative-position table for every (query, key) pair.
    ///
    /// When the table does not have 2·max(q, k) − 1 rows it is first resized along its rows as
    /// F.interpolate(mode="linear", align_corners=False) on [1, C, L]. The row for query i and
    /// key j is (i·max(k/q, 1)) − (j·max(q/k, 1)) + (k−1)·max(q/k, 1), computed in Float32 and
    /// truncated as torch does (arange · python float gives float32, then `.long()`).
    /// Backward scatter-adds into the (resized) table and through the interpolation.
    /// - Parameter table: [L, C].
    /// - Returns: [querySize, keySize, C].
    public static func relativePositions(_ table: Tensor, querySize: Int, keySize: Int) -> Tensor {
        precondition(
            table.rank == 2 && querySize > 0 && keySize > 0,
            "relativePositions: table \(table.shape) is not [L, C] or sizes \(querySize), \(keySize) < 1")
        let maxDistance = 2 * Swift.max(querySize, keySize) - 1
        let (rows, channels) = (table.shape[0], table.shape[1])
        var resized = table
        if rows != maxDistance {
            resized = table.permuted([1, 0]).reshaped(to: [1, channels, 1, rows])
                .resizedBilinear(to: (1, maxDistance), alignCorners: false)
                .reshaped(to: [channels, maxDistance]).permuted([1, 0])
        }
        let queryScale = Swift.max(Double(keySize) / Double(querySize), 1)
        let keyScale = Swift.max(Double(querySize) / Double(keySize), 1)
        let offset = Float(Double(keySize - 1) * keyScale)
        var indices: [Int] = []
        indices.reserveCapacity(querySize * keySize)
        for i in 0..<querySize {
            for j in 0..<keySize {
                let coordinate = (Float(i) * Float(queryScale) - Float(j) * Float(keyScale)) + offset
                indices.append(Int(coordinate))
            }
        }
        return resized.gatheringRows(indices).reshaped(to: [querySize, keySize, channels])
    }

    /// SAM's decomposed relative positions for a query grid: with r_q = query as [B, qh, qw, D],
    /// height = einsum("bhwc,hkc->bhwk", r_q, Rh) and width = einsum("bhwc,wkc->bhwk", r_q, Rw),
    /// Rh/Rw = `relativePositions` of the tables. Composed of ops, so it has gradients.
    /// - Parameters:
    ///   - query: [B, qh·qw, D] (unscaled, as image_encoder.py passes q).
    ///   - tableHeight: [Lh, D]; tableWidth: [Lw, D].
    public static func decomposedRelativePosition(
        query: Tensor, tableHeight: Tensor, tableWidth: Tensor, querySize: (h: Int, w: Int), keySize: (h: Int, w: Int)
    ) -> RelativePositionBias {
        let (qh, qw, kh, kw) = (querySize.h, querySize.w, keySize.h, keySize.w)
        precondition(
            query.rank == 3 && query.shape[1] == qh * qw && tableHeight.rank == 2 && tableWidth.rank == 2
                && tableHeight.shape[1] == query.shape[2] && tableWidth.shape[1] == query.shape[2],
            "decomposedRelativePosition: query \(query.shape), tables \(tableHeight.shape) and \(tableWidth.shape), query size \(querySize)"
        )
        let (b, d) = (query.shape[0], query.shape[2])
        let rh = relativePositions(tableHeight, querySize: qh, keySize: kh)  // [qh, kh, D]
        let rw = relativePositions(tableWidth, querySize: qw, keySize: kw)  // [qw, kw, D]
        let grid = query.reshaped(to: [b, qh, qw, d])
        // Per query row i: [B·qw, D] · Rh[i]ᵀ, a batched matmul over i.
        let height = matmul(grid.permuted([1, 0, 2, 3]).reshaped(to: [qh, b * qw, d]), rh, transposeB: true)
            .reshaped(to: [qh, b, qw, kh]).permuted([1, 0, 2, 3])
        let width = matmul(grid.permuted([2, 0, 1, 3]).reshaped(to: [qw, b * qh, d]), rw, transposeB: true)
            .reshaped(to: [qw, b, qh, kw]).permuted([1, 2, 0, 3])
        return RelativePositionBias(height: height, width: width, querySize: querySize, keySize: keySize)
    }

    /// Rows `indices` of a matrix [R, C] → [indices.count, C] (an embedding lookup, a
    /// relative-position table read per pair); backward scatter-adds, repeated rows adding up.
    public func gatheringRows(_ indices: [Int]) -> Tensor {
        precondition(
            rank == 2 && indices.allSatisfy { $0 >= 0 && $0 < shape[0] }, "gatheringRows: index out of range for \(shape)")
        let columns = shape[1]
        let y = Tensor(uninitialized: [indices.count, columns])
        indices.withUnsafeBufferPointer {
            Kernels.gatherRows(
                storage.base, indices: $0.baseAddress!, count: indices.count, columns: columns, into: y.storage.base)
        }
        let inShape = shape
        return recorded(y, name: "gather_rows", inputs: [self]) { dy in
            let dx = Tensor(zeros: inShape)
            indices.withUnsafeBufferPointer {
                Kernels.scatterAddRows(
                    dy.storage.base, indices: $0.baseAddress!, count: indices.count, columns: columns, into: dx.storage.base)
            }
            return [dx]
        }
    }
}
