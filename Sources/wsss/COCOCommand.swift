import ArgumentParser
import Datasets
import Foundation

extension COCOConverter.CrowdRule: ExpressibleByArgument {}
extension COCOConverter.UnannotatedRule: ExpressibleByArgument {}
extension COCOConverter.ImageLabelRule: ExpressibleByArgument {}

/// `wsss coco`: MS-COCO instances files → the VOC layout every other command reads.
struct COCOCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "coco", abstract: "MS-COCO 2014 support: convert instances files to the VOC layout.",
        subcommands: [Convert.self])

    struct Convert: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Convert a COCO instances file (polygons, RLE, crowds) into label PNGs, image labels, classes and a split list.",
            discussion: """
                Writes ROOT/SegmentationClass/<stem>.png (0 background, 1–80 in the order of the category ids, 255 ignore), \
                ROOT/JPEGImages/<stem>.jpg (links to the images), ROOT/ImageSets/Segmentation/<split>.txt, \
                ROOT/image_labels_<split>.txt (for --image-labels) and ROOT/classes.txt. Masks are pycocotools' annToMask; \
                instances are painted as alicranck/coco2voc does (ascending area, the first class on a pixel wins). \
                Finished PNGs are kept on a rerun. See docs/COCO.md.
                """)

        @Option(
            help: ArgumentHelp("COCO instances file, e.g. annotations/instances_train2014.json. (required)", valueName: "file"))
        var annotations: String

        @Option(help: ArgumentHelp("Folder of the images the file names, e.g. train2014/. (required)", valueName: "dir"))
        var images: String

        @Option(help: ArgumentHelp("Dataset root to write (created; shared by several splits). (required)", valueName: "dir"))
        var out: String

        @Option(help: ArgumentHelp("Split name for the lists written.", valueName: "name"))
        var split = "train"

        @Option(
            help: ArgumentHelp(
                "Crowd annotations: painted as their class (coco2voc) or as 255 ignore where no other object lies.",
                valueName: "class|ignore"))
        var crowd = COCOConverter.CrowdRule.class

        @Option(
            help: ArgumentHelp(
                "Images without annotations: keep (all background) or skip. (default: skip for train* splits, keep otherwise)",
                valueName: "keep|skip"))
        var unannotated: COCOConverter.UnannotatedRule?

        @Option(
            help: ArgumentHelp(
                "Image labels written: every annotation's class (as WSSS papers' COCO labels), or the classes present in each label map (then data check finds no disagreement).",
                valueName: "annotations|label-maps"))
        var labelsFrom = COCOConverter.ImageLabelRule.annotations

        @Flag(help: "Print the report as one JSON object on stdout.")
        var json = false

        func run() throws {
            var options = COCOConverter.Options()
            (options.split, options.crowd, options.unannotated, options.imageLabels) = (split, crowd, unannotated, labelsFrom)
            Log.info("coco: reading \(annotations)")
            let bar = Box<ProgressBar?>(nil)
            let report = try COCOConverter.convert(
                annotations: annotations, images: images, root: out, options: options,
                progress: { done, total in
                    // The converter calls (0, total) once before its workers start.
                    if done == 0 { bar.set(ProgressBar("coco convert", total: total)) } else { bar.value?.advance() }
                })
            for warning in report.warnings.prefix(20) { Log.info("warning: " + warning) }
            if report.warnings.count > 20 { Log.info("warning: … and \(report.warnings.count - 20) more") }
            if json {
                let encoder = JSONEncoder()
                encoder.keyEncodingStrategy = .convertToSnakeCase
                encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
                print(String(decoding: try encoder.encode(report), as: UTF8.self))
            } else {
                print(
                    "\(out) [\(split)]: \(report.images) images (\(report.written) written, \(report.kept) kept from an earlier run, "
                        + "\(report.skippedUnannotated) without annotations skipped), \(report.annotations) annotations, "
                        + "\(report.warnings.count) warnings, \(String(format: "%.1f", report.seconds)) s")
                if report.classesWithoutPixels > 0 {
                    print(
                        "note: \(report.classesWithoutPixels) images have an annotated class with no pixel in their label map (covered by smaller objects or too thin); data check lists them, --labels-from label-maps writes labels that agree"
                    )
                }
                print("next: wsss data check --root \(out) --split \(split) --image-labels \(out)/image_labels_\(split).txt")
            }
        }
    }
}

/// A value shared with a @Sendable closure (the progress bar made on the first call).
final class Box<T>: @unchecked Sendable {
    private var stored: T
    private let lock = NSLock()
    init(_ value: T) { stored = value }
    var value: T {
        lock.lock()
        defer { lock.unlock() }
        return stored
    }
    func set(_ value: T) {
        lock.lock()
        defer { lock.unlock() }
        stored = value
    }
}
