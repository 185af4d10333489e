import Autograd
import CHDF5
import CZlib
import Foundation

/// Opts out of libhdf5's exit handler before the library starts (see `chdf5_skip_exit_handler`):
/// every `HDF5File` closes its file itself.
private let libraryPrepared: Void = { _ = chdf5_skip_exit_handler() }()

/// An HDF5 file of named Float32 tensors (and Int32 label arrays) with scalar and string
/// attributes, through the libhdf5 C API. Names are slash paths ("/parameters/conv1.weight");
/// groups on the way are created as needed. Files are readable with h5py:
/// `{k: f[k][()] for k in f["parameters"]}`.
///
/// Every failure of the C library becomes an `HDF5Error` naming the file; HDF5's own error
/// printing is silenced. Each array written carries the CRC-32 of its bytes (attribute `crc32`),
/// checked on every read; a dataset whose declared size the file does not back is refused
/// before allocating.
public final class HDF5File {
    /// How to open a file.
    public enum Mode {
        /// Existing file, read only.
        case read
        /// Existing file, read and write.
        case readWrite
        /// New file, replacing any file at the path.
        case create
    }

    /// Path named in errors: the path the file was opened with, or for a file being written by
    /// `writeAtomically`, its destination.
    public let path: String
    let id: hid_t

    /// Opens or creates the file at `path`.
    /// - Throws: `HDF5Error.missingFile`, `.notAFile`, `.notHDF5` or `.cannotOpen` for unreadable
    ///   input, `.cannotCreate` or `.fileSystem` (with the OS reason) when the file cannot be written.
    public convenience init(path: String, mode: Mode) throws {
        try self.init(path: path, mode: mode, reportingAs: path)
    }

