import Foundation
import Testing

@testable import Training

/// The run folder guards that keep one run's files from being lost to another.
@Suite struct RunFolderTests {
    let directory = NSTemporaryDirectory() + "wsss-runfolder-\(UUID().uuidString)"

    @Test func aSecondLockIsRefusedNamingTheHolder() throws {
        var first: RunFolder.Lock? = try RunFolder.Lock(directory: directory)
        #expect(throws: RunFolderError.locked(directory: directory, pid: getpid())) { try RunFolder.Lock(directory: directory) }
        #expect(RunFolderError.locked(directory: directory, pid: 42).localizedDescription.contains("process 42"))
        first = nil
        _ = first
        _ = try RunFolder.Lock(directory: directory)  // released with its holder
    }

    @Test func aFreshRunRefusesAFolderWithCheckpointsUnlessOverwriting() throws {
        let lock = try RunFolder.Lock(directory: directory)
        let fm = FileManager.default
        for name in ["iter_000010.h5", "final.h5", "train.jsonl", ".final.h5.tmp-99999", "eval_val.json"] {
            fm.createFile(atPath: "\(directory)/\(name)", contents: Data(name.utf8))
        }
        #expect(throws: RunFolderError.hasCheckpoints(directory: directory, files: ["final.h5", "iter_000010.h5"])) {
            try RunFolder.prepare(lock, prefix: "", resuming: false, overwrite: false, runFiles: ["train.jsonl"])
        }
        #expect(!fm.fileExists(atPath: "\(directory)/.final.h5.tmp-99999"), "a killed writer's temporary file is removed")
        #expect(fm.fileExists(atPath: "\(directory)/final.h5"), "nothing else is touched")
        // Resuming is fine as it is.
        #expect(try RunFolder.prepare(lock, prefix: "", resuming: true, overwrite: false, runFiles: ["train.jsonl"]) == nil)
        // --overwrite moves the earlier run aside; nothing is deleted.
        let aside = try #require(
            try RunFolder.prepare(lock, prefix: "", resuming: false, overwrite: true, runFiles: ["train.jsonl"]))
        #expect(Set(try fm.contentsOfDirectory(atPath: aside)) == ["iter_000010.h5", "final.h5", "train.jsonl"])
        #expect(try String(contentsOfFile: aside + "/final.h5", encoding: .utf8) == "final.h5")
        #expect(Set(try fm.contentsOfDirectory(atPath: directory)).isSuperset(of: ["eval_val.json", ".lock"]))
        #expect(RunFolder.checkpoints(in: directory, prefix: "").isEmpty)
    }

    @Test func truncatingTheLogKeepsIterationsUpToTheCheckpoint() throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let path = directory + "/train.jsonl"
        let lines = (1...6).map { "{\"iteration\":\($0),\"loss\":1}" } + ["{\"iteration\":4,\"val_miou\":10}"]
        try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        try TrainingLog.truncate(path, throughIteration: 4)
        #expect(TrainingLog.read(path).map { $0["iteration"] as? Int } == [1, 2, 3, 4, 4])
        try TrainingLog.truncate(path, throughIteration: 0)
        #expect(TrainingLog.read(path).isEmpty)
        try TrainingLog.truncate(directory + "/missing.jsonl", throughIteration: 0)
        #expect(!FileManager.default.fileExists(atPath: directory + "/missing.jsonl"))
    }
}
