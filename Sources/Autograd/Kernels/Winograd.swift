import CKernels

// Winograd F(2x2, 3x3) convolution (Lavin & Gray, "Fast Algorithms for Convolutional Neural
// Networks", 2016) for 3x3 stride-1 convolutions with any dilation and padding: each 2x2 block of
// outputs is computed from a 4x4 block of inputs with 16 products instead of 36, so the sgemm
// work of a 3x3 convolution falls by 2.25× (ResNet's 3x3 convolutions are about half of
// DeepLab-v2's arithmetic). The 16 products are 16 independent matrix products
//   M_ξ [out, tiles] = U_ξ [out, in] · V_ξ [in, tiles],   ξ = 0..<16,
// with U = G g Gᵀ the transformed weights, V = Bᵀ d B the transformed input tiles, and the output
// block Aᵀ M A.
//
// A dilated convolution is an undilated one on each of the d×d interleaved sub-grids of the
// output (outputs oy ≡ r mod d read only inputs on the matching sub-grid), so a tile here covers
// outputs (oy, oy + d) × (ox, ox + d) and reads inputs oy − p + u·d, u = 0..<4 (zeros outside).
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

    /// The tiles of one output axis: for tile `a`, the four input positions it reads
    /// (`inputs[4a + u]`, −1 outside the image) and its two output positions (`outputs[2a + s]`,
    /// −1 past the end).
    struct WinogradAxis {
        var inputs: [Int] = []
        var outputs: [Int] = []
        var count: Int { outputs.count / 2 }

        init(inSize: Int, outSize: Int, padding: Int, dilation d: Int) {
            for residue in 0..<min(d, outSize) {
                var o = residue
                while o < outSize {
                    for u in 0..<4 {
                        let i = o - padding + u * d
                        inputs.append(i >= 0 && i < inSize ? i : -1)
                    }
                    outputs.append(o)
                    outputs.append(o + d < outSize ? o + d : -1)
                    o += 2 * d
                }
            }
        }
    }

    /// y = conv3x3(x, W) (no bias) for x [batch, inChannels, H, W] through F(2x2, 3x3); `y`
    /// [batch, outChannels, outH, outW] is overwritten, or added to when `accumulate`.
    /// `transformedWeight` is `winogradWeight`'s (U_ξ [outChannels, inChannels]).
    static func winogradConvolution(
        x: UnsafePointer<Float>, transformedWeight u: WinogradWeight, y: UnsafeMutablePointer<Float>,
        accumulate: Bool, batch: Int, inChannels: Int, outChannels: Int, geometry g: WindowGeometry
    ) {
        precondition(
            winogradApplies(g), "winogradConvolution: needs a 3x3 stride-1 convolution with padding ≤ 2·dilation, got \(g)")
        let rows = WinogradAxis(inSize: g.inHeight, outSize: g.outHeight, padding: g.padding.h, dilation: g.dilation.h)
        let cols = WinogradAxis(inSize: g.inWidth, outSize: g.outWidth, padding: g.padding.w, dilation: g.dilation.w)
        let tiles = batch * rows.count * cols.count
        let (vStride, mStride) = (paddedStride(inChannels * tiles), paddedStride(outChannels * tiles))
        let v = TensorStorage(count: 16 * vStride, zeroed: false)
        let m = TensorStorage(count: 16 * mStride, zeroed: false)
        rows.inputs.withUnsafeBufferPointer { rowInputs in
            cols.inputs.withUnsafeBufferPointer { colInputs in
                winogradInputTransform(
                    x: x, v: v.base, stride: vStride, batch: batch, channels: inChannels, geometry: g,
                    rowInputs: rowInputs.baseAddress!,
                    rowTiles: rows.count, colInputs: colInputs.baseAddress!, colTiles: cols.count)
            }
        }
        parallelFor(16) { range in
            for xi in range {
                sgemm(
                    false, false, outChannels, tiles, inChannels, 1, u.storage.base + xi * u.stride, inChannels,
                    v.base + xi * vStride, tiles, 0, m.base + xi * mStride, tiles)
            }
        }
        rows.outputs.withUnsafeBufferPointer { rowOutputs in
            cols.outputs.withUnsafeBufferPointer { colOutputs in
                winogradOutputTransform(
                    m: m.base, stride: mStride, y: y, accumulate: accumulate, batch: batch, channels: outChannels, geometry: g,
                    rowOutputs: rowOutputs.baseAddress!, rowTiles: rows.count, colOutputs: colOutputs.baseAddress!,
                    colTiles: cols.count)
            }
        }
    }

    /// V_ξ[c, t] = (Bᵀ d B)_ξ for each channel c and tile t = (n·rowTiles + a)·colTiles + b, where
    /// d is the 4x4 input block of tile (a, b) of image n (`wsss_winograd_input`, in C).
    private static func winogradInputTransform(
        x: UnsafePointer<Float>, v: UnsafeMutablePointer<Float>, stride: Int, batch: Int, channels: Int,
        geometry g: WindowGeometry,
        rowInputs: UnsafePointer<Int>, rowTiles: Int, colInputs: UnsafePointer<Int>, colTiles: Int
    ) {
        let plane = g.inHeight * g.inWidth, perImage = rowTiles * colTiles
        let tiles = batch * perImage
        let zeros = TensorStorage(count: g.inWidth)
        parallelFor(batch * channels, minimumPerThread: 4) { range in
            for nc in range {
                let (n, c) = (nc / channels, nc % channels)
                wsss_winograd_input(
                    x + nc * plane, g.inWidth, zeros.base, rowInputs, rowTiles, colInputs, colTiles,
                    v + c * tiles + n * perImage, stride)
            }
        }
    }

    /// y[n, c, block of tile (a, b)] (+)= Aᵀ M A with M_ξ = m[ξ, c, t]; Aᵀ = [1 1 1 0; 0 1 −1 −1]
    /// (`wsss_winograd_output`, in C).
    private static func winogradOutputTransform(
        m: UnsafePointer<Float>, stride: Int, y: UnsafeMutablePointer<Float>, accumulate: Bool, batch: Int, channels: Int,
        geometry g: WindowGeometry, rowOutputs: UnsafePointer<Int>, rowTiles: Int, colOutputs: UnsafePointer<Int>,
        colTiles: Int
    ) {
        let perImage = rowTiles * colTiles, tiles = batch * perImage
        parallelFor(batch * channels, minimumPerThread: 4) { range in
            for nc in range {
                let (n, c) = (nc / channels, nc % channels)
                wsss_winograd_output(
                    m + c * tiles + n * perImage, stride, rowOutputs, rowTiles, colOutputs, colTiles,
                    y + nc * g.outArea, g.outWidth, accumulate ? 1 : 0)
            }
        }
    }

    /// The distance between consecutive ξ matrices of a transformed buffer: `count` rounded up to
    /// 16 floats plus 16, so it is never a large power of two (16 streams a power of two apart
    /// share cache sets; with 512 channels that made the weight transform 6× slower).
    static func paddedStride(_ count: Int) -> Int { (count + 15) / 16 * 16 + 16 }

    /// Transformed weights: U_ξ [rows, columns] at `storage.base + ξ · stride`, ξ = 0..<16.
    struct WinogradWeight {
        let storage: TensorStorage
        let stride: Int
    }

    /// U_ξ[o, i] = (G g Gᵀ)_ξ for the 3x3 kernel g = weight[o, i] of a weight [out, in, 3, 3];
    /// G = [1 0 0; ½ ½ ½; ½ −½ ½; 0 0 1]. U_ξ is [out, in].
    static func winogradWeight(_ weight: UnsafePointer<Float>, outChannels: Int, inChannels: Int) -> WinogradWeight {
        let stride = paddedStride(outChannels * inChannels)
        let u = TensorStorage(count: 16 * stride, zeroed: false)
        let base = u.base
        parallelFor(outChannels, minimumPerThread: 8) { range in
            for o in range {
                wsss_winograd_kernels(weight + o * inChannels * 9, 9, inChannels, 0, base + o * inChannels, stride)
            }
        }
        return WinogradWeight(storage: u, stride: stride)
    }

    /// The transformed weight of the input gradient's convolution: dx = conv3x3(dy, W′) with
    /// W′[i, o, r, s] = W[o, i, 2 − r, 2 − s] (channels swapped, kernel rotated by 180°).
    /// U_ξ is [in, out].
    static func winogradTransposedWeight(_ weight: UnsafePointer<Float>, outChannels: Int, inChannels: Int) -> WinogradWeight {
        let stride = paddedStride(outChannels * inChannels)
        let u = TensorStorage(count: 16 * stride, zeroed: false)
        let base = u.base
        parallelFor(inChannels, minimumPerThread: 8) { range in
            for i in range {
                wsss_winograd_kernels(weight + i * 9, inChannels * 9, outChannels, 1, base + i * outChannels, stride)
            }
        }
        return WinogradWeight(storage: u, stride: stride)
    }
}
