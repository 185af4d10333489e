import Autograd
import Foundation
import Imaging

// segment_anything/predictor.py.

/// What a prediction returns (predictor.py's three arrays). Single-prompt `predict` gives
/// [M, …] tensors; the batched calls [N, M, …] with one row per prompt.
public struct SAMPrediction {
    /// At the original image size, [(N,) M, H, W]: mask logits when `returnLogits`, otherwise
    /// 1 where the logit exceeds `SAM.maskThreshold` (0) and 0 elsewhere.
    public let masks: Tensor
    /// The model's estimate of each mask's IoU, [(N,) M].
    public let iouPredictions: Tensor
    /// Logits at the decoder's resolution, [(N,) M, 4h, 4w] (256 x 256 officially); one of them
    /// can be the `maskInput` of a later prediction.
    public let lowResLogits: Tensor
}

extension SAMPrediction {
    /// Each mask as a row-major bitmap, over the leading axes in order ((n, m) at n·M + m):
    /// true where the mask is 1, or the logit is above `SAM.maskThreshold` with `returnLogits`.
    public func bitmaps() -> [[Bool]] {
        let plane = masks.shape.suffix(2).product
        let values = masks.scalars
        return stride(from: 0, to: values.count, by: max(plane, 1)).map { start in
            values[start..<(start + plane)].map { $0 > SAM.maskThreshold }
        }
    }

    /// The masks as segment proposals (PseudoLabels), each with its predicted IoU, in the order
    /// of `bitmaps()`.
    public func segmentMasks() -> [SegmentMask] {
        let (height, width) = (masks.shape[masks.rank - 2], masks.shape[masks.rank - 1])
        let ious = iouPredictions.scalars
        return bitmaps().enumerated().map { index, bitmap in
            var mask = SegmentMask(width: width, height: height, bitmap: bitmap)
            mask.predictedIoU = ious[index]
            return mask
        }
    }
}

/// A prediction request the predictor cannot serve.
public enum SAMPredictorError: LocalizedError, Equatable {
    /// `predict` before `setImage` (the reference raises RuntimeError).
    case noImage
    /// An image with no pixels.
    case emptyImage
    /// Point coordinates and labels of different counts.
    case labelCount(points: Int, labels: Int)
    /// A mask input not of the decoder's low-res size.
    case maskInputShape(got: [Int], expected: [Int])
    /// Batched prompts whose batch sizes differ.
    case batchSizes([Int])
    /// Boxes not of shape [N, 4].
    case boxShape([Int])
    /// A batched call without any prompt.
    case emptyBatch

    public var errorDescription: String? {
        switch self {
        case .noImage: "an image must be set with setImage(_:) before mask prediction"
        case .emptyImage: "the image has no pixels"
        case .labelCount(let points, let labels): "\(points) point(s) but \(labels) label(s)"
        case .maskInputShape(let got, let expected): "mask input of shape \(got), expected \(expected)"
        case .batchSizes(let sizes): "batched prompts of different batch sizes \(sizes) (points, boxes, masks)"
        case .boxShape(let shape): "boxes of shape \(shape), expected [N, 4]"
        case .emptyBatch: "no prompts to predict masks for"
        }
    }
}

/// Computes an image's embedding once and predicts masks for any number of prompts on it
/// (predictor.py, `SamPredictor`). Prompts are given in pixels of the original image, except
/// for `predictBatch`, which takes them in the model's input frame as `predict_torch` does.
/// Runs without a tape.
public final class SAMPredictor {
    /// The model predictions run on.
    public let model: SAM
    /// Resizes images and prompts to the model's input side.
    public let transform: ResizeLongestSide
    /// The image embedding [1, C, h, w], nil before `setImage`.
    public private(set) var features: Tensor?
    /// SAM-HQ: the encoder's early features [1, s, s, width] for the HQ decoder (a ViT's first
    /// global block's output, TinyViT's stage 1 output).
    public private(set) var intermediateFeatures: Tensor?
    /// `get_dense_pe()` for the current image: the same plane for every prompt, so computed once
    /// per image instead of per decoder call (the generator's 16 batches each recomputed its
    /// 512k sines and cosines).
    private var densePE: Tensor?
    /// The decoder's first-block image side for prompts without a mask input, made on the first
    /// thresholded decode of an image (`TwoWayTransformer.SharedImage`; the generator's 128
    /// decoder calls per crop each projected the same 4096 image tokens three times).
    private var sharedImage: TwoWayTransformer.SharedImage?
    /// SAM-HQ: `MaskDecoder.hqImageFeatures` of the current image, made on its first thresholded
    /// decode (the same for every prompt).
    private var hqImageFeatures: Tensor?
    /// SAM-HQ: predict the HQ token's mask alone instead of SAM's best mask plus it
    /// (`hq_token_only`, default false as the official `predict`); the model's setting.
    public var hqTokenOnly: Bool {
        get { model.hqTokenOnly }
        set { model.hqTokenOnly = newValue }
    }
    /// The image as given (height, width).
    public private(set) var originalSize: (height: Int, width: Int) = (0, 0)
    /// The resized image inside the padded input (height, width).
    public private(set) var inputSize: (height: Int, width: Int) = (0, 0)

