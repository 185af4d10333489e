import Foundation
import HDF5
import Testing

@testable import GroundingDINO

@Suite struct BertTokenizerTests {
    static let tokenizer: BertTokenizer? = try? BertTokenizer(vocabularyFile: GDINOFixtures.path("bert_tiny/vocab.txt"))

    /// Every phrase of the fixture (accents, punctuation, CJK, upper case, over-long words,
    /// words spelled only by ## pieces, unknown words) gives transformers' ids, token for token.
    @Test func randomPhrasesGiveTransformersIDs() throws {
        let tokenizer = try #require(Self.tokenizer)
        let file = try GDINOFixtures.file("tokenizer.h5")
        let texts = try GDINOFixtures.strings(file, "phrases/text")
        let expected = try GDINOFixtures.integerLists(file, "phrases/input_ids")
        #expect(texts.count == expected.count && texts.count >= 200)
        var wrong: [String] = []
        for (text, ids) in zip(texts, expected) where tokenizer.encode(text) != ids {
            wrong.append("\(text.debugDescription): \(tokenizer.encode(text)) vs \(ids)")
        }
        #expect(wrong.isEmpty, "\(wrong.count) phrases differ, e.g. \(wrong.prefix(3).joined(separator: "; "))")
    }

    /// The prompts Grounding DINO is given ("aeroplane . bicycle . person .").
    @Test func promptsGiveTransformersIDs() throws {
        let tokenizer = try #require(Self.tokenizer)
        let file = try GDINOFixtures.file("tokenizer.h5")
        for name in ["voc_three", "voc_all", "no_trailing_dot", "question_mark"] {
            guard case .string(let json)? = try file.attribute(named: "captions", on: "/prompts/\(name)"),
                let captions = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String]
            else {
                Issue.record("prompts/\(name) has no captions")
                continue
            }
            let ids = try file.readLabels("/prompts/\(name)/input_ids").values.map(Int.init)
            #expect(tokenizer.encode(captions[0]) == ids, "\(name)")
        }
    }

    @Test func specialTokensAndLongWords() throws {
        let tokenizer = try #require(Self.tokenizer)
        #expect(tokenizer.tokenize("a[SEP]b") == ["a", "[SEP]", "b"])
        #expect(tokenizer.tokenize(String(repeating: "a", count: 101)) == ["[UNK]"])
        #expect(BertTokenizer.basicTokens("Héllo,  WORLD!\u{0007}") == ["hello", ",", "world", "!"])
        #expect(BertTokenizer.basicTokens("猫と dog") == ["猫", "と", "dog"])
    }

    @Test func aBadVocabularyIsNamed() throws {
        #expect(throws: GroundingDINOError.self) { try BertTokenizer(vocabularyFile: "/nonexistent/vocab.txt") }
        #expect { try BertTokenizer(tokens: ["a", "b"], path: "v.txt") } throws: { error in
            error.localizedDescription.contains("v.txt") && error.localizedDescription.contains("[CLS]")
        }
    }
}

extension BertTokenizerTests {
    /// transformers' decode of each phrase's ids (without [CLS] and [SEP]).
    @Test func decodeGivesTransformersText() throws {
        let tokenizer = try #require(Self.tokenizer)
        let file = try GDINOFixtures.file("tokenizer.h5")
        let decoded = try GDINOFixtures.strings(file, "phrases/decoded")
        let ids = try GDINOFixtures.integerLists(file, "phrases/input_ids")
        var wrong: [String] = []
        for (text, list) in zip(decoded, ids) where tokenizer.decode(Array(list.dropFirst().dropLast())) != text {
            wrong.append("\(text.debugDescription) vs \(tokenizer.decode(Array(list.dropFirst().dropLast())).debugDescription)")
        }
        #expect(wrong.isEmpty, "\(wrong.count) differ, e.g. \(wrong.prefix(3).joined(separator: "; "))")
    }
}
