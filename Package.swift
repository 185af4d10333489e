// swift-tools-version:6.0
// WSSS: weakly-supervised semantic segmentation in Swift. Layers (imports point down only):
//   wsss (CLI) -> Pipeline and everything below;  WSSS (umbrella, re-exports) -> every library target;
//   Pipeline -> Training, SegmentAnything, PseudoLabels, Reporting;  GroundingDINO -> SegmentAnything (weights), Layers;  Training -> Layers, Datasets,
//   Checkpoints, PseudoLabels, Evaluation, Reporting;  SegmentAnything -> Layers, TorchCheckpoint,
//   Imaging, HDF5;  Reporting -> Imaging, Evaluation;  Checkpoints -> Layers, HDF5, TorchCheckpoint (.pth initial weights);
//   PseudoLabels -> Imaging, HDF5;  DenseCRF -> Imaging, Autograd (parallelFor);
//   Imaging -> Autograd (one resize rule), CImageCodecs;
//   Training -> Distributed -> CMPI (Open MPI), Autograd;
//   Datasets, TorchCheckpoint -> Pickle (restricted unpickler, .npy);
//   Layers, HDF5, TorchCheckpoint -> Autograd -> CBLAS, CKernels (C, AVX2+FMA / baseline at run time).
// See docs/ARCHITECTURE.md for the full picture.
import PackageDescription

