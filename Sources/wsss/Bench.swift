import ArgumentParser
import Autograd
import Datasets
import Foundation
import Imaging
import Training

extension ConvAlgorithm: ExpressibleByArgument {}

/// `wsss bench`: speed measurements, printed as JSON Lines on stdout.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure speed (JSON Lines on stdout; build with -c release).",
        subcommands: [
            Ops.self, Model.self, DataPipeline.self, Pseudo.self, SAMBench.self, DetectBench.self, CRF.self, COCOBench.self,
            Allreduce.self, RecipeCost.self,
        ])

    struct Ops: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "sgemm (the machine's BLAS ceiling), then conv2d forward/backward on DeepLab-v2 ResNet-101 shapes.",
            discussion: """
                Every line has name, median_s, min_s, gflops (from the median), sgemm_ratio (gflops ÷ the \
                sgemm line's), threads, blas_core and blas_origin (who chose the OpenBLAS kernel). Conv backward computes both the input and weight \
                gradients (twice the forward FLOPs).
                """)

        @OptionGroup var runtime: RuntimeOptions

        @Option(help: ArgumentHelp("Minimum seconds spent timing each measurement.", valueName: "s"))
        var seconds: Double = 1.0

        @Option(help: ArgumentHelp("Batch sizes for the conv shapes, comma-separated.", valueName: "list"))
        var batches: String = "1,2"

        @Option(help: "How conv2d is lowered to sgemm; shapes the choice does not apply to are skipped.")
        var algorithm: ConvAlgorithm = .automatic

        @Option(
            help: ArgumentHelp(
                "Product arithmetic (fp32, bf16, auto): bf16 adds an sbgemm line (our bf16 kernel, sgemm_ratio against fp32 sgemm) and times the convolutions in it.",
                valueName: "p"))
        var precision: ComputePrecision = .fp32

        func run() throws {
            try runtime.apply()
            let batchSizes = try batches.split(separator: ",").map { part -> Int in
                guard let b = Int(part), b > 0 else { throw ValidationError("--batches: '\(part)' is not a positive integer") }
                return b
            }
            let sgemm = OpBenchmarks.sgemm(size: 2048, seconds: seconds)
            emit(sgemm, ceiling: sgemm.gflops)
            let arithmetic = Kernels.productArithmetic(for: precision)
            try Kernels.withProducts(arithmetic) {
                if arithmetic != .fp32 {
                    var sbgemm = OpBenchmarks.sgemm(size: 2048, seconds: seconds)
                    sbgemm.name = "sbgemm"
                    sbgemm.details["arithmetic"] = arithmetic.name
                    emit(sbgemm, ceiling: sgemm.gflops)
                }
                for shape in ConvShape.deepLabV2 where algorithm.applies(to: shape.geometry) {
                    for batch in batchSizes {
                        for var result in OpBenchmarks.conv(shape, batch: batch, algorithm: algorithm, seconds: seconds) {
                            result.details["arithmetic"] = arithmetic.name
                            emit(result, ceiling: sgemm.gflops)
                        }
                    }
                }
            }
        }

        func emit(_ m: Measurement, ceiling: Double) {
            var object: [String: Any] = [
                "name": m.name, "median_s": m.median, "min_s": m.minimum, "gflops": m.gflops,
                "sgemm_ratio": (m.gflops / ceiling * 1000).rounded() / 1000, "reps": m.repetitions,
                "threads": Runtime.threads, "blas_core": Runtime.blasCore, "blas_origin": BLASKernelChoice.origin,
            ]
            for (k, v) in m.details { object[k] = v }
            let data = try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
            print(String(decoding: data, as: UTF8.self))
            fflush(stdout)
        }
    }
}

extension Bench {
    /// An image of smooth colour and noise (a horizontal ramp per channel plus uniform noise in
    /// 0..<32 drawn from `g`), as the official benches in scripts/bench_reference.py draw theirs.
    static func noiseImage(width w: Int, height h: Int, using g: inout SeededGenerator) -> Image {
        var pixels = [UInt8](repeating: 0, count: w * h * 3)
        for i in 0..<(w * h) {
            for c in 0..<3 { pixels[3 * i + c] = UInt8(truncatingIfNeeded: (i % w) / 4 + c * 40 + Int(g.next() % 32)) }
        }
        return Image(width: w, height: h, channels: 3, pixels: pixels)
    }
}

/// One timed measurement.
struct Measurement {
    var name: String
    var median: Double
    var minimum: Double
    var flops: Double
    var repetitions: Int
    var details: [String: Any] = [:]
    var gflops: Double { (flops / median / 1e9 * 10).rounded() / 10 }
}

