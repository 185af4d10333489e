import Foundation
import Imaging

/// A line chart with titled axes, 1-2-5 ticks, grid lines and a legend, rendered to a PNG-ready
/// `Image` or to SVG from one layout. Series can use a second y axis on the right (a training
/// curve: loss on the left, val mIoU % on the right); either y axis can be logarithmic. NaN and
/// infinite points, and non-positive ones on a log axis, are skipped and break the line there.
///
/// ```swift
/// var plot = LinePlot(title: "train", xLabel: "iteration", yLabel: "loss", rightYLabel: "val mIoU %")
/// plot.yScale = .log
/// plot.add("loss", points: losses, color: (31, 119, 180))
/// plot.add("val mIoU", points: mIoU, color: (214, 39, 40), axis: .right, markers: true)
/// try plot.render(width: 800, height: 480).writePNG(to: "curves.png")
/// ```
public struct LinePlot {
    /// Which y axis a series is measured against.
    public enum Axis: Sendable { case left, right }

    /// How values map onto an axis.
    public enum Scale: Sendable { case linear, log }

    /// One named line.
    public struct Series {
        /// Legend text; empty leaves the series out of the legend.
        public var name: String
        /// Data points in axis units, in drawing order.
        public var points: [(x: Double, y: Double)]
        /// Line, marker and legend colour.
        public var color: RGB
        /// The y axis the series is measured against.
        public var axis: Axis
        /// Whether each point also gets a square marker (for sparse series such as validation).
        public var markers: Bool

        /// A series; see the properties.
        public init(name: String, points: [(x: Double, y: Double)], color: RGB, axis: Axis = .left, markers: Bool = false) {
            self.name = name
            self.points = points
            self.color = color
            self.axis = axis
            self.markers = markers
        }
    }

    /// Title drawn centred above the plot; empty for none.
    public var title: String
    /// Title under the x axis (empty for none).
    public var xLabel: String
    /// Title of the left y axis, drawn reading upwards (empty for none).
    public var yLabel: String
    /// Title of the right y axis, drawn when some series uses it (empty for none).
    public var rightYLabel: String
    /// Scale of the left y axis (the x axis is always linear).
    public var yScale: Scale = .linear
    /// Scale of the right y axis.
    public var rightYScale: Scale = .linear
    /// Fixed x range; nil fits the data, widened to whole ticks. Data outside is clipped.
    public var xRange: ClosedRange<Double>?
    /// Fixed left y range (e.g. `0...100`); nil fits the data.
    public var yRange: ClosedRange<Double>?
    /// Fixed right y range; nil fits the data. Setting it shows the right axis.
    public var rightYRange: ClosedRange<Double>?
    /// Text size factor for labels (the title one step larger); nil picks 1 below 720
    /// pixels of width and 2 from there.
    public var textScale: Int?
    /// The lines, drawn in order (later on top).
    public var series: [Series] = []

    /// An empty plot with its titles.
    public init(title: String = "", xLabel: String = "", yLabel: String = "", rightYLabel: String = "") {
        self.title = title
        self.xLabel = xLabel
        self.yLabel = yLabel
        self.rightYLabel = rightYLabel
    }

    /// Appends a series.
    public mutating func add(
        _ name: String, points: [(x: Double, y: Double)], color: RGB, axis: Axis = .left,
        markers: Bool = false
    ) {
        series.append(Series(name: name, points: points, color: color, axis: axis, markers: markers))
    }

    /// The plot as an RGB image of `width` x `height` pixels (write it with `writePNG(to:)`).
    public func render(width: Int, height: Int) -> Image {
        layout(width: width, height: height).drawing.rendered()
    }

    /// The plot as a standalone SVG document of `width` x `height` user units: `<polyline>`s for
    /// the series and `<text>` for every label, escaped for XML.
    public func svg(width: Int, height: Int) -> String {
        layout(width: width, height: height).drawing.svg()
    }

