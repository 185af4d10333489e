extension Tensor {
    /// y = max(x, 0). The gradient at exactly 0 is 0, like torch.relu.
    public func relu() -> Tensor {
        let y = Tensor(uninitialized: shape)
        Kernels.map(storage.base, y.storage.base, count: count) { Swift.max($0, 0) }
        return recorded(y, name: "relu", inputs: [self]) { dy in
            let dx = Tensor(uninitialized: dy.shape)
            Kernels.zip(dy.storage.base, y.storage.base, dx.storage.base, count: dy.count) { g, v in v > 0 ? g : 0 }
            return [dx]
        }
    }
}
