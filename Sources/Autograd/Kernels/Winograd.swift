import CKernels

// Winograd F(2x2, 3x3) and F(4x4, 3x3) convolution (Lavin & Gray, "Fast Algorithms for
// Convolutional Neural Networks", 2016) for 3x3 stride-1 convolutions with any dilation and
// padding: each n×n block of outputs (n = 2 or 4, the tile) is computed from an (n+2)×(n+2) block
// of inputs with (n+2)² products instead of 9n², so the sgemm work of a 3x3 convolution falls by
// 2.25× (F2) or 4× (F4) (ResNet's 3x3 convolutions are about half of DeepLab-v2's arithmetic).
// The products are (n+2)² independent matrix products
//   M_ξ [out, tiles] = U_ξ [out, in] · V_ξ [in, tiles],   ξ = 0..<(n+2)²,
// with U = G g Gᵀ the transformed weights, V = Bᵀ d B the transformed input tiles, and the output
// block Aᵀ M A. F4's larger transform coefficients round more coarsely: against im2col on a
// 256-channel layer 1.3e-5 of the largest output (F2: 4e-7 on 64 channels; tests bound them).
//
// A dilated convolution is an undilated one on each of the d×d interleaved sub-grids of the
// output (outputs oy ≡ r mod d read only inputs on the matching sub-grid), so a tile here covers
// outputs oy + s·d, s = 0..<n, per axis and reads inputs oy − p + u·d, u = 0..<n+2 (zeros outside).
// Every output pixel lies in exactly one tile.
//
// The result differs from im2col's in rounding only (a few ulps relative to the sum of |terms|);
// it does not depend on the thread count.

extension Kernels {
    /// Whether a convolution can use `winogradConvolution` for its forward pass and input
    /// gradient: 3x3, stride 1, and padding at most twice the dilation (so the input gradient is
    /// itself such a convolution).
    public static func winogradApplies(_ g: WindowGeometry) -> Bool {
        g.kernelHeight == 3 && g.kernelWidth == 3 && g.stride == (1, 1)
            && g.padding.h <= 2 * g.dilation.h && g.padding.w <= 2 * g.dilation.w
    }

    /// The tiles of one output axis for tiles of `tile` outputs: for tile `a`, the tile + 2 input
    /// positions it reads (`inputs[(tile + 2)·a + u]`, −1 outside the image) and its output
    /// positions (`outputs[tile·a + s]`, −1 past the end).
    struct WinogradAxis {
        var inputs: [Int] = []
        var outputs: [Int] = []
        let tile: Int
        var count: Int { outputs.count / tile }

        init(inSize: Int, outSize: Int, padding: Int, dilation d: Int, tile: Int) {
            self.tile = tile
            for residue in 0..<min(d, outSize) {
                var o = residue
                while o < outSize {
                    for u in 0..<(tile + 2) {
                        let i = o - padding + u * d
                        inputs.append(i >= 0 && i < inSize ? i : -1)
                    }
                    for s in 0..<tile { outputs.append(o + s * d < outSize ? o + s * d : -1) }
                    o += tile * d
                }
            }
        }
    }

