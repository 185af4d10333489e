import Autograd
import HDF5
import Layers
import Testing

@testable import GroundingDINO

/// Loads every parameter of `module` from `<group>/<name>` in `file` (the fixture scripts store
/// a submodule's state dict there).
func loadWeights(_ module: Module, from file: HDF5File, group: String) throws {
    for (name, tensor) in module.stateDict() {
        let stored = try file.read("\(group)/\(name)")
        #expect(stored.shape == tensor.shape, "\(name): \(stored.shape) vs \(tensor.shape)")
        tensor.assign(from: stored)
    }
}

/// Max |a − b| / max |b|.
func relativeError(_ a: Tensor, _ b: Tensor) -> Double {
    var diff = 0.0, scale = 0.0
    for (x, y) in zip(a.scalars, b.scalars) {
        diff = max(diff, abs(Double(x) - Double(y)))
        scale = max(scale, abs(Double(y)))
    }
    return a.shape == b.shape ? diff / max(scale, 1e-12) : .infinity
}

@Suite struct SwinTests {
    /// One stage of the official code (6 × 7 tokens, window 4: padding, a shifted block with its
    /// mask, patch merging of an odd size), block by block.
    @Test func stageMatchesTheOfficialCode() throws {
        let file = try GDINOFixtures.file("ops.h5")
        let stage = SwinStage(dim: 8, depth: 2, heads: 2, windowSize: 4, mlpRatio: 2, downsample: true)
        try loadWeights(stage, from: file, group: "/swin_layer/case/weights")
        let x = try file.read("/swin_layer/case/x").reshaped(to: [1, 6, 7, 8])
        let mask = SwinStage.shiftMask(height: 6, width: 7, windowSize: 4)
        #expect(relativeError(mask, try file.read("/swin_layer/case/attn_mask")) == 0)
        try withoutGrad {
            let first = stage.blocks[0](x, mask: mask)
            #expect(relativeError(first.reshaped(to: [1, 42, 8]), try file.read("/swin_layer/case/block_0")) < 1e-5)
            let second = stage.blocks[1](first, mask: mask)
            #expect(relativeError(second.reshaped(to: [1, 42, 8]), try file.read("/swin_layer/case/block_1")) < 1e-5)
            let (output, next) = stage(x)
            #expect(relativeError(output, second) == 0)
            let down = try #require(next)
            #expect(relativeError(down.reshaped(to: [1, 12, 16]), try file.read("/swin_layer/case/x_down")) < 1e-5)
        }
    }

    @Test func rollAndPadding() {
        let x = Tensor(shape: [1, 4], values: [1, 2, 3, 4])
        #expect(x.rolled(by: -1, alongAxis: 1).scalars == [2, 3, 4, 1])
        #expect(x.rolled(by: 1, alongAxis: 1).scalars == [4, 1, 2, 3])
        #expect(x.rolled(by: 5, alongAxis: 1).scalars == [4, 1, 2, 3])
        let y = Tensor(shape: [1, 1, 1, 2], values: [1, 2]).zeroPadded(height: 2, width: 3)
        #expect(y.shape == [1, 1, 2, 3] && y.scalars == [1, 2, 0, 0, 0, 0])
    }
}
