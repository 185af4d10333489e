import Autograd
import Foundation
import PseudoLabels
import Testing

@testable import SegmentAnything

/// Tests/Fixtures/amg/, written by scripts/fixtures/make_amg_fixtures.py (official amg.py,
/// torchvision batched_nms, pycocotools, cv2).
enum AMGFixtures {
    static let directory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/amg").path

    static func json(_ name: String) throws -> Any {
        let data = try #require(FileManager.default.contents(atPath: "\(directory)/\(name)"), "missing fixture \(name)")
        return try JSONSerialization.jsonObject(with: data)
    }

    /// utils.json's section `key`, a list of cases.
    static func cases(_ key: String) throws -> [[String: Any]] {
        let all = try #require(try json("utils.json") as? [String: Any])
        return try #require(all[key] as? [[String: Any]], "utils.json has no list \(key)")
    }

    /// A mask from rows of "0"/"1".
    static func mask(_ rows: Any?) throws -> BinaryMask {
        let rows = try #require(rows as? [String])
        let width = rows.first?.count ?? 0
        return BinaryMask(width: width, height: rows.count, pixels: rows.flatMap { $0.map { $0 == "1" } })
    }

    static func box(_ value: Any?) throws -> BoxXYXY {
        let v = try #require(value as? [NSNumber]).map { $0.intValue }
        return BoxXYXY(x0: v[0], y0: v[1], x1: v[2], y1: v[3])
    }
}

