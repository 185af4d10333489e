import Autograd
import Foundation
import Layers
import Protobuf
import Testing

@testable import Checkpoints

/// DeepLab's original `.caffemodel` read directly. `convert_weights.py self-test --init-fixtures`
/// writes `deeplab_caffe_r50.caffemodel` from `deeplab_pytorch_r50.h5`'s tensors in DeepLab's caffe
/// layout and checks that its own `caffe` conversion gives them back, so that HDF5 file is the
/// reference here too. The arithmetic a real file needs (a moving-average factor that is not a
/// power of two, legacy shapes, double data) is checked on small models written here.
@Suite struct CaffeInitialWeightsTests {
    static let fixtures = TorchInitialWeightsTests.fixtures
    static let caffemodel = fixtures + "/init/deeplab_caffe_r50.caffemodel"
    static let converted = fixtures + "/init/deeplab_pytorch_r50.h5"

    @Test func caffemodelEqualsTheConvertersOutputTensorForTensor() throws {
        let weights = try CaffeInitialWeights(path: Self.caffemodel)
        let expected = try TorchInitialWeightsTests.converted(Self.converted)
        #expect(Set(weights.names) == Set(expected.keys))
        #expect(weights.names.count == expected.count, "no name twice")
        for name in weights.names {
            let value = try weights.tensor(named: name)
            let reference = try #require(expected[name], "\(name) not in the converter's output")
            #expect(value.shape == reference.shape && weights.shapes[name] == reference.shape, "\(name)")
            #expect(value.scalars == reference.scalars, "\(name) differs from the converter's")
        }
        // The res075 copy of conv1 (other values) was skipped, not read over conv1.
        #expect(weights.names.filter { $0 == "conv1.weight" }.count == 1)
    }

