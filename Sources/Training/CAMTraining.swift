import Autograd
import Checkpoints
import Datasets
import Distributed
import Foundation
import HDF5
import Imaging
import Layers
import PseudoLabels
import Reporting

/// How CAMs are computed at inference (`cam.make_cam`).
public enum CAMInference: String, Codable, Sendable, CaseIterable {
    /// Ours: the normalised image rescaled bilinearly; maps resized to the image directly.
    case wsss
    /// IRN's step/make_cam.py: the 8-bit image rescaled with PIL bicubic; maps upsampled to the
    /// image size rounded up to a multiple of 16, then cropped (`CAMTraining.irnCAMs`).
    case irn
}

/// Hyper-parameters of the CAM classifier (IRN's `train_cam.py` defaults; the demo recipe
/// shrinks them for the synthetic set). `CAMTrainingOptions.irn` is IRN's procedure exactly.
public struct CAMTrainingOptions: Codable, Equatable, Sendable {
    public var iterations = 3300  // IRN: 5 epochs of 10582 images at batch 16
    public var batchSize = 16
    public var cropSize = 512
    public var scaleLow = 0.5
    public var scaleHigh = 1.5
    public var learningRate: Float = 0.01  // backbone; the classifier trains at 10x (IRN: 0.1 and 1.0, `irn`)
    public var classifierLRMultiplier: Float = 10
    public var weightDecay: Float = 1e-4
    public var momentum: Float = 0.9
    public var power: Float = 0.9
    /// Divides every ResNet width (1 = ResNet-50).
    public var widthDivisor = 1
    /// Frozen BN needs ImageNet-initialised statistics; from scratch (the synthetic demo) BN trains.
    public var frozenBN = true
    /// With `frozenBN`: γ and β still train (IRN's FixedBatchNorm).
    public var bnAffine = false
    /// Stages without gradient (IRN: 2, `CAMNetwork.frozenStages`).
    public var frozenStages = 0
    /// IRN's training augmentation with this long-side range (IRN: 320…640) instead of the scale
    /// jitter `scaleLow`…`scaleHigh` (`Augmentation.resizeLong`).
    public var resizeLong: [Int]?
    /// How CAMs are computed at inference.
    public var inference = CAMInference.wsss
    public var seed: UInt64 = 0
    public var checkpointEvery = 500
    /// Inference scales (IRN: 1.0, 0.5, 1.5, 2.0) and flips.
    public var inferenceScales = [1.0, 0.5, 1.5, 2.0]
    /// The products' arithmetic as resolved on the machine that trains (`run.precision`): fp32,
    /// or bf16 mixed precision (`Kernels.withProducts`); also the default of CAM inference.
    public var precision = ComputePrecision.fp32
    public init() {}

    /// IRN's CAM classifier as jiwoon-ahn/irn trains and applies it (run_sample.py defaults,
    /// step/train_cam.py, net/resnet50_cam.py, step/make_cam.py): lr 0.1 for the backbone and
    /// 1.0 for the classifier, poly power 0.9, weight decay 1e-4, and SGD momentum 1e-4 — IRN's
    /// PolyOptimizer calls `torch.optim.SGD.__init__(params, lr, weight_decay)` positionally, so
    /// the weight decay lands in SGD's `momentum` slot (each param group sets its own weight_decay,
    /// so decay still applies); stages 1–2 frozen, FixedBatchNorm, long side 320–640, crop 512,
    /// batch 16, 5 epochs of train_aug's 10582 images (10582 // 16 · 5 = 3305 steps), make_cam.
    public static var irn: CAMTrainingOptions {
        var o = CAMTrainingOptions()
        o.iterations = 3305
        o.learningRate = 0.1
        o.classifierLRMultiplier = 10
        o.weightDecay = 1e-4
        o.momentum = 1e-4
        o.bnAffine = true
        o.frozenStages = 2
        o.resizeLong = [320, 640]
        o.inference = .irn
        return o
    }

