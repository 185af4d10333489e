import Autograd
import Foundation
import Protobuf

/// The original DeepLab Caffe weights read directly, under our names: `init.caffemodel` (the
/// COCO-initialised ResNet-101 every DeepLab-v2 VOC run starts from, which deeplab-pytorch converts
/// to `deeplabv1_resnet101-coco.pth`) and the trained `train2_iter_20000.caffemodel`. The names and
/// values are those `scripts/convert_weights.py caffe` writes (deeplab-pytorch's `convert.py`
/// followed by our names):
///
/// - `conv1` → `conv1`; `bn_conv1` + `scale_conv1` → `bn1`;
/// - `res{S}{B}_branch2a|2b|2c` → `layer{S-1}.{b}.conv1|2|3`, `bn…`/`scale…` → `bn1|2|3`, and
///   `…_branch1` → `downsample.0|1`, where B is `a, b, c, …` (ResNet-50) or `a, b1, b2, …`
///   (ResNet-101) and b its 0-based index;
/// - `fc1_<name>_cK` → `aspp.cK`; any other `fc*` layer (DeepLab-v1's classifier) is dropped;
///   layers named `*res075*` / `*res05*` (the MSC branches' copies of the shared weights) are skipped;
/// - a BatchNorm layer's blobs (mean·f, var·f, f) give `running_mean`/`running_var` divided by
///   Caffe's moving-average factor f (0 when f is 0, as Caffe does), its eps must be 1e-5 (our
///   batch norm's), and the Scale layer right after it gives `weight` and `bias`;
///   `num_batches_tracked` is 0.
///
/// Only the NetParameter `layer` field (Caffe since 2015, DeepLab-v2's files) is read; a file in
/// the V1 `layers` format is refused with what to do. The file is parsed once; a tensor's values
/// are decoded when it is read.
public struct CaffeInitialWeights {
    public let path: String
    /// Our names, in the file's layer order.
    public let names: [String]
    /// Shapes by our name.
    public let shapes: [String: [Int]]
    private let sources: [String: Source]

    /// Where one of our tensors comes from.
    private enum Source {
        case blob(Blob)
        /// A BatchNorm statistic: the blob divided by the moving-average factor.
        case divided(Blob, factor: Double)
        /// `num_batches_tracked`.
        case zero
    }

    /// One BlobProto: its shape and its still-encoded values.
    private struct Blob {
        var shape: [Int]
        var count: Int
        var data: [ProtobufField]
        var isDouble: Bool

        func values(divisor: Double? = nil) throws -> [Float] {
            var out: [Float] = []
            out.reserveCapacity(count)
            let scale = divisor.map { $0 == 0 ? 0 : 1 / $0 }
            for field in data {
                switch field.value {
                case .lengthDelimited(let bytes):
                    let width = isDouble ? 8 : 4
                    guard bytes.count % width == 0 else {
                        throw ProtobufDecodingError(reason: "packed values of \(bytes.count) bytes")
                    }
                    var i = bytes.startIndex
                    while i < bytes.endIndex {
                        var bits: UInt64 = 0
                        for k in 0..<width { bits |= UInt64(bytes[i + k]) << (8 * UInt64(k)) }
                        out.append(Self.value(bits, isDouble: isDouble, scale: scale))
                        i += width
                    }
                case .fixed32(let bits): out.append(Self.value(UInt64(bits), isDouble: false, scale: scale))
                case .fixed64(let bits): out.append(Self.value(bits, isDouble: true, scale: scale))
                case .varint: throw ProtobufDecodingError(reason: "blob values stored as varints")
                }
            }
            return out
        }

        /// A stored float or double, divided in double precision as the converter divides.
        private static func value(_ bits: UInt64, isDouble: Bool, scale: Double?) -> Float {
            let v = isDouble ? Double(bitPattern: bits) : Double(Float(bitPattern: UInt32(truncatingIfNeeded: bits)))
            return Float(scale.map { v * $0 } ?? v)
        }
    }

    /// Whether `path` names a Caffe model (by its `.caffemodel` extension: protobuf has no magic bytes).
    public static func isCaffeModel(_ path: String) -> Bool { path.lowercased().hasSuffix(".caffemodel") }

