import CImageCodecs
import Foundation

/// Process-wide limits on decoded images.
public enum ImageLimits {
    /// Images with more pixels are refused before any allocation (a 65500x65500 JPEG header is a
    /// few hundred bytes but would need 12 GB). PIL's `Image.MAX_IMAGE_PIXELS` default; 0 = none.
    /// Set once at start-up (`--max-image-pixels`), before images are read.
    nonisolated(unsafe) public static var maxPixels = 89_478_485
}

/// An 8-bit image, row-major with interleaved channels (HWC): 1 = grey, 3 = RGB, 4 = RGBA.
public struct Image: Equatable, Sendable {
    public let width: Int
    public let height: Int
    public let channels: Int
    public var pixels: [UInt8]

    public init(width: Int, height: Int, channels: Int, pixels: [UInt8]) {
        precondition(
            pixels.count == width * height * channels,
            "Image: \(width)x\(height)x\(channels) needs \(width * height * channels) bytes, got \(pixels.count)")
        self.width = width
        self.height = height
        self.channels = channels
        self.pixels = pixels
    }

    /// A uniformly filled image.
    public init(width: Int, height: Int, channels: Int, filledWith value: UInt8 = 0) {
        self.init(
            width: width, height: height, channels: channels,
            pixels: Array(repeating: value, count: width * height * channels))
    }

    /// Reads a JPEG or PNG file (format from its first bytes), as decoded, without conversion.
    /// - Throws: `ImageError` naming the file: missing, empty, unknown format, corrupt or truncated.
    public static func read(from path: String) throws -> Image {
        let data = try ImageFile.contents(of: path)
        switch ImageFile.format(of: data) {
        case .jpeg: return try ImageFile.decode(data, path: path, keepPalette: false, codec: wsss_decode_jpeg).image
        case .png: return try ImageFile.decode(data, path: path, keepPalette: false, codec: nil).image
        case nil: throw ImageError.unknownFormat(path: path)
        }
    }

    /// Reads an image as RGB: grey is replicated, alpha dropped (as PIL's convert("RGB")).
    public static func readRGB(from path: String) throws -> Image {
        try read(from: path).rgb()
    }

    /// This image with 3 channels (grey replicated, alpha dropped).
    public func rgb() -> Image {
        if channels == 3 { return self }
        var out = [UInt8](repeating: 0, count: width * height * 3)
        for i in 0..<(width * height) {
            if channels <= 2 {
                let v = pixels[i * channels]
                out[3 * i] = v
                out[3 * i + 1] = v
                out[3 * i + 2] = v
            } else {
                out[3 * i] = pixels[i * channels]
                out[3 * i + 1] = pixels[i * channels + 1]
                out[3 * i + 2] = pixels[i * channels + 2]
            }
        }
        return Image(width: width, height: height, channels: 3, pixels: out)
    }

    /// Writes a PNG (1, 3 or 4 channels).
    public func writePNG(to path: String) throws {
        let data = try ImageFile.encodePNG(pixels, width: width, height: height, channels: channels, palette: nil, path: path)
        try ImageFile.write(data, to: path)
    }

    /// This image encoded as PNG (1, 3 or 4 channels), in memory: for containers that embed images,
    /// such as TensorBoard event files.
    /// - Throws: `ImageError.writeFailed` (path "<memory>") when libpng refuses the image.
    public func pngData() throws -> Data {
        try ImageFile.encodePNG(pixels, width: width, height: height, channels: channels, palette: nil, path: "<memory>")
    }

    /// Writes a baseline JPEG (1 or 3 channels) at `quality` (1–100).
    public func writeJPEG(to path: String, quality: Int = 90) throws {
        var out: UnsafeMutablePointer<UInt8>?
        var size = 0
        var message = [CChar](repeating: 0, count: 256)
        let status = pixels.withUnsafeBufferPointer {
            wsss_encode_jpeg(
                $0.baseAddress, Int32(width), Int32(height), Int32(channels), Int32(quality), &out, &size,
                &message, message.count)
        }
        guard status == 0, let out else { throw ImageError.writeFailed(path: path, reason: String(cString: message)) }
        defer { wsss_free(out) }
        try ImageFile.write(Data(bytes: out, count: size), to: path)
    }

    /// The image mirrored left–right.
    public func flippedHorizontally() -> Image {
        var out = pixels
        for y in 0..<height {
            for x in 0..<width {
                let src = (y * width + x) * channels, dst = (y * width + width - 1 - x) * channels
                for c in 0..<channels { out[dst + c] = pixels[src + c] }
            }
        }
        return Image(width: width, height: height, channels: channels, pixels: out)
    }
}

