import CKernels

extension Kernels {
    /// e^x for eight lanes, to about 2 ulp over x in [-87, 88] (flushed to 0 below -87.3).
    ///
    /// Range reduction x = n·ln2 + r with |r| ≤ ln2/2 (ln2 split in two for an exact product,
    /// Cody & Waite 1980), e^r by its Taylor series to r⁶ (remainder < 1.2e-7 relative), and 2ⁿ
    /// built in the exponent bits. n is rounded with the 1.5·2²³ trick rather than `rounded()`,
    /// which baseline x86-64 (SSE2, no roundps) would run lane by lane. No FMA either: this
    /// target compiles without it, and a multiply-add becomes a libm call there.
    @inline(__always)
    static func exp(_ x: Lanes) -> Lanes {
        let low: Lanes = Lanes(repeating: -87.3)
        let x = x.replacing(with: low, where: x .< low)
        let magic = Lanes(repeating: 12_582_912)  // 1.5 · 2²³
        let shifted = x * Lanes(repeating: 1.442_695_04) + magic
        let n = shifted - magic
        let r = x - n * Lanes(repeating: 0.693_145_751_953_125) - n * Lanes(repeating: 1.428_606_765_330_187e-6)
        var p = Lanes(repeating: 1.0 / 720)
        p = p * r + Lanes(repeating: 1.0 / 120)
        p = p * r + Lanes(repeating: 1.0 / 24)
        p = p * r + Lanes(repeating: 1.0 / 6)
        p = p * r + Lanes(repeating: 0.5)
        p = p * r + Lanes(repeating: 1)
        p = p * r + Lanes(repeating: 1)
        // The integer n sits in the low mantissa bits of `shifted`; move it to the exponent.
        let bits = unsafeBitCast(shifted, to: SIMD8<Int32>.self) &- unsafeBitCast(magic, to: SIMD8<Int32>.self)
        let scale = unsafeBitCast((bits &+ 127) &<< 23, to: Lanes.self)
        return p * scale
    }

    /// y[i] = e^(x[i] - shift) and returns Σ y[i] (x and y may alias): a softmax row's numerators.
    /// `wsss_exponentiate` in CKernels: eight lanes with fused multiply-adds where the CPU has
    /// AVX2+FMA, the same operations one by one elsewhere.
    @inline(__always)
    public static func exponentiate(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int, shift: Float
    ) -> Float {
        wsss_exponentiate(x, y, count, shift)
    }

    /// max_i x[i] (count ≥ 1).
    @inline(__always)
    public static func maximum(_ x: UnsafePointer<Float>, count: Int) -> Float {
        var best = x[0]
        var i = 0
        if count >= 8 {
            var v = load(x, 0)
            i = 8
            // `pointwiseMax` is generic and not specialised here: a compare-and-select is.
            while i + 8 <= count {
                let w = load(x, i)
                v = v.replacing(with: w, where: w .> v)
                i += 8
            }
            best = v.max()
        }
        while i < count {
            if x[i] > best { best = x[i] }
            i += 1
        }
        return best
    }

    /// The standard normal CDF Φ(x) = ½·erfc(-x/√2) for eight lanes, with erfc from Numerical
    /// Recipes' Chebyshev fit (§6.2 `erfcc`, fractional error < 1.2e-7 everywhere) on |x|/√2
    /// and Φ(x) = 1 - Φ(-x) for x > 0, so the small tail of negative x keeps its relative accuracy.
    @inline(__always)
    static func normalCDF(_ x: Lanes) -> Lanes {
        let z = x.replacing(with: -x, where: x .< 0) * Lanes(repeating: Float(0.5.squareRoot()))
        let t = 1 / (1 + Lanes(repeating: 0.5) * z)
        var p = Lanes(repeating: 0.170_872_77)
        p = p * t + Lanes(repeating: -0.822_152_23)
        p = p * t + Lanes(repeating: 1.488_515_87)
        p = p * t + Lanes(repeating: -1.135_203_98)
        p = p * t + Lanes(repeating: 0.278_868_07)
        p = p * t + Lanes(repeating: -0.186_288_06)
        p = p * t + Lanes(repeating: 0.096_784_18)
        p = p * t + Lanes(repeating: 0.374_091_96)
        p = p * t + Lanes(repeating: 1.000_023_68)
        p = p * t + Lanes(repeating: -1.265_512_23)
        let tail = Lanes(repeating: 0.5) * t * exp(p - z * z)  // ½·erfc(|x|/√2) = Φ(-|x|)
        return tail.replacing(with: 1 - tail, where: x .> 0)
    }
}
