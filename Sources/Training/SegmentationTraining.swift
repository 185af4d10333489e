import Autograd
import Checkpoints
import Datasets
import Distributed
import Evaluation
import Foundation
import HDF5
import Imaging
import Layers
import Reporting

/// DeepLab-v2 training settings (deeplab-pytorch's VOC protocol, configs/voc12.yaml, by default;
/// recipes override).
public struct SegmentationOptions: Codable, Equatable, Sendable {
    public var depth = ResNetDepth.resnet101
    public var widthDivisor = 1
    public var frozenBN = true
    public var msc = true
    public var iterations = 20000
    public var batchSize = 5
    public var accumulation = 2
    public var cropSize = 321
    /// The training scales: a set to choose from, or a range's ends (`scaleSampling`).
    public var scales = [0.5, 0.75, 1.0, 1.25, 1.5]
    public var scaleSampling = ScaleSampling.choice
    /// The nearest rule of every label resize: the augmentation's scaling and the MSC loss's
    /// labels at each logit size (deeplab-pytorch: PIL's NEAREST in both).
    public var labelResize = NearestRule.pil
    public var preprocessing = Preprocessing.caffe
    public var learningRate: Float = 2.5e-4
    /// Iterations between poly learning-rate updates (deeplab-pytorch's LR_DECAY: 10).
    public var learningRateStep = 10
    public var asppWeightLRMultiplier: Float = 10
    public var asppBiasLRMultiplier: Float = 20
    public var power: Float = 0.9
    public var momentum: Float = 0.9
    public var weightDecay: Float = 5e-4
    public var checkpointEvery = 1000
    public var keepLast = 3
    public var evalEvery = 2000
    public var logEvery = 10
    public var seed: UInt64 = 0
    public init() {}

    /// Options (as encoded) that cannot change the trained weights: `--resume` never refuses them.
    public static let cosmeticKeys: Set<String> = ["checkpointEvery", "keepLast", "evalEvery", "logEvery"]

    enum CodingKeys: String, CodingKey {
        case depth, widthDivisor, frozenBN, msc, iterations, batchSize, accumulation, cropSize, scales, scaleSampling, labelResize
        case preprocessing, learningRate, learningRateStep, asppWeightLRMultiplier, asppBiasLRMultiplier, power, momentum
        case weightDecay, checkpointEvery, keepLast, evalEvery, logEvery, seed
        /// Before `scales`: the ends of the uniform range.
        case scaleLow, scaleHigh
    }

