import Autograd
import Foundation
import Imaging
import Testing

@testable import PseudoLabels

/// Bad seeds and detection files fail with one message naming the file.
@Suite struct PseudoLabelerTests {
    let names = ["background", "cat", "dog"]

    @Test func seedFoldersAreChecked() throws {
        let dir = temporaryDirectory()
        let labeler = try PseudoLabeler(method: .seeds, seeds: .folder(dir), proposals: nil, classNames: names)
        let image = Image(width: 4, height: 3, channels: 3)
        try LabelMap(width: 5, height: 3).writePNG(to: dir + "/wide.png")
        #expect(throws: PseudoLabelError.sizeMismatch(path: dir + "/wide.png", expected: (4, 3), found: (5, 3))) {
            try labeler.labels(id: "wide", image: image, imageClasses: [1], groundTruth: nil)
        }
        try LabelMap(width: 4, height: 3, filledWith: 7).writePNG(to: dir + "/bad.png")
        #expect(throws: PseudoLabelError.classOutOfRange(path: dir + "/bad.png", value: 7, classes: 3)) {
            try labeler.labels(id: "bad", image: image, imageClasses: [1], groundTruth: nil)
        }
        #expect(throws: PseudoLabelError.missingFile(path: dir + "/none.png")) {
            try labeler.labels(id: "none", image: image, imageClasses: [1], groundTruth: nil)
        }
        try LabelMap(width: 4, height: 3, filledWith: 2).writePNG(to: dir + "/ok.png")
        #expect(
            try labeler.labels(id: "ok", image: image, imageClasses: [2], groundTruth: nil).labels.values.allSatisfy { $0 == 2 })
    }

    @Test func detectionFilesAreReadAndCheckedAndNameTheFile() throws {
        let dir = temporaryDirectory()
        func file(_ text: String) -> String {
            let path = dir + "/\(UUID().uuidString).json"
            try! text.write(toFile: path, atomically: true, encoding: .utf8)
            return path
        }
        let good = file(
            #"{"a": [{"label": "Dog", "box": [1, 2, 10, 12], "score": 0.7}, {"class_id": 1, "bbox": [0, 0, 4, 4], "logit": 0.4}]}"#
        )
        let read = try DetectionFile(path: good, classNames: names)
        #expect(
            read.detections["a"] == [
                Detection(classID: 2, box: (1, 2, 10, 12), score: 0.7, phrase: "Dog"),
                Detection(classID: 1, box: (0, 0, 4, 4), score: 0.4),
            ])
        func message(_ path: String) -> String {
            do {
                _ = try DetectionFile(path: path, classNames: names)
                return "no error"
            } catch { return error.localizedDescription }
        }
        let malformed = file("{\"a\": [")
        #expect(message(malformed) == "\(malformed): not valid JSON")
        // A phrase no class claims is skipped and counted, as Sun et al.'s save_mask_data skips it.
        let unknown = file(
            #"{"a": [{"label": "horse", "box": [0, 0, 1, 1], "score": 1}, {"label": "cat", "box": [0, 0, 1, 1], "score": 1}]}"#)
        let skipping = try DetectionFile(path: unknown, classNames: names)
        #expect(skipping.skippedPhrases == ["horse": 1] && skipping.detections["a"]?.map(\.classID) == [1])
        let outOfRange = file(#"{"a": [{"class_id": 9, "box": [0, 0, 1, 1], "score": 1}]}"#)
        #expect(message(outOfRange) == "\(outOfRange): class id 9 is out of range (0-2 or 255)")
        let emptyBox = file(#"{"a": [{"label": "cat", "box": [5, 0, 5, 1], "score": 1}]}"#)
        #expect(message(emptyBox).hasPrefix("\(emptyBox): a, detection 0: empty box"))
        #expect(message(dir + "/missing.json") == "\(dir)/missing.json: no such file or folder")
    }
}

/// A prompter that returns each box's own rectangle (what SAM would give for a box on a flat
/// object) and records what it was asked.
final class RectanglePrompter: BoxPrompter, @unchecked Sendable {
    var name: String { "rectangles" }
    var asked: [[(x0: Double, y0: Double, x1: Double, y1: Double)]] = []
    func masks(for boxes: [(x0: Double, y0: Double, x1: Double, y1: Double)], id: String, image: Image) throws -> [SegmentMask] {
        asked.append(boxes)
        return boxes.map { b in
            SegmentMask(
                width: image.width, height: image.height,
                bitmap: (0..<(image.width * image.height)).map { i in
                    let (x, y) = (Double(i % image.width), Double(i / image.width))
                    return x >= b.x0 && x < b.x1 && y >= b.y0 && y < b.y1
                })
        }
    }
}

@Suite struct BoxPromptTests {
    @Test(arguments: [BoxMerge.PaintOrder.score, .detection])
    func promptedMasksArePaintedInOrderForTheKeptBoxesOnly(order: BoxMerge.PaintOrder) throws {
        let dir = temporaryDirectory()
        let path = dir + "/det.json"
        // dog (0.9) overlaps cat (0.5); a person box (class not in the image) and a weak box are dropped.
        try #"{"a": [{"label": "dog", "box": [2, 0, 6, 3], "score": 0.9}, {"label": "cat", "box": [0, 0, 4, 3], "score": 0.5},"#
            .appending(
                #" {"label": "person", "box": [0, 0, 8, 3], "score": 0.99}, {"label": "cat", "box": [6, 0, 8, 3], "score": 0.1}]}"#
            )
            .write(toFile: path, atomically: true, encoding: .utf8)
        let prompter = RectanglePrompter()
        let labeler = try PseudoLabeler(
            method: .boxes(BoxMerge(scoreThreshold: 0.3, order: order), detections: path), seeds: nil, proposals: nil,
            boxPrompter: prompter,
            classNames: ["background", "cat", "dog", "person"])
        let result = try labeler.labels(
            id: "a", image: Image(width: 8, height: 3, channels: 3), imageClasses: [1, 2], groundTruth: nil)
        #expect(prompter.asked.count == 1 && prompter.asked[0].map(\.x0) == [2, 0], "only the kept boxes, in file order")
        if order == .score {
            #expect(Array(result.labels.values[0..<8]) == [1, 1, 2, 2, 2, 2, 0, 0], "the dog (more confident) wins the overlap")
        } else {
            #expect(
                Array(result.labels.values[0..<8]) == [1, 1, 1, 1, 2, 2, 0, 0],
                "the cat (later in the file) is painted over the dog")
        }
        #expect(result.proposals.count == 2)
    }

    /// COCO's 81 classes: a detector phrase with a space names the classes.txt name with "_".
    @Test func phrasesMatchCOCOClassNamesPastTwentyOne() throws {
        let path = temporaryDirectory() + "/det.json"
        try
            #"{"a": [{"phrase": "Traffic Light", "box": [0, 0, 2, 2], "score": 0.9}, {"label": "toothbrush", "box": [0, 0, 1, 1], "score": 0.8}]}"#
            .write(toFile: path, atomically: true, encoding: .utf8)
        let names = ["background"] + (1...78).map { "c\($0)" } + ["traffic_light", "toothbrush"]
        let file = try DetectionFile(path: path, classNames: names)
        #expect(file.detections["a"]?.map(\.classID) == [79, 80])
    }

    @Test func boxesAreClippedToTheImageAndBoxesOutsideItCounted() throws {
        let path = temporaryDirectory() + "/det.json"
        try
            #"{"a": [{"label": "cat", "box": [-3, -2, 3, 9], "score": 0.9}, {"label": "dog", "box": [20, 0, 30, 3], "score": 0.8}]}"#
            .write(toFile: path, atomically: true, encoding: .utf8)
        let prompter = RectanglePrompter()
        let labeler = try PseudoLabeler(
            method: .boxes(BoxMerge(), detections: path), seeds: nil, proposals: nil, boxPrompter: prompter,
            classNames: ["background", "cat", "dog"])
        let result = try labeler.labels(
            id: "a", image: Image(width: 8, height: 3, channels: 3), imageClasses: [1, 2], groundTruth: nil)
        #expect(result.clippedBoxes == 1 && result.outsideBoxes == 1)
        #expect(prompter.asked[0].count == 1 && prompter.asked[0][0] == (0, 0, 3, 3))
        #expect(Array(result.labels.values[0..<8]) == [1, 1, 1, 0, 0, 0, 0, 0])
    }

    @Test func boxesNeedProposalsOrAPrompter() {
        #expect(throws: PseudoLabelError.self) {
            try PseudoLabeler(
                method: .boxes(BoxMerge(), detections: nil), seeds: .folder("/tmp"), proposals: nil,
                classNames: ["background", "cat"])
        }
    }
}

