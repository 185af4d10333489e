import Autograd
import Layers

// segment_anything/modeling/mask_decoder.py.

/// Predicts masks from an image embedding and prompt embeddings (mask_decoder.py,
/// `MaskDecoder`): an IoU token and `numMultimaskOutputs + 1` mask tokens run through the two-way
/// transformer with the prompt tokens; the image tokens are upscaled 4x by transposed
/// convolutions and each mask token's hypernetwork MLP turns it into the weights of a per-pixel
/// dot product. Mask 0 is the single-mask output, masks 1… the multimask outputs.
///
/// Keys: `transformer.*`, `iou_token.weight`, `mask_tokens.weight`, `output_upscaling.{0,1,3}.*`,
/// `output_hypernetworks_mlps.<i>.layers.{0,1,2}.*`, `iou_prediction_head.layers.<i>.*`.
public final class MaskDecoder: Module {
    /// Token and image-embedding width (256 officially).
    public let transformerDim: Int
    /// Tokens ↔ image attention.
    public let transformer: TwoWayTransformer
    /// Masks returned with `multimaskOutput` (3).
    public let numMultimaskOutputs: Int
    /// The token whose output feeds the IoU head, [1, C].
    public let iouToken: Embedding
    /// numMultimaskOutputs + 1 (mask 0 is the single-mask output).
    public let numMaskTokens: Int
    /// One token per mask, [numMaskTokens, C].
    public let maskTokens: Embedding
    /// convT2x2/2 → LayerNorm2d → GELU → convT2x2/2 → GELU: [B, C, h, w] → [B, C/8, 4h, 4w].
    public let outputUpscaling: Sequential
    /// Per mask token: C → C → C → C/8, the weights of its per-pixel product.
    public let outputHypernetworksMLPs: ModuleList<MLP>
    /// IoU token → one predicted IoU per mask token.
    public let iouPredictionHead: MLP
    /// `outputUpscaling`'s layers with weights, for `upscaled(_:)`.
    private let upscalingLayers: (up1: ConvTranspose2d, norm: LayerNorm2d, up2: ConvTranspose2d)

    /// The decoder of `_build_sam` around `transformer`; weights not initialised.
    public init(
        transformerDim: Int, transformer: TwoWayTransformer, numMultimaskOutputs: Int = 3, iouHeadDepth: Int = 3,
        iouHeadHiddenDim: Int = 256
    ) {
        self.transformerDim = transformerDim
        self.transformer = transformer
        self.numMultimaskOutputs = numMultimaskOutputs
        iouToken = Embedding(count: 1, dimensions: transformerDim)
        numMaskTokens = numMultimaskOutputs + 1
        maskTokens = Embedding(count: numMaskTokens, dimensions: transformerDim)
        let up1 = ConvTranspose2d(inputChannels: transformerDim, outputChannels: transformerDim / 4, kernelSize: 2, stride: 2)
        let norm = LayerNorm2d(transformerDim / 4)
        let act1 = Activation(.gelu)
        let up2 = ConvTranspose2d(inputChannels: transformerDim / 4, outputChannels: transformerDim / 8, kernelSize: 2, stride: 2)
        let act2 = Activation(.gelu)
        outputUpscaling = Sequential([up1, norm, act1, up2, act2]) { x in act2(up2(act1(norm(up1(x))))) }
        upscalingLayers = (up1, norm, up2)
        outputHypernetworksMLPs = ModuleList(
            (0..<numMaskTokens).map { _ in
                MLP(inputDim: transformerDim, hiddenDim: transformerDim, outputDim: transformerDim / 8, numLayers: 3)
            })
        iouPredictionHead = MLP(
            inputDim: transformerDim, hiddenDim: iouHeadHiddenDim, outputDim: numMaskTokens, numLayers: iouHeadDepth)
    }

    public var namedChildren: [(String, Module)] {
        [
            ("transformer", transformer), ("iou_token", iouToken), ("mask_tokens", maskTokens),
            ("output_upscaling", outputUpscaling),
            ("output_hypernetworks_mlps", outputHypernetworksMLPs), ("iou_prediction_head", iouPredictionHead),
        ]
    }

