extension Tensor {
    /// Layer normalisation over the last axis, as torch.nn.functional.layer_norm(x, [C], weight,
    /// bias, eps): biased variance, ε inside the square root.
    /// - Parameters: weight, bias: [C] with C = the last dimension.
    /// - Returns: the shape of the input.
    public func layerNorm(weight: Tensor, bias: Tensor, epsilon: Float = 1e-5) -> Tensor {
        precondition(rank >= 1, "layerNorm: scalar input")
        return normalized(
            split: (count / Swift.max(shape[rank - 1], 1), shape[rank - 1], 1), weight: weight, bias: bias, epsilon: epsilon,
            name: "layer_norm")
    }

    /// Channel normalisation of NCHW per pixel, as segment_anything/modeling/common.py
    /// `LayerNorm2d`: u = mean over C, s = mean over C of (x - u)², y = w·(x - u)/√(s + ε) + b.
    /// - Parameters: weight, bias: [C].
    /// - Returns: [N, C, H, W].
    public func layerNorm2d(weight: Tensor, bias: Tensor, epsilon: Float = 1e-6) -> Tensor {
        precondition(rank == 4, "layerNorm2d: input \(shape) is not NCHW")
        return normalized(
            split: (shape[0], shape[1], shape[2] * shape[3]), weight: weight, bias: bias, epsilon: epsilon, name: "layer_norm_2d")
    }

    private func normalized(
        split parts: (outer: Int, size: Int, inner: Int), weight: Tensor, bias: Tensor, epsilon: Float, name: String
    ) -> Tensor {
        precondition(
            weight.shape == [parts.size] && bias.shape == [parts.size],
            "\(name): weight \(weight.shape) and bias \(bias.shape) must be [\(parts.size)] for input \(shape)")
        let y = Tensor(uninitialized: shape)
        let statistics = parts.outer * parts.inner
        let mean = TensorStorage(count: statistics, zeroed: false), inverseStd = TensorStorage(count: statistics, zeroed: false)
        Kernels.layerNorm(
            storage.base, weight: weight.storage.base, bias: bias.storage.base, y.storage.base, mean: mean.base,
            inverseStd: inverseStd.base, split: parts, epsilon: epsilon)
        let (x, w) = (detached(), weight.detached())
        let needX = requiresGrad, needW = weight.requiresGrad, needB = bias.requiresGrad
        return recorded(y, name: name, inputs: [self, weight, bias]) { dy in
            let dx = needX ? Tensor(uninitialized: x.shape) : nil
            let dw = needW ? Tensor(uninitialized: w.shape) : nil
            let db = needB ? Tensor(uninitialized: w.shape) : nil
            Kernels.layerNormBackward(
                x.storage.base, weight: w.storage.base, mean: mean.base, inverseStd: inverseStd.base, dy: dy.storage.base,
                dx: dx?.storage.base, dWeight: dw?.storage.base, dBias: db?.storage.base, split: parts)
            return [dx, dw, db]
        }
    }
}
