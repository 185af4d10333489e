import Autograd
import Foundation
import HDF5
import Layers
import Testing
import TorchCheckpoint

@testable import Checkpoints

/// Official `.pth` initial weights read directly, checked against what scripts/convert_weights.py
/// makes of the same files: `convert_weights.py self-test --init-fixtures Tests/Fixtures/init`
/// writes a torchvision-style ResNet-18 and a deeplab-pytorch-style DeepLab-v2 ResNet-50 (1/64
/// width, float16-exact values stored float32) and the converter's HDF5 of each.
@Suite struct TorchInitialWeightsTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures").path
    static let torchvision = fixtures + "/init/torchvision_resnet18"
    static let deeplab = fixtures + "/init/deeplab_pytorch_r50"

    /// Every tensor of the converter's HDF5, by name.
    static func converted(_ path: String) throws -> [String: Tensor] {
        let file = try HDF5File(path: path, mode: .read)
        return try Checkpoint.storedTensors(in: file).mapValues { try file.read($0.path) }
    }

    static func expectSameTensors(_ pth: String, _ h5: String, layout: TorchInitialWeights.Layout) throws {
        let weights = try TorchInitialWeights(path: pth)
        #expect(weights.layout == layout)
        let expected = try converted(h5)
        #expect(Set(weights.names) == Set(expected.keys))
        #expect(weights.names.count == expected.count, "no name twice")
        for name in weights.names {
            let value = try weights.tensor(named: name)
            let reference = try #require(expected[name], "\(name) not in the converter's output")
            #expect(value.shape == reference.shape, "\(name)")
            #expect(weights.shapes[name] == reference.shape, "\(name)")
            #expect(value.scalars == reference.scalars, "\(name) differs from the converter's")
        }
    }

    @Test func fileKindIsToldByItsFirstBytes() {
        #expect(TorchInitialWeights.isTorchFile(Self.torchvision + ".pth"))
        #expect(TorchInitialWeights.isTorchFile(Self.fixtures + "/pth/legacy.pth"))
        #expect(!TorchInitialWeights.isTorchFile(Self.torchvision + ".h5"))
        #expect(!TorchInitialWeights.isTorchFile(Self.fixtures + "/no-such-file.pth"))
    }

    @Test func torchvisionPthEqualsTheConvertersOutputTensorForTensor() throws {
        try Self.expectSameTensors(Self.torchvision + ".pth", Self.torchvision + ".h5", layout: .torchvision)
        let weights = try TorchInitialWeights(path: Self.torchvision + ".pth")
        #expect(!weights.names.contains { $0.hasPrefix("fc.") })
        #expect(try weights.tensor(named: "layer2.0.bn1.num_batches_tracked").scalars == [7])
    }

    @Test func deepLabPyTorchPthEqualsTheConvertersOutputTensorForTensor() throws {
        try Self.expectSameTensors(Self.deeplab + ".pth", Self.deeplab + ".h5", layout: .deeplabPyTorch)
        // The file has no num_batches_tracked: one is added per BN, as the converter adds it.
        let weights = try TorchInitialWeights(path: Self.deeplab + ".pth")
        #expect(weights.names.filter { $0.hasSuffix("num_batches_tracked") }.count == 53)
        #expect(weights.shapes["layer3.5.bn3.num_batches_tracked"] == [])
    }

    @Test func deepLabPyTorchNamesMapAsTheConverterMapsThem() {
        let cases: [(String, String?)] = [
            ("layer1.conv1.conv.weight", "conv1.weight"),
            ("base.layer1.conv1.bn.running_var", "bn1.running_var"),
            ("base.layer2.block1.shortcut.conv.weight", "layer1.0.downsample.0.weight"),
            ("layer2.block1.shortcut.bn.num_batches_tracked", "layer1.0.downsample.1.num_batches_tracked"),
            ("layer4.block23.conv3x3.conv.weight", "layer3.22.conv2.weight"),
            ("base.layer5.block3.increase.bn.bias", "layer4.2.bn3.bias"),
            ("layer3.block2.reduce.bn.running_mean", "layer2.1.bn1.running_mean"),
            ("base.aspp.c3.bias", "aspp.c3.bias"),
            ("fc.weight", ""),  // DeepLab-v1's classifier (the COCO init): dropped
            ("layer1.pool.weight", nil),
            ("aspp.c10.weight", nil),
            ("layer12.block1.reduce.conv.weight", nil),
            ("layer2.block1.expand.conv.weight", nil),
        ]
        for (key, ours) in cases { #expect(TorchInitialWeights.deepLabPyTorchName(key) == ours, "\(key)") }
    }

    /// A 2-class DeepLab-v2 ResNet-50 at 1/64 width: the deeplab fixture's shapes.
    static func deepLab(classes: Int = 2, seed: UInt64) -> DeepLabV2 {
        var configuration = ResNetConfiguration.deepLabV2
        configuration.depth = 50
        return DeepLabV2(classes: classes, backbone: configuration.narrowed(by: 64), seed: seed)
    }

    @Test func pthInitialisesAModelAsTheConvertedFileDoes() throws {
        let fromPth = Self.deepLab(seed: 1), fromH5 = Self.deepLab(seed: 2)
        let a = try Checkpoint.initialize(fromPth, from: Self.deeplab + ".pth")
        let b = try Checkpoint.initialize(fromH5, from: Self.deeplab + ".h5")
        #expect(a == b && a.keptFresh.isEmpty && a.ignored.isEmpty)
        for ((name, x), (_, y)) in zip(fromPth.stateDict(), fromH5.stateDict()) { #expect(x.scalars == y.scalars, "\(name)") }
        // init_exclude applies: the ASPP keeps its fresh values.
        let excluded = Self.deepLab(seed: 3)
        let fresh = excluded.aspp.branches[0].weight.scalars
        let report = try Checkpoint.initialize(excluded, from: Self.deeplab + ".pth", exclude: ["aspp.*"])
        #expect(report.keptFresh.count == 8 && report.keptFresh.allSatisfy { $0.hasPrefix("aspp.") })
        #expect(excluded.aspp.branches[0].weight.scalars == fresh)

        // torchvision into the CAM network (as cam.init): every backbone tensor, the classifier fresh.
        var backbone = ResNetConfiguration.camResNet50
        backbone.depth = 18
        let cam = CAMNetwork(classes: 3, backbone: backbone.narrowed(by: 64), seed: 4)
        let camReport = try Checkpoint.initialize(cam, from: Self.torchvision + ".pth", exclude: ["classifier.*"])
        #expect(camReport.keptFresh == ["classifier.weight"] && camReport.ignored.isEmpty)
        let reference = try Self.converted(Self.torchvision + ".h5")
        for (name, tensor) in cam.stateDict() where name != "classifier.weight" {
            #expect(tensor.scalars == reference[name]?.scalars, "\(name)")
        }
    }

    @Test func misfitsAreNamedWithTheFile() throws {
        let path = Self.deeplab + ".pth"
        // A 2-class head into a 21-class model: mis-shaped, named; nothing assigned.
        let model = Self.deepLab(classes: 21, seed: 5)
        let before = model.stateDict().map(\.tensor.scalars)
        #expect {
            try Checkpoint.initialize(model, from: path)
        } throws: { error in
            guard case CheckpointError.mismatch(let p, _, _, let misshaped) = error else { return false }
            return p == path && misshaped.count == 8 && error.localizedDescription.hasPrefix(path + ":")
        }
        #expect(model.stateDict().map(\.tensor.scalars) == before)
        // A .pth of another architecture (SAM) as initial weights: refused, naming the file.
        let sam = Self.fixtures + "/sam/sam_tiny.pth"
        #expect {
            try Checkpoint.initialize(Self.deepLab(seed: 6), from: sam)
        } throws: { error in
            guard case CheckpointError.notInitialWeights(let p, _) = error else { return false }
            return p == sam && error.localizedDescription.hasPrefix(sam + ":")
                && error.localizedDescription.contains("torchvision ResNet")
        }
        // A legacy (pre-1.6) torch file: the reader's own message, naming the file.
        let legacy = Self.fixtures + "/pth/legacy.pth"
        #expect {
            try Checkpoint.initialize(Self.deepLab(seed: 7), from: legacy)
        } throws: { error in
            error.localizedDescription.hasPrefix(legacy + ":")
        }
    }
}
