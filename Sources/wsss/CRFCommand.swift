import ArgumentParser
import Pipeline
import Training
import Autograd
import DenseCRF
import Evaluation
import Foundation
import HDF5
import Imaging

/// The CRF's flags, under deeplab-pytorch's names (configs `CRF:` section) and defaults; shared by
/// every command that can run the CRF.
struct CRFOptions: ParsableArguments {
    private static let defaults = CRFSection()
    @Option(help: ArgumentHelp("Mean-field iterations.", valueName: "n")) var iterations = defaults.iterations
    @Option(help: ArgumentHelp("Weight of the smoothness (xy Gaussian) kernel.", valueName: "w")) var posW = defaults.posW
    @Option(help: ArgumentHelp("Spatial std of the smoothness kernel, pixels.", valueName: "px"))
    var posXYStd = defaults.posXYStd
    @Option(help: ArgumentHelp("Weight of the appearance (bilateral xy + RGB) kernel.", valueName: "w")) var biW = defaults.biW
    @Option(help: ArgumentHelp("Spatial std of the appearance kernel, pixels.", valueName: "px")) var biXYStd = defaults.biXYStd
    @Option(help: ArgumentHelp("Colour std of the appearance kernel, 8-bit levels.", valueName: "levels"))
    var biRGBStd = defaults.biRGBStd

    /// Checked by the recipe's rules for the `crf:` keys (mean field converges in 5-10
    /// iterations: pydensecrf's examples use 5, deeplab-pytorch 10).
    func validate() throws {
        try section.validateAsFlags(["pos_xy_std": "--pos-xy-std", "bi_xy_std": "--bi-xy-std", "bi_rgb_std": "--bi-rgb-std"])
    }

    /// The flags as the recipe's `crf:` section (its CRF settings; `eval`, `pseudo` and
    /// `confidence` at their defaults).
    var section: CRFSection {
        var s = CRFSection()
        (s.iterations, s.posW, s.posXYStd, s.biW, s.biXYStd, s.biRGBStd) = (iterations, posW, posXYStd, biW, biXYStd, biRGBStd)
        return s
    }

    /// The library's settings.
    var parameters: DenseCRF.Parameters { section.parameters }
}

/// `wsss crf`: refine saved class probabilities with the fully-connected CRF.
struct CRFCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "crf",
        abstract:
            "Refine class probabilities with a fully-connected CRF (Krähenbühl & Koltun 2011, as pydensecrf) into label PNGs.",
        discussion: """
            Reads every /<id> of --scores (float32 [classes, H, W] probabilities, as `wsss predict --save-probabilities` \
            writes), the image <images>/<id>.jpg, .jpeg or .png (same H x W), and writes the CRF's labels to <out>/<id>.png \
            (palette PNGs). Images run in parallel over --threads, one per core. Defaults are deeplab-pytorch's.
            Example: wsss crf --images data/VOC2012/JPEGImages --scores predictions/scores.h5 --out predictions/crf
            """)

    @Option(help: ArgumentHelp("Folder of the images the scores belong to. (required)", valueName: "dir")) var images: String
    @Option(help: ArgumentHelp("HDF5 file of class probabilities, /<id>: float32 [classes, H, W]. (required)", valueName: "file"))
    var scores: String
    @Option(help: ArgumentHelp("Output folder for <id>.png. (required)", valueName: "dir")) var out: String
    @OptionGroup var crf: CRFOptions
    @OptionGroup var runtime: RuntimeOptions

    /// The image file of `id`, or nil.
    static func imagePath(directory: String, id: String) -> String? {
        ["jpg", "jpeg", "png", "JPG", "JPEG", "PNG"].lazy.map { "\(directory)/\(id).\($0)" }.first {
            FileManager.default.fileExists(atPath: $0)
        }
    }

    func run() throws {
        try runtime.apply()
        let file = try HDF5File(path: scores, mode: .read)
        let ids = try file.datasetNames(under: "/").map { $0.hasPrefix("/") ? String($0.dropFirst()) : $0 }.sorted()
        guard !ids.isEmpty else { throw CommandFailure("\(scores): no datasets (expected /<id>: float32 [classes, H, W])") }
        var paths: [String] = []
        for id in ids {
            guard let path = Self.imagePath(directory: images, id: id) else {
                throw CommandFailure("\(scores) has /\(id) but \(images) has no \(id).jpg, \(id).jpeg or \(id).png")
            }
            paths.append(path)
        }
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let model = DenseCRF(parameters: crf.parameters)
        let progress = ProgressBar("crf", total: ids.count)
        // Batches of one image per thread: read on this thread (HDF5), infer in parallel, write.
        let batchSize = max(1, Runtime.threads)
        for start in stride(from: 0, to: ids.count, by: batchSize) {
            let range = start..<min(start + batchSize, ids.count)
            var inputs: [DenseCRF.Input] = []
            for k in range {
                let image = try Image.readRGB(from: paths[k])
                let name = "/\(ids[k])"
                let shape = try file.shape(of: name)
                let source = "\(scores):\(name)"
                guard shape.count == 3 else {
                    throw CommandFailure("\(source): shape \(shape), expected float32 [classes, H, W]")
                }
                guard shape[1] == image.height && shape[2] == image.width else {
                    throw DenseCRFError.sizeMismatch(
                        source: "\(source) vs \(paths[k])", imageWidth: image.width, imageHeight: image.height,
                        scoresWidth: shape[2],
                        scoresHeight: shape[1])
                }
                let p = try file.read(name).scalars
                inputs.append(.init(image: image, probabilities: p, classes: shape[0], source: source))
            }
            let results = try model.infer(batch: inputs)
            for (k, result) in zip(range, results) {
                try result.labels.writePNG(to: "\(out)/\(ids[k]).png")
                progress.advance()
            }
        }
        Log.info("crf: \(counted(ids.count, "PNG")) in \(out)")
    }
}
