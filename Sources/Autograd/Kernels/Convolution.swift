// The raw convolution: the lowering of `Tensor.conv2d` (Ops/Conv2d.swift) to sgemm, forward and
// backward, over pointers and explicit sizes. The op keeps the shape checks and the tape.

/// How a convolution is lowered to matrix products.
public enum ConvAlgorithm: String, CaseIterable, Sendable {
    /// Choose by shape: `pointwise` for 1x1 stride-1 unpadded convs, `tapwise` when there are
    /// few output channels (< 64) and several taps (ASPP-like heads), `im2col` otherwise.
    case automatic
    /// y = W · x directly (1x1, stride 1, no padding only).
    case pointwise
    /// Unfold the image (caffe im2col), one sgemm with k = Cin·kh·kw.
    case im2col
    /// One sgemm per kernel tap over the valid rectangle (`Kernels/ConvTapwise.swift`).
    case tapwise
    /// One product of all taps' stacked weights with the whole image, then a shift-add per tap
    /// (`Kernels/ConvStackedTaps.swift`): for heads with few output channels (ASPP).
    case stackedTaps
    /// Winograd F(2x2, 3x3) for the forward pass and the input gradient (3x3, stride 1,
    /// padding ≤ 2·dilation only; `Kernels/Winograd.swift`): 16 products instead of 36 per 2x2
    /// outputs. The weight gradient uses im2col.
    case winograd
    /// Winograd F(4x4, 3x3), the same shapes as `winograd`: 36 products instead of 144 per 4x4
    /// outputs (4× less sgemm work, 2.25× for F2), rounding somewhat more coarsely.
    case winograd4

    /// Whether this algorithm can lower a convolution of this geometry (`.automatic` always can).
    public func applies(to g: WindowGeometry) -> Bool {
        switch self {
        case .automatic, .im2col, .tapwise, .stackedTaps: true
        case .pointwise: g.kernelArea == 1 && g.stride == (1, 1) && g.padding == (0, 0)
        case .winograd, .winograd4: Kernels.winogradApplies(g)
        }
    }

    /// The concrete algorithm for a shape.
    ///
    /// Under bf16 products (`Kernels.withProducts`) F(4x4, 3x3) becomes F(2x2, 3x3): its
    /// transformed tiles, rounded to bf16, put 5–7% of the largest output into the error (F2 and
    /// the other lowerings 0.1–0.5%; measured in `MixedPrecisionTests`).
    public func resolved(inChannels: Int, outChannels: Int, geometry g: WindowGeometry) -> ConvAlgorithm {
        let chosen = choice(inChannels: inChannels, outChannels: outChannels, geometry: g)
        return chosen == .winograd4 && Kernels.productArithmetic != .fp32 ? .winograd : chosen
    }

    private func choice(inChannels: Int, outChannels: Int, geometry g: WindowGeometry) -> ConvAlgorithm {
        switch self {
        case .automatic:
            let allowed = Self.automaticChoices
            if allowed.contains(.pointwise) && ConvAlgorithm.pointwise.applies(to: g) { return .pointwise }
            // Measured with `wsss bench ops`: im2col's single large product wins while the
            // weight has many rows; with a 21-row weight the unfolded matrix dominates.
            if outChannels < 64 && g.kernelArea > 1 {
                // Stacking pays when the taps' products are fewer rows than the input has channels
                // and no stride makes the full-image product compute outputs nobody reads.
                if allowed.contains(.stackedTaps) && g.stride == (1, 1) && inChannels > outChannels { return .stackedTaps }
                if allowed.contains(.tapwise) { return .tapwise }
            }
            // Winograd's transforms cost memory passes that only wide convolutions repay.
            if !allowed.isDisjoint(with: [.winograd, .winograd4]) && Kernels.winogradApplies(g)
                && inChannels >= Self.winogradMinimumChannels
                && outChannels >= Self.winogradMinimumChannels
            {
                // F4 on wide layers whose output sub-grids hold at least two of its tiles along each
                // axis (its transforms cost per channel and tile, its savings per channel pair; a
                // small sub-grid wastes much of its last tile), F2 elsewhere. Measured with `wsss
                // bench ops` on Zen 3: DeepLab's layer3 (256 channels, d = 2, 41²) forward 10–20%
                // faster at batch 4; the 64- and 128-channel layers no faster.
                let d = g.dilation
                if allowed.contains(.winograd4) && inChannels >= Self.winograd4MinimumChannels
                    && outChannels >= Self.winograd4MinimumChannels && g.outHeight >= 8 * d.h && g.outWidth >= 8 * d.w
                {
                    return .winograd4
                }
                if allowed.contains(.winograd) { return .winograd }
            }
            return .im2col
        case .pointwise, .winograd, .winograd4, .im2col, .tapwise, .stackedTaps:
            precondition(
                applies(to: g),
                "conv2d: the \(rawValue) algorithm does not apply to \(g) (pointwise: 1x1 stride-1 unpadded; winograd: 3x3 stride-1, padding ≤ 2·dilation)"
            )
            return self
        }
    }

