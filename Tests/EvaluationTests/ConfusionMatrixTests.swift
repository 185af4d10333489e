import Foundation
import HDF5
import Testing

@testable import Evaluation

/// Reference: the `scores()` of DeepLab/WSSS PyTorch repos, in scripts/make_image_fixtures.py.
@Suite struct ConfusionMatrixTests {
    static let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/images/images.h5").path

    @Test func matchesTheReferenceScores() throws {
        let file = try HDF5File(path: Self.fixture, mode: .read)
        let classes = try #require(file.requiredAttribute(named: "classes", on: "/scores").intValue)
        let gt = try file.readLabels("/scores/gt"), pred = try file.readLabels("/scores/pred")
        let perImage = gt.shape[1] * gt.shape[2]
        var matrix = ConfusionMatrix(classCount: classes)
        for k in 0..<gt.shape[0] {
            let range = (k * perImage)..<((k + 1) * perImage)
            try matrix.add(prediction: pred.values[range].map { UInt8($0) }, groundTruth: gt.values[range].map { UInt8($0) })
        }
        let confusion = try file.read("/scores/confusion")
        #expect(matrix.counts == confusion.scalars.map { Int($0) })
        let reference = try file.read("/scores/iou").scalars
        for (ours, theirs) in zip(matrix.intersectionOverUnion, reference) {
            if theirs.isNaN { #expect(ours == nil) } else { #expect(abs(ours! - Double(theirs)) < 1e-6) }
        }
        // Class 3 is predicted but never true: IoU 0, counted. Class 4 is absent: excluded.
        #expect(matrix.intersectionOverUnion[3] == 0)
        #expect(matrix.intersectionOverUnion[4] == nil)
        #expect(abs(matrix.meanIoU - (try #require(file.requiredAttribute(named: "miou", on: "/scores").doubleValue))) < 1e-9)
        #expect(
            abs(matrix.pixelAccuracy - (try #require(file.requiredAttribute(named: "pixel_accuracy", on: "/scores").doubleValue)))
                < 1e-9)
    }

    @Test func ignoredTruthIsSkippedAndUnlabeledPredictionsAreMisses() throws {
        var matrix = ConfusionMatrix(classCount: 2)
        try matrix.add(prediction: [0, 1, 255, 1], groundTruth: [0, 1, 1, 255])
        #expect(matrix.counts == [1, 0, 0, 1])
        #expect(matrix.intersectionOverUnion == [1.0, 0.5])
        #expect(matrix.pixelAccuracy == 2.0 / 3.0)
    }

    @Test func badPairsAreReported() {
        var matrix = ConfusionMatrix(classCount: 3)
        #expect(throws: ConfusionMatrix.Mismatch.size(prediction: 2, groundTruth: 3)) {
            try matrix.add(prediction: [0, 1], groundTruth: [0, 1, 2])
        }
        #expect(throws: ConfusionMatrix.Mismatch.classOutOfRange(value: 7, inPrediction: true)) {
            try matrix.add(prediction: [7], groundTruth: [0])
        }
        #expect(throws: ConfusionMatrix.Mismatch.classOutOfRange(value: 5, inPrediction: false)) {
            try matrix.add(prediction: [0], groundTruth: [5])
        }
    }

    @Test func mergingEqualsAddingTogether() throws {
        var a = ConfusionMatrix(classCount: 3), b = ConfusionMatrix(classCount: 3), both = ConfusionMatrix(classCount: 3)
        try a.add(prediction: [0, 1, 2], groundTruth: [0, 2, 2])
        try b.add(prediction: [1, 1], groundTruth: [1, 0])
        try both.add(prediction: [0, 1, 2], groundTruth: [0, 2, 2])
        try both.add(prediction: [1, 1], groundTruth: [1, 0])
        a.merge(b)
        #expect(a == both)
    }

    @Test func tablePrintsEveryClassAndAbsentOnesAsDash() throws {
        var matrix = ConfusionMatrix(classCount: 3)
        try matrix.add(prediction: [0, 1, 1], groundTruth: [0, 1, 0])
        let table = matrix.report(classNames: ["background", "cat", "dog"]).table(title: "val")
        #expect(table.contains("background"))
        #expect(table.contains("  50.00"))
        #expect(table.contains("dog") && table.contains("–"))
        #expect(table.contains("mIoU"))
    }

    /// COCO's 81 classes run down three columns (27 rows), in class order; VOC's 21 stay one.
    @Test func tablesPastTwentyFourClassesUseThreeColumns() throws {
        let names = ["background"] + (1...80).map { "class_\($0)" }
        var matrix = ConfusionMatrix(classCount: 81)
        try matrix.add(prediction: (0..<81).map(UInt8.init), groundTruth: (0..<81).map(UInt8.init))
        let lines = matrix.report(classNames: names).table().split(separator: "\n").map(String.init)
        #expect(lines.count == 2 + 27 + 3)
        #expect(lines[2].hasPrefix("background") && lines[2].contains("class_27 ") && lines[2].contains("class_54 "))
        #expect(lines[28].hasPrefix("class_26 ") && lines[28].contains("class_53 ") && lines[28].contains("class_80 "))
        var voc = ConfusionMatrix(classCount: 21)
        try voc.add(prediction: [0], groundTruth: [0])
        #expect(voc.report(classNames: (0..<21).map { "c\($0)" }).table().split(separator: "\n").count == 2 + 21 + 3)
    }
}

/// `--json`, score.json and eval_<split>.json list the classes in class order (background
/// first, as the tables), and hold what `jsonObject` holds.
@Suite struct SegmentationReportJSONTests {
    @Test func perClassKeysKeepTheClassOrder() throws {
        var matrix = ConfusionMatrix(classCount: 4)
        try matrix.add(prediction: [0, 1, 2, 3, 3, 0], groundTruth: [0, 1, 2, 3, 2, 1])
        let names = ["background", "zebra", "apple/pear", "dog \"x\""]
        let report = matrix.report(classNames: names)
        let text = report.jsonText(images: 6)
        let positions = names.map { name in
            text.range(
                of: String(decoding: try! JSONEncoder().encode(name), as: UTF8.self)
                    .replacingOccurrences(of: "\\/", with: "/") + ":")!.lowerBound
        }
        #expect(positions == positions.sorted(), "per_class keys out of class order in \(text)")
        let parsed = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? NSDictionary)
        #expect(parsed == report.jsonObject(images: 6) as NSDictionary)
    }
}