@Suite struct AMGTests {
    @Test func pointGridsMatchNumPy() throws {
        // JSONDecoder, not JSONSerialization: on Linux the latter parses some doubles an ulp off.
        struct Grids: Decodable {
            struct Grid: Decodable {
                let n: Int
                let points: [[Double]]
            }
            let point_grids: [Grid]
        }
        let data = try #require(FileManager.default.contents(atPath: "\(AMGFixtures.directory)/utils.json"))
        for c in try JSONDecoder().decode(Grids.self, from: data).point_grids {
            let grid = AMG.buildPointGrid(c.n)
            #expect(grid.count == c.points.count)
            // Bit-exact: the same float64 operations as numpy.linspace.
            for (p, e) in zip(grid, c.points) { #expect(p.x == e[0] && p.y == e[1], "n \(c.n): \(p) vs \(e)") }
        }
        for c in try AMGFixtures.cases("layer_grids") {
            let grids = AMG.buildAllLayerPointGrids(
                nPerSide: try #require(c["n"] as? Int), nLayers: try #require(c["layers"] as? Int),
                scalePerLayer: try #require(c["scale"] as? Int))
            #expect(grids.map { Int(Double($0.count).squareRoot()) } == (c["sides"] as? [Int]))
        }
    }

    @Test func cropBoxesMatchTheOfficial() throws {
        for c in try AMGFixtures.cases("crop_boxes") {
            let h = try #require(c["height"] as? Int), w = try #require(c["width"] as? Int)
            let (boxes, layers) = AMG.generateCropBoxes(
                imageSize: (h, w), nLayers: try #require(c["layers"] as? Int),
                overlapRatio: try #require(c["overlap_ratio"] as? Double))
            let expected = try #require(c["boxes"] as? [Any]).map { try AMGFixtures.box($0) }
            #expect(boxes == expected, "\(h)x\(w)")
            #expect(layers == (c["layer_idxs"] as? [Int]))
        }
    }

    @Test func stabilityScoresMatchTheOfficial() throws {
        for c in try AMGFixtures.cases("stability") {
            let masks = try #require(c["logits"] as? [[[Double]]])
            let (n, h, w) = (masks.count, masks[0].count, masks[0][0].count)
            let logits = Tensor(shape: [n, h, w], values: masks.flatMap { $0.flatMap { $0.map { Float($0) } } })
            let scores = AMG.calculateStabilityScore(
                logits, maskThreshold: 0, thresholdOffset: try #require(c["offset"] as? Double))
            let expected = try #require(c["scores"] as? [Any])
            for (s, e) in zip(scores, expected) {
                if let e = e as? Double { #expect(s == Float(e), "\(s) vs \(e)") } else { #expect(s.isNaN) }
            }
        }
    }

    @Test func stabilityCountsRowsInInt16() {
        // 40000 pixels above both thresholds in one row: int16 wraps to -25536 in both sums.
        let logits = Tensor(repeating: 5, shape: [1, 1, 40000])
        #expect(AMG.calculateStabilityScore(logits, maskThreshold: 0, thresholdOffset: 1) == [1])
        var values = [Float](repeating: 5, count: 40000)
        for i in 0..<20000 { values[i] = 0.5 }  // 20000 above the low threshold only
        let half = AMG.calculateStabilityScore(
            Tensor(shape: [1, 1, 40000], values: values), maskThreshold: 0, thresholdOffset: 1)
        #expect(half == [Float(20000) / Float(Int16(truncatingIfNeeded: 40000))])
    }

    @Test func maskBoxesMatchTheOfficial() throws {
        for c in try AMGFixtures.cases("mask_to_box") {
            #expect(AMG.batchedMaskToBox(try AMGFixtures.mask(c["mask"])) == (try AMGFixtures.box(c["box"])))
        }
    }

    @Test func nearCropEdgeMatchesTheOfficial() throws {
        for c in try AMGFixtures.cases("near_edge") {
            let boxes = try #require(c["boxes"] as? [Any]).map { try AMGFixtures.box($0) }
            let crop = try AMGFixtures.box(c["crop_box"]), orig = try AMGFixtures.box(c["orig_box"])
            #expect(
                boxes.map { AMG.isBoxNearCropEdge($0, cropBox: crop, origBox: orig) } == (c["near"] as? [Bool]), "crop \(crop)")
        }
    }

    @Test func uncropMatchesTheOfficial() throws {
        let all = try #require(try AMGFixtures.json("utils.json") as? [String: Any])
        let c = try #require(all["uncrop"] as? [String: Any])
        let crop = BoxXYXY(x0: 3, y0: 4, x1: 50, y1: 60)
        let boxes = [BoxXYXY(x0: 0, y0: 0, x1: 10, y1: 10), BoxXYXY(x0: 25, y0: 25, x1: 60, y1: 60)]
        let expectedBoxes = try #require(c["boxes"] as? [Any]).map { try AMGFixtures.box($0) }
        #expect(boxes.map { AMG.uncropBoxesXYXY($0, cropBox: crop) } == expectedBoxes)
        let points = [PointXY(x: 1.5, y: 2.25), PointXY(x: 0, y: 7)].map { AMG.uncropPoints($0, cropBox: crop) }
        #expect(points.map { [$0.x, $0.y] } == (c["points"] as? [[Double]]))
        let padded = AMG.uncropMasks(
            try AMGFixtures.mask(c["mask"]), cropBox: try AMGFixtures.box(c["crop_box"]),
            origHeight: try #require(c["height"] as? Int), origWidth: try #require(c["width"] as? Int))
        #expect(padded == (try AMGFixtures.mask(c["uncropped"])))
    }

    @Test func smallRegionsMatchOpenCV() throws {
        for c in try AMGFixtures.cases("small_regions") {
            let modeName = try #require(c["mode"] as? String)
            let mode = try #require(SmallRegionMode(rawValue: modeName))
            let area = try #require(c["area"] as? Int)
            let (mask, changed) = AMG.removeSmallRegions(try AMGFixtures.mask(c["mask"]), areaThreshold: Double(area), mode: mode)
            let what = "\(c["name"] ?? "?") \(mode) < \(area)"
            #expect(changed == (c["changed"] as? Bool), "\(what)")
            #expect(mask == (try AMGFixtures.mask(c["result"])), "\(what)")
        }
    }

    @Test func componentsAreNumberedByTwoByTwoBlocks() {
        // A component starting on row 1 at the left comes before one starting on row 0 further
        // right: both first appear in block row 0, the left one in an earlier block.
        var mask = BinaryMask(width: 8, height: 4)
        mask[x: 6, y: 0] = true
        mask[x: 0, y: 1] = true
        mask[x: 3, y: 3] = true
        let c = ConnectedComponents(pixels: mask.pixels, width: 8, height: 4)
        #expect(c.labels[1 * 8 + 0] == 1 && c.labels[6] == 2 && c.labels[3 * 8 + 3] == 3)
        #expect(c.sizes == [29, 1, 1, 1])
    }

    @Test func rleMatchesPycocotools() throws {
        for c in try AMGFixtures.cases("rle") {
            let mask = try AMGFixtures.mask(c["mask"]).segmentMask
            let counts = AMG.maskToRLE(mask)
            #expect(counts == (c["counts"] as? [Int]))
            #expect(AMG.cocoEncodeRLE(counts) == (c["string"] as? String))
            #expect(AMG.areaFromRLE(counts) == (c["area"] as? Int))
            #expect(BinaryMask(mask) == (try AMGFixtures.mask(c["mask"])))
        }
    }

    @Test func nmsMatchesTorchvisionWithTies() throws {
        for c in try AMGFixtures.cases("nms") {
            let boxes = try #require(c["boxes"] as? [[Double]]).map {
                BoxXYXY(x0: Int($0[0]), y0: Int($0[1]), x1: Int($0[2]), y1: Int($0[3]))
            }
            let scores = try #require(c["scores"] as? [Double]).map { Float($0) }
            let keep = AMG.batchedNMS(boxes: boxes, scores: scores, iouThreshold: try #require(c["thresh"] as? Double))
            #expect(keep == (c["keep"] as? [Int]), "threshold \(c["thresh"] ?? "?")")
        }
    }
}
