import Foundation
import Yams

/// The shape of a Segment Anything model: the keyword arguments of the official builder
/// (`segment_anything/build_sam.py`, `_build_sam`), plus the decoder sizes that builder fixes
/// (kept as options so reduced test models can shrink them too).
public struct SAMConfiguration: Codable, Equatable, Sendable {
    /// Side of the square encoder input in pixels (official: 1024).
    public var imageSize = 1024
    /// Patch side in pixels (official: 16); the embedding is imageSize / patchSize on a side.
    public var patchSize = 16
    /// Side of the local attention windows in tokens (official: 14).
    public var windowSize = 14
    /// ViT width.
    public var encoderEmbedDim = 768
    /// Number of ViT blocks.
    public var encoderDepth = 12
    /// Attention heads per ViT block.
    public var encoderNumHeads = 12
    /// Blocks that attend globally (the others use windows).
    public var encoderGlobalAttnIndexes = [2, 5, 8, 11]
    /// Channels of the image embedding and of the prompt tokens (official: 256).
    public var promptEmbedDim = 256
    /// ViT MLP width as a multiple of the embed dim (official: 4).
    public var mlpRatio = 4.0
    /// Two-way transformer depth, MLP width and heads (official: 2, 2048, 8).
    public var decoderDepth = 2
    public var decoderMLPDim = 2048
    public var decoderNumHeads = 8
    /// Multimask outputs and IoU head (official: 3, depth 3, hidden 256).
    public var numMultimaskOutputs = 3
    public var iouHeadDepth = 3
    public var iouHeadHiddenDim = 256
    /// Channels of the mask-input downscaler (official: 16).
    public var maskInChans = 16

    public init() {}

    /// ViT-B (`sam_vit_b_01ec64.pth`).
    public static let vitB = SAMConfiguration()
    /// ViT-L (`sam_vit_l_0b3195.pth`).
    public static var vitL: SAMConfiguration {
        var c = SAMConfiguration()
        (c.encoderEmbedDim, c.encoderDepth, c.encoderNumHeads, c.encoderGlobalAttnIndexes) = (1024, 24, 16, [5, 11, 17, 23])
        return c
    }
    /// ViT-H (`sam_vit_h_4b8939.pth`).
    public static var vitH: SAMConfiguration {
        var c = SAMConfiguration()
        (c.encoderEmbedDim, c.encoderDepth, c.encoderNumHeads, c.encoderGlobalAttnIndexes) = (1280, 32, 16, [7, 15, 23, 31])
        return c
    }

    /// The named official configurations, as `sam_model_registry` names them.
    public static let named: [(name: String, configuration: SAMConfiguration)] = [("vit_b", .vitB), ("vit_l", .vitL), ("vit_h", .vitH)]

