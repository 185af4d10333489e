import Imaging

extension Image {
    /// Captioned panels side by side on white, for looking at a run's outputs (image, CAM seeds,
    /// proposals, result, ground truth), with an optional class legend strip underneath.
    ///
    /// Layout: a `margin`-pixel border around everything; panels left to right, top-aligned,
    /// `gap` pixels apart, each with its caption centred above it; each column is as wide as its
    /// image, or as its caption when that is wider. So with captions no wider than their images
    /// the width is `2 * margin + sum of widths + gap * (count - 1)`. The legend (a colour
    /// swatch with a dark outline, then the name) wraps into as many rows as the width needs.
    /// - Parameters:
    ///   - items: the panels; grey and RGBA images are shown as RGB.
    ///   - legend: entries to list below, e.g. `classLegend(names:present:)`; nil or empty for none.
    ///   - textScale: caption and legend text size; nil picks 2 when every panel is at least 256
    ///     pixels wide, else 1.
    public static func panels(
        _ items: [(caption: String, image: Image)], legend: [(name: String, color: RGB)]?, gap: Int = 8, margin: Int = 8,
        textScale: Int? = nil
    ) -> Image {
        precondition(gap >= 0 && margin >= 0, "panels: gap \(gap) and margin \(margin) must not be negative")
        let s = textScale ?? (!items.isEmpty && items.allSatisfy { $0.image.width >= 256 } ? 2 : 1)
        let line = BitmapFont.height(scale: s), spacing = 2 * s + 2
        let hasCaptions = items.contains { !$0.caption.isEmpty }
        let columns = items.map { max($0.image.width, BitmapFont.width(of: $0.caption, scale: s)) }
        let width = max(1, 2 * margin + columns.reduce(0, +) + gap * max(0, items.count - 1))
        let imagesTop = margin + (hasCaptions ? line + spacing : 0)
        let imagesHeight = items.map(\.image.height).max() ?? 0

        // Legend rows: swatch (1.5 lines wide), a gap, the name; entries 3 gaps apart.
        let swatch = 3 * line / 2
        var rows: [[(x: Int, entry: (name: String, color: RGB))]] = []
        var x = margin
        for entry in legend ?? [] {
            let entryWidth = swatch + spacing + BitmapFont.width(of: entry.name, scale: s)
            if rows.isEmpty || (x + entryWidth > width - margin && x > margin) {
                rows.append([])
                x = margin
            }
            rows[rows.count - 1].append((x, entry))
            x += entryWidth + 3 * spacing + 4
        }
        let legendTop = imagesTop + imagesHeight + (rows.isEmpty ? 0 : margin)
        let height = max(1, legendTop + rows.count * (line + spacing) - (rows.isEmpty ? 0 : spacing) + margin)

        var drawing = Drawing(width: width, height: height)
        var out: Image
        var columnX = margin
        var placements: [(x: Int, image: Image)] = []
        for (item, column) in zip(items, columns) {
            if !item.caption.isEmpty {
                drawing.shapes.append(
                    .text(
                        item.caption, x: columnX + column / 2, top: margin, anchor: .middle, scale: s,
                        fill: (0, 0, 0), rotated: false))
            }
            placements.append((columnX + (column - item.image.width) / 2, item.image.rgb()))
            columnX += column + gap
        }
        for (row, entries) in rows.enumerated() {
            let y = legendTop + row * (line + spacing)
            for (x, entry) in entries {
                drawing.shapes.append(.rect(x: x, y: y, width: swatch, height: line, fill: entry.color))
                drawing.shapes.append(.frame(x: x, y: y, width: swatch, height: line, stroke: (64, 64, 64)))
                drawing.shapes.append(
                    .text(
                        entry.name, x: x + swatch + spacing, top: y, anchor: .start, scale: s, fill: (0, 0, 0),
                        rotated: false))
            }
        }
        out = drawing.rendered()
        for placement in placements {
            let part = placement.image
            for y in 0..<part.height {
                let src = y * part.width * 3, dst = ((imagesTop + y) * width + placement.x) * 3
                out.pixels.replaceSubrange(dst..<(dst + part.width * 3), with: part.pixels[src..<(src + part.width * 3)])
            }
        }
        return out
    }

    /// Legend entries for the label values present in `labels` (e.g. the proposals and the
    /// ground truth of one image), in value order, named by `names` (index = label value; values
    /// beyond it are called "class N") and coloured by `palette`; 255 is listed as "ignore" (white,
    /// as `overlaid(with:)` paints it).
    public static func classLegend(names: [String], present labels: [LabelMap], palette: ColorMap = .voc)
        -> [(name: String, color: RGB)]
    {
        let values = labels.reduce(into: Set<UInt8>()) { $0.formUnion($1.values) }
        return values.sorted().map { value in
            if value == LabelMap.ignore { return ("ignore", (255, 255, 255)) }
            let name = Int(value) < names.count ? names[Int(value)] : "class \(value)"
            return (name, palette.color(of: value))
        }
    }
}
