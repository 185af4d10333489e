import Foundation

/// Mean-field inference over raw buffers (densecrf.cpp's DenseCRF::inference with the two kernels
/// deeplab-pytorch's crf.py adds), single-threaded.
enum MeanField {
    /// One Gaussian kernel: its lattice, its symmetric normalisation and its Potts weight.
    struct Kernel {
        let lattice: PermutohedralLattice
        /// D^-1/2 per pixel, D = K·1 (DenseKernel::initLattice, NORMALIZE_SYMMETRIC).
        let norm: [Float]
        let weight: Float

        init(features: UnsafePointer<Float>, dimensions: Int, pixels n: Int, weight: Float, scratch: inout [Float]) {
            let lattice = PermutohedralLattice(features: features, dimensions: dimensions, pointCount: n)
            self.lattice = lattice
            self.weight = weight
            var ones = [Float](repeating: 1, count: n)
            if scratch.count < lattice.scratchCount(valueSize: 1) {
                scratch = [Float](repeating: 0, count: lattice.scratchCount(valueSize: 1))
            }
            scratch.withUnsafeMutableBufferPointer { s in
                ones.withUnsafeMutableBufferPointer { o in
                    lattice.filter(o.baseAddress!, into: o.baseAddress!, valueSize: 1, scratch: s.baseAddress!)
                }
            }
            // 1 / sqrt(D + 1e-20) in double, rounded once, as pairwise.cpp.
            norm = ones.map { Float(1 / (Double($0) + 1e-20).squareRoot()) }
        }

        /// out += weight · D^-1/2 K D^-1/2 q, for q [n, classes] (pairwise.cpp's filter, then
        /// PottsCompatibility::apply's -w, then densecrf.cpp's `tmp1 -= tmp2`), the scales folded
        /// into the lattice's splat and slice.
        func accumulate(
            _ q: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, classes: Int, scratch: UnsafeMutablePointer<Float>
        ) {
            norm.withUnsafeBufferPointer { nb in
                lattice.filter(
                    q, into: out, valueSize: classes, scratch: scratch, inputScale: nb.baseAddress!, outputScale: nb.baseAddress!,
                    outputWeight: weight, accumulate: true)
            }
        }
    }

    /// Runs `parameters.iterations` mean-field steps.
    /// - Parameters:
    ///   - probabilities: [classes, H, W], validated.
    ///   - rgb: [H, W, 3].
    ///   - marginals: out, [classes, H, W].
    ///   - labels: out, [H, W], the first class of largest marginal (Eigen's maxCoeff).
    static func run(
        probabilities p: UnsafePointer<Float>, rgb: UnsafePointer<UInt8>, width w: Int, height h: Int, classes: Int,
        parameters: DenseCRF.Parameters, marginals: UnsafeMutablePointer<Float>, labels: UnsafeMutablePointer<UInt8>
    ) {
        let n = w * h
        let nc = n * classes
        // Pixel-major working buffers.
        let unary = UnsafeMutablePointer<Float>.allocate(capacity: max(nc, 1))
        let q = UnsafeMutablePointer<Float>.allocate(capacity: max(nc, 1))
        let logits = UnsafeMutablePointer<Float>.allocate(capacity: max(nc, 1))
        defer {
            unary.deallocate(); q.deallocate(); logits.deallocate()
        }
        // U = -log(clip(P, 1e-5, 1)) (unary_from_softmax), transposed to [n, classes].
        for c in 0..<classes {
            let src = p + c * n
            for i in 0..<n { unary[i * classes + c] = -logf(min(max(src[i], DenseCRF.clip), 1)) }
        }

        // Features as DenseCRF2D::addPairwiseGaussian / addPairwiseBilateral: coordinates and
        // colours divided by their stds.
        var kernels: [Kernel] = []
        var scratch: [Float] = []
        if parameters.posW != 0 {
            var f = [Float](repeating: 0, count: 2 * n)
            for y in 0..<h {
                for x in 0..<w {
                    f[2 * (y * w + x)] = Float(x) / parameters.posXYStd
                    f[2 * (y * w + x) + 1] = Float(y) / parameters.posXYStd
                }
            }
            kernels.append(Kernel(features: f, dimensions: 2, pixels: n, weight: parameters.posW, scratch: &scratch))
        }
        if parameters.biW != 0 {
            var f = [Float](repeating: 0, count: 5 * n)
            for y in 0..<h {
                for x in 0..<w {
                    let i = y * w + x
                    f[5 * i] = Float(x) / parameters.biXYStd
                    f[5 * i + 1] = Float(y) / parameters.biXYStd
                    for k in 0..<3 { f[5 * i + 2 + k] = Float(rgb[3 * i + k]) / parameters.biRGBStd }
                }
            }
            kernels.append(Kernel(features: f, dimensions: 5, pixels: n, weight: parameters.biW, scratch: &scratch))
        }
        let scratchCount = kernels.map { $0.lattice.scratchCount(valueSize: classes) }.max() ?? 0
        if scratch.count < scratchCount { scratch = [Float](repeating: 0, count: scratchCount) }

        for i in 0..<nc { logits[i] = -unary[i] }
        softmax(logits, into: q, resetting: unary, pixels: n, classes: classes)
        scratch.withUnsafeMutableBufferPointer { s in
            for _ in 0..<max(parameters.iterations, 0) {
                // logits = -U here; add each kernel's message, then normalise.
                for k in kernels { k.accumulate(q, into: logits, classes: classes, scratch: s.baseAddress!) }
                softmax(logits, into: q, resetting: unary, pixels: n, classes: classes)
            }
        }

        for i in 0..<n {
            let row = q + i * classes
            var best = 0
            var top = row[0]
            for c in 1..<classes where row[c] > top {
                top = row[c]
                best = c
            }
            labels[i] = UInt8(best)
            for c in 0..<classes { marginals[c * n + i] = row[c] }
        }
    }

    /// Per pixel, exp(x - max x) / Σ (densecrf.cpp's expAndNormalize); then x = -unary for the
    /// next iteration, in the same pass over memory. Blocks of pixels share one vector exp.
    static func softmax(
        _ x: UnsafeMutablePointer<Float>, into out: UnsafeMutablePointer<Float>, resetting unary: UnsafePointer<Float>,
        pixels n: Int,
        classes: Int
    ) {
        let block = 256
        var start = 0
        while start < n {
            let end = min(n, start + block)
            for i in start..<end {
                let src = x + i * classes, dst = out + i * classes
                var top = src[0]
                for c in 1..<classes where src[c] > top { top = src[c] }
                for c in 0..<classes { dst[c] = src[c] - top }
            }
            FastExp.expInPlace(out + start * classes, count: (end - start) * classes)
            for i in start..<end {
                let src = x + i * classes, dst = out + i * classes, u = unary + i * classes
                var sum: Float = 0
                for c in 0..<classes { sum += dst[c] }
                let inverse = 1 / sum
                for c in 0..<classes {
                    dst[c] *= inverse
                    src[c] = -u[c]
                }
            }
            start = end
        }
    }
}
