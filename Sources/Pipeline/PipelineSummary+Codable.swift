import Foundation
import Training

/// summary.json's layout (kept as it has been, so scripts that read it keep working):
/// `source`, `pseudo_miou` {source: mIoU}, `proposals` {source: text}, `stage_seconds`,
/// `step_seconds`, `reused_steps`; the main source's segmenter flattened at the top
/// (`checkpoint`, `labels`, `<split>_miou`, `<split>_miou_std`, `<split>_miou_seeds`, null when
/// absent for val and test); with several segmenters, `segmenters` {source: the same fields}.
extension PipelineSummary {
    struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(_ string: String) { stringValue = string }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: Key.self)
        try c.encode(source.rawValue, forKey: Key("source"))
        try c.encode(Dictionary(uniqueKeysWithValues: pseudoMIoU.map { ($0.key.rawValue, $0.value) }), forKey: Key("pseudo_miou"))
        try c.encode(Dictionary(uniqueKeysWithValues: proposals.map { ($0.key.rawValue, $0.value) }), forKey: Key("proposals"))
        try c.encode(stageSeconds, forKey: Key("stage_seconds"))
        try c.encode(stepSeconds, forKey: Key("step_seconds"))
        try c.encode(reusedSteps, forKey: Key("reused_steps"))
        // The main segmenter at the top level; val and test present (null when not evaluated).
        let main = segmenters[source]
        if let main {
            try main.encodeFields(into: &c)
        } else {
            try c.encodeNil(forKey: Key("checkpoint"))
            try c.encodeNil(forKey: Key("labels"))
        }
        for split in ["val", "test"] {
            for suffix in ["", "_std", "_seeds"] where main?.value(split: split, suffix: suffix) == nil {
                try c.encodeNil(forKey: Key("\(split)_miou\(suffix)"))
            }
        }
        if segmenters.count > 1 {
            var nested = c.nestedContainer(keyedBy: Key.self, forKey: Key("segmenters"))
            for (source, result) in segmenters {
                var entry = nested.nestedContainer(keyedBy: Key.self, forKey: Key(source.rawValue))
                try result.encodeFields(into: &entry)
            }
        }
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: Key.self)
        func bySource<T>(_ key: String, _ raw: [String: T]?) throws -> [LabelSource: T] {
            var out: [LabelSource: T] = [:]
            for (name, value) in raw ?? [:] {
                guard let source = LabelSource(rawValue: name) else {
                    throw DecodingError.dataCorruptedError(forKey: Key(key), in: c, debugDescription: "unknown source '\(name)'")
                }
                out[source] = value
            }
            return out
        }
        let name = try c.decode(String.self, forKey: Key("source"))
        guard let source = LabelSource(rawValue: name) else {
            throw DecodingError.dataCorruptedError(forKey: Key("source"), in: c, debugDescription: "unknown source '\(name)'")
        }
        self.init(source: source)
        pseudoMIoU = try bySource("pseudo_miou", try c.decodeIfPresent([String: Double].self, forKey: Key("pseudo_miou")))
        proposals = try bySource("proposals", try c.decodeIfPresent([String: String].self, forKey: Key("proposals")))
        stepSeconds = try c.decodeIfPresent([String: Double].self, forKey: Key("step_seconds")) ?? [:]
        reusedSteps = try c.decodeIfPresent([String].self, forKey: Key("reused_steps")) ?? []
        if c.contains(Key("segmenters")) {
            let nested = try c.nestedContainer(keyedBy: Key.self, forKey: Key("segmenters"))
            for key in nested.allKeys {
                guard let s = LabelSource(rawValue: key.stringValue) else { continue }
                segmenters[s] = try SegmenterResult(fields: try nested.nestedContainer(keyedBy: Key.self, forKey: key))
            }
        } else if (try? c.decode(String.self, forKey: Key("checkpoint"))) != nil {
            segmenters[source] = try SegmenterResult(fields: c)
        }
    }
}

extension SegmenterResult {
    func value(split: String, suffix: String) -> Any? {
        switch suffix {
        case "": miou[split]
        case "_std": miouStd[split]
        default: seedMIoU[split]
        }
    }

    func encodeFields(into c: inout KeyedEncodingContainer<PipelineSummary.Key>) throws {
        try c.encode(checkpoint, forKey: .init("checkpoint"))
        try c.encode(labels, forKey: .init("labels"))
        for (split, v) in miou { try c.encode(v, forKey: .init("\(split)_miou")) }
        for (split, v) in miouStd { try c.encode(v, forKey: .init("\(split)_miou_std")) }
        for (split, v) in seedMIoU { try c.encode(v, forKey: .init("\(split)_miou_seeds")) }
    }

    init(fields c: KeyedDecodingContainer<PipelineSummary.Key>) throws {
        self.init(checkpoint: try c.decode(String.self, forKey: .init("checkpoint")))
        labels = try c.decodeIfPresent(String.self, forKey: .init("labels")) ?? ""
        // At the top level the container also holds the summary's own keys (pseudo_miou …).
        for key in c.allKeys where key.stringValue != "pseudo_miou" {
            let k = key.stringValue
            if k.hasSuffix("_miou_seeds") {
                seedMIoU[String(k.dropLast(11))] = try c.decodeIfPresent([Double].self, forKey: key)
            } else if k.hasSuffix("_miou_std") {
                miouStd[String(k.dropLast(9))] = try c.decodeIfPresent(Double.self, forKey: key)
            } else if k.hasSuffix("_miou") {
                miou[String(k.dropLast(5))] = try c.decodeIfPresent(Double.self, forKey: key)
            }
        }
    }
}
