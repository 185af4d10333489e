import Autograd
import Datasets
import Foundation
import HDF5
import Imaging
import Layers
import Testing

@testable import Training

/// The `irn` CAM preset against IRN's own functions, restated step for step in
/// scripts/fixtures/make_irn_fixtures.py (Tests/Fixtures/IRN/irn.h5).
@Suite struct IRNPresetTests {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/IRN").path

    static func file() throws -> HDF5File { try HDF5File(path: folder + "/irn.h5", mode: .read) }

    static func image(_ f: HDF5File, _ name: String) throws -> Image {
        let (bytes, shape) = try f.readBytes(name)
        return Image(width: shape[1], height: shape[0], channels: shape[2], pixels: bytes)
    }

    static func numbers(_ f: HDF5File, _ attribute: String, on object: String) throws -> [Double] {
        try #require(f.requiredAttribute(named: attribute, on: object).stringValue).split(separator: ",").map { Double($0)! }
    }

    /// A dict written by put_state: one flat array with key and shape attributes.
    static func state(_ f: HDF5File, _ group: String, _ name: String) throws -> [String: Tensor] {
        let flat = try f.read("\(group)/\(name)")
        let keys = try #require(f.requiredAttribute(named: name + "_keys", on: group).stringValue).split(separator: "\n")
        let shapes = try #require(f.requiredAttribute(named: name + "_shapes", on: group).stringValue)
            .split(separator: "\n", omittingEmptySubsequences: false).map { $0.split(separator: ",").map { Int($0)! } }
        var out: [String: Tensor] = [:]
        var offset = 0
        for (key, shape) in zip(keys, shapes) {
            let n = shape.reduce(1, *)
            out[String(key)] = Tensor(shape: shape, values: Array(flat.scalars[offset..<(offset + n)]))
            offset += n
        }
        return out
    }

