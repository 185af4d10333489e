import Autograd
import Checkpoints
import Datasets
import Foundation
import HDF5
import Imaging
import Layers
import PseudoLabels
import Reporting

/// Hyper-parameters of the CAM classifier (IRN's `train_cam.py` defaults; the demo recipe
/// shrinks them for the synthetic set).
public struct CAMTrainingOptions: Codable, Equatable, Sendable {
    public var iterations = 3300  // IRN: 5 epochs of 10582 images at batch 16
    public var batchSize = 16
    public var cropSize = 512
    public var scaleLow = 0.5
    public var scaleHigh = 1.5
    public var learningRate: Float = 0.01  // backbone; the classifier trains at 10x (IRN: 0.1)
    public var classifierLRMultiplier: Float = 10
    public var weightDecay: Float = 1e-4
    public var momentum: Float = 0.9
    public var power: Float = 0.9
    /// Divides every ResNet width (1 = ResNet-50).
    public var widthDivisor = 1
    /// Frozen BN needs ImageNet-initialised statistics; from scratch (the synthetic demo) BN trains.
    public var frozenBN = true
    public var seed: UInt64 = 0
    public var checkpointEvery = 500
    /// Inference scales (IRN: 1.0, 0.5, 1.5, 2.0) and flips.
    public var inferenceScales = [1.0, 0.5, 1.5, 2.0]
    public init() {}

    public var backbone: ResNetConfiguration {
        var c = ResNetConfiguration.camResNet50.narrowed(by: widthDivisor)
        c.frozenBN = frozenBN
        return c
    }
}