    init(path: String, mode: Mode, reportingAs reported: String) throws {
        _ = libraryPrepared
        // Thread-safe libhdf5 keeps one error stack per thread: silence this thread's printing.
        chdf5_silence_errors()
        self.path = reported
        switch mode {
        case .create:
            // The earliest file format on purpose: the 1.8 format checksums object headers, but
            // keeps large groups in fractal heaps without checksums, whose damage crashed libhdf5
            // 1.10 (SIGSEGV in H5G__dense_iterate) where this format gives an error. The data
            // carries its own CRC-32 (see writeDataset).
            let fid = H5Fcreate(path, chdf5_acc_trunc(), chdf5_default(), chdf5_default())
            guard fid >= 0 else {
                if let reason = Self.osReason() {
                    throw HDF5Error.fileSystem(path: reported, operation: "create", reason: reason)
                }
                throw HDF5Error.cannotCreate(path: reported)
            }
            id = fid
        case .read, .readWrite:
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
                // fileExists follows symbolic links: a dangling one or a loop says more than "no such file".
                if let reason = Self.linkProblem(path) { throw HDF5Error.notAFile(path: path, reason: reason) }
                throw HDF5Error.missingFile(path: path)
            }
            guard !isDirectory.boolValue else { throw HDF5Error.notAFile(path: path, reason: "is a folder") }
            // H5Fis_hdf5 says "not HDF5" for a file it may not read.
            guard access(path, mode == .read ? R_OK : R_OK | W_OK) == 0 else {
                throw HDF5Error.notAFile(path: path, reason: String(cString: strerror(errno)))
            }
            guard H5Fis_hdf5(path) > 0 else { throw HDF5Error.notHDF5(path: path) }
            let fid = H5Fopen(path, mode == .read ? chdf5_acc_rdonly() : chdf5_acc_rdwr(), chdf5_default())
            guard fid >= 0 else { throw HDF5Error.cannotOpen(path: path) }
            id = fid
        }
    }

    /// False once `closeReportingErrors` has closed the file.
    private var isOpen = true

    deinit { if isOpen { H5Fclose(id) } }

    /// Closes the file now, throwing when libhdf5 cannot write what it still buffers.
    func closeReportingErrors() throws {
        isOpen = false
        guard H5Fclose(id) >= 0 else { throw writeFailure(name: "/") }
    }

    /// Writes a new HDF5 file atomically: `body` fills a temporary file next to `path`, which is
    /// then renamed over `path`, so a crash or a full disk never leaves a half-written file
    /// behind and the previous file at `path` stays as it was until the new one is complete.
    /// - Throws: `HDF5Error.fileSystem` with the OS reason ("No space left on device",
    ///   "Read-only file system", "File too large") naming `path`; the temporary file is removed.
    public static func writeAtomically(to path: String, _ body: (HDF5File) throws -> Void) throws {
        let directory = (path as NSString).deletingLastPathComponent
        let temporary = (directory.isEmpty ? "." : directory) + "/.\((path as NSString).lastPathComponent).tmp-\(getpid())"
        // Refuse a folder at the destination before writing anything (rename would fail at the end).
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            throw HDF5Error.notAFile(path: path, reason: "is a folder")
        }
        do {
            do {
                let file = try HDF5File(path: temporary, mode: .create, reportingAs: path)
                try body(file)
                guard H5Fflush(file.id, H5F_SCOPE_GLOBAL) >= 0 else { throw file.writeFailure(name: "/") }
                try file.closeReportingErrors()
            }
            guard rename(temporary, path) == 0 else {
                throw HDF5Error.fileSystem(
                    path: path, operation: "replace (rename from \(temporary))", reason: String(cString: strerror(errno)))
            }
        } catch {
            unlink(temporary)
            throw error
        }
    }

    /// The error for a failed write of `name`: with the OS reason when libhdf5 recorded one
    /// (a full disk is "No space left on device"), else `.writeFailed`.
    func writeFailure(name: String) -> HDF5Error {
        if let reason = Self.osReason() { return .fileSystem(path: path, operation: "write", reason: reason) }
        return .writeFailed(name: name, path: path)
    }

    /// The OS reason libhdf5's file driver put on this thread's error stack, if any.
    static func osReason() -> String? {
        var buffer = [CChar](repeating: 0, count: 256)
        guard chdf5_os_reason(&buffer, buffer.count) == 1 else { return nil }
        return String(cString: buffer)
    }

    /// Why `path` cannot be opened although it is listed: a dangling symbolic link or a loop.
    static func linkProblem(_ path: String) -> String? {
        var info = stat()
        guard lstat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFLNK else { return nil }
        guard stat(path, &info) != 0 else { return nil }
        return errno == ELOOP ? "symbolic link loop" : "dangling symbolic link"
    }

    // MARK: Datasets

    /// Whether a dataset or group exists at `name`.
    public func contains(_ name: String) -> Bool {
        var prefix = ""
        for part in name.split(separator: "/") {
            prefix += "/" + part
            guard H5Lexists(id, prefix, chdf5_default()) > 0 else { return false }
        }
        return true
    }

    /// Writes `tensor` as a Float32 dataset at `name`, replacing an existing one.
    public func write(_ tensor: Tensor, at name: String) throws {
        try writeDataset(
            name, shape: tensor.shape, fileType: chdf5_ieee_f32le(), memoryType: chdf5_native_float(),
            data: UnsafeRawPointer(tensor.storage.base))
    }

    /// Writes integer labels as an Int32 dataset at `name`.
    public func write(_ labels: LabelTensor, at name: String) throws {
        try labels.values.withUnsafeBytes { buffer in
            try writeDataset(
                name, shape: labels.shape, fileType: chdf5_native_int32(), memoryType: chdf5_native_int32(),
                data: buffer.baseAddress!)
        }
    }

    /// Writes bytes (e.g. binary masks) as a UInt8 dataset of `shape` at `name`.
    public func write(bytes: [UInt8], shape: [Int], at name: String) throws {
        precondition(bytes.count == shape.product, "HDF5File.write(bytes:): \(bytes.count) bytes for shape \(shape)")
        try bytes.withUnsafeBytes { buffer in
            try writeDataset(
                name, shape: shape, fileType: chdf5_native_uint8(), memoryType: chdf5_native_uint8(), data: buffer.baseAddress!)
        }
    }

    /// Reads the dataset at `name` as bytes (values converted to UInt8 by libhdf5).
    public func readBytes(_ name: String, expectingShape shape: [Int]? = nil) throws -> (bytes: [UInt8], shape: [Int]) {
        try withDataset(name, expectingShape: shape) { dataset, dims in
            var values = [UInt8](repeating: 0, count: dims.product)
            let status = values.withUnsafeMutableBytes {
                H5Dread(dataset, chdf5_native_uint8(), chdf5_space_all(), chdf5_space_all(), chdf5_default(), $0.baseAddress)
            }
            guard status >= 0 else { throw HDF5Error.readFailed(name: name, path: path) }
            try values.withUnsafeBytes { try verifyChecksum(dataset, name: name, memoryType: chdf5_native_uint8(), bytes: $0) }
            return (values, dims)
        }
    }

    /// Reads the dataset at `name` as Float32 (integer and Float64 data are converted).
    /// - Parameter shape: when given, the dataset must have exactly this shape.
    public func read(_ name: String, expectingShape shape: [Int]? = nil) throws -> Tensor {
        try withDataset(name, expectingShape: shape) { dataset, dims in
            let tensor = Tensor(uninitialized: dims)
            guard
                H5Dread(dataset, chdf5_native_float(), chdf5_space_all(), chdf5_space_all(), chdf5_default(), tensor.storage.base)
                    >= 0
            else {
                throw HDF5Error.readFailed(name: name, path: path)
            }
            try verifyChecksum(
                dataset, name: name, memoryType: chdf5_native_float(),
                bytes: UnsafeRawBufferPointer(start: tensor.storage.base, count: tensor.count * MemoryLayout<Float>.size))
            return tensor
        }
    }

    /// Reads the dataset at `name` as Int32 labels.
    public func readLabels(_ name: String, expectingShape shape: [Int]? = nil) throws -> LabelTensor {
        try withDataset(name, expectingShape: shape) { dataset, dims in
            var values = [Int32](repeating: 0, count: dims.product)
            let status = values.withUnsafeMutableBytes {
                H5Dread(dataset, chdf5_native_int32(), chdf5_space_all(), chdf5_space_all(), chdf5_default(), $0.baseAddress)
            }
            guard status >= 0 else { throw HDF5Error.readFailed(name: name, path: path) }
            try values.withUnsafeBytes { try verifyChecksum(dataset, name: name, memoryType: chdf5_native_int32(), bytes: $0) }
            return LabelTensor(shape: dims, values: values)
        }
    }

    /// The shape of the dataset at `name`.
    public func shape(of name: String) throws -> [Int] {
        try withDataset(name, expectingShape: nil) { _, dims in dims }
    }

    /// Full paths of all datasets under `group` (recursively), sorted.
    public func datasetNames(under group: String = "/") throws -> [String] {
        guard group == "/" || contains(group) else { throw HDF5Error.missingDataset(name: group, path: path) }
        var names: [String] = []
        var pending = [group]
        while let current = pending.popLast() {
            let gid = H5Gopen2(id, current, chdf5_default())
            guard gid >= 0 else { throw HDF5Error.readFailed(name: current, path: path) }
            defer { H5Gclose(gid) }
            let prefix = current == "/" ? "/" : current + "/"
            for child in try linkNames(in: gid, describing: current) {
                let full = prefix + child
                let object = H5Oopen(id, full, chdf5_default())
                guard object >= 0 else { throw HDF5Error.readFailed(name: full, path: path) }
                let type = H5Iget_type(object)
                H5Oclose(object)
                if type == H5I_GROUP { pending.append(full) } else if type == H5I_DATASET { names.append(full) }
            }
        }
        return names.sorted()
    }

    /// Names (not paths) of the groups and datasets directly inside `group`, sorted.
    public func children(of group: String) throws -> [String] {
        guard group == "/" || contains(group) else { throw HDF5Error.missingDataset(name: group, path: path) }
        let gid = H5Gopen2(id, group, chdf5_default())
        guard gid >= 0 else { throw HDF5Error.readFailed(name: group, path: path) }
        defer { H5Gclose(gid) }
        return try linkNames(in: gid, describing: group).sorted()
    }

    // MARK: Internals

    func linkNames(in group: hid_t, describing name: String) throws -> [String] {
        final class Box { var names: [String] = [] }
        let box = Box()
        var index: hsize_t = 0
        let status = H5Literate(
            group, H5_INDEX_NAME, H5_ITER_INC, &index,
            { _, name, _, context in
                Unmanaged<Box>.fromOpaque(context!).takeUnretainedValue().names.append(String(cString: name!))
                return 0
            }, Unmanaged.passUnretained(box).toOpaque())
        guard status >= 0 else { throw HDF5Error.readFailed(name: name, path: path) }
        return box.names
    }

    private func writeDataset(_ name: String, shape: [Int], fileType: hid_t, memoryType: hid_t, data: UnsafeRawPointer) throws {
        if contains(name) { H5Ldelete(id, name, chdf5_default()) }
        var dims = shape.map { hsize_t($0) }
        let space = shape.isEmpty ? H5Screate(H5S_SCALAR) : H5Screate_simple(Int32(shape.count), &dims, nil)
        guard space >= 0 else { throw HDF5Error.writeFailed(name: name, path: path) }
        defer { H5Sclose(space) }
        let linkProperties = H5Pcreate(chdf5_link_create_plist())
        defer { H5Pclose(linkProperties) }
        H5Pset_create_intermediate_group(linkProperties, 1)
        let dataset = H5Dcreate2(id, name, fileType, space, linkProperties, chdf5_default(), chdf5_default())
        guard dataset >= 0 else { throw writeFailure(name: name) }
        defer { H5Dclose(dataset) }
        guard H5Dwrite(dataset, memoryType, chdf5_space_all(), chdf5_space_all(), chdf5_default(), data) >= 0 else {
            throw writeFailure(name: name)
        }
        // The stored bytes' CRC-32 (zlib, GB/s; HDF5's own Fletcher-32 filter needs chunking and
        // runs at ~0.3 GB/s), so a flipped bit in a tensor fails its read instead of changing a
        // weight. Only when the file holds the memory bytes as they are (no conversion).
        if H5Tequal(fileType, memoryType) > 0 {
            let count = shape.reduce(Int(H5Tget_size(memoryType)), *)
            try setAttribute(.int(Int(Self.crc32(data, count: count))), named: Self.checksumAttribute, on: name)
        }
    }

    /// The attribute holding a dataset's CRC-32 (of its bytes as stored, little-endian).
    public static let checksumAttribute = "crc32"

    static func crc32(_ data: UnsafeRawPointer, count: Int) -> UInt32 {
        guard count > 0 else { return 0 }
        return UInt32(truncatingIfNeeded: crc32_z(0, data.assumingMemoryBound(to: UInt8.self), count))
    }

    /// Compares what was read with the dataset's `crc32` attribute, when it has one (files from
    /// h5py or older builds have none) and the bytes were read without conversion.
    private func verifyChecksum(_ dataset: hid_t, name: String, memoryType: hid_t, bytes: UnsafeRawBufferPointer) throws {
        guard H5Aexists(dataset, Self.checksumAttribute) > 0 else { return }
        let type = H5Dget_type(dataset)
        defer { H5Tclose(type) }
        guard H5Tequal(type, memoryType) > 0, let base = bytes.baseAddress else { return }
        guard let stored = try attribute(named: Self.checksumAttribute, on: name)?.intValue else { return }
        let computed = Self.crc32(base, count: bytes.count)
        guard UInt32(truncatingIfNeeded: stored) == computed else {
            throw HDF5Error.checksumMismatch(
                name: name, path: path, stored: UInt32(truncatingIfNeeded: stored), computed: computed)
        }
    }

    /// Refuses a dataset whose header claims more than the file holds before anything is
    /// allocated: a few-KB file can declare 4e9 values that were never written (HDF5 would hand
    /// back its fill value, zeros, as if they were data, after allocating 16 GB). Without filters
    /// the stored bytes must cover the declared size; with compression (h5py's gzip) the
    /// declared size must at least fit in memory.
    private func checkStored(_ dataset: hid_t, name: String, shape: [Int], type: hid_t) throws {
        var declared = Int(H5Tget_size(type))
        for d in shape {
            let (product, overflow) = declared.multipliedReportingOverflow(by: d)
            declared = overflow ? Int.max : product
        }
        guard declared > 0 else { return }
        let stored = Int(H5Dget_storage_size(dataset))
        let creation = H5Dget_create_plist(dataset)
        defer { H5Pclose(creation) }
        let filters = H5Pget_nfilters(creation)
        let checksumOnly = filters == 1 && H5Pget_filter2(creation, 0, nil, nil, nil, 0, nil, nil) == H5Z_FILTER_FLETCHER32
        if filters == 0 || checksumOnly {  // (a Fletcher-32 chunk stores 4 bytes more than its data)
            guard stored >= declared else {
                throw HDF5Error.unbacked(name: name, path: path, shape: shape, declaredBytes: declared, storedBytes: stored)
            }
        } else if declared > Int(clamping: ProcessInfo.processInfo.physicalMemory) {
            throw HDF5Error.unbacked(name: name, path: path, shape: shape, declaredBytes: declared, storedBytes: stored)
        }
    }

    private func withDataset<R>(_ name: String, expectingShape expected: [Int]?, _ body: (hid_t, [Int]) throws -> R) throws -> R {
        guard contains(name) else { throw HDF5Error.missingDataset(name: name, path: path) }
        let dataset = H5Dopen2(id, name, chdf5_default())
        guard dataset >= 0 else { throw HDF5Error.missingDataset(name: name, path: path) }
        defer { H5Dclose(dataset) }
        let type = H5Dget_type(dataset)
        defer { H5Tclose(type) }
        let typeClass = H5Tget_class(type)
        guard typeClass == H5T_FLOAT || typeClass == H5T_INTEGER else {
            throw HDF5Error.unsupportedType(name: name, path: path, what: "not a numeric array")
        }
        let space = H5Dget_space(dataset)
        guard space >= 0 else { throw HDF5Error.readFailed(name: name, path: path) }
        defer { H5Sclose(space) }
        let rank = H5Sget_simple_extent_ndims(space)
        guard rank >= 0 else { throw HDF5Error.readFailed(name: name, path: path) }
        var dims = [hsize_t](repeating: 0, count: Int(rank))
        H5Sget_simple_extent_dims(space, &dims, nil)
        let shape = dims.map { Int($0) }
        if let expected, expected != shape {
            throw HDF5Error.wrongShape(name: name, path: path, expected: expected, found: shape)
        }
        try checkStored(dataset, name: name, shape: shape, type: type)
        return try body(dataset, shape)
    }
}
