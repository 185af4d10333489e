import Foundation
import Testing
import TorchCheckpoint

@testable import GroundingDINO

/// The released models' module trees have the official key names and shapes
/// (Tests/Fixtures/gdino/keys_swin{t,b}.txt.gz, written by scripts/fixtures/make_gdino_keys.py from
/// the official model built with GroundingDINO_SwinT_OGC.py / GroundingDINO_SwinB_cfg.py).
@Suite struct FullSizeKeysTests {
    @Test(arguments: [("keys_swint.txt.gz", "swin_t"), ("keys_swinb.txt.gz", "swin_b")])
    func theReleasedModelsBuildFromTheirOfficialKeys(_ file: String, _ name: String) throws {
        let lines = try GzipText.read(GDINOFixtures.path(file)).split(separator: "\n")
        var official: [String: [Int]] = [:]
        for line in lines where !line.hasPrefix("#") {
            let fields = line.split(whereSeparator: { $0 == "\t" || $0 == " " })
            guard fields.count >= 2 else { continue }
            official[String(fields[0])] = fields[1] == "-" ? [] : fields[1].split(separator: ",").compactMap { Int($0) }
        }
        #expect(official.count > 900)
        // The configuration the shapes give (what `wsss detect` does with a released file) is the named one.
        let inferred = try GroundingDINOConfiguration.inferred(
            fromShapes: official, overrides: try GroundingDINOConfiguration.overrides(name), path: file)
        #expect(inferred == (name == "swin_t" ? .swinT : .swinB))
        let model = GroundingDINO(inferred)
        let ours = Dictionary(model.stateDict().map { ($0.name, $0.tensor.shape) }, uniquingKeysWith: { a, _ in a })
        let ignored = GroundingDINOWeights.ignoredKeys
        let expected = official.filter { !ignored.contains($0.key) && !$0.key.hasSuffix(".relative_position_index") }
        #expect(
            Set(ours.keys) == Set(expected.keys),
            "missing \(Set(expected.keys).subtracting(ours.keys).sorted().prefix(5)), extra \(Set(ours.keys).subtracting(expected.keys).sorted().prefix(5))"
        )
        let misshaped = expected.filter { ours[$0.key] != nil && ours[$0.key] != $0.value }.keys.sorted()
        #expect(misshaped.isEmpty, "\(misshaped.prefix(5))")
    }
}
