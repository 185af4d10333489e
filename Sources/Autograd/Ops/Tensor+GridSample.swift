// Bilinear sampling at fractional positions: torch.nn.functional.grid_sample (mode "bilinear",
// padding "zeros", align_corners=False) and the multi-scale deformable attention of Deformable
// DETR / Grounding DINO built on it, fused (ms_deform_attn_core_pytorch's arithmetic without its
// [batch·heads, dim, queries, levels·points] intermediate).

/// The four neighbours of a fractional pixel position and their bilinear weights; neighbours
/// outside the plane read as zero (grid_sample's "zeros" padding).

struct BilinearTap {
    /// Row and column of the top-left neighbour (may be -1 or the last index).
    let y0: Int, x0: Int
    /// Weights of the lower row / right column (the others are 1 minus these).
    let wy: Float, wx: Float

    /// Pixel coordinates (x, y), with pixel centres at integers.
    init(x: Float, y: Float) {
        let fx = x.rounded(.down), fy = y.rounded(.down)
        (x0, y0) = (Int(fx), Int(fy))
        (wx, wy) = (x - fx, y - fy)
    }

    /// Whether the position can touch the plane at all (NaN and far-away positions cannot).
    static func reaches(x: Float, y: Float, height: Int, width: Int) -> Bool {
        x > -1 && y > -1 && x < Float(width) && y < Float(height)
    }

    /// (offset, weight) of each neighbour inside a height × width plane with row stride
    /// `rowStride` and element stride `stride`, in the order (y0,x0), (y0,x1), (y1,x0), (y1,x1);
    /// neighbours outside get weight 0 (and offset 0).
    func corners(height: Int, width: Int, rowStride: Int, stride: Int) -> Corners {
        var c = Corners()
        let ys = (y0 >= 0 && y0 < height, y0 + 1 >= 0 && y0 + 1 < height)
        let xs = (x0 >= 0 && x0 < width, x0 + 1 >= 0 && x0 + 1 < width)
        let base = y0 * rowStride + x0 * stride
        if ys.0 && xs.0 { (c.offsets.0, c.weights.0) = (base, (1 - wy) * (1 - wx)) }
        if ys.0 && xs.1 { (c.offsets.1, c.weights.1) = (base + stride, (1 - wy) * wx) }
        if ys.1 && xs.0 { (c.offsets.2, c.weights.2) = (base + rowStride, wy * (1 - wx)) }
        if ys.1 && xs.1 { (c.offsets.3, c.weights.3) = (base + rowStride + stride, wy * wx) }
        c.dx = ((ys.0 && xs.0) ? -(1 - wy) : 0, (ys.0 && xs.1) ? (1 - wy) : 0, (ys.1 && xs.0) ? -wy : 0, (ys.1 && xs.1) ? wy : 0)
        c.dy = ((ys.0 && xs.0) ? -(1 - wx) : 0, (ys.0 && xs.1) ? -wx : 0, (ys.1 && xs.0) ? (1 - wx) : 0, (ys.1 && xs.1) ? wx : 0)
        return c
    }
}

/// The four neighbours of a `BilinearTap`: offsets, bilinear weights, and the weights of the
/// sample's derivatives along x and y (all 0 for a neighbour outside the plane).
struct Corners {
    var offsets: (Int, Int, Int, Int) = (0, 0, 0, 0)
    var weights: (Float, Float, Float, Float) = (0, 0, 0, 0)
    var dx: (Float, Float, Float, Float) = (0, 0, 0, 0)
    var dy: (Float, Float, Float, Float) = (0, 0, 0, 0)

    /// Calls `body(offset, weight, dx, dy)` for each neighbour inside the plane.
    @inline(__always) func forEach(_ body: (Int, Float, Float, Float) -> Void) {
        if weights.0 != 0 || dx.0 != 0 || dy.0 != 0 { body(offsets.0, weights.0, dx.0, dy.0) }
        if weights.1 != 0 || dx.1 != 0 || dy.1 != 0 { body(offsets.1, weights.1, dx.1, dy.1) }
        if weights.2 != 0 || dx.2 != 0 || dy.2 != 0 { body(offsets.2, weights.2, dx.2, dy.2) }
        if weights.3 != 0 || dx.3 != 0 || dy.3 != 0 { body(offsets.3, weights.3, dx.3, dy.3) }
    }
}

