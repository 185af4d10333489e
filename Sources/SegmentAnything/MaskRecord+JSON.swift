import Foundation

extension MaskRecord {
    /// The records as official `scripts/amg.py --convert-to-rle` writes them per image
    /// (`json.dump(masks, f)` of `generate`'s list): keys in the official record order, Python's
    /// default separators (", " and ": "), floats as Python `repr` (shortest round trip, which is
    /// also Swift's `description`; nan as NaN), ASCII strings with `\` escaped.
    /// - Throws: `AutomaticMaskGeneratorError.binaryMasksHaveNoJSON` for binary-mask records
    ///   (amg.py writes those as PNG folders); `path` names the file in that message.
    public static func amgJSON(_ records: [MaskRecord], path: String = "<records>") throws -> String {
        var out = "["
        for (k, r) in records.enumerated() {
            if k > 0 { out += ", " }
            let segmentation: String
            switch r.segmentation {
            case .binaryMask: throw AutomaticMaskGeneratorError.binaryMasksHaveNoJSON(path: path)
            case .uncompressedRLE(let size, let counts): segmentation = "{\"size\": \(list(size)), \"counts\": \(list(counts))}"
            case .cocoRLE(let size, let counts): segmentation = "{\"size\": \(list(size)), \"counts\": \(string(counts))}"
            }
            let point = "[" + r.pointCoords.map { "[\(float($0.x)), \(float($0.y))]" }.joined(separator: ", ") + "]"
            out += "{\"segmentation\": \(segmentation), \"area\": \(r.area), \"bbox\": \(list(r.bbox, asFloats: r.bboxIsFloat)), "
            out += "\"predicted_iou\": \(float(Double(r.predictedIoU))), \"point_coords\": \(point), "
            out +=
                "\"stability_score\": \(float(Double(r.stabilityScore))), \"crop_box\": \(list(r.cropBox, asFloats: r.cropBoxIsFloat))}"
        }
        return out + "]"
    }

    /// Writes `amgJSON(records)` to `path` (`<output>/<image id>.json` in amg.py), which
    /// PseudoLabels' `SA1BProposals` reads back.
    /// - Throws: as `amgJSON`, or the file system's error.
    public static func writeAMGJSON(_ records: [MaskRecord], to path: String) throws {
        try Data(amgJSON(records, path: path).utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
    }

    private static func list(_ values: [Int], asFloats: Bool = false) -> String {
        "[" + values.map { asFloats ? float(Double($0)) : String($0) }.joined(separator: ", ") + "]"
    }

    /// Python float repr: Swift's shortest round-trip digits, with Python's names for non-finite
    /// values (json.dump writes NaN and Infinity).
    private static func float(_ v: Double) -> String {
        if v.isNaN { return "NaN" }
        if v.isInfinite { return v > 0 ? "Infinity" : "-Infinity" }
        return v.description
    }

    /// A JSON string as json.dumps writes it (ensure_ascii).
    private static func string(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            default:
                if u.value < 0x20 || u.value > 0x7e {
                    for unit in String(u).utf16 { out += String(format: "\\u%04x", unit) }
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        return out + "\""
    }
}
