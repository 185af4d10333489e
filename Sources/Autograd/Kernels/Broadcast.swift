extension Kernels {
    /// Row-major strides of `shape` placed in a result of rank `rank` (leading axes added), with
    /// stride 0 wherever the dimension is 1 and `outShape` is not: numpy broadcasting.
    public static func broadcastStrides(of shape: [Int], in outShape: [Int]) -> [Int] {
        let padded = Array(repeating: 1, count: outShape.count - shape.count) + shape
        var strides = Array(repeating: 0, count: outShape.count)
        var s = 1
        for axis in stride(from: outShape.count - 1, through: 0, by: -1) {
            strides[axis] = padded[axis] == 1 && outShape[axis] != 1 ? 0 : s
            s *= padded[axis]
        }
        return strides
    }

    /// Merges adjacent axes that every operand walks contiguously (or not at all), so the inner
    /// loop is as long as possible. Returns the merged shape and each operand's merged strides.
    static func coalesce(shape: [Int], strides: [[Int]]) -> (shape: [Int], strides: [[Int]]) {
        var outShape: [Int] = []
        var outStrides: [[Int]] = Array(repeating: [], count: strides.count)
        for axis in shape.indices where shape[axis] != 1 {
            if let last = outShape.indices.last,
                strides.indices.allSatisfy({ strides[$0][axis] * shape[axis] == outStrides[$0][last] })
            {
                outShape[last] *= shape[axis]
                for k in strides.indices { outStrides[k][last] = strides[k][axis] }
            } else {
                outShape.append(shape[axis])
                for k in strides.indices { outStrides[k].append(strides[k][axis]) }
            }
        }
        if outShape.isEmpty { return ([1], strides.map { _ in [0] }) }
        return (outShape, outStrides)
    }

    /// Calls `body(offsets, innerCount, innerStrides)` for every run of the innermost axis of
    /// `shape`, where `offsets[k]` is operand k's element offset at the start of the run.
    static func forEachRun(
        shape: [Int], strides: [[Int]], _ body: (_ offsets: [Int], _ count: Int, _ innerStrides: [Int]) -> Void
    ) {
        let (shape, strides) = coalesce(shape: shape, strides: strides)
        let rank = shape.count
        let inner = strides.map { $0[rank - 1] }
        var counter = Array(repeating: 0, count: rank - 1)
        var offsets = Array(repeating: 0, count: strides.count)
        let runs = shape.dropLast().product
        for _ in 0..<runs {
            body(offsets, shape[rank - 1], inner)
            var axis = rank - 2
            while axis >= 0 {
                counter[axis] += 1
                for k in offsets.indices { offsets[k] += strides[k][axis] }
                if counter[axis] < shape[axis] { break }
                for k in offsets.indices { offsets[k] -= strides[k][axis] * shape[axis] }
                counter[axis] = 0
                axis -= 1
            }
        }
    }
}

extension Kernels {
    /// y = f(a, b) with a [aShape] and b [bShape] broadcast to y [shape] (numpy rules; `shape`
    /// is their broadcast shape).
    public static func broadcastZip(
        _ a: UnsafePointer<Float>, _ aShape: [Int], _ b: UnsafePointer<Float>, _ bShape: [Int],
        _ y: UnsafeMutablePointer<Float>, shape: [Int], _ f: (Float, Float) -> Float
    ) {
        let sa = broadcastStrides(of: aShape, in: shape)
        let sb = broadcastStrides(of: bShape, in: shape)
        let ys = broadcastStrides(of: shape, in: shape)
        forEachRun(shape: shape, strides: [ys, sa, sb]) { off, n, st in
            let yo = y + off[0], ao = a + off[1], bo = b + off[2]
            let ia = st[1], ib = st[2]
            for i in 0..<n { yo[i] = f(ao[i * ia], bo[i * ib]) }
        }
    }
}
