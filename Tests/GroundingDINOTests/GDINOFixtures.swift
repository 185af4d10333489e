import Foundation
import HDF5

/// Tests/Fixtures/gdino/, written by scripts/fixtures/make_gdino_fixtures.py from the official
/// Grounding DINO code (`rf-groundingdino`) and transformers' BertTokenizer, random weights.
enum GDINOFixtures {
    static let directory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/gdino").path

    static func path(_ name: String) -> String { directory + "/" + name }

    static func file(_ name: String) throws -> HDF5File { try HDF5File(path: path(name), mode: .read) }

    /// A ragged list stored as `<name>/offsets` (n + 1) and `<name>/utf8` bytes.
    static func strings(_ file: HDF5File, _ name: String) throws -> [String] {
        let offsets = try file.readLabels(name + "/offsets").values.map(Int.init)
        let bytes = try file.readBytes(name + "/utf8").bytes
        return (0..<(offsets.count - 1)).map { String(decoding: bytes[offsets[$0]..<offsets[$0 + 1]], as: UTF8.self) }
    }

    /// A ragged list of integer lists stored as `<name>/offsets` and `<name>/values`.
    static func integerLists(_ file: HDF5File, _ name: String) throws -> [[Int]] {
        let offsets = try file.readLabels(name + "/offsets").values.map(Int.init)
        let values = try file.readLabels(name + "/values").values.map(Int.init)
        return (0..<(offsets.count - 1)).map { Array(values[offsets[$0]..<offsets[$0 + 1]]) }
    }
}
