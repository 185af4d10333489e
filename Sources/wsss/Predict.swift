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

/// `wsss predict`: palette PNGs for a split (e.g. VOC test for the evaluation server).
struct PredictCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "predict",
        abstract:
            "Predict label PNGs with a DeepLab-v2 checkpoint: a dataset split (VOC server layout), a folder of images or one image.",
        discussion: """
            With --root/--split, files go to <out>/results/VOC2012/Segmentation/comp6_<split>_cls/<id>.png (palette PNGs); with \
            --images (a folder of .jpg/.jpeg/.png, or one file), to <out>/<id>.png. --overlays adds <out>/overlays/<id>.png; \
            --save-probabilities writes per-image class probabilities (softmax, averaged over scales and flips) at image \
            resolution to <out>/scores.h5 (/<id>: float32 [classes, H, W]), the input of a CRF.
            Example: wsss predict --checkpoint runs/demo/segmenter_sepl/final.h5 --images photos/ --out predictions/ --overlays
            """)

    @Option(help: ArgumentHelp("Dataset root in the VOC layout (with --split). (default: none; or --images)", valueName: "dir"))
    var root: String?
    @Option(help: ArgumentHelp("Image list under <root>/ImageSets/Segmentation.", valueName: "name")) var split = "val"
    @Option(
        help: ArgumentHelp(
            "A folder of images (.jpg, .jpeg, .png) or one image file. (default: none; or --root)", valueName: "dir|file"))
    var images: String?
    @OptionGroup var runtime: RuntimeOptions
    @Option(help: ArgumentHelp("Checkpoint (final.h5). (required)", valueName: "file")) var checkpoint: String
    @Option(help: ArgumentHelp("Output folder. (required)", valueName: "dir")) var out: String
    @Option(help: ArgumentHelp("Scales.", valueName: "list")) var scales = "1.0"
    @Flag(help: "Also average over horizontal flips.") var flip = false
    @Option(help: MSCChoice.help) var msc = MSCChoice.auto
    @Option(
        help: ArgumentHelp(
            "Products' arithmetic: fp32, bf16 (bf16 inputs, fp32 sums; emulated where the CPU has no AVX512-BF16: for accuracy, not speed) or auto (bf16 only where the CPU has it).",
            valueName: "fp32|bf16|auto"))
    var precision: ComputePrecision = .fp32
    @Flag(help: "Write overlays of the predictions on the images.") var overlays = false
    @Flag(
        name: [.customLong("save-probabilities"), .customLong("save-logits")],
        help: "Write the class probabilities to scores.h5 in the output folder (--save-logits is the older name).")
    var saveProbabilities = false
    @Flag(
        help:
            "Refine each prediction with the fully-connected CRF (docs/CRF.md; settings below); scores.h5 keeps the network's probabilities."
    ) var crf = false
    @OptionGroup(title: "CRF (with --crf)") var crfOptions: CRFOptions

    func validate() throws {
        guard (root == nil) != (images == nil) else { throw ValidationError("give --root (with --split) or --images, not both") }
    }

    /// (id, image path) of every image to predict, and the folder the PNGs go to.
    func inputs() throws -> (items: [(id: String, path: String)], folder: String) {
        if let root {
            return (try ImageInputs.list(root: root, split: split), "\(out)/results/VOC2012/Segmentation/comp6_\(split)_cls")
        }
        return (try ImageInputs.list(images!), out)
    }

    func run() throws {
        try runtime.apply()
        let (items, folder) = try inputs()
        let (model, options, classes) = try SegmentationTraining.load(checkpoint)
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        if overlays { try FileManager.default.createDirectory(atPath: "\(out)/overlays", withIntermediateDirectories: true) }
        let progress = ProgressBar("predict", total: items.count)
        let scaleList = try parseNumbers(
            scales, option: "--scales", positive: true, minimum: CAMCommand.minimumInferenceScale,
            maximum: CAMCommand.maximumInferenceScale)
        let refiner = crf ? DenseCRF(parameters: crfOptions.parameters) : nil
        let fused = msc.value ?? options.msc
        func process(_ scores: HDF5File?) throws {
            for item in items {
                let image = try Image.readRGB(from: item.path)
                let result = SegmentationTraining.predict(
                    model: model, image: image, preprocessing: options.preprocessing, scales: scaleList, flip: flip, msc: fused,
                    precision: precision)
                let labels =
                    try refiner.map {
                        try $0.infer(
                            image: image, probabilities: result.scores.scalars, classes: result.scores.shape[0], source: item.path
                        ).labels
                    } ?? result.labels
                try labels.writePNG(to: "\(folder)/\(item.id).png")
                if overlays {
                    // With the legend of the classes it shows, as the pseudo-label panels.
                    try Image.panels(
                        [(item.id, image.overlaid(with: labels))], legend: Image.classLegend(names: classes, present: [labels])
                    )
                    .writePNG(to: "\(out)/overlays/\(item.id).png")
                }
                try scores?.write(result.scores, at: "/\(item.id)")
                progress.advance()
            }
        }
        if saveProbabilities {
            try HDF5File.writeAtomically(to: "\(out)/scores.h5") { try process($0) }
        } else {
            try process(nil)
        }
        Log.info("predict: \(counted(items.count, "PNG")) in \(folder)")
    }
}
