import Testing

@testable import SegmentAnything

@Suite struct SAMConfigurationTests {
    @Test func officialConfigurationsMatchBuildSam() {
        // segment_anything/build_sam.py: build_sam_vit_h / _l / _b.
        #expect(SAMConfiguration.vitH.encoderEmbedDim == 1280 && SAMConfiguration.vitH.encoderDepth == 32)
        #expect(SAMConfiguration.vitH.encoderGlobalAttnIndexes == [7, 15, 23, 31])
        #expect(SAMConfiguration.vitL.encoderNumHeads == 16 && SAMConfiguration.vitL.encoderGlobalAttnIndexes == [5, 11, 17, 23])
        #expect(SAMConfiguration.vitB.encoderEmbedDim == 768 && SAMConfiguration.vitB.embeddingSize == 64)
    }

    @Test func yamlUsesTheBuilderNames() throws {
        let c = try SAMConfiguration.parse(
            yaml:
                "image_size: 64\npatch_size: 8\nwindow_size: 3\nencoder_embed_dim: 32\nencoder_depth: 2\nencoder_num_heads: 2\nencoder_global_attn_indexes: [1]\nprompt_embed_dim: 32\n",
            path: "tiny.yaml")
        #expect(c.imageSize == 64 && c.embeddingSize == 8 && c.encoderGlobalAttnIndexes == [1] && c.decoderMLPDim == 2048)
    }

    @Test(arguments: [
        ("encoder_depht: 3\n", "unknown key 'encoder_depht'"),
        ("image_size: big\n", "'image_size' must be an integer"),
        ("image_size: 100\n", "not a multiple of 'patch_size'"),
        ("encoder_global_attn_indexes: [12]\n", "outside 0..<12"),
        ("encoder_num_heads: 0\n", "'encoder_num_heads' must be at least 1"),
        ("- 1\n", "expected a mapping"),
        ("tiny_vit: 3\n", "'tiny_vit' must be a mapping"),
        ("tiny_vit:\n  embed_dim: [8]\n", "unknown key 'tiny_vit.embed_dim'"),
        ("tiny_vit:\n  embed_dims: [8, 16]\n", "'tiny_vit.embed_dims' must list 4 stages"),
        ("tiny_vit:\n  num_heads: [2, 4, 5, 7]\n", "not a multiple of its 7 heads"),
        ("tiny_vit:\n  local_conv_size: 4\n", "'tiny_vit.local_conv_size' must be odd"),
        ("hq: true\nencoder_global_attn_indexes: []\n", "'hq' needs a ViT encoder with a global block"),
        ("hq: maybe\n", "'hq' must be"),
    ])
    func badFilesNameTheKey(yaml: String, message: String) {
        #expect {
            try SAMConfiguration.parse(yaml: yaml, path: "bad.yaml")
        } throws: { error in
            let text = error.localizedDescription
            return text.hasPrefix("bad.yaml: ") && text.contains(message)
        }
    }
}
