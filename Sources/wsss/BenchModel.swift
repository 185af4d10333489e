import ArgumentParser
import Autograd
import Foundation
import Datasets
import Layers
import Training

extension Bench {
    /// `wsss bench model`: one model's train step or inference, with peak memory.
    struct Model: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Time DeepLab-v2 training steps or inference on random data (one JSON object on stdout).",
            discussion: """
                train = forward + cross-entropy + backward + SGD step (frozen BN unless --train-bn, DeepLab's parameter groups); \
                infer = forward without a tape. gflops counts convolution FLOPs (train: 3x forward) over the \
                median time; sgemm_ratio divides it by this machine's sgemm GFLOP/s measured in the same run; \
                peak_rss_mb is the process's peak resident memory.
                """)

        enum Mode: String, ExpressibleByArgument, CaseIterable { case train, infer }

        @OptionGroup var runtime: RuntimeOptions

        @Option(help: ArgumentHelp("Square input size in pixels.", valueName: "px"))
        var size: Int = 321

        @Option(help: ArgumentHelp("Images per step.", valueName: "n"))
        var batch: Int = 1

        @Option(help: "train or infer.")
        var mode: Mode = .train

        @Flag(help: "Multi-scale inputs (1, 0.75, 0.5 and the fused max), as DeepLab-v2 trains.")
        var msc = false

        @Option(help: ArgumentHelp("Timed repetitions after one warm-up.", valueName: "n"))
        var repeats: Int = 3

        @Option(help: ArgumentHelp("Divide every width by this (1 = the real network).", valueName: "n"))
        var narrow: Int = 1

        @Option(help: ArgumentHelp("ResNet depth of the backbone: \(ResNetDepth.phrase).", valueName: "n"))
        var depth: Int = 101

        @Flag(help: "Batch norm in training mode (batch statistics, trained γ/β), as the demo recipe; DeepLab-v2 freezes it.")
        var trainBN = false

        @Option(
            help: ArgumentHelp(
                "Comma-separated conv lowerings the automatic choice may pick (im2col is always the fallback), to compare them on the whole network. (default: all)",
                valueName: "list"))
        var lowerings: String?

        @Option(
            help: ArgumentHelp(
                "Products' arithmetic: fp32, bf16 (bf16 inputs, fp32 sums; emulated where the CPU has no AVX512-BF16: for accuracy, not speed) or auto (bf16 only where the CPU has it).",
                valueName: "fp32|bf16|auto"))
        var precision: ComputePrecision = .fp32

        /// `--lowerings` parsed, or nil for all.
        func loweringChoices() throws -> Set<ConvAlgorithm>? {
            guard let lowerings else { return nil }
            return Set(
                try lowerings.split(separator: ",").map { part in
                    guard let a = ConvAlgorithm(rawValue: String(part)), a != .automatic else {
                        throw ValidationError(
                            "--lowerings: '\(part)' is not one of pointwise, im2col, winograd, winograd4, stackedTaps, tapwise")
                    }
                    return a
                })
        }

        func validate() throws {
            _ = try loweringChoices()
            guard ResNetDepth(rawValue: depth) != nil else { throw ValidationError("--depth: \(ResNetDepth.phrase)") }
            guard size >= 33, batch >= 1, repeats >= 1, narrow >= 1 else {
                throw ValidationError("--size ≥ 33, --batch, --repeats and --narrow ≥ 1")
            }
            try MemoryBudget.checkTrainingBatch(batch: batch, crop: size)
        }

        func run() throws {
            try runtime.apply()
            if let choices = try loweringChoices() { ConvAlgorithm.automaticChoices = choices }
            let sgemm = OpBenchmarks.sgemm(size: 2048, seconds: 1).gflops
            // The model, optimizer and step of `wsss train` (the papers' learning rates and groups).
            var options = SegmentationOptions()
            options.depth = ResNetDepth(rawValue: depth) ?? .resnet101
            options.widthDivisor = narrow
            options.frozenBN = !trainBN
            options.msc = msc
            options.seed = 1
            let model = options.makeModel(classes: 21)
            model.train()
            let sgd = SegmentationTraining.makeOptimizer(for: model, options: options)
            var g = SeededGenerator(seed: 3)
            let x = Tensor.randomNormal([batch, 3, size, size], using: &g)
            let probe = withoutGrad { model(Tensor(zeros: [1, 3, size, size])) }
            let (lh, lw) = (probe.shape[2], probe.shape[3])
            let labels = LabelTensor(
                shape: [batch, size, size], values: (0..<(batch * size * size)).map { _ in Int32(g.next() % 21) })

            var forwardFLOPs = model.convolutionFLOPs(height: size, width: size) * Double(batch)
            if msc {
                for s in model.pyramidScales {
                    let side = Int(Double(size) * s)
                    forwardFLOPs += model.convolutionFLOPs(height: side, width: side) * Double(batch)
                }
            }
            let step: () -> Void = {
                switch mode {
                case .infer:
                    _ = withoutGrad { msc ? model.multiScale(x).fused : model(x) }
                case .train:
                    _ = SegmentationTraining.step(
                        model: model, optimizer: sgd, accumulation: GradientAccumulation(steps: 1), msc: msc
                    ) {
                        Batch(images: x, labels: labels, ids: [])
                    }
                }
            }
            let arithmetic = Kernels.productArithmetic(for: precision)
            let measure = {
                OpBenchmarks.time(seconds: 0, repetitions: repeats) {
                    Kernels.withProducts(arithmetic) { step() }
                    return nil
                }
            }
            // Training steps reuse freed activations as `wsss train` runs them.
            let timing = mode == .train ? MemoryBudget.reusingStepBuffers(measure) : measure()
            let flops = forwardFLOPs * (mode == .train ? 3 : 1)
            let gflops = flops / timing.median / 1e9
            let object: [String: Any] = [
                "name":
                    "deeplabv2-r\(depth)_\(mode.rawValue)\(msc ? "_msc" : "")_\(size)_b\(batch)\(narrow > 1 ? "_w\(narrow)" : "")\(trainBN ? "_bn" : "")",
                "images_per_s": (Double(batch) / timing.median * 10).rounded() / 10,
                "median_s": timing.median, "min_s": timing.minimum, "reps": timing.count,
                "gflops": (gflops * 10).rounded() / 10, "forward_gflop": (forwardFLOPs / 1e9 * 10).rounded() / 10,
                "sgemm_gflops": sgemm, "sgemm_ratio": (gflops / sgemm * 1000).rounded() / 1000,
                "peak_rss_mb": peakResidentMegabytes(), "logits": [lh, lw],
                "threads": Runtime.threads, "blas_core": Runtime.blasCore, "blas_origin": BLASKernelChoice.origin,
                "lowerings": ConvAlgorithm.automaticChoices.map(\.rawValue).sorted().joined(separator: ","),
                "precision": arithmetic == .fp32 ? "fp32" : "bf16", "bf16_hardware": Kernels.bf16Hardware,
            ]
            printJSON(object)
        }
    }
}

/// The process's peak resident set size (getrusage; Linux reports KiB).
func peakResidentMegabytes() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return (Double(usage.ru_maxrss) / 1024 * 10).rounded() / 10
}
