import Foundation
import Training

/// What a stage's output was made from: the recipe values it depends on (and the provenance of
/// the stages it reads), stored beside the output as `provenance.json`. A rerun whose values
/// differ reruns that stage — and, since later stages include it, every stage after it — or,
/// with `refuseReruns`, stops listing the keys that changed.
struct Provenance: Equatable {
    var values: [String: String]

    /// `values` plus the upstream stages' values under their step names ("cam_train:cam.lr").
    init(_ values: [String: String], upstream: [(String, Provenance)] = []) {
        var all = values
        // Upstream keys keep the step they came from; keys already qualified came from further up.
        for (step, p) in upstream { for (k, v) in p.values { all[k.contains(":") ? k : "\(step):\(k)"] = v } }
        self.values = all
    }

    static func read(_ path: String) -> Provenance? {
        guard let data = FileManager.default.contents(atPath: path),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: String]
        else { return nil }
        return Provenance(object)
    }

    func write(_ path: String) throws {
        try JSONSerialization.data(withJSONObject: values, options: [.sortedKeys, .prettyPrinted]).write(to: URL(fileURLWithPath: path), options: .atomic)
    }

    /// "key: old → new" for every key whose value differs.
    func changes(from old: Provenance) -> [String] {
        Set(values.keys).union(old.values.keys).sorted().compactMap { key in
            let (a, b) = (old.values[key] ?? "-", values[key] ?? "-")
            return a == b ? nil : "\(key): \(a) → \(b)"
        }
    }
}
