extension Tensor {
    /// Sum over `axes`; reduced axes are kept as size 1 when `keepingDims`, dropped otherwise.
    public func sum(alongAxes axes: [Int], keepingDims: Bool = false) -> Tensor {
        let axes = Set(axes.map { $0 < 0 ? $0 + rank : $0 })
        precondition(axes.allSatisfy { $0 >= 0 && $0 < rank }, "sum: axes \(axes) out of range for shape \(shape)")
        let kept = shape.enumerated().map { axes.contains($0.offset) ? 1 : $0.element }
        let outShape = keepingDims ? kept : shape.enumerated().filter { !axes.contains($0.offset) }.map(\.element)
        // Accumulate in Double: reductions over a whole feature map are long.
        var acc = [Double](repeating: 0, count: kept.product)
        let xs = Kernels.broadcastStrides(of: shape, in: shape)
        let ys = Kernels.broadcastStrides(of: kept, in: shape)
        let px = storage.base
        acc.withUnsafeMutableBufferPointer { out in
            Kernels.forEachRun(shape: shape, strides: [xs, ys]) { off, n, st in
                let xo = px + off[0], ix = st[0], iy = st[1]
                if iy == 0 {
                    var s = 0.0
                    for i in 0..<n { s += Double(xo[i * ix]) }
                    out[off[1]] += s
                } else {
                    for i in 0..<n { out[off[1] + i * iy] += Double(xo[i * ix]) }
                }
            }
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
        let px = storage.base, py = y.storage.base
        argmax.withUnsafeMutableBufferPointer { am in
            for o in 0..<outer {
                for i in 0..<inner {
                    let base = px + o * n * inner + i
                    var best = base[0], at = 0
                    for k in 1..<n where base[k * inner] > best || (best.isNaN == false && base[k * inner].isNaN) {
                        best = base[k * inner]
                        at = k
                    }
                    py[o * inner + i] = best
                    am[o * inner + i] = Int32(at)
                }
            }
        }
        if !keepingDims { outShape.remove(at: axis) }
        let result = y.reshaped(to: outShape)
        let inShape = shape
        return recorded(result, name: "max", inputs: [self]) { dy in
            let dx = Tensor(zeros: inShape)
            let pd = dx.storage.base, pg = dy.storage.base
            for o in 0..<outer {
                for i in 0..<inner {
                    pd[o * n * inner + Int(argmax[o * inner + i]) * inner + i] = pg[o * inner + i]
                }
            }
            return [dx]
        }
    }

    /// Maximum of all elements, shape [].
    public func max() -> Tensor { reshaped(to: [count]).max(alongAxis: 0) }
}

extension Tensor {
    /// Whether every value is finite (no NaN, no ±inf). Not differentiable; used to refuse
    /// broken checkpoints. `x * 0` is 0 for finite x and NaN otherwise, so one branch-free sum
    /// tells (IEEE semantics: the compiler may not fold `x * 0` to 0).
    public var isAllFinite: Bool {
        let p = storage.base
        var probe: Float = 0
        for i in 0..<count { probe += p[i] * 0 }
        return probe == 0
    }
}
