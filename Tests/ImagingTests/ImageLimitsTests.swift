import Foundation
import Testing

@testable import Imaging

/// Decompression bombs: a header that declares a huge image is refused before any allocation.
@Suite struct ImageLimitsTests {
    let directory = NSTemporaryDirectory() + "wsss-limits-\(UUID().uuidString)"

    /// CRC-32 (ISO-HDLC, as PNG chunks use) of `bytes`.
    static func crc32(_ bytes: ArraySlice<UInt8>) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = crc & 1 != 0 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
        }
        return ~crc
    }

    @Test func aJPEGDeclaring65500SquaredIsRefused() throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let path = directory + "/bomb.jpg"
        try Image(width: 16, height: 16, channels: 3, filledWith: 128).writeJPEG(to: path)
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        // SOF0: FF C0, length (2), precision (1), height (2), width (2).
        let sof = try #require((0..<(bytes.count - 1)).first { bytes[$0] == 0xFF && bytes[$0 + 1] == 0xC0 })
        for offset in [sof + 5, sof + 7] { (bytes[offset], bytes[offset + 1]) = (0xFF, 0xDC) }  // 65500
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        #expect(throws: ImageError.tooLarge(path: path, reason: "65500x65500 pixels exceed the limit of 89478485")) {
            try Image.read(from: path)
        }
        #expect(ImageError.tooLarge(path: path, reason: "x").localizedDescription.contains("--max-image-pixels"))
    }

    @Test func aPNGDeclaringTooManyPixelsIsRefused() throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let path = directory + "/bomb.png"
        try Image(width: 4, height: 4, channels: 3, filledWith: 9).writePNG(to: path)
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        // IHDR data starts at byte 16 (8 signature + 4 length + 4 type): width, height big-endian.
        for (offset, value) in [(16, UInt32(20000)), (20, UInt32(20000))] {
            for k in 0..<4 { bytes[offset + k] = UInt8(truncatingIfNeeded: value >> (24 - 8 * UInt32(k))) }
        }
        let crc = Self.crc32(bytes[12..<29])
        for k in 0..<4 { bytes[29 + k] = UInt8(truncatingIfNeeded: crc >> (24 - 8 * UInt32(k))) }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        #expect(throws: ImageError.tooLarge(path: path, reason: "20000x20000 pixels exceed the limit of 89478485")) {
            try Image.read(from: path)
        }
    }
}

@Suite struct SixteenBitLabelTests {
    /// A 16-bit grey label PNG (written by PIL, mode I;16): refused by name, not read as all background.
    @Test func sixteenBitLabelsAreRefused() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/images/label_16bit.png").path
        #expect(
            throws: ImageError.unsupported(path: path, reason: "16-bit label PNG; save class ids as an 8-bit grey or palette PNG")
        ) {
            try LabelMap.read(from: path)
        }
    }
}