    /// Writes `svg(width:height:)` to `path` (atomically).
    /// - Throws: `ReportingError.writeFailed` naming the file.
    public func writeSVG(to path: String, width: Int, height: Int) throws {
        do {
            try Data(svg(width: width, height: height).utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw ReportingError.writeFailed(path: path, reason: error.localizedDescription)
        }
    }

    // MARK: Layout

    /// A linear or log mapping from axis values onto a pixel span.
    struct AxisMap {
        let ticks: Ticks
        let scale: Scale
        /// Pixel of `ticks.lower` and of `ticks.upper` (for y axes the first is the bottom).
        let from: Int
        let to: Int

        func t(_ value: Double) -> Double {
            scale == .log
                ? (log10(value) - log10(ticks.lower)) / (log10(ticks.upper) - log10(ticks.lower))
                : (value - ticks.lower) / (ticks.upper - ticks.lower)
        }

        /// The pixel of `value`, nil when it cannot be shown (NaN, infinite, ≤ 0 on a log axis).
        func pixel(_ value: Double) -> Int? {
            guard value.isFinite, scale == .linear || value > 0 else { return nil }
            let p = Double(from) + t(value) * Double(to - from)
            return p.isFinite ? Int(p.rounded()) : nil
        }

        func contains(_ value: Double) -> Bool { value.isFinite && (scale == .linear || value > 0) }
    }

    /// The finished layout: the plot area, the axis mappings and the shapes.
    struct Layout {
        /// Plot area (x, y, width, height) in pixels; data maps inside it.
        var area: (x: Int, y: Int, width: Int, height: Int)
        var x: AxisMap
        var left: AxisMap
        var right: AxisMap?
        var drawing: Drawing
    }

    static let ink: RGB = (0, 0, 0)
    static let grid: RGB = (225, 225, 225)
    static let minorGrid: RGB = (242, 242, 242)
    static let tickLength = 4
    static let lineWidth = 2

    func ticks(for values: [Double], scale: Scale, fixed: ClosedRange<Double>?, maxCount: Int) -> Ticks {
        let shown = values.filter { $0.isFinite && (scale == .linear || $0 > 0) }
        let lo = fixed?.lowerBound ?? shown.min() ?? (scale == .log ? 1 : 0)
        let hi = fixed?.upperBound ?? shown.max() ?? (scale == .log ? 10 : 1)
        return scale == .log
            ? Ticks.log(lower: lo, upper: hi, maxCount: maxCount) : Ticks.linear(lower: lo, upper: hi, maxCount: maxCount)
    }

    /// Lays the plot out in `width` x `height` pixels: title, legend row(s), then the plot area
    /// with tick labels and axis titles around it; every margin is measured from the text.
    func layout(width: Int, height: Int) -> Layout {
        precondition(width >= 64 && height >= 48, "LinePlot: \(width)x\(height) is too small to draw")
        let m = PlotMetrics(s: textScale ?? (width < 720 ? 1 : 2))
        let (s, line, pad, gap) = (m.s, m.line, m.pad, m.gap)
        var drawing = Drawing(width: width, height: height)

        let leftSeries = series.filter { $0.axis == .left }, rightSeries = series.filter { $0.axis == .right }
        let hasRight = !rightSeries.isEmpty || rightYRange != nil
        let yCount = max(3, min(9, height / (45 * s)))
        let leftTicks = ticks(for: leftSeries.flatMap { $0.points.map(\.y) }, scale: yScale, fixed: yRange, maxCount: yCount)
        let rightTicks =
            hasRight
            ? ticks(
                for: rightSeries.flatMap { $0.points.map(\.y) }, scale: rightYScale, fixed: rightYRange,
                maxCount: yCount) : nil

        var top = drawing.drawTitle(title, metrics: m, ink: Self.ink)
        // Left and right margins: axis title (rotated), widest tick label, tick marks.
        let leftLabelWidth = leftTicks.labels.map { BitmapFont.width(of: $0, scale: s) }.max() ?? 0
        let rightLabelWidth = (rightTicks?.labels ?? []).map { BitmapFont.width(of: $0, scale: s) }.max() ?? 0
        let leftMargin = pad + (yLabel.isEmpty ? 0 : line + gap) + leftLabelWidth + gap + Self.tickLength
        let rightAxisMargin = Self.tickLength + gap + rightLabelWidth + gap + (rightYLabel.isEmpty ? 0 : line) + pad
        let xTicks = self.xTicks(roughWidth: width - leftMargin - (hasRight ? rightAxisMargin : 4 * pad), metrics: m)
        let halfLastX = (xTicks.labels.last.map { BitmapFont.width(of: $0, scale: s) } ?? 0) / 2 + 2
        let rightMargin = hasRight ? rightAxisMargin : max(pad, halfLastX)

        top = drawLegend(into: &drawing, top: top, left: leftMargin, width: width - leftMargin - rightMargin, metrics: m)
        top += gap + line / 2  // room for the top y tick labels, which centre on the axis end

        let bottomMargin = Self.tickLength + gap + line + (xLabel.isEmpty ? 0 : gap + line) + pad
        let area = (
            x: leftMargin, y: top, width: max(8, width - leftMargin - rightMargin), height: max(8, height - top - bottomMargin)
        )
        let (ax0, ay0, ax1, ay1) = (area.x, area.y, area.x + area.width - 1, area.y + area.height - 1)
        let xMap = AxisMap(ticks: xTicks, scale: .linear, from: ax0, to: ax1)
        let leftMap = AxisMap(ticks: leftTicks, scale: yScale, from: ay1, to: ay0)
        let rightMap = rightTicks.map { AxisMap(ticks: $0, scale: rightYScale, from: ay1, to: ay0) }
        var layout = Layout(area: area, x: xMap, left: leftMap, right: rightMap, drawing: drawing)
        drawGrid(into: &layout)
        drawAxes(into: &layout, width: width, metrics: m)
        drawSeries(into: &layout)
        return layout
    }

    /// x ticks: about one per 60 pixels, fewer while neighbouring labels would come closer than
    /// three character widths.
    private func xTicks(roughWidth: Int, metrics m: PlotMetrics) -> Ticks {
        let xValues = series.flatMap { $0.points.map(\.x) }
        var xCount = max(3, min(11, roughWidth / (60 * m.s) + 1))
        var xTicks = ticks(for: xValues, scale: .linear, fixed: xRange, maxCount: xCount)
        while xCount > 2 {
            let widest = xTicks.labels.map { BitmapFont.width(of: $0, scale: m.s) }.max() ?? 0
            let spacing = roughWidth / max(1, xTicks.values.count - 1)
            if spacing >= widest + 3 * BitmapFont.advance * m.s { break }
            xCount -= 1
            xTicks = ticks(for: xValues, scale: .linear, fixed: xRange, maxCount: xCount)
        }
        return xTicks
    }

    /// The legend wrapped into rows over the plot width; returns the y below it.
    private func drawLegend(into drawing: inout Drawing, top: Int, left: Int, width: Int, metrics m: PlotMetrics) -> Int {
        let rows = legendLayout(left: left, width: width, scale: m.s)
        for (row, entries) in rows.enumerated() {
            let y = top + row * (m.line + m.gap)
            for entry in entries {
                drawing.shapes.append(
                    .rect(x: entry.x, y: y + m.s, width: 3 * m.line / 2, height: m.line - 2 * m.s, fill: entry.series.color))
                drawing.shapes.append(
                    .text(
                        entry.series.name, x: entry.x + 3 * m.line / 2 + m.gap, top: y, anchor: .start, scale: m.s,
                        fill: Self.ink, rotated: false))
            }
        }
        return top + rows.count * (m.line + m.gap)
    }

    /// Grid lines (left axis and x ticks only, so the two y axes do not draw two grids) and the
    /// frame of the plot area.
    private func drawGrid(into layout: inout Layout) {
        let area = layout.area
        let (ax0, ay0, ax1, ay1) = (area.x, area.y, area.x + area.width - 1, area.y + area.height - 1)
        let (xMap, leftMap) = (layout.x, layout.left)
        let leftTicks = leftMap.ticks
        for value in xMap.ticks.values {
            if let px = xMap.pixel(value) {
                layout.drawing.shapes.append(.line(x0: px, y0: ay0, x1: px, y1: ay1, stroke: Self.grid, width: 1))
            }
        }
        // Log axes ticked at every decade get fainter lines at 2…9 x 10^k, as on log paper, when
        // a decade spans at least 40 pixels.
        if yScale == .log && leftTicks.step == 10 && leftTicks.values.count >= 2,
            let p0 = leftMap.pixel(leftTicks.values[0]), let p1 = leftMap.pixel(leftTicks.values[1]), p0 - p1 >= 40
        {
            for decade in leftTicks.values.dropLast() {
                for m in 2...9 {
                    if let py = leftMap.pixel(Double(m) * decade) {
                        layout.drawing.shapes.append(.line(x0: ax0, y0: py, x1: ax1, y1: py, stroke: Self.minorGrid, width: 1))
                    }
                }
            }
        }
        for value in leftTicks.values {
            if let py = leftMap.pixel(value) {
                layout.drawing.shapes.append(.line(x0: ax0, y0: py, x1: ax1, y1: py, stroke: Self.grid, width: 1))
            }
        }
        layout.drawing.shapes.append(.frame(x: ax0, y: ay0, width: area.width, height: area.height, stroke: Self.ink))
    }

    /// Tick marks, tick labels and axis titles: x centred under the tick labels, y titles rotated
    /// and centred on the area.
    private func drawAxes(into layout: inout Layout, width: Int, metrics m: PlotMetrics) {
        let area = layout.area
        let (ax0, ay0, ax1, ay1) = (area.x, area.y, area.x + area.width - 1, area.y + area.height - 1)
        let (s, gap, tick) = (m.s, m.gap, Self.tickLength)
        var shapes: [Drawing.Shape] = []
        let labelTop = ay1 + 1 + tick + gap
        for (value, label) in zip(layout.x.ticks.values, layout.x.ticks.labels) {
            guard let px = layout.x.pixel(value) else { continue }
            shapes.append(.line(x0: px, y0: ay1 + 1, x1: px, y1: ay1 + tick, stroke: Self.ink, width: 1))
            shapes.append(.text(label, x: px, top: labelTop, anchor: .middle, scale: s, fill: Self.ink, rotated: false))
        }
        for (map, onLeft) in [(layout.left, true)] + (layout.right.map { [($0, false)] } ?? []) {
            for (value, label) in zip(map.ticks.values, map.ticks.labels) {
                guard let py = map.pixel(value) else { continue }
                let textTop = py - BitmapFont.ascent * s / 2
                if onLeft {
                    shapes.append(.line(x0: ax0 - tick, y0: py, x1: ax0 - 1, y1: py, stroke: Self.ink, width: 1))
                    shapes.append(
                        .text(label, x: ax0 - tick - gap, top: textTop, anchor: .end, scale: s, fill: Self.ink, rotated: false))
                } else {
                    shapes.append(.line(x0: ax1 + 1, y0: py, x1: ax1 + tick, y1: py, stroke: Self.ink, width: 1))
                    shapes.append(
                        .text(label, x: ax1 + tick + gap, top: textTop, anchor: .start, scale: s, fill: Self.ink, rotated: false))
                }
            }
        }
        if !xLabel.isEmpty {
            shapes.append(
                .text(
                    xLabel, x: ax0 + area.width / 2, top: labelTop + m.line + gap, anchor: .middle, scale: s,
                    fill: Self.ink, rotated: false))
        }
        if !yLabel.isEmpty {
            shapes.append(
                .text(yLabel, x: m.pad, top: ay0 + area.height / 2, anchor: .middle, scale: s, fill: Self.ink, rotated: true))
        }
        if layout.right != nil && !rightYLabel.isEmpty {
            shapes.append(
                .text(
                    rightYLabel, x: width - m.pad - m.line, top: ay0 + area.height / 2, anchor: .middle, scale: s,
                    fill: Self.ink, rotated: true))
        }
        layout.drawing.shapes += shapes
    }

    /// Series: one polyline per run of showable points; isolated points and markers as squares.
    private func drawSeries(into layout: inout Layout) {
        let area = layout.area
        let clip = (area.x, area.y, area.width, area.height)
        var shapes: [Drawing.Shape] = []
        for item in series {
            guard let yMap = item.axis == .left ? layout.left : layout.right else { continue }
            var run: [(Int, Int)] = []
            var marks: [(Int, Int)] = []
            func flush() {
                if run.count == 1 && !item.markers {
                    shapes.append(.polyline(points: run, stroke: item.color, width: Self.lineWidth + 2, clip: clip))
                } else if run.count > 1 {
                    shapes.append(.polyline(points: run, stroke: item.color, width: Self.lineWidth, clip: clip))
                }
                run.removeAll()
            }
            for point in item.points {
                guard let px = layout.x.pixel(point.x), let py = yMap.pixel(point.y) else {
                    flush()
                    continue
                }
                // Consecutive points on one pixel add nothing but SVG size (long runs of logged steps).
                if let last = run.last, last == (px, py) { continue }
                run.append((px, py))
                if item.markers { marks.append((px, py)) }
            }
            flush()
            for mark in marks {
                shapes.append(.polyline(points: [mark], stroke: item.color, width: Self.lineWidth + 3, clip: clip))
            }
        }
        layout.drawing.shapes += shapes
    }

    /// Legend entries placed left to right from `left`, wrapping at `width`.
    func legendLayout(left: Int, width: Int, scale s: Int) -> [[(x: Int, series: Series)]] {
        let line = BitmapFont.height(scale: s), gap = 3 * s + 1
        var rows: [[(x: Int, series: Series)]] = []
        var current: [(x: Int, series: Series)] = []
        var x = left
        for item in series where !item.name.isEmpty {
            let entryWidth = 3 * line / 2 + gap + BitmapFont.width(of: item.name, scale: s)
            if !current.isEmpty && x + entryWidth > left + width {
                rows.append(current)
                current = []
                x = left
            }
            current.append((x, item))
            x += entryWidth + 4 * gap
        }
        if !current.isEmpty { rows.append(current) }
        return rows
    }
}
