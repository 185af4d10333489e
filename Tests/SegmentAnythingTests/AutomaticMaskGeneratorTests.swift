import Autograd
import Foundation
import HDF5
import Imaging
import Pipeline
import PseudoLabels
import Testing

@testable import SegmentAnything

/// The official generator's keyword arguments as the fixture scripts store them
/// (scripts/fixtures/make_amg_fixtures.py: generator_options.json, replay_*.h5 @options).
/// JSONDecoder, because JSONSerialization on Linux parses some doubles an ulp off.
struct OfficialGeneratorOptions: Decodable {
    var points_per_side: Int?
    var point_grids: [[[Double]]]?
    var points_per_batch: Int?
    var pred_iou_thresh: Double?
    var stability_score_thresh: Double?
    var stability_score_offset: Double?
    var box_nms_thresh: Double?
    var crop_n_layers: Int?
    var crop_nms_thresh: Double?
    var crop_overlap_ratio: Double?
    var crop_n_points_downscale_factor: Int?
    var min_mask_region_area: Int?

    /// Our options: the official defaults, overridden by the given keywords; coco_rle output.
    var options: AutomaticMaskGeneratorOptions {
        var o = AutomaticMaskGeneratorOptions()
        if let v = points_per_side { o.pointsPerSide = v }
        if let v = point_grids {
            o.pointsPerSide = nil
            o.pointGrids = v.map { $0.map { PointXY(x: $0[0], y: $0[1]) } }
        }
        if let v = points_per_batch { o.pointsPerBatch = v }
        if let v = pred_iou_thresh { o.predIoUThresh = v }
        if let v = stability_score_thresh { o.stabilityScoreThresh = v }
        if let v = stability_score_offset { o.stabilityScoreOffset = v }
        if let v = box_nms_thresh { o.boxNMSThresh = v }
        if let v = crop_n_layers { o.cropNLayers = v }
        if let v = crop_nms_thresh { o.cropNMSThresh = v }
        if let v = crop_overlap_ratio { o.cropOverlapRatio = v }
        if let v = crop_n_points_downscale_factor { o.cropNPointsDownscaleFactor = v }
        if let v = min_mask_region_area { o.minMaskRegionArea = v }
        o.outputMode = .cocoRLE
        return o
    }
}

/// One official record as amg.py writes it (coco_rle).
struct OfficialRecord: Decodable {
    struct RLE: Decodable {
        let size: [Int]
        let counts: String
    }
    let segmentation: RLE
    let area: Int
    let bbox: [Double]
    let predicted_iou: Double
    let point_coords: [[Double]]
    let stability_score: Double
    let crop_box: [Double]

