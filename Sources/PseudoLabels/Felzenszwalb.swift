import Foundation
import Imaging

/// Felzenszwalb–Huttenlocher graph-based segmentation (IJCV 2004), as scikit-image's
/// `segmentation.felzenszwalb` computes it, so the pipeline has class-agnostic proposals
/// without SAM.
///
/// Steps (skimage `_felzenszwalb_cy`): pixels as floats in [0, 1]; each channel smoothed by a
/// Gaussian (`scipy.ndimage.gaussian_filter`: radius ⌊4σ + 0.5⌋, mirror-reflected borders);
/// 8-connected edges weighted by the Euclidean colour distance; edges visited by increasing
/// weight, joining two segments when the weight is below both of their internal differences
/// plus `scale / 255 / size`; finally segments smaller than `minSize` are joined to a neighbour
/// in the same edge order.
///
/// One deliberate difference: edges of equal weight are visited in a stable order (right,
/// down, down-right, up-right edges, each in raster order), where numpy's unstable quicksort
/// leaves ties in an unspecified order. Ties are exact float equalities, which occur in flat
/// regions of synthetic images; there both orders join the same pixels (a zero-weight edge
/// always joins), so results differ at most where a tie sits exactly at a merge threshold.
/// `Tests/PseudoLabelsTests` compare with skimage on fixture photos and synthetic images.
public enum Felzenszwalb {
    public struct Options: Equatable, Sendable {
        /// Higher means larger segments.
        public var scale: Double = 100
        /// Gaussian smoothing before segmenting (pixels).
        public var sigma: Double = 0.8
        /// Segments smaller than this are merged into a neighbour.
        public var minSize: Int = 20
        public init(scale: Double = 100, sigma: Double = 0.8, minSize: Int = 20) {
            (self.scale, self.sigma, self.minSize) = (scale, sigma, minSize)
        }
    }

    /// Segment ids 0..<n per pixel (row-major), numbered in raster order of each segment's
    /// first pixel (as skimage's `np.unique(..., return_inverse=True)`).
    public static func segment(_ image: Image, options: Options = .init()) -> [Int32] {
        let (w, h, c) = (image.width, image.height, image.channels)
        let n = w * h
        // Planar doubles in [0, 1], smoothed per channel.
        var planes = [[Double]](repeating: [], count: c)
        for k in 0..<c {
            var plane = [Double](repeating: 0, count: n)
            for i in 0..<n { plane[i] = Double(image.pixels[i * c + k]) / 255 }
            planes[k] = gaussianSmoothed(plane, width: w, height: h, sigma: options.sigma)
        }
        let edges = Edges(planes: planes, width: w, height: h)
        var forest = Forest(count: n)
        let scale = options.scale / 255
        for e in edges.order {
            let (a, b) = (forest.find(edges.a[e]), forest.find(edges.b[e]))
            if a == b { continue }
            // skimage holds these two in C floats (32-bit): keep its rounding.
            let ia = Double(Float(forest.inner[Int(a)] + scale / Double(forest.size[Int(a)])))
            let ib = Double(Float(forest.inner[Int(b)] + scale / Double(forest.size[Int(b)])))
            if edges.costs[e] < min(ia, ib) {
                let root = forest.join(a, b)
                forest.inner[Int(root)] = edges.costs[e]
            }
        }
        for e in edges.order {
            let (a, b) = (forest.find(edges.a[e]), forest.find(edges.b[e]))
            if a == b { continue }
            if forest.size[Int(a)] < options.minSize || forest.size[Int(b)] < options.minSize { _ = forest.join(a, b) }
        }
        var ids = [Int32](repeating: -1, count: n)
        var labels = [Int32](repeating: 0, count: n)
        var next: Int32 = 0
        for p in 0..<n {
            let root = Int(forest.find(Int32(p)))
            if ids[root] < 0 { ids[root] = next; next += 1 }
            labels[p] = ids[root]
        }
        return labels
    }

