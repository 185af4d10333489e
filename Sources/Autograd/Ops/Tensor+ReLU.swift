extension Tensor {
    /// y = max(x, 0). The gradient at exactly 0 is 0, like torch.relu.
    public func relu() -> Tensor {
        let y = Tensor(uninitialized: shape)
        Kernels.relu(storage.base, y.storage.base, count: count)
        return recorded(y, name: "relu", inputs: [self]) { dy in [Tensor.reluGradient(dy, output: y)] }
    }

    /// dy where the ReLU's `output` is positive, 0 elsewhere: the gradient through a ReLU (also
    /// one fused into another op) given its output.
    static func reluGradient(_ dy: Tensor, output: Tensor) -> Tensor {
        let dx = Tensor(uninitialized: dy.shape)
        Kernels.reluBackward(dy.storage.base, output.storage.base, dx.storage.base, count: dy.count)
        return dx
    }
}

extension Tensor {
    /// max(self + other, 0) for two tensors of one shape: a residual connection and its ReLU in
    /// one pass (`(a + b).relu()` without the intermediate sum; the same values and gradients).
    public func addingReLU(_ other: Tensor) -> Tensor {
        precondition(shape == other.shape, "addingReLU: shapes \(shape) and \(other.shape) differ")
        let y = Tensor(uninitialized: shape)
        Kernels.addReLU(storage.base, other.storage.base, y.storage.base, count: count)
        let output = y.detached()
        return recorded(y, name: "add_relu", inputs: [self, other]) { dy in
            let dx = Tensor.reluGradient(dy, output: output)
            return [dx, dx]
        }
    }
}
