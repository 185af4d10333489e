import Foundation
import Imaging
import Testing

@testable import Reporting

/// Example outputs for looking at by eye, kept when WSSS_PLOT_EXAMPLES names a folder (else
/// written to a temporary one): every run also checks that each decodes at its size and draws
/// something (ink in each part), and that the SVG carries its texts.
@Suite struct PlotExamplesTests {
    static var folder: String? { ProcessInfo.processInfo.environment["WSSS_PLOT_EXAMPLES"] }

    /// A training curve as `wsss train` would log it: a noisy decaying loss every 20 iterations
    /// (log axis, left) with a NaN stretch, and val mIoU % every 1000 iterations (right).
    static func trainingCurve() -> LinePlot {
        var plot = LinePlot(title: "deeplab-v2 voc12 (seed 0)", xLabel: "iteration", yLabel: "loss", rightYLabel: "val mIoU %")
        plot.yScale = .log
        var state: UInt64 = 12345
        func noise() -> Double {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Double(state >> 11) / Double(1 << 53) - 0.5
        }
        var loss: [(x: Double, y: Double)] = []
        for i in stride(from: 0, through: 20000, by: 20) {
            let base = 0.08 + 1.6 * exp(-Double(i) / 2500)
            loss.append((Double(i), (7000...7400).contains(i) ? .nan : base * (1 + 0.5 * noise())))
        }
        let mIoU = stride(from: 1000, through: 20000, by: 1000).map { i in (x: Double(i), y: 62 - 30 * exp(-Double(i) / 4000)) }
        plot.add("train loss", points: loss, color: (31, 119, 180))
        plot.add("val mIoU", points: mIoU, color: (214, 39, 40), axis: .right, markers: true)
        return plot
    }

    /// Pixels that are not (near) white.
    static func ink(_ image: Image, rows: Range<Int>? = nil) -> Int {
        let rgb = image.rgb()
        let range = rows ?? 0..<rgb.height
        var count = 0
        for y in range {
            for x in 0..<rgb.width {
                let i = 3 * (y * rgb.width + x)
                if rgb.pixels[i] < 200 || rgb.pixels[i + 1] < 200 || rgb.pixels[i + 2] < 200 { count += 1 }
            }
        }
        return count
    }

    @Test func writeExamples() throws {
        let temporary = Self.folder == nil ? NSTemporaryDirectory() + "wsss-plots-\(UUID().uuidString)" : nil
        let folder = Self.folder ?? temporary!
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { if let temporary { try? FileManager.default.removeItem(atPath: temporary) } }
        try write(to: folder)
        for (name, width, height) in [
            ("curves", 800, 480), ("curves-small", 560, 360), ("font", 600, 200), ("curves-tiny", 320, 200),
        ] {
            let image = try Image.readRGB(from: "\(folder)/\(name).png")
            #expect(image.width == width && image.height == height, "\(name).png is \(image.width)x\(image.height)")
            // Title, axes and curves: ink in the top, middle and bottom thirds.
            for third in 0..<3 {
                let rows = (third * height / 3)..<((third + 1) * height / 3)
                #expect(Self.ink(image, rows: rows) > 50, "\(name).png: nothing drawn in third \(third)")
            }
        }
        let panels = try Image.readRGB(from: folder + "/panels.png")
        #expect(panels.width > 5 * 160 && panels.height > 120, "panels.png is \(panels.width)x\(panels.height)")
        let svg = try String(contentsOfFile: folder + "/curves.svg", encoding: .utf8)
        for text in ["<svg", "deeplab-v2 voc12 (seed 0)", "iteration", "val mIoU", "train loss", "<polyline", "</svg>"] {
            #expect(svg.contains(text), "curves.svg lacks \(text)")
        }
    }

