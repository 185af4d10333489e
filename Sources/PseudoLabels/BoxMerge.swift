import Foundation
import Imaging

/// One detection: a class, a box in pixels (x0, y0, x1, y1; x1/y1 exclusive as detectors
/// report them), a confidence (the box score: Grounding DINO's best token logit) and, when the
/// file gives one, the score of its phrase's tokens.
public struct Detection: Equatable, Sendable {
    public var classID: Int
    public var box: (x0: Double, y0: Double, x1: Double, y1: Double)
    public var score: Double
    /// The phrase's text score (`text_score`), compared with `BoxMerge.textThreshold`; nil when
    /// the file has none.
    public var textScore: Double?
    /// The phrase as the file spells it (nil for `class_id` entries and CAM-component boxes).
    public var phrase: String?

    public init(
        classID: Int, box: (Double, Double, Double, Double), score: Double, textScore: Double? = nil, phrase: String? = nil
    ) {
        self.classID = classID
        self.box = (box.0, box.1, box.2, box.3)
        self.score = score
        self.textScore = textScore
        self.phrase = phrase
    }

    public static func == (a: Detection, b: Detection) -> Bool {
        a.classID == b.classID && a.score == b.score && a.box == b.box && a.textScore == b.textScore && a.phrase == b.phrase
    }
}

/// Detections per image from a JSON file, e.g. Grounding DINO output converted to one object
/// `{"<image id>": [{"label": "dog", "box": [x0, y0, x1, y1], "score": 0.62}, …], …}`.
/// `label` may also be `class`/`phrase` — a class name or one of Sun et al.'s sub-class phrases
/// (`BoxPhrases`: "saddle" → horse, "plate" → dining table, "tv" → tv monitor; names with spaces
/// match), or their "phrase(0.62)" form, whose number is the score when no score field is given —
/// or `class_id` (an index); `box` may be `bbox` (x0, y0, x1, y1 in pixels); `score` may be
/// `logit`/`confidence`; `text_score` (or `text_logit`), if present, is the phrase's text score.
/// Detections in each list keep the file's order (the detector's, which Sun et al. paint in).
/// A phrase no class claims is skipped, as Sun et al.'s `save_mask_data` skips it, and counted
/// in `skippedPhrases`.
public struct DetectionFile: Sendable {
    public let path: String
    public let detections: [String: [Detection]]
    /// Phrases that named no class, with how often they occurred.
    public let skippedPhrases: [String: Int]

    public init(path: String, classNames: [String], phrases: BoxPhrases? = nil) throws {
        let data = try PseudoLabelError.contents(of: path)
        guard let json = try? JSONSerialization.jsonObject(with: data) else {
            throw PseudoLabelError.malformed(path: path, reason: "not valid JSON")
        }
        guard let object = json as? [String: Any] else {
            throw PseudoLabelError.malformed(path: path, reason: "expected an object mapping image ids to lists of detections")
        }
        let phrases = phrases ?? BoxPhrases(classNames: classNames)
        var result: [String: [Detection]] = [:]
        var skipped: [String: Int] = [:]
        for (id, value) in object {
            guard let list = value as? [Any] else {
                throw PseudoLabelError.malformed(path: path, reason: "\(id): expected a list")
            }
            result[id] = try list.enumerated().compactMap { k, item in
                func bad(_ reason: String) -> PseudoLabelError {
                    .malformed(path: path, reason: "\(id), detection \(k): \(reason)")
                }
                guard let d = item as? [String: Any] else { throw bad("expected an object") }
                let classID: Int
                var labelScore: Double?
                var phrase: String?
                if let n = d["class_id"] as? Int {
                    classID = n
                } else if let label = (d["label"] ?? d["class"] ?? d["phrase"]) as? String {
                    let split = BoxPhrases.splitScoredLabel(label.trimmingCharacters(in: .whitespaces))
                    labelScore = split.score
                    phrase = split.phrase
                    guard let n = phrases.classID(of: split.phrase) else {
                        skipped[split.phrase, default: 0] += 1
                        return nil
                    }
                    classID = n
                } else {
                    throw bad("no \"label\" or \"class_id\"")
                }
                guard classID > 0 && classID < classNames.count else {
                    throw PseudoLabelError.classOutOfRange(path: path, value: classID, classes: classNames.count)
                }
                guard let box = (d["box"] ?? d["bbox"]) as? [NSNumber], box.count == 4 else {
                    throw bad("\"box\" must be [x0, y0, x1, y1]")
                }
                guard let score = ((d["score"] ?? d["logit"] ?? d["confidence"]) as? NSNumber)?.doubleValue ?? labelScore else {
                    throw bad("no \"score\"")
                }
                let textScore = ((d["text_score"] ?? d["text_logit"]) as? NSNumber)?.doubleValue
                let b = box.map(\.doubleValue)
                guard b[2] > b[0] && b[3] > b[1] else { throw bad("empty box \(b)") }
                return Detection(
                    classID: classID, box: (b[0], b[1], b[2], b[3]), score: score, textScore: textScore, phrase: phrase)
            }
        }
        self.path = path
        self.detections = result
        self.skippedPhrases = skipped
    }
}

