extension Kernels {
    /// y[n] = col2im(Wᵀ · x[n]) + b: transposed convolution of x [N, Cin, H, W] with weight
    /// [Cin, Cout, kh, kw] (torch ConvTranspose2d layout). `geometry` describes the adjoint
    /// convolution: its input is the output image (Ho × Wo) and its output size is H × W.
    public static func convTranspose2dForward(
        x: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
        y: UnsafeMutablePointer<Float>, batch: Int, inChannels: Int, outChannels: Int, geometry g: WindowGeometry
    ) {
        let rows = outChannels * g.kernelArea
        let inPlane = inChannels * g.outArea, outPlane = outChannels * g.inHeight * g.inWidth
        let cols = TensorStorage(count: rows * g.outArea, zeroed: false)
        if tilesWithoutOverlap(g) {
            // Each output pixel gets exactly one tap: write it once with its bias (same sums as
            // the general path's 0 + tap + bias), no zero fill or bias pass over y.
            for n in 0..<batch {
                gemm(transA: true, m: rows, n: g.outArea, k: inChannels, a: weight, b: x + n * inPlane, c: cols.base)
                placeTiles(cols.base, bias: bias, channels: outChannels, geometry: g, y: y + n * outPlane)
            }
            return
        }
        y.update(repeating: 0, count: batch * outPlane)
        for n in 0..<batch {
            gemm(transA: true, m: rows, n: g.outArea, k: inChannels, a: weight, b: x + n * inPlane, c: cols.base)
            col2im(cols.base, channels: outChannels, geometry: g, x: y + n * outPlane)
        }
        if let bias {
            let area = g.inHeight * g.inWidth
            parallelFor(batch * outChannels, minimumPerThread: 16) { r in
                for row in r {
                    let v = bias[row % outChannels], p = y + row * area
                    for i in 0..<area { p[i] += v }
                }
            }
        }
    }

    /// Gradients of `convTranspose2dForward` (each output optional, all overwritten):
    /// dx[n] = W · im2col(dy[n]), dW = Σ_n x[n] · im2col(dy[n])ᵀ, dBias = Σ dy per channel.
    public static func convTranspose2dBackward(
        x: UnsafePointer<Float>, weight: UnsafePointer<Float>, dy: UnsafePointer<Float>,
        dx: UnsafeMutablePointer<Float>?, dWeight: UnsafeMutablePointer<Float>?, dBias: UnsafeMutablePointer<Float>?,
        batch: Int, inChannels: Int, outChannels: Int, geometry g: WindowGeometry
    ) {
        let rows = outChannels * g.kernelArea
        let inPlane = inChannels * g.outArea, area = g.inHeight * g.inWidth, outPlane = outChannels * area
        if dx != nil || dWeight != nil {
            let cols = TensorStorage(count: rows * g.outArea, zeroed: false)
            for n in 0..<batch {
                im2col(dy + n * outPlane, channels: outChannels, geometry: g, cols: cols.base)
                if let dx {
                    gemm(m: inChannels, n: g.outArea, k: rows, a: weight, b: cols.base, c: dx + n * inPlane)
                }
                if let dWeight {
                    gemm(
                        transB: true, m: inChannels, n: rows, k: g.outArea, a: x + n * inPlane, b: cols.base,
                        beta: n == 0 ? 0 : 1, c: dWeight)
                }
            }
        }
        if let dBias {
            for co in 0..<outChannels {
                var s: Float = 0
                for n in 0..<batch { s += sum(dy + n * outPlane + co * area, count: area) }
                dBias[co] = s
            }
        }
    }
}

extension Kernels {
    /// Whether a transposed convolution's taps tile its output exactly: stride = kernel, no
    /// padding or dilation, output = input · stride (SAM's 2×2 / 2 upscaling).
    static func tilesWithoutOverlap(_ g: WindowGeometry) -> Bool {
        g.stride.h == g.kernelHeight && g.stride.w == g.kernelWidth && g.padding == (0, 0) && g.dilation == (1, 1)
            && g.inHeight == g.outHeight * g.kernelHeight && g.inWidth == g.outWidth * g.kernelWidth
    }

    /// col2im plus bias for `tilesWithoutOverlap` geometries, overwriting y [channels, H, W]:
    /// y[c, i·kh + ki, j·kw + kj] = cols[(c·kh + ki)·kw + kj, i·w + j] + bias[c].
    static func placeTiles(
        _ cols: UnsafePointer<Float>, bias: UnsafePointer<Float>?, channels: Int, geometry g: WindowGeometry,
        y: UnsafeMutablePointer<Float>
    ) {
        let (kh, kw, h, w) = (g.kernelHeight, g.kernelWidth, g.outHeight, g.outWidth)
        let plane = g.inHeight * g.inWidth
        parallelFor(channels) { range in
            for c in range {
                let b = bias?[c] ?? 0
                for ki in 0..<kh {
                    for kj in 0..<kw {
                        let src = cols + ((c * kh + ki) * kw + kj) * g.outArea
                        for i in 0..<h {
                            let s = src + i * w, d = y + c * plane + (i * kh + ki) * g.inWidth + kj
                            for j in 0..<w { d[j * kw] = s[j] + b }
                        }
                    }
                }
            }
        }
    }
}
