import Autograd
import Foundation
import Testing

@testable import Datasets

/// The COCO reader's own JSON scanner: numbers must parse to the same Double as a correctly
/// rounded strtod (Python's float), or a vertex on a rounding boundary of rleFrPoly would move.
@Suite struct JSONScannerTests {
    func scan<T>(_ text: String, _ body: (inout JSONScanner) throws -> T) throws -> T {
        let bytes = Array(text.utf8)
        return try bytes.withUnsafeBufferPointer { p in
            var s = JSONScanner(base: p.baseAddress!, end: p.count, path: "t.json")
            return try body(&s)
        }
    }

    @Test func numbersMatchStrtod() throws {
        var g = SeededGenerator(seed: 11)
        var texts = [
            "0", "-0", "0.5", "510.66", "423.01", "1e5", "1E-5", "2.5e+3", "123456789012345678", "0.1", "0.30000000000000004",
            "1e400", "1e-400", "4.9e-324", "1.7976931348623157e308", "9007199254740993", "0.000001", "-12.345e-2",
        ]
        for _ in 0..<2000 {
            let digits = 1 + Int(g.next() % 18)
            var t = String((0..<digits).map { _ in Character(String(g.next() % 10)) })
            let point = Int(g.next() % UInt64(digits + 1))
            if max(1, point) < digits { t.insert(".", at: t.index(t.startIndex, offsetBy: max(1, point))) }
            if g.next() % 4 == 0 { t += "e\(Int(g.next() % 60) - 30)" }
            if g.next() % 2 == 0 { t = "-" + t }
            texts.append(t)
        }
        for text in texts {
            let ours = try scan(text) { try $0.number() }
            let reference = strtod(text, nil)
            #expect(ours.bitPattern == reference.bitPattern, "\(text): \(ours) vs \(reference)")
        }
    }

    @Test func stringsKeysAndSkipping() throws {
        let text = #"{"a": [1, {"b": "x\"y"}, [[true, null]], -2.5e1], "name": "tr\u00e4in \"q\"", "n": 7}"#
        var name = "", n = 0
        try scan(text) { s in
            try s.object { key, s throws(COCOError) in
                if key.equals("name") {
                    name = try s.string()
                } else if key.equals("n") {
                    n = try s.integer()
                } else {
                    try s.skipValue()
                }
            }
        }
        #expect(name == "träin \"q\"" && n == 7)
        for bad in ["{\"a\": [1, 2}", "{\"a\": tru}", "{\"a\": 1 \"b\": 2}", "{\"a\": \"open"] {
            #expect(throws: COCOError.self, "\(bad)") {
                try scan(bad) { s in try s.object { _, s throws(COCOError) in try s.skipValue() } }
            }
        }
        #expect(throws: COCOError.self) { try scan("2.5") { try $0.integer() } }
        #expect(throws: COCOError.self) { try scan("1.") { try $0.number() } }
        #expect(throws: COCOError.self) { try scan("-") { try $0.number() } }
    }
}
