import Autograd
import Foundation
import Imaging

/// A small synthetic set in the MS-COCO layout, so `wsss coco convert` and the whole pipeline
/// on its output run without downloads:
/// ```
/// ROOT/annotations/instances_train.json, instances_val.json   (all 80 official categories)
/// ROOT/train/COCO_synth_train_000001.jpg …, ROOT/val/…
/// ```
/// Objects of eight categories (each its own colour) are polygons (sometimes in two parts),
/// uncompressed RLE ellipses, or crowd compressed-RLE blob groups; the first image of each split
/// has no annotation. Pixels are drawn from the same masks the converter rasterises, smaller
/// objects over larger ones, so the picture agrees with the label maps it converts to.
public enum SyntheticCOCO {
    public struct Options: Sendable {
        public var seed: UInt64 = 0
        public var train = 60
        public var val = 20
        /// Image width in pixels; heights are 3/4 of it (COCO's typical 640x480 aspect).
        public var size = 96
        public init() {}
    }

    /// The categories objects are drawn from (official ids), with their colours.
    static let used: [(id: Int, color: (UInt8, UInt8, UInt8))] = [
        (1, (220, 60, 60)), (3, (60, 200, 70)), (17, (70, 80, 220)), (18, (230, 200, 40)),
        (44, (200, 60, 210)), (62, (40, 210, 210)), (72, (250, 140, 30)), (88, (140, 90, 40)),
    ]

    struct Object {
        var category: Int
        var crowd: Bool
        /// The segmentation as JSON text.
        var json: String
        var mask: [UInt8]
        var area: Int
    }

    /// Writes both splits under `root`. Deterministic for a seed.
    public static func write(to root: String, options: Options) throws {
        let fm = FileManager.default
        for folder in ["annotations", "train", "val"] {
            try fm.createDirectory(atPath: "\(root)/\(folder)", withIntermediateDirectories: true)
        }
        var nextAnnotation = 1
        for (split, count, offset) in [("train", options.train, 0), ("val", options.val, 1_000_000)] {
            var images: [String] = [], annotations: [String] = []
            for k in 0..<count {
                let id = offset + k + 1
                var g = SeededGenerator(seed: options.seed &* 1_000_003 &+ UInt64(id))
                let (w, h) = (options.size, max(8, options.size * 3 / 4))
                let name = "COCO_synth_\(split)_\(String(format: "%06d", k + 1)).jpg"
                let objects = k == 0 ? [] : scene(width: w, height: h, using: &g)
                try picture(objects, width: w, height: h, using: &g).writeJPEG(to: "\(root)/\(split)/\(name)", quality: 92)
                images.append("{\"id\":\(id),\"file_name\":\"\(name)\",\"height\":\(h),\"width\":\(w),\"license\":1}")
                for o in objects {
                    annotations.append(
                        "{\"id\":\(nextAnnotation),\"image_id\":\(id),\"category_id\":\(o.category),\"iscrowd\":\(o.crowd ? 1 : 0),"
                            + "\"area\":\(Double(o.area)),\"bbox\":\(box(o.mask, width: w, height: h)),\"segmentation\":\(o.json)}"
                    )
                    nextAnnotation += 1
                }
            }
            let categories = COCOCategories.official.map {
                "{\"id\":\($0.id),\"name\":\"\($0.name)\",\"supercategory\":\"thing\"}"
            }
            let text =
                "{\"info\":{\"description\":\"wsss synth --format coco\",\"year\":2014},\"licenses\":[{\"id\":1,\"name\":\"synthetic\"}],"
                + "\"images\":[\(images.joined(separator: ","))],\"annotations\":[\(annotations.joined(separator: ","))],"
                + "\"categories\":[\(categories.joined(separator: ","))]}"
            try Data(text.utf8).write(to: URL(fileURLWithPath: "\(root)/annotations/instances_\(split).json"), options: .atomic)
        }
    }

