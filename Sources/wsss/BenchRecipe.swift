import ArgumentParser
import Autograd
import Datasets
import DenseCRF
import Foundation
import Imaging
import Layers
import Pipeline
import PseudoLabels
import SegmentAnything
import Training

extension Bench {
    /// `wsss bench recipe`: what a recipe costs on this machine, stage by stage — a few timed
    /// units of each stage at the recipe's sizes (random weights and images), projected over the
    /// recipe's iterations and the dataset's images, on one machine and on N data-parallel ones.
    struct RecipeCost: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "recipe",
            abstract:
                "Project a recipe's time per stage on this machine: a few timed steps of each stage at the recipe's sizes, times its iterations and images (JSON Lines; a table on stderr).",
            discussion: """
                Stages (those the recipe runs): cam_train (one optimizer step at cam.batch and cam.crop), cam_infer \
                (one train image at cam.inference_scales with flips), sam (the automatic mask generator with the sam: \
                section on one image, or the image encoder for box prompts), pseudo (one image of every source's work: \
                Felzenszwalb segments, the SEPL merge of ~100 proposals, the dense CRF with crf.pseudo), train (one optimizer step: train.batch × train.accumulation at \
                train.crop, MSC as model.msc), train_val (the validation passes every train.eval_every: one val \
                image at one scale), eval (one image of each eval split at eval.scales/flip/msc; plus the \
                CRF when crf.eval). Each line: unit (iteration or image), units (the recipe's iterations or the \
                split's images), median_s per unit over --steps after one warm-up (the sam stage: --steps runs, no \
                warm-up), hours on this machine, and hours_by_ranks under mpirun -np N (`wsss pipeline \
                --distributed`): image stages split their images; training splits each step's images (the recipe's \
                micro-batches as they are, or train.batch × train.accumulation re-chosen by hand so each rank takes \
                ⌈images / N⌉, whichever is faster; the largest shard sets the pace) and adds one ring allreduce of the gradient per optimizer step, 2(N−1)/N × \
                gradient_mb over --link-gbps, not overlapped (an upper bound). Image counts: --train-images / \
                --eval-images, else the split files under data.root, else VOC 2012's and COCO 2014's published \
                sizes when data.root names them. Random weights: the SAM generator's survival (hence its NMS and \
                encoding work) differs from real weights'. Not timed: Grounding DINO (`wsss bench detect`), data \
                loading (overlapped with training on background threads; `wsss bench data`).
                """)

        @OptionGroup var recipeOptions: RecipeOptions
        @OptionGroup var runtime: RuntimeOptions
        @Option(help: ArgumentHelp("Timed units per stage after one warm-up.", valueName: "n")) var steps = 2
        @Option(
            help: ArgumentHelp(
                "Image size for the per-image stages. (default: the train split's first image, else 500x375 for VOC and 640x480 for COCO)",
                valueName: "WxH"))
        var image: String?
        @Option(help: ArgumentHelp("Images of the train split. (default: from data.root)", valueName: "n")) var trainImages: Int?
        @Option(help: ArgumentHelp("Images of the evaluated splits together. (default: from data.root)", valueName: "n"))
        var evalImages: Int?
        @Option(
            help: ArgumentHelp(
                "SAM configuration (vit_b, vit_h, mobile_sam, …). (default: pseudo.sam_config, else read off pseudo.sam_checkpoint's name)",
                valueName: "name"))
        var samConfig: String?
        @Option(help: ArgumentHelp("Rank counts to project, comma-separated.", valueName: "list")) var ranks = "1,2,4,8"
        @Option(help: ArgumentHelp("Network link between machines, for the allreduce.", valueName: "Gb/s")) var linkGbps = 10.0
        @Option(
            help: ArgumentHelp(
                "Stages to leave out, comma-separated (cam_train, cam_infer, sam, pseudo, train, train_val, eval). (default: none)",
                valueName: "list"))
        var skip = ""

        static let stageNames = ["cam_train", "cam_infer", "sam", "pseudo", "train", "train_val", "eval"]

        var rankCounts: [Int] { ranks.split(separator: ",").compactMap { Int($0) } }
        var skipped: Set<String> { Set(skip.split(separator: ",").map(String.init)) }

        func validate() throws {
            guard steps >= 1 else { throw ValidationError("--steps must be at least 1, got \(steps)") }
            let counts = ranks.split(separator: ",").map { Int($0) }
            guard !counts.isEmpty, counts.allSatisfy({ (1...100_000).contains($0 ?? 0) }), Set(counts).count == counts.count
            else {
                throw ValidationError(
                    "--ranks: distinct whole numbers from 1 to 100000 separated by commas, e.g. 1,2,4,8; got \(ranks)")
            }
            guard linkGbps > 0, linkGbps.isFinite else {
                throw ValidationError("--link-gbps must be a positive number, got \(linkGbps)")
            }
            for name in skipped where !Self.stageNames.contains(name) {
                throw ValidationError("--skip: '\(name)' is not one of \(Self.stageNames.joined(separator: ", "))")
            }
            if let image, Self.size(image) == nil {
                throw ValidationError("--image: WIDTHxHEIGHT, each 16…8192, e.g. 500x375; got \(image)")
            }
            for (name, value) in [("--train-images", trainImages), ("--eval-images", evalImages)] {
                if let value, value < 1 { throw ValidationError("\(name) must be at least 1, got \(value)") }
            }
        }

        static func size(_ text: String) -> (width: Int, height: Int)? {
            let parts = text.lowercased().split(separator: "x").compactMap { Int($0) }
            guard parts.count == 2, parts.allSatisfy({ (16...8192).contains($0) }) else { return nil }
            return (parts[0], parts[1])
        }

        func run() throws {
            let recipe = try recipeOptions.load()
            try runtime.apply(defaultThreads: recipe.run.threads)
            let inputs = try RecipeWork(
                recipe: recipe, image: image.flatMap(Self.size), trainImages: trainImages, evalImages: evalImages)
            let precision = recipe.run.precision.resolved
            Log.info(
                "bench recipe: \(recipeOptions.recipe), \(inputs.trainImages) train and \(inputs.evalImages) eval images of \(inputs.width)x\(inputs.height) (\(inputs.countsFrom)), precision \(precision.rawValue), \(Runtime.threads) threads, OpenBLAS \(Runtime.blasCore)"
            )
            let measured = try measure(recipe, inputs)
            let link = linkGbps / 8 * 1e9  // bytes per second
            var totals = [Double](repeating: 0, count: rankCounts.count)
            for stage in measured {
                let hours = rankCounts.map { stage.seconds(ranks: $0, linkBytesPerSecond: link).map { $0 / 3600 } }
                for (k, h) in hours.enumerated() { totals[k] += h ?? .nan }
                var object: [String: Any] = [
                    "name": "recipe_\(stage.name)", "stage": stage.name, "unit": stage.unit, "units": stage.units,
                    "median_s": stage.median, "min_s": stage.minimum, "reps": stage.repetitions,
                    "hours": stage.seconds(ranks: 1, linkBytesPerSecond: link)! / 3600,
                    "hours_by_ranks": Dictionary(
                        uniqueKeysWithValues: zip(rankCounts, hours).map { ("\($0)", $1 ?? NSNull()) as (String, Any) }),
                    "what": stage.what, "peak_rss_mb": stage.peakRSS, "precision": precision.rawValue,
                    "threads": Runtime.threads, "blas_core": Runtime.blasCore, "bf16_hardware": Kernels.bf16Hardware,
                ]
                if let g = stage.gradientBytes { object["gradient_mb"] = (g / 1e6 * 10).rounded() / 10 }
                printJSON(object)
            }
            let oneMachine = measured.reduce(0) { $0 + $1.seconds(ranks: 1, linkBytesPerSecond: link)! } / 3600
            printJSON([
                "name": "recipe_total", "recipe": recipeOptions.recipe, "hours": oneMachine,
                "hours_by_ranks": Dictionary(
                    uniqueKeysWithValues: zip(rankCounts, totals).map { ("\($0)", $1.isFinite ? $1 : NSNull()) as (String, Any) }),
                "link_gbps": linkGbps, "precision": precision.rawValue, "threads": Runtime.threads, "blas_core": Runtime.blasCore,
            ])
            FileHandle.standardError.write(Data(table(measured, totals: totals, link: link).utf8))
        }

        /// Every stage the recipe runs, each timed on `steps` units.
        func measure(_ recipe: Recipe, _ inputs: RecipeWork) throws -> [StageCost] {
            var measured: [StageCost] = []
            let pipeline = try Pipeline(recipe: recipe)
            func want(_ stage: String) -> Bool { !skipped.contains(stage) }
            if pipeline.needsCAM {
                if want("cam_train") { measured.append(try camTraining(recipe, inputs)) }
                if want("cam_infer") { measured.append(try camInference(recipe, inputs)) }
            }
            if want("sam"), let sam = try samStage(recipe, pipeline: pipeline, inputs) { measured.append(sam) }
            if want("pseudo"), let pseudo = try pseudoStage(recipe, pipeline: pipeline, inputs) { measured.append(pseudo) }
            if want("train") { measured.append(try segmenterTraining(recipe, inputs)) }
            if want("train_val"), let watching = validationWhileTraining(recipe, inputs) { measured.append(watching) }
            if want("eval") { measured.append(evaluation(recipe, inputs)) }

            return measured
        }

        /// The Markdown table on stderr: per stage, the measured unit and the projected hours.
        func table(_ stages: [StageCost], totals: [Double], link: Double) -> String {
            func hours(_ h: Double?) -> String {
                guard let h, h.isFinite else { return "—" }
                if h < 1 / 60 { return String(format: "%.0f s", h * 3600) }
                if h < 1 { return String(format: "%.0f min", h * 60) }
                return h < 48 ? String(format: "%.1f h", h) : String(format: "%.0f h (%.1f d)", h, h / 24)
            }
            var lines = [
                "| stage | what one unit is | s per unit | units | "
                    + rankCounts.map { $0 == 1 ? "1 machine" : "\($0) ranks" }.joined(separator: " | ") + " |",
                "|---|---|---|---|" + String(repeating: "---|", count: rankCounts.count),
            ]
            for s in stages {
                let cells = rankCounts.map { hours(s.seconds(ranks: $0, linkBytesPerSecond: link).map { $0 / 3600 }) }
                lines.append(
                    "| \(s.name) | \(s.what) | \(String(format: "%.3f", s.median)) | \(s.units) \(s.unit)s | "
                        + cells.joined(separator: " | ") + " |")
            }
            lines.append("| total | | | | " + totals.map { hours($0) }.joined(separator: " | ") + " |")
            return lines.joined(separator: "\n") + "\n"
        }

        /// Times `body` `steps` times after one warm-up (`warmUp`), with the process's peak RSS after.
        func time(warmUp: Bool = true, _ body: () throws -> Void) throws -> (
            median: Double, minimum: Double, count: Int, rss: Double
        ) {
            if warmUp { try body() }
            var samples: [Double] = []
            for _ in 0..<steps {
                let start = DispatchTime.now().uptimeNanoseconds
                try body()
                samples.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
            }
            samples.sort()
            // The median; of an even count, the mean of the middle two.
            let middle = samples.count / 2
            let median = samples.count % 2 == 1 ? samples[middle] : (samples[middle - 1] + samples[middle]) / 2
            return (median, samples[0], samples.count, peakResidentMegabytes())
        }

        func camTraining(_ recipe: Recipe, _ inputs: RecipeWork) throws -> StageCost {
            let options = recipe.camOptions
            try MemoryBudget.checkTrainingBatch(batch: options.batchSize, crop: options.cropSize)
            let model = CAMNetwork(
                classes: inputs.classes - 1, backbone: options.backbone, frozenStages: options.frozenStages, seed: 1)
            model.train()
            let optimizer = CAMTraining.optimizer(for: model, options: options)
            var g = SeededGenerator(seed: 3)
            let images = Tensor.randomNormal([options.batchSize, 3, options.cropSize, options.cropSize], using: &g)
            let targets = Tensor(
                shape: [options.batchSize, inputs.classes - 1],
                values: (0..<(options.batchSize * (inputs.classes - 1))).map { _ in g.next() % 8 == 0 ? 1 : 0 })
            // As `CAMTraining.train` runs its steps: freed activations reused by the next one.
            let t = try MemoryBudget.reusingStepBuffers {
                try time {
                    _ = try Kernels.withProducts(in: options.precision) {
                        try CAMTraining.step(
                            model: model, optimizer: optimizer, images: images, targets: targets, share: 1, reducer: nil,
                            stop: { false })
                    }
                }
            }
            return StageCost(
                name: "cam_train", unit: "iteration", units: options.iterations, timing: t,
                what:
                    "\(options.batchSize) crops of \(options.cropSize)², ResNet-50\(options.widthDivisor > 1 ? " w/\(options.widthDivisor)" : "")",
                batch: options.batchSize, accumulation: 1, gradientBytes: gradientBytes(model.trainableParameters.map(\.tensor)))
        }

        func camInference(_ recipe: Recipe, _ inputs: RecipeWork) throws -> StageCost {
            let options = recipe.camOptions
            let model = CAMNetwork(
                classes: inputs.classes - 1, backbone: options.backbone, frozenStages: options.frozenStages, seed: 1)
            model.train(false)
            let image = inputs.randomImage(seed: 4)
            // VOC's train images hold 1.5 classes on average: two present classes.
            let classes: Set<Int> = [1, min(2, inputs.classes - 1)]
            let t = try time {
                _ = Kernels.withProducts(in: options.precision) {
                    CAMTraining.cams(
                        model: model, image: image, classes: classes, scales: options.inferenceScales,
                        inference: options.inference)
                }
            }
            return StageCost(
                name: "cam_infer", unit: "image", units: inputs.trainImages, timing: t,
                what: "scales \(options.inferenceScales.map { String($0) }.joined(separator: ", ")) + flips, 2 classes")
        }

        /// The SAM stage of a SEPL source with `proposals: sam` (the automatic generator) or of the
        /// boxes source (one encoder pass per image; its few box prompts decode in milliseconds).
        func samStage(_ recipe: Recipe, pipeline: Pipeline, _ inputs: RecipeWork) throws -> StageCost? {
            // As the pipeline decides (PipelineRun+Pseudo.swift): SEPL's proposals are SAM's
            // generator with `proposals: sam`; boxes prompt SAM with a checkpoint and no other proposals.
            let sources = pipeline.sources
            let spec = try recipe.pseudo.proposals.map { try ProposalSpec($0, relativeTo: recipe.data.root) }
            let generator = sources.contains(.sepl) && spec == .sam
            let boxes =
                sources.contains(.boxes)
                && ProposalSpec.boxesPromptSAM(proposals: spec, samCheckpoint: recipe.pseudo.samCheckpoint)
            guard generator || boxes else { return nil }
            let name = try samConfigurationName(recipe)
            let configuration = try SAMConfiguration.resolve(name)
            let model = SAM(configuration: configuration)
            var g = SeededGenerator(seed: 5)
            SAMBench.randomize(model, using: &g)
            model.precision = recipe.sam.precision
            let image = inputs.randomImage(seed: 6)
            let predictor = SAMPredictor(model: model)
            let options = recipe.samGeneratorOptions
            let t = try time(warmUp: false) {
                if generator {
                    _ = try AutomaticMaskGenerator(predictor: predictor, options: options).generate(image)
                } else {
                    try predictor.setImage(image)
                }
            }
            let what =
                generator
                ? "\(name) generator, \(options.pointsPerSide.map { "\($0)²" } ?? "grid") points, random weights"
                : "\(name) image encoder (box prompts)"
            return StageCost(name: "sam", unit: "image", units: inputs.trainImages, timing: t, what: what)
        }

        /// `pseudo.sam_config`, else the configuration a checkpoint's file name names (the
        /// official names: sam_vit_h_4b8939.pth, sam_hq_vit_l.pth, mobile_sam.pt, …).
        func samConfigurationName(_ recipe: Recipe) throws -> String {
            if let samConfig { return samConfig }
            if let named = recipe.pseudo.samConfig { return named }
            let file = ((recipe.pseudo.samCheckpoint ?? "") as NSString).lastPathComponent.lowercased()
            let hq = file.contains("hq")
            for size in ["vit_h", "vit_l", "vit_b"] where file.contains(size) { return hq ? "\(size)_hq" : size }
            if file.contains("vit_tiny") && hq { return "vit_tiny_hq" }
            if file.contains("mobile_sam") || file.contains("vit_t") { return "mobile_sam" }
            throw ValidationError(
                "bench recipe: cannot tell the SAM configuration from pseudo.sam_checkpoint '\(recipe.pseudo.samCheckpoint ?? "")'; give --sam-config"
            )
        }

        /// Every source's per-image work, as the pipeline makes them all (`pseudo.source` and
        /// `pseudo.compare`): Felzenszwalb's segments where they are the proposals, the SEPL merge
        /// of ~100 proposals for each SEPL source, and the dense CRF over every source but gt with
        /// crf.pseudo. Thresholding CAMs and drawing boxes are negligible; nil when nothing is left.
        func pseudoStage(_ recipe: Recipe, pipeline: Pipeline, _ inputs: RecipeWork) throws -> StageCost? {
            let spec = try recipe.pseudo.proposals.map { try ProposalSpec($0, relativeTo: recipe.data.root) }
            var merges = 0
            var segmentations = 0
            var refinements = 0
            for source in pipeline.sources {
                if source == .sepl || source == .seplFelzenszwalb { merges += 1 }
                if source == .seplFelzenszwalb || (source == .sepl && spec == .felzenszwalb) { segmentations += 1 }
                if recipe.crf.pseudo && source != .gt { refinements += 1 }
            }
            guard merges + segmentations + refinements > 0 else { return nil }
            let (w, h) = (inputs.width, inputs.height)
            var g = SeededGenerator(seed: 7)
            let (seeds, masks) = Bench.Pseudo.syntheticInputs(width: w, height: h, proposals: 100, using: &g)
            let felzenszwalb = FelzenszwalbProposals(options: recipe.pseudo.felzenszwalbOptions)
            let image = inputs.randomImage(seed: 7)
            let crf = DenseCRF(parameters: recipe.crfParameters)
            let crfInput = Bench.CRF.input(width: w, height: h, classes: inputs.classes, seed: 8)
            let t = try time {
                for _ in 0..<segmentations { _ = try felzenszwalb.proposals(for: "bench", image: image) }
                for _ in 0..<merges { _ = SEPLMerge().merge(seeds: seeds, proposals: masks) }
                for _ in 0..<refinements { _ = try crf.infer(batch: [crfInput]) }
            }
            func times(_ n: Int, _ what: String) -> [String] { n == 0 ? [] : [n == 1 ? what : "\(n) × \(what)"] }
            let parts =
                times(segmentations, "Felzenszwalb segments") + times(merges, "SEPL merge of 100 proposals")
                + times(refinements, "dense CRF")
            return StageCost(
                name: "pseudo", unit: "image", units: inputs.trainImages, timing: t, what: parts.joined(separator: " + "))
        }

        func segmenterTraining(_ recipe: Recipe, _ inputs: RecipeWork) throws -> StageCost {
            let options = recipe.segmentationOptions
            try MemoryBudget.checkTrainingBatch(batch: options.batchSize, crop: options.cropSize)
            let model = options.makeModel(classes: inputs.classes)
            model.train()
            let sgd = SegmentationTraining.makeOptimizer(for: model, options: options)
            var g = SeededGenerator(seed: 9)
            let (b, side) = (options.batchSize, options.cropSize)
            let x = Tensor.randomNormal([b, 3, side, side], using: &g)
            let labels = LabelTensor(
                shape: [b, side, side], values: (0..<(b * side * side)).map { _ in Int32(g.next() % UInt64(inputs.classes)) })
            // As `SegmentationTraining.train` runs its steps: freed activations reused by the next one.
            let t = try MemoryBudget.reusingStepBuffers {
                try time {
                    _ = Kernels.withProducts(in: options.precision) {
                        SegmentationTraining.step(
                            model: model, optimizer: sgd, accumulation: GradientAccumulation(steps: options.accumulation),
                            msc: options.msc
                        ) { Batch(images: x, labels: labels, ids: []) }
                    }
                }
            }
            let trainable = model.trainableParameters.map(\.tensor)
            return StageCost(
                name: "train", unit: "iteration", units: options.iterations, timing: t,
                what:
                    "\(b)\(options.accumulation > 1 ? " × \(options.accumulation)" : "") crops of \(side)², R\(options.depth.rawValue)\(options.widthDivisor > 1 ? " w/\(options.widthDivisor)" : "")\(options.msc ? ", MSC" : "")",
                batch: b * options.accumulation, accumulation: options.accumulation, gradientBytes: gradientBytes(trainable))
        }

        /// The validation passes `wsss train` makes every train.eval_every iterations and at the end
        /// (one scale, no flip, MSC as the model trains).
        func validationWhileTraining(_ recipe: Recipe, _ inputs: RecipeWork) -> StageCost? {
            let options = recipe.segmentationOptions
            guard options.evalEvery > 0, let images = inputs.valImages else { return nil }
            let passes = (options.iterations + options.evalEvery - 1) / options.evalEvery
            var cost = evaluation(recipe, inputs, scales: [1], flip: false, msc: options.msc, crf: false)
            cost.name = "train_val"
            cost.units = passes * images
            cost.what = "\(passes) passes over \(recipe.data.valSplit) (train.eval_every), \(cost.what)"
            return cost
        }

        func evaluation(_ recipe: Recipe, _ inputs: RecipeWork) -> StageCost {
            evaluation(
                recipe, inputs, scales: recipe.eval.scales, flip: recipe.eval.flip, msc: recipe.evaluatesMSC,
                crf: recipe.crf.eval)
        }

        func evaluation(_ recipe: Recipe, _ inputs: RecipeWork, scales: [Double], flip: Bool, msc: Bool, crf refines: Bool)
            -> StageCost
        {
            let options = recipe.segmentationOptions
            let model = options.makeModel(classes: inputs.classes)
            model.train(false)
            let image = inputs.randomImage(seed: 10)
            let crf = DenseCRF(parameters: recipe.crfParameters)
            let t = try! time {
                let result = SegmentationTraining.predict(
                    model: model, image: image, preprocessing: options.preprocessing, scales: scales, flip: flip, msc: msc,
                    precision: options.precision)
                if refines {
                    _ = try? crf.infer(
                        batch: [
                            .init(
                                image: image, probabilities: result.scores.scalars, classes: inputs.classes, source: "bench")
                        ])
                }
            }
            let what =
                "scales \(scales.map { String($0) }.joined(separator: ", "))\(flip ? " + flips" : "")\(msc ? ", MSC" : "")\(refines ? " + dense CRF" : "")"
            return StageCost(name: "eval", unit: "image", units: inputs.evalImages, timing: t, what: what)
        }

        func gradientBytes(_ parameters: [Tensor]) -> Double { Double(parameters.reduce(0) { $0 + $1.count } * 4) }
    }
}

