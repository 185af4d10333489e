import Evaluation
import Foundation
import Imaging

/// A horizontal bar chart of one value per category — per-class IoU is its use: class names down
/// the left, bars coloured by category, the value at each bar's end, a titled x axis with 1-2-5
/// ticks and grid lines, and a dashed reference line (the mean) labelled in the legend. A
/// category without a value (a class absent from prediction and ground truth) gets "–" and no bar.
/// Rendered to an `Image` or to SVG from one layout, as `LinePlot`.
///
/// ```swift
/// let chart = BarChart(report: report, title: "val: per-class IoU", palette: .voc)
/// try chart.render(width: 800).writePNG(to: "eval_val.png")
/// ```
public struct BarChart {
    /// One bar.
    public struct Bar {
        /// Category name, drawn left of the bar.
        public var label: String
        /// Value in axis units; nil draws no bar and "–".
        public var value: Double?
        /// Fill colour.
        public var color: RGB

        /// A bar; see the properties.
        public init(label: String, value: Double?, color: RGB) {
            self.label = label
            self.value = value
            self.color = color
        }
    }

    /// Title drawn centred above the chart; empty for none.
    public var title: String
    /// Title under the x axis.
    public var xLabel: String
    /// The bars, top to bottom.
    public var bars: [Bar]
    /// Fixed x range; nil spans 0 to the largest value.
    public var xRange: ClosedRange<Double>?
    /// A vertical dashed line (e.g. the mean) with its legend text; nil for none.
    public var reference: (name: String, value: Double)?
    /// Decimals of the value printed at each bar's end.
    public var decimals = 1
    /// Text size factor; nil picks 1 below 720 pixels of width and 2 from there.
    public var textScale: Int?

    /// A chart of `bars`.
    public init(title: String = "", xLabel: String = "", bars: [Bar] = []) {
        self.title = title
        self.xLabel = xLabel
        self.bars = bars
    }

    /// Per-class IoU (%) of an evaluation on a 0–100 axis, bars in the dataset's palette colours,
    /// the mIoU as the reference line.
    public init(report: SegmentationReport, title: String, palette: ColorMap = .voc) {
        self.init(
            title: title, xLabel: "IoU (%)",
            bars: report.perClass.enumerated().map { index, score in
                let c = palette.color(of: UInt8(min(index, 254)))
                return Bar(label: score.name, value: score.iou, color: (c.0, c.1, c.2))
            })
        xRange = 0...100
        reference = (String(format: "mIoU %.2f", report.meanIoU), report.meanIoU)
    }

    /// Pixel height that gives every bar a readable row at `width`.
    public func preferredHeight(width: Int) -> Int {
        let s = textScale ?? (width < 720 ? 1 : 2)
        let line = BitmapFont.height(scale: s)
        return 6 * line + 16 * s + bars.count * (line + 4 * s)
    }

    /// The chart as an RGB image (`height` nil: `preferredHeight(width:)`).
    public func render(width: Int, height: Int? = nil) -> Image {
        layout(width: width, height: height ?? preferredHeight(width: width)).rendered()
    }

    /// The chart as a standalone SVG document.
    public func svg(width: Int, height: Int? = nil) -> String {
        layout(width: width, height: height ?? preferredHeight(width: width)).svg()
    }

