import Dispatch
import Foundation
import Imaging

/// What `wsss data check` finds in a dataset split.
public struct DatasetCheckReport: Encodable, Sendable {
    public var root: String
    public var split: String
    public var images: Int
    public var imagesWithLabels: Int
    public var imageLabelSource: String
    /// Images containing each object class (from image-level labels).
    public var imagesPerClass: [String: Int]
    /// Share of labelled pixels per class (from the label PNGs), in percent.
    public var pixelPercentPerClass: [String: Double]
    public var ignoredPixelPercent: Double
    public var minimumSize: [Int]
    public var maximumSize: [Int]
    /// Images whose annotations (XML or image-label file) and label PNGs disagree, by kind.
    public var disagreements: [LabelDisagreement]
    /// Every problem found, each naming its file.
    public var problems: [String]

    /// A human-readable summary.
    public var text: String {
        var lines = [
            "\(root) [\(split)]: \(images) images, \(imagesWithLabels) with label PNGs, image labels from \(imageLabelSource)"
        ]
        if images > 0 { lines.append("sizes: \(minimumSize[0])x\(minimumSize[1]) … \(maximumSize[0])x\(maximumSize[1]) (W x H)") }
        lines.append("class                images   pixels %")
        // Past VOC's 21 classes (COCO's 81) the rows of classes no image has would bury the rest:
        // they are counted on one line instead (the JSON keeps every class).
        let absent = imagesPerClass.keys.filter { imagesPerClass[$0] == 0 && (pixelPercentPerClass[$0] ?? 0) == 0 }
        let hidden = imagesPerClass.count > 20 ? Set(absent) : []
        for name in imagesPerClass.keys.sorted(by: { (imagesPerClass[$0]!, $1) > (imagesPerClass[$1]!, $0) })
        where !hidden.contains(name) {
            let pixels = pixelPercentPerClass[name].map { String(format: "%8.2f", $0) } ?? "       –"
            lines.append(
                name.padding(toLength: 18, withPad: " ", startingAt: 0) + String(format: "%8d", imagesPerClass[name]!) + "   "
                    + pixels)
        }
        if !hidden.isEmpty { lines.append("(\(hidden.count) classes in no image not shown)") }
        if imagesWithLabels > 0 { lines.append(String(format: "ignored (255) pixels: %.2f%%", ignoredPixelPercent)) }
        for d in disagreements where !d.isProblem { lines.append("note: " + d.summary) }
        lines.append(problems.isEmpty ? "no problems found" : "\(problems.count) problem\(problems.count == 1 ? "" : "s"):")
        lines += problems.map { "  " + $0 }
        return lines.joined(separator: "\n")
    }
}

/// One way a split's image-level annotations and its label PNGs disagree, with how many images
/// do so and a few of them. A class named by the XML (or image-label file) but absent from the
/// label PNG means a missed or mislabelled object; a class in the PNG that the annotations do not
/// list would leak into training as a class the image-level labels deny.
public struct LabelDisagreement: Encodable, Equatable, Sendable {
    public enum Kind: String, Encodable, Sendable {
        /// The annotations name a class no pixel of the label PNG has, and the PNG has no ignore
        /// (255) pixels it could lie under.
        case listedButAbsent = "listed_but_absent"
        /// The annotations name a class no pixel of the label PNG has, but the PNG has ignore
        /// pixels: a sliver of an occluded object can lie wholly in VOC's 255 boundary band.
        case listedButOnlyIgnore = "listed_but_only_ignore"
        /// The label PNG has pixels of a class the annotations do not name.
        case unlisted
        /// The label PNG is not the size of its image.
        case size
    }
    public var kind: Kind
    /// Images that disagree this way.
    public var images: Int
    /// Up to five of them, e.g. "2008_000123 (dog, cat)" or "2008_000124 (250x200, image 500x375)".
    public var examples: [String]
    /// Whether it counts as a problem (exit status 1). Classes that may lie under ignore pixels,
    /// and absent classes in a label folder given by the user (pseudo-labels, which may miss an
    /// object), are a note.
    public var isProblem: Bool