    /// The records of an amg.py file, with the float-or-int form of the boxes as written (one
    /// dtype per tensor, so the same for every record).
    static func records(fromJSON text: String) throws -> [MaskRecord] {
        let bboxIsFloat = text.range(of: #""bbox": \[[0-9]+\.[0-9]"#, options: .regularExpression) != nil
        let cropBoxIsFloat = text.range(of: #""crop_box": \[[0-9]+\.[0-9]"#, options: .regularExpression) != nil
        return try JSONDecoder().decode([OfficialRecord].self, from: Data(text.utf8)).map {
            var r = try $0.record()
            (r.bboxIsFloat, r.cropBoxIsFloat) = (bboxIsFloat, cropBoxIsFloat)
            return r
        }
    }

    /// The same record as ours.
    func record() throws -> MaskRecord {
        let mask = try COCORLE.mask(
            counts: try COCORLE.decompress(segmentation.counts), height: segmentation.size[0], width: segmentation.size[1])
        return MaskRecord(
            segmentation: .cocoRLE(size: segmentation.size, counts: segmentation.counts), mask: mask, area: area,
            bbox: bbox.map { Int($0) }, predictedIoU: Float(predicted_iou),
            pointCoords: point_coords.map { PointXY(x: $0[0], y: $0[1]) },
            stabilityScore: Float(stability_score), cropBox: crop_box.map { Int($0) })
    }
}

/// A predictor that replays what the official predictor returned to the official generator
/// (Tests/Fixtures/amg/replay_<set>.h5), checking that it is asked the same questions.
final class ReplayPredictor: PromptablePredictor {
    struct Batch {
        let points: Tensor  // [B, 2] crop pixels (stored float64, read as float32)
        let logits: Tensor  // [B, 3, h, w]
        let iou: Tensor  // [B, 3]
    }
    let crops: [[Batch]]
    private(set) var images: [Image] = []
    private(set) var batchesServed: [Int] = []
    private(set) var problems: [String] = []
    private(set) var originalSize: (height: Int, width: Int) = (0, 0)

    init(file: HDF5File) throws {
        func index(_ name: String, _ prefix: String) -> Int { Int(name.dropFirst(prefix.count)) ?? -1 }
        let cropNames = try file.children(of: "/").filter { $0.hasPrefix("crop_") }.sorted {
            index($0, "crop_") < index($1, "crop_")
        }
        crops = try cropNames.map { crop in
            let names = try file.children(of: "/\(crop)").sorted { index($0, "batch_") < index($1, "batch_") }
            return try names.map { batch in
                let g = "/\(crop)/\(batch)"
                let stored = try file.read("\(g)/logits")  // int8 = logits x 64 (LOGIT_STEP)
                let logits = Tensor(shape: stored.shape, values: stored.scalars.map { $0 / 64 })
                return Batch(points: try file.read("\(g)/points"), logits: logits, iou: try file.read("\(g)/iou"))
            }
        }
    }

    func setImage(_ image: Image) throws {
        images.append(image)
        batchesServed.append(0)
        originalSize = (image.height, image.width)
        let c = images.count - 1
        guard c < crops.count else { return problems.append("setImage called \(images.count) times for \(crops.count) crops") }
        let shape = crops[c][0].logits.shape
        if shape[2] != image.height || shape[3] != image.width {
            problems.append("crop \(c): image \(image.width)x\(image.height), official \(shape[3])x\(shape[2])")
        }
    }

    func predictLogits(points: [(x: Float, y: Float)], labels: [Int], multimask: Bool) -> (logits: Tensor, iou: Tensor) {
        let c = images.count - 1
        let b = batchesServed[c]
        batchesServed[c] += 1
        guard c < crops.count, b < crops[c].count else {
            problems.append("crop \(c): batch \(b) was never asked by the official generator")
            return (Tensor(zeros: [points.count, 3, originalSize.height, originalSize.width]), Tensor(zeros: [points.count, 3]))
        }
        let batch = crops[c][b]
        let expected = batch.points.scalars
        if expected.count != 2 * points.count {
            problems.append("crop \(c) batch \(b): \(points.count) points, official \(expected.count / 2)")
        } else {
            for (k, p) in points.enumerated() where abs(p.x - expected[2 * k]) > 1e-4 || abs(p.y - expected[2 * k + 1]) > 1e-4 {
                problems.append(
                    "crop \(c) batch \(b) point \(k): (\(p.x), \(p.y)), official (\(expected[2 * k]), \(expected[2 * k + 1]))")
            }
        }
        if labels != [Int](repeating: 1, count: points.count) || !multimask {
            problems.append("crop \(c) batch \(b): labels/multimask")
        }
        return (batch.logits, batch.iou)
    }
}

@Suite struct AutomaticMaskGeneratorTests {
    /// Option set `set` of replay_<file>.h5: the predictor, image, options and official JSON.
    static func replay(_ file: String, set: String) throws
        -> (predictor: ReplayPredictor, image: Image, options: AutomaticMaskGeneratorOptions, json: String)
    {
        let file = try HDF5File(path: "\(AMGFixtures.directory)/replay_\(file).h5", mode: .read)
        let stored = try file.read("/image")
        let image = Image(width: stored.shape[1], height: stored.shape[0], channels: 3, pixels: stored.scalars.map { UInt8($0) })
        let optionsJSON = try #require(try file.requiredAttribute(named: "options", on: "/sets/\(set)").stringValue)
        let options = try JSONDecoder().decode(OfficialGeneratorOptions.self, from: Data(optionsJSON.utf8)).options
        let json = try #require(try file.requiredAttribute(named: "records", on: "/sets/\(set)").stringValue)
        return (try ReplayPredictor(file: file), image, options, json)
    }

    /// The official generator's own predictor outputs, replayed: our records must be the
    /// official ones byte for byte (amg.py's JSON), and we must ask for the same crops and batches.
    /// single: one crop, 21 masks; crops: a crop layer, point downscaling, small-region removal;
    /// grids: explicit point grids, batches that keep nothing (float boxes in the JSON);
    /// empty_crop: also a crop that keeps nothing (float crop boxes).
    @Test(arguments: [("single", "single"), ("crops", "crops"), ("grids", "grids"), ("grids", "empty_crop")])
    func replayedPredictionsGiveTheOfficialRecords(file: String, set: String) throws {
        let (predictor, image, options, officialJSON) = try Self.replay(file, set: set)
        let generator = try AutomaticMaskGenerator(predictor: predictor, options: options)
        let records = try generator.generate(image)
        #expect(predictor.problems.isEmpty, "\(predictor.problems.prefix(5))")
        #expect(predictor.batchesServed == predictor.crops.map(\.count))
        let (boxes, _) = AMG.generateCropBoxes(
            imageSize: (image.height, image.width), nLayers: options.cropNLayers, overlapRatio: options.cropOverlapRatio)
        #expect(predictor.images == boxes.map { AutomaticMaskGenerator.cropped(image, to: $0) })
        let ours = try MaskRecord.amgJSON(records)
        #expect(ours == officialJSON)
        if ours != officialJSON {
            // Say which field differs first.
            let official = try OfficialRecord.records(fromJSON: officialJSON)
            #expect(records.count == official.count, "record count")
            for (k, (a, b)) in zip(records, official).enumerated() where a != b {
                Issue.record(
                    "record \(k): ours area \(a.area) bbox \(a.bbox) iou \(a.predictedIoU) stab \(a.stabilityScore) point \(a.pointCoords) crop \(a.cropBox); official area \(b.area) bbox \(b.bbox) iou \(b.predictedIoU) stab \(b.stabilityScore) point \(b.pointCoords) crop \(b.cropBox)"
                )
                break
            }
        }
        #expect(records.count >= 2)
    }

    /// Written records are what PseudoLabels' SA-1B reader reads back.
    @Test func recordsRoundTripThroughTheSA1BReader() throws {
        let (predictor, image, options, _) = try Self.replay("crops", set: "crops")
        let records = try AutomaticMaskGenerator(predictor: predictor, options: options).generate(image)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("amg-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try MaskRecord.writeAMGJSON(records, to: "\(directory)/img.json")
        let masks = try SA1BProposals(directory: directory).proposals(for: "img", image: image)
        #expect(masks.map(\.runs) == records.map(\.mask.runs))
        // Within float32 rounding: JSONSerialization may read the last digit of a double off.
        for (m, r) in zip(masks, records) {
            #expect(
                abs((m.predictedIoU ?? -1) - r.predictedIoU) <= 1e-6 && abs((m.stabilityScore ?? -1) - r.stabilityScore) <= 1e-6)
        }
    }

    /// The official generator's files (the tiny SAM on image_96x72.png) are what amg.py writes;
    /// the SA-1B reader reads them and our writer reproduces them from the parsed records.
    @Test(arguments: ["single", "crops"])
    func officialFilesRoundTrip(set: String) throws {
        let path = "\(AMGFixtures.directory)/generator_\(set).json"
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let official = try OfficialRecord.records(fromJSON: text)
        #expect(!official.isEmpty)
        #expect(try MaskRecord.amgJSON(official) == text)
        let masks = try SA1BProposals.read(path: path, width: 96, height: 72)
        #expect(masks.map(\.runs) == official.map(\.mask.runs))
        #expect(official.allSatisfy { $0.area == $0.mask.area })
    }

    @Test func samProposalsAreTheRecordsMasks() throws {
        let (predictor, image, options, json) = try Self.replay("crops", set: "crops")
        let source = SAMProposals(generator: try AutomaticMaskGenerator(predictor: predictor, options: options))
        let masks = try source.proposals(for: "any", image: image)
        let official = try OfficialRecord.records(fromJSON: json)
        #expect(masks.map(\.runs) == official.map(\.mask.runs))
        #expect(masks.map(\.predictedIoU) == official.map(\.predictedIoU))
        #expect(masks.map(\.stabilityScore) == official.map(\.stabilityScore))
    }

    @Test func outputModesHoldTheSameMasks() throws {
        var segmentations: [MaskOutputMode: [MaskSegmentation]] = [:]
        var masks: [[SegmentMask]] = []
        for mode in [MaskOutputMode.cocoRLE, .uncompressedRLE, .binaryMask] {
            var (predictor, image, options, _) = try Self.replay("single", set: "single")
            options.outputMode = mode
            let records = try AutomaticMaskGenerator(predictor: predictor, options: options).generate(image)
            segmentations[mode] = records.map(\.segmentation)
            masks.append(records.map(\.mask))
        }
        #expect(masks.allSatisfy { $0 == masks[0] } && !masks[0].isEmpty)
        for (k, mask) in masks[0].enumerated() {
            let counts = AMG.maskToRLE(mask)
            #expect(segmentations[.cocoRLE]?[k] == .cocoRLE(size: [36, 48], counts: AMG.cocoEncodeRLE(counts)))
            #expect(segmentations[.uncompressedRLE]?[k] == .uncompressedRLE(size: [36, 48], counts: counts))
            #expect(segmentations[.binaryMask]?[k] == .binaryMask(BinaryMask(mask)))
        }
    }

    @Test func noMaskGivesNoRecords() throws {
        // The official fails here with several crops (box_area of an empty float tensor).
        for file in ["single", "crops"] {
            for minArea in [0, 5] {
                var (predictor, image, options, _) = try Self.replay(file, set: file)
                options.stabilityScoreThresh = 1.01
                options.minMaskRegionArea = minArea
                #expect(try AutomaticMaskGenerator(predictor: predictor, options: options).generate(image).isEmpty)
            }
        }
    }

    @Test func optionsAreChecked() throws {
        let predictor = try ReplayPredictor(file: try HDF5File(path: "\(AMGFixtures.directory)/replay_single.h5", mode: .read))
        var o = AutomaticMaskGeneratorOptions()
        o.pointGrids = [AMG.buildPointGrid(4)]
        #expect(throws: AutomaticMaskGeneratorError.pointsPerSideXorPointGrids) {
            try AutomaticMaskGenerator(predictor: predictor, options: o)
        }
        o.pointsPerSide = nil
        o.cropNLayers = 1
        #expect(throws: AutomaticMaskGeneratorError.noPointsForLayer(1)) {
            try AutomaticMaskGenerator(predictor: predictor, options: o)
        }
        o = AutomaticMaskGeneratorOptions()
        o.pointsPerSide = 3
        o.cropNLayers = 2
        o.cropNPointsDownscaleFactor = 2  // 3, 1, then int(3 / 4) = 0 points
        #expect(throws: AutomaticMaskGeneratorError.noPointsForLayer(2)) {
            try AutomaticMaskGenerator(predictor: predictor, options: o)
        }
        o = AutomaticMaskGeneratorOptions()
        o.pointsPerBatch = 0
        #expect(throws: AutomaticMaskGeneratorError.invalidOption(name: "points_per_batch", reason: "must be at least 1")) {
            try AutomaticMaskGenerator(predictor: predictor, options: o)
        }
        let generator = try AutomaticMaskGenerator(predictor: predictor)
        #expect(generator.pointGrids.map(\.count) == [1024])
        #expect(throws: AutomaticMaskGeneratorError.unsupportedImage(width: 4, height: 4, channels: 1)) {
            try generator.generate(Image(width: 4, height: 4, channels: 1))
        }
    }

    @Test func officialDefaults() {
        // automatic_mask_generator.py, SamAutomaticMaskGenerator.__init__.
        let o = AutomaticMaskGeneratorOptions()
        #expect(o.pointsPerSide == 32 && o.pointGrids == nil && o.pointsPerBatch == 64)
        #expect(o.predIoUThresh == 0.88 && o.stabilityScoreThresh == 0.95 && o.stabilityScoreOffset == 1.0)
        #expect(o.boxNMSThresh == 0.7 && o.cropNLayers == 0 && o.cropNMSThresh == 0.7 && o.cropOverlapRatio == 512 / 1500)
        #expect(o.cropNPointsDownscaleFactor == 1 && o.minMaskRegionArea == 0 && o.maskThreshold == 0)
    }

    @Test func jsonWriterFormatsAsPython() throws {
        let mask = SegmentMask(width: 2, height: 2, runs: [1..<3])
        var record = MaskRecord(
            segmentation: .uncompressedRLE(size: [2, 2], counts: [1, 2, 1]), mask: mask, area: 2, bbox: [0, 1, 1, 0],
            predictedIoU: 0.1, pointCoords: [PointXY(x: 0.5, y: 1e-5)], stabilityScore: .nan, cropBox: [0, 0, 2, 2])
        #expect(
            try MaskRecord.amgJSON([record])
                == "[{\"segmentation\": {\"size\": [2, 2], \"counts\": [1, 2, 1]}, \"area\": 2, \"bbox\": [0, 1, 1, 0], \"predicted_iou\": 0.10000000149011612, \"point_coords\": [[0.5, 1e-05]], \"stability_score\": NaN, \"crop_box\": [0, 0, 2, 2]}]"
        )
        record.segmentation = .cocoRLE(size: [2, 2], counts: "a\\b")
        #expect(try MaskRecord.amgJSON([record]).contains("\"counts\": \"a\\\\b\""))
        #expect(try MaskRecord.amgJSON([]) == "[]")
        record.segmentation = .binaryMask(BinaryMask(mask))
        #expect(throws: AutomaticMaskGeneratorError.binaryMasksHaveNoJSON(path: "x.json")) {
            try MaskRecord.amgJSON([record], path: "x.json")
        }
    }
}

