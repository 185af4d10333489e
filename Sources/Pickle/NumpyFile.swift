import Foundation

/// A numeric numpy array read without numpy: its type code ("f4", "i4"…), shape and values
/// (row-major, as Double: every int32/float32 value is exact in a Double).
public struct NumpyArray: Equatable, Sendable {
    public let code: String
    public let shape: [Int]
    public let values: [Double]
}

/// A key of a pickled dict: numpy integer scalars and Python ints are `.int`, str is `.string`.
public enum NumpyKey: Hashable, Sendable {
    case int(Int)
    case string(String)
}

/// `.npy` files (numpy/lib/format.py): the header, and a pickled dict of arrays such as IRN's
/// `voc12/cls_labels.npy`, which IRN reads with `np.load(path, allow_pickle=True).item()`.
/// The pickle goes through the restricted `Unpickler` (no code is run; only numpy's
/// `_reconstruct`, `ndarray`, `dtype`, `scalar` and `_codecs.encode` may be named, and they are
/// built as data).
public enum NumpyFile {
    /// What the header dict says (`{'descr': …, 'fortran_order': …, 'shape': (…), }`) and where
    /// the data starts.
    public struct Header: Equatable, Sendable {
        public let descr: String
        public let fortranOrder: Bool
        public let shape: [Int]
        public let dataOffset: Int
    }

    /// Parses the magic string, version (1.0, 2.0 or 3.0) and header dict.
    /// - Throws: `TorchCheckpointError.corrupt` naming `path`.
    public static func header(of bytes: [UInt8], path: String) throws -> Header {
        func corrupt(_ reason: String) -> TorchCheckpointError { .corrupt(path: path, reason: "npy: " + reason) }
        let magic: [UInt8] = [0x93] + Array("NUMPY".utf8)
        guard bytes.count >= 10, Array(bytes[0..<6]) == magic else {
            throw corrupt("no \\x93NUMPY magic string (not a .npy file)")
        }
        let major = bytes[6]
        let (lengthBytes, start): (Int, Int) =
            switch major {
            case 1: (2, 10)
            case 2, 3: (4, 12)
            default: (0, 0)
            }
        guard lengthBytes > 0 else { throw corrupt("format version \(major).\(bytes[7]) is not 1, 2 or 3") }
        guard bytes.count >= start else { throw corrupt("truncated header") }
        var length = 0
        for k in (0..<lengthBytes).reversed() { length = length << 8 | Int(bytes[8 + k]) }
        guard bytes.count >= start + length else { throw corrupt("the header announces \(length) bytes, past the file's end") }
        let text = String(decoding: bytes[start..<(start + length)], as: UTF8.self)
        // The header is a Python dict literal with exactly these three keys (format.py writes it).
        func value(of key: String) throws -> Substring {
            guard let range = text.range(of: "'\(key)':") else { throw corrupt("header has no '\(key)'") }
            return text[range.upperBound...].drop { $0 == " " }
        }
        let descrText = try value(of: "descr")
        guard descrText.first == "'", let close = descrText.dropFirst().firstIndex(of: "'") else {
            throw corrupt("'descr' is not a quoted type string (structured dtypes are not read)")
        }
        let descr = String(descrText[descrText.index(after: descrText.startIndex)..<close])
        let fortranText = try value(of: "fortran_order")
        guard fortranText.hasPrefix("True") || fortranText.hasPrefix("False") else {
            throw corrupt("'fortran_order' is not True or False")
        }
        let shapeText = try value(of: "shape")
        guard shapeText.first == "(", let end = shapeText.firstIndex(of: ")") else { throw corrupt("'shape' is not a tuple") }
        var shape: [Int] = []
        for field in shapeText[shapeText.index(after: shapeText.startIndex)..<end].split(separator: ",") {
            let trimmed = field.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty { continue }
            guard let n = Int(trimmed), n >= 0 else { throw corrupt("'shape' holds '\(trimmed)'") }
            shape.append(n)
        }
        return Header(descr: descr, fortranOrder: fortranText.hasPrefix("True"), shape: shape, dataOffset: start + length)
    }

