import Foundation
import Imaging
import Testing

#if canImport(FoundationXML)
    import FoundationXML
#endif

@testable import Reporting

@Suite struct TicksTests {
    @Test func unitRangeStepsByTwoTenths() {
        let ticks = Ticks.linear(lower: 0, upper: 1)
        #expect(ticks.values == [0, 0.2, 0.4, 0.6, 0.8, 1])
        #expect(ticks.labels == ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"])
        #expect(ticks.lower == 0 && ticks.upper == 1 && ticks.step == 0.2)
    }

    @Test func smallLossRangeWidensToWholeSteps() {
        let ticks = Ticks.linear(lower: 0.013, upper: 0.21)
        #expect(ticks.values == [0, 0.05, 0.1, 0.15, 0.2, 0.25])
        #expect(ticks.labels == ["0.00", "0.05", "0.10", "0.15", "0.20", "0.25"])
    }

    @Test func iterationsStepByFiveThousand() {
        let ticks = Ticks.linear(lower: 1, upper: 20000)
        #expect(ticks.values == [0, 5000, 10000, 15000, 20000])
        #expect(ticks.labels == ["0", "5000", "10000", "15000", "20000"])
        #expect(Ticks.linear(lower: 1, upper: 20000, maxCount: 3).values == [0, 10000, 20000])
    }

    @Test func negativeEmptyAndHugeRanges() {
        #expect(Ticks.linear(lower: -3.7, upper: 2.1).values == [-4, -2, 0, 2, 4])
        #expect(Ticks.linear(lower: -3.7, upper: 2.1).labels == ["-4", "-2", "0", "2", "4"])
        let flat = Ticks.linear(lower: 5, upper: 5)
        #expect(flat.lower < 5 && flat.upper > 5)
        #expect(Ticks.linear(lower: .nan, upper: 3).values == [0, 0.2, 0.4, 0.6, 0.8, 1])
        #expect(Ticks.linear(lower: 0, upper: 3e6).labels == ["0", "1e6", "2e6", "3e6"])
        #expect(Ticks.linear(lower: 0, upper: 1.5e6, maxCount: 4).labels == ["0", "5e5", "1e6", "1.5e6"])
        #expect(Ticks.linear(lower: 0, upper: 6e-5, maxCount: 4).labels == ["0", "2e-5", "4e-5", "6e-5"])
    }

    @Test func everyRangeGetsAtMostMaxCountNiceTicksCoveringIt() {
        var state: UInt64 = 7
        for _ in 0..<500 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            let a = Double(Int64(bitPattern: state) >> 40) / 1000
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            let b = a + Double(state >> 44) / 1e4 + 1e-6
            for maxCount in [3, 5, 6, 9] {
                let ticks = Ticks.linear(lower: a, upper: b, maxCount: maxCount)
                #expect(ticks.values.count <= maxCount && ticks.values.count >= 2, "\(a)…\(b): \(ticks.values)")
                #expect(ticks.lower <= a && ticks.upper >= b, "\(a)…\(b): \(ticks.values)")
                let mantissa = ticks.step / pow(10, log10(ticks.step).rounded(.down))
                #expect([1, 2, 5].contains { abs(mantissa - $0) < 1e-9 }, "step \(ticks.step)")
            }
        }
    }

    @Test func logTicksAtDecadesOrOneTwoFive() {
        let decades = Ticks.log(lower: 0.05, upper: 2.5)
        #expect(decades.values == [0.01, 0.1, 1, 10])
        #expect(decades.labels == ["0.01", "0.1", "1", "10"])
        #expect(Ticks.log(lower: 0.3, upper: 4).values == [0.2, 0.5, 1, 2, 5])
        let wide = Ticks.log(lower: 1e-6, upper: 1)
        #expect(wide.values == [1e-6, 1e-4, 1e-2, 1])
        #expect(wide.labels == ["1e-6", "1e-4", "0.01", "1"])
        #expect(Ticks.log(lower: -1, upper: 0).values == [1, 2, 5, 10])
    }
}

