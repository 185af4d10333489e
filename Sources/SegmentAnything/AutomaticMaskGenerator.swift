import Autograd
import Foundation
import Imaging

/// What the automatic mask generator needs of a SAM predictor (the model's `SamPredictor`
/// conforms). Mirrors the parts of `segment_anything/predictor.py` that
/// `automatic_mask_generator.py` calls: `set_image`, `original_size` and `predict_torch` with
/// `return_logits=True`.
public protocol PromptablePredictor: AnyObject {
    /// Embeds `image` (RGB, HWC, uint8, any size); later prompts refer to its pixel coordinates.
    /// - Throws: whatever the predictor throws for an unusable image.
    func setImage(_ image: Image) throws
    /// Height and width of the image last set, in pixels.
    var originalSize: (height: Int, width: Int) { get }
    /// One point prompt per row (pixel coords x, y in the image set), labels 1 = foreground.
    /// - Returns: mask logits [N, M, H, W] at that image's size (before thresholding at 0) and
    ///   IoU predictions [N, M]; M = 3 with `multimask`, else 1.
    func predictLogits(points: [(x: Float, y: Float)], labels: [Int], multimask: Bool) -> (logits: Tensor, iou: Tensor)
}
