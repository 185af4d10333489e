import Autograd
import Foundation
import HDF5
import Testing

@testable import Imaging

/// Tests/Fixtures/images, made by scripts/make_image_fixtures.py: files written by PIL and the
/// arrays PIL decodes from them (PIL and Debian both use libjpeg-turbo).
enum ImageFixtures {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/images").path
    static let files = [
        "bilevel.png", "grey.jpg", "grey.png", "label_grey.png", "label_palette.png", "label_rgb.png",
        "rgb.png", "rgb_progressive.jpg", "rgb_q75_420.jpg", "rgb_q90_422.jpg", "rgb_q95_444.jpg", "rgba.png",
    ]
    static func path(_ name: String) -> String { directory + "/" + name }
    static func reference(_ group: String, _ name: String) throws -> (shape: [Int], values: [UInt8]) {
        let file = try HDF5File(path: directory + "/images.h5", mode: .read)
        let labels = try file.readLabels("/\(group)/\(name)")
        return (labels.shape, labels.values.map { UInt8($0) })
    }
}

@Suite struct ImageTests {
    @Test(arguments: ImageFixtures.files)
    func decodesLikePIL(_ name: String) throws {
        // np.array(Image.open(f)): palette PNGs give indices, so compare those via LabelMap.
        let raw = try ImageFixtures.reference("raw", name)
        if name.hasPrefix("label_palette") {
            let labels = try LabelMap.read(from: ImageFixtures.path(name))
            #expect([labels.height, labels.width] == raw.shape)
            #expect(labels.values == raw.values)
        } else {
            let image = try Image.read(from: ImageFixtures.path(name))
            let shape = image.channels == 1 ? [image.height, image.width] : [image.height, image.width, image.channels]
            #expect(shape == raw.shape)
            #expect(image.pixels == raw.values, "\(name): pixels differ from PIL's")
        }
        // Image.open(f).convert("RGB")
        let rgb = try ImageFixtures.reference("rgb", name)
        let image = try Image.readRGB(from: ImageFixtures.path(name))
        #expect([image.height, image.width, 3] == rgb.shape)
        #expect(image.pixels == rgb.values, "\(name): RGB pixels differ from PIL's convert(\"RGB\")")
    }

    @Test func labelsReadTheSameFromPaletteGreyAndRGBFiles() throws {
        let palette = try LabelMap.read(from: ImageFixtures.path("label_palette.png"))
        #expect(try LabelMap.read(from: ImageFixtures.path("label_grey.png")) == palette)
        #expect(try LabelMap.read(from: ImageFixtures.path("label_rgb.png")) == palette)
        #expect(palette.classesPresent == [0, 7, 15])
    }

    @Test func vocColorMapMatchesVOCdevkit() {
        #expect(ColorMap.voc.color(of: 0) == (0, 0, 0))
        #expect(ColorMap.voc.color(of: 1) == (128, 0, 0))
        #expect(ColorMap.voc.color(of: 15) == (192, 128, 128))
        #expect(ColorMap.voc.color(of: 255) == (224, 224, 192))
    }

    @Test func pngRoundTrips() throws {
        let dir = NSTemporaryDirectory() + "wsss-img-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let image = try Image.read(from: ImageFixtures.path("rgba.png"))
        try image.writePNG(to: dir + "/a.png")
        #expect(try Image.read(from: dir + "/a.png") == image)
        let labels = try LabelMap.read(from: ImageFixtures.path("label_palette.png"))
        try labels.writePNG(to: dir + "/l.png")
        #expect(try LabelMap.read(from: dir + "/l.png") == labels)
        // A JPEG round trip is close, not exact: the fixture carries σ=12 noise, which libjpeg's
        // default 4:2:0 chroma subsampling smooths away (about 9 levels on average).
        let rgb = try Image.readRGB(from: ImageFixtures.path("rgb.png"))
        try rgb.writeJPEG(to: dir + "/j.jpg", quality: 95)
        let back = try Image.read(from: dir + "/j.jpg")
        let meanError = zip(back.pixels, rgb.pixels).map { abs(Int($0) - Int($1)) }.reduce(0, +) / rgb.pixels.count
        #expect(meanError < 12)
    }