@Suite struct LinePlotTests {
    static let red: RGB = (220, 20, 20)
    static let blue: RGB = (20, 20, 220)

    static func color(_ image: Image, _ x: Int, _ y: Int) -> [UInt8] {
        let i = (y * image.width + x) * 3
        return Array(image.pixels[i..<(i + 3)])
    }

    static func hasInk(_ image: Image, x: Range<Int>, y: Range<Int>) -> Bool {
        for yy in y { for xx in x where color(image, xx, yy).allSatisfy({ $0 < 128 }) { return true } }
        return false
    }

    static func sample() -> LinePlot {
        var plot = LinePlot(title: "Loss & <mIoU>", xLabel: "iteration", yLabel: "loss", rightYLabel: "val mIoU %")
        plot.add("loss", points: [(0, 0), (10, 10)], color: red)
        plot.add("mIoU", points: [(0, 60), (10, 40)], color: blue, axis: .right)  // crosses loss at x = 5
        return plot
    }

    @Test func axesLabelsAndTitleAreDrawnAroundThePlotArea() {
        let plot = Self.sample()
        let layout = plot.layout(width: 480, height: 320)
        let image = layout.drawing.rendered()
        let a = layout.area
        #expect(image.width == 480 && image.height == 320 && image.channels == 3)
        // The frame.
        #expect(Self.color(image, a.x, a.y + a.height / 3) == [0, 0, 0])
        #expect(Self.color(image, a.x + a.width / 3, a.y + a.height - 1) == [0, 0, 0])
        // Title above, tick labels left, below and right, axis titles at the edges.
        #expect(Self.hasInk(image, x: 0..<480, y: 0..<a.y - 20))
        #expect(Self.hasInk(image, x: a.x - 30..<a.x - 4, y: a.y..<a.y + a.height))
        #expect(Self.hasInk(image, x: a.x + a.width + 4..<a.x + a.width + 30, y: a.y..<a.y + a.height))
        #expect(Self.hasInk(image, x: a.x..<a.x + a.width, y: a.y + a.height + 4..<a.y + a.height + 20))
        #expect(Self.hasInk(image, x: 0..<12, y: a.y..<a.y + a.height))  // rotated "loss"
        #expect(Self.hasInk(image, x: 468..<480, y: a.y..<a.y + a.height))  // rotated "val mIoU %"
        // Nothing but background and grid in the empty corner of the plot area.
        #expect(Self.color(image, a.x + a.width - 8, a.y + a.height - 8) == [255, 255, 255])
        // Tick marks: the left axis's end ticks sit on the frame corners.
        #expect(layout.left.pixel(layout.left.ticks.lower) == a.y + a.height - 1)
        #expect(layout.left.pixel(layout.left.ticks.upper) == a.y)
    }

    @Test func seriesPixelsLandWhereTheDataMaps() throws {
        let layout = Self.sample().layout(width: 480, height: 320)
        let image = layout.drawing.rendered()
        let right = try #require(layout.right)
        for t in [1.5, 3, 7.5, 9] {
            let x = try #require(layout.x.pixel(t))
            let y = try #require(layout.left.pixel(t))
            #expect(Self.color(image, x, y) == [220, 20, 20], "loss at x=\(t)")
            let yRight = try #require(right.pixel(60 - 2 * t))
            #expect(Self.color(image, x, yRight) == [20, 20, 220], "mIoU at x=\(t)")
        }
        // The right axis has its own ticks.
        #expect(right.ticks.lower <= 40 && right.ticks.upper >= 60 && right.ticks.upper <= 70)
    }

