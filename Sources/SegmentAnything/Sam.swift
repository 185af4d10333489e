import Autograd
import Foundation
import Layers

// segment_anything/modeling/sam.py, and the assembly of build_sam.py's `_build_sam`.

/// An image encoder SAM's prompt encoder and mask decoder can follow: normalised, padded
/// images [B, 3, S, S] → embeddings [B, C, S/16, S/16].
public protocol SAMImageEncoder: Module {
    /// Side of the square input in pixels.
    var imageSize: Int { get }
    /// The image embedding.
    func callAsFunction(_ x: Tensor) -> Tensor
    /// The embedding and the early features SAM-HQ's decoder fuses into its masks
    /// (`interm_embeddings[0]`, [B, s, s, width] on the embedding's grid): a ViT's first global
    /// block's output, TinyViT's stage 1 output (light HQ-SAM); nil when the encoder has none.
    func embeddingAndHQFeatures(_ x: Tensor) -> (embedding: Tensor, hqFeatures: Tensor?)
}

extension ImageEncoderViT: SAMImageEncoder {
    public func embeddingAndHQFeatures(_ x: Tensor) -> (embedding: Tensor, hqFeatures: Tensor?) {
        let (embedding, first) = embeddingAndFirstGlobal(x)
        return (embedding, first)
    }
}

extension TinyViT: SAMImageEncoder {
    public func embeddingAndHQFeatures(_ x: Tensor) -> (embedding: Tensor, hqFeatures: Tensor?) {
        let (embedding, stage1) = embeddingAndStage1(x)
        return (embedding, stage1)
    }
}

/// Segment Anything (sam.py, `Sam`): image encoder, prompt encoder and mask decoder, with the
/// pixel normalisation and padding before the encoder and the mask upscaling after the decoder.
///
/// Parameters and buffers carry the official `state_dict` keys (`image_encoder.blocks.3.attn.rel_pos_h`,
/// `prompt_encoder.pe_layer.positional_encoding_gaussian_matrix`, …); the pixel mean and standard
/// deviation are not among them (the reference registers them as non-persistent buffers).
/// A new model's weights are allocated but not initialised: load a checkpoint with `load(from:)`.
/// Inference only: call the model inside `withoutGrad`, as `SAMPredictor` does.
public final class SAM: Module {
    /// Logits above this are mask pixels (`Sam.mask_threshold`).
    public static let maskThreshold: Float = 0
    /// ImageNet RGB mean and standard deviation in 0…255 (build_sam.py's pixel_mean, pixel_std).
    public static let pixelMean: [Float] = [123.675, 116.28, 103.53]
    /// Per-channel divisor after the mean is subtracted.
    public static let pixelStd: [Float] = [58.395, 57.12, 57.375]

    /// The sizes the model was built with.
    public let configuration: SAMConfiguration
    /// `image_encoder`: the ViT, or MobileSAM's TinyViT.
    public let imageEncoder: any SAMImageEncoder
    /// `prompt_encoder`.
    public let promptEncoder: PromptEncoder
    /// `mask_decoder`.
    public let maskDecoder: MaskDecoder

    /// The arithmetic of the image encoder's products: fp32, or bf16 inputs with fp32
    /// accumulation — the linear layers' weights rounded to bf16 once (here, and again after
    /// `load(from:)`), attention and convolutions through `Kernels.withProducts` as autocast
    /// runs them; norms, softmax and GELU stay fp32. `auto` is bf16 only where the CPU
    /// multiplies bf16.
    public var precision: ComputePrecision = .fp32 {
        didSet { imageEncoder.setPrecision(precision) }
    }

    /// SAM-HQ: masks are the HQ token's alone instead of SAM's best mask plus it (the official
    /// `hq_token_only`, default false). No effect on SAM.
    public var hqTokenOnly = false

