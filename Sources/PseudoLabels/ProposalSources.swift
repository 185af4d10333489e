import Foundation
import HDF5
import Imaging

/// Where class-agnostic segment proposals come from. Every source yields the masks of one
/// image at the image's size; a mask of another size is an error naming the file.
public protocol ProposalSource: Sendable {
    /// A short name for logs ("sa1b:DIR", "felzenszwalb").
    var name: String { get }
    /// What the proposals are, for result tables, when a name would hide it — e.g. "SAM
    /// stand-in, derived from ground truth" for the synthetic set's oracle masks. A folder of
    /// proposals says so in a one-line `ABOUT.txt`; nil otherwise.
    var about: String? { get }
    /// The proposals of image `id`; `image` is its RGB pixels (sources that compute proposals
    /// use it; file-based ones only check the size against it).
    func proposals(for id: String, image: Image) throws -> [SegmentMask]
}

/// SA-1B-style JSON, one file per image (`<dir>/<id>.json`): either the list that
/// segment_anything's `amg.py --convert-to-rle` writes or SA-1B's `{"image": …, "annotations": […]}`.
/// Each record's `segmentation` is COCO RLE (`size` [h, w], `counts` as a compressed string or
/// a list of ints); `predicted_iou` and `stability_score` are kept when present.
extension ProposalSource {
    public var about: String? { nil }
}

/// The first line of `<directory>/ABOUT.txt` (what the folder's proposals are; later lines may
/// say where they came from), when there is one.
public func folderAbout(_ directory: String) -> String? {
    guard let data = FileManager.default.contents(atPath: directory + "/" + proposalAboutFile) else { return nil }
    let line = String(decoding: data, as: UTF8.self).split(separator: "\n").first.map { $0.trimmingCharacters(in: .whitespaces) }
    return line?.isEmpty == false ? line : nil
}

/// The name of the one-line description a proposal folder may hold.
public let proposalAboutFile = "ABOUT.txt"

public struct SA1BProposals: ProposalSource {
    public let directory: String
    public var name: String { "sa1b:\(directory)" }
    public var about: String? { folderAbout(directory) }
    public init(directory: String) { self.directory = directory }

    public func proposals(for id: String, image: Image) throws -> [SegmentMask] {
        try Self.read(path: "\(directory)/\(id).json", width: image.width, height: image.height)
    }

    /// Reads one file; the masks must be `width` x `height`.
    public static func read(path: String, width: Int, height: Int) throws -> [SegmentMask] {
        let data = try PseudoLabelError.contents(of: path)
        guard !data.isEmpty else { throw PseudoLabelError.malformed(path: path, reason: "empty file (0 bytes)") }
        let json: Any
        // Foundation's own message ("The data is not in the correct format.") says nothing more.
        do { json = try JSONSerialization.jsonObject(with: data) } catch {
            throw PseudoLabelError.malformed(path: path, reason: "not valid JSON (cut short, or not an amg.py / SA-1B file?)")
        }
        let records: [Any]
        if let list = json as? [Any] {
            records = list
        } else if let object = json as? [String: Any], let list = object["annotations"] as? [Any] {
            records = list
        } else {
            throw PseudoLabelError.malformed(path: path, reason: "expected a list of masks or an object with \"annotations\"")
        }
        return try records.enumerated().map { k, record in
            func bad(_ reason: String) -> PseudoLabelError { .malformed(path: path, reason: "mask \(k): \(reason)") }
            guard let record = record as? [String: Any], let rle = record["segmentation"] as? [String: Any] else {
                throw bad("no \"segmentation\" object")
            }
            guard let size = rle["size"] as? [Int], size.count == 2 else { throw bad("\"size\" must be [height, width]") }
            guard size[0] == height && size[1] == width else {
                throw PseudoLabelError.sizeMismatch(path: path, expected: (width, height), found: (size[1], size[0]))
            }
            let counts: [Int]
            if let string = rle["counts"] as? String {
                do { counts = try COCORLE.decompress(string) } catch let error as RLEError { throw bad(error.description) }
            } else if let list = rle["counts"] as? [Int] {
                counts = list
            } else {
                throw bad("\"counts\" must be a string or a list of integers")
            }
            var mask: SegmentMask
            do { mask = try COCORLE.mask(counts: counts, height: height, width: width) } catch let error as RLEError {
                throw bad(error.description)
            }
            mask.predictedIoU = (record["predicted_iou"] as? NSNumber)?.floatValue
            mask.stabilityScore = (record["stability_score"] as? NSNumber)?.floatValue
            return mask
        }
    }

