import ArgumentParser
import Autograd
import Foundation
import HDF5
import Imaging
import Testing

@testable import wsss

/// `wsss crf` on files: scores.h5 + images → label PNGs; a missing image and a size mismatch are
/// one clear error each.
@Suite struct CRFCommandTests {
    /// A folder with two 12x8 images (left half dark, right half bright) and their scores, whose
    /// probabilities favour class 1 on the right but leave one stray pixel the CRF smooths away.
    func makeInputs() throws -> (root: String, scores: String) {
        let root = NSTemporaryDirectory() + "wsss-crf-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: root + "/images", withIntermediateDirectories: true)
        let (w, h) = (12, 8)
        var pixels = [UInt8](repeating: 0, count: w * h * 3)
        var p = [Float](repeating: 0, count: 2 * w * h)
        for i in 0..<(w * h) {
            let right = i % w >= w / 2
            for k in 0..<3 { pixels[3 * i + k] = right ? 230 : 20 }
            let p1: Float = right ? 0.8 : 0.2
            (p[i], p[w * h + i]) = (1 - p1, p1)
        }
        (p[3 * w + 9], p[w * h + 3 * w + 9]) = (0.6, 0.4)  // stray pixel inside the right half
        let image = Image(width: w, height: h, channels: 3, pixels: pixels)
        let scores = root + "/scores.h5"
        try HDF5File.writeAtomically(to: scores) { file in
            for id in ["a", "b"] {
                try image.writePNG(to: "\(root)/images/\(id).png")
                try file.write(Tensor(shape: [2, h, w], values: p), at: "/\(id)")
            }
        }
        return (root, scores)
    }

    @Test func writesCRFLabels() throws {
        let (root, scores) = try makeInputs()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let command = try CRFCommand.parse([
            "--images", root + "/images", "--scores", scores, "--out", root + "/out", "--threads", "2",
        ])
        try command.run()
        for id in ["a", "b"] {
            let labels = try LabelMap.read(from: "\(root)/out/\(id).png")
            #expect(labels.width == 12 && labels.height == 8)
            #expect(labels[9, 3] == 1)
            #expect(labels[1, 1] == 0)
        }
    }

    @Test func missingImageIsOneError() throws {
        let (root, scores) = try makeInputs()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.removeItem(atPath: root + "/images/b.png")
        let command = try CRFCommand.parse(["--images", root + "/images", "--scores", scores, "--out", root + "/out"])
        #expect { try command.run() } throws: { error in
            let message = error.localizedDescription
            return message.contains("/b") && message.contains("b.jpg") && message.contains(root + "/images")
        }
        #expect(!FileManager.default.fileExists(atPath: root + "/out/a.png"), "nothing is written before all ids are found")
    }

    @Test func sizeMismatchNamesBothFiles() throws {
        let (root, scores) = try makeInputs()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try Image(width: 10, height: 8, channels: 3, filledWith: 50).writePNG(to: root + "/images/a.png")
        let command = try CRFCommand.parse(["--images", root + "/images", "--scores", scores, "--out", root + "/out"])
        #expect { try command.run() } throws: { error in
            let message = error.localizedDescription
            return message.contains("scores.h5:/a") && message.contains("a.png") && message.contains("12x8")
                && message.contains("10x8")
        }
    }

    @Test func rejectsBadFlags() {
        #expect(throws: (any Error).self) {
            try CRFCommand.parse(["--images", "i", "--scores", "s", "--out", "o", "--bi-rgb-std", "0"])
        }
        #expect(throws: (any Error).self) {
            try CRFCommand.parse(["--images", "i", "--scores", "s", "--out", "o", "--iterations", "-1"])
        }
    }
}
