import Autograd
import Layers

// segment_anything/modeling/prompt_encoder.py.

/// Point prompts of a batch: coordinates in the model's input frame (pixels of the resized,
/// padded image, x then y) and one label per point: 1 foreground, 0 background, -1 padding
/// ("not a point"); 2 and 3 mark box corners in the reference's ONNX export and are embedded
/// with the position encoding only, as in the reference.
public struct PointPrompts {
    /// [B, N, 2] (x, y).
    public var coordinates: Tensor
    /// B·N labels, row-major (point n of prompt b at b·N + n).
    public var labels: [Int]

    /// Prompts from [B, N, 2] coordinates and B·N labels.
    public init(coordinates: Tensor, labels: [Int]) {
        precondition(
            coordinates.rank == 3 && coordinates.shape[2] == 2 && labels.count == coordinates.shape[0] * coordinates.shape[1],
            "PointPrompts: coordinates \(coordinates.shape) (want [B, N, 2]) and \(labels.count) labels")
        self.coordinates = coordinates
        self.labels = labels
    }
}

/// Encodes prompts for the mask decoder (prompt_encoder.py, `PromptEncoder`): points and box
/// corners become sparse tokens (random-Fourier position encoding plus a learned embedding per
/// kind), a mask becomes a dense embedding by a small strided CNN; no mask gives a learned
/// constant.
///
/// Keys: `pe_layer.positional_encoding_gaussian_matrix`, `point_embeddings.{0..3}.weight`
/// (background point, foreground point, top-left and bottom-right box corner),
/// `not_a_point_embed.weight`, `mask_downscaling.{0,1,3,4,6}.*`, `no_mask_embed.weight`.
public final class PromptEncoder: Module {
    /// Width of the sparse tokens and dense embedding.
    public let embedDim: Int
    /// Token grid of the image embedding (height, width).
    public let imageEmbeddingSize: (height: Int, width: Int)
    /// The padded encoder input (height, width) that point coordinates refer to.
    public let inputImageSize: (height: Int, width: Int)
    /// The random-Fourier position encoding (embedDim / 2 frequencies).
    public let peLayer: PositionEmbeddingRandom
    /// Background point, foreground point, box top-left, box bottom-right; each [1, embedDim].
    public let pointEmbeddings: ModuleList<Embedding>
    /// The embedding of a padding point (label -1), [1, embedDim].
    public let notAPointEmbed: Embedding
    /// Size of mask inputs: 4x the embedding grid (256 x 256 for the official models).
    public let maskInputSize: (height: Int, width: Int)
    /// conv2x2/2 → LayerNorm2d → GELU → conv2x2/2 → LayerNorm2d → GELU → conv1x1.
    public let maskDownscaling: Sequential
    /// The dense embedding used when no mask is given, [1, embedDim].
    public let noMaskEmbed: Embedding

    /// The prompt encoder of `_build_sam`; weights not initialised.
    public init(
        embedDim: Int, imageEmbeddingSize: (height: Int, width: Int), inputImageSize: (height: Int, width: Int),
        maskInChannels: Int
    ) {
        self.embedDim = embedDim
        self.imageEmbeddingSize = imageEmbeddingSize
        self.inputImageSize = inputImageSize
        peLayer = PositionEmbeddingRandom(numPosFeats: embedDim / 2)
        // pos/neg point + 2 box corners
        pointEmbeddings = ModuleList((0..<4).map { _ in Embedding(count: 1, dimensions: embedDim) })
        notAPointEmbed = Embedding(count: 1, dimensions: embedDim)
        maskInputSize = (4 * imageEmbeddingSize.height, 4 * imageEmbeddingSize.width)
        var generator = SeededGenerator(seed: 0)  // Conv2d draws weights; load(from:) replaces them
        let conv1 = Conv2d(
            inputChannels: 1, outputChannels: maskInChannels / 4, kernelSize: 2, stride: 2, bias: true,
            generator: &generator)
        let norm1 = LayerNorm2d(maskInChannels / 4)
        let act1 = Activation(.gelu)
        let conv2 = Conv2d(
            inputChannels: maskInChannels / 4, outputChannels: maskInChannels, kernelSize: 2, stride: 2,
            bias: true, generator: &generator)
        let norm2 = LayerNorm2d(maskInChannels)
        let act2 = Activation(.gelu)
        let conv3 = Conv2d(
            inputChannels: maskInChannels, outputChannels: embedDim, kernelSize: 1, bias: true,
            generator: &generator)
        maskDownscaling = Sequential([conv1, norm1, act1, conv2, norm2, act2, conv3]) { x in
            conv3(act2(norm2(conv2(act1(norm1(conv1(x)))))))
        }
        noMaskEmbed = Embedding(count: 1, dimensions: embedDim)
    }