    /// Masks and their predicted IoU for a batch of prompts on one image (`forward`).
    /// - Parameters:
    ///   - imageEmbeddings: [1, C, h, w], shared by every prompt of the batch.
    ///   - imagePE: [1, C, h, w] (`PromptEncoder.densePositionalEncoding()`).
    ///   - sparsePromptEmbeddings: [B, N, C]; densePromptEmbeddings: [B, C, h, w], or
    ///     [1, C, h, w] when every prompt has the same one (no mask input): the image side of the
    ///     first block is then computed once for the batch (`predictMasks`).
    ///   - multimaskOutput: the `numMultimaskOutputs` masks 1…, else mask 0 alone.
    ///   - iouThreshold: when set, a prompt none of whose returned masks has a predicted IoU
    ///     above it gets all-zero masks, not computed (the IoU head reads only the IoU token, so
    ///     every IoU is unchanged, and the other prompts' masks are too, up to the rounding of
    ///     products over fewer rows): the automatic mask generator drops those masks unread.
    /// - Returns: mask logits [B, M, 4h, 4w] and IoU predictions [B, M].
    public func callAsFunction(
        imageEmbeddings: Tensor, imagePE: Tensor, sparsePromptEmbeddings: Tensor, densePromptEmbeddings: Tensor,
        multimaskOutput: Bool, iouThreshold: Float? = nil
    ) -> (masks: Tensor, iouPredictions: Tensor) {
        let selected = multimaskOutput ? 1..<numMaskTokens : 0..<1
        let needed: ((Tensor) -> [Bool])? = iouThreshold.map { threshold in
            { iou in
                let (t, scores) = (iou.shape[1], iou.scalars)
                return (0..<iou.shape[0]).map { b in selected.contains { scores[b * t + $0] > threshold } }
            }
        }
        let (masks, iou) = predictMasks(
            imageEmbeddings: imageEmbeddings, imagePE: imagePE, sparsePromptEmbeddings: sparsePromptEmbeddings,
            densePromptEmbeddings: densePromptEmbeddings, needed: needed)
        return (masks.slice(alongAxis: 1, selected), iou.slice(alongAxis: 1, selected))
    }

    /// All `numMaskTokens` masks [B, T, 4h, 4w] and IoU predictions [B, T] (`predict_masks`).
    /// A dense embedding of batch 1 stands for B identical ones: the reference's repeated
    /// `src` then holds B copies of one tensor, so it is kept at batch 1 and the transformer
    /// shares it until the image tokens first depend on the prompt (exact; at 64 prompts it
    /// skips 268 MB tensors and three projections of 64 × 4096 tokens).
    ///
    /// `needed`, given the IoU predictions [B, T], says which prompts' masks to compute; the
    /// others are left zero (inference only).
    public func predictMasks(
        imageEmbeddings: Tensor, imagePE: Tensor, sparsePromptEmbeddings: Tensor, densePromptEmbeddings: Tensor,
        needed: ((Tensor) -> [Bool])? = nil
    )
        -> (masks: Tensor, iouPredictions: Tensor)
    {
        precondition(
            imageEmbeddings.rank == 4 && imageEmbeddings.shape[0] == 1 && imagePE.shape == imageEmbeddings.shape,
            "MaskDecoder: one image embedding [1, C, h, w] and its position encoding, got \(imageEmbeddings.shape) and \(imagePE.shape)"
        )
        let batch = sparsePromptEmbeddings.shape[0]
        precondition(
            densePromptEmbeddings.shape[0] == batch || densePromptEmbeddings.shape[0] == 1,
            "MaskDecoder: dense embeddings \(densePromptEmbeddings.shape) for \(batch) prompts (batch \(batch) or 1)")
        // Concatenate output tokens
        let outputTokens = Tensor.concat([iouToken.weight, maskTokens.weight], alongAxis: 0)
        let tokens = Tensor.concat(
            [
                outputTokens.reshaped(to: [1] + outputTokens.shape) + Tensor(zeros: [batch] + outputTokens.shape),
                sparsePromptEmbeddings,
            ],
            alongAxis: 1)
        // repeat_interleave of the one image embedding over the prompts, as a broadcast add
        // (batch 1 when the dense embedding is shared).
        let src = imageEmbeddings + densePromptEmbeddings
        let (c, h, w) = (src.shape[1], src.shape[2], src.shape[3])
        // Run the transformer
        let (hs, imageTokens) = transformer(imageEmbedding: src, imagePE: imagePE, pointEmbedding: tokens)
        let iouTokenOut = hs.slice(alongAxis: 1, 0..<1).reshaped(to: [batch, c])
        // Generate mask quality predictions
        let iou = iouPredictionHead(iouTokenOut)
        // Upscale mask embeddings and predict masks using the mask tokens
        guard let wanted = needed?(iou), wanted.count == batch, wanted.contains(false), !GradMode.isEnabled,
            hs.shape[0] == batch, imageTokens.shape[0] == batch
        else {
            return (masks(hs: hs, imageTokens: imageTokens, height: h, width: w), iou)
        }
        let kept = wanted.indices.filter { wanted[$0] }
        let (uh, uw) = (4 * h, 4 * w)
        let masks = Tensor(zeros: [batch, numMaskTokens, uh, uw])
        guard !kept.isEmpty else { return (masks, iou) }
        func rows(_ x: Tensor) -> Tensor {
            x.reshaped(to: [batch, x.count / batch]).gatheringRows(kept).reshaped(to: [kept.count] + x.shape.dropFirst())
        }
        let some = self.masks(hs: rows(hs), imageTokens: rows(imageTokens), height: h, width: w)
        let plane = numMaskTokens * uh * uw
        for (k, b) in kept.enumerated() {
            (masks.storage.base + b * plane).update(from: some.storage.base + k * plane, count: plane)
        }
        return (masks, iou)
    }

