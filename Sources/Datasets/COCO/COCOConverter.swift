import Foundation
import Imaging

/// COCO instances → the VOC layout every other command reads:
/// ```
/// ROOT/SegmentationClass/<file stem>.png     (0 background, 1…C categories by id, 255 ignore)
/// ROOT/JPEGImages/<file stem>.jpg            (a link to the COCO image)
/// ROOT/ImageSets/Segmentation/<split>.txt
/// ROOT/image_labels_<split>.txt              (the --image-labels format, class names)
/// ROOT/image_labels.txt                      (every split converted so far, for recipes)
/// ROOT/classes.txt                           (background + the category names)
/// ```
/// Painting follows alicranck/coco2voc (`coco2voc_aux.annotations_to_seg`), the conversion that
/// MCTformer, ToCo and other WSSS repositories point to for COCO 2014: each annotation's mask as
/// pycocotools' annToMask makes it, annotations in ascending `area` (ties in file order, as
/// Python's stable sort), a pixel keeping the first class painted on it — so a small object on a
/// large one stays visible. Unlike coco2voc, categories are renumbered 1…C in the order of their
/// ids (COCO's ids run 1…90 with gaps), as the 81-class WSSS label maps are.
public enum COCOConverter {
    /// How crowd (`iscrowd: 1`) annotations are painted.
    public enum CrowdRule: String, CaseIterable, Sendable {
        /// As their class, in area order with the others (coco2voc).
        case `class`
        /// As 255 (ignore), on pixels no non-crowd annotation covers.
        case ignore
    }

    /// What happens to images without any annotation.
    public enum UnannotatedRule: String, CaseIterable, Sendable {
        /// Listed with an all-background label map (evaluation on the full val2014: 40,504 images).
        case keep
        /// Left out (coco2voc; 82,081 of train2014's 82,783 images remain).
        case skip
    }

    /// Where the image-level labels written come from.
    public enum ImageLabelRule: String, CaseIterable, Sendable {
        /// Every annotation's category, crowds too (the COCO classification labels WSSS papers use).
        case annotations
        /// The classes present in the label map written (255 excluded): what `data check` compares.
        case labelMaps = "label-maps"
    }

    public struct Options: Sendable {
        /// The split name written: ImageSets/Segmentation/<split>.txt, image_labels_<split>.txt.
        public var split = "train"
        public var crowd = CrowdRule.class
        /// nil: skip for a split named train*, keep otherwise (training needs image labels with at
        /// least one class; evaluation counts every image).
        public var unannotated: UnannotatedRule?
        /// Link (symbolic, else hard, else copy) the images into JPEGImages; false writes none.
        public var linkImages = true
        public var imageLabels = ImageLabelRule.annotations
        public init() {}

        /// The rule in force for `split`.
        public var unannotatedRule: UnannotatedRule { unannotated ?? (split.hasPrefix("train") ? .skip : .keep) }
    }

    /// What a conversion did.
    public struct Report: Encodable, Sendable {
        public var annotations = 0
        public var images = 0
        /// Label PNGs written by this run.
        public var written = 0
        /// Label PNGs already there from an earlier run (kept).
        public var kept = 0
        public var skippedUnannotated = 0
        /// Images where an annotated class has no pixel in the label map (covered by smaller
        /// objects, or too thin to rasterise): `data check` lists them as disagreements.
        public var classesWithoutPixels = 0
        public var warnings: [String] = []
        public var seconds = 0.0
    }

