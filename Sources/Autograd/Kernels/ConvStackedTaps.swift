// Convolution as one product of all taps' weights with the whole image, then a shift per tap,
// for convolutions with few output channels such as DeepLab-v2's ASPP (2048 → 21 classes, 3x3,
// dilation 6–24). Because the channel contraction commutes with the spatial shift,
//   Y[o, p] = Σ_t Σ_i W[o, i, t] · X[i, p + δ_t] = Σ_t Z[t·out + o, p + δ_t],
//   Z = W_stacked [taps·out, in] · X [in, H·W],
// so the work is a single well-shaped sgemm (189 rows for a 21-class 3x3 head, where im2col and
// the tap-wise lowering multiply by a 21-row matrix) plus a shift-add over out·taps planes
// instead of unfolding or gathering in·taps planes. Z is taps·out·H·W floats, smaller than
// im2col's matrix whenever out < in.
extension Kernels {
    /// Calls `body(zOffset, yOffset, cols)` for each channel and row of tap (i, j)'s valid output
    /// rectangle: the offset of the row's first input pixel in a plane set [channels, H·W] (the
    /// row steps by `g.stride.w`) and of the row's first output pixel in [channels, outH·outW].
    /// Channels are split across cores.
    @inline(__always)
    static func forEachShiftedRow(
        channels: Int, geometry g: WindowGeometry, i: Int, j: Int, rect: (r0: Int, r1: Int, c0: Int, c1: Int),
        _ body: (_ zOffset: Int, _ yOffset: Int, _ cols: Int) -> Void
    ) {
        let plane = g.inHeight * g.inWidth, cols = rect.c1 - rect.c0
        parallelFor(channels, minimumPerThread: 4) { range in
            for c in range {
                for r in rect.r0..<rect.r1 {
                    let ih = r * g.stride.h - g.padding.h + i * g.dilation.h
                    let iw0 = rect.c0 * g.stride.w - g.padding.w + j * g.dilation.w
                    body(c * plane + ih * g.inWidth + iw0, c * g.outArea + r * g.outWidth + rect.c0, cols)
                }
            }
        }
    }

    /// Forward of a batch: y [N, out, outH·outW] = Σ_t shift_t(W_t · x[n]) (y is overwritten).
    static func conv2dStackedTapsForward(
        x: UnsafePointer<Float>, weight: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, batch: Int,
        inChannels: Int, outChannels: Int, geometry g: WindowGeometry
    ) {
        let taps = g.kernelArea, plane = g.inHeight * g.inWidth
        let stacked = TensorStorage(count: taps * outChannels * inChannels, zeroed: false)
        packWeightByTap(from: weight, into: stacked.base, outChannels: outChannels, inChannels: inChannels, taps: taps)
        let z = TensorStorage(count: taps * outChannels * plane, zeroed: false)
        for n in 0..<batch {
            gemm(m: taps * outChannels, n: plane, k: inChannels, a: stacked.base, b: x + n * inChannels * plane, c: z.base)
            let yn = y + n * outChannels * g.outArea
            yn.update(repeating: 0, count: outChannels * g.outArea)
            forEachTap(g) { t, rect, _ in
                let zt = UnsafePointer(z.base + t * outChannels * plane), sw = g.stride.w
                forEachShiftedRow(channels: outChannels, geometry: g, i: t / g.kernelWidth, j: t % g.kernelWidth, rect: rect) {
                    zOffset, yOffset, cols in
                    let (src, dst) = (zt + zOffset, yn + yOffset)
                    for k in 0..<cols { dst[k] += src[k * sw] }
                }
            }
        }
    }

    /// Backward of a batch: dZ_t = the output gradient shifted back by each tap (zeros where the
    /// tap saw padding), then dx[n] += W_stackedᵀ · dZ and dW_stacked += dZ · x[n]ᵀ.
    /// `dx` is accumulated into; `dWeight` [out, in, kh, kw] is overwritten.
    static func conv2dStackedTapsBackward(
        x: UnsafePointer<Float>, weight: UnsafePointer<Float>, dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>?,
        dWeight: UnsafeMutablePointer<Float>?, batch: Int, inChannels: Int, outChannels: Int, geometry g: WindowGeometry
    ) {
        let taps = g.kernelArea, plane = g.inHeight * g.inWidth, rows = taps * outChannels
        let stacked = TensorStorage(count: rows * inChannels, zeroed: false)
        if dx != nil {
            packWeightByTap(from: weight, into: stacked.base, outChannels: outChannels, inChannels: inChannels, taps: taps)
        }
        let stackedGradient = dWeight == nil ? nil : TensorStorage(count: rows * inChannels, zeroed: false)
        let dz = TensorStorage(count: rows * plane, zeroed: false)
        for n in 0..<batch {
            dz.base.update(repeating: 0, count: rows * plane)
            let dyn = dy + n * outChannels * g.outArea
            forEachTap(g) { t, rect, _ in
                let dzt = dz.base + t * outChannels * plane, sw = g.stride.w
                forEachShiftedRow(channels: outChannels, geometry: g, i: t / g.kernelWidth, j: t % g.kernelWidth, rect: rect) {
                    zOffset, yOffset, cols in
                    let (dst, src) = (dzt + zOffset, dyn + yOffset)
                    for k in 0..<cols { dst[k * sw] = src[k] }
                }
            }
            let xn = x + n * inChannels * plane
            if let stackedGradient {
                gemm(
                    transB: true, m: rows, n: inChannels, k: plane, a: dz.base, b: xn, beta: n == 0 ? 0 : 1,
                    c: stackedGradient.base)
            }
            if let dx {
                gemm(
                    transA: true, m: inChannels, n: plane, k: rows, a: stacked.base, b: dz.base, beta: 1,
                    c: dx + n * inChannels * plane)
            }
        }
        if let dWeight, let stackedGradient {
            unpackWeightByTap(
                from: stackedGradient.base, into: dWeight, outChannels: outChannels, inChannels: inChannels, taps: taps)
        }
    }
}
