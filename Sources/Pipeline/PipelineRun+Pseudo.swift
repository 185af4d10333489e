import Datasets
import Evaluation
import Foundation
import GroundingDINO
import PseudoLabels
import SegmentAnything
import Training

/// The pseudo-label steps: one per source, with its proposals (SAM's masks computed once and
/// shared), box prompts and seeds.
extension PipelineRun {
    /// The recipe's proposals, parsed once (nil when `pseudo.proposals` is not set).
    var proposalSpec: ProposalSpec? {
        get throws {
            try recipe.pseudo.proposals.map {
                try ProposalSpec($0, relativeTo: root, setting: "\(recipe.path): 'pseudo.proposals'")
            }
        }
    }

    /// Whether `boxes` prompts SAM with each box (Sun et al.): a SAM checkpoint and no other proposals.
    var boxesPromptSAM: Bool {
        get throws {
            if pipeline.boxPrompter != nil { return true }
            guard pipeline.proposalSources[.boxes] == nil else { return false }
            return ProposalSpec.boxesPromptSAM(proposals: try proposalSpec, samCheckpoint: recipe.pseudo.samCheckpoint)
        }
    }

    func makePseudoLabels(_ source: LabelSource, split: String) throws {
        let folder = layout.pseudoLabels(source)
        let scorePath = layout.pseudoScore(source)
        if let about = try proposalDescription(for: source) { summary.proposals[source] = about }
        let refined = recipe.crf.pseudo && source != .gt
        var own = recipe.effectiveValues(
            ofKeys: PseudoSection.provenanceKeys(source) + (refined ? ["crf.pseudo", "crf.confidence"] : [])
        )
        .merging(dataKeys) { a, _ in a }
        if refined { own.merge(recipe.effectiveValues(of: ["crf"], excluding: ["crf.eval"])) { a, _ in a } }
        own["source"] = source.rawValue
        if let custom = pipeline.proposalSources[source] { own["custom.proposals"] = custom.name }
        var upstream = needsCAM && ![.gt, .folder].contains(source) ? [("cam_infer", camInferProvenance)] : []
        var method = try recipe.pseudoLabelMethod(source)
        if source == .boxes, recipe.pseudo.runsDetector {
            // Sun et al.'s route: Grounding DINO's boxes for the split, made (or reused) first.
            let (file, detected) = try detect(split: split)
            method = recipe.pseudo.method(.boxes, detections: file)
            upstream.append(("detect", detected))
        }
        let provenance = Provenance(own, upstream: upstream)
        pseudoProvenance[source] = provenance
        let name = PipelineStep.pseudo(source)
        try step(
            name, output: scorePath, provenance: provenance, carried: { Provenance.read(folder + "/provenance.json") },
            stale: [folder],
            reuse: {
                guard let data = FileManager.default.contents(atPath: scorePath),
                    let score = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                    let miou = score["miou"] as? Double
                else { return false }
                summary.pseudoMIoU[source] = miou
                return true
            }
        ) {
            let communicator = pipeline.communicator
            let dataset = try recipe.dataset(split: split)
            let seeds =
                source == .gt || (source == .boxes && !needsCAM && recipe.pseudo.seeds == nil)
                ? nil : try pipeline.seedSource ?? recipe.seedSource(camFile: layout.cams(split: split))
            let labeler = try PseudoLabeler(
                // Each rank computes proposals (SAM's masks) for the images it labels.
                method: method, seeds: seeds,
                proposals: try proposals(for: source, dataset: dataset.subset(communicator.share(of: dataset.samples))),
                boxPrompter: try prompter(for: source), classNames: dataset.classes.names)
            let counter = Counter()
            var stage = PseudoLabelStage(labeler: labeler, outDirectory: folder, visualize: 8)
            if refined {
                stage.refine = PseudoLabelStage.crfRefinement(
                    recipe.crfParameters, classes: dataset.classes.count, confidence: Float(recipe.crf.confidence))
            }
            let share = communicator.share(of: dataset.samples).count
            let outcome = try stage.run(on: dataset, communicator: communicator) {
                self.events.progress(name, counter.next(), share, "")
            }
            guard writer else { return }
            events.message("pseudo: \(counted(outcome.images, "label PNG")) in \(folder)")
            for warning in outcome.warnings(split: split) { events.message("pseudo: warning: " + warning) }
            // The folder says what made it, whoever reads it later (`wsss train --labels` included).
            try provenance.write(folder + "/provenance.json")
            guard let report = outcome.report else { return events.message("pseudo: no ground truth to score against") }
            try Data(report.jsonText(images: outcome.scoredImages).utf8).write(
                to: URL(fileURLWithPath: scorePath), options: .atomic)
            summary.pseudoMIoU[source] = report.meanIoU
            try board?.addScalar("pseudo/mIoU/\(source)", report.meanIoU, step: 0)
            try board?.flush()
            events.message(report.table(title: "pseudo-labels (\(source)) vs ground truth"))
        }
    }

