/// Convolution as one matrix product per kernel tap, for convolutions with few output channels
/// and a large unfolded input, such as DeepLab-v2's ASPP (2048 → classes, dilation up to 24):
/// there im2col would write a mostly-zero [Cin·9, H·W] matrix only to multiply it by a
/// 21-row weight. Per tap t = (i, j), only the output rectangle whose input pixel lies inside
/// the image gets a contribution:
///   Y[:, rect] += W[:, :, i, j] · X[:, rect shifted by (i·d - p, j·d - p)].
/// The input seen by the tap over the rectangle's whole output rows is gathered into a
/// [Cin, rows·outW] buffer (zeros in the columns outside the rectangle), so each tap is a
/// single sgemm with k = Cin that adds straight into Y's rows.
extension Kernels {
    /// The valid output rectangle of tap (i, j): rows [r0, r1) and columns [c0, c1).
    static func tapRectangle(_ g: WindowGeometry, i: Int, j: Int) -> (r0: Int, r1: Int, c0: Int, c1: Int) {
        let (r0, r1) = g.validRange(
            offset: i * g.dilation.h, stride: g.stride.h, padding: g.padding.h,
            inSize: g.inHeight, outSize: g.outHeight)
        let (c0, c1) = g.validRange(
            offset: j * g.dilation.w, stride: g.stride.w, padding: g.padding.w,
            inSize: g.inWidth, outSize: g.outWidth)
        return (r0, r1, c0, c1)
    }

    /// Weight [out, in, kh, kw] → per-tap matrices [kh·kw, out, in].
    static func packWeightByTap(
        from weight: UnsafePointer<Float>, into packed: UnsafeMutablePointer<Float>, outChannels: Int, inChannels: Int,
        taps: Int
    ) {
        forEachWeightEntry(outChannels: outChannels, inChannels: inChannels, taps: taps) { a, b in packed[b] = weight[a] }
    }

    /// Per-tap matrices [kh·kw, out, in] → weight [out, in, kh, kw] (the inverse of `packWeightByTap`).
    static func unpackWeightByTap(
        from packed: UnsafePointer<Float>, into weight: UnsafeMutablePointer<Float>, outChannels: Int, inChannels: Int,
        taps: Int
    ) {
        forEachWeightEntry(outChannels: outChannels, inChannels: inChannels, taps: taps) { a, b in weight[a] = packed[b] }
    }

    /// Calls `body(a, b)` for each weight entry: `a` its index in [out, in, taps], `b` in [taps, out, in].
    @inline(__always)
    static func forEachWeightEntry(outChannels: Int, inChannels: Int, taps: Int, _ body: (_ a: Int, _ b: Int) -> Void) {
        for o in 0..<outChannels {
            for c in 0..<inChannels {
                for t in 0..<taps { body((o * inChannels + c) * taps + t, (t * outChannels + o) * inChannels + c) }
            }
        }
    }

    /// Calls `body(tap, rect, area)` for each tap whose valid output rectangle is not empty.
    static func forEachTap(_ g: WindowGeometry, _ body: (Int, (r0: Int, r1: Int, c0: Int, c1: Int), Int) -> Void) {
        for i in 0..<g.kernelHeight {
            for j in 0..<g.kernelWidth {
                let rect = tapRectangle(g, i: i, j: j)
                let area = (rect.r1 - rect.r0) * (rect.c1 - rect.c0)
                if area > 0 { body(i * g.kernelWidth + j, rect, area) }
            }
        }
    }

    /// Buffers of the tap-wise convolution, allocated once per call and reused per image.
    struct TapwiseWorkspace {
        /// The weight as per-tap matrices [kh·kw, out, in].
        let packedWeight: TensorStorage
        /// A tap's input over whole output rows [in, rows·outW] (or its gradient).
        let gathered: TensorStorage

        init(weight: UnsafePointer<Float>, inChannels: Int, outChannels: Int, geometry g: WindowGeometry) {
            packedWeight = TensorStorage(count: outChannels * inChannels * g.kernelArea, zeroed: false)
            Kernels.packWeightByTap(
                from: weight, into: packedWeight.base, outChannels: outChannels, inChannels: inChannels, taps: g.kernelArea)
            gathered = TensorStorage(count: inChannels * g.outArea, zeroed: false)
        }
    }

    /// Calls `body(imageOffset, bufferOffset)` for each channel and output row of tap (i, j)'s
    /// rectangle: the offset in the image [channels, H·W] of the input pixel the tap sees at the
    /// rectangle's first column (the row steps by `g.stride.w`), and of the row's start in a
    /// buffer of whole output rows [channels, rows·outW]. Channels are split across the pool.
    @inline(__always)
    static func forEachTapRow(
        channels: Int, geometry g: WindowGeometry, i: Int, j: Int, rect: (r0: Int, r1: Int, c0: Int, c1: Int),
        _ body: (_ imageOffset: Int, _ bufferOffset: Int) -> Void
    ) {
        let (rows, plane) = (rect.r1 - rect.r0, g.inHeight * g.inWidth)
        let iw0 = rect.c0 * g.stride.w - g.padding.w + j * g.dilation.w
        parallelFor(channels, minimumPerThread: 16) { range in
            for c in range {
                for r in 0..<rows {
                    let ih = (rect.r0 + r) * g.stride.h - g.padding.h + i * g.dilation.h
                    body(c * plane + ih * g.inWidth + iw0, (c * rows + r) * g.outWidth)
                }
            }
        }
    }

