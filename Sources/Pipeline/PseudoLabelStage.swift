import DenseCRF
import Autograd
import Datasets
import Dispatch
import Distributed
import Evaluation
import Foundation
import Imaging
import PseudoLabels
import Reporting
import SegmentAnything
import Training

/// Problems with how a stage was asked to run (a proposal spec, a missing checkpoint), naming
/// the option or recipe key.
public struct PipelineError: LocalizedError, Equatable {
    public let setting: String
    public let message: String
    public init(_ setting: String, _ message: String) { (self.setting, self.message) = (setting, message) }
    public var errorDescription: String? { "\(setting): \(message)" }
}

/// Pseudo-labels for every image of a split: one `PseudoLabeler` run over the images in
/// parallel, a palette PNG per image in `outDirectory`, optional visualisations, and the scores
/// against ground truth where it exists. Sources of seeds, proposals and box masks are values the
/// caller passes in (any `ProposalSource`, any `BoxPrompter`), so a Swift user plugs in their own.
public struct PseudoLabelStage {
    public var labeler: PseudoLabeler
    public var outDirectory: String
    /// Side-by-side panels (image, seeds, proposals, result, ground truth) for the first N images,
    /// in `<out>/visualize/`.
    public var visualize = 0

    /// Applied to each label map before it is written and scored, e.g. a dense CRF
    /// (`DenseCRF.refine`, ignore pixels stay 255): (image, labels, id) → labels.
    public var refine: (@Sendable (Image, LabelMap, String) throws -> LabelMap)?

    public init(labeler: PseudoLabeler, outDirectory: String, visualize: Int = 0) {
        (self.labeler, self.outDirectory, self.visualize) = (labeler, outDirectory, visualize)
    }

    /// What a run wrote and found.
    public struct Outcome {
        /// Scores against ground truth, nil when no image had any.
        public var report: SegmentationReport?
        /// The confusion matrix behind `report` (nil when no image had ground truth).
        public var matrix: ConfusionMatrix?
        public var images: Int
        public var scoredImages: Int
        /// Boxes no proposal matched; detection boxes clipped to their image / dropped outside it.
        public var unmatchedBoxes = 0
        public var clippedBoxes = 0
        public var outsideBoxes = 0
        /// Ids in the detection file that name no image of the split.
        public var strayDetectionIDs: [String] = []
        /// Detection phrases that named no class (skipped, as Sun et al. skip them), with counts.
        public var skippedPhrases: [String: Int] = [:]

        /// One line per thing a user should know: boxes that matched nothing, were clipped or
        /// dropped, detections for images not in `split`.
        public func warnings(split: String) -> [String] {
            var lines: [String] = []
            if unmatchedBoxes > 0 { lines.append("\(unmatchedBoxes) boxes matched no proposal") }
            if clippedBoxes + outsideBoxes > 0 {
                lines.append(
                    "\(clippedBoxes) detection boxes were clipped to their image, \(outsideBoxes) lay wholly outside it and were dropped"
                )
            }
            if !skippedPhrases.isEmpty {
                let top = skippedPhrases.sorted { ($1.value, $0.key) < ($0.value, $1.key) }.prefix(5).map {
                    "'\($0.key)' \($0.value)x"
                }
                lines.append(
                    "\(skippedPhrases.values.reduce(0, +)) detections had a phrase no class claims and were skipped: "
                        + top.joined(separator: ", ") + (skippedPhrases.count > 5 ? ", …" : ""))
            }
            if !strayDetectionIDs.isEmpty {
                lines.append(
                    "the detection file has detections for \(strayDetectionIDs.count) ids that are not in split \(split): "
                        + strayDetectionIDs.prefix(5).joined(separator: ", ") + (strayDetectionIDs.count > 5 ? ", …" : ""))
            }
            return lines
        }
    }

