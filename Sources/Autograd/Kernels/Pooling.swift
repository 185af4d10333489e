// The raw max pooling of `Tensor.maxPool2d` (Ops/Tensor+Pooling.swift), forward and backward.

extension Kernels {
    /// Max pooling of `planes` planes [inSize.h, inSize.w] into [outSize.h, outSize.w] with a
    /// square window; padding counts as -inf (windows are clipped to the image). `argmax` gets,
    /// per output, the index within its input plane of the first maximal element (a NaN wins,
    /// as torch.nn.functional.max_pool2d propagates it).
    public static func maxPool2d(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, argmax am: UnsafeMutablePointer<Int32>, planes: Int,
        inSize: (h: Int, w: Int), outSize: (h: Int, w: Int), kernelSize: Int, stride s: Int, padding: Int
    ) {
        let (h, w) = inSize, (oh, ow) = outSize
        parallelFor(planes) { r in
            for p in r {
                let src = x + p * h * w
                for i in 0..<oh {
                    let h0 = Swift.max(i * s - padding, 0), h1 = Swift.min(i * s - padding + kernelSize, h)
                    for j in 0..<ow {
                        let w0 = Swift.max(j * s - padding, 0), w1 = Swift.min(j * s - padding + kernelSize, w)
                        var best = -Float.infinity, at = h0 * w + w0
                        for a in h0..<h1 {
                            for b in w0..<w1 where src[a * w + b] > best || src[a * w + b].isNaN {
                                best = src[a * w + b]
                                at = a * w + b
                            }
                        }
                        y[(p * oh + i) * ow + j] = best
                        am[(p * oh + i) * ow + j] = Int32(at)
                    }
                }
            }
        }
    }

    /// Gradient of `maxPool2d`: each output's dy is added into dx at its argmax (dx accumulates;
    /// pass zeros). `inArea` and `outArea` are the plane sizes h·w and oh·ow.
    public static func maxPool2dBackward(
        _ dy: UnsafePointer<Float>, argmax am: UnsafePointer<Int32>, _ dx: UnsafeMutablePointer<Float>, planes: Int,
        inArea: Int, outArea: Int
    ) {
        parallelFor(planes) { r in
            for p in r {
                for k in 0..<outArea { dx[p * inArea + Int(am[p * outArea + k])] += dy[p * outArea + k] }
            }
        }
    }
}