    public var backbone: ResNetConfiguration {
        var c = ResNetConfiguration.camResNet50.narrowed(by: widthDivisor)
        c.frozenBN = frozenBN
        c.bnAffine = bnAffine
        return c
    }

    /// The training augmentation these options ask for.
    public var augmentation: Augmentation {
        Augmentation(
            preprocessing: .torchvision, scale: .range(scaleLow, scaleHigh), cropSize: cropSize, flip: true,
            resizeLong: resizeLong.flatMap { $0.count == 2 && $0[0] <= $0[1] ? $0[0]...$0[1] : nil })
    }

    enum CodingKeys: String, CodingKey {
        case iterations, batchSize, cropSize, scaleLow, scaleHigh, learningRate, classifierLRMultiplier, weightDecay, momentum,
            power
        case widthDivisor, frozenBN, bnAffine, frozenStages, resizeLong, inference, seed, checkpointEvery, inferenceScales
        case precision
    }

    /// Keys missing from older checkpoints' options take their defaults.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = CAMTrainingOptions()
        func value<T: Decodable>(_ key: CodingKeys, _ fallback: T) throws -> T {
            try c.decodeIfPresent(T.self, forKey: key) ?? fallback
        }
        iterations = try value(.iterations, d.iterations)
        batchSize = try value(.batchSize, d.batchSize)
        cropSize = try value(.cropSize, d.cropSize)
        scaleLow = try value(.scaleLow, d.scaleLow)
        scaleHigh = try value(.scaleHigh, d.scaleHigh)
        learningRate = try value(.learningRate, d.learningRate)
        classifierLRMultiplier = try value(.classifierLRMultiplier, d.classifierLRMultiplier)
        weightDecay = try value(.weightDecay, d.weightDecay)
        momentum = try value(.momentum, d.momentum)
        power = try value(.power, d.power)
        widthDivisor = try value(.widthDivisor, d.widthDivisor)
        frozenBN = try value(.frozenBN, d.frozenBN)
        bnAffine = try value(.bnAffine, d.bnAffine)
        frozenStages = try value(.frozenStages, d.frozenStages)
        resizeLong = try c.decodeIfPresent([Int].self, forKey: .resizeLong)
        inference = try value(.inference, d.inference)
        seed = try value(.seed, d.seed)
        checkpointEvery = try value(.checkpointEvery, d.checkpointEvery)
        inferenceScales = try value(.inferenceScales, d.inferenceScales)
        precision = try value(.precision, d.precision)
    }
}

