import Autograd
import Testing

/// Parity fixtures: scripts/fixtures/make_transformer_op_fixtures.py, conv_transpose_cases.
@Suite struct ConvTranspose2dTests {
    @Test(arguments: try OpFixtures.cases("conv_transpose2d", file: OpFixtures.transformer).map(\.name))
    func matchesPyTorch(_ name: String) throws {
        let fixture = try OpFixtures.Case("/conv_transpose2d/\(name)", file: OpFixtures.transformer)
        let (stride, padding) = (try fixture.int("stride"), try fixture.int("padding"))
        let names = fixture.has("bias") ? ["x", "weight", "bias"] : ["x", "weight"]
        try expectParity(fixture, inputs: names, caseName: name) { t in
            Tensor.convTranspose2d(t[0], weight: t[1], bias: t.count > 2 ? t[2] : nil, stride: stride, padding: padding)
        }
    }

    @Test(arguments: [(2, 2, 0), (3, 2, 1), (3, 1, 1)])
    func finiteDifferences(_ shape: (kernel: Int, stride: Int, padding: Int)) {
        let x = randn([2, 2, 3, 4], seed: 1)
        let w = randn([2, 3, shape.kernel, shape.kernel], seed: 2, scale: 0.5)
        checkGradients([x, w, randn([3], seed: 3)]) { t in
            Tensor.convTranspose2d(t[0], weight: t[1], bias: t[2], stride: shape.stride, padding: shape.padding)
        }
    }

    @Test func outputSizeFollowsTorch() {
        // SAM's mask decoder upscaling: k = 2, s = 2 doubles the size.
        let y = withoutGrad {
            Tensor.convTranspose2d(Tensor(zeros: [1, 4, 64, 64]), weight: Tensor(zeros: [4, 2, 2, 2]), bias: nil, stride: 2)
        }
        #expect(y.shape == [1, 2, 128, 128])
        let z = withoutGrad {
            Tensor.convTranspose2d(
                Tensor(zeros: [1, 1, 5, 5]), weight: Tensor(zeros: [1, 1, 3, 3]), bias: nil, stride: 2, padding: 1)
        }
        #expect(z.shape == [1, 1, 9, 9])
    }
}
