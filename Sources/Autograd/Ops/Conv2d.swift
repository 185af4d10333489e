extension Tensor {
    /// 2-D convolution (cross-correlation, as torch.nn.functional.conv2d with groups = 1).
    ///
    /// Lowered to matrix products: each image is unfolded by im2col and multiplied by the weight
    /// with cblas_sgemm; a 1x1 stride-1 unpadded convolution multiplies the image directly.
    /// Backward recomputes the unfolded image instead of keeping it, trading a cheap copy for
    /// memory.
    /// - Parameters:
    ///   - weight: [outChannels, inChannels, kh, kw].
    ///   - bias: [outChannels] or nil.
    /// - Returns: [N, outChannels, outH, outW] with outH = (H + 2p - d(kh-1) - 1) / s + 1.
    public func conv2d(
        weight: Tensor, bias: Tensor? = nil, stride: Int = 1, padding: Int = 0, dilation: Int = 1
    ) -> Tensor {
        precondition(rank == 4 && weight.rank == 4 && shape[1] == weight.shape[1],
                     "conv2d: input \(shape) and weight \(weight.shape) do not match (NCHW, [out, in, kh, kw])")
        if let bias { precondition(bias.shape == [weight.shape[0]], "conv2d: bias \(bias.shape) for weight \(weight.shape)") }
        let (n, cin, cout) = (shape[0], shape[1], weight.shape[0])
        let g = WindowGeometry(inHeight: shape[2], inWidth: shape[3], kernelHeight: weight.shape[2],
                               kernelWidth: weight.shape[3], stride: (stride, stride), padding: (padding, padding),
                               dilation: (dilation, dilation))
        precondition(g.outHeight > 0 && g.outWidth > 0, "conv2d: input \(shape) too small for weight \(weight.shape), padding \(padding), dilation \(dilation)")
        let y = Tensor(uninitialized: [n, cout, g.outHeight, g.outWidth])
        Kernels.conv2dForward(x: storage.base, weight: weight.storage.base, bias: bias?.storage.base,
                              y: y.storage.base, batch: n, inChannels: cin, outChannels: cout, geometry: g)
        let (x, w) = (detached(), weight.detached())
        let needX = requiresGrad, needW = weight.requiresGrad, needB = bias?.requiresGrad ?? false
        var inputs = [self, weight]
        if let bias { inputs.append(bias) }
        return recorded(y, name: "conv2d", inputs: inputs) { dy in
            let dx = needX ? Tensor(zeros: x.shape) : nil
            let dw = needW ? Tensor(uninitialized: w.shape) : nil
            let db = needB ? Tensor(uninitialized: [cout]) : nil
            Kernels.conv2dBackward(x: x.storage.base, weight: w.storage.base, dy: dy.storage.base,
                                   dx: dx?.storage.base, dWeight: dw?.storage.base, dBias: db?.storage.base,
                                   batch: n, inChannels: cin, outChannels: cout, geometry: g)
            return [dx, dw] + (bias == nil ? [] : [db])
        }
    }
}

extension Kernels {
    /// Whether the convolution is a plain matrix product over pixels (1x1, stride 1, no padding).
    static func isPointwise(_ g: WindowGeometry) -> Bool {
        g.kernelArea == 1 && g.stride == (1, 1) && g.padding == (0, 0)
    }

    /// y[n] = W · im2col(x[n]) + b, for x [N, inChannels, H, W] and W [outChannels, inChannels·kh·kw].
    public static func conv2dForward(
        x: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
        y: UnsafeMutablePointer<Float>, batch: Int, inChannels: Int, outChannels: Int, geometry g: WindowGeometry
    ) {
        let k = inChannels * g.kernelArea
        let inPlane = inChannels * g.inHeight * g.inWidth, outPlane = outChannels * g.outArea
        let pointwise = isPointwise(g)
        let cols = pointwise ? nil : TensorStorage(count: k * g.outArea, zeroed: false)
        for n in 0..<batch {
            let b: UnsafePointer<Float>
            if let cols {
                im2col(x + n * inPlane, channels: inChannels, geometry: g, cols: cols.base)
                b = UnsafePointer(cols.base)
            } else {
                b = x + n * inPlane
            }
            gemm(m: outChannels, n: g.outArea, k: k, a: weight, b: b, c: y + n * outPlane)
        }
        if let bias {
            parallelFor(batch * outChannels, minimumPerThread: 16) { r in
                for row in r {
                    let v = bias[row % outChannels], p = y + row * g.outArea
                    for i in 0..<g.outArea { p[i] += v }
                }
            }
        }
    }

    /// Gradients of `conv2dForward`. `dx` is accumulated into (pass zeros); `dWeight` and `dBias`
    /// are overwritten. Any of the three may be nil when not needed.
    public static func conv2dBackward(
        x: UnsafePointer<Float>, weight: UnsafePointer<Float>, dy: UnsafePointer<Float>,
        dx: UnsafeMutablePointer<Float>?, dWeight: UnsafeMutablePointer<Float>?, dBias: UnsafeMutablePointer<Float>?,
        batch: Int, inChannels: Int, outChannels: Int, geometry g: WindowGeometry
    ) {
        let k = inChannels * g.kernelArea
        let inPlane = inChannels * g.inHeight * g.inWidth, outPlane = outChannels * g.outArea
        let pointwise = isPointwise(g)
        let cols = pointwise || dWeight == nil ? nil : TensorStorage(count: k * g.outArea, zeroed: false)
        let dcols = pointwise || dx == nil ? nil : TensorStorage(count: k * g.outArea, zeroed: false)
        for n in 0..<batch {
            let dyn = dy + n * outPlane
            if let dWeight {
                // dW += dy[n] · im2col(x[n])ᵀ
                let b: UnsafePointer<Float>
                if let cols {
                    im2col(x + n * inPlane, channels: inChannels, geometry: g, cols: cols.base)
                    b = UnsafePointer(cols.base)
                } else {
                    b = x + n * inPlane
                }
                gemm(transB: true, m: outChannels, n: k, k: g.outArea, a: dyn, b: b, beta: n == 0 ? 0 : 1, c: dWeight)
            }
            if let dx {
                // dx[n] += col2im(Wᵀ · dy[n])
                if let dcols {
                    gemm(transA: true, m: k, n: g.outArea, k: outChannels, a: weight, b: dyn, c: dcols.base)
                    col2im(dcols.base, channels: inChannels, geometry: g, x: dx + n * inPlane)
                } else {
                    gemm(transA: true, m: k, n: g.outArea, k: outChannels, a: weight, b: dyn, beta: 1, c: dx + n * inPlane)
                }
            }
        }
        if let dBias {
            parallelFor(outChannels, minimumPerThread: 16) { r in
                for co in r {
                    var s: Float = 0
                    for n in 0..<batch {
                        let p = dy + n * outPlane + co * g.outArea
                        for i in 0..<g.outArea { s += p[i] }
                    }
                    dBias[co] = s
                }
            }
        }
    }
}