    /// Decodes the options a checkpoint stores. Keys added since a checkpoint was written take
    /// the behaviour it was trained with, not today's defaults: a uniform scale range
    /// `scaleLow`…`scaleHigh`, torch-nearest labels and a rate updated every iteration.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        depth = try c.decode(ResNetDepth.self, forKey: .depth)
        widthDivisor = try c.decode(Int.self, forKey: .widthDivisor)
        frozenBN = try c.decode(Bool.self, forKey: .frozenBN)
        msc = try c.decode(Bool.self, forKey: .msc)
        iterations = try c.decode(Int.self, forKey: .iterations)
        batchSize = try c.decode(Int.self, forKey: .batchSize)
        accumulation = try c.decode(Int.self, forKey: .accumulation)
        cropSize = try c.decode(Int.self, forKey: .cropSize)
        if let list = try c.decodeIfPresent([Double].self, forKey: .scales) {
            scales = list
            scaleSampling = try c.decode(ScaleSampling.self, forKey: .scaleSampling)
        } else {
            scales = [try c.decode(Double.self, forKey: .scaleLow), try c.decode(Double.self, forKey: .scaleHigh)]
            scaleSampling = .uniform
        }
        labelResize = try c.decodeIfPresent(NearestRule.self, forKey: .labelResize) ?? .torch
        preprocessing = try c.decode(Preprocessing.self, forKey: .preprocessing)
        learningRate = try c.decode(Float.self, forKey: .learningRate)
        learningRateStep = try c.decodeIfPresent(Int.self, forKey: .learningRateStep) ?? 1
        asppWeightLRMultiplier = try c.decode(Float.self, forKey: .asppWeightLRMultiplier)
        asppBiasLRMultiplier = try c.decode(Float.self, forKey: .asppBiasLRMultiplier)
        power = try c.decode(Float.self, forKey: .power)
        momentum = try c.decode(Float.self, forKey: .momentum)
        weightDecay = try c.decode(Float.self, forKey: .weightDecay)
        checkpointEvery = try c.decode(Int.self, forKey: .checkpointEvery)
        keepLast = try c.decode(Int.self, forKey: .keepLast)
        evalEvery = try c.decode(Int.self, forKey: .evalEvery)
        logEvery = try c.decode(Int.self, forKey: .logEvery)
        seed = try c.decode(UInt64.self, forKey: .seed)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(depth, forKey: .depth)
        try c.encode(widthDivisor, forKey: .widthDivisor)
        try c.encode(frozenBN, forKey: .frozenBN)
        try c.encode(msc, forKey: .msc)
        try c.encode(iterations, forKey: .iterations)
        try c.encode(batchSize, forKey: .batchSize)
        try c.encode(accumulation, forKey: .accumulation)
        try c.encode(cropSize, forKey: .cropSize)
        try c.encode(scales, forKey: .scales)
        try c.encode(scaleSampling, forKey: .scaleSampling)
        try c.encode(labelResize, forKey: .labelResize)
        try c.encode(preprocessing, forKey: .preprocessing)
        try c.encode(learningRate, forKey: .learningRate)
        try c.encode(learningRateStep, forKey: .learningRateStep)
        try c.encode(asppWeightLRMultiplier, forKey: .asppWeightLRMultiplier)
        try c.encode(asppBiasLRMultiplier, forKey: .asppBiasLRMultiplier)
        try c.encode(power, forKey: .power)
        try c.encode(momentum, forKey: .momentum)
        try c.encode(weightDecay, forKey: .weightDecay)
        try c.encode(checkpointEvery, forKey: .checkpointEvery)
        try c.encode(keepLast, forKey: .keepLast)
        try c.encode(evalEvery, forKey: .evalEvery)
        try c.encode(logEvery, forKey: .logEvery)
        try c.encode(seed, forKey: .seed)
    }

    /// The training augmentation these options describe (crop, scales, label rule; flips on).
    public var augmentation: Augmentation {
        Augmentation(
            preprocessing: preprocessing, scale: ScaleJitter(scaleSampling, scales: scales), cropSize: cropSize, flip: true,
            labelResize: labelResize, sideRounding: scaleSampling.sideRounding)
    }

    /// The learning-rate schedule these options describe.
    public var schedule: PolySchedule {
        PolySchedule(baseLearningRate: learningRate, maxIterations: iterations, power: power, stepSize: learningRateStep)
    }

    public var backbone: ResNetConfiguration {
        var c = ResNetConfiguration.deepLabV2
        c.depth = depth.rawValue
        c = c.narrowed(by: widthDivisor)
        c.frozenBN = frozenBN
        return c
    }

    public func makeModel(classes: Int) -> DeepLabV2 { DeepLabV2(classes: classes, backbone: backbone, seed: seed) }
}

/// Set by SIGINT/SIGTERM once `install()` ran; callers hand `{ StopRequest.requested != 0 }`
/// to the training loops as their `shouldStop`.
public enum StopRequest {
    nonisolated(unsafe) public static var requested: sig_atomic_t = 0

    /// Installs handlers for SIGINT and SIGTERM that set `requested`.
    public static func install() {
        signal(SIGINT) { _ in StopRequest.requested = 1 }
        signal(SIGTERM) { _ in StopRequest.requested = 1 }
    }
}

/// What a training run reports per logged iteration.
public struct TrainingProgress: Sendable {
    public var iteration: Int
    public var loss: Float
    public var learningRate: Float
    public var imagesPerSecond: Double
}

/// Whether a training run continues an earlier one.
public enum Resume: Equatable, Sendable {
    /// A fresh run (a folder holding checkpoints is refused unless `overwrite`).
    case never
    /// The newest checkpoint in the run folder, or a fresh run when there is none.
    case latest
    /// This checkpoint.
    case checkpoint(String)

    /// The command-line spelling: "auto" is `.latest`, anything else a checkpoint path.
    public init(argument: String) { self = argument == "auto" ? .latest : .checkpoint(argument) }
}

