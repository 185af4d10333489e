import Autograd
import Foundation
import Imaging
import SegmentAnything
import Testing

@testable import wsss

/// `wsss bench sam --keep third`: the IoU threshold a third of the sampled candidates pass.
@Suite struct BenchSAMTests {
    @Test func thirdThresholdKeepsAThirdOfTheSampledCandidates() throws {
        let yaml = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/sam/sam_tiny.yaml").path
        let model = SAM(configuration: try SAMConfiguration.load(path: yaml))
        var g = SeededGenerator(seed: 3)
        Bench.SAMBench.randomize(model, using: &g)
        let predictor = SAMPredictor(model: model)
        let (w, h) = (60, 45)
        try predictor.setImage(Bench.noiseImage(width: w, height: h, using: &g))
        let threshold = Bench.SAMBench.thirdThreshold(predictor, width: w, height: h)
        // The same 64 points with every mask computed: their IoUs, of which the threshold passes 64.
        let grid = AMG.buildPointGrid(32)
        let points = stride(from: 0, to: grid.count, by: 16).map {
            (x: Float(grid[$0].x * Double(w)), y: Float(grid[$0].y * Double(h)))
        }
        let full = try #require(
            predictor.predictLowResolution(
                points: points, labels: Array(repeating: 1, count: 64), multimask: true, iouThreshold: nil))
        #expect(full.iou.shape == [64, 3])
        let passing = full.iou.scalars.filter { Double($0) > threshold }.count
        #expect(passing == 64, "\(passing) of 192 candidates above \(threshold)")
    }
}