    /// A predictor for `model`, without an image.
    public init(model: SAM) {
        self.model = model
        transform = ResizeLongestSide(targetLength: model.imageSize)
    }

    /// Whether an image embedding is ready.
    public var isImageSet: Bool { features != nil }

    /// Forgets the current image.
    public func resetImage() {
        features = nil
        intermediateFeatures = nil
        densePE = nil
        sharedImage = nil
        hqImageFeatures = nil
        originalSize = (0, 0)
        inputSize = (0, 0)
    }

    /// Embeds `image` (`set_image`): resized with `ResizeLongestSide`, normalised, padded and
    /// run through the image encoder.
    /// - Parameter image: 8-bit RGB, HWC, any size (grey is replicated and alpha dropped first).
    /// - Throws: `SAMPredictorError.emptyImage` for an image without pixels.
    public func setImage(_ image: Image) throws {
        guard image.width > 0 && image.height > 0 else { throw SAMPredictorError.emptyImage }
        let resized = transform.applyImage(image.rgb())
        // HWC bytes → [1, 3, h, w] floats, as torch.as_tensor(...).permute(2, 0, 1)[None].
        let (h, w) = (resized.height, resized.width)
        let x = Tensor(uninitialized: [1, 3, h, w])
        resized.pixels.withUnsafeBufferPointer { src in
            let dst = x.storage.base
            for i in 0..<(h * w) {
                for c in 0..<3 { dst[c * h * w + i] = Float(src[i * 3 + c]) }
            }
        }
        setTransformedImage(x, originalSize: (image.height, image.width))
    }

    /// Embeds an image already resized by `transform` (`set_torch_image`).
    /// - Parameter transformed: [1, 3, h, w] in 0…255 with max(h, w) = the model's image size.
    public func setTransformedImage(_ transformed: Tensor, originalSize: (height: Int, width: Int)) {
        precondition(
            transformed.rank == 4 && transformed.shape[0] == 1 && transformed.shape[1] == 3
                && max(transformed.shape[2], transformed.shape[3]) == model.imageSize,
            "setTransformedImage: input \(transformed.shape) must be [1, 3, h, w] with long side \(model.imageSize)")
        resetImage()
        self.originalSize = originalSize
        inputSize = (transformed.shape[2], transformed.shape[3])
        // In bf16 every product of the encoder takes bf16 inputs (attention too, as autocast).
        Kernels.withProducts(in: model.precision) {
            if model.maskDecoder.hq != nil {
                (features, intermediateFeatures) = withoutGrad {
                    model.imageEncoder.embeddingAndHQFeatures(model.preprocess(transformed))
                }
            } else {
                features = withoutGrad { model.imageEncoder(model.preprocess(transformed)) }
            }
        }
        densePE = withoutGrad { model.promptEncoder.densePositionalEncoding() }
    }

