import Autograd
import Testing

/// Parity fixtures: scripts/make_fixtures.py, elementwise_cases.
@Suite struct ArithmeticTests {
    @Test(arguments: ["add", "sub", "mul", "div"])
    func matchesPyTorch(_ op: String) throws {
        for (name, group) in try OpFixtures.cases(op) {
            try expectParity(try OpFixtures.Case(group), inputs: ["a", "b"], caseName: "\(op)/\(name)") { t in
                switch op {
                case "add": t[0] + t[1]
                case "sub": t[0] - t[1]
                case "mul": t[0] * t[1]
                default: t[0] / t[1]
                }
            }
        }
    }

    @Test func scalarOpsMatchPyTorch() throws {
        let fixture = try OpFixtures.Case("/scalar/affine")
        let (scale, shift) = (Float(try fixture.double("scale")), Float(try fixture.double("shift")))
        try expectParity(fixture, inputs: ["x"], caseName: "scalar") { t in t[0] * scale + shift }
    }

    @Test func finiteDifferencesWithBroadcasting() {
        let a = randn([2, 3, 4], seed: 1), b = randn([3, 1], seed: 2)
        let positive = randn([3, 1], seed: 3).scalars.map { abs($0) + 0.5 }
        checkGradients([a, b]) { t in t[0] + t[1] }
        checkGradients([a, b]) { t in t[0] - t[1] }
        checkGradients([a, b]) { t in t[0] * t[1] }
        checkGradients([a, Tensor(shape: [3, 1], values: positive)]) { t in t[0] / t[1] }
        checkGradients([a]) { t in -t[0] * 3 + 1 }
    }

    @Test func broadcastShapes() {
        #expect(Tensor.broadcastShape([2, 3, 4, 5], [3, 1, 1]) == [2, 3, 4, 5])
        #expect(Tensor.broadcastShape([4, 1], [1, 5]) == [4, 5])
        #expect(Tensor.broadcastShape([], [2, 2]) == [2, 2])
    }
}
