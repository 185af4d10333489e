import Autograd
import Foundation
import HDF5
import Layers
import Testing

@testable import Checkpoints

/// A small training loop: a narrow full-depth network, SGD with momentum, weight decay,
/// parameter groups and the poly schedule; data depends only on the iteration.
struct TinyRun {
    let model: DeepLabV2
    let sgd: SGD
    let schedule = PolySchedule(baseLearningRate: 0.01, maxIterations: 6)
    static let architecture = DeepLabV2.architecture

    init(seed: UInt64, classes: Int = 4) {
        var configuration = ResNetConfiguration.deepLabV2.narrowed(by: 32)
        configuration.frozenBN = false  // batch statistics: running buffers change and must resume too
        model = DeepLabV2(classes: classes, backbone: configuration, seed: seed)
        model.train()
        let aspp = model.trainableParameters.filter { $0.name.hasPrefix("aspp.") }
        let backbone = model.trainableParameters.filter { !$0.name.hasPrefix("aspp.") }
        sgd = SGD(
            groups: [
                ParameterGroup(backbone.map(\.tensor)),
                ParameterGroup(aspp.filter { $0.name.hasSuffix("weight") }.map(\.tensor), learningRateMultiplier: 10),
                ParameterGroup(
                    aspp.filter { $0.name.hasSuffix("bias") }.map(\.tensor), learningRateMultiplier: 20, weightDecayMultiplier: 0),
            ],
            learningRate: 0.01, momentum: 0.9, weightDecay: 5e-4)
    }

    /// One step on iteration `k`'s batch; returns the loss.
    func step(_ k: Int) -> Float {
        var g = SeededGenerator(seed: 1000 + UInt64(k))
        let x = Tensor.randomNormal([2, 3, 33, 33], using: &g)
        let labels = LabelTensor(shape: [2, 5, 5], values: (0..<50).map { _ in Int32(g.next() % 5 == 4 ? 255 : g.next() % 4) })
        sgd.learningRate = schedule.learningRate(at: k)
        let loss = Tensor.crossEntropy(logits: model(x), labels: labels)
        loss.backward()
        sgd.step()
        sgd.zeroGrad()
        return loss.item
    }
}

func temporaryDirectory() throws -> String {
    let dir = NSTemporaryDirectory() + "wsss-ckpt-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    return dir
}

@Suite struct CheckpointTests {
    @Test func resumingEqualsTrainingStraightThrough() throws {
        let straight = TinyRun(seed: 1)
        let lossesStraight = (0..<6).map { straight.step($0) }

        let dir = try temporaryDirectory()
        let first = TinyRun(seed: 1)
        var losses = (0..<3).map { first.step($0) }
        let metadata = CheckpointMetadata(
            architecture: TinyRun.architecture, classes: ["bg", "a", "b", "c"], iteration: 3, recipe: "seed: 1\n")
        try Checkpoint.save(first.model, optimizer: first.sgd, metadata: metadata, to: dir + "/iter3.h5")
        // A fresh process: another initialisation, everything restored from the file.
        let resumed = TinyRun(seed: 99)
        let restored = try Checkpoint.load(
            from: dir + "/iter3.h5", into: resumed.model, architecture: TinyRun.architecture, optimizer: resumed.sgd)
        #expect(restored == metadata)
        losses += (restored.iteration..<6).map { resumed.step($0) }
        #expect(losses == lossesStraight, "loss curve must match bit for bit")
        for ((name, a), (_, b)) in zip(straight.model.stateDict(), resumed.model.stateDict()) {
            #expect(a.scalars == b.scalars, "\(name) differs after resuming")
        }
    }

