import Autograd
import Foundation
import Imaging

/// How pixel values are normalised before the network.
public enum Preprocessing: String, Codable, Sendable, CaseIterable {
    /// Caffe DeepLab: BGR channel order, mean (104.008, 116.669, 122.675) subtracted, no scaling.
    case caffe
    /// torchvision: RGB, (x/255 - ImageNet mean) / ImageNet std.
    case torchvision

    /// Per output channel: the value subtracted (in 0…255 units) and the divisor.
    var meanAndScale: (mean: [Float], scale: [Float], bgr: Bool) {
        switch self {
        case .caffe: ([104.008, 116.669, 122.675], [1, 1, 1], true)
        case .torchvision: ([0.485 * 255, 0.456 * 255, 0.406 * 255], [0.229 * 255, 0.224 * 255, 0.225 * 255], false)
        }
    }

    /// Normalises an RGB image into planar channels in network order. Padding with 0 afterwards
    /// is padding with the mean (DeepLab pads images with the mean and labels with 255).
    public func normalize(_ image: Image) -> PlanarImage {
        precondition(image.channels == 3, "normalize: \(image.channels)-channel image (RGB expected)")
        let (mean, scale, bgr) = meanAndScale
        let plane = image.width * image.height
        var values = [Float](repeating: 0, count: 3 * plane)
        image.pixels.withUnsafeBufferPointer { src in
            values.withUnsafeMutableBufferPointer { dst in
                for c in 0..<3 {
                    let sourceChannel = bgr ? 2 - c : c
                    let (m, s) = (mean[c], 1 / scale[c])
                    let d = dst.baseAddress! + c * plane
                    for i in 0..<plane { d[i] = (Float(src[i * 3 + sourceChannel]) - m) * s }
                }
            }
        }
        return PlanarImage(channels: 3, height: image.height, width: image.width, values: values)
    }
}

/// Random scaling of training images.
public enum ScaleJitter: Equatable, Codable, Sendable {
    /// One of these factors, uniformly (DeepLab-v2 caffe and deeplab-pytorch's configs/voc12.yaml
    /// with libs/datasets/base.py `random.choice`: 0.5, 0.75, 1, 1.25, 1.5).
    case choices([Double])
    /// Uniform in [low, high] (IRN's CAM training: 0.5–1.5).
    case range(Double, Double)

    /// The jitter a recipe's `scales` list and `sampling` describe: `.choice` draws from the list,
    /// `.uniform` between its first and last entries (1 for an empty list).
    public init(_ sampling: ScaleSampling, scales: [Double]) {
        switch sampling {
        case .choice: self = .choices(scales)
        case .uniform: self = .range(scales.first ?? 1, scales.last ?? 1)
        }
    }

    func sample(_ generator: inout SeededGenerator) -> Double {
        switch self {
        case .choices(let values): values.isEmpty ? 1 : values[Int(generator.next() % UInt64(values.count))]
        case .range(let low, let high): low + (high - low) * Double(generator.nextUniform())
        }
    }
}

/// How a training scale factor is drawn from a recipe's list of scales.
public enum ScaleSampling: String, Codable, Sendable, CaseIterable {
    /// One entry of the list, each equally likely; scaled sides are truncated, int(side · factor)
    /// (deeplab-pytorch libs/datasets/base.py `_augmentation`).
    case choice
    /// Uniform between the first and last entry; scaled sides are rounded (our earlier default).
    case uniform

    /// How `Augmentation` turns side · factor into pixels under this sampling.
    public var sideRounding: FloatingPointRoundingRule { self == .choice ? .towardZero : .toNearestOrAwayFromZero }
}

