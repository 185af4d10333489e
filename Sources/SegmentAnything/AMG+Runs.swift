import Imaging

// `remove_small_regions` and `batched_mask_to_box` on column-major runs (`SegmentMask`), for
// the generator's postprocessing: the work grows with the number of runs, not of pixels, and no
// bitmap is made. The bitmap versions in AMG.swift stay as the oracle of the tests.

/// A mask's runs split per column: run k covers rows start[k]..<end[k] of column column[k],
/// ordered by column, then row.
struct ColumnRuns {
    let width: Int
    let height: Int
    var column: [Int32] = []
    var start: [Int32] = []
    var end: [Int32] = []

    var count: Int { column.count }

    init(width: Int, height: Int) { (self.width, self.height) = (width, height) }

    /// The runs of `mask`, cut at column boundaries.
    init(_ mask: SegmentMask) {
        self.init(width: mask.width, height: mask.height)
        let h = Int32(mask.height)
        for run in mask.runs {
            var i = run.lowerBound
            while i < run.upperBound {
                let x = i / h
                let stop = min(run.upperBound, (x + 1) * h)
                append(column: x, start: i - x * h, end: stop - x * h)
                i = stop
            }
        }
    }

    mutating func append(column x: Int32, start a: Int32, end b: Int32) {
        column.append(x)
        start.append(a)
        end.append(b)
    }

    /// The runs of the pixels outside the mask.
    var complement: ColumnRuns {
        var out = ColumnRuns(width: width, height: height)
        var k = 0
        for x in 0..<Int32(width) {
            var y: Int32 = 0
            while k < count && column[k] == x {
                if start[k] > y { out.append(column: x, start: y, end: start[k]) }
                y = end[k]
                k += 1
            }
            if y < Int32(height) { out.append(column: x, start: y, end: Int32(height)) }
        }
        return out
    }

    /// The mask of the runs whose `keep` is true, together with the runs of `other` whose
    /// `keepOther` is true (all disjoint; merged into maximal column-major runs).
    func segmentMask(
        keeping keep: (Int) -> Bool, plus other: ColumnRuns? = nil, keepingOther keepOther: (Int) -> Bool = { _ in true }
    ) -> SegmentMask {
        let other = other ?? ColumnRuns(width: width, height: height)
        let h = height
        func range(_ runs: ColumnRuns, _ k: Int) -> Range<Int> {
            let base = Int(runs.column[k]) * h
            return (base + Int(runs.start[k]))..<(base + Int(runs.end[k]))
        }
        // Both lists are in column-major order: merge them as sorted sequences.
        var builder = ColumnRunBuilder(height: h)
        var (i, j) = (0, 0)
        while i < count || j < other.count {
            let takeOther = i >= count || (j < other.count && (other.column[j], other.start[j]) < (column[i], start[i]))
            if takeOther {
                if keepOther(j) { builder.add(range: range(other, j)) }
                j += 1
            } else {
                if keep(i) { builder.add(range: range(self, i)) }
                i += 1
            }
        }
        return SegmentMask(width: width, height: height, runs: builder.finished)
    }
}

/// 8-connected components of runs, numbered as `ConnectedComponents` (cv2's order: by the first
/// 2x2 block, in block scan order, holding a pixel of the component).
struct RunComponents {
    /// Label (1...) of each run.
    let labels: [Int32]
    /// Pixels per label; sizes[0] is unused (0).
    let sizes: [Int]

