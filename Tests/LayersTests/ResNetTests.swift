import Autograd
import Foundation
import HDF5
import Testing

@testable import Layers

/// Tests/Fixtures/models.h5, made by scripts/make_model_fixtures.py.
enum ModelFixtures {
    static let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/models.h5").path

    static func file() throws -> HDF5File { try HDF5File(path: path, mode: .read) }

    /// A dict written by put_dict: one flat array with key and shape attributes.
    static func dict(_ group: String, _ name: String) throws -> [String: Tensor] {
        let f = try file()
        let flat = try f.read("\(group)/\(name)")
        let keys = try #require(f.requiredAttribute(named: name + "_keys", on: group).stringValue).split(separator: "\n")
        let shapes = try #require(f.requiredAttribute(named: name + "_shapes", on: group).stringValue)
            .split(separator: "\n", omittingEmptySubsequences: false)
            .map { $0.split(separator: ",").map { Int($0)! } }
        var out: [String: Tensor] = [:]
        var offset = 0
        for (key, shape) in zip(keys, shapes) {
            let n = shape.product
            out[String(key)] = Tensor(shape: shape, values: Array(flat.scalars[offset..<(offset + n)]))
            offset += n
        }
        return out
    }

    /// Loads a state dict into a model, requiring the same key set.
    static func load(_ state: [String: Tensor], into model: Module) {
        let ours = model.stateDict()
        #expect(Set(ours.map(\.name)) == Set(state.keys), "state keys differ")
        for (name, tensor) in ours { if let value = state[name] { tensor.assign(from: value) } }
    }
}

func expectClose(
    _ actual: Tensor?, _ expected: Tensor, tolerance: Double, _ what: String, sourceLocation: SourceLocation = #_sourceLocation
) {
    guard let actual else {
        Issue.record("\(what): missing", sourceLocation: sourceLocation)
        return
    }
    guard actual.shape == expected.shape else {
        Issue.record("\(what): shape \(actual.shape) vs \(expected.shape)", sourceLocation: sourceLocation)
        return
    }
    var diff = 0.0, scale = 0.0
    for (a, b) in zip(actual.scalars, expected.scalars) {
        diff = max(diff, abs(Double(a) - Double(b)))
        scale = max(scale, abs(Double(b)))
    }
    let error = diff / max(scale, 1e-12)
    #expect(error <= tolerance, "\(what): relative error \(error)", sourceLocation: sourceLocation)
}

@Suite struct ResNetTests {
    @Test(arguments: [18, 34, 50, 101])
    func keysEqualTorchvision(depth: Int) throws {
        let reference = try #require(ModelFixtures.file().requiredAttribute(named: "resnet\(depth)", on: "/keys").stringValue)
        var g = SeededGenerator(seed: 0)
        let net = ResNet(ResNetConfiguration(depth: depth, style: .torchvision).narrowed(by: 32), generator: &g)
        #expect(net.stateDict().map(\.name) == reference.split(separator: "\n").map(String.init))
    }

    @Test func outputStridesAndShapes() {
        var g = SeededGenerator(seed: 1)
        let deeplab = ResNet(ResNetConfiguration.deepLabV2.narrowed(by: 32), generator: &g)
        // 321 → 161 (stem conv) → 81 (ceil pool) → 41 (layer2); layer3/4 keep 41: output stride 8.
        let y = withoutGrad { deeplab(Tensor(zeros: [1, 3, 321, 321])) }
        #expect(y.shape == [1, 64, 41, 41])
        #expect(ResNetConfiguration.deepLabV2.outputStride == 8 && ResNetConfiguration.camResNet50.outputStride == 16)
        #expect(ResNetConfiguration.deepLabV2.outputChannels == 2048)
    }

