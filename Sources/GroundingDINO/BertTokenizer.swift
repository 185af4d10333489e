import Foundation

/// BERT's uncased WordPiece tokenizer, token for token as `transformers`' `BertTokenizer`
/// (`do_lower_case=True`, the `bert-base-uncased` settings Grounding DINO uses): special tokens
/// split out as they are, then basic tokenization (control characters dropped, whitespace
/// normalised, CJK characters and punctuation split off, lower case, accents stripped), then
/// greedy longest-match-first WordPiece with `##` continuations (`[UNK]` for a word no pieces
/// spell or longer than 100 characters).
///
/// The vocabulary is a `vocab.txt` (one token per line, the id is the line number) a user has
/// beside the checkpoint: it is never fetched.
public struct BertTokenizer: Sendable {
    /// Token → id.
    public let vocabulary: [String: Int]
    /// Id → token.
    public let tokens: [String]
    /// Words longer than this (in Unicode scalars) become `[UNK]` (transformers' `max_input_chars_per_word`).
    public var maximumWordLength = 100

    public static let specialTokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

    /// A tokenizer over `tokens` (ids are positions); the five special tokens must be among them.
    /// - Throws: `GroundingDINOError.vocabulary` naming `path` when one is missing or a token repeats.
    public init(tokens: [String], path: String = "vocab.txt") throws {
        var vocabulary: [String: Int] = [:]
        for (id, token) in tokens.enumerated() where vocabulary[token] == nil { vocabulary[token] = id }
        let missing = Self.specialTokens.filter { vocabulary[$0] == nil }
        guard missing.isEmpty else {
            throw GroundingDINOError.vocabulary(path: path, reason: "lacks the special tokens \(missing.joined(separator: ", "))")
        }
        self.vocabulary = vocabulary
        self.tokens = tokens
    }

