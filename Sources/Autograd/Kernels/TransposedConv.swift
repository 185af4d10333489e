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
