import Autograd
import Dispatch
import Foundation
import Imaging

/// The built-in synthetic dataset in the PASCAL VOC 2012 layout, so the whole pipeline runs
/// anywhere without downloads. See docs/SYNTHETIC.md for how and why it is built this way.
public struct SyntheticDataset {
    public struct Options: Sendable {
        public var seed: UInt64 = 0
        public var train = 300
        public var val = 100
        public var test = 100
        public var size = 128
        public init() {}
    }

    /// Class names: background and the six shapes.
    public static let classes = ClassNames(["background"] + SyntheticShape.allCases.map(\.name))

    /// Writes the dataset under `root` (JPEGImages, SegmentationClass, Annotations,
    /// ImageSets/Segmentation/{train,val,test,trainval}.txt, classes.txt). Deterministic for a seed.
    /// - Parameter proposals: when given, called (from worker threads) with each image's
    ///   SAM stand-in masks (`SyntheticProposal`), e.g. to write them as SA-1B JSON.
    public static func write(
        to root: String, options: Options, proposals: (@Sendable (String, [SyntheticProposal]) throws -> Void)? = nil
    ) throws {
        let fm = FileManager.default
        for folder in ["JPEGImages", "SegmentationClass", "Annotations", "ImageSets/Segmentation"] {
            try fm.createDirectory(atPath: "\(root)/\(folder)", withIntermediateDirectories: true)
        }
        let splits = [("train", options.train), ("val", options.val), ("test", options.test)]
        var ids: [(split: String, id: String, index: Int)] = []
        var index = 0
        for (split, count) in splits {
            for k in 0..<count {
                ids.append((split, "synth_\(split)_\(String(format: "%05d", k))", index))
                index += 1
            }
        }
        var errors = [Error?](repeating: nil, count: ids.count)
        errors.withUnsafeMutableBufferPointer { errorBuffer in
            let buffer = errorBuffer
            DispatchQueue.concurrentPerform(iterations: ids.count) { k in
                do {
                    let scene = SyntheticScene(seed: options.seed, index: ids[k].index, size: options.size)
                    try scene.image.writeJPEG(to: "\(root)/JPEGImages/\(ids[k].id).jpg", quality: 90)
                    try scene.labels.writePNG(to: "\(root)/SegmentationClass/\(ids[k].id).png")
                    try scene.annotationXML(id: ids[k].id).write(
                        toFile: "\(root)/Annotations/\(ids[k].id).xml", atomically: true, encoding: .utf8)
                    if let proposals { try proposals(ids[k].id, scene.standInProposals()) }
                } catch {
                    buffer[k] = error
                }
            }
        }
        if let error = errors.compactMap({ $0 }).first { throw error }
        for (split, _) in splits {
            let list = ids.filter { $0.split == split }.map(\.id).joined(separator: "\n") + "\n"
            try list.write(toFile: "\(root)/ImageSets/Segmentation/\(split).txt", atomically: true, encoding: .utf8)
        }
        let trainval = ids.filter { $0.split != "test" }.map(\.id).joined(separator: "\n") + "\n"
        try trainval.write(toFile: "\(root)/ImageSets/Segmentation/trainval.txt", atomically: true, encoding: .utf8)
        try (classes.names.joined(separator: "\n") + "\n").write(toFile: "\(root)/classes.txt", atomically: true, encoding: .utf8)
    }
}

/// One synthetic image with its label map and objects.
struct SyntheticScene {
    struct Object {
        var shape: SyntheticShape
        var centerX, centerY, radiusX, radiusY, angle: Double
        var box: (Int, Int, Int, Int)  // xmin, ymin, xmax, ymax (1-based, inclusive, as VOC)
    }

    let size: Int
    let seed: UInt64
    let index: Int
    var image: Image
    var labels: LabelMap
    var objects: [Object] = []
    /// What the scene is made of, per pixel (for the SAM stand-in): the visible object, or -1.
    var instances: [Int] = []
    /// The clutter blob painted last at a pixel, or -1.
    var clutterIndex: [Int] = []
    /// The discriminative part of a visible object at a pixel (object index), or -1.
    var partIndex: [Int] = []
    /// Which of the two background colours dominates at a pixel.
    var backgroundShade: [Bool] = []