/// The Grounded-SAM route of Sun et al. (2023): one mask per kept detection box, painted into
/// the label map in the detections' order, later masks over earlier ones (process_pascal.py
/// `save_mask_data`), or, with `order: .score`, in ascending score so the most confident wins.
///
/// Kept: box score > `scoreThreshold` (their `logits.max(dim=1)[0] > box_threshold`, 0.3),
/// text score > `textThreshold` where the detection has one (0.25), class among the image's.
/// With SAM (`BoxPrompter`, `paint`) each kept box prompts SAM. Without it (`merge`), boxes
/// select proposals: the proposal whose tight box has the highest IoU with the detection box
/// (at least `minimumBoxIoU`) stands in for SAM's mask; a box with none is dropped (counted in
/// `unmatched`).
public struct BoxMerge: Sendable {
    /// The order masks are painted in.
    public enum PaintOrder: String, Sendable, CaseIterable, Codable {
        /// The detection file's order, later over earlier: Sun et al.'s.
        case detection
        /// Ascending score (ties in file order): the most confident wins. Ours.
        case score
    }

    public var scoreThreshold: Double = 0.3
    public var textThreshold: Double = 0.25
    public var minimumBoxIoU: Double = 0.5
    public var order = PaintOrder.detection

    public init(
        scoreThreshold: Double = 0.3, textThreshold: Double = 0.25, minimumBoxIoU: Double = 0.5, order: PaintOrder = .detection
    ) {
        (self.scoreThreshold, self.textThreshold, self.minimumBoxIoU, self.order) = (
            scoreThreshold, textThreshold, minimumBoxIoU, order
        )
    }

    /// Whether a detection is kept: strictly above both thresholds (as Grounded-SAM compares),
    /// and of a class the image has.
    public func keeps(_ d: Detection, imageClasses: Set<Int>) -> Bool {
        d.score > scoreThreshold && (d.textScore.map { $0 > textThreshold } ?? true) && imageClasses.contains(d.classID)
    }

    /// Indices of `detections` in painting order.
    func paintingOrder(_ detections: [Detection]) -> [Int] {
        switch order {
        case .detection: Array(detections.indices)
        case .score: detections.indices.sorted { (detections[$0].score, $0) < (detections[$1].score, $1) }
        }
    }

    /// Labels from `detections` (only classes in `imageClasses` are kept) and `proposals`.
    public func merge(
        width: Int, height: Int, detections: [Detection], imageClasses: Set<Int>, proposals: [SegmentMask]
    ) -> (labels: LabelMap, unmatched: Int) {
        let boxes = proposals.map { $0.boundingBox }
        var chosen: [(detection: Detection, mask: Int)] = []
        var unmatched = 0
        for d in detections where keeps(d, imageClasses: imageClasses) {
            var best: (iou: Double, index: Int)?
            for (k, b) in boxes.enumerated() {
                guard let b else { continue }
                let iou = Self.boxIoU(d.box, (Double(b.x0), Double(b.y0), Double(b.x1 + 1), Double(b.y1 + 1)))
                if iou >= minimumBoxIoU && (best == nil || iou > best!.iou) { best = (iou, k) }
            }
            if let best { chosen.append((d, best.index)) } else { unmatched += 1 }
        }
        var column = [UInt8](repeating: 0, count: width * height)
        for k in paintingOrder(chosen.map(\.detection)) {
            for run in proposals[chosen[k].mask].runs { for i in run { column[Int(i)] = UInt8(chosen[k].detection.classID) } }
        }
        return (
            LabelMap(width: width, height: height, values: ColumnMajor.toRowMajor(column, width: width, height: height)),
            unmatched
        )
    }

    static func boxIoU(_ a: (Double, Double, Double, Double), _ b: (Double, Double, Double, Double)) -> Double {
        let iw = max(0, min(a.2, b.2) - max(a.0, b.0)), ih = max(0, min(a.3, b.3) - max(a.1, b.1))
        let inter = iw * ih
        let union = (a.2 - a.0) * (a.3 - a.1) + (b.2 - b.0) * (b.3 - b.1) - inter
        return union > 0 ? inter / union : 0
    }

    /// Boxes from the connected components (8-connected) of each class in a seed label map,
    /// scored by the component's share of the image's seed pixels of that class; components
    /// smaller than `minimumArea` pixels are dropped. Our extension, not Sun et al.'s (who take
    /// every box from Grounding DINO): boxes without a detector.
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
                result.append(
                    Detection(classID: Int(c), box: (Double(x0), Double(y0), Double(x1 + 1), Double(y1 + 1)), score: score))
            }
        }
        return result
    }
}
