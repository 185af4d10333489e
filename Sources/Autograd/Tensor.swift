import Foundation

/// A Float32 tensor: contiguous, row-major, NCHW for images.
///
/// `Tensor` is a value type over a shared `TensorStorage`. When it takes part in a computation
/// that needs gradients it carries a `Node` of the tape (see `Tape.swift`); a parameter is a
/// tensor whose leaf node collects its gradient (`requiringGrad()`).
public struct Tensor {
    /// Dimensions, outermost first. `[]` is a scalar.
    public let shape: [Int]
    /// The values, `shape.product` of them.
    public let storage: TensorStorage
    /// The tape node that produced this tensor, or the leaf node of a parameter; nil for constants.
    public internal(set) var node: Node?

    /// A tensor of the given shape over existing storage.
    public init(shape: [Int], storage: TensorStorage) {
        precondition(
            shape.allSatisfy { $0 >= 0 } && shape.product == storage.count,
            "Tensor: shape \(shape) does not hold \(storage.count) elements")
        self.shape = shape
        self.storage = storage
        self.node = nil
    }

    /// A zero-filled tensor.
    public init(zeros shape: [Int]) {
        self.init(shape: shape, storage: TensorStorage(count: shape.product))
    }

    /// An uninitialised tensor, for kernels that write every element.
    public init(uninitialized shape: [Int]) {
        self.init(shape: shape, storage: TensorStorage(count: shape.product, zeroed: false))
    }

    /// A zero-filled tensor with the shape of `other`.
    public init(zerosLike other: Tensor) { self.init(zeros: other.shape) }

    /// A tensor filled with `value`.
    public init(repeating value: Float, shape: [Int]) {
        self.init(uninitialized: shape)
        storage.base.update(repeating: value, count: count)
    }

    /// A tensor holding `values` in row-major order.
    public init(shape: [Int], values: [Float]) {
        precondition(shape.product == values.count, "Tensor: shape \(shape) needs \(shape.product) values, got \(values.count)")
        self.init(uninitialized: shape)
        values.withUnsafeBufferPointer { storage.base.update(from: $0.baseAddress!, count: values.count) }
    }

    /// A scalar tensor (shape `[]`).
    public init(scalar: Float) { self.init(shape: [], values: [scalar]) }

    /// Number of elements.
    public var count: Int { storage.count }
    /// Number of dimensions.
    public var rank: Int { shape.count }
    /// All values in row-major order (a copy).
    public var scalars: [Float] { Array(UnsafeBufferPointer(start: storage.base, count: count)) }
    /// The single value of a one-element tensor.
    public var item: Float {
        precondition(count == 1, "Tensor.item: shape \(shape) has \(count) elements")
        return storage.base[0]
    }

    /// The value at a multi-index (for tests and small lookups, not for hot loops).
    public subscript(_ index: Int...) -> Float {
        storage.base[flatIndex(index)]
    }

    func flatIndex(_ index: [Int]) -> Int {
        precondition(index.count == rank, "Tensor: index \(index) for shape \(shape)")
        var flat = 0
        for (i, n) in zip(index, shape) {
            precondition(i >= 0 && i < n, "Tensor: index \(index) out of shape \(shape)")
            flat = flat * n + i
        }
        return flat
    }

    /// A copy with its own storage and no tape node.
    public func copy() -> Tensor {
        let y = Tensor(uninitialized: shape)
        y.storage.base.update(from: storage.base, count: count)
        return y
    }

    /// The same values without a tape node: gradients do not flow through the result.
    public func detached() -> Tensor { Tensor(shape: shape, storage: storage) }

    /// Splits the shape around `axis` into (outer, size, inner) element counts.
    public func split(at axis: Int) -> (outer: Int, size: Int, inner: Int) {
        precondition(axis >= 0 && axis < rank, "Tensor: axis \(axis) out of range for shape \(shape)")
        return (shape[..<axis].product, shape[axis], shape[(axis + 1)...].product)
    }
}

extension Tensor: CustomStringConvertible {
    public var description: String {
        let shown = scalars.prefix(8).map { String(format: "%.5g", $0) }.joined(separator: ", ")
        return "Tensor(\(shape), [\(shown)\(count > 8 ? ", …" : "")]\(node != nil ? ", grad" : ""))"
    }
}

extension Collection where Element == Int {
    /// Product of the elements; 1 for an empty collection (the element count of a scalar).
    public var product: Int { reduce(1, *) }
}

// Tensors cross threads in the data loader. Their storage is never written by ops after
// creation, and tape nodes are only touched by the thread that runs backward.
extension Tensor: @unchecked Sendable {}
