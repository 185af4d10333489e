import Foundation
import Testing

@testable import Training

@Suite struct RecipeTests {
    static let recipes = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("recipes").path

    @Test(arguments: ["demo", "voc12-deeplabv2-r101-sepl", "voc12-deeplabv2-r101-boxes", "voc12-deeplabv2-r101-full"])
    func shippedRecipesLoad(_ name: String) throws {
        let recipe = try Recipe(path: "\(Self.recipes)/\(name).yaml")
        #expect(recipe.string("data", "root") != nil)
        #expect(recipe.string("model", "arch") == "deeplabv2-resnet101")
        if name.hasPrefix("voc12") {
            // The papers' protocol.
            let o = SegmentationOptions.fromDefaults(recipe)
            #expect(o == [20000, 5, 2, 321])
            #expect(recipe.double("train", "lr") == 2.5e-4)
            #expect(recipe.bool("model", "msc") && recipe.bool("model", "frozen_bn"))
        }
    }

    @Test func unknownKeysAndWrongTypesNameTheKeyAndTheFile() {
        func message(_ text: String, overrides: [String] = []) -> String {
            do {
                _ = try Recipe(text: text, path: "r.yaml", overrides: overrides)
                return "no error"
            } catch { return error.localizedDescription }
        }
        #expect(message("train:\n  iterations: 10\n  itterations: 5\n").hasPrefix("r.yaml: unknown key 'train.itterations'"))
        #expect(message("trian:\n  iterations: 10\n").hasPrefix("r.yaml: unknown section 'trian'"))
        #expect(message("train:\n  iterations: ten\n") == "r.yaml: 'train.iterations' must be a int, got ten")
        #expect(message("train:\n  scales: [0.5, big]\n").hasPrefix("r.yaml: 'train.scales' must be a list of numbers"))
        #expect(message("train: [1, 2]\n") == "r.yaml: section 'train' must hold keys")
        #expect(message("a: [\n").hasPrefix("r.yaml: not valid YAML"))
        #expect(message("", overrides: ["train.nope=3"]) == "r.yaml: --set: unknown key 'train.nope'")
        #expect(message("", overrides: ["train.iteration=3"]) == "r.yaml: --set: unknown key 'train.iteration' (did you mean 'train.iterations'?)")
        #expect(message("", overrides: ["train.iterations=abc"]) == "--set: 'train.iterations' must be a int, got abc")
        #expect(message("", overrides: ["train.iterations"]).contains("must be section.key=value"))
    }

    /// Values that used to reach a division by zero or a crash (issue: recipe traps).
    @Test(arguments: [
        ("train.checkpoint_every=0", "'train.checkpoint_every' must be an integer ≥ 1, got 0"),
        ("train.log_every=0", "'train.log_every' must be an integer ≥ 1"),
        ("train.accumulation=0", "'train.accumulation' must be an integer ≥ 1"),
        ("train.crop=0", "'train.crop' must be an integer ≥ 1"),
        ("train.batch=0", "'train.batch' must be an integer ≥ 1"),
        ("model.width_divisor=0", "'model.width_divisor' must be an integer ≥ 1"),
        ("cam.inference_scales=[]", "'cam.inference_scales' must be a non-empty list of scales > 0"),
        ("eval.scales=[1, -2]", "'eval.scales' must be a non-empty list of scales > 0"),
        ("train.lr=", "'train.lr' has no value"),
        ("train.lr=-0.1", "'train.lr' must be a number ≥ 0"),
        ("train.iterations=-5", "'train.iterations' must be an integer ≥ 1"),
        ("train.momentum=-0.5", "'train.momentum' must be a number in [0, 1)"),
        ("train.momentum=1", "'train.momentum' must be a number in [0, 1)"),
        ("train.scales=[0.5", "'train.scales': '[0.5' is not a valid YAML value"),
        ("train.scales=[1.5, 0.5]", "'train.scales' must be two scales low, high with 0 < low ≤ high"),
        ("cam.bg_threshold=1.5", "'cam.bg_threshold' must be a number in [0, 1]"),
        ("run.threads=0", "'run.threads' must be an integer ≥ 1"),
    ])
    func outOfRangeValuesAreRefusedNamingTheKey(override: String, message: String) {
        #expect {
            try Recipe(text: "", path: "r.yaml", overrides: [override])
        } throws: { error in
            error.localizedDescription.contains(message)
        }
    }

    @Test func rangesAreCheckedInTheFileToo() {
        #expect {
            try Recipe(text: "cam:\n  checkpoint_every: 0\n", path: "r.yaml")
        } throws: { error in
            error.localizedDescription == "r.yaml: 'cam.checkpoint_every' must be an integer ≥ 1, got 0"
        }
        // Keys without a default may be null (e.g. cam.init: none given).
        #expect(throws: Never.self) { try Recipe(text: "cam:\n  init:\n", path: "r.yaml") }
    }

    @Test func overridesApplyOnTopAndDefaultsFillTheRest() throws {
        let recipe = try Recipe(text: "train:\n  iterations: 10\n", path: "r.yaml", overrides: ["train.iterations=100", "model.msc=false", "eval.scales=[0.5, 1]"])
        #expect(recipe.int("train", "iterations") == 100)
        #expect(recipe.bool("model", "msc") == false)
        #expect(recipe.doubles("eval", "scales") == [0.5, 1.0])
        #expect(recipe.double("train", "momentum") == 0.9)
        #expect(recipe.text.contains("# --set train.iterations=100"))
    }
}

extension SegmentationOptions {
    static func fromDefaults(_ r: Recipe) -> [Int] {
        [r.int("train", "iterations")!, r.int("train", "batch")!, r.int("train", "accumulation")!, r.int("train", "crop")!]
    }
}
