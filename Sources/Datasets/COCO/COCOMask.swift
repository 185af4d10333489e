import Foundation

/// A binary mask run-length encoded as COCO stores it: pixels in column-major order (x outer,
/// y inner, as pycocotools' Fortran-order arrays), runs alternating 0s and 1s, starting with a
/// (possibly empty) run of 0s.
public struct COCORunLengths: Equatable, Sendable {
    /// Image height and width in pixels.
    public var height: Int
    public var width: Int
    /// Run lengths; they sum to `height * width` for a valid mask.
    public var counts: [UInt32]

    /// A mask of `height` x `width` with the given runs (not validated; see `validate`).
    public init(height: Int, width: Int, counts: [UInt32]) {
        (self.height, self.width, self.counts) = (height, width, counts)
    }

    /// The number of 1 pixels (pycocotools' rleArea: the odd runs).
    public var area: Int {
        var total = 0
        var j = 1
        while j < counts.count {
            total += Int(counts[j])
            j += 2
        }
        return total
    }

    /// The runs cover the image exactly (pycocotools' decode refuses longer runs and leaves the
    /// rest of the buffer unset for shorter ones: both are a bad annotation).
    public var coversImage: Bool { counts.reduce(0) { $0 + Int($1) } == height * width }

    /// The mask as a row-major bitmap of `height * width` bytes (0 or 1).
    public func decoded() -> [UInt8] {
        var out = [UInt8](repeating: 0, count: height * width)
        out.withUnsafeMutableBufferPointer { buffer in
            paint(into: buffer.baseAddress!, value: 1, onlyOver: nil)
        }
        return out
    }

    /// Writes `value` into every 1 pixel of a row-major `height * width` buffer — where the buffer
    /// holds `onlyOver` when that is given (first annotation painted wins, as coco2voc's
    /// `np.where(class_seg > 0, class_seg, mask * category)`). Runs past the image are cut.
    public func paint(into labels: UnsafeMutablePointer<UInt8>, value: UInt8, onlyOver: UInt8?) {
        let (h, w) = (height, width)
        let total = h * w
        var position = 0
        for (j, run) in counts.enumerated() {
            let start = position
            position = min(total, position + Int(run))
            guard j & 1 == 1, start < position else { continue }
            // Column-major index t is (x = t / h, y = t % h); walk the run column by column.
            var t = start
            while t < position {
                let x = t / h, y0 = t - x * h
                let y1 = min(h, y0 + (position - t))
                var p = labels + (y0 * w + x)
                if let keep = onlyOver {
                    for _ in y0..<y1 {
                        if p.pointee == keep { p.pointee = value }
                        p += w
                    }
                } else {
                    for _ in y0..<y1 {
                        p.pointee = value
                        p += w
                    }
                }
                t += y1 - y0
            }
        }
    }
}

/// pycocotools' mask arithmetic (common/maskApi.c of cocodataset/cocoapi, as built into the
/// `pycocotools` package): polygon rasterisation and the compressed-string RLE. Ported for
/// bit-identical masks; Tests/DatasetsTests/COCOMaskTests.swift checks them against
/// scripts/fixtures/make_coco_fixtures.py.
public enum COCOMask {
    /// C's `(int)d` on x86-64: truncation toward zero; NaN and out-of-range give INT_MIN (the
    /// "integer indefinite" of cvttsd2si). maskApi.c's rleFrPoly computes 0/0 for a zero-length
    /// edge (a repeated point, or a last point equal to the first); the value is never used
    /// there, but Swift's Int(Double.nan) would trap.
    @inline(__always) static func cInt(_ d: Double) -> Int {
        guard d.isFinite, d > -2_147_483_649, d < 2_147_483_648 else { return Int(Int32.min) }
        return Int(d)
    }