public enum SegmentationTraining {
    /// Trains DeepLab-v2 on `dataset` (its label folder holds the pseudo-labels) into `runDirectory`:
    /// `iter_N.h5` every `checkpointEvery` (the last `keepLast` kept), `final.h5`, `train.jsonl`,
    /// `curves.png`, resuming as `resume` says.
    /// The folder is locked for the run (`RunFolder.Lock`); a fresh run refuses a folder holding
    /// checkpoints unless `overwrite` (which moves them aside); a resumed run cuts `train.jsonl`
    /// back to the checkpoint's iteration. `notice` receives one-line messages for the log;
    /// `started` the iteration training starts from (0, or a resumed checkpoint's); `shouldStop`
    /// is asked after every step (the CLI answers from its SIGINT/SIGTERM handler, `StopRequest`):
    /// when true, a checkpoint is written and `TrainingInterrupted` thrown.
    /// Returns the path of the checkpoint written last.
    ///
    /// With a `communicator` of several ranks (`mpirun … --distributed`), every rank runs this
    /// with the same arguments: each trains on its shard of every global batch (the same images,
    /// crops and flips one process would use), gradients are summed over the ranks during
    /// backward (`GradientReducer`), and only rank 0 writes files. Batch size, learning rate and
    /// results do not depend on the rank count (batch norm that trains is synchronised across
    /// the ranks unless `syncBatchNorm` is false). Evaluation splits the images across ranks.
    /// - Throws: `RunFolderError`, `CheckpointError`, `TrainingError` (non-finite loss or weights,
    ///   naming the last good checkpoint), `TrainingInterrupted` after SIGINT/SIGTERM,
    ///   `DistributedError` when a collective fails.
    @discardableResult
    public static func train(
        dataset: VOCDataset, validation: VOCDataset?, options: SegmentationOptions, recipeText: String, runDirectory: String,
        initFrom: String? = nil, initExclude: [String] = ["aspp.*"], labels: String = "", provenance: [String: String] = [:],
        resume: Resume = .never, overwrite: Bool = false,
        allowChangedOptions: Bool = false, notice: (String) -> Void = { _ in }, started: (Int) -> Void = { _ in },
        shouldStop: () -> Bool = { false },
        report: (TrainingProgress) -> Void = { _ in }, evaluated: (Int, Double) -> Void = { _, _ in },
        communicator: Communicator = .single, syncBatchNorm: Bool = true
    ) throws -> String {
        try MemoryBudget.checkTrainingBatch(batch: options.batchSize, crop: options.cropSize)
        guard options.batchSize >= communicator.size else {
            throw TrainingError.batchTooSmallForRanks(batchSize: options.batchSize, ranks: communicator.size)
        }
        let writer = communicator.isWriter
        // Only rank 0 owns the run folder; the others read checkpoints from it.
        let lock = writer ? try RunFolder.Lock(directory: runDirectory) : nil
        defer { withExtendedLifetime(lock) {} }
        let classCount = dataset.classes.count
        let model = options.makeModel(classes: classCount)
        let optimizer = makeOptimizer(for: model, options: options)
        let architecture = DeepLabV2.architecture
        let optionsJSON = String(decoding: try JSONEncoder().encode(options), as: UTF8.self)
        var start = 0
        var resumePath: String? = switch resume {
        case .never: nil
        case .latest: RunFolder.latestCheckpoint(in: runDirectory, prefix: "")
        case .checkpoint(let path): path
        }
        if resume == .latest && resumePath == nil { notice("no checkpoint to resume in \(runDirectory): starting a fresh run") }
        if let path = resumePath, !provenance.isEmpty {
            // A stage that knows what it is made from (the pipeline) resumes only its own run: a
            // checkpoint without that record, or made from other inputs, is not continued silently.
            let stored = try Checkpoint.metadata(at: path).provenance
            let changed = stored.isEmpty
                ? ["no record of what it was made from: not this stage's run"] : Provenance.changes(from: stored, to: provenance)
            if !changed.isEmpty {
                if overwrite {
                    notice("not resuming \(path) (\(changed.joined(separator: "; "))): starting afresh")
                    resumePath = nil
                } else if !allowChangedOptions {
                    throw TrainingError.foreignCheckpoint(path: path, reasons: changed)
                }
            }
        }
        // Everything that can fail on the inputs (the checkpoint to resume, the initial weights)
        // is checked before the folder is touched: a failed --overwrite leaves the earlier run in place.
        if let resumePath {
            // Another model's checkpoint (a CAM classifier) is that, not a run with "other settings".
            let found = try Checkpoint.metadata(at: resumePath).architecture
            guard found == architecture else {
                throw CheckpointError.wrongArchitecture(path: resumePath, expected: architecture, found: found)
            }
            // Continuing a run on another schedule silently would make its result neither run's.
            let changed = try changedOptions(in: resumePath, comparedWith: options)
            if !changed.isEmpty {
                guard allowChangedOptions else { throw TrainingError.optionsChanged(path: resumePath, keys: changed) }
                notice("resuming with changed settings: \(changed.joined(separator: ", "))")
            }
            start = try Checkpoint.load(from: resumePath, into: model, architecture: architecture, optimizer: optimizer).iteration
            notice("resuming from \(resumePath) at iteration \(start)")
        } else if let initFrom {
            notice(try Checkpoint.initialize(model, from: initFrom, exclude: initExclude).summary(from: initFrom))
        }
        if let lock, let moved = try RunFolder.prepare(lock, prefix: "", resuming: resumePath != nil, overwrite: overwrite, runFiles: ["train.jsonl", "curves.png", "curves.svg"]) {
            notice("moved the earlier run's files to \(moved)")
        }
        try communicator.barrier()
        // Identical weights on every rank, whatever each read.
        try communicator.broadcastState(of: model)
        communicator.synchronizeBatchNorm(of: model, enabled: syncBatchNorm)
        if writer { try TrainingLog.truncate("\(runDirectory)/train.jsonl", throughIteration: start) }
        started(start)
        let finalPath = "\(runDirectory)/final.h5"
        if start >= options.iterations { return resumePath ?? finalPath }
        let augmentation = options.augmentation
        let accumulation = GradientAccumulation(steps: options.accumulation)
        let loader = try BatchLoader(
            dataset: dataset, augmentation: augmentation, batchSize: options.batchSize, seed: options.seed,
            startBatch: start * options.accumulation,
            shard: BatchLoader.shard(rank: communicator.rank, of: communicator.size, batchSize: options.batchSize))
        defer { loader.stop() }
        // Rank 0 alone opens the log: another rank creating it would replace the file under it.
        let log = writer ? TrainingLog(path: "\(runDirectory)/train.jsonl") : nil
        // TensorBoard (`tensorboard --logdir <run>`): a new event file per process, so a resumed run adds one.
        let board = writer ? try TensorBoardWriter(logDirectory: runDirectory) : nil
        if start == 0 {
            try board?.addText("recipe", "```\n" + recipeText + "\n```", step: 0)
            if !labels.isEmpty { try board?.addText("labels", labels, step: 0) }
            // train.jsonl's first line says what the run trains on (readers skip lines without an iteration).
            if !labels.isEmpty { log?.write(["labels": labels]) }
            try board?.flush()
        }
        let reducer = communicator.size > 1
            ? GradientReducer(parameters: model.trainableParameters.map(\.tensor), communicator: communicator) : nil
        let schedule = options.schedule
        var lastSaved = resumePath ?? ""
        func save(_ iteration: Int, final: Bool) throws {
            let path = final ? finalPath : "\(runDirectory)/iter_\(String(format: "%06d", iteration)).h5"
            guard writer else {
                lastSaved = path
                return
            }
            let metadata = CheckpointMetadata(
                architecture: architecture, classes: dataset.classes.names, iteration: iteration, recipe: recipeText, options: optionsJSON,
                labels: labels, provenance: provenance)
            do {
                try Checkpoint.save(model, optimizer: optimizer, metadata: metadata, to: path)
            } catch CheckpointError.nonFinite(_, let tensors) {
                // Nothing was written and no older checkpoint is removed: the last good one stays.
                throw TrainingError.nonFiniteWeights(iteration: iteration, tensors: tensors, lastCheckpoint: lastSaved.isEmpty ? nil : lastSaved)
            } catch let error as HDF5Error {
                // A full or read-only disk: the temporary file is gone and the older checkpoints stay.
                throw TrainingError.checkpointNotWritten(
                    reason: error.localizedDescription, lastCheckpoint: lastSaved.isEmpty ? nil : lastSaved)
            }
            lastSaved = path
            // Keep the last K periodic checkpoints.
            let names = ((try? FileManager.default.contentsOfDirectory(atPath: runDirectory)) ?? [])
                .filter { $0.hasPrefix("iter_") && $0.hasSuffix(".h5") }.sorted()
            for old in names.dropLast(max(1, options.keepLast)) { try? FileManager.default.removeItem(atPath: "\(runDirectory)/\(old)") }
        }
        model.train()
        var clock = Date()
        var lossSum: Float = 0
        var lossCount = 0
        for iteration in start..<options.iterations {
            optimizer.learningRate = schedule.learningRate(at: iteration)
            var images = 0
            let nextBatch = {
                let batch = try loader.next()
                images += batch.ids.count * communicator.size
                return batch
            }
            let stepLoss: Float
            var stopNow = false
            if let reducer {
                (stepLoss, stopNow) = try step(
                    model: model, optimizer: optimizer, accumulation: accumulation, msc: options.msc, labelResize: options.labelResize,
                    reducer: reducer, stop: shouldStop(), nextBatch: nextBatch)
            } else {
                stepLoss = try step(
                    model: model, optimizer: optimizer, accumulation: accumulation, msc: options.msc, labelResize: options.labelResize,
                    nextBatch: nextBatch)
                stopNow = shouldStop()
            }
            guard stepLoss.isFinite else {
                throw TrainingError.nonFiniteLoss(iteration: iteration + 1, lastCheckpoint: lastSaved.isEmpty ? nil : lastSaved)
            }
            let done = iteration + 1
            lossSum += stepLoss
            lossCount += 1
            if done % options.logEvery == 0 || done == options.iterations {
                let seconds = Date().timeIntervalSince(clock)
                clock = Date()
                let progress = TrainingProgress(
                    iteration: done, loss: lossSum / Float(lossCount), learningRate: optimizer.learningRate,
                    imagesPerSecond: Double(images * lossCount) / max(seconds, 1e-9))
                if writer {
                    log?.write(["iteration": done, "loss": Double(progress.loss), "lr": Double(progress.learningRate),
                               "images_per_s": progress.imagesPerSecond, "time": Date().timeIntervalSince1970])
                    report(progress)
                }
                try board?.addScalar("train/loss", Double(progress.loss), step: done)
                try board?.addScalar("train/lr", Double(progress.learningRate), step: done)
                try board?.addScalar("train/images_per_s", progress.imagesPerSecond, step: done)
                // On disk at every log step: a killed run keeps its curve up to the moment it died.
                try board?.flush()
                (lossSum, lossCount) = (0, 0)
            }
            if done == options.iterations {
                try save(done, final: true)
            } else if done % options.checkpointEvery == 0 {
                try save(done, final: false)
            }
            if let validation, options.evalEvery > 0, done % options.evalEvery == 0 || done == options.iterations {
                model.train(false)
                var shown = 0
                let matrix = try communicator.sum(try evaluate(
                    model: model, dataset: validation.subset(communicator.share(of: validation.samples)),
                    preprocessing: options.preprocessing, msc: options.msc,
                    onImage: { id, prediction in
                        // The first images' predictions as overlays, to watch them improve.
                        guard let board, shown < 2, let sample = validation.samples.first(where: { $0.id == id }) else { return }
                        shown += 1
                        try board.addImage("val/prediction/\(id)", try validation.load(sample).image.overlaid(with: prediction), step: done)
                    }))
                let miou = matrix.meanIoU * 100
                model.train()
                if let board {
                    for (name, iou) in zip(validation.classes.names, matrix.intersectionOverUnion) {
                        if let iou { try board.addScalar("val/IoU/\(name)", iou * 100, step: done) }
                    }
                    try board.addScalar("val/mIoU", miou, step: done)
                    try board.flush()
                    log?.write(["iteration": done, "val_miou": miou])
                    evaluated(done, miou)
                }
            }
            if let log {
                try? LossCurve.plot(
                    log: log.path, to: "\(runDirectory)/curves.png", every: options.logEvery, at: done,
                    title: "DeepLab-v2 training (\((runDirectory as NSString).lastPathComponent))")
            }
            if stopNow && done < options.iterations {
                try save(done, final: false)
                throw TrainingInterrupted(iteration: done, checkpoint: lastSaved)
            }
        }
        return lastSaved
    }

