import Autograd
import Datasets
import Imaging
import Layers

extension CAMTraining {
    /// IRN's two CAMs of one image (step/make_cam.py `_work`), for the classes present.
    public struct IRNCAMs: Sendable {
        /// Class ids (1…C), in increasing order (IRN's `valid_cat`, shifted past background).
        public let classes: [Int]
        /// [K, ⌈H/4⌉, ⌈W/4⌉]: IRN's "cam" (stride 4, what its random walk starts from).
        public let strided: Tensor
        /// [K, H, W]: IRN's "high_res" (what its CAM evaluation and IR labels use).
        public let highRes: Tensor
    }

    /// step/make_cam.py on one 8-bit RGB image: for each scale the image is rescaled as
    /// `pil_rescale(img, s, 3)` (`IRNTransforms.rescale`; scale 1 keeps it), normalised
    /// (torchvision mean/std), run with its mirror (CAM.forward: ReLU(conv with the classifier
    /// weight), image + mirror flipped back); the per-scale maps are upsampled bilinearly
    /// (align_corners false) to `get_strided_size(size, 4)` and to `get_strided_up_size(size,
    /// 16)` — the size rounded up to a multiple of 16 — and summed over scales; the latter is
    /// cropped to the image. Each present class's maps are divided by their maximum + 1e-5.
    /// - Parameter classes: present class ids (1…C).
    public static func irnCAMs(model: CAMNetwork, image: Image, classes: [Int], scales: [Double]) -> IRNCAMs {
        precondition(image.channels == 3, "irnCAMs: \(image.channels)-channel image (RGB expected)")
        let (h, w) = (image.height, image.width)
        // misc/imutils.py get_strided_size / get_strided_up_size.
        let strided = ((h - 1) / 4 + 1, (w - 1) / 4 + 1)
        let up = (((h - 1) / 16 + 1) * 16, ((w - 1) / 16 + 1) * 16)
        return withoutGrad {
            var stridedSum: Tensor?, highSum: Tensor?
            for scale in scales {
                let scaled = scale == 1 ? image : IRNTransforms.rescale(image, by: scale)
                let planar = Preprocessing.torchvision.normalize(scaled)
                let x = Tensor(shape: [1, 3, planar.height, planar.width], values: planar.values)
                let maps = model.activationMaps(Tensor.concat([x, x.flipped(alongAxis: 3)], alongAxis: 0))
                let summed = maps.slice(alongAxis: 0, 0..<1) + maps.slice(alongAxis: 0, 1..<2).flipped(alongAxis: 3)
                let s = summed.resizedBilinear(to: strided, alignCorners: false)
                let u = summed.resizedBilinear(to: up, alignCorners: false)
                stridedSum = stridedSum.map { $0 + s } ?? s
                highSum = highSum.map { $0 + u } ?? u
            }
            let high = highSum!.slice(alongAxis: 2, 0..<h).slice(alongAxis: 3, 0..<w)
            return IRNCAMs(
                classes: classes, strided: normalizedChannels(stridedSum!, classes), highRes: normalizedChannels(high, classes))
        }
    }

    /// Channels `classes - 1` of [1, C, h, w], each divided by its maximum + 1e-5 (make_cam.py's
    /// `F.adaptive_max_pool2d(cam, (1, 1)) + 1e-5`): [K, h, w].
    static func normalizedChannels(_ maps: Tensor, _ classes: [Int]) -> Tensor {
        let (c, h, w) = (maps.shape[1], maps.shape[2], maps.shape[3])
        let plane = h * w
        let out = Tensor(uninitialized: [classes.count, h, w])
        let source = maps
        for (k, id) in classes.enumerated() {
            precondition(id >= 1 && id <= c, "irnCAMs: class \(id) outside 1…\(c)")
            let s = source.storage.base + (id - 1) * plane, d = out.storage.base + k * plane
            var peak = -Float.infinity
            for i in 0..<plane { peak = max(peak, s[i]) }
            let scale = 1 / (peak + 1e-5)
            for i in 0..<plane { d[i] = s[i] * scale }
        }
        return out
    }
}
