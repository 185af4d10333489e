import Autograd
import Foundation
import Imaging

/// One box Grounding DINO found for a caption.
public struct GroundedBox: Sendable, Equatable {
    /// (x0, y0, x1, y1) in pixels of the source image.
    public var box: (Double, Double, Double, Double)
    /// The query's best token probability (the official `logits.max(dim=1)`).
    public var score: Double
    /// The caption words whose probability passed the text threshold, dots removed.
    public var phrase: String
    /// The highest probability among the phrase's tokens (0 for an empty phrase).
    public var textScore: Double
    /// Which query of the model it is.
    public var query: Int

    public static func == (a: GroundedBox, b: GroundedBox) -> Bool {
        a.box == b.box && a.score == b.score && a.phrase == b.phrase && a.textScore == b.textScore && a.query == b.query
    }
}

/// The official `predict` thresholds (inference.py; Grounded-SAM's demo uses 0.3 and 0.25).
public struct GroundingOptions: Sendable, Equatable, Codable {
    /// Keep a query when its best token probability is above this (strictly).
    public var boxThreshold = 0.35
    /// A token belongs to the phrase when its probability is above this (strictly).
    public var textThreshold = 0.25
    /// The official `remove_combined`: the phrase only from the caption part around the best token.
    public var removeCombined = false
    /// The shorter side the image is resized to, and the longer side's limit.
    public var size = 800
    public var maximumSize = 1333

    public init(boxThreshold: Double = 0.35, textThreshold: Double = 0.25, removeCombined: Bool = false) {
        (self.boxThreshold, self.textThreshold, self.removeCombined) = (boxThreshold, textThreshold, removeCombined)
    }
}

/// A Grounding DINO model with its tokenizer: images and captions in, boxes and phrases out.
public struct GroundingDetector {
    public let model: GroundingDINO
    public let tokenizer: BertTokenizer
    public var options: GroundingOptions

    /// Bytes of freed activations kept for reuse during one forward pass (`reusingLargeBuffers`):
    /// at Swin-T's 800x1333 this saves about a third of the time for a quarter more peak memory.
    public static let bufferReuse = 256 << 20

    public init(model: GroundingDINO, tokenizer: BertTokenizer, options: GroundingOptions = .init()) {
        (self.model, self.tokenizer, self.options) = (model, tokenizer, options)
    }

    /// The official `predict(model, image, caption, box_threshold, text_threshold)` on an RGB
    /// image: the caption lower-cased and ended with ".", the image resized and normalised, the
    /// kept queries in query order with boxes in the image's pixels.
    public func detect(in image: Image, caption: String) -> [GroundedBox] {
        let input = GroundingDINOTransform.input(image, size: options.size, maximumSize: options.maximumSize)
        let prompt = TokenizedPrompt(caption: TokenizedPrompt.normalizedCaption(caption), tokenizer: tokenizer)
        // Large activations of recurring sizes are handed on instead of mapped fresh (and zeroed) each time.
        let output = TensorStorage.reusingLargeBuffers(limit: Self.bufferReuse) {
            withoutGrad { model(image: input, prompt: prompt) }
        }
        return boxes(output, prompt: prompt, width: image.width, height: image.height)
    }

    /// The post-processing of `predict` on the model's output.
    public func boxes(_ output: GroundingDINOOutput, prompt: TokenizedPrompt, width: Int, height: Int) -> [GroundedBox] {
        let (q, t) = (output.logits.shape[0], output.logits.shape[1])
        let probabilities = output.logits.sigmoid().scalars
        let boxes = output.boxes.scalars
        let separators = prompt.ids.indices.filter {
            [tokenizer.classID, tokenizer.separatorID, tokenizer.vocabulary["."] ?? -1].contains(prompt.ids[$0])
        }
        var out: [GroundedBox] = []
        for query in 0..<q {
            let row = Array(probabilities[(query * t)..<((query + 1) * t)])
            let best = row.max() ?? 0
            guard Double(best) > options.boxThreshold else { continue }
            var (left, right) = (0, 255)
            if options.removeCombined, !separators.isEmpty {
                let argmax = row.firstIndex(of: best) ?? 0
                // bisect_left, and Python's index −1 when the best token is [CLS].
                let insert = separators.firstIndex { $0 >= argmax } ?? separators.count
                right = insert < separators.count ? separators[insert] : 255
                left = separators[(insert - 1 + separators.count) % separators.count]
            }
            let columns = (0..<t).filter { $0 > left && $0 < right && Double(row[$0]) > options.textThreshold }
            let ids = columns.map { prompt.ids[$0] }
            let phrase = tokenizer.decode(ids).replacingOccurrences(of: ".", with: "")
            let (cx, cy, w, h) = (
                Double(boxes[query * 4]), Double(boxes[query * 4 + 1]), Double(boxes[query * 4 + 2]), Double(boxes[query * 4 + 3])
            )
            let (W, H) = (Double(width), Double(height))
            out.append(
                GroundedBox(
                    box: ((cx - w / 2) * W, (cy - h / 2) * H, (cx + w / 2) * W, (cy + h / 2) * H), score: Double(best),
                    phrase: phrase, textScore: Double(columns.map { row[$0] }.max() ?? 0), query: query))
        }
        return out
    }
}