/// File-level helpers shared by `Image` and `LabelMap`.
enum ImageFile {
    enum Format { case jpeg, png }

    static func format(of data: Data) -> Format? {
        if data.starts(with: [0xFF, 0xD8, 0xFF]) { return .jpeg }
        if data.starts(with: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) { return .png }
        return nil
    }

    static func contents(of path: String) throws -> Data {
        var info = stat()
        guard stat(path, &info) == 0 else {
            // A symbolic link that leads nowhere says more than "no such file".
            let reason = errno
            if reason == ENOENT && lstat(path, &info) != 0 { throw ImageError.missingFile(path: path) }
            throw ImageError.notAFile(
                path: path,
                reason: reason == ELOOP
                    ? "symbolic link loop" : reason == ENOENT ? "dangling symbolic link" : String(cString: strerror(reason)))
        }
        guard (info.st_mode & S_IFMT) != S_IFDIR else { throw ImageError.notAFile(path: path, reason: "is a folder") }
        guard access(path, R_OK) == 0 else { throw ImageError.notAFile(path: path, reason: String(cString: strerror(errno))) }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ImageError.corrupt(path: path, reason: "cannot read the file")
        }
        guard !data.isEmpty else { throw ImageError.emptyFile(path: path) }
        return data
    }

    typealias JPEGDecoder = (
        UnsafePointer<UInt8>?, Int, Int, UnsafeMutablePointer<wsss_image>?, UnsafeMutablePointer<CChar>?, Int
    ) -> Int32

    /// Decodes with the JPEG codec when given, else as PNG; returns the image and, for palette
    /// PNGs decoded with `keepPalette`, the palette.
    static func decode(_ data: Data, path: String, keepPalette: Bool, codec: JPEGDecoder?) throws
        -> (image: Image, palette: [UInt8]?, bitDepth: Int)
    {
        var decoded = wsss_image()
        var message = [CChar](repeating: 0, count: 256)
        let status = data.withUnsafeBytes { raw -> Int32 in
            let bytes = raw.bindMemory(to: UInt8.self).baseAddress
            let limit = ImageLimits.maxPixels
            if let codec { return codec(bytes, data.count, limit, &decoded, &message, message.count) }
            return wsss_decode_png(bytes, data.count, keepPalette ? 1 : 0, limit, &decoded, &message, message.count)
        }
        guard status == 0, let pointer = decoded.pixels else {
            let reason = String(cString: message)
            if status == -4 { throw ImageError.tooLarge(path: path, reason: reason) }
            if status == -2 && reason.contains("CMYK") { throw ImageError.unsupported(path: path, reason: reason) }
            throw ImageError.corrupt(path: path, reason: reason)
        }
        defer { wsss_free(pointer) }
        let (w, h, c) = (Int(decoded.width), Int(decoded.height), Int(decoded.channels))
        let image = Image(width: w, height: h, channels: c, pixels: Array(UnsafeBufferPointer(start: pointer, count: w * h * c)))
        var palette: [UInt8]?
        if decoded.is_palette != 0 {
            palette = withUnsafeBytes(of: decoded.palette) { Array($0.prefix(Int(decoded.palette_size) * 3)) }
        }
        return (image, palette, Int(decoded.bit_depth))
    }

    static func encodePNG(_ pixels: [UInt8], width: Int, height: Int, channels: Int, palette: [UInt8]?, path: String) throws
        -> Data
    {
        var out: UnsafeMutablePointer<UInt8>?
        var size = 0
        var message = [CChar](repeating: 0, count: 256)
        let status = pixels.withUnsafeBufferPointer { p in
            if let palette {
                return palette.withUnsafeBufferPointer { pal in
                    wsss_encode_png(
                        p.baseAddress, Int32(width), Int32(height), 1, pal.baseAddress, Int32(palette.count / 3), &out,
                        &size, &message, message.count)
                }
            }
            return wsss_encode_png(
                p.baseAddress, Int32(width), Int32(height), Int32(channels), nil, 0, &out, &size, &message,
                message.count)
        }
        guard status == 0, let out else { throw ImageError.writeFailed(path: path, reason: String(cString: message)) }
        defer { wsss_free(out) }
        return Data(bytes: out, count: size)
    }

    /// Writes atomically (temporary file + rename).
    static func write(_ data: Data, to path: String) throws {
        do {
            try data.write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw ImageError.writeFailed(path: path, reason: error.localizedDescription)
        }
    }
}
