import Datasets
import Foundation
import GroundingDINO
import Imaging
import PseudoLabels
import SegmentAnything

/// Grounding DINO over a split, as Sun et al. (2023) run it (weixuansun/wsss_sam,
/// process_pascal.py): each image is prompted with its image-level classes and their sub-class
/// prompts joined by "." ("horse.halter.saddle.person"), and every box above the thresholds is
/// kept with its phrase (Grounded-SAM's `get_phrases_from_posmap`) and score. One JSON list per
/// image in `directory` (a rerun reuses them; `provenance.json` records the settings and weights
/// they were made with), assembled into `directory/detections.json`, the file
/// `wsss pseudo --source boxes --detections` reads.
public struct DetectionStage {
    public var detector: GroundingDetector
    public var directory: String
    public var subclassPrompts = BoxPhrases.sunEtAlSubclassPrompts

    public init(detector: GroundingDetector, directory: String) { (self.detector, self.directory) = (detector, directory) }

    /// The assembled file.
    public var outputPath: String { directory + "/detections.json" }

    /// Sun et al.'s prompt for an image of `classes` (ids into `names`, in id order).
    public func caption(classes: Set<Int>, names: [String]) -> String {
        var parts: [String] = []
        for id in classes.sorted() where id > 0 && id < names.count {
            parts.append(names[id])
            let key = BoxPhrases.key(names[id])
            parts += subclassPrompts.first { BoxPhrases.key($0.className) == key }?.prompts ?? []
        }
        return parts.joined(separator: ".")
    }

    /// What the detections depend on: the weights (a fingerprint of the file), the vocabulary,
    /// the thresholds and image sizes, the phrase rule and the sub-class prompts.
    public func settings(checkpoint: String, vocabulary: String) throws -> [String: String] {
        let o = detector.options
        return [
            "checkpoint": try SAMMaskFolder.fingerprint(of: checkpoint), "vocab": try SAMMaskFolder.fingerprint(of: vocabulary),
            "box_threshold": "\(o.boxThreshold)", "text_threshold": "\(o.textThreshold)",
            "remove_combined": "\(o.removeCombined)", "size": "\(o.size)", "max_size": "\(o.maximumSize)",
            "prompts":
                "sun-et-al: classes and \(subclassPrompts.map { "\($0.className) ← \($0.prompts.joined(separator: ", "))" })",
        ]
    }

    /// What a run did.
    public struct Outcome: Sendable {
        public var detected = 0, cached = 0, boxes = 0
        public var movedAside: String?
    }

    /// Detects in every image of `dataset` whose list is not there yet, then assembles the file.
    /// - Parameter progress: after each image, with its id and box count (nil: reused).
    /// - Throws: `SAMMaskFolderError` for a folder of other settings that `replace` does not let
    ///   go; image, file and label errors naming the file.
    public func run(
        on dataset: VOCDataset, settings: [String: String], replace: SAMMaskFolder.ReplacePolicy = .never,
        progress: (String, Int?) -> Void = { _, _ in }
    ) throws -> Outcome {
        var outcome = Outcome()
        outcome.movedAside = try SAMMaskFolder.prepare(directory, settings: settings, replace: replace)
        let names = dataset.classes.names
        var all: [String: Any] = [:]
        for sample in dataset.samples {
            let path = SAMMaskFolder.path(of: sample.id, in: directory)
            if let data = FileManager.default.contents(atPath: path),
                let list = try? JSONSerialization.jsonObject(with: data) as? [Any]
            {
                all[sample.id] = list
                outcome.cached += 1
                progress(sample.id, nil)
                continue
            }
            let classes = try dataset.imageLabels(of: sample)
            var list: [[String: Any]] = []
            if !classes.isEmpty {
                let image = try Image.readRGB(from: sample.imagePath)
                list = detector.detect(in: image, caption: caption(classes: classes, names: names)).map { found in
                    ["label": found.phrase, "box": [found.box.0, found.box.1, found.box.2, found.box.3], "score": found.score]
                }
            }
            try JSONSerialization.data(withJSONObject: list, options: [.sortedKeys]).write(
                to: URL(fileURLWithPath: path), options: .atomic)
            all[sample.id] = list
            outcome.detected += 1
            outcome.boxes += list.count
            progress(sample.id, list.count)
        }
        try JSONSerialization.data(withJSONObject: all, options: [.sortedKeys, .withoutEscapingSlashes]).write(
            to: URL(fileURLWithPath: outputPath), options: .atomic)
        return outcome
    }
}