    /// One line: how many images, what, examples.
    public var summary: String {
        let what =
            switch kind {
            case .listedButAbsent: "annotations name classes absent from the label PNG"
            case .listedButOnlyIgnore: "annotations name classes the label PNG shows nowhere outside its 255 (ignore) pixels"
            case .unlisted: "label PNGs hold classes the annotations do not list"
            case .size: "label PNGs differ in size from their images"
            }
        return "\(images) image\(images == 1 ? "" : "s"): \(what) (e.g. \(examples.joined(separator: "; ")))"
    }
}

extension VOCDataset {
    /// What checking one sample found.
    struct SampleCheck {
        var problems: [String] = []
        var imageLabels: Set<Int> = []
        var pixelCounts: [Int]
        var ignored = 0
        var size: (Int, Int)?
        var hasLabels = false
        var disagreement: [LabelDisagreement.Kind: String] = [:]
    }

    /// One sample: its image and label PNG read and validated, pixel counts, its image-level
    /// labels and how they disagree with the PNG.
    func check(_ sample: Sample, requireLabels: Bool) -> SampleCheck {
        var r = SampleCheck(pixelCounts: Array(repeating: 0, count: classes.count))
        var present: Set<Int>?
        do {
            let (image, labels) = try load(sample)
            r.size = (image.width, image.height)
            if labels == nil && requireLabels {
                r.problems.append(
                    DatasetError.missingFile(path: "\(labelDirectory)/\(sample.id).png", what: "label PNG")
                        .localizedDescription)
            }
            if let labels {
                r.hasLabels = true
                for v in labels.values {
                    if v == LabelMap.ignore { r.ignored += 1 } else { r.pixelCounts[Int(v)] += 1 }
                }
                present = Set(r.pixelCounts.indices.filter { $0 > 0 && r.pixelCounts[$0] > 0 })
            }
        } catch let DatasetError.labelSize(path, label, image) {
            r.problems.append(DatasetError.labelSize(path: path, label: label, image: image).localizedDescription)
            r.disagreement[.size] = "\(sample.id) (\(label.0)x\(label.1), image \(image.0)x\(image.1))"
        } catch {
            r.problems.append(error.localizedDescription)
        }
        do {
            r.imageLabels = try imageLabels(of: sample)
            // Only annotations made apart from the PNG can disagree with it.
            let independent =
                sample.imageLabels != nil
                || (imageLabelSource == .annotations
                    && FileManager.default.fileExists(atPath: "\(root)/Annotations/\(sample.id).xml"))
            if independent, let present {
                func names(_ set: Set<Int>) -> String { set.sorted().map { classes.names[$0] }.joined(separator: ", ") }
                let absent = r.imageLabels.subtracting(present), unlisted = present.subtracting(r.imageLabels)
                if !absent.isEmpty {
                    r.disagreement[r.ignored > 0 ? .listedButOnlyIgnore : .listedButAbsent] =
                        "\(sample.id) (\(names(absent)))"
                }
                if !unlisted.isEmpty { r.disagreement[.unlisted] = "\(sample.id) (\(names(unlisted)))" }
            }
        } catch {
            r.problems.append(error.localizedDescription)
        }
        return r
    }

