import Foundation
import Imaging
import Testing

@testable import Datasets

@Suite struct COCOConverterTests {
    func convert(crowd: COCOConverter.CrowdRule = .class, split: String = "val", json: String? = nil) throws -> (
        String, COCOConverter.Report
    ) {
        let root = NSTemporaryDirectory() + "wsss-coco-\(UUID().uuidString)"
        var options = COCOConverter.Options()
        (options.split, options.crowd) = (split, crowd)
        let report = try COCOConverter.convert(
            annotations: json ?? "\(COCOFixtures.folder)/instances_tiny.json", images: "\(COCOFixtures.folder)/images",
            root: root,
            options: options)
        return (root, report)
    }

    /// Each annotation's mask is pycocotools' annToMask (polygons in several parts, self-crossing
    /// and keyhole polygons, repeated and closing vertices, crowd compressed RLE, uncompressed RLE).
    @Test func annotationMasksMatchAnnToMask() throws {
        let expected = try #require(
            (try COCOFixtures.json("expected.json") as? [String: Any])?["annotations"] as? [String: String])
        let file = try COCOAnnotationFile(path: "\(COCOFixtures.folder)/instances_tiny.json")
        #expect(file.annotations.count == expected.count)
        for a in file.annotations {
            let image = try #require(file.images.first { $0.id == a.imageID })
            let (map, warnings) = try COCOConverter.paint([a], in: file, image: image, labels: [a.categoryID: 1], crowd: .class)
            #expect(warnings.isEmpty)
            let theirs = try COCOFixtures.bitmap(try #require(expected[String(a.id)]), height: image.height, width: image.width)
            #expect(map.values == theirs, "annotation \(a.id)")
        }
    }

    /// Whole label maps as coco2voc paints them (ascending area, first class wins), ids renumbered
    /// 1…C, for both crowd rules; the unannotated image is all background on val.
    @Test(arguments: COCOConverter.CrowdRule.allCases)
    func labelMapsMatchTheReference(crowd: COCOConverter.CrowdRule) throws {
        let maps = try #require(
            (try COCOFixtures.json("expected.json") as? [String: Any])?["label_maps"] as? [String: [String: [String: String]]])
        let (root, report) = try convert(crowd: crowd)
        #expect(report.images == 4 && report.written == 4 && report.skippedUnannotated == 0)
        for (stem, rules) in maps {
            let map = try LabelMap.read(from: "\(root)/SegmentationClass/\(stem).png")
            let perValue = try #require(rules[crowd.rawValue])
            #expect(Set(perValue.keys.compactMap { UInt8($0) }) == Set(map.values), "\(stem)")
            for (value, counts) in perValue {
                let theirs = try COCOFixtures.bitmap(counts, height: map.height, width: map.width)
                #expect(map.values.map { $0 == UInt8(value)! ? 1 : 0 } == theirs, "\(stem) value \(value)")
            }
        }
        let classes = try ClassNames.load("\(root)/classes.txt")
        #expect(classes.names == ["background", "person", "car", "traffic_light", "bottle", "toothbrush"])
        // The dataset reads back as any VOC-layout set, image labels from the written file.
        let dataset = try VOCDataset(
            root: root, split: "val", classes: classes, imageLabelFile: "\(root)/image_labels_val.txt", requireLabels: true)
        #expect(dataset.samples.count == 4)
        #expect(dataset.samples.first { $0.id == "COCO_tiny_000000000042" }?.imageLabels == [])
        #expect(dataset.samples.first { $0.id == "COCO_tiny_000000000025" }?.imageLabels == [1, 2, 3, 4, 5])
        let check = dataset.check(requireLabels: true)
        #expect(check.problems.isEmpty, "\(check.problems)")
    }

    /// --labels-from label-maps: image labels are the classes each PNG holds (255 left out), so a
    /// crowd painted as ignore is not listed; a rerun reads them back from the kept PNGs.
    @Test func imageLabelsFromLabelMapsAgreeWithThePNGs() throws {
        let root = NSTemporaryDirectory() + "wsss-coco-\(UUID().uuidString)"
        var options = COCOConverter.Options()
        (options.split, options.crowd, options.imageLabels) = ("val", .ignore, .labelMaps)
        let json = "\(COCOFixtures.folder)/instances_tiny.json", images = "\(COCOFixtures.folder)/images"
        for _ in 0..<2 {
            _ = try COCOConverter.convert(annotations: json, images: images, root: root, options: options)
            let classes = try ClassNames.load("\(root)/classes.txt")
            let dataset = try VOCDataset(
                root: root, split: "val", classes: classes, imageLabelFile: "\(root)/image_labels_val.txt")
            for sample in dataset.samples {
                let present = Set(try LabelMap.read(from: sample.labelPath!).classesPresent.map(Int.init)).subtracting([0])
                #expect(sample.imageLabels == present, "\(sample.id)")
            }
            #expect(
                dataset.samples.first { $0.id == "COCO_tiny_000000000025" }?.imageLabels?.contains(1) == false,
                "the crowd person is ignore")
            #expect(dataset.check().problems.isEmpty)
        }
    }

    @Test func trainingSkipsUnannotatedImagesAndARerunKeepsFinishedOnes() throws {
        let root = NSTemporaryDirectory() + "wsss-coco-\(UUID().uuidString)"
        var options = COCOConverter.Options()
        options.split = "train"
        let json = "\(COCOFixtures.folder)/instances_tiny.json", images = "\(COCOFixtures.folder)/images"
        let first = try COCOConverter.convert(annotations: json, images: images, root: root, options: options)
        #expect(first.images == 3 && first.skippedUnannotated == 1 && first.written == 3)
        let list = try String(contentsOfFile: "\(root)/ImageSets/Segmentation/train.txt", encoding: .utf8)
        #expect(!list.contains("000000000042"))
        try FileManager.default.removeItem(atPath: "\(root)/SegmentationClass/COCO_tiny_000000000030.png")
        let second = try COCOConverter.convert(annotations: json, images: images, root: root, options: options)
        #expect(second.written == 1 && second.kept == 2)
        // Another crowd rule on the same root would keep PNGs painted by the first: refused.
        options.crowd = .ignore
        #expect { _ = try COCOConverter.convert(annotations: json, images: images, root: root, options: options) } throws: {
            error in
            error.localizedDescription.contains("coco_convert.txt: its PNGs were painted with crowd: class")
        }
        // The images are links to the originals.
        let target = try FileManager.default.destinationOfSymbolicLink(atPath: "\(root)/JPEGImages/COCO_tiny_000000000009.jpg")
        #expect(target == "\(images)/COCO_tiny_000000000009.jpg")
    }
}