    @Test func nonFinitePointsLeaveGaps() throws {
        var plot = LinePlot(title: "gaps")
        plot.add("y", points: [(0, 0), (1, 1), (2, .nan), (3, 3), (4, .infinity), (5, 5), (6, 6)], color: Self.red)
        let layout = plot.layout(width: 400, height: 300)
        let image = layout.drawing.rendered()
        let red: [UInt8] = [220, 20, 20]
        func redInColumn(_ t: Double) throws -> Bool {
            let x = try #require(layout.x.pixel(t))
            return (layout.area.y..<(layout.area.y + layout.area.height)).contains { Self.color(image, x, $0) == red }
        }
        #expect(try redInColumn(0.5))
        #expect(try !redInColumn(2))  // between 1 and 3: the NaN broke the line
        #expect(try !redInColumn(4))
        #expect(try redInColumn(5.5))
        // The isolated point 3 is still drawn, as a dot.
        #expect(Self.color(image, try #require(layout.x.pixel(3)), try #require(layout.left.pixel(3))) == red)
        // Three runs: [0, 1], [3] and [5, 6].
        let runs = layout.drawing.shapes.compactMap { shape -> Int? in
            if case .polyline(let points, _, _, _) = shape { return points.count }
            return nil
        }
        #expect(runs == [2, 1, 2])
    }

    @Test func logAxisSkipsNonPositiveValues() throws {
        var plot = LinePlot()
        plot.yScale = .log
        plot.add("loss", points: [(0, 2), (1, 0), (2, -1), (3, 0.2), (4, 0.02)], color: Self.red)
        let layout = plot.layout(width: 400, height: 300)
        #expect(layout.left.ticks.values == [0.01, 0.1, 1, 10])
        let y1 = try #require(layout.left.pixel(1)), y01 = try #require(layout.left.pixel(0.1))
        let y001 = try #require(layout.left.pixel(0.01))
        #expect(abs((y1 - y01) - (y01 - y001)) <= 1)  // decades are equally spaced
        #expect(layout.left.pixel(0) == nil)
        // Log paper: faint lines at 2…9 x 10^k between the decade grid lines.
        let minor = layout.drawing.shapes.filter {
            if case .line(_, _, _, _, let stroke, _) = $0 { return stroke == LinePlot.minorGrid }
            return false
        }
        #expect(minor.count == 3 * 8)
        let image = layout.drawing.rendered()
        #expect(
            Self.color(image, try #require(layout.x.pixel(3.5)), try #require(layout.left.pixel(sqrt(0.2 * 0.02)))) == [
                220, 20, 20,
            ])
    }

    /// Collects the character data of every `<text>` element and counts elements by name.
    final class SVGReader: NSObject, XMLParserDelegate {
        var texts: [String] = []
        var counts: [String: Int] = [:]
        private var current: String?

        func parser(
            _ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
            attributes: [String: String] = [:]
        ) {
            counts[name, default: 0] += 1
            if name == "text" { current = "" }
        }

        func parser(_ parser: XMLParser, foundCharacters string: String) { current? += string }

        func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
            if name == "text", let current { texts.append(current) }
            current = nil
        }
    }

    @Test func svgIsWellFormedXMLWithRealText() throws {
        var plot = Self.sample()
        plot.title = "Loss & <mIoU> \"x\"\u{7}"
        let svg = plot.svg(width: 480, height: 320)
        let parser = XMLParser(data: Data(svg.utf8))
        let reader = SVGReader()
        parser.delegate = reader
        #expect(parser.parse(), "\(parser.parserError.map(String.init(describing:)) ?? "")")
        #expect(reader.counts["svg"] == 1)
        #expect(reader.counts["polyline"] == 2)
        #expect(reader.texts.contains("Loss & <mIoU> \"x\""))
        for label in ["iteration", "loss", "val mIoU %", "mIoU", "0", "10", "40", "60"] {
            #expect(reader.texts.contains(label), "missing <text>\(label)</text>")
        }
        #expect(svg.contains("&amp;") && svg.contains("&lt;mIoU&gt;"))
    }
}

@Suite struct PanelsTests {
    static func solid(_ width: Int, _ height: Int, _ color: RGB) -> Image {
        var image = Image(width: width, height: height, channels: 3, filledWith: 0)
        for i in 0..<(width * height) {
            image.pixels[3 * i] = color.0
            image.pixels[3 * i + 1] = color.1
            image.pixels[3 * i + 2] = color.2
        }
        return image
    }

