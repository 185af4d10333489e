import SegmentAnything
import Training

extension Recipe {
    /// The `sam:` section as the mask generator's options.
    public var samGeneratorOptions: AutomaticMaskGeneratorOptions {
        var o = AutomaticMaskGeneratorOptions()
        o.pointsPerSide = int("sam", "points_per_side")!
        o.pointsPerBatch = int("sam", "points_per_batch")!
        o.predIoUThresh = double("sam", "pred_iou_thresh")
        o.stabilityScoreThresh = double("sam", "stability_score_thresh")
        o.stabilityScoreOffset = double("sam", "stability_score_offset")
        o.boxNMSThresh = double("sam", "box_nms_thresh")
        o.cropNLayers = int("sam", "crop_n_layers")!
        o.cropNMSThresh = double("sam", "crop_nms_thresh")
        o.cropOverlapRatio = double("sam", "crop_overlap_ratio")
        o.cropNPointsDownscaleFactor = int("sam", "crop_n_points_downscale_factor")!
        o.minMaskRegionArea = int("sam", "min_mask_region_area")!
        return o
    }
}
