import ArgumentParser
import Autograd
import Foundation
import Imaging
import SegmentAnything

extension Bench {
    /// `wsss bench sam`: the SAM image encoder, mask decoder and automatic mask generator on random weights.
    struct SAMBench: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "sam",
            abstract:
                "Time SAM on random weights: the image encoder at 1024x1024, the mask decoder, the mask generator (JSON Lines).",
            discussion: """
                Lines: sam_<config>_encoder (median_s over --repeats, peak_rss_mb of the process so far: weights + encoder; \
                for a ViT its gflops and sgemm_share, the share of this machine's sgemm rate measured in the same run), \
                sam_<config>_decoder (masks_per_s for batches of 64 single-point prompts, 3 masks each), \
                sam_<config>_generator (s/image: 32x32 points, batches of 64, on a --image of smooth colour and noise; \
                --keep defaults: the official thresholds, which random weights almost never pass; --keep all: \
                pred_iou_thresh = stability_score_thresh = 0, every candidate upscaled, scored, NMS'd and encoded; \
                --keep third: stability_score_thresh = 0 and the pred_iou_thresh a third of the candidates pass, read off \
                the predicted IoUs of 64 grid points spread over the image, untimed, and printed). \
                Compare with `scripts/bench_reference.py --sam <config> --generator` and the same options, in the same session \
                (`scripts/bench_compare --cases sam-generator,sam-generator-all,sam-generator-third`).
                """)

        @OptionGroup var runtime: RuntimeOptions
        @Option(
            help: ArgumentHelp(
                "vit_b, vit_l, vit_h, vit_t / mobile_sam (MobileSAM), or SAM-HQ's vit_b_hq, vit_l_hq, vit_h_hq, vit_tiny_hq (light HQ-SAM).",
                valueName: "name"))
        var config = "vit_b"
        @Option(help: ArgumentHelp("Timed encoder repetitions after one warm-up.", valueName: "n")) var repeats = 3
        @Flag(help: "Leave out the timed encoder line (the predictor still encodes the image once). (default: off)")
        var skipEncoder = false
        @Flag(help: "Leave out the generator line (it runs the encoder once more and 1024 point prompts). (default: off)")
        var skipGenerator = false
        @Flag(help: "Leave out the timed decoder line. (default: off)") var skipDecoder = false
        @Option(help: ArgumentHelp("Generator image size (VOC's is about 500x375).", valueName: "WxH")) var image = "1024x768"
        @Option(
            help: ArgumentHelp(
                "Generator thresholds: defaults (official), all (every candidate kept) or third (about a third kept).",
                valueName: "which"))
        var keep = "defaults"
        @Option(
            help: ArgumentHelp(
                "The image encoder's arithmetic: fp32, bf16 (emulated where the CPU has no AVX512-BF16: for accuracy, not speed) or auto.",
                valueName: "fp32|bf16|auto"))
        var precision: ComputePrecision = .fp32

        /// `--image` as (width, height).
        var imageSize: (width: Int, height: Int)? {
            let parts = image.lowercased().split(separator: "x").compactMap { Int($0) }
            guard parts.count == 2, parts.allSatisfy({ (1...16384).contains($0) }) else { return nil }
            return (parts[0], parts[1])
        }

        func validate() throws {
            guard SAMConfiguration.named.contains(where: { $0.name == config }) else {
                throw ValidationError(
                    "--config: one of \(SAMConfiguration.named.map(\.name).joined(separator: ", ")); got \(config)")
            }
            guard repeats >= 1 else { throw ValidationError("--repeats must be at least 1") }
            guard imageSize != nil else {
                throw ValidationError("--image: WIDTHxHEIGHT, each 1…16384, e.g. 500x375; got \(image)")
            }
            guard ["defaults", "all", "third"].contains(keep) else {
                throw ValidationError("--keep: defaults, all or third; got \(keep)")
            }
        }

        func run() throws {
            try runtime.apply()
            let configuration = SAMConfiguration.named.first { $0.name == config }!.configuration
            let model = SAM(configuration: configuration)
            var g = SeededGenerator(seed: 5)
            Self.randomize(model, using: &g)
            model.precision = precision
            let side = configuration.imageSize
            let input = Tensor.randomNormal([1, 3, side, side], using: &g)
            if !skipEncoder {
                let encoder = OpBenchmarks.time(seconds: 0, repetitions: repeats) {
                    _ = Kernels.withProducts(in: precision) { withoutGrad { model.imageEncoder(input) } }
                    return nil
                }
                var extra: [String: Any] = ["size": side, "reps": encoder.count]
                if let flops = configuration.encoderFLOPs {
                    // The share of this machine's sgemm rate, measured now (2048³, about a second).
                    let sgemm = OpBenchmarks.sgemm(size: 2048, seconds: 1)
                    let gflops = flops / encoder.median / 1e9
                    extra["gflops"] = (gflops * 10).rounded() / 10
                    extra["sgemm_gflops"] = sgemm.gflops
                    extra["sgemm_share"] = (gflops / sgemm.gflops * 100).rounded() / 100
                }
                emit("encoder", encoder.median, encoder.minimum, extra: extra)
                if precision.resolved == .bf16 {
                    // The same input through the fp32 encoder: how far bf16 moves the embedding.
                    let low = Kernels.withProducts(in: precision) { withoutGrad { model.imageEncoder(input) } }
                    model.precision = .fp32
                    let full = withoutGrad { model.imageEncoder(input) }
                    model.precision = precision
                    let (a, b) = (low.scalars, full.scalars)
                    let difference = zip(a, b).reduce(0.0) { $0 + Double($1.0 - $1.1) * Double($1.0 - $1.1) }
                    let norm = b.reduce(0.0) { $0 + Double($1) * Double($1) }
                    printJSON([
                        "name": "sam_\(config)_bf16_error",
                        "embedding_relative_error": (difference / max(norm, 1e-30)).squareRoot(),
                        "bf16_hardware": Kernels.bf16Hardware,
                    ])
                }
            }

            // An image of smooth colour and noise, as the official bench in scripts/bench_reference.py.
            let (w, h) = imageSize!
            let image = Bench.noiseImage(width: w, height: h, using: &g)
            let predictor = SAMPredictor(model: model)
            try predictor.setImage(image)
            let points = (0..<64).map { _ in (x: Float(g.next() % UInt64(w)), y: Float(g.next() % UInt64(h))) }
            if !skipDecoder {
                let decoder = OpBenchmarks.time(seconds: 0, repetitions: repeats) {
                    _ = predictor.predictLogits(points: points, labels: Array(repeating: 1, count: 64), multimask: true)
                    return nil
                }
                emit(
                    "decoder", decoder.median, decoder.minimum,
                    extra: ["prompts": 64, "masks_per_s": (64 * 3 / decoder.median * 10).rounded() / 10])
            }

            guard !skipGenerator else { return }
            var options = AutomaticMaskGeneratorOptions()
            if keep == "all" { (options.predIoUThresh, options.stabilityScoreThresh) = (0, 0) }
            if keep == "third" {
                let threshold = Self.thirdThreshold(predictor, width: w, height: h)
                guard threshold > 0 else {
                    // The generator (as the official one) reads pred_iou_thresh <= 0 as no filter at all.
                    FileHandle.standardError.write(
                        Data(
                            "wsss bench sam --keep third: a third of the sampled candidates pass only pred_iou_thresh \(threshold) <= 0, which the generator reads as no filter (--keep all)\n"
                                .utf8))
                    throw ExitCode.failure
                }
                (options.predIoUThresh, options.stabilityScoreThresh) = (threshold, 0)
            }
            let generator = try AutomaticMaskGenerator(predictor: predictor, options: options)
            let start = Date()
            let records = try generator.generate(image)
            var extra: [String: Any] = ["image": "\(w)x\(h)", "points_per_side": 32, "keep": keep, "masks": records.count]
            if keep == "third" { extra["pred_iou_thresh"] = options.predIoUThresh }
            emit("generator", Date().timeIntervalSince(start), nil, extra: extra)
        }

        /// The `pred_iou_thresh` about a third of the generator's candidates pass on the image set in
        /// `predictor`: the predicted IoUs of 64 points of the 32×32 grid, every 16th (spread over
        /// the image), three masks each; the value a third of those 192 exceed. Each side of a
        /// comparison reads its own, so random weights of either kind keep about a third.
        static func thirdThreshold(_ predictor: SAMPredictor, width: Int, height: Int) -> Double {
            let grid = AMG.buildPointGrid(32)
            let points = stride(from: 0, to: grid.count, by: grid.count / 64).map {
                (x: Float(grid[$0].x * Double(width)), y: Float(grid[$0].y * Double(height)))
            }
            // An infinite threshold computes the IoUs and no mask.
            let iou = predictor.predictLowResolution(
                points: points, labels: Array(repeating: 1, count: points.count), multimask: true, iouThreshold: .infinity)!
                .iou.scalars.sorted(by: >)
            return Double(iou[iou.count / 3])
        }

        /// Random weights of the usual scales (as the official modules initialise themselves): matrices
        /// and kernels normal with std 1/√fan-in, position tables 0.02, norm scales and running
        /// variances 1, biases, means and counters 0.
        static func randomize(_ model: SAM, using g: inout SeededGenerator) {
            for (name, tensor) in model.stateDict() {
                let fill: Tensor
                if name.hasSuffix("running_var") || (tensor.rank == 1 && name.hasSuffix("weight")) {
                    fill = Tensor(repeating: 1, shape: tensor.shape)
                } else if tensor.rank <= 1 {
                    fill = Tensor(zeros: tensor.shape)
                } else if name.contains("pos_embed") || name.contains("rel_pos") || name.contains("attention_biases") {
                    fill = Tensor.randomNormal(tensor.shape, standardDeviation: 0.02, using: &g)
                } else if name.contains("positional_encoding_gaussian_matrix") {
                    fill = Tensor.randomNormal(tensor.shape, using: &g)
                } else {
                    let fanIn = max(1, tensor.count / tensor.shape[0])
                    fill = Tensor.randomNormal(tensor.shape, standardDeviation: 1 / Float(fanIn).squareRoot(), using: &g)
                }
                tensor.assign(from: fill)
            }
        }

        func emit(_ part: String, _ median: Double, _ minimum: Double?, extra: [String: Any]) {
            var object: [String: Any] = [
                "name": "sam_\(config)_\(part)", "median_s": median, "peak_rss_mb": peakResidentMegabytes(),
                "precision": precision.resolved.rawValue, "bf16_hardware": Kernels.bf16Hardware,
                "threads": Runtime.threads, "blas_core": Runtime.blasCore, "blas_origin": BLASKernelChoice.origin,
            ]
            if let minimum { object["min_s"] = minimum }
            for (k, v) in extra { object[k] = v }
            printJSON(object)
        }
    }
}
