import Foundation
import Imaging
import PseudoLabels
import SegmentAnything

extension AutomaticMaskGenerator {
    /// The masks of `generate(image)` as segment proposals, with their predicted IoU and
    /// stability score (what `SA1BProposals` reads back from amg.py's JSON).
    /// - Throws: as `generate`.
    public func proposals(for image: Image) throws -> [SegmentMask] {
        try generate(image).map { record in
            var mask = record.mask
            mask.predictedIoU = record.predictedIoU
            mask.stabilityScore = record.stabilityScore
            return mask
        }
    }
}

/// The framework's own SAM as a proposal source: the automatic mask generator run on each
/// image (DESIGN.md, Pseudo-labels). The generator and its predictor keep per-image state, so
/// calls are serialised by a lock; this is what makes the class safe to share (`Sendable`).
public final class SAMProposals: ProposalSource, @unchecked Sendable {
    /// The generator (and through it the predictor) used for every image.
    public let generator: AutomaticMaskGenerator
    private let lock = NSLock()

    /// A short name for logs.
    public var name: String { "sam-amg" }

    /// A source running `generator`.
    public init(generator: AutomaticMaskGenerator) { self.generator = generator }

    /// The generator's masks of `image` (`id` is not used: nothing is read from disk).
    /// - Throws: what the generator or its predictor throws.
    public func proposals(for id: String, image: Image) throws -> [SegmentMask] {
        lock.lock()
        defer { lock.unlock() }
        return try generator.proposals(for: image.rgb())
    }
}