    /// SGD with DeepLab-v2's parameter groups: the backbone at the base rate, ASPP weights at
    /// `asppWeightLRMultiplier`, ASPP biases at `asppBiasLRMultiplier` without weight decay
    /// (deeplab-pytorch's get_params). Groups are built by tensor identity, not by name.
    public static func makeOptimizer(for model: DeepLabV2, options: SegmentationOptions) -> SGD {
        let asppWeights = model.aspp.parameters().filter { $0.name.hasSuffix("weight") }.map(\.tensor)
        let asppBiases = model.aspp.parameters().filter { $0.name.hasSuffix("bias") }.map(\.tensor)
        let asppIDs = Set((asppWeights + asppBiases).map { ObjectIdentifier($0.storage) })
        let backbone = model.trainableParameters.map(\.tensor).filter { !asppIDs.contains(ObjectIdentifier($0.storage)) }
        return SGD(
            groups: [
                ParameterGroup(backbone),
                ParameterGroup(asppWeights, learningRateMultiplier: options.asppWeightLRMultiplier),
                ParameterGroup(asppBiases, learningRateMultiplier: options.asppBiasLRMultiplier, weightDecayMultiplier: 0),
            ], learningRate: options.learningRate, momentum: options.momentum, weightDecay: options.weightDecay)
    }