    /// Parses `path` and maps its layers.
    /// - Throws: `CheckpointError.notInitialWeights` naming the file and the layer for anything
    ///   that is not a readable DeepLab ResNet caffemodel.
    public init(path: String) throws {
        self.path = path
        func refuse(_ reason: String) -> CheckpointError { .notInitialWeights(path: path, reason: reason) }
        let bytes: [UInt8]
        do {
            bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path), options: .mappedIfSafe))
        } catch {
            throw refuse("cannot be read (\((error as NSError).localizedFailureReason ?? error.localizedDescription))")
        }
        let layers: [[ProtobufField]]
        do {
            let net = try ProtobufField.decode(bytes[...])
            layers = try net.filter { $0.number == 100 }.map { try $0.message() }
            if layers.isEmpty {
                throw refuse(
                    net.contains { $0.number == 2 }
                        ? "a Caffe model in the V1 'layers' format; upgrade it with Caffe's upgrade_net_proto_binary"
                        : "not a Caffe model (no NetParameter.layer)")
            }
        } catch let error as ProtobufDecodingError {
            throw refuse("not a Caffe model, or a truncated one (\(error.reason))")
        }
        var table = Table()
        do {
            for layer in layers { try table.add(Layer(layer)) }
            try table.finish()
        } catch let error as LayerError {
            throw refuse(error.reason)
        } catch let error as ProtobufDecodingError {
            throw refuse("not a Caffe model, or a truncated one (\(error.reason))")
        }
        self.names = table.names
        self.shapes = table.shapes
        self.sources = table.sources
    }

    /// One tensor under our name, as Float32.
    /// - Throws: `CheckpointError.notInitialWeights` for a name that is not in `names` or a blob
    ///   whose values cannot be decoded.
    public func tensor(named name: String) throws -> Tensor {
        guard let source = sources[name], let shape = shapes[name] else {
            throw CheckpointError.notInitialWeights(path: path, reason: "no tensor '\(name)'")
        }
        do {
            switch source {
            case .zero: return Tensor(zeros: [])
            case .blob(let blob): return Tensor(shape: shape, values: try blob.values())
            case .divided(let blob, let factor): return Tensor(shape: shape, values: try blob.values(divisor: factor))
            }
        } catch let error as ProtobufDecodingError {
            throw CheckpointError.notInitialWeights(path: path, reason: "\(name): \(error.reason)")
        }
    }

    // MARK: Layers

    private struct LayerError: Error {
        let reason: String
    }

    /// The fields of one LayerParameter we read.
    private struct Layer {
        var name = ""
        var type = ""
        var blobs: [Blob] = []
        var eps: Float = 1e-5

        init(_ fields: [ProtobufField]) throws {
            for field in fields {
                switch field.number {
                case 1: name = try field.string()
                case 2: type = try field.string()
                case 7: blobs.append(try Self.blob(try field.message(), layer: name))
                case 139:
                    for parameter in try field.message() where parameter.number == 3 { eps = try parameter.float() }
                default: continue
                }
            }
        }

        /// A BlobProto: shape (7) or the legacy num/channels/height/width (1–4), data (5) or double_data (8).
        static func blob(_ fields: [ProtobufField], layer: String) throws -> Blob {
            var shape: [Int]?
            var legacy = [0, 0, 0, 0]
            var floats: [ProtobufField] = []
            var doubles: [ProtobufField] = []
            for field in fields {
                switch field.number {
                case 7:
                    var dims: [Int] = []
                    for dim in try field.message() where dim.number == 1 {
                        switch dim.value {
                        case .lengthDelimited:
                            for value in try ProtobufField.varints(try dim.bytes()) { dims.append(Int(Int64(bitPattern: value))) }
                        default: dims.append(Int(try dim.int64()))
                        }
                    }
                    shape = dims
                case 1...4: legacy[field.number - 1] = Int(Int32(truncatingIfNeeded: try field.int64()))
                case 5: floats.append(field)
                case 8: doubles.append(field)
                default: continue
                }
            }
            let dims = shape ?? legacy
            guard dims.allSatisfy({ $0 >= 0 && $0 < 1 << 31 }) else {
                throw LayerError(reason: "layer '\(layer)': a blob of shape \(dims)")
            }
            let isDouble = floats.isEmpty && !doubles.isEmpty
            let blob = Blob(shape: dims, count: dims.reduce(1, *), data: isDouble ? doubles : floats, isDouble: isDouble)
            let stored = try blob.data.reduce(0) { total, field -> Int in
                switch field.value {
                case .lengthDelimited(let bytes): return total + bytes.count / (isDouble ? 8 : 4)
                case .fixed32, .fixed64: return total + 1
                case .varint: throw LayerError(reason: "layer '\(layer)': blob values stored as varints")
                }
            }
            guard stored == blob.count else {
                throw LayerError(reason: "layer '\(layer)': a blob of shape \(dims) holds \(stored) values")
            }
            return blob
        }
    }

    /// Our tensors as the layers are read, in order.
    private struct Table {
        var names: [String] = []
        var shapes: [String: [Int]] = [:]
        var sources: [String: Source] = [:]
        /// The module of the BatchNorm just read, waiting for its Scale.
        var pendingNorm: (layer: String, module: String)?

        mutating func put(_ name: String, _ shape: [Int], _ source: Source, layer: String) throws {
            guard shapes[name] == nil else { throw LayerError(reason: "layer '\(layer)': a second '\(name)'") }
            names.append(name)
            shapes[name] = shape
            sources[name] = source
        }

        mutating func add(_ layer: Layer) throws {
            defer { if layer.type != "BatchNorm" { pendingNorm = nil } }
            if layer.name.contains("res075") || layer.name.contains("res05") || layer.blobs.isEmpty {
                if let norm = pendingNorm, layer.type != "BatchNorm" {
                    throw LayerError(reason: "BatchNorm layer '\(norm.layer)' is not followed by its Scale layer")
                }
                return
            }
            guard let module = CaffeInitialWeights.moduleName(layer.name) else {
                throw LayerError(reason: "layer '\(layer.name)' (\(layer.type)) is not a DeepLab ResNet layer")
            }
            if let norm = pendingNorm, layer.type != "Scale" {
                throw LayerError(reason: "BatchNorm layer '\(norm.layer)' is not followed by its Scale layer")
            }
            if module.isEmpty { return }
            let b = layer.blobs
            switch layer.type {
            case "Convolution":
                guard b[0].shape.count == 4, b.count <= 2 else {
                    throw LayerError(
                        reason: "Convolution layer '\(layer.name)': \(b.count) blobs, the first of shape \(b[0].shape)")
                }
                try put(module + ".weight", b[0].shape, .blob(b[0]), layer: layer.name)
                if b.count == 2 { try put(module + ".bias", [b[1].count], .blob(b[1]), layer: layer.name) }
            case "BatchNorm":
                guard b.count == 3, b[2].count == 1, b[0].count == b[1].count else {
                    throw LayerError(
                        reason: "BatchNorm layer '\(layer.name)': blobs of shapes \(b.map(\.shape)), expected [C], [C], [1]")
                }
                guard layer.eps == Float(1e-5) else {
                    throw LayerError(reason: "BatchNorm layer '\(layer.name)' has eps \(layer.eps); our batch norm uses 1e-5")
                }
                let factor = Double(try b[2].values()[0])
                try put(module + ".running_mean", [b[0].count], .divided(b[0], factor: factor), layer: layer.name)
                try put(module + ".running_var", [b[1].count], .divided(b[1], factor: factor), layer: layer.name)
                try put(module + ".num_batches_tracked", [], .zero, layer: layer.name)
                pendingNorm = (layer.name, module)
            case "Scale":
                guard let norm = pendingNorm, norm.module == module else {
                    throw LayerError(reason: "Scale layer '\(layer.name)' does not follow its BatchNorm layer")
                }
                guard b.count == 2, b[0].count == b[1].count, b[0].count == shapes[module + ".running_mean"]?.first else {
                    throw LayerError(
                        reason: "Scale layer '\(layer.name)': blobs of shapes \(b.map(\.shape)) for BatchNorm '\(norm.layer)'")
                }
                try put(module + ".weight", [b[0].count], .blob(b[0]), layer: layer.name)
                try put(module + ".bias", [b[1].count], .blob(b[1]), layer: layer.name)
            default:
                throw LayerError(reason: "layer '\(layer.name)' has type \(layer.type)")
            }
        }

        func finish() throws {
            if let norm = pendingNorm {
                throw LayerError(reason: "BatchNorm layer '\(norm.layer)' is not followed by its Scale layer")
            }
        }
    }

    // MARK: Names

    /// Our module name for a Caffe layer name: "" for a layer that is dropped (`fc*` other than
    /// `fc1_<name>_cK`), nil for one the mapping does not know.
    public static func moduleName(_ layer: String) -> String? {
        if layer == "conv1" { return "conv1" }
        if layer == "bn_conv1" || layer == "scale_conv1" { return "bn1" }
        if layer.hasPrefix("fc") {
            let parts = layer.split(separator: "_", omittingEmptySubsequences: false)
            if parts.count >= 3, let last = parts.last, last.count == 2, last.first == "c", let k = last.last?.wholeNumberValue,
                parts[0].dropFirst(2).allSatisfy({ $0.isASCII && $0.isNumber })
            {
                return "aspp.c\(k)"
            }
            return ""
        }
        guard let underscore = layer.firstIndex(of: "_") else { return nil }
        let unit = layer[..<underscore]
        let branch = layer[layer.index(after: underscore)...]
        let kind = ["res", "bn", "scale"].first { unit.hasPrefix($0) }
        guard let kind, let part = ["branch1": 0, "branch2a": 1, "branch2b": 2, "branch2c": 3][String(branch)] else { return nil }
        let rest = unit.dropFirst(kind.count)
        guard let stage = rest.first?.wholeNumberValue, let block = Self.blockIndex(rest.dropFirst()) else { return nil }
        let base = "layer\(stage - 1).\(block)"
        if part == 0 { return "\(base).downsample.\(kind == "res" ? 0 : 1)" }
        return "\(base).\(kind == "res" ? "conv" : "bn")\(part)"
    }

    /// `a, b, c, …` → 0, 1, 2, …; `b1, b2, …` → 1, 2, …
    private static func blockIndex(_ text: Substring) -> Int? {
        guard let letter = text.first, letter.isASCII, letter.isLowercase else { return nil }
        let digits = text.dropFirst()
        if digits.isEmpty { return Int(letter.asciiValue! - Character("a").asciiValue!) }
        guard letter == "b", digits.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        return Int(digits)
    }
}
