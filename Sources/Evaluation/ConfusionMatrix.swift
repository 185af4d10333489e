import Foundation

/// Pixel counts by (ground-truth class, predicted class), accumulated over a dataset; the basis
/// of every segmentation score here.
///
/// Pixels whose ground truth is 255 (ignore) are not counted. A prediction of 255 (a
/// pseudo-label's "unsure") at a labelled pixel counts as a miss for the true class: it adds to
/// that class's ground-truth total but to no predicted class, so leaving pixels unlabelled
/// never raises IoU.
public struct ConfusionMatrix: Equatable, Sendable {
    /// The ignore value in label maps.
    public static let ignore: UInt8 = 255

    /// Number of classes, background included (21 for VOC).
    public let classCount: Int
    /// counts[truth * classCount + prediction].
    public private(set) var counts: [Int]
    /// Per true class: labelled pixels predicted as 255.
    public private(set) var unlabeled: [Int]

    public init(classCount: Int) {
        precondition(classCount > 0 && classCount < 255, "ConfusionMatrix: \(classCount) classes (1…254 supported)")
        self.classCount = classCount
        counts = Array(repeating: 0, count: classCount * classCount)
        unlabeled = Array(repeating: 0, count: classCount)
    }

    /// A matrix from its counts (e.g. summed over the ranks of a data-parallel evaluation).
    public init(classCount: Int, counts: [Int], unlabeled: [Int]) {
        precondition(
            counts.count == classCount * classCount && unlabeled.count == classCount,
            "ConfusionMatrix: \(counts.count) counts and \(unlabeled.count) unlabeled for \(classCount) classes")
        self.init(classCount: classCount)
        (self.counts, self.unlabeled) = (counts, unlabeled)
    }

    /// What is wrong with a pair of label maps, if anything.
    public enum Mismatch: Error, Equatable {
        case size(prediction: Int, groundTruth: Int)
        case classOutOfRange(value: UInt8, inPrediction: Bool)
    }

    /// Adds one image's prediction and ground truth (same size, values < classCount or 255).
    public mutating func add(prediction: [UInt8], groundTruth: [UInt8]) throws(Mismatch) {
        guard prediction.count == groundTruth.count else {
            throw .size(prediction: prediction.count, groundTruth: groundTruth.count)
        }
        let n = classCount
        try prediction.withUnsafeBufferPointer { (p) throws(Mismatch) in
            try groundTruth.withUnsafeBufferPointer { (g) throws(Mismatch) in
                for i in 0..<p.count {
                    let t = Int(g[i])
                    if g[i] == ConfusionMatrix.ignore { continue }
                    guard t < n else { throw .classOutOfRange(value: g[i], inPrediction: false) }
                    if p[i] == ConfusionMatrix.ignore {
                        unlabeled[t] += 1
                        continue
                    }
                    guard Int(p[i]) < n else { throw .classOutOfRange(value: p[i], inPrediction: true) }
                    counts[t * n + Int(p[i])] += 1
                }
            }
        }
    }

    /// Adds the counts of another matrix (e.g. from another thread).
    public mutating func merge(_ other: ConfusionMatrix) {
        precondition(other.classCount == classCount, "ConfusionMatrix.merge: \(other.classCount) vs \(classCount) classes")
        for i in counts.indices { counts[i] += other.counts[i] }
        for i in unlabeled.indices { unlabeled[i] += other.unlabeled[i] }
    }

    public func count(truth: Int, prediction: Int) -> Int { counts[truth * classCount + prediction] }

    /// Labelled pixels of class c (predicted anything, 255 included).
    public func truthTotal(_ c: Int) -> Int { (0..<classCount).reduce(unlabeled[c]) { $0 + count(truth: c, prediction: $1) } }
    /// Pixels predicted as class c.
    public func predictionTotal(_ c: Int) -> Int { (0..<classCount).reduce(0) { $0 + count(truth: $1, prediction: c) } }

    /// IoU per class: TP / (truth + predicted - TP); nil where a class is absent from both sides
    /// (numpy's NaN in the common `scores()`).
    public var intersectionOverUnion: [Double?] {
        (0..<classCount).map { c in
            let tp = count(truth: c, prediction: c)
            let union = truthTotal(c) + predictionTotal(c) - tp
            return union == 0 ? nil : Double(tp) / Double(union)
        }
    }

    /// Mean IoU over the classes present on either side (numpy nanmean).
    public var meanIoU: Double {
        let present = intersectionOverUnion.compactMap { $0 }
        return present.isEmpty ? 0 : present.reduce(0, +) / Double(present.count)
    }

