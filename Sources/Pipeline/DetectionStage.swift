import Datasets
import Foundation
import GroundingDINO
import Imaging
import PseudoLabels
import SegmentAnything

/// Grounding DINO over a list of images, each with its caption: one JSON list per image in
/// `<output>.parts/` (a rerun reuses them; `provenance.json` there records the weights and
/// settings they were made with), assembled into `output` — `{id: [{label, box, score,
/// text_score}]}` with boxes in pixels in the detector's order, the file `--detections` reads.
public struct DetectionStage {
    public var detector: GroundingDetector
    /// The detections file.
    public var output: String

    public init(detector: GroundingDetector, output: String) { (self.detector, self.output) = (detector, output) }

    /// Where the per-image lists go.
    public var partsDirectory: String { output + ".parts" }

    /// One image to detect in, and its caption (nil: skipped, as the reference skips an image
    /// with no class to prompt).
    public struct Item: Sendable {
        public var id: String
        public var imagePath: String
        public var caption: String?
        public init(id: String, imagePath: String, caption: String?) {
            (self.id, self.imagePath, self.caption) = (id, imagePath, caption)
        }
    }

    /// How a dataset image's caption is built from its image-level classes.
    public enum Prompts: String, Sendable, CaseIterable, Codable {
        /// The class names as Grounded-SAM joins them: "cat . dog .".
        case names
        /// Sun et al.'s (process_pascal.py): the class names and their sub-class prompts (horse:
        /// halter, saddle; dining table: bowl, plate, food, fruit, glass, dishes; tv monitor: tv,
        /// monitor) joined by ".".
        case sunEtAl = "sun-et-al"
    }

    /// The caption of an image with `classes` (ids into `names`); nil when it has none.
    public static func caption(
        classes: Set<Int>, names: [String], prompts: Prompts,
        subclassPrompts: [(className: String, prompts: [String])] = BoxPhrases.sunEtAlSubclassPrompts
    ) -> String? {
        var parts: [String] = []
        for id in classes.sorted() where id > 0 && id < names.count {
            parts.append(names[id])
            guard prompts == .sunEtAl else { continue }
            let key = BoxPhrases.key(names[id])
            parts += subclassPrompts.first { BoxPhrases.key($0.className) == key }?.prompts ?? []
        }
        guard !parts.isEmpty else { return nil }
        return prompts == .names ? TokenizedPrompt.caption(classes: parts) : parts.joined(separator: ".")
    }

    /// Every sample of `dataset` with the caption of its image-level classes, or `caption` for all.
    public static func items(dataset: VOCDataset, prompts: Prompts, caption: String? = nil) throws -> [Item] {
        try dataset.samples.map { sample in
            Item(
                id: sample.id, imagePath: sample.imagePath,
                caption: try caption
                    ?? Self.caption(classes: dataset.imageLabels(of: sample), names: dataset.classes.names, prompts: prompts))
        }
    }

    /// What the detections depend on: the weights and vocabulary (fingerprints of the files),
    /// the thresholds and image sizes, and how captions are made.
    public func settings(checkpoint: String, vocabulary: String, captions: String) throws -> [String: String] {
        let o = detector.options
        return [
            "checkpoint": try SAMMaskFolder.fingerprint(of: checkpoint), "vocab": try SAMMaskFolder.fingerprint(of: vocabulary),
            "box_threshold": "\(o.boxThreshold)", "text_threshold": "\(o.textThreshold)",
            "remove_combined": "\(o.removeCombined)", "size": "\(o.size)", "max_size": "\(o.maximumSize)", "captions": captions,
        ]
    }

    /// What a run did.
    public struct Outcome: Sendable {
        public var detected = 0, reused = 0, skipped = 0, boxes = 0
        /// Images in the assembled file, of all those listed.
        public var assembled = 0, listed = 0
    }

    /// Checks the parts folder against `settings` (moving it aside as `replace` allows); call
    /// once before any process detects into it. Returns where earlier parts were moved.
    @discardableResult
    public func prepare(settings: [String: String], replace: SAMMaskFolder.ReplacePolicy) throws -> String? {
        try SAMMaskFolder.prepare(partsDirectory, settings: settings, replace: replace)
    }

    /// Detects in every item whose list is not there yet.
    /// - Parameter progress: after each image, with its id and box count (nil: reused or skipped).
    public func detect(_ items: [Item], progress: (String, Int?) -> Void = { _, _ in }) throws -> Outcome {
        try FileManager.default.createDirectory(atPath: partsDirectory, withIntermediateDirectories: true)
        var outcome = Outcome()
        for item in items {
            let path = SAMMaskFolder.path(of: item.id, in: partsDirectory)
            guard let caption = item.caption else {
                outcome.skipped += 1
                progress(item.id, nil)
                continue
            }
            if Self.list(at: path) != nil {
                outcome.reused += 1
                progress(item.id, nil)
                continue
            }
            let image = try Image.readRGB(from: item.imagePath)
            let list = detector.detect(in: image, caption: caption).map(Self.record)
            try JSONSerialization.data(withJSONObject: list, options: [.sortedKeys]).write(
                to: URL(fileURLWithPath: path), options: .atomic)
            outcome.detected += 1
            outcome.boxes += list.count
            progress(item.id, list.count)
        }
        return outcome
    }

    /// Writes the detections file from every item's list present (atomically).
    /// - Returns: how many of `items` it holds.
    @discardableResult
    public func assemble(_ items: [Item]) throws -> Int {
        var all: [String: Any] = [:]
        for item in items {
            if let list = Self.list(at: SAMMaskFolder.path(of: item.id, in: partsDirectory)) { all[item.id] = list }
        }
        try JSONSerialization.data(withJSONObject: all, options: [.sortedKeys, .withoutEscapingSlashes]).write(
            to: URL(fileURLWithPath: output), options: .atomic)
        return all.count
    }

    /// `detect`, then `assemble`, in one process.
    public func run(
        _ items: [Item], settings: [String: String], replace: SAMMaskFolder.ReplacePolicy = .never,
        progress: (String, Int?) -> Void = { _, _ in }
    ) throws -> Outcome {
        try prepare(settings: settings, replace: replace)
        var outcome = try detect(items, progress: progress)
        outcome.assembled = try assemble(items)
        outcome.listed = items.count
        return outcome
    }

    /// The detection record of the file format: label, box in pixels, score and text score.
    static func record(_ found: GroundedBox) -> [String: Any] {
        [
            "label": found.phrase, "box": [found.box.0, found.box.1, found.box.2, found.box.3], "score": found.score,
            "text_score": found.textScore,
        ]
    }

    /// The JSON list at `path`, nil when there is none (or it is cut short).
    static func list(at path: String) -> [Any]? {
        FileManager.default.contents(atPath: path).flatMap { try? JSONSerialization.jsonObject(with: $0) as? [Any] }
    }
}
