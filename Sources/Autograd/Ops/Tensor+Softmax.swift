extension Tensor {
    /// Softmax along `axis` (1 for the classes of NCHW logits), max-shifted for stability.
    /// Backward: dx = y · (dy - Σ_k dy_k y_k).
    public func softmax(alongAxis axis: Int = 1) -> Tensor { softmax(alongAxis: axis, log: false) }

    /// Log-softmax along `axis`. Backward: dx = dy - exp(y) · Σ_k dy_k.
    public func logSoftmax(alongAxis axis: Int = 1) -> Tensor { softmax(alongAxis: axis, log: true) }

    private func softmax(alongAxis axis: Int, log: Bool) -> Tensor {
        let parts = split(at: axis)
        let y = Tensor(uninitialized: shape)
        Kernels.softmax(storage.base, y.storage.base, split: parts, log: log)
        return recorded(y, name: log ? "log_softmax" : "softmax", inputs: [self]) { dy in
            let dx = Tensor(uninitialized: dy.shape)
            Kernels.softmaxBackward(dy: dy.storage.base, y: y.storage.base, dx: dx.storage.base, split: parts, log: log)
            return [dx]
        }
    }
}
