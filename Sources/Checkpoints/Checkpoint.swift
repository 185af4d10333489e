import Autograd
import Foundation
import HDF5
import Layers

/// What a checkpoint says about itself (root attributes of the HDF5 file).
public struct CheckpointMetadata: Equatable, Sendable {
    /// The layout version this code writes and reads.
    public static let currentFormatVersion = 1

    public var formatVersion = currentFormatVersion
    /// Model kind, e.g. "deeplabv2-resnet101" or "cam-resnet50": loading into another is refused.
    public var architecture: String
    /// Class names, background first where the model predicts it.
    public var classes: [String]
    /// Optimizer steps taken.
    public var iteration: Int
    /// The recipe text the run was started with (empty when none).
    public var recipe: String
    /// The training options as JSON (the model's sizes and the schedule; empty when none), so a
    /// checkpoint rebuilds its model without parsing the recipe.
    public var options: String
    /// Where the training labels came from, in words ("pseudo-labels in runs/demo/pseudo/sepl",
    /// "the ground truth"; empty when not recorded).
    public var labels: String
    /// What the run was made from, as the stage that trained it describes it (recipe values and
    /// the provenance of its inputs, by "section.key"; empty when not recorded): how a pipeline
    /// tells its own checkpoint from a file it did not make.
    public var provenance: [String: String]

    public init(
        architecture: String, classes: [String], iteration: Int = 0, recipe: String = "", options: String = "",
        labels: String = "",
        provenance: [String: String] = [:]
    ) {
        self.architecture = architecture
        self.classes = classes
        self.iteration = iteration
        self.recipe = recipe
        self.options = options
        self.labels = labels
        self.provenance = provenance
    }
}

/// A checkpoint that does not fit, naming the file and every offending tensor.
public enum CheckpointError: LocalizedError, Equatable {
    case wrongArchitecture(path: String, expected: String, found: String)
    case unsupportedVersion(path: String, version: Int)
    case mismatch(path: String, missing: [String], unexpected: [String], misshaped: [String])
    case optimizerMismatch(path: String, reason: String)
    /// Tensors holding NaN or ±inf: never written, and refused when loaded.
    case nonFinite(path: String, tensors: [String])
    /// An HDF5 file without checkpoint attributes (a CAM file, an embedding, scores).
    case notACheckpoint(path: String)
    /// A root attribute that does not hold what it should.
    case malformedAttribute(path: String, name: String, reason: String)
    /// A PyTorch `.pth` given as initial weights that is not a torchvision ResNet or a
    /// deeplab-pytorch DeepLab state dict (`TorchInitialWeights`), or a `.caffemodel` that is not
    /// a readable DeepLab ResNet (`CaffeInitialWeights`).
    case notInitialWeights(path: String, reason: String)

    public var errorDescription: String? {
        switch self {
        case .wrongArchitecture(let path, let expected, let found):
            return "\(path): checkpoint of architecture '\(found)', expected '\(expected)'"
        case .unsupportedVersion(let path, let version):
            return
                "\(path): checkpoint format version \(version); this build reads version \(CheckpointMetadata.currentFormatVersion)"
        case .mismatch(let path, let missing, let unexpected, let misshaped):
            func list(_ names: [String]) -> String {
                names.prefix(8).joined(separator: ", ") + (names.count > 8 ? ", … (\(names.count))" : "")
            }
            var parts: [String] = []
            if !missing.isEmpty { parts.append("missing \(list(missing))") }
            if !unexpected.isEmpty { parts.append("unexpected \(list(unexpected))") }
            if !misshaped.isEmpty { parts.append("mis-shaped \(list(misshaped))") }
            return "\(path): checkpoint does not fit the model: " + parts.joined(separator: "; ")
        case .optimizerMismatch(let path, let reason):
            return "\(path): optimizer state does not fit: \(reason)"
        case .nonFinite(let path, let tensors):
            let shown = tensors.prefix(8).joined(separator: ", ") + (tensors.count > 8 ? ", … (\(tensors.count) tensors)" : "")
            return "\(path): NaN or infinite values in \(shown)"
        case .notACheckpoint(let path):
            return "\(path): not a checkpoint (no format_version attribute; a CAM, embedding or scores file?)"
        case .malformedAttribute(let path, let name, let reason):
            return "\(path): attribute '\(name)' \(reason)"
        case .notInitialWeights(let path, let reason):
            return "\(path): not initial weights for these models: \(reason)"
        }
    }
}