    /// Correct pixels over labelled pixels.
    public var pixelAccuracy: Double {
        let total = counts.reduce(0, +) + unlabeled.reduce(0, +)
        let correct = (0..<classCount).reduce(0) { $0 + count(truth: $1, prediction: $1) }
        return total == 0 ? 0 : Double(correct) / Double(total)
    }

    /// All scores at once, in percent.
    public func report(classNames: [String]) -> SegmentationReport {
        precondition(classNames.count == classCount, "report: \(classNames.count) names for \(classCount) classes")
        return SegmentationReport(
            meanIoU: meanIoU * 100, pixelAccuracy: pixelAccuracy * 100,
            perClass: zip(classNames, intersectionOverUnion).map {
                SegmentationReport.ClassScore(name: $0, iou: $1.map { $0 * 100 })
            })
    }
}

/// Segmentation scores in percent, as tables print them.
public struct SegmentationReport: Equatable, Sendable, Encodable {
    public struct ClassScore: Equatable, Sendable, Encodable {
        public var name: String
        /// nil for a class absent from both prediction and ground truth.
        public var iou: Double?
        public init(name: String, iou: Double?) { (self.name, self.iou) = (name, iou) }
    }

    public var meanIoU: Double
    public var pixelAccuracy: Double
    public var perClass: [ClassScore]

    /// Scores in percent (as `ConfusionMatrix.report(classNames:)` makes them).
    public init(meanIoU: Double, pixelAccuracy: Double, perClass: [ClassScore]) {
        (self.meanIoU, self.pixelAccuracy, self.perClass) = (meanIoU, pixelAccuracy, perClass)
    }

    /// A per-class IoU table with mIoU and pixel accuracy, for terminals and logs. Past 24
    /// classes (COCO's 81) the classes run down three columns side by side, in class order, so
    /// the table stays a screen high.
    public func table(title: String? = nil) -> String {
        let width = max(12, perClass.map(\.name.count).max() ?? 0)
        let columns = perClass.count > 24 ? 3 : 1
        let rows = (perClass.count + columns - 1) / columns
        func cell(_ score: ClassScore) -> String {
            let value = score.iou.map { String(format: "%7.2f", $0) } ?? "      –"
            return score.name.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + value
        }
        let gap = "    "
        var lines: [String] = []
        if let title { lines.append(title) }
        let header = "class".padding(toLength: width, withPad: " ", startingAt: 0) + "   IoU (%)"
        lines.append(Array(repeating: header, count: min(columns, max(1, perClass.count))).joined(separator: gap))
        let rule = String(repeating: "-", count: columns * (width + 9) + (columns - 1) * gap.count + (columns == 1 ? 1 : 0))
        lines.append(rule)
        for row in 0..<rows {
            let cells = (0..<columns).compactMap { column -> String? in
                let k = column * rows + row
                return k < perClass.count ? cell(perClass[k]) : nil
            }
            lines.append(cells.joined(separator: gap))
        }
        lines.append(rule)
        lines.append("mIoU".padding(toLength: width, withPad: " ", startingAt: 0) + "  " + String(format: "%7.2f", meanIoU))
        lines.append(
            "pixel acc.".padding(toLength: width, withPad: " ", startingAt: 0) + "  " + String(format: "%7.2f", pixelAccuracy))
        return lines.joined(separator: "\n")
    }

    /// The JSON object `wsss score --json` prints: miou, pixel_accuracy, per_class (name → IoU or
    /// null), classes (the names in class order), images.
    public func jsonObject(images: Int) -> [String: Any] {
        var perClassObject: [String: Any] = [:]
        for score in perClass { perClassObject[score.name] = score.iou ?? NSNull() }
        return [
            "miou": meanIoU, "pixel_accuracy": pixelAccuracy, "per_class": perClassObject, "classes": perClass.map(\.name),
            "images": images,
        ]
    }

    /// `jsonObject` as JSON text with `per_class` in class order (background first, as the
    /// tables), not alphabetical: what `--json` prints and score.json / eval_<split>.json hold.
    public func jsonText(images: Int) -> String {
        func string(_ s: String) -> String {
            String(decoding: (try? JSONEncoder().encode(s)) ?? Data("\"\"".utf8), as: UTF8.self)
                .replacingOccurrences(of: "\\/", with: "/")
        }
        func number(_ x: Double?) -> String { x.map { $0.isFinite ? "\($0)" : "null" } ?? "null" }
        let perClassText = perClass.map { "\(string($0.name)):\(number($0.iou))" }.joined(separator: ",")
        let classesText = perClass.map { string($0.name) }.joined(separator: ",")
        return "{\"classes\":[\(classesText)],\"images\":\(images),\"miou\":\(number(meanIoU)),"
            + "\"per_class\":{\(perClassText)},\"pixel_accuracy\":\(number(pixelAccuracy))}"
    }
}