let package = Package(
    name: "WSSS",
    products: [
        .executable(name: "wsss", targets: ["wsss"]),
        // The framework in one import (`import WSSS`), and each layer on its own.
        .library(name: "WSSS", targets: ["WSSS"]),
        .library(name: "Autograd", targets: ["Autograd"]),
        .library(name: "HDF5", targets: ["HDF5"]),
        .library(name: "Imaging", targets: ["Imaging"]),
        .library(name: "Datasets", targets: ["Datasets"]),
        .library(name: "Evaluation", targets: ["Evaluation"]),
        .library(name: "Layers", targets: ["Layers"]),
        .library(name: "Checkpoints", targets: ["Checkpoints"]),
        .library(name: "PseudoLabels", targets: ["PseudoLabels"]),
        .library(name: "Training", targets: ["Training"]),
        .library(name: "Pipeline", targets: ["Pipeline"]),
        .library(name: "TorchCheckpoint", targets: ["TorchCheckpoint"]),
        .library(name: "Pickle", targets: ["Pickle"]),
        .library(name: "SegmentAnything", targets: ["SegmentAnything"]),
        .library(name: "GroundingDINO", targets: ["GroundingDINO"]),
        .library(name: "Reporting", targets: ["Reporting"]),
        .library(name: "DenseCRF", targets: ["DenseCRF"]),
        .library(name: "Distributed", targets: ["Distributed"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
    ],
    targets: [
        // C libraries from Debian (scripts/test installs them).
        .systemLibrary(name: "CBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CHDF5", pkgConfig: "hdf5-serial", providers: [.apt(["libhdf5-dev"])]),
        .systemLibrary(name: "CPNG", pkgConfig: "libpng", providers: [.apt(["libpng-dev"])]),
        .systemLibrary(name: "CJPEG", pkgConfig: "libjpeg", providers: [.apt(["libjpeg-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        // Open MPI's C API (data-parallel training, docs/DISTRIBUTED.md).
        .systemLibrary(name: "CMPI", pkgConfig: "ompi-c", providers: [.apt(["libopenmpi-dev", "openmpi-bin"])]),
        // C: libpng/libjpeg report errors by longjmp, which must not cross Swift frames.
        .target(name: "CImageCodecs", dependencies: ["CPNG", "CJPEG"]),

        .target(name: "Autograd", dependencies: ["CBLAS", "CKernels"]),
        // C kernels compiled for AVX2+FMA and for baseline x86-64, chosen at run time.
        .target(name: "CKernels"),
        .target(name: "HDF5", dependencies: ["Autograd", "CHDF5", "CZlib"]),
        // Autograd for ResizeAxis / Kernels.resize: the image resize and the tensor resize share one rule.
        .target(name: "Imaging", dependencies: ["CImageCodecs", "Autograd"]),
        .target(name: "Evaluation"),
        .target(name: "Layers", dependencies: ["Autograd"]),
        // Ranks of an mpirun/srun job (single-process fallback), gradient buckets summed during backward.
        .target(name: "Distributed", dependencies: ["CMPI", "Autograd"]),
        .target(name: "Checkpoints", dependencies: ["Autograd", "HDF5", "Layers", "TorchCheckpoint", "Protobuf"]),
        // The protobuf wire format by hand: TensorBoard's events and Caffe's .caffemodel.
        .target(name: "Protobuf"),
        .target(name: "Datasets", dependencies: ["Imaging", "Autograd", "Pickle"]),
        .target(name: "PseudoLabels", dependencies: ["Imaging", "HDF5", "Autograd"]),
        // PyTorch `torch.save` files: zip reader + a restricted unpickler that never runs code.
        // The restricted unpickler (never runs code) and .npy files: torch checkpoints and datasets read them.
        .target(name: "Pickle"),
        .target(name: "TorchCheckpoint", dependencies: ["Autograd", "CZlib", "Pickle"]),
        // SAM on our tensor layer (mirrors segment_anything/modeling), predictor, mask generator.
        .target(
            name: "SegmentAnything",
            dependencies: [
                "Autograd", "Layers", "Imaging", "HDF5", "TorchCheckpoint",
                .product(name: "Yams", package: "Yams"),
            ]),
        // Grounding DINO on our tensor layer (mirrors groundingdino/models): text prompts to boxes,
        // with BERT's WordPiece tokenizer; weights read through SegmentAnything's StateDictReader.
        .target(
            name: "GroundingDINO",
            dependencies: [
                "Autograd", "Layers", "Imaging", "HDF5", "TorchCheckpoint", "SegmentAnything",
                .product(name: "Yams", package: "Yams"),
            ]),
        // Fully-connected CRF (Krähenbühl & Koltun 2011) on a permutohedral lattice; Autograd for parallelFor.
        .target(name: "DenseCRF", dependencies: ["Imaging", "Autograd"]),
        // What a person looks at: TensorBoard event files, plots with axes, captioned panels.
        .target(name: "Reporting", dependencies: ["Imaging", "Evaluation", "Protobuf"]),
        .target(
            name: "Training",
            dependencies: [
                "Distributed", "Layers", "Datasets", "Checkpoints", "Evaluation", "PseudoLabels", "Autograd", "HDF5", "Imaging",
                "Reporting",
                .product(name: "Yams", package: "Yams"),
            ]),
        // Orchestration as a library: stages a Swift user can run with their own sources.
        .target(
            name: "Pipeline",
            dependencies: [
                "Training", "Distributed", "PseudoLabels", "SegmentAnything", "GroundingDINO", "DenseCRF", "Datasets",
                "Evaluation", "Imaging", "Reporting", "Autograd",
            ]),
        .target(
            name: "WSSS",
            dependencies: [
                "Autograd", "Checkpoints", "DenseCRF", "Datasets", "Distributed", "Evaluation", "HDF5", "Imaging", "Layers",
                "Pickle", "Pipeline", "PseudoLabels",
                "Reporting", "SegmentAnything", "GroundingDINO", "TorchCheckpoint", "Training",
            ]),
        .executableTarget(
            name: "wsss",
            dependencies: [
                "Autograd", "HDF5", "Imaging", "Datasets", "Evaluation", "Layers", "Checkpoints",
                "PseudoLabels", "Training", "SegmentAnything", "GroundingDINO", "TorchCheckpoint", "Pipeline", "DenseCRF",
                "Distributed",
                "Reporting", .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),

        // Fixtures (Tests/Fixtures/*.h5, made by scripts/make_fixtures.py) are read by path.
        .testTarget(name: "AutogradTests", dependencies: ["Autograd", "HDF5", "CKernels"]),
        .testTarget(name: "HDF5Tests", dependencies: ["HDF5", "Autograd"]),
        .testTarget(name: "DistributedTests", dependencies: ["Distributed", "Autograd"]),
        .testTarget(
            name: "CheckpointsTests", dependencies: ["Checkpoints", "Layers", "Autograd", "HDF5", "TorchCheckpoint", "Protobuf"]),
        .testTarget(name: "LayersTests", dependencies: ["Layers", "Autograd", "HDF5"]),
        .testTarget(name: "DatasetsTests", dependencies: ["Datasets", "Imaging", "Autograd", "Pickle"]),
        .testTarget(name: "PseudoLabelsTests", dependencies: ["PseudoLabels", "Imaging", "HDF5", "Autograd"]),
        .testTarget(
            name: "TrainingTests", dependencies: ["Training", "Layers", "Datasets", "Checkpoints", "Autograd", "HDF5", "Imaging"]),
        .testTarget(name: "EvaluationTests", dependencies: ["Evaluation", "HDF5"]),
        .testTarget(name: "ImagingTests", dependencies: ["Imaging", "HDF5", "Autograd"]),
        .testTarget(name: "ReportingTests", dependencies: ["Reporting", "Imaging", "Evaluation", "Protobuf"]),
        .testTarget(name: "DenseCRFTests", dependencies: ["DenseCRF", "Imaging", "HDF5", "Autograd"]),
        .testTarget(name: "TorchCheckpointTests", dependencies: ["TorchCheckpoint", "Pickle", "Autograd"]),
        .testTarget(
            name: "SegmentAnythingTests",
            dependencies: [
                "SegmentAnything", "TorchCheckpoint", "Autograd", "Layers", "HDF5", "Imaging", "PseudoLabels", "Pipeline",
            ]),
        .testTarget(
            name: "GroundingDINOTests", dependencies: ["GroundingDINO", "TorchCheckpoint", "Autograd", "HDF5", "Layers"]),
        .testTarget(
            name: "PipelineTests", dependencies: ["Pipeline", "Training", "Datasets", "PseudoLabels", "Checkpoints", "Imaging"]),
        .testTarget(
            name: "WSSSTests",
            dependencies: [
                "wsss", "Datasets", "Imaging", "Checkpoints", "HDF5", "Reporting", "Pipeline", "Training", "TorchCheckpoint",
            ],
            exclude: ["Snapshots"]),
    ],
    swiftLanguageModes: [.v5]
)
