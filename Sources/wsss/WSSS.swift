import ArgumentParser
import Autograd
import Foundation
import Imaging

/// The `wsss` command: one subcommand per file.
struct WSSS: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wsss",
        abstract: "Weakly-supervised semantic segmentation: CAMs, SAM-enhanced pseudo-labels, DeepLab-v2.",
        subcommands: [Synth.self, DataCommand.self, CAMCommand.self, Pseudo.self, TrainCommand.self, EvalCommand.self, PredictCommand.self, PipelineCommand.self, SAMCommand.self, Score.self, Bench.self])
}

/// Options every compute-heavy command shares.
struct RuntimeOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Threads for OpenBLAS and our kernels. (default: one per core)", valueName: "n"))
    var threads: Int?

    @Option(help: ArgumentHelp("Refuse images with more pixels than this before decoding them (PIL's limit); 0 = no limit.", valueName: "n"))
    var maxImagePixels = 89_478_485

    /// Applies the thread count (`--threads`, else `defaultThreads`, e.g. a recipe's run.threads)
    /// and the image limit, and logs the BLAS kernel in use to stderr.
    func apply(defaultThreads: Int? = nil) throws {
        let threads = self.threads ?? defaultThreads
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1, got \(threads)") }
        guard maxImagePixels >= 0 else { throw ValidationError("--max-image-pixels must be 0 or more, got \(maxImagePixels)") }
        ImageLimits.maxPixels = maxImagePixels
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

/// Strict parsing of a comma-separated list of numbers from an option: every item must be a
/// number (`abc` or `1,,2` is an error naming the option, never a silent fallback).
func parseNumbers(_ text: String, option: String, count: ClosedRange<Int> = 1...64, positive: Bool = false) throws -> [Double] {
    let items = text.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
    let values = try items.map { item -> Double in
        guard let v = Double(item), v.isFinite else { throw ValidationError("\(option): '\(item)' in '\(text)' is not a number") }
        if positive && v <= 0 { throw ValidationError("\(option): \(item) must be > 0") }
        return v
    }
    guard count.contains(values.count) else {
        throw ValidationError("\(option) needs \(count.lowerBound == count.upperBound ? "\(count.lowerBound)" : "\(count.lowerBound) to \(count.upperBound)") numbers, got '\(text)'")
    }
    return values
}
