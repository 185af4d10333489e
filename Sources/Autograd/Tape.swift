/// One entry of the define-by-run tape: an op's output, the nodes of its inputs and the closure
/// that maps the output's gradient to its inputs' gradients.
///
/// Nodes point only at their inputs, so the tape of a loss is the graph reachable from its node;
/// `Tensor.tape()` lists it in execution order. A leaf node (a parameter) has no backward closure
/// and keeps the gradient accumulated into it until `zeroGrad()`.
public final class Node {
    /// The op that produced the tensor ("conv2d", "relu", …) or "leaf".
    public let name: String
    /// Shape of the tensor this node belongs to; incoming gradients are reduced to it.
    public let shape: [Int]
    /// Nodes of the op's inputs; nil for inputs that need no gradient.
    public let inputs: [Node?]
    /// Maps the output gradient to one gradient per input (nil where not needed).
    /// Released after use, which frees the buffers it captured.
    var backward: ((Tensor) -> [Tensor?])?
    /// The accumulated gradient.
    public internal(set) var grad: Tensor?
    /// Whether `grad` is a buffer of this node's own (safe to add into in place).
    private var ownsGrad = false

    init(name: String, shape: [Int], inputs: [Node?], backward: ((Tensor) -> [Tensor?])?) {
        self.name = name
        self.shape = shape
        self.inputs = inputs
        self.backward = backward
    }

    /// Whether this node is a leaf (a tensor made with `requiringGrad()`).
    public var isLeaf: Bool { name == "leaf" }

    /// Adds `gradient` (reduced to this node's shape first) into `grad`.
    func accumulate(_ gradient: Tensor) {
        let g = gradient.shape == shape ? gradient : gradient.unbroadcast(to: shape)
        guard let existing = grad else {
            grad = g.detached()
            ownsGrad = false
            return
        }
        // The first gradient may be shared with another node (add's backward hands the same
        // tensor to both inputs), so copy before adding in place.
        if !ownsGrad {
            grad = existing.copy()
            ownsGrad = true
        }
        Kernels.addInPlace(grad!.storage.base, g.storage.base, count: g.count)
    }

    /// Replaces the accumulated gradient with `gradient` (shape `shape`), which this node then
    /// owns: how a data-parallel step puts the gradient summed over the ranks back.
    public func replaceGrad(with gradient: Tensor) {
        precondition(gradient.shape == shape, "replaceGrad: gradient \(gradient.shape) for a node of shape \(shape)")
        grad = gradient.detached()
        ownsGrad = true
    }

    /// Forgets the accumulated gradient.
    public func zeroGrad() {
        grad = nil
        ownsGrad = false
    }
}

extension Tensor {
    /// This tensor as a leaf that collects gradients: a parameter, or an input under test.
    public func requiringGrad() -> Tensor {
        var t = detached()
        t.node = Node(name: "leaf", shape: shape, inputs: [], backward: nil)
        return t
    }

    /// Whether gradients flow into this tensor.
    public var requiresGrad: Bool { node != nil }

    /// The gradient accumulated by `backward()` for a leaf (nil before any backward pass).
    public var grad: Tensor? { node?.grad }

    /// Records `output` on the tape as the result of op `name` on `inputs`, unless gradients are
    /// off (`withoutGrad`) or no input requires them. `backward` receives the output gradient and
    /// returns one gradient per input, in order (nil for inputs that need none); a gradient may
    /// have a broadcast shape, it is reduced to the input's shape by the tape.
    public func recorded(
        _ output: Tensor, name: String, inputs: [Tensor], backward: @escaping (Tensor) -> [Tensor?]
    ) -> Tensor {
        Tensor.record(output, name: name, inputs: inputs, backward: backward)
    }

    /// See `recorded(_:name:inputs:backward:)`.
    public static func record(
        _ output: Tensor, name: String, inputs: [Tensor], backward: @escaping (Tensor) -> [Tensor?]
    ) -> Tensor {
        guard GradMode.isEnabled, inputs.contains(where: { $0.requiresGrad }) else { return output }
        var y = output
        y.node = Node(name: name, shape: output.shape, inputs: inputs.map(\.node), backward: backward)
        return y
    }

