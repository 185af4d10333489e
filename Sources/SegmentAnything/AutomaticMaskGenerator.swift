import Autograd
import Foundation
import Imaging

/// What the automatic mask generator needs of a SAM predictor (the model's `SamPredictor`
/// conforms). Mirrors the parts of `segment_anything/predictor.py` that
/// `automatic_mask_generator.py` calls: `set_image`, `original_size` and `predict_torch` with
/// `return_logits=True`.
public protocol PromptablePredictor: AnyObject {
    /// Embeds `image` (RGB, HWC, uint8, any size); later prompts refer to its pixel coordinates.
    /// - Throws: whatever the predictor throws for an unusable image.
    func setImage(_ image: Image) throws
    /// Height and width of the image last set, in pixels.
    var originalSize: (height: Int, width: Int) { get }
    /// One point prompt per row (pixel coords x, y in the image set), labels 1 = foreground.
    /// - Returns: mask logits [N, M, H, W] at that image's size (before thresholding at 0) and
    ///   IoU predictions [N, M]; M = 3 with `multimask`, else 1.
    func predictLogits(points: [(x: Float, y: Float)], labels: [Int], multimask: Bool) -> (logits: Tensor, iou: Tensor)
    /// The same prediction before upscaling, when the predictor can give it (nil otherwise, the
    /// default): the generator then upscales only the masks its IoU filter keeps, one at a time.
    /// With `iouThreshold`, masks of a prompt none of whose masks has a predicted IoU above it
    /// may be left uncomputed (the generator drops them unread).
    func predictLowResolution(points: [(x: Float, y: Float)], labels: [Int], multimask: Bool, iouThreshold: Float?)
        -> LowResolutionMasks?
}

extension PromptablePredictor {
    public func predictLowResolution(points: [(x: Float, y: Float)], labels: [Int], multimask: Bool, iouThreshold: Float?)
        -> LowResolutionMasks?
    {
        nil
    }
}

/// A prediction before `postprocessMasks`: low-resolution logits [N, M, h, w], IoU predictions
/// [N, M], and the upscaling that turns a plane into `predictLogits`'s.
public struct LowResolutionMasks {
    public let logits: Tensor
    public let iou: Tensor
    public let upscaling: MaskUpscaling

    public init(logits: Tensor, iou: Tensor, upscaling: MaskUpscaling) {
        (self.logits, self.iou, self.upscaling) = (logits, iou, upscaling)
    }
}

/// What the automatic mask generator rejects: options the official asserts on or would fail
/// with, and images it cannot use.
public enum AutomaticMaskGeneratorError: LocalizedError, Equatable {
    /// Exactly one of `pointsPerSide` and `pointGrids` must be set.
    case pointsPerSideXorPointGrids
    /// A setting outside its range (name as in the official keyword arguments).
    case invalidOption(name: String, reason: String)
    /// The point grid of a crop layer is missing or empty.
    case noPointsForLayer(Int)
    /// The image is not 3-channel RGB or is empty.
    case unsupportedImage(width: Int, height: Int, channels: Int)
    /// amg.py writes binary masks as PNG folders, not JSON.
    case binaryMasksHaveNoJSON(path: String)
    /// One prompt's masks at the crop's size alone need more memory than the process may use.
    case imageTooLarge(width: Int, height: Int, needed: Int, available: Int)

    /// One line naming the option or file and the problem.
    public var errorDescription: String? {
        switch self {
        case .pointsPerSideXorPointGrids: "exactly one of points_per_side or point_grids must be given"
        case .invalidOption(let name, let reason): "mask generator option '\(name)': \(reason)"
        case .noPointsForLayer(let layer):
            "crop layer \(layer) has no points (give a point grid per layer, or fewer layers / a smaller downscale factor)"
        case .unsupportedImage(let w, let h, let c): "mask generation needs an RGB image, got \(w)x\(h) with \(c) channels"
        case .binaryMasksHaveNoJSON(let path):
            "\(path): records in output mode binary_mask have no JSON form (use coco_rle or uncompressed_rle)"
        case .imageTooLarge(let w, let h, let needed, let available):
            "a \(w)x\(h) image: one prompt's masks at full size need \(MemoryLimit.describe(needed)), more than the "
                + "\(MemoryLimit.describe(available)) this process may use (physical memory or ulimit -v); downscale the image"
        }
    }
}

