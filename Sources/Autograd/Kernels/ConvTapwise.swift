/// Convolution as one matrix product per kernel tap, for convolutions with few output channels
/// and a large unfolded input, such as DeepLab-v2's ASPP (2048 → classes, dilation up to 24):
/// there im2col would write a mostly-zero [Cin·9, H·W] matrix only to multiply it by a
/// 21-row weight. Per tap t = (i, j), only the output rectangle whose input pixel lies inside
/// the image gets a contribution:
///   Y[:, rect] += W[:, :, i, j] · X[:, rect shifted by (i·d - p, j·d - p)].
/// The input rectangle is gathered into a compact [Cin, area] buffer so each tap is a single
/// sgemm with k = Cin.
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

    /// Calls `body(imageOffset, bufferOffset)` for each channel and row of tap (i, j)'s output
    /// rectangle: the offset of the row's first input pixel in the image [channels, H·W] (the
    /// row steps by `g.stride.w`), and of the row in a compact buffer [channels, rows·cols].
    /// Channels are split across cores; rows of different channels never overlap.
    @inline(__always)
    static func forEachTapRow(
        channels: Int, geometry g: WindowGeometry, i: Int, j: Int, rect: (r0: Int, r1: Int, c0: Int, c1: Int),
        _ body: (_ imageOffset: Int, _ bufferOffset: Int) -> Void
    ) {
        let (rows, cols) = (rect.r1 - rect.r0, rect.c1 - rect.c0)
        let plane = g.inHeight * g.inWidth
        parallelFor(channels, minimumPerThread: 16) { range in
            for c in range {
                for r in 0..<rows {
                    let ih = (rect.r0 + r) * g.stride.h - g.padding.h + i * g.dilation.h
                    let iw0 = rect.c0 * g.stride.w - g.padding.w + j * g.dilation.w
                    body(c * plane + ih * g.inWidth + iw0, (c * rows + r) * cols)
                }
            }
        }
    }

    /// Copies the input pixels seen by tap (i, j) over its output rectangle from `image`
    /// [channels, H·W] into `buffer` [channels, rows·cols].
    static func gatherTap(
        from image: UnsafePointer<Float>, into buffer: UnsafeMutablePointer<Float>, channels: Int, geometry g: WindowGeometry,
        i: Int, j: Int, rect: (r0: Int, r1: Int, c0: Int, c1: Int)
    ) {
        let (cols, sw) = (rect.c1 - rect.c0, g.stride.w)
        forEachTapRow(channels: channels, geometry: g, i: i, j: j, rect: rect) { imageOffset, bufferOffset in
            let (src, dst) = (image + imageOffset, buffer + bufferOffset)
            if sw == 1 {
                dst.update(from: src, count: cols)
            } else {
                for k in 0..<cols { dst[k] = src[k * sw] }
            }
        }
    }

    /// The adjoint of `gatherTap`: adds `buffer` [channels, rows·cols] into the input pixels of
    /// `image` [channels, H·W] seen by tap (i, j) over its output rectangle.
    static func scatterAddTap(
        from buffer: UnsafePointer<Float>, into image: UnsafeMutablePointer<Float>, channels: Int, geometry g: WindowGeometry,
        i: Int, j: Int, rect: (r0: Int, r1: Int, c0: Int, c1: Int)
    ) {
        let (cols, sw) = (rect.c1 - rect.c0, g.stride.w)
        forEachTapRow(channels: channels, geometry: g, i: i, j: j, rect: rect) { imageOffset, bufferOffset in
            let (dst, src) = (image + imageOffset, buffer + bufferOffset)
            for k in 0..<cols { dst[k * sw] += src[k] }
        }
    }

    /// Calls `body(planeOffset, blockOffset, cols)` for each channel and row of `rect`: the row's
    /// offset in planes [channels, outH·outW] and in a compact block [channels, rows·cols].
    @inline(__always)
    static func forEachRectangleRow(
        channels: Int, geometry g: WindowGeometry, rect: (r0: Int, r1: Int, c0: Int, c1: Int),
        _ body: (_ planeOffset: Int, _ blockOffset: Int, _ cols: Int) -> Void
    ) {
        let (rows, cols) = (rect.r1 - rect.r0, rect.c1 - rect.c0)
        for c in 0..<channels {
            for r in 0..<rows { body(c * g.outArea + (rect.r0 + r) * g.outWidth + rect.c0, (c * rows + r) * cols, cols) }
        }
    }

    /// Copies the rectangle `rect` of `planes` [channels, outH·outW] into `block` [channels, rows·cols].
    static func gatherRectangle(
        from planes: UnsafePointer<Float>, into block: UnsafeMutablePointer<Float>, channels: Int, geometry g: WindowGeometry,
        rect: (r0: Int, r1: Int, c0: Int, c1: Int)
    ) {
        forEachRectangleRow(channels: channels, geometry: g, rect: rect) { planeOffset, blockOffset, cols in
            (block + blockOffset).update(from: planes + planeOffset, count: cols)
        }
    }

    /// Adds `block` [channels, rows·cols] into the rectangle `rect` of `planes` [channels, outH·outW].
    static func addRectangle(
        from block: UnsafePointer<Float>, into planes: UnsafeMutablePointer<Float>, channels: Int, geometry g: WindowGeometry,
        rect: (r0: Int, r1: Int, c0: Int, c1: Int)
    ) {
        forEachRectangleRow(channels: channels, geometry: g, rect: rect) { planeOffset, blockOffset, cols in
            let (p, b) = (planes + planeOffset, block + blockOffset)
            for k in 0..<cols { p[k] += b[k] }
        }
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
        /// A gathered input rectangle [in, area] (or its gradient).
        let gathered: TensorStorage
        /// One tap's product [out, area] (or the matching output-gradient rectangle).
        let product: TensorStorage

        init(weight: UnsafePointer<Float>, inChannels: Int, outChannels: Int, geometry g: WindowGeometry) {
            packedWeight = TensorStorage(count: outChannels * inChannels * g.kernelArea, zeroed: false)
            Kernels.packWeightByTap(
                from: weight, into: packedWeight.base, outChannels: outChannels, inChannels: inChannels, taps: g.kernelArea)
            gathered = TensorStorage(count: inChannels * g.outArea, zeroed: false)
            product = TensorStorage(count: outChannels * g.outArea, zeroed: false)
        }
    }

    /// Forward of one image: y [out, outH·outW] = conv(x [in, H·W]) without bias (y is overwritten).
    static func conv2dTapwiseForward(
        x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, inChannels: Int, outChannels: Int,
        geometry g: WindowGeometry, workspace w: TapwiseWorkspace
    ) {
        y.update(repeating: 0, count: outChannels * g.outArea)
        forEachTap(g) { t, rect, area in
            let (i, j) = (t / g.kernelWidth, t % g.kernelWidth)
            gatherTap(from: x, into: w.gathered.base, channels: inChannels, geometry: g, i: i, j: j, rect: rect)
            gemm(
                m: outChannels, n: area, k: inChannels, a: w.packedWeight.base + t * outChannels * inChannels,
                b: w.gathered.base, c: w.product.base)
            addRectangle(from: w.product.base, into: y, channels: outChannels, geometry: g, rect: rect)
        }
    }

    /// Backward of one image: accumulates dW (packed per tap) and dx (when given).
    static func conv2dTapwiseBackward(
        x: UnsafePointer<Float>, dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>?,
        packedWeightGradient: UnsafeMutablePointer<Float>?, inChannels: Int, outChannels: Int,
        geometry g: WindowGeometry, workspace w: TapwiseWorkspace
    ) {
        let (buffer, product) = (w.gathered.base, w.product.base)
        forEachTap(g) { t, rect, area in
            let (i, j) = (t / g.kernelWidth, t % g.kernelWidth)
            gatherRectangle(from: dy, into: product, channels: outChannels, geometry: g, rect: rect)
            if let packedWeightGradient {
                // dW_t += dY_rect · X_tapᵀ
                gatherTap(from: x, into: buffer, channels: inChannels, geometry: g, i: i, j: j, rect: rect)
                gemm(
                    transB: true, m: outChannels, n: inChannels, k: area, a: product, b: buffer, beta: 1,
                    c: packedWeightGradient + t * outChannels * inChannels)
            }
            if let dx {
                // dX_tap += W_tᵀ · dY_rect
                gemm(
                    transA: true, m: inChannels, n: area, k: outChannels, a: w.packedWeight.base + t * outChannels * inChannels,
                    b: product, c: buffer)
                scatterAddTap(from: buffer, into: dx, channels: inChannels, geometry: g, i: i, j: j, rect: rect)
            }
        }
    }
}
