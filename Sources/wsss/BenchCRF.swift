import ArgumentParser
import Autograd
import DenseCRF
import Dispatch
import Foundation
import Imaging

extension Bench {
    /// `wsss bench crf`: the dense CRF on VOC-size images.
    struct CRF: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "crf",
            abstract: "Time the dense CRF on VOC-size images (500x375, 21 classes, deeplab-pytorch's settings; one JSON line).",
            discussion: """
                Each timed batch runs --images images through DenseCRF.infer(batch:), in parallel over --threads (one image \
                per core); median_s is the batch's median time divided by --images (seconds per image, including the \
                lattices' construction), images_per_s the throughput. Inputs are seeded: flat-coloured rectangles with noise, \
                and softmax probabilities of smooth random logits. Compare with scripts/bench_reference.py --crf (pydensecrf).
                """)

        @OptionGroup var runtime: RuntimeOptions
        @Option(help: ArgumentHelp("Images per timed batch. (default: 4)", valueName: "n")) var images = 4
        @Option(help: ArgumentHelp("Mean-field iterations. (default: 10)", valueName: "n")) var iterations = 10
        @Option(help: ArgumentHelp("Minimum seconds spent timing. (default: 5)", valueName: "s")) var seconds: Double = 5

        func validate() throws {
            guard images >= 1 else { throw ValidationError("--images must be at least 1, got \(images)") }
        }

        /// A seeded 500x375 RGB image of rectangles and its [21, H, W] smooth probabilities.
        static func input(width w: Int, height h: Int, classes: Int, seed: UInt64) -> DenseCRF.Input {
            var g = SeededGenerator(seed: seed)
            var pixels = [UInt8](repeating: 128, count: w * h * 3)
            for _ in 0..<12 {
                let x0 = Int(g.nextUniform() * Float(w)), y0 = Int(g.nextUniform() * Float(h))
                let x1 = min(w, x0 + 20 + Int(g.nextUniform() * 200)), y1 = min(h, y0 + 20 + Int(g.nextUniform() * 150))
                let colour = (0..<3).map { _ in UInt8(g.nextUniform() * 255) }
                for y in y0..<y1 { for x in x0..<x1 { for k in 0..<3 { pixels[3 * (y * w + x) + k] = colour[k] } } }
            }
            for i in 0..<pixels.count { pixels[i] = UInt8(clamping: Int(pixels[i]) + Int(g.nextUniform() * 9) - 4) }
            // Logits bilinear from a coarse 26x20 grid (smooth at ~20 px), then a softmax.
            let (gw, gh) = (26, 20)
            let grid = (0..<(classes * gw * gh)).map { _ in (g.nextUniform() - 0.5) * 12 }
            var p = [Float](repeating: 0, count: classes * w * h)
            let n = w * h
            for y in 0..<h {
                let fy = Float(y) / Float(h - 1) * Float(gh - 1)
                let y0 = min(Int(fy), gh - 2), ty = fy - Float(y0)
                for x in 0..<w {
                    let fx = Float(x) / Float(w - 1) * Float(gw - 1)
                    let x0 = min(Int(fx), gw - 2), tx = fx - Float(x0)
                    var top: Float = -.infinity
                    for c in 0..<classes {
                        let b = c * gw * gh
                        let v =
                            (1 - ty) * ((1 - tx) * grid[b + y0 * gw + x0] + tx * grid[b + y0 * gw + x0 + 1])
                            + ty * ((1 - tx) * grid[b + (y0 + 1) * gw + x0] + tx * grid[b + (y0 + 1) * gw + x0 + 1])
                        p[c * n + y * w + x] = v
                        top = max(top, v)
                    }
                    var sum: Float = 0
                    for c in 0..<classes {
                        let e = expf(p[c * n + y * w + x] - top)
                        p[c * n + y * w + x] = e
                        sum += e
                    }
                    for c in 0..<classes { p[c * n + y * w + x] /= sum }
                }
            }
            return .init(
                image: Image(width: w, height: h, channels: 3, pixels: pixels), probabilities: p, classes: classes,
                source: "bench \(seed)")
        }

        func run() throws {
            try runtime.apply()
            let (w, h, classes) = (500, 375, 21)
            let inputs = (0..<images).map { Self.input(width: w, height: h, classes: classes, seed: UInt64($0)) }
            let crf = DenseCRF(parameters: .init(iterations: iterations))
            var failure: Error?
            let timing = OpBenchmarks.time(seconds: seconds) {
                do { _ = try crf.infer(batch: inputs) } catch { failure = error }
                return nil
            }
            if let failure { throw failure }
            printJSON([
                "name": "dense_crf", "median_s": timing.median / Double(images), "min_s": timing.minimum / Double(images),
                "images_per_s": Double(images) / timing.median, "batch_images": images, "reps": timing.count,
                "size": "\(w)x\(h)", "classes": classes, "iterations": iterations, "threads": Runtime.threads,
            ])
        }
    }
}
