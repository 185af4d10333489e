import DenseCRF
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

extension Recipe {
    /// The `crf:` section's CRF settings.
    public var crfParameters: DenseCRF.Parameters {
        DenseCRF.Parameters(
            iterations: crf.iterations, posW: Float(crf.posW), posXYStd: Float(crf.posXYStd), biW: Float(crf.biW),
            biXYStd: Float(crf.biXYStd), biRGBStd: Float(crf.biRGBStd))
    }
}
