import Foundation

/// A read-only file mapped into memory (mmap): COCO's instances_train2014.json is ~330 MB, and
/// a tree of Foundation objects for it takes many GB; we scan the bytes instead.
final class MappedFile: @unchecked Sendable {
    let path: String
    let base: UnsafePointer<UInt8>
    let count: Int
    private let mapping: UnsafeMutableRawPointer?

    init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else {
            throw COCOError.badField(
                path: path, owner: "file", field: path, reason: "cannot be opened (\(String(cString: strerror(errno))))")
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
            throw COCOError.badField(path: path, owner: "file", field: path, reason: "is not a regular file")
        }
        count = Int(info.st_size)
        guard count > 0 else { throw COCOError.malformedJSON(path: path, offset: 0, reason: "the file is empty") }
        guard let p = mmap(nil, count, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else {
            throw COCOError.badField(
                path: path, owner: "file", field: path, reason: "cannot be mapped (\(String(cString: strerror(errno))))")
        }
        mapping = p
        base = UnsafePointer(p.assumingMemoryBound(to: UInt8.self))
    }

    deinit { if let mapping { munmap(mapping, count) } }
}

/// A minimal JSON scanner over raw bytes (RFC 8259): the values COCO files hold, read in place,
/// with every structural error reported at its byte offset. Numbers parse to the same Double
/// as Python's float() (Clinger's fast path, else strtod on a copy).
struct JSONScanner {
    let base: UnsafePointer<UInt8>
    let end: Int
    var position: Int
    let path: String

    init(base: UnsafePointer<UInt8>, start: Int = 0, end: Int, path: String) {
        (self.base, self.position, self.end, self.path) = (base, start, end, path)
    }

    func fail(_ reason: String, at offset: Int? = nil) -> COCOError {
        let at = offset ?? position
        return .malformedJSON(path: path, offset: at, reason: at >= end ? "the file ends early (truncated?); \(reason)" : reason)
    }

    @inline(__always) mutating func skipWhitespace() {
        while position < end {
            let c = base[position]
            guard c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 else { return }
            position += 1
        }
    }

    /// The next non-blank byte, not consumed (0 at the end).
    @inline(__always) mutating func peek() -> UInt8 {
        skipWhitespace()
        return position < end ? base[position] : 0
    }

    mutating func expect(_ byte: UInt8, _ what: String) throws(COCOError) {
        guard peek() == byte else { throw fail("expected \(what)") }
        position += 1
    }

    /// Iterates an array: calls `element` with the scanner at each element.
    mutating func array(_ element: (inout JSONScanner) throws(COCOError) -> Void) throws(COCOError) {
        try expect(UInt8(ascii: "["), "'['")
        if peek() == UInt8(ascii: "]") {
            position += 1
            return
        }
        while true {
            try element(&self)
            switch peek() {
            case UInt8(ascii: ","): position += 1
            case UInt8(ascii: "]"):
                position += 1
                return
            default: throw fail("expected ',' or ']' in an array")
            }
        }
    }

    /// Iterates an object: calls `member` with each key's raw bytes and the scanner at its value.
    mutating func object(_ member: (UnsafeRawBufferPointer, inout JSONScanner) throws(COCOError) -> Void) throws(COCOError) {
        try expect(UInt8(ascii: "{"), "'{'")
        if peek() == UInt8(ascii: "}") {
            position += 1
            return
        }
        while true {
            guard peek() == UInt8(ascii: "\"") else { throw fail("expected a key string") }
            let key = try rawString()
            try expect(UInt8(ascii: ":"), "':' after a key")
            skipWhitespace()
            try member(key, &self)
            switch peek() {
            case UInt8(ascii: ","): position += 1
            case UInt8(ascii: "}"):
                position += 1
                return
            default: throw fail("expected ',' or '}' in an object")
            }
        }
    }

    /// A string's bytes between the quotes, escapes left as they are (keys, RLE counts).
    mutating func rawString() throws(COCOError) -> UnsafeRawBufferPointer {
        try expect(UInt8(ascii: "\""), "a string")
        let start = position
        while position < end {
            let c = base[position]
            if c == UInt8(ascii: "\"") {
                position += 1
                return UnsafeRawBufferPointer(start: base + start, count: position - 1 - start)
            }
            if c == UInt8(ascii: "\\") { position += 1 } else if c < 0x20 { throw fail("control character in a string") }
            position += 1
        }
        throw fail("unterminated string", at: end)
    }

    /// A string value with its escapes resolved (file and category names).
    mutating func string() throws(COCOError) -> String {
        let start = position
        let raw = try rawString()
        guard raw.contains(UInt8(ascii: "\\")) else { return String(decoding: raw, as: UTF8.self) }
        // Rare (names with quotes or non-ASCII escapes): let Foundation resolve the escapes.
        let quoted = Data(UnsafeRawBufferPointer(start: base + start, count: position - start))
        guard let value = try? JSONSerialization.jsonObject(with: quoted, options: [.fragmentsAllowed]) as? String else {
            throw fail("bad escape in a string", at: start)
        }
        return value
    }