    /// One optimizer step, as training runs it (and `wsss bench model` times it): gradients
    /// cleared, `accumulation.steps` micro-batches from `nextBatch` forward and backward (loss
    /// scaled by 1/steps), then the SGD update — skipped when the loss is not finite, so the
    /// caller can stop with the weights unchanged. `labelResize` is the rule that shrinks the
    /// labels to each logit map (`lossOf`). Returns the step's loss.
    public static func step(
        model: DeepLabV2, optimizer: SGD, accumulation: GradientAccumulation, msc: Bool, labelResize: NearestRule = .torch,
        nextBatch: () throws -> Batch
    ) rethrows -> Float {
        optimizer.zeroGrad()
        var stepLoss: Float = 0
        for _ in 0..<accumulation.steps {
            let loss = lossOf(model: model, batch: try nextBatch(), msc: msc, labelResize: labelResize) * accumulation.lossScale
            loss.backward()
            stepLoss += loss.item
        }
        if stepLoss.isFinite { optimizer.step() }
        return stepLoss
    }

    /// One data-parallel optimizer step on this rank: as `step`, on this rank's shard of each
    /// micro-batch. Every cross-entropy term is weighted by this rank's share of the labelled
    /// pixels the term has over all ranks, so the summed gradient is the one a single process
    /// gets from the whole batch (a mean over all its labelled pixels); the last micro-batch's
    /// backward sums the gradients in buckets as they complete. Returns the step's loss summed
    /// over the ranks and whether any rank passed `stop`; the update is skipped on every rank
    /// when that loss is not finite.
    /// - Throws: what `nextBatch` throws, `DistributedError`.
    public static func step(
        model: DeepLabV2, optimizer: SGD, accumulation: GradientAccumulation, msc: Bool, labelResize: NearestRule = .torch,
        reducer: GradientReducer, stop: Bool = false, nextBatch: () throws -> Batch
    ) throws -> (loss: Float, stop: Bool) {
        let communicator = reducer.communicator
        optimizer.zeroGrad()
        var localLoss: Float = 0
        for micro in 0..<accumulation.steps {
            let terms = lossTerms(model: model, batch: try nextBatch(), msc: msc, labelResize: labelResize)
            let totals = try communicator.allreduceSum(terms.map { Double($0.labelled) })
            var loss = Tensor(scalar: 0)
            for (term, total) in zip(terms, totals) where total > 0 {
                loss = loss + term.loss * Float(Double(term.labelled) / total)
            }
            loss = loss * accumulation.lossScale
            if micro == accumulation.steps - 1 { try reducer.backwardAndReduce(loss) } else { loss.backward() }
            localLoss += loss.item
        }
        let agreed = try communicator.agree(loss: localLoss, stop: stop)
        if agreed.loss.isFinite { optimizer.step() }
        return agreed
    }

