import Autograd
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
    /// MobileSAM: a TinyViT image encoder of these sizes instead of the ViT (the `encoder_*`,
    /// `patch_size`, `window_size` and `mlp_ratio` keys then do not apply; the embedding is
    /// `image_size` / 16 on a side, as with the ViT's 16-pixel patches). YAML: `tiny_vit:` with
    /// TinyViT's own argument names.
    public var tinyViT: TinyViTConfiguration?
    /// SAM-HQ (`sam_hq_vit_*.pth`): the mask decoder has the HQ output token and fuses the
    /// encoder's early features (`MaskDecoder.HQ`): a ViT's first global block, or TinyViT's
    /// stage 1 (light HQ-SAM, `sam_hq_vit_tiny.pth`).
    public var hq = false

    public init() {}

    /// MobileSAM (`mobile_sam.pt`, `sam_model_registry["vit_t"]`): TinyViT-5M with SAM's
    /// prompt encoder and mask decoder.
    public static var mobileSAM: SAMConfiguration {
        var c = SAMConfiguration()
        c.tinyViT = .mobileSAM
        return c
    }

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

    /// The same model with SAM-HQ's decoder (`sam_hq_vit_b.pth`…, `sam_hq_vit_tiny.pth` for
    /// MobileSAM's TinyViT: light HQ-SAM).
    public var withHQ: SAMConfiguration {
        var c = self
        c.hq = true
        return c
    }

    /// The named official configurations, as `sam_model_registry` names them (SAM-HQ's with
    /// `_hq`; segment_anything_hq calls light HQ-SAM `vit_tiny`).
    public static let named: [(name: String, configuration: SAMConfiguration)] = [
        ("vit_b", .vitB), ("vit_l", .vitL), ("vit_h", .vitH), ("vit_t", .mobileSAM), ("mobile_sam", .mobileSAM),
        ("vit_b_hq", vitB.withHQ), ("vit_l_hq", vitL.withHQ), ("vit_h_hq", vitH.withHQ),
        ("vit_tiny_hq", mobileSAM.withHQ),
    ]

    /// Width of the early encoder features SAM-HQ's decoder fuses (its `vit_dim`): the ViT's
    /// width, or TinyViT's stage 2 width (160 in light HQ-SAM), which stage 1 merges into.
    public var hqFeatureWidth: Int { tinyViT?.embedDims[2] ?? encoderEmbedDim }

    /// Side of the image embedding in tokens (64 at the official 1024 / 16).
    public var embeddingSize: Int { imageSize / patchSize }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case imageSize = "image_size", patchSize = "patch_size", windowSize = "window_size"
        case encoderEmbedDim = "encoder_embed_dim", encoderDepth = "encoder_depth", encoderNumHeads = "encoder_num_heads"
        case encoderGlobalAttnIndexes = "encoder_global_attn_indexes", promptEmbedDim = "prompt_embed_dim"
        case mlpRatio = "mlp_ratio", decoderDepth = "decoder_depth", decoderMLPDim = "decoder_mlp_dim"
        case decoderNumHeads = "decoder_num_heads", numMultimaskOutputs = "num_multimask_outputs"
        case iouHeadDepth = "iou_head_depth", iouHeadHiddenDim = "iou_head_hidden_dim", maskInChans = "mask_in_chans"
        case tinyViT = "tiny_vit", hq
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
        encoderGlobalAttnIndexes =
            try c.decodeIfPresent([Int].self, forKey: .encoderGlobalAttnIndexes) ?? d.encoderGlobalAttnIndexes
        promptEmbedDim = try c.decodeIfPresent(Int.self, forKey: .promptEmbedDim) ?? d.promptEmbedDim
        mlpRatio = try c.decodeIfPresent(Double.self, forKey: .mlpRatio) ?? d.mlpRatio
        decoderDepth = try c.decodeIfPresent(Int.self, forKey: .decoderDepth) ?? d.decoderDepth
        decoderMLPDim = try c.decodeIfPresent(Int.self, forKey: .decoderMLPDim) ?? d.decoderMLPDim
        decoderNumHeads = try c.decodeIfPresent(Int.self, forKey: .decoderNumHeads) ?? d.decoderNumHeads
        numMultimaskOutputs = try c.decodeIfPresent(Int.self, forKey: .numMultimaskOutputs) ?? d.numMultimaskOutputs
        iouHeadDepth = try c.decodeIfPresent(Int.self, forKey: .iouHeadDepth) ?? d.iouHeadDepth
        iouHeadHiddenDim = try c.decodeIfPresent(Int.self, forKey: .iouHeadHiddenDim) ?? d.iouHeadHiddenDim
        maskInChans = try c.decodeIfPresent(Int.self, forKey: .maskInChans) ?? d.maskInChans
        tinyViT = try c.decodeIfPresent(TinyViTConfiguration.self, forKey: .tinyViT)
        hq = try c.decodeIfPresent(Bool.self, forKey: .hq) ?? false
    }

    /// Reads a configuration from YAML whose keys are the official builder's names; keys left out
    /// keep ViT-B's values.
    /// - Throws: `SAMConfigurationError` naming the file and the key for unknown keys, values of
    ///   the wrong type and sizes that cannot work.
    public static func load(path: String) throws -> SAMConfiguration {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw SAMConfigurationError(path: path, message: "no such file")
        }
        return try parse(yaml: text, path: path)
    }

    /// A Yams error on one line: its description ends with the offending source line and a `^`
    /// marker under the column, which the line/column numbers already say.
    static func oneLine(_ error: Error) -> String {
        var lines = "\(error)".split(separator: "\n", omittingEmptySubsequences: true).map(String.init)
        if let last = lines.last, last.allSatisfy({ $0 == " " || $0 == "^" || $0 == "\t" }), lines.count >= 3 {
            lines.removeLast(2)
        }
        return lines.joined(separator: " ")
    }

    /// See `load(path:)`; `path` names the source in errors.
    public static func parse(yaml text: String, path: String) throws -> SAMConfiguration {
        let object: Any?
        do { object = try Yams.load(yaml: text) } catch {
            throw SAMConfigurationError(path: path, message: "not valid YAML (\(oneLine(error)))")
        }
        guard let dictionary = object as? [String: Any] else {
            throw SAMConfigurationError(path: path, message: "expected a mapping of builder arguments")
        }
        let known = Set(CodingKeys.allCases.map(\.rawValue))
        if let unknown = dictionary.keys.sorted().first(where: { !known.contains($0) }) {
            throw SAMConfigurationError(
                path: path, message: "unknown key '\(unknown)' (known: \(known.sorted().joined(separator: ", ")))")
        }
        if let nested = dictionary["tiny_vit"] {
            guard let tiny = nested as? [String: Any] else {
                throw SAMConfigurationError(path: path, message: "'tiny_vit' must be a mapping of TinyViT's arguments")
            }
            let knownTiny = Set(TinyViTConfiguration.CodingKeys.allCases.map(\.rawValue))
            if let unknown = tiny.keys.sorted().first(where: { !knownTiny.contains($0) }) {
                throw SAMConfigurationError(
                    path: path,
                    message: "unknown key 'tiny_vit.\(unknown)' (known: \(knownTiny.sorted().joined(separator: ", ")))")
            }
        }
        let configuration: SAMConfiguration
        do { configuration = try YAMLDecoder().decode(SAMConfiguration.self, from: text) } catch let DecodingError.typeMismatch(
            type, context)
        {
            let key = context.codingPath.map(\.stringValue).joined(separator: ".")
            throw SAMConfigurationError(
                path: path,
                message: "'\(key)' must be \(type == Int.self ? "an integer" : type == Double.self ? "a number" : "\(type)")")
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
            ("image_size", imageSize), ("patch_size", patchSize), ("window_size", windowSize),
            ("encoder_embed_dim", encoderEmbedDim),
            ("encoder_depth", encoderDepth), ("encoder_num_heads", encoderNumHeads), ("prompt_embed_dim", promptEmbedDim),
            ("decoder_depth", decoderDepth), ("decoder_mlp_dim", decoderMLPDim), ("decoder_num_heads", decoderNumHeads),
            ("num_multimask_outputs", numMultimaskOutputs), ("iou_head_depth", iouHeadDepth),
            ("iou_head_hidden_dim", iouHeadHiddenDim),
            ("mask_in_chans", maskInChans),
        ] where value < 1 { try fail("'\(key)' must be at least 1, got \(value)") }
        guard mlpRatio > 0 && mlpRatio <= 64 else { try fail("'mlp_ratio' must be in (0, 64], got \(mlpRatio)") }
        // Upper bounds far above every released model (ViT-H: 1024 px, width 1280, depth 32), so a
        // typo ends here, not in an allocation failure.
        for (key, value, limit) in [
            ("image_size", imageSize, 4096), ("patch_size", patchSize, 256), ("window_size", windowSize, 256),
            ("encoder_embed_dim", encoderEmbedDim, 8192), ("encoder_depth", encoderDepth, 256),
            ("encoder_num_heads", encoderNumHeads, 256),
            ("prompt_embed_dim", promptEmbedDim, 8192), ("decoder_depth", decoderDepth, 64),
            ("decoder_mlp_dim", decoderMLPDim, 65536),
            ("decoder_num_heads", decoderNumHeads, 256), ("num_multimask_outputs", numMultimaskOutputs, 64),
            ("iou_head_depth", iouHeadDepth, 64), ("iou_head_hidden_dim", iouHeadHiddenDim, 65536),
            ("mask_in_chans", maskInChans, 4096),
        ] where value > limit {
            try fail("'\(key)' must be at most \(limit), got \(value)")
        }
        // The encoder's weights alone (≈ depth · (4 + 2·mlp_ratio) · width² floats) must fit.
        let width = Double(encoderEmbedDim)
        let weights =
            Double(encoderDepth) * (4 + 2 * mlpRatio) * width * width * 4
            + Double(embeddingSize * embeddingSize) * width * 4
        let available = MemoryLimit.available
        guard weights < Double(available) else {
            try fail(
                String(
                    format: "its encoder alone needs %.1f GB, more than the %@ this process may use", weights / 1e9,
                    MemoryLimit.describe(available)))
        }
        guard imageSize % patchSize == 0 else {
            try fail("'image_size' \(imageSize) is not a multiple of 'patch_size' \(patchSize)")
        }
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
        if hq && tinyViT == nil && encoderGlobalAttnIndexes.isEmpty {
            try fail(
                "'hq' needs a ViT encoder with a global block (its first global block's output feeds the HQ decoder) or a TinyViT one"
            )
        }
        if let tinyViT {
            if let problem = tinyViT.problem() { try fail(problem) }
            guard imageSize % 16 == 0 && patchSize == 16 else {
                try fail(
                    "a TinyViT encoder needs 'image_size' a multiple of 16 and 'patch_size' 16 (its embedding is a sixteenth of the input)"
                )
            }
        }
    }
}