    /// The number of upsampled boundary points rleFrPoly walks for a polygon (its memory is two
    /// Ints per point): vertices far outside the image make it grow without bound, so callers
    /// check it before rasterising user input.
    public static func boundaryPoints(_ xy: [Double]) -> Int {
        let k = xy.count / 2
        guard k > 0 else { return 0 }
        var total = 0
        for j in 0..<k {
            let n = (j + 1) % k
            let dx = abs(cInt(5 * xy[2 * j] + 0.5) - cInt(5 * xy[2 * n] + 0.5))
            let dy = abs(cInt(5 * xy[2 * j + 1] + 0.5) - cInt(5 * xy[2 * n + 1] + 0.5))
            total += max(dx, dy) + 1
        }
        return total
    }

    /// One polygon → runs, as maskApi.c's rleFrPoly: vertices scaled ×5 and rounded, edges walked
    /// point by point along their longer axis (Bresenham-like), the points where the upsampled
    /// boundary crosses a pixel column's centre kept and mapped back to pixel rows (ceil), and the
    /// column-major boundary indices sorted and differenced into runs.
    /// - Parameter xy: x0, y0, x1, y1, … in pixels (k = xy.count / 2 vertices; an odd last number
    ///   is ignored, as pycocotools' int(len(p)/2)).
    public static func polygon(_ xy: [Double], height h: Int, width w: Int) -> COCORunLengths {
        let k = xy.count / 2
        let scale = 5.0
        guard k > 0 else { return COCORunLengths(height: h, width: w, counts: [UInt32(h * w)]) }
        var x = [Int](repeating: 0, count: k + 1), y = [Int](repeating: 0, count: k + 1)
        for j in 0..<k {
            x[j] = cInt(scale * xy[2 * j] + 0.5)
            y[j] = cInt(scale * xy[2 * j + 1] + 0.5)
        }
        (x[k], y[k]) = (x[0], y[0])
        var m = 0
        for j in 0..<k { m += max(abs(x[j] - x[j + 1]), abs(y[j] - y[j + 1])) + 1 }
        var u = [Int](repeating: 0, count: m), v = [Int](repeating: 0, count: m)
        m = 0
        u.withUnsafeMutableBufferPointer { u in
            v.withUnsafeMutableBufferPointer { v in
                for j in 0..<k {
                    var (xs, xe, ys, ye) = (x[j], x[j + 1], y[j], y[j + 1])
                    let dx = abs(xe - xs), dy = abs(ys - ye)
                    let flip = (dx >= dy && xs > xe) || (dx < dy && ys > ye)
                    if flip { (xs, xe, ys, ye) = (xe, xs, ye, ys) }
                    let s = dx >= dy ? Double(ye - ys) / Double(dx) : Double(xe - xs) / Double(dy)
                    if dx >= dy {
                        for d in 0...dx {
                            let t = flip ? dx - d : d
                            u[m] = t + xs
                            v[m] = cInt(Double(ys) + s * Double(t) + 0.5)
                            m += 1
                        }
                    } else {
                        for d in 0...dy {
                            let t = flip ? dy - d : d
                            v[m] = t + ys
                            u[m] = cInt(Double(xs) + s * Double(t) + 0.5)
                            m += 1
                        }
                    }
                }
            }
        }
        // Points on the y-boundary, downsampled to pixel coordinates.
        var a: [UInt32] = []
        a.reserveCapacity(m / 4 + 1)
        for j in 1..<max(1, m) where u[j] != u[j - 1] {
            var xd = Double(u[j] < u[j - 1] ? u[j] : u[j] - 1)
            xd = (xd + 0.5) / scale - 0.5
            if xd.rounded(.down) != xd || xd < 0 || xd > Double(w - 1) { continue }
            var yd = Double(v[j] < v[j - 1] ? v[j] : v[j - 1])
            yd = (yd + 0.5) / scale - 0.5
            if yd < 0 { yd = 0 } else if yd > Double(h) { yd = Double(h) }
            yd = yd.rounded(.up)
            a.append(UInt32(truncatingIfNeeded: Int(xd) * h + Int(yd)))
        }
        a.append(UInt32(truncatingIfNeeded: h * w))
        a.sort()
        var previous: UInt32 = 0
        for j in a.indices {
            let t = a[j]
            a[j] = t &- previous
            previous = t
        }
        // Zero-length runs merge their neighbours (a boundary crossed twice at one pixel).
        var b: [UInt32] = [a[0]]
        var j = 1
        while j < a.count {
            if a[j] > 0 {
                b.append(a[j])
                j += 1
            } else {
                j += 1
                if j < a.count {
                    b[b.count - 1] &+= a[j]
                    j += 1
                }
            }
        }
        return COCORunLengths(height: h, width: w, counts: b)
    }