    /// 1–3 objects, at most one of them crowd.
    static func scene(width w: Int, height h: Int, using g: inout SeededGenerator) -> [Object] {
        func uniform(_ lo: Double, _ hi: Double) -> Double { lo + (hi - lo) * Double(g.nextUniform()) }
        var objects: [Object] = []
        let count = 1 + Int(g.next() % 3)
        for n in 0..<count {
            let category = used[Int(g.next() % UInt64(used.count))].id
            let kind = n == 2 ? 2 : Int(g.next() % 3)
            let (cx, cy) = (uniform(0.2, 0.8) * Double(w), uniform(0.2, 0.8) * Double(h))
            let radius = uniform(0.12, 0.3) * Double(min(w, h))
            switch kind {
            case 0:
                // A star-shaped polygon, sometimes with a second part beside it.
                var parts: [[Double]] = []
                for part in 0..<(g.next() % 4 == 0 ? 2 : 1) {
                    let vertices = 5 + Int(g.next() % 6)
                    let (px, py) = part == 0 ? (cx, cy) : (cx + radius * 1.3, cy - radius * 0.4)
                    let r = part == 0 ? radius : radius * 0.5
                    var xy: [Double] = []
                    for v in 0..<vertices {
                        let angle = 2 * Double.pi * Double(v) / Double(vertices)
                        let rho = r * uniform(0.6, 1.0)
                        // Two decimals, as COCO's files.
                        xy += [((px + rho * cos(angle)) * 100).rounded() / 100, ((py + rho * sin(angle)) * 100).rounded() / 100]
                    }
                    parts.append(xy)
                }
                var mask = [UInt8](repeating: 0, count: w * h)
                mask.withUnsafeMutableBufferPointer { b in
                    for p in parts {
                        COCOMask.polygon(p, height: h, width: w).paint(into: b.baseAddress!, value: 1, onlyOver: nil)
                    }
                }
                let json = "[" + parts.map { "[" + $0.map { "\($0)" }.joined(separator: ",") + "]" }.joined(separator: ",") + "]"
                objects.append(
                    Object(category: category, crowd: false, json: json, mask: mask, area: mask.reduce(0) { $0 + Int($1) }))
            case 1:
                // An ellipse as uncompressed RLE.
                let ry = radius * uniform(0.5, 1)
                let mask = (0..<(w * h)).map { p -> UInt8 in
                    let (dx, dy) = ((Double(p % w) - cx) / radius, (Double(p / w) - cy) / ry)
                    return dx * dx + dy * dy <= 1 ? 1 : 0
                }
                let runs = COCOMask.encode(mask, height: h, width: w)
                let json = "{\"size\":[\(h),\(w)],\"counts\":[\(runs.counts.map(String.init).joined(separator: ","))]}"
                objects.append(Object(category: category, crowd: false, json: json, mask: mask, area: runs.area))
            default:
                // A crowd: a few small blobs as one compressed RLE.
                var mask = [UInt8](repeating: 0, count: w * h)
                for _ in 0..<(2 + Int(g.next() % 3)) {
                    let (bx, by, br) = (cx + uniform(-1, 1) * radius, cy + uniform(-1, 1) * radius, radius * uniform(0.2, 0.4))
                    for p in 0..<(w * h) {
                        let (dx, dy) = (Double(p % w) - bx, Double(p / w) - by)
                        if dx * dx + dy * dy <= br * br { mask[p] = 1 }
                    }
                }
                let runs = COCOMask.encode(mask, height: h, width: w)
                // JSON escapes the backslash of COCO's alphabet.
                let counts = COCOMask.encodeCounts(runs.counts).replacingOccurrences(of: "\\", with: "\\\\")
                let json = "{\"size\":[\(h),\(w)],\"counts\":\"\(counts)\"}"
                objects.append(Object(category: category, crowd: true, json: json, mask: mask, area: runs.area))
            }
        }
        return objects.filter { $0.area > 0 }
    }

    /// A noisy background with each object in its category's colour, larger objects first.
    static func picture(_ objects: [Object], width w: Int, height h: Int, using g: inout SeededGenerator) -> Image {
        var pixels = [UInt8](repeating: 0, count: w * h * 3)
        let base = (90 + Int(g.next() % 60), 90 + Int(g.next() % 60), 90 + Int(g.next() % 60))
        for p in 0..<(w * h) {
            let shade = (p % w + p / w) % 16
            pixels[3 * p] = UInt8(base.0 + shade)
            pixels[3 * p + 1] = UInt8(base.1 + shade)
            pixels[3 * p + 2] = UInt8(base.2 + shade)
        }
        for o in objects.sorted(by: { $0.area > $1.area }) {
            let color = used.first { $0.id == o.category }!.color
            for p in 0..<(w * h) where o.mask[p] != 0 {
                let noise = Int(g.next() % 21) - 10
                pixels[3 * p] = UInt8(max(0, min(255, Int(color.0) + noise)))
                pixels[3 * p + 1] = UInt8(max(0, min(255, Int(color.1) + noise)))
                pixels[3 * p + 2] = UInt8(max(0, min(255, Int(color.2) + noise)))
            }
        }
        return Image(width: w, height: h, channels: 3, pixels: pixels)
    }

    /// [x, y, width, height] of a mask's pixels, COCO's bbox.
    static func box(_ mask: [UInt8], width w: Int, height h: Int) -> String {
        var (x0, y0, x1, y1) = (w, h, -1, -1)
        for p in 0..<(w * h) where mask[p] != 0 {
            (x0, y0, x1, y1) = (min(x0, p % w), min(y0, p / w), max(x1, p % w), max(y1, p / w))
        }
        return x1 < 0 ? "[0,0,0,0]" : "[\(x0),\(y0),\(x1 - x0 + 1),\(y1 - y0 + 1)]"
    }
}