    /// Writes `svg(width:height:)` to `path` (atomically).
    /// - Throws: `ReportingError.writeFailed` naming the file.
    public func writeSVG(to path: String, width: Int, height: Int? = nil) throws {
        do {
            try Data(svg(width: width, height: height).utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw ReportingError.writeFailed(path: path, reason: error.localizedDescription)
        }
    }

    static let ink: RGB = (0, 0, 0)
    static let grid: RGB = (225, 225, 225)
    static let referenceColor: RGB = (90, 90, 90)

    func layout(width: Int, height: Int) -> Drawing {
        precondition(width >= 96 && height >= 48, "BarChart: \(width)x\(height) is too small to draw")
        let m = PlotMetrics(s: textScale ?? (width < 720 ? 1 : 2))
        let (s, line, pad, gap) = (m.s, m.line, m.pad, m.gap)
        var drawing = Drawing(width: width, height: height)
        var top = drawing.drawTitle(title, metrics: m, ink: Self.ink)
        let valueTexts = bars.map { $0.value.map { String(format: "%.\(decimals)f", $0) } ?? "–" }
        let labelWidth = bars.map { BitmapFont.width(of: $0.label, scale: s) }.max() ?? 0
        let valueWidth = valueTexts.map { BitmapFont.width(of: $0, scale: s) }.max() ?? 0
        let left = pad + labelWidth + gap + 4
        let right = width - pad - valueWidth - gap
        if let reference {
            // Legend row: a short dashed stroke and the reference's name.
            let y = top + line / 2
            for x in stride(from: left, to: left + 3 * line / 2, by: 4 * s) {
                drawing.shapes.append(
                    .line(x0: x, y0: y, x1: min(x + 2 * s, left + 3 * line / 2), y1: y, stroke: Self.referenceColor, width: 2))
            }
            drawing.shapes.append(
                .text(
                    reference.name, x: left + 3 * line / 2 + gap, top: top, anchor: .start, scale: s, fill: Self.ink,
                    rotated: false))
            top += line + gap
        }
        let bottomMargin = 4 + gap + line + (xLabel.isEmpty ? 0 : gap + line) + pad
        let values = bars.compactMap(\.value).filter(\.isFinite)
        let range = xRange ?? 0...max(values.max() ?? 1, 1e-9)
        let ticks = Ticks.linear(
            lower: range.lowerBound, upper: range.upperBound, maxCount: max(3, min(11, (right - left) / (60 * s) + 1)))
        let frame = Frame(
            left: left, right: right, top: top, height: max(8, height - top - bottomMargin), ticks: ticks,
            span: max(ticks.upper - ticks.lower, 1e-12))
        for value in ticks.values {
            drawing.shapes.append(
                .line(
                    x0: frame.px(value), y0: top, x1: frame.px(value), y1: top + frame.height - 1, stroke: Self.grid, width: 1))
        }
        drawBars(into: &drawing, frame: frame, valueTexts: valueTexts, metrics: m)
        drawAxis(into: &drawing, frame: frame, metrics: m)
        return drawing
    }

    /// The bar area: its horizontal span, top, height and value mapping.
    struct Frame {
        let left: Int, right: Int, top: Int, height: Int
        let ticks: Ticks
        let span: Double
        func px(_ v: Double) -> Int {
            left + Int(((min(max(v, ticks.lower), ticks.upper) - ticks.lower) / span * Double(right - left)).rounded())
        }
    }

    /// Bars: each in a row of equal height, two thirds filled, its label left and its value right.
    private func drawBars(into drawing: inout Drawing, frame: Frame, valueTexts: [String], metrics m: PlotMetrics) {
        let (s, gap, left) = (m.s, m.gap, frame.left)
        let rowHeight = bars.isEmpty ? frame.height : max(1, frame.height / bars.count)
        for (index, bar) in bars.enumerated() {
            let rowTop = frame.top + index * rowHeight
            let barHeight = max(1, rowHeight * 2 / 3)
            let barTop = rowTop + (rowHeight - barHeight) / 2
            let textTop = rowTop + (rowHeight - BitmapFont.ascent * s) / 2
            drawing.shapes.append(
                .text(bar.label, x: left - gap - 4, top: textTop, anchor: .end, scale: s, fill: Self.ink, rotated: false))
            var end = left
            if let value = bar.value, value.isFinite {
                end = frame.px(value)
                if end > left {
                    drawing.shapes.append(.rect(x: left, y: barTop, width: end - left, height: barHeight, fill: bar.color))
                }
                // Light colours (VOC's background is black, others pale) get an outline to be seen.
                drawing.shapes.append(
                    .frame(x: left, y: barTop, width: max(1, end - left), height: barHeight, stroke: (60, 60, 60)))
            }
            drawing.shapes.append(
                .text(valueTexts[index], x: end + gap, top: textTop, anchor: .start, scale: s, fill: Self.ink, rotated: false))
        }
    }

    /// Axis: the baseline, ticks and labels under the area, the x title, the dashed reference.
    private func drawAxis(into drawing: inout Drawing, frame: Frame, metrics m: PlotMetrics) {
        let (s, gap, left, right, top) = (m.s, m.gap, frame.left, frame.right, frame.top)
        let axisY = top + frame.height
        drawing.shapes.append(.line(x0: left, y0: axisY, x1: right, y1: axisY, stroke: Self.ink, width: 1))
        drawing.shapes.append(.line(x0: left, y0: top, x1: left, y1: axisY, stroke: Self.ink, width: 1))
        for (value, label) in zip(frame.ticks.values, frame.ticks.labels) {
            let x = frame.px(value)
            drawing.shapes.append(.line(x0: x, y0: axisY, x1: x, y1: axisY + 4, stroke: Self.ink, width: 1))
            drawing.shapes.append(
                .text(label, x: x, top: axisY + 4 + gap, anchor: .middle, scale: s, fill: Self.ink, rotated: false))
        }
        if !xLabel.isEmpty {
            drawing.shapes.append(
                .text(
                    xLabel, x: (left + right) / 2, top: axisY + 4 + 2 * gap + m.line, anchor: .middle, scale: s,
                    fill: Self.ink, rotated: false))
        }
        if let reference, reference.value.isFinite {
            let x = frame.px(reference.value)
            for y in stride(from: top, to: axisY, by: 6 * s) {
                drawing.shapes.append(
                    .line(x0: x, y0: y, x1: x, y1: min(y + 3 * s, axisY - 1), stroke: Self.referenceColor, width: 2))
            }
        }
    }
}
