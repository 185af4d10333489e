import Autograd
import Foundation
import HDF5
import Imaging
import Layers
import Testing

@testable import Datasets
@testable import Training

/// deeplab-pytorch's VOC protocol, step by step against numbers made from the reference's own
/// functions: scripts/fixtures/make_deeplab_protocol_fixtures.py → Tests/Fixtures/DeepLabProtocol.
@Suite struct DeepLabProtocolTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures")

    static func file() throws -> HDF5File {
        try HDF5File(path: fixtures.appendingPathComponent("DeepLabProtocol/protocol.h5").path, mode: .read)
    }

    static func attribute(_ name: String, on group: String) throws -> Double {
        try #require(try file().requiredAttribute(named: name, on: group).doubleValue)
    }

    /// lr_scheduler.py `PolynomialLR` stepped as main.py does: the rate of each 1-based iteration.
    @Test func polyRateEveryTenIterationsMatchesPolynomialLR() throws {
        let f = try Self.file()
        let iterations = try f.readLabels("/lr/iterations_20000").values.map(Int.init)
        let expected = try f.read("/lr/lr_20000").scalars
        let schedule = PolySchedule(baseLearningRate: 2.5e-4, maxIterations: 20000, power: 0.9, stepSize: 10)
        for (j, lr) in zip(iterations, expected) {
            // Our iterations are 0-based: 1-based iteration j is our j - 1.
            #expect(abs(schedule.learningRate(at: j - 1) - lr) <= 1e-6 * lr, "iteration \(j)")
        }
        let short = try f.read("/lr/lr_95").scalars
        let schedule95 = PolySchedule(baseLearningRate: 2.5e-4, maxIterations: 95, power: 0.9, stepSize: 10)
        for (i, lr) in short.enumerated() {
            #expect(abs(schedule95.learningRate(at: i) - lr) <= 1e-6 * lr, "iteration \(i + 1) of 95")
        }
        // Step 1 is the plain poly rule, every iteration.
        let every = PolySchedule(baseLearningRate: 2.5e-4, maxIterations: 20000, power: 0.9)
        #expect(every.learningRate(at: 11) < schedule.learningRate(at: 11))
    }

    /// PIL's Image.resize(NEAREST), the labels' rule in base.py `_augmentation` and main.py
    /// `resize_labels`: the source index of every output pixel for 133 size pairs.
    @Test func pilNearestIndicesMatchPillow() throws {
        let f = try Self.file()
        let ins = try f.readLabels("/pil_nearest/in").values, outs = try f.readLabels("/pil_nearest/out").values
        let index = try f.readLabels("/pil_nearest/index").values
        var offset = 0
        var torchDiffers = 0
        for (n, m) in zip(ins.map(Int.init), outs.map(Int.init)) {
            let expected = index[offset..<(offset + m)].map(Int.init)
            #expect(ResizeAxis(pilNearestFrom: n, to: m).lower == expected, "\(n) → \(m)")
            if ResizeAxis(nearestFrom: n, to: m).lower != expected { torchDiffers += 1 }
            offset += m
        }
        #expect(offset == index.count)
        // torch's rule (the top-left of each cell) is another one: most shrinking pairs differ.
        #expect(torchDiffers > ins.count / 2)
    }

    /// main.py `resize_labels` as a whole on a batch, and LabelMap's resize with the same rule.
    @Test func resizeLabelsMatchesMainPy() throws {
        let f = try Self.file()
        let labels = try f.readLabels("/pil_nearest/labels")
        for side in [6, 3, 4] {
            let expected = try f.readLabels("/pil_nearest/resized_\(side)")
            #expect(labels.resizedNearest(to: (side, side), rule: .pil) == expected, "\(side)x\(side)")
            let first = LabelMap(width: 41, height: 41, values: labels.values[0..<(41 * 41)].map { UInt8($0) })
            #expect(
                first.resizedNearest(height: side, width: side, rule: .pil).values
                    == expected.values[0..<(side * side)].map { UInt8($0) })
        }
    }

    /// base.py `_augmentation` + `__getitem__` (scale from the set, cv2 INTER_LINEAR image, PIL
    /// NEAREST labels, pad with the mean and 255, crop, flip, mean subtraction) for each scale.
    @Test func augmentationMatchesBasePy() throws {
        let f = try Self.file()
        let (rgb, _) = try f.readBytes("/augment/image_rgb", expectingShape: [23, 31, 3])
        let label = try f.readLabels("/augment/label").values.map { UInt8($0) }
        let crop = Int(try Self.attribute("crop", on: "/augment"))
        let cases = try f.read("/augment/cases").scalars
        let images = try f.read("/augment/images"), labels = try f.readLabels("/augment/labels")
        let augmentation = SegmentationOptions().augmentation
        let (image, labelMap) = (
            Image(width: 31, height: 23, channels: 3, pixels: rgb), LabelMap(width: 31, height: 23, values: label)
        )
        var protocolCrop = augmentation
        protocolCrop.cropSize = crop
        #expect(augmentation.labelResize == .pil && augmentation.sideRounding == .towardZero)
        let plane = 3 * crop * crop
        for k in 0..<5 {
            let c = cases[(6 * k)..<(6 * k + 6)].map(Double.init)
            let (scale, h, w, startH, startW, flip) = (c[0], Int(c[1]), Int(c[2]), Int(c[3]), Int(c[4]), c[5] == 1)
            #expect(augmentation.scale == .choices([0.5, 0.75, 1.0, 1.25, 1.5]))
            #expect(protocolCrop.scaledSize(width: 31, height: 23, factor: scale) == (w, h), "int(side * \(scale))")
            let (outImage, outLabels) = protocolCrop.apply(
                image: image, labels: labelMap, factor: scale, cropOrigin: (startW, startH), mirror: flip)
            let expected = Array(images.scalars[(k * plane)..<((k + 1) * plane)])
            // cv2's float INTER_LINEAR and ours differ by float rounding (≈ 2e-5 on 0…255 values,
            // the fixture's cv2_vs_torch_max_gap), plus normalising before resizing.
            let gap = zip(outImage.values, expected).map { abs($0 - $1) }.max() ?? 0
            #expect(gap < 1e-3, "scale \(scale): image max |difference| \(gap)")
            #expect(
                outLabels.values.map(Int32.init) == Array(labels.values[(k * crop * crop)..<((k + 1) * crop * crop)]),
                "scale \(scale): labels")
        }
    }

    /// random.choice over the set: every scale, each about a fifth of the time, nothing else.
    @Test func scalesAreDrawnFromTheSet() {
        let jitter = ScaleJitter(.choice, scales: [0.5, 0.75, 1.0, 1.25, 1.5])
        var g = SeededGenerator(seed: 3)
        var counts: [Double: Int] = [:]
        for _ in 0..<5000 { counts[jitter.sample(&g), default: 0] += 1 }
        #expect(Set(counts.keys) == [0.5, 0.75, 1.0, 1.25, 1.5])
        #expect(counts.values.allSatisfy { abs($0 - 1000) < 120 }, "\(counts)")
        #expect(ScaleJitter(.uniform, scales: [0.5, 0.75, 1.5]) == .range(0.5, 1.5))
    }

    /// The tiny DeepLab-v2 of models.h5 (scripts/make_model_fixtures.py deeplab()).
    static func tinyModel() throws -> DeepLabV2 {
        let f = try HDF5File(path: fixtures.appendingPathComponent("models.h5").path, mode: .read)
        let flat = try f.read("/deeplab/state").scalars
        let keys = try #require(f.requiredAttribute(named: "state_keys", on: "/deeplab").stringValue).split(separator: "\n").map(
            String.init)
        let shapes = try #require(f.requiredAttribute(named: "state_shapes", on: "/deeplab").stringValue)
            .split(separator: "\n", omittingEmptySubsequences: false).map { $0.split(separator: ",").map { Int($0)! } }
        var state: [String: Tensor] = [:]
        var offset = 0
        for (key, shape) in zip(keys, shapes) {
            state[key] = Tensor(shape: shape, values: Array(flat[offset..<(offset + shape.product)]))
            offset += shape.product
        }
        let model = DeepLabV2(classes: 5, backbone: ResNetConfiguration.deepLabV2.narrowed(by: 32))
        let ours = model.stateDict()
        #expect(Set(ours.map(\.name)) == Set(state.keys))
        for (name, tensor) in ours { if let value = state[name] { tensor.assign(from: value) } }
        return model
    }

    /// main.py `test`: the MSC model in eval mode (max-fused logits), bilinear to the image size,
    /// softmax, argmax — what `predict(msc: true)` scores.
    @Test func mscEvaluationMatchesMainPyTest() throws {
        let f = try Self.file()
        let model = try Self.tinyModel()
        model.train(false)
        let (rgb, _) = try f.readBytes("/msc/image_rgb", expectingShape: [45, 57, 3])
        let image = Image(width: 57, height: 45, channels: 3, pixels: rgb)
        let planar = Preprocessing.caffe.normalize(image)
        let fused = withoutGrad { model.multiScale(Tensor(shape: [1, 3, 45, 57], values: planar.values)).fused }
        let expectedFused = try f.read("/msc/fused")
        #expect(fused.shape == [1] + expectedFused.shape)
        let fusedGap = zip(fused.scalars, expectedFused.scalars).map { abs($0 - $1) }.max() ?? 0
        #expect(fusedGap < 1e-4, "fused logits max |difference| \(fusedGap)")
        let result = SegmentationTraining.predict(model: model, image: image, preprocessing: .caffe, msc: true)
        let probabilities = try f.read("/msc/probs")
        let gap = zip(result.scores.scalars, probabilities.scalars).map { abs($0 - $1) }.max() ?? 0
        #expect(result.scores.shape == probabilities.shape && gap < 1e-5, "probabilities max |difference| \(gap)")
        // Labels wherever the reference's top two classes are apart (float32 vs float64 ties).
        let labels = try f.readLabels("/msc/labels").values
        let (classes, pixels) = (5, 45 * 57)
        var compared = 0
        for p in 0..<pixels {
            let column = (0..<classes).map { probabilities.scalars[$0 * pixels + p] }.sorted(by: >)
            guard column[0] - column[1] > 1e-3 else { continue }
            compared += 1
            #expect(Int32(result.labels.values[p]) == labels[p], "pixel \(p)")
        }
        #expect(compared > pixels * 9 / 10 && Set(labels).count > 1)
        // Single-scale logits are another prediction.
        let single = SegmentationTraining.predict(model: model, image: image, preprocessing: .caffe, msc: false)
        #expect(single.scores.scalars != result.scores.scalars)
    }

    /// main.py `train`'s loss: cross-entropy on each MSC output with resize_labels (PIL NEAREST)
    /// labels, summed, frozen BN.
    @Test func mscTrainingLossMatchesMainPyTrain() throws {
        let f = try Self.file()
        let model = try Self.tinyModel()
        model.train()
        let batch = Batch(images: try f.read("/msc/train_x"), labels: try f.readLabels("/msc/train_labels"), ids: ["a", "b"])
        let expected = try Self.attribute("train_loss", on: "/msc")
        let loss = withoutGrad { SegmentationTraining.lossOf(model: model, batch: batch, msc: true, labelResize: .pil).item }
        #expect(abs(Double(loss) - expected) < 1e-4 * expected, "loss \(loss) vs \(expected)")
        let torchRule = withoutGrad {
            SegmentationTraining.lossOf(model: model, batch: batch, msc: true, labelResize: .torch).item
        }
        #expect(abs(Double(torchRule) - expected) > 1e-3 * expected, "torch-nearest labels give another loss")
    }
}
