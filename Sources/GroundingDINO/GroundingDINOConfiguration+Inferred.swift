import Foundation
import Yams

extension GroundingDINOConfiguration {
    /// Reads what a checkpoint's shapes say (Swin's width, depths, heads and window; d_model,
    /// levels, feed-forward width, layer counts, points, queries; BERT's sizes) and takes the rest
    /// — what no shape records: `nheads` and BERT's `num_attention_heads` — from `overrides`
    /// (the official config's names, BERT's config.json names under `text_encoder`), else the
    /// released models' values (8, and hidden_size / 64).
    /// - Throws: `GroundingDINOError.unusable` naming `path` when a needed key is missing, a count
    ///   does not divide, or an override contradicts the shapes.
    public static func inferred(fromShapes shapes: [String: [Int]], overrides: [String: Any] = [:], path: String) throws
        -> GroundingDINOConfiguration
    {
        func fail(_ reason: String) -> GroundingDINOError { .unusable(path: path, reason: reason) }
        func shape(_ key: String) throws -> [Int] {
            guard let s = shapes[key] else { throw fail("no '\(key)': not a Grounding DINO checkpoint") }
            return s
        }
        func count(_ prefix: String) -> Int {
            var n = 0
            while shapes.keys.contains(where: { $0.hasPrefix("\(prefix).\(n).") }) { n += 1 }
            return n
        }
        // Swin.
        let patch = try shape("backbone.0.patch_embed.proj.weight")
        let stages = count("backbone.0.layers")
        guard stages > 0, patch.count == 4 else { throw fail("no Swin stages under 'backbone.0.layers'") }
        let depths = (0..<stages).map { count("backbone.0.layers.\($0).blocks") }
        let tables = try (0..<stages).map { try shape("backbone.0.layers.\($0).blocks.0.attn.relative_position_bias_table") }
        let side = Int(Double(tables[0][0]).squareRoot().rounded())
        guard side * side == tables[0][0], side % 2 == 1 else {
            throw fail("a relative-position table of \(tables[0][0]) rows is not (2·window − 1)²")
        }
        let hiddenMLP = try shape("backbone.0.layers.0.blocks.0.mlp.fc1.weight")[0]
        let swin = SwinConfiguration(
            embedDim: patch[0], depths: depths, heads: tables.map { $0[1] }, windowSize: (side + 1) / 2,
            mlpRatio: Double(hiddenMLP) / Double(patch[0]), patchSize: patch[2])
        // BERT.
        let words = try shape("bert.embeddings.word_embeddings.weight")
        let text = overrides["text_encoder"] as? [String: Any] ?? [:]
        let bertHeads = (text["num_attention_heads"] as? Int) ?? (words[1] % 64 == 0 ? words[1] / 64 : 0)
        guard bertHeads > 0, words[1] % bertHeads == 0 else {
            throw fail("BERT's head count is not in the shapes: give text_encoder: {num_attention_heads: N} in --config")
        }
        let bert = BertConfiguration(
            vocabularySize: words[0], hiddenSize: words[1], layers: count("bert.encoder.layer"), heads: bertHeads,
            intermediateSize: try shape("bert.encoder.layer.0.intermediate.dense.weight")[0],
            maximumPositions: try shape("bert.embeddings.position_embeddings.weight")[0],
            typeVocabularySize: try shape("bert.embeddings.token_type_embeddings.weight")[0],
            layerNormEpsilon: Float((text["layer_norm_eps"] as? Double) ?? 1e-12))
        // The transformer.
        let levelEmbed = try shape("transformer.level_embed")
        let (levels, d) = (levelEmbed[0], levelEmbed[1])
        let heads = (overrides["nheads"] as? Int) ?? 8
        let encoderOffsets = try shape("transformer.encoder.layers.0.self_attn.sampling_offsets.weight")[0]
        let decoderOffsets = try shape("transformer.decoder.layers.0.cross_attn.sampling_offsets.weight")[0]
        guard heads > 0, encoderOffsets % (heads * levels * 2) == 0, decoderOffsets % (heads * levels * 2) == 0 else {
            throw fail(
                "sampling offsets of \(encoderOffsets) and \(decoderOffsets) rows do not divide by nheads \(heads) × \(levels) levels × 2"
            )
        }
        let configuration = GroundingDINOConfiguration(
            swin: swin, bert: bert, hiddenDim: d, heads: heads,
            feedForward: try shape("transformer.encoder.layers.0.linear1.weight")[0],
            encoderLayers: count("transformer.encoder.layers"), decoderLayers: count("transformer.decoder.layers"),
            encoderPoints: encoderOffsets / (heads * levels * 2), decoderPoints: decoderOffsets / (heads * levels * 2),
            queries: try shape("transformer.tgt_embed.weight")[0], levels: levels)
        try configuration.check(against: overrides, path: path)
        return configuration
    }