/// Trains the CAM classifier on image-level labels and extracts CAMs.
public enum CAMTraining {
    /// Trains for `options.iterations` steps, writing `cam_final.h5` (and `cam_iter_N.h5` every
    /// `checkpointEvery`) and `cam_train.jsonl` in `outDirectory`. Resumes from the newest
    /// checkpoint there when `resume` is set. `provenance` (what the run is made from, as the
    /// pipeline describes it) is stored in every checkpoint.
    ///
    /// With a `communicator` of several ranks, every rank runs this alike: each trains on its
    /// shard of every batch (the images and augmentation one process would use), the loss is
    /// weighted by the shard's share of the batch so the gradients summed over the ranks are one
    /// process's, batch norm that trains is synchronised unless `syncBatchNorm` is false, and
    /// only rank 0 writes.
    /// - Throws: `RunFolderError`, `CheckpointError`, `TrainingError`, `DistributedError`.
    @discardableResult
    public static func train(
        dataset: VOCDataset, options: CAMTrainingOptions, outDirectory: String, initFrom: String? = nil, resume: Bool = true,
        provenance: [String: String] = [:],
        progress: (Int, Float) -> Void = { _, _ in }, shouldStop: () -> Bool = { false }, communicator: Communicator = .single,
        syncBatchNorm: Bool = true
    ) throws -> CAMNetwork {
        try MemoryBudget.checkTrainingBatch(batch: options.batchSize, crop: options.cropSize)
        guard options.batchSize >= communicator.size else {
            throw TrainingError.batchTooSmallForRanks(batchSize: options.batchSize, ranks: communicator.size)
        }
        let writer = communicator.isWriter
        let run = try TrainingRun(directory: outDirectory, prefix: "cam_", communicator: communicator)
        let latest = resume ? run.latestCheckpoint : nil
        try run.prepare(resuming: latest != nil, overwrite: false, runFiles: ["cam_train.jsonl"])
        let classCount = dataset.classes.count
        let model = CAMNetwork(
            classes: classCount - 1, backbone: options.backbone, frozenStages: options.frozenStages, seed: options.seed)
        let optimizer = CAMTraining.optimizer(for: model, options: options)
        let recipe = String(decoding: try JSONEncoder().encode(options), as: UTF8.self)
        var start = 0
        if let latest {
            start = try Checkpoint.load(from: latest, into: model, architecture: CAMNetwork.architecture, optimizer: optimizer)
                .iteration
        } else if let initFrom {
            try Checkpoint.initialize(model, from: initFrom, exclude: ["classifier.*"])
        }
        try communicator.broadcastState(of: model)
        communicator.synchronizeBatchNorm(of: model, enabled: syncBatchNorm)
        defer { model.synchronizeBatchNorm(nil) }
        if start >= options.iterations { return model }
        run.lastSaved = latest
        try run.openLogs(logName: "cam_train.jsonl", start: start)
        let targets = try imageTargets(dataset)
        let augmentation = options.augmentation
        let loader = try BatchLoader(
            dataset: dataset, augmentation: augmentation, batchSize: options.batchSize, seed: options.seed, startBatch: start,
            pixelLabels: false,
            shard: BatchLoader.shard(rank: communicator.rank, of: communicator.size, batchSize: options.batchSize))
        defer { loader.stop() }
        let (log, board) = (run.log, run.board)
        let reducer =
            communicator.size > 1
            ? GradientReducer(parameters: model.trainableParameters.map(\.tensor), communicator: communicator) : nil
        let schedule = PolySchedule(
            baseLearningRate: options.learningRate, maxIterations: options.iterations, power: options.power)
        model.train()
        var clock = Date()
        // Mixed precision (run.precision): every product of the forward and backward passes.
        // Freed activations are reused by the next steps (no fresh pages to zero each step).
        try MemoryBudget.reusingStepBuffers {
            try Kernels.withProducts(in: options.precision) {
                for iteration in start..<options.iterations {
                    let batch = try loader.next()
                    let target = Tensor(shape: [batch.ids.count, classCount - 1], values: batch.ids.flatMap { targets[$0]! })
                    optimizer.learningRate = schedule.learningRate(at: iteration)
                    var (value, stopNow) = try step(
                        model: model, optimizer: optimizer, images: batch.images, targets: target,
                        share: Float(batch.ids.count) / Float(options.batchSize),
                        reducer: reducer, stop: shouldStop)
                    guard value.isFinite else {
                        throw TrainingError.nonFiniteLoss(iteration: iteration + 1, lastCheckpoint: run.lastGood)
                    }
                    let seconds = Date().timeIntervalSince(clock)
                    clock = Date()
                    log?.write([
                        "iteration": iteration + 1, "loss": Double(value), "lr": Double(optimizer.learningRate),
                        "images_per_s": Double(batch.ids.count * communicator.size) / max(seconds, 1e-9),
                    ])
                    if writer { progress(iteration + 1, value) }
                    try board?.addScalar("cam/loss", Double(value), step: iteration + 1)
                    try board?.addScalar("cam/lr", Double(optimizer.learningRate), step: iteration + 1)
                    // On disk at every step: a killed run keeps its curve up to the moment it died.
                    try board?.flush()
                    let done = iteration + 1
                    stopNow = stopNow && done < options.iterations
                    if done == options.iterations || done % options.checkpointEvery == 0 || stopNow {
                        let metadata = CheckpointMetadata(
                            architecture: CAMNetwork.architecture, classes: dataset.classes.names, iteration: done, recipe: "",
                            options: recipe,
                            provenance: provenance)
                        try run.save(
                            model, optimizer: optimizer, metadata: metadata,
                            name: done == options.iterations ? "cam_final.h5" : run.periodicName(done))
                    }
                    if stopNow {
                        // SIGINT/SIGTERM: the checkpoint above is written; a later run resumes from it.
                        throw TrainingInterrupted(iteration: done, checkpoint: run.lastSaved ?? "")
                    }
                }
            }
        }
        return model
    }

