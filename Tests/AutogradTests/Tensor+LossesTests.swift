import Autograd
import Testing

/// Parity fixtures: scripts/make_fixtures.py, softmax_loss_cases.
@Suite struct LossesTests {
    @Test(arguments: try OpFixtures.cases("cross_entropy").map(\.name))
    func crossEntropyMatchesPyTorch(_ name: String) throws {
        let fixture = try OpFixtures.Case("/cross_entropy/\(name)")
        let labels = try fixture.labels("labels")
        try expectParity(fixture, inputs: ["x"], caseName: name) { t in Tensor.crossEntropy(logits: t[0], labels: labels) }
    }

    @Test func crossEntropyFiniteDifferences() {
        let labels = LabelTensor(shape: [2, 2, 3], values: [0, 2, 255, 1, 1, 0, 255, 2, 0, 1, 255, 2])
        checkGradients([randn([2, 3, 2, 3], seed: 1)]) { t in Tensor.crossEntropy(logits: t[0], labels: labels) }
    }

    @Test func allIgnoredGivesZeroLossAndZeroGradient() {
        let logits = randn([1, 3, 2, 2], seed: 2).requiringGrad()
        let loss = Tensor.crossEntropy(logits: logits, labels: LabelTensor(shape: [1, 2, 2], values: [255, 255, 255, 255]))
        #expect(loss.item == 0)
        loss.backward()
        #expect(logits.grad?.scalars.allSatisfy { $0 == 0 } == true)
    }

    @Test func multiLabelSoftMarginMatchesPyTorch() throws {
        let fixture = try OpFixtures.Case("/multilabel_soft_margin/basic")
        let targets = try fixture.tensor("targets")
        try expectParity(fixture, inputs: ["x"], caseName: "mlsm") { t in
            Tensor.multiLabelSoftMarginLoss(logits: t[0], targets: targets)
        }
    }

    @Test func multiLabelSoftMarginFiniteDifferences() {
        let targets = Tensor(shape: [2, 3], values: [1, 0, 0, 0, 1, 1])
        checkGradients([randn([2, 3], seed: 3, scale: 2)]) { t in Tensor.multiLabelSoftMarginLoss(logits: t[0], targets: targets)
        }
    }
}
