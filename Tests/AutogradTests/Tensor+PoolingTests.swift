import Autograd
import Testing

/// Parity fixtures: scripts/make_fixtures.py, pool_cases.
@Suite struct PoolingTests {
    @Test(arguments: try OpFixtures.cases("max_pool2d").map(\.name))
    func maxPoolMatchesPyTorch(_ name: String) throws {
        let fixture = try OpFixtures.Case("/max_pool2d/\(name)")
        let (k, s, p, ceil) = (
            try fixture.int("kernel"), try fixture.int("stride"), try fixture.int("padding"), try fixture.int("ceil_mode") == 1
        )
        try expectParity(fixture, inputs: ["x"], caseName: name) { t in
            t[0].maxPool2d(kernelSize: k, stride: s, padding: p, ceilMode: ceil)
        }
    }

    @Test func maxPoolFiniteDifferences() {
        // Distinct values spaced 0.05 apart, shuffled: no near-ties within ε = 1e-2.
        var g = SeededGenerator(seed: 5)
        let values = (0..<60).map { Float($0) * 0.05 }.shuffled(using: &g)
        let x = Tensor(shape: [1, 2, 5, 6], values: values)
        checkGradients([x]) { t in t[0].maxPool2d(kernelSize: 3, stride: 2, padding: 1, ceilMode: true) }
    }

    @Test func ceilModeOutputSizes() {
        // DeepLab-v2 (caffe) stem: 161 → 81 with ceil; torchvision's floor gives 81 too at 161 and
        // 80 vs 81 at 160.
        let pool = { (n: Int, ceil: Bool) in
            withoutGrad { Tensor(zeros: [1, 1, n, n]).maxPool2d(kernelSize: 3, stride: 2, padding: 1, ceilMode: ceil).shape[2] }
        }
        #expect(pool(161, true) == 81)
        #expect(pool(160, true) == 81)
        #expect(pool(160, false) == 80)
        // No window may start in the padding: 3x3 stride 2 pad 0 on 8 gives 4, not 5... torch rule.
        #expect(withoutGrad { Tensor(zeros: [1, 1, 8, 8]).maxPool2d(kernelSize: 3, stride: 2, ceilMode: true).shape[2] } == 4)
    }

    @Test func globalAveragePoolMatchesPyTorch() throws {
        try expectParity(try OpFixtures.Case("/global_avg_pool/nchw"), inputs: ["x"], caseName: "gap") { t in
            t[0].globalAveragePooled()
        }
        checkGradients([randn([2, 3, 3, 4], seed: 9)]) { t in t[0].globalAveragePooled() }
    }
}
