import Foundation

/// A pickle reader that implements only the opcodes `torch.save` uses for state dicts (protocol 2,
/// plus the few later ones Python's pickler may emit for plain values) and builds values without
/// calling anything. Python's own opcode semantics are followed (Lib/pickle.py, `_Unpickler`).
///
/// Refused: globals not in `TorchGlobal` (`.forbiddenGlobal`, as soon as they are named), opcodes
/// not implemented (`.unsupportedOpcode`: INST, OBJ, EXT*, PERSID, text opcodes ...; NEWOBJ only
/// for the inert record classes), and
/// any malformed or truncated stream (`.corrupt`). Nothing is executed: there is nothing to run.
package struct Unpickler {
    package let path: String
    package let bytes: UnsafeRawBufferPointer
    /// Also allow the numpy globals of a `.npy` object array (`TorchGlobal.numpy*`), built as data.
    package let numpy: Bool

    private var position = 0
    private var stack: [PickleValue] = []
    private var marks: [Int] = []
    private var memo: [Int: PickleValue] = [:]
    private var graph = PickleGraph()
    private var storageByKey: [String: Int] = [:]

    package init(path: String, bytes: UnsafeRawBufferPointer, numpy: Bool = false) {
        self.path = path
        self.bytes = bytes
        self.numpy = numpy
    }

    /// Reads the whole pickle up to STOP.
    /// - Returns: the top-level value and the graph its containers live in.
    package mutating func load() throws -> (root: PickleValue, graph: PickleGraph) {
        while true {
            let start = position
            let opcode = try readByte(opcodeAt: start)
            if opcode == Op.stop {
                let root = try pop(start, "STOP")
                return (root, graph)
            }
            try execute(opcode, at: start)
        }
    }

    // MARK: opcodes

    private enum Op {
        static let mark = UInt8(ascii: "("), stop = UInt8(ascii: "."), binint = UInt8(ascii: "J")
        static let binint1 = UInt8(ascii: "K"), binint2 = UInt8(ascii: "M"), none = UInt8(ascii: "N")
        static let binpersid = UInt8(ascii: "Q"), reduce = UInt8(ascii: "R"), binunicode = UInt8(ascii: "X")
        static let binbytes = UInt8(ascii: "B"), shortBinbytes = UInt8(ascii: "C"), append = UInt8(ascii: "a")
        static let build = UInt8(ascii: "b"), global = UInt8(ascii: "c"), dict = UInt8(ascii: "d")
        static let emptyDict = UInt8(ascii: "}"), appends = UInt8(ascii: "e"), binget = UInt8(ascii: "h")
        static let longBinget = UInt8(ascii: "j"), list = UInt8(ascii: "l"), emptyList = UInt8(ascii: "]")
        static let binput = UInt8(ascii: "q"), longBinput = UInt8(ascii: "r"), setitem = UInt8(ascii: "s")
        static let tuple = UInt8(ascii: "t"), emptyTuple = UInt8(ascii: ")"), setitems = UInt8(ascii: "u")
        static let binfloat = UInt8(ascii: "G")
        static let proto: UInt8 = 0x80, tuple1: UInt8 = 0x85, tuple2: UInt8 = 0x86, tuple3: UInt8 = 0x87
        static let newtrue: UInt8 = 0x88, newfalse: UInt8 = 0x89, long1: UInt8 = 0x8a, long4: UInt8 = 0x8b
        static let shortBinunicode: UInt8 = 0x8c, binunicode8: UInt8 = 0x8d, binbytes8: UInt8 = 0x8e
        static let stackGlobal: UInt8 = 0x93, memoize: UInt8 = 0x94, frame: UInt8 = 0x95, newobj: UInt8 = 0x81
    }

    private mutating func execute(_ opcode: UInt8, at start: Int) throws {
        if try pushLiteral(opcode, at: start) { return }
        if try buildContainer(opcode, at: start) { return }
        try executeObject(opcode, at: start)
    }

    /// Framing, marks and literals (numbers, strings, bytes); false for any other opcode.
    private mutating func pushLiteral(_ opcode: UInt8, at start: Int) throws -> Bool {
        switch opcode {
        case Op.proto:
            let version = try readByte(opcodeAt: start)
            guard version <= 5 else { throw corrupt("unknown pickle protocol \(version) at byte \(start)") }
        case Op.frame:
            _ = try readUInt(8, at: start)  // framing only groups opcodes; the bytes follow inline
        case Op.mark: marks.append(stack.count)
        case Op.none: stack.append(.none)
        case Op.newtrue: stack.append(.bool(true))
        case Op.newfalse: stack.append(.bool(false))
        case Op.binint:
            stack.append(.int(Int(Int32(truncatingIfNeeded: try readUInt(4, at: start)))))
        case Op.binint1: stack.append(.int(Int(try readUInt(1, at: start))))
        case Op.binint2: stack.append(.int(Int(try readUInt(2, at: start))))
        case Op.long1: stack.append(.int(try readLong(byteCount: Int(try readUInt(1, at: start)), at: start)))
        case Op.long4: stack.append(.int(try readLong(byteCount: try readLength(4, at: start), at: start)))
        case Op.binfloat:
            // Big-endian IEEE double (pickle.py save_float, '>d').
            let raw = try take(8, at: start)
            var bits: UInt64 = 0
            for byte in raw { bits = bits << 8 | UInt64(byte) }
            stack.append(.float(Double(bitPattern: bits)))
        case Op.binunicode: stack.append(.string(try readString(try readLength(4, at: start), at: start)))
        case Op.shortBinunicode: stack.append(.string(try readString(try readLength(1, at: start), at: start)))
        case Op.binunicode8: stack.append(.string(try readString(try readLength(8, at: start), at: start)))
        case Op.binbytes: stack.append(newBlob(Array(try take(try readLength(4, at: start), at: start))))
        case Op.shortBinbytes: stack.append(newBlob(Array(try take(try readLength(1, at: start), at: start))))
        case Op.binbytes8: stack.append(newBlob(Array(try take(try readLength(8, at: start), at: start))))
        default: return false
        }
        return true
    }

    /// Tuples, lists and dicts, built or filled; false for any other opcode.
    private mutating func buildContainer(_ opcode: UInt8, at start: Int) throws -> Bool {
        switch opcode {
        case Op.emptyTuple: stack.append(newTuple([]))
        case Op.tuple1:
            let a = try pop(start, "TUPLE1")
            stack.append(newTuple([a]))
        case Op.tuple2:
            let b = try pop(start, "TUPLE2"), a = try pop(start, "TUPLE2")
            stack.append(newTuple([a, b]))
        case Op.tuple3:
            let c = try pop(start, "TUPLE3"), b = try pop(start, "TUPLE3"), a = try pop(start, "TUPLE3")
            stack.append(newTuple([a, b, c]))
        case Op.tuple: stack.append(newTuple(try popToMark(start, "TUPLE")))
        case Op.emptyList:
            graph.lists.append([])
            stack.append(.list(graph.lists.count - 1))
        case Op.list:
            graph.lists.append(try popToMark(start, "LIST"))
            stack.append(.list(graph.lists.count - 1))
        case Op.emptyDict:
            graph.dicts.append(PickleDict())
            stack.append(.dict(graph.dicts.count - 1))
        case Op.dict:
            let items = try popToMark(start, "DICT")
            graph.dicts.append(PickleDict())
            stack.append(.dict(graph.dicts.count - 1))
            try setItems(items, at: start, "DICT")
        case Op.append:
            let value = try pop(start, "APPEND")
            try appendItems([value], at: start, "APPEND")
        case Op.appends: try appendItems(try popToMark(start, "APPENDS"), at: start, "APPENDS")
        case Op.setitem:
            let value = try pop(start, "SETITEM"), key = try pop(start, "SETITEM")
            try setItems([key, value], at: start, "SETITEM")
        case Op.setitems: try setItems(try popToMark(start, "SETITEMS"), at: start, "SETITEMS")
        default: return false
        }
        return true
    }

    /// The memo, globals (allow-listed), REDUCE, BUILD and persistent ids; anything else is an
    /// unsupported opcode.
    private mutating func executeObject(_ opcode: UInt8, at start: Int) throws {
        switch opcode {
        case Op.binput: memo[Int(try readUInt(1, at: start))] = try top(start, "BINPUT")
        case Op.longBinput: memo[Int(try readUInt(4, at: start))] = try top(start, "LONG_BINPUT")
        case Op.memoize: memo[memo.count] = try top(start, "MEMOIZE")
        case Op.binget: stack.append(try recall(Int(try readUInt(1, at: start)), at: start))
        case Op.longBinget: stack.append(try recall(Int(try readUInt(4, at: start)), at: start))

        case Op.global:
            let module = try readLine(at: start), name = try readLine(at: start)
            stack.append(try lookUp(module: module, name: name))
        case Op.stackGlobal:
            let name = try pop(start, "STACK_GLOBAL"), module = try pop(start, "STACK_GLOBAL")
            guard case .string(let n) = name, case .string(let m) = module else {
                throw corrupt("STACK_GLOBAL at byte \(start) needs two strings, got \(module.kind) and \(name.kind)")
            }
            stack.append(try lookUp(module: m, name: n))
        case Op.reduce:
            let arguments = try pop(start, "REDUCE"), callable = try pop(start, "REDUCE")
            stack.append(try reduce(callable, arguments, at: start))
        case Op.newobj:
            // cls.__new__(cls, *args) in Python; here only a record class, made into an inert record.
            _ = try pop(start, "NEWOBJ")
            let cls = try pop(start, "NEWOBJ")
            guard case .global(.recordClass(let name)) = cls else {
                throw TorchCheckpointError.unsupportedOpcode(path: path, opcode: opcode, offset: start)
            }
            stack.append(.record(name))
        case Op.build:
            // BUILD would call __setstate__ or update __dict__: OrderedDict's state is the state
            // dict's `_metadata` attribute and a parameter's is its Python attributes. Neither is
            // needed to read weights, so the state is dropped; nothing else may be built.
            let state = try pop(start, "BUILD")
            let target = try top(start, "BUILD")
            switch target {
            case .dict, .tensor, .record: break
            case .ndarray(let index): try buildArray(index, state: state, at: start)
            case .dtype(let index): try buildDType(index, state: state, at: start)
            default: throw corrupt("BUILD at byte \(start) sets the state of a \(target.kind) (from a \(state.kind))")
            }
        case Op.binpersid:
            stack.append(try persistentLoad(try pop(start, "BINPERSID"), at: start))
        default:
            throw TorchCheckpointError.unsupportedOpcode(path: path, opcode: opcode, offset: start)
        }
    }

    // MARK: torch semantics

    private func lookUp(module: String, name: String) throws -> PickleValue {
        guard let global = TorchGlobal(module: module, name: name, numpy: numpy) else {
            throw TorchCheckpointError.forbiddenGlobal(path: path, name: "\(module).\(name)")
        }
        return .global(global)
    }

    /// REDUCE: what calling an allowed global would return, built as data.
    private mutating func reduce(_ callable: PickleValue, _ arguments: PickleValue, at start: Int) throws -> PickleValue {
        guard case .global(let global) = callable else {
            throw corrupt("REDUCE at byte \(start) calls a \(callable.kind)")
        }
        guard case .tuple(let argumentIndex) = arguments else {
            throw corrupt("REDUCE at byte \(start) passes a \(arguments.kind) as its arguments, not a tuple")
        }
        let args = graph.tuples[argumentIndex]
        switch global {
        case .orderedDict:
            // torch writes `OrderedDict()` and fills it with SETITEMS (OrderedDict.__reduce__).
            guard args.isEmpty else { throw unsupported("OrderedDict built from \(args.count) arguments at byte \(start)") }
            graph.dicts.append(PickleDict())
            return .dict(graph.dicts.count - 1)
        case .rebuildTensorV2, .rebuildTensor:
            let expected = global == .rebuildTensor ? 4...4 : 6...7
            guard expected.contains(args.count) else {
                throw corrupt("tensor rebuilt from \(args.count) arguments at byte \(start), expected \(expected)")
            }
            return try rebuildTensor(storage: args[0], offset: args[1], size: args[2], stride: args[3], at: start)
        case .rebuildParameter, .rebuildParameterWithState:
            guard args.count == (global == .rebuildParameter ? 3 : 4), case .tensor = args[0] else {
                throw corrupt("parameter rebuilt from \(args.map(\.kind)) at byte \(start), expected a tensor first")
            }
            return args[0]
        case .storageType:
            throw unsupported("the pickle calls a storage class at byte \(start); state dicts only name them in storage ids")
        case .numpyReconstruct:
            // numpy's ndarray.__reduce__: _reconstruct(ndarray, (0,), b'b'); the state comes with BUILD.
            guard args.count == 3, case .global(.numpyNDArray) = args[0] else {
                throw corrupt(
                    "_reconstruct at byte \(start) called with \(args.map(\.kind)), expected (ndarray, shape, typecode)")
            }
            graph.arrays.append(NumpyArrayRecord())
            return .ndarray(graph.arrays.count - 1)
        case .numpyDType:
            guard (1...3).contains(args.count), case .string(let code) = args[0] else {
                throw corrupt("dtype at byte \(start) called with \(args.map(\.kind)), expected a type code first")
            }
            graph.dtypes.append(NumpyDTypeRecord(code: code))
            return .dtype(graph.dtypes.count - 1)
        case .numpyScalar:
            guard args.count == 2, case .dtype(let d) = args[0], case .bytes(let b) = args[1] else {
                throw corrupt("scalar at byte \(start) called with \(args.map(\.kind)), expected (dtype, bytes)")
            }
            let values = try NumpyElements.decode(graph.blobs[b], dtype: graph.dtypes[d], path: path)
            guard values.count == 1 else { throw corrupt("scalar at byte \(start) holds \(values.count) elements") }
            let dtype = graph.dtypes[d]
            return dtype.code.first == "f" ? .float(values[0]) : .int(Int(values[0]))
        case .codecsEncode:
            // Protocol 2 writes bytes as encode(text, 'latin1'): each character is one byte.
            guard args.count == 2, case .string(let text) = args[0], case .string("latin1") = args[1] else {
                throw corrupt("_codecs.encode at byte \(start) called with \(args.map(\.kind)), expected (str, 'latin1')")
            }
            var blob: [UInt8] = []
            blob.reserveCapacity(text.unicodeScalars.count)
            for scalar in text.unicodeScalars {
                guard scalar.value < 256 else {
                    throw corrupt("_codecs.encode at byte \(start): a character above U+00FF is not latin-1")
                }
                blob.append(UInt8(scalar.value))
            }
            return newBlob(blob)
        case .numpyNDArray:
            throw unsupported("the pickle calls numpy.ndarray at byte \(start); only _reconstruct may")
        case .recordClass(let name):
            // Calling a class runs its code in Python: refused by name, as any other global would be.
            throw TorchCheckpointError.forbiddenGlobal(path: path, name: name)
        }
    }

    /// ndarray.__setstate__((version, shape, dtype, is_fortran, data)), as data.
    private mutating func buildArray(_ index: Int, state: PickleValue, at start: Int) throws {
        guard case .tuple(let t) = state, graph.tuples[t].count == 5, case .dtype(let dtype) = graph.tuples[t][2] else {
            throw corrupt(
                "BUILD at byte \(start) gives a numpy array the state \(state.kind), expected (version, shape, dtype, fortran, data)"
            )
        }
        let fields = graph.tuples[t]
        let shape = try integers(fields[1], "shape", at: start)
        guard shape.allSatisfy({ $0 >= 0 }) else { throw corrupt("numpy array at byte \(start) has shape \(shape)") }
        let fortran: Bool
        switch fields[3] {
        case .bool(let b): fortran = b
        case .int(let i): fortran = i != 0
        default: throw corrupt("numpy array at byte \(start): is_fortran is a \(fields[3].kind)")
        }
        switch fields[4] {
        case .bytes, .list: break
        default: throw corrupt("numpy array at byte \(start) holds its data as a \(fields[4].kind)")
        }
        graph.arrays[index] = NumpyArrayRecord(shape: shape, dtype: dtype, fortranOrder: fortran, data: fields[4])
    }

    /// dtype.__setstate__((version, byte order, …)): only the byte order matters here.
    private mutating func buildDType(_ index: Int, state: PickleValue, at start: Int) throws {
        guard case .tuple(let t) = state, graph.tuples[t].count >= 2, case .string(let order) = graph.tuples[t][1] else {
            throw corrupt("BUILD at byte \(start) gives a numpy dtype the state \(state.kind), expected (version, byte order, …)")
        }
        graph.dtypes[index].byteOrder = order
    }

    /// `_rebuild_tensor_v2`'s view: checked against the storage so that reading it can never leave it.
    private mutating func rebuildTensor(
        storage: PickleValue, offset: PickleValue, size: PickleValue, stride: PickleValue, at start: Int
    ) throws -> PickleValue {
        guard case .storage(let storageIndex) = storage, case .int(let offset) = offset else {
            throw corrupt("tensor at byte \(start) is not built on a storage with an integer offset")
        }
        let shape = try integers(size, "size", at: start)
        let strides = try integers(stride, "stride", at: start)
        guard shape.count == strides.count, offset >= 0, shape.allSatisfy({ $0 >= 0 }), strides.allSatisfy({ $0 >= 0 })
        else { throw corrupt("tensor at byte \(start) has size \(shape), stride \(strides), offset \(offset)") }
        let record = graph.storages[storageIndex]
        var count = 1
        var last = offset  // the highest element the view touches
        for (n, s) in zip(shape, strides) {
            let (c, o1) = count.multipliedReportingOverflow(by: n)
            let (reach, o2) = max(n - 1, 0).multipliedReportingOverflow(by: s)
            let (sum, o3) = last.addingReportingOverflow(reach)
            guard !o1, !o2, !o3 else { throw corrupt("tensor at byte \(start): size \(shape), stride \(strides) overflow") }
            count = c
            last = sum
        }
        if count > 0, last >= record.count {
            throw corrupt(
                "tensor at byte \(start) (size \(shape), stride \(strides), offset \(offset)) reaches element \(last) of storage '\(record.key)', which has \(record.count)"
            )
        }
        graph.tensors.append(TensorRecord(storage: storageIndex, offset: offset, shape: shape, strides: strides))
        return .tensor(graph.tensors.count - 1)
    }

    /// BINPERSID: torch's `persistent_id` for a storage is ('storage', storage class, key, location, numel).
    private mutating func persistentLoad(_ id: PickleValue, at start: Int) throws -> PickleValue {
        guard case .tuple(let index) = id else { throw corrupt("persistent id at byte \(start) is a \(id.kind), not a tuple") }
        let fields = graph.tuples[index]
        guard fields.count == 5, case .string("storage") = fields[0], case .global(.storageType(let dtype)) = fields[1],
            case .string(let key) = fields[2], case .string(let location) = fields[3], case .int(let count) = fields[4],
            count >= 0
        else {
            throw unsupported(
                "persistent id at byte \(start) is \(fields.map(\.kind)), not ('storage', class, key, location, numel)")
        }
        if let existing = storageByKey[key] {
            guard graph.storages[existing].dtype == dtype, graph.storages[existing].count == count else {
                throw corrupt("storage '\(key)' is named twice with different types or sizes")
            }
            return .storage(existing)
        }
        guard !key.isEmpty, !key.contains("/"), key != "..", key != "." else {
            throw corrupt("storage key '\(key)' is not a file name")
        }
        graph.storages.append(StorageRecord(dtype: dtype, key: key, location: location, count: count))
        storageByKey[key] = graph.storages.count - 1
        return .storage(graph.storages.count - 1)
    }

    private func integers(_ value: PickleValue, _ what: String, at start: Int) throws -> [Int] {
        guard case .tuple(let index) = value else {
            throw corrupt("tensor \(what) at byte \(start) is a \(value.kind), not a tuple")
        }
        return try graph.tuples[index].map {
            guard case .int(let n) = $0 else { throw corrupt("tensor \(what) at byte \(start) holds a \($0.kind)") }
            return n
        }
    }

    // MARK: containers

    private mutating func newBlob(_ bytes: [UInt8]) -> PickleValue {
        graph.blobs.append(bytes)
        return .bytes(graph.blobs.count - 1)
    }

    private mutating func newTuple(_ items: [PickleValue]) -> PickleValue {
        graph.tuples.append(items)
        return .tuple(graph.tuples.count - 1)
    }

    private mutating func appendItems(_ items: [PickleValue], at start: Int, _ name: String) throws {
        let target = try top(start, name)
        guard case .list(let index) = target else { throw corrupt("\(name) at byte \(start) appends to a \(target.kind)") }
        graph.lists[index].append(contentsOf: items)
    }

    private mutating func setItems(_ items: [PickleValue], at start: Int, _ name: String) throws {
        let target = try top(start, name)
        guard case .dict(let index) = target else { throw corrupt("\(name) at byte \(start) sets items of a \(target.kind)") }
        guard items.count % 2 == 0 else { throw corrupt("\(name) at byte \(start) has a key without a value") }
        for pair in stride(from: 0, to: items.count, by: 2) {
            switch items[pair] {
            case .none, .bool, .int, .float, .string, .bytes, .tuple: graph.dicts[index].set(items[pair], items[pair + 1])
            default: throw corrupt("\(name) at byte \(start) uses a \(items[pair].kind) as a dict key")
            }
        }
    }

    // MARK: stack

    private mutating func pop(_ start: Int, _ name: String) throws -> PickleValue {
        guard let value = stack.popLast(), stack.count >= (marks.last ?? 0) else {
            throw corrupt("\(name) at byte \(start) pops an empty stack")
        }
        return value
    }

    private func top(_ start: Int, _ name: String) throws -> PickleValue {
        guard let value = stack.last, stack.count > (marks.last ?? 0) else {
            throw corrupt("\(name) at byte \(start) needs a value on the stack")
        }
        return value
    }

    private mutating func popToMark(_ start: Int, _ name: String) throws -> [PickleValue] {
        guard let mark = marks.popLast() else { throw corrupt("\(name) at byte \(start) has no MARK") }
        let items = Array(stack[mark...])
        stack.removeSubrange(mark...)
        return items
    }

    private func recall(_ key: Int, at start: Int) throws -> PickleValue {
        guard let value = memo[key] else { throw corrupt("memo entry \(key) read at byte \(start) was never stored") }
        return value
    }

    // MARK: bytes

    private mutating func take(_ count: Int, at start: Int) throws -> UnsafeRawBufferPointer {
        guard count >= 0, count <= bytes.count - position else {
            throw corrupt("the pickle ends inside the opcode at byte \(start) (\(bytes.count) bytes)")
        }
        defer { position += count }
        return UnsafeRawBufferPointer(rebasing: bytes[position..<(position + count)])
    }

    private mutating func readByte(opcodeAt start: Int) throws -> UInt8 {
        guard position < bytes.count else {
            throw corrupt(
                start == position
                    ? "the pickle ends at byte \(start) without STOP (truncated?)"
                    : "the pickle ends inside the opcode at byte \(start)")
        }
        defer { position += 1 }
        return bytes[position]
    }

    /// An unsigned little-endian integer of `count` ≤ 8 bytes.
    private mutating func readUInt(_ count: Int, at start: Int) throws -> UInt64 {
        let raw = try take(count, at: start)
        var value: UInt64 = 0
        for byte in raw.reversed() { value = value << 8 | UInt64(byte) }
        return value
    }

    /// A length field, which must fit in what is left of the pickle.
    private mutating func readLength(_ count: Int, at start: Int) throws -> Int {
        let value = try readUInt(count, at: start)
        guard value <= UInt64(bytes.count - position) else {
            throw corrupt("the opcode at byte \(start) announces \(value) bytes, past the pickle's end")
        }
        return Int(value)
    }

    /// LONG1/LONG4: little-endian two's complement of `byteCount` bytes (pickle.py decode_long).
    private mutating func readLong(byteCount: Int, at start: Int) throws -> Int {
        guard byteCount <= 8 else { throw unsupported("integer of \(byteCount) bytes at byte \(start)") }
        let raw = try take(byteCount, at: start)
        guard byteCount > 0 else { return 0 }
        var value: UInt64 = raw[byteCount - 1] & 0x80 != 0 ? ~0 : 0
        for byte in raw.reversed() { value = value << 8 | UInt64(byte) }
        return Int(Int64(bitPattern: value))
    }

    private mutating func readString(_ count: Int, at start: Int) throws -> String {
        let raw = try take(count, at: start)
        guard let string = String(validating: raw, as: UTF8.self) else { throw corrupt("string at byte \(start) is not UTF-8") }
        return string
    }

    /// GLOBAL's operands: a line ending in "\n".
    private mutating func readLine(at start: Int) throws -> String {
        guard let end = bytes[position...].firstIndex(of: UInt8(ascii: "\n")) else {
            throw corrupt("the GLOBAL at byte \(start) is not terminated")
        }
        let raw = UnsafeRawBufferPointer(rebasing: bytes[position..<end])
        position = end + 1
        return String(decoding: raw, as: UTF8.self)
    }

    private func corrupt(_ reason: String) -> TorchCheckpointError { .corrupt(path: path, reason: "pickle: " + reason) }
    private func unsupported(_ reason: String) -> TorchCheckpointError { .unsupportedContent(path: path, reason: reason) }
}
