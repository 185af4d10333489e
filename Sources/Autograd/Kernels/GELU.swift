import CKernels
import Foundation

// The raw exact GELU of `Tensor.gelu` (Ops/Tensor+GELU.swift), forward and backward.

extension Kernels {
    /// y = x · Φ(x) (may alias): `wsss_gelu` in CKernels, eight lanes with fused multiply-adds
    /// where the CPU has AVX2+FMA (this target compiles for baseline x86-64, where the same
    /// lanes took 10% of SAM's mask generator), the same operations one by one elsewhere.
    public static func gelu(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int) {
        parallelFor(count, minimumPerThread: 1 << 14) { r in
            wsss_gelu(x + r.lowerBound, y + r.lowerBound, r.count)
        }
    }

    /// dx = dy · (Φ(x) + x · φ(x)), φ(x) = e^(-x²/2)/√(2π) (may alias dy).
    public static func geluBackward(
        _ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>, count: Int
    ) {
        let density = Float(1 / (2 * Double.pi).squareRoot())
        parallelFor(count, minimumPerThread: 1 << 14) { r in
            forEachLanes(r, x) { v in
                normalCDF(v) + v * Lanes(repeating: density) * exp(Lanes(repeating: -0.5) * v * v)
            } store: { v, i in
                store(v * load(dy, i), dx, i)
            } tail: { i in
                let v = x[i]
                let cdf = 0.5 * (1 + erff(v * Float(0.5.squareRoot())))
                dx[i] = dy[i] * (cdf + v * density * expf(-0.5 * v * v))
            }
        }
    }

    /// Runs `f` on eight lanes of x at a time over `range`, `tail` on the remaining elements.
    @inline(__always)
    static func forEachLanes(
        _ range: Range<Int>, _ x: UnsafePointer<Float>, _ f: (Lanes) -> Lanes, store: (Lanes, Int) -> Void,
        tail: (Int) -> Void
    ) {
        var i = range.lowerBound
        while i + 8 <= range.upperBound {
            store(f(load(x, i)), i)
            i += 8
        }
        while i < range.upperBound {
            tail(i)
            i += 1
        }
    }
}
