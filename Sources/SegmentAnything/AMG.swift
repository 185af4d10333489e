import Autograd
import Foundation
import Imaging

// The utilities of the official automatic mask generator, `segment_anything/utils/amg.py`,
// named as there, plus torchvision's `batched_nms` as the generator calls it. Each function says
// which PyTorch/NumPy arithmetic it reproduces; the fixtures of scripts/fixtures/make_amg_fixtures.py
// check them against the official functions.

/// A box in pixels, corners XYXY. Boxes around masks (`AMG.batchedMaskToBox`) hold the last
/// column and row inside the mask (inclusive, as amg.py computes them); crop boxes hold
/// exclusive ends (`[x0, y0, x1, y1]` slices `image[y0:y1, x0:x1]`).
public struct BoxXYXY: Equatable, Hashable, Sendable, CustomStringConvertible {
    /// Left column.
    public var x0: Int
    /// Top row.
    public var y0: Int
    /// Right column (inclusive for mask boxes, exclusive for crop boxes).
    public var x1: Int
    /// Bottom row (inclusive for mask boxes, exclusive for crop boxes).
    public var y1: Int

    /// A box from its corners.
    public init(x0: Int, y0: Int, x1: Int, y1: Int) {
        (self.x0, self.y0, self.x1, self.y1) = (x0, y0, x1, y1)
    }

    /// `[x0, y0, x1, y1]`.
    public var array: [Int] { [x0, y0, x1, y1] }

    /// (x1 - x0) * (y1 - y0), as torchvision's `box_area`.
    public var area: Int { (x1 - x0) * (y1 - y0) }

    /// "[x0, y0, x1, y1]".
    public var description: String { "[\(x0), \(y0), \(x1), \(y1)]" }
}

/// A point in pixels (or in [0, 1] for point grids), as amg.py keeps them: float64.
public struct PointXY: Equatable, Sendable {
    /// Horizontal coordinate (column direction).
    public var x: Double
    /// Vertical coordinate (row direction).
    public var y: Double

    /// A point from its coordinates.
    public init(x: Double, y: Double) { (self.x, self.y) = (x, y) }
}

/// A row-major binary mask, `width` x `height` (the HxW bool tensors of amg.py). Only used one
/// at a time (postprocessing, tests); the generator stores masks as `SegmentMask` runs.
public struct BinaryMask: Equatable, Sendable {
    /// Columns.
    public let width: Int
    /// Rows.
    public let height: Int
    /// Row-major pixels, `true` inside; count width * height.
    public var pixels: [Bool]

    /// A mask of `pixels` (row-major, count width * height).
    public init(width: Int, height: Int, pixels: [Bool]) {
        precondition(pixels.count == width * height, "BinaryMask: \(pixels.count) pixels for \(width)x\(height)")
        (self.width, self.height, self.pixels) = (width, height, pixels)
    }

    /// An all-false mask.
    public init(width: Int, height: Int) {
        self.init(width: width, height: height, pixels: [Bool](repeating: false, count: width * height))
    }

    /// The pixels of column-major runs.
    public init(_ mask: SegmentMask) {
        var pixels = [Bool](repeating: false, count: mask.width * mask.height)
        let h = mask.height
        pixels.withUnsafeMutableBufferPointer { p in
            for run in mask.runs {
                for i in Int(run.lowerBound)..<Int(run.upperBound) { p[(i % h) * mask.width + i / h] = true }
            }
        }
        self.init(width: mask.width, height: mask.height, pixels: pixels)
    }

    /// Whether (x, y) is inside.
    public subscript(x x: Int, y y: Int) -> Bool {
        get { pixels[y * width + x] }
        set { pixels[y * width + x] = newValue }
    }

    /// Pixels inside.
    public var area: Int { pixels.reduce(0) { $0 + ($1 ? 1 : 0) } }

    /// The same mask as maximal column-major runs (COCO RLE order).
    public var segmentMask: SegmentMask {
        var builder = ColumnRunBuilder(height: height)
        pixels.withUnsafeBufferPointer { p in
            for x in 0..<width {
                for y in 0..<height where p[y * width + x] { builder.add(x * height + y) }
            }
        }
        return SegmentMask(width: width, height: height, runs: builder.finished)
    }
}

/// Collects column-major pixel indices, given in increasing order, into maximal runs.
struct ColumnRunBuilder {
    let height: Int
    var runs: [Range<Int32>] = []
    var start = -1
    var end = -1

    init(height: Int) { self.height = height }

    mutating func add(_ index: Int) {
        if index == end {
            end += 1
        } else {
            if start >= 0 { runs.append(Int32(start)..<Int32(end)) }
            (start, end) = (index, index + 1)
        }
    }

