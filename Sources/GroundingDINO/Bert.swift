import Autograd
import Layers

// transformers' BertModel (modeling_bert.py) as Grounding DINO calls it (bertwarper.py): the
// position embeddings are read at the given per-phrase position ids and the attention mask is a
// full [T, T] matrix (each phrase attends to itself), added as finfo(float32).min where masked.
// Post-LayerNorm layers with eps 1e-12, exact (erf) GELU.

/// BERT's sizes (config.json).
public struct BertConfiguration: Sendable, Equatable, Codable {
    public var vocabularySize: Int
    public var hiddenSize: Int
    public var layers: Int
    public var heads: Int
    public var intermediateSize: Int
    public var maximumPositions: Int
    public var typeVocabularySize: Int
    public var layerNormEpsilon: Float

    public init(
        vocabularySize: Int, hiddenSize: Int, layers: Int, heads: Int, intermediateSize: Int, maximumPositions: Int = 512,
        typeVocabularySize: Int = 2, layerNormEpsilon: Float = 1e-12
    ) {
        (self.vocabularySize, self.hiddenSize, self.layers, self.heads) = (vocabularySize, hiddenSize, layers, heads)
        (self.intermediateSize, self.maximumPositions, self.typeVocabularySize, self.layerNormEpsilon) = (
            intermediateSize, maximumPositions, typeVocabularySize, layerNormEpsilon
        )
    }

    /// bert-base-uncased.
    public static let baseUncased = BertConfiguration(
        vocabularySize: 30522, hiddenSize: 768, layers: 12, heads: 12, intermediateSize: 3072)
}

/// Word + token type + position embeddings, LayerNorm. Keys `word_embeddings.weight`,
/// `position_embeddings.weight`, `token_type_embeddings.weight`, `LayerNorm.*`.
public final class BertEmbeddings: Module {
    public let wordEmbeddings: Embedding
    public let positionEmbeddings: Embedding
    public let tokenTypeEmbeddings: Embedding
    public let layerNorm: LayerNorm

    public init(_ c: BertConfiguration) {
        wordEmbeddings = Embedding(count: c.vocabularySize, dimensions: c.hiddenSize)
        positionEmbeddings = Embedding(count: c.maximumPositions, dimensions: c.hiddenSize)
        tokenTypeEmbeddings = Embedding(count: c.typeVocabularySize, dimensions: c.hiddenSize)
        layerNorm = LayerNorm(c.hiddenSize, epsilon: c.layerNormEpsilon)
    }

    public var namedChildren: [(String, Module)] {
        [
            ("word_embeddings", wordEmbeddings), ("position_embeddings", positionEmbeddings),
            ("token_type_embeddings", tokenTypeEmbeddings), ("LayerNorm", layerNorm),
        ]
    }

    /// Ids [T] (one sequence) → [1, T, hidden]; token types are all 0.
    public func callAsFunction(ids: [Int], positions: [Int]) -> Tensor {
        let words = wordEmbeddings.weight.gatheringRows(ids)
        let types = tokenTypeEmbeddings.weight.gatheringRows([Int](repeating: 0, count: ids.count))
        let place = positionEmbeddings.weight.gatheringRows(positions)
        let hidden = wordEmbeddings.weight.shape[1]
        return layerNorm(words + types + place).reshaped(to: [1, ids.count, hidden])
    }
}

/// One BERT layer. Keys `attention.self.{query,key,value}.*`, `attention.output.dense.*`,
/// `attention.output.LayerNorm.*`, `intermediate.dense.*`, `output.dense.*`, `output.LayerNorm.*`.
public final class BertLayer: Module {
    public let query, key, value, attentionOutput: Linear
    public let attentionNorm: LayerNorm
    public let intermediate, output: Linear
    public let outputNorm: LayerNorm
    public let heads: Int

