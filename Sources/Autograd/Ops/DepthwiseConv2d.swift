extension Tensor {
    /// Depthwise 2-D convolution: each channel convolved with its own kernel, as
    /// torch.nn.functional.conv2d with groups = channels (MobileSAM's TinyViT: MBConv, patch
    /// merging, the blocks' local convolution).
    ///
    /// Direct loops over each plane (an output row is a sum of shifted input rows, one per tap),
    /// planes in parallel; backward the same loops scatter into dx, and dw, db sum per channel.
    /// - Parameters:
    ///   - x: [N, C, H, W].
    ///   - weight: [C, 1, kh, kw] (torch's layout for groups = C).
    ///   - bias: [C] or nil.
    /// - Returns: [N, C, (H + 2·padding − kh) / stride + 1, (W + 2·padding − kw) / stride + 1].
    public static func depthwiseConv2d(_ x: Tensor, weight: Tensor, bias: Tensor?, stride: Int = 1, padding: Int = 0)
        -> Tensor
    {
        precondition(
            x.rank == 4 && weight.rank == 4 && weight.shape[0] == x.shape[1] && weight.shape[1] == 1 && stride > 0
                && padding >= 0,
            "depthwiseConv2d: input \(x.shape) and weight \(weight.shape) do not match (NCHW, [C, 1, kh, kw])")
        let (n, c) = (x.shape[0], x.shape[1])
        if let bias { precondition(bias.shape == [c], "depthwiseConv2d: bias \(bias.shape) for \(c) channels") }
        let g = DepthwiseGeometry(
            height: x.shape[2], width: x.shape[3], kernelHeight: weight.shape[2], kernelWidth: weight.shape[3],
            stride: stride, padding: padding)
        precondition(
            g.outHeight > 0 && g.outWidth > 0, "depthwiseConv2d: kernel \(weight.shape) leaves no output for input \(x.shape)")
        let y = Tensor(uninitialized: [n, c, g.outHeight, g.outWidth])
        let (xp, wp, yp, bp) = (x.storage.base, weight.storage.base, y.storage.base, bias?.storage.base)
        parallelFor(n * c, minimumPerThread: Swift.max(1, 16384 / Swift.max(g.outHeight * g.outWidth, 1))) { planes in
            // One zero row per chunk: the padding above and below in the 3×3 path.
            let zero = UnsafeMutablePointer<Float>.allocate(capacity: g.width)
            zero.initialize(repeating: 0, count: g.width)
            defer { zero.deallocate() }
            for plane in planes {
                let channel = plane % c
                Kernels.depthwisePlane(
                    x: xp + plane * g.height * g.width, weight: wp + channel * g.taps, bias: bp.map { $0[channel] } ?? 0,
                    y: yp + plane * g.outHeight * g.outWidth, geometry: g, zeroRow: zero)
            }
        }
        let (cx, cw) = (x.detached(), weight.detached())
        let needX = x.requiresGrad, needW = weight.requiresGrad, needB = bias?.requiresGrad ?? false
        var inputs = [x, weight]
        if let bias { inputs.append(bias) }
        return record(y, name: "depthwise_conv2d", inputs: inputs) { dy in
            let dyp = dy.storage.base
            var dx: Tensor?
            if needX {
                let d = Tensor(zeros: cx.shape)
                let (dxp, wp) = (d.storage.base, cw.storage.base)
                parallelFor(n * c) { planes in
                    for plane in planes {
                        Kernels.depthwisePlaneBackward(
                            dy: dyp + plane * g.outHeight * g.outWidth, weight: wp + (plane % c) * g.taps,
                            dx: dxp + plane * g.height * g.width, geometry: g)
                    }
                }
                dx = d
            }
            var dw: Tensor?, db: Tensor?
            if needW || needB {
                let w = Tensor(zeros: cw.shape), b = Tensor(zeros: [c])
                let (dwp, dbp, xp) = (w.storage.base, b.storage.base, cx.storage.base)
                parallelFor(c) { channels in
                    for channel in channels {
                        for image in 0..<n {
                            let plane = image * c + channel
                            let out = dyp + plane * g.outHeight * g.outWidth
                            Kernels.depthwisePlaneWeightGradient(
                                x: xp + plane * g.height * g.width, dy: out, dWeight: dwp + channel * g.taps, geometry: g)
                            var sum: Float = 0
                            for i in 0..<(g.outHeight * g.outWidth) { sum += out[i] }
                            dbp[channel] += sum
                        }
                    }
                }
                dw = needW ? w : nil
                db = needB ? b : nil
            }
            return [dx, dw] + (bias == nil ? [] : [db])
        }
    }
}

/// Sizes of one depthwise plane: input, kernel, stride and zero padding on every side.
struct DepthwiseGeometry {
    let height, width, kernelHeight, kernelWidth, stride, padding: Int
    /// `validColumns` for every tap column, computed once.
    let columns: [Range<Int>]

    init(height: Int, width: Int, kernelHeight: Int, kernelWidth: Int, stride: Int, padding: Int) {
        (self.height, self.width, self.kernelHeight, self.kernelWidth) = (height, width, kernelHeight, kernelWidth)
        (self.stride, self.padding) = (stride, padding)
        let outWidth = (width + 2 * padding - kernelWidth) / stride + 1
        columns = (0..<kernelWidth).map {
            Self.validColumns($0, width: width, outWidth: outWidth, stride: stride, padding: padding)
        }
    }
    var outHeight: Int { (height + 2 * padding - kernelHeight) / stride + 1 }
    var outWidth: Int { (width + 2 * padding - kernelWidth) / stride + 1 }
    var taps: Int { kernelHeight * kernelWidth }

