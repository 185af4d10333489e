import CBLAS

// Row-vector kernels of `Tensor.linear` (Ops/Tensor+Matmul.swift): the bias add and its gradient.

extension Kernels {
    /// y[r, c] += v[c] for a row-major [rows, columns] matrix.
    public static func addRowVector(_ y: UnsafeMutablePointer<Float>, _ v: UnsafePointer<Float>, rows: Int, columns: Int) {
        parallelFor(rows, minimumPerThread: Swift.max(1, 16384 / Swift.max(columns, 1))) { range in
            for r in range {
                let p = y + r * columns
                for c in 0..<columns { p[c] += v[c] }
            }
        }
    }

    /// y[r, c] = v[c] for a row-major [rows, columns] matrix: a product's bias seeded before a
    /// `gemm` with beta 1 (one pass over the output instead of the product's zeroing and an add).
    public static func fillRows(_ y: UnsafeMutablePointer<Float>, _ v: UnsafePointer<Float>, rows: Int, columns: Int) {
        parallelFor(rows, minimumPerThread: Swift.max(1, 16384 / Swift.max(columns, 1))) { range in
            for r in range { (y + r * columns).update(from: v, count: columns) }
        }
    }

    /// s[c] = Σ_r x[r, c] for a row-major [rows, columns] matrix (xᵀ · 1 through sgemv).
    public static func columnSums(_ x: UnsafePointer<Float>, rows: Int, columns: Int, into s: UnsafeMutablePointer<Float>) {
        if rows == 0 {
            s.update(repeating: 0, count: columns)
            return
        }
        let ones = [Float](repeating: 1, count: rows)
        cblas_sgemv(CblasRowMajor, CblasTrans, Int32(rows), Int32(columns), 1, x, Int32(columns), ones, 1, 0, s, 1)
    }
}