    /// The masks [B, T, 4h, 4w] from the transformer's tokens `hs` and image tokens.
    private func masks(hs: Tensor, imageTokens: Tensor, height h: Int, width w: Int) -> Tensor {
        let (batch, c) = (hs.shape[0], transformerDim)
        let upscaled = upscaled(imageTokens.permuted([0, 2, 1]).reshaped(to: [batch, c, h, w]))
        let hyperIn = Tensor.concat(
            (0..<numMaskTokens).map { i in
                outputHypernetworksMLPs[i](hs.slice(alongAxis: 1, (1 + i)..<(2 + i)))
            }, alongAxis: 1)
        let (uc, uh, uw) = (upscaled.shape[1], upscaled.shape[2], upscaled.shape[3])
        return Tensor.matmul(hyperIn, upscaled.reshaped(to: [batch, uc, uh * uw]), transposeA: false, transposeB: false)
            .reshaped(to: [batch, numMaskTokens, uh, uw])
    }
}

extension MaskDecoder {
    /// `outputUpscaling(x)`; without a tape the two GELUs run in place on the intermediates only
    /// this function holds (same kernel, same values; at 64 prompts two fewer 268 and 537 MB
    /// buffers). `outputUpscaling` is the oracle.
    func upscaled(_ x: Tensor) -> Tensor {
        guard !GradMode.isEnabled else { return outputUpscaling(x) }
        let (up1, norm, up2) = upscalingLayers
        let normed = norm(up1(x))
        Kernels.gelu(normed.storage.base, normed.storage.base, count: normed.count)
        let y = up2(normed)
        Kernels.gelu(y.storage.base, y.storage.base, count: y.count)
        return y
    }
}

/// A plain MLP with ReLU between layers and none after the last (mask_decoder.py, `MLP`, from
/// MaskFormer). SAM never sets its `sigmoid_output`, so this port leaves it out.
/// Keys: `layers.<i>.{weight,bias}`.
public final class MLP: Module {
    /// Number of linear layers.
    public let numLayers: Int
    /// input → hidden → … → output.
    public let layers: ModuleList<Linear>

    /// `numLayers` linear layers, all `hiddenDim` wide except the ends; weights not initialised.
    public init(inputDim: Int, hiddenDim: Int, outputDim: Int, numLayers: Int) {
        precondition(numLayers >= 1, "MLP: needs at least one layer, got \(numLayers)")
        self.numLayers = numLayers
        let widths = [inputDim] + Array(repeating: hiddenDim, count: numLayers - 1) + [outputDim]
        layers = ModuleList((0..<numLayers).map { Linear(inputFeatures: widths[$0], outputFeatures: widths[$0 + 1]) })
    }

    public var namedChildren: [(String, Module)] { [("layers", layers)] }

    /// [..., inputDim] → [..., outputDim].
    public func callAsFunction(_ x: Tensor) -> Tensor {
        var y = x
        for (i, layer) in layers.elements.enumerated() {
            y = i < numLayers - 1 ? layer(y).relu() : layer(y)
        }
        return y
    }
}
