import Autograd
import Foundation
import TorchCheckpoint

/// Official PyTorch initial weights read directly, under our names: torchvision's ImageNet
/// ResNets (`resnet50-0676ba61.pth`, `resnet101-63fe2227.pth`, …) and kazuto1011/deeplab-pytorch's
/// DeepLab weights converted from caffe (`deeplabv1_resnet101-coco.pth`,
/// `deeplabv2_resnet101_msc-vocaug.pth`). The names are mapped exactly as
/// `scripts/convert_weights.py torchvision` / `deeplab` map them, so a `.pth` initialises a model
/// as that script's HDF5 of it does:
///
/// - torchvision: names kept, `fc.*` (the ImageNet classifier) dropped;
/// - deeplab-pytorch (recognised by its `[base.]layer1.conv1.{conv,bn}` or `layerL.blockB.` keys):
///   `[base.]layer1.conv1.conv|bn.*` → `conv1.*` / `bn1.*`;
///   `[base.]layerL.blockB.reduce|conv3x3|increase.conv|bn.*` → `layer{L-1}.{B-1}.conv1..3` / `bn1..3`;
///   `[base.]layerL.blockB.shortcut.conv|bn.*` → `layer{L-1}.{B-1}.downsample.0|1.*`;
///   `[base.]aspp.cK.weight|bias` kept; `[base.]fc.*` (DeepLab-v1's classifier, the COCO init's)
///   dropped; BN tensors as they are (their caffe Scale is already folded in); a
///   `num_batches_tracked` (0) added for each BN that has `running_mean` but not it. Any other
///   key refuses the file.
///
/// Anything else (SAM, Grounding DINO, an unrelated state dict) is refused naming the file.
public struct TorchInitialWeights {
    /// Whose names the file uses.
    public enum Layout: String, Sendable {
        case torchvision
        case deeplabPyTorch = "deeplab-pytorch"
    }

    public let path: String
    public let layout: Layout
    /// Our names, in the file's order (the added `num_batches_tracked` after the rest).
    public let names: [String]
    /// Shapes by our name.
    public let shapes: [String: [Int]]
    /// The file's key for each of our names; nil for an added `num_batches_tracked`.
    private let sources: [String: String?]
    private let checkpoint: TorchCheckpoint

