import Autograd
import Foundation
import HDF5
import Testing

@Suite struct HDF5FileTests {
    let directory: String

    init() throws {
        directory = NSTemporaryDirectory() + "wsss-hdf5-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    func writeSample(_ path: String) throws {
        try HDF5File.writeAtomically(to: path) { file in
            try file.write(Tensor(shape: [2, 3], values: [1, 2, 3, 4, 5, 6]), at: "/parameters/conv1.weight")
            try file.write(Tensor(scalar: 7), at: "/parameters/layer1.0.bn1.num_batches_tracked")
            try file.write(LabelTensor(shape: [1, 2, 2], values: [0, 1, 255, 20]), at: "/labels")
            try file.setAttribute(.string("deeplabv2_resnet101"), named: "architecture")
            try file.setAttribute(.int(2000), named: "iteration")
            try file.setAttribute(.double(2.5e-4), named: "learning_rate", on: "/parameters")
        }
    }

    @Test func roundTripsTensorsLabelsAndAttributes() throws {
        let path = directory + "/sample.h5"
        try writeSample(path)
        let file = try HDF5File(path: path, mode: .read)
        #expect(try file.read("/parameters/conv1.weight").scalars == [1, 2, 3, 4, 5, 6])
        #expect(try file.read("/parameters/conv1.weight").shape == [2, 3])
        #expect(try file.read("/parameters/layer1.0.bn1.num_batches_tracked").shape == [])
        #expect(try file.readLabels("/labels") == LabelTensor(shape: [1, 2, 2], values: [0, 1, 255, 20]))
        #expect(try file.attribute(named: "architecture") == .string("deeplabv2_resnet101"))
        #expect(try file.attribute(named: "iteration") == .int(2000))
        #expect(try file.attribute(named: "learning_rate", on: "/parameters") == .double(2.5e-4))
        #expect(try file.attribute(named: "absent") == nil)
        #expect(
            try file.datasetNames() == ["/labels", "/parameters/conv1.weight", "/parameters/layer1.0.bn1.num_batches_tracked"])
        #expect(try file.children(of: "/") == ["labels", "parameters"])
        // Atomic write leaves no temporary file behind.
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory) == ["sample.h5"])
    }

    @Test func rewritingADatasetReplacesIt() throws {
        let path = directory + "/rewrite.h5"
        let file = try HDF5File(path: path, mode: .create)
        try file.write(Tensor(zeros: [4]), at: "/a/b")
        try file.write(Tensor(shape: [2], values: [3, 4]), at: "/a/b")
        #expect(try file.read("/a/b").scalars == [3, 4])
    }

    @Test func missingFileNamesThePath() throws {
        let path = directory + "/nope.h5"
        #expect(throws: HDF5Error.missingFile(path: path)) { try HDF5File(path: path, mode: .read) }
    }

    @Test func nonHDF5FileIsRejected() throws {
        let path = directory + "/text.h5"
        try "not hdf5 at all".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(throws: HDF5Error.notHDF5(path: path)) { try HDF5File(path: path, mode: .read) }
        let empty = directory + "/empty.h5"
        FileManager.default.createFile(atPath: empty, contents: Data())
        #expect(throws: HDF5Error.notHDF5(path: empty)) { try HDF5File(path: empty, mode: .read) }
    }

    @Test func truncatedFileGivesAnErrorNotACrash() throws {
        let path = directory + "/full.h5"
        try HDF5File.writeAtomically(to: path) { file in
            try file.write(Tensor(repeating: 1.5, shape: [64, 64]), at: "/big")
        }
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        for keep in [data.count / 2, data.count - 100, 1000] {
            let cut = directory + "/cut-\(keep).h5"
            try data.prefix(keep).write(to: URL(fileURLWithPath: cut))
            do {
                let file = try HDF5File(path: cut, mode: .read)
                _ = try file.read("/big")
                Issue.record("truncated file \(cut) read without an error")
            } catch let error as HDF5Error {
                #expect(error.localizedDescription.contains(cut))
            }
        }
    }

    @Test func wrongShapeAndMissingDatasetAreNamed() throws {
        let path = directory + "/shapes.h5"
        try writeSample(path)
        let file = try HDF5File(path: path, mode: .read)
        #expect(throws: HDF5Error.wrongShape(name: "/parameters/conv1.weight", path: path, expected: [3, 2], found: [2, 3])) {
            try file.read("/parameters/conv1.weight", expectingShape: [3, 2])
        }
        #expect(throws: HDF5Error.missingDataset(name: "/parameters/fc.weight", path: path)) {
            try file.read("/parameters/fc.weight")
        }
        let message = HDF5Error.wrongShape(name: "/w", path: "a.h5", expected: [1], found: [2]).localizedDescription
        #expect(message == "a.h5: dataset '/w' has shape [2], expected [1]")
    }

    @Test func failedAtomicWriteKeepsTheOldFile() throws {
        let path = directory + "/keep.h5"
        try writeSample(path)
        struct Interrupted: Error {}
        #expect(throws: Interrupted.self) {
            try HDF5File.writeAtomically(to: path) { file in
                try file.write(Tensor(zeros: [1]), at: "/partial")
                throw Interrupted()
            }
        }
        let file = try HDF5File(path: path, mode: .read)
        #expect(file.contains("/parameters/conv1.weight"))
        #expect(!file.contains("/partial"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory) == ["keep.h5"])
    }

    /// Every array carries the CRC-32 of its bytes (attribute `crc32`): one flipped bit in a
    /// tensor's bytes fails its read instead of changing a weight.
    @Test func aFlippedBitInATensorFailsItsChecksum() throws {
        let path = directory + "/w.h5"
        let values = (0..<256).map { Float($0) * 0.37 + 1 }
        try HDF5File.writeAtomically(to: path) { try $0.write(Tensor(shape: [16, 16], values: values), at: "/parameters/w") }
        #expect(try HDF5File(path: path, mode: .read).read("/parameters/w").scalars == values)
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let pattern = values[100..<116].withUnsafeBytes { [UInt8]($0) }
        let at = try #require(
            (0...(bytes.count - pattern.count)).first { bytes[$0..<($0 + pattern.count)].elementsEqual(pattern) })
        bytes[at + 5] ^= 1
        let damaged = directory + "/damaged.h5"
        try Data(bytes).write(to: URL(fileURLWithPath: damaged))
        #expect { try HDF5File(path: damaged, mode: .read).read("/parameters/w") } throws: { error in
            guard case HDF5Error.checksumMismatch(let name, let path, _, _) = error else { return false }
            return name == "/parameters/w" && path == damaged
        }
        // Labels and bytes are checked too; files without the attribute (h5py's) read as before.
        let labels = directory + "/l.h5"
        try HDF5File.writeAtomically(to: labels) { try $0.write(LabelTensor(shape: [3], values: [1, 2, 3]), at: "/l") }
        #expect(try HDF5File(path: labels, mode: .read).attribute(named: HDF5File.checksumAttribute, on: "/l") != nil)
        #expect(try HDF5File(path: labels, mode: .read).readLabels("/l").values == [1, 2, 3])
    }

    /// The OS reason libhdf5 records reaches the message, on one line naming the destination.
    @Test func failedCreateSaysWhyTheSystemRefused() throws {
        let path = directory + "/no/such/folder/x.h5"
        #expect(throws: HDF5Error.fileSystem(path: path, operation: "create", reason: "No such file or directory")) {
            try HDF5File.writeAtomically(to: path) { try $0.write(Tensor(zeros: [1]), at: "/x") }
        }
    }

    @Test func aFolderIsNotAFile() throws {
        let folder = directory + "/folder.h5"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        #expect(throws: HDF5Error.notAFile(path: folder, reason: "is a folder")) { try HDF5File(path: folder, mode: .read) }
        // Refused before anything is written, and no temporary file is left.
        #expect(throws: HDF5Error.notAFile(path: folder, reason: "is a folder")) {
            try HDF5File.writeAtomically(to: folder) { try $0.write(Tensor(zeros: [1]), at: "/x") }
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory) == ["folder.h5"])
        let loop = directory + "/loop.h5"
        try FileManager.default.createSymbolicLink(atPath: loop, withDestinationPath: loop)
        #expect(throws: HDF5Error.notAFile(path: loop, reason: "symbolic link loop")) { try HDF5File(path: loop, mode: .read) }
    }

    /// Files whose headers claim data they do not hold (scripts/fixtures/make_hdf5_fixtures.py)
    /// are refused before anything is allocated, naming the dataset and both sizes.
    @Test func declaredButUnwrittenDataIsRefused() throws {
        let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/hdf5").path
        let huge = try HDF5File(path: fixtures + "/unwritten_huge.h5", mode: .read)
        #expect(
            throws: HDF5Error.unbacked(
                name: "/synth_train_00000/classes", path: huge.path, shape: [4_000_000_000],
                declaredBytes: 16_000_000_000, storedBytes: 0)
        ) {
            try huge.readLabels("/synth_train_00000/classes")
        }
        #expect(throws: HDF5Error.self) { try huge.read("/synth_train_00000/cams") }
        let small = try HDF5File(path: fixtures + "/unwritten_small.h5", mode: .read)
        #expect(throws: HDF5Error.unbacked(name: "/x", path: small.path, shape: [1000], declaredBytes: 4000, storedBytes: 0)) {
            try small.read("/x")
        }
    }

    @Test func readsWhatH5pyWrote() throws {
        // The op fixtures are written by h5py (scripts/make_fixtures.py): str attributes are
        // variable-length UTF-8, ints are int64, and big datasets are gzip-compressed.
        let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/ops.h5").path
        let file = try HDF5File(path: fixtures, mode: .read)
        #expect(try file.attribute(named: "generator") == .string("scripts/make_fixtures.py"))
        #expect(try file.attribute(named: "stride", on: "/conv2d/k3_s2_p1_odd") == .int(2))
        #expect(try file.read("/bilinear/logits_21_161/y").shape == [1, 1, 161, 161])
        #expect(try file.readLabels("/cross_entropy/rows/labels").shape == [6])
    }
}

@Suite struct HDF5ByteDatasetTests {
    @Test func bytesRoundTrip() throws {
        let path = NSTemporaryDirectory() + "wsss-bytes-\(UUID().uuidString).h5"
        try HDF5File.writeAtomically(to: path) { try $0.write(bytes: [0, 1, 255, 7, 1, 0], shape: [2, 3], at: "/masks") }
        let read = try HDF5File(path: path, mode: .read).readBytes("/masks", expectingShape: [2, 3])
        #expect(read.bytes == [0, 1, 255, 7, 1, 0] && read.shape == [2, 3])
    }
}
