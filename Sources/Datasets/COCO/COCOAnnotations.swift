import Foundation

/// One entry of a COCO file's `images`.
public struct COCOImage: Equatable, Sendable {
    public var id: Int
    public var fileName: String
    public var height: Int
    public var width: Int
}

/// One entry of a COCO file's `categories`.
public struct COCOCategory: Equatable, Sendable {
    public var id: Int
    public var name: String
}

/// One entry of a COCO file's `annotations`, its segmentation left in the file (a byte range)
/// until its image is converted: 600k parsed polygons would hold hundreds of MB at once.
public struct COCOAnnotation: Equatable, Sendable {
    public var id: Int
    public var imageID: Int
    public var categoryID: Int
    public var isCrowd: Bool
    /// The file's `area` (pixels); nil when absent (then the mask's own area is used).
    public var area: Double?
    /// Byte range of the `segmentation` value in the file; nil when absent.
    public var segmentation: Range<Int>?
}

/// A decoded segmentation: polygons (several parts, each x0, y0, x1, y1, …) or runs.
public enum COCOSegmentation: Equatable, Sendable {
    case polygons([[Double]])
    /// An uncompressed (`counts` a list) or compressed (`counts` a string) RLE.
    case runLengths(COCORunLengths)
}

/// A COCO instances file (`instances_train2014.json`): images, categories and annotations, read
/// by one pass of our own scanner over the mapped file (no Foundation object tree), keeping
/// only the fields the conversion needs. `info`, `licenses`, `bbox` and unknown keys are
/// skipped (but checked to be well-formed JSON).
public final class COCOAnnotationFile: @unchecked Sendable {
    public let path: String
    public private(set) var images: [COCOImage] = []
    public private(set) var categories: [COCOCategory] = []
    public private(set) var annotations: [COCOAnnotation] = []
    private let file: MappedFile

    /// Reads and checks the structure of the whole file.
    /// - Throws: `COCOError.malformedJSON` (with the byte offset) for a truncated or malformed
    ///   file, `.badField` for a missing or mistyped field (naming the annotation or image id).
    public init(path: String) throws {
        self.path = path
        file = try MappedFile(path: path)
        var scanner = JSONScanner(base: file.base, end: file.count, path: path)
        var sawImages = false, sawAnnotations = false, sawCategories = false
        try scanner.object { key, s throws(COCOError) in
            if key.equals("images") {
                sawImages = true
                try s.array { s throws(COCOError) in images.append(try Self.image(&s, path: path)) }
            } else if key.equals("annotations") {
                sawAnnotations = true
                annotations.reserveCapacity(file.count / 500)
                try s.array { s throws(COCOError) in annotations.append(try Self.annotation(&s, path: path)) }
            } else if key.equals("categories") {
                sawCategories = true
                try s.array { s throws(COCOError) in categories.append(try Self.category(&s, path: path)) }
            } else {
                try s.skipValue()
            }
        }
        guard scanner.peek() == 0 else { throw scanner.fail("text after the top-level object") }
        for (seen, key) in [(sawImages, "images"), (sawCategories, "categories")] where !seen {
            throw COCOError.badField(path: path, owner: "file", field: key, reason: "is missing (not a COCO instances file?)")
        }
        // A test file (image_info_test2014.json) has no annotations: every image is unannotated.
        _ = sawAnnotations
    }

    static func image(_ s: inout JSONScanner, path: String) throws(COCOError) -> COCOImage {
        let start = s.position
        var id: Int?, name: String?, height: Int?, width: Int?
        try s.object { key, s throws(COCOError) in
            if key.equals("id") {
                id = try s.integer()
            } else if key.equals("file_name") {
                name = try s.string()
            } else if key.equals("height") {
                height = try s.integer()
            } else if key.equals("width") {
                width = try s.integer()
            } else {
                try s.skipValue()
            }
        }
        guard let id else {
            throw COCOError.badField(path: path, owner: "image at byte \(start)", field: "id", reason: "is missing")
        }
        guard let name, !name.isEmpty else {
            throw COCOError.badField(path: path, owner: "image \(id)", field: "file_name", reason: "is missing")
        }
        guard let height, let width, height > 0, width > 0, height <= 65535, width <= 65535 else {
            throw COCOError.badField(path: path, owner: "image \(id)", field: "height/width", reason: "must be 1…65535 pixels")
        }
        return COCOImage(id: id, fileName: name, height: height, width: width)
    }

    static func category(_ s: inout JSONScanner, path: String) throws(COCOError) -> COCOCategory {
        let start = s.position
        var id: Int?, name: String?
        try s.object { key, s throws(COCOError) in
            if key.equals("id") {
                id = try s.integer()
            } else if key.equals("name") {
                name = try s.string()
            } else {
                try s.skipValue()
            }
        }
        guard let id else {
            throw COCOError.badField(path: path, owner: "category at byte \(start)", field: "id", reason: "is missing")
        }
        guard let name, !name.isEmpty, !name.contains(where: \.isNewline) else {
            throw COCOError.badField(path: path, owner: "category \(id)", field: "name", reason: "is missing or not one line")
        }
        return COCOCategory(id: id, name: name)
    }

