import Autograd
import Testing

/// Parity fixtures: scripts/make_fixtures.py, reduce_shape_cases.
@Suite struct ShapeTests {
    @Test func concatMatchesPyTorch() throws {
        let fixture = try OpFixtures.Case("/concat/axis_1")
        try expectParity(fixture, inputs: ["a", "b", "c"], caseName: "concat") { t in Tensor.concat(t, alongAxis: 1) }
    }

    @Test func sliceMatchesPyTorch() throws {
        let fixture = try OpFixtures.Case("/slice/axis_1")
        let (axis, start, end) = (try fixture.int("axis"), try fixture.int("start"), try fixture.int("end"))
        try expectParity(fixture, inputs: ["x"], caseName: "slice") { t in t[0].slice(alongAxis: axis, start..<end) }
    }

    @Test(arguments: try OpFixtures.cases("flip").map(\.name))
    func flipMatchesPyTorch(_ name: String) throws {
        let fixture = try OpFixtures.Case("/flip/\(name)")
        let axis = try fixture.int("axis")
        try expectParity(fixture, inputs: ["x"], caseName: name) { t in t[0].flipped(alongAxis: axis) }
    }

    @Test func finiteDifferences() {
        let a = randn([2, 2, 3], seed: 1), b = randn([2, 1, 3], seed: 2)
        checkGradients([a, b]) { t in Tensor.concat(t, alongAxis: 1) }
        checkGradients([a]) { t in t[0].slice(alongAxis: 2, 1..<3) }
        checkGradients([a]) { t in t[0].flipped(alongAxis: 2) }
        checkGradients([a]) { t in t[0].reshaped(to: [3, -1]) }
    }

    @Test func reshapeSharesStorage() {
        let x = Tensor(shape: [2, 3], values: [1, 2, 3, 4, 5, 6])
        let y = x.reshaped(to: [3, 2])
        #expect(y.storage === x.storage)
        #expect(y[2, 1] == 6)
    }
}
