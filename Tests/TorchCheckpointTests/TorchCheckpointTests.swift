import Autograd
import Foundation
import Testing

@testable import TorchCheckpoint

/// Checkpoints written by torch.save (scripts/fixtures/make_pth_fixtures.py) read back exactly.
@Suite struct TorchCheckpointTests {
    /// Every tensor of the small state dict: names in file order, dtypes, shapes and values. The
    /// expected values are torch's own `.float()` of each tensor, so float16/bfloat16 widening,
    /// float64 rounding, integer conversion, views, offsets and strides must all match bit for bit.
    func expectSmallStateDict(_ checkpoint: TorchCheckpoint, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let expected = try PthFixtures.small()
        #expect(checkpoint.tensorNames == expected.names, sourceLocation: sourceLocation)
        for name in expected.names {
            let entry = try #require(expected.tensors[name])
            #expect(checkpoint.dtype(of: name)?.rawValue == entry.dtype, "\(name)", sourceLocation: sourceLocation)
            #expect(checkpoint.tensorShapes[name] == entry.shape, "\(name)", sourceLocation: sourceLocation)
            let tensor = try checkpoint.tensor(named: name)
            #expect(tensor.shape == entry.shape, "\(name)", sourceLocation: sourceLocation)
            let values = tensor.scalars
            #expect(values.count == entry.values.count, "\(name)", sourceLocation: sourceLocation)
            for (i, (actual, wanted)) in zip(values, entry.values).enumerated()
            where actual.bitPattern != Float(wanted).bitPattern {
                Issue.record("\(name)[\(i)]: \(actual), expected \(Float(wanted))", sourceLocation: sourceLocation)
                break
            }
        }
    }

    @Test func readsAnOrderedDictStateDict() throws {
        let checkpoint = try TorchCheckpoint(path: PthFixtures.path("small_ordered.pth"))
        #expect(checkpoint.stateDictKey == nil)
        try expectSmallStateDict(checkpoint)
    }

    @Test func readsAPlainDictStateDict() throws {
        try expectSmallStateDict(TorchCheckpoint(path: PthFixtures.path("small_dict.pth")))
    }

    @Test func readsTheStateDictOfATrainingCheckpoint() throws {
        let checkpoint = try TorchCheckpoint(path: PthFixtures.path("small_model.pth"))
        #expect(checkpoint.stateDictKey == "model")
        try expectSmallStateDict(checkpoint)
    }

    @Test func readsAZip64Archive() throws {
        try expectSmallStateDict(TorchCheckpoint(path: PthFixtures.path("small_zip64.pth")))
    }

