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

    /// Σ (p[i] - mu)².
    @inline(__always)
    public static func sumOfSquaredDeviations(_ p: UnsafePointer<Float>, count: Int, from mu: Float) -> Float {
        var (a, b) = (Lanes(), Lanes())
        let m = Lanes(repeating: mu)
        var i = 0
        while i + 16 <= count {
            let d0 = load(p, i) - m, d1 = load(p, i + 8) - m
            a.addProduct(d0, d0)
            b.addProduct(d1, d1)
            i += 16
        }
        var s = (a + b).sum()
        while i < count { let d = p[i] - mu; s += d * d; i += 1 }
        return s
    }

    /// (Σ dy[i], Σ dy[i]·(x[i] - mu)).
    @inline(__always)
    public static func sumAndCenteredDot(
        _ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, count: Int, mu: Float
    ) -> (Float, Float) {
        var (a, b) = (Lanes(), Lanes())
        let m = Lanes(repeating: mu)
        var i = 0
        while i + 8 <= count {
            let g = load(dy, i)
            a += g
            b.addProduct(g, load(x, i) - m)
            i += 8
        }
        var (sa, sb) = (a.sum(), b.sum())
        while i < count { sa += dy[i]; sb += dy[i] * (x[i] - mu); i += 1 }
        return (sa, sb)
    }

    /// dx[i] = y[i] > 0 ? dy[i] : 0, without branches (a data-dependent branch per element
    /// mispredicts on ReLU's random sign pattern).
    @inline(__always)
    static func maskPositive(_ dy: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>, _ range: Range<Int>) {
        var i = range.lowerBound
        let zero = Lanes()
        while i + 8 <= range.upperBound {
            store(load(dy, i).replacing(with: 0, where: .!(load(y, i) .> zero)), dx, i)
            i += 8
        }
        while i < range.upperBound { dx[i] = y[i] > 0 ? dy[i] : 0; i += 1 }
    }
}
