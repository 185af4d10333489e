import Foundation
import Yams

/// A training recipe: a YAML file of sections holding every hyper-parameter of the pipeline.
/// Unknown sections or keys and values of the wrong type are errors naming the key and the
/// file; `--set section.key=value` overrides apply on top (values parsed as YAML).
public struct Recipe: @unchecked Sendable {  // immutable after init
    public let path: String
    /// The text as written plus overrides (stored in checkpoints).
    public let text: String
    let values: [String: [String: Any]]  // section → key → value

    /// The schema: section → key → (type, default). A nil default means "none".
    public nonisolated(unsafe) static let schema: [String: [String: (RecipeType, Any?)]] = [
        "data": [
            "root": (.string, nil), "train_split": (.string, "train"), "val_split": (.string, "val"),
            "test_split": (.string, "test"), "classes": (.string, nil), "image_labels": (.string, nil),
        ],
        "run": ["dir": (.string, nil), "threads": (.int, nil), "seed": (.int, 0)],
        "cam": [
            "iterations": (.int, 3300), "batch": (.int, 16), "crop": (.int, 512), "scales": (.doubles, [0.5, 1.5]),
            "lr": (.double, 0.01), "classifier_lr_mult": (.double, 10.0), "weight_decay": (.double, 1e-4),
            "width_divisor": (.int, 1), "frozen_bn": (.bool, true), "init": (.string, nil),
            "inference_scales": (.doubles, [1.0, 0.5, 1.5, 2.0]), "bg_threshold": (.double, 0.15),
            "checkpoint_every": (.int, 500),
        ],
        "pseudo": [
            "source": (.string, "sepl"), "proposals": (.string, nil), "seeds": (.string, nil), "detections": (.string, nil),
            "mask_share": (.double, 0.5), "region_share": (.double, 0.85), "ignore_conflicts": (.bool, false),
            "box_threshold": (.double, 0.3), "felzenszwalb": (.doubles, [100.0, 0.8, 20.0]), "compare": (.strings, []),
            "labels": (.string, nil), "sam_checkpoint": (.string, nil), "sam_config": (.string, nil), "sam_cache": (.string, nil),
        ],
        // SAM's automatic mask generator (pseudo.proposals: sam), named as the official keyword arguments.
        "sam": [
            "points_per_side": (.int, 32), "points_per_batch": (.int, 64), "pred_iou_thresh": (.double, 0.88),
            "stability_score_thresh": (.double, 0.95), "stability_score_offset": (.double, 1.0), "box_nms_thresh": (.double, 0.7),
            "crop_n_layers": (.int, 0), "crop_nms_thresh": (.double, 0.7), "crop_overlap_ratio": (.double, 512.0 / 1500.0),
            "crop_n_points_downscale_factor": (.int, 1), "min_mask_region_area": (.int, 0),
        ],
        "model": [
            "arch": (.string, "deeplabv2-resnet101"), "depth": (.int, 101), "width_divisor": (.int, 1),
            "frozen_bn": (.bool, true), "msc": (.bool, true), "init": (.string, nil), "init_exclude": (.strings, ["aspp.*"]),
        ],
        "train": [
            "iterations": (.int, 20000), "batch": (.int, 5), "accumulation": (.int, 2), "crop": (.int, 321),
            "scales": (.doubles, [0.5, 1.5]), "preprocessing": (.string, "caffe"), "lr": (.double, 2.5e-4),
            "aspp_weight_lr_mult": (.double, 10.0), "aspp_bias_lr_mult": (.double, 20.0), "power": (.double, 0.9),
            "momentum": (.double, 0.9), "weight_decay": (.double, 5e-4), "checkpoint_every": (.int, 1000),
            "keep_last": (.int, 3), "eval_every": (.int, 2000), "log_every": (.int, 10),
        ],
        "eval": ["scales": (.doubles, [1.0]), "flip": (.bool, false), "splits": (.strings, ["val", "test"])],
    ]

    public enum RecipeType: String, Sendable {
        case string, int, double, bool, doubles = "list of numbers", strings = "list of strings"
    }