/// The forms of a record's `segmentation` (the official `output_mode`).
public enum MaskOutputMode: String, Codable, Sendable {
    /// A bitmap per mask; memory heavy for large images, as the official warns.
    case binaryMask = "binary_mask"
    /// COCO RLE with the counts as a list of integers.
    case uncompressedRLE = "uncompressed_rle"
    /// COCO RLE with pycocotools' compressed counts string (what amg.py --convert-to-rle writes).
    case cocoRLE = "coco_rle"
}

/// The keyword arguments of the official `SamAutomaticMaskGenerator.__init__`, with its defaults
/// (except `outputMode`, whose official default is binary_mask).
public struct AutomaticMaskGeneratorOptions: Equatable, Sendable {
    /// Points sampled along one side of the image (points_per_side²); nil when `pointGrids` is given.
    public var pointsPerSide: Int? = 32
    /// Explicit point grids in [0, 1]², one per crop layer (exclusive with `pointsPerSide`).
    public var pointGrids: [[PointXY]]? = nil
    /// Points run through the predictor at once.
    public var pointsPerBatch = 64
    /// Masks with a predicted IoU not above this are dropped (0 disables the filter).
    public var predIoUThresh = 0.88
    /// Masks with a stability score below this are dropped (0 disables the filter).
    public var stabilityScoreThresh = 0.95
    /// Shift of the logit cutoff for the stability score.
    public var stabilityScoreOffset = 1.0
    /// Box IoU above which NMS drops duplicates within a crop.
    public var boxNMSThresh = 0.7
    /// Crop layers beyond the whole image; layer i has (2^i)² crops.
    public var cropNLayers = 0
    /// Box IoU above which NMS drops duplicates between crops.
    public var cropNMSThresh = 0.7
    /// Overlap of first-layer crops as a fraction of the short side (later layers scale it down).
    /// Must be in [0, 1) (the official does not check; larger values make degenerate crops).
    public var cropOverlapRatio = 512.0 / 1500.0
    /// Layer i samples pointsPerSide / factor^i points a side.
    public var cropNPointsDownscaleFactor = 1
    /// When > 0, holes and islands smaller than this (pixels) are removed, then NMS reruns.
    public var minMaskRegionArea = 0
    /// The form of each record's `segmentation`.
    public var outputMode = MaskOutputMode.cocoRLE
    /// The model's `mask_threshold` (0.0 for SAM): logits above it are inside the mask.
    public var maskThreshold = 0.0

    /// The official defaults.
    public init() {}
}

/// A record's mask in the chosen output mode.
public enum MaskSegmentation: Equatable, Sendable {
    /// The bitmap (output_mode binary_mask).
    case binaryMask(BinaryMask)
    /// `size` is [height, width]; counts column-major, starting with 0s (uncompressed_rle).
    case uncompressedRLE(size: [Int], counts: [Int])
    /// `size` is [height, width]; pycocotools' compressed counts string (coco_rle).
    case cocoRLE(size: [Int], counts: String)
}

/// One generated mask: the official record's keys (`generate`'s list of dicts).
public struct MaskRecord: Equatable, Sendable {
    /// The mask in the options' output mode.
    public var segmentation: MaskSegmentation
    /// The mask as column-major runs at the image size (always kept; compact).
    public var mask: SegmentMask
    /// Pixels in the mask.
    public var area: Int
    /// Box around the mask, XYWH, with w = last column - first column (the official's).
    public var bbox: [Int]
    /// The model's IoU prediction (float32, as the official's tensor).
    public var predictedIoU: Float
    /// The prompt point in image pixels (the official's list of one [x, y]).
    public var pointCoords: [PointXY]
    /// The stability score (float32).
    public var stabilityScore: Float
    /// The crop that produced the mask, XYWH.
    public var cropBox: [Int]
    /// Whether amg.py writes `bbox` as floats (`95.0`): torch.cat promotes the int64 boxes to
    /// float32 when a batch kept no mask after the IoU and stability filters
    /// (`batched_mask_to_box` of an empty tensor is float zeros). Same for every record of an image.
    public var bboxIsFloat = false
    /// Whether amg.py writes `crop_box` as floats: a crop that kept no mask contributes
    /// `torch.tensor([])` (float32), promoting all crop boxes when there are several crops.
    public var cropBoxIsFloat = false
}

