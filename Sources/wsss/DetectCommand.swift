import ArgumentParser
import Datasets
import Evaluation
import Foundation
import GroundingDINO
import HDF5
import Autograd
import Imaging
import Pipeline
import PseudoLabels
import SegmentAnything

/// `wsss detect [convert | image]`: Grounding DINO from the official checkpoints, in Swift.
struct DetectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "detect",
        abstract: "Grounding DINO in Swift: text prompts to boxes (the first half of Grounded-SAM, Sun et al.'s route).",
        discussion: """
            Weights: the official groundingdino_swint_ogc.pth or groundingdino_swinb_cogcoor.pth as they are (read by a \
            restricted unpickler that never runs code; the training arguments beside the weights are read as inert \
            records), or our HDF5 copy from `wsss detect convert`. BERT's vocabulary is the vocab.txt of bert-base-uncased \
            (--vocab), never fetched. The model's sizes are read off the weights; --config names swin_t, swin_b or a YAML \
            file with the official config's names (nheads, and BERT's config.json names under text_encoder:) for what no \
            shape says.
            """,
        subcommands: [Run.self, Convert.self, ImageBoxes.self], defaultSubcommand: Run.self)

    struct Run: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "run",
            abstract: "Detections for a dataset split or a folder of images, in the file `wsss pseudo --detections` reads.",
            discussion: """
                With --root, each image is prompted with its image-level classes: --prompts sun-et-al (the default) adds \
                their sub-class prompts (horse: halter, saddle; dining table: bowl, plate, food, fruit, glass, dishes; tv \
                monitor: tv, monitor) and joins them by "." as process_pascal.py does, --prompts names joins the class names \
                as "cat . dog ."; an image without classes is skipped and counted. --caption gives every image one caption, \
                as the official predict takes it (open vocabulary; required with --images). Writes --out \
                ({id: [{label, box, score, text_score}]}, boxes in pixels, in the detector's order) atomically; each image's \
                list is kept in <out>.parts/, so a rerun skips done images. Example: wsss detect --checkpoint \
                groundingdino_swint_ogc.pth --vocab vocab.txt --root data/VOC2012 --split train_aug --out detections.json
                """)
        @OptionGroup var model: DetectorOptions
        @OptionGroup var runtime: RuntimeOptions
        @Option(help: ArgumentHelp("Dataset root in the PASCAL VOC 2012 layout. (default: none)", valueName: "dir")) var root:
            String?
        @Option(help: ArgumentHelp("Image list of --root: ImageSets/Segmentation/<split>.txt.", valueName: "name")) var split =
            "train"
        @Option(
            help: ArgumentHelp(
                "Plain image-label file (id, then class names or indices) instead of Annotations/*.xml, or 'masks'. (default: Annotations/*.xml)",
                valueName: "file|masks"))
        var imageLabels: String?
        @Option(
            help: ArgumentHelp(
                "Class names: 'voc' or a file, background first. (default: <root>/classes.txt, else voc)", valueName: "voc|file"))
        var classes: String?
        @Option(help: ArgumentHelp("A folder of images instead of --root (needs --caption). (default: none)", valueName: "dir"))
        var images: String?
        @Option(help: ArgumentHelp("Captions from image-level classes: names or sun-et-al.", valueName: "style"))
        var prompts: DetectionStage.Prompts = .sunEtAl
        @Option(help: ArgumentHelp("One caption for every image, e.g. \"cat . dog .\". (default: none)", valueName: "text"))
        var caption: String?
        @Option(help: ArgumentHelp("The detections file to write. (required)", valueName: "file")) var out: String
        @Option(help: ArgumentHelp("Process shard K of N (every N-th image from the K-th).", valueName: "K/N")) var shard = "0/1"
        @Flag(help: "Split the images across the ranks of mpirun/srun; rank 0 writes the file. (default: off)")
        var distributed = false
        @Flag(
            help:
                "Detections in <out>.parts made with other weights or settings are moved aside and redone. (default: off, refused)"
        )
        var overwrite = false

        func validate() throws {
            guard (images == nil) != (root == nil) else {
                throw ValidationError("give --images DIR or --root R (with --split), not both")
            }
            if images != nil && caption == nil {
                throw ValidationError("--images needs --caption (there are no image-level classes to prompt with)")
            }
            if let caption, caption.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
                throw ValidationError("--caption is empty")
            }
            _ = try SAMCommand.Masks.parseShard(shard)
        }

        func run() throws {
            let communicator = try startDistributed(distributed, command: "detect")
            try runtime.apply()
            let (index, count) = try SAMCommand.Masks.parseShard(shard)
            let all = try listItems()
            let mine = communicator.share(of: all.enumerated().filter { $0.offset % count == index }.map(\.element))
            // A detections file this command did not make (no parts folder beside it) is not replaced silently.
            let ours = FileManager.default.fileExists(atPath: out + ".parts/provenance.json")
            try checkOutput(out, option: "--out", overwrite: overwrite || ours, inputs: [model.checkpoint, model.vocab])
            let stage = DetectionStage(detector: try model.detector(), output: out)
            let settings = try stage.settings(
                checkpoint: model.checkpoint, vocabulary: model.vocab,
                captions: caption.map { "caption: \($0)" } ?? "prompts: \(prompts.rawValue)")
            if communicator.isWriter, let aside = try stage.prepare(settings: settings, replace: overwrite ? .always : .never) {
                Log.info("detect: the earlier detections (other settings) moved to \(aside)")
            }
            try communicator.barrier()
            let progress = ProgressBar("detect", total: mine.count)
            let outcome = try stage.detect(mine) { _, found in
                progress.advance(extra: found.map { "\($0) boxes" } ?? "reused or skipped")
            }
            let totals = try communicator.allreduceSum(
                [outcome.detected, outcome.boxes, outcome.reused, outcome.skipped].map(Double.init)
            ).map { Int($0) }
            guard communicator.isWriter else { return }
            let assembled = try stage.assemble(all)
            Log.info(
                "detect: \(counted(totals[0], "image")) detected (\(counted(totals[1], "box", plural: "boxes"))), \(totals[2]) reused"
                    + (totals[3] > 0 ? ", \(totals[3]) without image-level classes skipped" : "")
                    + "; \(out) holds \(assembled) of \(all.count) images" + (count > 1 ? " (shard \(index)/\(count))" : ""))
            if let root {
                Log.info(
                    "next: wsss pseudo --root \(root) --split \(split) --source boxes --detections \(out) --sam-checkpoint SAM.pth --out DIR"
                )
            }
        }

        /// The images and their captions.
        func listItems() throws -> [DetectionStage.Item] {
            if let images {
                return try ImageInputs.list(images).map { DetectionStage.Item(id: $0.id, imagePath: $0.path, caption: caption) }
            }
            let names = try classes.map(ClassNames.load) ?? ClassNames.of(datasetRoot: root!)
            let dataset = try VOCDataset(
                root: root!, split: split, classes: names, imageLabelFile: imageLabels == "masks" ? nil : imageLabels,
                imageLabelsFromMasks: imageLabels == "masks")
            if let caption {
                // An open-vocabulary caption is fine, but one naming no class of the dataset labels nothing later.
                let phrases = BoxPhrases(classNames: names.names)
                let named = caption.split(whereSeparator: { $0 == "." }).contains { phrases.classID(of: String($0)) != nil }
                guard named else {
                    throw CommandFailure(
                        "--caption '\(caption)' names no class of \(root!) (\(names.names.dropFirst().prefix(5).joined(separator: ", ")), …): its boxes could label nothing"
                    )
                }
            }
            return try DetectionStage.items(dataset: dataset, prompts: prompts, caption: caption)
        }
    }

    struct Convert: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Copy an official .pth checkpoint to our HDF5 layout (/parameters/<official key>, float32, with its configuration)."
        )
        @Argument(help: ArgumentHelp("Official checkpoint (torch.save zip).", valueName: "C.pth")) var checkpoint: String
        @Argument(help: ArgumentHelp("HDF5 file to write (atomically).", valueName: "C.h5")) var out: String
        @Option(
            help: ArgumentHelp(
                "swin_t, swin_b or a YAML file of the official config's names. (default: read off the weights)",
                valueName: "name|file"))
        var config: String?
        @Flag(help: "Replace C.h5 if it exists. (default: off, an existing file is refused)") var overwrite = false

        func run() throws {
            try checkOutput(out, option: "C.h5", overwrite: overwrite, inputs: [checkpoint])
            try GroundingDINOWeights.convert(
                checkpoint, to: out, overrides: try config.map(GroundingDINOConfiguration.overrides) ?? [:])
            Log.info("detect convert: \(checkpoint) → \(out)")
        }
    }

    struct ImageBoxes: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "image",
            abstract: "Boxes for a caption in one image, printed (as groundingdino.util.inference.predict).",
            discussion: "Prints one line per box (x0 y0 x1 y1 in pixels, score, phrase), or a JSON list with --json.")
        @OptionGroup var model: DetectorOptions
        @OptionGroup var runtime: RuntimeOptions
        @Option(help: ArgumentHelp("Image (JPEG or PNG). (required)", valueName: "file")) var image: String
        @Option(help: ArgumentHelp("The caption, e.g. \"cat . dog .\". (required)", valueName: "text")) var caption: String
        @Flag(help: "Print a JSON list of {label, box, score, text_score}.") var json = false
        @Option(
            help: ArgumentHelp(
                "Also write the model's intermediate results (input, text features, encoder memory, logits, boxes) to this HDF5 file, to compare with the official code stage by stage. (default: none)",
                valueName: "file"))
        var trace: String?
        @Option(
            help: ArgumentHelp(
                "With --trace: take the encoder's selected tokens from dataset /topk of this HDF5 file (the official model's torch.topk, for a stage-by-stage parity check). (default: computed)",
                valueName: "file"))
        var traceSelection: String?

        func run() throws {
            try runtime.apply()
            let detector = try model.detector()
            let picture = try Image.readRGB(from: image)
            let start = Date()
            let boxes = detector.detect(in: picture, caption: caption)
            if let trace { try writeTrace(detector, picture, to: trace) }
            Log.info(
                String(
                    format: "detect: %dx%d image, %d boxes in %.2f s", picture.width, picture.height, boxes.count,
                    Date().timeIntervalSince(start)))
            if json {
                let list = boxes.map {
                    [
                        "label": $0.phrase, "box": [$0.box.0, $0.box.1, $0.box.2, $0.box.3], "score": $0.score,
                        "text_score": $0.textScore,
                    ]
                }
                print(String(decoding: try JSONSerialization.data(withJSONObject: list, options: [.sortedKeys]), as: UTF8.self))
            } else {
                for b in boxes {
                    print(
                        String(format: "%8.1f %8.1f %8.1f %8.1f  %.3f  %@", b.box.0, b.box.1, b.box.2, b.box.3, b.score, b.phrase)
                    )
                }
            }
        }
    }
}

