import ArgumentParser
import Autograd
import Foundation
import GroundingDINO
import Imaging

extension Bench {
    /// `wsss bench detect`: Grounding DINO on random weights at the official input size.
    struct DetectBench: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "detect",
            abstract: "Time Grounding DINO on random weights: an 800x1333 input and the 20 VOC class names (JSON Lines).",
            discussion: """
                One line, detect_<config>: median_s of the model's forward pass over --repeats after one warm-up, min_s, and \
                peak_rss_mb of the process (weights included). The image is 600x1000 of smooth colour and noise, which the \
                official transform resizes to 800x1333. Compare with `scripts/bench_reference.py --detect <config>` in the same \
                session (scripts/bench_compare interleaves them).
                """)

        @OptionGroup var runtime: RuntimeOptions
        @Option(help: ArgumentHelp("swin_t or swin_b.", valueName: "name")) var config = "swin_t"
        @Option(help: ArgumentHelp("Timed repetitions after one warm-up.", valueName: "n")) var repeats = 3

        func validate() throws {
            guard ["swin_t", "swin_b"].contains(config) else { throw ValidationError("--config: swin_t or swin_b") }
            guard repeats >= 1 else { throw ValidationError("--repeats must be at least 1") }
        }

        func run() throws {
            try runtime.apply()
            let model = GroundingDINO(config == "swin_t" ? .swinT : .swinB)
            // Seeded small weights: uninitialised memory could hold NaNs, which time differently.
            var g = SeededGenerator(seed: 11)
            for (_, p) in model.stateDict() { p.assign(from: Tensor.randomNormal(p.shape, standardDeviation: 0.02, using: &g)) }
            let (w, h) = (1000, 600)
            let input = GroundingDINOTransform.input(Bench.noiseImage(width: w, height: h, using: &g))
            let vocabulary = (0..<model.configuration.bert.vocabularySize).map { "tok\($0)" }
            var tokens = vocabulary
            for (k, special) in BertTokenizer.specialTokens.enumerated() { tokens[100 + k] = special }
            tokens[1012] = "."
            let names = [
                "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "dining", "table", "dog",
                "horse", "motorbike", "person", "potted", "plant", "sheep", "sofa", "train", "tv", "monitor",
            ]
            for (k, name) in names.enumerated() { tokens[2000 + k] = name }
            let tokenizer = try BertTokenizer(tokens: tokens)
            let caption = TokenizedPrompt.normalizedCaption(
                "aeroplane . bicycle . bird . boat . bottle . bus . car . cat . chair . cow . dining table . dog . horse . motorbike . person . potted plant . sheep . sofa . train . tv monitor"
            )
            let prompt = TokenizedPrompt(caption: caption, tokenizer: tokenizer)
            let timing = OpBenchmarks.time(seconds: 0, repetitions: repeats) {
                _ = TensorStorage.reusingLargeBuffers(limit: GroundingDetector.bufferReuse) {
                    withoutGrad { model(image: input, prompt: prompt) }
                }
                return nil
            }
            printJSON([
                "name": "detect_\(config)", "median_s": timing.median, "min_s": timing.minimum, "reps": timing.count,
                "input": "\(input.shape[3])x\(input.shape[2])", "tokens": prompt.ids.count,
                "peak_rss_mb": peakResidentMegabytes(),
                "threads": Runtime.threads, "blas_core": Runtime.blasCore, "blas_origin": BLASKernelChoice.origin,
            ])
        }
    }
}
