import Foundation

/// Detector phrases → class ids, as Sun et al. (2023) map Grounding DINO's phrases back to VOC
/// classes (weixuansun/wsss_sam, process_pascal.py: `class_dict` holds each class name and, from
/// `class_tree`, the sub-class prompts it adds for some classes; `save_mask_data` paints a mask
/// only when its phrase is a key of that dict).
///
/// Phrases match case-insensitively and ignoring spaces, underscores and hyphens, so a detector
/// prompted with "dining table" or "tv monitor" maps onto VOC's `diningtable`/`tvmonitor` (an
/// extension: their prompts are the joined names, so their phrases never hold such spaces).
public struct BoxPhrases: Sendable {
    /// Sun et al.'s sub-class prompts (process_pascal.py `class_tree`; the lines it leaves
    /// commented out — person, sofa ← couch, bottle ← wine/water bottle, canister — are not used).
    public static let sunEtAlSubclassPrompts: [(className: String, prompts: [String])] = [
        ("horse", ["halter", "saddle"]),
        ("diningtable", ["bowl", "plate", "food", "fruit", "glass", "dishes"]),
        ("tvmonitor", ["tv", "monitor"]),
    ]

    /// Normalised phrase → class id (1…C-1).
    public let index: [String: Int]

    /// Every object class name of `classNames` (background, index 0, excluded) and the
    /// sub-class prompts of the classes present in the list (by normalised name).
    public init(
        classNames: [String], subclassPrompts: [(className: String, prompts: [String])] = BoxPhrases.sunEtAlSubclassPrompts
    ) {
        var index: [String: Int] = [:]
        for (id, name) in classNames.enumerated() where id > 0 { index[Self.key(name)] = index[Self.key(name)] ?? id }
        for (className, prompts) in subclassPrompts {
            guard let id = index[Self.key(className)] else { continue }
            for prompt in prompts { index[Self.key(prompt)] = index[Self.key(prompt)] ?? id }
        }
        self.index = index
    }

    /// The comparison form of a phrase: lower case, without spaces, underscores or hyphens.
    public static func key(_ phrase: String) -> String {
        String(phrase.lowercased().unicodeScalars.filter { !" _-\t".unicodeScalars.contains($0) }.map(Character.init))
    }

    /// The class a phrase names, or nil (Sun et al. then paint nothing for the detection).
    public func classID(of phrase: String) -> Int? { index[Self.key(phrase)] }

    /// Splits Grounded-SAM's "phrase(score)" labels (`get_grounding_output` with_logits: the phrase,
    /// then the score's first four characters in parentheses) into the phrase and the score;
    /// other labels come back whole, with no score.
    public static func splitScoredLabel(_ label: String) -> (phrase: String, score: Double?) {
        guard label.hasSuffix(")"), let open = label.lastIndex(of: "("),
            let score = Double(label[label.index(after: open)..<label.index(before: label.endIndex)])
        else { return (label, nil) }
        return (String(label[..<open]), score)
    }
}
