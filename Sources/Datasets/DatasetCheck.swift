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
    /// Every problem found, each naming its file.
    public var problems: [String]

    /// A human-readable summary.
    public var text: String {
        var lines = ["\(root) [\(split)]: \(images) images, \(imagesWithLabels) with label PNGs, image labels from \(imageLabelSource)"]
        if images > 0 { lines.append("sizes: \(minimumSize[0])x\(minimumSize[1]) … \(maximumSize[0])x\(maximumSize[1]) (W x H)") }
        lines.append("class                images   pixels %")
        for name in imagesPerClass.keys.sorted(by: { (imagesPerClass[$0]!, $1) > (imagesPerClass[$1]!, $0) }) {
            let pixels = pixelPercentPerClass[name].map { String(format: "%8.2f", $0) } ?? "       –"
            lines.append(name.padding(toLength: 18, withPad: " ", startingAt: 0) + String(format: "%8d", imagesPerClass[name]!) + "   " + pixels)
        }
        if imagesWithLabels > 0 { lines.append(String(format: "ignored (255) pixels: %.2f%%", ignoredPixelPercent)) }
        lines.append(problems.isEmpty ? "no problems found" : "\(problems.count) problem\(problems.count == 1 ? "" : "s"):")
        lines += problems.map { "  " + $0 }
        return lines.joined(separator: "\n")
    }
}

extension VOCDataset {
    /// Reads every image, label and annotation of the split (in parallel) and reports counts,
    /// class frequencies and every problem found. With `requireLabels` (a label folder named by
    /// the user, which training will read), an image without its label PNG is a problem too.
    public func check(requireLabels: Bool = false) -> DatasetCheckReport {
        struct Result {
            var problems: [String] = []
            var imageLabels: Set<Int> = []
            var pixelCounts: [Int]
            var ignored = 0
            var size: (Int, Int)?
            var hasLabels = false
        }
        let classCount = classes.count
        var results = [Result](repeating: Result(pixelCounts: Array(repeating: 0, count: classCount)), count: samples.count)
        results.withUnsafeMutableBufferPointer { out in
            let buffer = out
            DispatchQueue.concurrentPerform(iterations: samples.count) { i in
                var r = Result(pixelCounts: Array(repeating: 0, count: classCount))
                let sample = samples[i]
                do {
                    let (image, labels) = try load(sample)
                    r.size = (image.width, image.height)
                    if labels == nil && requireLabels {
                        r.problems.append(DatasetError.missingFile(path: "\(labelDirectory)/\(sample.id).png", what: "label PNG").localizedDescription)
                    }
                    if let labels {
                        r.hasLabels = true
                        for v in labels.values {
                            if v == LabelMap.ignore { r.ignored += 1 } else { r.pixelCounts[Int(v)] += 1 }
                        }
                    }
                } catch {
                    r.problems.append(error.localizedDescription)
                }
                do { r.imageLabels = try imageLabels(of: sample) } catch { r.problems.append(error.localizedDescription) }
                buffer[i] = r
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
        let labelled = pixels.reduce(0, +)
        var pixelPercent: [String: Double] = [:]
        if labelled > 0 {
            for (c, name) in classes.names.enumerated() { pixelPercent[name] = Double(pixels[c]) / Double(labelled) * 100 }
        }
        return DatasetCheckReport(
            root: root, split: split, images: samples.count, imagesWithLabels: results.filter(\.hasLabels).count,
            imageLabelSource: imageLabelSource.rawValue, imagesPerClass: imagesPerClass, pixelPercentPerClass: pixelPercent,
            ignoredPixelPercent: labelled + ignored > 0 ? Double(ignored) / Double(labelled + ignored) * 100 : 0,
            minimumSize: samples.isEmpty ? [0, 0] : minSize, maximumSize: maxSize, problems: problems)
    }
}
