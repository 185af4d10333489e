import Foundation
import Testing

@testable import Imaging

/// `Image.dimensions(ofFileAt:)` reads a PNG's IHDR or a JPEG's frame header only: on every
/// fixture flavour (baseline and progressive JPEG, grey, palette, 1-bit, 16-bit PNG) it gives the
/// size a full decode gives, and refuses what is no image by name.
@Suite struct ImageHeaderTests {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/images").path

    @Test(arguments: [
        "bilevel.png", "grey.jpg", "grey.png", "label_grey.png", "label_palette.png", "label_rgb.png", "rgb.png",
        "rgb_progressive.jpg", "rgb_q75_420.jpg", "rgb_q90_422.jpg", "rgb_q95_444.jpg", "rgba.png", "label_16bit.png",
    ])
    func headerSizeEqualsTheDecodedSize(name: String) throws {
        let path = "\(Self.folder)/\(name)"
        let (width, height) = try Image.dimensions(ofFileAt: path)
        if name == "label_16bit.png" {
            // Refused by the decoder (16-bit labels), but its header is still a size.
            #expect(width > 0 && height > 0)
        } else {
            let image = try Image.read(from: path)
            #expect(
                width == image.width && height == image.height,
                "\(name): header \(width)x\(height), decoded \(image.width)x\(image.height)")
        }
    }

    @Test func refusesWhatIsNoImage() throws {
        let directory = NSTemporaryDirectory() + "wsss-header-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        FileManager.default.createFile(atPath: directory + "/empty.jpg", contents: Data())
        FileManager.default.createFile(atPath: directory + "/text.jpg", contents: Data("hello".utf8))
        FileManager.default.createFile(atPath: directory + "/cut.jpg", contents: Data([0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10]))
        #expect(throws: ImageError.emptyFile(path: directory + "/empty.jpg")) {
            try Image.dimensions(ofFileAt: directory + "/empty.jpg")
        }
        #expect(throws: ImageError.unknownFormat(path: directory + "/text.jpg")) {
            try Image.dimensions(ofFileAt: directory + "/text.jpg")
        }
        #expect(throws: ImageError.self) { try Image.dimensions(ofFileAt: directory + "/cut.jpg") }
        #expect(throws: ImageError.missingFile(path: directory + "/none.jpg")) {
            try Image.dimensions(ofFileAt: directory + "/none.jpg")
        }
    }
}
