import Foundation
import Imaging

#if canImport(Glibc)
    import Glibc
#endif

/// Writes TensorBoard event files, so that `tensorboard --logdir runs/` shows a run's scalars, images
/// and text while it trains.
///
/// Each writer creates its own file, `events.out.tfevents.<unix seconds>.<hostname>.<pid>.<n>`, in
/// `logDirectory` (as torch.utils.tensorboard's SummaryWriter and tensorboard's EventFileWriter do):
/// TensorBoard merges every file of a directory into one run, so a resumed run simply opens a new
/// writer on the same directory. `<n>` counts writers in this process and moves on past any existing
/// name. The file starts with the "brain.Event:2" header event, written at once.
///
/// Events are buffered and appended with plain `write(2)` calls: at `flush()`, `close()`, deinit, and
/// at the first `add…` made `flushInterval` seconds or more after the last flush (there is no
/// background thread). A write error at deinit is lost: call `close()` to see it. Not thread-safe:
/// use one writer from one thread.
public final class TensorBoardWriter {
    /// The directory TensorBoard is pointed at (one run).
    public let logDirectory: String
    /// The event file this writer appends to.
    public let path: String
    /// Buffered events are written at the first add this many seconds after the last flush.
    public let flushInterval: Double

    private var descriptor: Int32
    private var pending: [UInt8] = []
    private var lastFlush: Double
    private let clock: () -> Double

    /// What the header event names as its writer (`source_metadata.writer`).
    public static let sourceWriter = "wsss.Reporting.TensorBoardWriter"

    // Buffered bytes past this are written at once, whatever the time (a burst of images).
    private static let maxPending = 1 << 20
    private static let counterLock = NSLock()
    nonisolated(unsafe) private static var counter = 0

    /// Creates `logDirectory` (and parents) if needed and a new event file in it.
    /// - Parameter flushInterval: seconds between writes of buffered events (default 10; 0 writes every event).
    /// - Throws: `ReportingError.writeFailed` when the directory or the file cannot be created.
    public convenience init(logDirectory: String, flushInterval: Double = 10) throws {
        try self.init(logDirectory: logDirectory, flushInterval: flushInterval, clock: { Date().timeIntervalSince1970 })
    }

    /// As the public init, with the wall clock given (tests write files with fixed times).
    init(logDirectory: String, flushInterval: Double, clock: @escaping () -> Double) throws {
        precondition(flushInterval >= 0, "TensorBoardWriter: flushInterval must be >= 0, got \(flushInterval)")
        self.logDirectory = logDirectory
        self.flushInterval = flushInterval
        self.clock = clock
        do {
            try FileManager.default.createDirectory(atPath: logDirectory, withIntermediateDirectories: true)
        } catch {
            throw ReportingError.writeFailed(path: logDirectory, reason: error.localizedDescription)
        }
        let now = clock()
        let prefix = "events.out.tfevents.\(Int(now.rounded(.down))).\(Self.hostname()).\(getpid())."
        var candidate: String
        var fd: Int32
        repeat {
            candidate = (logDirectory as NSString).appendingPathComponent(prefix + String(Self.nextNumber()))
            fd = open(candidate, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0o644)
        } while fd < 0 && errno == EEXIST
        guard fd >= 0 else { throw ReportingError.writeFailed(path: candidate, reason: String(cString: strerror(errno))) }
        path = candidate
        descriptor = fd
        lastFlush = now
        append(
            TensorBoardEvents.Event(
                wallTime: now, step: 0, fileVersion: TensorBoardEvents.fileVersion, sourceWriter: Self.sourceWriter))
        try flush()
    }

    deinit {
        if descriptor >= 0 {
            try? flush()
            Glibc.close(descriptor)
        }
    }

    /// Logs a scalar (stored as float32, like every TensorBoard scalar summary).
    /// - Parameter wallTime: seconds since 1970 (default: now).
    /// - Throws: `ReportingError.writeFailed` when buffered events cannot be written.
    public func addScalar(_ tag: String, _ value: Double, step: Int, wallTime: Double? = nil) throws {
        try add(TensorBoardEvents.Value(tag: tag, kind: .scalar(Float(value))), step: step, wallTime: wallTime)
    }

