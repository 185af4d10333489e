import Foundation
import Imaging
import Testing

@testable import Datasets

/// Bad COCO input: one clear error or warning each, naming the file and the annotation id, and
/// nothing half-written counted as done.
@Suite struct COCOBadInputTests {
    let fixture = "\(COCOFixtures.folder)/instances_tiny.json"
    let images = "\(COCOFixtures.folder)/images"

    /// The fixture with `edit` applied, written to a temporary file.
    func edited(_ edit: (inout [String: Any]) -> Void) throws -> String {
        var object = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: fixture))) as? [String: Any])
        edit(&object)
        let path = NSTemporaryDirectory() + "wsss-coco-bad-\(UUID().uuidString).json"
        try JSONSerialization.data(withJSONObject: object).write(to: URL(fileURLWithPath: path))
        return path
    }

    func editAnnotation(_ id: Int, _ change: @escaping (inout [String: Any]) -> Void) throws -> String {
        try edited { object in
            var anns = object["annotations"] as! [[String: Any]]
            let k = anns.firstIndex { $0["id"] as! Int == id }!
            change(&anns[k])
            object["annotations"] = anns
        }
    }

    func convert(_ json: String, root: String = NSTemporaryDirectory() + "wsss-coco-\(UUID().uuidString)") throws
        -> COCOConverter.Report
    {
        var options = COCOConverter.Options()
        options.split = "val"
        return try COCOConverter.convert(annotations: json, images: images, root: root, options: options)
    }

    func message(_ body: () throws -> Void) -> String {
        do {
            try body()
            return "no error"
        } catch {
            return error.localizedDescription
        }
    }

    @Test func truncatedJSONNamesTheFileAndWhereItEnds() throws {
        let text = try Data(contentsOf: URL(fileURLWithPath: fixture))
        let path = NSTemporaryDirectory() + "wsss-coco-cut-\(UUID().uuidString).json"
        try text.prefix(text.count / 2).write(to: URL(fileURLWithPath: path))
        let root = NSTemporaryDirectory() + "wsss-coco-\(UUID().uuidString)"
        let said = message { _ = try convert(path, root: root) }
        #expect(said.hasPrefix("\(path): malformed JSON at byte") && said.contains("ends early"), "\(said)")
        #expect(!FileManager.default.fileExists(atPath: root), "nothing written for a bad file")
    }

    @Test func malformedJSONNamesTheByte() throws {
        var text = try String(contentsOfFile: fixture, encoding: .utf8)
        let comma = text.range(of: ",\"image_id\"")!
        text.replaceSubrange(comma.lowerBound..<text.index(after: comma.lowerBound), with: ";")
        let path = NSTemporaryDirectory() + "wsss-coco-bad-\(UUID().uuidString).json"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        let offset = text.utf8.distance(from: text.startIndex, to: comma.lowerBound)
        #expect(
            message { _ = try convert(path) } == "\(path): malformed JSON at byte \(offset): expected ',' or '}' in an object")
    }

    @Test func anAnnotationOfAMissingImageIsNamed() throws {
        let path = try editAnnotation(1003) { $0["image_id"] = 777 }
        let root = NSTemporaryDirectory() + "wsss-coco-\(UUID().uuidString)"
        let said = message { _ = try convert(path, root: root) }
        #expect(said.contains("\(path): annotation 1003: image_id 777 is not among the file's images"), "\(said)")
        #expect(!FileManager.default.fileExists(atPath: root))
    }

    @Test func aCategoryOutsideTheFilesCategoriesIsNamed() throws {
        let path = try editAnnotation(1004) { $0["category_id"] = 5 }
        #expect(
            message { _ = try convert(path) }.contains(
                "\(path): annotation 1004: category_id 5 is not among the file's categories"))
    }

    @Test func aPolygonOfTwoPointsIsAWarningAndSkipped() throws {
        let path = try editAnnotation(1000) { a in
            var parts = a["segmentation"] as! [[Double]]
            parts.append([1, 1, 5, 5])
            a["segmentation"] = parts
        }
        let report = try convert(path)
        #expect(report.warnings == ["\(path): annotation 1000: polygon 2 has 2 points (fewer than 3); skipped"])
        #expect(report.written == 4)
    }

    @Test func anEmptyPolygonListIsAWarning() throws {
        let path = try editAnnotation(1003) { $0["segmentation"] = [Any]() }
        let report = try convert(path)
        #expect(report.warnings == ["\(path): annotation 1003: an empty polygon list; nothing painted"])
    }

    @Test func anRLEOfAnotherSizeFailsItsImageOnly() throws {
        let path = try editAnnotation(1005) { a in
            var rle = a["segmentation"] as! [String: Any]
            rle["size"] = [40, 48]
            a["segmentation"] = rle
        }
        let root = NSTemporaryDirectory() + "wsss-coco-\(UUID().uuidString)"
        let said = message { _ = try convert(path, root: root) }
        #expect(said.contains("\(path): annotation 1005: RLE size 40x48 (HxW) but image 25 is 48x40"), "\(said)")
        // Its image has no PNG, the others do; no split list names anything yet.
        #expect(!FileManager.default.fileExists(atPath: "\(root)/SegmentationClass/COCO_tiny_000000000025.png"))
        #expect(FileManager.default.fileExists(atPath: "\(root)/SegmentationClass/COCO_tiny_000000000009.png"))
        #expect(!FileManager.default.fileExists(atPath: "\(root)/ImageSets/Segmentation/val.txt"))
        #expect(!FileManager.default.fileExists(atPath: "\(root)/image_labels_val.txt"))
    }

    @Test func runsThatDoNotCoverTheImageAreRefused() throws {
        let path = try editAnnotation(1006) { a in
            var rle = a["segmentation"] as! [String: Any]
            var counts = rle["counts"] as! [Int]
            counts[counts.count - 1] += 3
            rle["counts"] = counts
            a["segmentation"] = rle
        }
        #expect(
            message { _ = try convert(path) }.contains(
                "annotation 1006: RLE runs cover 1923 pixels but image 25 has 1920 (48x40)"))
    }

    @Test func aBadCompressedStringIsNamed() throws {
        let path = try editAnnotation(1005) { a in
            var rle = a["segmentation"] as! [String: Any]
            rle["counts"] = "0P"
            a["segmentation"] = rle
        }
        #expect(
            message { _ = try convert(path) }.contains(
                "annotation 1005: bad segmentation (compressed counts end inside a number)"))
    }

    @Test func aMissingImageFileIsNamed() throws {
        let path = try edited { object in
            var list = object["images"] as! [[String: Any]]
            list[0]["file_name"] = "absent.jpg"
            object["images"] = list
        }
        #expect(message { _ = try convert(path) }.contains("\(images)/absent.jpg: image 9: image file not found"))
    }
}
