extension Tensor {
    /// Max pooling over NCHW, as torch.nn.functional.max_pool2d (padding counts as -inf).
    ///
    /// With `ceilMode` the output size rounds up, but a window may not start in the right or
    /// bottom padding (torch's rule; caffe's ResNet stem pools this way).
    /// The gradient goes to the first maximal element of each window.
    public func maxPool2d(kernelSize: Int, stride: Int? = nil, padding: Int = 0, ceilMode: Bool = false) -> Tensor {
        precondition(rank == 4, "maxPool2d: input \(shape) is not NCHW")
        let s = stride ?? kernelSize
        precondition(padding * 2 <= kernelSize, "maxPool2d: padding \(padding) exceeds half the kernel \(kernelSize)")
        func outSize(_ n: Int) -> Int {
            let span = n + 2 * padding - kernelSize
            var o = (ceilMode ? (span + s - 1) / s : span / s) + 1
            if ceilMode && (o - 1) * s >= n + padding { o -= 1 }
            return o
        }
        let (h, w) = (shape[2], shape[3])
        let (oh, ow) = (outSize(h), outSize(w))
        precondition(oh > 0 && ow > 0, "maxPool2d: input \(shape) too small for kernel \(kernelSize)")
        let planes = shape[0] * shape[1]
        let y = Tensor(uninitialized: [shape[0], shape[1], oh, ow])
        let argmax = TensorStorage(count: planes * oh * ow, zeroed: false)  // index within the plane, as Float bits
        argmax.base.withMemoryRebound(to: Int32.self, capacity: argmax.count) { am in
            Kernels.maxPool2d(
                storage.base, y.storage.base, argmax: am, planes: planes, inSize: (h, w), outSize: (oh, ow),
                kernelSize: kernelSize, stride: s, padding: padding)
        }
        let inShape = shape
        return recorded(y, name: "max_pool2d", inputs: [self]) { dy in
            let dx = Tensor(zeros: inShape)
            argmax.base.withMemoryRebound(to: Int32.self, capacity: argmax.count) { am in
                Kernels.maxPool2dBackward(
                    dy.storage.base, argmax: am, dx.storage.base, planes: planes, inArea: h * w, outArea: oh * ow)
            }
            return [dx]
        }
    }

    /// Global average pooling: [N, C, H, W] → [N, C, 1, 1].
    public func globalAveragePooled() -> Tensor {
        precondition(rank == 4, "globalAveragePooled: input \(shape) is not NCHW")
        return mean(alongAxes: [2, 3], keepingDims: true)
    }
}
