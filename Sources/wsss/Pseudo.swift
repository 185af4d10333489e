import ArgumentParser
import Autograd
import Datasets
import Dispatch
import Evaluation
import Foundation
import Imaging
import PseudoLabels
import SegmentAnything

/// `wsss pseudo`: writes pseudo-labels for a split from any source and scores them.
struct Pseudo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write pseudo-labels (VOC palette PNGs) for a split from CAMs, SEPL, boxes, ground truth or a folder, and score them.",
        discussion: """
            Sources: cam (CAMs + background threshold), sepl (seeds sharpened by proposals, the SEPL rule), boxes (one \
            proposal per detection box, most confident painted last; boxes from --detections or from the seeds' connected \
            components), gt (the ground truth, an upper bound), folder (--seeds as they are). Seeds are --cams (a \
            `wsss cam infer` file) or --seeds (any folder of label PNGs, e.g. another method's CAM labels). Proposals: \
            sa1b:DIR (SA-1B / amg.py JSON with COCO RLE), masks:DIR (a folder of 0/255 PNGs per image), index:DIR (one \
            index map per image, PNG or HDF5), felzenszwalb (computed), sam (SAM's automatic masks from --sam-checkpoint, \
            computed once into --sam-cache and reused). With --source boxes and --sam-checkpoint (and no --proposals), SAM \
            is prompted with each box (the Grounded-SAM route). Where ground truth exists the per-class IoU \
            table and mIoU of the result are printed (--json: the object of `wsss score --json`).
            """)

    enum Source: String, ExpressibleByArgument, CaseIterable { case cam, sepl, boxes, gt, folder }

    @OptionGroup var data: DatasetOptions
    @OptionGroup var runtime: RuntimeOptions

    @Option(help: ArgumentHelp("Pseudo-label source.", valueName: "source"))
    var source: Source = .sepl

    @Option(help: ArgumentHelp("Output folder for <id>.png (created). (required)", valueName: "dir"))
    var out: String

    @Option(help: ArgumentHelp("CAM file from `wsss cam infer` (seeds for cam, sepl, boxes). (default: none)", valueName: "file"))
    var cams: String?

    @Option(help: ArgumentHelp("Folder of seed label PNGs instead of --cams (any WSSS method's labels). (default: none)", valueName: "dir"))
    var seeds: String?

    @Option(help: ArgumentHelp("Segment proposals: sa1b:DIR, masks:DIR, index:DIR, felzenszwalb or sam. (default: none)", valueName: "spec"))
    var proposals: String?

    @Option(help: ArgumentHelp("SAM weights (official .pth or our HDF5) for --proposals sam or box prompts. (default: none)", valueName: "file"))
    var samCheckpoint: String?

    @Option(help: ArgumentHelp("SAM configuration: vit_b, vit_l, vit_h or a YAML file. (default: read off the weights)", valueName: "name|file"))
    var samConfig: String?

    @Option(help: ArgumentHelp("Folder for SAM's masks (amg.py JSON per image), reused when present. (default: <out>/sam_masks)", valueName: "dir"))
    var samCache: String?

    @OptionGroup(title: "SAM mask generator (--proposals sam)") var samGenerator: SAMGeneratorOptions

    @Option(help: ArgumentHelp("Detections JSON for --source boxes (default: boxes from the seeds' components).", valueName: "file"))
    var detections: String?

    @Option(help: ArgumentHelp("CAM background threshold.", valueName: "t"))
    var bgThreshold: Float = 0.15

    @Option(help: ArgumentHelp("CAM confidence band written as 255 (ignore), e.g. 0.1,0.3. (default: none)", valueName: "low,high"))
    var ignoreBand: String?

    @Option(help: ArgumentHelp("SEPL: select a proposal when more than this share of it lies in the class region.", valueName: "s"))
    var maskShare: Double = 0.5

    @Option(help: ArgumentHelp("SEPL: or when it covers at least this share of the class region.", valueName: "s"))
    var regionShare: Double = 0.85

    @Flag(help: "SEPL: write 255 where selected proposals of two classes overlap.")
    var ignoreConflicts = false

    @Option(help: ArgumentHelp("Boxes: minimum detection score.", valueName: "s"))
    var boxThreshold: Double = 0.3

    @Option(help: ArgumentHelp("Felzenszwalb scale, sigma and minimum size.", valueName: "scale,sigma,min"))
    var felzenszwalb: String = "100,0.8,20"

    @Flag(help: "Print one JSON object (as `wsss score --json`) instead of the table.")
    var json = false

    @Option(help: ArgumentHelp("Write side-by-side overlays (image, seeds, proposals, result, ground truth) of the first N images to <out>/visualize.", valueName: "n"))
    var visualize: Int = 0

    func run() throws {
        try runtime.apply()
        guard let (report, scored) = try generate() else { return }
        if json { printJSON(report.jsonObject(images: scored)) } else { print(report.table(title: "pseudo-labels (\(source.rawValue)) vs ground truth: \(scored) images")) }
    }

    /// Writes the pseudo-labels; returns their scores when ground truth exists.
    func generate() throws -> (SegmentationReport, Int)? {
        let dataset = try data.dataset()
        let names = dataset.classes.names
        var proposalSource: ProposalSource?
        var boxPrompter: BoxPrompter?
        if proposals == "sam" || (source == .boxes && proposals == nil && samCheckpoint != nil) {
            guard let samCheckpoint else { throw ValidationError("--proposals sam needs --sam-checkpoint (an official sam_vit_*.pth or our HDF5 copy)") }
            let model = try SAMModelOptions(checkpoint: samCheckpoint, config: samConfig).load()
            if proposals == "sam" {
                let cache = samCache ?? out + "/sam_masks"
                let generator = try AutomaticMaskGenerator(predictor: SAMPredictor(model: model), options: samGenerator.options)
                let items = dataset.samples.map { SAMMaskFolder.Item(id: $0.id, imagePath: $0.imagePath) }
                let progress = ProgressBar("sam masks", total: items.count)
                let done = try SAMMaskFolder.generate(items, generator: generator, into: cache) { _, found in
                    progress.advance(extra: found.map { "\($0) masks" } ?? "cached")
                }
                Log.info("pseudo: SAM masks in \(cache) (\(done.processed) computed, \(done.skipped) cached)")
                proposalSource = SA1BProposals(directory: cache)
            } else {
                boxPrompter = SAMBoxPrompter(model: model, name: "sam:" + samCheckpoint)
            }
        } else {
            proposalSource = try Self.proposalSource(proposals, felzenszwalb: felzenszwalb)
        }
        let labeler = try PseudoLabeler(
            method: try method(), seeds: try seedSource(), proposals: proposalSource, boxPrompter: boxPrompter, classNames: names)
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        if visualize > 0 { try FileManager.default.createDirectory(atPath: out + "/visualize", withIntermediateDirectories: true) }
        let samples = dataset.samples
        let progress = ProgressBar("pseudo \(source.rawValue)", total: samples.count)
        let chunks = max(1, min(samples.count, Autograd.Runtime.threads * 4))
        var partial = [Result<(ConfusionMatrix, Int, Int), Error>](repeating: .success((ConfusionMatrix(classCount: names.count), 0, 0)), count: chunks)
        let boxCounts = NSLock()
        var (outsideBoxes, clippedBoxes) = (0, 0)
        partial.withUnsafeMutableBufferPointer { buffer in
            let results = buffer
            DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
                results[chunk] = Result {
                    var matrix = ConfusionMatrix(classCount: names.count)
                    var (scored, unmatched) = (0, 0)
                    for k in (samples.count * chunk / chunks)..<(samples.count * (chunk + 1) / chunks) {
                        let sample = samples[k]
                        let (image, truth) = try dataset.load(sample)
                        let classes = try dataset.imageLabels(of: sample)
                        let result = try labeler.labels(id: sample.id, image: image, imageClasses: classes, groundTruth: truth)
                        try result.labels.writePNG(to: "\(out)/\(sample.id).png")
                        if let truth {
                            try matrix.add(prediction: result.labels.values, groundTruth: truth.values)
                            scored += 1
                        }
                        unmatched += result.unmatchedBoxes
                        if result.outsideBoxes + result.clippedBoxes > 0 {
                            boxCounts.lock()
                            (outsideBoxes, clippedBoxes) = (outsideBoxes + result.outsideBoxes, clippedBoxes + result.clippedBoxes)
                            boxCounts.unlock()
                        }
                        if k < visualize { try Self.visualization(image: image, result: result, truth: truth).writePNG(to: "\(out)/visualize/\(sample.id).png") }
                        progress.advance()
                    }
                    return (matrix, scored, unmatched)
                }
            }
        }
        var matrix = ConfusionMatrix(classCount: names.count)
        var (scored, unmatched) = (0, 0)
        for result in partial {
            let (m, s, u) = try result.get()
            matrix.merge(m)
            (scored, unmatched) = (scored + s, unmatched + u)
        }
        Log.info("pseudo: \(samples.count) label PNGs in \(out)" + (unmatched > 0 ? "; \(unmatched) boxes matched no proposal" : ""))
        if outsideBoxes > 0 || clippedBoxes > 0 {
            Log.info("pseudo: warning: \(clippedBoxes) detection boxes were clipped to their image, \(outsideBoxes) lay wholly outside it and were dropped")
        }
        if let detections, source == .boxes {
            let known = Set(samples.map(\.id))
            let strays = try DetectionFile(path: detections, classNames: names).detections.keys.filter { !known.contains($0) }.sorted()
            if !strays.isEmpty {
                Log.info("pseudo: warning: \(detections) has detections for \(strays.count) ids that are not in split \(data.split): "
                    + strays.prefix(5).joined(separator: ", ") + (strays.count > 5 ? ", …" : ""))
            }
        }
        guard scored > 0 else {
            Log.info("pseudo: no ground truth to score against")
            return nil
        }
        return (matrix.report(classNames: names), scored)
    }

    func method() throws -> PseudoLabelMethod {
        switch source {
        case .cam, .folder: return .seeds
        case .sepl: return .sepl(SEPLMerge(maskShare: maskShare, regionShare: regionShare, ignoreConflicts: ignoreConflicts))
        case .boxes: return .boxes(BoxMerge(scoreThreshold: boxThreshold), detections: detections)
        case .gt: return .groundTruth
        }
    }

    func seedSource() throws -> SeedSource? {
        if cams != nil && seeds != nil { throw ValidationError("give --cams or --seeds, not both") }
        if source == .folder && seeds == nil { throw ValidationError("--source folder needs --seeds DIR") }
        if let seeds { return .folder(seeds) }
        guard let cams else { return nil }
        var band: ClosedRange<Float>?
        if let ignoreBand {
            let parts = ignoreBand.split(separator: ",").compactMap { Float($0) }
            guard parts.count == 2, parts[0] <= parts[1] else { throw ValidationError("--ignore-band must be low,high with low ≤ high, got '\(ignoreBand)'") }
            band = parts[0]...parts[1]
        }
        return .cams(path: cams, threshold: CAMThreshold(background: bgThreshold, ignoreBand: band))
    }

    /// Parses `sa1b:DIR`, `masks:DIR`, `index:DIR` or `felzenszwalb`.
    static func proposalSource(_ spec: String?, felzenszwalb: String) throws -> ProposalSource? {
        guard let spec else { return nil }
        if spec == "felzenszwalb" {
            let parts = try parseNumbers(felzenszwalb, option: "--felzenszwalb (scale,sigma,min-size)", count: 3...3)
            return FelzenszwalbProposals(options: .init(scale: parts[0], sigma: parts[1], minSize: Int(parts[2])))
        }
        guard let colon = spec.firstIndex(of: ":") else {
            throw ValidationError("--proposals must be sa1b:DIR, masks:DIR, index:DIR, felzenszwalb or sam, got '\(spec)'")
        }
        let (kind, directory) = (String(spec[..<colon]), String(spec[spec.index(after: colon)...]))
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw PseudoLabelError.missingFile(path: directory)
        }
        switch kind {
        case "sa1b": return SA1BProposals(directory: directory)
        case "masks": return MaskFolderProposals(directory: directory)
        case "index": return IndexMapProposals(directory: directory)
        default: throw ValidationError("unknown proposal kind '\(kind)' (sa1b, masks, index or felzenszwalb)")
        }
    }

    static func visualization(image: Image, result: PseudoLabelResult, truth: LabelMap?) -> Image {
        var panels = [image]
        if let seeds = result.seeds { panels.append(image.overlaid(with: seeds)) }
        if !result.proposals.isEmpty {
            panels.append(image.withRegions(result.proposals.sorted { $0.area > $1.area }.map(\.bitmap)))
        }
        panels.append(image.overlaid(with: result.labels))
        if let truth { panels.append(image.overlaid(with: truth)) }
        return Image.sideBySide(panels)
    }
}