    /// `np.load(path, allow_pickle=True).item()` of a dict of numeric arrays (or numbers), in the
    /// dict's order.
    /// - Throws: `TorchCheckpointError`: `.cannotOpen`; `.corrupt` (bad header or pickle);
    ///   `.unsupportedContent` when the file holds something else (an array that is not a 0-d
    ///   object array, values that are not numeric arrays); `.forbiddenGlobal` for any other class.
    public static func loadDictionary(_ path: String) throws -> [(key: NumpyKey, value: NumpyArray)] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TorchCheckpointError.cannotOpen(
                path: path, reason: FileManager.default.fileExists(atPath: path) ? "cannot read it" : "no such file")
        }
        let bytes = [UInt8](data)
        let header = try header(of: bytes, path: path)
        func unsupported(_ reason: String) -> TorchCheckpointError { .unsupportedContent(path: path, reason: reason) }
        guard header.descr == "|O", header.shape.isEmpty else {
            throw unsupported("holds a \(header.descr) array of shape \(header.shape), not a pickled object (np.save of a dict)")
        }
        let (root, graph) = try bytes[header.dataOffset...].withUnsafeBytes { raw in
            var unpickler = Unpickler(path: path, bytes: raw, numpy: true)
            return try unpickler.load()
        }
        // A 0-d object array whose one element is the dict.
        guard case .ndarray(let a) = root, case .list(let l)? = graph.arrays[a].data, graph.lists[l].count == 1,
            case .dict(let d) = graph.lists[l][0]
        else { throw unsupported("the pickled object is a \(root.kind), not a 0-d object array holding a dict") }
        let dict = graph.dicts[d]
        return try zip(dict.keys, dict.values).map { key, value in
            let k: NumpyKey
            switch key {
            case .int(let n): k = .int(n)
            case .string(let s): k = .string(s)
            default: throw unsupported("a dict key is a \(key.kind), not an int or str")
            }
            return (k, try array(value, graph: graph, path: path, key: k))
        }
    }

    package static func array(_ value: PickleValue, graph: PickleGraph, path: String, key: NumpyKey) throws -> NumpyArray {
        func unsupported(_ reason: String) -> TorchCheckpointError {
            .unsupportedContent(path: path, reason: "entry \(key): " + reason)
        }
        switch value {
        case .int(let n): return NumpyArray(code: "i8", shape: [], values: [Double(n)])
        case .float(let x): return NumpyArray(code: "f8", shape: [], values: [x])
        case .ndarray(let index):
            let record = graph.arrays[index]
            guard let d = record.dtype, case .bytes(let b)? = record.data else {
                throw unsupported("an object array, not numbers")
            }
            let dtype = graph.dtypes[d]
            guard !record.fortranOrder || record.shape.count <= 1 else { throw unsupported("a Fortran-ordered array") }
            let values = try NumpyElements.decode(graph.blobs[b], dtype: dtype, path: path)
            guard values.count == record.shape.reduce(1, *) else {
                throw TorchCheckpointError.corrupt(
                    path: path, reason: "npy: entry \(key) has \(values.count) values for shape \(record.shape)")
            }
            return NumpyArray(code: dtype.code, shape: record.shape, values: values)
        default: throw unsupported("a \(value.kind), not a numpy array")
        }
    }
}

/// Raw little-endian elements of a numpy dtype as Doubles.
package enum NumpyElements {
    package static func decode(_ bytes: [UInt8], dtype: NumpyDTypeRecord, path: String) throws -> [Double] {
        guard dtype.byteOrder != ">" else {
            throw TorchCheckpointError.unsupportedContent(path: path, reason: "big-endian numpy data")
        }
        let sizes: [String: Int] = [
            "b1": 1, "i1": 1, "u1": 1, "i2": 2, "u2": 2, "i4": 4, "u4": 4, "i8": 8, "u8": 8, "f4": 4, "f8": 8,
        ]
        guard let size = sizes[dtype.code] else {
            throw TorchCheckpointError.unsupportedContent(
                path: path, reason: "numpy type '\(dtype.code)' is not read (numbers only)")
        }
        guard bytes.count % size == 0 else {
            throw TorchCheckpointError.corrupt(path: path, reason: "npy: \(bytes.count) bytes of '\(dtype.code)' data")
        }
        return stride(from: 0, to: bytes.count, by: size).map { offset in
            var raw: UInt64 = 0
            for k in (0..<size).reversed() { raw = raw << 8 | UInt64(bytes[offset + k]) }
            switch dtype.code {
            case "f4": return Double(Float(bitPattern: UInt32(raw)))
            case "f8": return Double(bitPattern: raw)
            case "i1": return Double(Int8(bitPattern: UInt8(raw)))
            case "i2": return Double(Int16(bitPattern: UInt16(raw)))
            case "i4": return Double(Int32(bitPattern: UInt32(raw)))
            case "i8": return Double(Int64(bitPattern: raw))
            default: return Double(raw)
            }
        }
    }
}
