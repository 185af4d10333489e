import ArgumentParser
import Training
import Autograd
import Datasets
import Distributed
import Foundation
import Pipeline
import SegmentAnything

/// The automatic mask generator's settings, named as the official `SamAutomaticMaskGenerator`
/// keyword arguments (and `scripts/amg.py` flags), with the official defaults.
struct SAMGeneratorOptions: ParsableArguments {
    private static let defaults = SAMSection()
    @Option(help: ArgumentHelp("Points sampled along each side of the image (the grid is N x N).", valueName: "n"))
    var pointsPerSide = defaults.pointsPerSide
    @Option(help: ArgumentHelp("Point prompts run through the decoder at once (memory, not results).", valueName: "n"))
    var pointsPerBatch = defaults.pointsPerBatch
    // .unconditional: a negative value ("--pred-iou-thresh -1") is read as the value, not as an option.
    @Option(parsing: .unconditional, help: ArgumentHelp("Keep masks whose predicted IoU is above this.", valueName: "t"))
    var predIouThresh = defaults.predIoUThresh
    @Option(parsing: .unconditional, help: ArgumentHelp("Keep masks whose stability score is above this.", valueName: "t"))
    var stabilityScoreThresh = defaults.stabilityScoreThresh
    @Option(help: ArgumentHelp("Logit offset for the stability score's two thresholds.", valueName: "x"))
    var stabilityScoreOffset = defaults.stabilityScoreOffset
    @Option(help: ArgumentHelp("Box IoU above which box NMS drops the weaker mask of a crop.", valueName: "t"))
    var boxNmsThresh = defaults.boxNMSThresh
    @Option(help: ArgumentHelp("Crop layers (layer i has 2^i x 2^i overlapping crops).", valueName: "n"))
    var cropNLayers = defaults.cropNLayers
    @Option(help: ArgumentHelp("Box IoU for NMS between masks of different crops.", valueName: "t"))
    var cropNmsThresh = defaults.cropNMSThresh
    @Option(help: ArgumentHelp("Overlap of neighbouring crops, as a share of the crop side.", valueName: "r"))
    var cropOverlapRatio = defaults.cropOverlapRatio
    @Option(help: ArgumentHelp("Layer i samples points-per-side / factor^i points per side.", valueName: "n"))
    var cropNPointsDownscaleFactor = defaults.cropNPointsDownscaleFactor
    @Option(help: ArgumentHelp("Remove holes and islands smaller than this many pixels (0: off).", valueName: "px"))
    var minMaskRegionArea = defaults.minMaskRegionArea

    /// Checked by the recipe's rules for the `sam:` keys (a threshold above 1 would drop every mask).
    func validate() throws { try section.validateAsFlags() }

    /// The flags as the recipe's `sam:` section, the one options type of the generator.
    var section: SAMSection {
        var o = SAMSection()
        o.pointsPerSide = pointsPerSide
        o.pointsPerBatch = pointsPerBatch
        o.predIoUThresh = predIouThresh
        o.stabilityScoreThresh = stabilityScoreThresh
        o.stabilityScoreOffset = stabilityScoreOffset
        o.boxNMSThresh = boxNmsThresh
        o.cropNLayers = cropNLayers
        o.cropNMSThresh = cropNmsThresh
        o.cropOverlapRatio = cropOverlapRatio
        o.cropNPointsDownscaleFactor = cropNPointsDownscaleFactor
        o.minMaskRegionArea = minMaskRegionArea
        return o
    }

    var options: AutomaticMaskGeneratorOptions { section.generatorOptions }
}

