// The permutohedral lattice of Adams, Baek & Davis, "Fast High-Dimensional Filtering Using the
// Permutohedral Lattice" (Eurographics 2010): Gaussian filtering of N values over d-dimensional
// features in O(N d²) by splatting onto the lattice vertices of each point's enclosing simplex,
// blurring along the d+1 lattice axes and slicing back. This follows the variant in pydensecrf's
// densecrf/src/permutohedral.cpp (Permutohedral::init and sseCompute), which the x86 wheel runs:
// the same elevation, the same round-to-nearest-even of the SSE path, the same [1/2, 1, 1/2] blur
// and the same final scale, so the filtered values agree with it to float rounding.

/// Open-addressing hash from lattice keys (d Int32 coordinates — pydensecrf's are 16-bit, which overflows on
/// images a few thousand pixels wide at pos_xy_std 1; the (d+1)-th is implied because
/// the coordinates of a lattice point sum to zero) to dense vertex indices, with linear probing.
/// As permutohedral.cpp's HashTable, but with a power-of-two capacity.
final class LatticeHashTable {
    let keySize: Int
    private(set) var count = 0
    private var capacity: Int
    private var table: UnsafeMutablePointer<Int32>
    private(set) var keys: UnsafeMutablePointer<Int32>
    private var keyCapacity: Int

    init(keySize: Int, expectedCount: Int) {
        self.keySize = keySize
        var capacity = 64
        while capacity < 2 * expectedCount { capacity <<= 1 }
        self.capacity = capacity
        table = .allocate(capacity: capacity)
        table.initialize(repeating: -1, count: capacity)
        keyCapacity = capacity / 2 + 1
        keys = .allocate(capacity: keyCapacity * max(keySize, 1))
    }

    deinit {
        table.deallocate()
        keys.deallocate()
    }

    @inline(__always)
    private func hash(_ key: UnsafePointer<Int32>) -> Int {
        // The multiplier of permutohedral.cpp's hash (a linear congruential constant).
        var h: UInt = 0
        for i in 0..<keySize {
            h = (h &+ UInt(bitPattern: Int(key[i]))) &* 1_664_525
        }
        return Int(truncatingIfNeeded: h ^ (h >> 29))
    }

    /// The index of `key`, inserting it when `create` (then never -1); -1 when absent.
    func find(_ key: UnsafePointer<Int32>, create: Bool) -> Int32 {
        if create && 2 * count >= capacity { grow() }
        let mask = capacity - 1
        var h = hash(key) & mask
        while true {
            let e = Int(table[h])
            if e < 0 {
                guard create else { return -1 }
                let dst = keys + count * keySize
                for i in 0..<keySize { dst[i] = key[i] }
                table[h] = Int32(count)
                count += 1
                return Int32(count - 1)
            }
            let k = keys + e * keySize
            var same = true
            for i in 0..<keySize where k[i] != key[i] {
                same = false
                break
            }
            if same { return Int32(e) }
            h = (h + 1) & mask
        }
    }

    private func grow() {
        let newCapacity = capacity * 2
        let newTable = UnsafeMutablePointer<Int32>.allocate(capacity: newCapacity)
        newTable.initialize(repeating: -1, count: newCapacity)
        let newKeyCapacity = newCapacity / 2 + 1
        let newKeys = UnsafeMutablePointer<Int32>.allocate(capacity: newKeyCapacity * max(keySize, 1))
        newKeys.update(from: keys, count: count * keySize)
        keys.deallocate()
        keys = newKeys
        keyCapacity = newKeyCapacity
        table.deallocate()
        table = newTable
        capacity = newCapacity
        let mask = capacity - 1
        for e in 0..<count {
            var h = hash(keys + e * keySize) & mask
            while table[h] >= 0 { h = (h + 1) & mask }
            table[h] = Int32(e)
        }
    }
}

/// A permutohedral lattice built once for N points with d-dimensional features (already divided
/// by their standard deviations), then used to filter any number of value vectors: the result
/// approximates out_i = Σ_j exp(-|f_i - f_j|² / 2) in_j up to a constant factor (the factor
/// cancels under DenseCRF's symmetric normalisation).
public final class PermutohedralLattice {
    /// Number of points (pixels).
    public let pointCount: Int
    /// Feature dimensions d.
    public let dimensions: Int
    /// Number of lattice vertices touched (at most pointCount × (d+1)).
    public let vertexCount: Int
    /// Per point, the d+1 vertices of its simplex (dense indices + 1, so 0 is "absent").
    private let offsets: UnsafeMutablePointer<Int32>
    /// Per point, the barycentric weights of those vertices.
    private let weights: UnsafeMutablePointer<Float>
    /// Per axis and vertex, the two neighbours along that axis (index + 1; 0 = absent).
    private let neighbours: UnsafeMutablePointer<Int32>

