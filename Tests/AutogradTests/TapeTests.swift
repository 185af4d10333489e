import Autograd
import Testing

@Suite struct TapeTests {
    @Test func tapeListsOpsInExecutionOrder() {
        let x = randn([1, 2, 3, 3], seed: 1).requiringGrad()
        let w = randn([2, 2, 1, 1], seed: 2).requiringGrad()
        let loss = x.conv2d(weight: w).relu().sum()
        #expect(loss.tape().map(\.name) == ["leaf", "leaf", "conv2d", "relu", "sum"])
    }

    @Test func reusedTensorAccumulatesBothPaths() {
        // y = x·x + x: dy/dx = 2x + 1.
        let x = Tensor(shape: [3], values: [1, -2, 0.5]).requiringGrad()
        (x * x + x).sum().backward()
        #expect(x.grad?.scalars == [3, -3, 2])
    }

    @Test func gradientsAccumulateAcrossBackwardCallsUntilZeroed() {
        let x = Tensor(shape: [2], values: [1, 2]).requiringGrad()
        (x * 3).sum().backward()
        (x * 3).sum().backward()
        #expect(x.grad?.scalars == [6, 6])
        x.node?.zeroGrad()
        #expect(x.grad == nil)
    }

    @Test func withoutGradRecordsNothing() {
        let x = Tensor(shape: [2], values: [1, 2]).requiringGrad()
        let y = withoutGrad { (x * 2).relu() }
        #expect(y.node == nil)
        #expect((x * 2).node != nil)
    }

    @Test func constantsDoNotRecord() {
        let y = Tensor(shape: [2], values: [1, 2]) * Tensor(shape: [2], values: [3, 4])
        #expect(y.node == nil)
        #expect(y.scalars == [3, 8])
    }

    @Test func broadcastGradientIsReducedToTheInputShape() {
        let bias = Tensor(zeros: [1, 3, 1, 1]).requiringGrad()
        (Tensor(repeating: 1, shape: [2, 3, 4, 5]) + bias).sum().backward()
        #expect(bias.grad?.shape == [1, 3, 1, 1])
        #expect(bias.grad?.scalars == [40, 40, 40])
    }

    @Test func deepChainsDoNotOverflowTheStack() {
        let x = Tensor(scalar: 1).requiringGrad()
        var y = x
        for _ in 0..<20000 { y = y * 1 }
        y.backward()
        #expect(x.grad?.item == 1)
    }

    @Test func backwardReleasesTheTape() {
        weak var captured: TensorStorage?
        let x = Tensor(shape: [4], values: [1, 2, 3, 4]).requiringGrad()
        var loss: Tensor?
        do {
            let activated = (x * 2).relu()
            captured = activated.storage
            loss = activated.sum()
        }
        // The relu backward closure keeps its output alive until backward runs.
        #expect(captured != nil)
        loss!.backward()
        #expect(captured == nil)
        #expect(x.grad?.scalars == [2, 2, 2, 2])
    }
}
