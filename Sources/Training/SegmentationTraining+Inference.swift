import Autograd
import Checkpoints
import Datasets
import Distributed
import Evaluation
import Foundation
import HDF5
import Imaging
import Layers
import Reporting

/// Evaluation, prediction and checkpoint reading of DeepLab-v2.
extension SegmentationTraining {
    /// Evaluates on a labelled split: logits (MSC-fused when `msc`, multi-scale + flip when asked;
    /// `predict`) upsampled bilinearly to the image size, argmax (or `refine` of the
    /// probabilities), accumulated in a confusion matrix. `precision` as `predict`'s.
    public static func evaluate(
        model: DeepLabV2, dataset: VOCDataset, preprocessing: Preprocessing, scales: [Double] = [1], flip: Bool = false,
        msc: Bool = false, precision: ComputePrecision? = nil,
        refine: ((_ image: Image, _ scores: Tensor, _ id: String) throws -> LabelMap)? = nil,
        onImage: (String, LabelMap) throws -> Void = { _, _ in }, progress: () -> Void = {}
    ) throws -> ConfusionMatrix {
        var matrix = ConfusionMatrix(classCount: dataset.classes.count)
        for sample in dataset.samples {
            let (image, truth) = try dataset.load(sample)
            let result = predict(
                model: model, image: image, preprocessing: preprocessing, scales: scales, flip: flip, msc: msc,
                precision: precision)
            // `refine` (e.g. a dense CRF) turns the class probabilities [C, H, W] into the labels instead of the argmax.
            let prediction = try refine.map { try $0(image, result.scores, sample.id) } ?? result.labels
            try onImage(sample.id, prediction)
            if let truth { try matrix.add(prediction: prediction.values, groundTruth: truth.values) }
            progress()
        }
        return matrix
    }

    /// Class scores [classes, H, W] at image resolution (softmax averaged over scales and flips)
    /// and their argmax.
    ///
    /// With `msc` each pass scores the MSC model's max-fused logits (`DeepLabV2.multiScale`), as
    /// deeplab-pytorch's main.py `test` does: the model in eval mode returns the pixel-wise max
    /// over its scales, upsampled bilinearly (align_corners false) to the image, softmax, argmax.
    /// With `scales` [1], no flip and `msc` this is that protocol step for step; otherwise the
    /// network's single-scale logits (or, with other `scales`/`flip`, the average of their softmax).
    /// `precision`: the products' arithmetic (`run.precision`); nil keeps the caller's
    /// (`Kernels.withProducts`, fp32 outside any).
    public static func predict(
        model: DeepLabV2, image: Image, preprocessing: Preprocessing, scales: [Double] = [1], flip: Bool = false,
        msc: Bool = false, precision: ComputePrecision? = nil
    ) -> (labels: LabelMap, scores: Tensor) {
        guard let precision else {
            return predictInCurrentPrecision(
                model: model, image: image, preprocessing: preprocessing, scales: scales, flip: flip, msc: msc)
        }
        return Kernels.withProducts(in: precision) {
            predictInCurrentPrecision(
                model: model, image: image, preprocessing: preprocessing, scales: scales, flip: flip, msc: msc)
        }
    }

