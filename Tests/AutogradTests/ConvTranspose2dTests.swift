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

    @Test(arguments: [true, false])
    func tiledUpscalingEqualsTheGeneralCol2im(withBias: Bool) {
        // k = s = 2 writes each output once (Kernels.placeTiles); the oracle is the general
        // path: zero fill, col2im accumulation, bias pass.
        let (n, cin, cout, h, w) = (2, 3, 4, 5, 6)
        let x = randn([n, cin, h, w], seed: 4), weight = randn([cin, cout, 2, 2], seed: 5), bias = randn([cout], seed: 6)
        let y = withoutGrad { Tensor.convTranspose2d(x, weight: weight, bias: withBias ? bias : nil, stride: 2) }
        let g = WindowGeometry(
            inHeight: 2 * h, inWidth: 2 * w, kernelHeight: 2, kernelWidth: 2, stride: (2, 2), padding: (0, 0), dilation: (1, 1))
        var expected = [Float](repeating: 0, count: n * cout * 4 * h * w)
        var cols = [Float](repeating: 0, count: cout * 4 * h * w)
        let (xs, ws, bs) = (x.scalars, weight.scalars, bias.scalars)
        for i in 0..<n {
            xs.withUnsafeBufferPointer { xp in
                Kernels.gemm(transA: true, m: cout * 4, n: h * w, k: cin, a: ws, b: xp.baseAddress! + i * cin * h * w, c: &cols)
            }
            expected.withUnsafeMutableBufferPointer { e in
                let plane = e.baseAddress! + i * cout * 4 * h * w
                Kernels.col2im(cols, channels: cout, geometry: g, x: plane)
                if withBias { for c in 0..<cout { for p in 0..<(4 * h * w) { plane[c * 4 * h * w + p] += bs[c] } } }
            }
        }
        #expect(y.shape == [n, cout, 2 * h, 2 * w])
        #expect(y.scalars == expected)
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
