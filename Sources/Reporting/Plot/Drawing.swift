import Foundation
import Imaging

/// An 8-bit RGB colour, as `ColorMap.color(of:)` returns it.
public typealias RGB = (UInt8, UInt8, UInt8)

/// A picture as a list of shapes in pixel coordinates (origin top-left, y down), laid out once
/// and then rasterised (`rendered()`) or written as SVG (`svg()`), so the PNG and the SVG of a
/// plot cannot drift apart.
struct Drawing {
    enum Anchor { case start, middle, end }

    enum Shape {
        /// A filled axis-aligned rectangle.
        case rect(x: Int, y: Int, width: Int, height: Int, fill: RGB)
        /// A rectangle outline, 1 pixel wide, inside the given bounds.
        case frame(x: Int, y: Int, width: Int, height: Int, stroke: RGB)
        /// A straight line of `width` pixels through pixel centres (x0, y0) to (x1, y1).
        case line(x0: Int, y0: Int, x1: Int, y1: Int, stroke: RGB, width: Int)
        /// Connected segments through `points`, clipped to `clip` (x, y, width, height).
        case polyline(points: [(Int, Int)], stroke: RGB, width: Int, clip: (Int, Int, Int, Int))
        /// One line of text whose cell top is `top` and whose `anchor` sits at `x`; when `rotated`
        /// (reading upwards) `x` is the cell's left edge and `anchor` refers to `top` as the
        /// vertical centre/end/start of the run.
        case text(String, x: Int, top: Int, anchor: Anchor, scale: Int, fill: RGB, rotated: Bool)
    }

    let width: Int
    let height: Int
    var background: RGB = (255, 255, 255)
    var shapes: [Shape] = []

    // MARK: Raster

    /// The drawing as an RGB image.
    func rendered() -> Image {
        var image = Image(width: width, height: height, channels: 3, filledWith: 0)
        fill(&image, x: 0, y: 0, width: width, height: height, color: background)
        for shape in shapes {
            switch shape {
            case .rect(let x, let y, let w, let h, let color):
                fill(&image, x: x, y: y, width: w, height: h, color: color)
            case .frame(let x, let y, let w, let h, let color):
                fill(&image, x: x, y: y, width: w, height: 1, color: color)
                fill(&image, x: x, y: y + h - 1, width: w, height: 1, color: color)
                fill(&image, x: x, y: y, width: 1, height: h, color: color)
                fill(&image, x: x + w - 1, y: y, width: 1, height: h, color: color)
            case .line(let x0, let y0, let x1, let y1, let color, let w):
                stroke(&image, from: (x0, y0), to: (x1, y1), color: color, width: w, clip: (0, 0, width, height))
            case .polyline(let points, let color, let w, let clip):
                for (a, b) in zip(points, points.dropFirst()) {
                    stroke(&image, from: a, to: b, color: color, width: w, clip: clip)
                }
                if points.count == 1 { stroke(&image, from: points[0], to: points[0], color: color, width: w, clip: clip) }
            case .text(let string, let x, let top, let anchor, let scale, let color, let rotated):
                let run = BitmapFont.width(of: string, scale: scale)
                let offset = anchor == .start ? 0 : anchor == .middle ? run / 2 : run
                if rotated {
                    BitmapFont.draw(string, into: &image, x: x, y: top + offset, scale: scale, color: color, rotated: true)
                } else {
                    BitmapFont.draw(string, into: &image, x: x - offset, y: top, scale: scale, color: color)
                }
            }
        }
        return image
    }

    private func fill(_ image: inout Image, x: Int, y: Int, width w: Int, height h: Int, color: RGB) {
        let x0 = max(0, x), x1 = min(width, x + w), y0 = max(0, y), y1 = min(height, y + h)
        guard x0 < x1, y0 < y1 else { return }
        let imageWidth = width
        image.pixels.withUnsafeMutableBufferPointer { buffer in
            guard let base = buffer.baseAddress else { return }
            for row in y0..<y1 {
                var p = base + (row * imageWidth + x0) * 3
                for _ in x0..<x1 {
                    p[0] = color.0
                    p[1] = color.1
                    p[2] = color.2
                    p += 3
                }
            }
        }
    }

    /// Bresenham's line with a square brush of `width` pixels centred on each step, kept inside
    /// `clip`; solid colour, no anti-aliasing, so a test can find the exact colour on the line.
    private func stroke(
        _ image: inout Image, from a: (Int, Int), to b: (Int, Int), color: RGB, width w: Int,
        clip: (Int, Int, Int, Int)
    ) {
        let (cx0, cy0) = (max(0, clip.0), max(0, clip.1))
        let (cx1, cy1) = (min(width, clip.0 + clip.2), min(height, clip.1 + clip.3))
        let lo = -(w - 1) / 2, hi = w / 2
        let imageWidth = width
        image.pixels.withUnsafeMutableBufferPointer { buffer in
            guard let base = buffer.baseAddress else { return }
            func plot(_ x: Int, _ y: Int) {
                for yy in (y + lo)...(y + hi) where yy >= cy0 && yy < cy1 {
                    for xx in (x + lo)...(x + hi) where xx >= cx0 && xx < cx1 {
                        let p = base + (yy * imageWidth + xx) * 3
                        p[0] = color.0
                        p[1] = color.1
                        p[2] = color.2
                    }
                }
            }
            var (x, y) = a
            let dx = abs(b.0 - a.0), dy = -abs(b.1 - a.1)
            let sx = a.0 < b.0 ? 1 : -1, sy = a.1 < b.1 ? 1 : -1
            var error = dx + dy
            while true {
                plot(x, y)
                if x == b.0 && y == b.1 { break }
                let e2 = 2 * error
                if e2 >= dy {
                    error += dy
                    x += sx
                }
                if e2 <= dx {
                    error += dx
                    y += sy
                }
            }
        }
    }