/// The official generator's batched mask data (`MaskData`) for the fields the generator keeps;
/// masks as runs at the original image size.
struct MaskData {
    var masks: [SegmentMask] = []
    var boxes: [BoxXYXY] = []
    var iouPreds: [Float] = []
    var points: [PointXY] = []
    var stabilityScores: [Float] = []
    var cropBoxes: [BoxXYXY] = []
    /// The official tensors' dtypes where they change what json.dump writes (see `MaskRecord`).
    var boxesAreFloat = false
    var cropBoxesAreFloat = false

    var count: Int { masks.count }

    /// `MaskData.filter` with an index list: keeps and reorders.
    mutating func filter(_ keep: [Int]) {
        masks = keep.map { masks[$0] }
        boxes = keep.map { boxes[$0] }
        iouPreds = keep.map { iouPreds[$0] }
        points = keep.map { points[$0] }
        stabilityScores = keep.map { stabilityScores[$0] }
        cropBoxes = keep.map { cropBoxes[$0] }
    }

    /// `MaskData.cat`.
    mutating func append(_ other: MaskData) {
        masks += other.masks
        boxes += other.boxes
        iouPreds += other.iouPreds
        points += other.points
        stabilityScores += other.stabilityScores
        cropBoxes += other.cropBoxes
        boxesAreFloat = boxesAreFloat || other.boxesAreFloat
        cropBoxesAreFloat = cropBoxesAreFloat || other.cropBoxesAreFloat
    }
}

/// The official `SamAutomaticMaskGenerator` (segment_anything/automatic_mask_generator.py): point
/// grids over the image and its crops, prompted in batches; masks filtered by predicted IoU,
/// stability and crop edges; duplicates removed by box NMS within and across crops; optional
/// removal of small holes and islands.
///
/// Memory: each batch's logits are reduced at once to kept masks as column-major runs, so at
/// most one batch of logits (`pointsPerBatch` x 3 x crop size floats, the predictor's) is alive.
public final class AutomaticMaskGenerator {
    /// The predictor prompted for every crop.
    public let predictor: PromptablePredictor
    /// The settings.
    public let options: AutomaticMaskGeneratorOptions
    /// The point grid of each crop layer, in [0, 1]².
    public let pointGrids: [[PointXY]]

    /// - Throws: `AutomaticMaskGeneratorError` for inconsistent options (what the official asserts).
    public init(predictor: PromptablePredictor, options: AutomaticMaskGeneratorOptions = AutomaticMaskGeneratorOptions()) throws {
        typealias E = AutomaticMaskGeneratorError
        let o = options
        guard (o.pointsPerSide == nil) != (o.pointGrids == nil) else { throw E.pointsPerSideXorPointGrids }
        guard o.pointsPerBatch >= 1 else { throw E.invalidOption(name: "points_per_batch", reason: "must be at least 1") }
        // Crop layer i has (2^i)² crops, each a full image embedding: the official uses 0 or 1.
        guard o.cropNLayers >= 0 && o.cropNLayers <= Self.maximumCropLayers else {
            throw E.invalidOption(name: "crop_n_layers", reason: "must be in 0…\(Self.maximumCropLayers), got \(o.cropNLayers)")
        }
        guard o.cropNPointsDownscaleFactor >= 1 else {
            throw E.invalidOption(name: "crop_n_points_downscale_factor", reason: "must be at least 1")
        }
        guard o.cropOverlapRatio >= 0 && o.cropOverlapRatio < 1 else {
            throw E.invalidOption(name: "crop_overlap_ratio", reason: "must be in [0, 1)")
        }
        guard o.minMaskRegionArea >= 0 else {
            throw E.invalidOption(name: "min_mask_region_area", reason: "must not be negative")
        }
        // NaN passes no comparison: a NaN threshold would keep or drop every mask without a word.
        for (name, value) in [
            ("pred_iou_thresh", o.predIoUThresh), ("stability_score_thresh", o.stabilityScoreThresh),
            ("stability_score_offset", o.stabilityScoreOffset), ("box_nms_thresh", o.boxNMSThresh),
            ("crop_nms_thresh", o.cropNMSThresh), ("mask_threshold", o.maskThreshold),
        ] where !value.isFinite {
            throw E.invalidOption(name: name, reason: "must be a finite number, got \(value)")
        }
        // Box IoUs are at most 1: an NMS threshold above 1 keeps every duplicate. (Score thresholds
        // above 1 drop every mask; the official accepts them, and so does the library — the
        // commands and recipes refuse them.)
        for (name, value) in [("box_nms_thresh", o.boxNMSThresh), ("crop_nms_thresh", o.cropNMSThresh)]
        where !(0...1).contains(value) {
            throw E.invalidOption(name: name, reason: "must be in [0, 1], got \(value)")
        }
        if let n = o.pointsPerSide {
            guard n >= 1 && n <= Self.maximumPointsPerSide else {
                throw E.invalidOption(
                    name: "points_per_side",
                    reason: "must be in 1…\(Self.maximumPointsPerSide) (the official default is 32), got \(n)")
            }
            pointGrids = AMG.buildAllLayerPointGrids(
                nPerSide: n, nLayers: o.cropNLayers, scalePerLayer: o.cropNPointsDownscaleFactor)
        } else {
            pointGrids = o.pointGrids ?? []
        }
        for layer in 0...o.cropNLayers where layer >= pointGrids.count || pointGrids[layer].isEmpty {
            throw E.noPointsForLayer(layer)
        }
        self.predictor = predictor
        self.options = options
    }