    @Test func sizeIsTheSumOfWidthsPlusSpacingAndCaptionsAreDrawn() {
        let items = [
            ("image", Self.solid(100, 50, (10, 200, 10))), ("CAM seeds", Self.solid(80, 60, (200, 10, 10))),
            ("result", Self.solid(120, 40, (10, 10, 200))),
        ]
        let out = Image.panels(items.map { (caption: $0.0, image: $0.1) }, legend: nil, gap: 6, margin: 5)
        let line = BitmapFont.height()
        #expect(out.width == 2 * 5 + 100 + 80 + 120 + 2 * 6)
        let imagesTop = 5 + line + 4
        #expect(out.height == imagesTop + 60 + 5)
        func pixel(_ x: Int, _ y: Int) -> [UInt8] { Array(out.pixels[((y * out.width + x) * 3)..<((y * out.width + x) * 3 + 3)]) }
        // Images at their columns, top-aligned under the captions.
        #expect(pixel(5, imagesTop) == [10, 200, 10] && pixel(104, imagesTop + 49) == [10, 200, 10])
        #expect(pixel(5 + 100 + 6, imagesTop) == [200, 10, 10])
        #expect(pixel(5 + 186 + 6, imagesTop + 39) == [10, 10, 200])
        #expect(pixel(5 + 186 + 6, imagesTop + 40) == [255, 255, 255])
        // Each caption has ink centred over its column, inside the caption band.
        for (left, width, caption) in [(5, 100, "image"), (111, 80, "CAM seeds"), (197, 120, "result")] {
            let half = BitmapFont.width(of: caption) / 2
            let band = (5..<(5 + line)).flatMap { y in
                ((left + width / 2 - half)..<(left + width / 2 + half)).map { pixel($0, y) }
            }
            #expect(band.contains([0, 0, 0]), "caption \(caption)")
            #expect(pixel(left + 1, 6) == [255, 255, 255])
        }
    }

    @Test func wideCaptionsWidenTheirColumnAndTheLegendWraps() {
        let out = Image.panels(
            [(caption: "ground truth", image: Self.solid(20, 20, (0, 0, 0)))],
            legend: [("background", (0, 0, 0)), ("aeroplane", (128, 0, 0)), ("person", (192, 128, 128))],
            gap: 4, margin: 4)
        #expect(out.width == 2 * 4 + BitmapFont.width(of: "ground truth"))
        // Three legend rows below the image, each starting with its swatch colour.
        let line = BitmapFont.height(), spacing = 4
        let legendTop = 4 + line + spacing + 20 + 4
        #expect(out.height == legendTop + 3 * (line + spacing) - spacing + 4)
        func pixel(_ x: Int, _ y: Int) -> [UInt8] { Array(out.pixels[((y * out.width + x) * 3)..<((y * out.width + x) * 3 + 3)]) }
        #expect(pixel(4 + 3, legendTop + line + spacing + 3) == [128, 0, 0])
        #expect(pixel(4 + 3, legendTop + 2 * (line + spacing) + 3) == [192, 128, 128])
        #expect(pixel(4, legendTop + 2 * (line + spacing)) == [64, 64, 64])  // swatch outline
    }

    @Test func classLegendListsPresentValuesWithPaletteColours() {
        var labels = LabelMap(width: 4, height: 1)
        labels.values = [0, 15, LabelMap.ignore, 15]
        let other = LabelMap(width: 2, height: 1, values: [12, 40])
        let legend = Image.classLegend(
            names: ["background", "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "dog", "l", "m", "person"],
            present: [labels, other])
        #expect(legend.map(\.name) == ["background", "dog", "person", "class 40", "ignore"])
        #expect(legend[2].color == ColorMap.voc.color(of: 15))
        #expect(legend[2].color == (192, 128, 128))
        #expect(legend[4].color == (255, 255, 255))
    }
}

@Suite struct LinePlotLayoutTests {
    /// The bounding box (x0, y0, x1, y1), exclusive ends, of each text shape.
    static func textBoxes(_ drawing: Drawing) -> [(String, [Int])] {
        drawing.shapes.compactMap { shape in
            guard case .text(let string, let x, let top, let anchor, let scale, _, let rotated) = shape else { return nil }
            let run = BitmapFont.width(of: string, scale: scale), line = BitmapFont.height(scale: scale)
            let offset = anchor == .start ? 0 : anchor == .middle ? run / 2 : run
            return rotated
                ? (string, [x, top + offset - run, x + line, top + offset])
                : (string, [x - offset, top, x - offset + run, top + line])
        }
    }