    public init(_ c: BertConfiguration) {
        let h = c.hiddenSize
        (query, key, value, attentionOutput) = (
            Linear(inputFeatures: h, outputFeatures: h), Linear(inputFeatures: h, outputFeatures: h),
            Linear(inputFeatures: h, outputFeatures: h), Linear(inputFeatures: h, outputFeatures: h)
        )
        attentionNorm = LayerNorm(h, epsilon: c.layerNormEpsilon)
        intermediate = Linear(inputFeatures: h, outputFeatures: c.intermediateSize)
        output = Linear(inputFeatures: c.intermediateSize, outputFeatures: h)
        outputNorm = LayerNorm(h, epsilon: c.layerNormEpsilon)
        heads = c.heads
    }

    public var namedChildren: [(String, Module)] {
        [
            ("attention.self.query", query), ("attention.self.key", key), ("attention.self.value", value),
            ("attention.output.dense", attentionOutput), ("attention.output.LayerNorm", attentionNorm),
            ("intermediate.dense", intermediate), ("output.dense", output), ("output.LayerNorm", outputNorm),
        ]
    }

    /// [1, T, hidden] → [1, T, hidden]; `bias` [1, 1, T, T] is added to the scores.
    public func callAsFunction(_ x: Tensor, bias: Tensor) -> Tensor {
        let attended = MultiHead.attention(query: query(x), key: key(x), value: value(x), heads: heads, bias: bias)
        let a = attentionNorm(attentionOutput(attended) + x)
        return outputNorm(output(intermediate(a).gelu()) + a)
    }
}

/// BERT: embeddings, layers, and the pooler (loaded with the checkpoint, unused by Grounding DINO).
/// Keys `embeddings.*`, `encoder.layer.<i>.*`, `pooler.dense.*`.
public final class Bert: Module {
    public let configuration: BertConfiguration
    public let embeddings: BertEmbeddings
    public let layers: ModuleList<BertLayer>
    public let pooler: Linear

    public init(_ configuration: BertConfiguration) {
        self.configuration = configuration
        embeddings = BertEmbeddings(configuration)
        layers = ModuleList((0..<configuration.layers).map { _ in BertLayer(configuration) })
        pooler = Linear(inputFeatures: configuration.hiddenSize, outputFeatures: configuration.hiddenSize)
    }

    public var namedChildren: [(String, Module)] {
        [("embeddings", embeddings), ("encoder.layer", layers), ("pooler.dense", pooler)]
    }

    /// The last hidden state [1, T, hidden] of one prompt (ids, per-phrase position ids, and the
    /// [T, T] mask of which token may attend to which).
    public func callAsFunction(_ prompt: TokenizedPrompt) -> Tensor {
        var x = embeddings(ids: prompt.ids, positions: prompt.positionIDs)
        let t = prompt.ids.count
        // transformers' extended mask: (1 − m) · finfo(float32).min.
        let bias = Tensor(
            shape: [1, 1, t, t], values: prompt.selfAttention.map { $0 ? 0 : -Float.greatestFiniteMagnitude })
        for layer in layers.elements { x = layer(x, bias: bias) }
        return x
    }
}

/// Multi-head scaled dot-product attention over already projected q, k, v.
enum MultiHead {
    /// q [B, L, D], k [B, S, D], v [B, S, D] split into `heads` → softmax(q·kᵀ/√(D/heads) + bias)·v
    /// → [B, L, D]. `bias` broadcasts against [B, heads, L, S].
    static func attention(query q: Tensor, key k: Tensor, value v: Tensor, heads: Int, bias: Tensor?) -> Tensor {
        let (b, l, d) = (q.shape[0], q.shape[1], q.shape[2])
        let s = k.shape[1]
        let hd = d / heads
        func split(_ x: Tensor, _ n: Int) -> Tensor {
            x.reshaped(to: [b, n, heads, hd]).permuted([0, 2, 1, 3]).reshaped(to: [b * heads, n, hd])
        }
        var scores = (Tensor.matmul(split(q, l), split(k, s), transposeB: true) / Float(hd).squareRoot())
            .reshaped(to: [b, heads, l, s])
        if let bias { scores = scores + bias }
        let attention = scores.softmax(alongAxis: 3).reshaped(to: [b * heads, l, s])
        return Tensor.matmul(attention, split(v, s)).reshaped(to: [b, heads, l, hd]).permuted([0, 2, 1, 3])
            .reshaped(to: [b, l, d])
    }
}
