import Autograd
import Testing

/// Parity fixtures: scripts/fixtures/make_transformer_op_fixtures.py, depthwise_cases
/// (F.conv2d with groups = channels).
@Suite struct DepthwiseConv2dTests {
    @Test(arguments: try OpFixtures.cases("depthwise_conv2d", file: OpFixtures.transformer).map(\.name))
    func matchesPyTorch(_ name: String) throws {
        let fixture = try OpFixtures.Case("/depthwise_conv2d/\(name)", file: OpFixtures.transformer)
        let (stride, padding) = (try fixture.int("stride"), try fixture.int("padding"))
        let names = fixture.has("bias") ? ["x", "weight", "bias"] : ["x", "weight"]
        try expectParity(fixture, inputs: names, caseName: name) { t in
            Tensor.depthwiseConv2d(t[0], weight: t[1], bias: t.count > 2 ? t[2] : nil, stride: stride, padding: padding)
        }
    }

    @Test(arguments: [(3, 1, 1), (3, 2, 1), (5, 1, 2), (3, 2, 0), (1, 1, 0)])
    func finiteDifferences(_ shape: (kernel: Int, stride: Int, padding: Int)) {
        let x = randn([2, 3, 5, 6], seed: 1)
        let w = randn([3, 1, shape.kernel, shape.kernel], seed: 2, scale: 0.5)
        checkGradients([x, w, randn([3], seed: 3)]) { t in
            Tensor.depthwiseConv2d(t[0], weight: t[1], bias: t[2], stride: shape.stride, padding: shape.padding)
        }
    }

    /// Each channel alone equals a groups-1 convolution of that channel with its kernel.
    @Test func eachChannelIsAPlainConvolution() {
        let x = randn([2, 3, 7, 5], seed: 4), w = randn([3, 1, 3, 3], seed: 5), b = randn([3], seed: 6)
        withoutGrad {
            for stride in [1, 2] {
                let y = Tensor.depthwiseConv2d(x, weight: w, bias: b, stride: stride, padding: 1)
                for c in 0..<3 {
                    let plain = x.slice(alongAxis: 1, c..<(c + 1)).conv2d(
                        weight: w.slice(alongAxis: 0, c..<(c + 1)), bias: b.slice(alongAxis: 0, c..<(c + 1)), stride: stride,
                        padding: 1,
                        dilation: 1)
                    expectClose(y.slice(alongAxis: 1, c..<(c + 1)), plain, tolerance: 1e-5, "channel \(c), stride \(stride)")
                }
            }
        }
    }
}
