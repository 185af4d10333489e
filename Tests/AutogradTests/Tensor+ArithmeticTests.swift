@testable import Autograd
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

    /// -x, x - s and x / s (the last two are written through + and * internally).
    @Test func negationAndScalarSubtractionAndDivisionMatchPyTorch() throws {
        try expectParity(try OpFixtures.Case("/neg/all"), inputs: ["x"], caseName: "neg") { t in -t[0] }
        let sub = try OpFixtures.Case("/scalar/sub"), div = try OpFixtures.Case("/scalar/div")
        let (s, d) = (Float(try sub.double("value")), Float(try div.double("value")))
        try expectParity(sub, inputs: ["x"], caseName: "x - s") { t in t[0] - s }
        try expectParity(div, inputs: ["x"], caseName: "x / s") { t in t[0] / d }
        checkGradients([randn([2, 3], seed: 4)]) { t in (t[0] - 1.25) / 0.8 }
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

    /// An operand that repeats whole over the other's leading axes takes the block loop; each
    /// element is the same f as the general broadcast, in either operand order.
    @Test func repeatedBlockBroadcastEqualsElementwise() {
        let big = randn([3, 4, 16], seed: 40)
        for small in [randn([1, 4, 16], seed: 41), randn([16], seed: 42), randn([4, 16], seed: 43)] {
            let m = small.count
            let (x, y) = (big.scalars, small.scalars)
            let sums = (big + small).scalars, differences = (small - big).scalars, products = (big * small).scalars
            #expect(sums == x.indices.map { x[$0] + y[$0 % m] })
            #expect(differences == x.indices.map { y[$0 % m] - x[$0] })
            #expect(products == x.indices.map { x[$0] * y[$0 % m] })
        }
        #expect(Tensor.repeatedBlock([3, 4, 16], [1, 4, 16], in: [3, 4, 16]) == 64)
        #expect(Tensor.repeatedBlock([3, 4, 16], [3, 1, 16], in: [3, 4, 16]) == nil)  // not trailing
        #expect(Tensor.repeatedBlock([3, 1, 16], [1, 4, 16], in: [3, 4, 16]) == nil)  // both stretch
    }
}