    /// Each image's multi-label target (classes 1…C−1 present) by id.
    static func imageTargets(_ dataset: VOCDataset) throws -> [String: [Float]] {
        let classCount = dataset.classes.count
        var targets: [String: [Float]] = [:]
        for sample in dataset.samples {
            var t = [Float](repeating: 0, count: classCount - 1)
            for c in try dataset.imageLabels(of: sample) where c > 0 && c < classCount { t[c - 1] = 1 }
            targets[sample.id] = t
        }
        return targets
    }

    /// One optimizer step on this process's batch: the multi-label soft-margin loss, backward
    /// (with a `reducer`, the loss weighted by this shard's `share` of the batch and the
    /// gradients summed over the ranks), SGD unless the loss is not finite. Returns the loss
    /// (summed over the ranks) and whether to stop (every rank takes the same decision at the
    /// same step: a signal may reach only one).
    public static func step(
        model: CAMNetwork, optimizer: SGD, images: Tensor, targets: Tensor, share: Float, reducer: GradientReducer?,
        stop: () -> Bool
    ) throws -> (loss: Float, stop: Bool) {
        optimizer.zeroGrad()
        let loss = Tensor.multiLabelSoftMarginLoss(logits: model(images), targets: targets)
        guard let reducer else {
            loss.backward()
            optimizer.step()
            return (loss.item, stop())
        }
        let shareOfLoss = loss * share
        try reducer.backwardAndReduce(shareOfLoss)
        let agreed = try reducer.communicator.agree(loss: shareOfLoss.item, stop: stop())
        if agreed.loss.isFinite { optimizer.step() }
        return agreed
    }

    /// SGD over IRN's two groups (train_cam.py): the backbone outside the frozen stages at the
    /// base rate, the classifier at `classifierLRMultiplier`, both with `weightDecay`, and
    /// `momentum` (IRN's effective value is its weight decay, `CAMTrainingOptions.irn`).
    public static func optimizer(for model: CAMNetwork, options: CAMTrainingOptions) -> SGD {
        let groups = model.optimizedParameters
        return SGD(
            groups: [
                ParameterGroup(groups.backbone.map(\.tensor)),
                ParameterGroup(groups.classifier.map(\.tensor), learningRateMultiplier: options.classifierLRMultiplier),
            ],
            learningRate: options.learningRate, momentum: options.momentum, weightDecay: options.weightDecay)
    }

    /// Loads a CAM checkpoint written by `train` (its options travel in the recipe attribute).
    public static func load(_ path: String) throws -> (model: CAMNetwork, options: CAMTrainingOptions, classes: [String]) {
        let metadata = try Checkpoint.metadata(at: path)
        guard metadata.architecture == CAMNetwork.architecture else {
            throw CheckpointError.wrongArchitecture(path: path, expected: CAMNetwork.architecture, found: metadata.architecture)
        }
        // The options attribute; checkpoints from before it kept the options JSON as their recipe text.
        let json = metadata.options.isEmpty ? metadata.recipe : metadata.options
        guard let options = try? JSONDecoder().decode(CAMTrainingOptions.self, from: Data(json.utf8)) else {
            throw TrainingError.badCheckpoint(
                path: path, reason: "no CAM training options in its recipe attribute (not written by `wsss cam train`?)")
        }
        let model = CAMNetwork(
            classes: metadata.classes.count - 1, backbone: options.backbone, frozenStages: options.frozenStages)
        _ = try Checkpoint.load(from: path, into: model, architecture: CAMNetwork.architecture)
        model.train(false)
        return (model, options, metadata.classes)
    }

