/// Planar Float32 image data [channels, height, width] — what augmentation works on after
/// decoding (values in 0…255, or normalised).
public struct PlanarImage: Equatable, Sendable {
    public let channels: Int
    public let height: Int
    public let width: Int
    public var values: [Float]

    public init(channels: Int, height: Int, width: Int, values: [Float]) {
        precondition(values.count == channels * height * width, "PlanarImage: \(channels)x\(height)x\(width) needs \(channels * height * width) values, got \(values.count)")
        self.channels = channels
        self.height = height
        self.width = width
        self.values = values
    }

    /// The channels of an 8-bit HWC image as CHW floats.
    public init(_ image: Image) {
        var values = [Float](repeating: 0, count: image.pixels.count)
        let plane = image.width * image.height
        image.pixels.withUnsafeBufferPointer { src in
            values.withUnsafeMutableBufferPointer { dst in
                for i in 0..<plane {
                    for c in 0..<image.channels { dst[c * plane + i] = Float(src[i * image.channels + c]) }
                }
            }
        }
        self.init(channels: image.channels, height: image.height, width: image.width, values: values)
    }

    /// Bilinear resize with half-pixel centres and no antialiasing: cv2.resize(INTER_LINEAR) and
    /// torch interpolate(mode="bilinear", align_corners=False) on floats, which DeepLab's data
    /// pipelines use for random scaling.
    public func resizedBilinear(height newHeight: Int, width newWidth: Int) -> PlanarImage {
        func axis(_ inSize: Int, _ outSize: Int) -> (lower: [Int], upper: [Int], weight: [Float]) {
            let scale = Float(inSize) / Float(outSize)
            var lower = [Int](), upper = [Int](), weight = [Float]()
            for d in 0..<outSize {
                let src = max(scale * (Float(d) + 0.5) - 0.5, 0)
                let i0 = min(Int(src), inSize - 1)
                lower.append(i0)
                upper.append(min(i0 + 1, inSize - 1))
                weight.append(src - Float(i0))
            }
            return (lower, upper, weight)
        }
        let rows = axis(height, newHeight), cols = axis(width, newWidth)
        var out = [Float](repeating: 0, count: channels * newHeight * newWidth)
        values.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for c in 0..<channels {
                    let s = src.baseAddress! + c * height * width, d = dst.baseAddress! + c * newHeight * newWidth
                    for i in 0..<newHeight {
                        let a = s + rows.lower[i] * width, b = s + rows.upper[i] * width
                        let hl = rows.weight[i], h0 = 1 - hl
                        for j in 0..<newWidth {
                            let wl = cols.weight[j], w0 = 1 - wl
                            d[i * newWidth + j] = h0 * (w0 * a[cols.lower[j]] + wl * a[cols.upper[j]])
                                + hl * (w0 * b[cols.lower[j]] + wl * b[cols.upper[j]])
                        }
                    }
                }
            }
        }
        return PlanarImage(channels: channels, height: newHeight, width: newWidth, values: out)
    }
}

extension Image {
    /// Bilinear resize (half-pixel centres, as cv2 INTER_LINEAR), rounded back to 8 bits.
    public func resizedBilinear(width newWidth: Int, height newHeight: Int) -> Image {
        let planar = PlanarImage(self).resizedBilinear(height: newHeight, width: newWidth)
        var pixels = [UInt8](repeating: 0, count: newWidth * newHeight * channels)
        let plane = newWidth * newHeight
        for i in 0..<plane {
            for c in 0..<channels {
                pixels[i * channels + c] = UInt8(max(0, min(255, planar.values[c * plane + i].rounded())))
            }
        }
        return Image(width: newWidth, height: newHeight, channels: channels, pixels: pixels)
    }
}
