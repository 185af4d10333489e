/// Geometry of a 2-D convolution or pooling window over one image plane.
public struct WindowGeometry: Equatable, Sendable {
    public var inHeight, inWidth: Int
    public var kernelHeight, kernelWidth: Int
    public var stride: (h: Int, w: Int)
    public var padding: (h: Int, w: Int)
    public var dilation: (h: Int, w: Int)
    public var outHeight, outWidth: Int

    /// Output size as torch.nn.Conv2d: floor((in + 2p - d(k-1) - 1) / s) + 1.
    public init(
        inHeight: Int, inWidth: Int, kernelHeight: Int, kernelWidth: Int,
        stride: (Int, Int), padding: (Int, Int), dilation: (Int, Int)
    ) {
        self.inHeight = inHeight
        self.inWidth = inWidth
        self.kernelHeight = kernelHeight
        self.kernelWidth = kernelWidth
        self.stride = stride
        self.padding = padding
        self.dilation = dilation
        outHeight = (inHeight + 2 * padding.0 - dilation.0 * (kernelHeight - 1) - 1) / stride.0 + 1
        outWidth = (inWidth + 2 * padding.1 - dilation.1 * (kernelWidth - 1) - 1) / stride.1 + 1
    }

    public static func == (a: Self, b: Self) -> Bool {
        a.inHeight == b.inHeight && a.inWidth == b.inWidth && a.kernelHeight == b.kernelHeight
            && a.kernelWidth == b.kernelWidth && a.stride == b.stride && a.padding == b.padding
            && a.dilation == b.dilation && a.outHeight == b.outHeight && a.outWidth == b.outWidth
    }

    /// Rows of the im2col matrix per input channel.
    public var kernelArea: Int { kernelHeight * kernelWidth }
    /// Output pixels per plane.
    public var outArea: Int { outHeight * outWidth }

    /// The output columns [lo, hi) whose input column `o * s - p + offset` lies inside the image.
    @inline(__always)
    func validRange(offset: Int, stride s: Int, padding p: Int, inSize: Int, outSize: Int) -> (Int, Int) {
        // o * s - p + offset >= 0  <=>  o >= ceil((p - offset) / s)
        let first = p - offset
        let lo = first <= 0 ? 0 : (first + s - 1) / s
        // o * s - p + offset <= inSize - 1
        let last = inSize - 1 + p - offset
        let hi = last < 0 ? 0 : last / s + 1
        return (Swift.min(lo, outSize), Swift.max(Swift.min(hi, outSize), Swift.min(lo, outSize)))
    }
}

extension Kernels {
    /// Unfolds one image [channels, H, W] into columns [channels * kh * kw, outH * outW]
    /// (caffe's im2col; row index (c * kh + i) * kw + j), zeros where the window leaves the image.
    public static func im2col(
        _ x: UnsafePointer<Float>, channels: Int, geometry g: WindowGeometry, cols: UnsafeMutablePointer<Float>
    ) {
        let rows = channels * g.kernelArea
        let plane = g.inHeight * g.inWidth
        parallelFor(rows, minimumPerThread: 8) { range in
            for row in range {
                let c = row / g.kernelArea, ki = (row / g.kernelWidth) % g.kernelHeight, kj = row % g.kernelWidth
                let src = x + c * plane
                let dst = cols + row * g.outArea
                let hOffset = ki * g.dilation.h, wOffset = kj * g.dilation.w
                let (wlo, whi) = g.validRange(
                    offset: wOffset, stride: g.stride.w, padding: g.padding.w,
                    inSize: g.inWidth, outSize: g.outWidth)
                for oh in 0..<g.outHeight {
                    let d = dst + oh * g.outWidth
                    let ih = oh * g.stride.h - g.padding.h + hOffset
                    if ih < 0 || ih >= g.inHeight {
                        d.update(repeating: 0, count: g.outWidth)
                        continue
                    }
                    if wlo > 0 { d.update(repeating: 0, count: wlo) }
                    let s = src + ih * g.inWidth - g.padding.w + wOffset
                    if g.stride.w == 1 {
                        if whi > wlo { (d + wlo).update(from: s + wlo, count: whi - wlo) }
                    } else {
                        let sw = g.stride.w
                        for ow in wlo..<whi { d[ow] = s[ow * sw] }
                    }
                    if whi < g.outWidth { (d + whi).update(repeating: 0, count: g.outWidth - whi) }
                }
            }
        }
    }

    /// Adds columns [channels * kh * kw, outH * outW] back into an image [channels, H, W]
    /// (the adjoint of `im2col`; the image is accumulated into, not overwritten).
    public static func col2im(
        _ cols: UnsafePointer<Float>, channels: Int, geometry g: WindowGeometry, x: UnsafeMutablePointer<Float>
    ) {
        let plane = g.inHeight * g.inWidth
        // One channel per task: a channel's rows only touch that channel's plane, so no races.
        parallelFor(channels) { range in
            for c in range {
                let dstPlane = x + c * plane
                for ki in 0..<g.kernelHeight {
                    for kj in 0..<g.kernelWidth {
                        let row = (c * g.kernelHeight + ki) * g.kernelWidth + kj
                        let src = cols + row * g.outArea
                        let hOffset = ki * g.dilation.h, wOffset = kj * g.dilation.w
                        let (wlo, whi) = g.validRange(
                            offset: wOffset, stride: g.stride.w, padding: g.padding.w,
                            inSize: g.inWidth, outSize: g.outWidth)
                        if whi <= wlo { continue }
                        let sw = g.stride.w
                        for oh in 0..<g.outHeight {
                            let ih = oh * g.stride.h - g.padding.h + hOffset
                            if ih < 0 || ih >= g.inHeight { continue }
                            let d = dstPlane + ih * g.inWidth - g.padding.w + wOffset
                            let s = src + oh * g.outWidth
                            for ow in wlo..<whi { d[ow * sw] += s[ow] }
                        }
                    }
                }
            }
        }
    }
}
