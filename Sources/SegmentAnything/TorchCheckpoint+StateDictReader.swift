import TorchCheckpoint

/// The official `.pth` files, read tensor by tensor straight from the mapped archive.
extension TorchCheckpoint: StateDictReader {}