/// A SAM configuration file that cannot be used.
public struct SAMConfigurationError: LocalizedError, Equatable {
    public let path: String
    public let message: String
    public var errorDescription: String? { "\(path): \(message)" }
}

extension SAMConfiguration {
    /// The configuration a checkpoint's tensor shapes describe: ViT-B, -L and -H come out equal
    /// to `.vitB`, `.vitL`, `.vitH`, and reduced models as far as shapes tell.
    ///
    /// Read from: `pos_embed` [1, s, s, dim] and `patch_embed.proj.weight` [dim, 3, p, p] (image
    /// size s·p); the count of `blocks.<i>`; each block's `rel_pos_h` [2n-1, headDim] (a global
    /// block's n is the token grid s, a windowed block's its window; heads = dim / headDim);
    /// `mlp.lin1` (MLP ratio); `neck.0` (prompt width); the decoder's layer count, MLP width,
    /// mask tokens, IoU head and mask-downscaling widths. A windowed block whose window equals the
    /// grid is indistinguishable from a global one, and computes the same.
    /// - Parameter decoderNumHeads: no shape records the decoder's heads (official: 8).
    /// - Throws: `SAMWeightsError.unrecognised` naming the key that is missing or odd.
    public static func inferred(fromShapes shapes: [String: [Int]], path: String, decoderNumHeads: Int = 8) throws
        -> SAMConfiguration
    {
        func shape(_ key: String, rank: Int) throws -> [Int] {
            guard let s = shapes[key] else { throw SAMWeightsError.unrecognised(path: path, reason: "no tensor '\(key)'") }
            guard s.count == rank else {
                throw SAMWeightsError.unrecognised(path: path, reason: "'\(key)' has shape \(s), expected rank \(rank)")
            }
            return s
        }
        func count(_ prefix: String) -> Int {
            var n = 0
            while shapes.keys.contains(where: { $0.hasPrefix("\(prefix).\(n).") }) { n += 1 }
            return n
        }
        var c = SAMConfiguration()
        if shapes["image_encoder.patch_embed.seq.0.c.weight"] != nil {
            c.tinyViT = try inferredTinyViT(shape: shape, count: count, path: path)
            c.promptEmbedDim = try shape("image_encoder.neck.0.weight", rank: 4)[0]
            return try inferredDecoder(c, shape: shape, count: count, path: path, decoderNumHeads: decoderNumHeads)
        }
        let pos = try shape("image_encoder.pos_embed", rank: 4)
        let patch = try shape("image_encoder.patch_embed.proj.weight", rank: 4)
        let side = pos[1]
        (c.encoderEmbedDim, c.patchSize) = (pos[3], patch[2])
        c.imageSize = side * c.patchSize
        c.encoderDepth = count("image_encoder.blocks")
        guard c.encoderDepth > 0 else {
            throw SAMWeightsError.unrecognised(path: path, reason: "no 'image_encoder.blocks.0.*' tensors")
        }
        var globals: [Int] = [], windows: Set<Int> = []
        for i in 0..<c.encoderDepth {
            let table = try shape("image_encoder.blocks.\(i).attn.rel_pos_h", rank: 2)
            let n = (table[0] + 1) / 2
            if n == side { globals.append(i) } else { windows.insert(n) }
            if i == 0 {
                guard table[1] > 0, c.encoderEmbedDim % table[1] == 0 else {
                    throw SAMWeightsError.unrecognised(
                        path: path, reason: "head width \(table[1]) does not divide \(c.encoderEmbedDim)")
                }
                c.encoderNumHeads = c.encoderEmbedDim / table[1]
            }
        }
        guard windows.count <= 1 else {
            throw SAMWeightsError.unrecognised(path: path, reason: "blocks use different windows \(windows.sorted())")
        }
        c.encoderGlobalAttnIndexes = globals
        c.windowSize = windows.first ?? side
        c.mlpRatio = Double(try shape("image_encoder.blocks.0.mlp.lin1.weight", rank: 2)[0]) / Double(c.encoderEmbedDim)
        c.promptEmbedDim = try shape("image_encoder.neck.0.weight", rank: 4)[0]
        return try inferredDecoder(c, shape: shape, count: count, path: path, decoderNumHeads: decoderNumHeads)
    }

