extension Kernels {
    /// y[i, :] = x[indices[i], :] for rows of `columns` floats.
    public static func gatherRows(
        _ x: UnsafePointer<Float>, indices: UnsafePointer<Int>, count: Int, columns: Int, into y: UnsafeMutablePointer<Float>
    ) {
        for i in 0..<count { (y + i * columns).update(from: x + indices[i] * columns, count: columns) }
    }

    /// dx[indices[i], :] += dy[i, :] (the adjoint of `gatherRows`; repeated indices add up).
    public static func scatterAddRows(
        _ dy: UnsafePointer<Float>, indices: UnsafePointer<Int>, count: Int, columns: Int, into dx: UnsafeMutablePointer<Float>
    ) {
        for i in 0..<count {
            let src = dy + i * columns, dst = dx + indices[i] * columns
            for c in 0..<columns { dst[c] += src[c] }
        }
    }
}
