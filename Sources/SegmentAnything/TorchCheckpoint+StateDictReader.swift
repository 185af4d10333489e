import TorchCheckpoint

// Official `.pth` files (`sam_vit_b_01ec64.pth`, …) load straight into `SAM.load(from:)`:
// TorchCheckpoint already has `path`, `tensorShapes` and `tensor(named:)`, read on demand.
extension TorchCheckpoint: StateDictReader {
    public func isStoredAsFloat(_ name: String) -> Bool { dtype(of: name)?.isFloatingPoint ?? false }
}