/// HDF5 checkpoints of a model (and optionally its SGD state).
///
/// Layout (h5py: `f["parameters"][name][()]`):
/// ```
/// /parameters/<dotted.name>        float32, PyTorch state_dict names
/// /buffers/<dotted.name>           BN running_mean / running_var / num_batches_tracked
/// /optimizer/momentum/<name>       SGD momentum buffers of the parameters that have one
/// attributes on /: format_version, architecture, classes ("\n"-joined), iteration, recipe,
///                  options (JSON of the training options), labels (where the training labels
///                  came from), provenance (JSON object of strings: what the run was made from)
/// ```
/// Files are written to a temporary file in the same folder and renamed, so a run killed at any
/// moment leaves either the previous checkpoint or the new one, never half of one.
public enum Checkpoint {
    /// Writes `model` (and `optimizer`'s momentum) with `metadata` to `path`, atomically.
    /// - Throws: `CheckpointError.nonFinite` naming every tensor that holds NaN or ±inf (nothing
    ///   is written then, so the previous checkpoint stays the last good one).
    public static func save(_ model: Module, optimizer: SGD? = nil, metadata: CheckpointMetadata, to path: String) throws {
        var bad = (model.parameters() + model.buffers()).filter { !$0.tensor.isAllFinite }.map(\.name)
        if let optimizer {
            let names = parameterNames(of: model)
            for (group, velocities) in zip(optimizer.groups, optimizer.velocities) {
                for (parameter, velocity) in zip(group.parameters, velocities) where velocity.map({ !$0.isAllFinite }) ?? false {
                    bad.append("optimizer/momentum/" + (names[ObjectIdentifier(parameter.storage)] ?? "?"))
                }
            }
        }
        guard bad.isEmpty else { throw CheckpointError.nonFinite(path: path, tensors: bad) }
        try HDF5File.writeAtomically(to: path) { file in
            for (name, tensor) in model.parameters() { try file.write(tensor, at: "/parameters/\(name)") }
            for (name, tensor) in model.buffers() { try file.write(tensor, at: "/buffers/\(name)") }
            if let optimizer {
                let names = parameterNames(of: model)
                for (group, velocities) in zip(optimizer.groups, optimizer.velocities) {
                    for (parameter, velocity) in zip(group.parameters, velocities) {
                        guard let velocity else { continue }
                        guard let name = names[ObjectIdentifier(parameter.storage)] else {
                            throw CheckpointError.optimizerMismatch(
                                path: path, reason: "the optimizer holds a parameter that is not in the model")
                        }
                        try file.write(velocity, at: "/optimizer/momentum/\(name)")
                    }
                }
            }
            try file.setAttribute(.int(metadata.formatVersion), named: "format_version")
            try file.setAttribute(.string(metadata.architecture), named: "architecture")
            try file.setAttribute(.string(metadata.classes.joined(separator: "\n")), named: "classes")
            try file.setAttribute(.int(metadata.iteration), named: "iteration")
            try file.setAttribute(.string(metadata.recipe), named: "recipe")
            if !metadata.options.isEmpty { try file.setAttribute(.string(metadata.options), named: "options") }
            if !metadata.labels.isEmpty { try file.setAttribute(.string(metadata.labels), named: "labels") }
            if !metadata.provenance.isEmpty {
                let json = try JSONSerialization.data(
                    withJSONObject: metadata.provenance, options: [.sortedKeys, .withoutEscapingSlashes])
                try file.setAttribute(.string(String(decoding: json, as: UTF8.self)), named: "provenance")
            }
        }
    }

    /// Reads the metadata of a checkpoint.
    public static func metadata(at path: String) throws -> CheckpointMetadata {
        try metadata(of: try HDF5File(path: path, mode: .read))
    }

