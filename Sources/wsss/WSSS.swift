import ArgumentParser
import Autograd
import Distributed
import Foundation
import Imaging
import Training

/// The `wsss` command: one subcommand per file.
struct WSSS: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wsss",
        abstract: "Weakly-supervised semantic segmentation: CAMs, SAM-enhanced pseudo-labels, DeepLab-v2.",
        discussion: """
            Examples:
              wsss synth --out data/synthetic --proposals && wsss pipeline --recipe recipes/demo.yaml
              wsss sam masks --checkpoint sam_vit_h_4b8939.pth --root data/VOC2012 --split train_aug --out data/VOC2012/SAM
              wsss coco convert --annotations coco/annotations/instances_train2014.json --images coco/train2014 --out data/COCO2014 --split train
              wsss eval --root data/VOC2012 --checkpoint runs/voc12-deeplabv2-r101-sepl/segmenter_sepl/final.h5
            Shell completion: wsss --generate-completion-script bash > /etc/bash_completion.d/wsss (or zsh, fish).
            """,
        version: "0.5.0",
        subcommands: [
            Synth.self, DataCommand.self, COCOCommand.self, CAMCommand.self, Pseudo.self, TrainCommand.self, EvalCommand.self,
            PredictCommand.self, PipelineCommand.self, SAMCommand.self, DetectCommand.self, Score.self, CRFCommand.self,
            Bench.self,
        ])
}

/// Options every compute-heavy command shares.
struct RuntimeOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Threads for OpenBLAS and our kernels. (default: one per core)", valueName: "n"))
    var threads: Int?

    @Option(
        help: ArgumentHelp(
            "Refuse images with more pixels than this before decoding them (PIL's limit); 0 = no limit.", valueName: "n"))
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
        if let warning = BLASKernelChoice.pinnedKernelWarning(
            flags: BLASKernelChoice.cpuFlags(), loadedCore: Runtime.blasCore,
            userSetting: ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"])
        {
            Log.info(warning)
        }
    }
}

/// Progress and logs go to stderr; results go to stdout.
enum Log {
    /// False on the ranks after the first of a data-parallel job: one rank speaks for all.
    nonisolated(unsafe) static var enabled = true

    static func info(_ message: String) {
        guard enabled else { return }
        FileHandle.standardError.write(Data((message + "\n").utf8))
    }
}

/// `--distributed`: joins the mpirun/srun job (or runs alone without a launcher) and leaves the
/// logs and progress bars to rank 0.
func startDistributed(_ distributed: Bool, command: String) throws -> Communicator {
    guard distributed else { return .single }
    let communicator = try Communicator.world()
    if communicator.usesMPI {
        Log.enabled = communicator.isWriter
        ProgressBar.enabled = communicator.isWriter
        Log.info("\(command): data-parallel over \(communicator.size) ranks (MPI)")
    } else {
        Log.info("\(command): --distributed without mpirun/srun: one process")
    }
    return communicator
}

/// Strict parsing of a comma-separated list of numbers from an option: every item must be a
/// number (`abc` or `1,,2` is an error naming the option, never a silent fallback).
/// - Parameter maximum: when given, larger values are refused (e.g. an inference scale of 1e9,
///   whose scaled image no memory holds).
func parseNumbers(
    _ text: String, option: String, count: ClosedRange<Int> = 1...64, positive: Bool = false, minimum: Double? = nil,
    maximum: Double? = nil
) throws -> [Double] {
    let items = text.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
    let values = try items.map { item -> Double in
        guard let v = Double(item), v.isFinite else { throw ValidationError("\(option): '\(item)' in '\(text)' is not a number") }
        if positive && v <= 0 { throw ValidationError("\(option): \(item) must be > 0") }
        if let minimum, v < minimum { throw ValidationError("\(option): \(item) must be at least \(minimum)") }
        if let maximum, v > maximum { throw ValidationError("\(option): \(item) must be at most \(maximum)") }
        return v
    }
    guard count.contains(values.count) else {
        throw ValidationError(
            "\(option) needs \(count.lowerBound == count.upperBound ? "\(count.lowerBound)" : "\(count.lowerBound) to \(count.upperBound)") numbers, got '\(text)'"
        )
    }
    return values
}

/// A Foundation file error as one line — path, what failed, the OS reason ("No space left on
/// device", "Read-only file system") — instead of its NSCocoaErrorDomain dump.
struct FileSystemFailure: LocalizedError {
    let path: String
    let reason: String

    /// nil when `error` is not a Foundation file error (it is printed as it is).
    init?(_ error: Error) {
        let ns = error as NSError
        guard ns.domain == NSCocoaErrorDomain else { return nil }
        path = (ns.userInfo[NSFilePathErrorKey] as? String) ?? (ns.userInfo[NSURLErrorKey] as? URL)?.path ?? "(file)"
        // Foundation's codes (FoundationErrors.h); the underlying POSIX error, when there is one, says more.
        let known: [Int: String] = [
            4: "no such file or folder", 257: "permission denied", 260: "no such file", 513: "permission denied",
            516: "already exists", 640: "no space left on device", 642: "read-only file system",
        ]
        let underlying = (ns.userInfo[NSUnderlyingErrorKey] as? NSError).flatMap {
            $0.domain == NSPOSIXErrorDomain ? String(cString: strerror(Int32($0.code))) : nil
        }
        let operation =
            (512..<1000).contains(ns.code) ? "cannot write" : (256..<512).contains(ns.code) ? "cannot read" : "cannot use"
        reason = operation + ": " + (underlying ?? known[ns.code] ?? "error \(ns.code)")
    }

    var errorDescription: String? { "\(path): \(reason)" }
}

/// A command that cannot go on for a reason that is not a usage mistake (printed without the usage text).
struct CommandFailure: LocalizedError {
    let message: String
    init(_ message: String) { self.message = message }
    var errorDescription: String? { message }
}

/// Refuses to write `path` over a file that exists (unless `overwrite`) or over one of the
/// command's own `inputs` (never): nothing a user made is replaced silently.
/// - Throws: `CommandFailure` naming the file and the way out.
func checkOutput(_ path: String, option: String, overwrite: Bool, inputs: [String]) throws {
    func resolved(_ p: String) -> String { URL(fileURLWithPath: p).standardizedFileURL.resolvingSymlinksInPath().path }
    let target = resolved(path)
    if let same = inputs.first(where: { resolved($0) == target }) {
        throw CommandFailure("\(option) \(path) is the command's own input \(same): choose another output file")
    }
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { return }
    guard !isDirectory.boolValue else { throw CommandFailure("\(option) \(path) is a folder: name a file") }
    guard overwrite else {
        throw CommandFailure("\(option) \(path) exists; pass --overwrite to replace it, or choose another file")
    }
}

extension RecipeSection {
    /// A section filled from flags, checked by the recipe's own rules: the first key out of its
    /// range as a usage error naming its flag (`mask_share` → `--mask-share`, or as `flags` maps it).
    func validateAsFlags(_ flags: [String: String] = [:]) throws {
        guard let (key, rule, value) = violations.first else { return }
        let flag = flags[key] ?? "--" + key.replacingOccurrences(of: "_", with: "-")
        throw ValidationError("\(flag) must be \(rule), got \(value)")
    }
}