extension Tensor {
    /// torch.nn.functional.grid_sample(self, grid, mode="bilinear", padding_mode="zeros",
    /// align_corners=False): self [N, C, H, W], grid [N, Ho, Wo, 2] of (x, y) in [-1, 1] (−1 and
    /// 1 are the outer edges of the border pixels) → [N, C, Ho, Wo]. Positions outside read zeros.
    /// Gradients flow to the input and to the grid.
    public func gridSampled(_ grid: Tensor) -> Tensor {
        precondition(
            rank == 4 && grid.rank == 4 && grid.shape[3] == 2 && grid.shape[0] == shape[0],
            "gridSampled: input \(shape) and grid \(grid.shape) are not [N, C, H, W] and [N, Ho, Wo, 2]")
        let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3])
        let (ho, wo) = (grid.shape[1], grid.shape[2])
        let points = ho * wo
        let input = self
        func pixel(_ g: UnsafeMutablePointer<Float>, _ b: Int, _ k: Int) -> (x: Float, y: Float) {
            let gx = g[(b * points + k) * 2], gy = g[(b * points + k) * 2 + 1]
            return (((gx + 1) * Float(w) - 1) / 2, ((gy + 1) * Float(h) - 1) / 2)
        }
        let y = Tensor(zeros: [n, c, ho, wo])
        let (src, dst, g) = (storage.base, y.storage.base, grid.storage.base)
        parallelFor(n * points, minimumPerThread: 64) { range in
            for index in range {
                let (b, k) = (index / points, index % points)
                let (px, py) = pixel(g, b, k)
                guard BilinearTap.reaches(x: px, y: py, height: h, width: w) else { continue }
                let corners = BilinearTap(x: px, y: py).corners(height: h, width: w, rowStride: w, stride: 1)
                for channel in 0..<c {
                    let plane = src + (b * c + channel) * h * w
                    var s: Float = 0
                    corners.forEach { offset, weight, _, _ in s += plane[offset] * weight }
                    dst[(b * c + channel) * points + k] = s
                }
            }
        }
        return recorded(y, name: "grid_sample", inputs: [self, grid]) { dy in
            let dInput = input.requiresGrad ? Tensor(zeros: input.shape) : nil
            let dGrid = grid.requiresGrad ? Tensor(zeros: grid.shape) : nil
            let gradOut = dy.storage.base
            // The input's gradient per (sample, channel) plane: no two threads write one plane.
            if let dInput {
                parallelFor(n * c) { range in
                    for planeIndex in range {
                        let b = planeIndex / c
                        let plane = dInput.storage.base + planeIndex * h * w
                        for k in 0..<points {
                            let (px, py) = pixel(g, b, k)
                            guard BilinearTap.reaches(x: px, y: py, height: h, width: w) else { continue }
                            let d = gradOut[planeIndex * points + k]
                            BilinearTap(x: px, y: py).corners(height: h, width: w, rowStride: w, stride: 1).forEach {
                                offset, weight, _, _ in plane[offset] += d * weight
                            }
                        }
                    }
                }
            }
            if let dGrid {
                parallelFor(n * points, minimumPerThread: 64) { range in
                    for index in range {
                        let (b, k) = (index / points, index % points)
                        let (px, py) = pixel(g, b, k)
                        guard BilinearTap.reaches(x: px, y: py, height: h, width: w) else { continue }
                        let corners = BilinearTap(x: px, y: py).corners(height: h, width: w, rowStride: w, stride: 1)
                        var (sx, sy): (Float, Float) = (0, 0)
                        for channel in 0..<c {
                            let plane = src + (b * c + channel) * h * w
                            let d = gradOut[(b * c + channel) * points + k]
                            corners.forEach { offset, _, dx, dy in
                                sx += d * plane[offset] * dx
                                sy += d * plane[offset] * dy
                            }
                        }
                        // x = ((g + 1)·W − 1) / 2, so dx/dg = W/2.
                        dGrid.storage.base[index * 2] = sx * Float(w) / 2
                        dGrid.storage.base[index * 2 + 1] = sy * Float(h) / 2
                    }
                }
            }
            return [dInput, dGrid]
        }
    }

    /// Multi-scale deformable attention (Deformable DETR's `MSDeformAttnFunction`, whose
    /// PyTorch path is `multi_scale_deformable_attn_pytorch`): for each query and head, the
    /// weighted sum over levels and points of the value map of that level sampled bilinearly at
    /// the point (grid_sample's rule: location (x, y) ∈ [0, 1] is pixel (x·W − 0.5, y·H − 0.5),
    /// zeros outside).
    /// - Parameters:
    ///   - value: [B, S, heads, dim], S = Σ H_l·W_l, the levels' pixels row-major one after another.
    ///   - levels: each level's (height, width), in order.
    ///   - locations: [B, Q, heads, L, P, 2] of (x, y).
    ///   - weights: [B, Q, heads, L, P].
    /// - Returns: [B, Q, heads·dim]. Gradients flow to all three tensors.
    public static func multiScaleDeformableAttention(
        value: Tensor, levels: [(height: Int, width: Int)], locations: Tensor, weights: Tensor
    ) -> Tensor {
        let (b, s, heads, dim) = (value.shape[0], value.shape[1], value.shape[2], value.shape[3])
        let (q, l, p) = (locations.shape[1], locations.shape[3], locations.shape[4])
        precondition(
            value.rank == 4 && locations.shape == [b, q, heads, l, p, 2] && weights.shape == [b, q, heads, l, p]
                && levels.count == l && levels.map { $0.height * $0.width }.reduce(0, +) == s,
            "multiScaleDeformableAttention: value \(value.shape), levels \(levels), locations \(locations.shape), weights \(weights.shape)"
        )
        var starts = [0]
        for level in levels { starts.append(starts.last! + level.height * level.width) }
        let rowStride = heads * dim * 1  // between pixels of a level, in floats: [S, heads, dim]
        /// The (x, y) pixel of point (bq, head, level, point).
        func pixel(_ loc: UnsafeMutablePointer<Float>, _ index: Int, _ level: Int) -> (x: Float, y: Float) {
            (loc[index * 2] * Float(levels[level].width) - 0.5, loc[index * 2 + 1] * Float(levels[level].height) - 0.5)
        }
        let y = Tensor(zeros: [b, q, heads * dim])
        let (v, loc, wt, out) = (value.storage.base, locations.storage.base, weights.storage.base, y.storage.base)
        if dim == 32 {
            Self.deformableAttention32(
                v, loc, wt, out, levels: levels, starts: starts, batches: b, queries: q, heads: heads, points: p, pixels: s)
        } else {
            parallelFor(b * q, minimumPerThread: 8) { range in
                for bq in range {
                    let batch = bq / q
                    for head in 0..<heads {
                        let o = out + (bq * heads + head) * dim
                        for level in 0..<l {
                            let (h, w) = levels[level]
                            let base = v + ((batch * s + starts[level]) * heads + head) * dim
                            for point in 0..<p {
                                let index = ((bq * heads + head) * l + level) * p + point
                                let (px, py) = pixel(loc, index, level)
                                guard BilinearTap.reaches(x: px, y: py, height: h, width: w) else { continue }
                                let a = wt[index]
                                BilinearTap(x: px, y: py).corners(
                                    height: h, width: w, rowStride: w * rowStride, stride: rowStride
                                )
                                .forEach { offset, weight, _, _ in
                                    guard weight != 0 else { return }
                                    let c = a * weight
                                    let src = base + offset
                                    for d in 0..<dim { o[d] += c * src[d] }
                                }
                            }
                        }
                    }
                }
            }
        }
        return Tensor.record(y, name: "ms_deform_attn", inputs: [value, locations, weights]) { dy in
            let dValue = value.requiresGrad ? Tensor(zeros: value.shape) : nil
            let dLocations = locations.requiresGrad ? Tensor(zeros: locations.shape) : nil
            let dWeights = weights.requiresGrad ? Tensor(zeros: weights.shape) : nil
            let g = dy.storage.base
            // Per (batch, head): its slice of the value gradient is written by one thread only.
            parallelFor(b * heads) { range in
                for bh in range {
                    let (batch, head) = (bh / heads, bh % heads)
                    for query in 0..<q {
                        let bq = batch * q + query
                        let gOut = g + (bq * heads + head) * dim
                        for level in 0..<l {
                            let (h, w) = levels[level]
                            let offset = ((batch * s + starts[level]) * heads + head) * dim
                            for point in 0..<p {
                                let index = ((bq * heads + head) * l + level) * p + point
                                let (px, py) = pixel(loc, index, level)
                                guard BilinearTap.reaches(x: px, y: py, height: h, width: w) else { continue }
                                let corners = BilinearTap(x: px, y: py).corners(
                                    height: h, width: w, rowStride: w * rowStride, stride: rowStride)
                                let a = wt[index]
                                if let dValue {
                                    corners.forEach { cornerOffset, weight, _, _ in
                                        let dst = dValue.storage.base + offset + cornerOffset
                                        let c = a * weight
                                        for d in 0..<dim { dst[d] += c * gOut[d] }
                                    }
                                }
                                if dWeights != nil || dLocations != nil {
                                    var (sample, sx, sy): (Float, Float, Float) = (0, 0, 0)
                                    corners.forEach { cornerOffset, weight, dx, dy in
                                        let src = v + offset + cornerOffset
                                        var dot: Float = 0
                                        for d in 0..<dim { dot += gOut[d] * src[d] }
                                        sx += dot * dx
                                        sy += dot * dy
                                        sample += dot * weight
                                    }
                                    dWeights?.storage.base[index] = sample
                                    if let dLocations {
                                        // x = loc·W − 0.5, so dx/dloc = W.
                                        dLocations.storage.base[index * 2] = a * sx * Float(w)
                                        dLocations.storage.base[index * 2 + 1] = a * sy * Float(h)
                                    }
                                }
                            }
                        }
                    }
                }
            }
            return [dValue, dLocations, dWeights]
        }
    }

    /// The forward of `multiScaleDeformableAttention` for 32 channels per head (Grounding DINO's
    /// and Deformable DETR's 256 / 8): each (query, head) output held in four 8-lane registers
    /// across its levels, points and corners, and written once. The same products and sums in
    /// the same order as the general loop.
    private static func deformableAttention32(
        _ v: UnsafeMutablePointer<Float>, _ loc: UnsafeMutablePointer<Float>, _ wt: UnsafeMutablePointer<Float>,
        _ out: UnsafeMutablePointer<Float>, levels: [(height: Int, width: Int)], starts: [Int], batches b: Int, queries q: Int,
        heads: Int, points p: Int, pixels s: Int
    ) {
        let l = levels.count
        let rowStride = heads * 32
        typealias V = SIMD8<Float>
        @inline(__always) func add(
            _ a0: inout V, _ a1: inout V, _ a2: inout V, _ a3: inout V, _ src: UnsafeRawPointer, _ weight: Float, _ a: Float
        ) {
            guard weight != 0 else { return }
            let k = V(repeating: a * weight)
            a0 += k * src.loadUnaligned(fromByteOffset: 0, as: V.self)
            a1 += k * src.loadUnaligned(fromByteOffset: 32, as: V.self)
            a2 += k * src.loadUnaligned(fromByteOffset: 64, as: V.self)
            a3 += k * src.loadUnaligned(fromByteOffset: 96, as: V.self)
        }
        parallelFor(b * q, minimumPerThread: 8) { range in
            for bq in range {
                let batch = bq / q
                for head in 0..<heads {
                    var (a0, a1, a2, a3) = (V(repeating: 0), V(repeating: 0), V(repeating: 0), V(repeating: 0))
                    for level in 0..<l {
                        let (h, w) = levels[level]
                        let base = UnsafeRawPointer(v + ((batch * s + starts[level]) * heads + head) * 32)
                        for point in 0..<p {
                            let index = ((bq * heads + head) * l + level) * p + point
                            let (px, py) = (loc[index * 2] * Float(w) - 0.5, loc[index * 2 + 1] * Float(h) - 0.5)
                            guard BilinearTap.reaches(x: px, y: py, height: h, width: w) else { continue }
                            let a = wt[index]
                            let c = BilinearTap(x: px, y: py).corners(
                                height: h, width: w, rowStride: w * rowStride, stride: rowStride)
                            // Corners outside the map have weight 0 and are skipped, as in the general loop.
                            add(&a0, &a1, &a2, &a3, base + c.offsets.0 * 4, c.weights.0, a)
                            add(&a0, &a1, &a2, &a3, base + c.offsets.1 * 4, c.weights.1, a)
                            add(&a0, &a1, &a2, &a3, base + c.offsets.2 * 4, c.weights.2, a)
                            add(&a0, &a1, &a2, &a3, base + c.offsets.3 * 4, c.weights.3, a)
                        }
                    }
                    let o = UnsafeMutableRawPointer(out + (bq * heads + head) * 32)
                    o.storeBytes(of: a0, toByteOffset: 0, as: V.self)
                    o.storeBytes(of: a1, toByteOffset: 32, as: V.self)
                    o.storeBytes(of: a2, toByteOffset: 64, as: V.self)
                    o.storeBytes(of: a3, toByteOffset: 96, as: V.self)
                }
            }
        }
    }
}