    @Test func viewsAndScalarsComeBackContiguous() throws {
        let checkpoint = try TorchCheckpoint(path: PthFixtures.path("small_ordered.pth"))
        let base = try checkpoint.tensor(named: "base")
        let transposed = try checkpoint.tensor(named: "transposed")
        #expect(transposed.shape == [4, 3])
        for i in 0..<4 {
            for j in 0..<3 { #expect(transposed[i, j] == base[j, i]) }
        }
        let scale = try checkpoint.tensor(named: "scale")
        #expect(scale.shape == [] && scale.item == 1.25)
        #expect(try checkpoint.tensor(named: "empty").shape == [0, 3])
        // Pages are handed back after each copy: a second read faults them in again, unchanged.
        #expect(try checkpoint.tensor(named: "transposed").scalars == transposed.scalars)
    }

    @Test func integerBuffersAreListedWithTheirDtype() throws {
        let checkpoint = try TorchCheckpoint(path: PthFixtures.path("small_ordered.pth"))
        #expect(checkpoint.dtype(of: "bn.num_batches_tracked") == .int64)
        #expect(try checkpoint.integers(named: "bn.num_batches_tracked") == [7])
        #expect(try checkpoint.integers(named: "ids") == [1, -2, 300000])
        #expect(try checkpoint.integers(named: "mask") == [1, 0, 1])
        #expect(try checkpoint.tensor(named: "bn.num_batches_tracked").item == 7)
        let path = PthFixtures.path("small_ordered.pth")
        expectError(.unsupportedContent(path: path, reason: "tensor 'scale' is float32, not an integer tensor")) {
            try checkpoint.integers(named: "scale")
        }
        expectError(.missingTensor(path: path, name: "nope")) { try checkpoint.tensor(named: "nope") }
        #expect(checkpoint.dtype(of: "nope") == nil)
    }

    /// The reduced official SAM (scripts/fixtures/sam_tiny.py `build()`, state dict saved by torch):
    /// every key in order, its shape and dtype, and order-sensitive checksums of its values.
    @Test func readsTheTinyOfficialSam() throws {
        // The same file the SAM tests load (scripts/fixtures/make_sam_fixtures.py); its expected values come from make_pth_fixtures.py.
        let checkpoint = try TorchCheckpoint(path: PthFixtures.path("../sam/sam_tiny.pth"))
        let expected = try PthFixtures.samTiny().tensors
        #expect(checkpoint.tensorNames == expected.map(\.name))
        #expect(checkpoint.tensorNames.contains("image_encoder.blocks.1.attn.rel_pos_h"))
        for entry in expected {
            #expect(checkpoint.dtype(of: entry.name)?.rawValue == entry.dtype, "\(entry.name)")
            let tensor = try checkpoint.tensor(named: entry.name)
            #expect(tensor.shape == entry.shape, "\(entry.name)")
            var sum = 0.0, absSum = 0.0, weighted = 0.0
            for (i, v) in tensor.scalars.enumerated() {
                sum += Double(v)
                absSum += abs(Double(v))
                weighted += Double(v) * Double(i % 7 + 1)
            }
            // Sums of float32 values in float64: only the summation order differs from torch's.
            let tolerance = 1e-12 * max(entry.abs_sum * 7, 1)
            #expect(abs(sum - entry.sum) <= tolerance, "\(entry.name): sum \(sum) vs \(entry.sum)")
            #expect(abs(absSum - entry.abs_sum) <= tolerance, "\(entry.name): abs sum")
            #expect(abs(weighted - entry.weighted_sum) <= tolerance, "\(entry.name): weighted sum")
            if let first = entry.first, let last = entry.last {
                #expect(Double(tensor.scalars.first!) == first && Double(tensor.scalars.last!) == last, "\(entry.name)")
            }
        }
    }

    @Test func storagesMustBePresentCompleteAndStored() {
        for (file, fragments) in [
            ("missing_storage.pth", ["storage entry 'small_ordered/data/1'", "is missing"]),
            ("short_storage.pth", ["storage entry 'small_ordered/data/0'", "needs"]),
            ("compressed_storage.pth", ["'small_ordered/data/0' is compressed (method 8)"]),
        ] {
            let path = PthFixtures.path(file)
            do {
                _ = try TorchCheckpoint(path: path)
                Issue.record("\(file): accepted")
            } catch {
                let message = error.localizedDescription
                #expect(message.hasPrefix(path + ": "), "\(message)")
                for fragment in fragments { #expect(message.contains(fragment), "'\(message)' lacks '\(fragment)'") }
            }
        }
    }

    @Test func otherPicklesAreNotStateDicts() {
        let list = PthFixtures.path("a_list.pth")
        expectFailure(naming: list, "holds a list, not a dict of tensors") { try TorchCheckpoint(path: list) }
        let mixed = PthFixtures.path("mixed_dict.pth")
        expectFailure(naming: mixed, "not a state dict", "'w': tensor, 'epoch': int", "'model' or 'state_dict'") {
            try TorchCheckpoint(path: mixed)
        }
    }

    /// float16 -> float32 for all 65536 bit patterns against Swift's own Float16 conversion.
    @Test func halfConversionIsExact() {
        for bits in 0...UInt16.max {
            let ours = floatFromHalf(bits)
            let reference = Float(Float16(bitPattern: bits))
            if reference.isNaN {
                #expect(ours.isNaN)
            } else if ours.bitPattern != reference.bitPattern {
                Issue.record("half 0x\(String(bits, radix: 16)): \(ours), expected \(reference)")
                return
            }
        }
    }
}
