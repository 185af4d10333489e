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
    /// - Parameter algorithm: how to lower the convolution to sgemm; `.automatic` picks by shape
    ///   (see `ConvAlgorithm`). All choices compute the same result.
    public func conv2d(
        weight: Tensor, bias: Tensor? = nil, stride: Int = 1, padding: Int = 0, dilation: Int = 1,
        algorithm: ConvAlgorithm = .automatic
    ) -> Tensor {
        precondition(
            rank == 4 && weight.rank == 4 && shape[1] == weight.shape[1],
            "conv2d: input \(shape) and weight \(weight.shape) do not match (NCHW, [out, in, kh, kw])")
        if let bias { precondition(bias.shape == [weight.shape[0]], "conv2d: bias \(bias.shape) for weight \(weight.shape)") }
        let (n, cin, cout) = (shape[0], shape[1], weight.shape[0])
        let g = WindowGeometry(
            inHeight: shape[2], inWidth: shape[3], kernelHeight: weight.shape[2],
            kernelWidth: weight.shape[3], stride: (stride, stride), padding: (padding, padding),
            dilation: (dilation, dilation))
        precondition(
            g.outHeight > 0 && g.outWidth > 0,
            "conv2d: input \(shape) too small for weight \(weight.shape), padding \(padding), dilation \(dilation)")
        let y = Tensor(uninitialized: [n, cout, g.outHeight, g.outWidth])
        let algorithm = algorithm.resolved(inChannels: cin, outChannels: cout, geometry: g)
        Kernels.conv2dForward(
            x: storage.base, weight: weight.storage.base, bias: bias?.storage.base,
            y: y.storage.base, batch: n, inChannels: cin, outChannels: cout, geometry: g,
            algorithm: algorithm)
        let (x, w) = (detached(), weight.detached())
        let needX = requiresGrad, needW = weight.requiresGrad, needB = bias?.requiresGrad ?? false
        var inputs = [self, weight]
        if let bias { inputs.append(bias) }
        return recorded(y, name: "conv2d", inputs: inputs) { dy in
            let dx = needX ? Tensor(zeros: x.shape) : nil
            let dw = needW ? Tensor(uninitialized: w.shape) : nil
            let db = needB ? Tensor(uninitialized: [cout]) : nil
            Kernels.conv2dBackward(
                x: x.storage.base, weight: w.storage.base, dy: dy.storage.base,
                dx: dx?.storage.base, dWeight: dw?.storage.base, dBias: db?.storage.base,
                batch: n, inChannels: cin, outChannels: cout, geometry: g, algorithm: algorithm)
            return [dx, dw] + (bias == nil ? [] : [db])
        }
    }
}
