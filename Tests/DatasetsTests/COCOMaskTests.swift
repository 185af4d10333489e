import Foundation
import Imaging
import Testing

@testable import Datasets

/// Tests/Fixtures/COCO, made by scripts/fixtures/make_coco_fixtures.py with pycocotools.
enum COCOFixtures {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/COCO").path

    static func json(_ name: String) throws -> Any {
        try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(folder)/\(name)")))
    }

    /// A compressed counts string → row-major 0/1 bitmap.
    static func bitmap(_ counts: String, height: Int, width: Int) throws -> [UInt8] {
        let runs = try Array(counts.utf8).withUnsafeBytes { try COCOMask.decodeCounts($0) }
        return COCORunLengths(height: height, width: width, counts: runs).decoded()
    }
}

@Suite struct COCOMaskTests {
    /// 200 seeded random polygons (1–2 parts, 3–11 vertices, inside and past the image, repeated
    /// vertices): our rleFrPoly + union must give pycocotools' frPyObjects + merge, bit for bit.
    @Test func randomPolygonsMatchPycocotools() throws {
        let cases = try #require(try COCOFixtures.json("polygons.json") as? [[String: Any]])
        #expect(cases.count == 200)
        for (k, c) in cases.enumerated() {
            let (h, w) = (c["height"] as! Int, c["width"] as! Int)
            let parts = (c["polygons"] as! [[Any]]).map { $0.map { ($0 as! NSNumber).doubleValue } }
            var ours = [UInt8](repeating: 0, count: h * w)
            ours.withUnsafeMutableBufferPointer { buffer in
                for part in parts {
                    COCOMask.polygon(part, height: h, width: w).paint(into: buffer.baseAddress!, value: 1, onlyOver: nil)
                }
            }
            let theirs = try COCOFixtures.bitmap(c["counts"] as! String, height: h, width: w)
            #expect(ours == theirs, "polygon case \(k) (\(h)x\(w))")
            // The encoder gives pycocotools' string for the same mask.
            #expect(
                COCOMask.encodeCounts(COCOMask.encode(ours, height: h, width: w).counts) == c["counts"] as! String, "case \(k)")
        }
    }

    @Test func compressedCountsRoundTrip() throws {
        let runs: [UInt32] = [0, 5, 300_000, 2, 17, 1, 0, 65_000, 3]
        let text = COCOMask.encodeCounts(runs)
        #expect(try Array(text.utf8).withUnsafeBytes { try COCOMask.decodeCounts($0) } == runs)
    }

    @Test func badCompressedCountsAreRefused() {
        // "~" is past 'o' (111); "0" alone is fine, "P" (0x20 set) promises more.
        #expect(throws: COCOMask.StringError.badCharacter(offset: 1)) {
            try Array("1~".utf8).withUnsafeBytes { try COCOMask.decodeCounts($0) }
        }
        #expect(throws: COCOMask.StringError.truncated) { try Array("1P".utf8).withUnsafeBytes { try COCOMask.decodeCounts($0) } }
    }

    @Test func paintingKeepsTheFirstClass() {
        // A 3x2 image (h = 3, w = 2): column-major runs 1 zero, 4 ones, 1 zero.
        let runs = COCORunLengths(height: 3, width: 2, counts: [1, 4, 1])
        #expect(runs.decoded() == [0, 1, 1, 1, 1, 0])
        var labels: [UInt8] = [0, 7, 0, 0, 0, 0]
        labels.withUnsafeMutableBufferPointer { runs.paint(into: $0.baseAddress!, value: 2, onlyOver: 0) }
        #expect(labels == [0, 7, 2, 2, 2, 0])
        #expect(runs.area == 4 && runs.coversImage)
    }
}
