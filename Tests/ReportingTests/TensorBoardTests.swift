import Foundation
import Imaging
import Protobuf
import Testing

@testable import Reporting

/// Tests/Fixtures/tensorboard, made by scripts/fixtures/make_tensorboard_fixtures.py: an event file
/// written by tensorboard's EventFileWriter and, in official.json, what its EventAccumulator reads.
enum TensorBoardFixtures {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/tensorboard").path
    static let start = 1_700_000_000.0  // the script's START: wall time of the file-version event

    struct Expected: Decodable {
        struct Scalar: Decodable, Equatable {
            let wall_time: Double
            let step: Int
            let value: Double
        }
        struct Image: Decodable, Equatable {
            let wall_time: Double
            let step: Int
            let width: Int
            let height: Int
            let png_base64: String
        }
        struct Tensor: Decodable, Equatable {
            let wall_time: Double
            let step: Int
            let plugin: String
            let strings: [String]
        }
        struct Pixels: Decodable {
            let height: Int
            let width: Int
            let channels: Int
            let hwc: [UInt8]
        }
        let first_event_timestamp: Double
        let scalars: [String: [Scalar]]
        let images: [String: [Image]]
        let tensors: [String: [Tensor]]
        let file_name: String
        let image_pixels: Pixels
    }

    static func expected() throws -> Expected {
        let data = try Data(contentsOf: URL(fileURLWithPath: directory + "/official.json"))
        return try JSONDecoder().decode(Expected.self, from: data)
    }

    static var officialPath: String { get throws { directory + "/" + (try expected().file_name) } }
}

/// Our events grouped as EventAccumulator groups them (by tag, in file order), for comparison with official.json.
/// Images keep their PNG bytes, base64 like the JSON.
private func accumulated(_ events: [TensorBoardEvents.Event]) -> (
    scalars: [String: [TensorBoardFixtures.Expected.Scalar]], images: [String: [TensorBoardFixtures.Expected.Image]],
    tensors: [String: [TensorBoardFixtures.Expected.Tensor]]
) {
    var scalars: [String: [TensorBoardFixtures.Expected.Scalar]] = [:]
    var images: [String: [TensorBoardFixtures.Expected.Image]] = [:]
    var tensors: [String: [TensorBoardFixtures.Expected.Tensor]] = [:]
    for event in events {
        for value in event.values {
            switch value.kind {
            case .scalar(let v):
                scalars[value.tag, default: []].append(.init(wall_time: event.wallTime, step: event.step, value: Double(v)))
            case .image(let image):
                images[value.tag, default: []].append(
                    .init(
                        wall_time: event.wallTime, step: event.step, width: image.width, height: image.height,
                        png_base64: image.encoded.base64EncodedString()))
            case .text(let text):
                tensors[value.tag, default: []].append(
                    .init(wall_time: event.wallTime, step: event.step, plugin: "text", strings: [text]))
            case .unsupported(let plugin):
                tensors[value.tag, default: []].append(
                    .init(wall_time: event.wallTime, step: event.step, plugin: plugin, strings: []))
            }
        }
    }
    return (scalars, images, tensors)
}

private func temporaryDirectory() -> String {
    let path = NSTemporaryDirectory() + "wsss-tensorboard-\(UUID().uuidString)"
    try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

private func eventFiles(in directory: String) throws -> [String] {
    try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasPrefix("events.out.tfevents.") }.sorted()
        .map { directory + "/" + $0 }
}

/// A clock the test moves by hand.
private final class ManualClock {
    var now: Double
    init(_ now: Double) { self.now = now }
}

@Suite struct CRC32CTests {
    @Test func knownAnswer() {
        // The CRC-32C check value (RFC 3720 B.4, and every CRC catalogue).
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(CRC32C.checksum([UInt8]()) == 0)
        // iSCSI test vector (RFC 3720 B.4): 32 bytes of zeros.
        #expect(CRC32C.checksum([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)
    }