    /// Converts one annotations file.
    /// - Parameters:
    ///   - annotations: instances_<split>.json.
    ///   - images: the folder holding the files the annotations name (train2014/).
    ///   - root: the output dataset root (created).
    ///   - progress: called once with (0, total) before the images are painted, then from worker
    ///     threads with the number of images finished so far and the total, after each image.
    /// - Throws: `COCOError` for a bad file (before anything is written), `.several` for the
    ///   images whose annotations cannot be painted (their PNGs are not written, the split list
    ///   neither; a rerun redoes only them).
    public static func convert(
        annotations: String, images: String, root: String, options: Options = Options(),
        progress: (@Sendable (Int, Int) -> Void)? = nil
    ) throws -> Report {
        let start = Date()
        // The split names files (ImageSets/Segmentation/<split>.txt, image_labels_<split>.txt):
        // refused before anything is read or written.
        let split = options.split
        guard !split.isEmpty, split != ".", split != "..", !split.contains("/"), !split.contains("\0"),
            !split.contains(where: \.isWhitespace)
        else { throw COCOError.badSplitName(split) }
        let file = try COCOAnnotationFile(path: annotations)
        let path = annotations
        var report = Report()
        report.annotations = file.annotations.count

        let (label, names, byImage) = try checkReferences(file, path: path)

        let rule = options.unannotatedRule
        let selected = file.images.indices.filter { rule == .keep || !byImage[$0].isEmpty }
        report.images = selected.count
        report.skippedUnannotated = file.images.count - selected.count

        let fm = FileManager.default
        for folder in ["SegmentationClass", "JPEGImages", "ImageSets/Segmentation"] {
            do { try fm.createDirectory(atPath: "\(root)/\(folder)", withIntermediateDirectories: true) } catch {
                throw COCOError.writeFailed(path: "\(root)/\(folder)", reason: error.localizedDescription)
            }
        }
        // A rerun keeps finished PNGs: they must have been painted by the same rule and classes.
        let stamp = "\(root)/coco_convert.txt"
        let settings = "crowd: \(options.crowd.rawValue)\nclasses: \(names.count)\n"
        if let earlier = try? String(contentsOfFile: stamp, encoding: .utf8), earlier != settings {
            throw COCOError.settingsChanged(
                path: stamp,
                reason: "its PNGs were painted with \(earlier.split(separator: "\n").joined(separator: ", ")), this run asks for "
                    + settings.split(separator: "\n").joined(separator: ", ")
                    + "; use another --out or remove SegmentationClass and this file")
        }
        try writeText(settings, to: stamp)
        try writeText(names.joined(separator: "\n") + "\n", to: "\(root)/classes.txt")

        var outcomes = [ImageOutcome](repeating: ImageOutcome(), count: selected.count)
        let finished = Counter()
        let imagesFolder = images.hasPrefix("/") ? images : fm.currentDirectoryPath + "/" + images
        progress?(0, selected.count)
        outcomes.withUnsafeMutableBufferPointer { out in
            let buffer = out
            DispatchQueue.concurrentPerform(iterations: selected.count) { n in
                let i = selected[n]
                buffer[n] = convertImage(
                    file.images[i], annotations: byImage[i].map { file.annotations[Int($0)] }, in: file, path: path,
                    labels: label,
                    imagesFolder: imagesFolder, root: root, options: options)
                progress?(finished.increment(), selected.count)
            }
        }
        for o in outcomes {
            report.written += o.written ? 1 : 0
            report.kept += o.kept ? 1 : 0
            report.classesWithoutPixels += o.classWithoutPixels ? 1 : 0
            report.warnings += o.warnings
        }
        let failures = outcomes.compactMap(\.error)
        if !failures.isEmpty { throw several(path, failures) }

        // The lists last, so a split list only ever names finished images.
        let ids = selected.map { Self.stem(of: file.images[$0].fileName) }
        let present = outcomes.map(\.present)
        try writeLists(
            ids: ids,
            imageLabels: { n in
                options.imageLabels == .annotations
                    ? Set(byImage[selected[n]].map { label[file.annotations[Int($0)].categoryID]! }).sorted()
                    : present[n].subtracting([0, LabelMap.ignore]).sorted()
            }, names: names, annotations: annotations, options: options, root: root)
        try writeCombinedImageLabels(root: root)
        report.seconds = Date().timeIntervalSince(start)
        return report
    }

    /// What converting one image did.
    struct ImageOutcome {
        var written = false, kept = false, classWithoutPixels = false
        var present: Set<UInt8> = []
        var warnings: [String] = []
        var error: String?
    }

