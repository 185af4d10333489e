import ArgumentParser
import Foundation
import Testing
import Training

@testable import wsss

/// `wsss bench recipe`: the stages a recipe runs, the counts they are projected over, and the
/// projection's arithmetic (one machine and N data-parallel ranks).
@Suite struct BenchRecipeTests {
    func work(batch: Int? = nil, accumulation: Int = 1, units: Int, median: Double, gradientBytes: Double? = nil)
        -> StageCost
    {
        StageCost(
            name: "s", unit: batch == nil ? "image" : "iteration", units: units, timing: (median, median, 1, 0), what: "",
            batch: batch, accumulation: accumulation, gradientBytes: gradientBytes)
    }

    @Test func projectionSplitsImagesAndStepsAndAddsTheAllreduce() throws {
        let images = work(units: 1449, median: 2)
        #expect(images.seconds(ranks: 1, linkBytesPerSecond: 1e9) == 2898)
        #expect(images.seconds(ranks: 2, linkBytesPerSecond: 1e9) == Double(725 * 2), "the larger half sets the pace")

        // 5 images × accumulation 2 per step, 10 s a step: 1 s per image.
        let training = work(batch: 10, accumulation: 2, units: 100, median: 10, gradientBytes: 1e8)
        #expect(training.seconds(ranks: 1, linkBytesPerSecond: 1e9) == 1000)
        // 2 ranks: the micro-batches of 5 split 3 + 2 would take 6 images a step; re-split, 5 each;
        // one allreduce of 2·(1/2)·1e8 B at 1 GB/s.
        let two = try #require(training.seconds(ranks: 2, linkBytesPerSecond: 1e9))
        #expect(abs(two - 100 * (5 + 0.1)) < 1e-9)
        // 4 micro-batches of 4 on 2 ranks split evenly as they are: 8 images each.
        let even = work(batch: 16, accumulation: 4, units: 10, median: 16, gradientBytes: 0)
        #expect(even.seconds(ranks: 2, linkBytesPerSecond: 1e9) == 80)
        // 3 ranks: micro-batches of 4 split 2 + 1 + 1, twice as long as needed against 6 + 5 + 5.
        let uneven = try #require(even.seconds(ranks: 3, linkBytesPerSecond: 1e9))
        #expect(abs(uneven - 10 * 6) < 1e-9, "re-split: ⌈16/3⌉ = 6 images")
        let five = try #require(training.seconds(ranks: 5, linkBytesPerSecond: 1e9))
        #expect(abs(five - 100 * (2 + 2 * 0.8 * 0.1)) < 1e-9)
        // Past the micro-batch the step's 10 images are re-split: 8 ranks take 2 each, 10 ranks 1.
        let eight = try #require(training.seconds(ranks: 8, linkBytesPerSecond: 1e9))
        #expect(abs(eight - 100 * (2 + 2 * 0.875 * 0.1)) < 1e-9)
        let ten = try #require(training.seconds(ranks: 10, linkBytesPerSecond: 1e9))
        #expect(abs(ten - 100 * (1 + 2 * 0.9 * 0.1)) < 1e-9)
        #expect(training.seconds(ranks: 11, linkBytesPerSecond: 1e9) == nil, "11 ranks for a step of 10 images")
    }

    @Test func samConfigurationIsReadOffTheOfficialFileNames() throws {
        let command = try Bench.RecipeCost.parse(["--recipe", "r.yaml"])
        for (file, name) in [
            ("checkpoints/sam_vit_h_4b8939.pth", "vit_h"), ("sam_vit_b_01ec64.pth", "vit_b"), ("sam_hq_vit_l.pth", "vit_l_hq"),
            ("sam_hq_vit_tiny.pth", "vit_tiny_hq"), ("weights/mobile_sam.pt", "mobile_sam"),
        ] {
            let recipe = try Recipe(text: "pseudo: {sam_checkpoint: \(file)}", path: "r.yaml")
            #expect(try command.samConfigurationName(recipe) == name, "\(file)")
        }
        let unknown = try Recipe(text: "pseudo: {sam_checkpoint: my_weights.pth}", path: "r.yaml")
        #expect(throws: ValidationError.self) { try command.samConfigurationName(unknown) }
        let given = try Bench.RecipeCost.parse(["--recipe", "r.yaml", "--sam-config", "vit_b"])
        #expect(try given.samConfigurationName(unknown) == "vit_b")
    }