/// DeepLab training augmentation: random scale (bilinear image, nearest labels), pad bottom and
/// right to the crop size (mean for images, 255 for labels), random crop, random horizontal
/// flip. Deterministic: a sample's randomness depends only on (seed, epoch, index).
///
/// With `labelResize: .pil` and `sideRounding: .towardZero` each step is deeplab-pytorch's
/// (libs/datasets/base.py `_augmentation`): sides int(side · factor), the image by cv2.resize
/// INTER_LINEAR (half-pixel centres, no antialiasing: our `resizedBilinear`), the labels by
/// PIL `Image.resize(NEAREST)`, cv2.copyMakeBorder at the bottom and right (mean, 255), a crop
/// at offsets drawn from [0, side - crop] and np.fliplr. Only the random numbers differ (our
/// seeded generator, not Python's `random`). The image is normalised before it is resized, not
/// after: resizing weights sum to 1, so the two orders agree up to float rounding.
public struct Augmentation: Sendable {
    public var preprocessing: Preprocessing
    public var scale: ScaleJitter
    public var cropSize: Int
    public var flip: Bool
    /// The nearest-neighbour rule of the label resize.
    public var labelResize: NearestRule
    /// How side · factor becomes a pixel count (`.toNearestOrAwayFromZero`: rounded; `.towardZero`:
    /// truncated, as Python's int()).
    public var sideRounding: FloatingPointRoundingRule
    /// IRN's procedure instead of DeepLab's (voc12/dataloader.py VOC12ImageDataset with
    /// train_cam.py's settings): the long side resized to a random length in this range (PIL
    /// bicubic on the 8-bit image), normalised, flipped, cropped as IRN places crops
    /// (`IRNTransforms`); `scale`, `labelResize` and `sideRounding` are then unused.
    public var resizeLong: ClosedRange<Int>?

    public init(
        preprocessing: Preprocessing = .caffe, scale: ScaleJitter = .range(0.5, 1.5), cropSize: Int = 321, flip: Bool = true,
        labelResize: NearestRule = .torch, sideRounding: FloatingPointRoundingRule = .toNearestOrAwayFromZero,
        resizeLong: ClosedRange<Int>? = nil
    ) {
        self.preprocessing = preprocessing
        self.scale = scale
        self.cropSize = cropSize
        self.flip = flip
        self.labelResize = labelResize
        self.sideRounding = sideRounding
        self.resizeLong = resizeLong
    }

    /// Scale factors above this are refused: DeepLab jitters within 0.5–1.5, and a 500-pixel
    /// image at 8x is already 4000 pixels a side.
    public static let maximumScale = 8.0

    /// Checks the settings before any image is touched: a crop of at least 1 pixel and scale
    /// factors in (0, `maximumScale`] (a factor of 1e9 would end in a failed allocation on a
    /// background thread, a zero crop in a loader that never fills a batch).
    /// - Throws: `DatasetError.badAugmentation` naming the setting.
    public func validate() throws {
        guard cropSize >= 1 else { throw DatasetError.badAugmentation(reason: "crop size \(cropSize) must be at least 1") }
        if let range = resizeLong, range.lowerBound < 1 {
            throw DatasetError.badAugmentation(
                reason: "long side range \(range.lowerBound)…\(range.upperBound) must start at 1 or more")
        }
        let factors: [Double]
        switch scale {
        case .choices(let values): factors = values
        case .range(let low, let high):
            guard low <= high else { throw DatasetError.badAugmentation(reason: "scale range \(low)…\(high) is reversed") }
            factors = [low, high]
        }
        if let bad = factors.first(where: { !($0 > 0 && $0 <= Self.maximumScale) }) {
            throw DatasetError.badAugmentation(reason: "scale \(bad) is outside (0, \(Self.maximumScale)]")
        }
    }

    /// One augmented example: [3, crop, crop] normalised pixels and [crop, crop] labels, with the
    /// factor, crop offsets and flip drawn from `generator` (in that order).
    public func apply(image: Image, labels: LabelMap, generator: inout SeededGenerator) -> (PlanarImage, LabelMap) {
        if let resizeLong { return applyIRN(image: image, labels: labels, longSide: resizeLong, generator: &generator) }
        let factor = scale.sample(&generator)
        let (w, h) = scaledSize(width: image.width, height: image.height, factor: factor)
        // Pad bottom/right, then crop at a random offset.
        let (pw, ph) = (max(w, cropSize), max(h, cropSize))
        let x0 = Int(generator.next() % UInt64(pw - cropSize + 1)), y0 = Int(generator.next() % UInt64(ph - cropSize + 1))
        let mirror = flip && generator.next() & 1 == 1
        return apply(image: image, labels: labels, factor: factor, cropOrigin: (x0, y0), mirror: mirror)
    }

    /// The scaled image size for `factor`: each side · factor by `sideRounding`, at least 1.
    public func scaledSize(width: Int, height: Int, factor: Double) -> (width: Int, height: Int) {
        func side(_ length: Int) -> Int { max(1, Int((Double(length) * factor).rounded(sideRounding))) }
        return (side(width), side(height))
    }