    init(_ runs: ColumnRuns) {
        let n = runs.count
        var parent = (0..<Int32(n)).map { $0 }
        func find(_ i: Int) -> Int { DisjointSets.find(&parent, i) }
        // Runs of adjacent columns touch (8-connectivity) when their rows overlap or meet
        // diagonally: c <= b and a <= d for rows a..<b and c..<d. Runs of one column never touch.
        var previous = 0..<0  // runs of column x - 1
        var k = 0
        while k < n {
            let x = runs.column[k]
            var e = k
            while e < n && runs.column[e] == x { e += 1 }
            if !previous.isEmpty && runs.column[previous.lowerBound] == x - 1 {
                var p = previous.lowerBound
                for q in k..<e {
                    // Skip runs of the previous column that end above this one's reach.
                    while p < previous.upperBound && runs.end[p] < runs.start[q] { p += 1 }
                    var t = p
                    while t < previous.upperBound && runs.start[t] <= runs.end[q] {
                        DisjointSets.union(&parent, t, q)
                        t += 1
                    }
                }
            }
            previous = k..<e
            k = e
        }
        // The first 2x2 block of each component: (row / 2, column / 2) of its runs' tops.
        let blocksPerRow = (runs.width + 1) / 2
        var firstBlock = [Int](repeating: Int.max, count: n)
        for i in 0..<n {
            let r = find(i)
            let block = Int(runs.start[i] / 2) * blocksPerRow + Int(runs.column[i] / 2)
            firstBlock[r] = min(firstBlock[r], block)
        }
        let roots = (0..<n).filter { find($0) == $0 }.sorted { firstBlock[$0] < firstBlock[$1] }
        var labelOfRoot = [Int32](repeating: 0, count: n)
        for (l, r) in roots.enumerated() { labelOfRoot[r] = Int32(l + 1) }
        var labels = [Int32](repeating: 0, count: n)
        var sizes = [Int](repeating: 0, count: roots.count + 1)
        for i in 0..<n {
            let l = labelOfRoot[find(i)]
            labels[i] = l
            sizes[Int(l)] += Int(runs.end[i] - runs.start[i])
        }
        self.labels = labels
        self.sizes = sizes
    }
}

extension AMG {
    /// `remove_small_regions` on runs: the same result and `changed` flag as the bitmap
    /// version (`removeSmallRegions(_: BinaryMask, …)`).
    public static func removeSmallRegions(_ mask: SegmentMask, areaThreshold: Double, mode: SmallRegionMode)
        -> (mask: SegmentMask, changed: Bool)
    {
        let runs = ColumnRuns(mask)
        let working = mode == .holes ? runs.complement : runs
        let components = RunComponents(working)
        let sizes = components.sizes
        var small = [Bool](repeating: false, count: sizes.count)
        var anySmall = false
        for label in 1..<sizes.count where Double(sizes[label]) < areaThreshold {
            small[label] = true
            anySmall = true
        }
        if !anySmall { return (mask, false) }
        switch mode {
        case .holes:
            // The mask (label 0 of the inverted image) plus the small holes.
            let out = runs.segmentMask(keeping: { _ in true }, plus: working, keepingOther: { small[Int(components.labels[$0])] })
            return (out, true)
        case .islands:
            var keep = small.map { !$0 }
            keep[0] = false
            if !keep.contains(true) {
                var best = 1
                for label in 1..<sizes.count where sizes[label] > sizes[best] { best = label }
                keep[best] = true
            }
            return (runs.segmentMask(keeping: { keep[Int(components.labels[$0])] }), true)
        }
    }

    /// `batched_mask_to_box` of a run mask: inclusive ends, [0, 0, 0, 0] when empty.
    public static func batchedMaskToBox(_ mask: SegmentMask) -> BoxXYXY {
        guard let b = mask.boundingBox else { return BoxXYXY(x0: 0, y0: 0, x1: 0, y1: 0) }
        return BoxXYXY(x0: b.x0, y0: b.y0, x1: b.x1, y1: b.y1)
    }
}

/// Union-find over indices whose root is always the smallest index of its set, with path
/// compression; shared by the pixel and the run component labelers.
enum DisjointSets {
    static func find<P: MutableCollection>(_ parent: inout P, _ i: Int) -> Int where P.Element == Int32, P.Index == Int {
        var r = i
        while Int(parent[r]) != r { r = Int(parent[r]) }
        var k = i
        while Int(parent[k]) != r {
            let next = Int(parent[k])
            parent[k] = Int32(r)
            k = next
        }
        return r
    }

    static func union<P: MutableCollection>(_ parent: inout P, _ a: Int, _ b: Int) where P.Element == Int32, P.Index == Int {
        let (ra, rb) = (find(&parent, a), find(&parent, b))
        if ra < rb { parent[rb] = Int32(ra) } else if rb < ra { parent[ra] = Int32(rb) }
    }
}
