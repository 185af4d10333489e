import Foundation

// The few pieces of the protobuf wire format (protobuf.dev/programming-guides/encoding) that
// TensorBoard's Event, Summary and TensorProto messages and Caffe's NetParameter need, written by
// hand: swift-protobuf's code generator is too slow to build on this machine for a few small
// messages. `package` access: shared by Reporting and Checkpoints, not part of `import WSSS`.

/// How a field's value is laid out on the wire (the low 3 bits of its key).
package enum WireType: UInt64 {
    case varint = 0
    case fixed64 = 1
    case lengthDelimited = 2
    case fixed32 = 5
}

/// Appends protobuf fields to a byte buffer, in the order they are written. Callers write fields in
/// ascending field number and skip proto3 defaults, as the official serializers do, so that our bytes
/// equal theirs.
package struct ProtobufWriter {
    package private(set) var bytes: [UInt8] = []

    package init() {}

    private mutating func key(_ field: Int, _ wireType: WireType) {
        precondition(field > 0, "protobuf field numbers start at 1, got \(field)")
        rawVarint(UInt64(field) << 3 | wireType.rawValue)
    }

    private mutating func rawVarint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(v & 0x7F) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    private mutating func littleEndian<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    /// An unsigned varint field (uint32, uint64, enum, bool).
    package mutating func varint(_ field: Int, _ value: UInt64) {
        key(field, .varint)
        rawVarint(value)
    }

    /// An int32 or int64 field: negative values take ten bytes (two's complement, not zigzag).
    package mutating func int64(_ field: Int, _ value: Int64) {
        varint(field, UInt64(bitPattern: value))
    }

    /// A double field (fixed64, IEEE 754 little-endian).
    package mutating func double(_ field: Int, _ value: Double) {
        key(field, .fixed64)
        littleEndian(value.bitPattern)
    }

    /// A float field (fixed32, IEEE 754 little-endian).
    package mutating func float(_ field: Int, _ value: Float) {
        key(field, .fixed32)
        littleEndian(value.bitPattern)
    }

    /// A bytes field.
    package mutating func bytes<C: Collection<UInt8>>(_ field: Int, _ value: C) {
        key(field, .lengthDelimited)
        rawVarint(UInt64(value.count))
        bytes.append(contentsOf: value)
    }

    /// A string field (UTF-8).
    package mutating func string(_ field: Int, _ value: String) {
        bytes(field, Array(value.utf8))
    }

    /// An embedded message field, built by `body` (an empty body still writes the field: presence).
    package mutating func message(_ field: Int, _ body: (inout ProtobufWriter) -> Void) {
        var inner = ProtobufWriter()
        body(&inner)
        bytes(field, inner.bytes)
    }
}

/// Why bytes are not a valid protobuf message.
package struct ProtobufDecodingError: Error, Equatable {
    package let reason: String

    package init(reason: String) { self.reason = reason }
}

/// One field as read from the wire; interpretation (signedness, float or int, string or message) is
/// the caller's, who knows the schema.
package struct ProtobufField: Equatable {
    package enum Value: Equatable {
        case varint(UInt64)
        case fixed64(UInt64)
        case fixed32(UInt32)
        case lengthDelimited(ArraySlice<UInt8>)
    }

    package let number: Int
    package let value: Value

    package init(number: Int, value: Value) {
        self.number = number
        self.value = value
    }

    /// The fields of one message, in wire order (unknown fields included, for the caller to skip).
    /// - Throws: `ProtobufDecodingError` on a truncated field, an over-long varint, or a group or
    ///   reserved wire type (groups are not used by any message read here).
    package static func decode(_ bytes: ArraySlice<UInt8>) throws -> [ProtobufField] {
        var fields: [ProtobufField] = []
        var i = bytes.startIndex
        func varint() throws -> UInt64 {
            var result: UInt64 = 0
            var shift: UInt64 = 0
            while true {
                guard i < bytes.endIndex else { throw ProtobufDecodingError(reason: "truncated varint") }
                let byte = bytes[i]
                i += 1
                guard shift < 64 else { throw ProtobufDecodingError(reason: "varint longer than 10 bytes") }
                result |= UInt64(byte & 0x7F) << shift
                if byte & 0x80 == 0 { return result }
                shift += 7
            }
        }
        func fixed(_ size: Int) throws -> UInt64 {
            guard bytes.endIndex - i >= size else {
                throw ProtobufDecodingError(reason: "truncated fixed\(size * 8) field")
            }
            var result: UInt64 = 0
            for k in 0..<size { result |= UInt64(bytes[i + k]) << (8 * UInt64(k)) }
            i += size
            return result
        }
        while i < bytes.endIndex {
            let key = try varint()
            let number = key >> 3
            guard number > 0, number < 1 << 29 else { throw ProtobufDecodingError(reason: "field number \(number) out of range") }
            let value: Value
            switch key & 7 {
            case WireType.varint.rawValue: value = .varint(try varint())
            case WireType.fixed64.rawValue: value = .fixed64(try fixed(8))
            case WireType.fixed32.rawValue: value = .fixed32(UInt32(try fixed(4)))
            case WireType.lengthDelimited.rawValue:
                let length = try varint()
                guard length <= UInt64(bytes.endIndex - i) else {
                    throw ProtobufDecodingError(reason: "field \(number) claims \(length) bytes, \(bytes.endIndex - i) left")
                }
                value = .lengthDelimited(bytes[i..<(i + Int(length))])
                i += Int(length)
            default: throw ProtobufDecodingError(reason: "field \(number) has unsupported wire type \(key & 7)")
            }
            fields.append(ProtobufField(number: Int(number), value: value))
        }
        return fields
    }

    /// The values of a packed repeated varint field (`[packed = true]` int32/int64/uint64/bool).
    package static func varints(_ bytes: ArraySlice<UInt8>) throws -> [UInt64] {
        var out: [UInt64] = []
        var value: UInt64 = 0
        var shift: UInt64 = 0
        for byte in bytes {
            guard shift < 64 else { throw ProtobufDecodingError(reason: "varint longer than 10 bytes") }
            value |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 {
                out.append(value)
                (value, shift) = (0, 0)
            } else {
                shift += 7
            }
        }
        guard shift == 0 else { throw ProtobufDecodingError(reason: "truncated packed varint") }
        return out
    }

    // Typed views; a wire type that does not match the schema is an error, not a silent zero.

    package func uint64() throws -> UInt64 {
        guard case .varint(let v) = value else { throw mismatch("varint") }
        return v
    }

    package func int64() throws -> Int64 { Int64(bitPattern: try uint64()) }

    package func double() throws -> Double {
        guard case .fixed64(let v) = value else { throw mismatch("double") }
        return Double(bitPattern: v)
    }

    package func float() throws -> Float {
        guard case .fixed32(let v) = value else { throw mismatch("float") }
        return Float(bitPattern: v)
    }

    package func bytes() throws -> ArraySlice<UInt8> {
        guard case .lengthDelimited(let v) = value else { throw mismatch("length-delimited") }
        return v
    }

    package func string() throws -> String {
        guard let s = String(validating: try bytes(), as: UTF8.self) else {
            throw ProtobufDecodingError(reason: "field \(number) is not valid UTF-8")
        }
        return s
    }

    package func message() throws -> [ProtobufField] { try ProtobufField.decode(try bytes()) }

    private func mismatch(_ expected: String) -> ProtobufDecodingError {
        ProtobufDecodingError(reason: "field \(number): expected \(expected), got \(value)")
    }
}
