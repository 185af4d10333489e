import Foundation
import Yams

/// A training recipe: a YAML file of sections holding every hyper-parameter of the pipeline,
/// decoded once into typed sections (`recipe.train.lr`, `recipe.model.depth`…). Unknown sections
/// or keys, values of the wrong type or out of range are errors naming the key and the file;
/// `--set section.key=value` overrides apply on top (values parsed as YAML).
public struct Recipe: Sendable {
    public let path: String
    /// The text as written plus overrides (stored in checkpoints).
    public let text: String
    public var data = DataSection()
    public var run = RunSection()
    public var cam = CAMSection()
    public var pseudo = PseudoSection()
    public var sam = SAMSection()
    public var model = ModelSection()
    public var train = TrainSection()
    public var eval = EvalSection()
    public var crf = CRFSection()

    /// Each section's name and keys, in the order they are documented.
    public static let sections: [(name: String, keys: [String])] = [
        (DataSection.name, DataSection.keyNames), (RunSection.name, RunSection.keyNames), (CAMSection.name, CAMSection.keyNames),
        (PseudoSection.name, PseudoSection.keyNames), (SAMSection.name, SAMSection.keyNames),
        (ModelSection.name, ModelSection.keyNames),
        (TrainSection.name, TrainSection.keyNames), (EvalSection.name, EvalSection.keyNames),
        (CRFSection.name, CRFSection.keyNames),
    ]

    /// Every key, as "section.key".
    public static var allKeys: [String] { sections.flatMap { section in section.keys.map { "\(section.name).\($0)" } } }