    @Test func countsComeFromSplitFilesThenPublishedSizesElseAnError() throws {
        let voc = try Recipe(text: "data: {root: /nonexistent/VOC2012, train_split: train_aug}\neval: {splits: [val]}", path: "r")
        let work = try RecipeWork(recipe: voc, image: nil, trainImages: nil, evalImages: nil)
        #expect((work.trainImages, work.evalImages, work.valImages, work.classes) == (10582, 1449, 1449, 21))
        #expect((work.width, work.height) == (500, 375))
        let coco = try Recipe(text: "data: {root: data/COCO2014}\neval: {splits: [val]}", path: "r")
        let cocoWork = try RecipeWork(recipe: coco, image: (320, 240), trainImages: nil, evalImages: nil)
        #expect((cocoWork.trainImages, cocoWork.evalImages, cocoWork.classes) == (82081, 40504, 81))
        #expect((cocoWork.width, cocoWork.height) == (320, 240))
        let elsewhere = try Recipe(text: "data: {root: /nonexistent/mine}", path: "r")
        #expect(throws: ValidationError.self) { try RecipeWork(recipe: elsewhere, image: nil, trainImages: nil, evalImages: nil) }
        let given = try RecipeWork(recipe: elsewhere, image: nil, trainImages: 7, evalImages: 3)
        #expect((given.trainImages, given.evalImages) == (7, 3))
    }

    /// Every stage of a SEPL recipe on a tiny synthetic set, timed once: the stages, their units
    /// (the recipe's iterations, the split files' images) and the training step's gradient size.
    @Test func measuresEveryStageOfARecipeOnItsOwnSizes() throws {
        let root = NSTemporaryDirectory() + "wsss-bench-recipe-\(UUID().uuidString)"
        try Synth.parse(["--out", root, "--train", "4", "--val", "3", "--test", "2", "--size", "40", "--seed", "2"]).run()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try """
        data: {root: \(root)}
        run: {dir: \(root)/run}
        cam: {iterations: 30, batch: 2, crop: 32, width_divisor: 16, frozen_bn: false, inference_scales: [1.0, 0.5]}
        pseudo: {source: sepl, proposals: felzenszwalb}
        model: {depth: 18, width_divisor: 16, frozen_bn: false, msc: false}
        train: {iterations: 20, batch: 2, accumulation: 2, crop: 33, eval_every: 8}
        eval: {splits: [val, test]}
        """.write(toFile: root + "/recipe.yaml", atomically: true, encoding: .utf8)
        let command = try Bench.RecipeCost.parse(["--recipe", root + "/recipe.yaml", "--steps", "1"])
        let recipe = try command.recipeOptions.load()
        let inputs = try RecipeWork(recipe: recipe, image: nil, trainImages: nil, evalImages: nil)
        #expect((inputs.trainImages, inputs.evalImages, inputs.valImages, inputs.width) == (4, 5, 3, 40))
        let stages = try command.measure(recipe, inputs)
        #expect(stages.map(\.name) == ["cam_train", "cam_infer", "pseudo", "train", "train_val", "eval"])
        #expect(stages.first { $0.name == "pseudo" }?.what == "Felzenszwalb segments + SEPL merge of 100 proposals")
        let byName = Dictionary(uniqueKeysWithValues: stages.map { ($0.name, $0) })
        #expect(byName["cam_train"]?.units == 30)
        #expect(byName["cam_infer"]?.units == 4)
        #expect(byName["train"]?.units == 20)
        #expect(byName["train"]?.batch == 4)
        #expect(byName["train_val"]?.units == 3 * 3, "evaluations at 8, 16 and the end")
        #expect(byName["eval"]?.units == 5)
        #expect(stages.allSatisfy { $0.median > 0 && $0.repetitions == 1 })
        // DeepLab-v2 R18 at 1/16 width with the batch norm training: every parameter has a gradient.
        let gradient = try #require(byName["train"]?.gradientBytes)
        let model = recipe.segmentationOptions.makeModel(classes: inputs.classes)
        #expect(gradient == Double(model.parameters().reduce(0) { $0 + $1.tensor.count } * 4))

        let skipping = try Bench.RecipeCost.parse([
            "--recipe", root + "/recipe.yaml", "--steps", "1", "--skip", "cam_train,train",
        ])
        #expect(try skipping.measure(recipe, inputs).map(\.name) == ["cam_infer", "pseudo", "train_val", "eval"])
        #expect(throws: (any Error).self) { try Bench.RecipeCost.parse(["--recipe", "r", "--skip", "sam_masks"]) }
        for bad in [["--ranks", "0,2"], ["--ranks", "1,1"], ["--link-gbps", "inf"], ["--link-gbps", "0"]] {
            #expect(throws: (any Error).self, "\(bad)") { try Bench.RecipeCost.parse(["--recipe", "r"] + bad) }
        }
    }
}
