import Foundation

/// Bad input to `DenseCRF`: each case says what is wrong and with which numbers. `source` names
/// the image or file the data came from ("image 0" when the caller gave no name).
public enum DenseCRFError: LocalizedError, Equatable {
    /// The scores hold `classes` × H × W values for a different H × W than the image's.
    case sizeMismatch(source: String, imageWidth: Int, imageHeight: Int, scoresWidth: Int, scoresHeight: Int)
    /// The scores hold `scoresPixels` pixels per class, the image width × height others.
    case pixelCountMismatch(source: String, scoresPixels: Int, imageWidth: Int, imageHeight: Int)
    /// `count` values cannot be `classes` planes of `pixels` pixels.
    case classCountMismatch(source: String, count: Int, classes: Int, pixels: Int)
    /// A value that is not a probability: NaN/infinite, negative, or above 1 (+1e-3).
    case notAProbability(source: String, value: Float, classIndex: Int, x: Int, y: Int)
    /// A pixel whose class probabilities do not sum to 1 (within `DenseCRF.sumTolerance`).
    case probabilitiesDoNotSumToOne(source: String, sum: Float, x: Int, y: Int)
    /// The image is not RGB (the bilateral kernel needs three channels).
    case notRGB(source: String, channels: Int)
    /// Fewer than two classes, or more than a label map holds (255 is ignore).
    case badClassCount(source: String, classes: Int)
    /// A label map value that is neither a class below `classes` nor 255 (ignore).
    case labelOutOfRange(source: String, label: UInt8, classes: Int)
    /// A CRF setting out of range (negative iterations or weight, a std ≤ 0, not finite, or so
    /// small the lattice coordinates exceed 1e6).
    case badParameter(name: String, value: Double)
    /// A confidence for `refine` outside (1/classes, 1).
    case badConfidence(Float)

    public var errorDescription: String? {
        switch self {
        case let .sizeMismatch(source, iw, ih, sw, sh):
            return "\(source): the scores are \(sw)x\(sh) but the image is \(iw)x\(ih) (width x height); they must match"
        case let .pixelCountMismatch(source, pixels, iw, ih):
            return
                "\(source): the scores hold \(pixels) pixels per class but the image is \(iw)x\(ih) (\(iw * ih) pixels); they must match"
        case let .classCountMismatch(source, count, classes, pixels):
            return "\(source): \(count) score values are not \(classes) classes of \(pixels) pixels (\(classes * pixels) values)"
        case let .notAProbability(source, value, c, x, y):
            return "\(source): class \(c) at x=\(x) y=\(y) is \(value), not a probability in [0, 1]; "
                + "the CRF needs softmax probabilities, not logits"
        case let .probabilitiesDoNotSumToOne(source, sum, x, y):
            return "\(source): the class probabilities at x=\(x) y=\(y) sum to \(sum), not 1; "
                + "the CRF needs softmax probabilities over all classes"
        case let .notRGB(source, channels):
            return "\(source): the image has \(channels) channels; the CRF's appearance kernel needs RGB"
        case let .badClassCount(source, classes):
            return "\(source): \(classes) classes; the CRF needs 2 to 255"
        case let .labelOutOfRange(source, label, classes):
            return "\(source): label \(label) is neither a class below \(classes) nor 255 (ignore)"
        case let .badParameter(name, value):
            return "CRF setting \(name) = \(value) is out of range: iterations and weights must be ≥ 0, stds > 0 "
                + "(and not so small that pixel or colour coordinates ÷ std exceed 1e6)"
        case let .badConfidence(value):
            return "CRF label confidence \(value) must lie strictly between 1/classes and 1 (pydensecrf's gt_prob)"
        }
    }
}