/// Trains the CAM classifier on image-level labels and extracts CAMs.
public enum CAMTraining {
    /// Trains for `options.iterations` steps, writing `cam_final.h5` (and `cam_iter_N.h5` every
    /// `checkpointEvery`) and `cam_train.jsonl` in `outDirectory`. Resumes from the newest
    /// checkpoint there when `resume` is set.
    @discardableResult
    public static func train(
        dataset: VOCDataset, options: CAMTrainingOptions, outDirectory: String, initFrom: String? = nil, resume: Bool = true,
        progress: (Int, Float) -> Void = { _, _ in }
    ) throws -> CAMNetwork {
        try MemoryBudget.checkTrainingBatch(batch: options.batchSize, crop: options.cropSize)
        let lock = try RunFolder.Lock(directory: outDirectory)
        defer { withExtendedLifetime(lock) {} }
        let latest = resume ? RunFolder.latestCheckpoint(in: outDirectory, prefix: "cam_") : nil
        try RunFolder.prepare(lock, prefix: "cam_", resuming: latest != nil, overwrite: false, runFiles: ["cam_train.jsonl"])
        let classCount = dataset.classes.count
        let model = CAMNetwork(classes: classCount - 1, backbone: options.backbone, seed: options.seed)
        let classifier = model.classifier.parameters().map(\.tensor)
        let classifierIDs = Set(classifier.map { ObjectIdentifier($0.storage) })
        let backbone = model.trainableParameters.map(\.tensor).filter { !classifierIDs.contains(ObjectIdentifier($0.storage)) }
        let optimizer = SGD(
            groups: [ParameterGroup(backbone), ParameterGroup(classifier, learningRateMultiplier: options.classifierLRMultiplier)],
            learningRate: options.learningRate, momentum: options.momentum, weightDecay: options.weightDecay)
        let recipe = String(decoding: try JSONEncoder().encode(options), as: UTF8.self)
        var start = 0
        let finalPath = "\(outDirectory)/cam_final.h5"
        if let latest {
            start = try Checkpoint.load(from: latest, into: model, architecture: CAMNetwork.architecture, optimizer: optimizer).iteration
        } else if let initFrom {
            try Checkpoint.initialize(model, from: initFrom, exclude: ["classifier.*"])
        }
        if start >= options.iterations { return model }
        try TrainingLog.truncate("\(outDirectory)/cam_train.jsonl", throughIteration: start)
        // Image-level targets by id.
        var targets: [String: [Float]] = [:]
        for sample in dataset.samples {
            var t = [Float](repeating: 0, count: classCount - 1)
            for c in try dataset.imageLabels(of: sample) where c > 0 && c < classCount { t[c - 1] = 1 }
            targets[sample.id] = t
        }
        let augmentation = Augmentation(
            preprocessing: .torchvision, scale: .range(options.scaleLow, options.scaleHigh), cropSize: options.cropSize, flip: true)
        let loader = try BatchLoader(
            dataset: dataset, augmentation: augmentation, batchSize: options.batchSize, seed: options.seed, startBatch: start,
            pixelLabels: false)
        defer { loader.stop() }
        let log = TrainingLog(path: "\(outDirectory)/cam_train.jsonl")
        let board = try TensorBoardWriter(logDirectory: outDirectory)
        let schedule = PolySchedule(baseLearningRate: options.learningRate, maxIterations: options.iterations, power: options.power)
        model.train()
        var clock = Date()
        for iteration in start..<options.iterations {
            let batch = try loader.next()
            let target = Tensor(shape: [batch.ids.count, classCount - 1], values: batch.ids.flatMap { targets[$0]! })
            optimizer.learningRate = schedule.learningRate(at: iteration)
            optimizer.zeroGrad()
            let loss = Tensor.multiLabelSoftMarginLoss(logits: model(batch.images), targets: target)
            loss.backward()
            optimizer.step()
            let value = loss.item
            guard value.isFinite else { throw TrainingError.nonFiniteLoss(iteration: iteration + 1, lastCheckpoint: RunFolder.latestCheckpoint(in: outDirectory, prefix: "cam_")) }
            let seconds = Date().timeIntervalSince(clock)
            clock = Date()
            log.write(["iteration": iteration + 1, "loss": Double(value), "lr": Double(optimizer.learningRate),
                       "images_per_s": Double(batch.ids.count) / max(seconds, 1e-9)])
            progress(iteration + 1, value)
            try board.addScalar("cam/loss", Double(value), step: iteration + 1)
            try board.addScalar("cam/lr", Double(optimizer.learningRate), step: iteration + 1)
            let done = iteration + 1
            if done == options.iterations || done % options.checkpointEvery == 0 {
                let metadata = CheckpointMetadata(
                    architecture: CAMNetwork.architecture, classes: dataset.classes.names, iteration: done, recipe: "", options: recipe)
                do {
                    try Checkpoint.save(model, optimizer: optimizer, metadata: metadata,
                                        to: done == options.iterations ? finalPath : "\(outDirectory)/cam_iter_\(String(format: "%06d", done)).h5")
                } catch CheckpointError.nonFinite(_, let tensors) {
                    throw TrainingError.nonFiniteWeights(
                        iteration: done, tensors: tensors, lastCheckpoint: RunFolder.latestCheckpoint(in: outDirectory, prefix: "cam_"))
                } catch let error as HDF5Error {
                    // A full or read-only disk: the temporary file is gone and the older checkpoints stay.
                    throw TrainingError.checkpointNotWritten(
                        reason: error.localizedDescription,
                        lastCheckpoint: RunFolder.latestCheckpoint(in: outDirectory, prefix: "cam_"))
                }
            }
        }
        return model
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
            throw TrainingError.badCheckpoint(path: path, reason: "no CAM training options in its recipe attribute (not written by `wsss cam train`?)")
        }
        let model = CAMNetwork(classes: metadata.classes.count - 1, backbone: options.backbone)
        _ = try Checkpoint.load(from: path, into: model, architecture: CAMNetwork.architecture)
        model.train(false)
        return (model, options, metadata.classes)
    }

    /// Multi-scale + flip CAMs of one image for its present classes (ids 1…C).
    public static func cams(model: CAMNetwork, image: Image, classes: Set<Int>, scales: [Double]) -> ImageCAMs {
        let present = classes.sorted()
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
    /// A checkpoint write the file system refused (`reason` names the file and the OS reason).
    case checkpointNotWritten(reason: String, lastCheckpoint: String?)
    /// Sizes whose input batch alone needs more memory than the process may use (bytes).
    case tooLarge(what: String, needed: Int, available: Int)

    public var errorDescription: String? {
        switch self {
        case .nonFiniteLoss(let iteration, let last):
            "the loss became NaN or infinite at iteration \(iteration); " + (last.map { "the last good checkpoint is \($0)" } ?? "no checkpoint was written yet") + " (lower the learning rate?)"
        case .nonFiniteWeights(let iteration, let tensors, let last):
            "the weights became NaN or infinite by iteration \(iteration) (\(tensors.count) tensors, e.g. \(tensors.first ?? "?")); the checkpoint was not written; "
                + (last.map { "the last good checkpoint is \($0)" } ?? "no checkpoint was written yet") + " (lower the learning rate?)"
        case .badCheckpoint(let path, let reason): "\(path): \(reason)"
        case .optionsChanged(let path, let keys):
            "\(path): the run was started with other settings (\(keys.joined(separator: "; "))); resume with the same recipe, "
                + "or pass --allow-recipe-change to continue on the new ones"
        case .checkpointNotWritten(let reason, let last):
            reason + "; " + (last.map { "the last good checkpoint is \($0)" } ?? "no checkpoint was written yet")
        case .tooLarge(let what, let needed, let available):
            "\(what): the input batch alone needs "
                + (needed == Int.max ? "more bytes than a 64-bit count holds" : String(format: "%.1f GB", Double(needed) / 1e9))
                + String(
                    format: ", more than the %.1f GB this process may use (physical memory or ulimit -v)", Double(available) / 1e9
                )
        }
    }
}
