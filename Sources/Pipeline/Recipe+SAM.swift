import DenseCRF
import SegmentAnything
import Training

extension SAMSection {
    /// The section as the mask generator's options (the recipe's `sam:` and `wsss sam masks`' flags).
    public var generatorOptions: AutomaticMaskGeneratorOptions {
        var o = AutomaticMaskGeneratorOptions()
        o.pointsPerSide = pointsPerSide
        o.pointsPerBatch = pointsPerBatch
        o.predIoUThresh = predIoUThresh
        o.stabilityScoreThresh = stabilityScoreThresh
        o.stabilityScoreOffset = stabilityScoreOffset
        o.boxNMSThresh = boxNMSThresh
        o.cropNLayers = cropNLayers
        o.cropNMSThresh = cropNMSThresh
        o.cropOverlapRatio = cropOverlapRatio
        o.cropNPointsDownscaleFactor = cropNPointsDownscaleFactor
        o.minMaskRegionArea = minMaskRegionArea
        return o
    }
}

extension CRFSection {
    /// The section's CRF settings (the recipe's `crf:` and every command's CRF flags).
    public var parameters: DenseCRF.Parameters {
        DenseCRF.Parameters(
            iterations: iterations, posW: Float(posW), posXYStd: Float(posXYStd), biW: Float(biW), biXYStd: Float(biXYStd),
            biRGBStd: Float(biRGBStd))
    }
}

extension Recipe {
    /// The `sam:` section as the mask generator's options.
    public var samGeneratorOptions: AutomaticMaskGeneratorOptions { sam.generatorOptions }

    /// The `crf:` section's CRF settings.
    public var crfParameters: DenseCRF.Parameters { crf.parameters }
}