    /// The 8-connected pixel graph in skimage's order (right, down, down-right, up-right), each
    /// edge weighted by the colour distance of its ends, and the edges sorted by weight (stable).
    private struct Edges {
        let a: [Int32], b: [Int32], costs: [Double]
        let order: [Int]

        init(planes: [[Double]], width w: Int, height h: Int) {
            let edgeCount = h * (w - 1) + (h - 1) * w + 2 * (h - 1) * (w - 1)
            var (a, b, costs) = ([Int32](), [Int32](), [Double]())
            a.reserveCapacity(edgeCount)
            b.reserveCapacity(edgeCount)
            costs.reserveCapacity(edgeCount)
            func add(_ p: Int, _ q: Int) {
                a.append(Int32(p))
                b.append(Int32(q))
                var s = 0.0
                for plane in planes {
                    let d = plane[p] - plane[q]
                    s += d * d
                }
                costs.append(s.squareRoot())
            }
            for y in 0..<h { for x in 1..<max(1, w) { add(y * w + x, y * w + x - 1) } }
            for y in 1..<max(1, h) { for x in 0..<w { add(y * w + x, (y - 1) * w + x) } }
            for y in 1..<max(1, h) { for x in 1..<max(1, w) { add(y * w + x, (y - 1) * w + x - 1) } }
            for y in 0..<max(0, h - 1) { for x in 1..<max(1, w) { add(y * w + x, (y + 1) * w + x - 1) } }
            (self.a, self.b, self.costs) = (a, b, costs)
            order = costs.indices.sorted { costs[$0] < costs[$1] || (costs[$0] == costs[$1] && $0 < $1) }
        }
    }

    /// Union-find as skimage: the root is the smallest index (path compression leaves roots as
    /// they are), with each tree's size and largest inner edge weight.
    private struct Forest {
        var parent: [Int32]
        var size: [Int]
        var inner: [Double]

        init(count n: Int) {
            parent = (0..<n).map { Int32($0) }
            size = [Int](repeating: 1, count: n)
            inner = [Double](repeating: 0, count: n)
        }

        mutating func find(_ p: Int32) -> Int32 {
            var root = p
            while parent[Int(root)] != root { root = parent[Int(root)] }
            var q = p
            while parent[Int(q)] != root { (parent[Int(q)], q) = (root, parent[Int(q)]) }
            return root
        }

        /// Joins two roots under the smaller and sums their sizes; returns the new root.
        mutating func join(_ a: Int32, _ b: Int32) -> Int32 {
            let (root, child) = a > b ? (b, a) : (a, b)
            parent[Int(child)] = root
            size[Int(root)] = size[Int(a)] + size[Int(b)]
            return root
        }
    }

    /// scipy.ndimage.gaussian_filter (truncate 4, mode "reflect": d c b a | a b c d), separable:
    /// along rows of the image (axis 0) first, then along columns (axis 1).
    static func gaussianSmoothed(_ plane: [Double], width w: Int, height h: Int, sigma: Double) -> [Double] {
        guard sigma > 0 else { return plane }
        let radius = Int(4 * sigma + 0.5)
        var weights = (-radius...radius).map { exp(-0.5 * Double($0 * $0) / (sigma * sigma)) }
        let total = weights.reduce(0, +)
        weights = weights.map { $0 / total }
        func reflect(_ i: Int, _ n: Int) -> Int {
            var i = i
            let period = 2 * n
            i = ((i % period) + period) % period
            return i < n ? i : period - 1 - i
        }
        var tmp = [Double](repeating: 0, count: plane.count)
        for y in 0..<h {
            for x in 0..<w {
                var s = 0.0
                for k in -radius...radius { s += weights[k + radius] * plane[reflect(y + k, h) * w + x] }
                tmp[y * w + x] = s
            }
        }
        var out = [Double](repeating: 0, count: plane.count)
        for y in 0..<h {
            for x in 0..<w {
                var s = 0.0
                for k in -radius...radius { s += weights[k + radius] * tmp[y * w + reflect(x + k, w)] }
                out[y * w + x] = s
            }
        }
        return out
    }
}
