import Autograd
import Layers

// The attention modules of Grounding DINO's transformer: torch.nn.MultiheadAttention, the
// multi-scale deformable attention (ms_deform_attn.py) and the bi-directional image↔text
// attention of the feature enhancer (fuse_modules.py). Batch-first tensors throughout.

/// torch.nn.MultiheadAttention: `in_proj_weight` [3d, d] (q; k; v), `in_proj_bias` [3d],
/// `out_proj.*`.
public final class TorchMultiheadAttention: Module {
    public let inProjWeight: Tensor
    public let inProjBias: Tensor
    public let outProj: Linear
    public let heads: Int

    public init(dim: Int, heads: Int) {
        inProjWeight = Tensor.parameter(uninitialized: [3 * dim, dim])
        inProjBias = Tensor.parameter(uninitialized: [3 * dim])
        outProj = Linear(inputFeatures: dim, outputFeatures: dim)
        self.heads = heads
    }

    public var namedParameters: [(String, Tensor)] { [("in_proj_weight", inProjWeight), ("in_proj_bias", inProjBias)] }
    public var namedChildren: [(String, Module)] { [("out_proj", outProj)] }

    /// query [B, L, d], key and value [B, S, d] → [B, L, d]; `bias` broadcasts against
    /// [B, heads, L, S] (−∞ where attention is not allowed).
    public func callAsFunction(query: Tensor, key: Tensor, value: Tensor, bias: Tensor? = nil) -> Tensor {
        let d = inProjWeight.shape[1]
        func project(_ x: Tensor, _ k: Int) -> Tensor {
            Tensor.linear(
                x, weight: inProjWeight.slice(alongAxis: 0, (k * d)..<((k + 1) * d)),
                bias: inProjBias.slice(alongAxis: 0, (k * d)..<((k + 1) * d)))
        }
        let out = MultiHead.attention(
            query: project(query, 0), key: project(key, 1), value: project(value, 2), heads: heads, bias: bias)
        return outProj(out)
    }
}

/// Multi-scale deformable attention (`MultiScaleDeformableAttention`): per head, level and point
/// a learned offset around the reference point and a weight (softmax over levels × points), the
/// value maps sampled bilinearly there. Keys `sampling_offsets.*`, `attention_weights.*`,
/// `value_proj.*`, `output_proj.*`.
public final class DeformableAttention: Module {
    public let samplingOffsets: Linear
    public let attentionWeights: Linear
    public let valueProj: Linear
    public let outputProj: Linear
    public let heads: Int, levels: Int, points: Int

    public init(dim: Int, heads: Int, levels: Int, points: Int) {
        samplingOffsets = Linear(inputFeatures: dim, outputFeatures: heads * levels * points * 2)
        attentionWeights = Linear(inputFeatures: dim, outputFeatures: heads * levels * points)
        valueProj = Linear(inputFeatures: dim, outputFeatures: dim)
        outputProj = Linear(inputFeatures: dim, outputFeatures: dim)
        (self.heads, self.levels, self.points) = (heads, levels, points)
    }

    public var namedChildren: [(String, Module)] {
        [
            ("sampling_offsets", samplingOffsets), ("attention_weights", attentionWeights), ("value_proj", valueProj),
            ("output_proj", outputProj),
        ]
    }

    /// - Parameters:
    ///   - query: [B, Q, d].
    ///   - value: [B, S, d], the levels' pixels concatenated.
    ///   - reference: [B, Q, L, 2] points (x, y) or [B, Q, L, 4] boxes (cx, cy, w, h), in [0, 1].
    ///   - shapes: each level's (height, width).
    /// - Returns: [B, Q, d].
    public func callAsFunction(
        query: Tensor, value: Tensor, reference: Tensor, shapes: [(height: Int, width: Int)]
    ) -> Tensor {
        let (b, q, d) = (query.shape[0], query.shape[1], query.shape[2])
        let s = value.shape[1]
        let v = valueProj(value).reshaped(to: [b, s, heads, d / heads])
        let offsets = samplingOffsets(query).reshaped(to: [b, q, heads, levels, points, 2])
        let weights = attentionWeights(query).reshaped(to: [b, q, heads, levels * points]).softmax(alongAxis: 3)
            .reshaped(to: [b, q, heads, levels, points])
        let locations: Tensor
        let recording = GradMode.isEnabled && (reference.requiresGrad || offsets.requiresGrad)
        if !recording {
            locations = Self.locations(reference: reference, offsets: offsets, shapes: shapes, points: points)
        } else if reference.shape[3] == 2 {
            let normalizer = Tensor(
                shape: [1, 1, 1, levels, 1, 2], values: shapes.flatMap { [Float($0.width), Float($0.height)] })
            locations = reference.reshaped(to: [b, q, 1, levels, 1, 2]) + offsets / normalizer
        } else {
            let centre = reference.slice(alongAxis: 3, 0..<2).reshaped(to: [b, q, 1, levels, 1, 2])
            let size = reference.slice(alongAxis: 3, 2..<4).reshaped(to: [b, q, 1, levels, 1, 2])
            locations = centre + offsets / Float(points) * size * 0.5
        }
        let out = Tensor.multiScaleDeformableAttention(value: v, levels: shapes, locations: locations, weights: weights)
        return outputProj(out)
    }