    public var namedChildren: [(String, Module)] {
        [
            ("pe_layer", peLayer), ("point_embeddings", pointEmbeddings), ("not_a_point_embed", notAPointEmbed),
            ("mask_downscaling", maskDownscaling), ("no_mask_embed", noMaskEmbed),
        ]
    }

    /// The position encoding of every cell of the image embedding (`get_dense_pe`).
    /// - Returns: [1, embedDim, h, w].
    public func densePositionalEncoding() -> Tensor {
        let pe = peLayer(size: imageEmbeddingSize)
        return pe.reshaped(to: [1] + pe.shape)
    }

    /// Sparse tokens of point prompts (`_embed_points`). With `pad` (no box follows) a point
    /// labelled -1 is appended to every prompt, as the reference does.
    /// - Returns: [B, N (+1), embedDim].
    public func embedPoints(_ points: PointPrompts, pad: Bool) -> Tensor {
        var coordinates = points.coordinates + 0.5  // shift to the centre of the pixel
        var labels = points.labels
        let (b, n) = (coordinates.shape[0], coordinates.shape[1])
        if pad {
            coordinates = Tensor.concat([coordinates, Tensor(zeros: [b, 1, 2])], alongAxis: 1)
            labels = (0..<b).flatMap { Array(labels[($0 * n)..<($0 * n + n)]) + [-1] }
        }
        let encoding = peLayer(coordinates: coordinates, imageSize: inputImageSize)
        // Per-point 0/1 selectors [B, N, 1]: the reference's boolean-mask assignments as products.
        func selector(_ test: (Int) -> Bool) -> Tensor {
            Tensor(shape: [b, labels.count / b, 1], values: labels.map { test($0) ? 1 : 0 })
        }
        return encoding * selector { $0 != -1 } + selector { $0 == -1 } * notAPointEmbed.weight
            + selector { $0 == 0 } * pointEmbeddings[0].weight + selector { $0 == 1 } * pointEmbeddings[1].weight
    }

    /// Sparse tokens of box prompts (`_embed_boxes`): the two corners, each with its embedding.
    /// - Parameter boxes: [B, 4] (x0, y0, x1, y1) in the input frame.
    /// - Returns: [B, 2, embedDim].
    public func embedBoxes(_ boxes: Tensor) -> Tensor {
        let corners = (boxes + 0.5).reshaped(to: [-1, 2, 2])
        let encoding = peLayer(coordinates: corners, imageSize: inputImageSize)
        let cornerEmbeddings = Tensor.concat([pointEmbeddings[2].weight, pointEmbeddings[3].weight], alongAxis: 0)
        return encoding + cornerEmbeddings.reshaped(to: [1, 2, embedDim])
    }

    /// The dense embedding of mask inputs (`_embed_masks`). [B, 1, 4h, 4w] → [B, embedDim, h, w].
    public func embedMasks(_ masks: Tensor) -> Tensor { maskDownscaling(masks) }

    /// Sparse and dense embeddings of a batch of prompts (`forward`). The batch size comes from
    /// the first prompt kind given (points, boxes, masks), 1 when none is.
    /// - Parameters:
    ///   - boxes: [B, 4] in the input frame.
    ///   - masks: [B, 1, 4h, 4w] mask logits (a previous prediction's low-res output).
    /// - Returns: sparse [B, points (+1 pad, when no box) + 2·(box), embedDim] and dense
    ///   [B, embedDim, h, w].
    public func callAsFunction(points: PointPrompts?, boxes: Tensor?, masks: Tensor?) -> (sparse: Tensor, dense: Tensor) {
        let (sparse, dense) = embeddingsSharingDense(points: points, boxes: boxes, masks: masks)
        let batch = sparse.shape[0]
        if dense.shape[0] == batch { return (sparse, dense) }
        // The reference expands one plane of no_mask_embed over the batch; here it is copied B times.
        return (sparse, Tensor.concat(Array(repeating: dense, count: batch), alongAxis: 0))
    }