/// A convolution of DeepLab-v2 ResNet-101 (input 321x321, output stride 8).
struct ConvShape {
    var name: String
    var inChannels, outChannels, size, kernel, stride, padding, dilation: Int

    var geometry: WindowGeometry {
        WindowGeometry(
            inHeight: size, inWidth: size, kernelHeight: kernel, kernelWidth: kernel, stride: (stride, stride),
            padding: (padding, padding), dilation: (dilation, dilation))
    }

    static let deepLabV2: [ConvShape] = [
        ConvShape(
            name: "conv_stem7x7_s2_3to64_321", inChannels: 3, outChannels: 64, size: 321, kernel: 7, stride: 2, padding: 3,
            dilation: 1),
        ConvShape(
            name: "conv_layer1_3x3_64_81", inChannels: 64, outChannels: 64, size: 81, kernel: 3, stride: 1, padding: 1,
            dilation: 1),
        ConvShape(
            name: "conv_layer2_3x3_128_41", inChannels: 128, outChannels: 128, size: 41, kernel: 3, stride: 1, padding: 1,
            dilation: 1),
        ConvShape(
            name: "conv_layer3_3x3_d2_256_41", inChannels: 256, outChannels: 256, size: 41, kernel: 3, stride: 1, padding: 2,
            dilation: 2),
        ConvShape(
            name: "conv_layer4_3x3_d4_512_41", inChannels: 512, outChannels: 512, size: 41, kernel: 3, stride: 1, padding: 4,
            dilation: 4),
        ConvShape(
            name: "conv_1x1_1024to256_41", inChannels: 1024, outChannels: 256, size: 41, kernel: 1, stride: 1, padding: 0,
            dilation: 1),
        ConvShape(
            name: "conv_aspp_3x3_d24_2048to21_41", inChannels: 2048, outChannels: 21, size: 41, kernel: 3, stride: 1, padding: 24,
            dilation: 24),
    ]
}

enum OpBenchmarks {
    /// Runs `body` once to warm up, then until `seconds` have passed (at least `repetitions`, at
    /// most 50 times). `body` returns its own measured seconds, or nil to be timed whole.
    static func time(seconds: Double, repetitions: Int = 3, _ body: () -> Double?) -> (
        median: Double, minimum: Double, count: Int
    ) {
        _ = body()
        var samples: [Double] = []
        let start = DispatchTime.now().uptimeNanoseconds
        while samples.count < repetitions
            || (samples.count < 50 && Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 < seconds)
        {
            let t0 = DispatchTime.now().uptimeNanoseconds
            let measured = body()
            samples.append(measured ?? Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
        }
        samples.sort()
        return (samples[samples.count / 2], samples[0], samples.count)
    }

    static func sgemm(size n: Int, seconds: Double) -> Measurement {
        var g = SeededGenerator(seed: 1)
        let a = Tensor.randomNormal([n, n], using: &g), b = Tensor.randomNormal([n, n], using: &g)
        let c = Tensor(zeros: [n, n])
        let t = time(seconds: seconds) {
            Kernels.gemm(m: n, n: n, k: n, a: a.storage.base, b: b.storage.base, c: c.storage.base)
            return nil
        }
        return Measurement(
            name: "sgemm", median: t.median, minimum: t.minimum, flops: 2 * pow(Double(n), 3),
            repetitions: t.count, details: ["m": n, "n": n, "k": n])
    }

    /// Forward (no tape) and backward (input and weight gradients; the forward that records the
    /// tape is not timed) of one conv shape.
    static func conv(_ s: ConvShape, batch: Int, algorithm: ConvAlgorithm, seconds: Double) -> [Measurement] {
        var g = SeededGenerator(seed: 2)
        let x = Tensor.randomNormal([batch, s.inChannels, s.size, s.size], using: &g)
        let w = Tensor.randomNormal([s.outChannels, s.inChannels, s.kernel, s.kernel], standardDeviation: 0.01, using: &g)
        let b = Tensor(zeros: [s.outChannels])
        let probe = withoutGrad {
            x.conv2d(weight: w, bias: b, stride: s.stride, padding: s.padding, dilation: s.dilation, algorithm: algorithm)
        }
        let (oh, ow) = (probe.shape[2], probe.shape[3])
        let flops = 2.0 * Double(batch * s.outChannels * oh * ow * s.inChannels * s.kernel * s.kernel)
        let resolved = algorithm.resolved(inChannels: s.inChannels, outChannels: s.outChannels, geometry: s.geometry)
        let details: [String: Any] = [
            "algorithm": resolved.rawValue, "batch": batch, "in_channels": s.inChannels, "out_channels": s.outChannels,
            "size": s.size, "kernel": s.kernel, "stride": s.stride, "dilation": s.dilation,
        ]
        let forward = time(seconds: seconds) {
            _ = withoutGrad {
                x.conv2d(weight: w, bias: b, stride: s.stride, padding: s.padding, dilation: s.dilation, algorithm: algorithm)
            }
            return nil
        }
        let dy = Tensor.randomNormal(probe.shape, using: &g)
        let (xl, wl, bl) = (x.requiringGrad(), w.requiringGrad(), b.requiringGrad())
        let backward = time(seconds: seconds) {
            let y = xl.conv2d(
                weight: wl, bias: bl, stride: s.stride, padding: s.padding, dilation: s.dilation, algorithm: algorithm)
            let t0 = DispatchTime.now().uptimeNanoseconds
            y.backward(gradient: dy)
            let elapsed = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            for p in [xl, wl, bl] { p.node?.zeroGrad() }
            return elapsed
        }
        let suffix = "_b\(batch)"
        return [
            Measurement(
                name: s.name + "_fwd" + suffix, median: forward.median, minimum: forward.minimum, flops: flops,
                repetitions: forward.count, details: details),
            Measurement(
                name: s.name + "_bwd" + suffix, median: backward.median, minimum: backward.minimum, flops: 2 * flops,
                repetitions: backward.count, details: details),
        ]
    }
}

extension Bench {
    /// `wsss bench data`: throughput of decoding + augmentation + batching.
    struct DataPipeline: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "data",
            abstract:
                "Images/s of the training data pipeline (JPEG/PNG decoding, random scale, crop, flip, batching) on background threads.",
            discussion: """
                Without --root, writes a temporary synthetic dataset of 500x500 JPEGs (a little larger than \
                VOC's typical 500x375). Prints one JSON line: images_per_s, seconds_per_batch (mean), batch, crop, threads.
                """)