/// One stage's measured unit and how it projects.
struct StageCost {
    var name: String
    /// "iteration" (an optimizer step) or "image".
    var unit: String
    var units: Int
    var median: Double
    var minimum: Double
    var repetitions: Int
    var peakRSS: Double
    var what: String
    /// Training: images per optimizer step and micro-batches per step; nil for image stages.
    var batch: Int?
    var accumulation = 1
    var gradientBytes: Double?

    init(
        name: String, unit: String, units: Int, timing: (median: Double, minimum: Double, count: Int, rss: Double),
        what: String, batch: Int? = nil, accumulation: Int = 1, gradientBytes: Double? = nil
    ) {
        (self.name, self.unit, self.units, self.what) = (name, unit, units, what)
        (median, minimum, repetitions, peakRSS) = (timing.median, timing.minimum, timing.count, timing.rss)
        (self.batch, self.accumulation, self.gradientBytes) = (batch, accumulation, gradientBytes)
    }

    /// The stage's seconds on `ranks` machines like this one: images split evenly; a training
    /// step's images (batch × accumulation) split across the ranks — the recipe's micro-batches
    /// split as they are (the largest shard sets the pace), or, when that is slower or N exceeds the
    /// micro-batch, train.batch and train.accumulation re-chosen so each rank takes ⌈images / N⌉
    /// (by hand: `--set train.batch=10 --set train.accumulation=1` for 2, 5 or 10 ranks) — plus
    /// one ring allreduce of the gradient per step. nil when the ranks outnumber a step's images.
    func seconds(ranks n: Int, linkBytesPerSecond link: Double) -> Double? {
        guard let batch else { return Double((units + n - 1) / n) * median }
        guard n <= batch else { return nil }
        let micro = batch / accumulation
        // Per rank and step: the better of the recipe's micro-batches split and an even re-split.
        let even = (batch + n - 1) / n
        let share = n <= micro ? min((micro + n - 1) / n * accumulation, even) : even
        let allreduce = n == 1 ? 0 : 2 * Double(n - 1) / Double(n) * (gradientBytes ?? 0) / link
        return Double(units) * (median / Double(batch) * Double(share) + allreduce)
    }
}

