import Autograd

/// Planar Float32 image data [channels, height, width] — what augmentation works on after
/// decoding (values in 0…255, or normalised).
public struct PlanarImage: Equatable, Sendable {
    public let channels: Int
    public let height: Int
    public let width: Int
    public var values: [Float]

    public init(channels: Int, height: Int, width: Int, values: [Float]) {
        precondition(
            values.count == channels * height * width,
            "PlanarImage: \(channels)x\(height)x\(width) needs \(channels * height * width) values, got \(values.count)")
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
    /// pipelines use for random scaling. [channels, height, width] → [channels, newHeight, newWidth].
    ///
    /// The source positions and the blend are Autograd's (`ResizeAxis`, `Kernels.resize`), so this
    /// equals `Tensor.resizedBilinear(to:alignCorners: false)` bit for bit: one rule, one loop.
    public func resizedBilinear(height newHeight: Int, width newWidth: Int) -> PlanarImage {
        precondition(
            height > 0 && width > 0 && newHeight > 0 && newWidth > 0,
            "PlanarImage.resizedBilinear: \(height)x\(width) → \(newHeight)x\(newWidth) has an empty side")
        let rows = ResizeAxis(linearFrom: height, to: newHeight, alignCorners: false)
        let columns = ResizeAxis(linearFrom: width, to: newWidth, alignCorners: false)
        var out = [Float](repeating: 0, count: channels * newHeight * newWidth)
        values.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                Kernels.resize(
                    src.baseAddress!, dst.baseAddress!, planes: channels, inSize: (height, width), rows: rows, columns: columns)
            }
        }
        return PlanarImage(channels: channels, height: newHeight, width: newWidth, values: out)
    }
}

extension Image {
    /// Bilinear resize (half-pixel centres, as cv2 INTER_LINEAR), rounded back to 8 bits.
    public func resizedBilinear(height newHeight: Int, width newWidth: Int) -> Image {
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
