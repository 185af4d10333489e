import Autograd
import Testing

/// Parity fixture: scripts/make_fixtures.py, sgd_cases (torch.optim.SGD).
@Suite struct SGDTests {
    @Test func matchesTorchWithGroupsMomentumDecayAndPoly() throws {
        let fixture = try OpFixtures.Case("/sgd/poly_two_groups")
        let w = try fixture.tensor("w0").requiringGrad(), b = try fixture.tensor("b0").requiringGrad()
        let steps = try fixture.int("steps")
        let schedule = PolySchedule(
            baseLearningRate: Float(try fixture.double("base_lr")), maxIterations: steps,
            power: Float(try fixture.double("power")))
        let sgd = SGD(
            groups: [ParameterGroup([w]), ParameterGroup([b], learningRateMultiplier: 2, weightDecayMultiplier: 0)],
            learningRate: schedule.baseLearningRate, momentum: Float(try fixture.double("momentum")),
            weightDecay: Float(try fixture.double("weight_decay")))
        for k in 0..<steps {
            sgd.learningRate = schedule.learningRate(at: k)
            let (gw, gb) = (try fixture.tensor("gw\(k)"), try fixture.tensor("gb\(k)"))
            ((w * gw).sum() + (b * gb).sum()).backward()
            sgd.step()
            sgd.zeroGrad()
            expectClose(w, try fixture.tensor("w\(k + 1)"), tolerance: 1e-5, "w after step \(k + 1)")
            expectClose(b, try fixture.tensor("b\(k + 1)"), tolerance: 1e-5, "b after step \(k + 1)")
        }
    }

    @Test func polyScheduleFollowsDeepLab() {
        let s = PolySchedule(baseLearningRate: 2.5e-4, maxIterations: 20000, power: 0.9)
        #expect(s.learningRate(at: 0) == 2.5e-4)
        #expect(abs(s.learningRate(at: 10000) - 2.5e-4 * 0.5358867) < 1e-9)
        #expect(s.learningRate(at: 20000) == 0)
        // deeplab-pytorch's PolynomialLR(step_size=10): the rate holds for 10 iterations at a time.
        let stepped = PolySchedule(baseLearningRate: 2.5e-4, maxIterations: 20000, power: 0.9, stepSize: 10)
        #expect((0..<10).allSatisfy { stepped.learningRate(at: $0) == 2.5e-4 })
        #expect((10..<20).allSatisfy { stepped.learningRate(at: $0) == s.learningRate(at: 10) })
        #expect(stepped.learningRate(at: 19999) == s.learningRate(at: 19990))
    }

    @Test func accumulatedHalfBatchesEqualOneFullBatch() {
        // Σ over two micro-batches of (loss/2) has the gradient of the mean over the full batch.
        let data = randn([4, 3], seed: 1)
        let full = randn([3], seed: 2).requiringGrad()
        (full * data).mean().backward()
        let accumulated = full.detached().copy().requiringGrad()
        let accumulation = GradientAccumulation(steps: 2)
        var stepped = [Bool]()
        for micro in 0..<2 {
            ((accumulated * data.slice(alongAxis: 0, (2 * micro)..<(2 * micro + 2))).mean() * accumulation.lossScale).backward()
            stepped.append(accumulation.stepsAfter(microBatch: micro))
        }
        #expect(stepped == [false, true])
        expectClose(accumulated.grad, full.grad!, tolerance: 1e-6, "accumulated gradient")
    }

    @Test func parametersWithoutGradientAreLeftAlone() {
        let p = Tensor(shape: [2], values: [1, 2]).requiringGrad()
        let sgd = SGD(groups: [ParameterGroup([p])], learningRate: 0.1, momentum: 0.9, weightDecay: 0.1)
        sgd.step()
        #expect(p.scalars == [1, 2])
    }
}
