import Autograd
import Checkpoints
import Datasets
import Layers
import Foundation
import Testing

@testable import Training

@Suite struct RecipeTests {
    static let recipes = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("recipes").path

    @Test(arguments: [
        "demo", "voc12-deeplabv2-r101-sepl", "voc12-deeplabv2-r101-boxes", "voc12-deeplabv2-r101-full", "voc12-irn-cam", "coco",
    ])
    func shippedRecipesLoad(_ name: String) throws {
        let recipe = try Recipe(path: "\(Self.recipes)/\(name).yaml")
        #expect(recipe.data.root != nil)
        #expect(recipe.model.arch == .deeplabV2ResNet)
        if name.hasPrefix("voc12") {
            // The papers' protocol.
            let t = recipe.train
            #expect([t.iterations, t.batch, t.accumulation, t.crop] as [Int] == [20000, 5, 2, 321])
            #expect(recipe.train.lr == 2.5e-4)
            #expect(recipe.model.msc && recipe.model.frozenBN && recipe.model.depth == .resnet101)
            // deeplab-pytorch's VOC protocol (configs/voc12.yaml, main.py): scales from the set,
            // PIL-nearest labels, the rate every 10 iterations, the MSC max-fused logits scored.
            #expect(
                t.scales == [0.5, 0.75, 1.0, 1.25, 1.5] && t.scaleSampling == .choice && t.labelResize == .pil && t.lrStep == 10)
            #expect(recipe.evaluatesMSC && recipe.eval.scales == [1.0] && !recipe.eval.flip)
            let o = recipe.segmentationOptions
            #expect(o.augmentation.scale == .choices([0.5, 0.75, 1.0, 1.25, 1.5]) && o.augmentation.sideRounding == .towardZero)
            #expect(o.schedule.stepSize == 10 && o.labelResize == .pil)
        } else if name == "coco" {
            // deeplab-pytorch's COCO schedule with its protocol (recipes/coco.yaml names the sources).
            let t = recipe.train
            #expect([t.iterations, t.batch, t.accumulation, t.crop] as [Int] == [100_000, 5, 2, 321])
            #expect(t.lr == 2.5e-4 && recipe.cam.iterations == 25650 && recipe.data.imageLabels == "image_labels.txt")
            #expect(t.scaleSampling == .choice && t.labelResize == .pil && t.lrStep == 10 && recipe.evaluatesMSC)
        } else {
            // The demo keeps the schedule its README numbers were measured with.
            let o = recipe.segmentationOptions
            #expect(o.augmentation.scale == .range(0.75, 1.25) && o.augmentation.sideRounding == .toNearestOrAwayFromZero)
            #expect(o.schedule.stepSize == 1 && o.labelResize == .torch && !recipe.evaluatesMSC)
        }
    }

    /// Options stored by checkpoints from before the protocol keys read as what they trained with.
    @Test func olderCheckpointOptionsDecodeAsTheyTrained() throws {
        var json = try #require(
            try JSONSerialization.jsonObject(with: JSONEncoder().encode(SegmentationOptions())) as? [String: Any])
        for key in ["scales", "scaleSampling", "labelResize", "learningRateStep"] { json[key] = nil }
        (json["scaleLow"], json["scaleHigh"]) = (0.5, 1.5)
        let old = try JSONDecoder().decode(SegmentationOptions.self, from: JSONSerialization.data(withJSONObject: json))
        #expect(
            old.scales == [0.5, 1.5] && old.scaleSampling == .uniform && old.labelResize == .torch && old.learningRateStep == 1)
        let today = SegmentationOptions()
        #expect(try JSONDecoder().decode(SegmentationOptions.self, from: JSONEncoder().encode(today)) == today)
    }

    /// Resuming an older run with a recipe that spells out its behaviour is no change; the new
    /// defaults are.
    @Test func olderCheckpointsCompareAsTheyTrained() throws {
        var before = SegmentationOptions()
        (before.scales, before.scaleSampling, before.labelResize, before.learningRateStep) = ([0.5, 1.5], .uniform, .torch, 1)
        before.depth = .resnet18
        before.widthDivisor = 32
        var json = try #require(try JSONSerialization.jsonObject(with: JSONEncoder().encode(before)) as? [String: Any])
        for key in ["scales", "scaleSampling", "labelResize", "learningRateStep"] { json[key] = nil }
        (json["scaleLow"], json["scaleHigh"]) = (0.5, 1.5)
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("wsss-old-options-\(getpid())").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = folder + "/iter_000010.h5"
        let metadata = CheckpointMetadata(
            architecture: DeepLabV2.architecture, classes: ["bg", "a"], iteration: 10,
            options: String(decoding: try JSONSerialization.data(withJSONObject: json), as: UTF8.self))
        try Checkpoint.save(before.makeModel(classes: 2), metadata: metadata, to: path)
        #expect(try SegmentationTraining.changedOptions(in: path, comparedWith: before) == [])
        var protocolDefaults = SegmentationOptions()
        (protocolDefaults.depth, protocolDefaults.widthDivisor) = (.resnet18, 32)
        let changed = try SegmentationTraining.changedOptions(in: path, comparedWith: protocolDefaults)
        #expect(changed.contains("labelResize: torch → pil") && changed.contains("learningRateStep: 1 → 10"), "\(changed)")
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
        #expect(message("train:\n  iterations: ten\n") == "r.yaml: 'train.iterations' must be an integer, got 'ten'")
        #expect(message("train:\n  iterations: 2.5\n") == "r.yaml: 'train.iterations' must be an integer, got 2.5")
        #expect(message("train:\n  scales: [0.5, big]\n") == "r.yaml: 'train.scales' (item 2) must be a number, got [0.5, 'big']")
        #expect(message("train:\n  scales: 0.5\n") == "r.yaml: 'train.scales' must be a list, got 0.5")
        #expect(message("model:\n  msc: 1\n") == "r.yaml: 'model.msc' must be true or false, got 1")
        #expect(message("data:\n  train_split: [a]\n") == "r.yaml: 'data.train_split' must be a string, got ['a']")
        #expect(message("run:\n  seed: 2001-12-14\n").hasPrefix("r.yaml: 'run.seed' has a value of an unsupported kind"))
        #expect(message("train: [1, 2]\n") == "r.yaml: section 'train' must hold keys")
        #expect(message("a: [\n").hasPrefix("r.yaml: not valid YAML"))
        #expect(!message("a: [\n").contains("\n"), "one line")
        #expect(!message("train: {iterations: 1}\ntrain: {batch: 2}\n").contains("\n"))
        #expect(message("", overrides: ["train.nope=3"]) == "r.yaml: --set: unknown key 'train.nope'")
        #expect(
            message("", overrides: ["train.iteration=3"])
                == "r.yaml: --set: unknown key 'train.iteration' (did you mean 'train.iterations'?)")
        #expect(message("", overrides: ["train.iterations=abc"]) == "--set: 'train.iterations' must be an integer, got 'abc'")
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
        ("cam.inference_scales=[]", "'cam.inference_scales' must be a non-empty list of scales in [0.25, 8]"),
        ("eval.scales=[1, -2]", "'eval.scales' must be a non-empty list of scales in [0.25, 8]"),
        ("train.lr=", "'train.lr' has no value"),
        ("train.lr=-0.1", "'train.lr' must be a number ≥ 0"),
        ("train.iterations=-5", "'train.iterations' must be an integer ≥ 1"),
        ("train.momentum=-0.5", "'train.momentum' must be a number in [0, 1)"),
        ("train.momentum=1", "'train.momentum' must be a number in [0, 1)"),
        ("train.scales=[0.5", "'train.scales': '[0.5' is not a valid YAML value"),
        ("train.scales=[1.5, 0.5]", "'train.scales' [1.5, 0.5] has two entries: set 'train.scale_sampling' to choice"),
        ("train.scales=[0.5, 1e9]", "'train.scales' must be a non-empty list of scales in [0.25, 8]"),
        ("train.scales=[]", "'train.scales' must be a non-empty list of scales in [0.25, 8]"),
        ("train.lr_step=0", "'train.lr_step' must be an integer ≥ 1"),
        ("eval.scales=[1, 1e9]", "'eval.scales' must be a non-empty list of scales in [0.25, 8]"),
        ("cam.bg_threshold=1.5", "'cam.bg_threshold' must be a number in [0, 1]"),
        ("run.threads=0", "'run.threads' must be an integer ≥ 1"),
        ("crf.bi_rgb_std=0", "'crf.bi_rgb_std' must be a number > 0"),
        ("crf.confidence=1", "'crf.confidence' must be a number in (0, 1)"),
        ("crf.eval=yes please", "'crf.eval' must be true or false"),
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
        let recipe = try Recipe(
            text: "train:\n  iterations: 10\n", path: "r.yaml",
            overrides: ["train.iterations=100", "model.msc=false", "eval.scales=[0.5, 1]"])
        #expect(recipe.train.iterations == 100)
        #expect(recipe.model.msc == false)
        #expect(recipe.eval.scales == [0.5, 1.0])
        #expect(recipe.train.momentum == 0.9)
        #expect(recipe.text.contains("# --set train.iterations=100"))
    }

    /// Enumerated keys decode into their enums; anything else names the choices.
    @Test func choicesDecodeIntoEnumsAndListTheAlternatives() throws {
        func message(_ override: String) -> String {
            do {
                _ = try Recipe(text: "", path: "r.yaml", overrides: [override])
                return "no error"
            } catch { return error.localizedDescription }
        }
        #expect(
            message("train.preprocessing=pytorch") == "--set: 'train.preprocessing' must be caffe or torchvision, got 'pytorch'")
        #expect(message("model.depth=42") == "--set: 'model.depth' must be 18, 34, 50 or 101, got 42")
        #expect(message("run.precision=fp16") == "--set: 'run.precision' must be fp32, bf16 or auto, got 'fp16'")
        #expect(message("sam.precision=fp16") == "--set: 'sam.precision' must be fp32, bf16 or auto, got 'fp16'")
        #expect(message("model.arch=pspnet") == "--set: 'model.arch' must be deeplabv2-resnet101, got 'pspnet'")
        #expect(
            message("pseudo.source=crf")
                == "--set: 'pseudo.source' must be cam, sepl, sepl-felzenszwalb, boxes, gt or folder, got 'crf'")
        #expect(
            message("pseudo.compare=[cam, nope]")
                == "--set: 'pseudo.compare' (item 2) must be cam, sepl, sepl-felzenszwalb, boxes, gt or folder, got ['cam', 'nope']"
        )
        let r = try Recipe(
            text:
                "model: {depth: 50, init: cam}\ntrain: {preprocessing: torchvision}\npseudo: {source: boxes, compare: [cam, gt]}\n",
            path: "r.yaml")
        #expect(r.model.depth == .resnet50 && r.model.`init` == .camClassifier && r.train.preprocessing == .torchvision)
        #expect(r.pseudo.source == .boxes && r.pseudo.compare == [.cam, .gt])
        #expect(r.segmenterInit(runDirectory: "runs/x") == "runs/x/cam/cam_final.h5")
        #expect(try Recipe(text: "model: {init: w/r101.h5}\n", path: "r.yaml").model.`init` == .checkpoint("w/r101.h5"))
        #expect(try Recipe(text: "model: {init: none}\n", path: "r.yaml").model.`init` == SegmenterInit.none)
        #expect(try Recipe(text: "model: {init: }\n", path: "r.yaml").segmenterInit(runDirectory: "x") == nil)
    }

    /// Provenance records compare these strings across runs: their spelling must not drift.
    @Test func textValuesSpellEveryKeyAsTheRecipeWouldAndUnsetAsNull() throws {
        let r = try Recipe(text: "cam: {bg_threshold: 0.35}\npseudo: {compare: [cam]}\n", path: "r.yaml")
        let t = r.textValues
        #expect(Set(t.keys) == Set(Recipe.allKeys))
        #expect(t["cam.bg_threshold"] == "0.35" && t["cam.iterations"] == "3300" && t["cam.scales"] == "[0.5, 1.5]")
        #expect(t["cam.init"] == "null" && t["run.threads"] == "null" && t["model.frozen_bn"] == "true")
        #expect(t["model.depth"] == "101" && t["train.preprocessing"] == "caffe" && t["model.init"] == "none")
        #expect(t["pseudo.compare"] == "[cam]" && t["eval.splits"] == "[\"val\", \"test\"]")
        #expect(
            r.effectiveValues(of: ["eval"]) == [
                "eval.scales": "[1.0]", "eval.flip": "false", "eval.msc": "null", "eval.splits": "[\"val\", \"test\"]",
            ])
        #expect(t["train.scales"] == "[0.5, 0.75, 1.0, 1.25, 1.5]" && t["train.scale_sampling"] == "choice")
        #expect(t["train.label_resize"] == "pil" && t["train.lr_step"] == "10")
    }

    /// docs/RECIPES.md is the reference of every key: its table must list exactly the keys the
    /// recipe knows (rows like `cam.lr / classifier_lr_mult` name keys of one section).
    @Test func theRecipeReferenceListsExactlyTheKnownKeys() throws {
        let docs = Self.recipes.replacingOccurrences(of: "/recipes", with: "/docs/RECIPES.md")
        var documented = Set<String>()
        for line in try String(contentsOfFile: docs, encoding: .utf8).split(separator: "\n") where line.hasPrefix("| ") {
            let cell = line.dropFirst(2).prefix { $0 != "|" }.trimmingCharacters(in: .whitespaces)
            let names = cell.components(separatedBy: " / ")
            guard let section = names.first?.split(separator: ".").first, names[0].contains(".") else { continue }
            for (i, name) in names.enumerated() { documented.insert(i == 0 ? name : "\(section).\(name)") }
        }
        let known = Set(Recipe.allKeys)
        #expect(known.subtracting(documented).isEmpty, "not in docs/RECIPES.md: \(known.subtracting(documented).sorted())")
        #expect(
            documented.subtracting(known).isEmpty, "docs/RECIPES.md lists unknown keys: \(documented.subtracting(known).sorted())"
        )
    }
}