extension DetectCommand.ImageBoxes {
    /// The model's stages for this image and caption, as HDF5 datasets named after the
    /// official tensors (`input`, `text/encoded_text`, `encoder/memory`, `encoder/memory_text`,
    /// `backbone/feature_<l>`, `outputs/pred_logits`, `outputs/pred_boxes`).
    func writeTrace(_ detector: GroundingDetector, _ picture: Image, to path: String) throws {
        let input = GroundingDINOTransform.input(picture, size: detector.options.size, maximumSize: detector.options.maximumSize)
        let prompt = TokenizedPrompt(caption: TokenizedPrompt.normalizedCaption(caption), tokenizer: detector.tokenizer)
        var trace: GroundingDINOTrace? = GroundingDINOTrace()
        if let traceSelection {
            trace?.selection = try HDF5File(path: traceSelection, mode: .read).readLabels("/topk").values.map(Int.init)
        }
        let output = withoutGrad { detector.model.forward(image: input, prompt: prompt, trace: &trace) }
        guard let t = trace else { return }
        try HDF5File.writeAtomically(to: path) { file in
            try file.write(input, at: "/input")
            if let x = t.encodedText { try file.write(x, at: "/text/encoded_text") }
            if let x = t.memory { try file.write(x, at: "/encoder/memory") }
            if let x = t.memoryText { try file.write(x, at: "/encoder/memory_text") }
            for (k, x) in t.backboneFeatures.enumerated() { try file.write(x, at: "/backbone/feature_\(k)") }
            for (k, x) in t.projected.enumerated() { try file.write(x, at: "/backbone/src_\(k)") }
            for (k, x) in t.references.enumerated() { try file.write(x, at: "/decoder/reference_\(k)") }
            for (k, x) in t.decoderOutputs.enumerated() { try file.write(x, at: "/decoder/layer_\(k)_output") }
            try file.write(LabelTensor(shape: [t.topk.count], values: t.topk.map(Int32.init)), at: "/topk")
            try file.write(output.logits, at: "/outputs/pred_logits")
            try file.write(output.boxes, at: "/outputs/pred_boxes")
        }
    }
}

