// `import WSSS` gives a user package the framework's public API in one line: tensors and ops,
// layers, datasets, images, evaluation, checkpoints, pseudo-labels (ProposalSource, SegmentMask,
// the SEPL and box merges), recipes and training, Segment Anything, the dense CRF and run reporting. Each layer
// is also a product of its own (`Autograd`, `SegmentAnything`, …) for those who want less.
@_exported import Autograd
@_exported import Checkpoints
@_exported import Datasets
@_exported import DenseCRF
@_exported import GroundingDINO
@_exported import Distributed
@_exported import Evaluation
@_exported import HDF5
@_exported import Imaging
@_exported import Layers
@_exported import Pipeline
@_exported import Pickle
@_exported import PseudoLabels
@_exported import Reporting
@_exported import SegmentAnything
@_exported import TorchCheckpoint
@_exported import Training
