import Autograd
import Testing

@testable import SegmentAnything

/// ImageEncoderViT against the official one, stage by stage, on the tiny model (windowed block 0
/// pads the 8x8 grid to 9x9 windows of 3; block 1 is global).
@Suite struct ImageEncoderTests {
    @Test func everyStageMatchesTheReference() throws {
        let model = try SAMFixtures.model()
        let file = try SAMFixtures.encoder()
        let encoder = try #require(model.imageEncoder as? ImageEncoderViT)
        try withoutGrad {
            let input = try file.read("encoder/input")
            let patches = encoder.patchEmbed(input)
            expectClose(patches, try file.read("encoder/patch_embed"), "patch_embed")
            var tokens = patches + encoder.posEmbed
            for (i, block) in encoder.blocks.elements.enumerated() {
                tokens = block(tokens)
                expectClose(tokens, try file.read("encoder/block_\(i)"), "block \(i) (window \(block.windowSize))")
            }
            let neck = encoder.neck(tokens.permuted([0, 3, 1, 2]))
            expectClose(neck, try file.read("encoder/neck"), "neck")
            expectClose(encoder(input), try file.read("encoder/neck"), "image embedding")
        }
    }

    @Test func blocksAreWindowedExceptTheGlobalIndexes() throws {
        let encoder = try #require(SAM(configuration: .vitB).imageEncoder as? ImageEncoderViT)
        #expect(encoder.blocks.elements.map(\.windowSize) == [14, 14, 0, 14, 14, 0, 14, 14, 0, 14, 14, 0])
        #expect(encoder.blocks[0].attn.relPosH.shape == [27, 64] && encoder.blocks[2].attn.relPosH.shape == [127, 64])
    }
}
