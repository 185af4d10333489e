import Foundation
import HDF5
import Imaging
import Testing

@testable import PseudoLabels

/// Sun et al.'s box route (weixuansun/wsss_sam, process_pascal.py): phrases mapped back to
/// classes, box and text thresholds, masks painted in detection order — against the label maps
/// of scripts/fixtures/make_box_phrase_fixtures.py, which follows that file step for step.
@Suite struct BoxPhraseTests {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/boxes").path
    static let voc = [
        "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
        "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
    ]

    /// SAM stand-in: the fixture's mask of each box (matched by the box's coordinates).
    final class FixturePrompter: BoxPrompter, @unchecked Sendable {
        var name: String { "fixture" }
        let masks: [String: SegmentMask]
        var asked = 0
        static func key(_ values: [Double]) -> String { values.map { "\($0)" }.joined(separator: ",") }
        init(boxes: [[Double]], masks: [SegmentMask]) {
            var byBox: [String: SegmentMask] = [:]
            for (box, mask) in zip(boxes, masks) where byBox[Self.key(box)] == nil { byBox[Self.key(box)] = mask }
            self.masks = byBox
        }
        func masks(for boxes: [(x0: Double, y0: Double, x1: Double, y1: Double)], id: String, image: Image) throws
            -> [SegmentMask]
        {
            asked += boxes.count
            return try boxes.map { b in try #require(masks[Self.key([b.x0, b.y0, b.x1, b.y1])]) }
        }
    }

    @Test(arguments: [BoxMerge.PaintOrder.detection, .score])
    func labelMapsMatchTheirProcedure(order: BoxMerge.PaintOrder) throws {
        let path = Self.folder + "/sun_detections.json"
        let f = try HDF5File(path: Self.folder + "/sun_phrases.h5", mode: .read)
        let json = try #require(
            JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: [[String: Any]]])
        for (id, entries) in json {
            let (bytes, shape) = try f.readBytes("/\(id)/masks")
            let (k, h, w) = (shape[0], shape[1], shape[2])
            let masks = (0..<k).map { m in
                SegmentMask(width: w, height: h, bitmap: (0..<(h * w)).map { bytes[m * h * w + $0] == 1 })
            }
            let prompter = FixturePrompter(boxes: entries.map { ($0["box"] as! [NSNumber]).map(\.doubleValue) }, masks: masks)
            let labeler = try PseudoLabeler(
                method: .boxes(BoxMerge(order: order), detections: path), seeds: nil, proposals: nil, boxPrompter: prompter,
                classNames: Self.voc)
            let classes = Set(
                try #require(f.requiredAttribute(named: "classes", on: "/\(id)").stringValue).split(separator: ",").map {
                    Int($0)!
                })
            let result = try labeler.labels(
                id: id, image: Image(width: w, height: h, channels: 3), imageClasses: classes, groundTruth: nil)
            let expected = try f.readBytes("/\(id)/\(order.rawValue)").bytes
            #expect(
                result.labels.values == expected,
                "\(id), \(order) order: \(zip(result.labels.values, expected).filter { $0 != $1 }.count) pixels differ")
        }
    }

    @Test func phrasesMapBackToTheirClasses() throws {
        let phrases = BoxPhrases(classNames: Self.voc)
        #expect(phrases.classID(of: "saddle") == 13 && phrases.classID(of: "halter") == 13)
        #expect(
            ["bowl", "plate", "food", "fruit", "glass", "dishes", "diningtable"].allSatisfy { phrases.classID(of: $0) == 11 })
        #expect(phrases.classID(of: "tv") == 20 && phrases.classID(of: "monitor") == 20)
        // Names with spaces (or any case) match the joined VOC names.
        #expect(
            phrases.classID(of: "dining table") == 11 && phrases.classID(of: "TV Monitor") == 20
                && phrases.classID(of: "potted plant") == 16)
        #expect(phrases.classID(of: "sky") == nil && phrases.classID(of: "background") == nil)
        // Sub-class prompts only for classes the list has.
        #expect(BoxPhrases(classNames: ["background", "cat"]).classID(of: "saddle") == nil)
        #expect(BoxPhrases.splitScoredLabel("saddle(0.41)") == ("saddle", 0.41))
        #expect(BoxPhrases.splitScoredLabel("horse") == ("horse", nil))
        let file = try DetectionFile(path: Self.folder + "/sun_detections.json", classNames: Self.voc)
        #expect(file.skippedPhrases == ["sky": 1])
        #expect(file.detections["horse"]?.map(\.classID) == [13, 13, 15, 13, 13])
        #expect(file.detections["horse"]?[1].score == 0.41, "the score read from 'saddle(0.41)'")
    }

    @Test func thresholdsAreStrictAsGroundedSAMs() {
        let merge = BoxMerge()
        func d(_ score: Double, text: Double? = nil) -> Detection {
            Detection(classID: 1, box: (0, 0, 1, 1), score: score, textScore: text)
        }
        #expect(!merge.keeps(d(0.3), imageClasses: [1]) && merge.keeps(d(0.31), imageClasses: [1]))
        #expect(!merge.keeps(d(0.9, text: 0.25), imageClasses: [1]) && merge.keeps(d(0.9, text: 0.26), imageClasses: [1]))
        #expect(!merge.keeps(d(0.9), imageClasses: [2]))
    }
}
