import Autograd
import Imaging

/// Grounding DINO's test-time image transform (util/inference.py `load_image`, datasets/transforms.py):
/// the shorter side resized to 800 unless the longer would pass 1333 (PIL bilinear, as
/// torchvision's resize of a PIL image), then ToTensor and ImageNet normalisation.
public enum GroundingDINOTransform {
    public static let mean: [Float] = [0.485, 0.456, 0.406]
    public static let std: [Float] = [0.229, 0.224, 0.225]

    /// `get_size_with_aspect_ratio((w, h), size, max_size)` → (height, width): the shorter side
    /// becomes `size` (the longer truncated), `size` first lowered (Python round, half to even)
    /// so the longer side stays within `maximumSize`.
    public static func resizedSize(width w: Int, height h: Int, size: Int = 800, maximumSize: Int? = 1333) -> (
        height: Int, width: Int
    ) {
        var size = size
        if let maximumSize {
            let (small, large) = (Double(min(w, h)), Double(max(w, h)))
            if large / small * Double(size) > Double(maximumSize) {
                size = Int((Double(maximumSize) * small / large).rounded(.toNearestOrEven))
            }
        }
        if (w <= h && w == size) || (h <= w && h == size) { return (h, w) }
        return w < h ? (Int(Double(size * h) / Double(w)), size) : (size, Int(Double(size * w) / Double(h)))
    }

    /// The model input [1, 3, H, W] of an RGB image: resized, (x / 255 − mean) / std in float32.
    public static func input(_ image: Image, size: Int = 800, maximumSize: Int? = 1333) -> Tensor {
        let (h, w) = resizedSize(width: image.width, height: image.height, size: size, maximumSize: maximumSize)
        let resized = h == image.height && w == image.width ? image : image.resizedLikePIL(height: h, width: w)
        return normalized(resized)
    }

    /// ToTensor and Normalize of an RGB image as it is → [1, 3, H, W].
    public static func normalized(_ image: Image) -> Tensor {
        let (h, w, c) = (image.height, image.width, image.channels)
        var values = [Float](repeating: 0, count: 3 * h * w)
        for k in 0..<3 {
            for p in 0..<(h * w) {
                values[k * h * w + p] = (Float(image.pixels[p * c + k]) / 255 - mean[k]) / std[k]
            }
        }
        return Tensor(shape: [1, 3, h, w], values: values)
    }
}
