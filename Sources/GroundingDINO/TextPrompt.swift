import Foundation

// A caption as Grounding DINO reads it (inference.py `preprocess_caption`, groundingdino.py and
// bertwarper.py `generate_masks_with_special_tokens_and_transfer_map`): lower-cased, ending in
// ".", tokenized with [CLS] and [SEP], each phrase (the tokens up to and including its "." or
// "?") attending only to itself with position ids restarting at 0, [CLS] and [SEP] alone.

/// One tokenized caption with its sub-sentence attention mask and position ids.
public struct TokenizedPrompt: Sendable, Equatable {
    /// Token ids, [CLS] first and [SEP] last (at most `maximumLength`).
    public var ids: [Int]
    /// Per token: its position within its phrase (the position embedding read).
    public var positionIDs: [Int]
    /// Row-major [T, T]: whether token i may attend to token j.
    public var selfAttention: [Bool]
    /// Per phrase, the token positions of its words (without the separator): which logit
    /// columns belong to which phrase (`cate_to_token_mask`).
    public var phraseTokens: [Range<Int>]

    /// Grounding DINO reads at most this many tokens (`max_text_len`).
    public static let maximumLength = 256

    /// `preprocess_caption`: lower-cased, trimmed, and ending in ".".
    public static func normalizedCaption(_ caption: String) -> String {
        let text = caption.lowercased().trimmingCharacters(in: .whitespacesAndNewlines)
        return text.hasSuffix(".") ? text : text + "."
    }

    /// The caption of class names as Grounded-SAM builds it: "cat . dog . person .".
    public static func caption(classes: [String]) -> String { classes.joined(separator: " . ") + " ." }

    /// Tokenizes `caption` (already normalised) and derives the masks.
    public init(caption: String, tokenizer: BertTokenizer) {
        var ids = tokenizer.encode(caption)
        if ids.count > Self.maximumLength {
            // groundingdino.py truncates ids and masks to max_text_len (the last kept token is not [SEP]).
            ids = Array(ids.prefix(Self.maximumLength))
        }
        let specials: Set<Int> = [
            tokenizer.classID, tokenizer.separatorID, tokenizer.vocabulary["."] ?? -1, tokenizer.vocabulary["?"] ?? -1,
        ]
        self.init(ids: ids, specialTokens: specials)
    }

    /// The masks for `ids`, with `specialTokens` ([CLS], [SEP], ".", "?") closing phrases.
    public init(ids: [Int], specialTokens: Set<Int>) {
        let t = ids.count
        var attention = [Bool](repeating: false, count: t * t)
        for i in 0..<t { attention[i * t + i] = true }
        var positions = [Int](repeating: 0, count: t)
        var phrases: [Range<Int>] = []
        var previous = 0
        for column in 0..<t where specialTokens.contains(ids[column]) {
            if column == 0 || column == t - 1 {
                attention[column * t + column] = true
                positions[column] = 0
            } else {
                for i in (previous + 1)...column {
                    for j in (previous + 1)...column { attention[i * t + j] = true }
                    positions[i] = i - previous - 1
                }
                phrases.append((previous + 1)..<column)
            }
            previous = column
        }
        (self.ids, positionIDs, selfAttention, phraseTokens) = (ids, positions, attention, phrases)
    }
}
