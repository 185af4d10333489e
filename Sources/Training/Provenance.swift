import Foundation

/// What a stage's output was made from: the recipe values it depends on (and the provenance of
/// the stages it reads), by "section.key". Stored beside the output (a `provenance_<step>.json`
/// record in the run folder, a `provenance.json` in an output folder, the `provenance` attribute
/// of a checkpoint). An output is reused only when its provenance matches; keys that cannot
/// change a result (`Provenance.cosmeticKeys`: log, evaluation and checkpoint cadence, threads,
/// batching that only bounds memory) are kept for the record but never compared.
public struct Provenance: Equatable, Sendable {
    public var values: [String: String]

    /// Recipe keys whose value cannot change what a stage produces.
    public static let cosmeticKeys: Set<String> = [
        "train.log_every", "train.eval_every", "train.checkpoint_every", "train.keep_last", "cam.checkpoint_every", "run.threads",
        "sam.points_per_batch",
    ]

    /// `values` plus the upstream stages' values under their step names ("cam_train:cam.lr").
    public init(_ values: [String: String], upstream: [(String, Provenance)] = []) {
        var all = values
        // Upstream keys keep the step they came from; keys already qualified came from further up.
        for (step, p) in upstream { for (k, v) in p.values { all[k.contains(":") ? k : "\(step):\(k)"] = v } }
        self.values = all
    }

    /// The record at `path`, nil when there is none (or it is not a JSON object of strings).
    public static func read(_ path: String) -> Provenance? {
        guard let data = FileManager.default.contents(atPath: path),
            let object = try? JSONSerialization.jsonObject(with: data) as? [String: String]
        else { return nil }
        return Provenance(object)
    }

    /// Writes the record atomically.
    public func write(_ path: String) throws {
        try JSONSerialization.data(withJSONObject: values, options: [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes])
            .write(to: URL(fileURLWithPath: path), options: .atomic)
    }

    /// "key: old → new" for every key whose value differs, cosmetic keys left out.
    public func changes(from old: Provenance) -> [String] { Self.changes(from: old.values, to: values) }

    /// "key: old → new" between two sets of values, cosmetic keys (also upstream ones,
    /// "cam_train:cam.checkpoint_every") left out.
    public static func changes(from old: [String: String], to new: [String: String]) -> [String] {
        Set(new.keys).union(old.keys).sorted().compactMap { key in
            guard !cosmeticKeys.contains(String(key.split(separator: ":").last ?? "")) else { return nil }
            let (a, b) = (old[key] ?? "-", new[key] ?? "-")
            return a == b ? nil : "\(key): \(a) → \(b)"
        }
    }
}