    /// Builds the model as build_sam.py's `_build_sam` does for `configuration` (weights not
    /// initialised; see the type's comment).
    public init(configuration c: SAMConfiguration) {
        configuration = c
        let side = c.embeddingSize
        if let tiny = c.tinyViT {
            imageEncoder = TinyViT(imageSize: c.imageSize, configuration: tiny, outChannels: c.promptEmbedDim)
        } else {
            imageEncoder = ImageEncoderViT(
                imageSize: c.imageSize, patchSize: c.patchSize, embedDim: c.encoderEmbedDim, depth: c.encoderDepth,
                numHeads: c.encoderNumHeads, mlpRatio: c.mlpRatio, outChannels: c.promptEmbedDim, windowSize: c.windowSize,
                globalAttnIndexes: c.encoderGlobalAttnIndexes)
        }
        promptEncoder = PromptEncoder(
            embedDim: c.promptEmbedDim, imageEmbeddingSize: (side, side), inputImageSize: (c.imageSize, c.imageSize),
            maskInChannels: c.maskInChans)
        maskDecoder = MaskDecoder(
            transformerDim: c.promptEmbedDim,
            transformer: TwoWayTransformer(
                depth: c.decoderDepth, embeddingDim: c.promptEmbedDim, numHeads: c.decoderNumHeads, mlpDim: c.decoderMLPDim),
            numMultimaskOutputs: c.numMultimaskOutputs, iouHeadDepth: c.iouHeadDepth, iouHeadHiddenDim: c.iouHeadHiddenDim,
            hqVitDim: c.hq ? c.hqFeatureWidth : nil)
    }

    public var namedChildren: [(String, Module)] {
        [("image_encoder", imageEncoder), ("prompt_encoder", promptEncoder), ("mask_decoder", maskDecoder)]
    }

    /// Side of the square encoder input in pixels (`image_encoder.img_size`).
    public var imageSize: Int { imageEncoder.imageSize }

    /// One image of a batch for `callAsFunction(_:multimaskOutput:)` (sam.py `forward`'s dict):
    /// the image already resized by `ResizeLongestSide`, and its prompts in that frame.
    public struct Input {
        /// [3, h, w], RGB in 0…255, long side `imageSize`.
        public var image: Tensor
        /// The image before resizing (height, width).
        public var originalSize: (height: Int, width: Int)
        /// [B, N, 2] points with labels.
        public var points: PointPrompts?
        /// [B, 4] boxes.
        public var boxes: Tensor?
        /// [B, 1, 4h, 4w] mask logits.
        public var maskInputs: Tensor?

        /// An input; prompts default to none.
        public init(
            image: Tensor, originalSize: (height: Int, width: Int), points: PointPrompts? = nil, boxes: Tensor? = nil,
            maskInputs: Tensor? = nil
        ) {
            self.image = image
            self.originalSize = originalSize
            self.points = points
            self.boxes = boxes
            self.maskInputs = maskInputs
        }
    }

    /// Masks for a batch of images and their prompts end to end (sam.py `forward`, no tape):
    /// the images are encoded together, then each image's prompts are decoded.
    /// - Returns: per image, 0/1 masks [B, M, H, W] at its original size, IoU predictions [B, M]
    ///   and low-res logits [B, M, 4h, 4w].
    public func callAsFunction(_ inputs: [Input], multimaskOutput: Bool) -> [SAMPrediction] {
        withoutGrad {
            let images = Tensor.concat(inputs.map { preprocess($0.image.reshaped(to: [1] + $0.image.shape)) }, alongAxis: 0)
            let (embeddings, hqFeatures) = Kernels.withProducts(in: precision) {
                maskDecoder.hq == nil ? (imageEncoder(images), nil) : imageEncoder.embeddingAndHQFeatures(images)
            }
            let pe = promptEncoder.densePositionalEncoding()
            return inputs.enumerated().map { index, input in
                // A shared dense plane when there is no mask input (MaskDecoder.predictMasks).
                let (sparse, dense) = promptEncoder.embeddingsSharingDense(
                    points: input.points, boxes: input.boxes, masks: input.maskInputs)
                let embedding = embeddings.slice(alongAxis: 0, index..<(index + 1))
                let (lowRes, iou) =
                    if let hqFeatures {
                        // SAM-HQ (its sam.py): one mask per prompt, SAM's chosen mask plus the HQ one.
                        maskDecoder.predictHQ(
                            imageEmbeddings: embedding, imagePE: pe, sparsePromptEmbeddings: sparse,
                            densePromptEmbeddings: dense, vitFeatures: hqFeatures.slice(alongAxis: 0, index..<(index + 1)),
                            multimaskOutput: multimaskOutput, hqTokenOnly: hqTokenOnly)
                    } else {
                        maskDecoder(
                            imageEmbeddings: embedding, imagePE: pe, sparsePromptEmbeddings: sparse,
                            densePromptEmbeddings: dense, multimaskOutput: multimaskOutput)
                    }
                let masks = postprocessMasks(
                    lowRes, inputSize: (input.image.shape[1], input.image.shape[2]), originalSize: input.originalSize)
                return SAMPrediction(masks: SAMPredictor.thresholded(masks), iouPredictions: iou, lowResLogits: lowRes)
            }
        }
    }

