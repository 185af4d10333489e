import Foundation
import Training

/// `<run.dir>/report.html`: one self-contained page (no external URLs; pictures inlined as data
/// URIs) with the summary tables — pseudo-label mIoU by source and per class, val/test mIoU per
/// class, stage times — the training curves, the pseudo-label panels and the recipe. A small
/// inline script marks the page `data-images-ok` once every picture decoded (the browser check in
/// scripts/check-report reads it), and reports a broken one on the console.
public enum RunReport {
    /// Writes the report of `summary` for the run folder (atomically); returns its path.
    @discardableResult
    public static func write(summary: PipelineSummary, recipeText: String, runDirectory: String, maxPanels: Int = 4) throws
        -> String
    {
        let layout = RunLayout(root: runDirectory)
        var html = """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"><title>WSSS run report: \(escape(runDirectory))</title>
            <style>
            body { font-family: sans-serif; margin: 24px; color: #222; max-width: 1200px; }
            table { border-collapse: collapse; margin: 8px 0 20px; } th, td { border: 1px solid #ccc; padding: 3px 10px; text-align: right; }
            th:first-child, td:first-child, td.labels { text-align: left; } th { background: #f2f2f2; } .main { font-weight: bold; }
            img { max-width: 100%; border: 1px solid #ddd; margin: 4px 0; } pre { background: #f7f7f7; padding: 10px; overflow-x: auto; }
            .note { color: #666; font-size: 90%; }
            </style></head>
            <body data-images-ok="pending">
            <h1>WSSS run report</h1>
            <p class="note">Run folder <code>\(escape(runDirectory))</code>, written \(escape(ISO8601DateFormatter().string(from: Date()))).
            Numbers are percent (mIoU, IoU); * marks the recipe's pseudo-label source.</p>

            """
        html += pseudoLabelSection(summary, layout: layout)
        html += segmenterSection(summary, layout: layout)
        html += gallerySection(summary, layout: layout, maxPanels: maxPanels)
        // Times and recipe.
        html += "<h2>Stage times</h2>\n<table><tr><th>stage</th><th>seconds</th></tr>\n"
        for (stage, seconds) in summary.stageSeconds.sorted(by: { $0.key < $1.key }) {
            html += "<tr><td>\(escape(stage))</td><td>\(String(format: "%.1f", seconds))</td></tr>\n"
        }
        html += "</table>\n"
        if !summary.reusedSteps.isEmpty {
            html +=
                "<p class=\"note\">Skipped (outputs existed; times from the run that made them): \(escape(summary.reusedSteps.joined(separator: ", ")))</p>\n"
        }
        html += "<h2>Recipe</h2>\n<pre>\(escape(recipeText))</pre>\n"
        html += """
            <script>
            (function () {
              var images = Array.prototype.slice.call(document.images), pending = images.length, ok = true;
              function done() { document.body.setAttribute("data-images-ok", ok ? "true" : "false"); }
              if (pending === 0) { done(); return; }
              images.forEach(function (img) {
                function settle() {
                  if (!(img.complete && img.naturalWidth > 0)) { ok = false; console.error("picture did not load: " + img.alt); }
                  if (--pending === 0) { done(); }
                }
                if (img.complete) { settle(); } else { img.addEventListener("load", settle); img.addEventListener("error", settle); }
              });
            })();
            </script>
            </body></html>

            """
        let path = layout.report
        try Data(html.utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
        return path
    }

    /// Pseudo-label mIoU by source and per class.
    static func pseudoLabelSection(_ summary: PipelineSummary, layout: RunLayout) -> String {
        var html = ""
        if !summary.pseudoMIoU.isEmpty {
            html += "<h2>Pseudo-labels (train split) against ground truth</h2>\n"
            let perClass = summary.pseudoMIoU.keys.sorted().map { source in
                (summary.label(source), classScores(at: layout.pseudoScore(source)))
            }
            html += table(rows: perClass, main: summary.label(summary.source))
        }
        return html
    }

    /// Each segmenter's val/test mIoU and label source, per-class tables, charts and curves.
    static func segmenterSection(_ summary: PipelineSummary, layout: RunLayout) -> String {
        var html = ""
        if !summary.segmenters.isEmpty {
            html += "<h2>Segmenters: mIoU of DeepLab-v2 trained on each source</h2>\n<table><tr><th>trained on</th>"
            let splits = Set(summary.segmenters.values.flatMap { $0.miou.keys }).sorted()
            html += splits.map { "<th>\(escape($0)) mIoU</th>" }.joined() + "<th>labels</th></tr>\n"
            for (source, result) in summary.segmenters.sorted(by: { $0.key < $1.key }) {
                html +=
                    "<tr\(source == summary.source ? " class=\"main\"" : "")><td>\(escape(summary.label(source)))\(source == summary.source ? " *" : "")</td>"
                html += splits.map { s in "<td>\(result.miou[s].map { String(format: "%.2f", $0) } ?? "–")</td>" }.joined()
                // Where the labels came from, as the checkpoint records it.
                html += "<td class=\"labels\">\(escape(result.labels.isEmpty ? "–" : result.labels))</td></tr>\n"
            }
            html += "</table>\n"
            for (source, _) in summary.segmenters.sorted(by: { $0.key < $1.key }) {
                let folder = layout.segmenterDirectory(source.rawValue)
                let evals = splits.map { ($0, classScores(at: layout.evaluation(source.rawValue, split: $0))) }.filter {
                    !$0.1.isEmpty
                }
                if !evals.isEmpty {
                    html +=
                        "<h3>Per class: segmenter trained on \(escape(source.rawValue))</h3>\n" + table(rows: evals, main: nil)
                }
                for split in splits {
                    if let chart = dataURI(png: "\(folder)/eval_\(split).png") {
                        html += "<img alt=\"per-class IoU on \(escape(split)), \(escape(source.rawValue))\" src=\"\(chart)\">\n"
                    }
                }
                if let curves = dataURI(png: "\(folder)/curves.png") {
                    html +=
                        "<h3>Training curves: \(escape(source.rawValue))</h3>\n<img alt=\"training curves, \(escape(source.rawValue))\" src=\"\(curves)\">\n"
                }
            }
        }
        return html
    }