@Suite struct CAMFileCheckTests {
    func file(classes: [Int], value: Float) throws -> String {
        let path = temporaryDirectory() + "/cams.h5"
        try CAMFile.write(ids: ["a"], classNames: ["background", "cat", "dog"], scales: [1], to: path) { _ in
            ImageCAMs(classes: classes, maps: Tensor(repeating: value, shape: [classes.count, 2, 3]))
        }
        return path
    }

    @Test func outOfRangeClassesAndNonFiniteValuesAreErrors() throws {
        let good = try CAMFile(readingFrom: try file(classes: [2], value: 0.5))
        #expect(try good.cams(for: "a", width: 3, height: 2).classes == [2])
        let wrongClass = try file(classes: [99], value: 0.5)
        #expect(throws: PseudoLabelError.classOutOfRange(path: "\(wrongClass) (a)", value: 99, classes: 3)) {
            try CAMFile(readingFrom: wrongClass).cams(for: "a", width: 3, height: 2)
        }
        for bad: Float in [.nan, .infinity, -0.5, 7] {
            let path = try file(classes: [1], value: bad)
            #expect { try CAMFile(readingFrom: path).cams(for: "a", width: 3, height: 2) } throws: { error in
                "\(error.localizedDescription)".contains("outside [0, 1]") && error.localizedDescription.contains(path)
            }
        }
    }
}
