// Block copies and flips for the shape ops (Ops/Tensor+Shape.swift).

extension Kernels {
    /// Copies `rows` rows of `columns` floats between buffers with the given row lengths.
    public static func copyBlock(
        from source: UnsafePointer<Float>, sourceRowLength: Int, to destination: UnsafeMutablePointer<Float>,
        destinationRowLength: Int, rows: Int, columns: Int
    ) {
        for r in 0..<rows {
            (destination + r * destinationRowLength).update(from: source + r * sourceRowLength, count: columns)
        }
    }

    /// Reverses the middle dimension of an (outer, n, inner) layout.
    public static func flip(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, split: (outer: Int, size: Int, inner: Int)
    ) {
        let (outer, n, inner) = split
        parallelFor(outer, minimumPerThread: max(1, 4096 / max(1, n * inner))) { r in
            for o in r {
                let src = x + o * n * inner, dst = y + o * n * inner
                if inner == 1 {
                    for k in 0..<n { dst[k] = src[n - 1 - k] }
                } else {
                    for k in 0..<n { (dst + k * inner).update(from: src + (n - 1 - k) * inner, count: inner) }
                }
            }
        }
    }
}
