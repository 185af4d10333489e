import Autograd
import CImageCodecs
import Foundation

/// A per-pixel class map: 0 = background, 1…C = classes, 255 = ignore (VOC convention).
public struct LabelMap: Equatable, Sendable {
    /// The value of pixels that no loss or score counts.
    public static let ignore: UInt8 = 255

    public let width: Int
    public let height: Int
    public var values: [UInt8]

    public init(width: Int, height: Int, values: [UInt8]) {
        precondition(
            values.count == width * height, "LabelMap: \(width)x\(height) needs \(width * height) values, got \(values.count)")
        self.width = width
        self.height = height
        self.values = values
    }

    public init(width: Int, height: Int, filledWith value: UInt8 = 0) {
        self.init(width: width, height: height, values: Array(repeating: value, count: width * height))
    }

    public subscript(x: Int, y: Int) -> UInt8 {
        get { values[y * width + x] }
        set { values[y * width + x] = newValue }
    }

    /// Reads a label PNG: palette images give their indices (VOC SegmentationClass), grey images
    /// their values (SegmentationClassAug), RGB images are mapped back through `palette`
    /// (unknown colours are an error).
    public static func read(from path: String, palette: ColorMap = .voc) throws -> LabelMap {
        let data = try ImageFile.contents(of: path)
        guard ImageFile.format(of: data) == .png else {
            throw ImageFile.format(of: data) == .jpeg
                ? ImageError.unsupported(path: path, reason: "labels must be PNG; JPEG compression alters class ids")
                : ImageError.unknownFormat(path: path)
        }
        let (image, filePalette, bitDepth) = try ImageFile.decode(data, path: path, keepPalette: true, codec: nil)
        // 8-bit decoding keeps a 16-bit sample's high byte, so ids 1…255 would all read as 0.
        guard bitDepth <= 8 else {
            throw ImageError.unsupported(path: path, reason: "16-bit label PNG; save class ids as an 8-bit grey or palette PNG")
        }
        if filePalette != nil || image.channels == 1 {
            return LabelMap(width: image.width, height: image.height, values: image.pixels)
        }
        guard image.channels >= 3 else {
            throw ImageError.unsupported(path: path, reason: "\(image.channels)-channel label image")
        }
        let lookup = palette.reverseLookup
        var values = [UInt8](repeating: 0, count: image.width * image.height)
        for i in 0..<values.count {
            let (r, g, b) = (
                image.pixels[i * image.channels], image.pixels[i * image.channels + 1], image.pixels[i * image.channels + 2]
            )
            guard let v = lookup[Int(r) << 16 | Int(g) << 8 | Int(b)] else {
                throw ImageError.unknownLabelColor(path: path, red: r, green: g, blue: b)
            }
            values[i] = v
        }
        return LabelMap(width: image.width, height: image.height, values: values)
    }

    /// Writes a palette PNG (the VOC format: indices with the VOC colour map by default).
    public func writePNG(to path: String, palette: ColorMap = .voc) throws {
        let data = try ImageFile.encodePNG(values, width: width, height: height, channels: 1, palette: palette.bytes, path: path)
        try ImageFile.write(data, to: path)
    }

    /// The map mirrored left–right.
    public func flippedHorizontally() -> LabelMap {
        var out = values
        for y in 0..<height {
            for x in 0..<width { out[y * width + width - 1 - x] = values[y * width + x] }
        }
        return LabelMap(width: width, height: height, values: out)
    }

    /// Nearest-neighbour resize (labels must not be interpolated). `rule: .torch` (the default) is
    /// torch/cv2 "nearest", source = min(floor(dst · in / out), in - 1); `.pil` is Pillow's
    /// `Image.resize(NEAREST)`, the cell centre, as deeplab-pytorch scales labels
    /// (libs/datasets/base.py `_augmentation`). Both come from Autograd's `ResizeAxis`.
    public func resizedNearest(height newHeight: Int, width newWidth: Int, rule: NearestRule = .torch) -> LabelMap {
        let xs = ResizeAxis(nearestFrom: width, to: newWidth, rule: rule).lower
        let ys = ResizeAxis(nearestFrom: height, to: newHeight, rule: rule).lower
        var out = [UInt8](repeating: 0, count: newWidth * newHeight)
        for (j, sy) in ys.enumerated() {
            for (i, sx) in xs.enumerated() { out[j * newWidth + i] = values[sy * width + sx] }
        }
        return LabelMap(width: newWidth, height: newHeight, values: out)
    }

    /// The class ids present, excluding ignore.
    public var classesPresent: Set<UInt8> {
        // A 256-entry table, not Set(values): hashing every pixel of a 640x480 map took ~10 ms.
        var seen = [Bool](repeating: false, count: 256)
        values.withUnsafeBufferPointer { p in
            seen.withUnsafeMutableBufferPointer { s in
                for v in p { s[Int(v)] = true }
            }
        }
        return Set((0..<255).filter { seen[$0] }.map { UInt8($0) })
    }
}

/// A 256-entry RGB palette for label PNGs.
public struct ColorMap: Equatable, Sendable {
    /// 768 bytes: RGB per index.
    public let bytes: [UInt8]

    public init(bytes: [UInt8]) {
        precondition(bytes.count % 3 == 0 && bytes.count <= 768, "ColorMap: \(bytes.count) bytes is not a list of RGB triples")
        self.bytes = bytes
    }

    /// The PASCAL VOC colour map (VOCdevkit's labelcolormap: bits of the index spread over RGB).
    public static let voc: ColorMap = {
        var bytes = [UInt8](repeating: 0, count: 768)
        for index in 0..<256 {
            var (r, g, b, c) = (0, 0, 0, index)
            for shift in stride(from: 7, through: 0, by: -1) {
                r |= (c & 1) << shift
                g |= ((c >> 1) & 1) << shift
                b |= ((c >> 2) & 1) << shift
                c >>= 3
            }
            bytes[3 * index] = UInt8(r)
            bytes[3 * index + 1] = UInt8(g)
            bytes[3 * index + 2] = UInt8(b)
        }
        return ColorMap(bytes: bytes)
    }()

    /// The colour of an index.
    public func color(of index: UInt8) -> (UInt8, UInt8, UInt8) {
        let i = Int(index) * 3
        return i + 2 < bytes.count ? (bytes[i], bytes[i + 1], bytes[i + 2]) : (0, 0, 0)
    }

    /// RGB (packed as r<<16|g<<8|b) → the first index with that colour.
    var reverseLookup: [Int: UInt8] {
        var table: [Int: UInt8] = [:]
        for i in stride(from: bytes.count / 3 - 1, through: 0, by: -1) {
            table[Int(bytes[3 * i]) << 16 | Int(bytes[3 * i + 1]) << 8 | Int(bytes[3 * i + 2])] = UInt8(i)
        }
        return table
    }
}