    /// For tap column `kx`, the output columns whose input column ox·stride − padding + kx lies
    /// inside the row.
    static func validColumns(_ kx: Int, width: Int, outWidth: Int, stride: Int, padding: Int) -> Range<Int> {
        let shift = kx - padding
        // ox·s + shift ≥ 0  and  ox·s + shift ≤ width − 1
        let low = shift >= 0 ? 0 : (-shift + stride - 1) / stride
        let high = width - 1 - shift < 0 ? 0 : Swift.min(outWidth, (width - 1 - shift) / stride + 1)
        return low..<Swift.max(low, high)
    }

    /// The input row of output row `oy` and tap row `ky`, nil when it is padding.
    func inputRow(_ oy: Int, _ ky: Int) -> Int? {
        let iy = oy * stride - padding + ky
        return iy >= 0 && iy < height ? iy : nil
    }
}

extension Kernels {
    /// One plane of `Tensor.depthwiseConv2d`: y = bias + Σ_taps w · shifted x.
    /// `zeroRow`: `g.width` zeros (the 3×3 path reads it for the padding rows).
    static func depthwisePlane(
        x: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: Float, y: UnsafeMutablePointer<Float>,
        geometry g: DepthwiseGeometry, zeroRow: UnsafePointer<Float>
    ) {
        if g.kernelHeight == 3 && g.kernelWidth == 3 && g.stride == 1 && g.padding == 1 && g.width >= 3 {
            depthwisePlane3x3(x: x, weight: weight, bias: bias, y: y, height: g.height, width: g.width, zero: zeroRow)
            return
        }
        let columns = g.columns
        for oy in 0..<g.outHeight {
            let out = y + oy * g.outWidth
            for ox in 0..<g.outWidth { out[ox] = bias }
            for ky in 0..<g.kernelHeight {
                guard let iy = g.inputRow(oy, ky) else { continue }
                let row = x + iy * g.width
                for kx in 0..<g.kernelWidth {
                    let w = weight[ky * g.kernelWidth + kx], shift = kx - g.padding
                    if g.stride == 1 {
                        for ox in columns[kx] { out[ox] += w * row[ox + shift] }
                    } else {
                        for ox in columns[kx] { out[ox] += w * row[ox * g.stride + shift] }
                    }
                }
            }
        }
    }

    /// `depthwisePlane` for 3×3, stride 1, padding 1 (MobileSAM's MBConv and local
    /// convolutions): each inner output column sums its nine taps in one pass over three input
    /// rows (a zero row stands for the padding above and below), which the compiler vectorises;
    /// the two edge columns take the general sum. The same terms in the same order as the
    /// general loop (bias, then taps row by row, left to right).
    static func depthwisePlane3x3(
        x: UnsafePointer<Float>, weight w: UnsafePointer<Float>, bias: Float, y: UnsafeMutablePointer<Float>, height: Int,
        width: Int, zero: UnsafePointer<Float>
    ) {
        let (w0, w1, w2, w3, w4, w5, w6, w7, w8) = (w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7], w[8])
        for oy in 0..<height {
            let above = oy > 0 ? x + (oy - 1) * width : zero
            let row = x + oy * width
            let below = oy + 1 < height ? x + (oy + 1) * width : zero
            let out = y + oy * width
            for ox in 1..<(width - 1) {
                var s = bias
                s += w0 * above[ox - 1]
                s += w1 * above[ox]
                s += w2 * above[ox + 1]
                s += w3 * row[ox - 1]
                s += w4 * row[ox]
                s += w5 * row[ox + 1]
                s += w6 * below[ox - 1]
                s += w7 * below[ox]
                s += w8 * below[ox + 1]
                out[ox] = s
            }
            let last = width - 1
            out[0] = bias + w1 * above[0] + w2 * above[1] + w4 * row[0] + w5 * row[1] + w7 * below[0] + w8 * below[1]
            out[last] =
                bias + w0 * above[last - 1] + w1 * above[last] + w3 * row[last - 1] + w4 * row[last] + w6 * below[last - 1]
                + w7 * below[last]
        }
    }

    /// dx of one plane: every tap's weight times dy, added where the forward read.
    static func depthwisePlaneBackward(
        dy: UnsafePointer<Float>, weight: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>, geometry g: DepthwiseGeometry
    ) {
        let columns = g.columns
        for oy in 0..<g.outHeight {
            let grad = dy + oy * g.outWidth
            for ky in 0..<g.kernelHeight {
                guard let iy = g.inputRow(oy, ky) else { continue }
                let row = dx + iy * g.width
                for kx in 0..<g.kernelWidth {
                    let w = weight[ky * g.kernelWidth + kx], shift = kx - g.padding
                    for ox in columns[kx] { row[ox * g.stride + shift] += w * grad[ox] }
                }
            }
        }
    }

    /// Adds one plane's dw: for every tap, Σ dy · the input it read.
    static func depthwisePlaneWeightGradient(
        x: UnsafePointer<Float>, dy: UnsafePointer<Float>, dWeight: UnsafeMutablePointer<Float>, geometry g: DepthwiseGeometry
    ) {
        let columns = g.columns
        for ky in 0..<g.kernelHeight {
            for kx in 0..<g.kernelWidth {
                let shift = kx - g.padding
                var sum: Float = 0
                for oy in 0..<g.outHeight {
                    guard let iy = g.inputRow(oy, ky) else { continue }
                    let (row, grad) = (x + iy * g.width, dy + oy * g.outWidth)
                    for ox in columns[kx] { sum += grad[ox] * row[ox * g.stride + shift] }
                }
                dWeight[ky * g.kernelWidth + kx] += sum
            }
        }
    }
}