    public init(path: String, overrides: [String] = []) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw RecipeError(path: path, message: "no such file")
        }
        guard !isDirectory.boolValue else { throw RecipeError(path: path, message: "is a folder, not a recipe file") }
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw RecipeError(
                path: path,
                message: FileManager.default.isReadableFile(atPath: path)
                    ? "not UTF-8 text" : "cannot read it (permission denied)")
        }
        try self.init(text: text, path: path, overrides: overrides)
    }

    public init(text: String, path: String, overrides: [String] = []) throws {
        let loaded: Any?
        do { loaded = try Yams.load(yaml: text) } catch {
            throw RecipeError(path: path, message: "not valid YAML (\(Self.oneLine(error)))")
        }
        let known = Dictionary(uniqueKeysWithValues: Self.sections.map { ($0.name, Set($0.keys)) })
        var values: [String: [String: Any]] = [:]  // section → key → value as YAML gave it
        var origin: [String: String] = [:]  // "section.key" → where it was set, for messages
        if let loaded {
            guard let top = loaded as? [String: Any] else {
                throw RecipeError(path: path, message: "expected sections (\(Self.sections.map(\.name).joined(separator: ", ")))")
            }
            for (section, body) in top {
                guard let keys = known[section] else {
                    throw RecipeError(
                        path: path,
                        message: "unknown section '\(section)' (known: \(known.keys.sorted().joined(separator: ", ")))")
                }
                guard let body = body as? [String: Any] else {
                    if body is NSNull { continue }
                    throw RecipeError(path: path, message: "section '\(section)' must hold keys")
                }
                for (key, value) in body {
                    guard keys.contains(key) else {
                        throw RecipeError(
                            path: path,
                            message: "unknown key '\(section).\(key)' (known: \(keys.sorted().joined(separator: ", ")))")
                    }
                    values[section, default: [:]][key] = value
                    origin["\(section).\(key)"] = path
                }
            }
        }
        var overrideText = ""
        for item in overrides {
            guard let eq = item.firstIndex(of: "=") else {
                throw RecipeError(path: path, message: "--set '\(item)' must be section.key=value")
            }
            let name = String(item[..<eq]), raw = String(item[item.index(after: eq)...])
            let parts = name.split(separator: ".").map(String.init)
            guard parts.count == 2, known[parts[0]]?.contains(parts[1]) == true else {
                let suggestion =
                    Self.allKeys.min { Self.editDistance($0, name) < Self.editDistance($1, name) }
                    .flatMap { Self.editDistance($0, name) <= 2 ? " (did you mean '\($0)'?)" : nil } ?? ""
                throw RecipeError(path: path, message: "--set: unknown key '\(name)'" + suggestion)
            }
            let parsed: Any?
            do { parsed = try Yams.load(yaml: raw) } catch {
                throw RecipeError(path: "--set", message: "'\(name)': '\(raw)' is not a valid YAML value")
            }
            values[parts[0], default: [:]][parts[1]] = parsed ?? NSNull()
            origin[name] = "--set"
            overrideText += "\n# --set \(item)"
        }
        self.path = path
        self.text = text + overrideText
        data = try Self.decode(values, origin: origin, recipePath: path)
        run = try Self.decode(values, origin: origin, recipePath: path)
        cam = try Self.decode(values, origin: origin, recipePath: path)
        pseudo = try Self.decode(values, origin: origin, recipePath: path)
        sam = try Self.decode(values, origin: origin, recipePath: path)
        model = try Self.decode(values, origin: origin, recipePath: path)
        train = try Self.decode(values, origin: origin, recipePath: path)
        eval = try Self.decode(values, origin: origin, recipePath: path)
        crf = try Self.decode(values, origin: origin, recipePath: path)
        for (section, body) in values {
            for (key, value) in body {
                let name = "\(section).\(key)"
                if let (phrase, test) = Self.ranges[name], !(value is NSNull), !test(value) {
                    throw RecipeError(
                        path: origin[name] ?? path, message: "'\(name)' must be \(phrase), got \(Self.shown(value))")
                }
            }
        }
        try Self.checkScaleSampling(values, train: train, origin: origin, recipePath: path)
    }

    /// Before `train.scale_sampling` existed, two `train.scales` were a uniform range; now they
    /// would be a choice of two. Such a list without the sampling key is refused rather than
    /// silently read the new way; a uniform range must not run backwards.
    static func checkScaleSampling(
        _ values: [String: [String: Any]], train: TrainSection, origin: [String: String], recipePath: String
    ) throws {
        let path = origin["train.scales"] ?? recipePath
        if let list = values["train"]?["scales"] as? [Any], list.count == 2, values["train"]?["scale_sampling"] == nil {
            throw RecipeError(
                path: path,
                message: "'train.scales' \(shown(list)) has two entries: set 'train.scale_sampling' to choice (one of the two, "
                    + "deeplab-pytorch's rule) or uniform (a range from the first to the second, what two scales meant before)")
        }
        if train.scaleSampling == .uniform, let low = train.scales.first, let high = train.scales.last, low > high {
            throw RecipeError(
                path: path,
                message: "'train.scales' \(shown(train.scales)) runs backwards: uniform sampling needs the first ≤ the last")
        }
    }

    /// One section: the defaults, overlaid with the values set, decoded into `T`. Type errors
    /// name the key, the expected type and the value given.
    static func decode<T: RecipeSection>(_ values: [String: [String: Any]], origin: [String: String], recipePath: String) throws
        -> T
    {
        guard let set = values[T.name], !set.isEmpty else { return T() }
        let defaults =
            try JSONSerialization.jsonObject(with: JSONEncoder().encode(T.defaults(given: set))) as? [String: Any] ?? [:]
        var merged = defaults
        for (key, value) in set {
            guard let json = jsonValue(value) else {
                throw RecipeError(
                    path: origin["\(T.name).\(key)"] ?? recipePath,
                    message: "'\(T.name).\(key)' has a value of an unsupported kind: \(shown(value))")
            }
            merged[key] = json
        }
        do {
            return try JSONDecoder().decode(T.self, from: JSONSerialization.data(withJSONObject: merged))
        } catch let error as DecodingError {
            // The failing key: the error's coding path names it, or (for some number errors it is
            // empty) the first key that fails alone over the defaults.
            let codingPath: [CodingKey] =
                switch error {
                case .typeMismatch(_, let c), .valueNotFound(_, let c), .keyNotFound(_, let c), .dataCorrupted(let c):
                    c.codingPath
                @unknown default: []
                }
            let key =
                codingPath.first?.stringValue ?? set.keys.sorted().first { key in
                    var one = defaults
                    one[key] = jsonValue(set[key]!)
                    return (try? JSONDecoder().decode(T.self, from: JSONSerialization.data(withJSONObject: one))) == nil
                } ?? "?"
            let problem =
                switch error {
                case .typeMismatch(let type, _): "must be \(typePhrase(type))"
                case .valueNotFound(_, let context):
                    context.codingPath.count > 1 ? "must not hold null" : "has no value (null or empty)"
                case .dataCorrupted(let context):
                    context.debugDescription.hasPrefix("must")
                        ? context.debugDescription
                        : T.choices(of: key).map { "must be \($0)" }
                            ?? "must be \(typePhrase(T.propertyValues(of: T()).first { $0.key == key }.map { type(of: $0.value) }))"
                case .keyNotFound: "is missing"
                @unknown default: "is not valid"
                }
            let name = "\(T.name).\(key)"
            let item = codingPath.count > 1 ? " (item \((codingPath[1].intValue ?? 0) + 1))" : ""
            throw RecipeError(
                path: origin[name] ?? recipePath, message: "'\(name)'\(item) \(problem), got \(shown(set[key] ?? NSNull()))")
        }
    }

    /// A YAML value as JSON (nil for timestamps, binary, non-finite numbers and the like).
    static func jsonValue(_ value: Any) -> Any? {
        switch value {
        case is NSNull, is String, is Bool, is Int: return value
        case let d as Double: return d.isFinite ? d : nil
        case let list as [Any]:
            let items = list.map(jsonValue)
            return items.contains { $0 == nil } ? nil : items.map { $0! }
        case let map as [String: Any]:
            var out: [String: Any] = [:]
            for (k, v) in map { guard let j = jsonValue(v) else { return nil }; out[k] = j }
            return out
        default: return nil
        }
    }

    static func typePhrase(_ type: Any.Type?) -> String {
        switch type {
        case is Int.Type: "an integer"
        case is Double.Type: "a number"
        case is Bool.Type: "true or false"
        case is String.Type: "a string"
        case is [Any].Type, is [Double].Type, is [String].Type: "a list"
        default: "a value of the key's type"
        }
    }

    static func shown(_ value: Any) -> String {
        switch value {
        case is NSNull: "null"
        case let s as String: "'\(s)'"
        case let list as [Any]: "[" + list.map(shown).joined(separator: ", ") + "]"
        default: "\(value)"
        }
    }

    /// Ranges of the numeric keys: what a value must satisfy, as a phrase for the error.
    static let ranges: [String: (String, (Any) -> Bool)] = {
        // A YAML list of numbers arrives as [Any] of Int and Double.
        func numbers(_ value: Any) -> [Double]? {
            guard let list = value as? [Any] else { return nil }
            let out = list.compactMap { ($0 as? Double).flatMap { $0.isFinite ? $0 : nil } ?? ($0 as? Int).map(Double.init) }
            return out.count == list.count ? out : nil
        }
        // Every range is of finite numbers (YAML's .inf and .nan, or a flag's "inf", are refused).
        func number(_ test: @escaping (Double) -> Bool) -> (Any) -> Bool {
            { ($0 as? Double).map { $0.isFinite && test($0) } ?? ($0 as? Int).map { test(Double($0)) } ?? false }
        }
        func list(_ count: ClosedRange<Int>, _ test: @escaping (Double) -> Bool) -> (Any) -> Bool {
            { value in numbers(value).map { count.contains($0.count) && $0.allSatisfy(test) } ?? false }
        }
        let atLeastOne = ("an integer ≥ 1", number { $0 >= 1 })
        let positive = ("a number > 0", number { $0 > 0 })
        let nonNegative = ("a number ≥ 0", number { $0 >= 0 })
        let share = ("a number in [0, 1]", number { $0 >= 0 && $0 <= 1 })
        let scaleRange = (
            "two scales low, high with 0 < low ≤ high ≤ 8",
            { (v: Any) -> Bool in
                guard let l = numbers(v), l.count == 2 else { return false }
                return l[0] > 0 && l[0] <= l[1] && l[1] <= 8
            }
        )
        // Below 0.25 a VOC-sized image shrinks to a few feature pixels (0.001 ran a 64-px image at 1x1).
        let scales = ("a non-empty list of scales in [0.25, 8]", list(1...64) { $0 >= 0.25 && $0 <= 8 })
        return [
            "run.threads": atLeastOne, "run.seed": ("an integer ≥ 0", number { $0 >= 0 }),
            "cam.iterations": atLeastOne, "cam.batch": atLeastOne, "cam.crop": atLeastOne, "cam.scales": scaleRange,
            "cam.lr": positive, "cam.classifier_lr_mult": positive, "cam.weight_decay": nonNegative,
            "cam.width_divisor": atLeastOne,
            "cam.inference_scales": scales, "cam.bg_threshold": share, "cam.checkpoint_every": atLeastOne,
            "cam.momentum": ("a number in [0, 1)", number { $0 >= 0 && $0 < 1 }),
            "cam.frozen_stages": ("an integer in 0…4", number { $0 >= 0 && $0 <= 4 }),
            "cam.resize_long": (
                "two long sides low, high with 1 ≤ low ≤ high",
                { (v: Any) -> Bool in
                    guard let l = numbers(v), l.count == 2 else { return false }
                    return l[0] >= 1 && l[0] <= l[1] && l.allSatisfy { $0 == $0.rounded() }
                }
            ),
            "pseudo.detector_size": (
                "two sides [shorter, longest] with 32 ≤ shorter ≤ longest ≤ 8192",
                { v in
                    guard let l = numbers(v), l.count == 2 else { return false }
                    return l[0] >= 32 && l[0] <= l[1] && l[1] <= 8192 && l.allSatisfy { $0 == $0.rounded() }
                }
            ),
            "pseudo.mask_share": share, "pseudo.region_share": share, "pseudo.box_threshold": share,
            "pseudo.text_threshold": share,
            "pseudo.felzenszwalb": (
                "scale > 0, sigma ≥ 0 and a whole minimum size ≥ 0",
                { v in
                    guard let l = numbers(v), l.count == 3 else { return false }
                    return l[0] > 0 && l[1] >= 0 && l[2] >= 0 && l[2] == l[2].rounded()
                }
            ),
            "model.width_divisor": atLeastOne,
            "train.iterations": atLeastOne, "train.batch": atLeastOne, "train.accumulation": atLeastOne, "train.crop": atLeastOne,
            "train.scales": scales, "train.lr_step": atLeastOne,
            "train.lr": ("a number ≥ 0 (0 only moves batch-norm statistics)", number { $0 >= 0 }),
            "train.aspp_weight_lr_mult": positive, "train.aspp_bias_lr_mult": positive,
            "train.power": nonNegative, "train.momentum": ("a number in [0, 1)", number { $0 >= 0 && $0 < 1 }),
            "train.weight_decay": nonNegative, "train.checkpoint_every": atLeastOne, "train.keep_last": atLeastOne,
            "train.eval_every": ("an integer ≥ 0 (0: no evaluation while training)", number { $0 >= 0 }),
            "train.log_every": atLeastOne,
            "eval.scales": scales,
            "crf.iterations": ("an integer in 0…1000", number { $0 >= 0 && $0 <= 1000 }),
            "crf.confidence": ("a number in (0, 1)", number { $0 > 0 && $0 < 1 }), "crf.pos_w": nonNegative,
            "crf.bi_w": nonNegative,
            "crf.pos_xy_std": positive, "crf.bi_xy_std": positive, "crf.bi_rgb_std": positive,
            "sam.points_per_side": ("an integer in 1…1024", number { $0 >= 1 && $0 <= 1024 }), "sam.points_per_batch": atLeastOne,
            "sam.pred_iou_thresh": ("a number ≤ 1 (an IoU; above it every mask is dropped)", number { $0 <= 1 }),
            "sam.stability_score_thresh": ("a number ≤ 1 (an IoU; above it every mask is dropped)", number { $0 <= 1 }),
            "sam.stability_score_offset": nonNegative,
            "sam.box_nms_thresh": share, "sam.crop_n_layers": ("an integer in 0…5", number { $0 >= 0 && $0 <= 5 }),
            "sam.crop_nms_thresh": share,
            "sam.crop_overlap_ratio": ("a number in [0, 1)", number { $0 >= 0 && $0 < 1 }),
            "sam.crop_n_points_downscale_factor": atLeastOne,
            "sam.min_mask_region_area": ("an integer ≥ 0", number { $0 >= 0 }),
        ]
    }()

    /// Yams's message without the quoted document and its `^` marker: one line.
    static func oneLine(_ error: Error) -> String {
        var lines = "\(error)".split(separator: "\n", omittingEmptySubsequences: true).map {
            $0.trimmingCharacters(in: .whitespaces)
        }
        if let context = lines.firstIndex(where: { $0.hasPrefix("Context:") }) { lines.removeSubrange(context...) }
        if let last = lines.last, last.allSatisfy({ $0 == "^" || $0 == " " }), lines.count >= 2 { lines.removeLast(2) }
        return lines.joined(separator: " ")
    }

    /// Levenshtein distance, for "did you mean" suggestions.
    static func editDistance(_ a: String, _ b: String) -> Int {
        let (a, b) = (Array(a), Array(b))
        var row = Array(0...b.count)
        for i in 1...max(a.count, 1) where !a.isEmpty {
            var previous = row[0]
            row[0] = i
            for j in 1...max(b.count, 1) where !b.isEmpty {
                let saved = row[j]
                row[j] = min(row[j] + 1, row[j - 1] + 1, previous + (a[i - 1] == b[j - 1] ? 0 : 1))
                previous = saved
            }
        }
        return row[b.count]
    }

    /// A required string of the recipe, or an error naming the key.
    public func required(_ value: String?, _ key: String) throws -> String {
        guard let value else { throw RecipeError(path: path, message: "'\(key)' is required") }
        return value
    }
}

public struct RecipeError: LocalizedError, Equatable {
    public let path: String
    public let message: String
    public init(path: String, message: String) { (self.path, self.message) = (path, message) }
    public var errorDescription: String? { "\(path): \(message)" }
}

extension Recipe {
    /// Every section's values as text by "section.key" (defaults included).
    public var textValues: [String: String] {
        [
            data.textValues, run.textValues, cam.textValues, pseudo.textValues, sam.textValues, model.textValues,
            train.textValues, eval.textValues, crf.textValues,
        ].reduce(into: [:]) { all, one in all.merge(one) { a, _ in a } }
    }

    /// The effective value of every key of `sections` (defaults included), as text by
    /// "section.key", minus `excluding`: what a stage's output depends on, for provenance.
    public func effectiveValues(of sections: [String], excluding: Set<String> = []) -> [String: String] {
        textValues.filter { name, _ in
            sections.contains(String(name.prefix { $0 != "." })) && !excluding.contains(name)
        }
    }

    /// The effective values of the named keys ("section.key").
    public func effectiveValues(ofKeys keys: [String]) -> [String: String] {
        let all = textValues
        return Dictionary(uniqueKeysWithValues: keys.compactMap { name in all[name].map { (name, $0) } })
    }
}
