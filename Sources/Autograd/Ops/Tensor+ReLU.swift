extension Tensor {
    /// y = max(x, 0). The gradient at exactly 0 is 0, like torch.relu.
    public func relu() -> Tensor {
        let y = Tensor(uninitialized: shape)
        Kernels.relu(storage.base, y.storage.base, count: count)
        return recorded(y, name: "relu", inputs: [self]) { dy in
            let dx = Tensor(uninitialized: dy.shape)
            Kernels.reluBackward(dy.storage.base, y.storage.base, dx.storage.base, count: dy.count)
            return [dx]
        }
    }
}