    /// MobileSAM's TinyViT sizes from `image_encoder.layers.<i>.*` shapes: stage widths from the
    /// MBConv and qkv weights, heads and windows from `attention_biases` [heads, ws²], MLP and
    /// MBConv ratios, the local convolution's kernel. The input side is not in any shape: the
    /// official 1024.
    static func inferredTinyViT(
        shape tensorShape: (String, Int) throws -> [Int], count: (String) -> Int, path: String
    ) throws -> TinyViTConfiguration {
        func shape(_ key: String, rank: Int) throws -> [Int] { try tensorShape(key, rank) }
        var t = TinyViTConfiguration()
        let prefix = "image_encoder.layers"
        t.depths = (0..<4).map { count("\(prefix).\($0).blocks") }
        guard t.depths.allSatisfy({ $0 > 0 }), count(prefix) == 4 else {
            throw SAMWeightsError.unrecognised(
                path: path, reason: "a TinyViT encoder has 4 stages with blocks, found depths \(t.depths)")
        }
        let expand = try shape("\(prefix).0.blocks.0.conv1.c.weight", rank: 4)
        t.embedDims[0] = expand[1]
        t.mbconvExpandRatio = Double(expand[0]) / Double(expand[1])
        for i in 1..<4 {
            let qkv = try shape("\(prefix).\(i).blocks.0.attn.qkv.weight", rank: 2)
            let biases = try shape("\(prefix).\(i).blocks.0.attn.attention_biases", rank: 2)
            let window = Int(Double(biases[1]).squareRoot().rounded())
            guard window * window == biases[1], qkv[0] == 3 * qkv[1] else {
                throw SAMWeightsError.unrecognised(
                    path: path, reason: "stage \(i): qkv \(qkv) and attention_biases \(biases) are not TinyViT's")
            }
            (t.embedDims[i], t.numHeads[i], t.windowSizes[i]) = (qkv[1], biases[0], window)
        }
        t.mlpRatio = Double(try shape("\(prefix).1.blocks.0.mlp.fc1.weight", rank: 2)[0]) / Double(t.embedDims[1])
        t.localConvSize = try shape("\(prefix).1.blocks.0.local_conv.c.weight", rank: 4)[2]
        t.numClasses = try shape("image_encoder.head.weight", rank: 2)[0]
        return t
    }

