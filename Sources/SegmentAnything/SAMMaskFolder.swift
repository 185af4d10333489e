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

    /// Runs `generator` on every item whose JSON does not exist yet.
    /// - Parameter progress: called after each image with its id and mask count (nil when skipped).
    /// - Returns: images processed and skipped.
    /// - Throws: image and file errors naming the file; nothing half-written is left behind.
    @discardableResult
    public static func generate(
        _ items: [Item], generator: AutomaticMaskGenerator, into directory: String, progress: (String, Int?) -> Void = { _, _ in }
    ) throws -> (processed: Int, skipped: Int) {
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
        return (processed, skipped)
    }
}
