import ArgumentParser
import Autograd
import Evaluation
import Foundation
import HDF5
import Imaging
import SegmentAnything
import TorchCheckpoint

/// `wsss sam convert | embed | predict | masks`: Segment Anything from the official checkpoints.
struct SAMCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sam",
        abstract: "Segment Anything in Swift: convert weights, embed images, prompt with boxes/points, generate masks.",
        discussion: """
            Weights: the official sam_vit_{b,l,h}_*.pth files as they are (read from the zip archive by a restricted unpickler \
            that never runs code), or our HDF5 copy from `wsss sam convert`. The configuration is read off the weights' \
            shapes unless --config names one.
            """,
        subcommands: [Convert.self, Embed.self, Predict.self, Masks.self])

    struct Convert: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Copy an official .pth checkpoint to our HDF5 layout (/parameters/<official key>, float32).")
        @Argument(help: ArgumentHelp("Official checkpoint (torch.save zip).", valueName: "C.pth")) var checkpoint: String
        @Argument(help: ArgumentHelp("HDF5 file to write (atomically).", valueName: "C.h5")) var out: String
        @Flag(help: "Replace C.h5 if it exists. (default: off, an existing file is refused)") var overwrite = false

        func run() throws {
            try checkOutput(out, option: "C.h5", overwrite: overwrite, inputs: [checkpoint])
            let source = try TorchCheckpoint(path: checkpoint)
            // Refuse what is not SAM before writing anything.
            let configuration = try SAMConfiguration.inferred(fromShapes: source.tensorShapes, path: checkpoint)
            let progress = ProgressBar("sam convert", total: source.tensorNames.count, unit: "tensor")
            let result = try SAMWeights.convert(source, to: out) { _, _ in progress.advance() }
            Log.info(
                "sam convert: \(result.written) tensors (\(SAMModelOptions.describe(configuration))) in \(out)"
                    + (result.skipped.isEmpty ? "" : "; left out non-float \(result.skipped.joined(separator: ", "))"))
        }
    }

    struct Embed: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The image embedding SAM's decoder prompts against (as SamPredictor.get_image_embedding).",
            discussion: "Writes the HDF5 dataset `embedding`, float32 [C, S/16, S/16] ([256, 64, 64] at the official 1024).")
        @OptionGroup var model: SAMModelOptions
        @OptionGroup var runtime: RuntimeOptions
        @Option(help: ArgumentHelp("Image (JPEG or PNG). (required)", valueName: "file")) var image: String
        @Option(help: ArgumentHelp("HDF5 file to write. (required)", valueName: "E.h5")) var out: String
        @Flag(help: "Replace --out if it exists. (default: off, an existing file is refused)") var overwrite = false

        func run() throws {
            try checkOutput(out, option: "--out", overwrite: overwrite, inputs: [model.checkpoint, image])
            try runtime.apply()
            let predictor = SAMPredictor(model: try model.load())
            let picture = try Image.readRGB(from: image)
            let start = Date()
            try predictor.setImage(picture)
            let embedding = try predictor.imageEmbedding()
            Log.info(
                String(format: "sam embed: %dx%d image in %.2f s", picture.width, picture.height, Date().timeIntervalSince(start))
            )
            try HDF5File.writeAtomically(to: out) {
                try $0.write(embedding.reshaped(to: Array(embedding.shape.dropFirst())), at: "/embedding")
            }
        }
    }

    struct Predict: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Masks for box and point prompts (as SamPredictor.predict / predict_torch).",
            discussion: """
                Each --box is one prompt (N = number of boxes); --point x,y,label (1 foreground, 0 background) are added to every \
                box, or form one prompt when no box is given. Writes `masks` uint8 [N, M, H, W] (0/1 at image size), \
                `iou_predictions` float32 [N, M] and `low_res_logits` float32 [N, M, S/4, S/4]; M = 3 with --multimask, else 1.
                """)
        @OptionGroup var model: SAMModelOptions
        @OptionGroup var runtime: RuntimeOptions
        @Option(help: ArgumentHelp("Image (JPEG or PNG). (required)", valueName: "file")) var image: String
        @Option(help: ArgumentHelp("A box prompt in pixels (repeatable). (default: none)", valueName: "x0,y0,x1,y1")) var box:
            [String] = []
        @Option(
            help: ArgumentHelp(
                "A point prompt in pixels with its label, 1 or 0 (repeatable). (default: none)", valueName: "x,y,label"))
        var point: [String] = []
        @Flag(help: "Three masks per prompt (for ambiguous prompts such as one point). (default: one)") var multimask = false
        @Option(help: ArgumentHelp("HDF5 file to write. (required)", valueName: "P.h5")) var out: String
        @Flag(help: "Replace --out if it exists. (default: off, an existing file is refused)") var overwrite = false

        func validate() throws {
            guard !box.isEmpty || !point.isEmpty else { throw ValidationError("give at least one --box or --point") }
        }

        func run() throws {
            try checkOutput(out, option: "--out", overwrite: overwrite, inputs: [model.checkpoint, image])
            try runtime.apply()
            let boxes = try box.map { text -> (x0: Float, y0: Float, x1: Float, y1: Float) in
                let v = try parseNumbers(text, option: "--box", count: 4...4)
                guard v[2] > v[0] && v[3] > v[1] else {
                    throw ValidationError("--box \(text): x1 must exceed x0 and y1 must exceed y0")
                }
                return (Float(v[0]), Float(v[1]), Float(v[2]), Float(v[3]))
            }
            let points = try point.map { text -> (x: Float, y: Float, label: Int) in
                let v = try parseNumbers(text, option: "--point", count: 3...3)
                guard v[2] == 0 || v[2] == 1 else {
                    throw ValidationError("--point \(text): the label must be 1 (foreground) or 0 (background)")
                }
                return (Float(v[0]), Float(v[1]), Int(v[2]))
            }
            let predictor = SAMPredictor(model: try model.load())
            let picture = try Image.readRGB(from: image)
            for b in boxes where b.x1 <= 0 || b.y1 <= 0 || b.x0 >= Float(picture.width) || b.y0 >= Float(picture.height) {
                throw ValidationError(
                    "--box \(b.x0),\(b.y0),\(b.x1),\(b.y1) lies outside the \(picture.width)x\(picture.height) image \(image)")
            }
            // As a box, a point off the image prompts nothing there (SAM's encoding just extrapolates).
            for p in points where p.x < 0 || p.y < 0 || p.x > Float(picture.width) || p.y > Float(picture.height) {
                throw ValidationError("--point \(p.x),\(p.y) lies outside the \(picture.width)x\(picture.height) image \(image)")
            }
            var clock = Date()
            try predictor.setImage(picture)
            let encoderSeconds = Date().timeIntervalSince(clock)
            clock = Date()
            let coordinates = points.isEmpty ? nil : points.map { (x: $0.x, y: $0.y) }
            let labels = points.isEmpty ? nil : points.map(\.label)
            var results: [SAMPrediction] = []
            if boxes.isEmpty {
                results.append(try predictor.predict(points: coordinates, labels: labels, multimaskOutput: multimask))
            } else if points.isEmpty {
                results.append(try predictor.predict(boxes: boxes, multimaskOutput: multimask))
            } else {
                for b in boxes {
                    results.append(try predictor.predict(points: coordinates, labels: labels, box: b, multimaskOutput: multimask))
                }
            }
            // One prompt's outputs come without the prompt axis; stack them as [N, M, …].
            func stacked(_ pick: (SAMPrediction) -> Tensor, batched: Bool) -> Tensor {
                let parts = results.map { batched ? pick($0) : pick($0).reshaped(to: [1] + pick($0).shape) }
                return parts.count == 1 ? parts[0] : Tensor.concat(parts, alongAxis: 0)
            }
            let batched = !boxes.isEmpty && points.isEmpty
            let masks = stacked(\.masks, batched: batched)
            let iou = stacked(\.iouPredictions, batched: batched)
            let lowRes = stacked(\.lowResLogits, batched: batched)
            try HDF5File.writeAtomically(to: out) { file in
                try file.write(bytes: masks.scalars.map { $0 > 0.5 ? 1 : 0 }, shape: masks.shape, at: "/masks")
                try file.write(iou, at: "/iou_predictions")
                try file.write(lowRes, at: "/low_res_logits")
            }
            let scores = iou.scalars.map { String(format: "%.3f", $0) }.joined(separator: " ")
            Log.info(
                String(format: "sam predict: encoder %.2f s, decoder %.2f s", encoderSeconds, Date().timeIntervalSince(clock)))
            Log.info(
                "sam predict: \(counted(masks.shape[0], "prompt")) x \(counted(masks.shape[1], "mask")) in \(out); predicted IoU \(scores)"
            )
        }
    }
}

