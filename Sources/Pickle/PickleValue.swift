import Foundation

/// The callables and classes a `torch.save` state dict may name, and nothing else. Naming any
/// other global is refused when the GLOBAL opcode is read, before anything could be "called";
/// and the allowed ones are never called either: REDUCE on them only builds a record.
package enum TorchGlobal: Equatable {
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
    /// numpy.core.multiarray._reconstruct(ndarray, shape, typecode): an empty array that BUILD fills.
    case numpyReconstruct
    /// numpy.ndarray: only passed to `_reconstruct`.
    case numpyNDArray
    /// numpy.dtype(code, align, copy): an element type (BUILD sets its byte order).
    case numpyDType
    /// numpy.core.multiarray.scalar(dtype, bytes): one number (a dict key in IRN's cls_labels.npy).
    case numpyScalar
    /// _codecs.encode(text, 'latin1'): how protocol 2 spells a bytes object.
    case codecsEncode
    /// A plain record class that training checkpoints keep beside the weights (`argparse.Namespace`,
    /// the `args` of DETR-family checkpoints such as Grounding DINO's): only ever instantiated by
    /// NEWOBJ into an inert `.record` whose state is dropped; never resolved, never called.
    case recordClass(String)

    /// Looks up `module.name`; nil for anything not on the list. numpy's names are allowed only
    /// with `numpy` (a `.npy` object array), never in torch checkpoints.
    package init?(module: String, name: String, numpy: Bool = false) {
        if numpy {
            // numpy 1 pickles name numpy.core.multiarray, numpy 2 numpy._core.multiarray.
            switch (module, name) {
            case ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"):
                self = .numpyReconstruct; return
            case ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"): self = .numpyScalar; return
            case ("numpy", "ndarray"): self = .numpyNDArray; return
            case ("numpy", "dtype"): self = .numpyDType; return
            case ("_codecs", "encode"): self = .codecsEncode; return
            default: break
            }
        }
        switch (module, name) {
        case ("argparse", "Namespace"): self = .recordClass("argparse.Namespace")
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
package enum PickleValue: Equatable {
    case none
    case bool(Bool)
    case int(Int)
    case float(Double)
    case string(String)
    /// A bytes object: an index into `PickleGraph.blobs`.
    case bytes(Int)
    case tuple(Int)
    case list(Int)
    case dict(Int)
    case global(TorchGlobal)
    case storage(Int)
    case tensor(Int)
    /// A numpy array (`PickleGraph.arrays`), filled by BUILD.
    case ndarray(Int)
    /// A numpy dtype (`PickleGraph.dtypes`).
    case dtype(Int)
    /// An instance of a `TorchGlobal.recordClass`, by class name: its contents are not kept.
    case record(String)

    /// What the value is, for error messages.
    package var kind: String {
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
        case .ndarray: "numpy array"
        case .dtype: "numpy dtype"
        case .record(let name): "\(name) record"
        }
    }
}

/// A storage named by a persistent id `('storage', torch.XStorage, key, location, numel)`: the
/// bytes of zip entry `<archive>/data/<key>` (torch/serialization.py, `persistent_load` in `_load`).
package struct StorageRecord: Equatable {
    package var dtype: TorchDType
    package var key: String
    package var location: String
    /// Elements of `dtype` the storage holds.
    package var count: Int
}

/// A tensor view of a storage, as `_rebuild_tensor_v2` describes it (strides in elements).
package struct TensorRecord: Equatable {
    package var storage: Int
    package var offset: Int
    package var shape: [Int]
    package var strides: [Int]
}

/// A dict in insertion order (Python dicts and OrderedDict both keep it); a repeated key replaces
/// the value in place, as in Python.
package struct PickleDict {
    package var keys: [PickleValue] = []
    package var values: [PickleValue] = []
    private var positions: [String: Int] = [:]
    private var intPositions: [Int: Int] = [:]

    package mutating func set(_ key: PickleValue, _ value: PickleValue) {
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
    package subscript(key: String) -> PickleValue? { positions[key].map { values[$0] } }
}

/// A numpy element type: its code ("f4", "i4", "O8"…) and byte order ("<", ">", "|", "=").
package struct NumpyDTypeRecord: Equatable {
    package var code: String
    package var byteOrder = "|"
}

/// A numpy array as `ndarray.__setstate__` receives it: (version, shape, dtype, is_fortran, data),
/// data being raw bytes (a blob) or, for object arrays, a list of values.
package struct NumpyArrayRecord: Equatable {
    package var shape: [Int] = []
    package var dtype: Int?
    package var fortranOrder = false
    package var data: PickleValue?
}

/// Everything an unpickled value refers to.
package struct PickleGraph {
    package var blobs: [[UInt8]] = []
    package var arrays: [NumpyArrayRecord] = []
    package var dtypes: [NumpyDTypeRecord] = []
    package var tuples: [[PickleValue]] = []
    package var lists: [[PickleValue]] = []
    package var dicts: [PickleDict] = []
    package var storages: [StorageRecord] = []
    package var tensors: [TensorRecord] = []
}
