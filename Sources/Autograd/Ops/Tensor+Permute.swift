extension Tensor {
    /// The tensor with its axes reordered, as torch `x.permute(axes).contiguous()`: axis i of the
    /// result is axis `axes[i]` of this tensor. Backward permutes the gradient by the inverse.
    /// - Parameter axes: a permutation of `0..<rank`.
    /// - Returns: shape `axes.map { shape[$0] }`, contiguous.
    public func permuted(_ axes: [Int]) -> Tensor {
        precondition(
            axes.count == rank && Set(axes) == Set(0..<rank),
            "permuted: \(axes) is not a permutation of the axes of \(shape)")
        if axes == Array(0..<rank) { return self }
        let y = Tensor(uninitialized: axes.map { shape[$0] })
        Kernels.permute(storage.base, y.storage.base, shape: shape, axes: axes)
        var inverse = [Int](repeating: 0, count: rank)
        for (i, a) in axes.enumerated() { inverse[a] = i }
        return recorded(y, name: "permute", inputs: [self]) { dy in
            let dx = Tensor(uninitialized: inverse.map { dy.shape[$0] })
            Kernels.permute(dy.storage.base, dx.storage.base, shape: dy.shape, axes: inverse)
            return [dx]
        }
    }

    /// The last two axes swapped (a contiguous copy), e.g. kᵀ of [B, S, D] as [B, D, S].
    public func transposedLastTwo() -> Tensor {
        precondition(rank >= 2, "transposedLastTwo: shape \(shape) has fewer than two axes")
        var axes = Array(0..<rank)
        axes.swapAt(rank - 1, rank - 2)
        return permuted(axes)
    }
}