    /// Side of the image embedding in tokens (64 at the official 1024 / 16).
    public var embeddingSize: Int { imageSize / patchSize }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case imageSize = "image_size", patchSize = "patch_size", windowSize = "window_size"
        case encoderEmbedDim = "encoder_embed_dim", encoderDepth = "encoder_depth", encoderNumHeads = "encoder_num_heads"
        case encoderGlobalAttnIndexes = "encoder_global_attn_indexes", promptEmbedDim = "prompt_embed_dim"
        case mlpRatio = "mlp_ratio", decoderDepth = "decoder_depth", decoderMLPDim = "decoder_mlp_dim"
        case decoderNumHeads = "decoder_num_heads", numMultimaskOutputs = "num_multimask_outputs"
        case iouHeadDepth = "iou_head_depth", iouHeadHiddenDim = "iou_head_hidden_dim", maskInChans = "mask_in_chans"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = SAMConfiguration()
        imageSize = try c.decodeIfPresent(Int.self, forKey: .imageSize) ?? d.imageSize
        patchSize = try c.decodeIfPresent(Int.self, forKey: .patchSize) ?? d.patchSize
        windowSize = try c.decodeIfPresent(Int.self, forKey: .windowSize) ?? d.windowSize
        encoderEmbedDim = try c.decodeIfPresent(Int.self, forKey: .encoderEmbedDim) ?? d.encoderEmbedDim
        encoderDepth = try c.decodeIfPresent(Int.self, forKey: .encoderDepth) ?? d.encoderDepth
        encoderNumHeads = try c.decodeIfPresent(Int.self, forKey: .encoderNumHeads) ?? d.encoderNumHeads
        encoderGlobalAttnIndexes = try c.decodeIfPresent([Int].self, forKey: .encoderGlobalAttnIndexes) ?? d.encoderGlobalAttnIndexes
        promptEmbedDim = try c.decodeIfPresent(Int.self, forKey: .promptEmbedDim) ?? d.promptEmbedDim
        mlpRatio = try c.decodeIfPresent(Double.self, forKey: .mlpRatio) ?? d.mlpRatio
        decoderDepth = try c.decodeIfPresent(Int.self, forKey: .decoderDepth) ?? d.decoderDepth
        decoderMLPDim = try c.decodeIfPresent(Int.self, forKey: .decoderMLPDim) ?? d.decoderMLPDim
        decoderNumHeads = try c.decodeIfPresent(Int.self, forKey: .decoderNumHeads) ?? d.decoderNumHeads
        numMultimaskOutputs = try c.decodeIfPresent(Int.self, forKey: .numMultimaskOutputs) ?? d.numMultimaskOutputs
        iouHeadDepth = try c.decodeIfPresent(Int.self, forKey: .iouHeadDepth) ?? d.iouHeadDepth
        iouHeadHiddenDim = try c.decodeIfPresent(Int.self, forKey: .iouHeadHiddenDim) ?? d.iouHeadHiddenDim
        maskInChans = try c.decodeIfPresent(Int.self, forKey: .maskInChans) ?? d.maskInChans
    }

    /// Reads a configuration from YAML whose keys are the official builder's names; keys left out
    /// keep ViT-B's values.
    /// - Throws: `SAMConfigurationError` naming the file and the key for unknown keys, values of
    ///   the wrong type and sizes that cannot work.
    public static func load(path: String) throws -> SAMConfiguration {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw SAMConfigurationError(path: path, message: "no such file") }
        return try parse(yaml: text, path: path)
    }

    /// See `load(path:)`; `path` names the source in errors.
    public static func parse(yaml text: String, path: String) throws -> SAMConfiguration {
        let object: Any?
        do { object = try Yams.load(yaml: text) } catch { throw SAMConfigurationError(path: path, message: "not valid YAML (\(error))") }
        guard let dictionary = object as? [String: Any] else { throw SAMConfigurationError(path: path, message: "expected a mapping of builder arguments") }
        let known = Set(CodingKeys.allCases.map(\.rawValue))
        if let unknown = dictionary.keys.sorted().first(where: { !known.contains($0) }) {
            throw SAMConfigurationError(path: path, message: "unknown key '\(unknown)' (known: \(known.sorted().joined(separator: ", ")))")
        }
        let configuration: SAMConfiguration
        do { configuration = try YAMLDecoder().decode(SAMConfiguration.self, from: text) } catch let DecodingError.typeMismatch(type, context) {
            let key = context.codingPath.map(\.stringValue).joined(separator: ".")
            throw SAMConfigurationError(path: path, message: "'\(key)' must be \(type == Int.self ? "an integer" : type == Double.self ? "a number" : "\(type)")")
        } catch {
            throw SAMConfigurationError(path: path, message: "\(error)")
        }
        try configuration.validate(path: path)
        return configuration
    }

    /// Checks that the sizes fit together (positive, divisible where the model divides).
    public func validate(path: String) throws {
        func fail(_ message: String) throws -> Never { throw SAMConfigurationError(path: path, message: message) }
        for (key, value) in [
            ("image_size", imageSize), ("patch_size", patchSize), ("window_size", windowSize), ("encoder_embed_dim", encoderEmbedDim),
            ("encoder_depth", encoderDepth), ("encoder_num_heads", encoderNumHeads), ("prompt_embed_dim", promptEmbedDim),
            ("decoder_depth", decoderDepth), ("decoder_mlp_dim", decoderMLPDim), ("decoder_num_heads", decoderNumHeads),
            ("num_multimask_outputs", numMultimaskOutputs), ("iou_head_depth", iouHeadDepth), ("iou_head_hidden_dim", iouHeadHiddenDim),
            ("mask_in_chans", maskInChans),
        ] where value < 1 { try fail("'\(key)' must be at least 1, got \(value)") }
        guard mlpRatio > 0 else { try fail("'mlp_ratio' must be positive") }
        guard imageSize % patchSize == 0 else { try fail("'image_size' \(imageSize) is not a multiple of 'patch_size' \(patchSize)") }
        guard encoderEmbedDim % encoderNumHeads == 0 else {
            try fail("'encoder_embed_dim' \(encoderEmbedDim) is not a multiple of 'encoder_num_heads' \(encoderNumHeads)")
        }
        // The decoder's cross attention halves the width (attention_downsample_rate 2).
        guard promptEmbedDim % (2 * decoderNumHeads) == 0 else {
            try fail("'prompt_embed_dim' \(promptEmbedDim) is not a multiple of 2 x 'decoder_num_heads' \(decoderNumHeads)")
        }
        if let bad = encoderGlobalAttnIndexes.first(where: { $0 < 0 || $0 >= encoderDepth }) {
            try fail("'encoder_global_attn_indexes' holds \(bad), outside 0..<\(encoderDepth)")
        }
    }
}

/// A SAM configuration file that cannot be used.
public struct SAMConfigurationError: LocalizedError, Equatable {
    public let path: String
    public let message: String
    public var errorDescription: String? { "\(path): \(message)" }
}
