import Autograd
import Foundation
import Imaging

// The fully-connected CRF of Krähenbühl & Koltun, "Efficient Inference in Fully Connected CRFs
// with Gaussian Edge Potentials" (NeurIPS 2011), as pydensecrf computes it and as
// deeplab-pytorch's libs/utils/crf.py sets it up:
//   unary     U_i(l) = -log(clip(P_i(l), 1e-5, 1))          (pydensecrf.utils.unary_from_softmax)
//   pairwise  Potts, with a smoothness kernel on xy / pos_xy_std (weight pos_w, addPairwiseGaussian)
//             and an appearance kernel on xy / bi_xy_std and RGB / bi_rgb_std (weight bi_w,
//             addPairwiseBilateral), each normalised symmetrically (NORMALIZE_SYMMETRIC, the
//             pyx default: K̃ = D^-1/2 K D^-1/2 with D = K·1, lattice.cpp's DenseKernel::filter)
//   inference Q⁰ = softmax(-U);  Qᵗ⁺¹ = softmax(-U + Σ_k w_k K̃_k Qᵗ)  (DenseCRF::inference; the
//             Potts term -w·[l = l'] of PottsCompatibility::apply, subtracted once more).
// Pixels are kept pixel-major ([N, C], a pixel's classes contiguous) as Eigen's [C, N] column-major
// matrices in densecrf.cpp, so the lattice filters all classes of a point at once.

/// A fully-connected CRF with Potts compatibility, a Gaussian (xy) and a bilateral (xy + RGB)
/// kernel, and mean-field inference over a permutohedral lattice (linear in pixels).
public struct DenseCRF: Sendable {
    /// The CRF's settings, under deeplab-pytorch's names (configs/*.yaml `CRF:` section) and with
    /// its defaults.
    public struct Parameters: Codable, Equatable, Sendable {
        /// Mean-field iterations (`ITER_MAX`).
        public var iterations = 10
        /// The most iterations the commands and recipes accept (mean field converges in 5-10).
        public static let maximumIterations = 1000
        /// Weight of the smoothness (Gaussian, xy) kernel (`POS_W`).
        public var posW: Float = 3
        /// Spatial std of the smoothness kernel, pixels (`POS_XY_STD`).
        public var posXYStd: Float = 1
        /// Weight of the appearance (bilateral) kernel (`BI_W`).
        public var biW: Float = 4
        /// Spatial std of the appearance kernel, pixels (`BI_XY_STD`).
        public var biXYStd: Float = 67
        /// Colour std of the appearance kernel, 8-bit RGB levels (`BI_RGB_STD`).
        public var biRGBStd: Float = 3

        /// deeplab-pytorch's defaults.
        public init() {}

        /// Settings given one by one (unnamed ones keep deeplab-pytorch's defaults).
        public init(
            iterations: Int = 10, posW: Float = 3, posXYStd: Float = 1, biW: Float = 4, biXYStd: Float = 67,
            biRGBStd: Float = 3
        ) {
            (self.iterations, self.posW, self.posXYStd) = (iterations, posW, posXYStd)
            (self.biW, self.biXYStd, self.biRGBStd) = (biW, biXYStd, biRGBStd)
        }

        /// The YAML/JSON key names (deeplab-pytorch's, lower-cased).
        public enum CodingKeys: String, CodingKey, CaseIterable {
            case iterations, posW = "pos_w", posXYStd = "pos_xy_std", biW = "bi_w", biXYStd = "bi_xy_std"
            case biRGBStd = "bi_rgb_std"
        }

        /// Checks the settings for an image of this size: iterations ≥ 0, weights finite and ≥ 0,
        /// stds finite and > 0, and no lattice coordinate (pixel or level ÷ std) beyond 1e6, where
        /// the lattice's integer keys would overflow.
        /// - Throws: `DenseCRFError.badParameter` naming the key.
        public func validate(width: Int, height: Int) throws {
            guard iterations >= 0 else {
                throw DenseCRFError.badParameter(name: CodingKeys.iterations.rawValue, value: Double(iterations))
            }
            for (key, value) in [(CodingKeys.posW, posW), (.biW, biW)] where !(value.isFinite && value >= 0) {
                throw DenseCRFError.badParameter(name: key.rawValue, value: Double(value))
            }
            let extent = Float(max(width, height, 255))
            for (key, value) in [(CodingKeys.posXYStd, posXYStd), (.biXYStd, biXYStd), (.biRGBStd, biRGBStd)]
            where !(value.isFinite && value > 0 && extent / value <= 1e6) {
                throw DenseCRFError.badParameter(name: key.rawValue, value: Double(value))
            }
        }