    /// The largest `points_per_side` accepted (a grid of 1024² prompts; the official uses 32).
    public static let maximumPointsPerSide = 1024
    /// The most crop layers accepted (layer i has (2^i)² crops; the official uses 0 or 1).
    public static let maximumCropLayers = 5

    /// Prompts decoded at once on a crop: `points_per_batch`, fewer when a batch of full-size
    /// logits (and the 1024² upscaled ones before the crop) would take more than a quarter of
    /// the memory this process may use. Batching changes memory, not results.
    /// - Throws: `AutomaticMaskGeneratorError.imageTooLarge` when even one prompt does not fit.
    func promptsPerBatch(cropWidth w: Int, cropHeight h: Int, masksPerPrompt: Int = 3) throws -> Int {
        let size = 1024  // the official models' input side, where the low-resolution masks are upscaled first
        let perPrompt = MemoryLimit.bytes(masksPerPrompt, max(w * h, 1) + size * size, MemoryLayout<Float>.size)
        let available = MemoryLimit.available
        guard perPrompt <= available / 2 else {
            throw AutomaticMaskGeneratorError.imageTooLarge(width: w, height: h, needed: perPrompt, available: available)
        }
        return max(1, min(options.pointsPerBatch, available / 4 / max(perPrompt, 1)))
    }

    /// `generate`: the masks of `image` (RGB), in the official's order.
    /// - Throws: `AutomaticMaskGeneratorError.unsupportedImage`, or what the predictor throws.
    public func generate(_ image: Image) throws -> [MaskRecord] {
        guard image.channels == 3 && image.width > 0 && image.height > 0 else {
            throw AutomaticMaskGeneratorError.unsupportedImage(width: image.width, height: image.height, channels: image.channels)
        }
        var data = try generateMasks(image)
        if options.minMaskRegionArea > 0 {
            data = Self.postprocessSmallRegions(
                data, minArea: options.minMaskRegionArea, nmsThresh: max(options.boxNMSThresh, options.cropNMSThresh))
        }
        return (0..<data.count).map { k in
            let mask = data.masks[k]
            let segmentation: MaskSegmentation
            switch options.outputMode {
            case .binaryMask: segmentation = .binaryMask(BinaryMask(mask))
            case .uncompressedRLE: segmentation = .uncompressedRLE(size: [mask.height, mask.width], counts: AMG.maskToRLE(mask))
            case .cocoRLE:
                segmentation = .cocoRLE(size: [mask.height, mask.width], counts: AMG.cocoEncodeRLE(AMG.maskToRLE(mask)))
            }
            return MaskRecord(
                segmentation: segmentation, mask: mask, area: mask.area, bbox: AMG.boxXYXYToXYWH(data.boxes[k]),
                predictedIoU: data.iouPreds[k], pointCoords: [data.points[k]], stabilityScore: data.stabilityScores[k],
                cropBox: AMG.boxXYXYToXYWH(data.cropBoxes[k]), bboxIsFloat: data.boxesAreFloat,
                cropBoxIsFloat: data.cropBoxesAreFloat)
        }
    }

