import Autograd
import Foundation

/// Sums the parameters' gradients over the ranks in fused flat buckets, each started as soon as
/// backward has finished every gradient in it, so communication overlaps the rest of backward
/// (PyTorch DDP's Reducer: ~25 MB buckets filled in reverse registration order, the order
/// backward completes them).
///
/// Buckets are started strictly in index order on every rank (a later bucket that is ready
/// waits for the earlier ones): MPI requires every rank to issue collectives in one order.
public final class GradientReducer {
    /// The communicator the sums run over.
    public let communicator: Communicator
    /// Bytes per bucket (the last one may be smaller; a larger tensor gets a bucket of its own).
    public let bucketBytes: Int

    private struct Bucket {
        var members: [Int]  // parameter indices
        var offsets: [Int]  // each member's start in `flat`
        var count: Int
        var flat: UnsafeMutablePointer<Float>
        var waiting = 0
        var request: Communicator.Request?
    }

    private let parameters: [Tensor]
    private var buckets: [Bucket] = []
    private var bucketOf: [ObjectIdentifier: Int] = [:]
    private var nextToStart = 0
    private var failure: Error?

    /// - Parameters:
    ///   - parameters: the trainable tensors (leaves) in the model's order; every rank passes the same list.
    ///   - bucketBytes: target bucket size (DDP's bucket_cap_mb default: 25 MB).
    public init(parameters: [Tensor], communicator: Communicator, bucketBytes: Int = 25 << 20) {
        precondition(parameters.allSatisfy(\.requiresGrad), "GradientReducer: every parameter must require grad")
        self.parameters = parameters
        self.communicator = communicator
        self.bucketBytes = bucketBytes
        var current: [Int] = []
        var bytes = 0
        func close() {
            guard !current.isEmpty else { return }
            var offsets: [Int] = []
            var total = 0
            for i in current {
                offsets.append(total)
                total += parameters[i].count
            }
            let flat = UnsafeMutablePointer<Float>.allocate(capacity: max(total, 1))
            buckets.append(Bucket(members: current, offsets: offsets, count: total, flat: flat))
            current = []
            bytes = 0
        }
        for i in parameters.indices.reversed() {
            current.append(i)
            bytes += parameters[i].count * MemoryLayout<Float>.size
            if bytes >= bucketBytes { close() }
        }
        close()
        for (b, bucket) in buckets.enumerated() {
            for i in bucket.members { bucketOf[ObjectIdentifier(parameters[i].node!)] = b }
        }
    }

    deinit { for b in buckets { b.flat.deallocate() } }

    /// How many buckets the parameters fill.
    public var bucketCount: Int { buckets.count }

    /// Back-propagates `loss` on this rank and leaves in every parameter's `grad` the sum over
    /// the ranks of their gradients (a parameter without a gradient on this rank keeps none;
    /// the graph is the same on every rank, so it has none anywhere).
    /// - Throws: `DistributedError` when a collective fails or times out.
    public func backwardAndReduce(_ loss: Tensor) throws {
        for b in buckets.indices {
            buckets[b].waiting = buckets[b].members.count
            buckets[b].request = nil
        }
        nextToStart = 0
        failure = nil
        loss.backward { [self] node in
            guard failure == nil, let b = bucketOf[ObjectIdentifier(node)] else { return }
            buckets[b].waiting -= 1
            do {
                try startReadyBuckets()
                // Let MPI progress the started buckets between ops.
                for k in 0..<nextToStart { _ = try buckets[k].request?.test() }
            } catch { failure = error }
        }
        if let failure { throw failure }
        try finish()
    }

    /// Sums the gradients already accumulated (backward run without the hook, e.g. earlier
    /// micro-batches or a loss computed elsewhere).
    /// - Throws: `DistributedError`.
    public func reduce() throws {
        for b in buckets.indices { buckets[b].waiting = 0 }
        nextToStart = 0
        try finish()
    }

    private func startReadyBuckets() throws {
        while nextToStart < buckets.count && buckets[nextToStart].waiting <= 0 {
            try start(nextToStart)
            nextToStart += 1
        }
    }

    private func start(_ b: Int) throws {
        let bucket = buckets[b]
        for (i, offset) in zip(bucket.members, bucket.offsets) {
            let n = parameters[i].count
            if let g = parameters[i].grad {
                (bucket.flat + offset).update(from: g.storage.base, count: n)
            } else {
                (bucket.flat + offset).update(repeating: 0, count: n)
            }
        }
        buckets[b].request = try communicator.startAllreduceSum(bucket.flat, count: bucket.count)
    }

    private func finish() throws {
        for b in buckets.indices { buckets[b].waiting = 0 }
        try startReadyBuckets()
        for b in buckets.indices { try buckets[b].request?.wait() }
        for bucket in buckets {
            for (i, offset) in zip(bucket.members, bucket.offsets) {
                let p = parameters[i]
                guard p.grad != nil, let node = p.node else { continue }
                let summed = Tensor(uninitialized: p.shape)
                summed.storage.base.update(from: bucket.flat + offset, count: p.count)
                node.replaceGrad(with: summed)
            }
        }
    }
}
