import Foundation

// Sine and cosine, element-wise: SAM's random-Fourier position encoding
// (prompt_encoder.py, PositionEmbeddingRandom._pe_encoding) is [sin(2πxG), cos(2πxG)].
extension Tensor {
    /// sin(x) element-wise. Backward: dx = dy · cos(x).
    public func sin() -> Tensor {
        let y = Tensor(uninitialized: shape)
        Kernels.map(storage.base, y.storage.base, count: count) { Foundation.sin($0) }
        let x = detached()
        return recorded(y, name: "sin", inputs: [self]) { dy in
            let slope = Tensor(uninitialized: x.shape)
            Kernels.map(x.storage.base, slope.storage.base, count: x.count) { Foundation.cos($0) }
            return [withoutGrad { dy * slope }]
        }
    }

    /// cos(x) element-wise. Backward: dx = -dy · sin(x).
    public func cos() -> Tensor {
        let y = Tensor(uninitialized: shape)
        Kernels.map(storage.base, y.storage.base, count: count) { Foundation.cos($0) }
        let x = detached()
        return recorded(y, name: "cos", inputs: [self]) { dy in
            let slope = Tensor(uninitialized: x.shape)
            Kernels.map(x.storage.base, slope.storage.base, count: x.count) { -Foundation.sin($0) }
            return [withoutGrad { dy * slope }]
        }
    }
}
