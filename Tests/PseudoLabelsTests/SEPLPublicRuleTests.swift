import Foundation
import HDF5
import Imaging
import Testing

@testable import PseudoLabels

/// `SEPLMerge.Rule.publicCode` against label maps made by scripts/fixtures/make_sepl_public_fixtures.py,
/// which follows cskyl/SAM_WSSS merge/max_iou_imp2.py step for step: identical to the pixel.
@Suite struct SEPLPublicRuleTests {
    static let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/sepl/public_rule.h5").path

    static func cases() throws -> [String] { try HDF5File(path: path, mode: .read).children(of: "/") }

    @Test(arguments: try cases())
    func matchesThePublicCodeToThePixel(_ name: String) throws {
        let file = try HDF5File(path: Self.path, mode: .read)
        let (seedBytes, seedShape) = try file.readBytes("/\(name)/seeds")
        let (maskBytes, maskShape) = try file.readBytes("/\(name)/masks")
        let (expected, _) = try file.readBytes("/\(name)/expected", expectingShape: seedShape)
        let (h, w) = (seedShape[0], seedShape[1])
        let seeds = LabelMap(width: w, height: h, values: seedBytes)
        let masks = (0..<maskShape[0]).map { k in
            SegmentMask(width: w, height: h, bitmap: maskBytes[(k * h * w)..<((k + 1) * h * w)].map { $0 != 0 })
        }
        let result = SEPLMerge(rule: .publicCode).merge(seeds: seeds, proposals: masks).labels
        let differing = zip(result.values, expected).filter { $0 != $1 }.count
        #expect(differing == 0, "\(name): \(differing) pixels differ from the public procedure")
    }

    /// Where the two rules part: in the public one a later class overwrites an earlier one; ours
    /// paints the strongest claim last, whatever the class ids.
    @Test func thePublicRuleLetsTheLaterClassOverwrite() {
        let seeds = labelRow("1111112222")
        // N is class 1's own region; M is 4 of 7 pixels class 2 (more than half), 3 class 1.
        let n = maskRow("xxxxxx...."), m = maskRow("...xxxxxxx")
        let publicRule = SEPLMerge(rule: .publicCode), ours = SEPLMerge()
        for order in [[n, m], [m, n]] {
            // Class 2 comes later and paints all of M, over class 1's pixels.
            #expect(render(publicRule.merge(seeds: seeds, proposals: order).labels) == "1112222222")
            // Ours: M (share 4/7) is painted before N (share 1), so N's pixels stay class 1.
            #expect(render(ours.merge(seeds: seeds, proposals: order).labels) == "1111112222")
        }
        // Ignore seeds: background in the public rule, kept as 255 by ours.
        let ignored = labelRow("ii11......")
        #expect(render(publicRule.merge(seeds: ignored, proposals: []).labels) == "..11......")
        #expect(render(ours.merge(seeds: ignored, proposals: []).labels) == "ii11......")
    }
}