    /// Grounding DINO over `split` into the run folder (`RunLayout.detections`): a step of its
    /// own, reused while the detector's weights, vocabulary, configuration and thresholds are
    /// unchanged (and each image's boxes reused within an interrupted run). Returns the file and
    /// the step's provenance.
    func detect(split: String) throws -> (String, Provenance) {
        let p = recipe.pseudo
        let output = layout.detections(split: split)
        let provenance = Provenance(
            recipe.effectiveValues(ofKeys: [
                "pseudo.detector_checkpoint", "pseudo.detector_vocab", "pseudo.detector_config", "pseudo.box_threshold",
                "pseudo.text_threshold", "pseudo.detector_size",
            ]).merging(dataKeys) { a, _ in a })
        try step(.detect, output: output, provenance: provenance, stale: [output, output + ".parts"]) {
            let checkpoint = try recipe.required(p.detectorCheckpoint, "pseudo.detector_checkpoint")
            let vocabulary = try recipe.required(p.detectorVocab, "pseudo.detector_vocab")
            let model = try GroundingDINOWeights.load(
                checkpoint, overrides: try p.detectorConfig.map(GroundingDINOConfiguration.overrides) ?? [:])
            let tokenizer = try BertTokenizer(vocabularyFile: vocabulary)
            guard tokenizer.tokens.count == model.configuration.bert.vocabularySize else {
                throw PipelineError(
                    "pseudo.detector_vocab",
                    "\(vocabulary) has \(tokenizer.tokens.count) tokens, the detector's BERT \(model.configuration.bert.vocabularySize): not its vocabulary"
                )
            }
            var options = GroundingOptions(boxThreshold: p.boxThreshold, textThreshold: p.textThreshold)
            (options.size, options.maximumSize) = (p.detectorSize[0], p.detectorSize[1])
            let stage = DetectionStage(
                detector: GroundingDetector(model: model, tokenizer: tokenizer, options: options), output: output)
            try FileManager.default.createDirectory(atPath: layout.root + "/detections", withIntermediateDirectories: true)
            let dataset = try recipe.dataset(split: split)
            let items = try DetectionStage.items(dataset: dataset, prompts: .sunEtAl)
            let settings = try stage.settings(checkpoint: checkpoint, vocabulary: vocabulary, captions: "prompts: sun-et-al")
            if writer { try stage.prepare(settings: settings, replace: pipeline.overwrite ? .always : .changedSettings) }
            let communicator = pipeline.communicator
            try communicator.barrier()
            let mine = communicator.share(of: items)
            var done = 0
            let outcome = try stage.detect(mine) { _, found in
                done += 1
                self.events.progress(.detect, done, mine.count, found.map { "\($0) boxes" } ?? "reused")
            }
            try communicator.barrier()
            guard writer else { return }
            try stage.assemble(items)
            events.message(
                "detect: \(outcome.detected) images (\(outcome.boxes) boxes), \(outcome.reused) reused, \(outcome.skipped) without classes, in \(output)"
            )
        }
        return (output, provenance)
    }

    /// SAM (`pseudo.sam_checkpoint`), loaded once and shared by the sources.
    func sam() throws -> SAM {
        if let samModel { return samModel }
        guard let checkpoint = recipe.pseudo.samCheckpoint else {
            throw RecipeError(
                path: recipe.path, message: "'pseudo.proposals: sam' needs 'pseudo.sam_checkpoint' (an official sam_vit_*.pth)")
        }
        let model = try SAMWeights.load(checkpoint, configuration: try recipe.pseudo.samConfig.map(SAMConfiguration.resolve))
        model.precision = recipe.sam.precision
        guard !recipe.sam.hqTokenOnly || model.configuration.hq else {
            throw RecipeError(path: recipe.path, message: "sam.hq_token_only needs SAM-HQ weights; \(checkpoint) is a plain SAM")
        }
        model.hqTokenOnly = recipe.sam.hqTokenOnly
        samModel = model
        return model
    }

