import DenseCRF
import Foundation
import HDF5
import Imaging
import XCTest

/// Tests/Fixtures/crf/crf.h5, made by scripts/fixtures/make_crf_fixtures.py (pydensecrf2 1.1,
/// set up as deeplab-pytorch's libs/utils/crf.py).
enum CRFFixtures {
    static let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/crf/crf.h5").path

    struct Case {
        let name: String
        let image: Image
        let probabilities: [Float]
        let classes: Int
        let parameters: DenseCRF.Parameters
        /// Iterations → pydensecrf's Q, [classes, H, W].
        let q: [Int: [Float]]
        let labels: [UInt8]
    }

    static func cases() throws -> [Case] {
        let file = try HDF5File(path: path, mode: .read)
        return try file.children(of: "/").sorted().map { name in
            let (pixels, shape) = try file.readBytes("/\(name)/image")
            let image = Image(width: shape[1], height: shape[0], channels: 3, pixels: pixels)
            let p = try file.read("/\(name)/probabilities")
            let json = try XCTUnwrap(file.attribute(named: "parameters", on: "/\(name)")?.stringValue)
            let parameters = try JSONDecoder().decode(DenseCRF.Parameters.self, from: Data(json.utf8))
            var q: [Int: [Float]] = [:]
            for child in try file.children(of: "/\(name)") where child.hasPrefix("q") {
                q[Int(child.dropFirst())!] = try file.read("/\(name)/\(child)").scalars
            }
            let labels = try file.readBytes("/\(name)/labels").bytes
            return Case(
                name: name, image: image, probabilities: p.scalars, classes: p.shape[0], parameters: parameters, q: q,
                labels: labels)
        }
    }
}

final class DenseCRFParityTests: XCTestCase {
    /// Marginals within 3e-6 of pydensecrf after the same iterations, labels identical — what
    /// README and docs/CRF.md claim. The lattice is pydensecrf's algorithm step for step, so the
    /// gap is float rounding (summation order, expf vs Eigen's exp), amplified by the iterations
    /// (2.2e-6 at most on these fixtures).
    func testMatchesPydensecrf() throws {
        let cases = try CRFFixtures.cases()
        XCTAssertEqual(cases.count, 3)
        for fixture in cases {
            for (iterations, expected) in fixture.q.sorted(by: { $0.key < $1.key }) {
                var parameters = fixture.parameters
                parameters.iterations = iterations
                let (labels, q) = try DenseCRF(parameters: parameters).infer(
                    image: fixture.image, probabilities: fixture.probabilities, classes: fixture.classes)
                XCTAssertEqual(q.count, expected.count)
                var worst: Float = 0
                for i in 0..<q.count { worst = max(worst, abs(q[i] - expected[i])) }
                XCTAssertLessThan(worst, 3e-6, "\(fixture.name) after \(iterations) iterations: max |ΔQ| \(worst)")
                if iterations == fixture.q.keys.max() {
                    let same = zip(labels.values, fixture.labels).filter { $0 == $1 }.count
                    let agreement = Double(same) / Double(labels.values.count)
                    XCTAssertEqual(agreement, 1, "\(fixture.name): labels agree on \(agreement)")
                    print("crf parity \(fixture.name): labels agree on \(same)/\(labels.values.count)")
                }
                print("crf parity \(fixture.name) it=\(iterations): max |ΔQ| = \(worst)")
            }
        }
    }

    /// The batch API gives the single-image results, in order.
    func testBatchMatchesSingleImages() throws {
        let cases = try CRFFixtures.cases()
        let crf = DenseCRF(parameters: .init(iterations: 3))
        let batch = try crf.infer(
            batch: cases.map { .init(image: $0.image, probabilities: $0.probabilities, classes: $0.classes, source: $0.name) })
        for (fixture, result) in zip(cases, batch) {
            let single = try crf.infer(image: fixture.image, probabilities: fixture.probabilities, classes: fixture.classes)
            XCTAssertEqual(result.marginals, single.marginals, fixture.name)
            XCTAssertEqual(result.labels, single.labels, fixture.name)
        }
    }

    /// Parameters decode from deeplab-pytorch's key names; absent keys keep its defaults.
    func testParametersDecodeWithDefaults() throws {
        let p = try JSONDecoder().decode(DenseCRF.Parameters.self, from: Data(#"{"bi_w": 5, "iterations": 3}"#.utf8))
        XCTAssertEqual(p, DenseCRF.Parameters(iterations: 3, biW: 5))
        XCTAssertEqual(
            DenseCRF.Parameters(), DenseCRF.Parameters(iterations: 10, posW: 3, posXYStd: 1, biW: 4, biXYStd: 67, biRGBStd: 3))
    }
}