    static func close(
        _ a: Tensor, _ b: Tensor, _ tolerance: Double, _ what: String, sourceLocation: SourceLocation = #_sourceLocation
    ) {
        guard a.shape == b.shape else {
            Issue.record("\(what): shape \(a.shape) vs \(b.shape)", sourceLocation: sourceLocation)
            return
        }
        var diff = 0.0, scale = 0.0
        for (x, y) in zip(a.scalars, b.scalars) {
            diff = max(diff, abs(Double(x) - Double(y)))
            scale = max(scale, abs(Double(y)))
        }
        #expect(
            diff / max(scale, 1e-12) <= tolerance, "\(what): relative error \(diff / max(scale, 1e-12))",
            sourceLocation: sourceLocation)
    }

    /// IRN's network at the fixture's width (1/64: stem 1, planes 1, 2, 4, 8), 4 classes.
    static func model(_ f: HDF5File, state name: String, in group: String) throws -> CAMNetwork {
        var options = CAMTrainingOptions.irn
        options.widthDivisor = 64
        let model = CAMNetwork(classes: 4, backbone: options.backbone, frozenStages: options.frozenStages)
        let values = try state(f, group, name)
        // The full state (parameters and buffers) has our keys exactly; state_after has the parameters.
        let ours = name == "state" ? model.stateDict().map(\.name) : model.parameters().map(\.name)
        #expect(Set(ours) == Set(values.keys), "\(group)/\(name): keys differ")
        for (key, tensor) in model.stateDict() { if let value = values[key] { tensor.assign(from: value) } }
        return model
    }

    // misc/imutils.py random_resize_long → pil_rescale → PIL BICUBIC: to the byte.
    @Test func resizeLongMatchesPIL() throws {
        let f = try Self.file()
        for k in try f.children(of: "/resize_long") {
            let group = "/resize_long/\(k)"
            let target = try #require(f.requiredAttribute(named: "target", on: group).intValue)
            let resized = IRNTransforms.resizeLong(try Self.image(f, group + "/image"), to: target)
            let expected = try Self.image(f, group + "/expected")
            #expect(resized.width == expected.width && resized.height == expected.height, "case \(k): size")
            let differing = zip(resized.pixels, expected.pixels).filter { $0 != $1 }.count
            #expect(differing == 0, "case \(k): \(differing) bytes differ")
        }
    }

    // misc/imutils.py get_random_crop_box + random_crop with the recorded draws.
    @Test func cropPlacesAsIRN() throws {
        let f = try Self.file()
        for k in try f.children(of: "/crop") {
            let group = "/crop/\(k)"
            let size = try #require(f.requiredAttribute(named: "size", on: group).intValue)
            var draws = try Self.numbers(f, "draws", on: group).map { Int($0) }[...]
            let hwc = try f.read(group + "/image")
            let (h, w) = (hwc.shape[0], hwc.shape[1])
            let box = IRNTransforms.cropBox(height: h, width: w, cropSize: size) { n in
                let v = draws.popFirst()!
                #expect(v < n)
                return v
            }
            let b = try Self.numbers(f, "box", on: group).map { Int($0) }
            #expect(
                [
                    box.containerTop, box.containerTop + box.height, box.containerLeft, box.containerLeft + box.width,
                    box.imageTop, box.imageTop + box.height, box.imageLeft, box.imageLeft + box.width,
                ] == b, "case \(k)")
            let chw = hwc.permuted([2, 0, 1])
            let planar = PlanarImage(channels: 3, height: h, width: w, values: chw.scalars)
            let crop = IRNTransforms.crop(planar, box: box, cropSize: size)
            let expected = try f.read(group + "/expected").permuted([2, 0, 1])
            #expect(crop.values == expected.scalars, "case \(k)")
        }
    }

    // step/train_cam.py: three PolyOptimizer steps (SGD with momentum = weight decay = 1e-4).
    @Test func trainingStepsMatchIRN() throws {
        let f = try Self.file()
        #expect(try f.requiredAttribute(named: "momentum", on: "/train").doubleValue == 1e-4)
        #expect(try f.requiredAttribute(named: "weight_decay", on: "/train").doubleValue == 1e-4)
        let model = try Self.model(f, state: "state", in: "/net")
        var options = CAMTrainingOptions.irn
        options.widthDivisor = 64
        options.iterations = try #require(f.requiredAttribute(named: "max_step", on: "/train").intValue)
        #expect(options.momentum == 1e-4 && options.weightDecay == 1e-4 && options.learningRate == 0.1)
        let optimizer = CAMTraining.optimizer(for: model, options: options)
        let schedule = PolySchedule(
            baseLearningRate: options.learningRate, maxIterations: options.iterations, power: options.power)
        let x = try f.read("/train/x"), targets = try f.read("/train/targets")
        let losses = try Self.numbers(f, "losses", on: "/train"), lrs = try Self.numbers(f, "lrs", on: "/train")
        model.train()
        for step in 0..<3 {
            optimizer.learningRate = schedule.learningRate(at: step)
            #expect(abs(Double(optimizer.learningRate) - lrs[step]) < 1e-6, "lr at step \(step)")
            optimizer.zeroGrad()
            let loss = Tensor.multiLabelSoftMarginLoss(logits: model(x), targets: targets)
            loss.backward()
            optimizer.step()
            #expect(abs(Double(loss.item) - losses[step]) < 1e-5, "loss at step \(step)")
        }
        let after = try Self.state(f, "/train", "state_after")
        let before = try Self.state(f, "/net", "state")
        for (name, parameter) in model.parameters() {
            let expected = try #require(after[name], "\(name)")
            Self.close(parameter, expected, 1e-4, name)
            if name.hasPrefix("conv1.") || name.hasPrefix("bn1.") || name.hasPrefix("layer1.") || name.hasPrefix("layer2.") {
                #expect(parameter.scalars == before[name]!.scalars, "\(name) is frozen")
            }
        }
        // FixedBatchNorm: the statistics never move.
        for (name, buffer) in model.buffers() where name.contains("running") {
            #expect(buffer.scalars == before[name]!.scalars, "\(name)")
        }
    }

    // step/make_cam.py: strided (stride 4) and high-res maps of the present classes.
    @Test func makeCAMMatchesIRN() throws {
        let f = try Self.file()
        let model = try Self.model(f, state: "state_after", in: "/train")
        for (name, buffer) in model.buffers() where name.contains("running") {
            buffer.assign(from: try Self.state(f, "/net", "state")[name]!)
        }
        model.train(false)
        let keys = try Self.numbers(f, "keys", on: "/make_cam").map { Int($0) + 1 }
        let cams = CAMTraining.irnCAMs(
            model: model, image: try Self.image(f, "/make_cam/image"), classes: keys, scales: [1.0, 0.5, 1.5, 2.0])
        #expect(cams.classes == [1, 3])
        Self.close(cams.strided, try f.read("/make_cam/strided"), 1e-4, "strided")
        Self.close(cams.highRes, try f.read("/make_cam/high_res"), 1e-4, "high_res")
    }

    @Test func recipePresetSetsIRNsValuesAndKeysOverrideThem() throws {
        let recipe = try Recipe(text: "cam:\n  preset: irn\n  iterations: 10\n", path: "r.yaml")
        var expected = CAMTrainingOptions.irn
        expected.iterations = 10
        #expect(recipe.camOptions == expected)
        #expect(recipe.cam.makeCAM == .irn && recipe.cam.momentum == 1e-4 && recipe.cam.resizeLong == [320, 640])
        // Without the preset nothing changes.
        #expect(try Recipe(text: "cam:\n  iterations: 10\n", path: "r.yaml").cam.momentum == 0.9)
        #expect(throws: RecipeError.self) { try Recipe(text: "cam:\n  resize_long: [640, 320]\n", path: "r.yaml") }
        // Checkpoints written before these options existed still load.
        let old =
            #"{"iterations":5,"batchSize":2,"cropSize":64,"scaleLow":0.5,"scaleHigh":1.5,"learningRate":0.01,"classifierLRMultiplier":10,"weightDecay":0.0001,"momentum":0.9,"power":0.9,"widthDivisor":8,"frozenBN":false,"seed":0,"checkpointEvery":5,"inferenceScales":[1]}"#
        let decoded = try JSONDecoder().decode(CAMTrainingOptions.self, from: Data(old.utf8))
        #expect(decoded.frozenStages == 0 && decoded.inference == .wsss && decoded.resizeLong == nil && decoded.widthDivisor == 8)
    }
}

