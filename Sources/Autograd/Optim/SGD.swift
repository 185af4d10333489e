import Foundation

/// A set of parameters sharing learning-rate and weight-decay multipliers (DeepLab-v2 trains the
/// backbone at 1x, ASPP weights at 10x and ASPP biases at 20x without decay).
public struct ParameterGroup {
    /// Parameters: tensors made with `requiringGrad()`, updated in place.
    public var parameters: [Tensor]
    /// Multiplies the scheduled learning rate.
    public var learningRateMultiplier: Float
    /// Multiplies the optimizer's weight decay (0 turns decay off for the group).
    public var weightDecayMultiplier: Float

    public init(_ parameters: [Tensor], learningRateMultiplier: Float = 1, weightDecayMultiplier: Float = 1) {
        precondition(parameters.allSatisfy(\.requiresGrad), "ParameterGroup: every parameter must be made with requiringGrad()")
        self.parameters = parameters
        self.learningRateMultiplier = learningRateMultiplier
        self.weightDecayMultiplier = weightDecayMultiplier
    }
}

/// Stochastic gradient descent with momentum and weight decay, PyTorch's convention
/// (torch.optim.SGD, dampening 0, no Nesterov):
///   g ← grad + wd·p;  v ← μ·v + g (v = g on the first step);  p ← p - lr·v.
/// (Caffe scales the velocity by the learning rate instead; the two agree while lr is constant.)
public final class SGD {
    public private(set) var groups: [ParameterGroup]
    /// Base learning rate; the schedule sets it before each step.
    public var learningRate: Float
    public let momentum: Float
    public let weightDecay: Float
    /// Momentum buffers, one per parameter in group order (nil until a parameter's first step).
    public internal(set) var velocities: [[Tensor?]]

    public init(groups: [ParameterGroup], learningRate: Float, momentum: Float = 0.9, weightDecay: Float = 0) {
        self.groups = groups
        self.learningRate = learningRate
        self.momentum = momentum
        self.weightDecay = weightDecay
        velocities = groups.map { Array(repeating: nil, count: $0.parameters.count) }
    }

    /// Applies one update from the accumulated gradients. Parameters without a gradient are
    /// skipped (as PyTorch skips `grad is None`).
    public func step() {
        for (gi, group) in groups.enumerated() {
            let lr = learningRate * group.learningRateMultiplier
            let wd = weightDecay * group.weightDecayMultiplier
            for (pi, p) in group.parameters.enumerated() {
                guard let g = p.grad else { continue }
                let first = velocities[gi][pi] == nil
                let v = velocities[gi][pi] ?? Tensor(uninitialized: p.shape)
                velocities[gi][pi] = v
                Kernels.sgdUpdate(
                    weights: p.storage.base, gradient: g.storage.base, velocity: v.storage.base, count: p.count,
                    learningRate: lr, momentum: momentum, weightDecay: wd, firstStep: first)
            }
        }
    }

    /// Forgets every parameter's gradient (call after `step()`).
    public func zeroGrad() {
        for group in groups { for p in group.parameters { p.node?.zeroGrad() } }
    }

    /// Restores momentum buffers (from a checkpoint), in group order.
    public func setVelocities(_ buffers: [[Tensor?]]) {
        precondition(
            buffers.map(\.count) == groups.map(\.parameters.count), "SGD: momentum buffers do not match the parameter groups")
        velocities = buffers
    }
}

/// The "poly" learning-rate policy of DeepLab: lr = base · (1 - e / maxIterations)^power, where
/// e is the 0-based iteration rounded down to a multiple of `stepSize`.
///
/// With `stepSize` 1 the rate changes every iteration (the caffe "poly" policy). deeplab-pytorch
/// (libs/utils/lr_scheduler.py, `PolynomialLR`, stepped with `epoch=iteration` after each
/// optimizer step in main.py's train loop) recomputes it only when its epoch is a multiple of
/// `step_size` (10 in configs/voc12.yaml), so 1-based iteration j trains at the rate computed
/// for epoch 10·⌊(j-1)/10⌋: our 0-based iteration i = j-1 gives the same e = stepSize·⌊i/stepSize⌋.
public struct PolySchedule: Sendable {
    public let baseLearningRate: Float
    public let maxIterations: Int
    public let power: Float
    /// Iterations between updates of the rate (1: every iteration).
    public let stepSize: Int

    /// - Precondition: `maxIterations` and `stepSize` are positive.
    public init(baseLearningRate: Float, maxIterations: Int, power: Float = 0.9, stepSize: Int = 1) {
        precondition(maxIterations > 0, "PolySchedule: maxIterations must be positive")
        precondition(stepSize > 0, "PolySchedule: stepSize \(stepSize) must be positive")
        self.baseLearningRate = baseLearningRate
        self.maxIterations = maxIterations
        self.power = power
        self.stepSize = stepSize
    }

    /// The learning rate for 0-based `iteration`.
    public func learningRate(at iteration: Int) -> Float {
        let stepped = Swift.min(iteration / stepSize * stepSize, maxIterations)
        // In Double, as the reference's Python floats: lr · (1 - e / iter_max) ** power.
        let progress = Double(stepped) / Double(maxIterations)
        return Float(Double(baseLearningRate) * pow(1 - progress, Double(power)))
    }
}

/// Gradient accumulation (caffe's iter_size): `steps` micro-batches, each loss scaled by
/// 1/steps and back-propagated, make one optimizer step, so a batch of B·steps fits in the
/// memory of B.
public struct GradientAccumulation: Sendable {
    /// Micro-batches per optimizer step.
    public let steps: Int

    public init(steps: Int) {
        precondition(steps >= 1, "GradientAccumulation: steps must be at least 1")
        self.steps = steps
    }

    /// The factor each micro-batch loss is multiplied by before backward.
    public var lossScale: Float { 1 / Float(steps) }

    /// Whether the optimizer steps after 0-based micro-batch `index`.
    public func stepsAfter(microBatch index: Int) -> Bool { (index + 1) % steps == 0 }
}
