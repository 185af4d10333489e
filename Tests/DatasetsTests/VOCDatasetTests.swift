import Foundation
import Imaging
import Testing

@testable import Datasets

/// Writes a small synthetic dataset into a fresh temporary folder.
func makeSyntheticRoot(train: Int = 6, val: Int = 3, test: Int = 2, seed: UInt64 = 1, size: Int = 64) throws -> String {
    let root = NSTemporaryDirectory() + "wsss-ds-\(UUID().uuidString)"
    var options = SyntheticDataset.Options()
    (options.train, options.val, options.test, options.seed, options.size) = (train, val, test, seed, size)
    try SyntheticDataset.write(to: root, options: options)
    return root
}

@Suite struct VOCDatasetTests {
    @Test func readsTheVOCLayout() throws {
        let root = try makeSyntheticRoot()
        let dataset = try VOCDataset(root: root, split: "train", classes: SyntheticDataset.classes)
        #expect(dataset.samples.count == 6)
        #expect(dataset.imageLabelSource == .annotations)
        #expect(dataset.labelDirectory == root + "/SegmentationClass")
        for sample in dataset.samples {
            let (image, labels) = try dataset.load(sample)
            #expect(image.channels == 3 && image.width == 64)
            // XML objects name exactly the classes visible in the label map.
            let pixelClasses = Set(try #require(labels).classesPresent.map(Int.init)).subtracting([0])
            #expect(try dataset.imageLabels(of: sample) == pixelClasses)
        }
        #expect(dataset.check().problems.isEmpty)
    }

    @Test func annotationsCountDifficultObjectsButNotPersonParts() throws {
        let dir = NSTemporaryDirectory() + "wsss-xml-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let xml = """
            <annotation><filename>a.jpg</filename>
              <object><name>person</name><difficult>0</difficult>
                <part><name>head</name></part><part><name>hand</name></part></object>
              <object><name>dog</name><difficult>1</difficult><truncated>1</truncated></object>
            </annotation>
            """
        try xml.write(toFile: dir + "/a.xml", atomically: true, encoding: .utf8)
        #expect(try VOCAnnotation.objectNames(at: dir + "/a.xml") == ["person", "dog"])
        try "<annotation><object><name>dog</name>".write(toFile: dir + "/bad.xml", atomically: true, encoding: .utf8)
        #expect(throws: DatasetError.self) { try VOCAnnotation.objectNames(at: dir + "/bad.xml") }
    }

    @Test func imageLabelFileTakesNamesOrIndices() throws {
        let dir = NSTemporaryDirectory() + "wsss-il-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try "# comment\n2008_000001 dog person\n2008_000002 12 15\n2008_000003\n".write(
            toFile: dir + "/l.txt", atomically: true, encoding: .utf8)
        let labels = try ImageLabelFile.read(dir + "/l.txt", classes: .voc)
        #expect(labels == ["2008_000001": [12, 15], "2008_000002": [12, 15], "2008_000003": []])
        try "x unicorn\n".write(toFile: dir + "/u.txt", atomically: true, encoding: .utf8)
        #expect(throws: DatasetError.unknownClass(name: "unicorn", path: dir + "/u.txt", line: 1)) {
            try ImageLabelFile.read(dir + "/u.txt", classes: .voc)
        }
        try "x 21\n".write(toFile: dir + "/r.txt", atomically: true, encoding: .utf8)
        #expect(throws: DatasetError.self) { try ImageLabelFile.read(dir + "/r.txt", classes: .voc) }
    }

    @Test func everyProblemIsFoundAndNamesItsFile() throws {
        let root = try makeSyntheticRoot()
        let dataset = try VOCDataset(root: root, split: "train", classes: SyntheticDataset.classes)
        let ids = dataset.samples.map(\.id)
        // 0: image missing; 1: truncated image; 2: label of the wrong size; 3: class id out of
        // range; 4: unknown class in the XML.
        try FileManager.default.removeItem(atPath: "\(root)/JPEGImages/\(ids[0]).jpg")
        let jpeg = try Data(contentsOf: URL(fileURLWithPath: "\(root)/JPEGImages/\(ids[1]).jpg"))
        try jpeg.prefix(jpeg.count / 2).write(to: URL(fileURLWithPath: "\(root)/JPEGImages/\(ids[1]).jpg"))
        try LabelMap(width: 10, height: 64, filledWith: 0).writePNG(to: "\(root)/SegmentationClass/\(ids[2]).png")
        try LabelMap(width: 64, height: 64, filledWith: 9).writePNG(to: "\(root)/SegmentationClass/\(ids[3]).png")
        let xmlPath = "\(root)/Annotations/\(ids[4]).xml"
        try "<annotation><object><name>unicorn</name></object></annotation>".write(
            toFile: xmlPath, atomically: true, encoding: .utf8)
        let problems = try VOCDataset(root: root, split: "train", classes: SyntheticDataset.classes).check().problems
        #expect(problems.count == 5)
        #expect(problems.contains("\(root)/JPEGImages/\(ids[0]).jpg: no such file"))
        #expect(problems.contains { $0.hasPrefix("\(root)/JPEGImages/\(ids[1]).jpg: corrupt or truncated") })
        #expect(problems.contains("\(root)/SegmentationClass/\(ids[2]).png: label is 10x64 but its image is 64x64"))
        #expect(problems.contains("\(root)/SegmentationClass/\(ids[3]).png: class id 9 out of range (0…6, or 255 = ignore)"))
        #expect(problems.contains("\(xmlPath): unknown class 'unicorn'"))
    }

    @Test func annotationsThatDisagreeWithLabelMapsAreCounted() throws {
        let root = try makeSyntheticRoot()
        let dataset = try VOCDataset(root: root, split: "train", classes: SyntheticDataset.classes)
        let ids = dataset.samples.map(\.id)
        let names = SyntheticDataset.classes.names
        // 0: an all-background label, so every class its XML names is absent; 1: a label of only
        // a class its XML does not list; 2: a label of another size than its image; 3: all
        // ignore (255), where the listed classes may lie (a note, not a problem).
        let listed1 = try dataset.imageLabels(of: dataset.samples[1])
        let stray = try #require((1..<names.count).first { !listed1.contains($0) })
        try LabelMap(width: 64, height: 64, filledWith: 0).writePNG(to: "\(root)/SegmentationClass/\(ids[0]).png")
        try LabelMap(width: 64, height: 64, filledWith: UInt8(stray)).writePNG(to: "\(root)/SegmentationClass/\(ids[1]).png")
        try LabelMap(width: 32, height: 64, filledWith: 0).writePNG(to: "\(root)/SegmentationClass/\(ids[2]).png")
        try LabelMap(width: 64, height: 64, filledWith: LabelMap.ignore).writePNG(to: "\(root)/SegmentationClass/\(ids[3]).png")
        let report = try VOCDataset(root: root, split: "train", classes: SyntheticDataset.classes).check()
        let byKind = Dictionary(uniqueKeysWithValues: report.disagreements.map { ($0.kind, $0) })
        // Sample 1 lacks its listed classes too (its PNG holds only the stray class).
        #expect(byKind[.listedButAbsent]?.images == 2)
        #expect(byKind[.listedButAbsent]?.examples.first?.hasPrefix(ids[0] + " (") == true)
        #expect(byKind[.unlisted]?.images == 1)
        #expect(byKind[.unlisted]?.examples == ["\(ids[1]) (\(names[stray]))"])
        #expect(byKind[.size]?.examples == ["\(ids[2]) (32x64, image 64x64)"])
        #expect(byKind[.listedButOnlyIgnore]?.images == 1 && byKind[.listedButOnlyIgnore]?.isProblem == false)
        #expect(report.disagreements.filter { $0.kind != .listedButOnlyIgnore }.allSatisfy { $0.isProblem })
        #expect(report.text.contains("note: 1 image: annotations name classes the label PNG shows nowhere outside its 255"))
        // One line per class kind; the size mismatch keeps its own line naming the file.
        #expect(report.problems.count == 3)
        #expect(report.problems.contains { $0.contains("2 images: annotations name classes absent from the label PNG") })
        #expect(report.problems.contains("\(root)/SegmentationClass/\(ids[2]).png: label is 32x64 but its image is 64x64"))

        // A label folder named by the user (pseudo-labels) may miss objects: a note, not a problem.
        let pseudo = root + "/pseudo"
        try FileManager.default.createDirectory(atPath: pseudo, withIntermediateDirectories: true)
        for sample in dataset.samples {
            try LabelMap(width: 64, height: 64, filledWith: 0).writePNG(to: "\(pseudo)/\(sample.id).png")
        }
        let pseudoReport = try VOCDataset(root: root, split: "train", classes: SyntheticDataset.classes, labels: "pseudo").check(
            requireLabels: true)
        #expect(pseudoReport.problems.isEmpty)
        #expect(pseudoReport.disagreements.map(\.kind) == [.listedButAbsent])
        #expect(pseudoReport.disagreements.first?.isProblem == false)
        #expect(pseudoReport.text.contains("note: 6 images: annotations name classes absent"))
    }

    @Test func imageLabelFilesWithWindowsLineEndingsRead() throws {
        let dir = NSTemporaryDirectory() + "wsss-crlf-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try "2008_000001 dog person\r\n2008_000002 12\r\n".write(toFile: dir + "/l.txt", atomically: true, encoding: .utf8)
        #expect(try ImageLabelFile.read(dir + "/l.txt", classes: .voc) == ["2008_000001": [12, 15], "2008_000002": [12]])
    }

    @Test func aFileAsRootIsNotAFolder() throws {
        let root = try makeSyntheticRoot()
        let file = root + "/classes.txt"
        #expect(throws: DatasetError.notAFolder(path: file)) { try VOCDataset(root: file, split: "train") }
        #expect(throws: DatasetError.notAFolder(path: file)) { try VOCDataset(root: root, split: "train", labels: file) }
    }

    @Test func missingRootSplitAndLabelsAreErrors() throws {
        #expect(throws: DatasetError.missingRoot(path: "/nonexistent/voc")) {
            try VOCDataset(root: "/nonexistent/voc", split: "train")
        }
        let root = try makeSyntheticRoot()
        #expect(throws: DatasetError.missingSplit(split: "train_aug", path: "\(root)/ImageSets/Segmentation/train_aug.txt")) {
            try VOCDataset(root: root, split: "train_aug")
        }
        #expect(throws: DatasetError.self) {
            try VOCDataset(
                root: root, split: "train", classes: SyntheticDataset.classes, labels: "/nonexistent/pseudo", requireLabels: true)
        }
    }

    @Test func duplicateIdsAndEmptySplitsAreErrors() throws {
        let root = try makeSyntheticRoot()
        let list = root + "/ImageSets/Segmentation/val.txt"
        let ids = try String(contentsOfFile: list, encoding: .utf8).split(separator: "\n")
        try (ids + [ids[0]]).joined(separator: "\n").write(toFile: list, atomically: true, encoding: .utf8)
        #expect(throws: DatasetError.badSplitList(path: list, reason: "'\(ids[0])' is listed twice (entries 1 and 4)")) {
            try VOCDataset(root: root, split: "val", classes: SyntheticDataset.classes)
        }
        try "\n\n".write(toFile: list, atomically: true, encoding: .utf8)
        #expect(throws: DatasetError.badSplitList(path: list, reason: "lists no image ids")) {
            try VOCDataset(root: root, split: "val", classes: SyntheticDataset.classes)
        }
    }

    @Test func labelFolderOverridePlugsInOtherLabels() throws {
        let root = try makeSyntheticRoot()
        let pseudo = root + "/pseudo"
        try FileManager.default.createDirectory(atPath: pseudo, withIntermediateDirectories: true)
        let dataset = try VOCDataset(root: root, split: "val", classes: SyntheticDataset.classes)
        for sample in dataset.samples {
            try LabelMap(width: 64, height: 64, filledWith: 2).writePNG(to: "\(pseudo)/\(sample.id).png")
        }
        let overridden = try VOCDataset(
            root: root, split: "val", classes: SyntheticDataset.classes, labels: "pseudo", requireLabels: true)
        #expect(overridden.labelDirectory == pseudo)
        #expect(try overridden.load(overridden.samples[0]).labels?.classesPresent == [2])
    }

    @Test func syntheticDatasetIsDeterministicAndVaried() throws {
        let a = try makeSyntheticRoot(seed: 7), b = try makeSyntheticRoot(seed: 7), c = try makeSyntheticRoot(seed: 8)
        let file = "/JPEGImages/synth_train_00003.jpg"
        #expect(FileManager.default.contents(atPath: a + file) == FileManager.default.contents(atPath: b + file))
        #expect(FileManager.default.contents(atPath: a + file) != FileManager.default.contents(atPath: c + file))
        let big = try makeSyntheticRoot(train: 60, val: 0, test: 0, seed: 3)
        let dataset = try VOCDataset(root: big, split: "train", classes: SyntheticDataset.classes)
        let counts = try dataset.samples.map { try dataset.imageLabels(of: $0).count }
        #expect(Set(try dataset.samples.flatMap { try dataset.imageLabels(of: $0) }) == Set(1...6))
        #expect(counts.contains { $0 >= 2 })
        #expect(dataset.check().problems.isEmpty)
    }

    @Test(arguments: [32, 97, 500])
    func scenesOfAnySizeRender(size: Int) {
        // Objects and clutter may reach past the border; every scene must still render.
        for index in 0..<(size == 500 ? 8 : 100) {
            let scene = SyntheticScene(seed: 11, index: index, size: size)
            #expect(scene.labels.width == size && scene.image.pixels.count == size * size * 3)
        }
    }

    @Test func classListsLoadFromFiles() throws {
        let root = try makeSyntheticRoot()
        #expect(try ClassNames.load(root + "/classes.txt") == SyntheticDataset.classes)
        #expect(try ClassNames.load("voc").count == 21)
        #expect(throws: DatasetError.self) { try ClassNames.load(root + "/nope.txt") }
    }
}

/// IRN's cls_labels.npy as a `data.image_labels` file (scripts/fixtures/make_irn_fixtures.py).
@Suite struct NumpyImageLabelTests {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/IRN").path

    @Test(arguments: ["cls_labels.npy", "cls_labels_p2.npy"])
    func irnClassLabelsGiveImageLabelsByDecodedID(_ name: String) throws {
        let labels = try ImageLabelFile.read("\(Self.folder)/\(name)", classes: .voc)
        // decode_int_filename: 2007000032 → 2007_000032; entry k is class k + 1 (background first here).
        #expect(labels == ["2007_000032": [1, 15], "2011_003276": [12], "2008_000002": [20]])
    }

    @Test func aClassCountMismatchNamesTheFileAndTheImage() throws {
        let path = "\(Self.folder)/cls_labels.npy"
        #expect(
            throws: DatasetError.badLabelArray(
                path: path, reason: "'2007_000032' has 20 entries, the 3 object classes need one each")
        ) {
            try ImageLabelFile.read(path, classes: ClassNames(["background", "a", "b", "c"]))
        }
    }
}