    static func metadata(of file: HDF5File) throws -> CheckpointMetadata {
        // Our other HDF5 files (CAMs, embeddings, scores) carry no format_version: say what the file is not.
        guard let version = try file.attribute(named: "format_version")?.intValue else {
            throw CheckpointError.notACheckpoint(path: file.path)
        }
        guard version == CheckpointMetadata.currentFormatVersion else {
            throw CheckpointError.unsupportedVersion(path: file.path, version: version)
        }
        var m = CheckpointMetadata(
            architecture: try file.requiredAttribute(named: "architecture").stringValue ?? "",
            classes: (try file.attribute(named: "classes")?.stringValue ?? "").split(separator: "\n").map(String.init),
            iteration: try file.attribute(named: "iteration")?.intValue ?? 0,
            recipe: try file.attribute(named: "recipe")?.stringValue ?? "",
            options: try file.attribute(named: "options")?.stringValue ?? "",
            labels: try file.attribute(named: "labels")?.stringValue ?? "")
        if let text = try file.attribute(named: "provenance")?.stringValue {
            guard let values = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: String] else {
                throw CheckpointError.malformedAttribute(
                    path: file.path, name: "provenance", reason: "is not a JSON object of strings")
            }
            m.provenance = values
        }
        m.formatVersion = version
        return m
    }

    /// Loads a checkpoint for resuming or evaluation: the architecture must match and every
    /// parameter and buffer must be present with its shape, and nothing else. Restores the
    /// optimizer's momentum when `optimizer` is given.
    /// - Parameter allowNonFinite: load tensors holding NaN or ±inf (for inspecting a broken run).
    /// - Throws: `CheckpointError` naming missing, unexpected, mis-shaped and non-finite tensors;
    ///   `HDF5Error` for unreadable files.
    @discardableResult
    public static func load(
        from path: String, into model: Module, architecture: String, optimizer: SGD? = nil, allowNonFinite: Bool = false
    ) throws -> CheckpointMetadata {
        let file = try HDF5File(path: path, mode: .read)
        let metadata = try metadata(of: file)
        guard metadata.architecture == architecture else {
            throw CheckpointError.wrongArchitecture(path: path, expected: architecture, found: metadata.architecture)
        }
        let stored = try storedTensors(in: file)
        let wanted = model.stateDict()
        var missing: [String] = [], misshaped: [String] = []
        for (name, tensor) in wanted {
            guard let shape = stored[name]?.shape else {
                missing.append(name)
                continue
            }
            if shape != tensor.shape { misshaped.append("\(name) \(shape) vs \(tensor.shape)") }
        }
        let unexpected = Set(stored.keys).subtracting(wanted.map(\.name)).sorted()
        guard missing.isEmpty && unexpected.isEmpty && misshaped.isEmpty else {
            throw CheckpointError.mismatch(path: path, missing: missing, unexpected: unexpected, misshaped: misshaped)
        }
        var loaded: [(Tensor, Tensor)] = []
        var nonFinite: [String] = []
        for (name, tensor) in wanted {
            let value = try file.read(stored[name]!.path, expectingShape: tensor.shape)
            if !allowNonFinite && !value.isAllFinite { nonFinite.append(name) }
            loaded.append((tensor, value))
        }
        // Refuse before assigning anything, so a model is never left half-loaded.
        guard nonFinite.isEmpty else { throw CheckpointError.nonFinite(path: path, tensors: nonFinite) }
        for (tensor, value) in loaded { tensor.assign(from: value) }
        if let optimizer { try restoreMomentum(of: optimizer, model: model, from: file) }
        return metadata
    }

    /// What `initialize` loaded and left alone.
    public struct InitializationReport: Equatable, Sendable {
        /// Tensors copied from the checkpoint.
        public var loaded: [String]
        /// Model tensors not loaded (filtered out, or absent from the checkpoint): they keep
        /// their fresh initialisation.
        public var keptFresh: [String]
        /// Checkpoint tensors with no counterpart in the model (e.g. a classifier `fc.*`).
        public var ignored: [String]

        /// One line in the manner of mmseg's missing/unexpected keys: what was copied, what keeps
        /// its fresh initialisation, what the checkpoint had that the model does not.
        public func summary(from path: String) -> String {
            func list(_ names: [String]) -> String {
                names.prefix(4).joined(separator: ", ") + (names.count > 4 ? ", …" : "")
            }
            var parts = ["\(loaded.count) tensors copied from \(path)"]
            if !keptFresh.isEmpty { parts.append("\(keptFresh.count) kept their fresh initialisation (\(list(keptFresh)))") }
            if !ignored.isEmpty { parts.append("\(ignored.count) in the checkpoint unused (\(list(ignored)))") }
            return parts.joined(separator: "; ")
        }
    }

    /// Fine-tuning: copies the tensors whose names match `include` (glob patterns, default all)
    /// and no `exclude` pattern from a checkpoint of any architecture (e.g. an ImageNet ResNet
    /// into DeepLab's backbone, or a 21-class DeepLab into a 6-class one with
    /// `exclude: ["aspp.*"]`). A selected tensor whose shape differs is an error.
    ///
    /// `path` is our HDF5 checkpoint or an official PyTorch `.pth` (torchvision's ImageNet
    /// ResNets, deeplab-pytorch's DeepLab weights), told apart by the file's first bytes; a `.pth`
    /// is read under our names as `scripts/convert_weights.py` would convert it
    /// (`TorchInitialWeights`), with the same checks; so is DeepLab's original `.caffemodel`
    /// (`CaffeInitialWeights`, told by its extension).
    @discardableResult
    public static func initialize(_ model: Module, from path: String, include: [String] = ["*"], exclude: [String] = []) throws
        -> InitializationReport
    {
        if CaffeInitialWeights.isCaffeModel(path) {
            let weights = try CaffeInitialWeights(path: path)
            return try initialize(
                model, path: path, shapes: weights.shapes, include: include, exclude: exclude, read: weights.tensor(named:))
        }
        if TorchInitialWeights.isTorchFile(path) {
            let weights = try TorchInitialWeights(path: path)
            return try initialize(
                model, path: path, shapes: weights.shapes, include: include, exclude: exclude, read: weights.tensor(named:))
        }
        let file = try HDF5File(path: path, mode: .read)
        _ = try metadata(of: file)
        let stored = try storedTensors(in: file)
        return try initialize(
            model, path: path, shapes: stored.mapValues(\.shape), include: include, exclude: exclude,
            read: { try file.read(stored[$0]!.path) })
    }

    /// `initialize` over any source of named tensors: `shapes` lists them, `read` reads one.
    static func initialize(
        _ model: Module, path: String, shapes stored: [String: [Int]], include: [String], exclude: [String],
        read: (String) throws -> Tensor
    ) throws -> InitializationReport {
        var report = InitializationReport(loaded: [], keptFresh: [], ignored: [])
        var misshaped: [String] = []
        var selected: [Tensor] = []
        for (name, tensor) in model.stateDict() {
            let chosen = include.contains { matches($0, name) } && !exclude.contains { matches($0, name) }
            guard chosen, let shape = stored[name] else {
                report.keptFresh.append(name)
                continue
            }
            if shape != tensor.shape {
                misshaped.append("\(name) \(shape) vs \(tensor.shape)")
                continue
            }
            selected.append(tensor)
            report.loaded.append(name)
        }
        guard misshaped.isEmpty else {
            throw CheckpointError.mismatch(path: path, missing: [], unexpected: [], misshaped: misshaped)
        }
        let values = try report.loaded.map(read)
        let nonFinite = zip(report.loaded, values).filter { !$0.1.isAllFinite }.map(\.0)
        guard nonFinite.isEmpty else { throw CheckpointError.nonFinite(path: path, tensors: nonFinite) }
        for (tensor, value) in zip(selected, values) { tensor.assign(from: value) }
        report.ignored = Set(stored.keys).subtracting(model.stateDict().map(\.name)).sorted()
        return report
    }

    /// Shell-style glob match (`*`, `?`, `[…]`), as fnmatch(3).
    public static func matches(_ pattern: String, _ name: String) -> Bool { fnmatch(pattern, name, 0) == 0 }

    // MARK: Internals

    /// Stored parameters and buffers by name, with their dataset paths and shapes.
    static func storedTensors(in file: HDF5File) throws -> [String: (path: String, shape: [Int])] {
        var out: [String: (String, [Int])] = [:]
        for group in ["parameters", "buffers"] where file.contains("/" + group) {
            for name in try file.children(of: "/" + group) {
                let location = "/\(group)/\(name)"
                out[name] = (location, try file.shape(of: location))
            }
        }
        return out
    }

    static func parameterNames(of model: Module) -> [ObjectIdentifier: String] {
        var names: [ObjectIdentifier: String] = [:]
        for (name, tensor) in model.parameters() { names[ObjectIdentifier(tensor.storage)] = name }
        return names
    }

    static func restoreMomentum(of optimizer: SGD, model: Module, from file: HDF5File) throws {
        let names = parameterNames(of: model)
        var velocities: [[Tensor?]] = []
        for group in optimizer.groups {
            var row: [Tensor?] = []
            for parameter in group.parameters {
                guard let name = names[ObjectIdentifier(parameter.storage)] else {
                    throw CheckpointError.optimizerMismatch(
                        path: file.path, reason: "the optimizer holds a parameter that is not in the model")
                }
                let location = "/optimizer/momentum/\(name)"
                let velocity = file.contains(location) ? try file.read(location, expectingShape: parameter.shape) : nil
                if let velocity, !velocity.isAllFinite {
                    throw CheckpointError.nonFinite(path: file.path, tensors: ["optimizer/momentum/\(name)"])
                }
                row.append(velocity)
            }
            velocities.append(row)
        }
        optimizer.setVelocities(velocities)
    }
}
