import CZlib
import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A file mapped read-only into memory. The mapping lives as long as this object.
///
/// Pages are read from disk on first touch, so mapping a 2.5 GB checkpoint costs address space,
/// not memory; `release(_:)` hands touched pages back once their bytes have been copied.
final class MappedFile: @unchecked Sendable {
    let path: String
    /// First byte; nil for an empty file (mmap refuses length 0).
    let base: UnsafeRawPointer?
    /// File size in bytes.
    let count: Int
    /// Whether `base` was allocated by `init(path:copying:)` rather than mapped.
    private let owned: Bool

    init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw TorchCheckpointError.cannotOpen(path: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            throw TorchCheckpointError.cannotOpen(path: path, reason: String(cString: strerror(errno)))
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw TorchCheckpointError.cannotOpen(
                path: path, reason: (info.st_mode & S_IFMT) == S_IFDIR ? "is a folder" : "not a regular file")
        }
        count = Int(info.st_size)
        owned = false
        if count == 0 {
            base = nil
            return
        }
        let mapped = mmap(nil, count, PROT_READ, MAP_PRIVATE, fd, 0)
        guard let mapped, mapped != MAP_FAILED else {
            throw TorchCheckpointError.cannotOpen(path: path, reason: "mmap failed: \(String(cString: strerror(errno)))")
        }
        base = UnsafeRawPointer(mapped)
    }

    /// In-memory bytes standing in for a file (tests feed damaged archives this way).
    init(path: String, copying bytes: [UInt8]) {
        self.path = path
        count = bytes.count
        owned = true
        if bytes.isEmpty {
            base = nil
        } else {
            let buffer = UnsafeMutableRawPointer.allocate(byteCount: bytes.count, alignment: 64)
            bytes.withUnsafeBytes { buffer.copyMemory(from: $0.baseAddress!, byteCount: bytes.count) }
            base = UnsafeRawPointer(buffer)
        }
    }

    deinit {
        guard let base else { return }
        if owned {
            UnsafeMutableRawPointer(mutating: base).deallocate()
        } else {
            munmap(UnsafeMutableRawPointer(mutating: base), count)
        }
    }

    /// Bytes `range` of the file. Callers check the range first (`contains`).
    func bytes(_ range: Range<Int>) -> UnsafeRawBufferPointer {
        precondition(contains(range), "MappedFile: range \(range) outside \(count) bytes")
        guard let base else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        return UnsafeRawBufferPointer(start: base + range.lowerBound, count: range.count)
    }

    /// Whether `range` lies inside the file.
    func contains(_ range: Range<Int>) -> Bool { range.lowerBound >= 0 && range.upperBound <= count }

    /// Whether `length` bytes from `offset` lie inside the file, without overflowing on wild values.
    func contains(offset: Int, length: Int) -> Bool { offset >= 0 && length >= 0 && offset <= count && length <= count - offset }

    /// Drops the pages of `range` from this process (they stay in the page cache), so that reading
    /// every tensor of a large checkpoint once does not keep the whole file resident. The mapping
    /// is private and never written, so later reads fault the same bytes back in.
    func release(_ range: Range<Int>) {
        guard let base, !owned, contains(range), !range.isEmpty else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = range.lowerBound / page * page
        let end = range.upperBound / page * page  // whole pages only: neighbours may be in use
        guard end > start else { return }
        _ = madvise(UnsafeMutableRawPointer(mutating: base + start), end - start, MADV_DONTNEED)
    }
}

/// One file inside a zip archive, as its central directory describes it.
struct ZipEntry: Equatable {
    /// Name as stored (torch: `<archive>/data.pkl`, `<archive>/data/<key>`, ...).
    let name: String
    /// Compression method: 0 stored, 8 deflate.
    let method: UInt16
    let compressedSize: Int
    let uncompressedSize: Int
    let crc32: UInt32
    /// Offset of the entry's local header.
    let localHeaderOffset: Int
    /// Offset of the first data byte: after the local header, its name and its extra field (torch
    /// pads the local extra field so that storages start 64-byte aligned).
    let dataOffset: Int
}

/// A read-only zip archive over a memory-mapped file: enough of PKWARE's APPNOTE (sections 4.3.7
/// local header, 4.3.12 central directory, 4.3.14-16 ZIP64 end records, 4.5.3 ZIP64 extra field)
/// for the archives `torch.save` writes through miniz. Every offset is checked against the file
/// size; anything inconsistent throws `TorchCheckpointError.corrupt`.
final class ZipArchive: @unchecked Sendable {
    let file: MappedFile
    /// Entries in central-directory order.
    let entries: [ZipEntry]
    private let index: [String: Int]

