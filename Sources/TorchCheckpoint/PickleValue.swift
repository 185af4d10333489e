import Foundation

/// The callables and classes a `torch.save` state dict may name, and nothing else. Naming any
/// other global is refused when the GLOBAL opcode is read, before anything could be "called";
/// and the allowed ones are never called either: REDUCE on them only builds a record.
enum TorchGlobal: Equatable {
    case orderedDict
    /// torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata])
    case rebuildTensorV2
    /// torch._utils._rebuild_tensor(storage, offset, size, stride), from older torch.
    case rebuildTensor
    /// torch._utils._rebuild_parameter(data, requires_grad, hooks)
    case rebuildParameter
    /// torch._utils._rebuild_parameter_with_state(data, requires_grad, hooks, state)
    case rebuildParameterWithState
    /// torch.FloatStorage etc.: appear only inside persistent ids, naming the element type.
    case storageType(TorchDType)

    /// Looks up `module.name`; nil for anything not on the list.
    init?(module: String, name: String) {
        switch (module, name) {
        case ("collections", "OrderedDict"): self = .orderedDict
        case ("torch._utils", "_rebuild_tensor_v2"): self = .rebuildTensorV2
        case ("torch._utils", "_rebuild_tensor"): self = .rebuildTensor
        case ("torch._utils", "_rebuild_parameter"): self = .rebuildParameter
        case ("torch._utils", "_rebuild_parameter_with_state"): self = .rebuildParameterWithState
        case ("torch", _):
            // The legacy typed-storage class names torch/storage.py keeps for pickles.
            let storages: [String: TorchDType] = [
                "FloatStorage": .float32, "HalfStorage": .float16, "BFloat16Storage": .bfloat16,
                "DoubleStorage": .float64, "LongStorage": .int64, "IntStorage": .int32, "ShortStorage": .int16,
                "CharStorage": .int8, "ByteStorage": .uint8, "BoolStorage": .bool, "UntypedStorage": .uint8,
            ]
            guard let dtype = storages[name] else { return nil }
            self = .storageType(dtype)
        default: return nil
        }
    }
}

/// A value built by the restricted unpickler. Containers are indices into a `PickleGraph`, so a
/// value never owns another (no recursive teardown of deep or cyclic pickles).
enum PickleValue: Equatable {
    case none
    case bool(Bool)
    case int(Int)
    case float(Double)
    case string(String)
    case bytes(count: Int)
    case tuple(Int)
    case list(Int)
    case dict(Int)
    case global(TorchGlobal)
    case storage(Int)
    case tensor(Int)

    /// What the value is, for error messages.
    var kind: String {
        switch self {
        case .none: "None"
        case .bool: "bool"
        case .int: "int"
        case .float: "float"
        case .string: "str"
        case .bytes: "bytes"
        case .tuple: "tuple"
        case .list: "list"
        case .dict: "dict"
        case .global: "class or function"
        case .storage: "storage"
        case .tensor: "tensor"
        }
    }
}

/// A storage named by a persistent id `('storage', torch.XStorage, key, location, numel)`: the
/// bytes of zip entry `<archive>/data/<key>` (torch/serialization.py, `persistent_load` in `_load`).
struct StorageRecord: Equatable {
    var dtype: TorchDType
    var key: String
    var location: String
    /// Elements of `dtype` the storage holds.
    var count: Int
}

/// A tensor view of a storage, as `_rebuild_tensor_v2` describes it (strides in elements).
struct TensorRecord: Equatable {
    var storage: Int
    var offset: Int
    var shape: [Int]
    var strides: [Int]
}

/// A dict in insertion order (Python dicts and OrderedDict both keep it); a repeated key replaces
/// the value in place, as in Python.
struct PickleDict {
    var keys: [PickleValue] = []
    var values: [PickleValue] = []
    private var positions: [String: Int] = [:]
    private var intPositions: [Int: Int] = [:]

    mutating func set(_ key: PickleValue, _ value: PickleValue) {
        let existing: Int?
        switch key {
        case .string(let s): existing = positions[s]
        case .int(let i): existing = intPositions[i]
        default: existing = nil
        }
        if let existing {
            values[existing] = value
            return
        }
        switch key {
        case .string(let s): positions[s] = keys.count
        case .int(let i): intPositions[i] = keys.count
        default: break
        }
        keys.append(key)
        values.append(value)
    }

    /// The value under a string key.
    subscript(key: String) -> PickleValue? { positions[key].map { values[$0] } }
}

/// Everything an unpickled value refers to.
struct PickleGraph {
    var tuples: [[PickleValue]] = []
    var lists: [[PickleValue]] = []
    var dicts: [PickleDict] = []
    var storages: [StorageRecord] = []
    var tensors: [TensorRecord] = []
}
