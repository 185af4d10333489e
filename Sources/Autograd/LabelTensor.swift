/// Integer class labels: [N, H, W] for segmentation (255 = ignore), or [N] for classification.
public struct LabelTensor: Equatable, Sendable {
    /// The value that marks an ignored pixel (PASCAL VOC boundaries, uncertain pseudo-labels).
    public static let ignoreIndex: Int32 = 255

    public let shape: [Int]
    public var values: [Int32]

    public init(shape: [Int], values: [Int32]) {
        precondition(
            shape.product == values.count, "LabelTensor: shape \(shape) needs \(shape.product) values, got \(values.count)")
        self.shape = shape
        self.values = values
    }

    /// Nearest-neighbour resize of [N, H, W] labels to [N, size.height, size.width], as DeepLab
    /// shrinks labels to each logit map's size: torch mode "nearest" by default, or Pillow's
    /// NEAREST (`rule: .pil`, deeplab-pytorch main.py `resize_labels`).
    public func resizedNearest(to size: (height: Int, width: Int), rule: NearestRule = .torch) -> LabelTensor {
        precondition(shape.count == 3, "LabelTensor.resizedNearest: shape \(shape) is not [N, H, W]")
        let rows = ResizeAxis(nearestFrom: shape[1], to: size.height, rule: rule)
        let cols = ResizeAxis(nearestFrom: shape[2], to: size.width, rule: rule)
        var out = [Int32]()
        out.reserveCapacity(shape[0] * size.height * size.width)
        for n in 0..<shape[0] {
            for i in rows.lower {
                let row = (n * shape[1] + i) * shape[2]
                for j in cols.lower { out.append(values[row + j]) }
            }
        }
        return LabelTensor(shape: [shape[0], size.height, size.width], values: out)
    }
}