    /// The lowerings `.automatic` may pick (im2col is the fallback whatever this holds). All by
    /// default; `wsss bench model --lowerings` narrows it to compare them on a whole network.
    /// Set at start-up, before any convolution runs.
    public nonisolated(unsafe) static var automaticChoices: Set<ConvAlgorithm> = [
        .pointwise, .im2col, .winograd, .winograd4, .stackedTaps, .tapwise,
    ]

    /// Input and output channels from which `.automatic` picks Winograd for a 3x3 stride-1
    /// convolution (measured with `wsss bench ops`).
    public static let winogradMinimumChannels = 64

    /// Input and output channels from which `.automatic` prefers F(4x4, 3x3) to F(2x2, 3x3).
    public static let winograd4MinimumChannels = 256
}

extension Kernels {
    /// y[n] = W ⋆ x[n] + b for x [N, inChannels, H, W] and W [outChannels, inChannels, kh, kw],
    /// with a resolved (not `.automatic`) algorithm.
    public static func conv2dForward(
        x: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
        y: UnsafeMutablePointer<Float>, batch: Int, inChannels: Int, outChannels: Int, geometry g: WindowGeometry,
        algorithm: ConvAlgorithm
    ) {
        let k = inChannels * g.kernelArea
        let inPlane = inChannels * g.inHeight * g.inWidth, outPlane = outChannels * g.outArea
        let byImage = imagesInParallel(batch: batch, multiplyAdds: outChannels * k * g.outArea, algorithm: algorithm)
        switch algorithm {
        case .automatic:
            preconditionFailure("conv2dForward: resolve the algorithm first")
        case .tapwise:
            // One workspace per chunk of images (the images of a chunk run in turn on its thread).
            forEachImage(batch, inParallel: byImage) { images in
                let workspace = TapwiseWorkspace(weight: weight, inChannels: inChannels, outChannels: outChannels, geometry: g)
                for n in images {
                    conv2dTapwiseForward(
                        x: x + n * inPlane, y: y + n * outPlane, inChannels: inChannels,
                        outChannels: outChannels, geometry: g, workspace: workspace)
                }
            }
        case .pointwise:
            forEachImage(batch, inParallel: byImage) { images in
                for n in images {
                    gemm(m: outChannels, n: g.outArea, k: k, a: weight, b: x + n * inPlane, c: y + n * outPlane)
                }
            }
        case .stackedTaps:
            conv2dStackedTapsForward(
                x: x, weight: weight, y: y, batch: batch, inChannels: inChannels, outChannels: outChannels, geometry: g)
        case .winograd, .winograd4:
            let u = winogradWeight(
                weight, outChannels: outChannels, inChannels: inChannels, tile: algorithm == .winograd4 ? 4 : 2)
            winogradConvolution(
                x: x, transformedWeight: u, y: y, accumulate: false, batch: batch, inChannels: inChannels,
                outChannels: outChannels, geometry: g)
        case .im2col:
            forEachImage(batch, inParallel: byImage) { images in
                let cols = TensorStorage(count: k * g.outArea, zeroed: false)
                for n in images {
                    im2col(x + n * inPlane, channels: inChannels, geometry: g, cols: cols.base)
                    gemm(m: outChannels, n: g.outArea, k: k, a: weight, b: cols.base, c: y + n * outPlane)
                }
            }
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

    /// Multiply-adds per image below which a lowering that multiplies image by image (pointwise,
    /// im2col, tap-wise) runs whole images on the pool's threads, each image's products on one
    /// thread, instead of splitting every small product across them: the demo's narrow layers
    /// (8–64 channels at 16²–32², batch 10) made hundreds of tiny products per convolution
    /// whose splits cost more waiting than work.
    public static let imageParallelMultiplyAdds = 8 << 20

    /// Whether `algorithm` runs whole images in parallel for these sizes.
    public static func imagesInParallel(batch: Int, multiplyAdds: Int, algorithm: ConvAlgorithm) -> Bool {
        batch > 1 && Runtime.threads > 1 && multiplyAdds < imageParallelMultiplyAdds
            && [.pointwise, .im2col, .tapwise].contains(algorithm)
    }

    /// `body` over chunks of the images 0..<batch: across the pool when `inParallel`, else all at once.
    @inline(__always)
    static func forEachImage(_ batch: Int, inParallel: Bool, _ body: (Range<Int>) -> Void) {
        if inParallel { parallelFor(batch, body) } else { body(0..<batch) }
    }

    /// out[i] = Σₙ slots[n·count + i], n in order (the per-image weight gradients).
    static func sumImageSlots(_ slots: UnsafePointer<Float>, batch: Int, count: Int, into out: UnsafeMutablePointer<Float>) {
        parallelFor(count, minimumPerThread: 1 << 14) { r in
            for i in r {
                var s = slots[i]
                for n in 1..<batch { s += slots[n * count + i] }
                out[i] = s
            }
        }
    }

    /// Gradients of `conv2dForward`. `dx` is accumulated into (pass zeros); `dWeight` and `dBias`
    /// are overwritten. Any of the three may be nil when not needed.
    public static func conv2dBackward(
        x: UnsafePointer<Float>, weight: UnsafePointer<Float>, dy: UnsafePointer<Float>,
        dx: UnsafeMutablePointer<Float>?, dWeight: UnsafeMutablePointer<Float>?, dBias: UnsafeMutablePointer<Float>?,
        batch: Int, inChannels: Int, outChannels: Int, geometry g: WindowGeometry, algorithm: ConvAlgorithm
    ) {
        let k = inChannels * g.kernelArea
        let inPlane = inChannels * g.inHeight * g.inWidth, outPlane = outChannels * g.outArea
        let byImage = imagesInParallel(batch: batch, multiplyAdds: outChannels * k * g.outArea, algorithm: algorithm)
        // With images in parallel each image's weight gradient goes to its own slot, summed in
        // image order afterwards (the same sums for any thread count).
        let perImage = byImage && dWeight != nil ? TensorStorage(count: batch * outChannels * k) : nil
        switch algorithm {
        case .automatic:
            preconditionFailure("conv2dBackward: resolve the algorithm first")
        case .tapwise:
            let packedGradient = dWeight == nil ? nil : TensorStorage(count: outChannels * k)
            forEachImage(batch, inParallel: byImage) { images in
                let workspace = TapwiseWorkspace(weight: weight, inChannels: inChannels, outChannels: outChannels, geometry: g)
                for n in images {
                    conv2dTapwiseBackward(
                        x: x + n * inPlane, dy: dy + n * outPlane, dx: dx.map { $0 + n * inPlane },
                        packedWeightGradient: perImage.map { $0.base + n * outChannels * k } ?? packedGradient?.base,
                        inChannels: inChannels, outChannels: outChannels, geometry: g, workspace: workspace)
                }
            }
            if let perImage, let packedGradient {
                sumImageSlots(perImage.base, batch: batch, count: outChannels * k, into: packedGradient.base)
            }
            if let dWeight, let packedGradient {
                unpackWeightByTap(
                    from: packedGradient.base, into: dWeight, outChannels: outChannels, inChannels: inChannels,
                    taps: g.kernelArea)
            }
        case .stackedTaps:
            conv2dStackedTapsBackward(
                x: x, weight: weight, dy: dy, dx: dx, dWeight: dWeight, batch: batch, inChannels: inChannels,
                outChannels: outChannels, geometry: g)
        case .pointwise, .im2col, .winograd, .winograd4:
            let unfold = algorithm != .pointwise
            let winograd = algorithm == .winograd || algorithm == .winograd4
            let cols = unfold && dWeight != nil ? TensorStorage(count: k * g.outArea, zeroed: false) : nil
            let dcols = algorithm == .im2col && dx != nil ? TensorStorage(count: k * g.outArea, zeroed: false) : nil
            if winograd, let dx {
                // dx = conv3x3(dy, W rotated, channels swapped) with padding 2d − p: again a
                // 3x3 stride-1 convolution whose output is the input's size.
                let back = WindowGeometry(
                    inHeight: g.outHeight, inWidth: g.outWidth, kernelHeight: 3, kernelWidth: 3, stride: (1, 1),
                    padding: (2 * g.dilation.h - g.padding.h, 2 * g.dilation.w - g.padding.w), dilation: g.dilation)
                precondition(back.outHeight == g.inHeight && back.outWidth == g.inWidth, "conv2dBackward: winograd geometry \(g)")
                let u = winogradTransposedWeight(
                    weight, outChannels: outChannels, inChannels: inChannels, tile: algorithm == .winograd4 ? 4 : 2)
                winogradConvolution(
                    x: dy, transformedWeight: u, y: dx, accumulate: true, batch: batch, inChannels: outChannels,
                    outChannels: inChannels, geometry: back)
            }
            forEachImage(batch, inParallel: byImage) { images in
                // Buffers of the chunk's thread (the shared ones when images run in turn).
                let cols =
                    byImage && unfold && dWeight != nil ? TensorStorage(count: k * g.outArea, zeroed: false) : cols
                let dcols =
                    byImage && algorithm == .im2col && dx != nil ? TensorStorage(count: k * g.outArea, zeroed: false) : dcols
                for n in images {
                    let dyn = dy + n * outPlane
                    if let dWeight {
                        // dW += dy[n] · im2col(x[n])ᵀ
                        var b = x + n * inPlane
                        if let cols {
                            im2col(b, channels: inChannels, geometry: g, cols: cols.base)
                            b = UnsafePointer(cols.base)
                        }
                        if let perImage {
                            gemm(
                                transB: true, m: outChannels, n: k, k: g.outArea, a: dyn, b: b,
                                c: perImage.base + n * outChannels * k)
                        } else {
                            gemm(transB: true, m: outChannels, n: k, k: g.outArea, a: dyn, b: b, beta: n == 0 ? 0 : 1, c: dWeight)
                        }
                    }
                    if let dx, !winograd {
                        // dx[n] += col2im(Wᵀ · dy[n])
                        if let dcols {
                            gemm(transA: true, m: k, n: g.outArea, k: outChannels, a: weight, b: dyn, c: dcols.base)
                            col2im(dcols.base, channels: inChannels, geometry: g, x: dx + n * inPlane)
                        } else {
                            gemm(
                                transA: true, m: k, n: g.outArea, k: outChannels, a: weight, b: dyn, beta: 1, c: dx + n * inPlane)
                        }
                    }
                }
            }
            if let perImage, let dWeight {
                sumImageSlots(perImage.base, batch: batch, count: outChannels * k, into: dWeight)
            }
        }
        if let dBias {
            parallelFor(outChannels, minimumPerThread: 16) { r in
                for co in r {
                    var s: Float = 0
                    for n in 0..<batch { s += Kernels.sum(dy + n * outPlane + co * g.outArea, count: g.outArea) }
                    dBias[co] = s
                }
            }
        }
    }
}
