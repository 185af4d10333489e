import Autograd
import Foundation
import Imaging

/// Automatic masks for many images into a folder of amg.py JSON files (`<dir>/<id>.json`),
/// the layout `SA1BProposals` reads: each file written atomically, finished images skipped on a
/// rerun, and `shard` picking every N-th image so a dataset can be split over jobs or machines.
public enum SAMMaskFolder {
    /// One image to process.
    public struct Item: Sendable {
        public var id: String
        public var imagePath: String
        public init(id: String, imagePath: String) { (self.id, self.imagePath) = (id, imagePath) }
    }

    /// The items of shard `index` of `count` (every `count`-th item from the `index`-th, 0-based).
    public static func shard(_ items: [Item], index: Int, count: Int) -> [Item] {
        precondition(count >= 1 && index >= 0 && index < count, "SAMMaskFolder.shard: \(index)/\(count)")
        return items.enumerated().filter { $0.offset % count == index }.map(\.element)
    }

    /// Whether `path` holds a finished image's masks: a non-empty file whose text starts with `[`
    /// and ends with `]` (amg.py writes one JSON list); an empty or cut-short file is redone.
    static func isComplete(_ path: String) -> Bool {
        guard let data = FileManager.default.contents(atPath: path) else { return false }
        let text = data.filter { ![0x20, 0x0A, 0x0D, 0x09].contains($0) }
        return text.first == UInt8(ascii: "[") && text.last == UInt8(ascii: "]")
    }

    /// The JSON file of `id` in `directory`.
    public static func path(of id: String, in directory: String) -> String { "\(directory)/\(id).json" }

    /// What to do with a folder whose masks were made with other settings (or with none recorded).
    public enum ReplacePolicy: Sendable {
        /// Refuse it, naming the differences.
        case never
        /// Move it aside when its recorded settings differ; refuse a folder without a record.
        case changedSettings
        /// Move it aside whenever it is not this run's (`--overwrite`).
        case always
    }

    /// The settings record of a mask folder: `<dir>/provenance.json`.
    public static func recordPath(in directory: String) -> String { directory + "/provenance.json" }

    /// The settings the masks depend on: the generator's options by their official names
    /// (`points_per_batch` left out: it bounds memory, not results) and the weights —
    /// `checkpoint` is a fingerprint of the file (its size and its first and last 4 MB), so a
    /// renamed copy matches and other weights under the same name do not.
    /// With bf16 arithmetic (`precision` as this CPU resolves it) the record says so; fp32
    /// records nothing, as before precisions existed.
    /// - Throws: `SAMWeightsError`-style file errors naming the checkpoint when it cannot be read.
    public static func settings(
        options: AutomaticMaskGeneratorOptions, checkpoint: String, configuration: String? = nil,
        precision: ComputePrecision = .fp32, hqTokenOnly: Bool = false
    ) throws -> [String: String] {
        var values: [String: String] = [
            "points_per_side": options.pointsPerSide.map(String.init) ?? "grids", "pred_iou_thresh": "\(options.predIoUThresh)",
            "stability_score_thresh": "\(options.stabilityScoreThresh)",
            "stability_score_offset": "\(options.stabilityScoreOffset)",
            "box_nms_thresh": "\(options.boxNMSThresh)", "crop_n_layers": "\(options.cropNLayers)",
            "crop_nms_thresh": "\(options.cropNMSThresh)", "crop_overlap_ratio": "\(options.cropOverlapRatio)",
            "crop_n_points_downscale_factor": "\(options.cropNPointsDownscaleFactor)",
            "min_mask_region_area": "\(options.minMaskRegionArea)", "mask_threshold": "\(options.maskThreshold)",
            "checkpoint": try fingerprint(of: checkpoint),
        ]
        if let grids = options.pointGrids { values["point_grids"] = "\(grids.map { $0.map { [$0.x, $0.y] } })" }
        if let configuration { values["config"] = configuration }
        if precision.resolved == .bf16 { values["precision"] = "bf16" }
        if hqTokenOnly { values["hq_token_only"] = "true" }
        return values
    }