    /// One augmented example with the random choices given: scale by `factor`, pad, crop at
    /// `cropOrigin` (x, y in the padded image, each in [0, max(side, crop) - crop]) and mirror
    /// the crop when `mirror`. [3, crop, crop] normalised pixels and [crop, crop] labels.
    public func apply(
        image: Image, labels: LabelMap, factor: Double, cropOrigin: (x: Int, y: Int), mirror: Bool
    ) -> (PlanarImage, LabelMap) {
        let (w, h) = scaledSize(width: image.width, height: image.height, factor: factor)
        let (pw, ph) = (max(w, cropSize), max(h, cropSize))
        precondition(
            (0...(pw - cropSize)).contains(cropOrigin.x) && (0...(ph - cropSize)).contains(cropOrigin.y),
            "Augmentation.apply: crop origin \(cropOrigin) outside the padded \(pw)x\(ph) image")
        var planar = preprocessing.normalize(image)
        var labels = labels
        if w != image.width || h != image.height {
            planar = planar.resizedBilinear(height: h, width: w)
            labels = labels.resizedNearest(height: h, width: w, rule: labelResize)
        }
        let (x0, y0) = cropOrigin
        var outImage = [Float](repeating: 0, count: 3 * cropSize * cropSize)
        var outLabels = [UInt8](repeating: LabelMap.ignore, count: cropSize * cropSize)
        let plane = cropSize * cropSize
        for y in 0..<cropSize {
            let sy = y0 + y
            guard sy < h else { continue }
            for x in 0..<cropSize {
                let sx = x0 + x
                guard sx < w else { continue }
                let dx = mirror ? cropSize - 1 - x : x
                for c in 0..<3 { outImage[c * plane + y * cropSize + dx] = planar.values[(c * h + sy) * w + sx] }
                outLabels[y * cropSize + dx] = labels.values[sy * w + sx]
            }
        }
        return (
            PlanarImage(channels: 3, height: cropSize, width: cropSize, values: outImage),
            LabelMap(width: cropSize, height: cropSize, values: outLabels)
        )
    }
}

extension Augmentation {
    /// IRN's order (VOC12ImageDataset.__getitem__): resize the long side, normalise, flip, crop.
    /// Labels (unused by the CAM stage) follow with nearest resizing and 255 outside the image.
    func applyIRN(image: Image, labels: LabelMap, longSide: ClosedRange<Int>, generator: inout SeededGenerator) -> (
        PlanarImage, LabelMap
    ) {
        let resized = IRNTransforms.resizeLong(image, to: IRNTransforms.drawLongSide(longSide, generator: &generator))
        var labels =
            labels.width == resized.width && labels.height == resized.height
            ? labels : labels.resizedNearest(height: resized.height, width: resized.width)
        var source = resized
        if flip && generator.next() & 1 == 1 {
            source = source.flippedHorizontally()
            labels = labels.flippedHorizontally()
        }
        let box = IRNTransforms.cropBox(height: source.height, width: source.width, cropSize: cropSize) { n in
            Int(generator.next() % UInt64(n))
        }
        let planar = IRNTransforms.crop(preprocessing.normalize(source), box: box, cropSize: cropSize)
        var cropped = [UInt8](repeating: LabelMap.ignore, count: cropSize * cropSize)
        for y in 0..<box.height {
            for x in 0..<box.width {
                cropped[(box.containerTop + y) * cropSize + box.containerLeft + x] =
                    labels.values[(box.imageTop + y) * labels.width + box.imageLeft + x]
            }
        }
        return (planar, LabelMap(width: cropSize, height: cropSize, values: cropped))
    }
}

/// A training batch: images [N, 3, crop, crop] and labels [N, crop, crop].
public struct Batch: Sendable {
    public let images: Tensor
    public let labels: LabelTensor
    public let ids: [String]
    /// 0-based epoch and position of the batch within it.
    public let epoch: Int
    public let index: Int

    /// A batch: images [N, 3, H, W], labels [N, H, W] (255 = ignore).
    public init(images: Tensor, labels: LabelTensor, ids: [String], epoch: Int = 0, index: Int = 0) {
        (self.images, self.labels, self.ids, self.epoch, self.index) = (images, labels, ids, epoch, index)
    }
}
