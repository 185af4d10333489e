import Autograd
import Foundation
import HDF5
import TorchCheckpoint

/// Opening SAM weights in either format, and converting the official `.pth` to our HDF5.
public enum SAMWeights {
    /// Batch-norm step counters (`…num_batches_tracked`, MobileSAM's TinyViT): torch stores them
    /// as int64; they are read as floats (exact to 2^24 steps), the only integer tensors allowed.
    public static func isCounter(_ name: String) -> Bool { name.hasSuffix(".num_batches_tracked") }

    /// The attribute value naming a SAM weight file in our HDF5 format.
    public static let architecture = "segment-anything"

    /// A reader for `path`: an official `torch.save` file (zip) or our HDF5 copy (`/parameters/<key>`),
    /// told apart by their first bytes, not the extension.
    /// - Throws: `SAMWeightsError`/`TorchCheckpointError`/`HDF5Error` naming the file.
    public static func reader(for path: String) throws -> any StateDictReader {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw TorchCheckpointError.cannotOpen(path: path, reason: "no such file")
        }
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

    /// Writes every tensor of an official checkpoint to our HDF5 layout (`/parameters/<official
    /// key>`, float32), atomically; attributes `format_version`, `architecture` and `source`.
    /// Tensors are copied one at a time. (`skipped` is always empty: non-float tensors are refused,
    /// but for batch-norm counters, written as floats.)
    /// - Throws: `SAMWeightsError.unusableValues` naming tensors stored as integers or booleans,
    ///   or holding NaN or ±inf (nothing is written then).
    @discardableResult
    public static func convert(_ checkpoint: TorchCheckpoint, to path: String, progress: (Int, Int) -> Void = { _, _ in })
        throws -> (written: Int, skipped: [String])
    {
        let notFloat = checkpoint.tensorNames.filter { !checkpoint.isStoredAsFloat($0) && !isCounter($0) }
        guard notFloat.isEmpty else {
            throw SAMWeightsError.unusableValues(path: checkpoint.path, nonFinite: [], notFloat: notFloat)
        }
        var nonFinite: [String] = []
        var written = 0
        try HDF5File.writeAtomically(to: path) { file in
            for (k, name) in checkpoint.tensorNames.enumerated() {
                progress(k, checkpoint.tensorNames.count)
                let tensor = try checkpoint.tensor(named: name)
                if !tensor.isAllFinite { nonFinite.append(name) }
                guard nonFinite.isEmpty else { continue }
                try file.write(tensor, at: "/parameters/\(name)")
                written += 1
            }
            // Throwing inside the block leaves no file behind (the temporary is removed).
            guard nonFinite.isEmpty else {
                throw SAMWeightsError.unusableValues(path: checkpoint.path, nonFinite: nonFinite, notFloat: [])
            }
            try file.setAttribute(.int(1), named: "format_version")
            try file.setAttribute(.string(architecture), named: "architecture")
            try file.setAttribute(.string((checkpoint.path as NSString).lastPathComponent), named: "source")
        }
        return (written, [])
    }
}
