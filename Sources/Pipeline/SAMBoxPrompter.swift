import Autograd
import Foundation
import Imaging
import PseudoLabels
import SegmentAnything

/// SAM prompted with boxes, one mask per box (the Grounded-SAM route of Sun et al. 2023: a
/// detector's class boxes → SAM → instance masks → a semantic label map), for `PseudoLabeler`.
///
/// The encoder runs once per image; calls from several threads take turns (one image embedding
/// at a time, its work already spread over the cores).
public final class SAMBoxPrompter: BoxPrompter, @unchecked Sendable {
    public let name: String
    let predictor: SAMPredictor
    let lock = NSLock()

    public init(model: SAM, name: String = "sam") {
        predictor = SAMPredictor(model: model)
        self.name = name
    }

    /// The single-mask prediction for each box (`multimask_output=False`, as Grounded-SAM).
    public func masks(for boxes: [(x0: Double, y0: Double, x1: Double, y1: Double)], id: String, image: Image) throws
        -> [SegmentMask]
    {
        guard !boxes.isEmpty else { return [] }
        lock.lock()
        defer { lock.unlock() }
        try predictor.setImage(image.rgb())
        // Boxes are clipped to the image, as the detector's coordinates may overshoot it.
        let (w, h) = (Float(image.width), Float(image.height))
        let clipped = boxes.map { b in
            (
                x0: min(max(Float(b.x0), 0), w), y0: min(max(Float(b.y0), 0), h), x1: min(max(Float(b.x1), 0), w),
                y1: min(max(Float(b.y1), 0), h)
            )
        }
        let prediction = try predictor.predict(boxes: clipped, multimaskOutput: false)
        let plane = image.width * image.height
        let values = prediction.masks.storage.base
        return (0..<boxes.count).map { k in
            var bitmap = [Bool](repeating: false, count: plane)
            let base = values + k * plane  // [N, 1, H, W]
            for p in 0..<plane where base[p] > 0.5 { bitmap[p] = true }
            var mask = SegmentMask(width: image.width, height: image.height, bitmap: bitmap)
            mask.predictedIoU = prediction.iouPredictions.storage.base[k]
            return mask
        }
    }
}
