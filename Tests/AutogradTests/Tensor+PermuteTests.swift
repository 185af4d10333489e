import Autograd
import Testing

/// Parity fixtures: scripts/fixtures/make_transformer_op_fixtures.py, permute_cases.
@Suite struct PermuteTests {
    @Test(arguments: try OpFixtures.cases("permute", file: OpFixtures.transformer).map(\.name))
    func matchesPyTorch(_ name: String) throws {
        let fixture = try OpFixtures.Case("/permute/\(name)", file: OpFixtures.transformer)
        let axes = try fixture.string("axes").split(separator: ",").map { Int($0)! }
        try expectParity(fixture, inputs: ["x"], caseName: name) { t in t[0].permuted(axes) }
    }

    @Test func finiteDifferences() {
        checkGradients([randn([2, 3, 2, 4], seed: 1)]) { t in t[0].permuted([3, 1, 0, 2]) }
        checkGradients([randn([2, 1, 3, 2, 2], seed: 2)]) { t in t[0].permuted([0, 3, 1, 4, 2]) }
    }

    @Test func identityAndTransposeShapes() {
        let x = randn([2, 3, 4], seed: 3)
        #expect(x.permuted([0, 1, 2]).scalars == x.scalars)
        let t = x.transposedLastTwo()
        #expect(t.shape == [2, 4, 3])
        #expect(t[1, 3, 2] == x[1, 2, 3])
    }

    /// Transposes larger than one 32 × 32 tile, with partial tiles, against element-wise indexing.
    @Test(arguments: [([2, 37, 45], [0, 2, 1]), ([2, 3, 40, 33], [0, 2, 3, 1]), ([3, 35, 2, 34], [3, 0, 2, 1])])
    func tiledTransposeMatchesIndexing(_ shape: [Int], _ axes: [Int]) {
        let x = randn(shape, seed: 9)
        let y = withoutGrad { x.permuted(axes) }
        var index = [Int](repeating: 0, count: shape.count)
        for flat in 0..<y.count {
            var rest = flat
            for axis in stride(from: shape.count - 1, through: 0, by: -1) {
                index[axes[axis]] = rest % y.shape[axis]
                rest /= y.shape[axis]
            }
            let source = zip(index, shape).reduce(0) { $0 * $1.1 + $1.0 }
            if y.storage.base[flat] != x.storage.base[source] {
                Issue.record("\(shape) \(axes): element \(flat) differs")
                return
            }
        }
    }
}
