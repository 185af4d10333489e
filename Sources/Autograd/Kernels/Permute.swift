extension Kernels {
    /// y = x with its axes reordered: y's axis i is x's axis `axes[i]` (torch
    /// `x.permute(axes).contiguous()`), for x of row-major `shape`.
    ///
    /// Output axes that are also adjacent and in order in x are merged first, so the windows of
    /// SAM (`[B, nH, ws, nW, ws, C]` → `(0, 1, 3, 2, 4, 5)`) become a 4-D copy of contiguous
    /// `ws·C` runs, and NCHW ↔ NHWC a 3-D transpose. When x's last axis stays last the inner
    /// loop is a block copy; otherwise the two axes involved (y's last, and the one that is x's
    /// last) are transposed in cache-sized tiles.
    public static func permute(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, shape: [Int], axes: [Int]
    ) {
        let count = shape.product
        if count == 0 { return }
        let (outShape, inStrides) = mergedPermutation(shape: shape, axes: axes)
        let rank = outShape.count
        let inner = outShape[rank - 1], innerStride = inStrides[rank - 1]
        if innerStride != 1, let unit = inStrides.firstIndex(of: 1) {
            transposeBlocks(x, y, shape: outShape, inStrides: inStrides, unitAxis: unit)
            return
        }
        let rows = count / inner
        // Rows of y in order; each thread walks its range with a multi-index counter.
        parallelFor(rows, minimumPerThread: Swift.max(1, 16384 / inner)) { range in
            var counter = [Int](repeating: 0, count: Swift.max(rank - 1, 1))
            var offset = 0
            var rest = range.lowerBound
            for axis in stride(from: rank - 2, through: 0, by: -1) {
                counter[axis] = rest % outShape[axis]
                rest /= outShape[axis]
                offset += counter[axis] * inStrides[axis]
            }
            counter.withUnsafeMutableBufferPointer { c in
                outShape.withUnsafeBufferPointer { n in
                    inStrides.withUnsafeBufferPointer { s in
                        for row in range {
                            let dst = y + row * inner, src = x + offset
                            if innerStride == 1 {
                                dst.update(from: src, count: inner)
                            } else {
                                for i in 0..<inner { dst[i] = src[i * innerStride] }
                            }
                            var axis = rank - 2
                            while axis >= 0 {
                                c[axis] += 1
                                offset += s[axis]
                                if c[axis] < n[axis] { break }
                                offset -= s[axis] * n[axis]
                                c[axis] = 0
                                axis -= 1
                            }
                        }
                    }
                }
            }
        }
    }

    /// The output shape and the input stride of each output axis after dropping size-1 axes and
    /// merging runs of output axes that are consecutive in the input.
    static func mergedPermutation(shape: [Int], axes: [Int]) -> (shape: [Int], strides: [Int]) {
        var strides = [Int](repeating: 1, count: shape.count)
        for axis in stride(from: shape.count - 2, through: 0, by: -1) { strides[axis] = strides[axis + 1] * shape[axis + 1] }
        var outShape: [Int] = [], outStrides: [Int] = [], lastAxis = -2
        for a in axes where shape[a] != 1 {
            if a == lastAxis + 1, let last = outShape.indices.last {
                outShape[last] *= shape[a]
                outStrides[last] = strides[a]
            } else {
                outShape.append(shape[a])
                outStrides.append(strides[a])
            }
            lastAxis = a
        }
        if outShape.isEmpty { return ([1], [1]) }
        return (outShape, outStrides)
    }

    /// The permutation as a batch of 2-D transposes: for every index of the other axes, the
    /// plane (unitAxis × last axis of y) is read with strides (1, s_last) and written with
    /// strides (stride of unitAxis in y, 1), in 32 × 32 tiles so both sides stay in cache.
    static func transposeBlocks(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, shape: [Int], inStrides: [Int], unitAxis p: Int
    ) {
        let rank = shape.count, last = rank - 1
        var outStrides = [Int](repeating: 1, count: rank)
        for axis in stride(from: rank - 2, through: 0, by: -1) { outStrides[axis] = outStrides[axis + 1] * shape[axis + 1] }
        let otherAxes = (0..<last).filter { $0 != p }
        let planes = otherAxes.map { shape[$0] }.product
        let (rowsN, colsN) = (shape[p], shape[last])
        let (sourceColumnStride, destinationRowStride) = (inStrides[last], outStrides[p])
        let tile = 32
        parallelFor(planes, minimumPerThread: Swift.max(1, 16384 / Swift.max(rowsN * colsN, 1))) { range in
            for plane in range {
                var rest = plane, inOffset = 0, outOffset = 0
                for axis in otherAxes.reversed() {
                    let i = rest % shape[axis]
                    rest /= shape[axis]
                    inOffset += i * inStrides[axis]
                    outOffset += i * outStrides[axis]
                }
                let src = x + inOffset, dst = y + outOffset
                var r0 = 0
                while r0 < rowsN {
                    let r1 = Swift.min(r0 + tile, rowsN)
                    var c0 = 0
                    while c0 < colsN {
                        let c1 = Swift.min(c0 + tile, colsN)
                        for r in r0..<r1 {
                            let d = dst + r * destinationRowStride, sr = src + r
                            for c in c0..<c1 { d[c] = sr[c * sourceColumnStride] }
                        }
                        c0 = c1
                    }
                    r0 = r1
                }
            }
        }
    }
}
