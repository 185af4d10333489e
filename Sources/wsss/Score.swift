import ArgumentParser
import Datasets
import Dispatch
import Evaluation
import Foundation
import Reporting
import Imaging

/// `wsss score`: scores a folder of label PNGs against ground truth.
struct Score: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Score a folder of label PNGs (predictions, pseudo-labels) against ground-truth PNGs: per-class IoU, mIoU, pixel accuracy.",
        discussion: "Images are matched by file name (<id>.png). An image missing on either side is an error, not skipped. Ground-truth 255 is ignored; a predicted 255 counts as a miss.")

    @Option(help: ArgumentHelp("Folder of predicted label PNGs. (required)", valueName: "dir"))
    var pred: String

    @Option(help: ArgumentHelp("Folder of ground-truth label PNGs. (required)", valueName: "dir"))
    var gt: String

    @Option(help: ArgumentHelp("Image ids to score, one per line (e.g. ImageSets/Segmentation/val.txt). (default: every PNG in --gt)", valueName: "file"))
    var list: String?

    @Option(help: ArgumentHelp("Class names: 'voc' or a file with one name per line, background first. (default: classes.txt beside the --gt folder, as the synthetic set has, else voc)", valueName: "voc|file"))
    var classes: String?

    @Option(help: ArgumentHelp("Also draw the per-class IoU as a bar chart: a PNG here and an SVG beside it. (default: none)", valueName: "file.png"))
    var plot: String?

    @Flag(help: "Print one JSON object: miou, pixel_accuracy (percent), per_class (name → IoU %, null if absent), images.")
    var json = false

    func run() throws {
        // A missing folder is one problem, not one "missing" line per image.
        for folder in [pred, gt] {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw DatasetError.missingRoot(path: folder)
            }
        }
        // The dataset root's classes.txt (gt is <root>/SegmentationClass) names the classes when present.
        let names = try classes.map(ClassNames.load) ?? ClassNames.of(datasetRoot: (gt as NSString).deletingLastPathComponent)
        let ids: [String]
        if let list {
            guard let text = try? String(contentsOfFile: list, encoding: .utf8) else { throw DatasetError.missingFile(path: list, what: "image list") }
            // First field of each line (VOC lists may carry a second column); blank lines skipped.
            ids = text.split(whereSeparator: \.isNewline).compactMap {
                $0.split(whereSeparator: \.isWhitespace).first.map(String.init)
            }
            // A repeated id would count its image twice in the mIoU.
            var seen: [String: Int] = [:]
            for (entry, id) in ids.enumerated() {
                if let first = seen[id] {
                    throw DatasetError.badSplitList(
                        path: list, reason: "'\(id)' is listed twice (entries \(first + 1) and \(entry + 1))")
                }
                seen[id] = entry
            }
            guard !ids.isEmpty else { throw DatasetError.badSplitList(path: list, reason: "lists no image ids") }
        } else {
            guard let files = try? FileManager.default.contentsOfDirectory(atPath: gt) else { throw DatasetError.missingRoot(path: gt) }
            ids = files.filter { $0.hasSuffix(".png") }.map { String($0.dropLast(4)) }.sorted()
            // An empty folder would score 0.00 mIoU over no images rather than say so.
            guard !ids.isEmpty else {
                throw DatasetError.missingFile(path: gt, what: "ground-truth PNGs (the folder holds no .png files)")
            }
        }
        let fm = FileManager.default
        let missing = ids.flatMap { id in
            ["\(pred)/\(id).png", "\(gt)/\(id).png"].filter { !fm.fileExists(atPath: $0) }
        }
        if !missing.isEmpty {
            let shown = missing.prefix(20).map { "  \($0): missing" }.joined(separator: "\n")
            Log.info("score: \(missing.count) file\(missing.count == 1 ? "" : "s") missing:\n\(shown)\(missing.count > 20 ? "\n  …" : "")")
            throw ReportedFailure()
        }
        let matrix = try Self.confusion(ids: ids, pred: pred, gt: gt, classCount: names.count)
        let report = matrix.report(classNames: names.names)
        if let plot {
            let chart = BarChart(report: report, title: "\((pred as NSString).lastPathComponent) vs ground truth: per-class IoU")
            try chart.render(width: 800).writePNG(to: plot)
            try chart.writeSVG(to: ((plot as NSString).deletingPathExtension) + ".svg", width: 800)
        }
        if json { print(report.jsonText(images: ids.count)) } else { print(report.table(title: "\(pred) vs \(gt): \(ids.count) images")) }
    }

    /// Accumulates the confusion matrix over `ids` in parallel (one matrix per chunk, merged).
    static func confusion(ids: [String], pred: String, gt: String, classCount: Int) throws -> ConfusionMatrix {
        let chunks = max(1, min(ids.count, ProcessInfo.processInfo.activeProcessorCount * 4))
        var partial = [Result<ConfusionMatrix, Error>](repeating: .success(ConfusionMatrix(classCount: classCount)), count: chunks)
        partial.withUnsafeMutableBufferPointer { buffer in
            let out = buffer
            DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
                out[chunk] = Result {
                    var m = ConfusionMatrix(classCount: classCount)
                    for id in ids[(ids.count * chunk / chunks)..<(ids.count * (chunk + 1) / chunks)] {
                        let (p, g) = ("\(pred)/\(id).png", "\(gt)/\(id).png")
                        let (prediction, truth) = (try LabelMap.read(from: p), try LabelMap.read(from: g))
                        guard prediction.width == truth.width && prediction.height == truth.height else {
                            throw DatasetError.labelSize(path: p, label: (prediction.width, prediction.height), image: (truth.width, truth.height))
                        }
                        do {
                            try m.add(prediction: prediction.values, groundTruth: truth.values)
                        } catch let mismatch as ConfusionMatrix.Mismatch {
                            // Sizes were checked above, so only a class id can be out of range.
                            guard case ConfusionMatrix.Mismatch.classOutOfRange(let value, let inPrediction) = mismatch else { throw mismatch }
                            throw DatasetError.classOutOfRange(path: inPrediction ? p : g, value: value, classCount: classCount)
                        }
                    }
                    return m
                }
            }
        }
        var total = ConfusionMatrix(classCount: classCount)
        for result in partial { total.merge(try result.get()) }
        return total
    }
}