    /// Copies the input pixels tap (i, j) sees over the output rows `rect.r0..<rect.r1` into
    /// `buffer` [channels, rows·outW], whole output rows: the columns outside the tap's valid
    /// range `rect.c0..<rect.c1` are zero, so a product over whole rows adds nothing there.
    static func gatherTapRows(
        from image: UnsafePointer<Float>, into buffer: UnsafeMutablePointer<Float>, channels: Int, geometry g: WindowGeometry,
        i: Int, j: Int, rect: (r0: Int, r1: Int, c0: Int, c1: Int)
    ) {
        let (cols, ow, sw) = (rect.c1 - rect.c0, g.outWidth, g.stride.w)
        forEachTapRow(channels: channels, geometry: g, i: i, j: j, rect: rect) { imageOffset, bufferOffset in
            let (src, dst) = (image + imageOffset, buffer + bufferOffset)
            dst.update(repeating: 0, count: rect.c0)
            if sw == 1 {
                (dst + rect.c0).update(from: src, count: cols)
            } else {
                for k in 0..<cols { dst[rect.c0 + k] = src[k * sw] }
            }
            (dst + rect.c1).update(repeating: 0, count: ow - rect.c1)
        }
    }

    /// The adjoint of `gatherTapRows` on the valid columns: adds them from `buffer`
    /// [channels, rows·outW] into the input pixels of `image` [channels, H·W] tap (i, j) sees.
    static func scatterAddTapRows(
        from buffer: UnsafePointer<Float>, into image: UnsafeMutablePointer<Float>, channels: Int, geometry g: WindowGeometry,
        i: Int, j: Int, rect: (r0: Int, r1: Int, c0: Int, c1: Int)
    ) {
        let (cols, sw) = (rect.c1 - rect.c0, g.stride.w)
        forEachTapRow(channels: channels, geometry: g, i: i, j: j, rect: rect) { imageOffset, bufferOffset in
            let (dst, src) = (image + imageOffset, buffer + bufferOffset + rect.c0)
            for k in 0..<cols { dst[k * sw] += src[k] }
        }
    }

    /// Forward of one image: y [out, outH·outW] = conv(x [in, H·W]) without bias (y is overwritten).
    /// Each tap's product covers whole output rows of its rectangle (zero inputs outside its
    /// columns) and adds straight into y (leading dimension outH·outW): no product buffer to
    /// zero and add back.
    static func conv2dTapwiseForward(
        x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, inChannels: Int, outChannels: Int,
        geometry g: WindowGeometry, workspace w: TapwiseWorkspace
    ) {
        y.update(repeating: 0, count: outChannels * g.outArea)
        forEachTap(g) { t, rect, _ in
            let (i, j) = (t / g.kernelWidth, t % g.kernelWidth)
            gatherTapRows(from: x, into: w.gathered.base, channels: inChannels, geometry: g, i: i, j: j, rect: rect)
            gemm(
                m: outChannels, n: (rect.r1 - rect.r0) * g.outWidth, k: inChannels,
                a: w.packedWeight.base + t * outChannels * inChannels, b: w.gathered.base, beta: 1,
                c: y + rect.r0 * g.outWidth, ldc: g.outArea)
        }
    }

    /// Backward of one image: accumulates dW (packed per tap) and dx (when given), over whole
    /// output rows as the forward: dy's rows are read in place (leading dimension outH·outW).
    static func conv2dTapwiseBackward(
        x: UnsafePointer<Float>, dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>?,
        packedWeightGradient: UnsafeMutablePointer<Float>?, inChannels: Int, outChannels: Int,
        geometry g: WindowGeometry, workspace w: TapwiseWorkspace
    ) {
        let buffer = w.gathered.base
        forEachTap(g) { t, rect, _ in
            let (i, j) = (t / g.kernelWidth, t % g.kernelWidth)
            let (span, rows) = ((rect.r1 - rect.r0) * g.outWidth, dy + rect.r0 * g.outWidth)
            if let packedWeightGradient {
                // dW_t += dY_rows · X_tapᵀ (zero inputs outside the tap's columns add nothing)
                gatherTapRows(from: x, into: buffer, channels: inChannels, geometry: g, i: i, j: j, rect: rect)
                gemm(
                    transB: true, m: outChannels, n: inChannels, k: span, a: rows, lda: g.outArea, b: buffer, beta: 1,
                    c: packedWeightGradient + t * outChannels * inChannels)
            }
            if let dx {
                // dX_tap += W_tᵀ · dY_rows, on the tap's valid columns
                gemm(
                    transA: true, m: inChannels, n: span, k: outChannels, a: w.packedWeight.base + t * outChannels * inChannels,
                    b: rows, ldb: g.outArea, c: buffer)
                scatterAddTapRows(from: buffer, into: dx, channels: inChannels, geometry: g, i: i, j: j, rect: rect)
            }
        }
    }
}
