import Foundation
import Imaging

/// One image of a dataset and where its labels are.
public struct Sample: Equatable, Sendable {
    public let id: String
    public let imagePath: String
    /// The pixel label PNG, when the dataset has one for this image.
    public let labelPath: String?
    /// Object classes present (indices, background excluded), when known.
    public let imageLabels: Set<Int>?
}

/// A dataset in the PASCAL VOC 2012 layout:
/// ```
/// ROOT/JPEGImages/<id>.jpg
/// ROOT/SegmentationClass/<id>.png        (or SegmentationClassAug, or any label folder)
/// ROOT/Annotations/<id>.xml              (image-level labels)
/// ROOT/ImageSets/Segmentation/<split>.txt
/// ```
/// Image-level labels come from, in order: an image-label file when given, the XML annotation,
/// or the classes present in the pixel labels.
public struct VOCDataset: Sendable {
    public let root: String
    public let split: String
    public let classes: ClassNames
    /// Folder of label PNGs: pseudo-labels from any source plug in here.
    public let labelDirectory: String
    public private(set) var samples: [Sample]

    /// The same dataset restricted to `samples` (e.g. one data-parallel rank's share of a split).
    public func subset(_ samples: [Sample]) -> VOCDataset {
        var copy = self
        copy.samples = samples
        return copy
    }

    /// Where image-level labels came from.
    public enum ImageLabelSource: String, Sendable {
        case labelFile = "label file", annotations = "XML annotations", pixelLabels = "pixel labels", none
    }
    public let imageLabelSource: ImageLabelSource

