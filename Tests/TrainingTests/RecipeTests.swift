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
        #expect(message("", overrides: ["train.iterations=abc"]) == "--set: 'train.iterations' must be a int, got abc")
        #expect(message("", overrides: ["train.iterations"]).contains("must be section.key=value"))
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