    /// As `callAsFunction`, but without a mask input the dense embedding is the one plane every
    /// prompt shares, [1, embedDim, h, w] (`MaskDecoder` takes it as is; the mask generator's 64
    /// prompts would make the copies 268 MB).
    public func embeddingsSharingDense(points: PointPrompts?, boxes: Tensor?, masks: Tensor?) -> (sparse: Tensor, dense: Tensor) {
        let batch = points?.coordinates.shape[0] ?? boxes?.shape[0] ?? masks?.shape[0] ?? 1
        var parts: [Tensor] = []
        if let points { parts.append(embedPoints(points, pad: boxes == nil)) }
        if let boxes { parts.append(embedBoxes(boxes)) }
        let sparse = parts.isEmpty ? Tensor(zeros: [batch, 0, embedDim]) : Tensor.concat(parts, alongAxis: 1)
        if let masks { return (sparse, embedMasks(masks)) }
        let plane =
            noMaskEmbed.weight.reshaped(to: [1, embedDim, 1, 1])
            + Tensor(zeros: [1, embedDim, imageEmbeddingSize.height, imageEmbeddingSize.width])
        return (sparse, plane)
    }
}

/// Position encoding with random spatial frequencies (prompt_encoder.py,
/// `PositionEmbeddingRandom`; Tancik et al. 2020): for a point p in [0, 1]², the features
/// [sin(2π (2p - 1) G), cos(2π (2p - 1) G)] with a fixed Gaussian G [2, numPosFeats].
/// Keys: `positional_encoding_gaussian_matrix` (a buffer).
public final class PositionEmbeddingRandom: Module {
    /// G, [2, numPosFeats].
    public let positionalEncodingGaussianMatrix: Tensor

    /// An encoding with `numPosFeats` frequencies (the matrix is a buffer: load it).
    public init(numPosFeats: Int = 64) {
        positionalEncodingGaussianMatrix = Tensor(uninitialized: [2, numPosFeats])
    }

    public var namedBuffers: [(String, Tensor)] { [("positional_encoding_gaussian_matrix", positionalEncodingGaussianMatrix)] }

    /// `_pe_encoding`: [..., 2] in [0, 1] → [..., 2·numPosFeats].
    public func encode(_ coordinates: Tensor) -> Tensor {
        let centred = coordinates * 2 - 1
        let projected = Tensor.linear(centred, weight: positionalEncodingGaussianMatrix.permuted([1, 0]), bias: nil)
        // The reference multiplies by the Python float 2π, which torch applies as a Float32 scalar.
        let phase = projected * Float(2 * Double.pi)
        return Tensor.concat([phase.sin(), phase.cos()], alongAxis: phase.rank - 1)
    }

    /// The encoding of a grid of cell centres (`forward`): [2·numPosFeats, h, w].
    public func callAsFunction(size: (height: Int, width: Int)) -> Tensor {
        let (h, w) = size
        // (cumsum of ones - 0.5) / side, as the reference builds the grid: exact in Float32.
        var grid = [Float](repeating: 0, count: h * w * 2)
        for i in 0..<h {
            for j in 0..<w {
                grid[(i * w + j) * 2] = (Float(j + 1) - 0.5) / Float(w)
                grid[(i * w + j) * 2 + 1] = (Float(i + 1) - 0.5) / Float(h)
            }
        }
        return encode(Tensor(shape: [h, w, 2], values: grid)).permuted([2, 0, 1])
    }

    /// The encoding of points in pixels of an image of `imageSize` (`forward_with_coords`).
    /// [B, N, 2] (x, y) → [B, N, 2·numPosFeats].
    public func callAsFunction(coordinates: Tensor, imageSize: (height: Int, width: Int)) -> Tensor {
        // Divided (not multiplied by reciprocals) as the reference does.
        encode(coordinates / Tensor(shape: [2], values: [Float(imageSize.width), Float(imageSize.height)]))
    }
}