    /// Cross-entropy (ignore 255, mean over the labelled pixels) on the logits; with MSC the sum
    /// over the full, scaled and fused maps, labels nearest-downsampled to each size by
    /// `labelResize` (deeplab-pytorch main.py's train loop: one criterion per MSC output, labels
    /// by `resize_labels`, PIL NEAREST, i.e. `.pil`).
    static func lossOf(model: DeepLabV2, batch: Batch, msc: Bool, labelResize: NearestRule = .torch) -> Tensor {
        lossTerms(model: model, batch: batch, msc: msc, labelResize: labelResize).map(\.loss).reduce(Tensor(scalar: 0), +)
    }

    /// `lossOf`'s cross-entropy terms, each with the number of labelled pixels it averages over.
    static func lossTerms(model: DeepLabV2, batch: Batch, msc: Bool, labelResize: NearestRule = .torch) -> [(loss: Tensor, labelled: Int)] {
        func ce(_ logits: Tensor) -> (loss: Tensor, labelled: Int) {
            let labels = batch.labels.resizedNearest(to: (logits.shape[2], logits.shape[3]), rule: labelResize)
            let labelled = labels.values.reduce(0) { $0 + ($1 == LabelTensor.ignoreIndex ? 0 : 1) }
            return (Tensor.crossEntropy(logits: logits, labels: labels), labelled)
        }
        guard msc else { return [ce(model(batch.images))] }
        let out = model.multiScale(batch.images)
        return ([out.full, out.fused] + out.scaled).map(ce)
    }

