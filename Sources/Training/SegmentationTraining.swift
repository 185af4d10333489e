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

/// DeepLab-v2 training: the loop (`train`), its optimizer and steps. Options live in
/// SegmentationOptions.swift, the run bookkeeping shared with CAM training in TrainingRun.swift,
/// evaluation and prediction in SegmentationTraining+Inference.swift.
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
        // Only rank 0 owns the run folder; the others read checkpoints from it.
        let run = try TrainingRun(directory: runDirectory, communicator: communicator)
        let model = options.makeModel(classes: dataset.classes.count)
        let optimizer = makeOptimizer(for: model, options: options)
        let metadata = CheckpointMetadata(
            architecture: DeepLabV2.architecture, classes: dataset.classes.names, recipe: recipeText,
            options: String(decoding: try JSONEncoder().encode(options), as: UTF8.self), labels: labels, provenance: provenance)
        let (start, resumePath) = try startRun(
            run, model: model, optimizer: optimizer, options: options, initFrom: initFrom, initExclude: initExclude,
            provenance: provenance, resume: resume, overwrite: overwrite, allowChangedOptions: allowChangedOptions, notice: notice
        )
        // Identical weights on every rank, whatever each read.
        try communicator.broadcastState(of: model)
        communicator.synchronizeBatchNorm(of: model, enabled: syncBatchNorm)
        started(start)
        let finalName = "final.h5"
        if start >= options.iterations { return resumePath ?? "\(runDirectory)/\(finalName)" }
        try run.openLogs(logName: "train.jsonl", start: start)
        if start == 0 { try writeRunHeader(run, recipeText: recipeText, labels: labels) }
        let loader = try BatchLoader(
            dataset: dataset, augmentation: options.augmentation, batchSize: options.batchSize, seed: options.seed,
            startBatch: start * options.accumulation,
            shard: BatchLoader.shard(rank: communicator.rank, of: communicator.size, batchSize: options.batchSize))
        defer { loader.stop() }
        let reducer =
            communicator.size > 1
            ? GradientReducer(parameters: model.trainableParameters.map(\.tensor), communicator: communicator) : nil
        let accumulation = GradientAccumulation(steps: options.accumulation)
        let schedule = options.schedule
        model.train()
        var window = LogWindow()
        // Mixed precision (run.precision): every product of the forward and backward passes and of
        // the evaluations in between; the optimizer and the weights stay fp32.
        notice("precision: \(Kernels.productArithmetic(for: options.precision).name)")
        // Freed activations are reused by the next steps (no fresh pages to zero each step).
        try MemoryBudget.reusingStepBuffers {
            try Kernels.withProducts(in: options.precision) {
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
                            model: model, optimizer: optimizer, accumulation: accumulation, msc: options.msc,
                            labelResize: options.labelResize,
                            reducer: reducer, stop: shouldStop(), nextBatch: nextBatch)
                    } else {
                        stepLoss = try step(
                            model: model, optimizer: optimizer, accumulation: accumulation, msc: options.msc,
                            labelResize: options.labelResize,
                            nextBatch: nextBatch)
                        stopNow = shouldStop()
                    }
                    guard stepLoss.isFinite else {
                        throw TrainingError.nonFiniteLoss(iteration: iteration + 1, lastCheckpoint: run.lastSaved)
                    }
                    let done = iteration + 1
                    window.add(loss: stepLoss, images: images)
                    if done % options.logEvery == 0 || done == options.iterations {
                        try logProgress(
                            window.close(iteration: done, learningRate: optimizer.learningRate), run: run, report: report)
                    }
                    var checkpoint = metadata
                    checkpoint.iteration = done
                    if done == options.iterations {
                        try run.save(model, optimizer: optimizer, metadata: checkpoint, name: finalName)
                    } else if done % options.checkpointEvery == 0 || (stopNow && done < options.iterations) {
                        try run.save(
                            model, optimizer: optimizer, metadata: checkpoint, name: run.periodicName(done),
                            keepLast: options.keepLast)
                    }
                    if let validation, options.evalEvery > 0, done % options.evalEvery == 0 || done == options.iterations {
                        try evaluateWhileTraining(
                            model: model, on: validation, options: options, at: done, run: run, evaluated: evaluated)
                        // The images' sizes vary: what they parked would sit unused until the run ends.
                        TensorStorage.releaseParkedBuffers()
                    }
                    if let log = run.log {
                        try? LossCurve.plot(
                            log: log.path, to: "\(runDirectory)/curves.png", every: options.logEvery, at: done,
                            title: "DeepLab-v2 training (\((runDirectory as NSString).lastPathComponent))")
                    }
                    if stopNow && done < options.iterations {
                        throw TrainingInterrupted(iteration: done, checkpoint: run.lastSaved ?? "")
                    }
                }
            }
        }
        return run.lastSaved ?? "\(runDirectory)/\(finalName)"
    }

    /// The start of a run, everything that can fail on the inputs first (the checkpoint to
    /// resume, the initial weights) so a failed `--overwrite` leaves the earlier run in place:
    /// the checkpoint loaded (or the initial weights copied, reporting what was copied), then the
    /// folder readied (an earlier run moved aside with `overwrite`). Returns the iteration the
    /// run starts from and the checkpoint it resumes.
    static func startRun(
        _ run: TrainingRun, model: DeepLabV2, optimizer: SGD, options: SegmentationOptions, initFrom: String?,
        initExclude: [String], provenance: [String: String], resume: Resume, overwrite: Bool, allowChangedOptions: Bool,
        notice: (String) -> Void
    ) throws -> (start: Int, resumePath: String?) {
        let resumePath = try checkpointToResume(
            resume, run: run, options: options, provenance: provenance, overwrite: overwrite,
            allowChangedOptions: allowChangedOptions, notice: notice)
        var start = 0
        if let resumePath {
            start = try Checkpoint.load(from: resumePath, into: model, architecture: DeepLabV2.architecture, optimizer: optimizer)
                .iteration
            run.lastSaved = resumePath
            notice("resuming from \(resumePath) at iteration \(start)")
        } else if let initFrom {
            notice(try Checkpoint.initialize(model, from: initFrom, exclude: initExclude).summary(from: initFrom))
        }
        if let moved = try run.prepare(
            resuming: resumePath != nil, overwrite: overwrite, runFiles: ["train.jsonl", "curves.png", "curves.svg"])
        {
            notice("moved the earlier run's files to \(moved)")
        }
        return (start, resumePath)
    }

    /// A fresh run's first records: the recipe in TensorBoard's text tab, and where the labels
    /// came from there and as train.jsonl's first line (readers skip lines without an iteration).
    static func writeRunHeader(_ run: TrainingRun, recipeText: String, labels: String) throws {
        try run.board?.addText("recipe", "```\n" + recipeText + "\n```", step: 0)
        if !labels.isEmpty {
            try run.board?.addText("labels", labels, step: 0)
            run.log?.write(["labels": labels])
        }
        try run.board?.flush()
    }

    /// The checkpoint a run continues from, checked before anything is touched: of DeepLab's
    /// architecture, trained with the same options (unless `allowChangedOptions`) and, for a stage
    /// that knows what it is made from (`provenance`, the pipeline), made from the same inputs —
    /// a checkpoint without that record, or of other inputs, is not continued silently (with
    /// `overwrite` the run starts afresh instead). nil: a fresh run.
    static func checkpointToResume(
        _ resume: Resume, run: TrainingRun, options: SegmentationOptions, provenance: [String: String], overwrite: Bool,
        allowChangedOptions: Bool, notice: (String) -> Void
    ) throws -> String? {
        let path: String?
        switch resume {
        case .never: path = nil
        case .latest:
            path = run.latestCheckpoint
            if path == nil { notice("no checkpoint to resume in \(run.directory): starting a fresh run") }
        case .checkpoint(let given): path = given
        }
        guard let path else { return nil }
        let metadata = try Checkpoint.metadata(at: path)
        if !provenance.isEmpty {
            let changed =
                metadata.provenance.isEmpty
                ? ["no record of what it was made from: not this stage's run"]
                : Provenance.changes(from: metadata.provenance, to: provenance)
            if !changed.isEmpty {
                if overwrite {
                    notice("not resuming \(path) (\(changed.joined(separator: "; "))): starting afresh")
                    return nil
                }
                if !allowChangedOptions { throw TrainingError.foreignCheckpoint(path: path, reasons: changed) }
            }
        }
        // Another model's checkpoint (a CAM classifier) is that, not a run with "other settings".
        guard metadata.architecture == DeepLabV2.architecture else {
            throw CheckpointError.wrongArchitecture(path: path, expected: DeepLabV2.architecture, found: metadata.architecture)
        }
        // Continuing a run on another schedule silently would make its result neither run's.
        let changed = try changedOptions(in: path, comparedWith: options)
        if !changed.isEmpty {
            guard allowChangedOptions else { throw TrainingError.optionsChanged(path: path, keys: changed) }
            notice("resuming with changed settings: \(changed.joined(separator: ", "))")
        }
        return path
    }

    /// The losses and images of the steps since the last log line.
    struct LogWindow {
        var lossSum: Float = 0
        var steps = 0
        var images = 0
        var clock = Date()

        mutating func add(loss: Float, images: Int) {
            lossSum += loss
            steps += 1
            self.images += images
        }

        /// The mean loss and the throughput since the last call, which starts a new window.
        mutating func close(iteration: Int, learningRate: Float) -> TrainingProgress {
            let seconds = Date().timeIntervalSince(clock)
            defer { self = LogWindow() }
            return TrainingProgress(
                iteration: iteration, loss: lossSum / Float(max(steps, 1)), learningRate: learningRate,
                imagesPerSecond: Double(images) / max(seconds, 1e-9))
        }
    }

    /// One log step: train.jsonl, TensorBoard (flushed, so a killed run keeps its curve), `report`.
    static func logProgress(_ progress: TrainingProgress, run: TrainingRun, report: (TrainingProgress) -> Void) throws {
        guard run.writer else { return }
        run.log?.write([
            "iteration": progress.iteration, "loss": Double(progress.loss), "lr": Double(progress.learningRate),
            "images_per_s": progress.imagesPerSecond, "time": Date().timeIntervalSince1970,
        ])
        report(progress)
        try run.board?.addScalar("train/loss", Double(progress.loss), step: progress.iteration)
        try run.board?.addScalar("train/lr", Double(progress.learningRate), step: progress.iteration)
        try run.board?.addScalar("train/images_per_s", progress.imagesPerSecond, step: progress.iteration)
        try run.board?.flush()
    }

    /// Val mIoU during training (the images split across the ranks, the matrices summed): the
    /// first predictions as TensorBoard overlays, per-class IoU and mIoU to the events and the log.
    static func evaluateWhileTraining(
        model: DeepLabV2, on validation: VOCDataset, options: SegmentationOptions, at iteration: Int, run: TrainingRun,
        evaluated: (Int, Double) -> Void
    ) throws {
        model.train(false)
        defer { model.train() }
        var shown = 0
        let communicator = run.communicator
        let matrix = try communicator.sum(
            try evaluate(
                model: model, dataset: validation.subset(communicator.share(of: validation.samples)),
                preprocessing: options.preprocessing, msc: options.msc,
                onImage: { id, prediction in
                    // The first images' predictions as overlays, to watch them improve.
                    guard let board = run.board, shown < 2, let sample = validation.samples.first(where: { $0.id == id }) else {
                        return
                    }
                    shown += 1
                    try board.addImage(
                        "val/prediction/\(id)", try validation.load(sample).image.overlaid(with: prediction), step: iteration)
                }))
        let miou = matrix.meanIoU * 100
        guard let board = run.board else { return }
        for (name, iou) in zip(validation.classes.names, matrix.intersectionOverUnion) {
            if let iou { try board.addScalar("val/IoU/\(name)", iou * 100, step: iteration) }
        }
        try board.addScalar("val/mIoU", miou, step: iteration)
        try board.flush()
        run.log?.write(["iteration": iteration, "val_miou": miou])
        evaluated(iteration, miou)
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
    static func lossTerms(model: DeepLabV2, batch: Batch, msc: Bool, labelResize: NearestRule = .torch) -> [(
        loss: Tensor, labelled: Int
    )] {
        func ce(_ logits: Tensor) -> (loss: Tensor, labelled: Int) {
            let labels = batch.labels.resizedNearest(to: (logits.shape[2], logits.shape[3]), rule: labelResize)
            let labelled = labels.values.reduce(0) { $0 + ($1 == LabelTensor.ignoreIndex ? 0 : 1) }
            return (Tensor.crossEntropy(logits: logits, labels: labels), labelled)
        }
        guard msc else { return [ce(model(batch.images))] }
        let out = model.multiScale(batch.images)
        return ([out.full, out.fused] + out.scaled).map(ce)
    }
}
