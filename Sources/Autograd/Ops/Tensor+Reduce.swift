extension Tensor {
    /// Sum over `axes`; reduced axes are kept as size 1 when `keepingDims`, dropped otherwise.
    public func sum(alongAxes axes: [Int], keepingDims: Bool = false) -> Tensor {
        let axes = Set(axes.map { $0 < 0 ? $0 + rank : $0 })
        precondition(axes.allSatisfy { $0 >= 0 && $0 < rank }, "sum: axes \(axes) out of range for shape \(shape)")
        let kept = shape.enumerated().map { axes.contains($0.offset) ? 1 : $0.element }
        let outShape = keepingDims ? kept : shape.enumerated().filter { !axes.contains($0.offset) }.map(\.element)
        // Accumulate in Double: reductions over a whole feature map are long.
        var acc = [Double](repeating: 0, count: kept.product)
        acc.withUnsafeMutableBufferPointer { out in
            guard let out = out.baseAddress else { return }  // an empty result
            Kernels.sum(storage.base, shape: shape, keptShape: kept, into: out)
        }
        let y = Tensor(shape: outShape, values: acc.map(Float.init))
        let inShape = shape
        return recorded(y, name: "sum", inputs: [self]) { dy in
            [dy.reshaped(to: kept).detached().expanded(to: inShape)]
        }
    }

    /// Sum of all elements, shape [].
    public func sum() -> Tensor { sum(alongAxes: Array(0..<rank)) }

    /// Mean over `axes`.
    public func mean(alongAxes axes: [Int], keepingDims: Bool = false) -> Tensor {
        let n = axes.map { shape[$0 < 0 ? $0 + rank : $0] }.product
        return sum(alongAxes: axes, keepingDims: keepingDims) * (1 / Float(Swift.max(n, 1)))
    }

    /// Mean of all elements, shape [].
    public func mean() -> Tensor { mean(alongAxes: Array(0..<rank)) }

    /// Maximum along `axis`. The gradient flows to the first maximal element, as torch.max(dim).
    public func max(alongAxis axis: Int, keepingDims: Bool = false) -> Tensor {
        let axis = axis < 0 ? axis + rank : axis
        let (outer, n, inner) = split(at: axis)
        precondition(n > 0, "max: empty axis \(axis) in shape \(shape)")
        var outShape = shape
        outShape[axis] = 1
        let y = Tensor(uninitialized: outShape)
        var argmax = [Int32](repeating: 0, count: outer * inner)
        argmax.withUnsafeMutableBufferPointer { am in
            guard let am = am.baseAddress else { return }  // an empty result
            Kernels.maximumAlongAxis(storage.base, y.storage.base, argmax: am, split: (outer, n, inner))
        }
        if !keepingDims { outShape.remove(at: axis) }
        let result = y.reshaped(to: outShape)
        let inShape = shape
        return recorded(result, name: "max", inputs: [self]) { dy in
            let dx = Tensor(zeros: inShape)
            argmax.withUnsafeBufferPointer { am in
                guard let am = am.baseAddress else { return }
                Kernels.maximumAlongAxisBackward(dy.storage.base, argmax: am, dx.storage.base, split: (outer, n, inner))
            }
            return [dx]
        }
    }

    /// Maximum of all elements, shape [].
    public func max() -> Tensor { reshaped(to: [count]).max(alongAxis: 0) }
}

extension Tensor {
    /// Whether every value is finite (no NaN, no ±inf). Not differentiable; used to refuse
    /// broken checkpoints (`Kernels.isAllFinite`).
    public var isAllFinite: Bool { Kernels.isAllFinite(storage.base, count: count) }
}