    @Test func caffemodelInitialisesAModelAsTheConvertedFileDoes() throws {
        #expect(CaffeInitialWeights.isCaffeModel(Self.caffemodel) && !CaffeInitialWeights.isCaffeModel(Self.converted))
        let fromCaffe = TorchInitialWeightsTests.deepLab(seed: 1), fromH5 = TorchInitialWeightsTests.deepLab(seed: 2)
        let a = try Checkpoint.initialize(fromCaffe, from: Self.caffemodel)
        let b = try Checkpoint.initialize(fromH5, from: Self.converted)
        #expect(a == b && a.keptFresh.isEmpty && a.ignored.isEmpty)
        for ((name, x), (_, y)) in zip(fromCaffe.stateDict(), fromH5.stateDict()) { #expect(x.scalars == y.scalars, "\(name)") }
    }

    @Test func layerNamesMapAsTheConverterMapsThem() {
        let cases: [(String, String?)] = [
            ("conv1", "conv1"), ("bn_conv1", "bn1"), ("scale_conv1", "bn1"),
            ("res2a_branch1", "layer1.0.downsample.0"), ("bn2a_branch1", "layer1.0.downsample.1"),
            ("scale3d_branch2b", "layer2.3.bn2"), ("res4b22_branch2c", "layer3.22.conv3"),
            ("res4a_branch2a", "layer3.0.conv1"), ("res5c_branch2a", "layer4.2.conv1"), ("bn4b1_branch2a", "layer3.1.bn1"),
            ("fc1_voc12_c3", "aspp.c3"), ("fc1_c0", ""), ("fc8", ""),
            ("res4c1_branch2a", nil), ("res2a_branch3", nil), ("data", nil), ("resXa_branch1", nil), ("res4B_branch1", nil),
        ]
        for (layer, ours) in cases { #expect(CaffeInitialWeights.moduleName(layer) == ours, "\(layer)") }
    }

    // MARK: Small files written here

    /// One layer: name, type, blobs as (shape, values), BatchNorm eps.
    struct Layer {
        var name: String
        var type: String
        var blobs: [([Int], [Float])] = []
        var eps: Float?
        var legacyShape = false
        var double = false
    }

    static func write(_ layers: [Layer], v1: Bool = false) throws -> String {
        var net = ProtobufWriter()
        net.string(1, "test")
        for layer in layers {
            net.message(v1 ? 2 : 100) { l in
                l.string(1, layer.name)
                l.string(2, layer.type)
                for (shape, values) in layer.blobs {
                    l.message(7) { b in
                        if layer.legacyShape {
                            let dims = Array(repeating: 1, count: 4 - shape.count) + shape
                            for (k, d) in dims.enumerated() { b.varint(k + 1, UInt64(d)) }
                        }
                        var packed: [UInt8] = []
                        for v in values {
                            if layer.double {
                                withUnsafeBytes(of: Double(v).bitPattern.littleEndian) { packed += $0 }
                            } else {
                                withUnsafeBytes(of: v.bitPattern.littleEndian) { packed += $0 }
                            }
                        }
                        b.bytes(layer.double ? 8 : 5, packed)
                        if !layer.legacyShape {
                            // Packed, as caffe writes it: the varints without their keys.
                            b.message(7) { $0.bytes(1, Self.varintPayload(shape)) }
                        }
                    }
                }
                if let eps = layer.eps { l.message(139) { $0.float(3, eps) } }
            }
        }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("caffe-\(UUID().uuidString).caffemodel").path
        try Data(net.bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    static func varintPayload(_ values: [Int]) -> [UInt8] {
        var out: [UInt8] = []
        for value in values {
            var v = UInt64(value)
            while v >= 0x80 {
                out.append(UInt8(v & 0x7F) | 0x80)
                v >>= 7
            }
            out.append(UInt8(v))
        }
        return out
    }

    static let mean: [Float] = [0.25, -1.5, 3.0]
    static let variance: [Float] = [0.5, 2.0, 7.25]

    static func stem(factor: Float = 999.982, eps: Float? = nil, scale: Bool = true, relu: Bool = false) -> [Layer] {
        var layers = [
            Layer(name: "conv1", type: "Convolution", blobs: [([3, 2, 1, 1], [1, 2, 3, 4, 5, 6])]),
            Layer(
                name: "bn_conv1", type: "BatchNorm",
                blobs: [([3], mean.map { $0 * factor }), ([3], variance.map { $0 * factor }), ([1], [factor])], eps: eps),
        ]
        if relu { layers.append(Layer(name: "conv1_relu", type: "ReLU")) }
        if scale { layers.append(Layer(name: "scale_conv1", type: "Scale", blobs: [([3], [1, 2, 3]), ([3], [-1, 0, 1])])) }
        return layers
    }

    @Test func batchNormStatisticsAreDividedByTheMovingAverageFactorInDouble() throws {
        let path = try Self.write(Self.stem())
        defer { try? FileManager.default.removeItem(atPath: path) }
        let weights = try CaffeInitialWeights(path: path)
        #expect(
            weights.names == [
                "conv1.weight", "bn1.running_mean", "bn1.running_var", "bn1.num_batches_tracked", "bn1.weight", "bn1.bias",
            ])
        let factor = Double(Float(999.982))
        let mean = try weights.tensor(named: "bn1.running_mean").scalars
        #expect(mean == Self.mean.map { Float(Double($0 * Float(999.982)) / factor) })
        #expect(try weights.tensor(named: "bn1.num_batches_tracked").scalars == [0])
        #expect(try weights.tensor(named: "conv1.weight").shape == [3, 2, 1, 1])
        // A factor of 0 gives zero statistics, as Caffe computes them.
        let zero = try Self.write(Self.stem(factor: 0))
        defer { try? FileManager.default.removeItem(atPath: zero) }
        #expect(try CaffeInitialWeights(path: zero).tensor(named: "bn1.running_var").scalars == [0, 0, 0])
    }

    @Test func legacyShapesAndDoubleDataAreRead() throws {
        var layers = Self.stem(factor: 1)
        layers[0].legacyShape = true
        layers[2].double = true
        let path = try Self.write(layers)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let weights = try CaffeInitialWeights(path: path)
        #expect(try weights.tensor(named: "conv1.weight").shape == [3, 2, 1, 1])
        #expect(try weights.tensor(named: "conv1.weight").scalars == [1, 2, 3, 4, 5, 6])
        #expect(try weights.tensor(named: "bn1.weight").scalars == [1, 2, 3])
    }

    @Test func badFilesAreRefusedNamingFileAndLayer() throws {
        func refusal(_ layers: [Layer], v1: Bool = false) throws -> String {
            let path = try Self.write(layers, v1: v1)
            defer { try? FileManager.default.removeItem(atPath: path) }
            do {
                _ = try CaffeInitialWeights(path: path)
                return "accepted"
            } catch {
                #expect(error.localizedDescription.hasPrefix(path + ":"))
                return error.localizedDescription
            }
        }
        #expect(try refusal(Self.stem(eps: 1e-3)).contains("'bn_conv1' has eps 0.001"))
        #expect(try refusal(Self.stem(scale: false)).contains("'bn_conv1' is not followed by its Scale layer"))
        #expect(try refusal(Self.stem(relu: true)).contains("'bn_conv1' is not followed by its Scale layer"))
        #expect(try refusal(Self.stem(), v1: true).contains("V1 'layers' format"))
        #expect(try refusal([Layer(name: "conv1", type: "InnerProduct", blobs: [([2], [1, 2])])]).contains("type InnerProduct"))
        #expect(try refusal([Layer(name: "embed", type: "Convolution", blobs: [([1, 1, 1, 1], [1])])]).contains("'embed'"))
        #expect(
            try refusal([Layer(name: "conv1", type: "Convolution", blobs: [([2, 2, 1, 1], [1, 2, 3])])]).contains(
                "holds 3 values"))

        // Truncated: every prefix of a good file is refused or read, never a crash.
        let good = try Self.write(Self.stem())
        defer { try? FileManager.default.removeItem(atPath: good) }
        let bytes = try Data(contentsOf: URL(fileURLWithPath: good))
        let cut = FileManager.default.temporaryDirectory.appendingPathComponent("caffe-cut-\(UUID().uuidString).caffemodel").path
        defer { try? FileManager.default.removeItem(atPath: cut) }
        var refused = 0
        for length in 1..<bytes.count {
            try bytes.prefix(length).write(to: URL(fileURLWithPath: cut))
            do {
                _ = try CaffeInitialWeights(path: cut)
            } catch {
                #expect(error is CheckpointError && error.localizedDescription.hasPrefix(cut + ":"))
                refused += 1
            }
        }
        #expect(refused >= bytes.count - 3, "only a cut between whole layers can be a valid file")
        // A missing file and an HDF5 file under a .caffemodel name.
        let missing = Self.fixtures + "/no-such.caffemodel"
        #expect { try CaffeInitialWeights(path: missing) } throws: { $0.localizedDescription.hasPrefix(missing + ":") }
    }
}