    /// Removes the padding and upscales decoder masks to the original image (`postprocess_masks`):
    /// bilinear (align_corners false) to the encoder input, crop to `inputSize`, bilinear to
    /// `originalSize`. The first resize computes only the rows and columns the crop keeps, and a
    /// second resize to the same size is skipped (it copies finite logits; at 64 prompts × 3
    /// masks the full 1024² upscale alone is 805 MB). `postprocessMasksPlain` is the composed
    /// reference it equals.
    /// - Parameters:
    ///   - masks: [B, M, h, w] logits from the mask decoder.
    ///   - inputSize: the resized image inside the padded input (height, width).
    ///   - originalSize: the image before resizing (height, width).
    /// - Returns: [B, M, originalSize.height, originalSize.width] logits.
    public func postprocessMasks(_ masks: Tensor, inputSize: (height: Int, width: Int), originalSize: (height: Int, width: Int))
        -> Tensor
    {
        let cropped = masks.resizedBilinear(
            to: (imageSize, imageSize), alignCorners: false, croppedTo: 0..<inputSize.height, 0..<inputSize.width)
        if (inputSize.height, inputSize.width) == (originalSize.height, originalSize.width) { return cropped }
        return cropped.resizedBilinear(to: originalSize, alignCorners: false)
    }

    /// `postprocessMasks` one mask at a time, for masks of `lowResSize` (the decoder's 256²).
    public func maskUpscaling(
        lowResSize: (height: Int, width: Int), inputSize: (height: Int, width: Int), originalSize: (height: Int, width: Int)
    ) -> MaskUpscaling {
        MaskUpscaling(lowResSize: lowResSize, imageSize: imageSize, inputSize: inputSize, originalSize: originalSize)
    }

    /// `postprocessMasks` as the reference composes it (full upscale, crop, resize): its test oracle.
    public func postprocessMasksPlain(
        _ masks: Tensor, inputSize: (height: Int, width: Int), originalSize: (height: Int, width: Int)
    ) -> Tensor {
        let full = masks.resizedBilinear(to: (imageSize, imageSize), alignCorners: false)
        let cropped = full.slice(alongAxis: 2, 0..<inputSize.height).slice(alongAxis: 3, 0..<inputSize.width)
        return cropped.resizedBilinear(to: originalSize, alignCorners: false)
    }

    /// Normalises pixel values and pads bottom and right with zeros to the square encoder input
    /// (`preprocess`).
    /// - Parameter x: [B, 3, h, w], RGB in 0…255, h and w at most `imageSize`.
    /// - Returns: [B, 3, imageSize, imageSize].
    public func preprocess(_ x: Tensor) -> Tensor {
        precondition(
            x.rank == 4 && x.shape[1] == 3 && x.shape[2] <= imageSize && x.shape[3] <= imageSize,
            "SAM.preprocess: input \(x.shape) is not [B, 3, h, w] with sides at most \(imageSize)")
        let mean = Tensor(shape: [1, 3, 1, 1], values: SAM.pixelMean)
        let std = Tensor(shape: [1, 3, 1, 1], values: SAM.pixelStd)
        var y = (x - mean) / std
        let (b, h, w) = (x.shape[0], x.shape[2], x.shape[3])
        // F.pad(x, (0, padw, 0, padh)): zeros after the last column and row.
        if w < imageSize { y = Tensor.concat([y, Tensor(zeros: [b, 3, h, imageSize - w])], alongAxis: 3) }
        if h < imageSize { y = Tensor.concat([y, Tensor(zeros: [b, 3, imageSize - h, imageSize])], alongAxis: 2) }
        return y
    }

    /// The names and shapes of every tensor the model's `state_dict` holds, in its order.
    public var stateDictShapes: [(name: String, shape: [Int])] { stateDict().map { ($0.name, $0.tensor.shape) } }

