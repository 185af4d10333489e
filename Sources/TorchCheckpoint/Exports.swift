// The pickle reader and the errors of a torch.save file (`TorchCheckpointError`, `TorchDType`) come
// with `import TorchCheckpoint`.
@_exported import Pickle
