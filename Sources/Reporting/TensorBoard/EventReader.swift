import Foundation
import Protobuf

/// An event file that cannot be read back. Names the file, and for a bad record its byte offset.
public enum TensorBoardReadError: LocalizedError, Equatable {
    /// The file could not be opened or read (missing, a directory, no permission).
    case unreadable(path: String, reason: String)
    /// The record starting at byte `offset` is truncated, fails a CRC, or does not hold an Event.
    case corruptRecord(path: String, offset: Int, reason: String)

    public var errorDescription: String? {
        switch self {
        case .unreadable(let path, let reason): "\(path): cannot read event file: \(reason)"
        case .corruptRecord(let path, let offset, let reason): "\(path): corrupt event record at byte \(offset): \(reason)"
        }
    }
}

extension TensorBoardEvents {
    /// Every event of one event file, in file order (the first is normally the file-version header).
    ///
    /// Records are TFRecords (tensorflow/core/lib/io/record_writer.cc): uint64 length, masked CRC-32C
    /// of those 8 bytes, the data, masked CRC-32C of the data, all little-endian. Unlike TensorBoard,
    /// which waits for a half-written last record to be completed, a truncated record is an error.
    /// - Throws: `TensorBoardReadError.unreadable` when the file cannot be opened;
    ///   `.corruptRecord` (with its offset) on a truncated record, a CRC mismatch or a malformed Event.
    public static func read(path: String) throws -> [Event] {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw TensorBoardReadError.unreadable(path: path, reason: error.localizedDescription)
        }
        let bytes = [UInt8](data)
        return try records(in: bytes, path: path).map { record in
            do {
                return try Event(serialized: bytes[record.data])
            } catch let error as ProtobufDecodingError {
                throw TensorBoardReadError.corruptRecord(
                    path: path, offset: record.offset, reason: "not an Event: \(error.reason)")
            }
        }
    }

    /// The data ranges of a file's TFRecords, each with the offset of its header; CRCs checked.
    static func records(in bytes: [UInt8], path: String) throws -> [(offset: Int, data: Range<Int>)] {
        func uint(_ at: Int, _ size: Int) -> UInt64 {
            var v: UInt64 = 0
            for k in 0..<size { v |= UInt64(bytes[at + k]) << (8 * UInt64(k)) }
            return v
        }
        var result: [(offset: Int, data: Range<Int>)] = []
        var offset = 0
        while offset < bytes.count {
            func corrupt(_ reason: String) -> TensorBoardReadError {
                .corruptRecord(path: path, offset: offset, reason: reason)
            }
            guard bytes.count - offset >= 12 else { throw corrupt("truncated header (\(bytes.count - offset) of 12 bytes)") }
            let length = uint(offset, 8)
            guard CRC32C.maskedChecksum(bytes[offset..<offset + 8]) == UInt32(uint(offset + 8, 4)) else {
                throw corrupt("length CRC mismatch")
            }
            let start = offset + 12
            guard length <= UInt64(bytes.count - start), bytes.count - start - Int(length) >= 4 else {
                throw corrupt("truncated record (\(length) data bytes + 4 CRC bytes announced, \(bytes.count - start) left)")
            }
            let data = start..<start + Int(length)
            guard CRC32C.maskedChecksum(bytes[data]) == UInt32(uint(data.upperBound, 4)) else {
                throw corrupt("data CRC mismatch")
            }
            result.append((offset, data))
            offset = data.upperBound + 4
        }
        return result
    }
}