    func write(to folder: String) throws {
        let plot = Self.trainingCurve()
        try plot.render(width: 800, height: 480).writePNG(to: folder + "/curves.png")
        try plot.render(width: 560, height: 360).writePNG(to: folder + "/curves-small.png")
        try plot.svg(width: 800, height: 480).write(toFile: folder + "/curves.svg", atomically: true, encoding: .utf8)
        var font = Image(width: 600, height: 200, channels: 3, filledWith: 255)
        let all = " !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~"
        for (row, start) in stride(from: 0, to: all.count, by: 32).enumerated() {
            let line = String(all.dropFirst(start).prefix(32))
            BitmapFont.draw(line, into: &font, x: 4, y: 4 + row * 30, scale: 3, color: (0, 0, 0))
        }
        BitmapFont.draw("loss 0.0123 -4.5e-3 +12% 12:30 1/2 (val) mIoU", into: &font, x: 4, y: 130, scale: 2, color: (0, 0, 0))
        BitmapFont.draw("quick brown fox jumps over the lazy dog", into: &font, x: 4, y: 160, scale: 1, color: (0, 0, 0))
        BitmapFont.draw("rotated", into: &font, x: 580, y: 100, scale: 2, color: (200, 0, 0), rotated: true)
        try font.writePNG(to: folder + "/font.png")
        try Self.panelStrip().writePNG(to: folder + "/panels.png")
        try Self.panelStrip(width: 256, height: 192).writePNG(to: folder + "/panels-256.png")
        var small = LinePlot(title: "a training curve", xLabel: "iteration", yLabel: "loss", rightYLabel: "val mIoU %")
        small.add("train loss", points: [(0, 0), (1.5e6, 0.0123)], color: (0, 0, 200))
        small.add("val mIoU", points: [(0, 20), (1.5e6, 65.5)], color: (200, 0, 0), axis: .right)
        try small.render(width: 320, height: 200).writePNG(to: folder + "/curves-tiny.png")
    }

    /// Five panels (160x120 by default) of a synthetic scene with a person (15) and a dog (12) on background,
    /// an ignore border in the ground truth.
    static func panelStrip(width w: Int = 160, height h: Int = 120) -> Image {
        var image = Image(width: w, height: h, channels: 3, filledWith: 0)
        var truth = LabelMap(width: w, height: h)
        for y in 0..<h {
            for x in 0..<w {
                let i = y * w + x
                image.pixels[3 * i] = UInt8(100 + x * 160 / w / 4)
                image.pixels[3 * i + 1] = UInt8(120 + y * 120 / h / 3)
                image.pixels[3 * i + 2] = 90
                let (u, v) = (x * 160 / w, y * 120 / h)  // the scene drawn on a 160x120 grid
                if (u - 50) * (u - 50) + (v - 60) * (v - 60) < 900 { truth.values[i] = 15 }
                if u > 95 && u < 145 && v > 50 && v < 100 { truth.values[i] = 12 }
                if x < 3 || y < 3 || x >= w - 3 || y >= h - 3 { truth.values[i] = LabelMap.ignore }
            }
        }
        var seeds = LabelMap(width: w, height: h), proposals = LabelMap(width: w, height: h)
        for i in 0..<(w * h) where truth.values[i] != LabelMap.ignore {
            let (x, y) = (i % w, i / w)
            if truth.values[i] != 0 && (x + y) % 3 != 0 { seeds.values[i] = truth.values[i] }
            proposals.values[i] = truth.values[i]
            if x * 160 / w > 140 && truth.values[i] == 12 { proposals.values[i] = 8 }
        }
        let names = [
            "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
            "diningtable", "dog", "horse", "motorbike", "person",
        ]
        return Image.panels(
            [
                ("image", image), ("CAM seeds", image.overlaid(with: seeds)), ("proposals", image.overlaid(with: proposals)),
                ("result", proposals.colorized()), ("ground truth", truth.colorized()),
            ],
            legend: Image.classLegend(names: names, present: [proposals, truth]))
    }
}