    /// Writes masks as an `amg.py --convert-to-rle`-style list (compressed counts).
    public static func write(_ masks: [SegmentMask], to path: String) throws {
        let records: [[String: Any]] = masks.map { mask in
            let box = mask.boundingBox.map { [$0.x0, $0.y0, $0.x1 - $0.x0 + 1, $0.y1 - $0.y0 + 1] } ?? [0, 0, 0, 0]
            var record: [String: Any] = [
                "segmentation": ["size": [mask.height, mask.width], "counts": COCORLE.compress(COCORLE.counts(of: mask))],
                "area": mask.area, "bbox": box,
            ]
            if let v = mask.predictedIoU { record["predicted_iou"] = Double(v) }
            if let v = mask.stabilityScore { record["stability_score"] = Double(v) }
            return record
        }
        let data = try JSONSerialization.data(withJSONObject: records, options: [.sortedKeys, .withoutEscapingSlashes])
        try data.write(to: URL(fileURLWithPath: path), options: .atomic)
    }
}

/// A folder per image of 0/255 mask PNGs (`<dir>/<id>/*.png`, read in name order) — what
/// `amg.py` writes without RLE, and what the SEPL code reads.
public struct MaskFolderProposals: ProposalSource {
    public let directory: String
    public var name: String { "masks:\(directory)" }
    public var about: String? { folderAbout(directory) }
    public init(directory: String) { self.directory = directory }

    public func proposals(for id: String, image: Image) throws -> [SegmentMask] {
        let folder = "\(directory)/\(id)"
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: folder) else {
            throw PseudoLabelError.missingFile(path: folder)
        }
        return try names.filter { $0.lowercased().hasSuffix(".png") }.sorted().map { file in
            let path = "\(folder)/\(file)"
            let png = try Image.read(from: path)
            guard png.width == image.width && png.height == image.height else {
                throw PseudoLabelError.sizeMismatch(
                    path: path, expected: (image.width, image.height), found: (png.width, png.height))
            }
            let c = png.channels
            let bitmap = (0..<(png.width * png.height)).map { png.pixels[$0 * c] > 127 }
            return SegmentMask(width: png.width, height: png.height, bitmap: bitmap)
        }
    }
}

/// A single index map per image: `<dir>/<id>.png` (8-bit grey or palette indices) or
/// `<dir>/<id>.h5` (integer dataset `segments`, [H, W]). Each positive value is one segment;
/// 0 and negative values are uncovered.
public struct IndexMapProposals: ProposalSource {
    public let directory: String
    public var name: String { "index:\(directory)" }
    public var about: String? { folderAbout(directory) }
    public init(directory: String) { self.directory = directory }

    public func proposals(for id: String, image: Image) throws -> [SegmentMask] {
        let png = "\(directory)/\(id).png", h5 = "\(directory)/\(id).h5"
        let (w, h) = (image.width, image.height)
        let values: [Int32]
        if FileManager.default.fileExists(atPath: png) {
            let map = try LabelMap.read(from: png)
            guard map.width == w && map.height == h else {
                throw PseudoLabelError.sizeMismatch(path: png, expected: (w, h), found: (map.width, map.height))
            }
            values = map.values.map { Int32($0) }
        } else if FileManager.default.fileExists(atPath: h5) {
            let file = try HDF5File(path: h5, mode: .read)
            let shape = try file.shape(of: "segments")
            guard shape.count == 2 else {
                throw PseudoLabelError.malformed(path: h5, reason: "\"segments\" must be [H, W], is \(shape)")
            }
            guard shape == [h, w] else {
                throw PseudoLabelError.sizeMismatch(path: h5, expected: (w, h), found: (shape[1], shape[0]))
            }
            values = try file.readLabels("segments").values
        } else {
            throw PseudoLabelError.missingFile(path: "\(directory)/\(id).png or .h5")
        }
        return Self.masks(fromIndexMap: values, width: w, height: h)
    }

    /// One mask per positive value, in ascending value order.
    public static func masks(fromIndexMap values: [Int32], width: Int, height: Int) -> [SegmentMask] {
        var runsByValue: [Int32: [Range<Int32>]] = [:]
        var index: Int32 = 0
        for x in 0..<width {
            var y = 0
            while y < height {
                let v = values[y * width + x]
                var end = y + 1
                while end < height && values[end * width + x] == v { end += 1 }
                if v > 0 {
                    let run = (index + Int32(y))..<(index + Int32(end))
                    if let last = runsByValue[v]?.last, last.upperBound == run.lowerBound {
                        runsByValue[v]![runsByValue[v]!.count - 1] = last.lowerBound..<run.upperBound
                    } else {
                        runsByValue[v, default: []].append(run)
                    }
                }
                y = end
            }
            index += Int32(height)
        }
        return runsByValue.keys.sorted().map { SegmentMask(width: width, height: height, runs: runsByValue[$0]!) }
    }
}

/// Felzenszwalb–Huttenlocher segments computed on the image (no files, no weights).
public struct FelzenszwalbProposals: ProposalSource {
    public var options: Felzenszwalb.Options
    public var name: String { "felzenszwalb(scale \(options.scale), sigma \(options.sigma), min size \(options.minSize))" }
    public init(options: Felzenszwalb.Options = .init()) { self.options = options }

    public func proposals(for id: String, image: Image) throws -> [SegmentMask] {
        let segments = Felzenszwalb.segment(image, options: options)
        return IndexMapProposals.masks(fromIndexMap: segments.map { $0 + 1 }, width: image.width, height: image.height)
    }
}
