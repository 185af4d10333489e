import Foundation
import Testing

@testable import TorchCheckpoint

/// The zip reader: torch's layout, ZIP64, and every kind of damage as one clear error.
@Suite struct ZipArchiveTests {
    @Test func listsTorchEntriesWithAlignedData() throws {
        let archive = try ZipArchive(path: PthFixtures.path("small_ordered.pth"))
        let names = archive.entries.map(\.name)
        #expect(names.first == "small_ordered/data.pkl")
        #expect(names.contains("small_ordered/byteorder") && names.contains("small_ordered/data/0"))
        for entry in archive.entries {
            #expect(entry.method == 0 && entry.compressedSize == entry.uncompressedSize, "\(entry.name)")
            // torch pads the local extra field so that every record's data is 64-byte aligned.
            #expect(entry.dataOffset % 64 == 0, "\(entry.name) at \(entry.dataOffset)")
        }
        let order = try #require(archive.entry(named: "small_ordered/byteorder"))
        #expect(String(decoding: try archive.data(of: order), as: UTF8.self) == "little")
    }

    /// The ZIP64 rewrite (all central-directory sizes and offsets in ZIP64 extra fields, ZIP64 end
    /// records) lists the same entries with the same bytes.
    @Test func zip64MatchesThePlainArchive() throws {
        let plain = try ZipArchive(path: PthFixtures.path("small_ordered.pth"))
        let zip64 = try ZipArchive(path: PthFixtures.path("small_zip64.pth"))
        #expect(zip64.entries.map(\.name) == plain.entries.map(\.name))
        for entry in plain.entries {
            let other = try #require(zip64.entry(named: entry.name))
            #expect(other.uncompressedSize == entry.uncompressedSize && other.crc32 == entry.crc32, "\(entry.name)")
            #expect(Array(try zip64.data(of: other)) == Array(try plain.data(of: entry)), "\(entry.name)")
        }
    }

    /// One bit flipped inside a stored tensor leaves every offset valid: only the entry's CRC-32
    /// (APPNOTE 4.4.7) tells, and reading that tensor must refuse it.
    @Test func aFlippedBitInATensorFailsItsCRC() throws {
        let source = PthFixtures.path("small_ordered.pth")
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: source)))
        let archive = try ZipArchive(path: source)
        let storage = try #require(
            archive.entries.filter { $0.name.contains("/data/") }.max { $0.uncompressedSize < $1.uncompressedSize })
        bytes[storage.dataOffset + storage.uncompressedSize / 2] ^= 1
        let damaged = NSTemporaryDirectory() + "wsss-crc-\(UUID().uuidString).pth"
        try Data(bytes).write(to: URL(fileURLWithPath: damaged))
        let checkpoint = try TorchCheckpoint(path: damaged)  // the directory and the pickle are intact
        var refused = 0
        for name in checkpoint.tensorNames {
            do { _ = try checkpoint.tensor(named: name) } catch let error as TorchCheckpointError {
                #expect(
                    error.localizedDescription.contains("'\(storage.name)' fails its CRC-32 check"),
                    "\(error.localizedDescription)")
                refused += 1
            }
        }
        #expect(refused >= 1)
        // The intact file reads, every entry verified.
        let intact = try TorchCheckpoint(path: source)
        for name in intact.tensorNames { _ = try intact.tensor(named: name) }
    }

    @Test func nonZipFilesAreNotZip() {
        for file in ["legacy.pth", "not_a_checkpoint.pth"] {
            let path = PthFixtures.path(file)
            expectError(.notZip(path: path)) { try TorchCheckpoint(path: path) }
        }
        let legacy = TorchCheckpointError.notZip(path: "legacy.pth").localizedDescription
        #expect(legacy.contains("legacy"))
    }

    @Test func damagedArchivesAreCorrupt() {
        let cases: [(String, [String])] = [
            ("empty.pth", ["empty"]),
            ("truncated_in_pickle.pth", ["ends early"]),
            ("truncated_in_storage.pth", ["ends early"]),
            ("truncated_in_directory.pth", ["ends early"]),
            ("truncated_in_end_record.pth", ["ends early"]),
            ("directory_past_end.pth", ["central directory", "outside"]),
        ]
        for (file, fragments) in cases {
            let path = PthFixtures.path(file)
            do {
                _ = try TorchCheckpoint(path: path)
                Issue.record("\(file): accepted")
            } catch let error as TorchCheckpointError {
                guard case .corrupt = error else { Issue.record("\(file): \(error)"); continue }
                for fragment in fragments {
                    #expect(error.localizedDescription.hasPrefix(path + ": corrupt"), "\(error.localizedDescription)")
                    #expect(error.localizedDescription.contains(fragment), "\(error.localizedDescription)")
                }
            } catch { Issue.record("\(file): \(error)") }
        }
    }

    @Test func aMissingFileCannotBeOpened() {
        let path = "/nonexistent/sam_vit_h_4b8939.pth"
        expectFailure(naming: path, "cannot open", "No such file") { try TorchCheckpoint(path: path) }
        expectFailure(naming: "/tmp", "is a folder") { try TorchCheckpoint(path: "/tmp") }
    }

    /// Every truncation of both archives, and seeded random damage to the bytes of their central
    /// directories and local headers: each is refused with a TorchCheckpointError or (if the damage
    /// hit nothing that matters) read; never a crash.
    @Test func damagedBytesNeverCrash() throws {
        for file in ["small_ordered.pth", "small_zip64.pth"] {
            let bytes = try PthFixtures.bytes(file)
            for length in stride(from: 0, to: bytes.count, by: 7) {
                #expect(throws: TorchCheckpointError.self) {
                    try TorchCheckpoint(archive: ZipArchive(file: MappedFile(path: file, copying: Array(bytes[..<length]))))
                }
            }
            var state: UInt64 = 0x2545_F491_4F6C_DD1D
            let tail = bytes.count - 1024  // directory and end records
            for round in 0..<800 {
                var damaged = bytes
                for _ in 0..<2 {
                    state = state &* 6364136223846793005 &+ 1442695040888963407
                    let spot = round % 2 == 0 ? tail + Int(state >> 33) % 1024 : Int(state >> 33) % bytes.count
                    damaged[spot] = UInt8(truncatingIfNeeded: state >> 13)
                }
                do {
                    let checkpoint = try TorchCheckpoint(archive: ZipArchive(file: MappedFile(path: file, copying: damaged)))
                    for name in checkpoint.tensorNames { _ = try checkpoint.tensor(named: name) }
                } catch is TorchCheckpointError {} catch { Issue.record("\(error)") }
            }
        }
    }
}
