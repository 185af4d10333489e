import Autograd
import Testing

/// Parity fixtures: scripts/fixtures/make_transformer_op_fixtures.py, window_cases
/// (segment_anything image_encoder.py window_partition / window_unpartition).
@Suite struct WindowsTests {
    @Test(arguments: try OpFixtures.cases("window_partition", file: OpFixtures.transformer).map(\.name))
    func partitionMatchesSAM(_ name: String) throws {
        let fixture = try OpFixtures.Case("/window_partition/\(name)", file: OpFixtures.transformer)
        let ws = try fixture.int("window_size")
        let padded = (try fixture.int("padded_h"), try fixture.int("padded_w"))
        try expectParity(fixture, inputs: ["x"], caseName: name) { t in
            let (windows, size) = t[0].windowPartitioned(windowSize: ws)
            #expect(size == padded)
            return windows
        }
    }

    @Test(arguments: try OpFixtures.cases("window_unpartition", file: OpFixtures.transformer).map(\.name))
    func unpartitionMatchesSAM(_ name: String) throws {
        let fixture = try OpFixtures.Case("/window_unpartition/\(name)", file: OpFixtures.transformer)
        let ws = try fixture.int("window_size")
        let padded = (try fixture.int("padded_h"), try fixture.int("padded_w"))
        let size = (try fixture.int("h"), try fixture.int("w"))
        try expectParity(fixture, inputs: ["x"], caseName: name) { t in
            Tensor.windowUnpartitioned(t[0], windowSize: ws, paddedSize: padded, size: size)
        }
    }

    @Test func finiteDifferences() {
        checkGradients([randn([1, 3, 5, 2], seed: 1)]) { t in t[0].windowPartitioned(windowSize: 2).windows }
        checkGradients([randn([6, 2, 2, 2], seed: 2)]) { t in
            Tensor.windowUnpartitioned(t[0], windowSize: 2, paddedSize: (4, 6), size: (3, 5))
        }
    }

    @Test func roundTripRestoresTheTokens() {
        let x = randn([2, 5, 7, 3], seed: 3)
        let (windows, padded) = withoutGrad { x.windowPartitioned(windowSize: 3) }
        let back = withoutGrad { Tensor.windowUnpartitioned(windows, windowSize: 3, paddedSize: padded, size: (5, 7)) }
        #expect(back.shape == x.shape && back.scalars == x.scalars)
    }
}