    /// Whether `path` is a `torch.save` file rather than an HDF5 one, by its first bytes: a zip
    /// archive (`PK\3\4`, PyTorch ≥ 1.6) or a bare pickle (`\x80`, the legacy format, which
    /// `TorchCheckpoint` then refuses with its own message). `false` for HDF5 (`\x89HDF`), for
    /// anything else, and for a file that cannot be read (the HDF5 reader names the problem).
    public static func isTorchFile(_ path: String) -> Bool {
        guard let handle = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? handle.close() }
        let head = [UInt8]((try? handle.read(upToCount: 4)) ?? Data())
        return head == [0x50, 0x4B, 0x03, 0x04] || head.first == 0x80
    }

    /// Opens `path` and maps its names; no tensor data is read.
    /// - Throws: `TorchCheckpointError` for a file that is not a readable state dict;
    ///   `CheckpointError.notInitialWeights` for one of another kind (e.g. SAM) or with a key the
    ///   deeplab-pytorch mapping does not know.
    public init(path: String) throws {
        let checkpoint = try TorchCheckpoint(path: path)
        let keys = checkpoint.tensorNames
        let layout: Layout
        if keys.contains(where: { Self.isDeepLabPyTorchKey($0) }) {
            layout = .deeplabPyTorch
        } else if keys.contains("conv1.weight") && keys.contains(where: { $0.hasPrefix("layer1.0.") }) {
            layout = .torchvision
        } else {
            let shown = keys.prefix(4).joined(separator: ", ") + (keys.count > 4 ? ", … (\(keys.count) tensors)" : "")
            throw CheckpointError.notInitialWeights(
                path: path,
                reason:
                    "neither a torchvision ResNet (conv1.weight, layer1.0.*) nor a deeplab-pytorch DeepLab ([base.]layer1.conv1.conv.*, layerL.blockB.*) state dict; its keys: \(shown.isEmpty ? "none" : shown)"
            )
        }
        var names: [String] = []
        var sources: [String: String?] = [:]
        var shapes: [String: [Int]] = [:]
        let stored = checkpoint.tensorShapes
        for key in keys {
            let ours: String?
            switch layout {
            case .torchvision: ours = key.hasPrefix("fc.") ? nil : key
            case .deeplabPyTorch:
                guard let mapped = Self.deepLabPyTorchName(key) else {
                    throw CheckpointError.notInitialWeights(
                        path: path, reason: "'\(key)' is not a deeplab-pytorch DeepLab-v2 key")
                }
                ours = mapped.isEmpty ? nil : mapped
            }
            guard let ours else { continue }
            names.append(ours)
            sources[ours] = .some(key)
            shapes[ours] = stored[key]
        }
        if layout == .deeplabPyTorch {
            for name in names where name.hasSuffix(".running_mean") {
                let counter = String(name.dropLast("running_mean".count)) + "num_batches_tracked"
                guard sources[counter] == nil else { continue }
                names.append(counter)
                sources[counter] = .some(nil)
                shapes[counter] = []
            }
        }
        self.path = path
        self.layout = layout
        self.names = names
        self.sources = sources
        self.shapes = shapes
        self.checkpoint = checkpoint
    }

    /// One tensor under our name, as Float32 (integers such as `num_batches_tracked` converted).
    /// - Throws: `TorchCheckpointError.missingTensor` for a name that is not in `names`.
    public func tensor(named name: String) throws -> Tensor {
        guard let source = sources[name] else { throw TorchCheckpointError.missingTensor(path: path, name: name) }
        guard let source else { return Tensor(zeros: []) }
        return try checkpoint.tensor(named: source)
    }

    /// Our name for a deeplab-pytorch key: "" for a key that is dropped (`fc.*`), nil for one the
    /// mapping does not know.
    public static func deepLabPyTorchName(_ key: String) -> String? {
        let k = key.hasPrefix("base.") ? String(key.dropFirst(5)) : key
        let parts = k.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        if parts.first == "fc" { return parts.count >= 2 ? "" : nil }
        // layer1.conv1.{conv,bn}.<leaf>
        if parts.count >= 4, parts[0] == "layer1", parts[1] == "conv1", parts[2] == "conv" || parts[2] == "bn" {
            return (parts[2] == "conv" ? "conv1." : "bn1.") + parts[3...].joined(separator: ".")
        }
        // layerL.blockB.{reduce,conv3x3,increase,shortcut}.{conv,bn}.<leaf>
        if parts.count >= 5, let layer = Self.number(parts[0], after: "layer", digits: 1...1),
            let block = Self.number(parts[1], after: "block", digits: 1...Int.max),
            parts[3] == "conv" || parts[3] == "bn"
        {
            let leaf = parts[4...].joined(separator: ".")
            let (l, b, isConv) = (layer - 1, block - 1, parts[3] == "conv")
            switch parts[2] {
            case "shortcut": return "layer\(l).\(b).downsample.\(isConv ? 0 : 1).\(leaf)"
            case "reduce": return "layer\(l).\(b).\(isConv ? "conv" : "bn")1.\(leaf)"
            case "conv3x3": return "layer\(l).\(b).\(isConv ? "conv" : "bn")2.\(leaf)"
            case "increase": return "layer\(l).\(b).\(isConv ? "conv" : "bn")3.\(leaf)"
            default: return nil
            }
        }
        // aspp.cK.{weight,bias}
        if parts.count == 3, parts[0] == "aspp", Self.number(parts[1], after: "c", digits: 1...1) != nil,
            parts[2] == "weight" || parts[2] == "bias"
        {
            return k
        }
        return nil
    }

    /// Keys only deeplab-pytorch's ResNet has (its stem and its `blockB` stages).
    static func isDeepLabPyTorchKey(_ key: String) -> Bool {
        let k = key.hasPrefix("base.") ? String(key.dropFirst(5)) : key
        let parts = k.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count >= 3, Self.number(String(parts[0]), after: "layer", digits: 1...1) != nil else { return false }
        return (parts[0] == "layer1" && parts[1] == "conv1")
            || Self.number(String(parts[1]), after: "block", digits: 1...Int.max) != nil
    }

    /// The decimal number after `prefix` (`\d` or `\d+` in the script's patterns), nil when the
    /// rest is not all digits or has another count of them.
    private static func number(_ text: String, after prefix: String, digits: ClosedRange<Int>) -> Int? {
        guard text.hasPrefix(prefix) else { return nil }
        let rest = text.dropFirst(prefix.count)
        guard digits.contains(rest.count), rest.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        return Int(rest)
    }
}