    /// `_generate_masks`: every crop, then NMS across crops preferring smaller crops.
    func generateMasks(_ image: Image) throws -> MaskData {
        let origSize = (height: image.height, width: image.width)
        let (cropBoxes, layers) = AMG.generateCropBoxes(
            imageSize: origSize, nLayers: options.cropNLayers, overlapRatio: options.cropOverlapRatio)
        var data = MaskData()
        for (cropBox, layer) in zip(cropBoxes, layers) {
            data.append(try processCrop(image, cropBox: cropBox, layer: layer, origSize: origSize))
        }
        if cropBoxes.count > 1 && data.count > 0 {
            // 1 / box_area(crop_boxes): torch.reciprocal of int64 areas, in float32.
            let scores = data.cropBoxes.map { 1 / Float($0.area) }
            data.filter(AMG.batchedNMS(boxes: data.boxes, scores: scores, iouThreshold: options.cropNMSThresh))
        }
        return data
    }

    /// `_process_crop`: embeds the crop, runs its point grid in batches, NMS by predicted IoU,
    /// then moves boxes and points to the image frame.
    /// Most bytes of freed decoder activations kept for reuse while a crop is processed.
    static let bufferReuse = 512 << 20

    func processCrop(_ image: Image, cropBox: BoxXYXY, layer: Int, origSize: (height: Int, width: Int)) throws -> MaskData {
        let crop = Self.cropped(image, to: cropBox)
        try predictor.setImage(crop)
        // points_scale = [crop width, crop height]; float64 as NumPy.
        let points = pointGrids[layer].map { PointXY(x: $0.x * Double(crop.width), y: $0.y * Double(crop.height)) }
        var data = MaskData()
        var boxesInCrop: [BoxXYXY] = []
        let perBatch = try promptsPerBatch(cropWidth: crop.width, cropHeight: crop.height)
        // One buffer-reuse scope over the crop's batches: the decoder's large activations and the
        // heap top stay mapped from batch to batch instead of being zeroed afresh by the kernel
        // (a tenth of the generator's time when each decoder call had its own scope).
        TensorStorage.reusingLargeBuffers(limit: Self.bufferReuse) {
            for start in stride(from: 0, to: points.count, by: perBatch) {
                let batch = Array(points[start..<min(start + perBatch, points.count)])
                let (batchData, cropFrameBoxes) = processBatch(
                    batch, cropSize: (crop.height, crop.width), cropBox: cropBox, origSize: origSize)
                data.append(batchData)
                boxesInCrop += cropFrameBoxes
            }
        }
        data.filter(AMG.batchedNMS(boxes: boxesInCrop, scores: data.iouPreds, iouThreshold: options.boxNMSThresh))
        if data.count == 0 { data.cropBoxesAreFloat = true }
        data.boxes = data.boxes.map { AMG.uncropBoxesXYXY($0, cropBox: cropBox) }
        data.points = data.points.map { AMG.uncropPoints($0, cropBox: cropBox) }
        return data
    }

    /// One mask candidate of a batch after the filters (crop-frame box).
    private struct Candidate {
        var runs: [Range<Int32>]
        var box: BoxXYXY
        var iou: Float
        var stability: Float
        var point: PointXY
    }

    /// `_process_batch`: prompts one batch, filters by predicted IoU and stability, thresholds,
    /// boxes, drops masks at crop edges, and keeps the rest as runs in the image frame. Masks are
    /// independent, so they are reduced in parallel; the order stays the official (point-major).
    /// - Returns: the kept masks (boxes here still in the crop frame, points in crop pixels) and
    ///   their crop-frame boxes.
    func processBatch(
        _ points: [PointXY], cropSize: (height: Int, width: Int), cropBox: BoxXYXY, origSize: (height: Int, width: Int)
    )
        -> (MaskData, [BoxXYXY])
    {
        let prompts = points.map { (x: Float($0.x), y: Float($0.y)) }
        let labels = [Int](repeating: 1, count: points.count)
        let (h, w) = cropSize
        // Masks at or below the IoU threshold are dropped unread: the predictor may skip them.
        let threshold = options.predIoUThresh > 0 ? Float(options.predIoUThresh) : nil
        if let low = predictor.predictLowResolution(points: prompts, labels: labels, multimask: true, iouThreshold: threshold) {
            let (logits, iou, upscaling) = (low.logits, low.iou, low.upscaling)
            precondition(
                logits.rank == 4 && logits.shape[0] == points.count && iou.shape == [points.count, logits.shape[1]]
                    && upscaling.originalSize == cropSize
                    && (upscaling.lowResSize.height, upscaling.lowResSize.width) == (logits.shape[2], logits.shape[3]),
                "predictLowResolution: logits \(logits.shape), iou \(iou.shape) for \(points.count) points on a \(h)x\(w) crop")
            let plane = logits.shape[2] * logits.shape[3]
            // Only masks that pass the IoU filter are upscaled, each into the thread's buffer.
            return select(
                points, masksPerPoint: logits.shape[1], ious: iou, cropSize: cropSize, cropBox: cropBox, origSize: origSize,
                scratch: h * w + upscaling.scratchCount
            ) { k, buffer in
                upscaling.apply(logits.storage.base + k * plane, into: buffer, scratch: buffer + h * w)
                return UnsafePointer(buffer)
            }
        }
        let (logits, iou) = predictor.predictLogits(points: prompts, labels: labels, multimask: true)
        precondition(
            logits.rank == 4 && logits.shape[0] == points.count && logits.shape[2] == h && logits.shape[3] == w,
            "predictLogits: logits \(logits.shape) for \(points.count) points on a \(h)x\(w) crop")
        precondition(iou.shape == [points.count, logits.shape[1]], "predictLogits: iou \(iou.shape), logits \(logits.shape)")
        return select(
            points, masksPerPoint: logits.shape[1], ious: iou, cropSize: cropSize, cropBox: cropBox, origSize: origSize,
            scratch: 0
        ) { k, _ in UnsafePointer(logits.storage.base + k * h * w) }
    }