    init(seed: UInt64, index: Int, size: Int) {
        self.size = size
        self.seed = seed
        self.index = index
        var canvas = Canvas(
            size: size, generator: SeededGenerator(seed: seed &* 0x9E37_79B9_7F4A_7C15 ^ UInt64(index) &* 0xD1B5_4A32_D192_ED03))
        canvas.paintBackground()
        // Clutter: body-coloured blobs without parts (shapes of any class, so shape alone does
        // not name a class), some right next to where objects will be.
        let clutter = Int(canvas.g.next() % 4)
        for _ in 0..<clutter { canvas.addClutter() }
        // Objects: 1–4, overlapping freely; later ones occlude earlier ones.
        let count = 1 + Int(canvas.g.next() % 4)
        for _ in 0..<count { objects.append(canvas.addObject(index: objects.count)) }
        // Sensor noise, then 8-bit pixels.
        var pixels = [UInt8](repeating: 0, count: size * size * 3)
        for i in 0..<canvas.rgb.count {
            pixels[i] = UInt8(max(0, min(255, canvas.rgb[i] + 6 * Double(canvas.g.nextNormal()))))
        }
        image = Image(width: size, height: size, channels: 3, pixels: pixels)
        // `classes` holds what is visible (later paint overwrote earlier labels), with a
        // one-pixel ignore outline around objects, like VOC's boundary band.
        labels = LabelMap(width: size, height: size, values: Self.outlined(canvas.classes, size: size))
        self.instances = canvas.instances
        self.clutterIndex = canvas.clutterAt
        self.partIndex = canvas.partAt
        self.backgroundShade = canvas.shade
        // Boxes and presence from what is visible.
        let instances = canvas.instances
        objects = objects.enumerated().compactMap { k, object in
            var (x0, y0, x1, y1) = (size, size, -1, -1)
            for y in 0..<size {
                for x in 0..<size where instances[y * size + x] == k {
                    (x0, y0, x1, y1) = (min(x0, x), min(y0, y), max(x1, x), max(y1, y))
                }
            }
            guard x1 >= 0 else { return nil }
            var o = object
            o.box = (x0 + 1, y0 + 1, x1 + 1, y1 + 1)
            return o
        }
    }

    /// `visible` with every pixel whose right or lower neighbour differs set to ignore.
    static func outlined(_ visible: [UInt8], size: Int) -> [UInt8] {
        var withBorder = visible
        for y in 0..<size {
            for x in 0..<size {
                let v = visible[y * size + x]
                for (nx, ny) in [(x + 1, y), (x, y + 1)] where nx < size && ny < size {
                    let w = visible[ny * size + nx]
                    if w != v { withBorder[y * size + x] = LabelMap.ignore }
                }
            }
        }
        return withBorder
    }

    /// The scene while it is painted: colours and what each pixel shows, drawn from one generator
    /// in a fixed order (so a seed always gives the same scene).
    private struct Canvas {
        let size: Int
        var g: SeededGenerator
        var rgb: [Double]
        var classes: [UInt8]
        /// Visible object per pixel, the clutter blob painted last, the part of an object, or -1.
        var instances: [Int], clutterAt: [Int], partAt: [Int]
        var shade: [Bool]
        var clutterCount = 0

        init(size: Int, generator: SeededGenerator) {
            (self.size, g) = (size, generator)
            rgb = [Double](repeating: 0, count: size * size * 3)
            classes = [UInt8](repeating: 0, count: size * size)
            (instances, clutterAt, partAt) = (
                [Int](repeating: -1, count: size * size), [Int](repeating: -1, count: size * size),
                [Int](repeating: -1, count: size * size)
            )
            shade = [Bool](repeating: false, count: size * size)
        }

        mutating func uniform(_ low: Double, _ high: Double) -> Double { low + (high - low) * Double(g.nextUniform()) }
        mutating func pick<T>(_ values: [T]) -> T { values[Int(g.next() % UInt64(values.count))] }

        /// Background: two muted colours in low-frequency waves.
        mutating func paintBackground() {
            let (bg1, bg2) = (pick(syntheticBackgroundColors), pick(syntheticBackgroundColors))
            let (fx, fy, phase) = (uniform(0.02, 0.09), uniform(0.02, 0.09), uniform(0, 6.28))
            for y in 0..<size {
                for x in 0..<size {
                    let t = 0.5 + 0.5 * sin(Double(x) * fx + Double(y) * fy + phase)
                    let i = (y * size + x) * 3
                    shade[y * size + x] = t > 0.5
                    rgb[i] = bg1.0 * t + bg2.0 * (1 - t)
                    rgb[i + 1] = bg1.1 * t + bg2.1 * (1 - t)
                    rgb[i + 2] = bg1.2 * t + bg2.2 * (1 - t)
                }
            }
        }

