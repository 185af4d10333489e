import DenseCRF
import Foundation
import Imaging
import XCTest

/// Bad inputs are one clear error each; `refine` keeps ignore pixels.
final class DenseCRFErrorTests: XCTestCase {
    let crf = DenseCRF(parameters: .init(iterations: 2))
    let image = Image(width: 4, height: 3, channels: 3, filledWith: 100)
    var uniform: [Float] { [Float](repeating: 0.5, count: 2 * 12) }

    func expect(
        _ expected: DenseCRFError, mentions words: [String], file: StaticString = #filePath, line: UInt = #line,
        _ body: () throws -> Void
    ) {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            XCTAssertEqual(error as? DenseCRFError, expected, file: file, line: line)
            let message = error.localizedDescription
            for word in words { XCTAssertTrue(message.contains(word), "\(message) lacks \(word)", file: file, line: line) }
        }
    }

    func testSizeMismatch() {
        expect(
            .sizeMismatch(source: "a.h5:/x", imageWidth: 4, imageHeight: 3, scoresWidth: 5, scoresHeight: 3),
            mentions: ["a.h5:/x", "5x3", "4x3"]
        ) {
            _ = try crf.infer(
                image: image, probabilities: [Float](repeating: 0.5, count: 30), shape: [2, 3, 5], source: "a.h5:/x")
        }
        expect(
            .pixelCountMismatch(source: "image", scoresPixels: 10, imageWidth: 4, imageHeight: 3), mentions: ["10 pixels", "4x3"]
        ) {
            _ = try crf.infer(image: image, probabilities: [Float](repeating: 0.5, count: 20), classes: 2)
        }
    }

    func testClassCountThatDoesNotDivide() {
        expect(.classCountMismatch(source: "image", count: 25, classes: 2, pixels: 12), mentions: ["25", "2 classes"]) {
            _ = try crf.infer(image: image, probabilities: [Float](repeating: 0.5, count: 25), classes: 2)
        }
        expect(.badClassCount(source: "image", classes: 1), mentions: ["1 classes"]) {
            _ = try crf.infer(image: image, probabilities: [Float](repeating: 1, count: 12), classes: 1)
        }
    }

    func testValuesThatAreNotProbabilities() {
        var p = uniform
        p[5] = -0.1
        expect(
            .notAProbability(source: "image", value: -0.1, classIndex: 0, x: 1, y: 1), mentions: ["-0.1", "x=1 y=1", "logits"]
        ) {
            _ = try crf.infer(image: image, probabilities: p, classes: 2)
        }
        p = uniform
        p[12 + 3] = 1.5
        expect(.notAProbability(source: "image", value: 1.5, classIndex: 1, x: 3, y: 0), mentions: ["1.5", "class 1"]) {
            _ = try crf.infer(image: image, probabilities: p, classes: 2)
        }
        p = uniform
        p[7] = .nan
        XCTAssertThrowsError(try crf.infer(image: image, probabilities: p, classes: 2)) { error in
            guard case .notAProbability(_, let v, 0, 3, 1)? = error as? DenseCRFError else { return XCTFail("\(error)") }
            XCTAssertTrue(v.isNaN)
            XCTAssertTrue(error.localizedDescription.contains("nan"), error.localizedDescription)
        }
        p = uniform
        p[2] = 0.8
        expect(
            .probabilitiesDoNotSumToOne(source: "image", sum: Float(0.8) + Float(0.5), x: 2, y: 0), mentions: ["x=2 y=0", "sum"]
        ) {
            _ = try crf.infer(image: image, probabilities: p, classes: 2)
        }
        // Rounding within the tolerances passes.
        p = uniform
        p[2] = 0.5005
        XCTAssertNoThrow(try crf.infer(image: image, probabilities: p, classes: 2))
    }

    func testBadParameters() {
        for (parameters, name) in [
            (DenseCRF.Parameters(iterations: -1), "iterations"), (.init(posW: -1), "pos_w"), (.init(biRGBStd: 0), "bi_rgb_std"),
            (.init(biXYStd: .nan), "bi_xy_std"), (.init(posXYStd: 1e-9), "pos_xy_std"),
        ] {
            XCTAssertThrowsError(try DenseCRF(parameters: parameters).infer(image: image, probabilities: uniform, classes: 2)) {
                error in
                guard case .badParameter(name, _)? = error as? DenseCRFError else { return XCTFail("\(name): \(error)") }
                XCTAssertTrue(error.localizedDescription.contains(name))
            }
        }
    }

    func testNotRGB() {
        let grey = Image(width: 4, height: 3, channels: 1, filledWith: 9)
        expect(.notRGB(source: "image", channels: 1), mentions: ["1 channels"]) {
            _ = try crf.infer(image: grey, probabilities: uniform, classes: 2)
        }
    }

    /// refine: ignore stays 255, a confident region of one colour takes the majority label, the
    /// confidence must lie in (1/classes, 1), labels must be classes or 255.
    func testRefineKeepsIgnoreAndSmoothsLabels() throws {
        let (w, h) = (10, 6)
        var pixels = [UInt8](repeating: 0, count: w * h * 3)
        var values = [UInt8](repeating: 0, count: w * h)
        for y in 0..<h {
            for x in 0..<w {
                let right = x >= w / 2
                for k in 0..<3 { pixels[3 * (y * w + x) + k] = right ? 220 : 20 }
                values[y * w + x] = right ? 1 : 0
            }
        }
        values[2 * w + 7] = 0  // a stray label inside the right region
        values[0] = LabelMap.ignore
        let image = Image(width: w, height: h, channels: 3, pixels: pixels)
        let out = try DenseCRF().refine(labels: LabelMap(width: w, height: h, values: values), image: image, classes: 2)
        XCTAssertEqual(out.values[0], LabelMap.ignore)
        XCTAssertEqual(out.values[2 * w + 7], 1, "the stray label is smoothed away")
        XCTAssertEqual(out.values[1], 0)
        XCTAssertEqual(out.values[w - 1], 1)

        XCTAssertThrowsError(
            try DenseCRF().refine(
                labels: LabelMap(width: w, height: h, values: values), image: image, classes: 2,
                confidence: 0.4)
        ) { XCTAssertEqual($0 as? DenseCRFError, .badConfidence(0.4)) }
        values[3] = 7
        XCTAssertThrowsError(
            try DenseCRF().refine(labels: LabelMap(width: w, height: h, values: values), image: image, classes: 2)
        ) {
            XCTAssertEqual($0 as? DenseCRFError, .labelOutOfRange(source: "image", label: 7, classes: 2))
        }
    }
}
