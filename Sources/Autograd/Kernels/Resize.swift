/// Source coordinates of a 1-D resize, computed exactly as PyTorch's CPU upsampling kernels do
/// (aten/src/ATen/native/UpSample.h), in Float so results match bit for bit where torch's do.
public struct ResizeAxis: Sendable {
    /// Lower source index, upper source index and the weight of the upper one, per output index.
    public let lower: [Int], upper: [Int], upperWeight: [Float]

    /// How the source-to-destination scale is obtained.
    public enum Scale: Sendable {
        /// `in / out` (torch `size=` argument).
        case fromSizes
        /// `1 / factor` (torch `scale_factor=` argument, recompute_scale_factor unset).
        case factor(Double)
    }

    /// Bilinear (linear along one axis) source positions.
    /// align_corners: src = dst · (in-1)/(out-1); otherwise src = (dst + 0.5) · scale - 0.5, clamped at 0.
    public init(linearFrom inSize: Int, to outSize: Int, alignCorners: Bool, scale: Scale = .fromSizes) {
        let s: Float
        if alignCorners {
            s = outSize > 1 ? Float(inSize - 1) / Float(outSize - 1) : 0
        } else {
            switch scale {
            case .fromSizes: s = Float(inSize) / Float(outSize)
            case .factor(let f): s = Float(1 / f)
            }
        }
        var lower = [Int](), upper = [Int](), weight = [Float]()
        for d in 0..<outSize {
            var src = alignCorners ? s * Float(d) : s * (Float(d) + 0.5) - 0.5
            if src < 0 { src = 0 }
            let i0 = Swift.min(Int(src), inSize - 1)
            lower.append(i0)
            upper.append(i0 < inSize - 1 ? i0 + 1 : i0)
            weight.append(src - Float(i0))
        }
        self.lower = lower
        self.upper = upper
        self.upperWeight = weight
    }

    /// The entries of `range` alone: the output positions of a sub-rectangle of the full resize,
    /// each computed exactly as in the full one (so resize-then-crop needs no full-size buffer).
    public func restricted(to range: Range<Int>) -> ResizeAxis {
        precondition(
            range.lowerBound >= 0 && range.upperBound <= lower.count,
            "ResizeAxis.restricted: \(range) outside the output size \(lower.count)")
        return ResizeAxis(lower: Array(lower[range]), upper: Array(upper[range]), upperWeight: Array(upperWeight[range]))
    }

    init(lower: [Int], upper: [Int], upperWeight: [Float]) {
        self.lower = lower
        self.upper = upper
        self.upperWeight = upperWeight
    }

    /// Nearest source positions (torch mode "nearest"): src = min(floor(dst · scale), in - 1).
    public init(nearestFrom inSize: Int, to outSize: Int, scale: Scale = .fromSizes) {
        let s: Float
        switch scale {
        case .fromSizes: s = Float(inSize) / Float(outSize)
        case .factor(let f): s = Float(1 / f)
        }
        lower = (0..<outSize).map { Swift.min(Int((Float($0) * s).rounded(.down)), inSize - 1) }
        upper = lower
        upperWeight = Array(repeating: 0, count: outSize)
    }

    /// Nearest source positions by `rule`, from in / out (a `size=` resize).
    public init(nearestFrom inSize: Int, to outSize: Int, rule: NearestRule) {
        switch rule {
        case .torch: self.init(nearestFrom: inSize, to: outSize)
        case .pil: self.init(pilNearestFrom: inSize, to: outSize)
        }
    }

    /// Nearest source positions as Pillow's `Image.resize(size, Image.NEAREST)` picks them
    /// (libImaging/Geometry.c, `ImagingScaleAffine`, reached through `ImagingTransformAffine` for
    /// a pure scale): the centre of output pixel d maps to (d + 0.5) · in/out, truncated. Pillow
    /// accumulates that position in a double, x₀ = scale / 2 then x += scale per pixel, and the
    /// sum can land a hair below an integer the product reaches exactly (2 → 7: output 3 reads
    /// pixel 0, where floor(3.5 · 2/7) = 1): so this accumulates the same way.
    /// On every in ≤ 700 against out ≤ 80 and the DeepLab scales, this equals Pillow 13
    /// (scripts/fixtures/make_deeplab_protocol_fixtures.py checks and pins it).
    public init(pilNearestFrom inSize: Int, to outSize: Int) {
        let scale = Double(inSize) / Double(outSize)
        var position = scale * 0.5
        var lower = [Int]()
        lower.reserveCapacity(outSize)
        for _ in 0..<outSize {
            // COORD(v): -1 below 0, else the C cast (truncation); never past the last pixel.
            lower.append(Swift.min(position < 0 ? 0 : Int(position), inSize - 1))
            position += scale
        }
        self.lower = lower
        upper = lower
        upperWeight = Array(repeating: 0, count: outSize)
    }
}

/// Which source pixel a nearest-neighbour resize reads.
public enum NearestRule: String, Codable, Sendable, CaseIterable {
    /// torch `interpolate(mode="nearest")`: src = floor(dst · in/out), the top-left of each cell.
    case torch
    /// Pillow `Image.resize(NEAREST)`: src = floor((dst + 0.5) · in/out), the cell's centre,
    /// which deeplab-pytorch uses for labels (main.py `resize_labels`, libs/datasets/base.py).
    case pil
}

