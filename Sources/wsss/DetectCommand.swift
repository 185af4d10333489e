import ArgumentParser
import Evaluation
import Foundation
import GroundingDINO
import Imaging
import Pipeline
import SegmentAnything

/// `wsss detect convert | image | run`: Grounding DINO from the official checkpoints, in Swift.
struct DetectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "detect",
        abstract: "Grounding DINO in Swift: text prompts to boxes (the first half of Grounded-SAM, Sun et al.'s route).",
        discussion: """
            Weights: the official groundingdino_swint_ogc.pth or groundingdino_swinb_cogcoor.pth as they are (read by a \
            restricted unpickler that never runs code; the training arguments beside the weights are read as inert \
            records), or our HDF5 copy from `wsss detect convert`. BERT's vocabulary is the vocab.txt of bert-base-uncased \
            (--vocab), never fetched. Swin-T or Swin-B is read off the weights; other sizes need --config FILE.json.
            """,
        subcommands: [Convert.self, ImageBoxes.self, Run.self])

    struct Convert: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Copy an official .pth checkpoint to our HDF5 layout (/parameters/<official key>, float32).")
        @Argument(help: ArgumentHelp("Official checkpoint (torch.save zip).", valueName: "C.pth")) var checkpoint: String
        @Argument(help: ArgumentHelp("HDF5 file to write (atomically).", valueName: "C.h5")) var out: String
        @Option(
            help: ArgumentHelp(
                "Configuration JSON for sizes other than Swin-T/B. (default: read off the weights)", valueName: "file"))
        var config: String?
        @Flag(help: "Replace C.h5 if it exists. (default: off, an existing file is refused)") var overwrite = false

        func run() throws {
            try checkOutput(out, option: "C.h5", overwrite: overwrite, inputs: [checkpoint])
            try GroundingDINOWeights.convert(checkpoint, to: out, configuration: try DetectorOptions.configuration(config))
            Log.info("detect convert: \(checkpoint) → \(out)")
        }
    }

    struct ImageBoxes: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "image",
            abstract: "Boxes for a text prompt in one image (as groundingdino.util.inference.predict).",
            discussion: "Prints one line per box (x0 y0 x1 y1 in pixels, score, phrase), or JSON with --json.")
        @OptionGroup var model: DetectorOptions
        @OptionGroup var runtime: RuntimeOptions
        @Option(help: ArgumentHelp("Image (JPEG or PNG). (required)", valueName: "file")) var image: String
        @Option(help: ArgumentHelp("The caption, e.g. \"cat . dog .\". (required)", valueName: "text")) var prompt: String
        @Flag(help: "Print a JSON list of {label, box, score}.") var json = false

        func run() throws {
            try runtime.apply()
            let detector = try model.detector()
            let picture = try Image.readRGB(from: image)
            let start = Date()
            let boxes = detector.detect(in: picture, caption: prompt)
            Log.info(
                String(
                    format: "detect: %dx%d image, %d boxes in %.2f s", picture.width, picture.height, boxes.count,
                    Date().timeIntervalSince(start)))
            if json {
                print(
                    String(
                        decoding: try JSONSerialization.data(
                            withJSONObject: boxes.map {
                                ["label": $0.phrase, "box": [$0.box.0, $0.box.1, $0.box.2, $0.box.3], "score": $0.score]
                            },
                            options: [.sortedKeys]), as: UTF8.self))
            } else {
                for b in boxes {
                    print(
                        String(format: "%8.1f %8.1f %8.1f %8.1f  %.3f  %@", b.box.0, b.box.1, b.box.2, b.box.3, b.score, b.phrase)
                    )
                }
            }
        }
    }

    struct Run: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Detections for every image of a split, prompted with its image-level classes (Sun et al.).",
            discussion: """
                Each image is prompted with its classes and their sub-class prompts (horse: halter, saddle; dining table: \
                bowl, plate, food, fruit, glass, dishes; tv monitor: tv, monitor) joined by ".", as process_pascal.py does. \
                Writes <out>/<id>.json per image (a rerun reuses them) and <out>/detections.json, which \
                `wsss pseudo --source boxes --detections` reads.
                """)
        @OptionGroup var model: DetectorOptions
        @OptionGroup var data: DatasetOptions
        @OptionGroup var runtime: RuntimeOptions
        @Option(help: ArgumentHelp("Output folder. (required)", valueName: "dir")) var out: String
        @Flag(help: "Detections in --out made with other weights or settings are moved aside and redone. (default: off, refused)")
        var overwrite = false

        func run() throws {
            try runtime.apply()
            let dataset = try data.dataset()
            let stage = DetectionStage(detector: try model.detector(), directory: out)
            let settings = try stage.settings(checkpoint: model.checkpoint, vocabulary: model.vocab)
            let progress = ProgressBar("detect", total: dataset.samples.count)
            let outcome = try stage.run(on: dataset, settings: settings, replace: overwrite ? .always : .never) { _, found in
                progress.advance(extra: found.map { "\($0) boxes" } ?? "cached")
            }
            if let aside = outcome.movedAside { Log.info("detect: the earlier detections (other settings) moved to \(aside)") }
            Log.info(
                "detect: \(counted(outcome.detected, "image")) detected (\(counted(outcome.boxes, "box", plural: "boxes"))), \(outcome.cached) reused; \(stage.outputPath)"
            )
            Log.info(
                "next: wsss pseudo --root \(data.root) --split \(data.split) --source boxes --detections \(stage.outputPath) --sam-checkpoint SAM.pth --out DIR"
            )
        }
    }
}

/// The detector's weights, vocabulary, configuration and thresholds.
struct DetectorOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Weights: an official groundingdino_*.pth or our HDF5 copy. (required)", valueName: "file"))
    var checkpoint: String
    @Option(help: ArgumentHelp("BERT's vocab.txt (bert-base-uncased). (required)", valueName: "file")) var vocab: String
    @Option(help: ArgumentHelp("swint, swinb or a configuration JSON. (default: read off the weights)", valueName: "name|file"))
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

    static func configuration(_ name: String?) throws -> GroundingDINOConfiguration? {
        guard let name else { return nil }
        switch name.lowercased() {
        case "swint", "swin_t", "swin-t": return .swinT
        case "swinb", "swin_b", "swin-b": return .swinB
        default:
            guard let data = FileManager.default.contents(atPath: name) else {
                throw CommandFailure("--config \(name): neither swint, swinb nor a readable file")
            }
            do { return try JSONDecoder().decode(GroundingDINOConfiguration.self, from: data) } catch {
                throw CommandFailure("\(name): not a Grounding DINO configuration: \(error)")
            }
        }
    }

    func detector() throws -> GroundingDetector {
        let start = Date()
        let tokenizer = try BertTokenizer(vocabularyFile: vocab)
        let model = try GroundingDINOWeights.load(checkpoint, configuration: try Self.configuration(config))
        guard tokenizer.tokens.count == model.configuration.bert.vocabularySize else {
            throw CommandFailure(
                "\(vocab): \(tokenizer.tokens.count) tokens, but the weights' BERT has \(model.configuration.bert.vocabularySize): not its vocabulary"
            )
        }
        Log.info(
            String(
                format: "detect: Grounding DINO (Swin %d, %d queries) from %@ in %.1f s", model.configuration.swin.embedDim,
                model.configuration.queries, checkpoint, Date().timeIntervalSince(start)))
        var options = GroundingOptions(boxThreshold: boxThreshold, textThreshold: textThreshold)
        (options.size, options.maximumSize) = (size, maxSize)
        return GroundingDetector(model: model, tokenizer: tokenizer, options: options)
    }
}
