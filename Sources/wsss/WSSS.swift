import ArgumentParser
import Autograd
import Foundation

/// The `wsss` command: one subcommand per file.
struct WSSS: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wsss",
        abstract: "Weakly-supervised semantic segmentation: CAMs, SAM-enhanced pseudo-labels, DeepLab-v2.",
        subcommands: [Synth.self, DataCommand.self, CAMCommand.self, Pseudo.self, TrainCommand.self, EvalCommand.self, PredictCommand.self, PipelineCommand.self, Score.self, Bench.self])
}

/// Options every compute-heavy command shares.
struct RuntimeOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Threads for OpenBLAS and our kernels. (default: one per core)", valueName: "n"))
    var threads: Int?

    /// Applies the thread count and logs the BLAS kernel in use to stderr.
    func apply() throws {
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1, got \(threads)") }
        Runtime.configure(threads: threads)
        Log.info("compute: \(Runtime.summary)")
    }
}

/// Progress and logs go to stderr; results go to stdout.
enum Log {
    static func info(_ message: String) {
        FileHandle.standardError.write(Data((message + "\n").utf8))
    }
}
