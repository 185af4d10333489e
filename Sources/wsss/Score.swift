import ArgumentParser
import Pipeline
import Datasets
import Dispatch
import Evaluation
import Foundation
import Reporting
import Imaging

/// `wsss score`: scores a folder of label PNGs against ground truth.
struct Score: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Score a folder of label PNGs (predictions, pseudo-labels) against ground-truth PNGs: per-class IoU, mIoU, pixel accuracy.",
        discussion:
            "Images are matched by file name (<id>.png). An image missing on either side is an error, not skipped. Ground-truth 255 is ignored; a predicted 255 counts as a miss."
    )

    @Option(help: ArgumentHelp("Folder of predicted label PNGs. (required)", valueName: "dir"))
    var pred: String

    @Option(help: ArgumentHelp("Folder of ground-truth label PNGs. (required)", valueName: "dir"))
    var gt: String

    @Option(
        help: ArgumentHelp(
            "Image ids to score, one per line (e.g. ImageSets/Segmentation/val.txt). (default: every PNG in --gt)",
            valueName: "file"))
    var list: String?

    @Option(
        help: ArgumentHelp(
            "Class names: 'voc' or a file with one name per line, background first. (default: classes.txt beside the --gt folder, as the synthetic set has, else voc)",
            valueName: "voc|file"))
    var classes: String?

    @Option(
        help: ArgumentHelp(
            "Also draw the per-class IoU as a bar chart: a PNG here and an SVG beside it. (default: none)", valueName: "file.png")
    )
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
        let ids = try FolderScore.ids(list: list, groundTruth: gt)
        let missing = FolderScore.missingFiles(ids: ids, predictions: pred, groundTruth: gt)
        if !missing.isEmpty {
            let shown = missing.prefix(20).map { "  \($0): missing" }.joined(separator: "\n")
            Log.info("score: \(counted(missing.count, "file")) missing:\n\(shown)\(missing.count > 20 ? "\n  …" : "")")
            throw ReportedFailure()
        }
        let matrix = try FolderScore.confusion(ids: ids, predictions: pred, groundTruth: gt, classCount: names.count)
        let report = matrix.report(classNames: names.names)
        if let plot {
            let chart = BarChart(report: report, title: "\((pred as NSString).lastPathComponent) vs ground truth: per-class IoU")
            try chart.render(width: 800).writePNG(to: plot)
            try chart.writeSVG(to: ((plot as NSString).deletingPathExtension) + ".svg", width: 800)
        }
        if json {
            print(report.jsonText(images: ids.count))
        } else {
            print(report.table(title: "\(pred) vs \(gt): \(ids.count) images"))
        }
    }
}