    var path: String { file.path }

    convenience init(path: String) throws {
        try self.init(file: MappedFile(path: path))
    }

    init(file: MappedFile) throws {
        self.file = file
        let reader = ByteReader(file: file)
        let path = file.path
        func corrupt(_ reason: String) -> TorchCheckpointError { .corrupt(path: path, reason: reason) }

        guard file.count > 0 else { throw corrupt("the file is empty (0 bytes)") }
        let startsLikeZip = file.count >= 4 && reader.u32(at: 0) == Signature.localHeader
        guard let eocd = Self.findEndRecord(reader) else {
            // A zip cut short loses its end record (it is the last thing written).
            if startsLikeZip { throw corrupt("no end-of-central-directory record: the file ends early (truncated?)") }
            throw TorchCheckpointError.notZip(path: path)
        }

        let (entryCount, directoryOffset, directorySize) = try Self.centralDirectory(reader, endRecord: eocd)
        var entries: [ZipEntry] = []
        entries.reserveCapacity(entryCount)
        var index: [String: Int] = [:]
        var cursor = directoryOffset
        let directoryEnd = directoryOffset + directorySize
        for number in 0..<entryCount {
            let (entry, next) = try Self.entry(number, at: cursor, before: directoryEnd, reader)
            if index[entry.name] != nil { throw corrupt("zip entry '\(entry.name)' appears twice") }
            index[entry.name] = entries.count
            entries.append(entry)
            cursor = next
        }
        self.entries = entries
        self.index = index
    }

    /// The central directory's entry count, offset and size, from the end record (APPNOTE
    /// 4.3.16) or, when it asks for them, the ZIP64 end record; checked against the file.
    private static func centralDirectory(_ reader: ByteReader, endRecord eocd: Int) throws
        -> (count: Int, offset: Int, size: Int)
    {
        let file = reader.file
        func corrupt(_ reason: String) -> TorchCheckpointError { .corrupt(path: file.path, reason: reason) }
        // Counts and offsets, 0xFFFF.../all-ones when in ZIP64.
        var entryCount = Int(reader.u16(at: eocd + 10))
        var directorySize = Int(reader.u32(at: eocd + 12))
        var directoryOffset = Int(reader.u32(at: eocd + 16))
        // ZIP64 locator (4.3.15) sits right before the end record; miniz writes it whenever it writes
        // the ZIP64 end record, which torch does for every archive.
        let locator = eocd - 20
        if locator >= 0, reader.u32(at: locator) == Signature.zip64Locator {
            let recordOffset = try reader.int64(at: locator + 8, what: "ZIP64 end record offset")
            guard file.contains(offset: recordOffset, length: 56), reader.u32(at: recordOffset) == Signature.zip64EndRecord
            else { throw corrupt("the ZIP64 locator points to byte \(recordOffset), where there is no ZIP64 end record") }
            entryCount = try reader.int64(at: recordOffset + 32, what: "ZIP64 entry count")
            directorySize = try reader.int64(at: recordOffset + 40, what: "ZIP64 central directory size")
            directoryOffset = try reader.int64(at: recordOffset + 48, what: "ZIP64 central directory offset")
        } else if entryCount == 0xFFFF || directorySize == 0xFFFF_FFFF || directoryOffset == 0xFFFF_FFFF {
            throw corrupt("the end record asks for ZIP64 values but there is no ZIP64 locator")
        }
        guard directoryOffset >= 0, directorySize >= 0, directoryOffset <= file.count - directorySize else {
            throw corrupt(
                "the central directory (\(directorySize) bytes at \(directoryOffset)) lies outside the \(file.count)-byte file")
        }
        // Each central header is at least 46 bytes: a count beyond that is a lie, not a reason to allocate.
        guard entryCount >= 0, entryCount <= directorySize / 46 else {
            throw corrupt("the end record lists \(entryCount) entries, more than a \(directorySize)-byte central directory holds")
        }
        return (entryCount, directoryOffset, directorySize)
    }

