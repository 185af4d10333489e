import CKernels

/// Vector loops for reductions and selects. LLVM keeps a Float sum in order (no reassociation
/// without fast-math), so `for i { s += p[i] }` runs one scalar add per element; these sum eight
/// lanes at a time in two accumulators and fold at the end. A scalar tail handles count % 16.
/// Results differ from the in-order sum by rounding only.
extension Kernels {
    typealias Lanes = SIMD8<Float>

    @inline(__always)
    static func load(_ p: UnsafePointer<Float>, _ i: Int) -> Lanes {
        UnsafeRawPointer(p + i).loadUnaligned(as: Lanes.self)
    }

    @inline(__always)
    static func store(_ v: Lanes, _ p: UnsafeMutablePointer<Float>, _ i: Int) {
        UnsafeMutableRawPointer(p + i).storeBytes(of: v, as: Lanes.self)
    }

    /// Σ p[i].
    @inline(__always)
    public static func sum(_ p: UnsafePointer<Float>, count: Int) -> Float {
        var (a, b) = (Lanes(), Lanes())
        var i = 0
        while i + 16 <= count {
            a += load(p, i)
            b += load(p, i + 8)
            i += 16
        }
        var s = (a + b).sum()
        while i < count { s += p[i]; i += 1 }
        return s
    }

    /// Σ (p[i] - mu)² (CKernels: fused multiply-adds with AVX2+FMA, the same result without).
    @inline(__always)
    public static func sumOfSquaredDeviations(_ p: UnsafePointer<Float>, count: Int, from mu: Float) -> Float {
        wsss_sum_squared_deviations(p, count, mu)
    }

    /// (Σ dy[i], Σ dy[i]·(x[i] - mu)) (CKernels, as `sumOfSquaredDeviations`).
    @inline(__always)
    public static func sumAndCenteredDot(
        _ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, count: Int, mu: Float
    ) -> (Float, Float) {
        var (sum, dot): (Float, Float) = (0, 0)
        wsss_sum_and_centered_dot(dy, x, count, mu, &sum, &dot)
        return (sum, dot)
    }

    /// dx[i] = y[i] > 0 ? dy[i] : 0, without branches (a data-dependent branch per element
    /// mispredicts on ReLU's random sign pattern).
    @inline(__always)
    static func maskPositive(
        _ dy: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>, _ range: Range<Int>
    ) {
        var i = range.lowerBound
        let zero = Lanes()
        while i + 8 <= range.upperBound {
            store(load(dy, i).replacing(with: 0, where: .!(load(y, i) .> zero)), dx, i)
            i += 8
        }
        while i < range.upperBound { dx[i] = y[i] > 0 ? dy[i] : 0; i += 1 }
    }
}

// The loops of the reduction ops (Ops/Tensor+Reduce.swift).
extension Kernels {
    /// out[kept] += Σ x over the axes where `keptShape` is 1 and `shape` is not, in Double (a
    /// sum over a whole feature map is long). `out` has `keptShape.product` entries.
    public static func sum(_ x: UnsafePointer<Float>, shape: [Int], keptShape: [Int], into out: UnsafeMutablePointer<Double>) {
        let xs = broadcastStrides(of: shape, in: shape)
        let ys = broadcastStrides(of: keptShape, in: shape)
        forEachRun(shape: shape, strides: [xs, ys]) { off, n, st in
            let xo = x + off[0], ix = st[0], iy = st[1]
            if iy == 0 {
                var s = 0.0
                for i in 0..<n { s += Double(xo[i * ix]) }
                out[off[1]] += s
            } else {
                for i in 0..<n { out[off[1] + i * iy] += Double(xo[i * ix]) }
            }
        }
    }

    /// y[o, i] = max over k of x[o, k, i] for an (outer, n, inner) layout (n ≥ 1), and `argmax`
    /// the first maximal k; a NaN wins, as torch.max(dim) propagates it.
    public static func maximumAlongAxis(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, argmax am: UnsafeMutablePointer<Int32>,
        split: (outer: Int, size: Int, inner: Int)
    ) {
        let (outer, n, inner) = split
        for o in 0..<outer {
            for i in 0..<inner {
                let base = x + o * n * inner + i
                var best = base[0], at = 0
                for k in 1..<n where base[k * inner] > best || (best.isNaN == false && base[k * inner].isNaN) {
                    best = base[k * inner]
                    at = k
                }
                y[o * inner + i] = best
                am[o * inner + i] = Int32(at)
            }
        }
    }

    /// Gradient of `maximumAlongAxis`: dx[o, argmax, i] = dy[o, i] (dx zero elsewhere: pass zeros).
    public static func maximumAlongAxisBackward(
        _ dy: UnsafePointer<Float>, argmax: UnsafePointer<Int32>, _ dx: UnsafeMutablePointer<Float>,
        split: (outer: Int, size: Int, inner: Int)
    ) {
        let (outer, n, inner) = split
        for o in 0..<outer {
            for i in 0..<inner {
                dx[o * n * inner + Int(argmax[o * inner + i]) * inner + i] = dy[o * inner + i]
            }
        }
    }

    /// Whether all `count` values are finite. `x * 0` is 0 for finite x and NaN otherwise, so one
    /// branch-free sum tells (IEEE semantics: the compiler may not fold `x * 0` to 0).
    public static func isAllFinite(_ p: UnsafePointer<Float>, count: Int) -> Bool {
        var probe: Float = 0
        for i in 0..<count { probe += p[i] * 0 }
        return probe == 0
    }
}
