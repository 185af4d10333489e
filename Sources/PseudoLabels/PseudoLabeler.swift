import Foundation
import Imaging

/// Where the seed label maps (what SEPL sharpens, what boxes come from) come from.
public enum SeedSource: Sendable {
    /// CAMs from a `wsss cam infer` file, thresholded.
    case cams(path: String, threshold: CAMThreshold)
    /// A folder of label PNGs `<dir>/<id>.png` — any WSSS method's CAM labels.
    case folder(String)
}

/// One pseudo-label method; every method writes the same VOC palette PNGs.
public enum PseudoLabelMethod: Sendable {
    /// The seeds themselves (CAM labels, or a folder as it is).
    case seeds
    /// Seeds sharpened by proposals (SEPL).
    case sepl(SEPLMerge)
    /// One proposal per box (from a detection file, else from the seeds' connected components).
    case boxes(BoxMerge, detections: String?)
    /// The ground truth (the upper bound).
    case groundTruth

    /// The source's name, as `--source` spells it.
    public var name: String {
        switch self {
        case .seeds: "cam/folder"
        case .sepl: "sepl"
        case .boxes: "boxes"
        case .groundTruth: "gt"
        }
    }
}

/// What one image needs and gives.
public struct PseudoLabelResult: Sendable {
    public var labels: LabelMap
    public var seeds: LabelMap?
    public var proposals: [SegmentMask]
    public var unmatchedBoxes = 0
    /// Detection boxes that lay wholly outside the image (dropped) and boxes clipped to it.
    public var outsideBoxes = 0
    public var clippedBoxes = 0
}

/// Makes pseudo-labels for one image at a time (thread-safe: call it from several threads).
public final class PseudoLabeler: @unchecked Sendable {
    public let method: PseudoLabelMethod
    public let seedSource: SeedSource?
    public let proposalSource: ProposalSource?
    /// For `.boxes`: masks from prompting with each box (SAM) instead of matching proposals.
    public let boxPrompter: BoxPrompter?
    public let classNames: [String]
    let camFile: CAMFile?
    let detections: DetectionFile?
    /// The detection file of a `.boxes` method, as read.
    public var detectionFile: DetectionFile? { detections }
    let lock = NSLock()

    public init(
        method: PseudoLabelMethod, seeds: SeedSource?, proposals: ProposalSource?, boxPrompter: BoxPrompter? = nil,
        classNames: [String]
    ) throws {
        self.method = method
        self.seedSource = seeds
        self.proposalSource = proposals
        self.boxPrompter = boxPrompter
        self.classNames = classNames
        if case .cams(let path, _) = seeds { camFile = try CAMFile(readingFrom: path) } else { camFile = nil }
        if case .boxes(_, let path?) = method {
            detections = try DetectionFile(path: path, classNames: classNames)
        } else {
            detections = nil
        }
        switch method {
        case .sepl:
            guard proposals != nil else {
                throw PseudoLabelError.missingInput(
                    method: "sepl", needs: "segment proposals (--proposals, or pseudo.proposals in a recipe)")
            }
        case .boxes:
            guard proposals != nil || boxPrompter != nil else {
                throw PseudoLabelError.missingInput(
                    method: "boxes",
                    needs: "segment proposals to match, or SAM to prompt with each box (--sam-checkpoint, pseudo.sam_checkpoint)")
            }
        default: break
        }
        switch method {
        case .seeds, .sepl:
            guard seeds != nil else {
                throw PseudoLabelError.missingInput(
                    method: method.name, needs: "seeds: CAMs (--cams) or a folder of label PNGs (--seeds, pseudo.seeds)")
            }
        case .boxes(_, let path):
            guard path != nil || seeds != nil else {
                throw PseudoLabelError.missingInput(
                    method: "boxes", needs: "a detection file (--detections, pseudo.detections) or seeds to take boxes from")
            }
        case .groundTruth: break
        }
    }

