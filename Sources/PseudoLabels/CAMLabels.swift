import Autograd
import Foundation
import HDF5
import Imaging

/// The CAMs of one image: the object classes present (ids 1…C) and one map per class at image
/// resolution, each max-normalised to [0, 1].
public struct ImageCAMs: Sendable {
    public let classes: [Int]
    /// [classes.count, H, W].
    public let maps: Tensor
    public var height: Int { maps.shape[1] }
    public var width: Int { maps.shape[2] }

    public init(classes: [Int], maps: Tensor) {
        precondition(maps.rank == 3 && maps.shape[0] == classes.count, "ImageCAMs: \(classes.count) classes, maps \(maps.shape)")
        self.classes = classes
        self.maps = maps
    }
}

/// Turning CAMs into a label map (IRN's `cam_to_ir_label` / `eval_cam` rule).
public struct CAMThreshold: Equatable, Sendable {
    /// A pixel is background where every present class's CAM is below this.
    public var background: Float = 0.15
    /// Optional confidence band: pixels whose strongest CAM lies in [low, high) become 255.
    public var ignoreBand: ClosedRange<Float>?

    public init(background: Float = 0.15, ignoreBand: ClosedRange<Float>? = nil) {
        self.background = background
        self.ignoreBand = ignoreBand
    }

    public func labels(_ cams: ImageCAMs) -> LabelMap {
        let (h, w) = (cams.height, cams.width)
        let n = h * w
        var values = [UInt8](repeating: 0, count: n)
        let base = cams.maps.storage.base
        for p in 0..<n {
            var (best, bestClass) = (Float(-1), 0)
            for (k, c) in cams.classes.enumerated() where base[k * n + p] > best {
                (best, bestClass) = (base[k * n + p], c)
            }
            if let band = ignoreBand, best >= band.lowerBound && best < band.upperBound {
                values[p] = LabelMap.ignore
            } else {
                values[p] = best >= background ? UInt8(bestClass) : 0
            }
        }
        return LabelMap(width: w, height: h, values: values)
    }
}

/// A file of CAMs for a split (`wsss cam infer` writes it):
/// ```
/// /<image id>/classes   int32 [K]        object class ids present (1…C)
/// /<image id>/cams      float32 [K,H,W]  max-normalised CAMs at image resolution
/// attributes on /: classes ("\n"-joined names), scales, architecture
/// ```
public final class CAMFile {
    public let path: String
    let file: HDF5File

    public init(readingFrom path: String) throws {
        guard FileManager.default.fileExists(atPath: path) else { throw PseudoLabelError.missingFile(path: path) }
        self.path = path
        file = try HDF5File(path: path, mode: .read)
        // A checkpoint passed by mistake would otherwise fail as "no CAMs for image …".
        if file.contains("/parameters") {
            throw PseudoLabelError.malformed(
                path: path, reason: "is a checkpoint (it holds /parameters), not a CAM file from `wsss cam infer`")
        }
        classCount = (try? file.attribute(named: "classes")?.stringValue).flatMap { $0 }.map { $0.split(separator: "\n").count }
    }

    /// Classes named in the file's `classes` attribute (background first), when present.
    let classCount: Int?

    /// The CAMs of `id` at the size they were stored (merging files written in parts).
    public func cams(for id: String) throws -> ImageCAMs {
        guard file.contains("/\(id)/cams") else {
            throw PseudoLabelError.malformed(path: path, reason: "no CAMs for image \(id)")
        }
        let shape = try file.shape(of: "/\(id)/cams")
        guard shape.count == 3 else { throw PseudoLabelError.malformed(path: path, reason: "\(id): cams of shape \(shape)") }
        return try cams(for: id, width: shape[2], height: shape[1])
    }

    /// The CAMs of `id`; they must be `width` x `height`.
    public func cams(for id: String, width: Int, height: Int) throws -> ImageCAMs {
        guard file.contains("/\(id)/cams") else {
            throw PseudoLabelError.malformed(path: path, reason: "no CAMs for image \(id)")
        }
        let classes = try file.readLabels("/\(id)/classes").values.map(Int.init)
        let shape = try file.shape(of: "/\(id)/cams")
        guard shape.count == 3 && shape[0] == classes.count else {
            throw PseudoLabelError.malformed(path: path, reason: "\(id): cams \(shape) for \(classes.count) classes")
        }
        guard shape[1] == height && shape[2] == width else {
            throw PseudoLabelError.sizeMismatch(path: "\(path) (\(id))", expected: (width, height), found: (shape[2], shape[1]))
        }
        // Ids outside the class list would be written into label PNGs as they are.
        let limit = min(classCount ?? 255, 255)
        if let bad = classes.first(where: { $0 < 1 || $0 >= limit }) {
            throw PseudoLabelError.classOutOfRange(path: "\(path) (\(id))", value: bad, classes: limit)
        }
        let maps = try file.read("/\(id)/cams")
        // Max-normalised CAMs lie in [0, 1]; NaN would silently become background.
        let values = UnsafeBufferPointer(start: maps.storage.base, count: maps.count)
        if let bad = values.first(where: { !($0 >= 0 && $0 <= 1.0001) }) {
            throw PseudoLabelError.malformed(
                path: path, reason: "\(id): CAM value \(bad) outside [0, 1] (NaN, infinite or not max-normalised)")
        }
        return ImageCAMs(classes: classes, maps: maps)
    }

    /// Writes the CAMs of `ids` atomically, asking `cams` for one image at a time (a split's
    /// CAMs never sit in memory together).
    public static func write(
        ids: [String], classNames: [String], scales: [Double], to path: String, _ cams: (String) throws -> ImageCAMs
    ) throws {
        try HDF5File.writeAtomically(to: path) { file in
            for id in ids {
                let c = try cams(id)
                try file.write(LabelTensor(shape: [c.classes.count], values: c.classes.map(Int32.init)), at: "/\(id)/classes")
                try file.write(c.maps, at: "/\(id)/cams")
            }
            try file.setAttribute(.string(classNames.joined(separator: "\n")), named: "classes")
            try file.setAttribute(.string(scales.map { String($0) }.joined(separator: ",")), named: "scales")
        }
    }
}
