import ArgumentParser
import Datasets
import Evaluation
import Foundation
import PseudoLabels

/// Which layout `wsss synth` writes.
enum SynthFormat: String, ExpressibleByArgument, CaseIterable {
    case voc, coco
}

/// `wsss synth`: writes the built-in synthetic dataset.
struct Synth: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write the built-in synthetic dataset (VOC 2012 layout) for running the pipeline without downloads.",
        discussion:
            "Six shape classes sharing body colours and textures, each with a small discriminative part; textured backgrounds with clutter; 1–4 overlapping objects per image. See docs/SYNTHETIC.md. With --format coco: a COCO-format set instead (annotations/instances_{train,val}.json with polygons, RLE and crowds over the 80 official categories, images in train/ and val/) for `wsss coco convert`; see docs/COCO.md."
    )

    @Option(
        help: ArgumentHelp("Layout: voc (the VOC 2012 layout) or coco (instances JSON + image folders).", valueName: "voc|coco"))
    var format = SynthFormat.voc

    @Option(help: ArgumentHelp("Output folder (created). (required)", valueName: "dir"))
    var out: String

    @Option(help: ArgumentHelp("Random seed: the same seed writes the same files.", valueName: "n"))
    var seed: UInt64 = 0

    @Option(help: ArgumentHelp("Training images.", valueName: "n"))
    var train: Int = 300

    @Option(help: ArgumentHelp("Validation images.", valueName: "n"))
    var val: Int = 100

    @Option(help: ArgumentHelp("Test images (labelled, unlike VOC's).", valueName: "n"))
    var test: Int = 100

    @Option(help: ArgumentHelp("Image side in pixels.", valueName: "px"))
    var size: Int = 128

    @Flag(
        help:
            "Also write SAM stand-in masks as SA-1B-style JSON (COCO RLE) in the SAMStandIn folder of the output: derived from the scene, not from SAM (docs/SYNTHETIC.md)."
    )
    var proposals = false

    @Flag(
        help:
            "Replace a synthetic dataset already in --out (its JPEGImages, SegmentationClass, Annotations, ImageSets, SAMStandIn and classes.txt are removed first; nothing else is touched). (default: off, such a folder is refused)"
    )
    var overwrite = false

    /// What `SyntheticDataset.write` puts in the output folder.
    static let written = ["JPEGImages", "SegmentationClass", "Annotations", "ImageSets", "SAMStandIn", "classes.txt"]
    /// What `SyntheticCOCO.write` puts there.
    static let writtenCOCO = ["annotations", "train", "val"]

    func validate() throws {
        guard train >= 0, val >= 0, test >= 0 else { throw ValidationError("image counts must not be negative") }
        // The scenes are drawn in memory at full size: 100000 px would need 240 GB per image.
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: out, isDirectory: &isDirectory), !isDirectory.boolValue {
            throw ValidationError("--out \(out) is a file, not a folder")
        }
        guard size >= 32 && size <= 4096 else { throw ValidationError("--size must be 32 to 4096 pixels, got \(size)") }
        if format == .coco && proposals {
            throw ValidationError("--proposals is for --format voc; convert the COCO set first (docs/COCO.md)")
        }
    }

    func run() throws {
        // Writing over an older set would leave its extra images and lists behind, silently mixed in.
        let present = (format == .coco ? Self.writtenCOCO : Self.written).filter {
            FileManager.default.fileExists(atPath: "\(out)/\($0)")
        }
        if !present.isEmpty {
            guard overwrite else {
                throw CommandFailure(
                    "\(out) already holds a dataset (\(present.joined(separator: ", "))); pass --overwrite to replace it, or choose another folder"
                )
            }
            for name in present { try FileManager.default.removeItem(atPath: "\(out)/\(name)") }
        }
        if format == .coco {
            var options = SyntheticCOCO.Options()
            (options.seed, options.train, options.val, options.size) = (seed, train, val, size)
            let start = Date()
            try SyntheticCOCO.write(to: out, options: options)
            Log.info(
                String(
                    format: "synth: COCO format, %d train and %d val images (width %d) in %@ (%.1f s); --test is not used", train,
                    val, size, out, Date().timeIntervalSince(start)))
            return
        }
        var options = SyntheticDataset.Options()
        (options.seed, options.train, options.val, options.test, options.size) = (seed, train, val, test, size)
        let start = Date()
        var writer: (@Sendable (String, [SyntheticProposal]) throws -> Void)?
        if proposals {
            let folder = "\(out)/SAMStandIn"
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            // Result tables name these masks for what they are (ProposalSource.about).
            try Data("SAM stand-in, derived from ground truth\nwritten by wsss synth --proposals; docs/SYNTHETIC.md\n".utf8)
                .write(to: URL(fileURLWithPath: "\(folder)/\(proposalAboutFile)"), options: .atomic)
            let side = size
            writer = { id, masks in
                let segments = masks.map { m in
                    var s = SegmentMask(width: side, height: side, bitmap: m.bitmap)
                    (s.predictedIoU, s.stabilityScore) = (m.predictedIoU, m.stabilityScore)
                    return s
                }
                try SA1BProposals.write(segments, to: "\(folder)/\(id).json")
            }
        }
        try SyntheticDataset.write(to: out, options: options, proposals: writer)
        Log.info(
            String(
                format: "synth: %d images of %dx%d in %@ (%.1f s)", train + val + test, size, size, out,
                Date().timeIntervalSince(start)))
        print("next: wsss data check --root \(out) --split train")
    }
}