    /// Bytes that may appear in a number.
    @inline(__always) static func isNumberByte(_ c: UInt8) -> Bool {
        (c >= 0x30 && c <= 0x39) || c == UInt8(ascii: "-") || c == UInt8(ascii: "+") || c == UInt8(ascii: ".")
            || c == UInt8(ascii: "e")
            || c == UInt8(ascii: "E")
    }

    static let powersOfTen: [Double] = (0...22).map { pow(10, Double($0)) }

    /// A number, as Python's float() would read it.
    mutating func number() throws(COCOError) -> Double {
        skipWhitespace()
        let start = position
        var p = position
        var negative = false
        if p < end && base[p] == UInt8(ascii: "-") {
            negative = true
            p += 1
        }
        var mantissa: UInt64 = 0
        var digits = 0
        var fraction = 0
        var sawDigit = false
        while p < end, base[p] >= 0x30, base[p] <= 0x39 {
            if mantissa != 0 || base[p] != 0x30 { digits += 1 }
            if digits <= 19 { mantissa = mantissa &* 10 &+ UInt64(base[p] - 0x30) }
            sawDigit = true
            p += 1
        }
        if p < end && base[p] == UInt8(ascii: ".") {
            p += 1
            var sawFraction = false
            while p < end, base[p] >= 0x30, base[p] <= 0x39 {
                if mantissa != 0 || base[p] != 0x30 { digits += 1 }
                if digits <= 19 { mantissa = mantissa &* 10 &+ UInt64(base[p] - 0x30) }
                fraction += 1
                sawFraction = true
                p += 1
            }
            guard sawFraction else { throw fail("a number with no digits after '.'", at: start) }
        }
        guard sawDigit else { throw fail("expected a value", at: start) }
        var exponent = 0
        if p < end && (base[p] == UInt8(ascii: "e") || base[p] == UInt8(ascii: "E")) {
            p += 1
            var sign = 1
            if p < end && (base[p] == UInt8(ascii: "+") || base[p] == UInt8(ascii: "-")) {
                if base[p] == UInt8(ascii: "-") { sign = -1 }
                p += 1
            }
            var sawExponent = false
            while p < end, base[p] >= 0x30, base[p] <= 0x39 {
                if exponent < 100_000 { exponent = exponent * 10 + Int(base[p] - 0x30) }
                sawExponent = true
                p += 1
            }
            guard sawExponent else { throw fail("a number with an empty exponent", at: start) }
            exponent *= sign
        }
        position = p
        let power = exponent - fraction
        // Clinger's fast path: an exact mantissa (< 2^53) and an exact power of ten (≤ 10^22) give
        // a correctly rounded quotient or product — the same Double as strtod.
        if digits <= 15 && abs(power) <= 22 {
            var value = Double(mantissa)
            if power < 0 { value /= Self.powersOfTen[-power] } else if power > 0 { value *= Self.powersOfTen[power] }
            return negative ? -value : value
        }
        var buffer = [CChar](repeating: 0, count: p - start + 1)
        for i in 0..<(p - start) { buffer[i] = CChar(bitPattern: base[start + i]) }
        return strtod(buffer, nil)
    }

    /// An integer (a number with an integral value that fits Int).
    mutating func integer() throws(COCOError) -> Int {
        let start = position
        let value = try number()
        guard value.rounded() == value, abs(value) < 9.0e15 else { throw fail("expected an integer", at: start) }
        return Int(value)
    }

    /// Skips any value, checking that brackets balance, strings close and everything between them
    /// is a number, literal or separator. Returns the value's byte range.
    @discardableResult
    mutating func skipValue() throws(COCOError) -> Range<Int> {
        skipWhitespace()
        let start = position
        var depth = 0
        repeat {
            guard position < end else { throw fail("unbalanced brackets", at: end) }
            let c = base[position]
            switch c {
            case UInt8(ascii: "["), UInt8(ascii: "{"):
                depth += 1
                position += 1
            case UInt8(ascii: "]"), UInt8(ascii: "}"):
                guard depth > 0 else { throw fail("unexpected '\(Character(Unicode.Scalar(c)))'") }
                depth -= 1
                position += 1
            case UInt8(ascii: "\""): _ = try rawString()
            case UInt8(ascii: ","), UInt8(ascii: ":"):
                guard depth > 0 else { return start..<position }
                position += 1
            case 0x20, 0x0A, 0x0D, 0x09: position += 1
            case UInt8(ascii: "t"), UInt8(ascii: "f"), UInt8(ascii: "n"):
                for word in ["true", "false", "null"] where word.utf8.first == c {
                    let bytes = Array(word.utf8)
                    guard position + bytes.count <= end, (0..<bytes.count).allSatisfy({ base[position + $0] == bytes[$0] }) else {
                        throw fail("unknown literal")
                    }
                    position += bytes.count
                }
            default:
                guard Self.isNumberByte(c) else { throw fail("unexpected character '\(Character(Unicode.Scalar(c)))'") }
                while position < end && Self.isNumberByte(base[position]) { position += 1 }
            }
        } while depth > 0
        return start..<position
    }
}

extension UnsafeRawBufferPointer {
    /// Whether the bytes spell `text` (ASCII keys).
    @inline(__always) func equals(_ text: StaticString) -> Bool {
        guard count == text.utf8CodeUnitCount else { return false }
        guard count > 0 else { return true }
        return memcmp(baseAddress!, text.utf8Start, count) == 0
    }
}
