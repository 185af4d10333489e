// exp over a buffer, eight lanes at a time: the per-element libm call in the softmax of every
// mean-field step cost a tenth of the CRF's time. Cody–Waite range reduction x = n ln2 + r and the
// degree-7 polynomial of Cephes' expf (relative error ≈ 2e-7, a couple of float ulps), 2^n built
// in the exponent bits. Rounding uses the 1.5·2^23 trick, so no SSE4.1 round instruction is needed
// on baseline x86-64.

enum FastExp {
    /// x ← exp(x) for `count` values ≤ 0 (softmax inputs after subtracting the maximum; positive
    /// values are not supported); values below -87 give exp(-87) ≈ 1.6e-38 instead of a smaller number or 0.
    static func expInPlace(_ x: UnsafeMutablePointer<Float>, count: Int) {
        var i = 0
        let raw = UnsafeMutableRawPointer(x)
        while i + 8 <= count {
            let v = raw.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            raw.storeBytes(of: exp8(v), toByteOffset: i * 4, as: SIMD8<Float>.self)
            i += 8
        }
        if i < count {
            var tail = SIMD8<Float>(repeating: 0)
            for k in 0..<(count - i) { tail[k] = x[i + k] }
            let e = exp8(tail)
            for k in 0..<(count - i) { x[i + k] = e[k] }
        }
    }

    @inline(__always)
    static func exp8(_ input: SIMD8<Float>) -> SIMD8<Float> {
        // Only the lower clamp: inputs are ≤ 0. (`clamped` compiled to two calls per vector.)
        let low = SIMD8<Float>(repeating: -87)
        let x = input.replacing(with: low, where: input .< low)
        let magic = SIMD8<Float>(repeating: 12_582_912)  // 1.5 · 2^23: adding it rounds to an integer
        let shifted = x * 1.442_695_04 + magic
        let n = shifted - magic
        let r = x - n * 0.693_359_375 + n * 2.121_944_4e-4  // ln 2 = 0.693359375 - 2.12194440e-4
        var p = SIMD8<Float>(repeating: 1.987_569_15e-4)
        p = p * r + 1.398_199_950_7e-3
        p = p * r + 8.333_451_907_3e-3
        p = p * r + 4.166_579_589_4e-2
        p = p * r + 1.666_666_545_9e-1
        p = p * r + 5.000_000_120_1e-1
        p = p * (r * r) + r + 1
        // The integer n sits in the low mantissa bits of `shifted`: rebase it as an exponent.
        let bits = unsafeBitCast(shifted, to: SIMD8<UInt32>.self) &- 0x4B40_0000 &+ 127
        return p * unsafeBitCast(bits &<< 23, to: SIMD8<Float>.self)
    }
}
