extension Image {
    /// The image with `labels` painted over it in `palette` colours at `opacity` (0…1).
    /// Background (0) stays unpainted; ignore (255) pixels are painted white.
    public func overlaid(with labels: LabelMap, palette: ColorMap = .voc, opacity: Float = 0.5) -> Image {
        precondition(labels.width == width && labels.height == height,
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