    /// The first `maxPanels` pseudo-label panels of each source.
    static func gallerySection(_ summary: PipelineSummary, layout: RunLayout, maxPanels: Int) -> String {
        var html = ""
        var gallery = ""
        for source in summary.pseudoMIoU.keys.sorted() {
            let folder = layout.pseudoLabels(source) + "/visualize"
            let names = ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).filter { $0.hasSuffix(".png") }
                .sorted().prefix(maxPanels)
            guard !names.isEmpty else { continue }
            gallery += "<h3>\(escape(source.rawValue))</h3>\n"
            for name in names {
                if let uri = dataURI(png: "\(folder)/\(name)") {
                    gallery += "<img alt=\"\(escape(source.rawValue)) \(escape(name))\" src=\"\(uri)\"><br>\n"
                }
            }
        }
        if !gallery.isEmpty { html += "<h2>Pseudo-labels, image by image</h2>\n" + gallery }
        return html
    }

    /// Rows of per-class IoU, one per (label, scores); columns are the union of class names in file order.
    static func table(rows: [(String, [(name: String, iou: Double?, miou: Double)])], main: String?) -> String {
        var classes: [String] = []
        for (_, scores) in rows { for s in scores where !classes.contains(s.name) { classes.append(s.name) } }
        var html = "<table><tr><th></th><th>mIoU</th>" + classes.map { "<th>\(escape($0))</th>" }.joined() + "</tr>\n"
        for (label, scores) in rows {
            let byName = Dictionary(scores.map { ($0.name, $0.iou) }, uniquingKeysWith: { a, _ in a })
            let miou = scores.first.map { String(format: "%.2f", $0.miou) } ?? "–"
            html +=
                "<tr\(label == main ? " class=\"main\"" : "")><td>\(escape(label))\(label == main ? " *" : "")</td><td>\(miou)</td>"
            html +=
                classes.map { c in "<td>\((byName[c] ?? nil).map { String(format: "%.1f", $0) } ?? "–")</td>" }.joined()
                + "</tr>\n"
        }
        return html + "</table>\n"
    }

    /// The per-class IoU of a `score.json` / `eval_<split>.json` (as `SegmentationReport.jsonObject`
    /// writes it), in the order of its class names; empty when the file is absent.
    static func classScores(at path: String) -> [(name: String, iou: Double?, miou: Double)] {
        guard let data = FileManager.default.contents(atPath: path),
            let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
            let perClass = object["per_class"] as? [String: Any], let miou = object["miou"] as? Double
        else { return [] }
        let order = (object["classes"] as? [String]) ?? perClass.keys.sorted()
        return order.map { ($0, perClass[$0] as? Double, miou) }
    }

    static func dataURI(png path: String) -> String? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        return "data:image/png;base64," + data.base64EncodedString()
    }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}