    /// The filters of `_process_batch` on each mask's logits at crop size (given by `mask(k,
    /// buffer)`, which may fill the thread's `scratch`-float buffer): predicted IoU first, then
    /// stability, the crop-edge test, and the runs of what is kept. Masks are independent and
    /// shared out between threads in turn; the order stays the official (point-major).
    private func select(
        _ points: [PointXY], masksPerPoint m: Int, ious iou: Tensor, cropSize: (height: Int, width: Int), cropBox: BoxXYXY,
        origSize: (height: Int, width: Int), scratch: Int,
        mask: (Int, UnsafeMutablePointer<Float>) -> UnsafePointer<Float>
    ) -> (MaskData, [BoxXYXY]) {
        let (h, w) = cropSize
        let o = options
        let predIoUThresh = Float(o.predIoUThresh)  // float32 tensor > Python float compares in float32
        let stabilityThresh = Float(o.stabilityScoreThresh)
        let maskThreshold = Float(o.maskThreshold)
        let origBox = BoxXYXY(x0: 0, y0: 0, x1: origSize.width, y1: origSize.height)
        let total = points.count * m
        var candidates = [Candidate?](repeating: nil, count: total)
        var passedScores = [Bool](repeating: false, count: total)
        let ious = iou.storage.base
        let threads = max(1, min(Runtime.threads, total))
        candidates.withUnsafeMutableBufferPointer { out in
            passedScores.withUnsafeMutableBufferPointer { passed in
                parallelFor(threads) { range in
                    let buffer = UnsafeMutablePointer<Float>.allocate(capacity: max(scratch, 1))
                    defer { buffer.deallocate() }
                    for thread in range {
                        for k in stride(from: thread, to: total, by: threads) {
                            let score = ious[k]
                            if o.predIoUThresh > 0 && !(score > predIoUThresh) { continue }
                            let logits = mask(k, buffer)
                            let stability = AMG.stabilityScore(
                                logits: logits, height: h, width: w, maskThreshold: o.maskThreshold,
                                offset: o.stabilityScoreOffset)
                            if o.stabilityScoreThresh > 0 && !(stability >= stabilityThresh) { continue }
                            passed[k] = true
                            let box = Self.box(of: logits, height: h, width: w, threshold: maskThreshold)
                            if AMG.isBoxNearCropEdge(box, cropBox: cropBox, origBox: origBox) { continue }
                            let runs = Self.runs(
                                of: logits, height: h, width: w, threshold: maskThreshold, cropBox: cropBox,
                                origHeight: origSize.height)
                            out[k] = Candidate(runs: runs, box: box, iou: score, stability: stability, point: points[k / m])
                        }
                    }
                }
            }
        }
        var data = MaskData()
        data.boxesAreFloat = !passedScores.contains(true)
        var boxes: [BoxXYXY] = []
        for case let c? in candidates {
            data.masks.append(SegmentMask(width: origSize.width, height: origSize.height, runs: c.runs))
            data.boxes.append(c.box)
            data.iouPreds.append(c.iou)
            data.points.append(c.point)
            data.stabilityScores.append(c.stability)
            data.cropBoxes.append(cropBox)
            boxes.append(c.box)
        }
        return (data, boxes)
    }