    // MARK: SVG

    /// The drawing as a standalone SVG document. Text uses a monospace font sized so that one
    /// character advances as in `BitmapFont` (monospace advance ≈ 0.6 em).
    func svg() -> String {
        var out = """
            <?xml version="1.0" encoding="UTF-8"?>
            <svg xmlns="http://www.w3.org/2000/svg" width="\(width)" height="\(height)" viewBox="0 0 \(width) \(height)">
            <rect x="0" y="0" width="\(width)" height="\(height)" fill="\(Self.css(background))"/>

            """
        for shape in shapes {
            switch shape {
            case .rect(let x, let y, let w, let h, let color):
                out += "<rect x=\"\(x)\" y=\"\(y)\" width=\"\(w)\" height=\"\(h)\" fill=\"\(Self.css(color))\"/>\n"
            case .frame(let x, let y, let w, let h, let color):
                out +=
                    "<rect x=\"\(Double(x) + 0.5)\" y=\"\(Double(y) + 0.5)\" width=\"\(w - 1)\" height=\"\(h - 1)\" fill=\"none\" "
                    + "stroke=\"\(Self.css(color))\" stroke-width=\"1\"/>\n"
            case .line(let x0, let y0, let x1, let y1, let color, let w):
                let o = w % 2 == 1 ? 0.5 : 0
                out +=
                    "<line x1=\"\(Double(x0) + o)\" y1=\"\(Double(y0) + o)\" x2=\"\(Double(x1) + o)\" y2=\"\(Double(y1) + o)\" "
                    + "stroke=\"\(Self.css(color))\" stroke-width=\"\(w)\"/>\n"
            case .polyline(let points, let color, let w, let clip):
                let o = w % 2 == 1 ? 0.5 : 0
                let list = points.map { "\(Double($0.0) + o),\(Double($0.1) + o)" }.joined(separator: " ")
                let id = "clip\(clip.0)_\(clip.1)_\(clip.2)_\(clip.3)"
                if !out.contains("id=\"\(id)\"") {
                    out +=
                        "<clipPath id=\"\(id)\"><rect x=\"\(clip.0)\" y=\"\(clip.1)\" width=\"\(clip.2)\" height=\"\(clip.3)\"/></clipPath>\n"
                }
                if points.count == 1 {
                    out +=
                        "<rect x=\"\(points[0].0 - (w - 1) / 2)\" y=\"\(points[0].1 - (w - 1) / 2)\" width=\"\(w)\" height=\"\(w)\" "
                        + "fill=\"\(Self.css(color))\" clip-path=\"url(#\(id))\"/>\n"
                } else {
                    out +=
                        "<polyline points=\"\(list)\" fill=\"none\" stroke=\"\(Self.css(color))\" stroke-width=\"\(w)\" "
                        + "stroke-linejoin=\"round\" clip-path=\"url(#\(id))\"/>\n"
                }
            case .text(let string, let x, let top, let anchor, let scale, let color, let rotated):
                let size = 10 * scale
                let name = anchor == .start ? "start" : anchor == .middle ? "middle" : "end"
                let common = "font-family=\"monospace\" font-size=\"\(size)\" text-anchor=\"\(name)\" fill=\"\(Self.css(color))\""
                if rotated {
                    // The baseline runs upwards at x + ascent, through `top` (the anchor point).
                    let bx = x + BitmapFont.ascent * scale, by = top
                    out +=
                        "<text x=\"\(bx)\" y=\"\(by)\" \(common) transform=\"rotate(-90 \(bx) \(by))\">\(Self.escaped(string))</text>\n"
                } else {
                    out += "<text x=\"\(x)\" y=\"\(top + BitmapFont.ascent * scale)\" \(common)>\(Self.escaped(string))</text>\n"
                }
            }
        }
        return out + "</svg>\n"
    }

    static func css(_ color: RGB) -> String { "rgb(\(color.0),\(color.1),\(color.2))" }

    /// Text made safe for XML character data and attribute values.
    static func escaped(_ text: String) -> String {
        var out = ""
        for character in text {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            // XML 1.0 forbids most control characters, even escaped.
            case _ where character.unicodeScalars.contains { $0.value < 0x20 && $0 != "\t" && $0 != "\n" && $0 != "\r" }: continue
            default: out.append(character)
            }
        }
        return out
    }
}

/// Text sizes and spacings of a chart at one text scale.
struct PlotMetrics {
    let s: Int
    var line: Int { BitmapFont.height(scale: s) }
    var pad: Int { 4 * s + 4 }
    var gap: Int { 3 * s + 1 }
}

extension Drawing {
    /// A chart's title centred at the top, one step larger than the labels when it fits; returns
    /// the y below it (the top padding alone when there is no title).
    mutating func drawTitle(_ title: String, metrics m: PlotMetrics, ink: RGB) -> Int {
        guard !title.isEmpty else { return m.pad }
        let titleScale = BitmapFont.width(of: title, scale: m.s + 1) <= width - 2 * m.pad ? m.s + 1 : m.s
        shapes.append(.text(title, x: width / 2, top: m.pad, anchor: .middle, scale: titleScale, fill: ink, rotated: false))
        return m.pad + BitmapFont.height(scale: titleScale) + m.gap
    }
}