    /// y = conv3x3(x, W) (no bias) for x [batch, inChannels, H, W] through F(n×n, 3x3), n the
    /// transformed weight's tile; `y` [batch, outChannels, outH, outW] is overwritten, or added
    /// to when `accumulate`. `transformedWeight` is `winogradWeight`'s (U_ξ [outChannels, inChannels]).
    static func winogradConvolution(
        x: UnsafePointer<Float>, transformedWeight u: WinogradWeight, y: UnsafeMutablePointer<Float>,
        accumulate: Bool, batch: Int, inChannels: Int, outChannels: Int, geometry g: WindowGeometry
    ) {
        precondition(
            winogradApplies(g), "winogradConvolution: needs a 3x3 stride-1 convolution with padding ≤ 2·dilation, got \(g)")
        let tile = u.tile, elements = u.elements
        let rows = WinogradAxis(
            inSize: g.inHeight, outSize: g.outHeight, padding: g.padding.h, dilation: g.dilation.h, tile: tile)
        let cols = WinogradAxis(inSize: g.inWidth, outSize: g.outWidth, padding: g.padding.w, dilation: g.dilation.w, tile: tile)
        let tiles = batch * rows.count * cols.count
        let (vStride, mStride) = (paddedStride(inChannels * tiles), paddedStride(outChannels * tiles))
        let v = TensorStorage(count: elements * vStride, zeroed: false)
        let m = TensorStorage(count: elements * mStride, zeroed: false)
        rows.inputs.withUnsafeBufferPointer { rowInputs in
            cols.inputs.withUnsafeBufferPointer { colInputs in
                winogradInputTransform(
                    x: x, v: v.base, stride: vStride, tile: tile, batch: batch, channels: inChannels, geometry: g,
                    rowInputs: rowInputs.baseAddress!,
                    rowTiles: rows.count, colInputs: colInputs.baseAddress!, colTiles: cols.count)
            }
        }
        parallelFor(elements) { range in
            for xi in range {
                sgemm(
                    false, false, outChannels, tiles, inChannels, 1, u.storage.base + xi * u.stride, inChannels,
                    v.base + xi * vStride, tiles, 0, m.base + xi * mStride, tiles)
            }
        }
        rows.outputs.withUnsafeBufferPointer { rowOutputs in
            cols.outputs.withUnsafeBufferPointer { colOutputs in
                winogradOutputTransform(
                    m: m.base, stride: mStride, tile: tile, y: y, accumulate: accumulate, batch: batch, channels: outChannels,
                    geometry: g,
                    rowOutputs: rowOutputs.baseAddress!, rowTiles: rows.count, colOutputs: colOutputs.baseAddress!,
                    colTiles: cols.count)
            }
        }
    }

    /// V_ξ[c, t] = (Bᵀ d B)_ξ for each channel c and tile t = (n·rowTiles + a)·colTiles + b, where
    /// d is the (tile+2)² input block of tile (a, b) of image n (`wsss_winograd_input`,
    /// `wsss_winograd4_input`, in C).
    private static func winogradInputTransform(
        x: UnsafePointer<Float>, v: UnsafeMutablePointer<Float>, stride: Int, tile: Int, batch: Int, channels: Int,
        geometry g: WindowGeometry,
        rowInputs: UnsafePointer<Int>, rowTiles: Int, colInputs: UnsafePointer<Int>, colTiles: Int
    ) {
        let plane = g.inHeight * g.inWidth, perImage = rowTiles * colTiles
        let tiles = batch * perImage
        let zeros = TensorStorage(count: g.inWidth)
        parallelFor(batch * channels, minimumPerThread: 4) { range in
            for nc in range {
                let (n, c) = (nc / channels, nc % channels)
                let (image, out) = (x + nc * plane, v + c * tiles + n * perImage)
                if tile == 4 {
                    wsss_winograd4_input(image, g.inWidth, zeros.base, rowInputs, rowTiles, colInputs, colTiles, out, stride)
                } else {
                    wsss_winograd_input(image, g.inWidth, zeros.base, rowInputs, rowTiles, colInputs, colTiles, out, stride)
                }
            }
        }
    }

    /// y[n, c, block of tile (a, b)] (+)= Aᵀ M A with M_ξ = m[ξ, c, t]; for F2 Aᵀ = [1 1 1 0; 0 1 −1 −1]
    /// (`wsss_winograd_output`, `wsss_winograd4_output`, in C).
    private static func winogradOutputTransform(
        m: UnsafePointer<Float>, stride: Int, tile: Int, y: UnsafeMutablePointer<Float>, accumulate: Bool, batch: Int,
        channels: Int, geometry g: WindowGeometry, rowOutputs: UnsafePointer<Int>, rowTiles: Int,
        colOutputs: UnsafePointer<Int>, colTiles: Int
    ) {
        let perImage = rowTiles * colTiles, tiles = batch * perImage
        parallelFor(batch * channels, minimumPerThread: 4) { range in
            for nc in range {
                let (n, c) = (nc / channels, nc % channels)
                let (source, image) = (m + c * tiles + n * perImage, y + nc * g.outArea)
                if tile == 4 {
                    wsss_winograd4_output(
                        source, stride, rowOutputs, rowTiles, colOutputs, colTiles, image, g.outWidth, accumulate ? 1 : 0)
                } else {
                    wsss_winograd_output(
                        source, stride, rowOutputs, rowTiles, colOutputs, colTiles, image, g.outWidth, accumulate ? 1 : 0)
                }
            }
        }
    }

