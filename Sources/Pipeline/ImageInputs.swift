import Datasets
import Foundation
import Imaging

/// The images a command runs on when it is not given a dataset split: a folder of `.jpg`,
/// `.jpeg` and `.png` files (sorted by name) or one image file; the id is the file name without
/// its extension. (`wsss predict --images`, `wsss sam masks --images`.)
public enum ImageInputs {
    /// (id, path) of every image.
    /// - Throws: `ImageError.missingFile` for a path that is not there; `ImageInputsError.noImages`
    ///   for a folder without images.
    public static func list(_ folderOrFile: String) throws -> [(id: String, path: String)] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folderOrFile, isDirectory: &isDirectory) else {
            throw ImageError.missingFile(path: folderOrFile)
        }
        let files =
            isDirectory.boolValue
            ? try FileManager.default.contentsOfDirectory(atPath: folderOrFile).sorted()
                .filter { ["jpg", "jpeg", "png"].contains(($0 as NSString).pathExtension.lowercased()) }.map {
                    "\(folderOrFile)/\($0)"
                }
            : [folderOrFile]
        guard !files.isEmpty else { throw ImageInputsError.noImages(folder: folderOrFile) }
        return files.map { ((($0 as NSString).lastPathComponent as NSString).deletingPathExtension, $0) }
    }

    /// (id, path) of every image of a VOC-layout split (classes: the root's classes.txt, else VOC's).
    /// - Throws: `DatasetError`.
    public static func list(root: String, split: String) throws -> [(id: String, path: String)] {
        try VOCDataset(root: root, split: split, classes: ClassNames.of(datasetRoot: root)).samples.map { ($0.id, $0.imagePath) }
    }
}

/// A folder that holds no image a command can read.
public enum ImageInputsError: LocalizedError, Equatable {
    case noImages(folder: String)
    public var errorDescription: String? {
        switch self {
        case .noImages(let folder): "\(folder): no .jpg, .jpeg or .png files"
        }
    }
}
