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
        var total = 0.0, valid = 0
        let lp = logProbabilities.storage.base
        for b in 0..<n {
            for i in 0..<inner {
                let l = labels.values[b * inner + i]
                if l == ignoreIndex { continue }
                precondition(
                    l >= 0 && Int(l) < c, "crossEntropy: label \(l) outside 0..<\(c) and not the ignore index \(ignoreIndex)")
                total -= Double(lp[(b * c + Int(l)) * inner + i])
                valid += 1
            }
        }
        let loss = Tensor(scalar: valid == 0 ? 0 : Float(total / Double(valid)))
        return record(loss, name: "cross_entropy", inputs: [logits]) { dy in
            let dx = Tensor(zeros: logProbabilities.shape)
            guard valid > 0 else { return [dx] }
            // d/dlogits = (softmax - onehot) / valid at labelled pixels, 0 at ignored ones.
            let scale = dy.item / Float(valid)
            let d = dx.storage.base
            for b in 0..<n {
                for i in 0..<inner {
                    let l = labels.values[b * inner + i]
                    if l == ignoreIndex { continue }
                    for k in 0..<c {
                        let j = (b * c + k) * inner + i
                        d[j] = (expf(lp[j]) - (k == Int(l) ? 1 : 0)) * scale
                    }
                }
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
        let x = logits.storage.base, t = targets.storage.base
        // log σ(x) = min(x, 0) - log1p(exp(-|x|)), stable for large |x|.
        func logSigmoid(_ v: Float) -> Double { Double(Swift.min(v, 0)) - log1p(exp(-Double(abs(v)))) }
        var total = 0.0
        for i in 0..<logits.count { total -= Double(t[i]) * logSigmoid(x[i]) + Double(1 - t[i]) * logSigmoid(-x[i]) }
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
