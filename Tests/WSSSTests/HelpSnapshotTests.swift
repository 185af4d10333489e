import Foundation
import Testing

@testable import wsss

/// Pins the help text of every command: a change to options shows up in review as a diff of
/// Tests/WSSSTests/Snapshots. Set WSSS_RECORD_SNAPSHOTS=1 to rewrite them.
@Suite struct HelpSnapshotTests {
    static let snapshots = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Snapshots")

    static let commands: [(name: String, help: String)] = [
        ("wsss", WSSS.helpMessage(columns: 100)),
        ("wsss-bench", WSSS.helpMessage(for: Bench.self, columns: 100)),
        ("wsss-bench-ops", WSSS.helpMessage(for: Bench.Ops.self, columns: 100)),
        ("wsss-bench-model", WSSS.helpMessage(for: Bench.Model.self, columns: 100)),
        ("wsss-bench-pseudo", WSSS.helpMessage(for: Bench.Pseudo.self, columns: 100)),
        ("wsss-cam-train", WSSS.helpMessage(for: CAMCommand.Train.self, columns: 100)),
        ("wsss-cam-infer", WSSS.helpMessage(for: CAMCommand.Infer.self, columns: 100)),
        ("wsss-cam-sweep", WSSS.helpMessage(for: CAMCommand.Sweep.self, columns: 100)),
        ("wsss-pseudo", WSSS.helpMessage(for: Pseudo.self, columns: 100)),
        ("wsss-train", WSSS.helpMessage(for: TrainCommand.self, columns: 100)),
        ("wsss-eval", WSSS.helpMessage(for: EvalCommand.self, columns: 100)),
        ("wsss-predict", WSSS.helpMessage(for: PredictCommand.self, columns: 100)),
        ("wsss-pipeline", WSSS.helpMessage(for: PipelineCommand.self, columns: 100)),
        ("wsss-bench-data", WSSS.helpMessage(for: Bench.DataPipeline.self, columns: 100)),
        ("wsss-synth", WSSS.helpMessage(for: Synth.self, columns: 100)),
        ("wsss-data-check", WSSS.helpMessage(for: DataCommand.Check.self, columns: 100)),
        ("wsss-score", WSSS.helpMessage(for: Score.self, columns: 100)),
        ("wsss-sam-convert", WSSS.helpMessage(for: SAMCommand.Convert.self, columns: 100)),
        ("wsss-sam-embed", WSSS.helpMessage(for: SAMCommand.Embed.self, columns: 100)),
        ("wsss-sam-predict", WSSS.helpMessage(for: SAMCommand.Predict.self, columns: 100)),
        ("wsss-sam-masks", WSSS.helpMessage(for: SAMCommand.Masks.self, columns: 100)),
        ("wsss-bench-sam", WSSS.helpMessage(for: Bench.SAMBench.self, columns: 100)),
        ("wsss-coco-convert", WSSS.helpMessage(for: COCOCommand.Convert.self, columns: 100)),
        ("wsss-bench-coco", WSSS.helpMessage(for: Bench.COCOBench.self, columns: 100)),
        ("wsss-bench-allreduce", WSSS.helpMessage(for: Bench.Allreduce.self, columns: 100)),
        ("wsss-bench-recipe", WSSS.helpMessage(for: Bench.RecipeCost.self, columns: 100)),
        ("wsss-detect-convert", WSSS.helpMessage(for: DetectCommand.Convert.self, columns: 100)),
        ("wsss-detect-image", WSSS.helpMessage(for: DetectCommand.ImageBoxes.self, columns: 100)),
        ("wsss-detect-run", WSSS.helpMessage(for: DetectCommand.Run.self, columns: 100)),
        ("wsss-bench-detect", WSSS.helpMessage(for: Bench.DetectBench.self, columns: 100)),
    ]

    @Test(arguments: commands.map(\.name))
    func helpMatchesSnapshot(_ name: String) throws {
        let help = try #require(Self.commands.first { $0.name == name }).help + "\n"
        let file = Self.snapshots.appendingPathComponent("\(name).txt")
        if ProcessInfo.processInfo.environment["WSSS_RECORD_SNAPSHOTS"] == "1" {
            try help.write(to: file, atomically: true, encoding: .utf8)
        }
        #expect(help == (try String(contentsOf: file, encoding: .utf8)))
    }

    /// Each option's help (its first line and the wrapped lines under it) names a default or
    /// says it is required; flags (no value) are off by default.
    @Test func everyOptionStatesItsDefault() {
        for (name, help) in Self.commands {
            var blocks: [String] = []
            for line in help.split(separator: "\n") {
                if line.hasPrefix("  -") {
                    blocks.append(String(line))
                } else if line.hasPrefix("     "), !blocks.isEmpty {
                    blocks[blocks.count - 1] += " " + line.trimmingCharacters(in: .whitespaces)
                }
            }
            // Flags (no <value>) are off by default; required options say "(required)".
            for block in blocks where !block.contains("--help") && !block.contains("--version") && block.contains(" <") {
                #expect(
                    block.contains("(default") || block.contains("; default:") || block.contains("(required)"),
                    "\(name): option without a stated default: \(block)")
            }
        }
    }
}