    /// The sampling locations [B, Q, heads, L, P, 2] in one pass, without a tape: for points,
    /// reference + offset / (W_l, H_l); for boxes, centre + offset / P · size · 0.5 (the
    /// reference's order of operations, so the same floats as the composed form).
    static func locations(reference: Tensor, offsets: Tensor, shapes: [(height: Int, width: Int)], points: Int) -> Tensor {
        let (b, q, heads, levels) = (offsets.shape[0], offsets.shape[1], offsets.shape[2], offsets.shape[3])
        let d = reference.shape[3]
        let out = Tensor(uninitialized: offsets.shape)
        let (r, o, y) = (reference.storage.base, offsets.storage.base, out.storage.base)
        let perQuery = heads * levels * points * 2
        parallelFor(b * q, minimumPerThread: 256) { range in
            for bq in range {
                for h in 0..<heads {
                    for l in 0..<levels {
                        let ref = r + (bq * levels + l) * d
                        for p in 0..<points {
                            let i = bq * perQuery + ((h * levels + l) * points + p) * 2
                            if d == 2 {
                                y[i] = ref[0] + o[i] / Float(shapes[l].width)
                                y[i + 1] = ref[1] + o[i + 1] / Float(shapes[l].height)
                            } else {
                                y[i] = ref[0] + o[i] / Float(points) * ref[2] * 0.5
                                y[i + 1] = ref[1] + o[i + 1] / Float(points) * ref[3] * 0.5
                            }
                        }
                    }
                }
            }
        }
        return out
    }
}

/// The image↔text fusion of the feature enhancer (`BiAttentionBlock`): both sides normalised,
/// attended to each other (`BiMultiHeadAttention`), and added back scaled by learned layer scales.
/// Keys `gamma_v`, `gamma_l`, `layer_norm_v.*`, `layer_norm_l.*`, `attn.{v,l,values_v,values_l,out_v,out_l}_proj.*`.
public final class BiAttentionBlock: Module {
    public let layerNormV: LayerNorm
    public let layerNormL: LayerNorm
    public let vProj, lProj, valuesVProj, valuesLProj, outVProj, outLProj: Linear
    public let gammaV: Tensor
    public let gammaL: Tensor
    public let heads: Int

    public init(imageDim: Int, textDim: Int, embedDim: Int, heads: Int) {
        layerNormV = LayerNorm(imageDim)
        layerNormL = LayerNorm(textDim)
        vProj = Linear(inputFeatures: imageDim, outputFeatures: embedDim)
        lProj = Linear(inputFeatures: textDim, outputFeatures: embedDim)
        valuesVProj = Linear(inputFeatures: imageDim, outputFeatures: embedDim)
        valuesLProj = Linear(inputFeatures: textDim, outputFeatures: embedDim)
        outVProj = Linear(inputFeatures: embedDim, outputFeatures: imageDim)
        outLProj = Linear(inputFeatures: embedDim, outputFeatures: textDim)
        gammaV = Tensor.parameter(uninitialized: [imageDim])
        gammaL = Tensor.parameter(uninitialized: [textDim])
        self.heads = heads
    }

    public var namedParameters: [(String, Tensor)] { [("gamma_v", gammaV), ("gamma_l", gammaL)] }
    public var namedChildren: [(String, Module)] {
        [
            ("layer_norm_v", layerNormV), ("layer_norm_l", layerNormL), ("attn.v_proj", vProj), ("attn.l_proj", lProj),
            ("attn.values_v_proj", valuesVProj), ("attn.values_l_proj", valuesLProj), ("attn.out_v_proj", outVProj),
            ("attn.out_l_proj", outLProj),
        ]
    }

