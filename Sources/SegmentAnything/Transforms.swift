import Foundation
import Imaging

// segment_anything/utils/transforms.py.

/// Resizes images so that the longer side is `targetLength`, and maps point and box prompts
/// into the resized frame (transforms.py, `ResizeLongestSide`).
public struct ResizeLongestSide: Sendable {
    /// The longer side after resizing (the encoder's input side, 1024 officially).
    public let targetLength: Int

    /// A transform to `targetLength` pixels on the longer side.
    public init(targetLength: Int) {
        precondition(targetLength > 0, "ResizeLongestSide: target length \(targetLength)")
        self.targetLength = targetLength
    }

    /// The size after resizing (`get_preprocess_shape`): both sides scaled by
    /// longSideLength / max(height, width) in Double and rounded half up.
    public static func preprocessShape(height: Int, width: Int, longSideLength: Int) -> (height: Int, width: Int) {
        let scale = Double(longSideLength) * 1.0 / Double(max(height, width))
        return (Int(Double(height) * scale + 0.5), Int(Double(width) * scale + 0.5))
    }

    /// The image resized to `preprocessShape` (`apply_image`): the reference resizes through
    /// torchvision's `resize` of a PIL image, i.e. PIL's bilinear filter with antialiasing on
    /// 8-bit pixels, which `resizedLikePIL` reproduces to the byte.
    public func applyImage(_ image: Image) -> Image {
        let size = ResizeLongestSide.preprocessShape(height: image.height, width: image.width, longSideLength: targetLength)
        return image.resizedLikePIL(height: size.height, width: size.width)
    }

    /// Points (x, y) in pixels of an image of `originalSize` mapped into the resized image
    /// (`apply_coords`): x scaled by newWidth / oldWidth and y by newHeight / oldHeight, in Double
    /// as the reference's float64 NumPy arithmetic.
    public func applyCoords(_ points: [(x: Double, y: Double)], originalSize: (height: Int, width: Int)) -> [(
        x: Double, y: Double
    )] {
        let new = ResizeLongestSide.preprocessShape(
            height: originalSize.height, width: originalSize.width, longSideLength: targetLength)
        let (sx, sy) = (Double(new.width) / Double(originalSize.width), Double(new.height) / Double(originalSize.height))
        return points.map { ($0.x * sx, $0.y * sy) }
    }

    /// Boxes (x0, y0, x1, y1) mapped as their two corners (`apply_boxes`).
    public func applyBoxes(
        _ boxes: [(x0: Double, y0: Double, x1: Double, y1: Double)], originalSize: (height: Int, width: Int)
    ) -> [(x0: Double, y0: Double, x1: Double, y1: Double)] {
        let corners = applyCoords(boxes.flatMap { [($0.x0, $0.y0), ($0.x1, $0.y1)] }, originalSize: originalSize)
        return boxes.indices.map { (corners[2 * $0].x, corners[2 * $0].y, corners[2 * $0 + 1].x, corners[2 * $0 + 1].y) }
    }
}