    /// A quick identity of a large file: its size and FNV-1a over its first and last 4 MB.
    public static func fingerprint(of path: String) throws -> String {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw CocoaError(.fileReadNoSuchFile, userInfo: [NSFilePathErrorKey: path])
        }
        defer { try? handle.close() }
        let size = try handle.seekToEnd()
        let chunk: UInt64 = 4 << 20
        try handle.seek(toOffset: 0)
        var data = try handle.read(upToCount: Int(min(size, chunk))) ?? Data()
        if size > chunk {
            try handle.seek(toOffset: max(chunk, size - chunk))
            data += try handle.readToEnd() ?? Data()
        }
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in data {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        return "\(size)-\(String(hash, radix: 16))"
    }

    /// Makes `directory` ready for masks of `settings`: creates it and its record, or checks the
    /// record it has. Returns where earlier masks were moved, if they were.
    /// - Throws: `SAMMaskFolderError` when the folder holds masks of other (or unrecorded)
    ///   settings and `replace` does not allow moving them aside.
    @discardableResult
    public static func prepare(_ directory: String, settings: [String: String], replace: ReplacePolicy) throws -> String? {
        let record = recordPath(in: directory)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        var movedAside: String?
        let stored = FileManager.default.contents(atPath: record).flatMap {
            try? JSONSerialization.jsonObject(with: $0) as? [String: String]
        }
        // Finished mask files only: empty or cut-short ones are redone anyway.
        let masks = names.filter { $0.hasSuffix(".json") && $0 != "provenance.json" && isComplete("\(directory)/\($0)") }
        let differences: [String]? =
            if let stored {
                Set(stored.keys).union(settings.keys).sorted().compactMap { key in
                    stored[key] == settings[key] ? nil : "\(key): \(stored[key] ?? "-") → \(settings[key] ?? "-")"
                }
            } else {
                masks.isEmpty ? [] : nil
            }
        if differences?.isEmpty != true {
            let allowed = replace == .always || (replace == .changedSettings && differences != nil)
            guard allowed else {
                throw SAMMaskFolderError.otherSettings(directory: directory, differences: differences)
            }
            let stamp = Int(Date().timeIntervalSince1970)
            movedAside = "\(directory).replaced-\(stamp)"
            try FileManager.default.moveItem(atPath: directory, toPath: movedAside!)
        }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        if stored == nil || movedAside != nil {
            try JSONSerialization.data(withJSONObject: settings, options: [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes])
                .write(to: URL(fileURLWithPath: record), options: .atomic)
        }
        return movedAside
    }

    /// Runs `generator` on every item whose JSON does not exist yet. With `settings`, the folder
    /// is first checked against (or given) their record (`prepare`), so masks made with other
    /// settings or weights are never taken for these.
    /// - Parameter progress: called after each image with its id and mask count (nil when skipped).
    /// - Returns: images processed and skipped, and where earlier masks were moved.
    /// - Throws: `SAMMaskFolderError`, image and file errors naming the file; nothing half-written is left behind.
    @discardableResult
    public static func generate(
        _ items: [Item], generator: AutomaticMaskGenerator, into directory: String, settings: [String: String]? = nil,
        replace: ReplacePolicy = .never, progress: (String, Int?) -> Void = { _, _ in }
    ) throws -> (processed: Int, skipped: Int, movedAside: String?) {
        let movedAside = try settings.map { try prepare(directory, settings: $0, replace: replace) } ?? nil
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var (processed, skipped) = (0, 0)
        for item in items {
            let out = path(of: item.id, in: directory)
            // Our files are written atomically, but one copied in or cut short elsewhere must not
            // count as done: only a file that holds a whole JSON list is skipped.
            if isComplete(out) {
                skipped += 1
                progress(item.id, nil)
                continue
            }
            let image = try Image.readRGB(from: item.imagePath)
            let records = try generator.generate(image)
            try MaskRecord.writeAMGJSON(records, to: out)
            processed += 1
            progress(item.id, records.count)
        }
        return (processed, skipped, movedAside)
    }
}

/// A mask folder that holds masks of other settings than the ones asked for.
public enum SAMMaskFolderError: LocalizedError, Equatable {
    /// `differences` "key: recorded → asked"; nil when the folder records no settings at all.
    case otherSettings(directory: String, differences: [String]?)

    public var errorDescription: String? {
        switch self {
        case .otherSettings(let directory, let differences):
            "\(directory): "
                + (differences.map {
                    "holds results made with other settings or weights (\($0.prefix(6).joined(separator: "; "))\($0.count > 6 ? "; …" : ""))"
                }
                    ?? "holds results without a record of the settings and weights that made them")
                + "; pass --overwrite to move them aside and compute these, or choose another folder"
        }
    }
}