    /// - Parameters:
    ///   - labels: label folder, relative to `root` or absolute; nil picks SegmentationClassAug
    ///     for `train_aug` (when present) and SegmentationClass otherwise.
    ///   - imageLabelFile: a plain image-label file overriding the XML annotations.
    ///   - requireLabels: when true, every image must have a label PNG.
    ///   - imageLabelsFromMasks: where there is no label file and no XML, take a sample's image-level
    ///     labels from the classes in its label PNG (as IRN's cls_labels.npy was made). Off by
    ///     default: weak supervision read off pixel labels must be asked for, never a silent fallback.
    public init(
        root: String, split: String, classes: ClassNames = .voc, labels: String? = nil,
        imageLabelFile: String? = nil, requireLabels: Bool = false, imageLabelsFromMasks: Bool = false
    ) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: root, isDirectory: &isDirectory) else {
            throw DatasetError.missingRoot(path: root)
        }
        guard isDirectory.boolValue else { throw DatasetError.notAFolder(path: root) }
        self.root = root
        self.split = split
        self.classes = classes
        let listPath = "\(root)/ImageSets/Segmentation/\(split).txt"
        let ids = try Self.readIDList(at: listPath, split: split)
        let fm = FileManager.default
        let labelFolder: String
        if let labels {
            labelFolder = labels.hasPrefix("/") ? labels : "\(root)/\(labels)"
        } else if split.hasSuffix("_aug"), fm.fileExists(atPath: "\(root)/SegmentationClassAug") {
            labelFolder = "\(root)/SegmentationClassAug"
        } else {
            labelFolder = "\(root)/SegmentationClass"
        }
        labelDirectory = labelFolder
        var labelIsFolder: ObjCBool = false
        if labels != nil, fm.fileExists(atPath: labelFolder, isDirectory: &labelIsFolder), !labelIsFolder.boolValue {
            throw DatasetError.notAFolder(path: labelFolder)
        }
        let fileLabels = try imageLabelFile.map { try ImageLabelFile.read($0, classes: classes) }
        let hasAnnotations = fm.fileExists(atPath: "\(root)/Annotations")
        imageLabelSource =
            fileLabels != nil ? .labelFile : hasAnnotations ? .annotations : imageLabelsFromMasks ? .pixelLabels : .none
        var samples: [Sample] = []
        for id in ids {
            let image = "\(root)/JPEGImages/\(id).jpg"
            let label = "\(labelFolder)/\(id).png"
            let hasLabel = fm.fileExists(atPath: label)
            if requireLabels && !hasLabel { throw DatasetError.missingFile(path: label, what: "label PNG") }
            var imageLabels: Set<Int>?
            if let fileLabels {
                guard let set = fileLabels[id] else {
                    throw DatasetError.missingFile(path: imageLabelFile!, what: "image labels for '\(id)'")
                }
                imageLabels = set
            }
            samples.append(Sample(id: id, imagePath: image, labelPath: hasLabel ? label : nil, imageLabels: imageLabels))
        }
        self.samples = samples
    }

    /// The image ids of a list file: the first field of each line (VOC lists may carry a second
    /// column; CRLF, a BOM and blank lines are fine).
    /// - Throws: `DatasetError`: `.missingSplit` (with `split`) or `.missingFile` when there is no
    ///   file, `.badSplitList` for a folder, an unreadable or non-UTF-8 file, an id listed twice
    ///   (it would count twice in the mIoU and train twice as often) or no id at all.
    public static func readIDList(at listPath: String, split: String? = nil) throws -> [String] {
        guard let list = try? String(contentsOfFile: listPath, encoding: .utf8) else {
            // "No list" only when there is none: a folder, no permission or bad UTF-8 say so.
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: listPath, isDirectory: &isDirectory) else {
                if let split { throw DatasetError.missingSplit(split: split, path: listPath) }
                throw DatasetError.missingFile(path: listPath, what: "image list")
            }
            throw DatasetError.badSplitList(
                path: listPath,
                reason: isDirectory.boolValue
                    ? "is a folder"
                    : access(listPath, R_OK) != 0 ? "cannot read (\(String(cString: strerror(errno))))" : "not UTF-8 text")
        }
        let ids = list.split(whereSeparator: \.isNewline).compactMap {
            $0.split(whereSeparator: \.isWhitespace).first.map(String.init)
        }
        var seen: [String: Int] = [:]
        for (line, id) in ids.enumerated() {
            if let first = seen[id] {
                throw DatasetError.badSplitList(
                    path: listPath, reason: "'\(id)' is listed twice (entries \(first + 1) and \(line + 1))")
            }
            seen[id] = line
        }
        guard !ids.isEmpty else { throw DatasetError.badSplitList(path: listPath, reason: "lists no image ids") }
        return ids
    }

    /// Object class indices of a sample: from the label file, else its XML, else its label PNG.
    public func imageLabels(of sample: Sample) throws -> Set<Int> {
        if let labels = sample.imageLabels { return labels }
        let xml = "\(root)/Annotations/\(sample.id).xml"
        if imageLabelSource == .annotations && FileManager.default.fileExists(atPath: xml) {
            var set = Set<Int>()
            for name in try VOCAnnotation.objectNames(at: xml) {
                guard let index = classes.index(of: name), index > 0 else {
                    throw DatasetError.unknownClass(name: name, path: xml, line: nil)
                }
                set.insert(index)
            }
            return set
        }
        if imageLabelSource == .pixelLabels, let labelPath = sample.labelPath {
            return Set(try LabelMap.read(from: labelPath).classesPresent.map(Int.init)).subtracting([0])
        }
        throw DatasetError.missingFile(
            path: xml,
            what: imageLabelSource == .pixelLabels
                ? "image-level labels (no XML and no label PNG)"
                : "image-level labels (no XML and no label file; --image-labels FILE names one, or data.image_labels: masks / "
                    + "--image-labels masks reads them off the label PNGs)")
    }

    /// Reads a sample's RGB image and (when present) its label map, checking that they match:
    /// same size, class ids below the class count or 255.
    public func load(_ sample: Sample) throws -> (image: Image, labels: LabelMap?) {
        let image = try Image.readRGB(from: sample.imagePath)
        guard let labelPath = sample.labelPath else { return (image, nil) }
        let labels = try LabelMap.read(from: labelPath)
        try Self.validate(labels, path: labelPath, image: image, classCount: classes.count)
        return (image, labels)
    }

    /// Checks a label map against its image and the class count.
    public static func validate(_ labels: LabelMap, path: String, image: Image, classCount: Int) throws {
        guard labels.width == image.width && labels.height == image.height else {
            throw DatasetError.labelSize(path: path, label: (labels.width, labels.height), image: (image.width, image.height))
        }
        if let bad = labels.values.first(where: { Int($0) >= classCount && $0 != LabelMap.ignore }) {
            throw DatasetError.classOutOfRange(path: path, value: bad, classCount: classCount)
        }
    }
}