/// For the end-to-end test once a real predictor exists (the model's SAMPredictor on
/// Tests/Fixtures/sam/sam_tiny.pth, the weights of sam_tiny.build()): runs our generator
/// on image_96x72.png with the options of generator_options.json[set] and expects every official
/// mask of generator_<set>.json to be matched by one of ours at IoU ≥ `minimumIoU`.
func expectMatchesOfficialGenerator(
    predictor: PromptablePredictor, set: String, minimumIoU: Double = 0.95, sourceLocation: SourceLocation = #_sourceLocation
) throws {
    let options = try JSONDecoder().decode(
        [String: OfficialGeneratorOptions].self,
        from: try #require(FileManager.default.contents(atPath: "\(AMGFixtures.directory)/generator_options.json")))
    let o = try #require(options[set], sourceLocation: sourceLocation).options
    let image = try Image.readRGB(from: "\(AMGFixtures.directory)/image_96x72.png")
    let ours = try AutomaticMaskGenerator(predictor: predictor, options: o).generate(image)
    let official = try SA1BProposals.read(
        path: "\(AMGFixtures.directory)/generator_\(set).json", width: image.width, height: image.height)
    for (k, mask) in official.enumerated() {
        let theirs = BinaryMask(mask).pixels
        let best =
            ours.map { r -> Double in
                let mine = BinaryMask(r.mask).pixels
                var inter = 0, union = 0
                for (a, b) in zip(mine, theirs) {
                    if a && b { inter += 1 }
                    if a || b { union += 1 }
                }
                return union == 0 ? 1 : Double(inter) / Double(union)
            }.max() ?? 0
        #expect(best >= minimumIoU, "official mask \(k) of \(set): best IoU \(best)", sourceLocation: sourceLocation)
    }
}

/// Intersection over union of two masks of one size; 1 when both are empty.
func maskIoU(_ a: SegmentMask, _ b: SegmentMask) -> Double {
    var inter = 0, union = 0
    for (p, q) in zip(BinaryMask(a).pixels, BinaryMask(b).pixels) {
        if p && q { inter += 1 }
        if p || q { union += 1 }
    }
    return union == 0 ? 1 : Double(inter) / Double(union)
}

/// The whole pipeline on masks worth matching: the official SamAutomaticMaskGenerator on a tiny
/// SAM whose masks follow the colour regions of image_regions_96x72.png
/// (scripts/fixtures/make_amg_region_fixtures.py: sam_regions.h5, generator_regions_<set>.json):
/// 24 masks (single: the defaults on an 8x8 grid) and 23 (crops: a crop layer and small-region
/// removal), single regions and unions of similar-coloured ones, no two at IoU above 0.77. Our
/// generator driving our SAMPredictor on the same weights must give as many masks, each official
/// one matched by its own one of ours at IoU ≥ 0.95 (a mask of ours within 0.95 of two official
/// ones would put those at IoU ≥ 0.9 with each other), with the same scores (predicted IoU within
/// 1e-4, stability within 1e-3).
extension AutomaticMaskGeneratorTests {
    static func regionModel() throws -> SAM {
        let model = SAM(configuration: try SAMFixtures.configuration())
        try model.load(from: HDF5StateDict(path: "\(AMGFixtures.directory)/sam_regions.h5"))
        return model
    }

    /// The generator's fast path (low-resolution logits decoded 8 prompts at a time, IoU filter
    /// before upscaling, one mask at a time into a reused buffer) gives the records of the
    /// full-resolution path (every mask of a 64-prompt batch upscaled by `postprocessMasks`):
    /// the same masks, scores equal to float rounding.
    @Test(arguments: ["single", "crops"])
    func lowResolutionPathEqualsTheFullResolutionPath(set: String) throws {
        final class FullResolutionOnly: PromptablePredictor {
            let inner: SAMPredictor
            init(_ inner: SAMPredictor) { self.inner = inner }
            func setImage(_ image: Image) throws { try inner.setImage(image) }
            var originalSize: (height: Int, width: Int) { inner.originalSize }
            func predictLogits(points: [(x: Float, y: Float)], labels: [Int], multimask: Bool) -> (logits: Tensor, iou: Tensor) {
                inner.predictLogits(points: points, labels: labels, multimask: multimask)
            }
        }
        let options = try JSONDecoder().decode(
            [String: OfficialGeneratorOptions].self,
            from: try #require(FileManager.default.contents(atPath: "\(AMGFixtures.directory)/generator_regions_options.json")))
        var o = try #require(options[set]).options
        o.predIoUThresh = 0.5  // some masks filtered before upscaling, most kept
        let image = try Image.readRGB(from: "\(AMGFixtures.directory)/image_regions_96x72.png")
        let predictor = SAMPredictor(model: try Self.regionModel())
        let fast = try AutomaticMaskGenerator(predictor: predictor, options: o).generate(image)
        let full = try AutomaticMaskGenerator(predictor: FullResolutionOnly(predictor), options: o).generate(image)
        #expect(fast.count == full.count && !fast.isEmpty, "\(fast.count) masks against \(full.count)")
        // Same masks, boxes and points; the scores within float rounding (the decoder's products
        // over 8 prompts instead of 64 may round the last bit differently).
        func same(_ a: MaskRecord, _ b: MaskRecord) -> Bool {
            a.segmentation == b.segmentation && a.mask == b.mask && a.bbox == b.bbox && a.pointCoords == b.pointCoords
                && a.cropBox == b.cropBox && abs(a.predictedIoU - b.predictedIoU) <= 1e-6
                && abs(a.stabilityScore - b.stabilityScore) <= 1e-6
        }
        let differing = zip(fast, full).enumerated().filter { !same($0.element.0, $0.element.1) }.map { k, pair in
            "\(k): iou \(pair.0.predictedIoU) vs \(pair.1.predictedIoU), stability \(pair.0.stabilityScore) vs \(pair.1.stabilityScore), area \(pair.0.area) vs \(pair.1.area)"
        }
        #expect(differing.isEmpty, "\(differing.count) records differ: \(differing.prefix(3))")
    }

    @Test(arguments: [("single", 24), ("crops", 23)])
    func generatorOnOurPredictorFindsEveryOfficialRegionMask(set: String, officialCount: Int) throws {
        let options = try JSONDecoder().decode(
            [String: OfficialGeneratorOptions].self,
            from: try #require(FileManager.default.contents(atPath: "\(AMGFixtures.directory)/generator_regions_options.json")))
        let o = try #require(options[set]).options
        let image = try Image.readRGB(from: "\(AMGFixtures.directory)/image_regions_96x72.png")
        let official = try OfficialRecord.records(
            fromJSON: try String(contentsOfFile: "\(AMGFixtures.directory)/generator_regions_\(set).json", encoding: .utf8))

        // The official set is many clearly different masks.
        var closest = 0.0
        for i in official.indices {
            for j in official.indices where j > i { closest = max(closest, maskIoU(official[i].mask, official[j].mask)) }
        }
        #expect(
            official.count == officialCount && closest <= 0.77, "\(official.count) official masks, pairwise IoU up to \(closest)")

        let ours = try AutomaticMaskGenerator(predictor: SAMPredictor(model: try Self.regionModel()), options: o).generate(image)
        #expect(ours.count == official.count, "ours \(ours.count) masks, official \(official.count)")
        var matched: Set<Int> = [], lowest = 1.0, iouGap: Float = 0, stabilityGap: Float = 0, sameBoxes = 0
        for (k, theirs) in official.enumerated() {
            let ious = ours.map { maskIoU($0.mask, theirs.mask) }
            guard let best = ious.indices.max(by: { ious[$0] < ious[$1] }) else {
                Issue.record("official mask \(k): we have no mask")
                continue
            }
            lowest = min(lowest, ious[best])
            #expect(ious[best] >= 0.95, "official mask \(k) (area \(theirs.area), box \(theirs.bbox)): best IoU \(ious[best])")
            matched.insert(best)
            let mine = ours[best]
            iouGap = max(iouGap, abs(mine.predictedIoU - theirs.predictedIoU))
            stabilityGap = max(stabilityGap, abs(mine.stabilityScore - theirs.stabilityScore))
            if mine.bbox == theirs.bbox && mine.cropBox == theirs.cropBox { sameBoxes += 1 }
            #expect(
                abs(mine.predictedIoU - theirs.predictedIoU) <= 1e-4,
                "official mask \(k): predicted IoU \(mine.predictedIoU), official \(theirs.predictedIoU)")
            #expect(
                abs(mine.stabilityScore - theirs.stabilityScore) <= 1e-3,
                "official mask \(k): stability \(mine.stabilityScore), official \(theirs.stabilityScore)")
        }
        #expect(matched.count == official.count, "\(official.count) official masks matched by \(matched.count) of ours")
        print(
            "regions/\(set): \(official.count) official masks (pairwise IoU ≤ \(closest)), ours \(ours.count); \(matched.count) matched one for one, lowest IoU \(lowest); same box and crop box \(sameBoxes); predicted IoU within \(iouGap), stability within \(stabilityGap)"
        )
    }
}
