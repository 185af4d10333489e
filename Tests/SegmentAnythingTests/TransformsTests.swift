import Imaging
import Testing

@testable import SegmentAnything

/// ResizeLongestSide against segment_anything/utils/transforms.py (PIL 13 via torchvision).
@Suite struct TransformsTests {
    @Test func applyImageEqualsPILToTheByte() throws {
        let file = try SAMFixtures.encoder()
        let image = try SAMFixtures.image(file, "image")
        let resized = ResizeLongestSide(targetLength: 64).applyImage(image)
        let expected = try SAMFixtures.image(file, "resized")
        #expect(resized.width == 64 && resized.height == 48)
        #expect(resized == expected, "\(zip(resized.pixels, expected.pixels).filter { $0 != $1 }.count) bytes differ")
    }

    @Test(arguments: ["down3", "up", "same_width", "tall", "narrow_v", "narrow_h"])
    func moreSizesEqualPIL(name: String) throws {
        let file = try SAMFixtures.encoder()
        let target = try #require(file.requiredAttribute(named: "target_length", on: "/resize/\(name)").intValue)
        let resized = ResizeLongestSide(targetLength: target).applyImage(try SAMFixtures.image(file, "resize/\(name)/input"))
        let expected = try SAMFixtures.image(file, "resize/\(name)/output")
        #expect((resized.width, resized.height) == (expected.width, expected.height))
        #expect(resized == expected, "\(name): \(zip(resized.pixels, expected.pixels).filter { $0 != $1 }.count) bytes differ")
    }

    @Test func preprocessShapeRoundsHalfUp() {
        #expect(ResizeLongestSide.preprocessShape(height: 75, width: 100, longSideLength: 64) == (48, 64))
        #expect(ResizeLongestSide.preprocessShape(height: 375, width: 500, longSideLength: 1024) == (768, 1024))
        // 333 · 1024/500 = 681.98 → 682; 1 · 1024/3 = 341.33 → 341.
        #expect(ResizeLongestSide.preprocessShape(height: 333, width: 500, longSideLength: 1024) == (682, 1024))
        #expect(ResizeLongestSide.preprocessShape(height: 3, width: 1, longSideLength: 1024) == (1024, 341))
    }

    @Test func coordsAndBoxesScalePerAxis() {
        let t = ResizeLongestSide(targetLength: 64)
        let p = t.applyCoords([(x: 50, y: 30)], originalSize: (75, 100))
        #expect(p[0].x == 50 * 0.64 && p[0].y == 30 * (48.0 / 75.0))
        let b = t.applyBoxes([(x0: 10, y0: 20, x1: 90, y1: 70)], originalSize: (75, 100))
        #expect(b[0].x0 == 10 * 0.64 && b[0].y1 == 70 * (48.0 / 75.0))
    }
}
