import Autograd
import Foundation
import Layers
import SegmentAnything

/// The sizes of a Grounding DINO model (the config files' keys; the released models are
/// `swinT` — `GroundingDINO_SwinT_OGC.py` — and `swinB` — `GroundingDINO_SwinB_cfg.py`).
public struct GroundingDINOConfiguration: Sendable, Equatable, Codable {
    public var swin: SwinConfiguration
    public var bert: BertConfiguration
    /// d_model.
    public var hiddenDim: Int
    /// Heads of the deformable and decoder attention (the text enhancer and fusion use half).
    public var heads: Int
    /// dim_feedforward (the text enhancer and fusion use half).
    public var feedForward: Int
    public var encoderLayers: Int
    public var decoderLayers: Int
    public var encoderPoints: Int
    public var decoderPoints: Int
    /// num_queries.
    public var queries: Int
    /// num_feature_levels: the backbone's levels plus extra stride-2 ones.
    public var levels: Int

    public init(
        swin: SwinConfiguration, bert: BertConfiguration, hiddenDim: Int = 256, heads: Int = 8, feedForward: Int = 2048,
        encoderLayers: Int = 6, decoderLayers: Int = 6, encoderPoints: Int = 4, decoderPoints: Int = 4, queries: Int = 900,
        levels: Int = 4
    ) {
        (self.swin, self.bert, self.hiddenDim, self.heads, self.feedForward) = (swin, bert, hiddenDim, heads, feedForward)
        (self.encoderLayers, self.decoderLayers, self.encoderPoints, self.decoderPoints) = (
            encoderLayers, decoderLayers, encoderPoints, decoderPoints
        )
        (self.queries, self.levels) = (queries, levels)
    }

    /// groundingdino_swint_ogc.pth.
    public static let swinT = GroundingDINOConfiguration(swin: .tiny, bert: .baseUncased)
    /// groundingdino_swinb_cogcoor.pth.
    public static let swinB = GroundingDINOConfiguration(swin: .base, bert: .baseUncased)
}

/// Grounding DINO (groundingdino.py): an image and a caption → 900 boxes, each with a score per
/// caption token. The module tree mirrors the official state dict, so keys load by name (the
/// box head shared by all decoder layers appears under its official aliases, one set of tensors).
public final class GroundingDINO: Module {
    public let configuration: GroundingDINOConfiguration
    public let backbone: SwinTransformer
    public let bert: Bert
    public let featMap: Linear
    /// Per level: a 1×1 (extra levels: 3×3 stride 2) convolution and GroupNorm(32).
    public let inputProj: [(conv: Conv2d, norm: GroupNorm)]
    public let levelEmbed: Tensor
    public let encoderLayers: ModuleList<DeformableEncoderLayer>
    public let textLayers: ModuleList<TextEnhancerLayer>
    public let fusionLayers: ModuleList<BiAttentionBlock>
    public let decoderLayers: ModuleList<DecoderLayer>
    public let decoderNorm: LayerNorm
    public let refPointHead: MLP
    public let tgtEmbed: Embedding
    public let encOutput: Linear
    public let encOutputNorm: LayerNorm
    public let encOutBBoxEmbed: MLP
    /// The box head, shared by every decoder layer (dec_pred_bbox_embed_share).
    public let bboxEmbed: MLP

    public init(_ c: GroundingDINOConfiguration) {
        configuration = c
        backbone = SwinTransformer(c.swin)
        bert = Bert(c.bert)
        featMap = Linear(inputFeatures: c.bert.hiddenSize, outputFeatures: c.hiddenDim)
        var generator = SeededGenerator(seed: 0)  // loading replaces the drawn weights
        let channels = backbone.outputChannels
        inputProj = (0..<c.levels).map { level in
            let conv =
                level < channels.count
                ? Conv2d(
                    inputChannels: channels[level], outputChannels: c.hiddenDim, kernelSize: 1, bias: true, generator: &generator)
                : Conv2d(
                    inputChannels: level == channels.count ? channels.last! : c.hiddenDim, outputChannels: c.hiddenDim,
                    kernelSize: 3, stride: 2, padding: 1, bias: true, generator: &generator)
            return (conv, GroupNorm(groups: 32, channels: c.hiddenDim))
        }
        levelEmbed = Tensor.parameter(uninitialized: [c.levels, c.hiddenDim])
        encoderLayers = ModuleList((0..<c.encoderLayers).map { _ in DeformableEncoderLayer(c) })
        textLayers = ModuleList((0..<c.encoderLayers).map { _ in TextEnhancerLayer(c) })
        fusionLayers = ModuleList(
            (0..<c.encoderLayers).map { _ in
                BiAttentionBlock(imageDim: c.hiddenDim, textDim: c.hiddenDim, embedDim: c.feedForward / 2, heads: c.heads / 2)
            })
        decoderLayers = ModuleList((0..<c.decoderLayers).map { _ in DecoderLayer(c) })
        decoderNorm = LayerNorm(c.hiddenDim)
        refPointHead = MLP(inputDim: 2 * c.hiddenDim, hiddenDim: c.hiddenDim, outputDim: c.hiddenDim, numLayers: 2)
        tgtEmbed = Embedding(count: c.queries, dimensions: c.hiddenDim)
        encOutput = Linear(inputFeatures: c.hiddenDim, outputFeatures: c.hiddenDim)
        encOutputNorm = LayerNorm(c.hiddenDim)
        encOutBBoxEmbed = MLP(inputDim: c.hiddenDim, hiddenDim: c.hiddenDim, outputDim: 4, numLayers: 3)
        bboxEmbed = MLP(inputDim: c.hiddenDim, hiddenDim: c.hiddenDim, outputDim: 4, numLayers: 3)
    }

    public var namedChildren: [(String, Module)] {
        let shared = ModuleList(Array(repeating: bboxEmbed, count: configuration.decoderLayers))
        let projections = ModuleList(
            inputProj.map { pair in ModuleList([pair.conv as Module, pair.norm as Module].map(AnyModule.init)) })
        let transformer = Container(
            parameters: [("level_embed", levelEmbed)],
            children: [
                ("encoder.layers", encoderLayers), ("encoder.text_layers", textLayers),
                ("encoder.fusion_layers", fusionLayers), ("decoder.layers", decoderLayers), ("decoder.norm", decoderNorm),
                ("decoder.ref_point_head", refPointHead), ("decoder.bbox_embed", shared), ("tgt_embed", tgtEmbed),
                ("enc_output", encOutput), ("enc_output_norm", encOutputNorm), ("enc_out_bbox_embed", encOutBBoxEmbed),
            ])
        return [
            ("transformer", transformer), ("bbox_embed", shared), ("bert", bert), ("feat_map", featMap),
            ("input_proj", projections), ("backbone.0", backbone),
        ]
    }
}

/// A module of given parameters and children (for key paths that have no class of their own).
final class Container: Module {
    let parameters: [(String, Tensor)]
    let children: [(String, Module)]
    init(parameters: [(String, Tensor)] = [], children: [(String, Module)]) {
        (self.parameters, self.children) = (parameters, children)
    }
    var namedParameters: [(String, Tensor)] { parameters }
    var namedChildren: [(String, Module)] { children }
}

/// Any module, as an element of a `ModuleList` of mixed types.
final class AnyModule: Module {
    let base: Module
    init(_ base: Module) { self.base = base }
    var namedParameters: [(String, Tensor)] { base.namedParameters }
    var namedBuffers: [(String, Tensor)] { base.namedBuffers }
    var namedChildren: [(String, Module)] { base.namedChildren }
}