        /// Paints a body (shape, colour, texture) and returns its pixels and its part's pixels.
        mutating func paint(
            _ shape: SyntheticShape, cx: Double, cy: Double, rx: Double, ry: Double, angle: Double,
            color: (Double, Double, Double), stripes: Bool, part: Bool
        ) -> (body: [Int], part: [Int]) {
            var pixels: [Int] = []
            var partPixels: [Int] = []
            let (c, s) = (cos(angle), sin(angle))
            // The bounding square, clipped to the image (a blob may sit partly or wholly outside).
            let reach = Int(max(rx, ry) * 1.5) + 1
            let (x0, x1) = (max(0, Int(cx) - reach), min(size, Int(cx) + reach + 1))
            let (y0, y1) = (max(0, Int(cy) - reach), min(size, Int(cy) + reach + 1))
            guard x0 < x1 && y0 < y1 else { return ([], []) }
            for y in y0..<y1 {
                for x in x0..<x1 {
                    let (dx, dy) = (Double(x) + 0.5 - cx, Double(y) + 0.5 - cy)
                    let (u, v) = ((c * dx + s * dy) / rx, (-s * dx + c * dy) / ry)
                    guard shape.contains(u: u, v: v) else { continue }
                    var col = color
                    if stripes && Int((u + v + 4) * 3) % 2 == 0 { col = (col.0 * 0.75, col.1 * 0.75, col.2 * 0.75) }
                    if part {
                        let (pu, pv) = shape.partCenter
                        if (u - pu) * (u - pu) + (v - pv) * (v - pv) <= 0.22 * 0.22 {
                            col = shape.partColor
                            partPixels.append(y * size + x)
                        }
                    }
                    let i = (y * size + x) * 3
                    (rgb[i], rgb[i + 1], rgb[i + 2]) = col
                    pixels.append(y * size + x)
                }
            }
            return (pixels, partPixels)
        }

        /// A clutter blob anywhere in the image.
        mutating func addClutter() {
            let r = uniform(0.04, 0.09) * Double(size)
            let blob = paint(
                pick(SyntheticShape.allCases), cx: uniform(0, Double(size)), cy: uniform(0, Double(size)),
                rx: r * uniform(0.6, 1.4), ry: r, angle: uniform(-1, 1), color: pick(syntheticBodyColors),
                stripes: g.next() & 1 == 0, part: false
            ).body
            for p in blob { clutterAt[p] = clutterCount }
            clutterCount += 1
        }

        /// Object number `index` (its box is filled in later, from what stays visible), and
        /// sometimes a small clutter blob touching it.
        mutating func addObject(index: Int) -> Object {
            let shape = pick(SyntheticShape.allCases)
            let r = uniform(0.12, 0.24) * Double(size)
            let (cx, cy) = (uniform(0.15, 0.85) * Double(size), uniform(0.15, 0.85) * Double(size))
            let (rx, ry, angle) = (r * uniform(0.75, 1.3), r, uniform(-0.35, 0.35))
            let (pixels, partPixels) = paint(
                shape, cx: cx, cy: cy, rx: rx, ry: ry, angle: angle,
                color: pick(syntheticBodyColors), stripes: g.next() % 3 == 0, part: true)
            for p in pixels {
                classes[p] = UInt8(shape.rawValue)
                instances[p] = index
                clutterAt[p] = -1
                partAt[p] = -1
            }
            for p in partPixels { partAt[p] = index }
            // A small body-coloured blob touching the object: clutter a CAM tends to spill onto.
            // Where it covers the object, the pixel is clutter (background) now.
            if g.next() % 2 == 0 {
                let side = uniform(0, 6.28)
                let blob = paint(
                    pick(SyntheticShape.allCases), cx: cx + cos(side) * rx * 1.15, cy: cy + sin(side) * ry * 1.15,
                    rx: r * 0.3, ry: r * 0.3, angle: 0, color: pick(syntheticBodyColors), stripes: false, part: false
                ).body
                for p in blob {
                    classes[p] = 0
                    instances[p] = -1
                    partAt[p] = -1
                    clutterAt[p] = clutterCount
                }
                clutterCount += 1
            }
            return Object(shape: shape, centerX: cx, centerY: cy, radiusX: rx, radiusY: ry, angle: angle, box: (0, 0, 0, 0))
        }
    }

    func annotationXML(id: String) -> String {
        var xml = "<annotation>\n  <folder>WSSS-synthetic</folder>\n  <filename>\(id).jpg</filename>\n"
        xml += "  <size><width>\(size)</width><height>\(size)</height><depth>3</depth></size>\n  <segmented>1</segmented>\n"
        for o in objects {
            xml += "  <object>\n    <name>\(o.shape.name)</name>\n    <pose>Unspecified</pose>\n    <truncated>0</truncated>\n"
            xml += "    <difficult>0</difficult>\n    <bndbox><xmin>\(o.box.0)</xmin><ymin>\(o.box.1)</ymin>"
            xml += "<xmax>\(o.box.2)</xmax><ymax>\(o.box.3)</ymax></bndbox>\n  </object>\n"
        }
        return xml + "</annotation>\n"
    }
}
