/// Shape ops: reshape (shares storage), concatenation, slicing and flips along one axis.
extension Tensor {
    /// The same values under another shape with the same element count; -1 infers one dimension.
    public func reshaped(to newShape: [Int]) -> Tensor {
        var target = newShape
        if let infer = target.firstIndex(of: -1) {
            let known = target.enumerated().filter { $0.offset != infer }.map(\.element).product
            precondition(known > 0 && count % known == 0, "reshape: cannot infer \(newShape) from \(shape)")
            target[infer] = count / known
        }
        precondition(target.product == count, "reshape: \(shape) has \(count) elements, \(target) needs \(target.product)")
        if target == shape { return self }
        let y = Tensor(shape: target, storage: storage)
        let inShape = shape
        return recorded(y, name: "reshape", inputs: [self]) { dy in [dy.detached().reshaped(to: inShape)] }
    }

    /// Concatenation along `axis`; all other dimensions must agree.
    public static func concat(_ tensors: [Tensor], alongAxis axis: Int) -> Tensor {
        precondition(!tensors.isEmpty, "concat: no tensors")
        let first = tensors[0]
        for t in tensors {
            precondition(
                t.rank == first.rank
                    && t.shape.enumerated().allSatisfy { $0.offset == axis || $0.element == first.shape[$0.offset] },
                "concat: shapes \(first.shape) and \(t.shape) differ outside axis \(axis)")
        }
        let sizes = tensors.map { $0.shape[axis] }
        var outShape = first.shape
        outShape[axis] = sizes.reduce(0, +)
        let y = Tensor(uninitialized: outShape)
        let (outer, total, inner) = y.split(at: axis)
        var start = 0
        for (t, n) in zip(tensors, sizes) {
            Kernels.copyBlock(
                from: t.storage.base, sourceRowLength: n * inner, to: y.storage.base + start * inner,
                destinationRowLength: total * inner, rows: outer, columns: n * inner)
            start += n
        }
        return record(y, name: "concat", inputs: tensors) { dy in
            var offset = 0
            return sizes.map { n in
                defer { offset += n }
                return dy.slice(alongAxis: axis, offset..<(offset + n))
            }
        }
    }

    /// Elements `range` along `axis`.
    public func slice(alongAxis axis: Int, _ range: Range<Int>) -> Tensor {
        precondition(range.lowerBound >= 0 && range.upperBound <= shape[axis], "slice: \(range) out of axis \(axis) of \(shape)")
        var outShape = shape
        outShape[axis] = range.count
        let y = Tensor(uninitialized: outShape)
        let (outer, n, inner) = split(at: axis)
        Kernels.copyBlock(
            from: storage.base + range.lowerBound * inner, sourceRowLength: n * inner, to: y.storage.base,
            destinationRowLength: range.count * inner, rows: outer, columns: range.count * inner)
        let inShape = shape
        return recorded(y, name: "slice", inputs: [self]) { dy in
            let dx = Tensor(zeros: inShape)
            Kernels.copyBlock(
                from: dy.storage.base, sourceRowLength: range.count * inner,
                to: dx.storage.base + range.lowerBound * inner, destinationRowLength: n * inner,
                rows: outer, columns: range.count * inner)
            return [dx]
        }
    }

    /// The tensor reversed along `axis` (axis 3 of NCHW is a horizontal flip).
    public func flipped(alongAxis axis: Int) -> Tensor {
        let y = Tensor(uninitialized: shape)
        Kernels.flip(storage.base, y.storage.base, split: split(at: axis))
        return recorded(y, name: "flip", inputs: [self]) { dy in
            let dx = Tensor(uninitialized: dy.shape)
            Kernels.flip(dy.storage.base, dx.storage.base, split: dy.split(at: axis))
            return [dx]
        }
    }
}
