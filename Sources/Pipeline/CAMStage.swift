import Autograd
import DenseCRF
import Datasets
import Evaluation
import Distributed
import Foundation
import Imaging
import PseudoLabels
import Training

/// CAMs of a split from a trained CAM classifier, into one HDF5 file (`CAMFile`'s layout).
public enum CAMStage {
    /// Multi-scale + flip CAMs of each image's present classes; `scales` and `inference` nil =
    /// the checkpoint's (`cam.inference_scales`, `cam.make_cam`).
    ///
    /// With a `communicator` of several ranks, each rank computes every N-th image into a part
    /// file beside `out` (`<out>.rank<r>`), and rank 0 merges the parts into `out` in the split's
    /// order and removes them; `progress` counts this rank's share.
    /// - Throws: `TrainingError.badCheckpoint` when the checkpoint's classes are not the dataset's,
    ///   `DistributedError`.
    public static func infer(
        dataset: VOCDataset, checkpoint: String, out: String, scales: [Double]? = nil, inference: CAMInference? = nil,
        precision: ComputePrecision? = nil, progress: (Int, Int) -> Void = { _, _ in }, communicator: Communicator = .single
    ) throws {
        if communicator.size > 1 {
            let part = "\(out).rank\(communicator.rank)"
            try infer(
                dataset: dataset.subset(communicator.share(of: dataset.samples)), checkpoint: checkpoint, out: part,
                scales: scales,
                inference: inference, precision: precision, progress: progress)
            try communicator.barrier()
            if communicator.isWriter {
                let parts = try (0..<communicator.size).map { try CAMFile(readingFrom: "\(out).rank\($0)") }
                let usedScales = try scales ?? CAMTraining.load(checkpoint).options.inferenceScales
                // The shares are every N-th image: the k-th id of the split sits in part k mod N.
                let position = Dictionary(uniqueKeysWithValues: dataset.samples.enumerated().map { ($0.element.id, $0.offset) })
                try CAMFile.write(ids: dataset.samples.map(\.id), classNames: dataset.classes.names, scales: usedScales, to: out)
                { id in
                    try parts[position[id]! % communicator.size].cams(for: id)
                }
                for r in 0..<communicator.size { try? FileManager.default.removeItem(atPath: "\(out).rank\(r)") }
            }
            try communicator.barrier()
            return
        }
        let (model, options, classes) = try CAMTraining.load(checkpoint)
        guard classes == dataset.classes.names else {
            throw TrainingError.badCheckpoint(
                path: checkpoint,
                reason:
                    "trained for classes \(classes.joined(separator: ",")), the dataset has \(dataset.classes.names.joined(separator: ","))"
            )
        }
        let scales = scales ?? options.inferenceScales
        let byID = Dictionary(uniqueKeysWithValues: dataset.samples.map { ($0.id, $0) })
        var done = 0
        let arithmetic = Kernels.productArithmetic(for: precision ?? options.precision)
        try CAMFile.write(ids: dataset.samples.map(\.id), classNames: classes, scales: scales, to: out) { id in
            let sample = byID[id]!
            let image = try Image.readRGB(from: sample.imagePath)
            let cams = try Kernels.withProducts(arithmetic) {
                CAMTraining.cams(
                    model: model, image: image, classes: try dataset.imageLabels(of: sample), scales: scales,
                    inference: inference ?? options.inference)
            }
            done += 1
            progress(done, dataset.samples.count)
            return cams
        }
    }
}

/// mIoU of a DeepLab-v2 checkpoint on a labelled split.
public enum EvaluationStage {
    /// Per-class IoU and mIoU; logits (the MSC max-fused ones when `msc`, which nil leaves to the
    /// checkpoint's training setting) upsampled to each image, averaged over `scales` and flips.
    /// `onImage` receives each prediction (e.g. to write it).
    /// With a `communicator` of several ranks, each rank evaluates every N-th image (`onImage`
    /// and `progress` see this rank's share) and the confusion matrices are summed: every rank
    /// returns the whole split's report.
    /// - Throws: `TrainingError.badCheckpoint` when the class counts differ, `DistributedError`.
    public static func evaluate(
        checkpoint: String, dataset: VOCDataset, scales: [Double], flip: Bool, msc: Bool? = nil, crf: DenseCRF.Parameters? = nil,
        precision: ComputePrecision = .fp32,
        onImage: (String, LabelMap) throws -> Void = { _, _ in }, progress: (Int, Int) -> Void = { _, _ in },
        communicator: Communicator = .single
    ) throws -> SegmentationReport {
        let (model, options, classes) = try SegmentationTraining.load(checkpoint)
        guard classes.count == dataset.classes.count else {
            throw TrainingError.badCheckpoint(
                path: checkpoint, reason: "has \(classes.count) classes, the dataset \(dataset.classes.count)")
        }
        var done = 0
        let share = dataset.subset(communicator.share(of: dataset.samples))
        let matrix = try communicator.sum(
            try SegmentationTraining.evaluate(
                model: model, dataset: share, preprocessing: options.preprocessing, scales: scales.isEmpty ? [1] : scales,
                flip: flip,
                msc: msc ?? options.msc, precision: precision,
                refine: crf.map { parameters in
                    let crf = DenseCRF(parameters: parameters)
                    return { image, scores, id in
                        try crf.infer(image: image, probabilities: scores.scalars, classes: scores.shape[0], source: id).labels
                    }
                },
                onImage: onImage,
                progress: {
                    done += 1
                    progress(done, share.samples.count)
                }))
        return matrix.report(classNames: dataset.classes.names)
    }
}

/// The background threshold sweep of CAM labels (IRN's and SEPL's way of choosing
/// `cam.bg_threshold`): each threshold's CAM labels scored against the ground truth.
public enum CAMThresholdSweep {
    /// mIoU (%) per threshold and the best one.
    public struct Result: Sendable {
        public var thresholds: [Float]
        public var miou: [Double]
        public var best: Int
    }

    /// Scores `thresholds` on every image of `dataset` (which needs its label PNGs) with the CAMs
    /// of `camFile`; `progress` after each image.
    /// - Throws: dataset and CAM file errors naming the file.
    public static func run(dataset: VOCDataset, camFile: String, thresholds: [Float], progress: () -> Void = {}) throws -> Result
    {
        precondition(!thresholds.isEmpty, "CAMThresholdSweep: no thresholds")
        let file = try CAMFile(readingFrom: camFile)
        let names = dataset.classes.names
        var matrices = thresholds.map { _ in ConfusionMatrix(classCount: names.count) }
        for sample in dataset.samples {
            let (image, truth) = try dataset.load(sample)
            guard let truth else {
                throw DatasetError.missingFile(path: "\(dataset.labelDirectory)/\(sample.id).png", what: "label PNG")
            }
            let cams = try file.cams(for: sample.id, width: image.width, height: image.height)
            for (k, t) in thresholds.enumerated() {
                try matrices[k].add(prediction: CAMThreshold(background: t).labels(cams).values, groundTruth: truth.values)
            }
            progress()
        }
        let scores = matrices.map { $0.report(classNames: names).meanIoU }
        return Result(thresholds: thresholds, miou: scores, best: scores.indices.max { scores[$0] < scores[$1] }!)
    }
}