        /// Decodes the keys present; absent ones keep their defaults.
        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            self.init()
            iterations = try c.decodeIfPresent(Int.self, forKey: .iterations) ?? iterations
            posW = try c.decodeIfPresent(Float.self, forKey: .posW) ?? posW
            posXYStd = try c.decodeIfPresent(Float.self, forKey: .posXYStd) ?? posXYStd
            biW = try c.decodeIfPresent(Float.self, forKey: .biW) ?? biW
            biXYStd = try c.decodeIfPresent(Float.self, forKey: .biXYStd) ?? biXYStd
            biRGBStd = try c.decodeIfPresent(Float.self, forKey: .biRGBStd) ?? biRGBStd
        }
    }

    /// One image's input for `infer(batch:)`.
    public struct Input: Sendable {
        /// RGB image, H × W.
        public var image: Image
        /// Class probabilities, [classes, H, W] row-major.
        public var probabilities: [Float]
        /// Number of classes.
        public var classes: Int
        /// A name for messages (file or id).
        public var source: String

        /// One image and its probabilities.
        public init(image: Image, probabilities: [Float], classes: Int, source: String = "image") {
            (self.image, self.probabilities, self.classes, self.source) = (image, probabilities, classes, source)
        }
    }

    /// A per-pixel sum of probabilities further than this from 1 is refused.
    public static let sumTolerance: Float = 1e-2
    /// A probability above 1 + this is refused.
    public static let valueTolerance: Float = 1e-3
    /// pydensecrf.utils.unary_from_softmax's default clip.
    public static let clip: Float = 1e-5

    /// The settings used by `infer`.
    public var parameters: Parameters

    /// A CRF with the given settings (deeplab-pytorch's by default).
    public init(parameters: Parameters = Parameters()) {
        self.parameters = parameters
    }

    /// Mean-field inference on one image, single-threaded.
    /// - Parameters:
    ///   - image: RGB, H × W (grey or RGBA are refused: convert with `rgb()` first).
    ///   - probabilities: [classes, H, W], each pixel's values a distribution (softmax output).
    ///   - classes: C.
    ///   - source: a name for error messages.
    /// - Returns: the arg-max labels (H × W) and the marginals Q after `iterations` steps,
    ///   [classes, H, W].
    /// - Throws: `DenseCRFError` for a size mismatch, a class count that does not divide the
    ///   data, a non-RGB image, or values that are not probabilities.
    public func infer(image: Image, probabilities: [Float], classes: Int, source: String = "image") throws -> (
        labels: LabelMap, marginals: [Float]
    ) {
        let (w, h) = (image.width, image.height)
        let n = w * h
        guard classes >= 2 && classes <= 255 else { throw DenseCRFError.badClassCount(source: source, classes: classes) }
        guard image.channels == 3 else { throw DenseCRFError.notRGB(source: source, channels: image.channels) }
        try parameters.validate(width: w, height: h)
        guard probabilities.count % classes == 0 else {
            throw DenseCRFError.classCountMismatch(source: source, count: probabilities.count, classes: classes, pixels: n)
        }
        guard probabilities.count == classes * n else {
            throw DenseCRFError.pixelCountMismatch(
                source: source, scoresPixels: probabilities.count / classes, imageWidth: w, imageHeight: h)
        }
        try Self.validate(probabilities, classes: classes, width: w, height: h, source: source)

        var marginals = [Float](repeating: 0, count: classes * n)
        var labels = [UInt8](repeating: 0, count: n)
        probabilities.withUnsafeBufferPointer { p in
            image.pixels.withUnsafeBufferPointer { rgb in
                marginals.withUnsafeMutableBufferPointer { q in
                    labels.withUnsafeMutableBufferPointer { l in
                        MeanField.run(
                            probabilities: p.baseAddress!, rgb: rgb.baseAddress!, width: w, height: h, classes: classes,
                            parameters: parameters, marginals: q.baseAddress!, labels: l.baseAddress!)
                    }
                }
            }
        }
        return (LabelMap(width: w, height: h, values: labels), marginals)
    }

    /// As `infer(image:probabilities:classes:)` when the scores' own H × W is known (an HDF5
    /// dataset [classes, H, W]): a different size than the image's is a `sizeMismatch`.
    public func infer(image: Image, probabilities: [Float], shape: [Int], source: String = "image") throws -> (
        labels: LabelMap, marginals: [Float]
    ) {
        guard shape.count == 3, shape[0] * shape[1] * shape[2] == probabilities.count else {
            throw DenseCRFError.classCountMismatch(
                source: source, count: probabilities.count, classes: shape.first ?? 0, pixels: image.width * image.height)
        }
        guard shape[1] == image.height && shape[2] == image.width else {
            throw DenseCRFError.sizeMismatch(
                source: source, imageWidth: image.width, imageHeight: image.height, scoresWidth: shape[2], scoresHeight: shape[1])
        }
        return try infer(image: image, probabilities: probabilities, classes: shape[0], source: source)
    }

    /// Many images at once: images run in parallel over `Runtime.threads` cores (`parallelFor`),
    /// each single-threaded inside. Results are in input order.
    /// - Throws: the first input's `DenseCRFError` (by input order) when any input is bad.
    public func infer(batch: [Input]) throws -> [(labels: LabelMap, marginals: [Float])] {
        let results = UnsafeMutableBufferPointer<Result<(labels: LabelMap, marginals: [Float]), Error>?>.allocate(
            capacity: batch.count)
        results.initialize(repeating: nil)
        defer {
            _ = results.deinitialize()
            results.deallocate()
        }
        let crf = self
        parallelFor(batch.count) { range in
            for i in range {
                let input = batch[i]
                results[i] = Result {
                    try crf.infer(
                        image: input.image, probabilities: input.probabilities, classes: input.classes, source: input.source)
                }
            }
        }
        return try results.map { try $0!.get() }
    }

    /// Refines a label map (CAM or SEPL pseudo-labels) with the CRF: each labelled pixel becomes
    /// a distribution with `confidence` on its label and the rest spread evenly over the other
    /// classes, each ignore (255) pixel a uniform one — pydensecrf.utils.unary_from_labels(labels,
    /// classes, gt_prob: confidence, zero_unsure: True) with 255 in the role of 0. Ignore pixels
    /// stay 255 in the result; the others take the CRF's arg-max.
    /// - Parameters:
    ///   - labels: H × W, values < classes or 255.
    ///   - image: RGB, H × W.
    ///   - confidence: pydensecrf's gt_prob, in (1/classes, 1); 0.7 by default (its examples').
    /// - Throws: `DenseCRFError` for a size mismatch, labels out of range, a bad confidence.
    public func refine(labels: LabelMap, image: Image, classes: Int, confidence: Float = 0.7, source: String = "image") throws
        -> LabelMap
    {
        guard classes >= 2 && classes <= 255 else { throw DenseCRFError.badClassCount(source: source, classes: classes) }
        guard confidence > 1 / Float(classes) && confidence < 1 else { throw DenseCRFError.badConfidence(confidence) }
        guard labels.width == image.width && labels.height == image.height else {
            throw DenseCRFError.sizeMismatch(
                source: source, imageWidth: image.width, imageHeight: image.height, scoresWidth: labels.width,
                scoresHeight: labels.height)
        }
        let n = labels.width * labels.height
        let other = (1 - confidence) / Float(classes - 1), uniform = 1 / Float(classes)
        var p = [Float](repeating: 0, count: classes * n)
        for i in 0..<n {
            let l = labels.values[i]
            if l == LabelMap.ignore {
                for c in 0..<classes { p[c * n + i] = uniform }
            } else {
                guard Int(l) < classes else { throw DenseCRFError.labelOutOfRange(source: source, label: l, classes: classes) }
                for c in 0..<classes { p[c * n + i] = c == Int(l) ? confidence : other }
            }
        }
        var out = try infer(image: image, probabilities: p, classes: classes, source: source).labels
        for i in 0..<n where labels.values[i] == LabelMap.ignore { out.values[i] = LabelMap.ignore }
        return out
    }

    /// Checks that every pixel's values are a distribution (finite, in [0, 1 + 1e-3], summing to
    /// 1 within `sumTolerance`).
    /// - Throws: `DenseCRFError.notAProbability` or `.probabilitiesDoNotSumToOne` at the first bad pixel.
    public static func validate(_ p: [Float], classes: Int, width: Int, height: Int, source: String) throws {
        let n = width * height
        precondition(p.count == classes * n, "DenseCRF.validate: \(p.count) values for [\(classes), \(height), \(width)]")
        try p.withUnsafeBufferPointer { buf in
            let base = buf.baseAddress!
            for i in 0..<n {
                var sum: Float = 0
                for c in 0..<classes {
                    let v = base[c * n + i]
                    // `!(v >= 0)` is also true for NaN.
                    if !(v >= 0) || !(v <= 1 + valueTolerance) {
                        throw DenseCRFError.notAProbability(source: source, value: v, classIndex: c, x: i % width, y: i / width)
                    }
                    sum += v
                }
                if abs(sum - 1) > sumTolerance {
                    throw DenseCRFError.probabilitiesDoNotSumToOne(source: source, sum: sum, x: i % width, y: i / width)
                }
            }
        }
    }
}
