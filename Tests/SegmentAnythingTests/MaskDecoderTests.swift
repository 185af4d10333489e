import Autograd
import Testing

@testable import SegmentAnything

/// MaskDecoder (with its two-way transformer) against the official one, fed the reference's own
/// image embedding and prompt embeddings so that only the decoder is under test.
@Suite struct MaskDecoderTests {
    @Test(arguments: SAMFixtures.cases)
    func lowResLogitsAndIoUMatch(name: String) throws {
        let model = try SAMFixtures.model()
        let (encoderFile, file) = (try SAMFixtures.encoder(), try SAMFixtures.outputs())
        let embedding = try encoderFile.read("encoder/neck"), pe = try encoderFile.read("encoder/dense_pe")
        let (sparse, dense) = (try file.read("cases/\(name)/sparse"), try file.read("cases/\(name)/dense"))
        for (mode, multimask) in [("single", false), ("multi", true)] {
            let (masks, iou) = withoutGrad {
                model.maskDecoder(
                    imageEmbeddings: embedding, imagePE: pe, sparsePromptEmbeddings: sparse, densePromptEmbeddings: dense,
                    multimaskOutput: multimask)
            }
            let expectedMasks = try file.read("cases/\(name)/\(mode)/low_res")
            expectClose(masks, expectedMasks.reshaped(to: [1] + expectedMasks.shape), "\(name) \(mode) low-res logits")
            let expectedIoU = try file.read("cases/\(name)/\(mode)/iou")
            expectClose(iou, expectedIoU.reshaped(to: [1] + expectedIoU.shape), "\(name) \(mode) IoU")
        }
    }

    /// One shared dense plane (batch 1) gives what B copies of it give: the decoder's shared
    /// first-block path against the general one.
    @Test func sharedDenseEmbeddingEqualsRepeatedCopies() throws {
        let model = try SAMFixtures.model()
        let file = try SAMFixtures.encoder()
        let (embedding, pe) = (try file.read("encoder/neck"), try file.read("encoder/dense_pe"))
        var g = SeededGenerator(seed: 9)
        let sparse = Tensor.randomNormal([3, 2, 32], using: &g), plane = Tensor.randomNormal([1, 32, 8, 8], using: &g)
        withoutGrad {
            let shared = model.maskDecoder.predictMasks(
                imageEmbeddings: embedding, imagePE: pe, sparsePromptEmbeddings: sparse, densePromptEmbeddings: plane)
            let copies = model.maskDecoder.predictMasks(
                imageEmbeddings: embedding, imagePE: pe, sparsePromptEmbeddings: sparse,
                densePromptEmbeddings: Tensor.concat([plane, plane, plane], alongAxis: 0))
            expectClose(shared.masks, copies.masks, tolerance: 1e-6, "shared dense masks")
            expectClose(shared.iouPredictions, copies.iouPredictions, tolerance: 1e-6, "shared dense IoU")
        }
    }

    /// Attention to few keys without a tape (probabilities times the values through each head's
    /// output columns) equals the recorded path (heads' outputs, then the output projection),
    /// with queries shared by the key sets and with one query set per key set.
    @Test func fewKeysAttentionEqualsTheGeneralPath() throws {
        let attention = try SAMFixtures.model().maskDecoder.transformer.layers[0].crossAttnImageToToken
        let (c, heads, width) = (attention.embeddingDim, attention.numHeads, attention.internalDim)
        let keys = max(1, width / heads - 1)  // keys · heads < internal width: the few-keys path
        var g = SeededGenerator(seed: 11)
        for (bq, bk) in [(1, 3), (3, 3), (1, 1)] {
            let q = Tensor.randomNormal([bq, 20, c], using: &g)
            let k = Tensor.randomNormal([bk, keys, c], using: &g), v = Tensor.randomNormal([bk, keys, c], using: &g)
            let fast = withoutGrad { attention(q: q, k: k, v: v) }
            let general = attention(q: q.requiringGrad(), k: k, v: v)  // recording: the general path
            #expect(fast.shape == [max(bq, bk), 20, c])
            expectClose(fast, general.detached(), tolerance: 1e-5, "few keys, batches \(bq) and \(bk)")
            // The residual form seeds the output product with the residual (shared or per batch).
            for rb in Set([1, max(bq, bk)]) {
                let residual = Tensor.randomNormal([rb, 20, c], using: &g)
                let seeded = withoutGrad { attention(q: q, k: k, v: v, residual: residual) }
                expectClose(seeded, (residual + general).detached(), tolerance: 1e-5, "residual batch \(rb)")
            }
        }
    }