    @Test func badFilesGiveErrorsNamingTheFile() throws {
        let dir = NSTemporaryDirectory() + "wsss-bad-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let missing = dir + "/missing.jpg"
        #expect(throws: ImageError.missingFile(path: missing)) { try Image.read(from: missing) }
        let empty = dir + "/empty.png"
        FileManager.default.createFile(atPath: empty, contents: Data())
        #expect(throws: ImageError.emptyFile(path: empty)) { try Image.read(from: empty) }
        let text = dir + "/text.jpg"
        try "hello".write(toFile: text, atomically: true, encoding: .utf8)
        #expect(throws: ImageError.unknownFormat(path: text)) { try Image.read(from: text) }
        for name in ["rgb_q75_420.jpg", "rgb_progressive.jpg", "rgb.png", "label_palette.png"] {
            let data = try Data(contentsOf: URL(fileURLWithPath: ImageFixtures.path(name)))
            for keep in [data.count / 2, data.count - 20, 40] {
                let cut = dir + "/cut-\(keep)-" + name
                try data.prefix(keep).write(to: URL(fileURLWithPath: cut))
                do {
                    _ = name.hasPrefix("label") ? try LabelMap.read(from: cut).values : try Image.read(from: cut).pixels
                    Issue.record("\(cut): truncated file decoded without an error")
                } catch let error as ImageError {
                    guard case .corrupt(let path, _) = error else {
                        Issue.record("\(cut): expected a corrupt-file error, got \(error)")
                        continue
                    }
                    #expect(path == cut)
                    #expect(error.localizedDescription.hasPrefix(cut + ": corrupt or truncated"))
                }
            }
        }
        // Flipped bytes in PNG image data fail the CRC check.
        var data = try Data(contentsOf: URL(fileURLWithPath: ImageFixtures.path("rgb.png")))
        data[data.count / 2] ^= 0xFF
        let flipped = dir + "/flipped.png"
        try data.write(to: URL(fileURLWithPath: flipped))
        #expect(throws: ImageError.self) { try Image.read(from: flipped) }
        // JPEG labels would have their class ids smeared by compression.
        #expect(throws: ImageError.self) { try LabelMap.read(from: ImageFixtures.path("grey.jpg")) }
    }

    @Test func unknownLabelColourIsAnError() throws {
        let dir = NSTemporaryDirectory() + "wsss-col-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let path = dir + "/odd.png"
        try Image(width: 2, height: 1, channels: 3, pixels: [128, 0, 0, 1, 2, 3]).writePNG(to: path)
        #expect(throws: ImageError.unknownLabelColor(path: path, red: 1, green: 2, blue: 3)) { try LabelMap.read(from: path) }
    }

    @Test func bilinearResizeMatchesTheTensorOp() throws {
        // The same half-pixel rule as F.interpolate(align_corners=False), which Autograd's
        // resize is checked against.
        let image = try Image.readRGB(from: ImageFixtures.path("rgb_q95_444.jpg"))
        let planar = PlanarImage(image)
        let small = planar.resizedBilinear(height: 13, width: 20)
        let tensor = Tensor(shape: [1, 3, image.height, image.width], values: planar.values)
        let reference = withoutGrad { tensor.resizedBilinear(to: (13, 20), alignCorners: false) }
        #expect(small.values == reference.scalars)
    }

    @Test func flipsAndNearestResizeKeepLabelValues() {
        let labels = LabelMap(width: 3, height: 2, values: [0, 1, 2, 3, 4, 255])
        #expect(labels.flippedHorizontally().values == [2, 1, 0, 255, 4, 3])
        #expect(labels.resizedNearest(height: 4, width: 6).classesPresent == labels.classesPresent)
        let image = Image(width: 2, height: 1, channels: 3, pixels: [1, 2, 3, 4, 5, 6])
        #expect(image.flippedHorizontally().pixels == [4, 5, 6, 1, 2, 3])
    }

    @Test func overlayPaintsClassesAndLeavesBackground() {
        let image = Image(width: 3, height: 1, channels: 3, filledWith: 100)
        let labels = LabelMap(width: 3, height: 1, values: [0, 1, 255])
        let out = image.overlaid(with: labels, opacity: 0.5)
        #expect(Array(out.pixels[0..<3]) == [100, 100, 100])
        #expect(Array(out.pixels[3..<6]) == [114, 50, 50])
        #expect(Array(out.pixels[6..<9]) == [178, 178, 178])
    }
}
