import Foundation
import Imaging

/// One detection: a class, a box in pixels (x0, y0, x1, y1; x1/y1 exclusive as detectors
/// report them) and a confidence.
public struct Detection: Equatable, Sendable {
    public var classID: Int
    public var box: (x0: Double, y0: Double, x1: Double, y1: Double)
    public var score: Double

    public init(classID: Int, box: (Double, Double, Double, Double), score: Double) {
        self.classID = classID
        self.box = (box.0, box.1, box.2, box.3)
        self.score = score
    }

    public static func == (a: Detection, b: Detection) -> Bool {
        a.classID == b.classID && a.score == b.score && a.box == b.box
    }
}

/// Detections per image from a JSON file, e.g. Grounding DINO output converted to one object
/// `{"<image id>": [{"label": "dog", "box": [x0, y0, x1, y1], "score": 0.62}, …], …}`.
/// `label` may also be `class`/`phrase` (a class name) or `class_id` (an index); `box` may be
/// `bbox` (x0, y0, x1, y1 in pixels); `score` may be `logit`/`confidence`.
public struct DetectionFile: Sendable {
    public let path: String
    public let detections: [String: [Detection]]

    public init(path: String, classNames: [String]) throws {
        let data = try PseudoLabelError.contents(of: path)
        guard let json = try? JSONSerialization.jsonObject(with: data) else {
            throw PseudoLabelError.malformed(path: path, reason: "not valid JSON")
        }
        guard let object = json as? [String: Any] else {
            throw PseudoLabelError.malformed(path: path, reason: "expected an object mapping image ids to lists of detections")
        }
        // A detector's phrase "traffic light" names the class "traffic_light" (classes.txt of
        // `wsss coco convert`, whose label files split on spaces): compare with "_" as " ".
        func key(_ name: String) -> String { name.lowercased().replacingOccurrences(of: "_", with: " ").trimmingCharacters(in: .whitespaces) }
        let index = Dictionary(classNames.enumerated().map { (key($1), $0) }, uniquingKeysWith: { a, _ in a })
        var result: [String: [Detection]] = [:]
        for (id, value) in object {
            guard let list = value as? [Any] else { throw PseudoLabelError.malformed(path: path, reason: "\(id): expected a list") }
            result[id] = try list.enumerated().map { k, item in
                func bad(_ reason: String) -> PseudoLabelError { .malformed(path: path, reason: "\(id), detection \(k): \(reason)") }
                guard let d = item as? [String: Any] else { throw bad("expected an object") }
                let classID: Int
                if let n = d["class_id"] as? Int {
                    classID = n
                } else if let name = (d["label"] ?? d["class"] ?? d["phrase"]) as? String {
                    guard let n = index[key(name)] else {
                        throw bad("unknown class \"\(name)\"")
                    }
                    classID = n
                } else {
                    throw bad("no \"label\" or \"class_id\"")
                }
                guard classID > 0 && classID < classNames.count else {
                    throw PseudoLabelError.classOutOfRange(path: path, value: classID, classes: classNames.count)
                }
                guard let box = (d["box"] ?? d["bbox"]) as? [NSNumber], box.count == 4 else { throw bad("\"box\" must be [x0, y0, x1, y1]") }
                guard let score = (d["score"] ?? d["logit"] ?? d["confidence"]) as? NSNumber else { throw bad("no \"score\"") }
                let b = box.map(\.doubleValue)
                guard b[2] > b[0] && b[3] > b[1] else { throw bad("empty box \(b)") }
                return Detection(classID: classID, box: (b[0], b[1], b[2], b[3]), score: score.doubleValue)
            }
        }
        self.path = path
        self.detections = result
    }
}

/// The Grounded-SAM route: one mask per detection box, painted in ascending score so the most
/// confident wins where masks overlap.
///
/// The framework has no SAM yet, so the mask for a box is taken from the image's proposals:
/// the proposal whose tight box has the highest IoU with the detection box (at least
/// `minimumBoxIoU`), which is what SAM prompted with that box would return when the proposal
/// set contains the object. A box with no such proposal is dropped (counted in `unmatched`).
public struct BoxMerge: Sendable {
    public var scoreThreshold: Double = 0.3
    public var minimumBoxIoU: Double = 0.5

