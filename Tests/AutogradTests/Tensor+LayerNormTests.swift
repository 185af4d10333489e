import Autograd
import Testing

/// Parity fixtures: scripts/fixtures/make_transformer_op_fixtures.py, norm_cases (torch
/// F.layer_norm and segment_anything common.py LayerNorm2d).
@Suite struct LayerNormTests {
    @Test(arguments: try OpFixtures.cases("layer_norm", file: OpFixtures.transformer).map(\.name))
    func layerNormMatchesPyTorch(_ name: String) throws {
        let fixture = try OpFixtures.Case("/layer_norm/\(name)", file: OpFixtures.transformer)
        let epsilon = Float(try fixture.double("epsilon"))
        try expectParity(fixture, inputs: ["x", "weight", "bias"], caseName: name) { t in
            t[0].layerNorm(weight: t[1], bias: t[2], epsilon: epsilon)
        }
    }

    @Test(arguments: try OpFixtures.cases("layer_norm_2d", file: OpFixtures.transformer).map(\.name))
    func layerNorm2dMatchesSAM(_ name: String) throws {
        let fixture = try OpFixtures.Case("/layer_norm_2d/\(name)", file: OpFixtures.transformer)
        let epsilon = Float(try fixture.double("epsilon"))
        try expectParity(fixture, inputs: ["x", "weight", "bias"], caseName: name) { t in
            t[0].layerNorm2d(weight: t[1], bias: t[2], epsilon: epsilon)
        }
    }

    @Test func finiteDifferences() {
        let (w, b) = (randn([6], seed: 2), randn([6], seed: 3))
        checkGradients([randn([3, 2, 6], seed: 1), w, b]) { t in t[0].layerNorm(weight: t[1], bias: t[2]) }
        checkGradients([randn([2, 6, 3, 2], seed: 4), w, b]) { t in t[0].layerNorm2d(weight: t[1], bias: t[2]) }
    }

    /// More pixels than one work block (`Kernels.normBlock`), so blocks split the plane.
    @Test func layerNorm2dOverManyPixelsMatchesLastAxisForm() {
        let x = randn([1, 3, 20, 30], seed: 5), w = randn([3], seed: 6), b = randn([3], seed: 7)
        let y = withoutGrad { x.layerNorm2d(weight: w, bias: b) }
        let reference = withoutGrad {
            x.permuted([0, 2, 3, 1]).layerNorm(weight: w, bias: b, epsilon: 1e-6).permuted([0, 3, 1, 2])
        }
        expectClose(y, reference, tolerance: 1e-5, "layerNorm2d vs layerNorm")
    }
}