    /// Adds the pixels start..<end at once.
    mutating func add(range: Range<Int>) {
        guard !range.isEmpty else { return }
        if range.lowerBound == end {
            end = range.upperBound
        } else {
            if start >= 0 { runs.append(Int32(start)..<Int32(end)) }
            (start, end) = (range.lowerBound, range.upperBound)
        }
    }

    /// The runs, the last one closed.
    var finished: [Range<Int32>] {
        var out = runs
        if start >= 0 { out.append(Int32(start)..<Int32(end)) }
        return out
    }
}

/// Which small regions `AMG.removeSmallRegions` removes.
public enum SmallRegionMode: String, Sendable {
    /// Fill holes (components of the background) smaller than the threshold.
    case holes
    /// Drop islands (components of the mask) smaller than the threshold.
    case islands
}

/// The functions of `segment_anything/utils/amg.py`.
public enum AMG {
    /// `build_point_grid`: n x n points evenly spaced in [0, 1]², centred in their cells, x fastest.
    /// NumPy's `linspace(offset, 1 - offset, n)`: i * step + start, the last exactly the stop.
    public static func buildPointGrid(_ nPerSide: Int) -> [PointXY] {
        precondition(nPerSide >= 1, "buildPointGrid: \(nPerSide) points per side")
        let offset = 1.0 / Double(2 * nPerSide)
        let stop = 1 - offset
        var side = [Double](repeating: offset, count: nPerSide)
        if nPerSide > 1 {
            let step = (stop - offset) / Double(nPerSide - 1)
            for i in 0..<nPerSide { side[i] = Double(i) * step + offset }
            side[nPerSide - 1] = stop
        }
        var points: [PointXY] = []
        points.reserveCapacity(nPerSide * nPerSide)
        for y in side { for x in side { points.append(PointXY(x: x, y: y)) } }
        return points
    }

    /// `build_all_layer_point_grids`: layer i has int(nPerSide / scalePerLayer^i) points a side.
    /// - Returns: nLayers + 1 grids; a layer with no points is an empty grid (the official divides
    ///   by zero there).
    public static func buildAllLayerPointGrids(nPerSide: Int, nLayers: Int, scalePerLayer: Int) -> [[PointXY]] {
        (0...max(nLayers, 0)).map { i in
            let n = Int(Double(nPerSide) / pow(Double(scalePerLayer), Double(i)))
            return n >= 1 ? buildPointGrid(n) : []
        }
    }

    /// `generate_crop_boxes`: the whole image, then for layer i (1...nLayers) (2^i)² crops
    /// overlapping by int(overlapRatio * shortSide * 2 / 2^i) pixels, x0 in the outer loop.
    /// - Returns: crop boxes (exclusive ends) and the layer of each.
    public static func generateCropBoxes(imageSize: (height: Int, width: Int), nLayers: Int, overlapRatio: Double)
        -> (boxes: [BoxXYXY], layerIndices: [Int])
    {
        let (h, w) = imageSize
        let shortSide = min(h, w)
        var boxes = [BoxXYXY(x0: 0, y0: 0, x1: w, y1: h)]
        var layers = [0]
        // Python: int(math.ceil((overlap * (n - 1) + length) / n)), integer numerator, true division.
        func cropLength(_ length: Int, _ n: Int, _ overlap: Int) -> Int {
            Int((Double(overlap * (n - 1) + length) / Double(n)).rounded(.up))
        }
        for layer in 0..<max(nLayers, 0) {
            let n = 1 << (layer + 1)
            // Left to right as the Python expression: (ratio * short_side) * (2 / n), then int().
            let overlap = Int(overlapRatio * Double(shortSide) * (2.0 / Double(n)))
            let cropW = cropLength(w, n, overlap)
            let cropH = cropLength(h, n, overlap)
            for i in 0..<n {
                let x0 = (cropW - overlap) * i
                for j in 0..<n {
                    let y0 = (cropH - overlap) * j
                    boxes.append(BoxXYXY(x0: x0, y0: y0, x1: min(x0 + cropW, w), y1: min(y0 + cropH, h)))
                    layers.append(layer + 1)
                }
            }
        }
        return (boxes, layers)
    }

    /// The thresholds `calculate_stability_score` compares with: Python floats added in float64,
    /// then cast to float32 by the comparison with a float32 tensor.
    public static func stabilityThresholds(maskThreshold: Double, offset: Double) -> (high: Float, low: Float) {
        (Float(maskThreshold + offset), Float(maskThreshold - offset))
    }

