import Foundation
import PseudoLabels

/// Where a source's class-agnostic masks come from (`pseudo.proposals`, `--proposals`), parsed
/// in one place: `sam` (SAM's automatic masks), `felzenszwalb` (computed), or a folder —
/// `sa1b:DIR` (SA-1B / amg.py JSON), `masks:DIR` (0/255 PNGs per image), `index:DIR` (index maps).
public enum ProposalSpec: Equatable, Sendable {
    case sam
    case felzenszwalb
    case folder(FolderKind, path: String)

    /// The folder layouts.
    public enum FolderKind: String, Sendable, CaseIterable { case sa1b, masks, index }

    /// Parses `spec`. A relative DIR is resolved against `root` when given (recipe paths are
    /// relative to `data.root`), else left as it is (the working directory's, for the CLI).
    /// - Throws: `PipelineError` naming `setting` for an unknown kind.
    public init(_ spec: String, relativeTo root: String? = nil, setting: String = "--proposals") throws {
        if spec == "sam" { self = .sam; return }
        if spec == "felzenszwalb" { self = .felzenszwalb; return }
        guard let colon = spec.firstIndex(of: ":") else {
            throw PipelineError(setting, "must be sa1b:DIR, masks:DIR, index:DIR, felzenszwalb or sam, got '\(spec)'")
        }
        // The kind first: "foo:bar" is a typo in the kind, not a missing folder "bar".
        guard let kind = FolderKind(rawValue: String(spec[..<colon])) else {
            throw PipelineError(
                setting, "unknown proposal kind '\(spec[..<colon])' in '\(spec)' (sa1b, masks, index, felzenszwalb or sam)")
        }
        let directory = String(spec[spec.index(after: colon)...])
        guard !directory.isEmpty else { throw PipelineError(setting, "'\(spec)' names no folder after '\(kind.rawValue):'") }
        self = .folder(kind, path: root.map { directory.hasPrefix("/") ? directory : $0 + "/" + directory } ?? directory)
    }

    /// Checks that a folder spec's folder exists; `rule` says how the path was made ("recipe paths
    /// are relative to data.root"), for the message.
    /// - Throws: `PseudoLabelError` naming the folder.
    public func checkFolder(rule: String? = nil) throws {
        guard case .folder(let kind, let directory) = self else { return }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory) else {
            guard let rule else { throw PseudoLabelError.missingFile(path: directory) }
            throw PseudoLabelError.malformed(path: directory, reason: "no such folder (\(rule))")
        }
        guard isDirectory.boolValue else {
            throw PseudoLabelError.malformed(path: directory, reason: "is a file; \(kind.rawValue): needs a folder")
        }
    }

    /// The proposal source (nil for `sam`, which needs a model: `PseudoLabelStage.samProposals`).
    /// - Throws: `PseudoLabelError` for a missing folder.
    public func source(felzenszwalb: Felzenszwalb.Options = .init()) throws -> ProposalSource? {
        switch self {
        case .sam: return nil
        case .felzenszwalb: return FelzenszwalbProposals(options: felzenszwalb)
        case .folder(let kind, let directory):
            try checkFolder()
            switch kind {
            case .sa1b: return SA1BProposals(directory: directory)
            case .masks: return MaskFolderProposals(directory: directory)
            case .index: return IndexMapProposals(directory: directory)
            }
        }
    }

    /// What the masks are, for tables ("Felzenszwalb segments", a folder's ABOUT.txt line).
    public func about(samCheckpoint: String? = nil) -> String {
        switch self {
        case .sam: "SAM automatic masks, \(((samCheckpoint ?? "?") as NSString).lastPathComponent)"
        case .felzenszwalb: "Felzenszwalb segments"
        case .folder(let kind, let directory): folderAbout(directory) ?? "\(kind.rawValue):\(directory)"
        }
    }
}

extension ProposalSpec {
    /// Whether box pseudo-labels prompt SAM with each box (Sun et al.'s Grounded-SAM route):
    /// when SAM weights are given and no other proposals are (`proposals` nil or `sam`). The one
    /// place this rule is written; the pipeline, its input checks and `wsss pseudo` ask it.
    public static func boxesPromptSAM(proposals: ProposalSpec?, samCheckpoint: String?) -> Bool {
        samCheckpoint != nil && (proposals == nil || proposals == .sam)
    }
}
