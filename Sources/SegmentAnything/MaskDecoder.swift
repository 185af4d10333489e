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
    /// SAM-HQ's additions (`MaskDecoderHQ`), nil for SAM.
    public let hq: HQ?
    /// `outputUpscaling`'s layers with weights, for `upscaled(_:)`.
    let upscalingLayers: (up1: ConvTranspose2d, norm: LayerNorm2d, up2: ConvTranspose2d)

    /// The decoder of `_build_sam` around `transformer`; weights not initialised.
    /// - Parameter hqVitDim: the encoder width, for SAM-HQ's decoder (`vit_dim`); nil for SAM.
    public init(
        transformerDim: Int, transformer: TwoWayTransformer, numMultimaskOutputs: Int = 3, iouHeadDepth: Int = 3,
        iouHeadHiddenDim: Int = 256, hqVitDim: Int? = nil
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
        hq = hqVitDim.map { HQ(transformerDim: transformerDim, vitDim: $0) }
    }

    public var namedChildren: [(String, Module)] {
        [
            ("transformer", transformer), ("iou_token", iouToken), ("mask_tokens", maskTokens),
            ("output_upscaling", outputUpscaling),
            ("output_hypernetworks_mlps", outputHypernetworksMLPs), ("iou_prediction_head", iouPredictionHead),
        ] + (hq?.namedChildren ?? [])
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
    ///     above it gets all-zero masks, not computed (the IoU head reads only the IoU token,
    ///     whose final attention then runs first and alone, so every IoU and the other prompts'
    ///     masks are unchanged up to the rounding of products over fewer rows): the automatic
    ///     mask generator drops those masks unread. `-infinity` keeps every prompt (NaN IoUs
    ///     too): the same path without a filter.
    ///   - shared: with `iouThreshold` and a dense embedding of batch 1, `sharedImage`'s result
    ///     for these embeddings (the first block's image side, computed once per image).
    /// - Returns: mask logits [B, M, 4h, 4w] and IoU predictions [B, M].
    public func callAsFunction(
        imageEmbeddings: Tensor, imagePE: Tensor, sparsePromptEmbeddings: Tensor, densePromptEmbeddings: Tensor,
        multimaskOutput: Bool, iouThreshold: Float? = nil, shared: TwoWayTransformer.SharedImage? = nil
    ) -> (masks: Tensor, iouPredictions: Tensor) {
        let selected = multimaskOutput ? 1..<numMaskTokens : 0..<1
        let needed: ((Tensor) -> [Bool])? = iouThreshold.map { threshold in
            { iou in
                guard threshold > -.infinity else { return [Bool](repeating: true, count: iou.shape[0]) }
                let (t, scores) = (iou.shape[1], iou.scalars)
                return (0..<iou.shape[0]).map { b in selected.contains { scores[b * t + $0] > threshold } }
            }
        }
        let (masks, iou) = predictMasks(
            imageEmbeddings: imageEmbeddings, imagePE: imagePE, sparsePromptEmbeddings: sparsePromptEmbeddings,
            densePromptEmbeddings: densePromptEmbeddings, needed: needed, shared: shared)
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
        needed: ((Tensor) -> [Bool])? = nil, shared: TwoWayTransformer.SharedImage? = nil
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
        let tokens = Self.tokens(outputTokens, then: sparsePromptEmbeddings)
        if let needed, !GradMode.isEnabled, let shared, densePromptEmbeddings.shape[0] == 1 {
            return predictMasksNeeded(
                src: imageEmbeddings, imagePE: imagePE, tokens: tokens, outputTokens: outputTokens.shape[0], needed: needed,
                shared: shared)
        }
        // repeat_interleave of the one image embedding over the prompts, as a broadcast add
        // (batch 1 when the dense embedding is shared).
        let src = imageEmbeddings + densePromptEmbeddings
        let (c, h, w) = (src.shape[1], src.shape[2], src.shape[3])
        if let needed, !GradMode.isEnabled {
            return predictMasksNeeded(
                src: src, imagePE: imagePE, tokens: tokens, outputTokens: outputTokens.shape[0], needed: needed)
        }
        // Run the transformer
        let (hs, imageTokens) = transformer(
            imageEmbedding: src, imagePE: imagePE, pointEmbedding: tokens, outputTokens: outputTokens.shape[0])
        let iouTokenOut = hs.slice(alongAxis: 1, 0..<1).reshaped(to: [batch, c])
        // Generate mask quality predictions
        let iou = iouPredictionHead(iouTokenOut)
        // Upscale mask embeddings and predict masks using the mask tokens
        return (masks(hs: hs, imageTokens: imageTokens, height: h, width: w), iou)
    }

    /// `predictMasks` with `needed`, without a tape: the final attention runs for the IoU token
    /// first, and for the mask tokens only of the prompts `needed` keeps (each query token
    /// attends and is normalised on its own, so the kept prompts' tokens get the values the full
    /// run gives them, up to the rounding of products over fewer rows). At the generator's
    /// thresholds with few prompts passing, the final attention does a fifth of its work.
    /// With `shared`, `src` only gives the sizes (the shared tokens stand for it).
    private func predictMasksNeeded(
        src: Tensor, imagePE: Tensor, tokens: Tensor, outputTokens: Int, needed: (Tensor) -> [Bool],
        shared: TwoWayTransformer.SharedImage? = nil
    ) -> (masks: Tensor, iouPredictions: Tensor) {
        let batch = tokens.shape[0]
        let (c, h, w) = (src.shape[1], src.shape[2], src.shape[3])
        let trace = TwoWayTransformer.ImageTokenTrace()
        let encoded = transformer.blocks(
            imageEmbedding: src, imagePE: imagePE, pointEmbedding: tokens, shared: shared, trace: trace)
        var keys = encoded.keys
        if keys.shape[0] != batch { keys = keys.expanded(to: [batch] + keys.shape.dropFirst()) }
        let keysWithPE = keys + encoded.keyPE
        let iouTokenOut = transformer.finalAttention(
            tokens: 0..<1, queries: encoded.queries, keys: keys, keysWithPE: keysWithPE, pointEmbedding: tokens)
        let iou = iouPredictionHead(iouTokenOut.reshaped(to: [batch, c]))
        let wanted = needed(iou)
        precondition(wanted.count == batch, "MaskDecoder: needed gave \(wanted.count) flags for \(batch) prompts")
        let kept = wanted.indices.filter { wanted[$0] }
        let (uh, uw) = (4 * h, 4 * w)
        if kept.isEmpty { return (Tensor(zeros: [batch, numMaskTokens, uh, uw]), iou) }
        /// The kept prompts' rows of a [B, …] tensor (all of it when every prompt is kept).
        func rows(_ x: Tensor) -> Tensor {
            guard kept.count < batch else { return x }
            return x.reshaped(to: [batch, x.count / batch]).gatheringRows(kept).reshaped(to: [kept.count] + x.shape.dropFirst())
        }
        let keptKeys = rows(keys)
        let maskTokensOut = transformer.finalAttention(
            tokens: 1..<outputTokens, queries: rows(encoded.queries), keys: keptKeys, keysWithPE: rows(keysWithPE),
            pointEmbedding: rows(tokens))
        let hs = Tensor.concat([rows(iouTokenOut), maskTokensOut], alongAxis: 1)
        // Through the trace once the shared tokens' product (one prompt's worth) is repaid.
        let some =
            trace.isValid && trace.levels.count == transformer.depth && kept.count >= 2
            ? masksFromTrace(hyperIn: hyperIn(hs), trace: trace, prompts: kept, height: h, width: w)
            : self.masks(hs: hs, imageTokens: keptKeys, height: h, width: w)
        if kept.count == batch { return (some, iou) }
        let masks = Tensor(zeros: [batch, numMaskTokens, uh, uw])
        let plane = numMaskTokens * uh * uw
        for (k, b) in kept.enumerated() {
            (masks.storage.base + b * plane).update(from: some.storage.base + k * plane, count: plane)
        }
        return (masks, iou)
    }

    /// The first block's image side for every call on one image embedding with the same dense
    /// prompt embedding of batch 1 (`TwoWayTransformer.SharedImage`).
    public func sharedImage(imageEmbeddings: Tensor, imagePE: Tensor, densePromptEmbeddings: Tensor)
        -> TwoWayTransformer.SharedImage
    {
        precondition(
            densePromptEmbeddings.shape[0] == 1, "sharedImage: a dense embedding of batch 1, got \(densePromptEmbeddings.shape)")
        return transformer.sharedImage(imageEmbedding: imageEmbeddings + densePromptEmbeddings, imagePE: imagePE)
    }

    /// The decoder's query tokens [B, T + N, C]: the output tokens [T, C], the same for every
    /// prompt, then each prompt's sparse embeddings [B, N, C].
    static func tokens(_ outputTokens: Tensor, then sparse: Tensor) -> Tensor {
        let batch = sparse.shape[0]
        return Tensor.concat(
            [outputTokens.reshaped(to: [1] + outputTokens.shape) + Tensor(zeros: [batch] + outputTokens.shape), sparse],
            alongAxis: 1)
    }

    /// Each mask token through its hypernetwork MLP: [B, T, C/8] from the transformer's tokens `hs`.
    private func hyperIn(_ hs: Tensor) -> Tensor {
        Tensor.concat(
            (0..<numMaskTokens).map { i in outputHypernetworksMLPs[i](hs.slice(alongAxis: 1, (1 + i)..<(2 + i))) },
            alongAxis: 1)
    }

    /// The masks [B, T, 4h, 4w] from the transformer's tokens `hs` and image tokens.
    private func masks(hs: Tensor, imageTokens: Tensor, height h: Int, width w: Int) -> Tensor {
        let (batch, c) = (hs.shape[0], transformerDim)
        let hyperIn = hyperIn(hs)
        if !GradMode.isEnabled {
            return masksByTokenRows(hyperIn: hyperIn, imageTokens: imageTokens, height: h, width: w)
        }
        let upscaled = upscaled(imageTokens.permuted([0, 2, 1]).reshaped(to: [batch, c, h, w]))
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

extension MaskDecoder {
    /// `masks(hs:imageTokens:…)` without a tape, one row of image tokens at a time so that every
    /// intermediate stays in cache: the first transposed convolution is a per-token product
    /// [w, C] · [C, (ky, kx, o)] whose rows hold each output pixel's C/4 channels contiguously,
    /// so LayerNorm2d and GELU run on contiguous rows in place; the second is the product of those
    /// pixels with [C/4, (ky, kx, o)], GELU in place, and the hypernetwork product gives each
    /// sub-pixel's mask logits, written at (4y + 2ky + ky₂, 4x + 2kx + kx₂). No [B, C/4, 2h, 2w]
    /// or [B, C/8, 4h, 4w] tensor and no permutes (at 1,024 prompts these were 40% of
    /// the mask decoder when every mask is kept). The same sums (rounding-level differences in the
    /// products' order); `outputUpscaling` and the hypernetwork product are the oracle.
    /// - Parameters: hyperIn [B, M, C/8]; imageTokens [B, h·w, C].
    func masksByTokenRows(hyperIn: Tensor, imageTokens: Tensor, height h: Int, width w: Int) -> Tensor {
        let up1 = upscalingLayers.up1
        let (batch, c, c4) = (hyperIn.shape[0], imageTokens.shape[2], up1.weight.shape[1])
        precondition(
            imageTokens.shape == [batch, h * w, transformerDim],
            "MaskDecoder: image tokens \(imageTokens.shape) and hypernetwork outputs \(hyperIn.shape) for a \(h)x\(w) grid")
        let w1 = firstUpscalingMatrix
        let b1 = up1.bias.scalars
        let x = imageTokens.storage.base
        return upscaledByTokenRows(hyperIn: hyperIn, height: h, width: w, scratchCount: 0) { b, row, pixels, _ in
            for t in 0..<w { for k in 0..<4 { (pixels + (4 * t + k) * c4).update(from: b1, count: c4) } }
            Kernels.gemm(m: w, n: 4 * c4, k: c, a: x + (b * h + row) * w * c, b: w1.storage.base, beta: 1, c: pixels)
        }
    }

    /// The first transposed convolution's weights with each output pixel's channels last:
    /// [C, (ky, kx, C/4)].
    var firstUpscalingMatrix: Tensor {
        let weight = upscalingLayers.up1.weight
        return weight.permuted([0, 2, 3, 1]).reshaped(to: [weight.shape[0], 4 * weight.shape[1]])
    }

    /// The masks [B, M, 4h, 4w] one row of image tokens at a time (`masksByTokenRows`), from the
    /// first transposed convolution's output: `firstProduct(b, row, pixels, scratch)` writes prompt
    /// b's row of w tokens through it, bias included, as [w, (ky, kx, C/4)] at `pixels`
    /// (`scratch`: `scratchCount` floats of the calling thread's own).
    func upscaledByTokenRows(
        hyperIn: Tensor, height h: Int, width w: Int, scratchCount: Int,
        firstProduct: (Int, Int, UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>) -> Void
    ) -> Tensor {
        let (_, norm, up2) = upscalingLayers
        let (batch, masks) = (hyperIn.shape[0], hyperIn.shape[1])
        let (c4, c8) = (upscalingLayers.up1.weight.shape[1], up2.weight.shape[1])
        precondition(
            hyperIn.shape[2] == c8 && upscalingLayers.up1.weight.shape[2...] == [2, 2] && up2.weight.shape[2...] == [2, 2]
                && up2.stride == 2 && upscalingLayers.up1.stride == 2,
            "MaskDecoder: hypernetwork outputs \(hyperIn.shape) for upscaling to \(c8) channels")
        let w2 = up2.weight.permuted([0, 2, 3, 1]).reshaped(to: [c4, 4 * c8])
        let b2 = up2.bias.scalars
        let out = Tensor(uninitialized: [batch, masks, 4 * h, 4 * w])
        let (hyper, y) = (hyperIn.storage.base, out.storage.base)
        let (lnWeight, lnBias, epsilon) = (norm.weight.storage.base, norm.bias.storage.base, norm.epsilon)
        let (ow, plane) = (4 * w, 16 * h * w)
        parallelFor(batch * h) { jobs in
            // Per row of w tokens: pixels [4w, C/4], sub-pixels [4w, 4·C/8], logits [M, 16w].
            let pixels = UnsafeMutablePointer<Float>.allocate(capacity: 4 * w * c4)
            let sub = UnsafeMutablePointer<Float>.allocate(capacity: 16 * w * c8)
            let logits = UnsafeMutablePointer<Float>.allocate(capacity: masks * 16 * w)
            let stats = UnsafeMutablePointer<Float>.allocate(capacity: 8 * w)
            let scratch = UnsafeMutablePointer<Float>.allocate(capacity: max(scratchCount, 1))
            defer { for p in [pixels, sub, logits, stats, scratch] { p.deallocate() } }
            for job in jobs {
                let (b, row) = job.quotientAndRemainder(dividingBy: h)
                firstProduct(b, row, pixels, scratch)
                Kernels.layerNorm(
                    pixels, weight: lnWeight, bias: lnBias, pixels, mean: stats, inverseStd: stats + 4 * w,
                    split: (4 * w, c4, 1), epsilon: epsilon)
                Kernels.gelu(pixels, pixels, count: 4 * w * c4)
                for p in 0..<(4 * w) { for k in 0..<4 { (sub + (4 * p + k) * c8).update(from: b2, count: c8) } }
                Kernels.gemm(m: 4 * w, n: 4 * c8, k: c4, a: pixels, b: w2.storage.base, beta: 1, c: sub)
                Kernels.gelu(sub, sub, count: 16 * w * c8)
                // Logits [M, 16w], sub-pixel s = ((t·4 + ky·2 + kx)·4 + ky₂·2 + kx₂).
                Kernels.gemm(transB: true, m: masks, n: 16 * w, k: c8, a: hyper + b * masks * c8, b: sub, c: logits)
                for j in 0..<masks {
                    let source = logits + j * 16 * w
                    let target = y + (b * masks + j) * plane + 4 * row * ow
                    for t in 0..<w {
                        for s in 0..<16 {
                            let (ky, kx, ky2, kx2) = (s >> 3, (s >> 2) & 1, (s >> 1) & 1, s & 1)
                            target[(2 * ky + ky2) * ow + 4 * t + 2 * kx + kx2] = source[16 * t + s]
                        }
                    }
                }
            }
        }
        return out
    }
}

extension MaskDecoder {
    /// SAM-HQ's additions to the decoder (mask_decoder_hq.py, `MaskDecoderHQ`): an HQ output token
    /// after the mask tokens with its own hypernetwork MLP, and HQ features — the image embedding
    /// upscaled (`embedding_encoder`) plus the first global ViT block's output upscaled
    /// (`compress_vit_feat`) — added to a refinement of SAM's upscaled embedding
    /// (`embedding_maskfeature`). Keys (children of the decoder): `hf_token`, `hf_mlp`,
    /// `compress_vit_feat.{0,1,3}`, `embedding_encoder.{0,1,3}`, `embedding_maskfeature.{0,1,3}`.
    public final class HQ: Module {
        public let hfToken: Embedding
        public let hfMLP: MLP
        public let compressVitFeat: Sequential
        public let embeddingEncoder: Sequential
        public let embeddingMaskfeature: Sequential
        /// `embedding_maskfeature`'s layers: conv 3×3 C/8 → C/4, LayerNorm2d, (GELU), conv 3×3 C/4 → C/8.
        let maskfeatureLayers: (conv1: Conv2d, norm: LayerNorm2d, conv2: Conv2d)

        init(transformerDim c: Int, vitDim: Int) {
            hfToken = Embedding(count: 1, dimensions: c)
            hfMLP = MLP(inputDim: c, hiddenDim: c, outputDim: c / 8, numLayers: 3)
            func upscaling(_ input: Int, _ middle: Int, _ output: Int) -> Sequential {
                let up1 = ConvTranspose2d(inputChannels: input, outputChannels: middle, kernelSize: 2, stride: 2)
                let norm = LayerNorm2d(middle), act = Activation(.gelu)
                let up2 = ConvTranspose2d(inputChannels: middle, outputChannels: output, kernelSize: 2, stride: 2)
                return Sequential([up1, norm, act, up2]) { x in up2(act(norm(up1(x)))) }
            }
            compressVitFeat = upscaling(vitDim, c, c / 8)
            embeddingEncoder = upscaling(c, c / 4, c / 8)
            var g = SeededGenerator(seed: 0)
            let conv1 = Conv2d(
                inputChannels: c / 8, outputChannels: c / 4, kernelSize: 3, padding: 1, bias: true, generator: &g)
            let norm = LayerNorm2d(c / 4), act = Activation(.gelu)
            let conv2 = Conv2d(
                inputChannels: c / 4, outputChannels: c / 8, kernelSize: 3, padding: 1, bias: true, generator: &g)
            embeddingMaskfeature = Sequential([conv1, norm, act, conv2]) { x in conv2(act(norm(conv1(x)))) }
            maskfeatureLayers = (conv1, norm, conv2)
        }

        public var namedChildren: [(String, Module)] {
            [
                ("hf_token", hfToken), ("hf_mlp", hfMLP), ("compress_vit_feat", compressVitFeat),
                ("embedding_encoder", embeddingEncoder), ("embedding_maskfeature", embeddingMaskfeature),
            ]
        }
    }

    /// SAM-HQ's masks for a batch of prompts on one image (`MaskDecoderHQ.forward`): one mask per
    /// prompt — with `multimaskOutput` SAM's multimask output of the highest predicted IoU (and that
    /// IoU), otherwise mask 0 — plus the HQ token's mask, or the HQ mask alone with `hqTokenOnly`.
    /// - Parameters:
    ///   - vitFeatures: the first global block's output [1, s, s, vitDim] (`interm_embeddings[0]`).
    ///   - the others as `callAsFunction(imageEmbeddings:…)`.
    /// - Returns: logits [B, 1, 4h, 4w] and IoU predictions [B, 1].
    public func predictHQ(
        imageEmbeddings: Tensor, imagePE: Tensor, sparsePromptEmbeddings: Tensor, densePromptEmbeddings: Tensor,
        vitFeatures: Tensor, multimaskOutput: Bool, hqTokenOnly: Bool
    ) -> (masks: Tensor, iouPredictions: Tensor) {
        guard let hq else { preconditionFailure("MaskDecoder.predictHQ: not an HQ decoder") }
        let batch = sparsePromptEmbeddings.shape[0]
        let outputTokens = Tensor.concat([iouToken.weight, maskTokens.weight, hq.hfToken.weight], alongAxis: 0)
        let tokens = Self.tokens(outputTokens, then: sparsePromptEmbeddings)
        let src = imageEmbeddings + densePromptEmbeddings
        let (c, h, w) = (src.shape[1], src.shape[2], src.shape[3])
        let (hs, keys) = transformer(
            imageEmbedding: src, imagePE: imagePE, pointEmbedding: tokens, outputTokens: outputTokens.shape[0])
        let iou = iouPredictionHead(hs.slice(alongAxis: 1, 0..<1).reshaped(to: [batch, c]))  // [B, T]
        let upscaledSAM = outputUpscaling(keys.permuted([0, 2, 1]).reshaped(to: [batch, c, h, w]))
        let hqFeatures =
            hq.embeddingEncoder(imageEmbeddings) + hq.compressVitFeat(vitFeatures.permuted([0, 3, 1, 2]))
        let upscaledHQ = hq.embeddingMaskfeature(upscaledSAM) + hqFeatures
        let (uc, uh, uw) = (upscaledSAM.shape[1], upscaledSAM.shape[2], upscaledSAM.shape[3])
        let hyperSAM = Tensor.concat(
            (0..<numMaskTokens).map { outputHypernetworksMLPs[$0](hs.slice(alongAxis: 1, (1 + $0)..<(2 + $0))) },
            alongAxis: 1)
        let hyperHQ = hq.hfMLP(hs.slice(alongAxis: 1, (1 + numMaskTokens)..<(2 + numMaskTokens)))
        let masksSAM = Tensor.matmul(hyperSAM, upscaledSAM.reshaped(to: [batch, uc, uh * uw]))  // [B, T, uh·uw]
        let masksHQ = Tensor.matmul(hyperHQ, upscaledHQ.reshaped(to: [batch, uc, uh * uw]))  // [B, 1, uh·uw]
        // The SAM mask of each prompt: the best multimask one by predicted IoU, or mask 0.
        let scores = iou.scalars, t = numMaskTokens
        var chosen: [Int] = [], chosenIoU: [Float] = []
        for b in 0..<batch {
            var best = multimaskOutput ? 1 : 0
            if multimaskOutput {
                for k in 2..<t where scores[b * t + k] > scores[b * t + best] { best = k }
            }
            chosen.append(b * t + best)
            chosenIoU.append(scores[b * t + best])
        }
        let plane = uh * uw
        var masks = masksHQ
        if !hqTokenOnly {
            masks = masksSAM.reshaped(to: [batch * t, plane]).gatheringRows(chosen).reshaped(to: [batch, 1, plane]) + masksHQ
        }
        return (masks.reshaped(to: [batch, 1, uh, uw]), Tensor(shape: [batch, 1], values: chosenIoU))
    }
}

extension MaskDecoder {
    /// The image-only part of SAM-HQ's HQ features, `embedding_encoder(embedding) +
    /// compress_vit_feat(early features)` [1, C/8, 4h, 4w]: the same for every prompt on one image
    /// (`predictHQ` recomputes it per call; the predictor makes it once per image for
    /// `predictHQNeeded`).
    public func hqImageFeatures(imageEmbeddings: Tensor, vitFeatures: Tensor) -> Tensor {
        guard let hq else { preconditionFailure("MaskDecoder.hqImageFeatures: not an HQ decoder") }
        return hq.embeddingEncoder(imageEmbeddings) + hq.compressVitFeat(vitFeatures.permuted([0, 3, 1, 2]))
    }

    /// `predictHQ` for the automatic mask generator (no tape): the final attention runs for the
    /// IoU token first; prompts `needed` drops (given the chosen IoU predictions [B, 1]) get zero
    /// masks, not computed. For the others the HQ mask is computed without SAM-HQ's refined
    /// [C/8, 4h, 4w] features: the hypernetwork vector h multiplies `embedding_maskfeature`'s last
    /// convolution and the image features, h·(conv₂(z) + b₂ + F) = conv(z; Σ_c h_c W₂[c]) + h·b₂ + h·F,
    /// a 1-output convolution instead of a C/8-output one (the same sums up to rounding;
    /// `predictHQ` is the oracle). Each prompt's upscaled embedding and refinement run one
    /// prompt at a time (8 + 16 MB at 64² tokens).
    /// - Parameters:
    ///   - hqImageFeatures: `hqImageFeatures(imageEmbeddings:vitFeatures:)` of this image.
    ///   - shared: with a dense embedding of batch 1, `sharedImage`'s result for these embeddings.
    /// - Returns: logits [B, 1, 4h, 4w] and the chosen IoU predictions [B, 1], as `predictHQ`.
    public func predictHQNeeded(
        imageEmbeddings: Tensor, imagePE: Tensor, sparsePromptEmbeddings: Tensor, densePromptEmbeddings: Tensor,
        hqImageFeatures: Tensor, multimaskOutput: Bool, hqTokenOnly: Bool, needed: (Tensor) -> [Bool],
        shared: TwoWayTransformer.SharedImage? = nil
    ) -> (masks: Tensor, iouPredictions: Tensor) {
        guard let hq else { preconditionFailure("MaskDecoder.predictHQNeeded: not an HQ decoder") }
        precondition(!GradMode.isEnabled, "MaskDecoder.predictHQNeeded: inference only (no tape)")
        let batch = sparsePromptEmbeddings.shape[0]
        let outputTokens = Tensor.concat([iouToken.weight, maskTokens.weight, hq.hfToken.weight], alongAxis: 0)
        let tokens = Self.tokens(outputTokens, then: sparsePromptEmbeddings)
        let sharing = shared != nil && densePromptEmbeddings.shape[0] == 1
        let src = sharing ? imageEmbeddings : imageEmbeddings + densePromptEmbeddings
        let (c, h, w) = (src.shape[1], src.shape[2], src.shape[3])
        let encoded = transformer.blocks(
            imageEmbedding: src, imagePE: imagePE, pointEmbedding: tokens, shared: sharing ? shared : nil)
        var keys = encoded.keys
        if keys.shape[0] != batch { keys = keys.expanded(to: [batch] + keys.shape.dropFirst()) }
        let keysWithPE = keys + encoded.keyPE
        let iouTokenOut = transformer.finalAttention(
            tokens: 0..<1, queries: encoded.queries, keys: keys, keysWithPE: keysWithPE, pointEmbedding: tokens)
        let scores = iouPredictionHead(iouTokenOut.reshaped(to: [batch, c])).scalars
        let t = numMaskTokens
        let chosen = (0..<batch).map { b in
            guard multimaskOutput else { return 0 }
            var best = 1
            for k in 2..<t where scores[b * t + k] > scores[b * t + best] { best = k }
            return best
        }
        let iou = Tensor(shape: [batch, 1], values: (0..<batch).map { scores[$0 * t + chosen[$0]] })
        let wanted = needed(iou)
        precondition(wanted.count == batch, "MaskDecoder: needed gave \(wanted.count) flags for \(batch) prompts")
        let kept = wanted.indices.filter { wanted[$0] }
        let (uh, uw) = (4 * h, 4 * w)
        let masks = Tensor(zeros: [batch, 1, uh, uw])
        if kept.isEmpty { return (masks, iou) }
        func rows(_ x: Tensor) -> Tensor {
            x.reshaped(to: [batch, x.count / batch]).gatheringRows(kept).reshaped(to: [kept.count] + x.shape.dropFirst())
        }
        let keptKeys = rows(keys)
        let tokensOut = transformer.finalAttention(
            tokens: 1..<outputTokens.shape[0], queries: rows(encoded.queries), keys: keptKeys,
            keysWithPE: rows(keysWithPE), pointEmbedding: rows(tokens))  // [K, t + 1, C]
        let hyperHQ = hq.hfMLP(tokensOut.slice(alongAxis: 1, t..<(t + 1)))  // [K, 1, C/8]
        let (conv1, norm, conv2) = hq.maskfeatureLayers
        let (c8, c4, plane) = (conv2.weight.shape[0], conv2.weight.shape[1], uh * uw)
        let image = hqImageFeatures.reshaped(to: [c8, plane])
        for (k, b) in kept.enumerated() {
            let tokenRow = tokensOut.slice(alongAxis: 0, k..<(k + 1))
            let hyperSAM = outputHypernetworksMLPs[chosen[b]](tokenRow.slice(alongAxis: 1, chosen[b]..<(chosen[b] + 1)))
            let hyper = hyperHQ.slice(alongAxis: 0, k..<(k + 1)).reshaped(to: [1, c8])
            let upscaledSAM = upscaled(
                keptKeys.slice(alongAxis: 0, k..<(k + 1)).permuted([0, 2, 1]).reshaped(to: [1, c, h, w]))
            let refined = norm(conv1(upscaledSAM))
            Kernels.gelu(refined.storage.base, refined.storage.base, count: refined.count)
            // conv₂ folded with the HQ hypernetwork vector: one output channel.
            let folded = Tensor.matmul(hyper, conv2.weight.reshaped(to: [c8, c4 * 9])).reshaped(to: [1, c4, 3, 3])
            let bias = Tensor.matmul(hyper, conv2.bias!.reshaped(to: [c8, 1])).reshaped(to: [1])
            var logits = refined.conv2d(weight: folded, bias: bias, padding: 1).reshaped(to: [1, plane])
            logits = logits + Tensor.matmul(hyper, image)
            if !hqTokenOnly {
                logits = logits + Tensor.matmul(hyperSAM.reshaped(to: [1, c8]), upscaledSAM.reshaped(to: [c8, plane]))
            }
            (masks.storage.base + b * plane).update(from: logits.storage.base, count: plane)
        }
        return (masks, iou)
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
