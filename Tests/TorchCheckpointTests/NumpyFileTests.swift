import Foundation
import Testing

@testable import Pickle

/// `.npy` headers and pickled dicts (IRN's cls_labels.npy), from
/// scripts/fixtures/make_irn_fixtures.py: the same dict saved by numpy 2 (pickle protocol 4) and
/// with protocol 2 (as numpy 1 wrote IRN's file: numpy.core names, _codecs.encode bytes).
@Suite struct NumpyFileTests {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/IRN").path

    @Test(arguments: ["cls_labels.npy", "cls_labels_p2.npy"])
    func pickledDictOfArraysReadsAsNumpyLoads(_ name: String) throws {
        let entries = try NumpyFile.loadDictionary("\(Self.folder)/\(name)")
        #expect(entries.map(\.key) == [.int(2007000032), .int(2011003276), .int(2008000002)])
        func present(_ a: NumpyArray) -> [Int] { a.values.indices.filter { a.values[$0] == 1 } }
        #expect(entries.map { present($0.value) } == [[0, 14], [11], [19]])
        #expect(
            entries.allSatisfy {
                $0.value.shape == [20] && $0.value.code == "f4" && $0.value.values.allSatisfy { $0 == 0 || $0 == 1 }
            })
    }

    @Test func headerIsParsedAndBadFilesNameThemselves() throws {
        let path = "\(Self.folder)/cls_labels.npy"
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        let header = try NumpyFile.header(of: bytes, path: path)
        #expect(header.descr == "|O" && !header.fortranOrder && header.shape == [] && header.dataOffset % 64 == 0)
        #expect(throws: TorchCheckpointError.self) { try NumpyFile.header(of: Array(bytes.prefix(8)), path: "x.npy") }
        #expect(throws: TorchCheckpointError.cannotOpen(path: "/nonexistent.npy", reason: "no such file")) {
            try NumpyFile.loadDictionary("/nonexistent.npy")
        }
        // numpy's globals are refused in torch checkpoints: only a .npy read allows them.
        #expect(TorchGlobal(module: "numpy", name: "dtype") == nil)
        #expect(TorchGlobal(module: "numpy", name: "dtype", numpy: true) == .numpyDType)
        #expect(TorchGlobal(module: "os", name: "system", numpy: true) == nil)
    }

    @Test func truncatedPicklesAreRefused() throws {
        let path = "\(Self.folder)/cls_labels_p2.npy"
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        let cut = FileManager.default.temporaryDirectory.appendingPathComponent("cut-\(UUID().uuidString).npy")
        defer { try? FileManager.default.removeItem(at: cut) }
        try Data(bytes.prefix(bytes.count - 40)).write(to: cut)
        #expect(throws: TorchCheckpointError.self) { try NumpyFile.loadDictionary(cut.path) }
    }
}