    /// The prompt encoder's and mask decoder's sizes (shared by every encoder).
    static func inferredDecoder(
        _ configuration: SAMConfiguration, shape tensorShape: (String, Int) throws -> [Int], count: (String) -> Int,
        path: String, decoderNumHeads: Int
    ) throws -> SAMConfiguration {
        func shape(_ key: String, rank: Int) throws -> [Int] { try tensorShape(key, rank) }
        func tensorShapeExists(_ key: String) -> Bool { (try? tensorShape(key, 2)) != nil }
        var c = configuration
        c.hq = tensorShapeExists("mask_decoder.hf_token.weight")
        c.decoderDepth = count("mask_decoder.transformer.layers")
        c.decoderMLPDim = try shape("mask_decoder.transformer.layers.0.mlp.lin1.weight", rank: 2)[0]
        c.decoderNumHeads = decoderNumHeads
        c.numMultimaskOutputs = try shape("mask_decoder.mask_tokens.weight", rank: 2)[0] - 1
        c.iouHeadDepth = count("mask_decoder.iou_prediction_head.layers")
        c.iouHeadHiddenDim = try shape("mask_decoder.iou_prediction_head.layers.0.weight", rank: 2)[0]
        c.maskInChans = try shape("prompt_encoder.mask_downscaling.3.weight", rank: 4)[0]
        do { try c.validate(path: path) } catch let error as SAMConfigurationError {
            throw SAMWeightsError.unrecognised(path: path, reason: error.message)
        }
        return c
    }
}

