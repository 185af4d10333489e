import Autograd
import Testing

/// Parity fixtures: scripts/make_fixtures.py, batch_norm_cases.
@Suite struct BatchNormTests {
    @Test(arguments: try OpFixtures.cases("batch_norm").map(\.name))
    func matchesPyTorch(_ name: String) throws {
        let fixture = try OpFixtures.Case("/batch_norm/\(name)")
        let training = try fixture.int("training") == 1
        let runningMean = try fixture.tensor("running_mean"), runningVar = try fixture.tensor("running_var")
        try expectParity(fixture, inputs: ["x", "weight", "bias"], caseName: name) { t in
            t[0].batchNorm(weight: t[1], bias: t[2], runningMean: runningMean, runningVar: runningVar, training: training)
        }
        // Training updates the running statistics in place (unbiased variance), as torch.
        expectClose(runningMean, try fixture.tensor("running_mean_after"), tolerance: Tolerance.forward, "\(name) running_mean")
        expectClose(runningVar, try fixture.tensor("running_var_after"), tolerance: Tolerance.forward, "\(name) running_var")
    }

    @Test(arguments: [true, false])
    func finiteDifferences(training: Bool) {
        let x = randn([3, 2, 3, 4], seed: 11)
        let w = randn([2], seed: 12), b = randn([2], seed: 13)
        checkGradients([x, w, b]) { t in
            // Fresh buffers per call: training mode mutates them.
            t[0].batchNorm(
                weight: t[1], bias: t[2], runningMean: Tensor(zeros: [2]),
                runningVar: Tensor(repeating: 1.5, shape: [2]), training: training)
        }
    }
}