    /// Masks for one prompt on the current image (`predict`).
    /// - Parameters:
    ///   - points: (x, y) in pixels of the original image, with `labels` (1 foreground, 0 background).
    ///   - box: (x0, y0, x1, y1) in pixels of the original image.
    ///   - maskInput: [1, 4h, 4w] logits, typically a previous prediction's `lowResLogits` row.
    ///   - multimaskOutput: three masks (for ambiguous prompts such as one point) or one.
    ///   - returnLogits: return logits instead of 0/1 masks.
    /// - Returns: masks [M, H, W], IoU predictions [M], low-res logits [M, 4h, 4w].
    /// - Throws: `SAMPredictorError` without an image, for mismatched labels or mask shapes.
    public func predict(
        points: [(x: Float, y: Float)]? = nil, labels: [Int]? = nil, box: (x0: Float, y0: Float, x1: Float, y1: Float)? = nil,
        maskInput: Tensor? = nil, multimaskOutput: Bool = true, returnLogits: Bool = false
    ) throws -> SAMPrediction {
        guard isImageSet else { throw SAMPredictorError.noImage }
        var pointPrompts: PointPrompts?
        if let points {
            let labels = labels ?? []
            guard labels.count == points.count else {
                throw SAMPredictorError.labelCount(points: points.count, labels: labels.count)
            }
            pointPrompts = PointPrompts(coordinates: inputFrame(points), labels: labels)
        }
        let boxes = box.map { inputFrame(boxes: [$0]) }
        var masks: Tensor?
        if let maskInput {
            let expected = [1, model.promptEncoder.maskInputSize.height, model.promptEncoder.maskInputSize.width]
            guard maskInput.shape == expected else {
                throw SAMPredictorError.maskInputShape(got: maskInput.shape, expected: expected)
            }
            masks = maskInput.reshaped(to: [1] + expected)
        }
        let batch = try predictBatch(
            points: pointPrompts, boxes: boxes, maskInput: masks, multimaskOutput: multimaskOutput, returnLogits: returnLogits)
        func first(_ t: Tensor) -> Tensor { t.reshaped(to: Array(t.shape.dropFirst())) }
        return SAMPrediction(
            masks: first(batch.masks), iouPredictions: first(batch.iouPredictions), lowResLogits: first(batch.lowResLogits))
    }

    /// Masks for one box per row, each prompt alone (the batched `predict_torch` over boxes
    /// transformed with `apply_boxes_torch`).
    /// - Parameter boxes: (x0, y0, x1, y1) in pixels of the original image.
    /// - Returns: masks [N, M, H, W], IoU predictions [N, M], low-res logits [N, M, 4h, 4w].
    public func predict(
        boxes: [(x0: Float, y0: Float, x1: Float, y1: Float)], multimaskOutput: Bool = false, returnLogits: Bool = false
    ) throws -> SAMPrediction {
        try predictBatch(
            points: nil, boxes: inputFrame(boxes: boxes), maskInput: nil, multimaskOutput: multimaskOutput,
            returnLogits: returnLogits)
    }

    /// One single-point prompt per row, as the automatic mask generator's `_process_batch` calls
    /// `predict_torch`: coordinates mapped by `apply_coords`, shaped [N, 1, 2], labels [N, 1],
    /// `return_logits=True`.
    /// - Parameters:
    ///   - points: (x, y) in pixels of the image last set.
    ///   - labels: one label per point (the generator passes 1).
    /// - Returns: mask logits [N, M, H, W] at the image size and IoU predictions [N, M].
    public func predictLogits(points: [(x: Float, y: Float)], labels: [Int], multimask: Bool) -> (logits: Tensor, iou: Tensor) {
        precondition(isImageSet, "predictLogits: no image set (call setImage first)")
        precondition(
            !points.isEmpty && labels.count == points.count, "predictLogits: \(points.count) points and \(labels.count) labels")
        let prompts = PointPrompts(coordinates: inputFrame(points).reshaped(to: [points.count, 1, 2]), labels: labels)
        let out = forward(points: prompts, boxes: nil, maskInput: nil, multimaskOutput: multimask)
        return (out.masks, out.iouPredictions)
    }

    /// `predictLogits` without the upscaling: the decoder's low-resolution logits [N, M, 4h, 4w],
    /// IoU predictions [N, M] and how to upscale a plane as `predictLogits` would; with
    /// `iouThreshold`, a prompt none of whose masks has a predicted IoU above it gets zero
    /// logits, not computed (`MaskDecoder`'s `iouThreshold`). The prompts
    /// run through the decoder `decoderChunk` at a time (prompts are independent: the same
    /// masks, though a product over fewer rows may round a score's last bit differently), so its
    /// activations stay small and recur in size.
    public func predictLowResolution(
        points: [(x: Float, y: Float)], labels: [Int], multimask: Bool, iouThreshold: Float?
    ) -> LowResolutionMasks? {
        precondition(isImageSet, "predictLowResolution: no image set (call setImage first)")
        precondition(
            !points.isEmpty && labels.count == points.count,
            "predictLowResolution: \(points.count) points and \(labels.count) labels")
        var logits: [Tensor] = [], ious: [Tensor] = []
        for start in stride(from: 0, to: points.count, by: Self.decoderChunk) {
            let range = start..<min(start + Self.decoderChunk, points.count)
            let coordinates = inputFrame(Array(points[range])).reshaped(to: [range.count, 1, 2])
            let out = decode(
                points: PointPrompts(coordinates: coordinates, labels: Array(labels[range])), multimask: multimask,
                iouThreshold: iouThreshold)
            logits.append(out.lowRes)
            ious.append(out.iou)
        }
        let lowRes = logits.count == 1 ? logits[0] : Tensor.concat(logits, alongAxis: 0)
        let upscaling = model.maskUpscaling(
            lowResSize: (lowRes.shape[2], lowRes.shape[3]), inputSize: inputSize, originalSize: originalSize)
        return LowResolutionMasks(
            logits: lowRes, iou: ious.count == 1 ? ious[0] : Tensor.concat(ious, alongAxis: 0), upscaling: upscaling)
    }