    /// The pseudo-labels of image `id`.
    /// - Parameters:
    ///   - imageClasses: its image-level labels (object class ids).
    ///   - groundTruth: its label map, needed by `.groundTruth`.
    public func labels(id: String, image: Image, imageClasses: Set<Int>, groundTruth: LabelMap?) throws -> PseudoLabelResult {
        let (w, h) = (image.width, image.height)
        switch method {
        case .groundTruth:
            guard let groundTruth else { throw PseudoLabelError.missingFile(path: "ground truth of \(id)") }
            return PseudoLabelResult(labels: groundTruth, seeds: nil, proposals: [])
        case .seeds:
            let seeds = try seedMap(id: id, width: w, height: h)
            return PseudoLabelResult(labels: seeds, seeds: seeds, proposals: [])
        case .sepl(let merge):
            let seeds = try seedMap(id: id, width: w, height: h)
            let proposals = try proposalSource!.proposals(for: id, image: image)
            return PseudoLabelResult(
                labels: merge.merge(seeds: seeds, proposals: proposals).labels, seeds: seeds, proposals: proposals)
        case .boxes(let merge, _):
            var seeds: LabelMap?
            var boxes: [Detection]
            var boxMerge = merge
            var (outside, clipped) = (0, 0)
            if let detections {
                // Detector boxes may overshoot the image: clip them, and drop (and count) those outside it.
                boxes = (detections.detections[id] ?? []).compactMap { d in
                    var c = d
                    c.box = (max(0, d.box.x0), max(0, d.box.y0), min(Double(w), d.box.x1), min(Double(h), d.box.y1))
                    guard c.box.x1 > c.box.x0 && c.box.y1 > c.box.y0 else {
                        outside += 1
                        return nil
                    }
                    if c.box != d.box { clipped += 1 }
                    return c
                }
            } else {
                seeds = try seedMap(id: id, width: w, height: h)
                boxes = BoxMerge.detections(fromComponentsOf: seeds!)
                boxMerge.scoreThreshold = 0  // component scores are area shares, not confidences
            }
            if let boxPrompter {
                let kept = boxMerge.kept(boxes, imageClasses: imageClasses)
                let masks = kept.isEmpty ? [] : try boxPrompter.masks(for: kept.map(\.box), id: id, image: image)
                return PseudoLabelResult(
                    labels: boxMerge.paint(width: w, height: h, kept: kept, masks: masks), seeds: seeds, proposals: masks,
                    outsideBoxes: outside, clippedBoxes: clipped)
            }
            let proposals = try proposalSource!.proposals(for: id, image: image)
            let out = boxMerge.merge(width: w, height: h, detections: boxes, imageClasses: imageClasses, proposals: proposals)
            return PseudoLabelResult(
                labels: out.labels, seeds: seeds, proposals: proposals, unmatchedBoxes: out.unmatched, outsideBoxes: outside,
                clippedBoxes: clipped)
        }
    }

    func seedMap(id: String, width: Int, height: Int) throws -> LabelMap {
        switch seedSource! {
        case .cams(_, let threshold):
            lock.lock()  // libhdf5 is not re-entrant
            let cams = Result { try camFile!.cams(for: id, width: width, height: height) }
            lock.unlock()
            return threshold.labels(try cams.get())
        case .folder(let directory):
            let path = "\(directory)/\(id).png"
            guard FileManager.default.fileExists(atPath: path) else { throw PseudoLabelError.missingFile(path: path) }
            let map = try LabelMap.read(from: path)
            guard map.width == width && map.height == height else {
                throw PseudoLabelError.sizeMismatch(path: path, expected: (width, height), found: (map.width, map.height))
            }
            if let bad = map.values.first(where: { Int($0) >= classNames.count && $0 != LabelMap.ignore }) {
                throw PseudoLabelError.classOutOfRange(path: path, value: Int(bad), classes: classNames.count)
            }
            return map
        }
    }
}