    /// Reads a `vocab.txt` (UTF-8, one token per line; transformers keeps each line's text with
    /// its trailing newline removed).
    /// - Throws: `GroundingDINOError.vocabulary` naming the file (missing, not UTF-8, empty, no special tokens).
    public init(vocabularyFile path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw GroundingDINOError.vocabulary(path: path, reason: "no such file (pass the vocab.txt beside the checkpoint)")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw GroundingDINOError.vocabulary(path: path, reason: "is not UTF-8 text")
        }
        var lines = text.components(separatedBy: "\n")
        if lines.last == "" { lines.removeLast() }
        lines = lines.map { $0.hasSuffix("\r") ? String($0.dropLast()) : $0 }
        guard !lines.isEmpty else { throw GroundingDINOError.vocabulary(path: path, reason: "is empty") }
        try self.init(tokens: lines, path: path)
    }

    public var unknownID: Int { vocabulary["[UNK]"]! }
    public var classID: Int { vocabulary["[CLS]"]! }
    public var separatorID: Int { vocabulary["[SEP]"]! }
    public var paddingID: Int { vocabulary["[PAD]"]! }

    /// The WordPiece tokens of `text` (no [CLS]/[SEP]).
    public func tokenize(_ text: String) -> [String] {
        var out: [String] = []
        for (chunk, isSpecial) in Self.splitSpecialTokens(text) {
            if isSpecial {
                out.append(chunk)
                continue
            }
            for word in Self.basicTokens(chunk) { out += wordPieces(word) }
        }
        return out
    }

    /// `[CLS]` + the ids of `text` + `[SEP]`, as `tokenizer(text)["input_ids"]`.
    public func encode(_ text: String) -> [Int] {
        [classID] + tokenize(text).map { vocabulary[$0] ?? unknownID } + [separatorID]
    }

    /// The text of `ids` as transformers' `decode` gives it (special tokens kept,
    /// `clean_up_tokenization_spaces`): tokens joined by spaces, `##` pieces glued to the
    /// previous token, no space before . ? ! , and English contractions.
    public func decode(_ ids: [Int]) -> String {
        let text = ids.map { $0 >= 0 && $0 < tokens.count ? tokens[$0] : "[UNK]" }.joined(separator: " ")
            .replacingOccurrences(of: " ##", with: "").trimmingCharacters(in: .whitespaces)
        var out = text
        for (from, to) in [
            (" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"), (" 'm", "'m"), (" 's", "'s"),
            (" 've", "'ve"), (" 're", "'re"),
        ] {
            out = out.replacingOccurrences(of: from, with: to)
        }
        return out
    }

    /// Greedy longest-match-first pieces of one basic token.
    func wordPieces(_ word: String) -> [String] {
        let scalars = Array(word.unicodeScalars)
        guard scalars.count <= maximumWordLength else { return ["[UNK]"] }
        var pieces: [String] = []
        var start = 0
        while start < scalars.count {
            var end = scalars.count
            var found: String?
            while start < end {
                var piece = String(String.UnicodeScalarView(scalars[start..<end]))
                if start > 0 { piece = "##" + piece }
                if vocabulary[piece] != nil {
                    found = piece
                    break
                }
                end -= 1
            }
            guard let found else { return ["[UNK]"] }
            pieces.append(found)
            start = end
        }
        return pieces
    }

    /// The text cut at each special token spelled exactly (they are never lower-cased or split).
    static func splitSpecialTokens(_ text: String) -> [(String, Bool)] {
        var out: [(String, Bool)] = []
        var rest = Substring(text)
        while !rest.isEmpty {
            let hits = specialTokens.compactMap { token in rest.range(of: token).map { ($0, token) } }
            guard let (range, token) = hits.min(by: { $0.0.lowerBound < $1.0.lowerBound }) else { break }
            if range.lowerBound > rest.startIndex { out.append((String(rest[..<range.lowerBound]), false)) }
            out.append((token, true))
            rest = rest[range.upperBound...]
        }
        if !rest.isEmpty { out.append((String(rest), false)) }
        return out
    }

    /// BasicTokenizer: clean, space out CJK characters, split on whitespace, lower-case and strip
    /// accents, split punctuation off.
    static func basicTokens(_ text: String) -> [String] {
        var cleaned = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            if scalar.value == 0 || scalar.value == 0xFFFD || isControl(scalar) { continue }
            if isWhitespace(scalar) {
                cleaned.append(" ")
            } else if isCJK(scalar) {
                cleaned.append(" ")
                cleaned.append(scalar)
                cleaned.append(" ")
            } else {
                cleaned.append(scalar)
            }
        }
        var out: [String] = []
        for word in String(cleaned).split(separator: " ", omittingEmptySubsequences: true) {
            let lowered = stripAccents(word.lowercased())
            var current = String.UnicodeScalarView()
            for scalar in lowered.unicodeScalars {
                if isPunctuation(scalar) {
                    if !current.isEmpty { out.append(String(current)) }
                    current = String.UnicodeScalarView()
                    out.append(String(scalar))
                } else {
                    current.append(scalar)
                }
            }
            if !current.isEmpty { out.append(String(current)) }
        }
        // Lower-casing can produce whitespace-free pieces only; split once more as transformers does.
        return out.flatMap { $0.split(whereSeparator: { $0.unicodeScalars.allSatisfy(isWhitespace) }).map(String.init) }
    }

    /// NFD, then without combining marks (Unicode category Mn).
    static func stripAccents(_ text: String) -> String {
        var out = String.UnicodeScalarView()
        for scalar in text.decomposedStringWithCanonicalMapping.unicodeScalars
        where scalar.properties.generalCategory != .nonspacingMark {
            out.append(scalar)
        }
        return String(out)
    }

    static func isWhitespace(_ s: Unicode.Scalar) -> Bool {
        s == " " || s == "\t" || s == "\n" || s == "\r" || s.properties.generalCategory == .spaceSeparator
    }

    static func isControl(_ s: Unicode.Scalar) -> Bool {
        if s == "\t" || s == "\n" || s == "\r" { return false }
        switch s.properties.generalCategory {
        case .control, .format, .surrogate, .privateUse, .unassigned: return true
        default: return false
        }
    }

    static func isPunctuation(_ s: Unicode.Scalar) -> Bool {
        let v = s.value
        if (33...47).contains(v) || (58...64).contains(v) || (91...96).contains(v) || (123...126).contains(v) { return true }
        switch s.properties.generalCategory {
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation, .initialPunctuation,
            .finalPunctuation, .otherPunctuation:
            return true
        default: return false
        }
    }

    static func isCJK(_ s: Unicode.Scalar) -> Bool {
        let v = s.value
        return (0x4E00...0x9FFF).contains(v) || (0x3400...0x4DBF).contains(v) || (0x20000...0x2A6DF).contains(v)
            || (0x2A700...0x2B73F).contains(v) || (0x2B740...0x2B81F).contains(v) || (0x2B820...0x2CEAF).contains(v)
            || (0xF900...0xFAFF).contains(v) || (0x2F800...0x2FA1F).contains(v)
    }
}