extension SAMConfiguration {
    /// Floating-point operations (2 per multiply-add) of one ViT image encoder pass at
    /// `imageSize`: patch embedding, each block's projections and MLP, attention scores and
    /// values over its window (zero-padded to whole windows) or the whole grid, the decomposed
    /// relative-position terms, and the neck. nil for a TinyViT encoder. ViT-B: 0.95 TFLOP.
    public var encoderFLOPs: Double? {
        guard tinyViT == nil else { return nil }
        let side = Double(embeddingSize), d = Double(encoderEmbedDim), tokens = side * side
        var macs = tokens * 3 * Double(patchSize * patchSize) * d
        let padded = (Double(embeddingSize + windowSize - 1) / Double(windowSize)).rounded(.down) * Double(windowSize)
        for i in 0..<encoderDepth {
            let global = encoderGlobalAttnIndexes.contains(i)
            let (queries, keys) = global ? (tokens, tokens) : (padded * padded, Double(windowSize * windowSize))
            let keySide = global ? side : Double(windowSize)
            macs += tokens * (4 * d * d + 2 * mlpRatio * d * d)  // qkv, proj, MLP
            macs += queries * keys * d * 2 + queries * keySide * d * 2  // q·k, p·v; rel-pos h and w
        }
        let out = Double(promptEmbedDim)
        macs += tokens * d * out + tokens * out * out * 9
        return 2 * macs
    }

    /// `vit_b`, `vit_l`, `vit_h`, or the path of a YAML file of the builder's arguments.
    /// - Throws: `SAMConfigurationError` for an unknown name or a bad file.
    public static func resolve(_ nameOrFile: String) throws -> SAMConfiguration {
        if let named = named.first(where: { $0.name == nameOrFile }) { return named.configuration }
        guard FileManager.default.fileExists(atPath: nameOrFile) else {
            throw SAMConfigurationError(
                path: nameOrFile, message: "not vit_b, vit_l, vit_h, vit_t, mobile_sam or an existing YAML file")
        }
        return try load(path: nameOrFile)
    }
}