    /// `calculate_stability_score` of one mask: IoU of the logits thresholded at
    /// maskThreshold ± offset (the high mask lies inside the low one, so it is count(> high) /
    /// count(> low)). Counted as the official: int16 sums over each row (wrapping past 32767),
    /// then an int32 total; float32 division (0/0 = nan).
    /// - Parameter logits: `height` x `width` row-major logits.
    public static func stabilityScore(
        logits: UnsafePointer<Float>, height: Int, width: Int, maskThreshold: Double, offset: Double
    ) -> Float {
        let (high, low) = stabilityThresholds(maskThreshold: maskThreshold, offset: offset)
        var intersections: Int32 = 0
        var unions: Int32 = 0
        for y in 0..<height {
            let row = logits + y * width
            var i = 0
            var u = 0
            for x in 0..<width {
                let v = row[x]
                if v > high { i += 1 }
                if v > low { u += 1 }
            }
            intersections &+= Int32(Int16(truncatingIfNeeded: i))
            unions &+= Int32(Int16(truncatingIfNeeded: u))
        }
        return Float(intersections) / Float(unions)
    }

    /// `calculate_stability_score` of every mask of `logits` [..., H, W].
    /// - Returns: one score per mask, in the order of the leading dimensions.
    public static func calculateStabilityScore(_ logits: Tensor, maskThreshold: Double, thresholdOffset: Double) -> [Float] {
        precondition(logits.rank >= 2, "calculateStabilityScore: logits \(logits.shape), expected [..., H, W]")
        let (h, w) = (logits.shape[logits.rank - 2], logits.shape[logits.rank - 1])
        let n = h * w == 0 ? 0 : logits.count / (h * w)
        return (0..<n).map { k in
            stabilityScore(
                logits: logits.storage.base + k * h * w, height: h, width: w, maskThreshold: maskThreshold,
                offset: thresholdOffset)
        }
    }

    /// `batched_mask_to_box` of one mask: first and last column and row holding a pixel
    /// (inclusive); [0, 0, 0, 0] for an empty mask.
    public static func batchedMaskToBox(_ mask: BinaryMask) -> BoxXYXY {
        var (x0, y0, x1, y1) = (Int.max, Int.max, -1, -1)
        mask.pixels.withUnsafeBufferPointer { p in
            for y in 0..<mask.height {
                let row = y * mask.width
                var first = -1
                var last = -1
                for x in 0..<mask.width where p[row + x] {
                    if first < 0 { first = x }
                    last = x
                }
                if first >= 0 {
                    (y0, y1) = (min(y0, y), y)
                    (x0, x1) = (min(x0, first), max(x1, last))
                }
            }
        }
        return x1 < 0 ? BoxXYXY(x0: 0, y0: 0, x1: 0, y1: 0) : BoxXYXY(x0: x0, y0: y0, x1: x1, y1: y1)
    }

    /// `is_box_near_crop_edge`: after uncropping `box` (given in the crop's frame), whether a side
    /// lies within `atol` pixels of the crop's side but not of the image's (float32 `isclose`,
    /// rtol 0).
    public static func isBoxNearCropEdge(_ box: BoxXYXY, cropBox: BoxXYXY, origBox: BoxXYXY, atol: Double = 20) -> Bool {
        let b = uncropBoxesXYXY(box, cropBox: cropBox).array
        let crop = cropBox.array
        let orig = origBox.array
        let tolerance = Float(atol)
        for k in 0..<4 {
            let nearCrop = abs(Float(b[k]) - Float(crop[k])) <= tolerance
            let nearImage = abs(Float(b[k]) - Float(orig[k])) <= tolerance
            if nearCrop && !nearImage { return true }
        }
        return false
    }

    /// `box_xyxy_to_xywh`: [x0, y0, x1 - x0, y1 - y0] (for mask boxes the width is one less than
    /// the pixel count: the official keeps x1 inclusive).
    public static func boxXYXYToXYWH(_ box: BoxXYXY) -> [Int] { [box.x0, box.y0, box.x1 - box.x0, box.y1 - box.y0] }

    /// `uncrop_boxes_xyxy`: the box moved by the crop's origin.
    public static func uncropBoxesXYXY(_ box: BoxXYXY, cropBox: BoxXYXY) -> BoxXYXY {
        BoxXYXY(x0: box.x0 + cropBox.x0, y0: box.y0 + cropBox.y0, x1: box.x1 + cropBox.x0, y1: box.y1 + cropBox.y0)
    }