    static func predictInCurrentPrecision(
        model: DeepLabV2, image: Image, preprocessing: Preprocessing, scales: [Double], flip: Bool, msc: Bool
    ) -> (labels: LabelMap, scores: Tensor) {
        let scales = scales.isEmpty ? [1] : scales
        let planar = preprocessing.normalize(image)
        let input = Tensor(shape: [1, 3, planar.height, planar.width], values: planar.values)
        let (h, w) = (image.height, image.width)
        return withoutGrad {
            var total: Tensor?
            for scale in scales {
                let x =
                    scale == 1
                    ? input
                    : input.resizedBilinear(
                        to: (max(1, Int((Double(h) * scale).rounded())), max(1, Int((Double(w) * scale).rounded()))),
                        alignCorners: false)
                let batch = flip ? Tensor.concat([x, x.flipped(alongAxis: 3)], alongAxis: 0) : x
                let logits = (msc ? model.multiScale(batch).fused : model(batch)).resizedBilinear(to: (h, w), alignCorners: false)
                var probabilities = logits.softmax(alongAxis: 1)
                if flip {
                    probabilities =
                        probabilities.slice(alongAxis: 0, 0..<1) + probabilities.slice(alongAxis: 0, 1..<2).flipped(alongAxis: 3)
                }
                total = total.map { $0 + probabilities } ?? probabilities
            }
            // The mean over scales and flips, so the scores stay probabilities (they sum to 1).
            let passes = scales.count * (flip ? 2 : 1)
            let scores = (passes == 1 ? total! : total! * (1 / Float(passes))).reshaped(to: [model.classes, h, w])
            var values = [UInt8](repeating: 0, count: h * w)
            let base = scores.storage.base
            for p in 0..<(h * w) {
                var (best, index) = (base[p], 0)
                for c in 1..<model.classes where base[c * h * w + p] > best { (best, index) = (base[c * h * w + p], c) }
                values[p] = UInt8(index)
            }
            return (LabelMap(width: w, height: h, values: values), scores)
        }
    }

    /// The training options stored in a checkpoint: its `options` attribute, or (checkpoints from
    /// before that attribute) the `# options: {…}` line at the end of its recipe text.
    static func storedOptionsJSON(_ metadata: CheckpointMetadata) -> String? {
        if !metadata.options.isEmpty { return metadata.options }
        return metadata.recipe.split(separator: "\n").last(where: { $0.hasPrefix("# options: ") }).map {
            String($0.dropFirst("# options: ".count))
        }
    }

    /// The training settings that differ between a checkpoint's run and `options`, as
    /// "name: old → new" (empty for a checkpoint without stored options). The stored options are
    /// read as `SegmentationOptions` first, so a key added since the checkpoint was written
    /// compares as the behaviour it trained with, not as missing.
    public static func changedOptions(in path: String, comparedWith options: SegmentationOptions) throws -> [String] {
        guard let stored = storedOptionsJSON(try Checkpoint.metadata(at: path)) else { return [] }
        let json =
            (try? JSONDecoder().decode(SegmentationOptions.self, from: Data(stored.utf8)))
            .flatMap { try? JSONEncoder().encode($0) }.map { String(decoding: $0, as: UTF8.self) } ?? stored
        guard let old = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any],
            let new = try JSONSerialization.jsonObject(with: try JSONEncoder().encode(options)) as? [String: Any]
        else { return [] }
        return new.keys.sorted().compactMap { key in
            // Log, evaluation and checkpoint cadence cannot change the result: never a reason to refuse.
            guard !SegmentationOptions.cosmeticKeys.contains(key) else { return nil }
            let (a, b) = (old[key].map { "\($0)" } ?? "-", "\(new[key]!)")
            return a == b ? nil : "\(key): \(a) → \(b)"
        }
    }

    /// Loads a DeepLab-v2 checkpoint written by `train` (its options travel in the recipe attribute).
    public static func load(_ path: String) throws -> (model: DeepLabV2, options: SegmentationOptions, classes: [String]) {
        let metadata = try Checkpoint.metadata(at: path)
        // A CAM classifier's checkpoint is that, not a DeepLab one with its options missing.
        guard metadata.architecture == DeepLabV2.architecture else {
            throw CheckpointError.wrongArchitecture(path: path, expected: DeepLabV2.architecture, found: metadata.architecture)
        }
        guard let json = storedOptionsJSON(metadata),
            let options = try? JSONDecoder().decode(SegmentationOptions.self, from: Data(json.utf8))
        else {
            throw TrainingError.badCheckpoint(
                path: path, reason: "no DeepLab-v2 options in its recipe attribute (not written by `wsss train`?)")
        }
        let model = options.makeModel(classes: metadata.classes.count)
        _ = try Checkpoint.load(from: path, into: model, architecture: DeepLabV2.architecture)
        model.train(false)
        return (model, options, metadata.classes)
    }
}
