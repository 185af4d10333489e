import SegmentAnything
import Training

extension Recipe {
    /// The `sam:` section as the mask generator's options.
    public var samGeneratorOptions: AutomaticMaskGeneratorOptions {
        var o = AutomaticMaskGeneratorOptions()
        o.pointsPerSide = sam.pointsPerSide
        o.pointsPerBatch = sam.pointsPerBatch
        o.predIoUThresh = sam.predIoUThresh
        o.stabilityScoreThresh = sam.stabilityScoreThresh
        o.stabilityScoreOffset = sam.stabilityScoreOffset
        o.boxNMSThresh = sam.boxNMSThresh
        o.cropNLayers = sam.cropNLayers
        o.cropNMSThresh = sam.cropNMSThresh
        o.cropOverlapRatio = sam.cropOverlapRatio
        o.cropNPointsDownscaleFactor = sam.cropNPointsDownscaleFactor
        o.minMaskRegionArea = sam.minMaskRegionArea
        return o
    }
}