    /// Logs an image (1, 3 or 4 channels), PNG-encoded by the Imaging target.
    /// - Throws: `ReportingError.writeFailed` when the image cannot be encoded or events cannot be written.
    public func addImage(_ tag: String, _ image: Imaging.Image, step: Int, wallTime: Double? = nil) throws {
        let png: Data
        do {
            png = try image.pngData()
        } catch {
            throw ReportingError.writeFailed(path: path, reason: "image '\(tag)': \(error.localizedDescription)")
        }
        // summary.proto colorspace: 1 grey, 3 RGB, 4 RGBA — the channel count, for what we encode.
        let encoded = TensorBoardEvents.Image(height: image.height, width: image.width, colorspace: image.channels, encoded: png)
        try add(TensorBoardEvents.Value(tag: tag, kind: .image(encoded)), step: step, wallTime: wallTime)
    }

    /// Logs text for the text dashboard, which renders it as Markdown.
    /// - Throws: `ReportingError.writeFailed` when buffered events cannot be written.
    public func addText(_ tag: String, _ text: String, step: Int, wallTime: Double? = nil) throws {
        try add(TensorBoardEvents.Value(tag: tag, kind: .text(text)), step: step, wallTime: wallTime)
    }

    /// Writes every buffered event to the file.
    /// - Throws: `ReportingError.writeFailed` naming the file (disk full, file removed from under us…).
    public func flush() throws {
        precondition(descriptor >= 0, "TensorBoardWriter: \(path) used after close()")
        lastFlush = clock()
        guard !pending.isEmpty else { return }
        var written = 0
        let failure: String? = pending.withUnsafeBytes { buffer in
            while written < buffer.count {
                let n = Glibc.write(descriptor, buffer.baseAddress! + written, buffer.count - written)
                if n < 0 {
                    if errno == EINTR { continue }
                    return String(cString: strerror(errno))
                }
                written += n
            }
            return nil
        }
        // Keep what was not written, so a later flush does not leave a hole in the record stream.
        pending.removeFirst(written)
        if let failure { throw ReportingError.writeFailed(path: path, reason: failure) }
    }

    /// Flushes and closes the file; the writer must not be used afterwards.
    /// - Throws: `ReportingError.writeFailed` when the last events cannot be written.
    public func close() throws {
        guard descriptor >= 0 else { return }
        defer {
            Glibc.close(descriptor)
            descriptor = -1
        }
        try flush()
    }

    /// Marks a resumed run: TensorBoard drops the events of earlier files at `step` or later (the
    /// steps a killed run logged past its last checkpoint), so the curve continues from the
    /// checkpoint instead of doubling back (as PyTorch's `SummaryWriter(purge_step=)`).
    /// - Throws: `ReportingError.writeFailed`.
    public func purge(fromStep step: Int) throws {
        try write(TensorBoardEvents.Event(wallTime: clock(), step: step, sessionStart: true))
        try flush()
    }

    /// Appends one event (any wall time and step) and flushes when due. For tests and tools that
    /// copy events; the `add…` methods cover logging.
    func write(_ event: TensorBoardEvents.Event) throws {
        precondition(descriptor >= 0, "TensorBoardWriter: \(path) used after close()")
        append(event)
        if pending.count >= Self.maxPending || clock() - lastFlush >= flushInterval { try flush() }
    }

    private func add(_ value: TensorBoardEvents.Value, step: Int, wallTime: Double?) throws {
        try write(TensorBoardEvents.Event(wallTime: wallTime ?? clock(), step: step, values: [value]))
    }

    /// One TFRecord (tensorflow/core/lib/io/record_writer.cc): length, masked CRC of the length
    /// bytes, data, masked CRC of the data, little-endian.
    private func append(_ event: TensorBoardEvents.Event) {
        let data = event.serialized()
        let length = withUnsafeBytes(of: UInt64(data.count).littleEndian) { Array($0) }
        pending.append(contentsOf: length)
        withUnsafeBytes(of: CRC32C.maskedChecksum(length).littleEndian) { pending.append(contentsOf: $0) }
        pending.append(contentsOf: data)
        withUnsafeBytes(of: CRC32C.maskedChecksum(data).littleEndian) { pending.append(contentsOf: $0) }
    }

    private static func nextNumber() -> Int {
        counterLock.lock()
        defer { counterLock.unlock() }
        counter += 1
        return counter - 1
    }

    private static func hostname() -> String {
        var name = [CChar](repeating: 0, count: 256)
        guard gethostname(&name, name.count - 1) == 0 else { return "localhost" }
        let host = String(cString: name)
        // A "/" would make the name a path; TensorBoard only needs "tfevents" in the name.
        return host.isEmpty ? "localhost" : host.replacingOccurrences(of: "/", with: "_")
    }
}