    /// One image: its link in JPEGImages (checked against the annotated size) and its label PNG,
    /// painted unless a finished one is there. Errors are kept in the outcome, so every failing
    /// image is reported at once.
    static func convertImage(
        _ image: COCOImage, annotations anns: [COCOAnnotation], in file: COCOAnnotationFile, path: String,
        labels label: [Int: UInt8],
        imagesFolder: String, root: String, options: Options
    ) -> ImageOutcome {
        let stem = Self.stem(of: image.fileName)
        var outcome = ImageOutcome()
        do {
            if options.linkImages {
                let source = "\(imagesFolder)/\(image.fileName)"
                try link(source, to: "\(root)/JPEGImages/\(stem).jpg", imageID: image.id)
                // An empty or unreadable file, or one of another size than the annotations
                // say, would give a label map that fits no image: refused here, by name.
                let size = try Image.dimensions(ofFileAt: source)
                guard size.width == image.width && size.height == image.height else {
                    throw COCOError.badField(
                        path: path, owner: "image \(image.id)", field: "width/height",
                        reason: "\(image.width)x\(image.height), but \(source) is \(size.width)x\(size.height)")
                }
            }
            let png = "\(root)/SegmentationClass/\(stem).png"
            // PNGs are written whole (temporary file + rename), so one that exists is finished.
            if FileManager.default.fileExists(atPath: png) {
                outcome.kept = true
                if options.imageLabels == .labelMaps { outcome.present = try LabelMap.read(from: png).classesPresent }
            } else {
                let (map, warnings) = try paint(anns, in: file, image: image, labels: label, crowd: options.crowd)
                outcome.warnings = warnings
                let present = map.classesPresent
                outcome.present = present
                outcome.classWithoutPixels = anns.contains { !present.contains(label[$0.categoryID]!) }
                try map.writePNG(to: png)
                outcome.written = true
            }
        } catch {
            outcome.error = error.localizedDescription
        }
        return outcome
    }

    /// The split's image-label file (`image_labels_<split>.txt`, classes by name, a comment line
    /// saying where they come from) and its list (`ImageSets/Segmentation/<split>.txt`).
    static func writeLists(
        ids: [String], imageLabels: (Int) -> [UInt8], names: [String], annotations: String, options: Options, root: String
    ) throws {
        var labelLines = [
            "# image-level labels from \(URL(fileURLWithPath: annotations).lastPathComponent): "
                + (options.imageLabels == .annotations ? "every annotation's class, crowd too" : "the classes in each label map")
        ]
        for (n, id) in ids.enumerated() {
            labelLines.append(([id] + imageLabels(n).map { names[Int($0)] }).joined(separator: " "))
        }
        try writeText(labelLines.joined(separator: "\n") + "\n", to: "\(root)/image_labels_\(options.split).txt")
        try writeText(ids.joined(separator: "\n") + "\n", to: "\(root)/ImageSets/Segmentation/\(options.split).txt")
    }

    /// Ids and references, all checked before anything is written: unique image and category ids,
    /// at most 254 categories with distinct names, every annotation's image and category known,
    /// distinct file names. Returns each category's label value, the class names (background
    /// first) and each image's annotation indices.
    /// - Throws: `COCOError` naming the file, the id or the field.
    static func checkReferences(_ file: COCOAnnotationFile, path: String) throws -> (
        label: [Int: UInt8], names: [String], byImage: [[Int32]]
    ) {
        var problems: [String] = []
        var imageIndex: [Int: Int] = [:]
        imageIndex.reserveCapacity(file.images.count)
        for (i, image) in file.images.enumerated() {
            if imageIndex.updateValue(i, forKey: image.id) != nil {
                throw COCOError.duplicateID(path: path, what: "image", id: image.id)
            }
        }
        let categories = file.categories.sorted { $0.id < $1.id }
        guard categories.count <= 254 else { throw COCOError.tooManyCategories(path: path, count: categories.count) }
        var label: [Int: UInt8] = [:]
        for (i, category) in categories.enumerated() {
            if label.updateValue(UInt8(i + 1), forKey: category.id) != nil {
                throw COCOError.duplicateID(path: path, what: "category", id: category.id)
            }
        }
        // The image-label format splits on spaces, tabs and commas: "traffic light" → "traffic_light".
        let names = ["background"] + categories.map { Self.className($0.name) }
        guard Set(names).count == names.count else {
            throw COCOError.badField(
                path: path, owner: "categories", field: "name", reason: "repeats a name (or names one 'background')")
        }
        var byImage = [[Int32]](repeating: [], count: file.images.count)
        for (k, a) in file.annotations.enumerated() {
            guard let i = imageIndex[a.imageID] else {
                problems.append(COCOError.unknownImage(path: path, annotationID: a.id, imageID: a.imageID).localizedDescription)
                continue
            }
            guard label[a.categoryID] != nil else {
                problems.append(
                    COCOError.unknownCategory(path: path, annotationID: a.id, categoryID: a.categoryID).localizedDescription)
                continue
            }
            byImage[i].append(Int32(k))
        }
        if !problems.isEmpty { throw several(path, problems) }
        var stems = Set<String>()
        for image in file.images {
            let stem = Self.stem(of: image.fileName)
            guard stems.insert(stem).inserted else {
                throw COCOError.badField(
                    path: path, owner: "image \(image.id)", field: "file_name",
                    reason: "'\(image.fileName)' repeats another image's name")
            }
        }
        return (label, names, byImage)
    }