    /// `uncrop_points`: the point moved by the crop's origin (float64).
    public static func uncropPoints(_ point: PointXY, cropBox: BoxXYXY) -> PointXY {
        PointXY(x: point.x + Double(cropBox.x0), y: point.y + Double(cropBox.y0))
    }

    /// `uncrop_masks`: a crop's mask zero-padded into the `origHeight` x `origWidth` image.
    public static func uncropMasks(_ mask: BinaryMask, cropBox: BoxXYXY, origHeight: Int, origWidth: Int) -> BinaryMask {
        precondition(
            mask.width == cropBox.x1 - cropBox.x0 && mask.height == cropBox.y1 - cropBox.y0,
            "uncropMasks: mask \(mask.width)x\(mask.height) for crop \(cropBox)")
        if cropBox == BoxXYXY(x0: 0, y0: 0, x1: origWidth, y1: origHeight) { return mask }
        var out = BinaryMask(width: origWidth, height: origHeight)
        for y in 0..<mask.height {
            for x in 0..<mask.width where mask.pixels[y * mask.width + x] {
                out.pixels[(y + cropBox.y0) * origWidth + x + cropBox.x0] = true
            }
        }
        return out
    }

    /// `area_from_rle`: the sum of the odd-indexed counts.
    public static func areaFromRLE(_ counts: [Int]) -> Int {
        stride(from: 1, to: counts.count, by: 2).reduce(0) { $0 + counts[$1] }
    }

    /// `mask_to_rle_pytorch`: uncompressed COCO counts in column-major order, starting with the
    /// 0s ([h*w] for an empty mask, [0, h*w] for a full one). The same as `COCORLE.counts` of
    /// maximal runs.
    public static func maskToRLE(_ mask: SegmentMask) -> [Int] { COCORLE.counts(of: mask) }

    /// `coco_encode_rle`: pycocotools' compressed `counts` string of the uncompressed counts
    /// (`frPyObjects` then `encode`, via PseudoLabels' encoder).
    public static func cocoEncodeRLE(_ counts: [Int]) -> String { COCORLE.compress(counts) }

    /// `remove_small_regions`: fills holes or drops islands with fewer than `areaThreshold` pixels.
    /// Components are 8-connected, labelled in cv2.connectedComponentsWithStats' order (see
    /// `ConnectedComponents`); with islands, when every island is small the first largest is kept.
    /// - Returns: the mask and whether any region was small (then the mask is recomputed, as the
    ///   official, even if nothing changes).
    public static func removeSmallRegions(_ mask: BinaryMask, areaThreshold: Double, mode: SmallRegionMode)
        -> (mask: BinaryMask, changed: Bool)
    {
        let correctHoles = mode == .holes
        let working = correctHoles ? mask.pixels.map { !$0 } : mask.pixels
        let components = ConnectedComponents(pixels: working, width: mask.width, height: mask.height)
        let sizes = components.sizes  // sizes[0] is the background of the working mask
        var small = [Bool](repeating: false, count: sizes.count)
        var anySmall = false
        for label in 1..<sizes.count where Double(sizes[label]) < areaThreshold {
            small[label] = true
            anySmall = true
        }
        if !anySmall { return (mask, false) }
        var fill = [Bool](repeating: false, count: sizes.count)
        if correctHoles {
            fill = small
            fill[0] = true
        } else {
            for label in 1..<sizes.count where !small[label] { fill[label] = true }
            if !fill.contains(true) {
                // np.argmax: the first of the largest.
                var best = 1
                for label in 1..<sizes.count where sizes[label] > sizes[best] { best = label }
                fill[best] = true
            }
        }
        let pixels = components.labels.map { fill[Int($0)] }
        return (BinaryMask(width: mask.width, height: mask.height, pixels: pixels), true)
    }