    /// Labels every sample of `dataset`; `progress` is called once per image (from worker threads).
    /// - Throws: the first image's error (missing or bad seeds, proposals, files), naming the file.
    public func run(on dataset: VOCDataset, progress: @Sendable @escaping () -> Void = {}) throws -> Outcome {
        try checkDetectionsCover(dataset)
        try FileManager.default.createDirectory(atPath: outDirectory, withIntermediateDirectories: true)
        if visualize > 0 {
            try FileManager.default.createDirectory(atPath: outDirectory + "/visualize", withIntermediateDirectories: true)
        }
        let samples = dataset.samples
        let classes = dataset.classes.count
        let chunks = max(1, min(samples.count, Runtime.threads * 4))
        var partial = [Result<Tally, Error>](repeating: .success(Tally(classes: classes)), count: chunks)
        partial.withUnsafeMutableBufferPointer { buffer in
            let results = buffer
            DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
                results[chunk] = Result {
                    var tally = Tally(classes: classes)
                    for k in (samples.count * chunk / chunks)..<(samples.count * (chunk + 1) / chunks) {
                        try label(samples[k], index: k, of: dataset, into: &tally)
                        progress()
                    }
                    return tally
                }
            }
        }
        var total = Tally(classes: classes)
        for result in partial { total.merge(try result.get()) }
        var outcome = Outcome(report: nil, images: samples.count, scoredImages: total.scored)
        (outcome.unmatchedBoxes, outcome.clippedBoxes, outcome.outsideBoxes) = (total.unmatched, total.clipped, total.outside)
        if total.scored > 0 {
            outcome.report = total.matrix.report(classNames: dataset.classes.names)
            outcome.matrix = total.matrix
        }
        if let detections = labeler.detectionFile {
            let known = Set(samples.map(\.id))
            outcome.strayDetectionIDs = detections.detections.keys.filter { !known.contains($0) }.sorted()
            outcome.skippedPhrases = detections.skippedPhrases
        }
        return outcome
    }

    /// What a share of the images adds up to.
    private struct Tally {
        var matrix: ConfusionMatrix
        var scored = 0, unmatched = 0, clipped = 0, outside = 0
        init(classes: Int) { matrix = ConfusionMatrix(classCount: classes) }

        mutating func merge(_ other: Tally) {
            matrix.merge(other.matrix)
            (scored, unmatched, clipped, outside) = (
                scored + other.scored, unmatched + other.unmatched, clipped + other.clipped, outside + other.outside
            )
        }
    }

    /// A detection file none of whose ids is in the split (another dataset's, or ids spelled
    /// otherwise) would give every image an empty label map: refused before anything is written.
    private func checkDetectionsCover(_ dataset: VOCDataset) throws {
        guard let detections = labeler.detectionFile else { return }
        let known = Set(dataset.samples.map(\.id))
        let ids = detections.detections.keys.sorted()
        guard !ids.contains(where: known.contains) else { return }
        throw PseudoLabelError.malformed(
            path: detections.path,
            reason: ids.isEmpty
                ? "holds no image ids"
                : "none of its \(ids.count) image ids is in split \(dataset.split) (e.g. \(ids.prefix(3).joined(separator: ", ")))"
        )
    }

    /// One image: its labels (refined), its PNG, its score and, among the first `visualize`, its panel.
    private func label(_ sample: Sample, index: Int, of dataset: VOCDataset, into tally: inout Tally) throws {
        let (image, truth) = try dataset.load(sample)
        if case .groundTruth = labeler.method, truth == nil {
            throw DatasetError.missingFile(
                path: "\(dataset.labelDirectory)/\(sample.id).png", what: "label PNG (the ground truth --source gt copies)")
        }
        let result = try labeler.labels(
            id: sample.id, image: image, imageClasses: try dataset.imageLabels(of: sample), groundTruth: truth)
        let labels = try refine.map { try $0(image, result.labels, sample.id) } ?? result.labels
        try labels.writePNG(to: "\(outDirectory)/\(sample.id).png")
        if let truth {
            try tally.matrix.add(prediction: labels.values, groundTruth: truth.values)
            tally.scored += 1
        }
        tally.unmatched += result.unmatchedBoxes
        tally.clipped += result.clippedBoxes
        tally.outside += result.outsideBoxes
        if index < visualize {
            try Self.visualization(image: image, result: result, truth: truth, classNames: dataset.classes.names)
                .writePNG(to: "\(outDirectory)/visualize/\(sample.id).png")
        }
    }

    /// `run` with the images split across the ranks of `communicator` (every N-th image; rank 0
    /// alone draws the visualisations): every rank writes its share's PNGs, and every rank gets
    /// the whole split's outcome (confusion matrices and counts summed).
    /// - Throws: what `run` throws, `DistributedError`.
    public func run(on dataset: VOCDataset, communicator: Communicator, progress: @Sendable @escaping () -> Void = {}) throws
        -> Outcome
    {
        // Temporary files a killed run left (rank 0 clears them before any rank writes).
        if communicator.isWriter { RunFolder.removeStaleTemporaries(in: outDirectory) }
        guard communicator.size > 1 else { return try run(on: dataset, progress: progress) }
        try communicator.barrier()
        var mine = self
        if !communicator.isWriter { mine.visualize = 0 }
        var outcome = try mine.run(on: dataset.subset(communicator.share(of: dataset.samples)), progress: progress)
        let classes = dataset.classes.count
        let local = outcome.matrix ?? ConfusionMatrix(classCount: classes)
        let matrix = try communicator.sum(local)
        let counts = try communicator.allreduceSum(
            [outcome.scoredImages, outcome.unmatchedBoxes, outcome.clippedBoxes, outcome.outsideBoxes].map(Double.init)
        ).map { Int($0) }
        (outcome.scoredImages, outcome.unmatchedBoxes, outcome.clippedBoxes, outcome.outsideBoxes) = (
            counts[0], counts[1], counts[2], counts[3]
        )
        outcome.images = dataset.samples.count
        outcome.matrix = counts[0] > 0 ? matrix : nil
        outcome.report = counts[0] > 0 ? matrix.report(classNames: dataset.classes.names) : nil
        if let detections = labeler.detectionFile {
            // Against the whole split, not this rank's share.
            let known = Set(dataset.samples.map(\.id))
            outcome.strayDetectionIDs = detections.detections.keys.filter { !known.contains($0) }.sorted()
        }
        return outcome
    }

    /// Image, seeds, proposals, result and ground truth side by side, each captioned, with a
    /// legend of the classes the label panels show (VOC palette colours).
    public static func visualization(image: Image, result: PseudoLabelResult, truth: LabelMap?, classNames: [String]) -> Image {
        var panels: [(caption: String, image: Image)] = [("image", image)]
        if let seeds = result.seeds { panels.append(("seeds (CAM)", image.overlaid(with: seeds))) }
        if !result.proposals.isEmpty {
            panels.append(
                (
                    "proposals (\(result.proposals.count))",
                    image.withRegions(result.proposals.sorted { $0.area > $1.area }.map(\.bitmap))
                ))
        }
        panels.append(("pseudo-label", image.overlaid(with: result.labels)))
        if let truth { panels.append(("ground truth", image.overlaid(with: truth))) }
        let shown = [result.seeds, result.labels, truth].compactMap { $0 }
        return Image.panels(panels, legend: Image.classLegend(names: classNames, present: shown))
    }

    /// A proposal source from its spec (`ProposalSpec`): `sa1b:DIR`, `masks:DIR`, `index:DIR` or
    /// `felzenszwalb`; a relative DIR is inside `root` when given. (`sam` is `samProposals`, which
    /// needs a model.)
    /// - Throws: `PipelineError` naming `setting` for an unknown kind or `sam`, `PseudoLabelError` for a missing folder.
    public static func proposalSource(
        _ spec: String, felzenszwalb: Felzenszwalb.Options = .init(), relativeTo root: String? = nil,
        setting: String = "--proposals"
    ) throws -> ProposalSource {
        guard let source = try ProposalSpec(spec, relativeTo: root, setting: setting).source(felzenszwalb: felzenszwalb) else {
            throw PipelineError(setting, "'sam' needs a SAM model (PseudoLabelStage.samProposals)")
        }
        return source
    }

    /// SAM's automatic masks for every image of `dataset`, computed once into `cache` (amg.py
    /// JSON per image, reused by later runs) and read back as proposals.
    /// `settings` (`SAMMaskFolder.settings`) key the cache: masks recorded with other settings
    /// are moved aside or refused as `replace` says, never reused.
    public static func samProposals(
        for dataset: VOCDataset, model: SAM, options: AutomaticMaskGeneratorOptions, cache: String,
        settings: [String: String]? = nil,
        replace: SAMMaskFolder.ReplacePolicy = .never, progress: (String, Int?) -> Void = { _, _ in }
    ) throws -> (source: SA1BProposals, computed: Int, cached: Int, movedAside: String?) {
        let generator = try AutomaticMaskGenerator(predictor: SAMPredictor(model: model), options: options)
        let items = dataset.samples.map { SAMMaskFolder.Item(id: $0.id, imagePath: $0.imagePath) }
        let done = try SAMMaskFolder.generate(
            items, generator: generator, into: cache, settings: settings, replace: replace, progress: progress)
        return (SA1BProposals(directory: cache), done.processed, done.skipped, done.movedAside)
    }
}

extension PseudoLabelStage {
    /// A `refine` that runs the dense CRF on each label map (`DenseCRF.refine`: labelled pixels
    /// at `confidence`, ignore pixels uniform and written back as 255).
    public static func crfRefinement(_ parameters: DenseCRF.Parameters, classes: Int, confidence: Float = 0.7)
        -> @Sendable (Image, LabelMap, String) throws -> LabelMap
    {
        let crf = DenseCRF(parameters: parameters)
        return { image, labels, id in
            try crf.refine(labels: labels, image: image, classes: classes, confidence: confidence, source: id)
        }
    }
}
