import Checkpoints
import Foundation
import HDF5
import Testing

@testable import wsss

/// Kills a real `wsss train` process with SIGKILL mid-run, resumes it with `--resume auto`, and
/// checks that at most one checkpoint interval was lost and that the result equals an
/// uninterrupted run bit for bit.
@Suite struct ResumeAfterKillTests {
    var binary: String {
        // The test runner lives in the build products folder, next to the `wsss` executable.
        let bundle = Bundle.main.bundleURL
        let candidates = [bundle.path + "/wsss", bundle.deletingLastPathComponent().path + "/wsss"]
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) } ?? candidates[0]
    }

    func run(_ arguments: [String], killWhenExists file: String? = nil) throws -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        process.standardError = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        if let file {
            while process.isRunning && !FileManager.default.fileExists(atPath: file) { usleep(2000) }
            kill(process.processIdentifier, SIGKILL)
        }
        process.waitUntilExit()
        return process.terminationStatus
    }

    @Test func killedTrainingResumesAndMatchesAnUninterruptedRun() throws {
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            Issue.record("the wsss binary is not built next to the tests (\(binary))")
            return
        }
        let root = NSTemporaryDirectory() + "wsss-kill-\(UUID().uuidString)"
        var synth = try Synth.parse(["--out", root, "--train", "8", "--val", "2", "--test", "2", "--size", "40", "--seed", "5"])
        try synth.run()
        let recipe = root + "/recipe.yaml"
        try """
        data: {root: \(root)}
        model: {depth: 18, width_divisor: 16, frozen_bn: false, msc: false}
        train: {iterations: 24, batch: 2, accumulation: 1, crop: 40, scales: [0.9, 1.1], scale_sampling: uniform, lr: 0.001, checkpoint_every: 4, keep_last: 2, eval_every: 0, log_every: 1}
        run: {dir: \(root)/runs}
        """.write(toFile: recipe, atomically: true, encoding: .utf8)
        let common = ["train", "--recipe", recipe, "--labels", root + "/SegmentationClass", "--threads", "1"]
        // Uninterrupted.
        #expect(try run(common + ["--out", root + "/straight"]) == 0)
        // Killed once iteration 8's checkpoint exists, then resumed.
        let status = try run(common + ["--out", root + "/killed"], killWhenExists: root + "/killed/iter_000008.h5")
        #expect(status != 0, "the process should have been killed")
        #expect(!FileManager.default.fileExists(atPath: root + "/killed/final.h5"))
        let resumedFrom = try Checkpoint.metadata(at: try #require(RunFolderProbe.latest(root + "/killed"))).iteration
        #expect(resumedFrom >= 8)
        #expect(try run(common + ["--out", root + "/killed", "--resume", "auto"]) == 0)
        let a = try HDF5File(path: root + "/straight/final.h5", mode: .read)
        let b = try HDF5File(path: root + "/killed/final.h5", mode: .read)
        #expect(try Checkpoint.metadata(at: root + "/killed/final.h5").iteration == 24)
        for name in try a.datasetNames(under: "/parameters") + a.datasetNames(under: "/buffers") {
            #expect(try a.read(name).scalars == b.read(name).scalars, "\(name) differs after kill + resume")
        }
    }
}

enum RunFolderProbe {
    static func latest(_ dir: String) -> String? {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        return names.filter { $0.hasPrefix("iter_") && $0.hasSuffix(".h5") }.sorted().last.map { "\(dir)/\($0)" }
    }
}
