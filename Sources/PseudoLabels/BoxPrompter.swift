import Foundation
import Imaging

/// Something that turns boxes into masks on an image: SAM prompted with each box (the
/// Grounded-SAM route of Sun et al. 2023). `SegmentAnything` provides one; PseudoLabels only
/// needs this shape, so it does not depend on the model.
public protocol BoxPrompter: Sendable {
    /// A short name for logs ("sam:vit_h").
    var name: String { get }
    /// One mask per box, in order; boxes are pixels (x0, y0, x1, y1) of `image`.
    func masks(for boxes: [(x0: Double, y0: Double, x1: Double, y1: Double)], id: String, image: Image) throws -> [SegmentMask]
}

extension BoxMerge {
    /// The detections `merge` keeps (`keeps(_:imageClasses:)`), in their order: the boxes a
    /// `BoxPrompter` is asked for.
    public func kept(_ detections: [Detection], imageClasses: Set<Int>) -> [Detection] {
        detections.filter { keeps($0, imageClasses: imageClasses) }
    }

    /// Labels from detections whose masks came from prompting with their own boxes:
    /// `masks[i]` belongs to `kept[i]` (see `kept(_:imageClasses:)`), painted in `order`
    /// (Sun et al.'s `save_mask_data`: in detection order, a later mask over an earlier one).
    public func paint(width: Int, height: Int, kept: [Detection], masks: [SegmentMask]) -> LabelMap {
        precondition(kept.count == masks.count, "BoxMerge.paint: \(kept.count) detections but \(masks.count) masks")
        var column = [UInt8](repeating: 0, count: width * height)
        for k in paintingOrder(kept) {
            precondition(
                masks[k].width == width && masks[k].height == height, "BoxMerge.paint: mask \(k) is not \(width)x\(height)")
            for run in masks[k].runs { for i in run { column[Int(i)] = UInt8(kept[k].classID) } }
        }
        return LabelMap(width: width, height: height, values: ColumnMajor.toRowMajor(column, width: width, height: height))
    }
}
