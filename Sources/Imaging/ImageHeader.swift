import Foundation

extension Image {
    /// Width and height from a PNG's IHDR or a JPEG's start-of-frame marker, reading only the
    /// file's first 256 KB: how a converter checks thousands of images against their annotations
    /// without decoding them.
    /// - Throws: `ImageError` (missing, empty, not PNG or JPEG, no size found in the header).
    public static func dimensions(ofFileAt path: String) throws -> (width: Int, height: Int) {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            _ = try ImageFile.contents(of: path)  // names the reason (missing, folder, permission)
            throw ImageError.missingFile(path: path)
        }
        defer { try? handle.close() }
        let data = [UInt8](try handle.read(upToCount: 256 << 10) ?? Data())
        guard !data.isEmpty else { throw ImageError.emptyFile(path: path) }
        func be16(_ i: Int) -> Int { Int(data[i]) << 8 | Int(data[i + 1]) }
        func be32(_ i: Int) -> Int { be16(i) << 16 | be16(i + 2) }
        switch ImageFile.format(of: Data(data.prefix(8))) {
        case .png:
            // Signature (8), IHDR length (4) and type (4), then width and height.
            guard data.count >= 24, data[12...15] == [0x49, 0x48, 0x44, 0x52] else {
                throw ImageError.corrupt(path: path, reason: "no IHDR chunk")
            }
            return (be32(16), be32(20))
        case .jpeg:
            var i = 2
            while i + 9 < data.count {
                guard data[i] == 0xFF else { throw ImageError.corrupt(path: path, reason: "bad JPEG marker at byte \(i)") }
                let marker = data[i + 1]
                if marker == 0xFF { i += 1; continue }  // fill byte
                if marker == 0xD8 || (0xD0...0xD7).contains(marker) || marker == 0x01 { i += 2; continue }  // no length
                // SOF0…SOF15 but DHT (C4), JPG (C8) and DAC (CC): precision, height, width.
                if (0xC0...0xCF).contains(marker) && ![0xC4, 0xC8, 0xCC].contains(marker) { return (be16(i + 7), be16(i + 5)) }
                if marker == 0xDA || marker == 0xD9 { break }  // scan data or end before a frame header
                i += 2 + be16(i + 2)
            }
            throw ImageError.corrupt(path: path, reason: "no JPEG frame header in its first 256 KB")
        case nil:
            throw ImageError.unknownFormat(path: path)
        }
    }
}