    public init(path: String, overrides: [String] = []) throws {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw RecipeError(path: path, message: "no such file") }
        try self.init(text: text, path: path, overrides: overrides)
    }

    public init(text: String, path: String, overrides: [String] = []) throws {
        let loaded: Any?
        do { loaded = try Yams.load(yaml: text) } catch { throw RecipeError(path: path, message: "not valid YAML (\(error))") }
        var values: [String: [String: Any]] = [:]
        if let loaded {
            guard let top = loaded as? [String: Any] else { throw RecipeError(path: path, message: "expected sections (data, cam, pseudo, sam, model, train, eval, run)") }
            for (section, body) in top {
                guard let keys = Self.schema[section] else {
                    throw RecipeError(path: path, message: "unknown section '\(section)' (known: \(Self.schema.keys.sorted().joined(separator: ", ")))")
                }
                guard let body = body as? [String: Any] else {
                    if body is NSNull { continue }
                    throw RecipeError(path: path, message: "section '\(section)' must hold keys")
                }
                for (key, value) in body {
                    guard let (type, _) = keys[key] else {
                        throw RecipeError(path: path, message: "unknown key '\(section).\(key)' (known: \(keys.keys.sorted().joined(separator: ", ")))")
                    }
                    values[section, default: [:]][key] = try Self.check(value, type, key: "\(section).\(key)", path: path)
                }
            }
        }
        var overrideText = ""
        for item in overrides {
            guard let eq = item.firstIndex(of: "=") else { throw RecipeError(path: path, message: "--set '\(item)' must be section.key=value") }
            let name = String(item[..<eq]), raw = String(item[item.index(after: eq)...])
            let parts = name.split(separator: ".").map(String.init)
            guard parts.count == 2, let (type, _) = Self.schema[parts[0]]?[parts[1]] else {
                let known = Self.schema.flatMap { section, keys in keys.keys.map { "\(section).\($0)" } }
                let suggestion = known.min { Self.editDistance($0, name) < Self.editDistance($1, name) }
                    .flatMap { Self.editDistance($0, name) <= 2 ? " (did you mean '\($0)'?)" : nil } ?? ""
                throw RecipeError(path: path, message: "--set: unknown key '\(name)'" + suggestion)
            }
            let parsed: Any?
            do { parsed = try Yams.load(yaml: raw) } catch {
                throw RecipeError(path: "--set", message: "'\(name)': '\(raw)' is not a valid YAML value")
            }
            values[parts[0], default: [:]][parts[1]] = try Self.check(parsed ?? NSNull(), type, key: name, path: "--set")
            overrideText += "\n# --set \(item)"
        }
        self.path = path
        self.text = text + overrideText
        self.values = values
        try validateValues()
    }

    /// Ranges of the numeric keys: what a value must satisfy, as a phrase for the error.
    static let ranges: [String: (String, (Any) -> Bool)] = {
        func number(_ test: @escaping (Double) -> Bool) -> (Any) -> Bool { { ($0 as? Double).map(test) ?? ($0 as? Int).map { test(Double($0)) } ?? false } }
        func list(_ count: ClosedRange<Int>, _ test: @escaping (Double) -> Bool) -> (Any) -> Bool {
            { value in (value as? [Double]).map { count.contains($0.count) && $0.allSatisfy(test) } ?? false }
        }
        let atLeastOne = ("an integer ≥ 1", number { $0 >= 1 })
        let positive = ("a number > 0", number { $0 > 0 })
        let nonNegative = ("a number ≥ 0", number { $0 >= 0 })
        let share = ("a number in [0, 1]", number { $0 >= 0 && $0 <= 1 })
        let scaleRange = ("two scales low, high with 0 < low ≤ high", { (v: Any) -> Bool in
            guard let l = v as? [Double], l.count == 2 else { return false }
            return l[0] > 0 && l[0] <= l[1]
        })
        let scales = ("a non-empty list of scales > 0", list(1...64) { $0 > 0 })
        return [
            "run.threads": atLeastOne, "run.seed": ("an integer ≥ 0", number { $0 >= 0 }),
            "cam.iterations": atLeastOne, "cam.batch": atLeastOne, "cam.crop": atLeastOne, "cam.scales": scaleRange,
            "cam.lr": positive, "cam.classifier_lr_mult": positive, "cam.weight_decay": nonNegative, "cam.width_divisor": atLeastOne,
            "cam.inference_scales": scales, "cam.bg_threshold": share, "cam.checkpoint_every": atLeastOne,
            "pseudo.mask_share": share, "pseudo.region_share": share, "pseudo.box_threshold": share,
            "pseudo.felzenszwalb": ("scale > 0, sigma ≥ 0, minimum size ≥ 0", { v in
                guard let l = v as? [Double], l.count == 3 else { return false }
                return l[0] > 0 && l[1] >= 0 && l[2] >= 0
            }),
            "model.width_divisor": atLeastOne,
            "train.iterations": atLeastOne, "train.batch": atLeastOne, "train.accumulation": atLeastOne, "train.crop": atLeastOne,
            "train.scales": scaleRange, "train.lr": ("a number ≥ 0 (0 only moves batch-norm statistics)", number { $0 >= 0 }), "train.aspp_weight_lr_mult": positive, "train.aspp_bias_lr_mult": positive,
            "train.power": nonNegative, "train.momentum": ("a number in [0, 1)", number { $0 >= 0 && $0 < 1 }),
            "train.weight_decay": nonNegative, "train.checkpoint_every": atLeastOne, "train.keep_last": atLeastOne,
            "train.eval_every": ("an integer ≥ 0 (0: no evaluation while training)", number { $0 >= 0 }), "train.log_every": atLeastOne,
            "eval.scales": scales,
            "sam.points_per_side": atLeastOne, "sam.points_per_batch": atLeastOne, "sam.pred_iou_thresh": ("a number", number { _ in true }),
            "sam.stability_score_thresh": ("a number", number { _ in true }), "sam.stability_score_offset": nonNegative,
            "sam.box_nms_thresh": share, "sam.crop_n_layers": ("an integer ≥ 0", number { $0 >= 0 }), "sam.crop_nms_thresh": share,
            "sam.crop_overlap_ratio": ("a number in [0, 1)", number { $0 >= 0 && $0 < 1 }), "sam.crop_n_points_downscale_factor": atLeastOne,
            "sam.min_mask_region_area": ("an integer ≥ 0", number { $0 >= 0 }),
        ]
    }()

    /// Every value set (in the file or by --set) is checked against its range, and a key whose
    /// default is a value may not be set to null (`--set train.lr=`).
    func validateValues() throws {
        for (section, body) in values {
            for (key, value) in body {
                let name = "\(section).\(key)"
                if value is NSNull {
                    if Self.schema[section]![key]!.1 != nil { throw RecipeError(path: path, message: "'\(name)' has no value (null or empty)") }
                    continue
                }
                if let (phrase, test) = Self.ranges[name], !test(value) {
                    throw RecipeError(path: path, message: "'\(name)' must be \(phrase), got \(value)")
                }
            }
        }
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

    static func check(_ value: Any, _ type: RecipeType, key: String, path: String) throws -> Any {
        if value is NSNull { return NSNull() }
        func fail() -> RecipeError { RecipeError(path: path, message: "'\(key)' must be a \(type.rawValue), got \(value)") }
        switch type {
        case .string: guard let v = value as? String else { throw fail() }; return v
        case .int: guard let v = value as? Int else { throw fail() }; return v
        case .double:
            if let v = value as? Double { return v }
            if let v = value as? Int { return Double(v) }
            throw fail()
        case .bool: guard let v = value as? Bool else { throw fail() }; return v
        case .doubles:
            guard let list = value as? [Any] else { throw fail() }
            return try list.map { item -> Double in
                if let v = item as? Double { return v }
                if let v = item as? Int { return Double(v) }
                throw fail()
            }
        case .strings:
            guard let list = value as? [Any], list.allSatisfy({ $0 is String }) else { throw fail() }
            return list as! [String]
        }
    }

    func value(_ section: String, _ key: String) -> Any? {
        precondition(Self.schema[section]?[key] != nil, "Recipe: \(section).\(key) is not in the schema")
        if let v = values[section]?[key] { return v is NSNull ? nil : v }
        return Self.schema[section]![key]!.1
    }

    public func string(_ section: String, _ key: String) -> String? { value(section, key) as? String }
    public func int(_ section: String, _ key: String) -> Int? { value(section, key) as? Int }
    public func double(_ section: String, _ key: String) -> Double { value(section, key) as! Double }
    public func bool(_ section: String, _ key: String) -> Bool { value(section, key) as! Bool }
    public func doubles(_ section: String, _ key: String) -> [Double] { value(section, key) as! [Double] }
    public func strings(_ section: String, _ key: String) -> [String] { value(section, key) as! [String] }

    /// A path from the recipe, relative to the working directory unless absolute.
    public func requiredString(_ section: String, _ key: String) throws -> String {
        guard let v = string(section, key) else { throw RecipeError(path: path, message: "'\(section).\(key)' is required") }
        return v
    }
}

public struct RecipeError: LocalizedError, Equatable {
    public let path: String
    public let message: String
    public init(path: String, message: String) { (self.path, self.message) = (path, message) }
    public var errorDescription: String? { "\(path): \(message)" }
}

extension Recipe {
    /// The effective value of every key of `sections` (defaults included), as text by
    /// "section.key", minus `excluding`: what a stage's output depends on, for provenance.
    public func effectiveValues(of sections: [String], excluding: Set<String> = []) -> [String: String] {
        var out: [String: String] = [:]
        for section in sections {
            for key in (Self.schema[section] ?? [:]).keys where !excluding.contains("\(section).\(key)") {
                out["\(section).\(key)"] = value(section, key).map { "\($0)" } ?? "null"
            }
        }
        return out
    }

    /// The effective values of the named keys ("section.key").
    public func effectiveValues(ofKeys keys: [String]) -> [String: String] {
        var out: [String: String] = [:]
        for name in keys {
            let parts = name.split(separator: ".").map(String.init)
            guard parts.count == 2, Self.schema[parts[0]]?[parts[1]] != nil else { continue }
            out[name] = value(parts[0], parts[1]).map { "\($0)" } ?? "null"
        }
        return out
    }
}
