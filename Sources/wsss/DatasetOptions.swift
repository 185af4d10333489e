import ArgumentParser
import Datasets
import Foundation

/// The split a command reads when --split is not given.
protocol DefaultSplit { static var name: String { get } }
enum TrainSplitByDefault: DefaultSplit { static var name: String { "train" } }
enum ValSplitByDefault: DefaultSplit { static var name: String { "val" } }

/// Where a dataset is and how to read it (--split defaulting to train).
typealias DatasetOptions = SplitDatasetOptions<TrainSplitByDefault>
/// The same for commands that score a held-out split (--split defaulting to val).
typealias EvalDatasetOptions = SplitDatasetOptions<ValSplitByDefault>

/// Where a dataset is and how to read it; `Default` names the split read without --split.
struct SplitDatasetOptions<Default: DefaultSplit>: ParsableArguments {
    @Option(help: ArgumentHelp("Dataset root in the PASCAL VOC 2012 layout. (required)", valueName: "dir"))
    var root: String

    @Option(help: ArgumentHelp("Image list: ImageSets/Segmentation/<split>.txt.", valueName: "name"))
    var split = Default.name

    @Option(
        help: ArgumentHelp(
            "Label folder (relative to the working directory, as every path on the command line) overriding SegmentationClass[Aug]: pseudo-labels from any source plug in here. (default: SegmentationClassAug for *_aug splits, else SegmentationClass)",
            valueName: "dir"))
    var labels: String?

    @Option(
        help: ArgumentHelp(
            "Plain image-label file (one line per image: id, then class names or indices) instead of Annotations/*.xml, or 'masks' to read them off the label PNGs (as IRN's cls_labels.npy). (default: Annotations/*.xml)",
            valueName: "file|masks"))
    var imageLabels: String?

    @Option(
        help: ArgumentHelp(
            "Class names: 'voc' or a file with one name per line, background first. (default: <root>/classes.txt if present, else voc)",
            valueName: "voc|file"))
    var classes: String?

    func classNames() throws -> ClassNames {
        if let classes { return try ClassNames.load(classes) }
        return try ClassNames.of(datasetRoot: root)
    }

    func dataset(requireLabels: Bool = false) throws -> VOCDataset {
        try VOCDataset(
            root: root, split: split, classes: classNames(), labels: labels.map(absolutePath),
            imageLabelFile: imageLabels == "masks" ? nil : imageLabels, requireLabels: requireLabels,
            imageLabelsFromMasks: imageLabels == "masks")
    }
}

/// A command-line path made absolute against the working directory (recipe paths to dataset
/// files are relative to data.root instead; docs/RECIPES.md).
func absolutePath(_ path: String) -> String {
    path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
}

/// Prints one JSON object on stdout.
func printJSON(_ object: Any) {
    let data =
        (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
    print(String(decoding: data, as: UTF8.self))
}

/// A failure already reported to the user: exit non-zero without another message.
struct ReportedFailure: Error, CustomStringConvertible {
    var description: String { "" }
}