    static func annotation(_ s: inout JSONScanner, path: String) throws(COCOError) -> COCOAnnotation {
        let start = s.position
        var id: Int?, image: Int?, category: Int?, crowd = 0, area: Double?, segmentation: Range<Int>?
        try s.object { key, s throws(COCOError) in
            if key.equals("id") {
                id = try s.integer()
            } else if key.equals("image_id") {
                image = try s.integer()
            } else if key.equals("category_id") {
                category = try s.integer()
            } else if key.equals("iscrowd") {
                crowd = try s.integer()
            } else if key.equals("area") {
                area = try s.number()
            } else if key.equals("segmentation") {
                segmentation = try s.skipValue()
            } else {
                try s.skipValue()
            }
        }
        guard let id else {
            throw COCOError.badField(path: path, owner: "annotation at byte \(start)", field: "id", reason: "is missing")
        }
        guard let image else {
            throw COCOError.badField(path: path, owner: "annotation \(id)", field: "image_id", reason: "is missing")
        }
        guard let category else {
            throw COCOError.badField(path: path, owner: "annotation \(id)", field: "category_id", reason: "is missing")
        }
        return COCOAnnotation(
            id: id, imageID: image, categoryID: category, isCrowd: crowd != 0, area: area, segmentation: segmentation)
    }

    /// Parses an annotation's segmentation: a list of polygons, or an RLE object with `size`
    /// [height, width] and `counts` (a list of runs, or COCO's compressed string).
    /// - Throws: `COCOError.badSegmentation` naming the annotation.
    public func segmentation(of annotation: COCOAnnotation) throws -> COCOSegmentation {
        guard let range = annotation.segmentation else {
            throw COCOError.badSegmentation(path: path, annotationID: annotation.id, reason: "no 'segmentation'")
        }
        var s = JSONScanner(base: file.base, start: range.lowerBound, end: range.upperBound, path: path)
        func bad(_ reason: String) -> COCOError { .badSegmentation(path: path, annotationID: annotation.id, reason: reason) }
        do {
            switch s.peek() {
            case UInt8(ascii: "["):
                var parts: [[Double]] = []
                try s.array { s throws(COCOError) in
                    var part: [Double] = []
                    guard s.peek() == UInt8(ascii: "[") else { throw bad("a polygon list holds a non-list") }
                    try s.array { s throws(COCOError) in part.append(try s.number()) }
                    parts.append(part)
                }
                return .polygons(parts)
            case UInt8(ascii: "{"):
                var size: [Int] = []
                var list: [UInt32]?
                var compressed: [UInt8]?
                try s.object { key, s throws(COCOError) in
                    if key.equals("size") {
                        try s.array { s throws(COCOError) in size.append(try s.integer()) }
                    } else if key.equals("counts") {
                        if s.peek() == UInt8(ascii: "\"") {
                            // The alphabet holds a backslash (92), escaped in JSON: decode escapes first.
                            compressed = Array(try s.string().utf8)
                        } else {
                            var runs: [UInt32] = []
                            try s.array { s throws(COCOError) in
                                let at = s.position
                                let run = try s.integer()
                                guard run >= 0 && run <= Int(UInt32.max) else {
                                    throw s.fail("a run length out of range", at: at)
                                }
                                runs.append(UInt32(run))
                            }
                            list = runs
                        }
                    } else {
                        try s.skipValue()
                    }
                }
                guard size.count == 2, size[0] > 0, size[1] > 0 else { throw bad("RLE 'size' must be [height, width]") }
                let counts: [UInt32]
                if let list {
                    counts = list
                } else if let compressed {
                    do {
                        counts = try compressed.withUnsafeBytes { try COCOMask.decodeCounts($0) }
                    } catch COCOMask.StringError.badCharacter(let offset) {
                        throw bad("compressed counts: bad character at \(offset)")
                    } catch COCOMask.StringError.truncated {
                        throw bad("compressed counts end inside a number")
                    } catch COCOMask.StringError.badRun(let index) {
                        throw bad("compressed counts: run \(index) is negative or too long")
                    }
                } else {
                    throw bad("RLE without 'counts'")
                }
                guard !counts.isEmpty else { throw bad("RLE with empty 'counts'") }
                return .runLengths(COCORunLengths(height: size[0], width: size[1], counts: counts))
            default:
                throw bad("neither a polygon list nor an RLE object")
            }
        } catch let error as COCOError {
            if case .malformedJSON(_, _, let reason) = error { throw bad(reason) }
            throw error
        }
    }
}