extension SAMCommand {
    struct Masks: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Automatic masks (SamAutomaticMaskGenerator) for a folder of images or a dataset split.",
            discussion: """
                Writes <out>/<id>.json per image in the format of segment_anything's scripts/amg.py --convert-to-rle (COCO RLE \
                with compressed counts, area, bbox XYWH, predicted_iou, point_coords, stability_score, crop_box), which \
                `wsss pseudo --proposals sa1b:<out>` reads. Each file is written atomically and a rerun skips finished images; \
                --shard K/N takes every N-th image from the K-th (K = 0 … N-1), to split a dataset over jobs or machines.
                """)

        @OptionGroup var model: SAMModelOptions
        @OptionGroup var runtime: RuntimeOptions
        @OptionGroup(title: "Mask generator") var generator: SAMGeneratorOptions
        @Option(
            help: ArgumentHelp(
                "Folder of images (*.jpg, *.jpeg, *.png; the id is the file name without extension). (default: none; or --root/--split)",
                valueName: "dir"))
        var images: String?
        @Option(help: ArgumentHelp("VOC-layout dataset root, with --split. (default: none)", valueName: "dir")) var root: String?
        @Option(help: ArgumentHelp("Split list under <root>/ImageSets/Segmentation.", valueName: "name")) var split = "train"
        @Option(help: ArgumentHelp("Output folder (created). (required)", valueName: "dir")) var out: String
        @Option(
            help: ArgumentHelp(
                "Process shard K of N (every N-th image from the K-th, K = 0 … N-1; 0/1 is all).", valueName: "K/N"))
        var shard = "0/1"
        @Flag(
            help:
                "Masks in --out made with other generator settings or weights (or with none recorded) are moved aside to <out>.replaced-<time> and recomputed. (default: off, such a folder is refused)"
        ) var overwrite = false
        @Flag(
            help:
                "Split the images (of --shard) across the ranks of mpirun/srun, every rank writing its own files; rank 0 reports the totals (docs/DISTRIBUTED.md). (default: off)"
        ) var distributed = false

        func validate() throws {
            guard (images == nil) != (root == nil) else {
                throw ValidationError("give --images DIR or --root R (with --split), not both")
            }
        }

        func run() throws {
            let communicator = try startDistributed(distributed, command: "sam masks")
            try runtime.apply()
            let (index, count) = try Self.parseShard(shard)
            // Each image's file is its own, so ranks share nothing but the totals.
            let items = communicator.share(of: SAMMaskFolder.shard(try listImages(), index: index, count: count))
            let predictor = SAMPredictor(model: try model.load())
            let maskGenerator = try AutomaticMaskGenerator(predictor: predictor, options: generator.options)
            // The folder records the settings and weights its masks come from (provenance.json):
            // rank 0 checks (or moves aside) the folder before any rank writes into it.
            let settings = try SAMMaskFolder.settings(
                options: generator.options, checkpoint: model.checkpoint, configuration: model.config,
                precision: model.precision, hqTokenOnly: model.hqTokenOnly)
            if communicator.isWriter,
                let aside = try SAMMaskFolder.prepare(out, settings: settings, replace: overwrite ? .always : .never)
            {
                Log.info("sam masks: the earlier masks (other settings) moved to \(aside)")
            }
            try communicator.barrier()
            let progress = ProgressBar("sam masks", total: items.count)
            var masks = 0
            let result = try SAMMaskFolder.generate(items, generator: maskGenerator, into: out) { _, found in
                masks += found ?? 0
                progress.advance(extra: found.map { "\($0) masks" } ?? "skipped (done)")
            }
            let totals = try communicator.allreduceSum([Double(result.processed), Double(masks), Double(result.skipped)]).map {
                Int($0)
            }
            Log.info(
                "sam masks: \(totals[0]) images (\(totals[1]) masks), \(totals[2]) already done, in \(out)"
                    + (count > 1 ? " (shard \(index)/\(count))" : "")
                    + (communicator.size > 1 ? " over \(communicator.size) ranks" : ""))
        }

        func listImages() throws -> [SAMMaskFolder.Item] {
            let items = try root.map { try ImageInputs.list(root: $0, split: split) } ?? ImageInputs.list(images!)
            return items.map { SAMMaskFolder.Item(id: $0.id, imagePath: $0.path) }
        }

        static func parseShard(_ text: String) throws -> (Int, Int) {
            let parts = text.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count == 2, let k = Int(parts[0]), let n = Int(parts[1]), n >= 1, k >= 0, k < n else {
                throw ValidationError("--shard must be K/N with 0 ≤ K < N, got '\(text)'")
            }
            return (k, n)
        }
    }
}
