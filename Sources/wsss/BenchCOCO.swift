import ArgumentParser
import Autograd
import Datasets
import Foundation

extension Bench {
    /// `wsss bench coco`: the COCO converter on a generated instances file of train2014's size.
    struct COCOBench: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "coco",
            abstract: "Time reading and converting a generated COCO instances file of train2014's size (JSON Lines).",
            discussion: """
                Generates, in a temporary folder, an instances file shaped like instances_train2014.json: 82,783 images of \
                480–640 px, ~7.3 annotations each (~604k) as polygons of 6–45 vertices with two decimals, 1% of them crowd \
                compressed RLE, plus bbox and area (≈ 300 MB). Lines: coco_parse (reading the file: annotations_per_s, \
                mb_per_s) and coco_convert (the whole conversion without image links, PNGs included: images_per_s, \
                annotations_per_s); each with seconds and peak_rss_mb, the process's peak resident memory so far. \
                The folder is removed afterwards.
                """)

        @Option(help: ArgumentHelp("Images in the generated file (train2014 has 82,783).", valueName: "n"))
        var images = 82_783

        @Option(help: ArgumentHelp("Mean annotations per image (train2014: ≈ 604k / 82,783).", valueName: "x"))
        var annotationsPerImage = 7.3

        @Flag(help: "Only read the file; skip the conversion.")
        var parseOnly = false

        @Option(
            help: ArgumentHelp(
                "Folder for the generated file and output. (default: the system temporary folder)", valueName: "dir"))
        var directory: String?

        func validate() throws {
            guard images >= 1 else { throw ValidationError("--images must be at least 1, got \(images)") }
            guard annotationsPerImage >= 0 && annotationsPerImage <= 100 else {
                throw ValidationError("--annotations-per-image must be 0 to 100")
            }
        }

        func run() throws {
            let folder = (directory ?? NSTemporaryDirectory()) + "/wsss-bench-coco-\(getpid())"
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: folder) }
            let json = folder + "/instances_bench.json"
            let generated = Date()
            let (count, bytes) = try Self.generate(to: json, images: images, annotationsPerImage: annotationsPerImage)
            Log.info(
                String(
                    format: "bench coco: generated %d annotations, %.0f MB in %.1f s", count, Double(bytes) / 1e6,
                    Date().timeIntervalSince(generated)))

            let t0 = DispatchTime.now().uptimeNanoseconds
            let file = try COCOAnnotationFile(path: json)
            let parse = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            printJSON([
                "name": "coco_parse", "annotations": file.annotations.count, "images": file.images.count,
                "file_mb": Double(bytes / 100_000) / 10,
                "seconds": (parse * 1000).rounded() / 1000,
                "annotations_per_s": (Double(file.annotations.count) / parse).rounded(),
                "mb_per_s": (Double(bytes) / 1e6 / parse).rounded(), "peak_rss_mb": peakResidentMegabytes(),
            ])
            fflush(stdout)
            guard !parseOnly else { return }
            var options = COCOConverter.Options()
            (options.linkImages, options.unannotated) = (false, .skip)
            let bar = Box<ProgressBar?>(nil)
            let t1 = DispatchTime.now().uptimeNanoseconds
            let report = try COCOConverter.convert(
                annotations: json, images: folder, root: folder + "/out", options: options,
                progress: { done, total in
                    if done == 0 { bar.set(ProgressBar("bench coco convert", total: total)) } else { bar.value?.advance() }
                })
            let convert = Double(DispatchTime.now().uptimeNanoseconds - t1) / 1e9
            printJSON([
                "name": "coco_convert", "annotations": report.annotations, "images": report.images,
                "seconds": (convert * 10).rounded() / 10,
                "images_per_s": (Double(report.images) / convert).rounded(),
                "annotations_per_s": (Double(report.annotations) / convert).rounded(),
                "peak_rss_mb": peakResidentMegabytes(), "threads": ProcessInfo.processInfo.activeProcessorCount,
            ])
        }

        /// Writes a seeded instances file; returns the annotation count and the file size.
        static func generate(to path: String, images: Int, annotationsPerImage: Double) throws -> (Int, Int) {
            guard FileManager.default.createFile(atPath: path, contents: nil), let handle = FileHandle(forWritingAtPath: path)
            else {
                throw CommandFailure("\(path): cannot create the benchmark file")
            }
            defer { try? handle.close() }
            var g = SeededGenerator(seed: 2014)
            var out = Emitter(handle: handle)
            var sizes: [(Int, Int)] = []
            out.emit("{\"info\":{\"description\":\"wsss bench coco\",\"year\":2014},\"licenses\":[],\"images\":[")
            for i in 0..<images {
                let landscape = g.next() % 3 != 0
                let (w, h) = landscape ? (640, 427 + Int(g.next() % 54)) : (427 + Int(g.next() % 54), 640)
                sizes.append((w, h))
                out.emit(
                    "\(i == 0 ? "" : ","){\"license\":3,\"file_name\":\"COCO_train2014_\(String(format: "%012d", i + 1)).jpg\",")
                out.emit(
                    "\"coco_url\":\"http://images.cocodataset.org/train2014/x.jpg\",\"height\":\(h),\"width\":\(w),\"date_captured\":\"2013-11-14 16:28:13\",\"id\":\(i + 1)}"
                )
            }
            out.emit("],\"annotations\":[")
            var annotationCount = 0
            let categories = COCOCategories.official
            for i in 0..<images {
                let (w, h) = sizes[i]
                // A per-image count with the requested mean (0 … 2·mean).
                let n = Int((Double(g.nextUniform()) * 2 * annotationsPerImage).rounded())
                for _ in 0..<n {
                    let category = categories[Int(g.next() % UInt64(categories.count))].id
                    let crowd = g.next() % 100 == 0
                    let (cx, cy) = (Double(g.nextUniform()) * Double(w), Double(g.nextUniform()) * Double(h))
                    let radius = 4 + Double(g.nextUniform()) * 0.25 * Double(min(w, h))
                    out.emit("\(annotationCount == 0 ? "" : ","){\"segmentation\":")
                    if crowd {
                        out.emitCrowd(cx: cx, cy: cy, radius: radius, width: w, height: h, generator: &g)
                    } else {
                        out.emitPolygon(cx: cx, cy: cy, radius: radius, width: w, height: h, generator: &g)
                    }
                    out.emit(",\"area\":")
                    out.decimal(Double.pi * radius * radius * 0.64)
                    out.emit(",\"iscrowd\":\(crowd ? 1 : 0),\"image_id\":\(i + 1),\"bbox\":[")
                    for (k, v) in [max(0, cx - radius), max(0, cy - radius), 2 * radius, 2 * radius].enumerated() {
                        if k > 0 { out.emit(",") }
                        out.decimal(v)
                    }
                    out.emit("],\"category_id\":\(category),\"id\":\(annotationCount + 1)}")
                    annotationCount += 1
                    out.flush()
                }
            }
            out.emit("],\"categories\":[")
            out.emit(
                categories.map { "{\"supercategory\":\"thing\",\"id\":\($0.id),\"name\":\"\($0.name)\"}" }.joined(separator: ","))
            out.emit("]}")
            out.flush(force: true)
            return (annotationCount, out.written)
        }

        /// JSON text buffered and written in 2 MB pieces.
        struct Emitter {
            let handle: FileHandle
            var out: [UInt8] = []
            var written = 0

            init(handle: FileHandle) {
                self.handle = handle
                out.reserveCapacity(1 << 22)
            }

            mutating func emit(_ text: String) { out.append(contentsOf: text.utf8) }

            mutating func flush(force: Bool = false) {
                guard force || out.count > 1 << 21 else { return }
                handle.write(Data(out))
                written += out.count
                out.removeAll(keepingCapacity: true)
            }

            /// Two decimals, as COCO's polygon coordinates.
            mutating func decimal(_ v: Double) {
                let hundredths = Int((v * 100).rounded())
                emit("\(hundredths / 100).\(hundredths % 100 < 10 ? "0" : "")\(hundredths % 100)")
            }

            /// A column of runs of a blob, as compressed RLE (~1–2 kB, like COCO's crowds).
            mutating func emitCrowd(
                cx: Double, cy: Double, radius: Double, width w: Int, height h: Int, generator g: inout SeededGenerator
            ) {
                var runs: [UInt32] = []
                var position = 0
                let x0 = max(0, Int(cx - radius)), x1 = min(w - 1, Int(cx + radius))
                let y0 = max(0, Int(cy - radius)), y1 = min(h - 1, Int(cy + radius))
                for x in x0...max(x0, x1) {
                    let jitter = Int(g.next() % 5)
                    let top = x * h + min(h - 1, y0 + jitter), bottom = x * h + y1
                    guard bottom > top else { continue }
                    runs.append(UInt32(top - position))
                    runs.append(UInt32(bottom - top))
                    position = bottom
                }
                runs.append(UInt32(h * w - position))
                let counts = COCOMask.encodeCounts(runs).replacingOccurrences(of: "\\", with: "\\\\")
                emit("{\"counts\":\"\(counts)\",\"size\":[\(h),\(w)]}")
            }

            /// A jittered polygon around the centre.
            mutating func emitPolygon(
                cx: Double, cy: Double, radius: Double, width w: Int, height h: Int, generator g: inout SeededGenerator
            ) {
                let vertices = 6 + Int(g.next() % 40)
                emit("[[")
                for v in 0..<vertices {
                    let angle = 2 * Double.pi * Double(v) / Double(vertices)
                    let rho = radius * (0.6 + 0.4 * Double(g.nextUniform()))
                    if v > 0 { emit(",") }
                    decimal(max(0, min(Double(w), cx + rho * cos(angle))))
                    emit(",")
                    decimal(max(0, min(Double(h), cy + rho * sin(angle))))
                }
                emit("]]")
            }
        }
    }
}
