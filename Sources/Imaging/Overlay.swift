extension Image {
    /// The image with `labels` painted over it in `palette` colours at `opacity` (0…1).
    /// Background (0) stays unpainted; ignore (255) pixels are painted white.
    public func overlaid(with labels: LabelMap, palette: ColorMap = .voc, opacity: Float = 0.5) -> Image {
        precondition(
            labels.width == width && labels.height == height,
            "overlay: labels \(labels.width)x\(labels.height) for image \(width)x\(height)")
        let base = rgb()
        var out = base.pixels
        for i in 0..<(width * height) {
            let label = labels.values[i]
            if label == 0 { continue }
            let (r, g, b) = label == LabelMap.ignore ? (255, 255, 255) : palette.color(of: label)
            for (c, v) in [r, g, b].enumerated() {
                let mixed = (1 - opacity) * Float(base.pixels[3 * i + c]) + opacity * Float(v)
                out[3 * i + c] = UInt8(max(0, min(255, mixed.rounded())))
            }
        }
        return Image(width: width, height: height, channels: 3, pixels: out)
    }
}

extension LabelMap {
    /// The map as an RGB picture in `palette` colours.
    public func colorized(palette: ColorMap = .voc) -> Image {
        var pixels = [UInt8](repeating: 0, count: width * height * 3)
        for (i, v) in values.enumerated() {
            let (r, g, b) = palette.color(of: v)
            pixels[3 * i] = r
            pixels[3 * i + 1] = g
            pixels[3 * i + 2] = b
        }
        return Image(width: width, height: height, channels: 3, pixels: pixels)
    }
}

extension Image {
    /// Each mask's region filled with its own colour (a hash of its index), mixed over the image;
    /// pixels in several masks show the last one. `masks` are row-major bitmaps.
    public func withRegions(_ masks: [[Bool]], opacity: Float = 0.6) -> Image {
        let base = rgb()
        var out = base.pixels
        for (k, mask) in masks.enumerated() {
            var h = UInt32(truncatingIfNeeded: k &* 2_654_435_761 &+ 12345)
            h ^= h >> 13
            let color = [Float(h & 255), Float(h >> 8 & 255), Float(h >> 16 & 255)]
            for i in 0..<(width * height) where mask[i] {
                for c in 0..<3 {
                    out[3 * i + c] = UInt8(((1 - opacity) * Float(base.pixels[3 * i + c]) + opacity * color[c]).rounded())
                }
            }
        }
        return Image(width: width, height: height, channels: 3, pixels: out)
    }
}
