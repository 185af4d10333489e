import ArgumentParser
import Autograd
import Dispatch
import Foundation
import Imaging
import PseudoLabels

extension Bench {
    /// `wsss bench pseudo`: SEPL merge throughput on VOC-sized images.
    struct Pseudo: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "pseudo",
            abstract:
                "Time the SEPL merge on VOC-size images (500x375) with ~100 SAM-like proposals each (one JSON object per line).",
            discussion:
                "Two lines: sepl_merge_memory (proposals already decoded) and sepl_merge_rle_json (reading SA-1B JSON with compressed RLE, decoding, merging). Images are processed in parallel on --threads; images_per_s is the throughput."
        )

        @OptionGroup var runtime: RuntimeOptions
        @Option(help: ArgumentHelp("Images per timed batch.", valueName: "n")) var images = 64
        @Option(help: ArgumentHelp("Proposals per image.", valueName: "n")) var proposals = 100

        /// No images would time nothing and print an empty object.
        func validate() throws {
            guard images >= 1 else { throw ValidationError("--images must be at least 1, got \(images)") }
            guard proposals >= 0 else { throw ValidationError("--proposals must be 0 or more, got \(proposals)") }
        }

        /// Seeds of three overlapping elliptic classes and `proposals` SAM-like elliptic masks.
        static func syntheticInputs(width w: Int, height h: Int, proposals: Int, using g: inout SeededGenerator) -> (
            seeds: LabelMap, masks: [SegmentMask]
        ) {
            func ellipse() -> [Bool] {
                let (cx, cy) = (Double(g.nextUniform()) * Double(w), Double(g.nextUniform()) * Double(h))
                let (rx, ry) = (5 + Double(g.nextUniform()) * 120, 5 + Double(g.nextUniform()) * 90)
                return (0..<(w * h)).map { p in
                    let (dx, dy) = ((Double(p % w) - cx) / rx, (Double(p / w) - cy) / ry)
                    return dx * dx + dy * dy <= 1
                }
            }
            var seeds = [UInt8](repeating: 0, count: w * h)
            for c in 1...3 { for (p, inside) in ellipse().enumerated() where inside { seeds[p] = UInt8(c) } }
            let masks = (0..<proposals).map { _ in SegmentMask(width: w, height: h, bitmap: ellipse()) }
            return (LabelMap(width: w, height: h, values: seeds), masks)
        }

        func run() throws {
            try runtime.apply()
            let (w, h) = (500, 375)
            var g = SeededGenerator(seed: 7)
            // A few distinct images, reused.
            let distinct = 4
            var seedMaps: [LabelMap] = []
            var maskSets: [[SegmentMask]] = []
            let directory = NSTemporaryDirectory() + "wsss-bench-pseudo-\(getpid())"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: directory) }
            for k in 0..<distinct {
                let (seeds, masks) = Self.syntheticInputs(width: w, height: h, proposals: proposals, using: &g)
                seedMaps.append(seeds)
                maskSets.append(masks)
                try SA1BProposals.write(masks, to: "\(directory)/\(k).json")
            }
            let merge = SEPLMerge()
            let image = Image(width: w, height: h, channels: 3)
            func measure(_ name: String, _ one: @escaping @Sendable (Int) throws -> Void) throws {
                let count = images
                let timing = OpBenchmarks.time(seconds: 3) {
                    DispatchQueue.concurrentPerform(iterations: Runtime.threads) { t in
                        for i in stride(from: t, to: count, by: Runtime.threads) { try? one(i % distinct) }
                    }
                    return nil
                }
                printJSON([
                    "name": name, "median_s": timing.median / Double(count), "min_s": timing.minimum / Double(count),
                    "images_per_s": Double(count) / timing.median, "proposals": proposals, "size": "\(w)x\(h)",
                    "threads": Runtime.threads,
                ])
            }
            let (seedsCopy, masksCopy) = (seedMaps, maskSets)
            try measure("sepl_merge_memory") { k in _ = merge.merge(seeds: seedsCopy[k], proposals: masksCopy[k]) }
            try measure("sepl_merge_rle_json") { k in
                let masks = try SA1BProposals(directory: directory).proposals(for: String(k), image: image)
                _ = merge.merge(seeds: seedsCopy[k], proposals: masks)
            }
        }
    }
}