    func proposals(for source: LabelSource, dataset: VOCDataset) throws -> ProposalSource? {
        if let custom = pipeline.proposalSources[source] { return custom }
        if source == .seplFelzenszwalb { return FelzenszwalbProposals(options: recipe.pseudo.felzenszwalbOptions) }
        guard source == .sepl || source == .boxes, let spec = try proposalSpec else { return nil }
        guard spec == .sam else { return try spec.source(felzenszwalb: recipe.pseudo.felzenszwalbOptions) }
        // Boxes with a SAM checkpoint prompt SAM with each box instead (Sun et al.).
        guard source == .sepl else { return nil }
        let cache = recipe.pseudo.samCache ?? layout.samMasks  // relative to the working directory, as run.dir (docs/RECIPES.md)
        let checkpoint = try recipe.required(recipe.pseudo.samCheckpoint, "pseudo.sam_checkpoint")
        // The folder is keyed on the generator's settings and the weights: other settings recompute
        // (the old masks are moved aside unless --no-rerun), a folder of unknown masks is refused.
        let settings = try SAMMaskFolder.settings(
            options: recipe.samGeneratorOptions, checkpoint: checkpoint, configuration: recipe.pseudo.samConfig,
            precision: recipe.sam.precision, hqTokenOnly: recipe.sam.hqTokenOnly)
        // Rank 0 alone checks the folder against its record (moving it aside when the settings
        // changed) before any rank writes masks into it.
        if writer,
            let aside = try SAMMaskFolder.prepare(
                cache, settings: settings,
                replace: pipeline.overwrite ? .always : (pipeline.refuseReruns ? .never : .changedSettings))
        {
            events.message("pseudo: the earlier SAM masks (other settings) moved to \(aside)")
        }
        try pipeline.communicator.barrier()
        var done = 0
        let result = try PseudoLabelStage.samProposals(
            for: dataset, model: try sam(), options: recipe.samGeneratorOptions, cache: cache
        ) { _, found in
            done += 1
            self.events.progress(.samMasks, done, dataset.samples.count, found.map { "\($0) masks" } ?? "cached")
        }
        events.message("pseudo: SAM masks in \(cache) (\(result.computed) computed, \(result.cached) cached)")
        return result.source
    }

    func prompter(for source: LabelSource) throws -> BoxPrompter? {
        guard source == .boxes else { return nil }
        if let boxPrompter = pipeline.boxPrompter { return boxPrompter }
        guard try boxesPromptSAM, let checkpoint = recipe.pseudo.samCheckpoint else { return nil }
        return SAMBoxPrompter(model: try sam(), name: "sam:" + checkpoint)
    }

    /// What a source's proposals are, from the recipe alone (a finished stage is not rerun to learn it).
    func proposalDescription(for source: LabelSource) throws -> String? {
        if source == .boxes {
            // Say plainly where boxes and masks come from (docs/PSEUDO-LABELS.md, "Boxes").
            let boxes =
                recipe.pseudo.runsDetector
                ? "Grounding DINO's boxes (prompted with each image's classes, Sun et al.)"
                : recipe.pseudo.detections != nil
                    ? "detection boxes" : "boxes from the CAM seeds' connected components (our extension, not Sun et al.'s)"
            if try boxesPromptSAM { return boxes + ", each prompting SAM" }
            guard let masks = try proposalMasks(for: source) else { return nil }
            return boxes + " selecting proposals (no SAM: the proposal of best box IoU stands in for its mask): " + masks
        }
        return try proposalMasks(for: source)
    }

    func proposalMasks(for source: LabelSource) throws -> String? {
        if let custom = pipeline.proposalSources[source] { return custom.about ?? custom.name }
        if source == .seplFelzenszwalb { return "Felzenszwalb segments" }
        guard source == .sepl || source == .boxes else { return nil }
        return try proposalSpec?.about(samCheckpoint: recipe.pseudo.samCheckpoint)
    }
}