    @Test func frozenBatchNormHasNoTrainableParameters() {
        let model = DeepLabV2(classes: 3, backbone: ResNetConfiguration.deepLabV2.narrowed(by: 32))
        let trainable = model.trainableParameters.map(\.name)
        #expect(!trainable.contains { $0.contains("bn") || $0.contains("downsample.1") })
        #expect(trainable.contains("aspp.c3.bias") && trainable.contains("layer3.22.conv2.weight"))
        #expect(
            model.parameters().count == trainable.count
                + model.parameters().filter { $0.name.contains("bn") || $0.name.contains("downsample.1") }.count)
    }
}

/// Parity: scripts/make_model_fixtures.py, deeplab().
@Suite struct DeepLabV2Tests {
    @Test func matchesPyTorchForwardAndGradients() throws {
        let file = try ModelFixtures.file()
        let model = DeepLabV2(classes: 5, backbone: ResNetConfiguration.deepLabV2.narrowed(by: 32))
        ModelFixtures.load(try ModelFixtures.dict("/deeplab", "state"), into: model)
        model.train()
        let x = try file.read("/deeplab/x")
        let logits = withoutGrad { model(x) }
        expectClose(logits, try file.read("/deeplab/logits"), tolerance: 1e-4, "single-scale logits")
        let msc = model.multiScale(x)
        expectClose(msc.fused.detached(), try file.read("/deeplab/fused"), tolerance: 1e-4, "MSC fused logits")
        // MSC training loss: one cross-entropy per logit map, labels nearest-resized to each.
        let labels = try file.readLabels("/deeplab/labels")
        var loss = Tensor(scalar: 0)
        for map in [msc.full] + msc.scaled + [msc.fused] {
            loss = loss + Tensor.crossEntropy(logits: map, labels: labels.resizedNearest(to: (map.shape[2], map.shape[3])))
        }
        let expectedLoss = try #require(file.requiredAttribute(named: "loss", on: "/deeplab").doubleValue)
        #expect(abs(Double(loss.item) - expectedLoss) < 1e-4 * expectedLoss)
        loss.backward()
        let grads = try ModelFixtures.dict("/deeplab", "grad")
        #expect(Set(model.trainableParameters.map(\.name)) == Set(grads.keys))
        for (name, parameter) in model.trainableParameters {
            expectClose(parameter.grad, grads[name]!, tolerance: 1e-3, "grad \(name)")
        }
    }
}

/// Parity: scripts/make_model_fixtures.py, cam().
@Suite struct CAMNetworkTests {
    func model() throws -> CAMNetwork {
        var configuration = ResNetConfiguration.camResNet50.narrowed(by: 32)
        configuration.frozenBN = false
        let model = CAMNetwork(classes: 4, backbone: configuration)
        ModelFixtures.load(try ModelFixtures.dict("/cam", "state"), into: model)
        return model
    }

    @Test func multiScaleCAMsMatchPyTorch() throws {
        let model = try model()
        model.train(false)
        let cams = model.multiScaleActivationMaps(try ModelFixtures.file().read("/cam/image"))
        expectClose(cams, try ModelFixtures.file().read("/cam/cams"), tolerance: 1e-4, "multi-scale CAMs")
    }

    @Test func trainingStepMatchesPyTorch() throws {
        let file = try ModelFixtures.file()
        let model = try model()
        model.train()
        let logits = model(try file.read("/cam/x"))
        expectClose(logits.detached(), try file.read("/cam/logits"), tolerance: 1e-4, "logits")
        let loss = Tensor.multiLabelSoftMarginLoss(logits: logits, targets: try file.read("/cam/targets"))
        loss.backward()
        let grads = try ModelFixtures.dict("/cam", "grad")
        #expect(Set(model.trainableParameters.map(\.name)) == Set(grads.keys))
        for (name, parameter) in model.trainableParameters {
            expectClose(parameter.grad, grads[name]!, tolerance: 1e-3, "grad \(name)")
        }
        let after = try ModelFixtures.dict("/cam", "state_after")
        for (name, buffer) in model.buffers() {
            expectClose(buffer, after[name]!, tolerance: 1e-5, "buffer \(name)")
        }
    }
}
