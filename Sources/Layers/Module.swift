import Autograd

/// A network part with named parameters, buffers and children. Names join with dots into the
/// PyTorch `state_dict` keys (`layer3.4.conv2.weight`), so converted weights load by name.
///
/// Parameters are tensors made with `requiringGrad()`; loading or an optimizer step writes
/// into their storage in place, so references held elsewhere (the optimizer) stay valid.
public protocol Module: AnyObject {
    /// This module's own parameters (not its children's), under their PyTorch names.
    var namedParameters: [(String, Tensor)] { get }
    /// This module's own buffers (batch-norm statistics).
    var namedBuffers: [(String, Tensor)] { get }
    /// Child modules under their PyTorch names.
    var namedChildren: [(String, Module)] { get }
    /// Switches training behaviour (batch statistics) of this module only; use `train(_:)`.
    func setTrainingFlag(_ training: Bool)
}

extension Module {
    public var namedParameters: [(String, Tensor)] { [] }
    public var namedBuffers: [(String, Tensor)] { [] }
    public var namedChildren: [(String, Module)] { [] }
    public func setTrainingFlag(_ training: Bool) {}

    /// Every parameter in the tree, depth first, as `prefix.child.name`.
    public func parameters(prefix: String = "") -> [(name: String, tensor: Tensor)] {
        collect(prefix: prefix) { $0.namedParameters }
    }

    /// Every buffer in the tree.
    public func buffers(prefix: String = "") -> [(name: String, tensor: Tensor)] {
        collect(prefix: prefix) { $0.namedBuffers }
    }

    /// Parameters and buffers in PyTorch `state_dict` order (per module: parameters, then
    /// buffers, then children).
    public func stateDict(prefix: String = "") -> [(name: String, tensor: Tensor)] {
        var out: [(String, Tensor)] = []
        for (name, t) in namedParameters + namedBuffers { out.append((prefix + name, t)) }
        for (name, child) in namedChildren { out += child.stateDict(prefix: prefix + name + ".") }
        return out
    }

    /// Makes every trainable-statistics `BatchNorm2d` in the tree synchronise its batch
    /// statistics with `sum` (SyncBatchNorm across data-parallel processes), or stop (nil).
    public func synchronizeBatchNorm(_ sum: CrossProcessSum?) {
        if let bn = self as? BatchNorm2d { bn.crossProcessSum = sum }
        for (_, child) in namedChildren { child.synchronizeBatchNorm(sum) }
    }

    /// Sets the arithmetic of every `Linear` in the tree for inference: bf16 packs each weight
    /// once (after loading), fp32 drops the packed copies. `auto` follows the CPU.
    public func setPrecision(_ precision: ComputePrecision) {
        let bf16 = precision.resolved == .bf16
        if let linear = self as? Linear { linear.useBF16(bf16) }
        for (_, child) in namedChildren { child.setPrecision(precision) }
    }

    /// Parameters that receive gradients (frozen ones are excluded by their modules).
    public var trainableParameters: [(name: String, tensor: Tensor)] { parameters().filter { $0.tensor.requiresGrad } }

    /// Training (batch statistics, unless frozen) or evaluation mode, for the whole tree.
    public func train(_ training: Bool = true) {
        setTrainingFlag(training)
        for (_, child) in namedChildren { child.train(training) }
    }

    /// Forgets all accumulated gradients.
    public func zeroGrad() {
        for (_, p) in parameters() { p.node?.zeroGrad() }
    }

    private func collect(prefix: String, _ own: (Module) -> [(String, Tensor)]) -> [(name: String, tensor: Tensor)] {
        var out: [(String, Tensor)] = own(self).map { (prefix + $0.0, $0.1) }
        for (name, child) in namedChildren { out += child.collect(prefix: prefix + name + ".", own) }
        return out
    }
}

/// An ordered list of children named "0", "1", … (torch.nn.Sequential's keys).
public final class Sequential: Module {
    public let modules: [Module]
    let forward: (Tensor) -> Tensor

    public init(_ modules: [Module], forward: @escaping (Tensor) -> Tensor) {
        self.modules = modules
        self.forward = forward
    }

    public var namedChildren: [(String, Module)] { modules.enumerated().map { (String($0.offset), $0.element) } }
    public func callAsFunction(_ x: Tensor) -> Tensor { forward(x) }
}

extension Tensor {
    /// Copies `source`'s values into this tensor's storage (shapes must match): how weights are
    /// loaded without replacing the parameter objects an optimizer holds.
    public func assign(from source: Tensor) {
        precondition(source.shape == shape, "assign: \(source.shape) into \(shape)")
        storage.base.update(from: source.storage.base, count: count)
    }
}
