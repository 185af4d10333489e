import Autograd
import Testing

/// Parity fixtures: scripts/make_fixtures.py, reduce_shape_cases.
@Suite struct ReduceTests {
    static func axes(_ fixture: OpFixtures.Case) throws -> [Int] {
        try fixture.string("axes").split(separator: ",").map { Int($0)! }
    }

    @Test(arguments: try OpFixtures.cases("sum").map(\.name))
    func sumMatchesPyTorch(_ name: String) throws {
        let fixture = try OpFixtures.Case("/sum/\(name)")
        let (axes, keep) = (try Self.axes(fixture), try fixture.int("keep") == 1)
        try expectParity(fixture, inputs: ["x"], caseName: name) { t in t[0].sum(alongAxes: axes, keepingDims: keep) }
    }

    @Test func meanMatchesPyTorch() throws {
        let fixture = try OpFixtures.Case("/mean/axis_2")
        try expectParity(fixture, inputs: ["x"], caseName: "mean") { t in t[0].mean(alongAxes: [2]) }
    }

    @Test(arguments: try OpFixtures.cases("max").map(\.name))
    func maxMatchesPyTorch(_ name: String) throws {
        let fixture = try OpFixtures.Case("/max/\(name)")
        let (axis, keep) = (try fixture.int("axis"), try fixture.int("keep") == 1)
        try expectParity(fixture, inputs: ["x"], caseName: name) { t in t[0].max(alongAxis: axis, keepingDims: keep) }
    }

    /// The maximum over every element (a scalar), its gradient to the argmax.
    @Test func maxOverAllMatchesPyTorch() throws {
        try expectParity(try OpFixtures.Case("/max_all/all"), inputs: ["x"], caseName: "max over all") { t in t[0].max() }
        checkGradients([randn([3, 4], seed: 9)]) { t in t[0].max() }
    }

    @Test func finiteDifferences() {
        let x = randn([2, 3, 4], seed: 1)
        checkGradients([x]) { t in t[0].sum(alongAxes: [0, 2], keepingDims: true) }
        checkGradients([x]) { t in t[0].mean(alongAxes: [1]) }
        checkGradients([x]) { t in t[0].sum() }
        var g = SeededGenerator(seed: 2)
        let spaced = Tensor(shape: [2, 3, 4], values: (0..<24).map { Float($0) * 0.1 }.shuffled(using: &g))
        checkGradients([spaced]) { t in t[0].max(alongAxis: 1) }
        checkGradients([spaced]) { t in t[0].max() }
    }
}
