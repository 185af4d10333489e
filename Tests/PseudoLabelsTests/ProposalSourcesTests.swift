import Autograd
import Foundation
import HDF5
import Imaging
import Testing

@testable import PseudoLabels

/// Tests/Fixtures/proposals, made by scripts/make_proposal_fixtures.py (pycocotools, skimage).
enum ProposalFixtures {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/proposals").path
    static func reference() throws -> HDF5File { try HDF5File(path: directory + "/proposals.h5", mode: .read) }
    static func referenceMasks() throws -> [[Bool]] {
        let file = try reference()
        return try (0..<12).map { k in try file.readLabels("/rle/\(k)/mask").values.map { $0 != 0 } }
    }
}

func temporaryDirectory() -> String {
    let path = NSTemporaryDirectory() + "wsss-pl-\(UUID().uuidString)"
    try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

@Suite struct RLETests {
    @Test func decodesPycocotoolsCompressedAndPlainCountsAlike() throws {
        let expected = try ProposalFixtures.referenceMasks()
        let image = Image(width: 53, height: 37, channels: 3)
        for file in ["rle_list", "rle_sa1b"] {
            let masks = try SA1BProposals.read(
                path: ProposalFixtures.directory + "/\(file).json", width: image.width, height: image.height)
            #expect(masks.count == expected.count)
            for (k, mask) in masks.enumerated() {
                #expect(mask.bitmap == expected[k], "\(file) mask \(k) differs from pycocotools' decode")
                #expect(mask.area == expected[k].filter { $0 }.count)
            }
        }
        let list = try SA1BProposals.read(path: ProposalFixtures.directory + "/rle_list.json", width: 53, height: 37)
        #expect(list[1].predictedIoU == 0.89)
        #expect(list[1].stabilityScore == 0.95)
    }

    @Test func compressionRoundTripsAndMatchesPycocotoolsStrings() throws {
        let data = FileManager.default.contents(atPath: ProposalFixtures.directory + "/rle_list.json")!
        let records = try JSONSerialization.jsonObject(with: data) as! [[String: Any]]
        for (k, mask) in try ProposalFixtures.referenceMasks().enumerated() {
            let counts = COCORLE.counts(of: SegmentMask(width: 53, height: 37, bitmap: mask))
            let string = (records[k]["segmentation"] as! [String: Any])["counts"] as! String
            #expect(COCORLE.compress(counts) == string, "mask \(k): our compressed counts differ from pycocotools'")
            #expect(try COCORLE.decompress(string) == counts)
        }
    }

    @Test func writtenFilesReadBack() throws {
        let dir = temporaryDirectory()
        let masks = try SA1BProposals.read(path: ProposalFixtures.directory + "/rle_list.json", width: 53, height: 37)
        try SA1BProposals.write(masks, to: dir + "/a.json")
        let again = try SA1BProposals.read(path: dir + "/a.json", width: 53, height: 37)
        #expect(again.map(\.runs) == masks.map(\.runs))
    }

    @Test func badFilesNameTheFileAndTheProblem() throws {
        let dir = temporaryDirectory()
        func write(_ text: String) -> String {
            let path = dir + "/\(UUID().uuidString).json"
            try! text.write(toFile: path, atomically: true, encoding: .utf8)
            return path
        }
        func message(_ path: String, width: Int = 4, height: Int = 3) -> String {
            do {
                _ = try SA1BProposals.read(path: path, width: width, height: height)
                return "no error"
            } catch { return "\(error.localizedDescription)" }
        }
        let malformed = write("[{\"segmentation\": ")
        #expect(message(malformed).hasPrefix(malformed + ": not valid JSON"))
        let wrongSize = write(#"[{"segmentation": {"size": [5, 4], "counts": [20]}}]"#)
        #expect(message(wrongSize) == "\(wrongSize): size 4x5 does not match the image (4x3)")
        let shortCounts = write(#"[{"segmentation": {"size": [3, 4], "counts": [2, 3]}}]"#)
        #expect(message(shortCounts) == "\(shortCounts): mask 0: run lengths add up to 5 pixels, not 3x4 = 12")
        let badString = write(#"[{"segmentation": {"size": [3, 4], "counts": "a b"}}]"#)
        #expect(message(badString).contains("is not RLE"))
        let noSegmentation = write(#"{"annotations": [{"area": 3}]}"#)
        #expect(message(noSegmentation) == "\(noSegmentation): mask 0: no \"segmentation\" object")
        #expect(message(dir + "/none.json") == "\(dir)/none.json: no such file or folder")
    }
}

@Suite struct MaskAndIndexSourcesTests {
    @Test func maskFolderAndIndexMapGiveTheSameSegments() throws {
        let dir = temporaryDirectory()
        let (w, h) = (6, 4)
        var index = [UInt8](repeating: 0, count: w * h)
        for y in 0..<h { for x in 0..<w { index[y * w + x] = x < 2 ? 1 : (y < 2 ? 2 : (x == 5 ? 0 : 3)) } }
        try FileManager.default.createDirectory(atPath: dir + "/index", withIntermediateDirectories: true)
        try LabelMap(width: w, height: h, values: index).writePNG(to: dir + "/index/im.png")
        try FileManager.default.createDirectory(atPath: dir + "/masks/im", withIntermediateDirectories: true)
        for v in UInt8(1)...3 {
            let pixels = index.map { $0 == v ? UInt8(255) : 0 }
            try Image(width: w, height: h, channels: 1, pixels: pixels).writePNG(to: dir + "/masks/im/\(v).png")
        }
        let image = Image(width: w, height: h, channels: 3)
        let fromIndex = try IndexMapProposals(directory: dir + "/index").proposals(for: "im", image: image)
        let fromMasks = try MaskFolderProposals(directory: dir + "/masks").proposals(for: "im", image: image)
        #expect(fromIndex.count == 3)
        #expect(fromIndex == fromMasks)
        #expect(fromIndex[0].bitmap == index.map { $0 == 1 })
        // HDF5 index maps: -1 and 0 are uncovered.
        try FileManager.default.createDirectory(atPath: dir + "/h5", withIntermediateDirectories: true)
        let file = try HDF5File(path: dir + "/h5/im.h5", mode: .create)
        try file.write(LabelTensor(shape: [h, w], values: index.map { $0 == 0 ? -1 : Int32($0) }), at: "segments")
        let fromH5 = try IndexMapProposals(directory: dir + "/h5").proposals(for: "im", image: image)
        #expect(fromH5 == fromIndex)
        // A mask of the wrong size names the file.
        try Image(width: w + 1, height: h, channels: 1).writePNG(to: dir + "/masks/im/4.png")
        #expect(throws: PseudoLabelError.sizeMismatch(path: dir + "/masks/im/4.png", expected: (w, h), found: (w + 1, h))) {
            try MaskFolderProposals(directory: dir + "/masks").proposals(for: "im", image: image)
        }
        #expect(throws: PseudoLabelError.self) {
            try IndexMapProposals(directory: dir + "/index").proposals(for: "other", image: image)
        }
    }

    @Test func boundingBoxAndContainsAgreeWithTheBitmap() {
        var bitmap = [Bool](repeating: false, count: 7 * 5)
        for (x, y) in [(2, 1), (3, 1), (3, 2), (5, 3)] { bitmap[y * 7 + x] = true }
        let mask = SegmentMask(width: 7, height: 5, bitmap: bitmap)
        #expect(mask.area == 4)
        #expect(mask.boundingBox! == (2, 1, 5, 3))
        for y in 0..<5 { for x in 0..<7 { #expect(mask.contains(x: x, y: y) == bitmap[y * 7 + x]) } }
    }
}

@Suite struct FelzenszwalbTests {
    /// Same partition as skimage (segment ids compared up to renaming; both number segments in
    /// raster order of their first pixel, so ids match too).
    @Test(arguments: ["photo", "shapes"], 0..<3)
    func matchesScikitImage(image name: String, setting: Int) throws {
        let file = try ProposalFixtures.reference()
        let dataset = "/felzenszwalb/\(name)_\(setting)"
        let expected = try file.readLabels(dataset)
        let options = Felzenszwalb.Options(
            scale: Double(try file.requiredAttribute(named: "scale", on: dataset).doubleValue!),
            sigma: Double(try file.requiredAttribute(named: "sigma", on: dataset).doubleValue!),
            minSize: try file.requiredAttribute(named: "min_size", on: dataset).intValue!)
        let image = try Image.readRGB(from: ProposalFixtures.directory + "/\(name).png")
        let ours = Felzenszwalb.segment(image, options: options)
        #expect(Set(expected.values).count > 3, "the fixture should have several segments")
        let differing = zip(ours, expected.values).filter { $0 != $1 }.count
        #expect(
            differing == 0,
            "\(name) \(options): \(differing) of \(ours.count) pixels differ; \(Set(ours).count) segments vs \(Set(expected.values).count)"
        )
    }
}