    /// torchvision `batched_nms` with every box in category 0 (as the generator calls it), i.e.
    /// `nms`: visit boxes by descending score, keep one unless an already kept box overlaps it
    /// with IoU > `iouThreshold`. IoU in float32 on `boxes.float()` (areas (x1-x0)*(y1-y0), as
    /// torchvision's CPU kernel), compared with the float64 threshold.
    ///
    /// Ties: equal scores are visited in index order (torchvision's stable sort). That is
    /// torchvision's order up to 1000 boxes; above 1000 (4000 coordinates) on CPU it takes
    /// `_batched_nms_vanilla`, which keeps the same set but lists equal-scored boxes in the order
    /// of an unstable `torch.sort`, which we do not reproduce.
    /// - Returns: indices of the kept boxes, by descending score.
    public static func batchedNMS(boxes: [BoxXYXY], scores: [Float], iouThreshold: Double) -> [Int] {
        precondition(boxes.count == scores.count, "batchedNMS: \(boxes.count) boxes, \(scores.count) scores")
        let n = boxes.count
        // Stable descending sort; NaN first, as torch.sort(descending=True) puts it.
        let order = (0..<n).sorted { a, b in
            let (sa, sb) = (scores[a], scores[b])
            if sa.isNaN || sb.isNaN { return sa.isNaN && !sb.isNaN || (sa.isNaN && sb.isNaN && a < b) }
            return sa > sb || (sa == sb && a < b)
        }
        let x0 = boxes.map { Float($0.x0) }, y0 = boxes.map { Float($0.y0) }
        let x1 = boxes.map { Float($0.x1) }, y1 = boxes.map { Float($0.y1) }
        let areas = (0..<n).map { (x1[$0] - x0[$0]) * (y1[$0] - y0[$0]) }
        var suppressed = [Bool](repeating: false, count: n)
        var keep: [Int] = []
        for a in 0..<n {
            let i = order[a]
            if suppressed[i] { continue }
            keep.append(i)
            for b in (a + 1)..<max(n, a + 1) {
                let j = order[b]
                if suppressed[j] { continue }
                let w = max(0, min(x1[i], x1[j]) - max(x0[i], x0[j]))
                let h = max(0, min(y1[i], y1[j]) - max(y0[i], y0[j]))
                let inter: Float = w * h
                let iou: Float = inter / (areas[i] + areas[j] - inter)
                if Double(iou) > iouThreshold { suppressed[j] = true }
            }
        }
        return keep
    }
}

/// 8-connected components of a row-major binary image, numbered as OpenCV's
/// `connectedComponentsWithStats(…, 8)` numbers them (its default Spaghetti/BBDT labelling):
/// the scan visits 2x2 blocks row pair by row pair, a new provisional label starts at the first
/// block holding a pixel of a new component, union-find keeps the smaller label as the root, and
/// the final labels are the roots in creation order — so components are numbered by the first
/// 2x2 block (in block scan order) that holds one of their pixels. Label 0 is the background.
struct ConnectedComponents {
    /// Row-major labels, 0 for background.
    let labels: [Int32]
    /// Pixels per label; sizes[0] counts the background.
    let sizes: [Int]

    init(pixels: [Bool], width: Int, height: Int) {
        precondition(pixels.count == width * height, "ConnectedComponents: \(pixels.count) pixels for \(width)x\(height)")
        let count = width * height
        var labels = [Int32](repeating: 0, count: count)
        var sizes = [0]
        var parent = [Int32](repeating: -1, count: count)
        pixels.withUnsafeBufferPointer { fg in
            parent.withUnsafeMutableBufferPointer { parentBuffer in
                labels.withUnsafeMutableBufferPointer { labels in
                    // Union-find over pixel indices; the root of a set is its smallest index.
                    var parent = parentBuffer
                    func find(_ i: Int) -> Int { DisjointSets.find(&parent, i) }
                    func union(_ a: Int, _ b: Int) { DisjointSets.union(&parent, a, b) }
                    // Raster pass: join each pixel with its left, up-left, up and up-right neighbours.
                    for y in 0..<height {
                        for x in 0..<width where fg[y * width + x] {
                            let i = y * width + x
                            parent[i] = Int32(i)
                            if x > 0 && fg[i - 1] { union(i, i - 1) }
                            if y > 0 {
                                let up = i - width
                                if fg[up] { union(i, up) }
                                if x > 0 && fg[up - 1] { union(i, up - 1) }
                                if x + 1 < width && fg[up + 1] { union(i, up + 1) }
                            }
                        }
                    }
                    // Block pass: number components as they first appear in 2x2 block scan order
                    // (rootLabel: the final label of each root, 0 until its component is met).
                    var rootLabel = [Int32](repeating: 0, count: count)
                    rootLabel.withUnsafeMutableBufferPointer { rootLabel in
                        for by in stride(from: 0, to: height, by: 2) {
                            for bx in stride(from: 0, to: width, by: 2) {
                                for y in by..<min(by + 2, height) {
                                    for x in bx..<min(bx + 2, width) {
                                        let i = y * width + x
                                        guard fg[i] else {
                                            sizes[0] += 1
                                            continue
                                        }
                                        let r = find(i)
                                        if rootLabel[r] == 0 {
                                            sizes.append(0)
                                            rootLabel[r] = Int32(sizes.count - 1)
                                        }
                                        labels[i] = rootLabel[r]
                                        sizes[Int(rootLabel[r])] += 1
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        self.labels = labels
        self.sizes = sizes
    }
}
