import Datasets
import Foundation
import GroundingDINO
import PseudoLabels
import SegmentAnything
import Training

extension Pipeline {
    /// Resolves and checks every input the recipe names before anything runs — the dataset and
    /// its splits, proposal, seed and detection folders, SAM weights, initial weights — so a
    /// typo fails in a second, not after CAM training. Each message names the recipe key and the
    /// rule that made the path ("recipe paths are relative to data.root").
    /// - Throws: `RecipeError` or `PipelineError`.
    public func checkInputs() throws {
        let root = try recipe.required(recipe.data.root, "data.root")
        let cwd = FileManager.default.currentDirectoryPath
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: root, isDirectory: &isDirectory), isDirectory.boolValue else {
            let resolved = root.hasPrefix("/") ? root : "\(cwd)/\(root)"
            throw RecipeError(
                path: recipe.path,
                message: "data.root: \(resolved): dataset folder not found (data.root is relative to the working directory"
                    + (root.contains("synth") ? "; run `wsss synth --out \(root)` first to write the synthetic set)" : ")"))
        }
        let relativeRule = "recipe paths are relative to data.root (\(root))"
        func checkData(_ key: String, _ value: String?, folder: Bool) throws {
            guard let value else { return }
            let path = try recipe.dataPath(value)
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
                throw RecipeError(
                    path: recipe.path,
                    message: "\(key): \(path) not found (\(value.hasPrefix("/") ? "an absolute path" : relativeRule))")
            }
            guard isDirectory.boolValue == folder else {
                throw RecipeError(
                    path: recipe.path,
                    message: "\(key): \(path) is a \(folder ? "file" : "folder"), not a \(folder ? "folder" : "file")")
            }
        }
        func checkFile(_ key: String, _ value: String?) throws {
            guard let value, !FileManager.default.fileExists(atPath: value) else { return }
            throw RecipeError(
                path: recipe.path,
                message:
                    "\(key): \(value.hasPrefix("/") ? value : "\(cwd)/\(value)") not found (\(key) is relative to the working directory)"
            )
        }
        if recipe.data.classes != "voc" { try checkData("data.classes", recipe.data.classes, folder: false) }
        if recipe.data.imageLabels != "masks" { try checkData("data.image_labels", recipe.data.imageLabels, folder: false) }
        // The splits: their lists and, where scored, their labels (reading a list is cheap).
        _ = try recipe.dataset(split: recipe.data.trainSplit)
        for split in recipe.eval.splits { _ = try recipe.dataset(split: split, requireLabels: true) }
        _ = try recipe.validationDataset()
        let sources = self.sources
        if seedSource == nil { try checkData("pseudo.seeds", recipe.pseudo.seeds, folder: true) }
        try checkData("pseudo.labels", recipe.pseudo.labels, folder: true)
        if sources.contains(.boxes) { try checkData("pseudo.detections", recipe.pseudo.detections, folder: false) }
        let usesProposals = sources.contains { ($0 == .sepl || $0 == .boxes) && proposalSources[$0] == nil }
        // Parsed (and a folder checked) whether or not a source reads it: a typo is a typo.
        let spec = try recipe.pseudo.proposals.map {
            try ProposalSpec($0, relativeTo: root, setting: "\(recipe.path): 'pseudo.proposals'")
        }
        if usesProposals { try spec?.checkFolder(rule: relativeRule) }
        if spec == .sam && usesProposals && recipe.pseudo.samCheckpoint == nil {
            throw RecipeError(
                path: recipe.path, message: "'pseudo.proposals: sam' needs 'pseudo.sam_checkpoint' (an official sam_vit_*.pth)")
        }
        // Weights only where a stage reads them (a gt-only run of a SEPL recipe needs no SAM or CAM init).
        let usesSAM =
            (usesProposals && spec == .sam)
            || (sources.contains(.boxes) && boxPrompter == nil && proposalSources[.boxes] == nil
                && ProposalSpec.boxesPromptSAM(proposals: spec, samCheckpoint: recipe.pseudo.samCheckpoint))
        if usesSAM { try checkFile("pseudo.sam_checkpoint", recipe.pseudo.samCheckpoint) }
        // Resolved whether or not SAM runs: a typo ('vit_q') is an error, not a silently unused key.
        if let config = recipe.pseudo.samConfig {
            do { _ = try SAMConfiguration.resolve(config) } catch {
                throw RecipeError(path: recipe.path, message: "pseudo.sam_config: \(error.localizedDescription)")
            }
        }
        // Grounding DINO (Sun et al.'s route): its weights, vocabulary and configuration.
        if sources.contains(.boxes) && recipe.pseudo.runsDetector {
            guard recipe.pseudo.detectorVocab != nil else {
                throw RecipeError(
                    path: recipe.path,
                    message: "'pseudo.detector_checkpoint' needs 'pseudo.detector_vocab' (BERT's vocab.txt, bert-base-uncased)")
            }
            try checkFile("pseudo.detector_checkpoint", recipe.pseudo.detectorCheckpoint)
            try checkFile("pseudo.detector_vocab", recipe.pseudo.detectorVocab)
        }
        if let config = recipe.pseudo.detectorConfig {
            do { _ = try GroundingDINOConfiguration.overrides(config) } catch {
                throw RecipeError(path: recipe.path, message: "pseudo.detector_config: \(error.localizedDescription)")
            }
        }
        if case .checkpoint(let path) = recipe.model.`init` { try checkFile("model.init", path) }
        if needsCAM { try checkFile("cam.init", recipe.cam.initPath) }
    }
}