/// What a recipe's stages run over: the classes, the image size and the image counts.
struct RecipeWork {
    var classes: Int
    var width: Int
    var height: Int
    var trainImages: Int
    var evalImages: Int
    /// The validation split's images (train.eval_every), when known.
    var valImages: Int?
    /// Where the counts came from, for the log.
    var countsFrom: String

    /// Published sizes of the datasets the recipes name (data.root's last component, split).
    static let published: [String: [String: Int]] = [
        "voc2012": ["train_aug": 10582, "train": 1464, "val": 1449],
        "coco2014": ["train": 82081, "val": 40504],
    ]

    init(recipe: Recipe, image: (width: Int, height: Int)?, trainImages: Int?, evalImages: Int?) throws {
        let root = ((recipe.data.root ?? "") as NSString).lastPathComponent.lowercased()
        let coco = root.contains("coco")
        let train = try? recipe.dataset(split: recipe.data.trainSplit)
        classes = train?.classes.count ?? (coco ? 81 : 21)
        let first = try? train?.samples.first.map { try Image.readRGB(from: $0.imagePath) }
        (width, height) = image ?? first.map { ($0.width, $0.height) } ?? (coco ? (640, 480) : (500, 375))
        var from: [String] = []
        func count(_ split: String, given: Int?, option: String) throws -> Int {
            if let given { return given }
            func noting(_ n: Int, _ source: String) -> Int {
                if !from.contains(where: { $0.hasPrefix("\(split):") }) { from.append("\(split): \(source)") }
                return n
            }
            if let samples = try? recipe.dataset(split: split).samples.count { return noting(samples, "split file") }
            if let n = Self.published[root]?[split] { return noting(n, "published size") }
            throw ValidationError(
                "bench recipe: no split '\(split)' under data.root '\(recipe.data.root ?? "")' and no published size for it; give \(option)"
            )
        }
        self.trainImages = try count(recipe.data.trainSplit, given: trainImages, option: "--train-images")
        self.evalImages =
            try evalImages
            ?? recipe.eval.splits.reduce(0) { $0 + (try count($1, given: nil, option: "--eval-images")) }
        valImages = try? count(recipe.data.valSplit, given: nil, option: "")
        if valImages == nil && recipe.train.evalEvery > 0 {
            Log.info(
                "bench recipe: no size for the validation split '\(recipe.data.valSplit)': the passes every train.eval_every are left out"
            )
        }
        countsFrom = from.isEmpty ? "counts given" : from.joined(separator: ", ")
    }

    /// A seeded image of smooth colour and noise at the stage size.
    func randomImage(seed: UInt64) -> Image {
        var g = SeededGenerator(seed: seed)
        return Bench.noiseImage(width: width, height: height, using: &g)
    }
}