    /// A few queries over many keys per batch (a prompt's tokens attending to its image tokens)
    /// take the queries through the key and value projections: the same attention.
    @Test func fewQueriesAttentionEqualsTheGeneralPath() throws {
        let attention = try SAMFixtures.model().maskDecoder.transformer.layers[1].crossAttnTokenToImage
        let (c, heads, width) = (attention.embeddingDim, attention.numHeads, attention.internalDim)
        let queries = max(1, width / heads - 1)  // queries · heads < internal width
        var g = SeededGenerator(seed: 12)
        for batch in [1, 3] {
            let q = Tensor.randomNormal([batch, queries, c], using: &g)
            let k = Tensor.randomNormal([batch, 50, c], using: &g), v = Tensor.randomNormal([batch, 50, c], using: &g)
            let fast = withoutGrad { attention.attendingFewQueries(q: q, k: k, v: v) }
            let routed = withoutGrad { attention(q: q, k: k, v: v) }
            let general = attention(q: q.requiringGrad(), k: k, v: v)  // recording: the general path
            #expect(fast.shape == [batch, queries, c])
            #expect(routed.scalars == fast.scalars, "callAsFunction takes the few-queries path")
            expectClose(fast, general.detached(), tolerance: 1e-5, "few queries, batch \(batch)")
        }
    }

    /// Masks computed one row of image tokens at a time (no tape) equal the upscaling and
    /// hypernetwork product of the recorded path.
    @Test func masksByTokenRowsEqualTheUpscalingPath() throws {
        let decoder = try SAMFixtures.model().maskDecoder
        let (c, c8, masks, h, w) = (decoder.transformerDim, decoder.transformerDim / 8, decoder.numMaskTokens, 8, 6)
        var g = SeededGenerator(seed: 13)
        let tokens = Tensor.randomNormal([3, h * w, c], using: &g), hyper = Tensor.randomNormal([3, masks, c8], using: &g)
        let fast = withoutGrad { decoder.masksByTokenRows(hyperIn: hyper, imageTokens: tokens, height: h, width: w) }
        let upscaled = decoder.outputUpscaling(tokens.requiringGrad().permuted([0, 2, 1]).reshaped(to: [3, c, h, w]))
        let reference = Tensor.matmul(hyper, upscaled.reshaped(to: [3, c8, 16 * h * w])).reshaped(to: [3, masks, 4 * h, 4 * w])
        #expect(fast.shape == [3, masks, 4 * h, 4 * w])
        expectClose(fast, reference.detached(), tolerance: 1e-5, "masks by token rows")
    }