    /// Builds the lattice (Permutohedral::init).
    /// - Parameters:
    ///   - features: [pointCount, dimensions], row-major, each feature divided by its std.
    ///   - dimensions: d ≥ 1 (2 for xy, 5 for xy + RGB).
    ///   - pointCount: N.
    public init(features: UnsafePointer<Float>, dimensions d: Int, pointCount n: Int) {
        precondition(d >= 1 && d < 32 && n >= 0, "PermutohedralLattice: dimensions \(d), points \(n)")
        pointCount = n
        dimensions = d
        let d1 = d + 1
        offsets = .allocate(capacity: max(n * d1, 1))
        weights = .allocate(capacity: max(n * d1, 1))
        let table = LatticeHashTable(keySize: d, expectedCount: n)
        let simplex = Simplex(dimensions: d)
        defer { simplex.deallocate() }
        for k in 0..<n {
            simplex.enclose(features + k * d, offsets: offsets + k * d1, weights: weights + k * d1, table: table)
        }
        vertexCount = table.count
        neighbours = Self.neighbours(in: table, dimensions: d)
    }

    /// Scratch and constants for finding the simplex that encloses a point (Adams et al. 2010).
    private struct Simplex {
        let d: Int
        let scale: UnsafeMutablePointer<Float>
        let elevated, rem0, bary: UnsafeMutablePointer<Float>
        let rank, canonical: UnsafeMutablePointer<Int>
        let key: UnsafeMutablePointer<Int32>

        init(dimensions d: Int) {
            self.d = d
            let d1 = d + 1
            scale = .allocate(capacity: d)
            elevated = .allocate(capacity: d1)
            rem0 = .allocate(capacity: d1)
            rank = .allocate(capacity: d1)
            bary = .allocate(capacity: d + 2)
            canonical = .allocate(capacity: d1 * d1)
            key = .allocate(capacity: d1)
            // The canonical simplex (§3.1): vertex r is (r, …, r, r-(d+1), …).
            for r in 0...d {
                for j in 0...d { canonical[r * d1 + j] = j <= d - r ? r : r - d1 }
            }
            // The elevation matrix E's diagonal scaled so the blur has the expected std (ibid. p. 5-6),
            // computed in double and rounded once, as permutohedral.cpp.
            let invStd = Float((2.0 / 3.0).squareRoot()) * Float(d1)
            for i in 0..<d { scale[i] = Float(1.0 / Double((i + 2) * (i + 1)).squareRoot() * Double(invStd)) }
        }

        func deallocate() {
            scale.deallocate(); elevated.deallocate(); rem0.deallocate(); rank.deallocate()
            bary.deallocate(); canonical.deallocate(); key.deallocate()
        }

        /// The d+1 vertices (dense indices + 1, created in `table` as needed) and barycentric
        /// weights of the simplex around feature vector `f`.
        func enclose(
            _ f: UnsafePointer<Float>, offsets: UnsafeMutablePointer<Int32>, weights: UnsafeMutablePointer<Float>,
            table: LatticeHashTable
        ) {
            let d1 = d + 1
            let down = 1 / Float(d1), up = Float(d1)
            // y = E f, accumulated from the last coordinate.
            var sm: Float = 0
            var j = d
            while j > 0 {
                let cf = f[j - 1] * scale[j - 1]
                elevated[j] = sm - Float(j) * cf
                sm += cf
                j -= 1
            }
            elevated[0] = sm
            // Nearest 0-coloured lattice point, rounding half to even as the SSE path does.
            var sum = 0
            for i in 0...d {
                let v = (down * elevated[i]).rounded(.toNearestOrEven)
                rem0[i] = v * up
                sum += Int(v)
            }
            // The simplex: rank of each coordinate's remainder in decreasing order.
            for i in 0...d { rank[i] = 0 }
            for i in 0..<d {
                let di = elevated[i] - rem0[i]
                for j in (i + 1)...d {
                    if di < elevated[j] - rem0[j] { rank[i] += 1 } else { rank[j] += 1 }
                }
            }
            // Bring the point back onto the hyperplane when the rounded coordinates do not sum to 0.
            for i in 0...d {
                rank[i] += sum
                if rank[i] < 0 {
                    rank[i] += d1
                    rem0[i] += up
                } else if rank[i] > d {
                    rank[i] -= d1
                    rem0[i] -= up
                }
            }
            // Barycentric coordinates (ibid. p. 10).
            for i in 0...(d + 1) { bary[i] = 0 }
            for i in 0...d {
                let v = (elevated[i] - rem0[i]) * down
                bary[d - rank[i]] += v
                bary[d - rank[i] + 1] -= v
            }
            bary[0] += 1 + bary[d + 1]
            // The d+1 vertices and their weights.
            for r in 0...d {
                for i in 0..<d { key[i] = Int32(Int(rem0[i]) + canonical[r * d1 + rank[i]]) }
                offsets[r] = table.find(key, create: true) + 1
                weights[r] = bary[r]
            }
        }
    }

