import Foundation

extension Tensor {
    /// torch.clamp(x, min, max) (either bound optional). The gradient passes where
    /// min ≤ x ≤ max, as torch's (so a value exactly at a bound keeps its gradient).
    public func clamped(min lower: Float? = nil, max upper: Float? = nil) -> Tensor {
        let y = Tensor(uninitialized: shape)
        let (x, out) = (storage.base, y.storage.base)
        let (lo, hi) = (lower ?? -.infinity, upper ?? .infinity)
        for i in 0..<count { out[i] = Swift.min(Swift.max(x[i], lo), hi) }
        let input = detached()
        return recorded(y, name: "clamp", inputs: [self]) { dy in
            let dx = Tensor(uninitialized: dy.shape)
            let (g, a, d) = (dy.storage.base, input.storage.base, dx.storage.base)
            for i in 0..<dy.count { d[i] = a[i] >= lo && a[i] <= hi ? g[i] : 0 }
            return [dx]
        }
    }

    /// The logistic function 1 / (1 + e^−x), as torch.sigmoid; gradient y(1 − y).
    public func sigmoid() -> Tensor {
        let y = Tensor(uninitialized: shape)
        let (x, out) = (storage.base, y.storage.base)
        for i in 0..<count { out[i] = 1 / (1 + expf(-x[i])) }
        let output = y.detached()
        return recorded(y, name: "sigmoid", inputs: [self]) { dy in
            let dx = Tensor(uninitialized: dy.shape)
            let (g, s, d) = (dy.storage.base, output.storage.base, dx.storage.base)
            for i in 0..<dy.count { d[i] = g[i] * s[i] * (1 - s[i]) }
            return [dx]
        }
    }
}