    /// Central directory entry `number` at `cursor` (APPNOTE 4.3.12: 46 bytes + name + extra +
    /// comment), checked against its local header; returns it and where the next one starts.
    private static func entry(_ number: Int, at cursor: Int, before directoryEnd: Int, _ reader: ByteReader) throws
        -> (ZipEntry, next: Int)
    {
        let file = reader.file
        let path = file.path
        func corrupt(_ reason: String) -> TorchCheckpointError { .corrupt(path: path, reason: reason) }
        guard cursor <= directoryEnd - 46, reader.u32(at: cursor) == Signature.centralHeader else {
            throw corrupt("central directory entry \(number) at byte \(cursor) is missing or damaged")
        }
        let flags = reader.u16(at: cursor + 8)
        let method = reader.u16(at: cursor + 10)
        let crc = reader.u32(at: cursor + 16)
        var compressed = Int(reader.u32(at: cursor + 20))
        var uncompressed = Int(reader.u32(at: cursor + 24))
        let nameLength = Int(reader.u16(at: cursor + 28))
        let extraLength = Int(reader.u16(at: cursor + 30))
        let commentLength = Int(reader.u16(at: cursor + 32))
        var localOffset = Int(reader.u32(at: cursor + 42))
        let nameStart = cursor + 46
        let extraStart = nameStart + nameLength
        let next = extraStart + extraLength + commentLength
        guard next <= directoryEnd else { throw corrupt("central directory entry \(number) runs past the directory's end") }
        let name = reader.string(nameStart..<extraStart)
        if flags & 1 != 0 {
            throw TorchCheckpointError.unsupportedContent(path: path, reason: "zip entry '\(name)' is encrypted")
        }

        // ZIP64 extended information (4.5.3): only the fields that are all ones above, in this order.
        if compressed == 0xFFFF_FFFF || uncompressed == 0xFFFF_FFFF || localOffset == 0xFFFF_FFFF {
            guard let field = reader.extraField(id: 0x0001, in: extraStart..<(extraStart + extraLength)) else {
                throw corrupt("zip entry '\(name)' needs a ZIP64 extra field and has none")
            }
            var at = field.lowerBound
            func next64(_ what: String) throws -> Int {
                guard at + 8 <= field.upperBound else {
                    throw corrupt("zip entry '\(name)': ZIP64 extra field too short for the \(what)")
                }
                defer { at += 8 }
                return try reader.int64(at: at, what: "\(what) of '\(name)'")
            }
            if uncompressed == 0xFFFF_FFFF { uncompressed = try next64("size") }
            if compressed == 0xFFFF_FFFF { compressed = try next64("compressed size") }
            if localOffset == 0xFFFF_FFFF { localOffset = try next64("local header offset") }
        }

        // Local file header (4.3.7): 30 bytes + name + extra. Its sizes may be zero (torch sets
        // flag bit 3, a trailing data descriptor), so the central directory's sizes rule.
        guard localOffset <= file.count - 30, reader.u32(at: localOffset) == Signature.localHeader else {
            throw corrupt("zip entry '\(name)': no local header at byte \(localOffset)")
        }
        let localName = Int(reader.u16(at: localOffset + 26))
        let localExtra = Int(reader.u16(at: localOffset + 28))
        let dataOffset = localOffset + 30 + localName + localExtra
        guard dataOffset <= file.count, compressed <= file.count - dataOffset else {
            throw corrupt(
                "zip entry '\(name)' (\(compressed) bytes at \(dataOffset)) runs past the end of the \(file.count)-byte file")
        }
        guard reader.string((localOffset + 30)..<(localOffset + 30 + localName)) == name else {
            throw corrupt("zip entry '\(name)': its local header names another file")
        }
        if method == 0, compressed != uncompressed {
            throw corrupt("stored zip entry '\(name)' has size \(uncompressed) but occupies \(compressed) bytes")
        }
        let entry = ZipEntry(
            name: name, method: method, compressedSize: compressed, uncompressedSize: uncompressed, crc32: crc,
            localHeaderOffset: localOffset, dataOffset: dataOffset)
        return (entry, next)
    }

    /// The entry called `name`, if any.
    func entry(named name: String) -> ZipEntry? { index[name].map { entries[$0] } }

    /// The bytes of a stored entry, straight from the mapping (no copy).
    /// - Throws: `.unsupportedContent` for a compressed entry.
    func data(of entry: ZipEntry) throws -> UnsafeRawBufferPointer {
        guard entry.method == 0 else {
            throw TorchCheckpointError.unsupportedContent(
                path: path,
                reason:
                    "zip entry '\(entry.name)' is compressed (method \(entry.method)); torch.save stores entries uncompressed, re-save the checkpoint with torch.save"
            )
        }
        return file.bytes(entry.dataOffset..<(entry.dataOffset + entry.uncompressedSize))
    }

