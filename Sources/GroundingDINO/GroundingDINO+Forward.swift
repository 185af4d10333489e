import Autograd
import Foundation

/// What the model returns for one image and caption (the last decoder layer's heads).
public struct GroundingDINOOutput {
    /// [queries, T]: each query's logit per caption token (the reference pads to 256 columns
    /// with −∞; those columns are left out).
    public var logits: Tensor
    /// [queries, 4]: (cx, cy, w, h) in [0, 1] of the image.
    public var boxes: Tensor
}

/// Intermediate results, for checking against the reference stage by stage.
public struct GroundingDINOTrace {
    public var encodedText: Tensor?
    public var backboneFeatures: [Tensor] = []
    public var projected: [Tensor] = []
    public var memory: Tensor?
    public var memoryText: Tensor?
    public var encoderClass: Tensor?
    public var topk: [Int] = []
    public var references: [Tensor] = []
    public var decoderOutputs: [Tensor] = []
    /// When set before the call, the encoder's selected tokens are these instead of the top-k
    /// (a parity check against the official model: proposals whose scores tie to within rounding
    /// may come out in the other order, and each query slot has its own learned content).
    public var selection: [Int]?
    public init() {}
}

extension GroundingDINO {
    /// Boxes and token logits for `image` (normalised, [1, 3, H, W]) and `prompt`. Inference:
    /// call it inside `withoutGrad` (or on weights that do not require gradients) to record no tape.
    public func callAsFunction(image: Tensor, prompt: TokenizedPrompt) -> GroundingDINOOutput {
        var trace: GroundingDINOTrace?
        return forward(image: image, prompt: prompt, trace: &trace)
    }

    /// As `callAsFunction`, filling `trace` with the intermediate results.
    public func forward(image: Tensor, prompt: TokenizedPrompt, trace: inout GroundingDINOTrace?) -> GroundingDINOOutput {
        precondition(
            image.rank == 4 && image.shape[0] == 1 && image.shape[1] == 3,
            "GroundingDINO: image \(image.shape) is not [1, 3, H, W]")
        let d = configuration.hiddenDim
        let encodedText = featMap(bert(prompt))
        trace?.encodedText = encodedText

        // Image features: three backbone levels and the extra ones, projected to d channels.
        let features = backbone(image)
        trace?.backboneFeatures = features
        var sources: [Tensor] = []
        for (level, projection) in inputProj.enumerated() {
            let input = level < features.count ? features[level] : (level == features.count ? features.last! : sources.last!)
            sources.append(projection.norm(projection.conv(input)))
        }
        trace?.projected = sources
        let shapes = sources.map { (height: $0.shape[2], width: $0.shape[3]) }

        // Flattened tokens, with sine positions plus each level's embedding.
        var tokens: [Tensor] = [], positions: [Tensor] = []
        for (level, source) in sources.enumerated() {
            let (h, w) = (source.shape[2], source.shape[3])
            tokens.append(source.reshaped(to: [1, d, h * w]).permuted([0, 2, 1]))
            let sine = SineEncoding.image(height: h, width: w, count: d / 2).reshaped(to: [1, d, h * w]).permuted([0, 2, 1])
            positions.append(sine + levelEmbed.slice(alongAxis: 0, level..<(level + 1)).reshaped(to: [1, 1, d]))
        }
        var memory = Tensor.concat(tokens, alongAxis: 1)
        let position = Tensor.concat(positions, alongAxis: 1)
        var memoryText = encodedText
        let (textPosition, textMask) = (
            SineEncoding.text(positionIDs: [prompt.positionIDs], count: d), Self.attentionBias(prompt)
        )
        let reference = Self.encoderReference(shapes)
        for i in 0..<encoderLayers.count {
            let fused = fusionLayers[i](v: memory, l: memoryText)
            memoryText = textLayers[i](fused.l, pos: textPosition, mask: textMask)
            memory = encoderLayers[i](fused.v, pos: position, reference: reference, shapes: shapes)
        }
        trace?.memory = memory
        trace?.memoryText = memoryText
        return decode(memory: memory, memoryText: memoryText, shapes: shapes, trace: &trace)
    }

