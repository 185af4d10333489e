import Autograd
import Foundation
import HDF5
import Layers
import SegmentAnything
import TorchCheckpoint

/// Opening Grounding DINO weights: the official `.pth` (`groundingdino_swint_ogc.pth`,
/// `groundingdino_swinb_cogcoor.pth`: the state dict under `model`, keys prefixed `module.`,
/// training arguments beside it read as inert records) or our HDF5 copy (`wsss detect convert`).
public enum GroundingDINOWeights {
    /// The attribute value naming a Grounding DINO weight file in our HDF5 format.
    public static let architecture = "grounding-dino"

    /// Keys of the official files the model does not use: the denoising label embedding and a
    /// buffer older transformers saved.
    static let ignoredKeys: Set<String> = ["label_enc.weight", "bert.embeddings.position_ids"]

    /// The model of `path`'s weights: of `configuration` when given, else of the configuration
    /// our HDF5 copy records, else read off the weights' shapes with `overrides` (a `--config`
    /// file's official names) for what no shape says.
    /// - Throws: `GroundingDINOError` naming the file and the keys that do not fit,
    ///   `TorchCheckpointError`/`HDF5Error` for unreadable files.
    public static func load(_ path: String, configuration: GroundingDINOConfiguration? = nil, overrides: [String: Any] = [:])
        throws -> GroundingDINO
    {
        let reader = try reader(for: path)
        let model = GroundingDINO(try configuration ?? self.configuration(of: reader, overrides: overrides))
        try model.load(from: reader)
        return model
    }

    /// A reader of the state dict in `path` with the `module.` prefix removed.
    public static func reader(for path: String) throws -> any StateDictReader {
        let base = try SAMWeights.reader(for: path)
        let prefixed = base.tensorShapes.keys.filter { $0.hasPrefix("module.") }.count
        return prefixed > 0 && prefixed == base.tensorShapes.count ? PrefixedStateDict(base: base, prefix: "module.") : base
    }

    /// The configuration recorded in our HDF5 file (checked against `overrides`), or the one the
    /// shapes and `overrides` give.
    static func configuration(of reader: any StateDictReader, overrides: [String: Any]) throws -> GroundingDINOConfiguration {
        if let hdf5 = reader as? HDF5StateDict, case .string(let json)? = try hdf5.file.attribute(named: "configuration") {
            let recorded: GroundingDINOConfiguration
            do {
                recorded = try JSONDecoder().decode(GroundingDINOConfiguration.self, from: Data(json.utf8))
            } catch {
                throw GroundingDINOError.unusable(
                    path: reader.path, reason: "its 'configuration' attribute is not readable: \(error)")
            }
            try recorded.check(against: overrides, path: reader.path)
            return recorded
        }
        return try GroundingDINOConfiguration.inferred(fromShapes: reader.tensorShapes, overrides: overrides, path: reader.path)
    }

    /// Writes the weights the model of `configuration` uses from `path` to our HDF5 layout
    /// (`/parameters/<key>`, float32; attributes `architecture`, `configuration`, `source`),
    /// atomically, after checking that they load.
    public static func convert(_ path: String, to output: String, overrides: [String: Any] = [:]) throws {
        let model = try load(path, overrides: overrides)
        let json = String(decoding: try JSONEncoder().encode(model.configuration), as: UTF8.self)
        var written = Set<String>()
        try HDF5File.writeAtomically(to: output) { file in
            for (name, tensor) in model.stateDict() where written.insert(name).inserted {
                try file.write(tensor, at: "/parameters/\(name)")
            }
            try file.setAttribute(.int(1), named: "format_version")
            try file.setAttribute(.string(architecture), named: "architecture")
            try file.setAttribute(.string(json), named: "configuration")
            try file.setAttribute(.string((path as NSString).lastPathComponent), named: "source")
        }
    }
}

/// A state dict whose keys carry a prefix (DistributedDataParallel's `module.`), read without it.
struct PrefixedStateDict: StateDictReader {
    let base: any StateDictReader
    let prefix: String
    var path: String { base.path }
    var tensorShapes: [String: [Int]] {
        Dictionary(uniqueKeysWithValues: base.tensorShapes.map { (String($0.key.dropFirst(prefix.count)), $0.value) })
    }
    func tensor(named name: String) throws -> Tensor { try base.tensor(named: prefix + name) }
    func isStoredAsFloat(_ name: String) -> Bool { base.isStoredAsFloat(prefix + name) }
    func integers(named name: String) throws -> [Int64]? {
        try (base as? TorchCheckpoint)?.integers(named: prefix + name)
    }
}

extension GroundingDINO {
    /// Loads every weight by its official key. Keys the model lacks are refused except the
    /// official files' unused extras; the Swin `relative_position_index` buffers are checked
    /// against the window size instead of loaded.
    /// - Throws: `GroundingDINOError.mismatch` listing missing, unexpected and misshaped keys;
    ///   `.unusable` for weights that are not float or not finite, or an index of another window.
    public func load(from reader: some StateDictReader) throws {
        let wanted = stateDict()
        let wantedNames = Set(wanted.map(\.name))
        let isIndex = { (key: String) in key.hasSuffix(".attn.relative_position_index") }
        let (missing, unexpected, misshaped) = reader.keyDifferences(for: wanted) {
            GroundingDINOWeights.ignoredKeys.contains($0) || isIndex($0)
        }
        guard missing.isEmpty && unexpected.isEmpty && misshaped.isEmpty else {
            throw GroundingDINOError.mismatch(path: reader.path, missing: missing, unexpected: unexpected, misshaped: misshaped)
        }
        let indices = reader.tensorShapes.keys.filter(isIndex)
        try checkRelativePositionIndices(indices, reader)
        let notFloat = wantedNames.filter { !reader.isStoredAsFloat($0) }.sorted()
        guard notFloat.isEmpty else {
            throw GroundingDINOError.unusable(
                path: reader.path, reason: "weights stored as integers: \(notFloat.prefix(5).joined(separator: ", "))")
        }
        var nonFinite: [String] = []
        var loaded = Set<String>()
        for (name, tensor) in wanted where loaded.insert(name).inserted {
            let value = try reader.tensor(named: name)
            if !value.isAllFinite { nonFinite.append(name) }
            tensor.assign(from: value)
        }
        guard nonFinite.isEmpty else {
            throw GroundingDINOError.unusable(
                path: reader.path, reason: "weights holding NaN or ±inf: \(nonFinite.prefix(5).joined(separator: ", "))")
        }
    }

    /// Each stored `layers.<i>.blocks.<j>.attn.relative_position_index` must be the index our
    /// window size gives (a checkpoint of another window would load and compute nonsense).
    private func checkRelativePositionIndices(_ names: [String], _ reader: some StateDictReader) throws {
        guard
            let prefixed = reader as? PrefixedStateDict
                ?? (reader as? TorchCheckpoint).map({ PrefixedStateDict(base: $0, prefix: "") })
        else { return }
        let expected = backbone.layers.elements.first?.blocks.elements.first?.attn.relativePositionIndex.map(Int64.init) ?? []
        for name in names.sorted() {
            guard let values = try prefixed.integers(named: name) else { continue }
            if values != expected {
                throw GroundingDINOError.unusable(
                    path: reader.path,
                    reason:
                        "'\(name)' is not the relative position index of window \(configuration.swin.windowSize): the checkpoint is of another window size"
                )
            }
        }
    }
}
