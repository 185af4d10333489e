import ArgumentParser
import Datasets
import Foundation
import Pipeline
import Imaging
import Testing

@testable import wsss

/// The commands on real files: exit status and what they report.
@Suite struct CommandTests {
    func syntheticRoot() throws -> String {
        let root = NSTemporaryDirectory() + "wsss-cli-\(UUID().uuidString)"
        var command = try Synth.parse(["--out", root, "--train", "4", "--val", "3", "--test", "2", "--size", "48", "--seed", "3"])
        try command.run()
        return root
    }

    @Test func dataCheckPassesOnSyntheticAndFailsOnProblems() throws {
        let root = try syntheticRoot()
        var check = try DataCommand.Check.parse(["--root", root, "--split", "val"])
        try check.run()
        try Data("junk".utf8).write(to: URL(fileURLWithPath: root + "/JPEGImages/synth_val_00001.jpg"))
        check = try DataCommand.Check.parse(["--root", root, "--split", "val", "--json"])
        #expect(throws: ExitCode(1)) { try check.run() }
    }

    @Test func dataCheckWithALabelFolderReportsMissingLabels() throws {
        let root = try syntheticRoot()
        let labels = root + "/pseudo"
        try FileManager.default.copyItem(atPath: root + "/SegmentationClass", toPath: labels)
        let ids = try String(contentsOfFile: root + "/ImageSets/Segmentation/val.txt", encoding: .utf8).split(separator: "\n")
            .map(String.init)
        try FileManager.default.removeItem(atPath: "\(labels)/\(ids[1]).png")
        let check = try DataCommand.Check.parse(["--root", root, "--split", "val", "--labels", labels, "--json"])
        #expect(throws: ExitCode(1)) { try check.run() }
        let report = try VOCDataset(root: root, split: "val", classes: SyntheticDataset.classes, labels: labels).check(
            requireLabels: true)
        #expect(report.problems == ["\(labels)/\(ids[1]).png: missing label PNG"])
    }

    @Test func scoreReportsMissingFilesAndScoresComplete() throws {
        let root = try syntheticRoot()
        let gt = root + "/SegmentationClass", pred = root + "/pred"
        try FileManager.default.createDirectory(atPath: pred, withIntermediateDirectories: true)
        let list = root + "/ImageSets/Segmentation/val.txt"
        let ids = try String(contentsOfFile: list, encoding: .utf8).split(separator: "\n").map(String.init)
        for id in ids.dropFirst() { try FileManager.default.copyItem(atPath: "\(gt)/\(id).png", toPath: "\(pred)/\(id).png") }
        var score = try Score.parse(["--pred", pred, "--gt", gt, "--list", list, "--classes", root + "/classes.txt"])
        #expect(throws: ReportedFailure.self) { try score.run() }
        try FileManager.default.copyItem(atPath: "\(gt)/\(ids[0]).png", toPath: "\(pred)/\(ids[0]).png")
        let matrix = try FolderScore.confusion(ids: ids, predictions: pred, groundTruth: gt, classCount: 7)
        #expect(matrix.meanIoU == 1)
        score = try Score.parse(["--pred", pred, "--gt", gt, "--list", list, "--classes", root + "/classes.txt", "--json"])
        try score.run()
        // A prediction with a class id past the class list names the file.
        try LabelMap(width: 48, height: 48, filledWith: 9).writePNG(to: "\(pred)/\(ids[0]).png")
        #expect(throws: DatasetError.classOutOfRange(path: "\(pred)/\(ids[0]).png", value: 9, classCount: 7)) {
            try FolderScore.confusion(ids: ids, predictions: pred, groundTruth: gt, classCount: 7)
        }
        // A prediction of the wrong size too.
        try LabelMap(width: 40, height: 48, filledWith: 0).writePNG(to: "\(pred)/\(ids[0]).png")
        #expect(throws: DatasetError.self) {
            try FolderScore.confusion(ids: ids, predictions: pred, groundTruth: gt, classCount: 7)
        }
    }

    @Test func numberListsParseStrictly() throws {
        #expect(try parseNumbers("0.5, 1,1.5", option: "--scales") == [0.5, 1, 1.5])
        for (text, words) in [
            ("abc", "'abc' in 'abc' is not a number"), ("1,,2", "'' in '1,,2' is not a number"), ("1,-1", "-1 must be > 0"),
        ] {
            #expect { try parseNumbers(text, option: "--scales", positive: true) } throws: { error in
                "\(error)".contains(words) && "\(error)".contains("--scales")
            }
        }
        #expect(throws: ValidationError.self) { try parseNumbers("1,2", option: "--felzenszwalb", count: 3...3) }
    }

    @Test func benchModelRejectsAnUnknownDepth() {
        #expect(throws: (any Error).self) { try Bench.Model.parse(["--depth", "42"]) }
        #expect(throws: Never.self) { try Bench.Model.parse(["--depth", "50", "--narrow", "8", "--train-bn"]) }
    }

    @Test func synthRefusesAFolderWithADatasetUnlessOverwriting() throws {
        let root = try syntheticRoot()
        #expect(throws: CommandFailure.self) {
            try Synth.parse(["--out", root, "--train", "1", "--val", "1", "--test", "1", "--size", "32"]).run()
        }
        try Synth.parse(["--out", root, "--train", "1", "--val", "1", "--test", "1", "--size", "32", "--overwrite"]).run()
        #expect(try FileManager.default.contentsOfDirectory(atPath: root + "/JPEGImages").count == 3, "the old images are gone")
    }

    @Test func synthRejectsNonsense() {
        #expect(throws: (any Error).self) { try Synth.parse(["--out", "/tmp/x", "--size", "8"]) }
        #expect(throws: (any Error).self) { try Synth.parse(["--out", "/tmp/x", "--train", "-1"]) }
    }
}

@Suite struct FileSystemFailureTests {
    @Test func foundationFileErrorsBecomeOneLine() throws {
        let full = CocoaError(.fileWriteOutOfSpace, userInfo: [NSFilePathErrorKey: "/data/run/final.h5"])
        #expect(
            try #require(FileSystemFailure(full)).localizedDescription
                == "/data/run/final.h5: cannot write: no space left on device")
        let readOnly = NSError(
            domain: NSCocoaErrorDomain, code: 642,
            userInfo: [
                NSFilePathErrorKey: "/ro/x", NSUnderlyingErrorKey: NSError(domain: NSPOSIXErrorDomain, code: Int(EROFS)),
            ])
        #expect(try #require(FileSystemFailure(readOnly)).localizedDescription == "/ro/x: cannot write: Read-only file system")
        #expect(FileSystemFailure(ValidationError("x")) == nil)
    }
}
