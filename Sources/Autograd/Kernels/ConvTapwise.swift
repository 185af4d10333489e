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

    /// Copies the input pixels seen by tap (i, j) over its output rectangle into
    /// `buffer` [channels, rows·cols], or adds `buffer` back into them when `scatter` is true.
    static func tapTransfer(
        image x: UnsafeMutablePointer<Float>, buffer: UnsafeMutablePointer<Float>, channels: Int, geometry g: WindowGeometry,
        i: Int, j: Int, rect: (r0: Int, r1: Int, c0: Int, c1: Int), scatter: Bool
    ) {
        let (rows, cols) = (rect.r1 - rect.r0, rect.c1 - rect.c0)
        let plane = g.inHeight * g.inWidth
        parallelFor(channels, minimumPerThread: 16) { range in
            for c in range {
                for r in 0..<rows {
                    let ih = (rect.r0 + r) * g.stride.h - g.padding.h + i * g.dilation.h
                    let iw0 = rect.c0 * g.stride.w - g.padding.w + j * g.dilation.w
                    let src = x + c * plane + ih * g.inWidth + iw0
                    let dst = buffer + (c * rows + r) * cols
                    let sw = g.stride.w
                    if scatter {
                        for k in 0..<cols { src[k * sw] += dst[k] }
                    } else if sw == 1 {
                        dst.update(from: src, count: cols)
                    } else {
                        for k in 0..<cols { dst[k] = src[k * sw] }
                    }
                }
            }
        }
    }

    /// Adds `block` [channels, rows·cols] into the rectangle of `planes` [channels, outH·outW]
    /// (or copies the rectangle out into `block` when `gather` is true).
    static func rectangleTransfer(
        planes y: UnsafeMutablePointer<Float>, block: UnsafeMutablePointer<Float>, channels: Int, geometry g: WindowGeometry,
        rect: (r0: Int, r1: Int, c0: Int, c1: Int), gather: Bool
    ) {
        let (rows, cols) = (rect.r1 - rect.r0, rect.c1 - rect.c0)
        for c in 0..<channels {
            for r in 0..<rows {
                let p = y + c * g.outArea + (rect.r0 + r) * g.outWidth + rect.c0
                let b = block + (c * rows + r) * cols
                if gather { b.update(from: p, count: cols) } else { for k in 0..<cols { p[k] += b[k] } }
            }
        }
    }

    /// Weight [out, in, kh, kw] → per-tap matrices [kh·kw, out, in] (or back, when `inverse`).
    static func repackWeightByTap(
        _ w: UnsafePointer<Float>, _ packed: UnsafeMutablePointer<Float>, outChannels: Int, inChannels: Int, taps: Int,
        inverse: Bool = false
    ) {
        let src = UnsafeMutablePointer(mutating: w)
        for o in 0..<outChannels {
            for c in 0..<inChannels {
                for t in 0..<taps {
                    let a = (o * inChannels + c) * taps + t, b = (t * outChannels + o) * inChannels + c
                    if inverse { src[a] = packed[b] } else { packed[b] = src[a] }
                }
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
            Kernels.repackWeightByTap(
                weight, packedWeight.base, outChannels: outChannels, inChannels: inChannels, taps: g.kernelArea)
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
        let image = UnsafeMutablePointer(mutating: x)
        forEachTap(g) { t, rect, area in
            let (i, j) = (t / g.kernelWidth, t % g.kernelWidth)
            tapTransfer(
                image: image, buffer: w.gathered.base, channels: inChannels, geometry: g, i: i, j: j, rect: rect, scatter: false)
            gemm(
                m: outChannels, n: area, k: inChannels, a: w.packedWeight.base + t * outChannels * inChannels,
                b: w.gathered.base, c: w.product.base)
            rectangleTransfer(planes: y, block: w.product.base, channels: outChannels, geometry: g, rect: rect, gather: false)
        }
    }

    /// Backward of one image: accumulates dW (packed per tap) and dx (when given).
    static func conv2dTapwiseBackward(
        x: UnsafePointer<Float>, dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>?,
        packedWeightGradient: UnsafeMutablePointer<Float>?, inChannels: Int, outChannels: Int,
        geometry g: WindowGeometry, workspace w: TapwiseWorkspace
    ) {
        let image = UnsafeMutablePointer(mutating: x)
        let (buffer, product) = (w.gathered.base, w.product.base)
        forEachTap(g) { t, rect, area in
            let (i, j) = (t / g.kernelWidth, t % g.kernelWidth)
            rectangleTransfer(
                planes: UnsafeMutablePointer(mutating: dy), block: product, channels: outChannels,
                geometry: g, rect: rect, gather: true)
            if let packedWeightGradient {
                // dW_t += dY_rect · X_tapᵀ
                tapTransfer(
                    image: image, buffer: buffer, channels: inChannels, geometry: g, i: i, j: j, rect: rect, scatter: false)
                gemm(
                    transB: true, m: outChannels, n: inChannels, k: area, a: product, b: buffer, beta: 1,
                    c: packedWeightGradient + t * outChannels * inChannels)
            }
            if let dx {
                // dX_tap += W_tᵀ · dY_rect
                gemm(
                    transA: true, m: inChannels, n: area, k: outChannels, a: w.packedWeight.base + t * outChannels * inChannels,
                    b: product, c: buffer)
                tapTransfer(image: dx, buffer: buffer, channels: inChannels, geometry: g, i: i, j: j, rect: rect, scatter: true)
            }
        }
    }
}
