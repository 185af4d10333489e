import Evaluation
import Foundation
#if canImport(FoundationXML)
    import FoundationXML
#endif
import Imaging
import Testing

@testable import Reporting

@Suite struct BarChartTests {
    /// A report with background at 80 %, "cat" at 50 %, "dog" absent (nil), mIoU 65.
    static let report = SegmentationReport(
        meanIoU: 65, pixelAccuracy: 90,
        perClass: [.init(name: "background", iou: 80), .init(name: "cat", iou: 50), .init(name: "dog", iou: nil)])

    /// Columns of `image` in row `y` whose pixel has `color`.
    static func columns(of color: RGB, in image: Image, row y: Int) -> [Int] {
        (0..<image.width).filter { x in
            let i = (y * image.width + x) * 3
            return image.pixels[i] == color.0 && image.pixels[i + 1] == color.1 && image.pixels[i + 2] == color.2
        }
    }

    @Test func barsAreAsLongAsTheirIoUInThePaletteColours() throws {
        let chart = BarChart(report: Self.report, title: "val: per-class IoU", palette: .voc)
        let drawing = chart.layout(width: 600, height: chart.preferredHeight(width: 600))
        var rects: [(x: Int, width: Int, fill: RGB)] = []
        for case .rect(let x, _, let width, _, let fill) in drawing.shapes { rects.append((x, width, fill)) }
        // Two bars (dog has none), both starting on the axis; cat's is 50/80 of background's.
        #expect(rects.count == 2)
        let cat = ColorMap.voc.color(of: 1)
        #expect(rects[1].fill == (cat.0, cat.1, cat.2))
        #expect(rects[0].x == rects[1].x)
        #expect(abs(Double(rects[1].width) / Double(rects[0].width) - 50.0 / 80.0) < 0.02)
        // The rendered picture holds cat's colour on a run as long as its bar.
        let image = chart.render(width: 600)
        let rows = (0..<image.height).map { Self.columns(of: (cat.0, cat.1, cat.2), in: image, row: $0).count }
        #expect(abs((rows.max() ?? 0) - (rects[1].width - 2)) <= 1)  // inside its 1-pixel outline
    }

    @Test func theSVGNamesEveryClassTheValuesAndTheMean() throws {
        let svg = BarChart(report: Self.report, title: "val: per-class IoU").svg(width: 600)
        for text in ["background", "cat", "dog", "80.0", "50.0", "–", "mIoU 65.00", "IoU (%)", "val: per-class IoU"] {
            #expect(svg.contains(">\(text)<"), "missing \(text)")
        }
        _ = try XMLDocument(data: Data(svg.utf8))
    }

    @Test func emptyAndNonFiniteValuesDrawNoBar() {
        var chart = BarChart(title: "t", xLabel: "x", bars: [.init(label: "a", value: .nan, color: (1, 2, 3))])
        chart.reference = ("mean", .infinity)
        let drawing = chart.layout(width: 300, height: 200)
        #expect(!drawing.shapes.contains { if case .rect = $0 { return true } else { return false } })
        #expect(BarChart(title: "none").render(width: 300).width == 300)
    }
}