        @OptionGroup var runtime: RuntimeOptions

        @Option(help: ArgumentHelp("Dataset root (VOC layout). (default: a temporary synthetic set)", valueName: "dir"))
        var root: String?

        @Option(help: ArgumentHelp("Split to read.", valueName: "name"))
        var split: String = "train"

        @Option(help: ArgumentHelp("Square crop in pixels.", valueName: "px"))
        var crop: Int = 321

        @Option(help: ArgumentHelp("Images per batch.", valueName: "n"))
        var batch: Int = 10

        @Option(help: ArgumentHelp("Batches to time (after one warm-up batch).", valueName: "n"))
        var batches: Int = 20

        /// A zero crop never fills a batch (the loader would spin), a zero batch divides by zero.
        func validate() throws {
            for (value, option) in [(crop, "--crop"), (batch, "--batch"), (batches, "--batches")] where value < 1 {
                throw ValidationError("\(option) must be at least 1, got \(value)")
            }
            try MemoryBudget.checkTrainingBatch(batch: batch, crop: crop)
        }

        func run() throws {
            try runtime.apply()
            var directory = root
            var temporary: String?
            if directory == nil {
                let path = NSTemporaryDirectory() + "wsss-bench-data-\(getpid())"
                var options = SyntheticDataset.Options()
                (options.train, options.val, options.test, options.size) = (max(batch * 4, 40), 0, 0, 500)
                try SyntheticDataset.write(to: path, options: options)
                (directory, temporary) = (path, path)
            }
            defer { if let temporary { try? FileManager.default.removeItem(atPath: temporary) } }
            let classes = try ClassNames.of(datasetRoot: directory!)
            let dataset = try VOCDataset(root: directory!, split: split, classes: classes, requireLabels: true)
            let loader = try BatchLoader(
                dataset: dataset, augmentation: Augmentation(cropSize: crop), batchSize: batch, seed: 1, prefetch: 2)
            _ = try loader.next()
            let start = DispatchTime.now().uptimeNanoseconds
            for _ in 0..<batches { _ = try loader.next() }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            loader.stop()
            let object: [String: Any] = [
                "name": "data_pipeline", "images_per_s": (Double(batches * batch) / seconds * 10).rounded() / 10,
                "seconds_per_batch": seconds / Double(batches), "batch": batch, "crop": crop, "threads": Runtime.threads,
                "images": dataset.samples.count, "dataset": root ?? "synthetic 500x500 JPEG",
            ]
            printJSON(object)
        }
    }
}
