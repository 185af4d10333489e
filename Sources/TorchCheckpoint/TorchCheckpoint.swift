import Autograd
import Foundation

/// A PyTorch checkpoint written by `torch.save` (the zip format of PyTorch ≥ 1.6), read directly:
/// no Python, and nothing in the file can run code (see `Unpickler`).
///
/// The file is memory-mapped; opening it parses only the small pickle that describes the tensors,
/// so names, shapes and dtypes cost no data reads. `tensor(named:)` copies one tensor out of the
/// mapping when asked and lets go of the pages it touched, so reading every tensor of SAM ViT-H
/// (2.5 GB) needs about the weights' size in memory, not twice that.
///
/// What the pickle may hold at the top level:
/// - a state dict: a dict (`OrderedDict` or plain) from names to tensors, as `model.state_dict()`;
/// - or a training checkpoint: a dict with the state dict under `"model"` or `"state_dict"`
///   (whichever of them is a dict of tensors; both being one is refused as ambiguous). The other
///   entries (optimizer state, epoch, ...) are parsed but ignored. `stateDictKey` tells which.
///
/// Integer and bool buffers (e.g. BatchNorm's `num_batches_tracked`, int64) are listed like the
/// others with their dtype; `tensor(named:)` converts them to Float32 as well (exact up to 2^24),
/// `integers(named:)` gives their exact values. Which to skip is the caller's choice.
public final class TorchCheckpoint: @unchecked Sendable {
    /// The checkpoint file, as given.
    public let path: String
    /// Tensor names in file order (the order of the state dict).
    public let tensorNames: [String]
    /// `nil` when the top-level dict is the state dict, else the key it sits under (`"model"`, `"state_dict"`).
    public let stateDictKey: String?

    private let archive: ZipArchive
    private let entries: [String: Entry]

    /// Where one tensor's values are: the view `_rebuild_tensor_v2` describes, over a zip entry.
    private struct Entry {
        let dtype: TorchDType
        let shape: [Int]
        let strides: [Int]
        let offset: Int
        let storage: ZipEntry
    }

    /// Opens a checkpoint and reads its tensor list. No tensor data is read.
    /// - Throws: `TorchCheckpointError`: `.cannotOpen`; `.notZip` (e.g. the legacy pre-1.6
    ///   format); `.corrupt` for a truncated or inconsistent archive or pickle, or a storage entry
    ///   that is missing or too short; `.forbiddenGlobal` / `.unsupportedOpcode` for a pickle that
    ///   names anything but tensors and dicts; `.unsupportedContent` for a valid pickle that is not
    ///   a state dict, a compressed entry, or a big-endian archive.
    public convenience init(path: String) throws {
        try self.init(archive: ZipArchive(path: path))
    }

    /// A checkpoint over an opened archive (tests pass in-memory archives).
    init(archive: ZipArchive) throws {
        let path = archive.path
        self.path = path
        self.archive = archive
        func unsupported(_ reason: String) -> TorchCheckpointError { .unsupportedContent(path: path, reason: reason) }

        // torch's PyTorchStreamWriter puts every record under one folder named after the archive
        // (`<name>/data.pkl`, `<name>/data/<key>`, `<name>/byteorder`).
        guard
            let pickleEntry = archive.entries.first(where: {
                $0.name.hasSuffix("/data.pkl") && $0.name.split(separator: "/").count == 2
            })
        else { throw unsupported("a zip archive without '<name>/data.pkl': not a torch.save file") }
        let prefix = String(pickleEntry.name.dropLast("data.pkl".count))
        if let order = archive.entry(named: prefix + "byteorder") {
            let text = String(decoding: try archive.verifiedData(of: order), as: UTF8.self)
            guard text == "little" else { throw unsupported("storages are stored '\(text)'-endian; only little-endian is read") }
        }

        var unpickler = Unpickler(path: path, bytes: try archive.verifiedData(of: pickleEntry))
        let (root, graph) = try unpickler.load()
        let (key, dict) = try Self.stateDict(in: root, graph: graph, path: path)
        stateDictKey = key

        var names: [String] = []
        var entries: [String: Entry] = [:]
        for (name, value) in zip(dict.keys, dict.values) {
            guard case .string(let name) = name else { throw unsupported("the state dict has a \(name.kind) key, not a name") }
            guard case .tensor(let t) = value else {
                throw unsupported("state dict entry '\(name)' is a \(value.kind), not a tensor")
            }
            let record = graph.tensors[t]
            let storage = graph.storages[record.storage]
            let entryName = prefix + "data/" + storage.key
            guard let zipEntry = archive.entry(named: entryName) else {
                throw TorchCheckpointError.corrupt(
                    path: path, reason: "storage entry '\(entryName)' of tensor '\(name)' is missing")
            }
            let needed = storage.count.multipliedReportingOverflow(by: storage.dtype.byteCount)
            guard !needed.overflow, zipEntry.uncompressedSize >= needed.partialValue else {
                throw TorchCheckpointError.corrupt(
                    path: path,
                    reason:
                        "storage entry '\(entryName)' of tensor '\(name)' has \(zipEntry.uncompressedSize) bytes, needs \(storage.count) \(storage.dtype.rawValue) values"
                )
            }
            _ = try archive.data(of: zipEntry)  // refuses a compressed storage now, not at first read
            names.append(name)
            entries[name] = Entry(
                dtype: storage.dtype, shape: record.shape, strides: record.strides, offset: record.offset, storage: zipEntry)
        }
        tensorNames = names
        self.entries = entries
    }