    static func overlaps(_ a: [Int], _ b: [Int]) -> Bool { a[0] < b[2] && b[0] < a[2] && a[1] < b[3] && b[1] < a[3] }

    @Test(arguments: [(320, 200), (480, 320), (800, 480), (1200, 700)])
    func noTextOverlapsOtherTextOrLeavesTheImage(size: (Int, Int)) {
        for (xMax, yMax) in [(20000.0, 2.5), (1.5e6, 0.0123), (7.0, 12345.0), (0.003, -40.0)] {
            var plot = LinePlot(title: "a training curve", xLabel: "iteration", yLabel: "loss", rightYLabel: "val mIoU %")
            plot.add("train loss", points: [(0, 0), (xMax, yMax)], color: (0, 0, 200))
            plot.add("val mIoU", points: [(0, 20), (xMax, 65.5)], color: (200, 0, 0), axis: .right)
            let boxes = Self.textBoxes(plot.layout(width: size.0, height: size.1).drawing)
            for (i, a) in boxes.enumerated() {
                #expect(
                    a.1[0] >= 0 && a.1[1] >= 0 && a.1[2] <= size.0 && a.1[3] <= size.1, "\(a.0) leaves the \(size) image: \(a.1)")
                for b in boxes[(i + 1)...] where Self.overlaps(a.1, b.1) {
                    Issue.record("\(size), x…\(xMax), y…\(yMax): \(a.0) \(a.1) overlaps \(b.0) \(b.1)")
                }
            }
        }
    }

    @Test func emptyAndDegeneratePlotsStillDraw() {
        var plot = LinePlot(title: "nothing yet")
        #expect(plot.render(width: 200, height: 150).width == 200)
        plot.add("all NaN", points: [(0, .nan), (1, .nan)], color: (1, 2, 3))
        plot.add("one point", points: [(3, 3)], color: (4, 5, 6))
        let layout = plot.layout(width: 200, height: 150)
        #expect(layout.x.ticks.lower < 3 && layout.x.ticks.upper > 3)
        let image = layout.drawing.rendered()
        let (px, py) = (layout.x.pixel(3) ?? -1, layout.left.pixel(3) ?? -1)
        #expect(Array(image.pixels[((py * 200 + px) * 3)..<((py * 200 + px) * 3 + 3)]) == [4, 5, 6])
    }

    @Test func fixedRangesAreHonouredAndClipTheData() {
        var plot = LinePlot()
        plot.yRange = 0...1
        plot.xRange = 0...10
        plot.add("", points: [(0, 0), (10, 5)], color: (200, 0, 0))  // unnamed: no legend swatch
        let layout = plot.layout(width: 300, height: 200)
        #expect(layout.left.ticks.values.first == 0 && layout.left.ticks.values.last == 1)
        let image = layout.drawing.rendered()
        // Above the area (the line leaves it at y = 1, x = 2) nothing is red.
        let red = (0..<(300 * layout.area.y)).filter { image.pixels[3 * $0] == 200 && image.pixels[3 * $0 + 1] == 0 }
        #expect(red.isEmpty)
        let inside = (0..<(300 * 200)).filter { image.pixels[3 * $0] == 200 && image.pixels[3 * $0 + 1] == 0 }
        #expect(!inside.isEmpty)
    }

    @Test func writeSVGNamesTheFileOnFailure() throws {
        let plot = LinePlot(title: "t")
        #expect(throws: ReportingError.self) { try plot.writeSVG(to: "/nonexistent-dir/x/plot.svg", width: 200, height: 100) }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("wsss-plot-\(getpid()).svg").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try plot.writeSVG(to: path, width: 200, height: 100)
        #expect(try String(contentsOfFile: path, encoding: .utf8).hasPrefix("<?xml"))
    }
}