    /// Prompts per mask-decoder call in `predictLowResolution`: at 8, ViT-B's largest decoder
    /// activations are tens of MB (64 prompts: 268–537 MB, each mapped and zeroed afresh).
    public static let decoderChunk = 8

    /// Masks for a batch of prompts in the model's input frame (`predict_torch`): points and
    /// boxes already mapped by `transform`.
    /// - Parameters:
    ///   - points: [N, P, 2] coordinates with N·P labels.
    ///   - boxes: [N, 4].
    ///   - maskInput: [N, 1, 4h, 4w] logits.
    /// - Returns: masks [N, M, H, W] at the original size (0/1 unless `returnLogits`), IoU
    ///   predictions [N, M], low-res logits [N, M, 4h, 4w].
    /// - Throws: `SAMPredictorError` without an image, for an empty batch, a box tensor not
    ///   [N, 4], a mask input not [N, 1, 4h, 4w] or batch sizes that differ.
    public func predictBatch(
        points: PointPrompts?, boxes: Tensor?, maskInput: Tensor?, multimaskOutput: Bool = true, returnLogits: Bool = false
    ) throws -> SAMPrediction {
        guard isImageSet else { throw SAMPredictorError.noImage }
        if let boxes, boxes.rank != 2 || boxes.shape[1] != 4 { throw SAMPredictorError.boxShape(boxes.shape) }
        let sizes = [points?.coordinates.shape[0], boxes?.shape[0], maskInput?.shape.first].compactMap { $0 }
        guard Set(sizes).count <= 1 else { throw SAMPredictorError.batchSizes(sizes) }
        guard sizes.first != 0 else { throw SAMPredictorError.emptyBatch }
        if let maskInput {
            let size = model.promptEncoder.maskInputSize
            let expected = [maskInput.shape.first ?? 0, 1, size.height, size.width]
            guard maskInput.shape == expected else {
                throw SAMPredictorError.maskInputShape(got: maskInput.shape, expected: expected)
            }
        }
        let out = forward(points: points, boxes: boxes, maskInput: maskInput, multimaskOutput: multimaskOutput)
        return SAMPrediction(
            masks: returnLogits ? out.masks : SAMPredictor.thresholded(out.masks), iouPredictions: out.iouPredictions,
            lowResLogits: out.lowRes)
    }

    /// The image embedding [1, C, h, w] (`get_image_embedding`).
    /// - Throws: `SAMPredictorError.noImage` before `setImage`.
    public func imageEmbedding() throws -> Tensor {
        guard let features else { throw SAMPredictorError.noImage }
        return features
    }

    /// 1 where `logits` > `SAM.maskThreshold`, else 0 (the reference's `masks > mask_threshold`).
    public static func thresholded(_ logits: Tensor) -> Tensor {
        let y = Tensor(uninitialized: logits.shape)
        let (src, dst) = (logits.storage.base, y.storage.base)
        for i in 0..<logits.count { dst[i] = src[i] > SAM.maskThreshold ? 1 : 0 }
        return y
    }

    // MARK: Internals

    /// Prompt encoder, mask decoder and upscaling, without a tape (`predict_torch`'s body).
    func forward(points: PointPrompts?, boxes: Tensor?, maskInput: Tensor?, multimaskOutput: Bool)
        -> (masks: Tensor, iouPredictions: Tensor, lowRes: Tensor)
    {
        let (lowRes, iou) = decode(points: points, boxes: boxes, maskInput: maskInput, multimask: multimaskOutput)
        let masks = withoutGrad { model.postprocessMasks(lowRes, inputSize: inputSize, originalSize: originalSize) }
        return (masks, iou, lowRes)
    }

