import Autograd
import Testing

/// Parity fixtures: scripts/fixtures/make_gdino_fixtures.py (torch.nn.functional.grid_sample
/// and groundingdino's multi_scale_deformable_attn_pytorch), Tests/Fixtures/gdino/ops.h5.
@Suite struct GridSampleTests {
    static let file = "gdino/ops.h5"

    /// Forward and both gradients, for a random grid, grid points on and past the edges, and a
    /// one-pixel input.
    @Test(arguments: try OpFixtures.cases("grid_sample", file: file).map(\.name))
    func gridSampleMatchesPyTorch(_ name: String) throws {
        let fixture = try OpFixtures.Case("/grid_sample/\(name)", file: Self.file)
        let input = try fixture.tensor("input").requiringGrad(), grid = try fixture.tensor("grid").requiringGrad()
        let y = input.gridSampled(grid)
        expectClose(y, try fixture.tensor("y"), tolerance: 1e-5, "\(name): y")
        y.backward(gradient: try fixture.tensor("dy"))
        expectClose(input.grad, try fixture.tensor("dinput"), tolerance: 1e-5, "\(name): dinput")
        expectClose(grid.grad, try fixture.tensor("dgrid"), tolerance: 1e-4, "\(name): dgrid")
    }

    @Test(arguments: try OpFixtures.cases("msda", file: file).map(\.name))
    func deformableAttentionMatchesPyTorch(_ name: String) throws {
        let fixture = try OpFixtures.Case("/msda/\(name)", file: Self.file)
        let shapes = try fixture.labels("spatial_shapes").values.map(Int.init)
        let levels = stride(from: 0, to: shapes.count, by: 2).map { (height: shapes[$0], width: shapes[$0 + 1]) }
        let value = try fixture.tensor("value").requiringGrad()
        let locations = try fixture.tensor("sampling_locations").requiringGrad()
        let weights = try fixture.tensor("attention_weights").requiringGrad()
        let y = Tensor.multiScaleDeformableAttention(value: value, levels: levels, locations: locations, weights: weights)
        expectClose(y, try fixture.tensor("y"), tolerance: 1e-5, "\(name): y")
        y.backward(gradient: try fixture.tensor("dy"))
        expectClose(value.grad, try fixture.tensor("dvalue"), tolerance: 1e-5, "\(name): dvalue")
        expectClose(locations.grad, try fixture.tensor("dsampling_locations"), tolerance: 1e-4, "\(name): dlocations")
        expectClose(weights.grad, try fixture.tensor("dattention_weights"), tolerance: 1e-5, "\(name): dweights")
    }

    /// Away from pixel centres (where bilinear sampling has kinks), by central differences.
    @Test func gridSampleFiniteDifferences() {
        let input = randn([2, 2, 4, 5], seed: 11)
        var grid = randn([2, 3, 4, 2], seed: 12, scale: 0.6)
        grid = withoutGrad { grid + Tensor(repeating: 0.013, shape: grid.shape) }
        checkGradients([input, grid], epsilon: 1e-3, tolerance: 2e-2) { t in t[0].gridSampled(t[1]) }
    }

    @Test func deformableAttentionFiniteDifferences() {
        let levels = [(height: 3, width: 4), (height: 2, width: 2)]
        let value = randn([1, 16, 2, 3], seed: 21)
        let locations = uniform([1, 3, 2, 2, 2, 2], 0.05...0.95, seed: 22)
        let weights = randn([1, 3, 2, 2, 2], seed: 23)
        checkGradients([value, locations, weights], epsilon: 1e-3, tolerance: 2e-2) { t in
            Tensor.multiScaleDeformableAttention(value: t[0], levels: levels, locations: t[1], weights: t[2])
        }
    }

    /// The fused op equals grid_sample per level, weighted and summed (the PyTorch path's
    /// composition), on the same inputs; 32 channels per head take the register-held path.
    @Test(arguments: [3, 32])
    func fusedEqualsGridSamplePerLevel(dim: Int) {
        let levels = [(height: 3, width: 5), (height: 2, width: 3)]
        let (b, q, heads, p) = (2, 4, 2, 2)
        let value = randn([b, 21, heads, dim], seed: 31)
        let locations = uniform([b, q, heads, 2, p, 2], -0.1...1.1, seed: 32)
        let weights = randn([b, q, heads, 2, p], seed: 33)
        let fused = withoutGrad {
            Tensor.multiScaleDeformableAttention(value: value, levels: levels, locations: locations, weights: weights)
        }
        var expected = [Float](repeating: 0, count: b * q * heads * dim)
        var start = 0
        for (level, (h, w)) in levels.enumerated() {
            for batch in 0..<b {
                for head in 0..<heads {
                    // value_l [1, dim, H, W], grid [1, q, p, 2]
                    var plane = [Float](repeating: 0, count: dim * h * w)
                    for pixel in 0..<(h * w) {
                        for d in 0..<dim {
                            plane[d * h * w + pixel] = value.scalars[((batch * 21 + start + pixel) * heads + head) * dim + d]
                        }
                    }
                    var grid = [Float](repeating: 0, count: q * p * 2)
                    for query in 0..<q {
                        for point in 0..<p {
                            for axis in 0..<2 {
                                let index = ((((batch * q + query) * heads + head) * 2 + level) * p + point) * 2 + axis
                                grid[(query * p + point) * 2 + axis] = 2 * locations.scalars[index] - 1
                            }
                        }
                    }
                    let sampled = withoutGrad {
                        Tensor(shape: [1, dim, h, w], values: plane).gridSampled(Tensor(shape: [1, q, p, 2], values: grid))
                    }
                    for query in 0..<q {
                        for point in 0..<p {
                            let a = weights.scalars[(((batch * q + query) * heads + head) * 2 + level) * p + point]
                            for d in 0..<dim {
                                expected[((batch * q + query) * heads + head) * dim + d] +=
                                    a * sampled.scalars[(d * q + query) * p + point]
                            }
                        }
                    }
                }
            }
            start += h * w
        }
        expectClose(fused, Tensor(shape: fused.shape, values: expected), tolerance: 1e-6, "fused vs grid_sample")
    }
}

/// A seeded tensor uniform in `range`.
private func uniform(_ shape: [Int], _ range: ClosedRange<Float>, seed: UInt64) -> Tensor {
    var g = SeededGenerator(seed: seed)
    let count = shape.reduce(1, *)
    return Tensor(
        shape: shape,
        values: (0..<count).map { _ in range.lowerBound + (range.upperBound - range.lowerBound) * g.nextUniform() })
}
