import Autograd
import Foundation
import HDF5
import Imaging
import Testing
import TorchCheckpoint

@testable import SegmentAnything

/// Tests/Fixtures/sam/, written by scripts/fixtures/make_sam_fixtures.py from the official
/// segment_anything package (the reduced model of scripts/fixtures/sam_tiny.py, random weights).
enum SAMFixtures {
    static let directory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/sam").path

    static func path(_ name: String) -> String { directory + "/" + name }

    static func encoder() throws -> HDF5File { try HDF5File(path: path("sam_tiny_encoder.h5"), mode: .read) }
    static func outputs() throws -> HDF5File { try HDF5File(path: path("sam_tiny_outputs.h5"), mode: .read) }
    static func maskLogits() throws -> HDF5File { try HDF5File(path: path("sam_tiny_masks.h5"), mode: .read) }

    /// The tiny configuration (sam_tiny.yaml).
    static func configuration() throws -> SAMConfiguration { try SAMConfiguration.load(path: path("sam_tiny.yaml")) }

    /// Our HDF5 copy of sam_tiny.pth, made once per test run by `SAMWeights.convert` (so the weights
    /// are committed once, as the official file), removed when the test process exits.
    static let weightsHDF5: String = {
        let out = NSTemporaryDirectory() + "wsss-sam-tiny-\(getpid())-\(UUID().uuidString).h5"
        do { try SAMWeights.convert(try TorchCheckpoint(path: path("sam_tiny.pth")), to: out) } catch {
            Issue.record("converting sam_tiny.pth: \(error)")
        }
        atexit { unlink(SAMFixtures.weightsHDF5) }
        return out
    }()

    /// The tiny model with the fixture weights, read through the HDF5 state-dict reader.
    static func model() throws -> SAM {
        let model = SAM(configuration: try configuration())
        try model.load(from: HDF5StateDict(path: weightsHDF5))
        return model
    }

    /// An HWC uint8 dataset as an image.
    static func image(_ file: HDF5File, _ name: String) throws -> Image {
        let t = try file.read(name)
        #expect(t.rank == 3)
        return Image(width: t.shape[1], height: t.shape[0], channels: t.shape[2], pixels: t.scalars.map { UInt8($0) })
    }

    /// An official key list: "name d0,d1,…" per line.
    static func keys(_ name: String) throws -> [(name: String, shape: [Int])] {
        let text = try GzipText.read(path("keys_\(name).txt.gz"))
        return text.split(separator: "\n").map { line in
            let parts = line.split(separator: " ")
            return (String(parts[0]), parts.count > 1 ? parts[1].split(separator: ",").map { Int($0)! } : [])
        }
    }

    /// The prompt cases the script writes, in its order.
    static let cases = ["one_point", "points", "box", "box_point", "mask_input"]
}

/// max|a - b| / max|b|: the error relative to the reference's scale.
func relativeError(_ actual: Tensor, _ expected: Tensor) -> Double {
    var diff = 0.0, scale = 0.0
    for (a, b) in zip(actual.scalars, expected.scalars) {
        diff = max(diff, abs(Double(a) - Double(b)))
        scale = max(scale, abs(Double(b)))
    }
    return diff / max(scale, 1e-12)
}

/// The parity bar of the port: every intermediate within 1e-3 of the reference, relative to its
/// largest magnitude (Float32 throughout, with sums in other orders than torch's).
let portTolerance = 1e-3

/// Expects equal shapes and a relative error of at most `tolerance`.
func expectClose(
    _ actual: Tensor, _ expected: Tensor, tolerance: Double = portTolerance, _ what: String,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    guard actual.shape == expected.shape else {
        Issue.record("\(what): shape \(actual.shape), expected \(expected.shape)", sourceLocation: sourceLocation)
        return
    }
    let error = relativeError(actual, expected)
    #expect(error <= tolerance, "\(what): relative error \(error) > \(tolerance)", sourceLocation: sourceLocation)
}

/// Intersection over union of the masks (values > 0.5) of two tensors of one shape; 1 when
/// both are empty.
func maskIoU(_ a: Tensor, _ b: Tensor) -> Double {
    var intersection = 0, union = 0
    for (x, y) in zip(a.scalars, b.scalars) {
        let (p, q) = (x > 0.5, y > 0.5)
        if p && q { intersection += 1 }
        if p || q { union += 1 }
    }
    return union == 0 ? 1 : Double(intersection) / Double(union)
}

/// Expects each mask (rows of the leading axes) to overlap the reference's with IoU ≥ 0.99.
func expectMasksAgree(_ actual: Tensor, _ expected: Tensor, _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
    guard actual.shape == expected.shape, actual.rank >= 2 else {
        Issue.record("\(what): shape \(actual.shape), expected \(expected.shape)", sourceLocation: sourceLocation)
        return
    }
    let plane = actual.shape.suffix(2).product, count = actual.count / plane
    let (a, b) = (actual.reshaped(to: [count, plane]), expected.reshaped(to: [count, plane]))
    for i in 0..<count {
        let iou = maskIoU(a.slice(alongAxis: 0, i..<(i + 1)), b.slice(alongAxis: 0, i..<(i + 1)))
        #expect(iou >= 0.99, "\(what) mask \(i): IoU \(iou) with the reference", sourceLocation: sourceLocation)
    }
}

/// A state dict in memory, for loading tests.
struct MemoryStateDict: StateDictReader {
    var path: String
    var tensors: [String: Tensor]
    var tensorShapes: [String: [Int]] { tensors.mapValues(\.shape) }
    func tensor(named name: String) throws -> Tensor {
        guard let t = tensors[name] else {
            throw SAMWeightsError.mismatch(path: path, missing: [name], unexpected: [], misshaped: [])
        }
        return t
    }
}
