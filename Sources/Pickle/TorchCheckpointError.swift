import Foundation

/// Why a PyTorch checkpoint (`torch.save` file) was refused. Every case names the file.
public enum TorchCheckpointError: LocalizedError, Equatable {
    /// The file cannot be opened or mapped (missing, unreadable, a directory).
    case cannotOpen(path: String, reason: String)
    /// Not a zip archive: e.g. the legacy (pre-1.6) `torch.save` format, or another file type.
    case notZip(path: String)
    /// The archive or one of its entries ends early or is inconsistent.
    case corrupt(path: String, reason: String)
    /// The pickle names a global that loading a state dict never needs (e.g. `os.system`).
    case forbiddenGlobal(path: String, name: String)
    /// The pickle uses an opcode the restricted unpickler does not implement.
    case unsupportedOpcode(path: String, opcode: UInt8, offset: Int)
    /// The pickle is well formed but does not describe tensors we can read.
    case unsupportedContent(path: String, reason: String)
    /// A tensor asked for by name is not in the checkpoint.
    case missingTensor(path: String, name: String)

    public var errorDescription: String? {
        switch self {
        case .cannotOpen(let path, let reason): "\(path): cannot open checkpoint: \(reason)"
        case .notZip(let path):
            "\(path): not a zip archive (torch.save files since PyTorch 1.6 are; re-save a legacy file with a recent torch)"
        case .corrupt(let path, let reason): "\(path): corrupt or truncated checkpoint: \(reason)"
        case .forbiddenGlobal(let path, let name):
            "\(path): refused: the pickle names '\(name)', which a state dict never needs (loading never runs code)"
        case .unsupportedOpcode(let path, let opcode, let offset):
            "\(path): refused: pickle opcode 0x\(String(opcode, radix: 16)) at byte \(offset) is not used by state dicts"
        case .unsupportedContent(let path, let reason): "\(path): \(reason)"
        case .missingTensor(let path, let name): "\(path): no tensor named '\(name)'"
        }
    }
}