    /// The official config's keys that a file may state: each must agree with what was read.
    func check(against overrides: [String: Any], path: String) throws {
        let read: [String: Int] = [
            "hidden_dim": hiddenDim, "nheads": heads, "dim_feedforward": feedForward, "enc_layers": encoderLayers,
            "dec_layers": decoderLayers, "num_queries": queries, "num_feature_levels": levels, "enc_n_points": encoderPoints,
            "dec_n_points": decoderPoints, "max_text_len": TokenizedPrompt.maximumLength,
        ]
        for (key, value) in read.sorted(by: { $0.key < $1.key }) {
            if let given = overrides[key] as? Int, given != value {
                throw GroundingDINOError.unusable(
                    path: path, reason: "the configuration says \(key): \(given), the weights \(value)")
            }
        }
        if let backbone = overrides["backbone"] as? String {
            let named = SwinConfiguration.named
            guard let expected = named[backbone] else {
                throw GroundingDINOError.unusable(
                    path: path, reason: "backbone '\(backbone)' is not one of \(named.keys.sorted().joined(separator: ", "))")
            }
            if expected != swin {
                throw GroundingDINOError.unusable(
                    path: path,
                    reason:
                        "the configuration says backbone \(backbone), the weights hold another Swin (width \(swin.embedDim), depths \(swin.depths))"
                )
            }
        }
    }

    /// The overrides in a configuration YAML file (the official config's names; BERT's under
    /// `text_encoder`), or those the released names stand for (`swin_t`, `swin_b`).
    /// - Throws: `GroundingDINOError.unusable` naming the file for unreadable YAML or unknown keys.
    public static func overrides(_ nameOrPath: String) throws -> [String: Any] {
        switch nameOrPath.lowercased() {
        case "swin_t", "swint", "swin-t": return ["backbone": "swin_T_224_1k"]
        case "swin_b", "swinb", "swin-b": return ["backbone": "swin_B_384_22k"]
        default: break
        }
        guard let data = FileManager.default.contents(atPath: nameOrPath), let text = String(data: data, encoding: .utf8) else {
            throw GroundingDINOError.unusable(
                path: nameOrPath, reason: "neither swin_t, swin_b nor a readable configuration file")
        }
        let loaded: Any?
        do { loaded = try Yams.load(yaml: text) } catch {
            throw GroundingDINOError.unusable(path: nameOrPath, reason: "not a YAML configuration: \(error)")
        }
        guard let map = loaded as? [String: Any] else {
            throw GroundingDINOError.unusable(path: nameOrPath, reason: "not a mapping of the official config's names")
        }
        let known: Set<String> = [
            "backbone", "hidden_dim", "nheads", "dim_feedforward", "enc_layers", "dec_layers", "num_queries",
            "num_feature_levels",
            "enc_n_points", "dec_n_points", "max_text_len", "text_encoder", "text_encoder_type", "position_embedding",
            "pe_temperatureH", "pe_temperatureW", "return_interm_indices", "two_stage_type", "query_dim", "dropout",
            "transformer_activation", "modelname", "batch_size", "sub_sentence_present", "dec_pred_bbox_embed_share",
            "embed_init_tgt", "use_text_enhancer", "use_fusion_layer", "use_text_cross_attention", "two_stage_bbox_embed_share",
            "two_stage_class_embed_share", "num_patterns", "pre_norm", "use_checkpoint", "use_transformer_ckpt", "fusion_dropout",
            "fusion_droppath", "text_dropout", "dn_labelbook_size", "dn_box_noise_scale", "dn_label_noise_ratio",
            "dn_label_coef", "dn_bbox_coef", "backbone_freeze_keywords",
        ]
        if let unknown = map.keys.filter({ !known.contains($0) }).sorted().first {
            throw GroundingDINOError.unusable(path: nameOrPath, reason: "unknown key '\(unknown)'")
        }
        // Settings this port implements one way only.
        let fixed: [(String, Any)] = [
            ("two_stage_type", "standard"), ("position_embedding", "sine"), ("transformer_activation", "relu"),
            ("pe_temperatureH", 20), ("pe_temperatureW", 20), ("query_dim", 4),
        ]
        for (key, value) in fixed {
            if let given = map[key], "\(given)" != "\(value)" {
                throw GroundingDINOError.unusable(
                    path: nameOrPath, reason: "\(key): \(given) is not supported (only \(value), as the released models)")
            }
        }
        return map
    }
}