    /// Evaluates on a labelled split: logits (MSC-fused when `msc`, multi-scale + flip when asked;
    /// `predict`) upsampled bilinearly to the image size, argmax (or `refine` of the
    /// probabilities), accumulated in a confusion matrix.
    public static func evaluate(
        model: DeepLabV2, dataset: VOCDataset, preprocessing: Preprocessing, scales: [Double] = [1], flip: Bool = false,
        msc: Bool = false,
        refine: ((_ image: Image, _ scores: Tensor, _ id: String) throws -> LabelMap)? = nil,
        onImage: (String, LabelMap) throws -> Void = { _, _ in }, progress: () -> Void = {}
    ) throws -> ConfusionMatrix {
        var matrix = ConfusionMatrix(classCount: dataset.classes.count)
        for sample in dataset.samples {
            let (image, truth) = try dataset.load(sample)
            let result = predict(model: model, image: image, preprocessing: preprocessing, scales: scales, flip: flip, msc: msc)
            // `refine` (e.g. a dense CRF) turns the class probabilities [C, H, W] into the labels instead of the argmax.
            let prediction = try refine.map { try $0(image, result.scores, sample.id) } ?? result.labels
            try onImage(sample.id, prediction)
            if let truth { try matrix.add(prediction: prediction.values, groundTruth: truth.values) }
            progress()
        }
        return matrix
    }

    /// Class scores [classes, H, W] at image resolution (softmax averaged over scales and flips)
    /// and their argmax.
    ///
    /// With `msc` each pass scores the MSC model's max-fused logits (`DeepLabV2.multiScale`), as
    /// deeplab-pytorch's main.py `test` does: the model in eval mode returns the pixel-wise max
    /// over its scales, upsampled bilinearly (align_corners false) to the image, softmax, argmax.
    /// With `scales` [1], no flip and `msc` this is that protocol step for step; otherwise the
    /// network's single-scale logits (or, with other `scales`/`flip`, the average of their softmax).
    public static func predict(
        model: DeepLabV2, image: Image, preprocessing: Preprocessing, scales: [Double] = [1], flip: Bool = false,
        msc: Bool = false
    ) -> (labels: LabelMap, scores: Tensor) {
        let scales = scales.isEmpty ? [1] : scales
        let planar = preprocessing.normalize(image)
        let input = Tensor(shape: [1, 3, planar.height, planar.width], values: planar.values)
        let (h, w) = (image.height, image.width)
        return withoutGrad {
            var total: Tensor?
            for scale in scales {
                let x = scale == 1 ? input : input.resizedBilinear(
                    to: (max(1, Int((Double(h) * scale).rounded())), max(1, Int((Double(w) * scale).rounded()))), alignCorners: false)
                let batch = flip ? Tensor.concat([x, x.flipped(alongAxis: 3)], alongAxis: 0) : x
                let logits = (msc ? model.multiScale(batch).fused : model(batch)).resizedBilinear(to: (h, w), alignCorners: false)
                var probabilities = logits.softmax(alongAxis: 1)
                if flip {
                    probabilities = probabilities.slice(alongAxis: 0, 0..<1) + probabilities.slice(alongAxis: 0, 1..<2).flipped(alongAxis: 3)
                }
                total = total.map { $0 + probabilities } ?? probabilities
            }
            // The mean over scales and flips, so the scores stay probabilities (they sum to 1).
            let passes = scales.count * (flip ? 2 : 1)
            let scores = (passes == 1 ? total! : total! * (1 / Float(passes))).reshaped(to: [model.classes, h, w])
            var values = [UInt8](repeating: 0, count: h * w)
            let base = scores.storage.base
            for p in 0..<(h * w) {
                var (best, index) = (base[p], 0)
                for c in 1..<model.classes where base[c * h * w + p] > best { (best, index) = (base[c * h * w + p], c) }
                values[p] = UInt8(index)
            }
            return (LabelMap(width: w, height: h, values: values), scores)
        }
    }