    /// Image tokens v [B, N, dv] and text tokens l [B, T, dl] → both updated. `imagePadding`
    /// [B·N] and `textPadding` [B·T] mark padding tokens (true), which the other side does not attend to.
    public func callAsFunction(v image: Tensor, l text: Tensor, imagePadding: [Bool]? = nil, textPadding: [Bool]? = nil)
        -> (v: Tensor, l: Tensor)
    {
        let v = layerNormV(image), l = layerNormL(text)
        let recording = GradMode.isEnabled && ([image, text] + stateDict().map(\.tensor)).contains { $0.requiresGrad }
        if !recording { return attendInference(v: v, l: l, imagePadding: imagePadding, textPadding: textPadding) }
        let (b, n, t) = (v.shape[0], v.shape[1], l.shape[1])
        let embed = vProj.weight.shape[0], hd = embed / heads
        func split(_ x: Tensor, _ count: Int) -> Tensor {
            x.reshaped(to: [b, count, heads, hd]).permuted([0, 2, 1, 3]).reshaped(to: [b * heads, count, hd])
        }
        func merge(_ x: Tensor, _ count: Int) -> Tensor {
            x.reshaped(to: [b, heads, count, hd]).permuted([0, 2, 1, 3]).reshaped(to: [b, count, embed])
        }
        /// Scores [B·heads, rows, columns] with −∞ in the padded columns of each batch.
        func masked(_ scores: Tensor, _ padding: [Bool]?, rows: Int, columns: Int) -> Tensor {
            guard let padding, padding.contains(true) else { return scores }
            let bias = Tensor(shape: [b, 1, 1, columns], values: padding.map { $0 ? -.infinity : 0 })
            return (scores.reshaped(to: [b, heads, rows, columns]) + bias).reshaped(to: [b * heads, rows, columns])
        }
        let query = split(vProj(v) * Float(1 / Double(hd).squareRoot()), n)
        var scores = Tensor.matmul(query, split(lProj(l), t), transposeB: true)  // [B·heads, N, T]
        // One maximum over the whole tensor, then both clamps, as the reference (stable_softmax_2d).
        scores = (scores - scores.max()).clamped(min: -50000).clamped(max: 50000)
        let transposed = scores.transposedLastTwo()
        let textScores = (transposed - transposed.max(alongAxis: 2, keepingDims: true)).clamped(min: -50000)
            .clamped(max: 50000)
        let outV = Tensor.matmul(masked(scores, textPadding, rows: n, columns: t).softmax(alongAxis: 2), split(valuesLProj(l), t))
        let outL = Tensor.matmul(
            masked(textScores, imagePadding, rows: t, columns: n).softmax(alongAxis: 2), split(valuesVProj(v), n))
        return (v + gammaV * outVProj(merge(outV, n)), l + gammaL * outLProj(merge(outL, t)))
    }
}