    /// Paints one image's annotations (see the type's comment for the rule).
    /// - Returns: the label map and warnings (polygons with fewer than three points, skipped).
    /// - Throws: `COCOError.rleSize` / `.badSegmentation` naming the annotation.
    public static func paint(
        _ annotations: [COCOAnnotation], in file: COCOAnnotationFile, image: COCOImage, labels: [Int: UInt8], crowd: CrowdRule
    ) throws -> (LabelMap, [String]) {
        let (h, w) = (image.height, image.width)
        var warnings: [String] = []
        var masks: [(annotation: COCOAnnotation, parts: [COCORunLengths], area: Double, order: Int)] = []
        for (order, a) in annotations.enumerated() {
            var parts: [COCORunLengths] = []
            switch try file.segmentation(of: a) {
            case .polygons(let polygons):
                // pycocotools fails on an empty list (frPyObjects reads pyobj[0]); the object has no pixels.
                if polygons.isEmpty {
                    warnings.append("\(file.path): annotation \(a.id): an empty polygon list; nothing painted")
                }
                for (p, polygon) in polygons.enumerated() {
                    // pycocotools drops an odd last coordinate without a word; say so.
                    if polygon.count % 2 != 0 {
                        warnings.append(
                            "\(file.path): annotation \(a.id): polygon \(p) has an odd number of coordinates (\(polygon.count)); the last is ignored"
                        )
                    }
                    // pycocotools reads a 4-number part as a box and fails on fewer; neither is a polygon.
                    guard polygon.count >= 6 else {
                        warnings.append(
                            "\(file.path): annotation \(a.id): polygon \(p) has \(polygon.count / 2) point\(polygon.count / 2 == 1 ? "" : "s") (fewer than 3); skipped"
                        )
                        continue
                    }
                    // COCO's largest polygons walk ~10^4 points; 10^7 (160 MB) means vertices far off the image.
                    let points = COCOMask.boundaryPoints(polygon)
                    guard points <= 10_000_000 else {
                        throw COCOError.badSegmentation(
                            path: file.path, annotationID: a.id,
                            reason: "polygon \(p) spans \(points) boundary points (vertices far outside the \(w)x\(h) image)")
                    }
                    parts.append(COCOMask.polygon(polygon, height: h, width: w))
                }
            case .runLengths(let runs):
                guard runs.height == h && runs.width == w else {
                    throw COCOError.rleSize(
                        path: file.path, annotationID: a.id,
                        reason: "size \(runs.height)x\(runs.width) (HxW) but image \(image.id) is \(h)x\(w)")
                }
                let total = runs.counts.reduce(0) { $0 + Int($1) }
                guard total == h * w else {
                    throw COCOError.rleSize(
                        path: file.path, annotationID: a.id,
                        reason: "runs cover \(total) pixels but image \(image.id) has \(h * w) (\(h)x\(w))")
                }
                parts.append(runs)
            }
            masks.append((a, parts, a.area ?? Double(parts.reduce(0) { $0 + $1.area }), order))
        }
        // coco2voc: sorted(annotations, key=area), a stable sort.
        masks.sort { ($0.area, $0.order) < ($1.area, $1.order) }
        var map = LabelMap(width: w, height: h, filledWith: 0)
        map.values.withUnsafeMutableBufferPointer { buffer in
            for pass in crowd == .ignore ? [false, true] : [false] {
                for m in masks where crowd == .class || m.annotation.isCrowd == pass {
                    let value = crowd == .ignore && m.annotation.isCrowd ? LabelMap.ignore : labels[m.annotation.categoryID]!
                    // Painting each part over unpainted pixels paints their union (pycocotools' merge).
                    for part in m.parts { part.paint(into: buffer.baseAddress!, value: value, onlyOver: 0) }
                }
            }
        }
        return (map, warnings)
    }