    /// The distance between consecutive ξ matrices of a transformed buffer: `count` rounded up to
    /// 16 floats plus 16, so it is never a large power of two (16 streams a power of two apart
    /// share cache sets; with 512 channels that made the weight transform 6× slower).
    static func paddedStride(_ count: Int) -> Int { (count + 15) / 16 * 16 + 16 }

    /// Transformed weights: U_ξ [rows, columns] at `storage.base + ξ · stride`, ξ = 0..<(tile+2)².
    struct WinogradWeight {
        let storage: TensorStorage
        let stride: Int
        /// Outputs per tile along each axis: 2 for F(2x2, 3x3), 4 for F(4x4, 3x3).
        let tile: Int
        var elements: Int { (tile + 2) * (tile + 2) }
    }

    /// `count` kernels at `w + k·kernelStride` (rotated when `rotate`) transformed for `tile`.
    private static func transformKernels(
        _ w: UnsafePointer<Float>, kernelStride: Int, count: Int, rotate: Bool, tile: Int, into u: UnsafeMutablePointer<Float>,
        stride: Int
    ) {
        if tile == 4 {
            wsss_winograd4_kernels(w, kernelStride, count, rotate ? 1 : 0, u, stride)
        } else {
            wsss_winograd_kernels(w, kernelStride, count, rotate ? 1 : 0, u, stride)
        }
    }

    /// U_ξ[o, i] = (G g Gᵀ)_ξ for the 3x3 kernel g = weight[o, i] of a weight [out, in, 3, 3];
    /// for F2 G = [1 0 0; ½ ½ ½; ½ −½ ½; 0 0 1] (F4's is in winograd4.c). U_ξ is [out, in].
    static func winogradWeight(_ weight: UnsafePointer<Float>, outChannels: Int, inChannels: Int, tile: Int) -> WinogradWeight {
        precondition(tile == 2 || tile == 4, "winogradWeight: tile \(tile) (2 or 4)")
        let stride = paddedStride(outChannels * inChannels)
        let u = TensorStorage(count: (tile + 2) * (tile + 2) * stride, zeroed: false)
        let base = u.base
        parallelFor(outChannels, minimumPerThread: 8) { range in
            for o in range {
                transformKernels(
                    weight + o * inChannels * 9, kernelStride: 9, count: inChannels, rotate: false, tile: tile,
                    into: base + o * inChannels, stride: stride)
            }
        }
        return WinogradWeight(storage: u, stride: stride, tile: tile)
    }

    /// The transformed weight of the input gradient's convolution: dx = conv3x3(dy, W′) with
    /// W′[i, o, r, s] = W[o, i, 2 − r, 2 − s] (channels swapped, kernel rotated by 180°).
    /// U_ξ is [in, out].
    static func winogradTransposedWeight(_ weight: UnsafePointer<Float>, outChannels: Int, inChannels: Int, tile: Int)
        -> WinogradWeight
    {
        precondition(tile == 2 || tile == 4, "winogradTransposedWeight: tile \(tile) (2 or 4)")
        let stride = paddedStride(outChannels * inChannels)
        let u = TensorStorage(count: (tile + 2) * (tile + 2) * stride, zeroed: false)
        let base = u.base
        parallelFor(inChannels, minimumPerThread: 8) { range in
            for i in range {
                transformKernels(
                    weight + i * 9, kernelStride: inChannels * 9, count: outChannels, rotate: true, tile: tile,
                    into: base + i * outChannels, stride: stride)
            }
        }
        return WinogradWeight(storage: u, stride: stride, tile: tile)
    }
}