    /// Shape of every tensor, by name.
    public var tensorShapes: [String: [Int]] { entries.mapValues(\.shape) }

    /// The stored element type of a tensor; nil when there is no tensor of that name.
    public func dtype(of name: String) -> TorchDType? { entries[name]?.dtype }

    /// One tensor as Float32, read from the mapped archive: float16, bfloat16 and float64 are
    /// converted (float64 rounds to nearest), integer and bool types too (0/1 for bool; exact up to
    /// 2^24 in magnitude). Storage offset and strides are honoured: a non-contiguous view (e.g. a
    /// transposed weight) comes back contiguous in row-major order of its shape.
    /// - Returns: a tensor of the stored shape (`[]` for a 0-d tensor), without a tape node.
    /// - Throws: `.missingTensor` when `name` is not in the checkpoint.
    public func tensor(named name: String) throws -> Tensor {
        guard let entry = entries[name] else { throw TorchCheckpointError.missingTensor(path: path, name: name) }
        let data = try archive.verifiedData(of: entry.storage)
        let y = Tensor(uninitialized: entry.shape)
        guard let base = data.baseAddress, y.count > 0 else { return y }
        let (shape, strides, offset, bytes) = (entry.shape, entry.strides, entry.offset, entry.dtype.byteCount)
        let (outer, _, _, innerStride) = collapsed(shape: shape, strides: strides)
        if entry.dtype == .float32, outer.isEmpty, innerStride == 1 {
            // Contiguous float32: the stored bytes are the tensor's (torch writes little-endian).
            UnsafeMutableRawPointer(y.storage.base).copyMemory(from: base + offset * 4, byteCount: y.count * 4)
        } else {
            gather(entry.dtype, base: base, offset: offset, shape: shape, strides: strides, into: y.storage.base)
        }
        let first = entry.storage.dataOffset + offset * bytes
        let last = entry.storage.dataOffset + (offset + zip(shape, strides).reduce(0) { $0 + ($1.0 - 1) * $1.1 } + 1) * bytes
        archive.file.release(first..<last)
        return y
    }

    /// The exact values of an integer or bool tensor (bool as 0/1), in row-major order of its shape.
    /// - Throws: `.missingTensor`; `.unsupportedContent` for a floating-point tensor.
    public func integers(named name: String) throws -> [Int64] {
        guard let entry = entries[name] else { throw TorchCheckpointError.missingTensor(path: path, name: name) }
        guard !entry.dtype.isFloatingPoint else {
            throw TorchCheckpointError.unsupportedContent(
                path: path, reason: "tensor '\(name)' is \(entry.dtype.rawValue), not an integer tensor")
        }
        let data = try archive.verifiedData(of: entry.storage)
        let count = entry.shape.product
        guard let base = data.baseAddress, count > 0 else { return [] }
        var values: [Int64] = []
        values.reserveCapacity(count)
        var index = [Int](repeating: 0, count: entry.shape.count)
        for _ in 0..<count {
            let element = entry.offset + zip(index, entry.strides).reduce(0) { $0 + $1.0 * $1.1 }
            let p = base + element * entry.dtype.byteCount
            switch entry.dtype {
            case .int64: values.append(Int64(littleEndian: p.loadUnaligned(as: Int64.self)))
            case .int32: values.append(Int64(Int32(littleEndian: p.loadUnaligned(as: Int32.self))))
            case .int16: values.append(Int64(Int16(littleEndian: p.loadUnaligned(as: Int16.self))))
            case .int8: values.append(Int64(p.load(as: Int8.self)))
            case .uint8: values.append(Int64(p.load(as: UInt8.self)))
            case .bool: values.append(p.load(as: UInt8.self) != 0 ? 1 : 0)
            case .float32, .float16, .bfloat16, .float64: break
            }
            var axis = index.count - 1
            while axis >= 0 {
                index[axis] += 1
                if index[axis] < entry.shape[axis] { break }
                index[axis] = 0
                axis -= 1
            }
        }
        return values
    }

    /// The dict of tensors in the pickle: the root itself, or the one under "model" / "state_dict".
    private static func stateDict(in root: PickleValue, graph: PickleGraph, path: String) throws -> (String?, PickleDict) {
        guard case .dict(let rootIndex) = root else {
            throw TorchCheckpointError.unsupportedContent(
                path: path, reason: "the checkpoint holds a \(root.kind), not a dict of tensors")
        }
        let top = graph.dicts[rootIndex]
        func holdsOnlyTensors(_ dict: PickleDict) -> Bool {
            dict.values.allSatisfy { if case .tensor = $0 { true } else { false } }
        }
        if holdsOnlyTensors(top) { return (nil, top) }
        var found: [(String, PickleDict)] = []
        for key in ["model", "state_dict"] {
            if case .dict(let i)? = top[key], holdsOnlyTensors(graph.dicts[i]) { found.append((key, graph.dicts[i])) }
        }
        if found.count == 1 { return found[0] }
        if found.count == 2 {
            throw TorchCheckpointError.unsupportedContent(
                path: path, reason: "both 'model' and 'state_dict' hold tensors: which one is meant is unclear")
        }
        let shown = zip(top.keys, top.values).prefix(6).map { key, value in
            if case .string(let s) = key { "'\(s)': \(value.kind)" } else { "\(key.kind): \(value.kind)" }
        }
        throw TorchCheckpointError.unsupportedContent(
            path: path,
            reason:
                "not a state dict: the top-level dict maps \(shown.joined(separator: ", "))\(top.keys.count > 6 ? ", …" : ""); expected names → tensors, or such a dict under 'model' or 'state_dict'"
        )
    }
}