    /// Neighbours along each axis j: the key shifted by +1 in every coordinate but j, which
    /// moves by -d (and the reverse), as permutohedral.cpp builds blur_neighbors_.
    private static func neighbours(in table: LatticeHashTable, dimensions d: Int) -> UnsafeMutablePointer<Int32> {
        let d1 = d + 1
        let m = table.count
        let neighbours = UnsafeMutablePointer<Int32>.allocate(capacity: max(2 * d1 * m, 1))
        let n1 = UnsafeMutablePointer<Int32>.allocate(capacity: d1)
        let n2 = UnsafeMutablePointer<Int32>.allocate(capacity: d1)
        defer { n1.deallocate(); n2.deallocate() }
        for j in 0...d {
            for i in 0..<m {
                let key = table.keys + i * d
                for c in 0..<d {
                    n1[c] = key[c] &- 1
                    n2[c] = key[c] &+ 1
                }
                if j < d {
                    n1[j] = key[j] &+ Int32(d)
                    n2[j] = key[j] &- Int32(d)
                }
                neighbours[2 * (j * m + i)] = table.find(n1, create: false) + 1
                neighbours[2 * (j * m + i) + 1] = table.find(n2, create: false) + 1
            }
        }
        return neighbours
    }

    deinit {
        offsets.deallocate()
        weights.deallocate()
        neighbours.deallocate()
    }

    /// Floats of scratch `filter` needs for `valueSize` values per point.
    public func scratchCount(valueSize: Int) -> Int { 2 * (vertexCount + 1) * valueSize }

    /// Filters `valueSize` values per point: splat, blur along the axes 0…d, slice (sseCompute).
    /// `input` and `output` ([pointCount, valueSize]) may be the same buffer.
    /// - Parameter scratch: at least `scratchCount(valueSize:)` floats, contents ignored.
    public func filter(
        _ input: UnsafePointer<Float>, into output: UnsafeMutablePointer<Float>, valueSize vs: Int,
        scratch: UnsafeMutablePointer<Float>
    ) {
        filter(
            input, into: output, valueSize: vs, scratch: scratch, inputScale: nil, outputScale: nil, outputWeight: 1,
            accumulate: false)
    }

    /// The filter with per-point scales folded into the splat and slice weights, so the CRF's
    /// normalisation D^-1/2 K D^-1/2 and its kernel weight cost no extra passes over the values:
    /// output_i (+)= outputWeight · outputScale_i · Σ_j K_ij · inputScale_j · input_j.
    /// - Parameters:
    ///   - inputScale, outputScale: [pointCount] or nil (all ones).
    ///   - accumulate: add to `output` instead of overwriting it (then `output` must not be `input`).
    public func filter(
        _ input: UnsafePointer<Float>, into output: UnsafeMutablePointer<Float>, valueSize vs: Int,
        scratch: UnsafeMutablePointer<Float>, inputScale: UnsafePointer<Float>?, outputScale: UnsafePointer<Float>?,
        outputWeight: Float, accumulate: Bool
    ) {
        let d1 = dimensions + 1, m = vertexCount, n = pointCount
        var values = scratch
        var next = scratch + (m + 1) * vs
        values.update(repeating: 0, count: (m + 1) * vs)
        // Slot 0 stays zero in both buffers: it stands for vertices outside the lattice.
        next.update(repeating: 0, count: vs)

        // Splat.
        for i in 0..<n {
            let src = input + i * vs
            let s = inputScale?[i] ?? 1
            for r in 0..<d1 {
                let dst = values + Int(offsets[i * d1 + r]) * vs
                let w = weights[i * d1 + r] * s
                for c in 0..<vs { dst[c] += w * src[c] }
            }
        }
        // Blur with [1/2, 1, 1/2] along each lattice axis.
        for j in 0..<d1 {
            let nb = neighbours + 2 * j * m
            for i in 0..<m {
                let old = values + (i + 1) * vs
                let new = next + (i + 1) * vs
                let a = values + Int(nb[2 * i]) * vs
                let b = values + Int(nb[2 * i + 1]) * vs
                for c in 0..<vs { new[c] = old[c] + 0.5 * (a[c] + b[c]) }
            }
            swap(&values, &next)
        }
        // Slice, with the lattice's constant 1/(1 + 2^-d).
        let alpha = 1 / (1 + Float.pow2(-dimensions))
        for i in 0..<n {
            let dst = output + i * vs
            if !accumulate { for c in 0..<vs { dst[c] = 0 } }
            let s = alpha * outputWeight * (outputScale?[i] ?? 1)
            for r in 0..<d1 {
                let src = values + Int(offsets[i * d1 + r]) * vs
                let w = weights[i * d1 + r] * s
                for c in 0..<vs { dst[c] += w * src[c] }
            }
        }
    }
}

extension Float {
    /// 2^e for small integer e, exactly.
    fileprivate static func pow2(_ e: Int) -> Float { Float(sign: .plus, exponent: e, significand: 1) }
}