    /// `batched_mask_to_box` of `logits > threshold` (inclusive ends; [0, 0, 0, 0] when empty).
    static func box(of logits: UnsafePointer<Float>, height: Int, width: Int, threshold: Float) -> BoxXYXY {
        var (x0, y0, x1, y1) = (Int.max, Int.max, -1, -1)
        for y in 0..<height {
            let row = logits + y * width
            var first = -1
            var last = -1
            for x in 0..<width where row[x] > threshold {
                if first < 0 { first = x }
                last = x
            }
            if first >= 0 {
                (y0, y1) = (min(y0, y), y)
                (x0, x1) = (min(x0, first), max(x1, last))
            }
        }
        return x1 < 0 ? BoxXYXY(x0: 0, y0: 0, x1: 0, y1: 0) : BoxXYXY(x0: x0, y0: y0, x1: x1, y1: y1)
    }

    /// `uncrop_masks` then `mask_to_rle_pytorch`, without the padded bitmap: the column-major runs
    /// of `logits > threshold` placed at the crop's origin in an image `origHeight` tall.
    static func runs(
        of logits: UnsafePointer<Float>, height: Int, width: Int, threshold: Float, cropBox: BoxXYXY, origHeight: Int
    ) -> [Range<Int32>] {
        var builder = ColumnRunBuilder(height: origHeight)
        for x in 0..<width {
            let column = (x + cropBox.x0) * origHeight + cropBox.y0
            var y = 0
            while y < height {
                while y < height && !(logits[y * width + x] > threshold) { y += 1 }
                let start = y
                while y < height && logits[y * width + x] > threshold { y += 1 }
                builder.add(range: (column + start)..<(column + y))
            }
        }
        return builder.finished
    }

    /// `postprocess_small_regions`: fills small holes, drops small islands, then NMS with score 1
    /// for unchanged and 0 for changed masks; kept changed masks take their new runs and box.
    static func postprocessSmallRegions(_ data: MaskData, minArea: Int, nmsThresh: Double) -> MaskData {
        if data.count == 0 { return data }
        var newMasks = [SegmentMask?](repeating: nil, count: data.count)
        var boxes = [BoxXYXY](repeating: BoxXYXY(x0: 0, y0: 0, x1: 0, y1: 0), count: data.count)
        var scores = [Float](repeating: 0, count: data.count)
        newMasks.withUnsafeMutableBufferPointer { newMasks in
            boxes.withUnsafeMutableBufferPointer { boxes in
                scores.withUnsafeMutableBufferPointer { scores in
                    parallelFor(data.count) { range in
                        for k in range {
                            let (filled, holesChanged) = AMG.removeSmallRegions(
                                data.masks[k], areaThreshold: Double(minArea), mode: .holes)
                            let (mask, islandsChanged) = AMG.removeSmallRegions(
                                filled, areaThreshold: Double(minArea), mode: .islands)
                            let unchanged = !holesChanged && !islandsChanged
                            boxes[k] = AMG.batchedMaskToBox(mask)
                            scores[k] = unchanged ? 1 : 0
                            if !unchanged { newMasks[k] = mask }
                        }
                    }
                }
            }
        }
        let keep = AMG.batchedNMS(boxes: boxes, scores: scores, iouThreshold: nmsThresh)
        var out = data
        for k in keep {
            if let mask = newMasks[k] {
                out.masks[k] = mask
                out.boxes[k] = boxes[k]
            }
        }
        out.filter(keep)
        return out
    }

    /// `image[y0:y1, x0:x1, :]`.
    static func cropped(_ image: Image, to box: BoxXYXY) -> Image {
        if box == BoxXYXY(x0: 0, y0: 0, x1: image.width, y1: image.height) { return image }
        let (w, c) = (box.x1 - box.x0, image.channels)
        var pixels = [UInt8](repeating: 0, count: w * (box.y1 - box.y0) * c)
        for y in box.y0..<box.y1 {
            let src = (y * image.width + box.x0) * c
            let dst = (y - box.y0) * w * c
            pixels.replaceSubrange(dst..<(dst + w * c), with: image.pixels[src..<(src + w * c)])
        }
        return Image(width: w, height: box.y1 - box.y0, channels: c, pixels: pixels)
    }
}
