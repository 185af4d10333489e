import Foundation

/// A problem with a COCO annotations file or its conversion, naming the file and, where there is
/// one, the annotation id.
public enum COCOError: LocalizedError, Equatable {
    /// Not JSON, or JSON cut short; `offset` is the byte where reading stopped.
    case malformedJSON(path: String, offset: Int, reason: String)
    /// A required field is missing or of the wrong type (`owner` is e.g. "annotation 17", "image 9").
    case badField(path: String, owner: String, field: String, reason: String)
    /// An annotation names an image id the file's `images` do not list.
    case unknownImage(path: String, annotationID: Int, imageID: Int)
    /// An annotation names a category id the file's `categories` do not list.
    case unknownCategory(path: String, annotationID: Int, categoryID: Int)
    /// A segmentation that no mask can be made of (empty counts, bad characters, negative runs).
    case badSegmentation(path: String, annotationID: Int, reason: String)
    /// An RLE whose size, or whose runs' total, disagrees with its image.
    case rleSize(path: String, annotationID: Int, reason: String)
    /// Two images, categories or annotations share an id.
    case duplicateID(path: String, what: String, id: Int)
    /// More categories than a label PNG can hold (254 besides background).
    case tooManyCategories(path: String, count: Int)
    /// Several problems at once (each line one of the cases above), `more` not shown.
    case several(path: String, problems: [String], more: Int)
    /// An image file named by the annotations is not in the images folder.
    case missingImage(path: String, imageID: Int)
    /// An output root converted before with other settings (its finished PNGs would be kept).
    case settingsChanged(path: String, reason: String)
    /// Writing the converted dataset failed.
    case writeFailed(path: String, reason: String)
    /// A split name that is no plain file name (empty, a path, "." or "..").
    case badSplitName(String)

    public static func == (a: Self, b: Self) -> Bool { a.errorDescription == b.errorDescription }

    public var errorDescription: String? {
        switch self {
        case .malformedJSON(let path, let offset, let reason): "\(path): malformed JSON at byte \(offset): \(reason)"
        case .badField(let path, let owner, let field, let reason): "\(path): \(owner): '\(field)' \(reason)"
        case .unknownImage(let path, let annotationID, let imageID):
            "\(path): annotation \(annotationID): image_id \(imageID) is not among the file's images"
        case .unknownCategory(let path, let annotationID, let categoryID):
            "\(path): annotation \(annotationID): category_id \(categoryID) is not among the file's categories"
        case .badSegmentation(let path, let annotationID, let reason):
            "\(path): annotation \(annotationID): bad segmentation (\(reason))"
        case .rleSize(let path, let annotationID, let reason): "\(path): annotation \(annotationID): RLE \(reason)"
        case .duplicateID(let path, let what, let id): "\(path): \(what) id \(id) appears twice"
        case .tooManyCategories(let path, let count):
            "\(path): \(count) categories; label PNGs hold at most 254 besides background"
        case .several(let path, let problems, let more):
            "\(path): \(problems.count + more) problems:\n" + problems.map { "  " + $0 }.joined(separator: "\n")
                + (more > 0 ? "\n  … and \(more) more" : "")
        case .missingImage(let path, let imageID): "\(path): image \(imageID): image file not found"
        case .writeFailed(let path, let reason): "\(path): cannot write (\(reason))"
        case .badSplitName(let name):
            "split name '\(name)' is not a plain name (it names ImageSets/Segmentation/<split>.txt: no '/', not empty, '.' or '..')"
        case .settingsChanged(let path, let reason): "\(path): \(reason)"
        }
    }
}
