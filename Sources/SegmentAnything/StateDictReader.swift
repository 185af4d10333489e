import Autograd
import Foundation
import HDF5

/// A source of named tensors: a checkpoint read tensor by tensor, so that a model loads without
/// a second copy of its weights in memory. `TorchCheckpoint` (official `.pth` files) and
/// `HDF5StateDict` (our HDF5 layout) conform.
public protocol StateDictReader {
    /// The file, for error messages.
    var path: String { get }
    /// Every tensor's key and shape.
    var tensorShapes: [String: [Int]] { get }
    /// Reads one tensor as Float32.
    /// - Throws: when `name` is absent or its data cannot be read.
    func tensor(named name: String) throws -> Tensor
    /// Whether `name` is stored as a floating-point type (weights stored as integers or booleans
    /// would be cast without a word; they are refused instead).
    func isStoredAsFloat(_ name: String) -> Bool
}

extension StateDictReader {
    /// Our HDF5 layout stores Float32 (`wsss sam convert` writes nothing else).
    public func isStoredAsFloat(_ name: String) -> Bool { true }

    /// How the stored keys differ from a model's `wanted` state dict: keys it lacks, keys it has
    /// beyond `wanted` (except those `ignored` allows, sorted), and keys of another shape ("name
    /// [stored] vs [wanted]"); missing and misshaped in `wanted`'s order, each name once.
    public func keyDifferences(for wanted: [(name: String, tensor: Tensor)], ignored: (String) -> Bool = { _ in false })
        -> (missing: [String], unexpected: [String], misshaped: [String])
    {
        let stored = tensorShapes
        var missing: [String] = [], misshaped: [String] = [], seen = Set<String>()
        for (name, tensor) in wanted where seen.insert(name).inserted {
            guard let shape = stored[name] else {
                missing.append(name)
                continue
            }
            if shape != tensor.shape { misshaped.append("\(name) \(shape) vs \(tensor.shape)") }
        }
        let unexpected = Set(stored.keys).subtracting(seen).filter { !ignored($0) }
        return (missing, unexpected.sorted(), misshaped)
    }
}

/// The tensors of an HDF5 file in our checkpoint layout (docs: `/parameters/<key>` and
/// `/buffers/<key>`, Float32 or convertible), read on demand.
public final class HDF5StateDict: StateDictReader {
    /// The open file.
    public let file: HDF5File
    /// The file's path.
    public var path: String { file.path }
    /// Every key (under /parameters or /buffers) and its shape.
    public let tensorShapes: [String: [Int]]
    /// Dataset path of each key.
    let locations: [String: String]

    /// Opens `path` and lists its tensors (shapes only; no data is read).
    /// - Throws: `HDF5Error` for missing or unreadable files; `SAMWeightsError.duplicateKey` when
    ///   a key is both a parameter and a buffer; `.noTensors` when neither group exists.
    public init(path: String) throws {
        file = try HDF5File(path: path, mode: .read)
        var shapes: [String: [Int]] = [:], locations: [String: String] = [:]
        for group in ["/parameters", "/buffers"] where file.contains(group) {
            for location in try file.datasetNames(under: group) {
                let key = String(location.dropFirst(group.count + 1))
                guard locations[key] == nil else { throw SAMWeightsError.duplicateKey(path: path, key: key) }
                shapes[key] = try file.shape(of: location)
                locations[key] = location
            }
        }
        guard !locations.isEmpty else { throw SAMWeightsError.noTensors(path: path) }
        tensorShapes = shapes
        self.locations = locations
    }

    /// Reads one tensor. - Throws: `SAMWeightsError.mismatch` for an unknown key, `HDF5Error`.
    public func tensor(named name: String) throws -> Tensor {
        guard let location = locations[name] else {
            throw SAMWeightsError.mismatch(path: path, missing: [name], unexpected: [], misshaped: [])
        }
        return try file.read(location)
    }
}

/// A checkpoint that does not fit a SAM model. Every case names the file.
public enum SAMWeightsError: LocalizedError, Equatable {
    /// Keys the model needs that the file lacks, keys it has that the model does not know, and
    /// keys whose shapes differ ("name [file shape] vs [model shape]").
    case mismatch(path: String, missing: [String], unexpected: [String], misshaped: [String])
    /// The shapes describe no SAM configuration (a required key is absent or sizes disagree).
    case unrecognised(path: String, reason: String)
    /// An HDF5 file stores a key under both /parameters and /buffers.
    case duplicateKey(path: String, key: String)
    /// An HDF5 file with neither /parameters nor /buffers.
    case noTensors(path: String)
    /// Weights that hold NaN or ±inf, or are stored as integers or booleans.
    case unusableValues(path: String, nonFinite: [String], notFloat: [String])

    public var errorDescription: String? {
        switch self {
        case .mismatch(let path, let missing, let unexpected, let misshaped):
            func list(_ names: [String]) -> String {
                names.prefix(8).joined(separator: ", ") + (names.count > 8 ? ", … (\(names.count))" : "")
            }
            var parts: [String] = []
            if !missing.isEmpty { parts.append("missing \(list(missing))") }
            if !unexpected.isEmpty { parts.append("unexpected \(list(unexpected))") }
            if !misshaped.isEmpty { parts.append("mis-shaped \(list(misshaped))") }
            return "\(path): checkpoint does not fit the SAM model: " + parts.joined(separator: "; ")
        case .unrecognised(let path, let reason): return "\(path): not a Segment Anything checkpoint: \(reason)"
        case .duplicateKey(let path, let key): return "\(path): '\(key)' is stored both as a parameter and as a buffer"
        case .noTensors(let path): return "\(path): no /parameters or /buffers group: not a weights file"
        case .unusableValues(let path, let nonFinite, let notFloat):
            func list(_ names: [String]) -> String {
                names.prefix(5).joined(separator: ", ") + (names.count > 5 ? ", … (\(names.count))" : "")
            }
            var parts: [String] = []
            if !nonFinite.isEmpty { parts.append("NaN or infinite values in \(list(nonFinite))") }
            if !notFloat.isEmpty {
                parts.append("integer or boolean tensors where weights are floating point: \(list(notFloat))")
            }
            return "\(path): unusable weights: " + parts.joined(separator: "; ")
        }
    }
}