    /// Multi-scale + flip CAMs of one image for its present classes (ids 1…C), computed as
    /// `inference` says (IRN's: the high-resolution maps of `irnCAMs`).
    public static func cams(model: CAMNetwork, image: Image, classes: Set<Int>, scales: [Double], inference: CAMInference = .wsss)
        -> ImageCAMs
    {
        let present = classes.sorted()
        if inference == .irn {
            return ImageCAMs(
                classes: present, maps: irnCAMs(model: model, image: image, classes: present, scales: scales).highRes)
        }
        let planar = Preprocessing.torchvision.normalize(image)
        let input = Tensor(shape: [1, 3, planar.height, planar.width], values: planar.values)
        let all = model.multiScaleActivationMaps(input, scales: scales)  // [C-1, H, W]
        let (h, w) = (image.height, image.width)
        let maps = Tensor(uninitialized: [present.count, h, w])
        for (k, c) in present.enumerated() {
            (maps.storage.base + k * h * w).update(from: all.storage.base + (c - 1) * h * w, count: h * w)
        }
        return ImageCAMs(classes: present, maps: maps)
    }
}

/// Problems a training run stops on.
public enum TrainingError: LocalizedError, Equatable {
    case nonFiniteLoss(iteration: Int, lastCheckpoint: String?)
    /// The weights (or momentum) hold NaN/inf after a step whose loss was still finite.
    case nonFiniteWeights(iteration: Int, tensors: [String], lastCheckpoint: String?)
    case badCheckpoint(path: String, reason: String)
    /// Resuming a run whose training settings differ from the checkpoint's.
    case optionsChanged(path: String, keys: [String])
    /// A checkpoint in a stage's folder that the stage did not make (no provenance, or another).
    case foreignCheckpoint(path: String, reasons: [String])
    /// A checkpoint write the file system refused (`reason` names the file and the OS reason).
    case checkpointNotWritten(reason: String, lastCheckpoint: String?)
    /// Sizes whose input batch alone needs more memory than the process may use (bytes).
    case tooLarge(what: String, needed: Int, available: Int)
    /// A data-parallel run with more ranks than images per (micro-)batch.
    case batchTooSmallForRanks(batchSize: Int, ranks: Int)

    public var errorDescription: String? {
        switch self {
        case .nonFiniteLoss(let iteration, let last):
            "the loss became NaN or infinite at iteration \(iteration); "
                + (last.map { "the last good checkpoint is \($0)" } ?? "no checkpoint was written yet")
                + " (lower the learning rate?)"
        case .nonFiniteWeights(let iteration, let tensors, let last):
            "the weights became NaN or infinite by iteration \(iteration) (\(tensors.count) tensors, e.g. \(tensors.first ?? "?")); the checkpoint was not written; "
                + (last.map { "the last good checkpoint is \($0)" } ?? "no checkpoint was written yet")
                + " (lower the learning rate?)"
        case .badCheckpoint(let path, let reason): "\(path): \(reason)"
        case .optionsChanged(let path, let keys):
            "\(path): the run was started with other settings (\(keys.joined(separator: "; "))); resume with the same recipe, "
                + "or pass --allow-recipe-change to continue on the new ones"
        case .foreignCheckpoint(let path, let reasons):
            "\(path) is not this stage's run (\(reasons.joined(separator: "; "))): it is neither resumed nor reported as the "
                + "recipe's result; move it away, pass --overwrite (the earlier run is moved aside, nothing is deleted) or use another run.dir"
        case .checkpointNotWritten(let reason, let last):
            reason + "; " + (last.map { "the last good checkpoint is \($0)" } ?? "no checkpoint was written yet")
        case .batchTooSmallForRanks(let batchSize, let ranks):
            "a batch of \(batchSize) images cannot be split across \(ranks) ranks: use at most \(batchSize) ranks or a larger train.batch_size"
        case .tooLarge(let what, let needed, let available):
            "\(what): the input batch alone needs "
                + (needed == Int.max ? "more bytes than a 64-bit count holds" : String(format: "%.1f GB", Double(needed) / 1e9))
                + String(
                    format: ", more than the %.1f GB this process may use (physical memory or ulimit -v)", Double(available) / 1e9
                )
        }
    }
}