    /// A category name as one word of an image-label file (spaces, tabs and commas → "_").
    public static func className(_ name: String) -> String {
        String(name.map { $0 == " " || $0 == "\t" || $0 == "," ? "_" : $0 })
    }

    /// The file name without its extension: the image id in the VOC layout.
    public static func stem(of fileName: String) -> String {
        let name = fileName.split(separator: "/").last.map(String.init) ?? fileName
        let base = name.lastIndex(of: ".").flatMap { $0 == name.startIndex ? nil : String(name[..<$0]) } ?? name
        // Split lists and image-label files separate fields by spaces, tabs and commas: a name
        // holding one would be read back as another id. (Other characters, accents included, stay.)
        return String(base.map { $0.isWhitespace || $0 == "," ? "_" : $0 })
    }

    /// ROOT/image_labels.txt: every converted split's image labels in one file (a recipe's
    /// data.image_labels serves all splits; COCO's train and val names never collide).
    static func writeCombinedImageLabels(root: String) throws {
        let files = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? [])
            .filter { $0.hasPrefix("image_labels_") && $0.hasSuffix(".txt") }.sorted()
        var seen = Set<String>()
        var lines = ["# every split of this root: " + files.joined(separator: ", ") + " (written by wsss coco convert)"]
        for name in files {
            guard let text = try? String(contentsOfFile: "\(root)/\(name)", encoding: .utf8) else { continue }
            for line in text.split(whereSeparator: \.isNewline) where !line.hasPrefix("#") {
                let id = String(line.split(separator: " ").first ?? "")
                if !id.isEmpty && seen.insert(id).inserted { lines.append(String(line)) }
            }
        }
        try writeText(lines.joined(separator: "\n") + "\n", to: "\(root)/image_labels.txt")
    }

    static func several(_ path: String, _ problems: [String]) -> COCOError {
        if problems.count == 1 { return .several(path: path, problems: problems, more: 0) }
        return .several(path: path, problems: Array(problems.prefix(20)), more: max(0, problems.count - 20))
    }

    static func writeText(_ text: String, to path: String) throws {
        do { try Data(text.utf8).write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
            throw COCOError.writeFailed(path: path, reason: error.localizedDescription)
        }
    }

    /// A symbolic link to the image (absolute), else a hard link, else a copy; an existing
    /// entry pointing at the same file is kept.
    static func link(_ source: String, to destination: String, imageID: Int) throws {
        guard FileManager.default.fileExists(atPath: source) else { throw COCOError.missingImage(path: source, imageID: imageID) }
        var info = stat()
        if lstat(destination, &info) == 0 {
            if let target = try? FileManager.default.destinationOfSymbolicLink(atPath: destination), target == source { return }
            if (info.st_mode & S_IFMT) == S_IFREG { return }
            unlink(destination)
        }
        if symlink(source, destination) == 0 || Glibc.link(source, destination) == 0 { return }
        do { try FileManager.default.copyItem(atPath: source, toPath: destination) } catch {
            throw COCOError.writeFailed(path: destination, reason: error.localizedDescription)
        }
    }
}

/// A thread-safe counter for progress.
final class Counter: @unchecked Sendable {
    private var value = 0
    private let lock = NSLock()
    func increment() -> Int {
        lock.lock()
        defer { lock.unlock() }
        value += 1
        return value
    }
}
