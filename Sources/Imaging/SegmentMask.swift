/// A class-agnostic binary mask (one segment proposal), stored as runs of pixels in
/// column-major order — the order of COCO RLE — so decoding an RLE is a prefix sum and
/// counting a mask's overlap with a region is one lookup per run.
///
/// A pixel (x, y) has the column-major index `x * height + y`.
public struct SegmentMask: Equatable, Sendable {
    public let width: Int
    public let height: Int
    /// Sorted, disjoint, non-empty half-open ranges of column-major pixel indices.
    public let runs: [Range<Int32>]
    /// The proposal's own quality scores when the source has them (SAM's predicted IoU and
    /// stability score), else nil.
    public var predictedIoU: Float?
    public var stabilityScore: Float?

    public init(width: Int, height: Int, runs: [Range<Int32>], predictedIoU: Float? = nil, stabilityScore: Float? = nil) {
        self.width = width
        self.height = height
        self.runs = runs
        self.predictedIoU = predictedIoU
        self.stabilityScore = stabilityScore
    }

    /// A mask from a row-major bitmap (`true` = in the mask).
    public init(width: Int, height: Int, bitmap: [Bool]) {
        precondition(bitmap.count == width * height, "SegmentMask: bitmap of \(bitmap.count) for \(width)x\(height)")
        var runs: [Range<Int32>] = []
        var start: Int32 = -1
        var index: Int32 = 0
        for x in 0..<width {
            for y in 0..<height {
                if bitmap[y * width + x] {
                    if start < 0 { start = index }
                } else if start >= 0 {
                    runs.append(start..<index)
                    start = -1
                }
                index += 1
            }
        }
        if start >= 0 { runs.append(start..<index) }
        self.init(width: width, height: height, runs: runs)
    }

    /// Pixels in the mask.
    public var area: Int { runs.reduce(0) { $0 + $1.count } }

    /// The row-major bitmap.
    public var bitmap: [Bool] {
        var out = [Bool](repeating: false, count: width * height)
        for run in runs {
            for i in run { out[Int(i % Int32(height)) * width + Int(i / Int32(height))] = true }
        }
        return out
    }

    /// Whether (x, y) is in the mask.
    public func contains(x: Int, y: Int) -> Bool {
        let i = Int32(x * height + y)
        var (lo, hi) = (0, runs.count)
        while lo < hi {
            let mid = (lo + hi) / 2
            if runs[mid].upperBound <= i { lo = mid + 1 } else { hi = mid }
        }
        return lo < runs.count && runs[lo].contains(i)
    }

    /// The tight box (x0, y0, x1, y1), inclusive, or nil when empty.
    public var boundingBox: (x0: Int, y0: Int, x1: Int, y1: Int)? {
        guard let first = runs.first, let last = runs.last else { return nil }
        let h = Int32(height)
        var (y0, y1) = (Int32.max, Int32.min)
        for run in runs {
            let (c0, c1) = (run.lowerBound / h, (run.upperBound - 1) / h)
            if c0 != c1 { (y0, y1) = (0, h - 1); break }
            y0 = min(y0, run.lowerBound % h)
            y1 = max(y1, (run.upperBound - 1) % h)
        }
        return (Int(first.lowerBound / h), Int(y0), Int((last.upperBound - 1) / h), Int(y1))
    }
}

/// COCO run-length encoding (pycocotools' `maskApi.c`): counts of alternating 0s and 1s in
/// column-major order, starting with 0s; optionally compressed to an ASCII string.
public enum COCORLE {
    /// Decodes counts into a mask of `height` x `width`.
    /// - Throws: a description when the counts do not add up to the image.
    public static func mask(counts: [Int], height: Int, width: Int) throws -> SegmentMask {
        var runs: [Range<Int32>] = []
        var position = 0
        for (k, count) in counts.enumerated() {
            guard count >= 0 else { throw RLEError("negative run length \(count)") }
            if k % 2 == 1 && count > 0 { runs.append(Int32(position)..<Int32(position + count)) }
            position += count
            guard position <= width * height else {
                throw RLEError("run lengths add up to more than \(height)x\(width) = \(width * height) pixels")
            }
        }
        guard position == width * height else {
            throw RLEError("run lengths add up to \(position) pixels, not \(height)x\(width) = \(width * height)")
        }
        return SegmentMask(width: width, height: height, runs: runs)
    }

    /// Counts of a mask (the first is the number of leading 0s, possibly 0).
    public static func counts(of mask: SegmentMask) -> [Int] {
        var counts: [Int] = []
        var position: Int32 = 0
        for run in mask.runs {
            counts.append(Int(run.lowerBound - position))
            counts.append(run.count)
            position = run.upperBound
        }
        let total = Int32(mask.width * mask.height)
        if position < total || counts.isEmpty { counts.append(Int(total - position)) }
        return counts
    }

    /// pycocotools' compressed string (`rleToString`): each count, minus the count two places
    /// back from the third on, in 5-bit groups with a continuation bit, offset by 48.
    public static func compress(_ counts: [Int]) -> String {
        var bytes: [UInt8] = []
        for i in counts.indices {
            var x = counts[i]
            if i > 2 { x -= counts[i - 2] }
            var more = true
            while more {
                var c = x & 0x1f
                x >>= 5
                more = (c & 0x10) != 0 ? x != -1 : x != 0
                if more { c |= 0x20 }
                bytes.append(UInt8(c + 48))
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Inverse of `compress` (`rleFrString`).
    public static func decompress(_ string: String) throws -> [Int] {
        var counts: [Int] = []
        var x = 0, k = 0
        for byte in string.utf8 {
            let c = Int(byte) - 48
            guard (0..<64).contains(c) else { throw RLEError("character '\(Character(Unicode.Scalar(byte)))' is not RLE") }
            x |= (c & 0x1f) << (5 * k)
            k += 1
            if c & 0x20 == 0 {
                if c & 0x10 != 0 { x |= -1 << (5 * k) }
                if counts.count > 2 { x += counts[counts.count - 2] }
                counts.append(x)
                (x, k) = (0, 0)
            } else if k > 12 {
                throw RLEError("a count runs past 64 bits")
            }
        }
        guard k == 0 else { throw RLEError("the string ends inside a count") }
        return counts
    }
}

/// What is wrong with an RLE, without the file (callers add it).
public struct RLEError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Row-major label maps ⇄ the column-major order of `SegmentMask` runs.
public enum ColumnMajor {
    /// `values` (row-major, width x height) in column-major order.
    public static func fromRowMajor(_ values: [UInt8], width: Int, height: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: values.count)
        for y in 0..<height { for x in 0..<width { out[x * height + y] = values[y * width + x] } }
        return out
    }

    /// Column-major `values` back in row-major order.
    public static func toRowMajor(_ values: [UInt8], width: Int, height: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: values.count)
        for y in 0..<height { for x in 0..<width { out[y * width + x] = values[x * height + y] } }
        return out
    }
}
