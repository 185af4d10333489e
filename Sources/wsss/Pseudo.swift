import ArgumentParser
import Autograd
import Datasets
import Dispatch
import Evaluation
import Distributed
import Foundation
import GroundingDINO
import Imaging
import Pipeline
import PseudoLabels
import SegmentAnything
import Training

/// `wsss pseudo`: writes pseudo-labels for a split from any source and scores them.
struct Pseudo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Write pseudo-labels (VOC palette PNGs) for a split from CAMs, SEPL, boxes, ground truth or a folder, and score them.",
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

    /// The `pseudo:` section's defaults: the flags' defaults are the recipe's.
    private static let defaults = PseudoSection()

    @OptionGroup var data: DatasetOptions
    @OptionGroup var runtime: RuntimeOptions

    @Option(help: ArgumentHelp("Pseudo-label source.", valueName: "source"))
    var source: Source = .sepl

    @Option(help: ArgumentHelp("Output folder for <id>.png (created). (required)", valueName: "dir"))
    var out: String

    @Option(help: ArgumentHelp("CAM file from `wsss cam infer` (seeds for cam, sepl, boxes). (default: none)", valueName: "file"))
    var cams: String?

    @Option(
        help: ArgumentHelp(
            "Folder of seed label PNGs instead of --cams (any WSSS method's labels). (default: none)", valueName: "dir"))
    var seeds: String?

    @Option(
        help: ArgumentHelp(
            "Segment proposals: sa1b:DIR, masks:DIR, index:DIR, felzenszwalb or sam. (default: none)", valueName: "spec"))
    var proposals: String?

    @Option(
        help: ArgumentHelp(
            "SAM weights (official .pth or our HDF5) for --proposals sam or box prompts. (default: none)", valueName: "file"))
    var samCheckpoint: String?

    @Option(
        help: ArgumentHelp(
            "SAM configuration: vit_b, vit_l, vit_h, vit_t (MobileSAM) or a YAML file. (default: read off the weights)",
            valueName: "name|file"))
    var samConfig: String?

    @Option(
        help: ArgumentHelp(
            "SAM's image encoder arithmetic: fp32, bf16 or auto (bf16 where the CPU has AVX512-BF16). (default: fp32)",
            valueName: "fp32|bf16|auto"))
    var samPrecision: ComputePrecision = .fp32

    @Flag(help: "SAM-HQ weights: masks from the HQ token alone (the official hq_token_only). (default: off)")
    var samHQTokenOnly = false

    @Option(
        help: ArgumentHelp(
            "Folder for SAM's masks (amg.py JSON per image), reused when present. (default: <out>/sam_masks)", valueName: "dir"))
    var samCache: String?

    @OptionGroup(title: "SAM mask generator (--proposals sam)") var samGenerator: SAMGeneratorOptions

    @Option(
        help: ArgumentHelp("Detections JSON for --source boxes (default: boxes from the seeds' components).", valueName: "file"))
    var detections: String?

    @Option(
        help: ArgumentHelp(
            "Grounding DINO weights for --source boxes without --detections: the detector runs here (Sun et al.'s route), its detections kept in <out>/detections.json. (default: none)",
            valueName: "file"))
    var detectorCheckpoint: String?

    @Option(help: ArgumentHelp("BERT's vocab.txt for --detector-checkpoint. (default: none)", valueName: "file"))
    var detectorVocab: String?

    @Option(
        help: ArgumentHelp(
            "swin_t, swin_b or a YAML file of the official config's names for --detector-checkpoint. (default: read off the weights)",
            valueName: "name|file"))
    var detectorConfig: String?

    @Option(help: ArgumentHelp("The detector's image sides: shorter, longest (the official 800, 1333).", valueName: "short,long"))
    var detectorSize = defaults.detectorSize.map(String.init).joined(separator: ",")

    @Option(help: ArgumentHelp("CAM background threshold.", valueName: "t"))
    var bgThreshold = CAMSection().bgThreshold

    @Option(
        help: ArgumentHelp("CAM confidence band written as 255 (ignore), e.g. 0.1,0.3. (default: none)", valueName: "low,high"))
    var ignoreBand: String?

    @Option(
        help: ArgumentHelp("SEPL: select a proposal when more than this share of it lies in the class region.", valueName: "s"))
    var maskShare = defaults.maskShare

    @Option(help: ArgumentHelp("SEPL: or when it covers at least this share of the class region.", valueName: "s"))
    var regionShare = defaults.regionShare

    @Flag(help: "SEPL: write 255 where selected proposals of two classes overlap (order-free rule).")
    var ignoreConflicts = defaults.ignoreConflicts

    @Option(
        help: ArgumentHelp(
            "SEPL: 'order-free' (ours: independent of class and mask order) or 'public' (cskyl/SAM_WSSS max_iou_imp2.py to the pixel: classes in id order, masks in file order, later classes overwrite; docs/PSEUDO-LABELS.md).",
            valueName: "rule"))
    var seplRule = defaults.seplRule

    @Flag(help: "Refine the pseudo-labels with the fully-connected CRF (docs/CRF.md; settings below); ignore pixels stay 255.")
    var crf = false

    @Option(
        help: ArgumentHelp(
            "With --crf: the probability given to a pixel's label (pydensecrf's unary_from_labels gt_prob).", valueName: "p"))
    var crfConfidence = CRFSection().confidence

    @OptionGroup(title: "CRF (with --crf)") var crfOptions: CRFOptions

    @Option(help: ArgumentHelp("Boxes: keep detections scoring above this (Grounded-SAM's box_threshold).", valueName: "s"))
    var boxThreshold = defaults.boxThreshold

    @Option(
        help: ArgumentHelp(
            "Boxes: and whose text_score, where the file gives one, is above this (Grounded-SAM's text_threshold).",
            valueName: "s"))
    var textThreshold = defaults.textThreshold

    @Option(
        help: ArgumentHelp(
            "Boxes: paint masks in 'detection' order, later over earlier (Sun et al.), or by ascending 'score' (the most confident wins).",
            valueName: "order"))
    var boxOrder = defaults.boxOrder

    @Option(help: ArgumentHelp("Felzenszwalb scale, sigma and minimum size.", valueName: "scale,sigma,min"))
    var felzenszwalb = defaults.felzenszwalb.map { $0.formatted() }.joined(separator: ",")

    @Flag(help: "Print one JSON object (as `wsss score --json`) instead of the table.")
    var json = false

    @Flag(
        help:
            "Split the images (and their SAM masks) across the ranks of mpirun/srun; the scores are summed and rank 0 prints them (docs/DISTRIBUTED.md). (default: off)"
    )
    var distributed = false

    @Flag(
        help:
            "SAM masks in --sam-cache made with other generator settings or weights (or with none recorded) are moved aside and recomputed. (default: off, such a cache is refused)"
    )
    var overwrite = false

    @Option(
        help: ArgumentHelp(
            "Write side-by-side overlays (image, seeds, proposals, result, ground truth) of the first N images to <out>/visualize.",
            valueName: "n"))
    var visualize: Int = 0

    /// The flags as the recipe's `pseudo:` section, the stage's one options type (`--source sepl
    /// --proposals felzenszwalb` is the recipe's `sepl-felzenszwalb`).
    var options: PseudoSection {
        get throws {
            var o = PseudoSection()
            o.source =
                switch source {
                case .cam: .cam
                case .sepl: proposals == "felzenszwalb" ? .seplFelzenszwalb : .sepl
                case .boxes: .boxes
                case .gt: .gt
                case .folder: .folder
                }
            (o.proposals, o.seeds, o.detections) = (proposals, seeds, detections)
            (o.maskShare, o.regionShare, o.ignoreConflicts, o.seplRule) = (maskShare, regionShare, ignoreConflicts, seplRule)
            (o.boxThreshold, o.textThreshold, o.boxOrder) = (boxThreshold, textThreshold, boxOrder)
            o.felzenszwalb = try parseNumbers(felzenszwalb, option: "--felzenszwalb (scale,sigma,min-size)", count: 3...3)
            (o.samCheckpoint, o.samConfig, o.samCache) = (samCheckpoint, samConfig, samCache)
            (o.detectorCheckpoint, o.detectorVocab, o.detectorConfig) = (detectorCheckpoint, detectorVocab, detectorConfig)
            o.detectorSize = try parseNumbers(detectorSize, option: "--detector-size (short,long)", count: 2...2).map { Int($0) }
            return o
        }
    }

    /// The other sections the stage reads: `cam.bg_threshold` and the CRF's.
    var camOptions: CAMSection {
        var cam = CAMSection()
        cam.bgThreshold = bgThreshold
        return cam
    }

    var crfSection: CRFSection {
        var section = crfOptions.section
        (section.pseudo, section.confidence) = (crf, crfConfidence)
        return section
    }

    /// Checked by the recipe's rules for the same keys (a share outside [0, 1] or NaN would run
    /// and give wrong labels silently).
    func validate() throws {
        try options.validateAsFlags(["detector_size": "--detector-size"])
        try camOptions.validateAsFlags()
        try crfSection.validateAsFlags(["confidence": "--crf-confidence"])
        guard visualize >= 0 else { throw ValidationError("--visualize must be 0 or more, got \(visualize)") }
        if detectorCheckpoint != nil {
            guard source == .boxes else { throw ValidationError("--detector-checkpoint is for --source boxes") }
            guard detections == nil else { throw ValidationError("give --detections or --detector-checkpoint, not both") }
            guard detectorVocab != nil else {
                throw ValidationError("--detector-checkpoint needs --detector-vocab (BERT's vocab.txt)")
            }
        }
        if let ignoreBand {
            let band = try parseNumbers(ignoreBand, option: "--ignore-band (low,high)", count: 2...2)
            guard band[0] >= 0 && band[0] <= band[1] && band[1] <= 1 else {
                throw ValidationError("--ignore-band must be low,high with 0 ≤ low ≤ high ≤ 1, got '\(ignoreBand)'")
            }
        }
    }

    func run() throws {
        let communicator = try startDistributed(distributed, command: "pseudo")
        try runtime.apply()
        guard let (report, scored) = try generate(communicator: communicator), communicator.isWriter else { return }
        if json {
            print(report.jsonText(images: scored))
        } else {
            print(report.table(title: "pseudo-labels (\(source.rawValue)) vs ground truth: \(scored) images"))
        }
    }

    /// Writes the pseudo-labels; returns their scores when ground truth exists.
    func generate(communicator: Communicator = .single) throws -> (SegmentationReport, Int)? {
        let dataset = try data.dataset()
        var proposalSource: ProposalSource?
        var boxPrompter: BoxPrompter?
        let spec = try proposals.map { try ProposalSpec($0) }
        if spec == .sam || (source == .boxes && ProposalSpec.boxesPromptSAM(proposals: spec, samCheckpoint: samCheckpoint)) {
            guard let samCheckpoint else {
                throw ValidationError("--proposals sam needs --sam-checkpoint (an official sam_vit_*.pth or our HDF5 copy)")
            }
            var modelOptions = SAMModelOptions(checkpoint: samCheckpoint, config: samConfig, precision: samPrecision)
            modelOptions.hqTokenOnly = samHQTokenOnly
            let model = try modelOptions.load()
            if proposals == "sam" {
                // Each rank computes the SAM masks of the images it labels.
                let cache = samCache ?? out + "/sam_masks"
                let settings = try SAMMaskFolder.settings(
                    options: samGenerator.options, checkpoint: samCheckpoint, configuration: samConfig,
                    precision: samPrecision, hqTokenOnly: samHQTokenOnly)
                if communicator.isWriter,
                    let aside = try SAMMaskFolder.prepare(cache, settings: settings, replace: overwrite ? .always : .never)
                {
                    Log.info("pseudo: the earlier SAM masks (other settings) moved to \(aside)")
                }
                try communicator.barrier()
                proposalSource = try Self.samProposals(
                    dataset: dataset.subset(communicator.share(of: dataset.samples)), model: model, options: samGenerator.options,
                    cache: cache)
            } else {
                boxPrompter = SAMBoxPrompter(model: model, name: "sam:" + samCheckpoint)
            }
        } else if let proposals {
            proposalSource = try PseudoLabelStage.proposalSource(proposals, felzenszwalb: try options.felzenszwalbOptions)
        }
        try runDetector(on: dataset, communicator: communicator)
        let labeler = try PseudoLabeler(
            method: try method(), seeds: try seedSource(), proposals: proposalSource, boxPrompter: boxPrompter,
            classNames: dataset.classes.names)
        if source == .boxes {
            // Say plainly where boxes and masks come from (docs/PSEUDO-LABELS.md, "Boxes").
            let boxes =
                detectorCheckpoint != nil
                ? "Grounding DINO's boxes (each image prompted with its classes, Sun et al.)"
                : detections != nil
                    ? "detection boxes" : "boxes from the seeds' connected components (our extension, not Sun et al.'s)"
            let masks =
                boxPrompter != nil
                ? "each prompting SAM" : "selecting proposals (no SAM: the proposal of best box IoU stands in for its mask)"
            Log.info("pseudo: \(boxes), \(masks), painted in \(boxOrder.rawValue) order")
        }
        var stage = PseudoLabelStage(labeler: labeler, outDirectory: out, visualize: visualize)
        if crf {
            stage.refine = PseudoLabelStage.crfRefinement(
                crfOptions.parameters, classes: dataset.classes.count, confidence: Float(crfConfidence))
        }
        let result = try Self.run(stage, on: dataset, label: source.rawValue, communicator: communicator)
        // The folder says what made it (`wsss train --labels` names it; the pipeline's folders do the same).
        if communicator.isWriter { try Provenance(try record(split: dataset.split)).write(out + "/provenance.json") }
        return result
    }

    /// What made the labels: the recipe keys the source depends on (as the pipeline records
    /// them; paths as given), the split, and the command.
    func record(split: String) throws -> [String: String] {
        let options = try self.options
        var all = options.textValues.merging(camOptions.textValues) { a, _ in a }
        if options.proposals == "sam" { all.merge(samGenerator.section.textValues) { a, _ in a } }
        var keys = PseudoSection.provenanceKeys(options.source)
        if options.seeds == nil { keys.removeAll { $0 == "pseudo.seeds" } }
        if crf && options.source != .gt {
            all.merge(crfSection.textValues) { a, _ in a }
            keys += CRFSection.keyNames.filter { $0 != "eval" }.map { "crf.\($0)" }
        }
        var values = all.filter { keys.contains($0.key) && $0.value != "null" }
        values.merge([
            "source": source.rawValue, "made_by": "wsss pseudo", "data.root": data.root, "data.split": split,
        ]) { a, _ in a }
        for (key, value) in ["cams": cams, "ignore_band": ignoreBand] { if let value { values[key] = value } }
        return values
    }

    /// Runs a stage with a progress bar and logs what it found; returns the scores.
    static func run(
        _ stage: PseudoLabelStage, on dataset: VOCDataset, label: String, communicator: Communicator = .single
    ) throws -> (SegmentationReport, Int)? {
        let progress = ProgressBar("pseudo \(label)", total: communicator.share(of: dataset.samples).count)
        let outcome = try stage.run(on: dataset, communicator: communicator) { progress.advance() }
        Log.info("pseudo: \(counted(outcome.images, "label PNG")) in \(stage.outDirectory)")
        for warning in outcome.warnings(split: dataset.split) { Log.info("pseudo: warning: " + warning) }
        guard let report = outcome.report else {
            Log.info("pseudo: no ground truth to score against")
            return nil
        }
        return (report, outcome.scoredImages)
    }

    /// SAM's masks for the split into `cache` (reused), as proposals, with a progress bar.
    static func samProposals(
        dataset: VOCDataset, model: SAM, options: AutomaticMaskGeneratorOptions, cache: String
    ) throws -> ProposalSource {
        let progress = ProgressBar("sam masks", total: dataset.samples.count)
        let sam = try PseudoLabelStage.samProposals(
            for: dataset, model: model, options: options, cache: cache
        ) { _, found in
            progress.advance(extra: found.map { "\($0) masks" } ?? "cached")
        }
        Log.info("pseudo: SAM masks in \(cache) (\(sam.computed) computed, \(sam.cached) cached)")
        return sam.source
    }

    func method() throws -> PseudoLabelMethod { try options.method(options.source, detections: detections ?? detectorOutput) }

    /// Where the detector's boxes go when this command runs it.
    var detectorOutput: String? { detectorCheckpoint.map { _ in out + "/detections.json" } }

    /// Runs Grounding DINO over the split (each rank its share; rank 0 assembles the file).
    func runDetector(on dataset: VOCDataset, communicator: Communicator) throws {
        guard let checkpoint = detectorCheckpoint, let vocabulary = detectorVocab, let output = detectorOutput else { return }
        let sides = try options.detectorSize
        var model = try DetectorOptions.parse([
            "--checkpoint", checkpoint, "--vocab", vocabulary, "--size", "\(sides[0])", "--max-size", "\(sides[1])",
        ])
        (model.config, model.boxThreshold, model.textThreshold) = (detectorConfig, boxThreshold, textThreshold)
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let stage = DetectionStage(detector: try model.detector(), output: output)
        let settings = try stage.settings(checkpoint: checkpoint, vocabulary: vocabulary, captions: "prompts: sun-et-al")
        if communicator.isWriter,
            let aside = try stage.prepare(settings: settings, replace: overwrite ? .always : .changedSettings)
        {
            Log.info("pseudo: the earlier detections (other settings) moved to \(aside)")
        }
        try communicator.barrier()
        let items = try DetectionStage.items(dataset: dataset, prompts: .sunEtAl)
        let mine = communicator.share(of: items)
        let progress = ProgressBar("detect", total: mine.count)
        let outcome = try stage.detect(mine) { _, found in
            progress.advance(extra: found.map { "\($0) boxes" } ?? "reused or skipped")
        }
        try communicator.barrier()
        if communicator.isWriter { try stage.assemble(items) }
        try communicator.barrier()
        Log.info(
            "pseudo: Grounding DINO: \(outcome.detected) images detected (\(outcome.boxes) boxes), \(outcome.reused) reused, in \(output)"
        )
    }

    func seedSource() throws -> SeedSource? {
        if cams != nil && seeds != nil { throw ValidationError("give --cams or --seeds, not both") }
        if source == .folder && seeds == nil { throw ValidationError("--source folder needs --seeds DIR") }
        if let seeds { return .folder(seeds) }
        guard let cams else { return nil }
        var band: ClosedRange<Float>?
        if let ignoreBand {
            let parts = ignoreBand.split(separator: ",").compactMap { Float($0) }
            guard parts.count == 2, parts[0] <= parts[1] else {
                throw ValidationError("--ignore-band must be low,high with low ≤ high, got '\(ignoreBand)'")
            }
            band = parts[0]...parts[1]
        }
        return .cams(path: cams, threshold: CAMThreshold(background: Float(bgThreshold), ignoreBand: band))
    }
}

extension SEPLMerge.Rule: ExpressibleByArgument {}
extension BoxMerge.PaintOrder: ExpressibleByArgument {}