    @Test func fineTuningLoadsTheBackboneIntoAnotherHead() throws {
        let dir = try temporaryDirectory()
        let source = TinyRun(seed: 2, classes: 4)
        _ = source.step(0)
        try Checkpoint.save(
            source.model, metadata: CheckpointMetadata(architecture: TinyRun.architecture, classes: ["bg", "a", "b", "c"]),
            to: dir + "/source.h5")
        let target = TinyRun(seed: 3, classes: 7)
        let freshASPP = target.model.aspp.branches[0].weight.scalars
        // Without a filter the 4-class ASPP does not fit the 7-class one: named, nothing loaded.
        #expect(throws: CheckpointError.self) { try Checkpoint.initialize(target.model, from: dir + "/source.h5") }
        let report = try Checkpoint.initialize(target.model, from: dir + "/source.h5", exclude: ["aspp.*"])
        #expect(report.keptFresh.allSatisfy { $0.hasPrefix("aspp.") } && report.keptFresh.count == 8)
        #expect(report.ignored.isEmpty)
        #expect(target.model.backbone.conv1.weight.scalars == source.model.backbone.conv1.weight.scalars)
        #expect(target.model.aspp.branches[0].weight.scalars == freshASPP)
        // Include filters pick parts: only the stem.
        let stemOnly = TinyRun(seed: 4, classes: 7)
        let partial = try Checkpoint.initialize(stemOnly.model, from: dir + "/source.h5", include: ["conv1.*", "bn1.*"])
        #expect(
            partial.loaded == [
                "conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var", "bn1.num_batches_tracked",
            ])
    }

    @Test func wrongArchitectureIsRefused() throws {
        let dir = try temporaryDirectory()
        let run = TinyRun(seed: 5)
        try Checkpoint.save(
            run.model, metadata: CheckpointMetadata(architecture: "cam-resnet50", classes: []), to: dir + "/cam.h5")
        #expect(
            throws: CheckpointError.wrongArchitecture(
                path: dir + "/cam.h5", expected: TinyRun.architecture, found: "cam-resnet50")
        ) {
            try Checkpoint.load(from: dir + "/cam.h5", into: run.model, architecture: TinyRun.architecture)
        }
    }

    @Test func missingUnexpectedAndMisshapedTensorsAreNamed() throws {
        let dir = try temporaryDirectory()
        let run = TinyRun(seed: 6)
        let path = dir + "/edited.h5"
        try Checkpoint.save(run.model, metadata: CheckpointMetadata(architecture: TinyRun.architecture, classes: []), to: path)
        let file = try HDF5File(path: path, mode: .readWrite)
        try file.write(Tensor(zeros: [1]), at: "/parameters/fc.weight")
        try file.write(Tensor(zeros: [3, 3]), at: "/parameters/aspp.c0.bias")
        _ = file
        // Delete one tensor by rewriting the file without it.
        let pruned = dir + "/pruned.h5"
        try HDF5File.writeAtomically(to: pruned) { out in
            let source = try HDF5File(path: path, mode: .read)
            for name in try source.datasetNames() where name != "/parameters/layer3.7.conv2.weight" {
                try out.write(try source.read(name), at: name)
            }
            for attribute in ["format_version", "architecture", "classes", "iteration", "recipe"] {
                try out.setAttribute(try source.requiredAttribute(named: attribute), named: attribute)
            }
        }
        do {
            try Checkpoint.load(from: pruned, into: TinyRun(seed: 7).model, architecture: TinyRun.architecture)
            Issue.record("an unfitting checkpoint loaded")
        } catch let CheckpointError.mismatch(errorPath, missing, unexpected, misshaped) {
            #expect(errorPath == pruned)
            #expect(missing == ["layer3.7.conv2.weight"])
            #expect(unexpected == ["fc.weight"])
            #expect(misshaped == ["aspp.c0.bias [3, 3] vs [4]"])
        }
    }

    @Test func truncatedAndForeignFilesAreErrorsNamingTheFile() throws {
        let dir = try temporaryDirectory()
        let run = TinyRun(seed: 8)
        let path = dir + "/full.h5"
        try Checkpoint.save(
            run.model, optimizer: run.sgd, metadata: CheckpointMetadata(architecture: TinyRun.architecture, classes: []), to: path
        )
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        let cut = dir + "/cut.h5"
        try data.prefix(data.count * 2 / 3).write(to: URL(fileURLWithPath: cut))
        do {
            try Checkpoint.load(from: cut, into: run.model, architecture: TinyRun.architecture)
            Issue.record("a truncated checkpoint loaded")
        } catch {
            #expect(error.localizedDescription.hasPrefix(cut + ":"))
        }
        // An HDF5 file that is not a checkpoint (no format version).
        let foreign = dir + "/foreign.h5"
        try HDF5File.writeAtomically(to: foreign) { try $0.write(Tensor(zeros: [2]), at: "/x") }
        #expect(throws: CheckpointError.notACheckpoint(path: foreign)) {
            try Checkpoint.load(from: foreign, into: run.model, architecture: TinyRun.architecture)
        }
    }

    @Test func layoutIsPlainForH5py() throws {
        let dir = try temporaryDirectory()
        let run = TinyRun(seed: 9)
        _ = run.step(0)
        try Checkpoint.save(
            run.model, optimizer: run.sgd,
            metadata: CheckpointMetadata(architecture: TinyRun.architecture, classes: ["bg", "x"], iteration: 1),
            to: dir + "/c.h5")
        let file = try HDF5File(path: dir + "/c.h5", mode: .read)
        #expect(try file.children(of: "/") == ["buffers", "optimizer", "parameters"])
        #expect(file.contains("/parameters/layer3.22.conv3.weight"))
        #expect(file.contains("/buffers/layer1.0.bn1.running_var"))
        #expect(file.contains("/optimizer/momentum/aspp.c2.bias"))
        #expect(try file.attribute(named: "classes") == .string("bg\nx"))
        #expect(try Checkpoint.metadata(at: dir + "/c.h5").iteration == 1)
    }
}