extension Kernels {
    /// Resizes `planes` planes [inH, inW] → [outH, outW] by separable interpolation along `rows`
    /// and `columns` (bilinear, or nearest when both weights are zero).
    public static func resize(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, planes: Int,
        inSize: (h: Int, w: Int), rows: ResizeAxis, columns: ResizeAxis
    ) {
        let (oh, ow) = (rows.lower.count, columns.lower.count)
        // Enlarging along the rows: interpolate each source row the output reads once, along the
        // columns, then mix pairs of those rows — the same products and sums in the same
        // association as the direct loop below (h0·(w0·a0 + w1·a1) + h1·(w0·b0 + w1·b1)), so the
        // same bits, with two gathers per source row instead of four per output pixel.
        let needed = Array(Set(rows.lower + rows.upper)).sorted()
        if 4 * needed.count < 3 * oh {
            resizeSeparable(x, y, planes: planes, inSize: inSize, rows: rows, columns: columns, sourceRows: needed)
            return
        }
        rows.lower.withUnsafeBufferPointer { r0 in
            rows.upper.withUnsafeBufferPointer { r1 in
                rows.upperWeight.withUnsafeBufferPointer { rw in
                    columns.lower.withUnsafeBufferPointer { c0 in
                        columns.upper.withUnsafeBufferPointer { c1 in
                            columns.upperWeight.withUnsafeBufferPointer { cw in
                                parallelFor(planes) { range in
                                    for p in range {
                                        let src = x + p * inSize.h * inSize.w, dst = y + p * oh * ow
                                        for i in 0..<oh {
                                            let a = src + r0[i] * inSize.w, b = src + r1[i] * inSize.w
                                            let hl = rw[i], h0 = 1 - hl
                                            let d = dst + i * ow
                                            for j in 0..<ow {
                                                let wl = cw[j], w0 = 1 - wl
                                                // Same association as torch: h0·(w0·a0 + w1·a1) + h1·(w0·b0 + w1·b1).
                                                d[j] = h0 * (w0 * a[c0[j]] + wl * a[c1[j]]) + hl * (w0 * b[c0[j]] + wl * b[c1[j]])
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// `resize` in two passes (see there): `sourceRows`, sorted, are the rows the output reads.
    static func resizeSeparable(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, planes: Int,
        inSize: (h: Int, w: Int), rows: ResizeAxis, columns: ResizeAxis, sourceRows: [Int]
    ) {
        let (oh, ow) = (rows.lower.count, columns.lower.count)
        var slot = [Int](repeating: 0, count: inSize.h)
        for (k, r) in sourceRows.enumerated() { slot[r] = k }
        let (r0, r1) = (rows.lower.map { slot[$0] }, rows.upper.map { slot[$0] })
        let (c0, c1, cw, rw) = (columns.lower, columns.upper, columns.upperWeight, rows.upperWeight)
        let c0s = c0.map { Int32($0) }, c1s = c1.map { Int32($0) }
        parallelFor(planes) { range in
            let interpolated = UnsafeMutablePointer<Float>.allocate(capacity: sourceRows.count * ow)
            defer { interpolated.deallocate() }
            c0s.withUnsafeBufferPointer { c0 in
                c1s.withUnsafeBufferPointer { c1 in
                    cw.withUnsafeBufferPointer { cw in
                        for p in range {
                            let src = x + p * inSize.h * inSize.w, dst = y + p * oh * ow
                            for (k, r) in sourceRows.enumerated() {
                                let a = src + r * inSize.w, t = interpolated + k * ow
                                for j in 0..<ow {
                                    let wl = cw[j], w0 = 1 - wl
                                    t[j] = w0 * a[Int(c0[j])] + wl * a[Int(c1[j])]
                                }
                            }
                            for i in 0..<oh {
                                let (a, b) = (interpolated + r0[i] * ow, interpolated + r1[i] * ow)
                                let hl = rw[i], h0 = 1 - hl
                                let d = dst + i * ow
                                for j in 0..<ow { d[j] = h0 * a[j] + hl * b[j] }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Adjoint of `resize`: scatters dy [planes, outH, outW] into dx [planes, inH, inW] (accumulating).
    public static func resizeBackward(
        _ dy: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>, planes: Int,
        inSize: (h: Int, w: Int), rows: ResizeAxis, columns: ResizeAxis
    ) {
        let (oh, ow) = (rows.lower.count, columns.lower.count)
        parallelFor(planes) { range in
            for p in range {
                let g = dy + p * oh * ow, d = dx + p * inSize.h * inSize.w
                for i in 0..<oh {
                    let a = d + rows.lower[i] * inSize.w, b = d + rows.upper[i] * inSize.w
                    let hl = rows.upperWeight[i], h0 = 1 - hl
                    for j in 0..<ow {
                        let v = g[i * ow + j], wl = columns.upperWeight[j], w0 = 1 - wl
                        a[columns.lower[j]] += h0 * w0 * v
                        a[columns.upper[j]] += h0 * wl * v
                        b[columns.lower[j]] += hl * w0 * v
                        b[columns.upper[j]] += hl * wl * v
                    }
                }
            }
        }
    }
}
