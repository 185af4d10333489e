import Autograd
import Dispatch
import Foundation
import Imaging

/// Prepares training batches on background threads while the current one trains.
///
/// Each epoch visits the samples in a seeded shuffle; each sample's augmentation draws from a
/// generator seeded by (seed, epoch, position), so batches are identical whatever the thread
/// count or timing. Up to `prefetch` batches wait ready; images of a batch decode in parallel.
/// Errors (a corrupt image, a mis-sized label) stop the loader and are rethrown by `next()`.
public final class BatchLoader: @unchecked Sendable {
    public let dataset: VOCDataset
    public let augmentation: Augmentation
    public let batchSize: Int
    public let seed: UInt64
    /// Batches per epoch (the last partial batch is dropped, as PyTorch's drop_last).
    public let batchesPerEpoch: Int

    private let condition = NSCondition()
    private var ready: [Int: Result<Batch, Error>] = [:]
    private var nextToProduce: Int
    private var nextToDeliver: Int
    private let prefetch: Int
    private var stopped = false
    private let producer = DispatchQueue(label: "wsss.loader")

    /// Whether batches carry pixel labels; without (CAM training on image-level labels) every
    /// image is used and the label tensor is all 255.
    public let pixelLabels: Bool

    /// The positions of each global batch this loader delivers (all of them by default): a
    /// data-parallel rank's slice. Every rank shuffles the same order and draws each position's
    /// augmentation from the same (seed, batch, position) generator, so the slices together are
    /// exactly the batch one process would see.
    public let shard: Range<Int>

    /// - Parameters:
    ///   - startBatch: global batch index to start at (resuming mid-run).
    ///   - pixelLabels: false to train on images only (their label PNGs are neither needed nor read).
    ///   - shard: positions of every global batch of `batchSize` to deliver (default: all); see `shard(rank:of:batchSize:)`.
    public init(
        dataset: VOCDataset, augmentation: Augmentation, batchSize: Int, seed: UInt64, prefetch: Int = 2, startBatch: Int = 0,
        pixelLabels: Bool = true, shard: Range<Int>? = nil
    ) throws {
        precondition(batchSize > 0, "BatchLoader: batch size must be positive")
        let shard = shard ?? 0..<batchSize
        precondition(
            shard.lowerBound >= 0 && shard.upperBound <= batchSize && !shard.isEmpty,
            "BatchLoader: shard \(shard) of a batch of \(batchSize)")
        self.shard = shard
        try augmentation.validate()
        self.pixelLabels = pixelLabels
        let usable = dataset.samples.filter { !pixelLabels || $0.labelPath != nil }.count
        guard usable >= batchSize else {
            throw DatasetError.missingFile(
                path: dataset.labelDirectory, what: "label PNGs for a batch of \(batchSize) (found \(usable))")
        }
        self.dataset = dataset
        self.augmentation = augmentation
        self.batchSize = batchSize
        self.seed = seed
        self.prefetch = max(1, prefetch)
        batchesPerEpoch = usable / batchSize
        nextToProduce = startBatch
        nextToDeliver = startBatch
        producer.async { [weak self] in self?.produce() }
    }

    deinit { stop() }

    /// Stops the background work (pending batches are dropped).
    public func stop() {
        condition.lock()
        stopped = true
        condition.broadcast()
        condition.unlock()
    }

    /// The next batch in order, waiting for it if needed.
    public func next() throws -> Batch {
        condition.lock()
        defer { condition.unlock() }
        while ready[nextToDeliver] == nil { condition.wait() }
        let result = ready.removeValue(forKey: nextToDeliver)!
        nextToDeliver += 1
        condition.broadcast()
        return try result.get()
    }

    /// The sample order of an epoch (seeded Fisher–Yates over the labelled samples).
    public func order(epoch: Int) -> [Sample] {
        var generator = SeededGenerator(seed: seed &* 0x9E37_79B9 &+ UInt64(epoch))
        return dataset.samples.filter { !pixelLabels || $0.labelPath != nil }.shuffled(using: &generator)
    }

    private func produce() {
        var cachedEpoch = -1
        var cachedOrder: [Sample] = []
        while true {
            condition.lock()
            while !stopped && nextToProduce - nextToDeliver >= prefetch { condition.wait() }
            if stopped {
                condition.unlock()
                return
            }
            let global = nextToProduce
            nextToProduce += 1
            condition.unlock()
            let epoch = global / batchesPerEpoch, index = global % batchesPerEpoch
            if epoch != cachedEpoch {
                cachedOrder = order(epoch: epoch)
                cachedEpoch = epoch
            }
            let samples = Array(cachedOrder[(index * batchSize + shard.lowerBound)..<(index * batchSize + shard.upperBound)])
            let result = Result {
                try makeBatch(samples, epoch: epoch, index: index, global: global, firstPosition: shard.lowerBound)
            }
            condition.lock()
            ready[global] = result
            condition.broadcast()
            let failed = (try? result.get()) == nil
            if failed { stopped = true }
            condition.unlock()
            if failed { return }
        }
    }

    /// The slice of a global batch of `batchSize` that rank `rank` of `size` trains on: contiguous
    /// positions, sizes differing by at most one (DistributedSampler's split, without padding).
    public static func shard(rank: Int, of size: Int, batchSize: Int) -> Range<Int> {
        precondition(
            size > 0 && rank >= 0 && rank < size && batchSize >= size,
            "BatchLoader.shard: rank \(rank) of \(size), batch \(batchSize)")
        return (rank * batchSize / size)..<((rank + 1) * batchSize / size)
    }

    /// Loads and augments `samples` in parallel into one batch; `firstPosition` is the first
    /// sample's position in its global batch (a shard's offset), which seeds its augmentation.
    public func makeBatch(_ samples: [Sample], epoch: Int, index: Int, global: Int, firstPosition: Int = 0) throws -> Batch {
        let crop = augmentation.cropSize
        let images = Tensor(uninitialized: [samples.count, 3, crop, crop])
        var labels = [Int32](repeating: 0, count: samples.count * crop * crop)
        var errors = [Error?](repeating: nil, count: samples.count)
        let imageBase = images.storage.base
        labels.withUnsafeMutableBufferPointer { labelBuffer in
            errors.withUnsafeMutableBufferPointer { errorBuffer in
                let (lb, eb) = (labelBuffer, errorBuffer)
                parallelFor(samples.count) { range in
                    for k in range {
                        do {
                            let (image, labelMap) =
                                pixelLabels
                                ? try dataset.load(samples[k]) : (try Image.readRGB(from: samples[k].imagePath), nil)
                            var generator = SeededGenerator(
                                seed: seed ^ (UInt64(global) << 20) ^ UInt64(k + firstPosition) &* 0x2545_F491_4F6C_DD1D)
                            let (planar, cropLabels) = augmentation.apply(
                                image: image,
                                labels: labelMap
                                    ?? LabelMap(width: image.width, height: image.height, filledWith: LabelMap.ignore),
                                generator: &generator)
                            planar.values.withUnsafeBufferPointer {
                                (imageBase + k * 3 * crop * crop).update(from: $0.baseAddress!, count: $0.count)
                            }
                            for i in 0..<(crop * crop) { lb[k * crop * crop + i] = Int32(cropLabels.values[i]) }
                        } catch {
                            eb[k] = error
                        }
                    }
                }
            }
        }
        if let error = errors.compactMap({ $0 }).first { throw error }
        return Batch(
            images: images, labels: LabelTensor(shape: [samples.count, crop, crop], values: labels),
            ids: samples.map(\.id), epoch: epoch, index: index)
    }
}
