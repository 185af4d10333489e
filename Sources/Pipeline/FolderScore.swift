import Datasets
import Dispatch
import Evaluation
import Foundation
import Imaging

/// Scores a folder of label PNGs (predictions, pseudo-labels from anywhere) against ground-truth
/// PNGs, matched by file name: what `wsss score` runs, for any Swift caller too.
public enum FolderScore {
    /// The image ids to score: the first field of each line of `list` (VOC lists may carry a
    /// second column; blank lines skipped), else every `.png` in `groundTruth`, sorted.
    /// - Throws: `DatasetError` for a missing or empty list, an id listed twice (it would count
    ///   twice in the mIoU), or a ground-truth folder without PNGs.
    public static func ids(list: String?, groundTruth: String) throws -> [String] {
        guard let list else {
            guard let files = try? FileManager.default.contentsOfDirectory(atPath: groundTruth) else {
                throw DatasetError.missingRoot(path: groundTruth)
            }
            let ids = files.filter { $0.hasSuffix(".png") }.map { String($0.dropLast(4)) }.sorted()
            // An empty folder would score 0.00 mIoU over no images rather than say so.
            guard !ids.isEmpty else {
                throw DatasetError.missingFile(path: groundTruth, what: "ground-truth PNGs (the folder holds no .png files)")
            }
            return ids
        }
        return try VOCDataset.readIDList(at: list)
    }

    /// The files of `ids` missing in either folder (an image missing on either side is an error,
    /// not skipped).
    public static func missingFiles(ids: [String], predictions: String, groundTruth: String) -> [String] {
        ids.flatMap { id in
            ["\(predictions)/\(id).png", "\(groundTruth)/\(id).png"].filter { !FileManager.default.fileExists(atPath: $0) }
        }
    }

    /// The confusion matrix over `ids`, in parallel (one matrix per chunk, merged). Ground-truth
    /// 255 is ignored; a predicted 255 counts as a miss.
    /// - Throws: `DatasetError` naming the file: unreadable, another size, a class id out of range.
    public static func confusion(ids: [String], predictions: String, groundTruth: String, classCount: Int) throws
        -> ConfusionMatrix
    {
        let chunks = max(1, min(ids.count, ProcessInfo.processInfo.activeProcessorCount * 4))
        var partial = [Result<ConfusionMatrix, Error>](
            repeating: .success(ConfusionMatrix(classCount: classCount)), count: chunks)
        partial.withUnsafeMutableBufferPointer { buffer in
            let out = buffer
            DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
                out[chunk] = Result {
                    var m = ConfusionMatrix(classCount: classCount)
                    for id in ids[(ids.count * chunk / chunks)..<(ids.count * (chunk + 1) / chunks)] {
                        try add(id: id, predictions: predictions, groundTruth: groundTruth, classCount: classCount, to: &m)
                    }
                    return m
                }
            }
        }
        var total = ConfusionMatrix(classCount: classCount)
        for result in partial { total.merge(try result.get()) }
        return total
    }

    static func add(id: String, predictions: String, groundTruth: String, classCount: Int, to m: inout ConfusionMatrix) throws {
        let (p, g) = ("\(predictions)/\(id).png", "\(groundTruth)/\(id).png")
        let (prediction, truth) = (try LabelMap.read(from: p), try LabelMap.read(from: g))
        guard prediction.width == truth.width && prediction.height == truth.height else {
            throw DatasetError.labelSize(
                path: p, label: (prediction.width, prediction.height), image: (truth.width, truth.height))
        }
        do {
            try m.add(prediction: prediction.values, groundTruth: truth.values)
        } catch let mismatch as ConfusionMatrix.Mismatch {
            // Sizes were checked above, so only a class id can be out of range.
            guard case ConfusionMatrix.Mismatch.classOutOfRange(let value, let inPrediction) = mismatch else { throw mismatch }
            throw DatasetError.classOutOfRange(path: inPrediction ? p : g, value: value, classCount: classCount)
        }
    }
}
