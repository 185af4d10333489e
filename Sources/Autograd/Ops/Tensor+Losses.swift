import Foundation

extension Tensor {
    /// Cross-entropy of logits against integer labels, averaged over the labelled pixels, as
    /// torch.nn.functional.cross_entropy(logits, labels, ignore_index=255, reduction="mean").
    ///
    /// When every pixel is ignored the loss is 0 with a zero gradient (torch returns NaN there;
    /// a crop of only boundary pixels must not poison training).
    /// - Parameters:
    ///   - logits: [N, C, H, W] (or [N, C]).
    ///   - labels: [N, H, W] (or [N]) with values in 0..<C or `ignoreIndex`.
    /// - Returns: a scalar.
    public static func crossEntropy(
        logits: Tensor, labels: LabelTensor, ignoreIndex: Int32 = LabelTensor.ignoreIndex
    ) -> Tensor {
        precondition(logits.rank >= 2, "crossEntropy: logits \(logits.shape) need a class axis")
        let expected = [logits.shape[0]] + logits.shape[2...]
        precondition(
            labels.shape == expected, "crossEntropy: labels \(labels.shape) for logits \(logits.shape) (expected \(expected))")
        let (n, c, inner) = logits.split(at: 1)
        let logProbabilities = Tensor(uninitialized: logits.shape)
        Kernels.softmax(logits.storage.base, logProbabilities.storage.base, split: (n, c, inner), log: true)
        let (total, valid) = labels.values.withUnsafeBufferPointer { l in
            Kernels.crossEntropySum(
                logProbabilities: logProbabilities.storage.base, labels: l, split: (n, c, inner),
                ignoreIndex: ignoreIndex)
        }
        let loss = Tensor(scalar: valid == 0 ? 0 : Float(total / Double(valid)))
        return record(loss, name: "cross_entropy", inputs: [logits]) { dy in
            let dx = Tensor(zeros: logProbabilities.shape)
            guard valid > 0 else { return [dx] }
            // d/dlogits = (softmax - onehot) / valid at labelled pixels, 0 at ignored ones.
            let scale = dy.item / Float(valid)
            labels.values.withUnsafeBufferPointer { l in
                Kernels.crossEntropyBackward(
                    logProbabilities: logProbabilities.storage.base, labels: l, split: (n, c, inner),
                    ignoreIndex: ignoreIndex, scale: scale, dx: dx.storage.base)
            }
            return [dx]
        }
    }

    /// Multi-label soft-margin loss, as torch.nn.functional.multilabel_soft_margin_loss:
    /// mean over samples and classes of -(y·log σ(x) + (1-y)·log σ(-x)).
    /// - Parameters:
    ///   - logits: [N, C].
    ///   - targets: [N, C] with 0/1 entries (image-level labels).
    /// - Returns: a scalar.
    public static func multiLabelSoftMarginLoss(logits: Tensor, targets: Tensor) -> Tensor {
        precondition(
            logits.rank == 2 && logits.shape == targets.shape,
            "multiLabelSoftMarginLoss: logits \(logits.shape) and targets \(targets.shape) must both be [N, C]")
        let total = Kernels.multiLabelSoftMarginSum(
            logits: logits.storage.base, targets: targets.storage.base, count: logits.count)
        let count = Float(logits.count)
        let loss = Tensor(scalar: Float(total / Double(logits.count)))
        let (cx, ct) = (logits.detached(), targets.detached())
        return record(loss, name: "multilabel_soft_margin", inputs: [logits, targets]) { dy in
            // d/dx = (σ(x) - y) / (N·C)
            let dx = Tensor(uninitialized: cx.shape)
            let scale = dy.item / count
            Kernels.zip(cx.storage.base, ct.storage.base, dx.storage.base, count: cx.count) { v, y in
                (1 / (1 + expf(-v)) - y) * scale
            }
            return [dx, nil]
        }
    }
}