    /// Reads every image, label and annotation of the split (in parallel) and reports counts,
    /// class frequencies and every problem found. With `requireLabels` (a label folder named by
    /// the user, which training will read), an image without its label PNG is a problem too.
    ///
    /// Where image-level labels come from the XML annotations or a label file (not from the PNG
    /// itself), they are compared with each label PNG: classes listed but absent, classes present
    /// but not listed, and label maps of another size than their image are counted in
    /// `disagreements` (see `LabelDisagreement`); each kind that is a problem is one problem line.
    /// Listed classes that may lie under ignore pixels are a note, and so are absent classes with
    /// `requireLabels`: pseudo-labels may miss an object.
    public func check(requireLabels: Bool = false) -> DatasetCheckReport {
        let classCount = classes.count
        var results = [SampleCheck](
            repeating: SampleCheck(pixelCounts: Array(repeating: 0, count: classCount)), count: samples.count)
        results.withUnsafeMutableBufferPointer { out in
            let buffer = out
            DispatchQueue.concurrentPerform(iterations: samples.count) { i in
                buffer[i] = check(samples[i], requireLabels: requireLabels)
            }
        }
        var imagesPerClass: [String: Int] = [:]
        for name in classes.names.dropFirst() { imagesPerClass[name] = 0 }
        var pixels = [Int](repeating: 0, count: classCount)
        var ignored = 0
        var minSize = [Int.max, Int.max], maxSize = [0, 0]
        var problems: [String] = []
        for r in results {
            problems += r.problems
            for c in r.imageLabels { imagesPerClass[classes.names[c], default: 0] += 1 }
            for c in 0..<classCount { pixels[c] += r.pixelCounts[c] }
            ignored += r.ignored
            if let (w, h) = r.size {
                minSize = [min(minSize[0], w), min(minSize[1], h)]
                maxSize = [max(maxSize[0], w), max(maxSize[1], h)]
            }
        }
        var disagreements: [LabelDisagreement] = []
        for kind in [LabelDisagreement.Kind.listedButAbsent, .listedButOnlyIgnore, .unlisted, .size] {
            let examples = results.compactMap { $0.disagreement[kind] }
            guard !examples.isEmpty else { continue }
            let d = LabelDisagreement(
                kind: kind, images: examples.count, examples: Array(examples.prefix(5)),
                isProblem: kind == .unlisted || kind == .size || (kind == .listedButAbsent && !requireLabels))
            disagreements.append(d)
            // Each size mismatch already has its own line naming the file.
            if d.isProblem && kind != .size { problems.append("\(labelDirectory): " + d.summary) }
        }
        // Some images with label PNGs and some without: a split is labelled or it is not, so the
        // missing ones are an inconsistency (a PNG lost, or saved under another extension).
        let unlabelled = zip(samples, results).filter { !$0.1.hasLabels && $0.1.size != nil }.map(\.0.id)
        if !requireLabels && !unlabelled.isEmpty && unlabelled.count < samples.count {
            let other = unlabelled.filter { id in
                ["jpg", "jpeg", "PNG"].contains { FileManager.default.fileExists(atPath: "\(labelDirectory)/\(id).\($0)") }
            }
            problems.append(
                "\(labelDirectory): \(unlabelled.count) of \(samples.count) images have no label PNG while the others do: "
                    + unlabelled.prefix(5).joined(separator: ", ") + (unlabelled.count > 5 ? ", …" : "")
                    + (other.isEmpty ? "" : " (saved under another extension: \(other.prefix(5).joined(separator: ", ")))"))
        }
        let labelled = pixels.reduce(0, +)
        var pixelPercent: [String: Double] = [:]
        if labelled > 0 {
            for (c, name) in classes.names.enumerated() { pixelPercent[name] = Double(pixels[c]) / Double(labelled) * 100 }
        }
        return DatasetCheckReport(
            root: root, split: split, images: samples.count, imagesWithLabels: results.filter(\.hasLabels).count,
            imageLabelSource: imageLabelSource.rawValue, imagesPerClass: imagesPerClass, pixelPercentPerClass: pixelPercent,
            ignoredPixelPercent: labelled + ignored > 0 ? Double(ignored) / Double(labelled + ignored) * 100 : 0,
            minimumSize: samples.isEmpty ? [0, 0] : minSize, maximumSize: maxSize, disagreements: disagreements,
            problems: problems)
    }
}
