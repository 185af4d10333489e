import Foundation
import Testing

@testable import Pickle
@testable import TorchCheckpoint

/// The restricted unpickler refuses anything but a state dict's opcodes and globals, before
/// anything could run, and never crashes on malformed input.
@Suite(.serialized) struct UnpicklerTests {
    /// Opens each malicious checkpoint and proves that its payload did not run: each would create
    /// `PthFixtures.marker` (make_pth_fixtures.py checks that Python's pickle really does).
    @Test func maliciousGlobalsAreRefusedAndNothingRuns() throws {
        try? FileManager.default.removeItem(atPath: PthFixtures.marker)
        for (file, name) in [
            ("evil_os_system.pth", "os.system"), ("evil_posix_system.pth", "posix.system"),
            ("evil_builtins_eval.pth", "builtins.eval"),
        ] {
            let path = PthFixtures.path(file)
            expectError(.forbiddenGlobal(path: path, name: name)) { try TorchCheckpoint(path: path) }
        }
        #expect(!FileManager.default.fileExists(atPath: PthFixtures.marker), "a payload ran")
    }

    @Test func objectBuildingOpcodesAreRefused() throws {
        try? FileManager.default.removeItem(atPath: PthFixtures.marker)
        let inst = PthFixtures.path("evil_inst.pth")
        let offset = try #require(
            Int(
                String(decoding: PthFixtures.bytes("evil_inst.offset"), as: UTF8.self).trimmingCharacters(
                    in: .whitespacesAndNewlines)))
        expectError(.unsupportedOpcode(path: inst, opcode: UInt8(ascii: "i"), offset: offset)) { try TorchCheckpoint(path: inst) }
        // NEWOBJ on collections.OrderedDict: an allowed class, but the opcode is not a state dict's.
        let newobj = PthFixtures.path("evil_newobj.pth")
        expectError(.unsupportedOpcode(path: newobj, opcode: 0x81, offset: 28)) { try TorchCheckpoint(path: newobj) }
        #expect(!FileManager.default.fileExists(atPath: PthFixtures.marker), "a payload ran")
    }

    /// The training arguments DETR-family checkpoints keep beside the weights (`'args':
    /// argparse.Namespace(...)`, pickled as GLOBAL, NEWOBJ, BUILD) read as an inert record; calling
    /// the class (REDUCE) is refused by name.
    @Test func argparseNamespaceIsAnInertRecord() throws {
        // {'args': Namespace(lr=1)} at protocol 2: } ( X'args' c argparse Namespace ) 0x81 } X'lr' K1 s b s .
        var bytes: [UInt8] = [0x80, 2, UInt8(ascii: "}"), UInt8(ascii: "("), UInt8(ascii: "X"), 4, 0, 0, 0]
        bytes += Array("args".utf8) + Array("cargparse\nNamespace\n".utf8)
        bytes += [UInt8(ascii: ")"), 0x81, UInt8(ascii: "}"), UInt8(ascii: "X"), 2, 0, 0, 0] + Array("lr".utf8)
        bytes += [UInt8(ascii: "K"), 1, UInt8(ascii: "s"), UInt8(ascii: "b"), UInt8(ascii: "u"), UInt8(ascii: ".")]
        let (root, graph) = try load(bytes)
        guard case .dict(let index) = root else {
            Issue.record("root is \(root.kind)")
            return
        }
        #expect(graph.dicts[index].values == [.record("argparse.Namespace")])
        // REDUCE on the class would run it.
        let call = [0x80, 2] + Array("cargparse\nNamespace\n".utf8) + [UInt8(ascii: ")"), UInt8(ascii: "R"), UInt8(ascii: ".")]
        expectError(.forbiddenGlobal(path: "t.pkl", name: "argparse.Namespace")) { try load(call) }
    }

    @Test func aPickleCutShortIsCorrupt() {
        let path = PthFixtures.path("pickle_truncated.pth")
        expectFailure(naming: path, "corrupt", "pickle") { try TorchCheckpoint(path: path) }
    }

    /// Unpickles raw bytes.
    func load(_ bytes: [UInt8]) throws -> (PickleValue, PickleGraph) {
        try bytes.withUnsafeBytes { raw in
            var unpickler = Unpickler(path: "t.pkl", bytes: raw)
            return try unpickler.load()
        }
    }

    @Test func valuesFollowPythonSemantics() throws {
        // {'a': -2, 'b': 2.5, 'a': (None, True, 2**40, -1)} via MARK/SETITEMS; 'a' replaced in place.
        var bytes: [UInt8] = [0x80, 2, UInt8(ascii: "}"), UInt8(ascii: "q"), 0, UInt8(ascii: "(")]
        bytes += [0x8c, 1, UInt8(ascii: "a"), UInt8(ascii: "J")] + [0xfe, 0xff, 0xff, 0xff]
        bytes += [0x8c, 1, UInt8(ascii: "b"), UInt8(ascii: "G")] + [0x40, 0x04, 0, 0, 0, 0, 0, 0]
        bytes += [0x8c, 1, UInt8(ascii: "a"), UInt8(ascii: "("), UInt8(ascii: "N"), 0x88]
        bytes += [0x8a, 6, 0, 0, 0, 0, 0, 1, 0x8a, 1, 0xff, UInt8(ascii: "t")]
        bytes += [UInt8(ascii: "u"), UInt8(ascii: "h"), 0, UInt8(ascii: ".")]
        // Stack after SETITEMS: [dict]; BINGET 0 pushes it again; STOP returns the top.
        let (root, graph) = try load(bytes)
        guard case .dict(let d) = root else { Issue.record("root is \(root.kind)"); return }
        let dict = graph.dicts[d]
        #expect(dict.keys == [.string("a"), .string("b")])
        #expect(dict["b"] == .float(2.5))
        guard case .tuple(let t)? = dict["a"] else { Issue.record("'a' is not a tuple"); return }
        #expect(graph.tuples[t] == [.none, .bool(true), .int(1 << 40), .int(-1)])
    }

    @Test func malformedStreamsAreCorrupt() {
        let cases: [(String, [UInt8])] = [
            ("ends at byte 2 without STOP", [0x80, 2]),
            ("pops an empty stack", [UInt8(ascii: ".")]),
            ("memo entry 5 read at byte 0 was never stored", [UInt8(ascii: "h"), 5, UInt8(ascii: ".")]),
            ("has no MARK", [UInt8(ascii: "t")]),
            ("appends to a int", [UInt8(ascii: "K"), 1, UInt8(ascii: "K"), 2, UInt8(ascii: "a")]),
            ("announces 4294967295 bytes", [UInt8(ascii: "X"), 0xff, 0xff, 0xff, 0xff]),
            ("REDUCE at byte 4 calls a int", [UInt8(ascii: "K"), 1, UInt8(ascii: "K"), 2, UInt8(ascii: "R")]),
            ("ends inside the opcode at byte 0", [UInt8(ascii: "J"), 1]),
            ("GLOBAL at byte 0 is not terminated", Array("ctorch\nFloatStorage".utf8)),
        ]
        for (fragment, bytes) in cases {
            expectFailure(naming: "t.pkl", "pickle", fragment) { try load(bytes) }
        }
        // An unknown opcode and a known-dangerous one are refused by opcode, with their offsets.
        expectError(.unsupportedOpcode(path: "t.pkl", opcode: 0xff, offset: 2)) { try load([0x80, 2, 0xff]) }
        expectError(.unsupportedOpcode(path: "t.pkl", opcode: UInt8(ascii: "o"), offset: 1)) {
            try load([UInt8(ascii: "("), UInt8(ascii: "o")])
        }
        expectError(.unsupportedOpcode(path: "t.pkl", opcode: 0x82, offset: 0)) { try load([0x82, 1]) }  // EXT1
        expectError(.forbiddenGlobal(path: "t.pkl", name: "subprocess.Popen")) { try load(Array("csubprocess\nPopen\n".utf8)) }
    }

    /// Every prefix of a real state-dict pickle, and seeded random byte flips of it: each must throw
    /// a TorchCheckpointError or load, never crash or hang.
    @Test func damagedPicklesNeverCrash() throws {
        let archive = try ZipArchive(path: PthFixtures.path("small_ordered.pth"))
        let entry = try #require(archive.entries.first { $0.name.hasSuffix("data.pkl") })
        let pickle = [UInt8](try archive.data(of: entry))
        for length in 0..<pickle.count {
            #expect(throws: TorchCheckpointError.self) { try load(Array(pickle[..<length])) }
        }
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        for _ in 0..<1500 {
            var damaged = pickle
            for _ in 0..<3 {
                state = state &* 6364136223846793005 &+ 1442695040888963407
                damaged[Int(state >> 33) % damaged.count] = UInt8(truncatingIfNeeded: state >> 13)
            }
            do { _ = try load(damaged) } catch is TorchCheckpointError {} catch { Issue.record("\(error)") }
        }
    }
}
