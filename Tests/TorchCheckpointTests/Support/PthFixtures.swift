import Foundation
import Testing

@testable import TorchCheckpoint

/// Tests/Fixtures/pth/, written by scripts/fixtures/make_pth_fixtures.py (torch 2.15).
enum PthFixtures {
    static let directory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/pth")

    static func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    static func bytes(_ name: String) throws -> [UInt8] { [UInt8](try Data(contentsOf: directory.appendingPathComponent(name))) }

    /// What the malicious pickles would create if anything in them ran (make_pth_fixtures.py MARKER).
    static let marker = "/tmp/wsss_torchcheckpoint_payload_ran"

    /// small_expected.json: the small state dict's names in order, and per tensor dtype, shape, values.
    struct Small: Decodable {
        struct Entry: Decodable {
            let dtype: String
            let shape: [Int]
            let values: [Double]
        }
        let names: [String]
        let tensors: [String: Entry]
    }

    static func small() throws -> Small {
        try JSONDecoder().decode(Small.self, from: Data(contentsOf: directory.appendingPathComponent("small_expected.json")))
    }

    /// sam_tiny_expected.json: per tensor of the tiny official SAM, its checksums (float64 in torch).
    struct SamTiny: Decodable {
        struct Entry: Decodable {
            let name: String
            let dtype: String
            let shape: [Int]
            let sum: Double
            let abs_sum: Double
            let weighted_sum: Double
            let first: Double?
            let last: Double?
        }
        let tensors: [Entry]
    }

    static func samTiny() throws -> SamTiny {
        try JSONDecoder().decode(SamTiny.self, from: Data(contentsOf: directory.appendingPathComponent("sam_tiny_expected.json")))
    }
}

/// Runs `body`, expecting it to throw exactly `expected`.
func expectError<T>(
    _ expected: TorchCheckpointError, sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> T
) {
    do {
        _ = try body()
        Issue.record("expected \(expected), nothing was thrown", sourceLocation: sourceLocation)
    } catch let error as TorchCheckpointError {
        #expect(error == expected, sourceLocation: sourceLocation)
    } catch {
        Issue.record("expected \(expected), got \(error)", sourceLocation: sourceLocation)
    }
}

/// Runs `body`, expecting a `TorchCheckpointError` whose message names `path` and contains every one of `fragments`.
func expectFailure<T>(
    naming path: String, _ fragments: String..., sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> T
) {
    do {
        _ = try body()
        Issue.record("\(path): expected an error, nothing was thrown", sourceLocation: sourceLocation)
    } catch let error as TorchCheckpointError {
        let message = error.localizedDescription
        #expect(message.hasPrefix(path + ": "), "\(message)", sourceLocation: sourceLocation)
        for fragment in fragments {
            #expect(message.contains(fragment), "'\(message)' lacks '\(fragment)'", sourceLocation: sourceLocation)
        }
    } catch {
        Issue.record("\(path): expected a TorchCheckpointError, got \(error)", sourceLocation: sourceLocation)
    }
}