/// The preset end to end on the synthetic set: training (two steps) writes a checkpoint whose
/// options reload, and inference computes IRN's high-resolution maps.
@Suite struct IRNPresetRunTests {
    @Test func trainsAndInfersWithIRNsProcedure() throws {
        let root = NSTemporaryDirectory() + "wsss-irn-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: root) }
        var data = SyntheticDataset.Options()
        (data.train, data.val, data.test, data.size) = (4, 1, 1, 48)
        try SyntheticDataset.write(to: root, options: data)
        let dataset = try VOCDataset(root: root, split: "train", classes: SyntheticDataset.classes)
        var options = CAMTrainingOptions.irn
        (options.iterations, options.batchSize, options.cropSize, options.widthDivisor) = (2, 2, 32, 32)
        options.resizeLong = [40, 56]
        options.inferenceScales = [1.0, 0.5]
        options.checkpointEvery = 2
        let out = root + "/cam"
        let model = try CAMTraining.train(dataset: dataset, options: options, outDirectory: out)
        #expect(model.frozenStages == 2)
        let (loaded, reloaded, _) = try CAMTraining.load(out + "/cam_final.h5")
        #expect(reloaded == options && loaded.frozenStages == 2)
        let sample = dataset.samples[0]
        let image = try Image.readRGB(from: sample.imagePath)
        let classes = try dataset.imageLabels(of: sample)
        let cams = CAMTraining.cams(
            model: loaded, image: image, classes: classes, scales: reloaded.inferenceScales, inference: reloaded.inference)
        #expect(cams.maps.shape == [classes.count, image.height, image.width])
        #expect(cams.maps.scalars.allSatisfy { $0 >= 0 && $0 <= 1 })
    }
}

/// CAM training in bf16 mixed precision (`run.precision`): the checkpoint records it, the
/// weights end near the fp32 run's without equalling them, and CAM inference defaults to it.
@Suite struct CAMPrecisionTests {
    @Test func bf16TrainingIsRecordedAndStaysNearFP32() throws {
        let root = NSTemporaryDirectory() + "wsss-cam-bf16-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: root) }
        var data = SyntheticDataset.Options()
        (data.train, data.val, data.test, data.size) = (4, 1, 1, 48)
        try SyntheticDataset.write(to: root, options: data)
        let dataset = try VOCDataset(root: root, split: "train", classes: SyntheticDataset.classes)
        var options = CAMTrainingOptions()
        (options.iterations, options.batchSize, options.cropSize, options.widthDivisor) = (3, 2, 32, 16)
        options.learningRate = 0.001
        var runs: [CAMNetwork] = []
        for precision in [ComputePrecision.fp32, .bf16] {
            options.precision = precision
            let out = root + "/cam-\(precision)"
            try CAMTraining.train(dataset: dataset, options: options, outDirectory: out)
            let (model, reloaded, _) = try CAMTraining.load(out + "/cam_final.h5")
            #expect(reloaded.precision == precision)
            runs.append(model)
        }
        var (largest, difference) = (Float(0), Float(0))
        for ((_, a), (_, b)) in zip(runs[0].stateDict(), runs[1].stateDict()) {
            var d: Float = 0
            for (x, y) in zip(a.scalars, b.scalars) { (largest, d) = (max(largest, abs(x)), max(d, abs(x - y))) }
            difference = max(difference, d)
        }
        #expect(difference > 0 && difference < 2e-2 * largest, "weights differ by \(difference) of \(largest)")
    }
}