    @Test func mask() {
        #expect(CRC32C.masked(0) == 0xA282_EAD8)
        let crc: UInt32 = 0xE306_9283
        #expect(CRC32C.masked(crc) == ((crc >> 15) | (crc << 17)) &+ 0xA282_EAD8)
        #expect(CRC32C.maskedChecksum(Array("123456789".utf8)) == CRC32C.masked(0xE306_9283))
    }
}

@Suite struct ProtobufTests {
    @Test func encodesAsTheProtobufGuide() {
        // protobuf.dev encoding guide: field 1 = 150 is 08 96 01; field 2 = "testing" is 12 07 74 65 73 74 69 6e 67.
        var w = ProtobufWriter()
        w.varint(1, 150)
        w.string(2, "testing")
        #expect(w.bytes == [0x08, 0x96, 0x01, 0x12, 0x07, 0x74, 0x65, 0x73, 0x74, 0x69, 0x6E, 0x67])
        // int64 -1: ten bytes of two's complement, not zigzag.
        var n = ProtobufWriter()
        n.int64(1, -1)
        #expect(n.bytes == [0x08] + [UInt8](repeating: 0xFF, count: 9) + [0x01])
    }

    @Test func roundTrips() throws {
        var w = ProtobufWriter()
        let varints: [UInt64] = [0, 1, 127, 128, 300, 1 << 35, .max]
        for (i, v) in varints.enumerated() { w.varint(i + 1, v) }
        w.int64(20, -5)
        w.double(21, 1_700_000_001.25)
        w.float(22, -3.5)
        w.bytes(23, [UInt8]())
        w.message(24) { $0.string(1, "é") }
        w.varint(536_870_911, 9)  // the largest field number
        let fields = try ProtobufField.decode(w.bytes[...])
        #expect(fields.map(\.number) == Array(1...7) + [20, 21, 22, 23, 24, 536_870_911])
        #expect(try fields[0..<7].map { try $0.uint64() } == varints)
        #expect(try fields[7].int64() == -5)
        #expect(try fields[8].double() == 1_700_000_001.25)
        #expect(try fields[9].float() == -3.5)
        #expect(try fields[10].bytes().isEmpty)
        #expect(try fields[11].message().first?.string() == "é")
        #expect(throws: ProtobufDecodingError.self) { try fields[9].double() }  // wrong wire type
    }

    @Test func refusesMalformedBytes() {
        let cases: [[UInt8]] = [
            [0x08, 0x96],  // varint cut short
            [0x12, 0x05, 0x61],  // 5 bytes announced, 1 there
            [0x09, 0x00, 0x00],  // fixed64 cut short
            [0x0B],  // start group: wire type 3
            [0x00, 0x01],  // field number 0
            [0x08] + [UInt8](repeating: 0xFF, count: 11),  // varint past 10 bytes
        ]
        for bytes in cases {
            #expect(throws: ProtobufDecodingError.self, "\(bytes)") { try ProtobufField.decode(bytes[...]) }
        }
    }
}

@Suite struct TensorBoardTests {
    @Test func readsTheOfficialFileAsEventAccumulatorDoes() throws {
        let expected = try TensorBoardFixtures.expected()
        let events = try TensorBoardEvents.read(path: try TensorBoardFixtures.officialPath)
        #expect(events.first?.fileVersion == "brain.Event:2")
        #expect(events.first?.wallTime == expected.first_event_timestamp)
        #expect(events.dropFirst().allSatisfy { $0.fileVersion == nil })
        let ours = accumulated(events)
        #expect(ours.scalars == expected.scalars)
        #expect(ours.images == expected.images)
        #expect(ours.tensors == expected.tensors)
        // torch's summary.image marks RGB as colorspace 3.
        if case .image(let image) = events.flatMap(\.values).first(where: { $0.tag == "samples" })?.kind {
            #expect(image.colorspace == 3)
        } else {
            Issue.record("no image 'samples' in the official file")
        }
    }