    public init(scoreThreshold: Double = 0.3, minimumBoxIoU: Double = 0.5) {
        (self.scoreThreshold, self.minimumBoxIoU) = (scoreThreshold, minimumBoxIoU)
    }

    /// Labels from `detections` (only classes in `imageClasses` are kept) and `proposals`.
    public func merge(
        width: Int, height: Int, detections: [Detection], imageClasses: Set<Int>, proposals: [SegmentMask]
    ) -> (labels: LabelMap, unmatched: Int) {
        let boxes = proposals.map { $0.boundingBox }
        var chosen: [(score: Double, classID: Int, mask: Int)] = []
        var unmatched = 0
        for d in detections where d.score >= scoreThreshold && imageClasses.contains(d.classID) {
            var best: (iou: Double, index: Int)?
            for (k, b) in boxes.enumerated() {
                guard let b else { continue }
                let iou = Self.boxIoU(d.box, (Double(b.x0), Double(b.y0), Double(b.x1 + 1), Double(b.y1 + 1)))
                if iou >= minimumBoxIoU && (best == nil || iou > best!.iou) { best = (iou, k) }
            }
            if let best { chosen.append((d.score, d.classID, best.index)) } else { unmatched += 1 }
        }
        var column = [UInt8](repeating: 0, count: width * height)
        for c in chosen.sorted(by: { ($0.score, $0.mask) < ($1.score, $1.mask) }) {
            for run in proposals[c.mask].runs { for i in run { column[Int(i)] = UInt8(c.classID) } }
        }
        return (LabelMap(width: width, height: height, values: ColumnMajor.toRowMajor(column, width: width, height: height)), unmatched)
    }

    static func boxIoU(_ a: (Double, Double, Double, Double), _ b: (Double, Double, Double, Double)) -> Double {
        let iw = max(0, min(a.2, b.2) - max(a.0, b.0)), ih = max(0, min(a.3, b.3) - max(a.1, b.1))
        let inter = iw * ih
        let union = (a.2 - a.0) * (a.3 - a.1) + (b.2 - b.0) * (b.3 - b.1) - inter
        return union > 0 ? inter / union : 0
    }

    /// Boxes from the connected components (8-connected) of each class in a seed label map,
    /// scored by the component's share of the image's seed pixels of that class; components
    /// smaller than `minimumArea` pixels are dropped.
    public static func detections(fromComponentsOf seeds: LabelMap, minimumArea: Int = 16) -> [Detection] {
        let (w, h) = (seeds.width, seeds.height)
        var component = [Int32](repeating: -1, count: w * h)
        var result: [Detection] = []
        var classTotals: [UInt8: Int] = [:]
        for v in seeds.values where v != 0 && v != LabelMap.ignore { classTotals[v, default: 0] += 1 }
        var stack: [Int] = []
        var next: Int32 = 0
        for start in 0..<(w * h) {
            let c = seeds.values[start]
            guard c != 0 && c != LabelMap.ignore && component[start] < 0 else { continue }
            var (x0, y0, x1, y1, area) = (w, h, -1, -1, 0)
            component[start] = next
            stack.append(start)
            while let p = stack.popLast() {
                let (x, y) = (p % w, p / w)
                (x0, y0, x1, y1, area) = (min(x0, x), min(y0, y), max(x1, x), max(y1, y), area + 1)
                for dy in -1...1 {
                    for dx in -1...1 {
                        let (nx, ny) = (x + dx, y + dy)
                        guard nx >= 0 && ny >= 0 && nx < w && ny < h else { continue }
                        let q = ny * w + nx
                        if component[q] < 0 && seeds.values[q] == c {
                            component[q] = next
                            stack.append(q)
                        }
                    }
                }
            }
            next += 1
            if area >= minimumArea {
                let score = Double(area) / Double(classTotals[c]!)
                result.append(Detection(classID: Int(c), box: (Double(x0), Double(y0), Double(x1 + 1), Double(y1 + 1)), score: score))
            }
        }
        return result
    }
}