    /// Query selection and the decoder.
    func decode(memory: Tensor, memoryText: Tensor, shapes: [(height: Int, width: Int)], trace: inout GroundingDINOTrace?)
        -> GroundingDINOOutput
    {
        let (d, queries) = (configuration.hiddenDim, configuration.queries)
        let (proposals, valid) = Self.proposals(shapes)
        let masked = memory * Tensor(shape: [1, valid.count, 1], values: valid.map { $0 ? 1 : 0 })
        let outputMemory = encOutputNorm(encOutput(masked))
        let classes = Tensor.matmul(outputMemory, memoryText, transposeB: true)  // [1, S, T]
        trace?.encoderClass = classes
        let t = memoryText.shape[1]
        let scores = classes.scalars  // one copy: `scalars` copies the storage each time it is read
        let best = (0..<valid.count).map { s in scores[(s * t)..<((s + 1) * t)].max() ?? -.infinity }
        // torch.topk: the largest first (a stable order among equals).
        let topk =
            trace?.selection
            ?? Array(best.indices.sorted { best[$0] > best[$1] || (best[$0] == best[$1] && $0 < $1) }.prefix(queries))
        trace?.topk = topk
        let coordinates = (encOutBBoxEmbed(outputMemory) + proposals).scalars
        var reference = Tensor(shape: [topk.count, 4], values: topk.flatMap { coordinates[($0 * 4)..<($0 * 4 + 4)] }).sigmoid()
        var target = tgtEmbed.weight.slice(alongAxis: 0, 0..<topk.count).reshaped(to: [1, topk.count, d])
        var output = GroundingDINOOutput(logits: Tensor(zeros: [0]), boxes: Tensor(zeros: [0]))
        for layer in decoderLayers.elements {
            trace?.references.append(reference)
            let q = topk.count
            let levelReference = reference.reshaped(to: [1, q, 1, 4]).expanded(to: [1, q, configuration.levels, 4])
            let queryPos = refPointHead(SineEncoding.boxes(reference, count: d / 2).reshaped(to: [1, q, 2 * d]))
            target = layer(
                target, queryPos: queryPos, reference: levelReference, memory: memory, memoryText: memoryText, shapes: shapes)
            trace?.decoderOutputs.append(target)
            let unsigmoided = Self.inverseSigmoid(reference)
            let hidden = decoderNorm(target)
            output = GroundingDINOOutput(
                logits: Tensor.matmul(hidden, memoryText, transposeB: true).reshaped(to: [q, t]),
                boxes: (bboxEmbed(hidden).reshaped(to: [q, 4]) + unsigmoided).sigmoid())
            reference = (bboxEmbed(target).reshaped(to: [q, 4]) + unsigmoided).sigmoid().detached()
        }
        trace?.references.append(reference)
        return output
    }

    /// The text self-attention bias [1, 1, T, T]: 0 where the sub-sentence mask allows, −∞ elsewhere.
    static func attentionBias(_ prompt: TokenizedPrompt) -> Tensor {
        let t = prompt.ids.count
        return Tensor(shape: [1, 1, t, t], values: prompt.selfAttention.map { $0 ? 0 : -.infinity })
    }

    /// Encoder reference points [1, S, L, 2]: each token's pixel centre (x, y) in [0, 1], the
    /// same for every level (no padding, so the valid ratios are 1).
    static func encoderReference(_ shapes: [(height: Int, width: Int)]) -> Tensor {
        var values: [Float] = []
        for (h, w) in shapes {
            for i in 0..<h {
                for j in 0..<w {
                    let point = [(Float(j) + 0.5) / Float(w), (Float(i) + 0.5) / Float(h)]
                    for _ in shapes { values += point }
                }
            }
        }
        return Tensor(shape: [1, values.count / (2 * shapes.count), shapes.count, 2], values: values)
    }

    /// gen_encoder_output_proposals without padding: per token, the box centred on its pixel of
    /// side 0.05·2^level, unsigmoided; invalid (any coordinate outside (0.01, 0.99)) → +∞.
    /// Returns [1, S, 4] and the validity per token.
    static func proposals(_ shapes: [(height: Int, width: Int)]) -> (Tensor, [Bool]) {
        var values: [Float] = [], valid: [Bool] = []
        for (level, (h, w)) in shapes.enumerated() {
            let size = 0.05 * Float(1 << level)
            for i in 0..<h {
                for j in 0..<w {
                    let box = [(Float(j) + 0.5) / Float(w), (Float(i) + 0.5) / Float(h), size, size]
                    let ok = box.allSatisfy { $0 > 0.01 && $0 < 0.99 }
                    valid.append(ok)
                    values += box.map { ok ? logf($0 / (1 - $0)) : .infinity }
                }
            }
        }
        return (Tensor(shape: [1, valid.count, 4], values: values), valid)
    }

    /// inverse_sigmoid(x, eps=1e-3): log(max(x, eps) / max(1 − x, eps)) of x clamped to [0, 1].
    static func inverseSigmoid(_ x: Tensor, epsilon: Float = 1e-3) -> Tensor {
        Tensor(
            shape: x.shape,
            values: x.scalars.map { v in
                let c = min(max(v, 0), 1)
                return logf(max(c, epsilon) / max(1 - c, epsilon))
            })
    }
}
