import Autograd
import Testing

/// `backward(leafCompleted:)`: each leaf is reported once, when nothing more will add to its
/// gradient (what lets a data-parallel step start summing a bucket during backward).
@Suite struct TapeHookTests {
    @Test func eachLeafIsReportedOnceWithItsFinalGradient() {
        // a feeds two ops (its gradient is complete only after both), b one, c is used late.
        let a = randn([3], seed: 1).requiringGrad(), b = randn([3], seed: 2).requiringGrad(),
            c = randn([3], seed: 3).requiringGrad()
        let loss = ((a * b).relu() + a * 2 + c).sum()
        var seen: [ObjectIdentifier: [Float]] = [:]
        var order: [ObjectIdentifier] = []
        loss.backward { node in
            #expect(seen[ObjectIdentifier(node)] == nil, "reported twice")
            seen[ObjectIdentifier(node)] = node.grad?.scalars
            order.append(ObjectIdentifier(node))
        }
        for leaf in [a, b, c] {
            let id = ObjectIdentifier(leaf.node!)
            #expect(seen[id] != nil, "a leaf was not reported")
            #expect(seen[id] == leaf.grad?.scalars, "reported before its gradient was final")
        }
        #expect(order.count == 3)
    }

    @Test func replaceGradSetsAnOwnedGradient() {
        let a = randn([2, 2], seed: 4).requiringGrad()
        (a * 3).sum().backward()
        a.node!.replaceGrad(with: Tensor(repeating: 7, shape: [2, 2]))
        #expect(a.grad?.scalars == [7, 7, 7, 7])
    }
}