    @Test func rewritesTheOfficialRecordsByteForByte() throws {
        // The same events through our encoder and framing give the official writer's exact bytes:
        // field order, skipped defaults, CRCs and text_pb's tensor layout all match.
        let official = try TensorBoardFixtures.officialPath
        let events = try TensorBoardEvents.read(path: official)
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let writer = try TensorBoardWriter(logDirectory: directory, flushInterval: 0, clock: { TensorBoardFixtures.start })
        for event in events.dropFirst() { try writer.write(event) }
        try writer.close()
        let ourBytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: writer.path)))
        let officialBytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: official)))
        let ours = try TensorBoardEvents.records(in: ourBytes, path: writer.path)
        let theirs = try TensorBoardEvents.records(in: officialBytes, path: official)
        try #require(ours.count == theirs.count)
        // The header names its writer (source_metadata): the official one's re-encodes exactly, ours differs there only.
        #expect(events[0].sourceWriter == "tensorboard.summary.writer.event_file_writer")
        #expect(events[0].serialized() == Array(officialBytes[theirs[0].data]))
        var header = try TensorBoardEvents.Event(serialized: ourBytes[ours[0].data])
        #expect(header.sourceWriter == TensorBoardWriter.sourceWriter)
        header.sourceWriter = events[0].sourceWriter
        #expect(header == events[0])
        for (index, (a, b)) in zip(ours, theirs).enumerated().dropFirst() {
            let tag = events[index].values.first?.tag ?? "?"
            if tag.hasSuffix("/text_summary") {
                // torch's add_text gives its tensor shape [1]; we write text_pb's rank 0, whose empty
                // shape message is 4 bytes shorter than {dim {size: 1}}.
                #expect(a.data.count == b.data.count - 4, "\(tag)")
            } else {
                #expect(
                    Array(ourBytes[a.offset..<a.data.upperBound + 4]) == Array(officialBytes[b.offset..<b.data.upperBound + 4]),
                    "record \(index) (\(tag)) differs")
            }
        }
    }

    /// Writes the fixture's events with the public API. Set TENSORBOARD_CHECK_DIR to keep the file there
    /// for `make_tensorboard_fixtures.py --check DIR` (the fidelity check against tensorboard itself).
    @Test func writerOutputReadsBackAsTheOfficialEvents() throws {
        let expected = try TensorBoardFixtures.expected()
        let keep = ProcessInfo.processInfo.environment["TENSORBOARD_CHECK_DIR"]
        let directory = keep ?? temporaryDirectory()
        defer { if keep == nil { try? FileManager.default.removeItem(atPath: directory) } }
        let pixels = expected.image_pixels
        let image = Image(width: pixels.width, height: pixels.height, channels: pixels.channels, pixels: pixels.hwc)
        let start = TensorBoardFixtures.start

        let writer = try TensorBoardWriter(logDirectory: directory, flushInterval: 10, clock: { start })
        try writer.addScalar("train/loss", 0.75, step: 0, wallTime: start + 1.25)
        try writer.addScalar("train/loss", 0.5, step: 1, wallTime: start + 2.5)
        try writer.addScalar("train/loss", 0.25, step: 2, wallTime: start + 3.75)
        try writer.addScalar("train/lr", 1e-3, step: 2, wallTime: start + 3.75)
        try writer.addImage("samples", image, step: 3, wallTime: start + 4.0)
        try writer.addText(
            "notes", "**loss** fell: 0.75 → 0.25\n\n| a | b |\n|---|---|\n| 1 | 2 |", step: 3, wallTime: start + 4.5)
        try writer.addText("torch_notes/text_summary", "from add_text", step: 4, wallTime: start + 5.0)
        try writer.addScalar("val/margin", -3.5, step: 1 << 33 + 5, wallTime: start + 6.0)
        try writer.close()

        let name = (writer.path as NSString).lastPathComponent
        #expect(name.hasPrefix("events.out.tfevents.1700000000."))
        #expect(name.hasSuffix(".\(getpid()).\(name.split(separator: ".").last!)"))
        let events = try TensorBoardEvents.read(path: writer.path)
        #expect(
            events.first
                == TensorBoardEvents.Event(
                    wallTime: start, step: 0, fileVersion: "brain.Event:2",
                    sourceWriter: TensorBoardWriter.sourceWriter))
        let ours = accumulated(events)
        #expect(ours.scalars == expected.scalars)
        #expect(ours.tensors == expected.tensors)
        // Our PNG comes from libpng, the official one from PIL: compare what they decode to.
        let written = try #require(ours.images["samples"]?.first)
        let official = try #require(expected.images["samples"]?.first)
        #expect(
            [written.wall_time, Double(written.step), Double(written.width), Double(written.height)]
                == [official.wall_time, Double(official.step), Double(official.width), Double(official.height)])
        let png = NSTemporaryDirectory() + "wsss-tensorboard-\(UUID().uuidString).png"
        defer { try? FileManager.default.removeItem(atPath: png) }
        try #require(Data(base64Encoded: written.png_base64)).write(to: URL(fileURLWithPath: png))
        #expect(try Image.read(from: png) == image)
    }

    @Test func aResumedRunAddsAFileBesideTheFirst() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let first = try TensorBoardWriter(logDirectory: directory + "/run", flushInterval: 0, clock: { 1_700_000_000 })
        try first.addScalar("loss", 1, step: 0)
        try first.close()
        // Same second, same process: the counter moves on, nothing is overwritten.
        let second = try TensorBoardWriter(logDirectory: directory + "/run", flushInterval: 0, clock: { 1_700_000_000 })
        try second.addScalar("loss", 0.5, step: 1)
        try second.close()
        #expect(first.path != second.path)
        let files = try eventFiles(in: directory + "/run")
        #expect(files.count == 2)
        let steps = try files.flatMap { try TensorBoardEvents.read(path: $0) }.filter { !$0.values.isEmpty }.map(\.step)
        #expect(steps.sorted() == [0, 1])
    }

    @Test func buffersUntilTheFlushIntervalHasPassed() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let clock = ManualClock(1_700_000_000)
        let writer = try TensorBoardWriter(logDirectory: directory, flushInterval: 10, clock: { clock.now })
        func stepsOnDisk() throws -> [Int] { try TensorBoardEvents.read(path: writer.path).dropFirst().map(\.step) }
        #expect(try TensorBoardEvents.read(path: writer.path).map(\.fileVersion) == ["brain.Event:2"])  // header at once
        try writer.addScalar("loss", 1, step: 1)
        clock.now += 9
        try writer.addScalar("loss", 1, step: 2)
        #expect(try stepsOnDisk() == [])
        clock.now += 1
        try writer.addScalar("loss", 1, step: 3)
        #expect(try stepsOnDisk() == [1, 2, 3])
        try writer.addText("note", "x", step: 4)
        try writer.flush()
        #expect(try stepsOnDisk() == [1, 2, 3, 4])
    }

    @Test func wallTimeDefaultsToNow() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let before = Date().timeIntervalSince1970
        let writer = try TensorBoardWriter(logDirectory: directory)
        try writer.addScalar("loss", 2, step: 7)
        try writer.close()
        let events = try TensorBoardEvents.read(path: writer.path)
        #expect(events.count == 2)
        #expect(events.allSatisfy { $0.wallTime >= before && $0.wallTime <= Date().timeIntervalSince1970 })
    }

    @Test func unwritableDirectoryIsAWriteError() {
        #expect(throws: ReportingError.self) { try TensorBoardWriter(logDirectory: "/dev/null/runs") }
        do {
            _ = try TensorBoardWriter(logDirectory: "/dev/null/runs")
        } catch let error as ReportingError {
            #expect(error.localizedDescription.hasPrefix("/dev/null/runs: cannot write: "))
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test func corruptRecordsAreNamedWithTheirOffset() throws {
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: try TensorBoardFixtures.officialPath)))
        let header = try TensorBoardEvents.records(in: bytes, path: "x")
        let second = try #require(header.dropFirst().first)
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/events.out.tfevents.bad"
        func expectCorrupt(_ file: [UInt8], at offset: Int, _ reason: String, sourceLocation: SourceLocation = #_sourceLocation)
            throws
        {
            try Data(file).write(to: URL(fileURLWithPath: path))
            #expect(
                throws: TensorBoardReadError.corruptRecord(path: path, offset: offset, reason: reason),
                sourceLocation: sourceLocation
            ) {
                try TensorBoardEvents.read(path: path)
            }
        }
        var flippedData = bytes
        flippedData[second.data.lowerBound] ^= 0x01
        try expectCorrupt(flippedData, at: second.offset, "data CRC mismatch")
        var flippedLength = bytes
        flippedLength[second.offset] ^= 0x01
        try expectCorrupt(flippedLength, at: second.offset, "length CRC mismatch")
        let cut = Array(bytes[..<(second.data.upperBound + 2)])
        try expectCorrupt(
            cut, at: second.offset,
            "truncated record (\(second.data.count) data bytes + 4 CRC bytes announced, \(second.data.count + 2) left)")
        try expectCorrupt(Array(bytes[..<(second.offset + 5)]), at: second.offset, "truncated header (5 of 12 bytes)")
        // A valid record whose data is not an Event (a varint cut short).
        var garbage = Array(bytes[..<second.offset])
        let payload: [UInt8] = [0x10, 0xFF]
        let length = withUnsafeBytes(of: UInt64(payload.count).littleEndian) { Array($0) }
        garbage += length + withUnsafeBytes(of: CRC32C.maskedChecksum(length).littleEndian) { Array($0) }
        garbage += payload + withUnsafeBytes(of: CRC32C.maskedChecksum(payload).littleEndian) { Array($0) }
        try expectCorrupt(garbage, at: second.offset, "not an Event: truncated varint")
        let message = TensorBoardReadError.corruptRecord(path: path, offset: 12, reason: "data CRC mismatch").localizedDescription
        #expect(message == "\(path): corrupt event record at byte 12: data CRC mismatch")
        #expect(throws: TensorBoardReadError.self) { try TensorBoardEvents.read(path: directory + "/missing") }
    }

    @Test func unknownValueKindsAreKeptAsUnsupported() throws {
        // A histogram (Summary.Value field 5) and a tensor of another plugin: read, not misread.
        var w = ProtobufWriter()
        w.double(1, 1)
        w.int64(2, 3)
        w.message(5) { summary in
            summary.message(1) { v in
                v.string(1, "weights")
                v.message(5) { $0.double(1, 0) }
            }
            summary.message(1) { v in
                v.string(1, "pr")
                v.message(8) { $0.varint(1, 1) }
                v.message(9) { $0.message(1) { $0.string(1, "pr_curves") } }
            }
        }
        let event = try TensorBoardEvents.Event(serialized: w.bytes[...])
        #expect(
            event.values == [
                .init(tag: "weights", kind: .unsupported(pluginName: "")),
                .init(tag: "pr", kind: .unsupported(pluginName: "pr_curves")),
            ])
    }
}

/// A resumed run's purge marker: event.proto's `session_log { status: START }` at the step it
/// resumes from (what PyTorch's `SummaryWriter(purge_step=)` writes), read back as such.
@Suite struct TensorBoardPurgeTests {
    @Test func sessionStartEncodesAsEventProto() throws {
        let event = TensorBoardEvents.Event(wallTime: 0, step: 7, sessionStart: true)
        // step (field 2, varint 7), session_log (field 6, 2 bytes: status field 1 = START 1).
        #expect(event.serialized() == [0x10, 0x07, 0x32, 0x02, 0x08, 0x01])
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let writer = try TensorBoardWriter(logDirectory: directory, flushInterval: 0)
        try writer.addScalar("train/loss", 1, step: 5)
        try writer.purge(fromStep: 6)
        try writer.close()
        let events = try TensorBoardEvents.read(path: try #require(try eventFiles(in: directory).first))
        #expect(events.count == 3 && events[2].sessionStart && events[2].step == 6 && events[2].values.isEmpty)
        #expect(!events[1].sessionStart)
    }
}