/// Which SAM to run: weights and, optionally, the configuration.
struct SAMModelOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Weights: an official sam_vit_*.pth or our HDF5 copy. (required)", valueName: "file"))
    var checkpoint: String
    @Option(
        help: ArgumentHelp(
            "vit_b, vit_l, vit_h, vit_t (MobileSAM) or a YAML file of the builder's arguments. (default: read off the checkpoint's shapes)",
            valueName: "name|file"))
    var config: String?
    @Option(
        help: ArgumentHelp(
            "The image encoder's arithmetic: fp32, bf16 (inputs rounded to bf16, fp32 sums) or auto (bf16 where the CPU has AVX512-BF16). (default: fp32)",
            valueName: "fp32|bf16|auto"))
    var precision: ComputePrecision = .fp32
    @Flag(help: "SAM-HQ weights: masks from the HQ token alone (the official hq_token_only). (default: off)")
    var hqTokenOnly = false

    init() {}
    init(checkpoint: String, config: String?, precision: ComputePrecision = .fp32) {
        (self.checkpoint, self.config, self.precision, self.hqTokenOnly) = (checkpoint, config, precision, false)
    }

    func configuration() throws -> SAMConfiguration? {
        try config.map(SAMConfiguration.resolve)
    }

    func load() throws -> SAM {
        let start = Date()
        let model = try SAMWeights.load(checkpoint, configuration: try configuration())
        guard !hqTokenOnly || model.configuration.hq else {
            throw ValidationError("--hq-token-only needs SAM-HQ weights; \(checkpoint) is a plain SAM")
        }
        model.precision = precision
        model.hqTokenOnly = hqTokenOnly
        Log.info(
            String(
                format: "sam: %@ from %@ in %.1f s, %@", Self.describe(model.configuration), checkpoint,
                Date().timeIntervalSince(start), precision.describe))
        return model
    }

    static func describe(_ c: SAMConfiguration) -> String {
        let name = SAMConfiguration.named.first { $0.configuration == c }?.name ?? "custom"
        let hq = c.hq && name == "custom" ? " HQ" : ""
        if let tiny = c.tinyViT {
            return "\(name)\(hq) (TinyViT \(tiny.embedDims.map(String.init).joined(separator: "/")), \(c.imageSize)px)"
        }
        return "\(name)\(hq) (ViT \(c.encoderEmbedDim)x\(c.encoderDepth), \(c.imageSize)px)"
    }
}

extension ComputePrecision: ExpressibleByArgument {}
