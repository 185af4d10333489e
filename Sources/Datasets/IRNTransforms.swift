import Autograd
import Foundation
import Imaging

/// IRN's training and inference image transforms (jiwoon-ahn/irn, misc/imutils.py), for the
/// `irn` CAM preset: the same sizes, the same PIL bicubic resampling, the same crop placement.
/// The random draws are the caller's (Python's `random` is not reproduced); given the same draws
/// the results are IRN's (scripts/fixtures/make_irn_fixtures.py).
public enum IRNTransforms {
    /// `pil_rescale(img, scale, order=3)`: each side `np.round(side · scale)` (half to even, as
    /// numpy rounds), resampled with PIL's BICUBIC filter on the 8-bit image; the image itself
    /// when the size does not change (`pil_resize`).
    public static func rescale(_ image: Image, by scale: Double) -> Image {
        let h = max(1, Int((Double(image.height) * scale).rounded(.toNearestOrEven)))
        let w = max(1, Int((Double(image.width) * scale).rounded(.toNearestOrEven)))
        if h == image.height && w == image.width { return image }
        return image.resizedLikePIL(height: h, width: w, filter: .bicubic)
    }

    /// `random_resize_long` once its target is drawn: the scale is target / height when the image
    /// is taller than wide, else target / width (a square image scales by its width).
    public static func resizeLong(_ image: Image, to targetLong: Int) -> Image {
        let scale = Double(targetLong) / Double(image.width < image.height ? image.height : image.width)
        return rescale(image, by: scale)
    }

    /// `random.randint(low, high)`'s role: a target long side uniform over the closed range.
    public static func drawLongSide(_ range: ClosedRange<Int>, generator: inout SeededGenerator) -> Int {
        range.lowerBound + Int(generator.next() % UInt64(range.count))
    }

    /// Where `random_crop` copies: rows imageTop..<imageTop+height of the image land at
    /// containerTop… of the crop (columns likewise).
    public struct CropBox: Equatable, Sendable {
        public var containerTop, containerLeft, imageTop, imageLeft, height, width: Int
        public init(containerTop: Int, containerLeft: Int, imageTop: Int, imageLeft: Int, height: Int, width: Int) {
            (self.containerTop, self.containerLeft, self.imageTop, self.imageLeft) = (
                containerTop, containerLeft, imageTop, imageLeft
            )
            (self.height, self.width) = (height, width)
        }
    }

    /// `get_random_crop_box`: along each side (columns first, then rows, IRN's order of draws) a
    /// random window of the image where it is longer than the crop, else the whole side at a
    /// random place in the crop. `draw(n)` returns a uniform integer in 0..<n (`random.randrange`).
    public static func cropBox(height: Int, width: Int, cropSize: Int, draw: (Int) -> Int) -> CropBox {
        func side(_ length: Int) -> (container: Int, image: Int) {
            let space = length - cropSize
            return space > 0 ? (0, draw(space + 1)) : (draw(-space + 1), 0)
        }
        let columns = side(width), rows = side(height)
        return CropBox(
            containerTop: rows.container, containerLeft: columns.container, imageTop: rows.image, imageLeft: columns.image,
            height: min(cropSize, height), width: min(cropSize, width))
    }

    /// `random_crop` of a CHW float image into a `cropSize` square filled with `fill` (IRN: 0,
    /// after normalisation, i.e. the mean colour).
    public static func crop(_ image: PlanarImage, box: CropBox, cropSize: Int, fill: Float = 0) -> PlanarImage {
        precondition(
            box.imageTop + box.height <= image.height && box.imageLeft + box.width <= image.width,
            "IRNTransforms.crop: box \(box) outside \(image.height)x\(image.width)")
        let plane = cropSize * cropSize
        var out = [Float](repeating: fill, count: image.channels * plane)
        image.values.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for c in 0..<image.channels {
                    for y in 0..<box.height {
                        let s = src.baseAddress! + (c * image.height + box.imageTop + y) * image.width + box.imageLeft
                        let d = dst.baseAddress! + c * plane + (box.containerTop + y) * cropSize + box.containerLeft
                        d.update(from: s, count: box.width)
                    }
                }
            }
        }
        return PlanarImage(channels: image.channels, height: cropSize, width: cropSize, values: out)
    }
}