    /// Back-propagates from this tensor: `gradient` is dL/d(self), ones for a scalar loss when
    /// omitted. Leaves accumulate into `grad`; the tape behind this tensor is consumed.
    ///
    /// `leafCompleted`, when given, is called once for every leaf reached, as soon as the last op
    /// that feeds it has run, so its `grad` is final for this pass (PyTorch DDP's gradient-ready
    /// hooks: a data-parallel step starts summing a bucket of gradients while backward goes on).
    public func backward(gradient: Tensor? = nil, leafCompleted: ((Node) -> Void)? = nil) {
        guard let root = node else {
            preconditionFailure("backward: tensor of shape \(shape) is not on the tape (no input requires grad)")
        }
        let seed =
            gradient
            ?? {
                precondition(count == 1, "backward: a non-scalar output of shape \(shape) needs an explicit gradient")
                return Tensor(repeating: 1, shape: shape)
            }()
        precondition(seed.shape == shape, "backward: gradient shape \(seed.shape) differs from output shape \(shape)")
        let order = Tensor.topologicalOrder(from: root)
        // Per leaf: how many edges from ops still to run point at it.
        var pending: [ObjectIdentifier: Int] = [:]
        if leafCompleted != nil {
            for n in order where n.backward != nil {
                for case let input? in n.inputs where input.isLeaf { pending[ObjectIdentifier(input), default: 0] += 1 }
            }
        }
        root.accumulate(seed)
        for n in order.reversed() {
            guard let backward = n.backward else { continue }
            n.backward = nil
            if let g = n.grad {
                n.zeroGrad()
                for (input, gi) in zip(n.inputs, backward(g)) {
                    if let input, let gi { input.accumulate(gi) }
                }
            }
            guard let leafCompleted else { continue }
            for case let input? in n.inputs where input.isLeaf {
                let id = ObjectIdentifier(input)
                guard let left = pending[id] else { continue }
                if left == 1 {
                    pending[id] = nil
                    leafCompleted(input)
                } else {
                    pending[id] = left - 1
                }
            }
        }
    }

    /// Nodes reachable from this tensor, inputs before the ops that use them.
    public func tape() -> [Node] {
        guard let node else { return [] }
        return Tensor.topologicalOrder(from: node)
    }

    /// Iterative depth-first post-order (deep networks would overflow a recursive walk).
    static func topologicalOrder(from root: Node) -> [Node] {
        var order: [Node] = []
        var visited = Set<ObjectIdentifier>()
        var stack: [(Node, Int)] = [(root, 0)]
        visited.insert(ObjectIdentifier(root))
        while let (node, next) = stack.popLast() {
            if next < node.inputs.count {
                stack.append((node, next + 1))
                if let child = node.inputs[next], visited.insert(ObjectIdentifier(child)).inserted {
                    stack.append((child, 0))
                }
            } else {
                order.append(node)
            }
        }
        return order
    }

    /// Sums a broadcast gradient back to `shape` (leading axes added by broadcasting, and axes
    /// where `shape` has 1).
    func unbroadcast(to target: [Int]) -> Tensor {
        precondition(target.count <= rank, "unbroadcast: cannot reduce \(shape) to \(target)")
        let padded = Array(repeating: 1, count: rank - target.count) + target
        var axes: [Int] = []
        for (axis, (n, t)) in zip(shape, padded).enumerated() where n != t {
            precondition(t == 1, "unbroadcast: cannot reduce \(shape) to \(target)")
            axes.append(axis)
        }
        let reduced = withoutGrad { sum(alongAxes: axes, keepingDims: true) }
        return reduced.reshaped(to: target)
    }
}

/// Whether ops record themselves on the tape. Thread-local: a `withoutGrad` scope on one thread
/// does not affect another.
public enum GradMode {
    @TaskLocal static var enabledValue = true

    /// Whether recording is on for the current thread or task.
    public static var isEnabled: Bool { enabledValue }
}

/// Runs `body` with recording off: inference builds no tape and keeps no buffers for backward.
public func withoutGrad<R>(_ body: () throws -> R) rethrows -> R {
    try GradMode.$enabledValue.withValue(false) { try body() }
}
