extension Tensor {
    /// Exact GELU, as torch.nn.functional.gelu(approximate="none"): y = x · Φ(x) with
    /// Φ(x) = ½(1 + erf(x/√2)). Backward: dy · (Φ(x) + x · φ(x)), φ the standard normal density.
    /// Φ is evaluated in vector lanes (`Kernels.normalCDF`) to within 2e-6 of Double for x ≥ -5,
    /// tighter than torch's float erf in the negative tail.
    public func gelu() -> Tensor {
        let y = Tensor(uninitialized: shape)
        Kernels.gelu(storage.base, y.storage.base, count: count)
        let x = detached()
        return recorded(y, name: "gelu", inputs: [self]) { dy in
            let dx = Tensor(uninitialized: dy.shape)
            Kernels.geluBackward(x.storage.base, dy.storage.base, dx.storage.base, count: dx.count)
            return [dx]
        }
    }
}