extension DetectionStage.Prompts: ExpressibleByArgument {}

/// The detector's weights, vocabulary, configuration, thresholds and input size.
struct DetectorOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Weights: an official groundingdino_*.pth or our HDF5 copy. (required)", valueName: "file"))
    var checkpoint: String
    @Option(help: ArgumentHelp("BERT's vocab.txt (bert-base-uncased). (required)", valueName: "file")) var vocab: String
    @Option(
        help: ArgumentHelp(
            "swin_t, swin_b or a YAML file of the official config's names. (default: read off the weights)",
            valueName: "name|file"))
    var config: String?
    @Option(help: ArgumentHelp("Keep a box when its best token probability is above this.", valueName: "t"))
    var boxThreshold = 0.3
    @Option(help: ArgumentHelp("A caption token joins the box's phrase above this.", valueName: "t"))
    var textThreshold = 0.25
    @Option(help: ArgumentHelp("Shorter image side the model sees (the official 800).", valueName: "px")) var size = 800
    @Option(help: ArgumentHelp("Longest side the model sees (the official 1333).", valueName: "px")) var maxSize = 1333

    func validate() throws {
        for (flag, value) in [("--box-threshold", boxThreshold), ("--text-threshold", textThreshold)]
        where !(0...1).contains(value) {
            throw ValidationError("\(flag) must be a number in [0, 1], got \(value)")
        }
        guard size >= 32 && size <= 4096 && maxSize >= size && maxSize <= 8192 else {
            throw ValidationError("--size must be in 32…4096 and --max-size in size…8192, got \(size) and \(maxSize)")
        }
    }

    func detector() throws -> GroundingDetector {
        let start = Date()
        let tokenizer = try BertTokenizer(vocabularyFile: vocab)
        let model = try GroundingDINOWeights.load(
            checkpoint, overrides: try config.map(GroundingDINOConfiguration.overrides) ?? [:])
        guard tokenizer.tokens.count == model.configuration.bert.vocabularySize else {
            throw CommandFailure(
                "\(vocab): \(tokenizer.tokens.count) tokens, but the weights' BERT has \(model.configuration.bert.vocabularySize): not its vocabulary"
            )
        }
        let c = model.configuration
        let name = SwinConfiguration.named.first { $0.value == c.swin }?.key ?? "Swin \(c.swin.embedDim)"
        Log.info(
            String(
                format: "detect: Grounding DINO (%@, %d queries) from %@ in %.1f s", name, c.queries, checkpoint,
                Date().timeIntervalSince(start)))
        var options = GroundingOptions(boxThreshold: boxThreshold, textThreshold: textThreshold)
        (options.size, options.maximumSize) = (size, maxSize)
        return GroundingDetector(model: model, tokenizer: tokenizer, options: options)
    }
}
