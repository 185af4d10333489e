import ArgumentParser
import Autograd
import Datasets
import Dispatch
import Evaluation
import Distributed
import Foundation
import Imaging
import Pipeline
import PseudoLabels
import Training

extension CAMPreset: ExpressibleByArgument {}

/// `wsss cam train | infer | sweep`: the CAM stage.
struct CAMCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cam",
        abstract: "Train the CAM classifier on image-level labels, extract CAMs, sweep the background threshold.",
        subcommands: [Train.self, Infer.self, Sweep.self])

    struct Train: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Train the CAM classifier (ResNet-50, output stride 16, GAP, 1x1 classifier, multi-label soft-margin loss).",
            discussion:
                "Defaults follow IRN's train_cam.py (crop 512, batch 16, 5 epochs of VOC train_aug, poly 0.9, weight decay 1e-4) but for the learning rate (ours 0.01 backbone / 0.1 classifier, IRN's 0.1 / 1.0); IRN's whole procedure is --preset irn (the recipe key cam.preset: irn; docs/MODELS.md). Writes cam_final.h5, periodic cam_iter_N.h5 and cam_train.jsonl to --out; a rerun resumes from the newest checkpoint there."
        )

        @OptionGroup var data: DatasetOptions
        @OptionGroup var runtime: RuntimeOptions
        @Option(help: ArgumentHelp("Run folder (created). (required)", valueName: "dir")) var out: String
        @Option(
            help: ArgumentHelp(
                "Defaults to start from: 'wsss' (ours) or 'irn' (IRN's procedure: lr 0.1 / 1.0, SGD momentum 1e-4, stages 1-2 frozen, long side 320-640, 3305 steps, make_cam; the flags below still apply).",
                valueName: "preset"))
        var preset: CAMPreset = .wsss
        @Option(help: ArgumentHelp("Iterations. (default: 3300; 3305 with --preset irn)", valueName: "n")) var iterations: Int?
        @Option(help: ArgumentHelp("Images per batch.", valueName: "n")) var batch = CAMTrainingOptions().batchSize
        @Option(help: ArgumentHelp("Crop size.", valueName: "px")) var crop = CAMTrainingOptions().cropSize
        @Option(
            help: ArgumentHelp(
                "Random scale range (unused with --preset irn, which resizes the long side).", valueName: "low,high"))
        var scales = "0.5,1.5"
        @Option(
            help: ArgumentHelp(
                "Backbone learning rate (the classifier gets 10x). (default: 0.01; 0.1 with --preset irn)", valueName: "lr"))
        var lr: Float?
        @Option(help: ArgumentHelp("Divide every ResNet-50 width by this (1 = full).", valueName: "n")) var widthDivisor = 1
        @Flag(help: "Train batch norm (from scratch) instead of freezing it (ImageNet init).") var trainBn = false
        @Option(
            help: ArgumentHelp(
                "Initialise the backbone from an ImageNet ResNet: torchvision's .pth as it is, or our HDF5. (default: none)",
                valueName: "file")) var initFrom: String?
        @Option(help: ArgumentHelp("Random seed.", valueName: "n")) var seed: UInt64 = 0
        @Option(
            help: ArgumentHelp(
                "The products' arithmetic: fp32, bf16 mixed precision (bf16 inputs, fp32 sums; emulated where the CPU has no AVX512-BF16: for accuracy, not speed) or auto (bf16 only where the CPU has it).",
                valueName: "fp32|bf16|auto"))
        var precision: ComputePrecision = .fp32
        @Flag(
            help:
                "Data-parallel training over the ranks of mpirun/srun (docs/DISTRIBUTED.md): each rank trains on its share of every batch; only rank 0 writes. (default: off)"
        ) var distributed = false
        @Flag(
            help:
                "With --distributed and --train-bn: batch-norm statistics of each rank's share only, instead of synchronised over the ranks (SyncBatchNorm). (default: off)"
        ) var perRankBn = false

        /// Zero or negative counts would divide by zero or train nothing while reporting a checkpoint.
        func validate() throws {
            // A flag that changes nothing would let a user believe they ran what they asked for.
            if perRankBn && !distributed { throw ValidationError("--per-rank-bn only applies with --distributed") }
            if perRankBn && !trainBn {
                throw ValidationError("--per-rank-bn only applies with --train-bn (frozen BN has no batch statistics)")
            }
            for (value, option) in [
                (iterations ?? 1, "--iterations"), (batch, "--batch"), (crop, "--crop"), (widthDivisor, "--width-divisor"),
            ] where value < 1 {
                throw ValidationError("\(option) must be at least 1, got \(value)")
            }
            guard crop >= 16 else {
                throw ValidationError("--crop must be at least 16 px (the network's output stride), got \(crop)")
            }
            if let lr, !(lr > 0 && lr.isFinite) { throw ValidationError("--lr must be a positive number, got \(lr)") }
        }

        func run() throws {
            let communicator = try startDistributed(distributed, command: "cam train")
            try runtime.apply()
            var options = preset == .irn ? CAMTrainingOptions.irn : CAMTrainingOptions()
            if let iterations { options.iterations = iterations }
            options.batchSize = batch
            options.cropSize = crop
            let range = try parseNumbers(scales, option: "--scales (low,high)", count: 2...2, positive: true)
            guard range[0] <= range[1] else { throw ValidationError("--scales: low \(range[0]) is above high \(range[1])") }
            (options.scaleLow, options.scaleHigh) = (range[0], range[1])
            if let lr { options.learningRate = lr }
            options.widthDivisor = widthDivisor
            options.frozenBN = !trainBn
            options.seed = seed
            options.precision = precision.resolved
            try CAMCommand.train(
                dataset: try data.dataset(), options: options, out: out, initFrom: initFrom, communicator: communicator,
                syncBatchNorm: !perRankBn)
        }
    }

    static func train(
        dataset: VOCDataset, options: CAMTrainingOptions, out: String, initFrom: String?, communicator: Communicator = .single,
        syncBatchNorm: Bool = true
    ) throws {
        Log.info("cam train: precision: \(Kernels.productArithmetic(for: options.precision).name)")
        let progress = ProgressBar("cam train", total: options.iterations, unit: "it")
        var smoothed: Float?
        var reported = false
        StopRequest.install()
        do {
            try CAMTraining.train(
                dataset: dataset, options: options, outDirectory: out, initFrom: initFrom,
                progress: { iteration, loss in
                    if !reported {
                        reported = true
                        if iteration > 1 { progress.advance(by: iteration - 1) }
                    }
                    smoothed = smoothed.map { 0.9 * $0 + 0.1 * loss } ?? loss
                    progress.advance(extra: String(format: "loss %.4f", smoothed!))
                }, shouldStop: { StopRequest.requested != 0 }, communicator: communicator, syncBatchNorm: syncBatchNorm)
        } catch let stop as TrainingInterrupted {
            // Ctrl-C or SIGTERM: a checkpoint is saved; `wsss cam train` with the same --out resumes.
            Log.info(
                "cam train: \(stop.localizedDescription.replacingOccurrences(of: "--resume auto", with: "the same command"))")
            throw ExitCode(130)
        }
        Log.info("cam train: \(out)/cam_final.h5")
    }

    /// Inference scales above this are refused: IRN uses up to 2, DeepLab's MSC up to 1.75, and
    /// a VOC image at 8x already needs several GB of activations.
    static let maximumInferenceScale = 8.0
    /// Below this a VOC-sized image shrinks to a few feature pixels (as the recipes' scales).
    static let minimumInferenceScale = 0.25

    struct Infer: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write multi-scale + flip CAMs of a split's present classes to one HDF5 file.",
            discussion:
                "Layout: /<id>/classes (int32 class ids present, from the image-level labels) and /<id>/cams (float32 [K, H, W], max-normalised, at image resolution)."
        )

        @OptionGroup var data: DatasetOptions
        @OptionGroup var runtime: RuntimeOptions
        @Option(help: ArgumentHelp("CAM checkpoint (cam_final.h5). (required)", valueName: "file")) var checkpoint: String
        @Option(help: ArgumentHelp("Output HDF5 file. (required)", valueName: "file")) var out: String
        @Option(help: ArgumentHelp("Scales. (default: the checkpoint's, IRN's 1.0,0.5,1.5,2.0)", valueName: "list")) var scales:
            String?
        @Flag(help: "Replace --out if it exists. (default: off, an existing file is refused)") var overwrite = false
        @Flag(
            help:
                "Split the images across the ranks of mpirun/srun; rank 0 merges their CAMs into --out (docs/DISTRIBUTED.md). (default: off)"
        ) var distributed = false
        @Option(
            help: ArgumentHelp(
                "The products' arithmetic: fp32, bf16 mixed precision (bf16 inputs, fp32 sums; emulated where the CPU has no AVX512-BF16: for accuracy, not speed) or auto (bf16 only where the CPU has it). (default: the precision the classifier trained in)",
                valueName: "fp32|bf16|auto"))
        var precision: ComputePrecision?

        func run() throws {
            try checkOutput(out, option: "--out", overwrite: overwrite, inputs: [checkpoint])
            let communicator = try startDistributed(distributed, command: "cam infer")
            try runtime.apply()
            try CAMCommand.infer(
                dataset: try data.dataset(), checkpoint: checkpoint, out: out,
                scales: try scales.map {
                    try parseNumbers(
                        $0, option: "--scales", positive: true, minimum: CAMCommand.minimumInferenceScale,
                        maximum: CAMCommand.maximumInferenceScale)
                }, precision: precision, communicator: communicator)
        }
    }

    static func infer(
        dataset: VOCDataset, checkpoint: String, out: String, scales: [Double]?, precision: ComputePrecision? = nil,
        communicator: Communicator = .single
    ) throws {
        let progress = ProgressBar("cam infer", total: communicator.share(of: dataset.samples).count)
        try CAMStage.infer(
            dataset: dataset, checkpoint: checkpoint, out: out, scales: scales, precision: precision,
            progress: { _, _ in progress.advance() },
            communicator: communicator)
        Log.info("cam infer: \(out)")
    }

    struct Sweep: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Score CAM labels against ground truth for a range of background thresholds.",
            discussion: "Prints one line per threshold (or, with --json, one object: thresholds → mIoU, and the best).")

        @OptionGroup var data: DatasetOptions
        @Option(help: ArgumentHelp("CAM file from `wsss cam infer`. (required)", valueName: "file")) var cams: String
        @Option(help: ArgumentHelp("Thresholds as start:stop:step.", valueName: "range")) var thresholds = "0.05:0.60:0.05"
        @Flag(help: "Print JSON.") var json = false

        func run() throws {
            let parts = thresholds.split(separator: ":").compactMap { Double($0) }
            guard parts.count == 3, parts[2] > 0, parts[0] <= parts[1] else {
                throw ValidationError("--thresholds must be start:stop:step")
            }
            let values = Array(stride(from: parts[0], through: parts[1] + 1e-9, by: parts[2])).map { Float($0) }
            let dataset = try data.dataset(requireLabels: true)
            let progress = ProgressBar("cam sweep", total: dataset.samples.count)
            let sweep = try CAMThresholdSweep.run(dataset: dataset, camFile: cams, thresholds: values) { progress.advance() }
            let (scores, best) = (sweep.miou, sweep.best)
            if json {
                printJSON([
                    "thresholds": values.map(Double.init), "miou": scores, "best_threshold": Double(values[best]),
                    "best_miou": scores[best],
                ])
            } else {
                print("bg_threshold  mIoU (%)")
                for (t, s) in zip(values, scores) {
                    print(String(format: "%12.2f  %7.2f%@", t, s, t == values[best] ? "  ← best" : ""))
                }
            }
        }
    }
}
