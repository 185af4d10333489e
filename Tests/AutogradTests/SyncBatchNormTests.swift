import Autograd
import Foundation
import Testing

/// `syncBatchNorm` against `batchNorm(training: true)` on the whole batch: alone (a sum that does
/// nothing) and split across two simulated processes whose sums meet in memory.
@Suite struct SyncBatchNormTests {
    /// Output, running statistics and the gradients of x, γ, β for the loss Σ y·w.
    struct Result {
        var y: [Float], dx: [Float], dw: [Float], db: [Float], runningMean: [Float], runningVar: [Float]
    }

    static func reference(_ x: Tensor, _ w: Tensor, _ b: Tensor, weights: Tensor, relu: Bool) -> Result {
        let (xl, wl, bl) = (x.copy().requiringGrad(), w.copy().requiringGrad(), b.copy().requiringGrad())
        let (rm, rv) = (Tensor(zeros: [w.count]), Tensor(repeating: 1.5, shape: [w.count]))
        let y = xl.batchNorm(weight: wl, bias: bl, runningMean: rm, runningVar: rv, training: true, relu: relu)
        (y * weights).sum().backward()
        return Result(
            y: y.scalars, dx: xl.grad!.scalars, dw: wl.grad!.scalars, db: bl.grad!.scalars, runningMean: rm.scalars,
            runningVar: rv.scalars)
    }

    static func synchronized(_ x: Tensor, _ w: Tensor, _ b: Tensor, weights: Tensor, relu: Bool, sum: @escaping CrossProcessSum)
        -> Result
    {
        let (xl, wl, bl) = (x.copy().requiringGrad(), w.copy().requiringGrad(), b.copy().requiringGrad())
        let (rm, rv) = (Tensor(zeros: [w.count]), Tensor(repeating: 1.5, shape: [w.count]))
        let y = xl.syncBatchNorm(weight: wl, bias: bl, runningMean: rm, runningVar: rv, relu: relu, sum: sum)
        (y * weights).sum().backward()
        return Result(
            y: y.scalars, dx: xl.grad!.scalars, dw: wl.grad!.scalars, db: bl.grad!.scalars, runningMean: rm.scalars,
            runningVar: rv.scalars)
    }

    static func expectClose(_ a: [Float], _ b: [Float], _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(a.count == b.count, "\(what): \(a.count) vs \(b.count) values", sourceLocation: sourceLocation)
        // Float32 sums in another order: relative to the tensor's scale.
        let scale = max(b.map { abs($0) }.max() ?? 0, 1e-6)
        let worst = zip(a, b).map { abs($0 - $1) }.max() ?? 0
        #expect(worst <= 2e-5 * scale, "\(what): largest difference \(worst) (scale \(scale))", sourceLocation: sourceLocation)
    }

    static func expectIdentical(_ a: [Float], _ b: [Float], _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
        let differing = zip(a, b).filter { $0.bitPattern != $1.bitPattern }
        #expect(
            a.count == b.count && differing.isEmpty,
            "\(what): \(differing.count) of \(b.count) values differ from one process's, by up to \(differing.map { abs($0 - $1) }.max() ?? 0)",
            sourceLocation: sourceLocation)
    }

    @Test(arguments: [false, true])
    func aloneEqualsBatchNorm(relu: Bool) {
        let x = randn([4, 3, 5, 6], seed: 21), w = randn([3], seed: 22), b = randn([3], seed: 23),
            g = randn([4, 3, 5, 6], seed: 24)
        let expected = Self.reference(x, w, b, weights: g, relu: relu)
        let got = Self.synchronized(x, w, b, weights: g, relu: relu) { _ in }
        Self.expectClose(got.y, expected.y, "y")
        Self.expectClose(got.dx, expected.dx, "dx")
        Self.expectClose(got.dw, expected.dw, "dγ")
        Self.expectClose(got.db, expected.db, "dβ")
        Self.expectClose(got.runningMean, expected.runningMean, "running mean")
        Self.expectClose(got.runningVar, expected.runningVar, "running var")
    }

    /// Two threads each normalise half of the batch; their sums meet in a shared buffer, as an
    /// allreduce would combine them. Their outputs, input gradients and running statistics, put
    /// together, are the whole batch's to the bit (a deep net with batch norm that trains
    /// amplifies any rounding difference layer by layer: issue 26 saw 1e-2 after one step of
    /// ResNet-50); their γ/β gradients add up to the whole batch's. The wide case has channels
    /// whose mean is far from zero, where a mean combined from rounded per-process means is off
    /// by an ulp.
    @Test(arguments: [[4, 3, 5, 6], [4, 64, 9, 9]])
    func twoProcessesEqualTheWholeBatch(shape: [Int]) {
        let c = shape[1]
        let offsets = Tensor(shape: [1, c, 1, 1], values: (0..<c).map { Float($0 % 7) * 3.3 - 9 })
        let x = randn(shape, seed: 31) * 0.7 + offsets, w = randn([c], seed: 32), b = randn([c], seed: 33),
            g = randn(shape, seed: 34)
        let expected = Self.reference(x, w, b, weights: g, relu: true)
        let meeting = InMemoryAllreduce(parties: 2)
        var halves = [Result?](repeating: nil, count: 2)
        let lock = NSLock()
        let half = shape[0] / 2
        DispatchQueue.concurrentPerform(iterations: 2) { k in
            let part = { (t: Tensor) in t.slice(alongAxis: 0, (half * k)..<(half * k + half)).copy() }
            let r = Self.synchronized(part(x), w, b, weights: part(g), relu: true) { meeting.sum($0) }
            lock.lock()
            halves[k] = r
            lock.unlock()
        }
        let (a, d) = (halves[0]!, halves[1]!)
        Self.expectIdentical(a.y + d.y, expected.y, "y")
        Self.expectIdentical(a.dx + d.dx, expected.dx, "dx")
        for r in [a, d] {
            Self.expectIdentical(r.runningMean, expected.runningMean, "running mean")
            Self.expectIdentical(r.runningVar, expected.runningVar, "running var")
        }
        Self.expectClose(zip(a.dw, d.dw).map { $0 + $1 }, expected.dw, "dγ")
        Self.expectClose(zip(a.db, d.db).map { $0 + $1 }, expected.db, "dβ")
    }
}

/// Sums buffers of `parties` threads: each call blocks until all have contributed, then every
/// party receives the total (an allreduce in one process, for tests).
final class InMemoryAllreduce: @unchecked Sendable {
    let parties: Int
    private let condition = NSCondition()
    private var total: [Double] = []
    private var arrived = 0
    private var departed = 0
    private var generation = 0

    init(parties: Int) { self.parties = parties }

    func sum(_ buffer: UnsafeMutableBufferPointer<Double>) {
        condition.lock()
        defer { condition.unlock() }
        // Wait for the previous round to be fully read.
        while departed > 0 { condition.wait() }
        if arrived == 0 { total = [Double](repeating: 0, count: buffer.count) }
        for i in 0..<buffer.count { total[i] += buffer[i] }
        arrived += 1
        let round = generation
        if arrived == parties {
            generation += 1
            departed = parties
            arrived = 0
            condition.broadcast()
        } else {
            while generation == round { condition.wait() }
        }
        for i in 0..<buffer.count { buffer[i] = total[i] }
        departed -= 1
        if departed == 0 { condition.broadcast() }
    }
}