    /// The training options stored in a checkpoint: its `options` attribute, or (checkpoints from
    /// before that attribute) the `# options: {…}` line at the end of its recipe text.
    static func storedOptionsJSON(_ metadata: CheckpointMetadata) -> String? {
        if !metadata.options.isEmpty { return metadata.options }
        return metadata.recipe.split(separator: "\n").last(where: { $0.hasPrefix("# options: ") }).map { String($0.dropFirst("# options: ".count)) }
    }

    /// The training settings that differ between a checkpoint's run and `options`, as
    /// "name: old → new" (empty for a checkpoint without stored options). The stored options are
    /// read as `SegmentationOptions` first, so a key added since the checkpoint was written
    /// compares as the behaviour it trained with, not as missing.
    public static func changedOptions(in path: String, comparedWith options: SegmentationOptions) throws -> [String] {
        guard let stored = storedOptionsJSON(try Checkpoint.metadata(at: path)) else { return [] }
        let json = (try? JSONDecoder().decode(SegmentationOptions.self, from: Data(stored.utf8)))
            .flatMap { try? JSONEncoder().encode($0) }.map { String(decoding: $0, as: UTF8.self) } ?? stored
        guard let old = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any],
              let new = try JSONSerialization.jsonObject(with: try JSONEncoder().encode(options)) as? [String: Any]
        else { return [] }
        return new.keys.sorted().compactMap { key in
            // Log, evaluation and checkpoint cadence cannot change the result: never a reason to refuse.
            guard !SegmentationOptions.cosmeticKeys.contains(key) else { return nil }
            let (a, b) = (old[key].map { "\($0)" } ?? "-", "\(new[key]!)")
            return a == b ? nil : "\(key): \(a) → \(b)"
        }
    }

    /// Loads a DeepLab-v2 checkpoint written by `train` (its options travel in the recipe attribute).
    public static func load(_ path: String) throws -> (model: DeepLabV2, options: SegmentationOptions, classes: [String]) {
        let metadata = try Checkpoint.metadata(at: path)
        // A CAM classifier's checkpoint is that, not a DeepLab one with its options missing.
        guard metadata.architecture == DeepLabV2.architecture else {
            throw CheckpointError.wrongArchitecture(path: path, expected: DeepLabV2.architecture, found: metadata.architecture)
        }
        guard let json = storedOptionsJSON(metadata), let options = try? JSONDecoder().decode(SegmentationOptions.self, from: Data(json.utf8)) else {
            throw TrainingError.badCheckpoint(path: path, reason: "no DeepLab-v2 options in its recipe attribute (not written by `wsss train`?)")
        }
        let model = options.makeModel(classes: metadata.classes.count)
        _ = try Checkpoint.load(from: path, into: model, architecture: DeepLabV2.architecture)
        model.train(false)
        return (model, options, metadata.classes)
    }
}

/// Thrown after a SIGINT/SIGTERM once the checkpoint is safely written.
public struct TrainingInterrupted: LocalizedError {
    public let iteration: Int
    public let checkpoint: String
    public var errorDescription: String? { "stopped at iteration \(iteration); checkpoint \(checkpoint) (resume with --resume auto)" }
}
