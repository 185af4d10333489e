import Foundation

/// Every path of a pipeline run folder (`run.dir`), named in one place: the pipeline, the
/// commands that default to its folders (`wsss train`'s `--out`), the report and a Swift user
/// all ask this type instead of assembling "segmenter_<source>/final.h5" by hand.
///
/// ```
/// <run.dir>/cam/cam_final.h5, cam/cams_<split>.h5       CAM classifier and its CAMs
/// <run.dir>/sam_masks/                                   SAM's automatic masks (amg.py JSON)
/// <run.dir>/detections/<split>.json (+ .parts/)          Grounding DINO's boxes (pseudo.detector_checkpoint)
/// <run.dir>/pseudo/<source>/                             label PNGs, score.json, provenance.json
/// <run.dir>/segmenter_<name>/final.h5, eval_<split>.json DeepLab-v2 runs (name: source[_seed<s>])
/// <run.dir>/provenance_<step>.json                       what each finished step was made from
/// <run.dir>/summary.json, report.html
/// ```
public struct RunLayout: Sendable, Equatable {
    /// The run folder.
    public let root: String

    public init(root: String) { self.root = root }

    /// The CAM classifier's run folder.
    public var camDirectory: String { root + "/cam" }
    /// The CAM classifier's final checkpoint.
    public var camCheckpoint: String { camDirectory + "/cam_final.h5" }
    /// The CAMs of a split.
    public func cams(split: String) -> String { "\(camDirectory)/cams_\(split).h5" }
    /// The default SAM mask cache (`pseudo.sam_cache` overrides it).
    public var samMasks: String { root + "/sam_masks" }
    /// Grounding DINO's detections of a split (the file `pseudo.detections` would name).
    public func detections(split: String) -> String { "\(root)/detections/\(split).json" }
    /// A source's pseudo-label folder.
    public func pseudoLabels(_ source: LabelSource) -> String { "\(root)/pseudo/\(source.rawValue)" }
    /// A source's pseudo-label score against the ground truth.
    public func pseudoScore(_ source: LabelSource) -> String { pseudoLabels(source) + "/score.json" }
    /// The name of a segmenter run: the source, with `_seed<s>` for the extra seeds of `--seeds`.
    public func segmenterName(_ source: LabelSource, seed: Int? = nil) -> String {
        seed.map { "\(source.rawValue)_seed\($0)" } ?? source.rawValue
    }
    /// A segmenter's run folder (`name` from `segmenterName`, or a label folder's name for `wsss train`).
    public func segmenterDirectory(_ name: String) -> String { "\(root)/segmenter_\(name)" }
    /// A segmenter's final checkpoint.
    public func segmenterCheckpoint(_ name: String) -> String { segmenterDirectory(name) + "/final.h5" }
    /// A segmenter's evaluation on a split (JSON), its bar chart beside it (`.png`, `.svg`).
    public func evaluation(_ name: String, split: String) -> String { "\(segmenterDirectory(name))/eval_\(split).json" }
    /// The provenance record of a finished step ("cam_train", "pseudo/sepl", "eval/sepl/val").
    public func record(_ step: String) -> String {
        "\(root)/provenance_\(step.replacingOccurrences(of: "/", with: "_")).json"
    }
    /// The run's numbers.
    public var summary: String { root + "/summary.json" }
    /// The run's report page.
    public var report: String { root + "/report.html" }
}