    /// Reads every parameter and buffer from `reader`, by its official key, one tensor at a time
    /// (ViT-H's 2.5 GB are never held twice).
    /// - Throws: `SAMWeightsError.mismatch` naming the file and every missing, unexpected and
    ///   mis-shaped key, before anything is read; the reader's errors for unreadable tensors.
    public func load(from reader: some StateDictReader) throws {
        let wanted = stateDict()
        let (missing, unexpected, misshaped) = reader.keyDifferences(for: wanted)
        guard missing.isEmpty && unexpected.isEmpty && misshaped.isEmpty else {
            throw SAMWeightsError.mismatch(path: reader.path, missing: missing, unexpected: unexpected, misshaped: misshaped)
        }
        let notFloat = wanted.map(\.name).filter { !reader.isStoredAsFloat($0) && !SAMWeights.isCounter($0) }
        guard notFloat.isEmpty else { throw SAMWeightsError.unusableValues(path: reader.path, nonFinite: [], notFloat: notFloat) }
        var nonFinite: [String] = []
        for (name, tensor) in wanted {
            let value = try reader.tensor(named: name)
            guard value.shape == tensor.shape else {
                throw SAMWeightsError.mismatch(
                    path: reader.path, missing: [], unexpected: [], misshaped: ["\(name) \(value.shape) vs \(tensor.shape)"])
            }
            // A NaN or inf weight makes every embedding or mask NaN: refused by name, as DeepLab checkpoints are.
            if !value.isAllFinite { nonFinite.append(name) }
            tensor.assign(from: value)
        }
        guard nonFinite.isEmpty else {
            throw SAMWeightsError.unusableValues(path: reader.path, nonFinite: nonFinite, notFloat: [])
        }
        // Packed bf16 weights are copies of the old values: packed again from the new ones.
        if precision.resolved == .bf16 { imageEncoder.setPrecision(precision) }
    }

    /// A model of the configuration the checkpoint's shapes describe, loaded from it.
    /// - Parameter decoderNumHeads: the decoder's head count, which no tensor shape records.
    /// - Throws: `SAMWeightsError` when the shapes fit no SAM, or as `load(from:)`.
    public static func loaded(from reader: some StateDictReader, decoderNumHeads: Int = 8) throws -> SAM {
        let configuration = try SAMConfiguration.inferred(
            fromShapes: reader.tensorShapes, path: reader.path, decoderNumHeads: decoderNumHeads)
        let model = SAM(configuration: configuration)
        try model.load(from: reader)
        return model
    }
}

/// `SAM.postprocessMasks` for one mask plane at a time, into buffers the caller owns: the same
/// two resizes (the first restricted to the crop, the second skipped when the sizes agree) with
/// the same per-pixel arithmetic, so each plane equals the corresponding plane of
/// `postprocessMasks`. The automatic mask generator upscales only the masks that pass its IoU
/// filter, each into a reused buffer, instead of every mask of a batch into one tensor.
public struct MaskUpscaling: Sendable {
    public let lowResSize: (height: Int, width: Int)
    public let inputSize: (height: Int, width: Int)
    public let originalSize: (height: Int, width: Int)
    private let first: (rows: ResizeAxis, columns: ResizeAxis)
    private let second: (rows: ResizeAxis, columns: ResizeAxis)?

    init(
        lowResSize: (height: Int, width: Int), imageSize: Int, inputSize: (height: Int, width: Int),
        originalSize: (height: Int, width: Int)
    ) {
        (self.lowResSize, self.inputSize, self.originalSize) = (lowResSize, inputSize, originalSize)
        first = (
            ResizeAxis(linearFrom: lowResSize.height, to: imageSize, alignCorners: false).restricted(to: 0..<inputSize.height),
            ResizeAxis(linearFrom: lowResSize.width, to: imageSize, alignCorners: false).restricted(to: 0..<inputSize.width)
        )
        second =
            (inputSize.height, inputSize.width) == (originalSize.height, originalSize.width)
            ? nil
            : (
                ResizeAxis(linearFrom: inputSize.height, to: originalSize.height, alignCorners: false),
                ResizeAxis(linearFrom: inputSize.width, to: originalSize.width, alignCorners: false)
            )
    }

    /// Floats of the intermediate buffer `apply` needs (0 when there is one resize).
    public var scratchCount: Int { second == nil ? 0 : inputSize.height * inputSize.width }

    /// Upscales one [lowRes.height × lowRes.width] plane into `output`
    /// ([originalSize.height × originalSize.width]), using `scratch` (`scratchCount` floats).
    public func apply(
        _ plane: UnsafePointer<Float>, into output: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>
    ) {
        let size = (h: lowResSize.height, w: lowResSize.width)
        guard let second else {
            Kernels.resize(plane, output, planes: 1, inSize: size, rows: first.rows, columns: first.columns)
            return
        }
        Kernels.resize(plane, scratch, planes: 1, inSize: size, rows: first.rows, columns: first.columns)
        Kernels.resize(
            scratch, output, planes: 1, inSize: (inputSize.height, inputSize.width), rows: second.rows, columns: second.columns)
    }
}
