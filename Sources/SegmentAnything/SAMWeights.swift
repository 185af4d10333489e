import Autograd
import Foundation
import HDF5
import TorchCheckpoint


/// Opening SAM weights in either format, and converting the official `.pth` to our HDF5.
public enum SAMWeights {
    /// The attribute value naming a SAM weight file in our HDF5 format.
    public static let architecture = "segment-anything"

    /// A reader for `path`: an official `torch.save` file (zip) or our HDF5 copy (`/parameters/<key>`),
    /// told apart by their first bytes, not the extension.
    /// - Throws: `SAMWeightsError`/`TorchCheckpointError`/`HDF5Error` naming the file.
    public static func reader(for path: String) throws -> any StateDictReader {
        guard let handle = FileHandle(forReadingAtPath: path) else { throw TorchCheckpointError.cannotOpen(path: path, reason: "no such file") }
        let magic = [UInt8]((try? handle.read(upToCount: 8)) ?? Data())
        try? handle.close()
        if magic.starts(with: [0x89, 0x48, 0x44, 0x46]) { return try HDF5StateDict(path: path) }  // "\x89HDF"
        return try TorchCheckpoint(path: path)
    }

    /// The model of `path`'s weights: of `configuration` when given (its shapes must then fit), else
    /// of the configuration the tensor shapes identify (ViT-B/L/H or any other).
    public static func load(_ path: String, configuration: SAMConfiguration? = nil) throws -> SAM {
        let reader = try reader(for: path)
        if let configuration {
            let model = SAM(configuration: configuration)
            try model.load(from: reader)
            return model
        }
        return try SAM.loaded(from: reader)
    }

    /// Writes every floating-point tensor of an official checkpoint to our HDF5 layout
    /// (`/parameters/<official key>`, float32), atomically; attributes `format_version`,
    /// `architecture` and `source`. Tensors are copied one at a time.
    /// - Returns: the number of tensors written and the names of non-float tensors left out.
    @discardableResult
    public static func convert(_ checkpoint: TorchCheckpoint, to path: String, progress: (Int, Int) -> Void = { _, _ in })
        throws -> (written: Int, skipped: [String])
    {
        var skipped: [String] = []
        var written = 0
        try HDF5File.writeAtomically(to: path) { file in
            for (k, name) in checkpoint.tensorNames.enumerated() {
                progress(k, checkpoint.tensorNames.count)
                guard checkpoint.dtype(of: name)?.isFloatingPoint ?? false else {
                    skipped.append(name)
                    continue
                }
                try file.write(try checkpoint.tensor(named: name), at: "/parameters/\(name)")
                written += 1
            }
            try file.setAttribute(.int(1), named: "format_version")
            try file.setAttribute(.string(architecture), named: "architecture")
            try file.setAttribute(.string((checkpoint.path as NSString).lastPathComponent), named: "source")
        }
        return (written, skipped)
    }
}
