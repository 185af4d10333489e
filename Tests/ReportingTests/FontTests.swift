import Imaging
import Testing

@testable import Reporting

@Suite struct FontTests {
    /// The ink pixels of an RGB image (any channel below 128), as (x, y) pairs.
    static func ink(_ image: Image) -> Set<[Int]> {
        var out = Set<[Int]>()
        for y in 0..<image.height {
            for x in 0..<image.width where image.pixels[(y * image.width + x) * image.channels] < 128 {
                out.insert([x, y])
            }
        }
        return out
    }

    @Test func measuresStrings() {
        #expect(BitmapFont.width(of: "") == 0)
        #expect(BitmapFont.width(of: "0") == 5)
        #expect(BitmapFont.width(of: "0.25") == 4 * 6 - 1)
        #expect(BitmapFont.width(of: "-1.5e-3", scale: 2) == (7 * 6 - 1) * 2)
        #expect(BitmapFont.height() == 9)
        #expect(BitmapFont.height(scale: 2) == 18)
    }

    @Test func everyPrintableCharacterHasItsOwnGlyph() {
        var seen: [[UInt8]: Character] = [:]
        for value in UInt8(32)...UInt8(126) {
            let character = Character(Unicode.Scalar(value))
            let rows = BitmapFont.glyphs[character]
            #expect(rows != nil, "no glyph for \(character)")
            guard let rows else { continue }
            #expect(rows.count <= BitmapFont.lineHeight && rows.allSatisfy { $0 < 0x20 }, "\(character) exceeds the 5x9 cell")
            if let other = seen[rows] { Issue.record("\(character) and \(other) share a glyph") }
            seen[rows] = character
        }
        // Non-ASCII draws as the box, never as nothing.
        #expect(BitmapFont.glyph(for: "µ") == BitmapFont.glyph(for: "\u{1}"))
        #expect(BitmapFont.glyph(for: "µ").contains { $0 != 0 })
    }

    @Test func drawsTheGlyphBitsAtTheGivenCorner() {
        var image = Image(width: 20, height: 20, channels: 3, filledWith: 255)
        BitmapFont.draw("7", into: &image, x: 3, y: 2, color: (0, 0, 0))
        var expected = Set<[Int]>()
        for (row, bits) in BitmapFont.glyph(for: "7").enumerated() {
            for column in 0..<5 where bits & (0x10 >> column) != 0 { expected.insert([3 + column, 2 + row]) }
        }
        #expect(Self.ink(image) == expected)
        #expect(expected.contains([3, 2]) && expected.contains([7, 2]))  // the top bar of 7
    }

    @Test func scalesAndRotates() {
        var one = Image(width: 40, height: 40, channels: 3, filledWith: 255)
        BitmapFont.draw("E", into: &one, x: 0, y: 0, color: (0, 0, 0))
        var two = Image(width: 40, height: 40, channels: 3, filledWith: 255)
        BitmapFont.draw("E", into: &two, x: 0, y: 0, scale: 2, color: (0, 0, 0))
        #expect(
            Self.ink(two)
                == Set(
                    Self.ink(one).flatMap { p in
                        [[0, 0], [1, 0], [0, 1], [1, 1]].map { [2 * p[0] + $0[0], 2 * p[1] + $0[1]] }
                    }))

        // Turned counter-clockwise: the glyph's top row becomes its left column, running upwards
        // from the bottom-left corner (x, y).
        var turned = Image(width: 40, height: 40, channels: 3, filledWith: 255)
        BitmapFont.draw("E", into: &turned, x: 10, y: 30, color: (0, 0, 0), rotated: true)
        let expected = Set(Self.ink(one).map { p in [10 + p[1], 30 - 1 - p[0]] })
        #expect(Self.ink(turned) == expected)
    }

    @Test func clipsAtTheEdgesAndHandlesGreyAndAlpha() {
        var grey = Image(width: 8, height: 8, channels: 1, filledWith: 255)
        BitmapFont.draw("WW", into: &grey, x: -3, y: -4, scale: 2, color: (255, 0, 0))
        #expect(grey.pixels.contains(76))  // BT.601 luma of pure red
        var rgba = Image(width: 8, height: 8, channels: 4, filledWith: 0)
        BitmapFont.draw("H", into: &rgba, x: 0, y: 0, color: (10, 20, 30))
        #expect(Array(rgba.pixels[0..<4]) == [10, 20, 30, 255])
    }
}