    /// The prompt encoder and mask decoder alone (no upscaling), without a tape; `iouThreshold`
    /// as `MaskDecoder`'s.
    func decode(
        points: PointPrompts?, boxes: Tensor? = nil, maskInput: Tensor? = nil, multimask: Bool, iouThreshold: Float? = nil
    ) -> (lowRes: Tensor, iou: Tensor) {
        precondition(features != nil, "SAMPredictor: no image set")
        // The decoder allocates the same large activations many times per batch: reused buffers
        // skip the kernel's zeroing of fresh pages.
        return TensorStorage.reusingLargeBuffers {
            withoutGrad {
                // Without a mask input every prompt's dense embedding is the same plane: one, shared.
                let (sparse, dense) = model.promptEncoder.embeddingsSharingDense(points: points, boxes: boxes, masks: maskInput)
                let shareable = maskInput == nil && dense.shape[0] == 1
                if shareable && (iouThreshold != nil || model.maskDecoder.hq == nil) && sharedImage == nil {
                    sharedImage = model.maskDecoder.sharedImage(
                        imageEmbeddings: features!, imagePE: densePE!, densePromptEmbeddings: dense)
                }
                if model.maskDecoder.hq != nil, let vitFeatures = intermediateFeatures {
                    // SAM-HQ: one mask per prompt (its best SAM mask plus the HQ mask).
                    if let iouThreshold {
                        if hqImageFeatures == nil {
                            hqImageFeatures = model.maskDecoder.hqImageFeatures(
                                imageEmbeddings: features!, vitFeatures: vitFeatures)
                        }
                        let (lowRes, iou) = model.maskDecoder.predictHQNeeded(
                            imageEmbeddings: features!, imagePE: densePE!, sparsePromptEmbeddings: sparse,
                            densePromptEmbeddings: dense, hqImageFeatures: hqImageFeatures!, multimaskOutput: multimask,
                            hqTokenOnly: hqTokenOnly, needed: { iou in iou.scalars.map { $0 > iouThreshold } },
                            shared: shareable ? sharedImage : nil)
                        return (lowRes, iou)
                    }
                    let (lowRes, iou) = model.maskDecoder.predictHQ(
                        imageEmbeddings: features!, imagePE: densePE!,
                        sparsePromptEmbeddings: sparse, densePromptEmbeddings: dense, vitFeatures: vitFeatures,
                        multimaskOutput: multimask, hqTokenOnly: hqTokenOnly)
                    return (lowRes, iou)
                }
                // Without a threshold, shared prompts still take the inference path, keeping every prompt.
                let (lowRes, iou) = model.maskDecoder(
                    imageEmbeddings: features!, imagePE: densePE!,
                    sparsePromptEmbeddings: sparse, densePromptEmbeddings: dense, multimaskOutput: multimask,
                    iouThreshold: iouThreshold ?? (shareable ? -.infinity : nil), shared: shareable ? sharedImage : nil)
                return (lowRes, iou)
            }
        }
    }

    /// Points of the original image in the input frame, [N, 2]: mapped in Double as
    /// `apply_coords`, then rounded to Float as `torch.as_tensor(dtype=torch.float)`.
    func inputFrame(_ points: [(x: Float, y: Float)]) -> Tensor {
        let mapped = transform.applyCoords(points.map { (Double($0.x), Double($0.y)) }, originalSize: originalSize)
        return Tensor(shape: [1, points.count, 2], values: mapped.flatMap { [Float($0.x), Float($0.y)] })
    }

    /// Boxes of the original image in the input frame, [N, 4] (`apply_boxes`).
    func inputFrame(boxes: [(x0: Float, y0: Float, x1: Float, y1: Float)]) -> Tensor {
        let mapped = transform.applyBoxes(
            boxes.map { (Double($0.x0), Double($0.y0), Double($0.x1), Double($0.y1)) }, originalSize: originalSize)
        return Tensor(
            shape: [boxes.count, 4], values: mapped.flatMap { [Float($0.x0), Float($0.y0), Float($0.x1), Float($0.y1)] })
    }
}

// The automatic mask generator drives the predictor through `setImage`, `originalSize` and
// `predictLogits` (AutomaticMaskGenerator.swift).
extension SAMPredictor: PromptablePredictor {}