    /// A problem decoding a compressed RLE string.
    public enum StringError: Error, Equatable {
        /// A character outside '0'…'o' (48…111) at this offset.
        case badCharacter(offset: Int)
        /// The string ends inside a number (its last character has the continuation bit).
        case truncated
        /// A run comes out negative or past 2³² (the string is not an RLE of any mask).
        case badRun(index: Int)
    }

    /// COCO's compressed counts (maskApi.c rleFrString): each run a LEB128-like number of 5-bit
    /// groups in the characters 48…111 (bit 0x20 = more follows, bit 0x10 of the last group =
    /// negative), runs after the second stored as differences to the run two before.
    public static func decodeCounts(_ bytes: UnsafeRawBufferPointer) throws(StringError) -> [UInt32] {
        var counts: [UInt32] = []
        counts.reserveCapacity(bytes.count)
        var p = 0
        while p < bytes.count {
            var x: Int64 = 0
            var k = 0
            var more = true
            while more {
                guard p < bytes.count else { throw .truncated }
                let raw = Int(bytes[p])
                guard raw >= 48 && raw <= 111 else { throw .badCharacter(offset: p) }
                let c = Int64(raw - 48)
                // More than 12 groups is past any 32-bit run; refuse rather than overflow.
                guard k < 12 else { throw .badRun(index: counts.count) }
                x |= (c & 0x1f) << (5 * Int64(k))
                more = c & 0x20 != 0
                p += 1
                k += 1
                if !more && c & 0x10 != 0 { x |= -1 << (5 * Int64(k)) }
            }
            if counts.count > 2 { x += Int64(counts[counts.count - 2]) }
            guard x >= 0 && x <= Int64(UInt32.max) else { throw .badRun(index: counts.count) }
            counts.append(UInt32(x))
        }
        return counts
    }

    /// The compressed string of runs (maskApi.c rleToString), for tests and the synthetic set.
    public static func encodeCounts(_ counts: [UInt32]) -> String {
        var out: [UInt8] = []
        for (i, run) in counts.enumerated() {
            var x = Int64(run)
            if i > 2 { x -= Int64(counts[i - 2]) }
            var more = true
            while more {
                var c = UInt8(truncatingIfNeeded: x & 0x1f)
                x >>= 5
                more = c & 0x10 != 0 ? x != -1 : x != 0
                if more { c |= 0x20 }
                out.append(c + 48)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// A row-major 0/1 bitmap → runs (maskApi.c rleEncode over the column-major order).
    public static func encode(_ bitmap: [UInt8], height h: Int, width w: Int) -> COCORunLengths {
        precondition(bitmap.count == h * w, "COCOMask.encode: \(bitmap.count) values for \(h)x\(w)")
        var counts: [UInt32] = []
        var current: UInt8 = 0
        var run: UInt32 = 0
        for x in 0..<w {
            for y in 0..<h {
                let value: UInt8 = bitmap[y * w + x] != 0 ? 1 : 0
                if value != current {
                    counts.append(run)
                    (run, current) = (0, value)
                }
                run += 1
            }
        }
        counts.append(run)
        return COCORunLengths(height: h, width: w, counts: counts)
    }
}