/// scripts/convert_weights.py self-test writes Tests/Fixtures/converted_deeplab.h5: a narrow
/// (1/64) DeepLab-v2 with random weights under deeplab-pytorch's names, converted to ours.
@Suite struct ConvertedWeightsTests {
    static let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/converted_deeplab.h5").path

    @Test func convertedDeepLabLoadsStrictly() throws {
        let model = DeepLabV2(classes: 21, backbone: ResNetConfiguration.deepLabV2.narrowed(by: 64))
        let metadata = try Checkpoint.load(from: Self.path, into: model, architecture: DeepLabV2.architecture)
        #expect(metadata.classes.count == 21 && metadata.classes[15] == "person")
        let file = try HDF5File(path: Self.path, mode: .read)
        let conv = try #require(file.requiredAttribute(named: "checksum_layer3_22_conv2").doubleValue)
        let bias = try #require(file.requiredAttribute(named: "checksum_aspp_c3_bias").doubleValue)
        let sum = { (t: Tensor) in t.scalars.reduce(0.0) { $0 + Double($1) } }
        #expect(abs(sum(model.backbone.layers[2].blocks[22].namedChildren[2].1.namedParameters[0].1) - conv) < 1e-3)
        #expect(abs(sum(model.aspp.branches[3].bias!) - bias) < 1e-4)
        // It runs.
        let y = withoutGrad { model(Tensor(zeros: [1, 3, 33, 33])) }
        #expect(y.shape == [1, 21, 5, 5])
    }
}

/// Non-finite tensors are never written, and refused by name when a file holds them.
@Suite struct NonFiniteCheckpointTests {
    let directory = NSTemporaryDirectory() + "wsss-nonfinite-\(UUID().uuidString)"

    @Test func saveRefusesNaNAndWritesNothing() throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let run = TinyRun(seed: 3)
        let (name, tensor) = run.model.parameters()[5]
        tensor.storage.base[0] = .nan
        let path = directory + "/bad.h5"
        #expect(throws: CheckpointError.nonFinite(path: path, tensors: [name])) {
            try Checkpoint.save(
                run.model, metadata: CheckpointMetadata(architecture: TinyRun.architecture, classes: ["a", "b", "c", "d"]),
                to: path)
        }
        #expect(!FileManager.default.fileExists(atPath: path))
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory).isEmpty, "no temporary file is left")
    }

    @Test func loadAndInitializeRefuseNonFiniteFilesByName() throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let run = TinyRun(seed: 4)
        let path = directory + "/inf.h5"
        try Checkpoint.save(
            run.model, metadata: CheckpointMetadata(architecture: TinyRun.architecture, classes: ["a", "b", "c", "d"]), to: path)
        // Spoil one stored tensor behind the writer's back (as a file from an older build could be).
        let (name, tensor) = run.model.parameters()[2]
        let spoiled = tensor.copy()
        spoiled.storage.base[1] = .infinity
        do {
            let file = try HDF5File(path: path, mode: .readWrite)
            try file.write(spoiled, at: "/parameters/\(name)")
        }
        let fresh = TinyRun(seed: 5)
        let before = fresh.model.parameters().map { $0.tensor.scalars }
        #expect(throws: CheckpointError.nonFinite(path: path, tensors: [name])) {
            try Checkpoint.load(from: path, into: fresh.model, architecture: TinyRun.architecture)
        }
        #expect(fresh.model.parameters().map { $0.tensor.scalars } == before, "nothing is assigned from a refused file")
        #expect(throws: CheckpointError.nonFinite(path: path, tensors: [name])) {
            try Checkpoint.initialize(fresh.model, from: path)
        }
        // For inspection, an explicit flag loads it.
        try Checkpoint.load(from: path, into: fresh.model, architecture: TinyRun.architecture, allowNonFinite: true)
        #expect(fresh.model.parameters()[2].tensor.storage.base[1] == .infinity)
    }
}
