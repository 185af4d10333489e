extension Tensor {
    /// Transposed 2-D convolution, as torch.nn.functional.conv_transpose2d (groups 1, dilation 1,
    /// output_padding 0): the adjoint of conv2d with the same kernel, stride and padding.
    ///
    /// One sgemm per image (Wᵀ · x) followed by col2im; backward runs im2col on dy.
    /// - Parameters:
    ///   - x: [N, Cin, H, W].
    ///   - weight: [Cin, Cout, kh, kw] (torch ConvTranspose2d layout).
    ///   - bias: [Cout] or nil.
    /// - Returns: [N, Cout, (H-1)·stride - 2·padding + kh, (W-1)·stride - 2·padding + kw].
    public static func convTranspose2d(_ x: Tensor, weight: Tensor, bias: Tensor?, stride: Int, padding: Int = 0) -> Tensor {
        precondition(
            x.rank == 4 && weight.rank == 4 && x.shape[1] == weight.shape[0] && stride > 0 && padding >= 0,
            "convTranspose2d: input \(x.shape) and weight \(weight.shape) do not match (NCHW, [in, out, kh, kw])")
        let (n, cin, cout) = (x.shape[0], x.shape[1], weight.shape[1])
        if let bias { precondition(bias.shape == [cout], "convTranspose2d: bias \(bias.shape) for weight \(weight.shape)") }
        let (kh, kw) = (weight.shape[2], weight.shape[3])
        let (oh, ow) = ((x.shape[2] - 1) * stride - 2 * padding + kh, (x.shape[3] - 1) * stride - 2 * padding + kw)
        precondition(
            oh > 0 && ow > 0, "convTranspose2d: padding \(padding) leaves no output for input \(x.shape), weight \(weight.shape)")
        let g = WindowGeometry(
            inHeight: oh, inWidth: ow, kernelHeight: kh, kernelWidth: kw, stride: (stride, stride),
            padding: (padding, padding), dilation: (1, 1))
        precondition(g.outHeight == x.shape[2] && g.outWidth == x.shape[3], "convTranspose2d: geometry \(g) for input \(x.shape)")
        let y = Tensor(uninitialized: [n, cout, oh, ow])
        Kernels.convTranspose2dForward(
            x: x.storage.base, weight: weight.storage.base, bias: bias?.storage.base, y: y.storage.base,
            batch: n, inChannels: cin, outChannels: cout, geometry: g)
        let (cx, cw) = (x.detached(), weight.detached())
        let needX = x.requiresGrad, needW = weight.requiresGrad, needB = bias?.requiresGrad ?? false
        var inputs = [x, weight]
        if let bias { inputs.append(bias) }
        return record(y, name: "conv_transpose2d", inputs: inputs) { dy in
            let dx = needX ? Tensor(uninitialized: cx.shape) : nil
            let dw = needW ? Tensor(uninitialized: cw.shape) : nil
            let db = needB ? Tensor(uninitialized: [cout]) : nil
            Kernels.convTranspose2dBackward(
                x: cx.storage.base, weight: cw.storage.base, dy: dy.storage.base, dx: dx?.storage.base,
                dWeight: dw?.storage.base, dBias: db?.storage.base, batch: n, inChannels: cin, outChannels: cout,
                geometry: g)
            return [dx, dw] + (bias == nil ? [] : [db])
        }
    }
}
