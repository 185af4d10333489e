import Foundation

// PIL's `Image.resize(size, Image.BILINEAR)` (and `Image.BICUBIC`) on 8-bit images, bit-exact
// (Pillow's libImaging/Resample.c): a separable convolution with the triangle (or Keys cubic,
// a = -0.5) filter stretched by the downscaling factor (so downscaling averages, i.e. antialiases), horizontal pass first, each
// pass rounding to 8 bits with fixed-point coefficients of 22 fractional bits. SAM's
// ResizeLongestSide.apply_image resizes this way (torchvision's resize of a PIL image).
//
// Pass order: Resample.c as published runs the horizontal pass first, but Pillow 13.0 (the
// reference environment's) runs the vertical pass first when the height shrinks by more than
// twice the width does (h - h' > 2 (w - w')); because each pass rounds, the order changes
// bytes. That rule was measured, not read: on 402 random size pairs from 3x3 to 2000x1500 it
// predicted Pillow 13's order every time (scripts/fixtures/make_sam_fixtures.py pins both); the
// same rule holds for the bicubic filter on the sizes scripts/fixtures/make_irn_fixtures.py pins.

/// A resampling filter of Pillow's `Image.resize` (Resample.c's `struct filter`).
public enum PILFilter: Sendable {
    /// `Image.BILINEAR`: triangle, support 1.
    case bilinear
    /// `Image.BICUBIC`: Keys' cubic convolution with a = -0.5, support 2 (IRN's `pil_resize` order 3).
    case bicubic

    var support: Double {
        switch self {
        case .bilinear: 1
        case .bicubic: 2
        }
    }

    /// Resample.c `bilinear_filter` / `bicubic_filter`.
    func weight(_ x: Double) -> Double {
        let x = abs(x)
        switch self {
        case .bilinear:
            return x < 1 ? 1 - x : 0
        case .bicubic:
            let a = -0.5
            if x < 1 { return ((a + 2) * x - (a + 3)) * x * x + 1 }
            if x < 2 { return (((x - 5) * x + 8) * x - 4) * a }
            return 0
        }
    }
}

extension Image {
    /// This image resized as PIL's `Image.resize((width, height), filter)` does (default
    /// `Image.BILINEAR`), to the byte (see the file comment). Channels are resampled
    /// independently. Height first, as every resize here (PIL's size tuple is width first).
    public func resizedLikePIL(height newHeight: Int, width newWidth: Int, filter: PILFilter = .bilinear) -> Image {
        precondition(newWidth > 0 && newHeight > 0, "resizedLikePIL: empty size \(newWidth)x\(newHeight)")
        // Resample.c, ImagingResampleInner: a pass runs only where the size changes.
        let needHorizontal = newWidth != width, needVertical = newHeight != height
        if !needHorizontal && !needVertical { return self }
        let horizontal = PILResampleAxis(inSize: width, outSize: newWidth, filter: filter)
        let vertical = PILResampleAxis(inSize: height, outSize: newHeight, filter: filter)
        if needHorizontal && needVertical && newHeight < height && height - newHeight > 2 * (width - newWidth) {
            return resampledColumns(axis: vertical, rowOffset: 0).resampledRows(0..<newHeight, axis: horizontal)
        }
        var source = self
        var rowOffset = 0
        if needHorizontal {
            // Only the input rows the vertical pass reads.
            let first = vertical.start[0], last = vertical.start[newHeight - 1] + vertical.taps[newHeight - 1]
            source = resampledRows(first..<last, axis: horizontal)
            rowOffset = first
        }
        return needVertical ? source.resampledColumns(axis: vertical, rowOffset: rowOffset) : source
    }

