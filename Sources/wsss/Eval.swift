import ArgumentParser
import Autograd
import Datasets
import DenseCRF
import Distributed
import Evaluation
import HDF5
import Foundation
import Imaging
import Pipeline
import Reporting
import PseudoLabels
import SegmentAnything
import Training

/// `--msc` of eval and predict: which logits are scored.
enum MSCChoice: String, ExpressibleByArgument, CaseIterable {
    /// As the checkpoint was trained (`model.msc`).
    case auto
    /// The MSC model's max-fused logits (deeplab-pytorch's test).
    case on
    /// The network's single-scale logits.
    case off

    /// The `msc` argument of `EvaluationStage.evaluate`: nil leaves it to the checkpoint.
    var value: Bool? {
        switch self {
        case .auto: nil
        case .on: true
        case .off: false
        }
    }

    static let help = ArgumentHelp(
        "Score the MSC max-fused logits of scales 1, 0.75, 0.5 (deeplab-pytorch's test), on, or the single-scale ones, off; auto: as the checkpoint trained (model.msc).",
        valueName: "mode")
}

/// `wsss eval`: mIoU of a checkpoint on a labelled split.
struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval", abstract: "Evaluate a DeepLab-v2 checkpoint on a labelled split: per-class IoU table and mIoU.",
        discussion:
            "Logits (MSC-fused for a checkpoint trained with MSC, unless --msc off) are upsampled bilinearly to each image's size; --scales/--flip average softmax scores over scales and mirror images."
    )

    @OptionGroup var data: EvalDatasetOptions
    @OptionGroup var runtime: RuntimeOptions
    @Option(help: ArgumentHelp("Checkpoint (final.h5). (required)", valueName: "file")) var checkpoint: String
    @Option(help: ArgumentHelp("Scales, e.g. 0.5,0.75,1.0,1.25,1.5.", valueName: "list")) var scales = "1.0"
    @Flag(help: "Also average over horizontal flips.") var flip = false
    @Option(help: MSCChoice.help) var msc = MSCChoice.auto
    @Option(
        help: ArgumentHelp(
            "Products' arithmetic: fp32, bf16 (bf16 inputs, fp32 sums; emulated where the CPU has no AVX512-BF16: for accuracy, not speed) or auto (bf16 only where the CPU has it).",
            valueName: "fp32|bf16|auto"))
    var precision: ComputePrecision = .fp32
    @Flag(help: "Print one JSON object (as `wsss score --json`).") var json = false
    @Option(
        help: ArgumentHelp(
            "Also draw the per-class IoU as a bar chart: a PNG here and an SVG beside it. (default: none)", valueName: "file.png")
    ) var plot: String?
    @Flag(help: "Refine each prediction with the fully-connected CRF (docs/CRF.md; settings below) before scoring.") var crf =
        false
    @OptionGroup(title: "CRF (with --crf)") var crfOptions: CRFOptions
    @Flag(
        help:
            "Split the images across the ranks of mpirun/srun and sum their confusion matrices (docs/DISTRIBUTED.md); rank 0 prints. (default: off)"
    ) var distributed = false

    func run() throws {
        let communicator = try startDistributed(distributed, command: "eval")
        try runtime.apply()
        let report = try evaluateCheckpoint(
            checkpoint, dataset: try data.dataset(requireLabels: true),
            scales: try parseNumbers(
                scales, option: "--scales", positive: true, minimum: CAMCommand.minimumInferenceScale,
                maximum: CAMCommand.maximumInferenceScale), flip: flip,
            msc: msc.value, crf: crf ? crfOptions.parameters : nil, precision: precision, communicator: communicator)
        guard communicator.isWriter else { return }
        if let plot {
            let chart = BarChart(
                report: report.report, title: "\((checkpoint as NSString).lastPathComponent) on \(data.split): per-class IoU")
            try chart.render(width: 800).writePNG(to: plot)
            try chart.writeSVG(to: ((plot as NSString).deletingPathExtension) + ".svg", width: 800)
        }
        if json {
            print(report.report.jsonText(images: report.images))
        } else {
            print(report.report.table(title: "\(checkpoint) on \(data.split): \(report.images) images"))
        }
    }
}

func evaluateCheckpoint(
    _ checkpoint: String, dataset: VOCDataset, scales: [Double], flip: Bool, msc: Bool? = nil, crf: DenseCRF.Parameters? = nil,
    precision: ComputePrecision = .fp32, predictions: String? = nil, communicator: Communicator = .single
) throws -> (report: SegmentationReport, images: Int) {
    let progress = ProgressBar("eval \(dataset.split)", total: communicator.share(of: dataset.samples).count)
    if let predictions { try FileManager.default.createDirectory(atPath: predictions, withIntermediateDirectories: true) }
    let report = try EvaluationStage.evaluate(
        checkpoint: checkpoint, dataset: dataset, scales: scales, flip: flip, msc: msc, crf: crf, precision: precision,
        onImage: { id, labels in if let predictions { try labels.writePNG(to: "\(predictions)/\(id).png") } },
        progress: { _, _ in progress.advance() }, communicator: communicator)
    return (report, dataset.samples.count)
}