    /// The first transposed convolution through the blocks' trace (the shared tokens' product
    /// plus each prompt's few directions) gives the masks `masksByTokenRows` gives from the
    /// traced image tokens, for any subset of the prompts in any order.
    @Test func masksFromTheTraceEqualMasksFromTheImageTokens() throws {
        let decoder = try SAMFixtures.model().maskDecoder
        let transformer = decoder.transformer
        let (c, c8, masks, h, w) = (decoder.transformerDim, decoder.transformerDim / 8, decoder.numMaskTokens, 8, 6)
        let tokenCount = transformer.layers[0].crossAttnImageToToken.internalDim / transformer.numHeads - 1
        var g = SeededGenerator(seed: 14)
        // Image tokens with a channel mean three times their spread: the regrouped sums subtract
        // each token's mean from the shared product, so the cancellation is exercised.
        let src = Tensor.randomNormal([1, c, h, w], using: &g) + Tensor(scalar: 3)
        let pe = Tensor.randomNormal([1, c, h, w], using: &g)
        let tokens = Tensor.randomNormal([4, tokenCount, c], using: &g)
        let prompts = [2, 0, 3]
        let hyper = Tensor.randomNormal([prompts.count, masks, c8], using: &g)
        withoutGrad {
            let trace = TwoWayTransformer.ImageTokenTrace()
            let traced = transformer.blocks(imageEmbedding: src, imagePE: pe, pointEmbedding: tokens, trace: trace)
            let plain = transformer.blocks(imageEmbedding: src, imagePE: pe, pointEmbedding: tokens)
            #expect(trace.isValid && trace.levels.count == transformer.depth)
            #expect(traced.keys.scalars == plain.keys.scalars, "tracing changes no value")
            let keys = traced.keys.reshaped(to: [4, h * w * c]).gatheringRows(prompts).reshaped(to: [prompts.count, h * w, c])
            let reference = decoder.masksByTokenRows(hyperIn: hyper, imageTokens: keys, height: h, width: w)
            let fast = decoder.masksFromTrace(hyperIn: hyper, trace: trace, prompts: prompts, height: h, width: w)
            #expect(fast.shape == [prompts.count, masks, 4 * h, 4 * w])
            expectClose(fast, reference, tolerance: 1e-5, "masks through the trace")
        }
        // A general-path block (too many tokens for the few-keys attention) leaves the trace invalid.
        let many = Tensor.randomNormal([2, tokenCount + 2, c], using: &g)
        withoutGrad {
            let trace = TwoWayTransformer.ImageTokenTrace()
            _ = transformer.blocks(imageEmbedding: src, imagePE: pe, pointEmbedding: many, trace: trace)
            #expect(!trace.isValid)
        }
    }

    /// The in-place GELU upscaling equals the plain `outputUpscaling` bit for bit.
    @Test func upscalingInPlaceEqualsThePlainSequential() throws {
        let model = try SAMFixtures.model()
        var g = SeededGenerator(seed: 10)
        let x = Tensor.randomNormal([2, 32, 8, 8], using: &g)
        withoutGrad {
            let fused = model.maskDecoder.upscaled(x), plain = model.maskDecoder.outputUpscaling(x)
            #expect(fused.shape == plain.shape)
            #expect(fused.scalars == plain.scalars)
        }
    }

    @Test func multimaskSlicingKeepsMasksOneAndUp() throws {
        let model = try SAMFixtures.model()
        let file = try SAMFixtures.encoder()
        let (embedding, pe) = (try file.read("encoder/neck"), try file.read("encoder/dense_pe"))
        let sparse = Tensor(zeros: [1, 2, 32]), dense = Tensor(zeros: [1, 32, 8, 8])
        withoutGrad {
            let all = model.maskDecoder.predictMasks(
                imageEmbeddings: embedding, imagePE: pe, sparsePromptEmbeddings: sparse, densePromptEmbeddings: dense)
            let multi = model.maskDecoder(
                imageEmbeddings: embedding, imagePE: pe, sparsePromptEmbeddings: sparse, densePromptEmbeddings: dense,
                multimaskOutput: true)
            #expect(all.masks.shape == [1, 4, 32, 32] && multi.masks.shape == [1, 3, 32, 32])
            #expect(multi.masks.scalars == all.masks.slice(alongAxis: 1, 1..<4).scalars)
            #expect(multi.iouPredictions.scalars == all.iouPredictions.slice(alongAxis: 1, 1..<4).scalars)
        }
    }
}