    /// The horizontal pass over input rows `rows`: [rows.count, outSize, channels].
    private func resampledRows(_ rows: Range<Int>, axis: PILResampleAxis) -> Image {
        let outWidth = axis.outSize, c = channels
        var out = [UInt8](repeating: 0, count: rows.count * outWidth * c)
        pixels.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                axis.coefficients.withUnsafeBufferPointer { k in
                    for (r, y) in rows.enumerated() {
                        let row = src.baseAddress! + y * width * c, outRow = dst.baseAddress! + r * outWidth * c
                        for x in 0..<outWidth {
                            let start = axis.start[x], taps = axis.taps[x], kx = k.baseAddress! + x * axis.stride
                            for ch in 0..<c {
                                var sum = PILResampleAxis.half
                                for t in 0..<taps { sum += Int(row[(start + t) * c + ch]) * Int(kx[t]) }
                                outRow[x * c + ch] = PILResampleAxis.clip8(sum)
                            }
                        }
                    }
                }
            }
        }
        return Image(width: outWidth, height: rows.count, channels: c, pixels: out)
    }

    /// The vertical pass; this image's row 0 is input row `rowOffset` of the axis.
    private func resampledColumns(axis: PILResampleAxis, rowOffset: Int) -> Image {
        let outHeight = axis.outSize, rowLength = width * channels
        var out = [UInt8](repeating: 0, count: outHeight * rowLength)
        pixels.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                axis.coefficients.withUnsafeBufferPointer { k in
                    for y in 0..<outHeight {
                        let start = axis.start[y] - rowOffset, taps = axis.taps[y], ky = k.baseAddress! + y * axis.stride
                        let outRow = dst.baseAddress! + y * rowLength, base = src.baseAddress! + start * rowLength
                        for i in 0..<rowLength {
                            var sum = PILResampleAxis.half
                            for t in 0..<taps { sum += Int(base[t * rowLength + i]) * Int(ky[t]) }
                            outRow[i] = PILResampleAxis.clip8(sum)
                        }
                    }
                }
            }
        }
        return Image(width: width, height: outHeight, channels: channels, pixels: out)
    }
}

/// Per output index of one axis: the first input index, the tap count and the fixed-point
/// weights (Resample.c, `precompute_coeffs` + `normalize_coeffs_8bpc`, no box).
struct PILResampleAxis {
    /// Fractional bits of the coefficients (Resample.c, PRECISION_BITS = 32 - 8 - 2).
    static let precisionBits = 22
    /// Rounding offset every sum starts from.
    static let half = 1 << (precisionBits - 1)

    let outSize: Int
    let start: [Int]
    let taps: [Int]
    /// outSize rows of `stride` weights.
    let coefficients: [Int32]
    let stride: Int

    init(inSize: Int, outSize: Int, filter: PILFilter) {
        self.outSize = outSize
        let scale = Double(inSize) / Double(outSize)
        let filterScale = max(scale, 1)
        let support = filter.support * filterScale
        stride = Int(support.rounded(.up)) * 2 + 1
        var start = [Int](), taps = [Int](), coefficients = [Int32](repeating: 0, count: outSize * stride)
        var weights = [Double](repeating: 0, count: stride)
        for x in 0..<outSize {
            let center = (Double(x) + 0.5) * scale
            let inverse = 1 / filterScale
            // C casts truncate toward zero, as Int(_:) does.
            let lower = max(Int(center - support + 0.5), 0)
            let count = min(Int(center + support + 0.5), inSize) - lower
            var total = 0.0
            for t in 0..<count {
                let u = abs((Double(t + lower) - center + 0.5) * inverse)
                weights[t] = filter.weight(u)
                total += weights[t]
            }
            for t in 0..<count {
                let w = total != 0 ? weights[t] / total : weights[t]
                let scaled = w * Double(1 << PILResampleAxis.precisionBits)
                coefficients[x * stride + t] = Int32(w < 0 ? Int(-0.5 + scaled) : Int(0.5 + scaled))
            }
            start.append(lower)
            taps.append(count)
        }
        self.start = start
        self.taps = taps
        self.coefficients = coefficients
    }

    /// Resample.c `clip8`: the fixed-point sum to a byte, saturating.
    @inline(__always)
    static func clip8(_ value: Int) -> UInt8 {
        if value >= (1 << precisionBits) << 8 { return 255 }
        if value <= 0 { return 0 }
        return UInt8(truncatingIfNeeded: value >> precisionBits)
    }
}