extension BiAttentionBlock {
    /// The same arithmetic without a tape, the projections reassociated around the attention so
    /// no image-side projection to the 1024-wide embedding is made: the keys go through the query
    /// projection (scores = v · (scale·W_qᵀ·kᵀ) + scale·b_q·kᵀ), the text values through the
    /// output projection (Δv = attention · (values_l · W_outᵀ) + b_out), and the text side
    /// attends to the normalised image tokens before their value projection (Σᵢ aᵢ·(W·vᵢ + b) =
    /// W·Σᵢ aᵢ·vᵢ + b, each row of a summing to 1). Each layer's products at Swin-T's 800x1333
    /// fall from ~20 G to ~3 G multiply-adds; the results differ from the reference's order by
    /// rounding only. Scores are laid out [B, N, heads·T], so the image side's output is one product.
    func attendInference(v: Tensor, l: Tensor, imagePadding: [Bool]?, textPadding: [Bool]?) -> (v: Tensor, l: Tensor) {
        let (b, n, t, dv) = (v.shape[0], v.shape[1], l.shape[1], v.shape[2])
        let embed = vProj.weight.shape[0], hd = embed / heads, ht = heads * t
        let scale = Float(1 / Double(hd).squareRoot())
        let keys = lProj(l), valuesL = valuesLProj(l)  // [B, T, embed]
        let (vp, kp, wq) = (v.storage.base, keys.storage.base, vProj.weight.storage.base)
        // scores[b, i, h·T + j] = scale · (W_q^h·v_i + b_q^h) · k_j^h
        let scores = Tensor(uninitialized: [b, n, ht])
        let keyed = Tensor(uninitialized: [dv, ht])
        var offsets = [Float](repeating: 0, count: ht)
        for batch in 0..<b {
            let kb = kp + batch * t * embed
            for h in 0..<heads {
                Kernels.gemm(
                    transA: true, transB: true, m: dv, n: t, k: hd, alpha: scale, a: wq + h * hd * dv, lda: dv,
                    b: kb + h * hd, ldb: embed, c: keyed.storage.base + h * t, ldc: ht)
                if let bq = vProj.bias?.storage.base {
                    for j in 0..<t {
                        var dot: Float = 0
                        for d in 0..<hd { dot += bq[h * hd + d] * kb[j * embed + h * hd + d] }
                        offsets[h * t + j] = scale * dot
                    }
                }
            }
            let sb = scores.storage.base + batch * n * ht
            Kernels.fillRows(sb, offsets, rows: n, columns: ht)
            Kernels.gemm(m: n, n: ht, k: dv, a: vp + batch * n * dv, b: keyed.storage.base, beta: 1, c: sb)
        }
        // One maximum over the whole tensor, then both clamps (the reference's order).
        let s = scores.storage.base, count = scores.count
        let top = Kernels.maximum(s, count: count)
        parallelFor(count, minimumPerThread: 1 << 16) { range in
            for i in range { s[i] = min(max(s[i] - top, -50000), 50000) }
        }
        // The text side: scores transposed to [B, heads·T, N], each row less its maximum, clamped; padded images out.
        let textScores = Tensor(uninitialized: [b, ht, n])
        let ts = textScores.storage.base
        for batch in 0..<b {
            let sb = s + batch * n * ht, tb = ts + batch * ht * n
            var rowMax = [Float](repeating: -.infinity, count: ht)
            for i in 0..<n {
                for c in 0..<ht { rowMax[c] = max(rowMax[c], sb[i * ht + c]) }
            }
            let tile = 64
            rowMax.withUnsafeBufferPointer { top in
                parallelFor((n + tile - 1) / tile, minimumPerThread: 16) { range in
                    for block in range {
                        let i0 = block * tile, i1 = min(n, i0 + tile)
                        for c in 0..<ht {
                            for i in i0..<i1 {
                                let padded = imagePadding?[batch * n + i] == true
                                tb[c * n + i] = padded ? -.infinity : min(max(sb[i * ht + c] - top[c], -50000), 50000)
                            }
                        }
                    }
                }
            }
        }
        if let textPadding, textPadding.contains(true) {
            for batch in 0..<b {
                for i in 0..<n {
                    for h in 0..<heads {
                        for j in 0..<t where textPadding[batch * t + j] { s[(batch * n + i) * ht + h * t + j] = -.infinity }
                    }
                }
            }
        }
        let imageAttention = scores.reshaped(to: [b * n * heads, t]).softmax(alongAxis: 1)
        let textAttention = textScores.reshaped(to: [b * ht, n]).softmax(alongAxis: 1)
        let deltaV = Tensor(uninitialized: [b, n, dv]), mixedL = Tensor(uninitialized: [b, t, embed])
        let projectedValues = Tensor(uninitialized: [ht, dv]), attendedImage = Tensor(uninitialized: [ht, dv])
        let (wo, wvv) = (outVProj.weight.storage.base, valuesVProj.weight.storage.base)
        for batch in 0..<b {
            // Δv = attention [N, heads·T] · (values_l^h · W_out^hᵀ stacked over heads) + b_out
            for h in 0..<heads {
                Kernels.gemm(
                    transB: true, m: t, n: dv, k: hd, a: valuesL.storage.base + batch * t * embed + h * hd, lda: embed,
                    b: wo + h * hd, ldb: embed, c: projectedValues.storage.base + h * t * dv)
            }
            let db = deltaV.storage.base + batch * n * dv
            if let bo = outVProj.bias?.storage.base {
                Kernels.fillRows(db, bo, rows: n, columns: dv)
            } else {
                db.update(repeating: 0, count: n * dv)
            }
            Kernels.gemm(
                m: n, n: dv, k: ht, a: imageAttention.storage.base + batch * n * ht, b: projectedValues.storage.base,
                beta: 1, c: db)
            // The text side: attention [heads·T, N] · v, then each head's rows through its value projection.
            Kernels.gemm(
                m: ht, n: dv, k: n, a: textAttention.storage.base + batch * ht * n, b: vp + batch * n * dv,
                c: attendedImage.storage.base)
            let mb = mixedL.storage.base + batch * t * embed
            if let bvv = valuesVProj.bias?.storage.base {
                Kernels.fillRows(mb, bvv, rows: t, columns: embed)
            } else {
                mb.update(repeating: 0, count: t * embed)
            }
            for h in 0..<heads {
                Kernels.gemm(
                    transB: true, m: t, n: hd, k: dv, a: attendedImage.storage.base + h * t * dv, b: wvv + h * hd * dv,
                    beta: 1, c: mb + h * hd, ldc: embed)
            }
        }
        return (v + gammaV * deltaV, l + gammaL * outLProj(mixedL))
    }
}