    /// Names of entries whose bytes matched their CRC-32 (each is checked once).
    private var verified: Set<String> = []
    private let verifiedLock = NSLock()

    /// The bytes of a stored entry, after checking them against the CRC-32 the central directory
    /// records (APPNOTE 4.4.7), as unzip does: a flipped or overwritten byte is an error naming
    /// the entry, not a silently different weight.
    /// - Throws: `.corrupt` on a CRC mismatch; `.unsupportedContent` for a compressed entry.
    func verifiedData(of entry: ZipEntry) throws -> UnsafeRawBufferPointer {
        let bytes = try data(of: entry)
        if verifiedLock.withLock({ verified.contains(entry.name) }) { return bytes }
        var crc: UInt = 0
        if let base = bytes.baseAddress, bytes.count > 0 {
            crc = crc32_z(0, base.assumingMemoryBound(to: UInt8.self), bytes.count)
        }
        guard UInt32(truncatingIfNeeded: crc) == entry.crc32 else {
            throw TorchCheckpointError.corrupt(
                path: path,
                reason: "zip entry '\(entry.name)' fails its CRC-32 check (stored \(String(entry.crc32, radix: 16)), "
                    + "computed \(String(UInt32(truncatingIfNeeded: crc), radix: 16))): the file was altered or damaged")
        }
        verifiedLock.withLock { _ = verified.insert(entry.name) }
        return bytes
    }

    /// Finds the end-of-central-directory record: 22 bytes plus a comment of at most 65535 bytes at
    /// the end of the file, so the signature is searched backwards over that window only.
    private static func findEndRecord(_ reader: ByteReader) -> Int? {
        let size = reader.file.count
        guard size >= 22 else { return nil }
        let lowest = max(0, size - 22 - 0xFFFF)
        var at = size - 22
        while at >= lowest {
            // The comment length must reach exactly to the end of the file.
            if reader.u32(at: at) == Signature.endRecord, at + 22 + Int(reader.u16(at: at + 20)) == size { return at }
            at -= 1
        }
        return nil
    }
}

/// Zip record signatures (APPNOTE 4.3), read little-endian.
private enum Signature {
    static let localHeader: UInt32 = 0x0403_4b50
    static let centralHeader: UInt32 = 0x0201_4b50
    static let endRecord: UInt32 = 0x0605_4b50
    static let zip64EndRecord: UInt32 = 0x0606_4b50
    static let zip64Locator: UInt32 = 0x0706_4b50
}

/// Little-endian reads from a mapped file. Callers check ranges before reading.
private struct ByteReader {
    let file: MappedFile

    func u16(at offset: Int) -> UInt16 {
        let b = file.bytes(offset..<(offset + 2))
        return UInt16(b[0]) | UInt16(b[1]) << 8
    }

    func u32(at offset: Int) -> UInt32 {
        let b = file.bytes(offset..<(offset + 4))
        return UInt32(b[0]) | UInt32(b[1]) << 8 | UInt32(b[2]) << 16 | UInt32(b[3]) << 24
    }

    /// An unsigned 64-bit field as Int, refusing values that do not fit (no file is 2^63 bytes).
    func int64(at offset: Int, what: String) throws -> Int {
        guard file.contains(offset: offset, length: 8) else {
            throw TorchCheckpointError.corrupt(path: file.path, reason: "the \(what) lies outside the file")
        }
        let b = file.bytes(offset..<(offset + 8))
        var value: UInt64 = 0
        for i in (0..<8).reversed() { value = value << 8 | UInt64(b[i]) }
        guard value <= UInt64(Int.max) else {
            throw TorchCheckpointError.corrupt(path: file.path, reason: "the \(what) (\(value)) is out of range")
        }
        return Int(value)
    }

    func string(_ range: Range<Int>) -> String { String(decoding: file.bytes(range), as: UTF8.self) }

    /// The payload range of the extra-field block with header `id` inside `block` (4.5.1: id, size, data).
    func extraField(id: UInt16, in block: Range<Int>) -> Range<Int>? {
        var at = block.lowerBound
        while at + 4 <= block.upperBound {
            let fieldID = u16(at: at)
            let size = Int(u16(at: at + 2))
            guard at + 4 + size <= block.upperBound else { return nil }
            if fieldID == id { return (at + 4)..<(at + 4 + size) }
            at += 4 + size
        }
        return nil
    }
}
