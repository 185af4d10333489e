import Foundation

// The loops of the losses (Ops/Tensor+Losses.swift).
extension Kernels {
    /// Σ -log p[label] over the labelled pixels of log-probabilities [outer, classes, inner] with
    /// labels [outer · inner], in Double, and how many pixels were labelled (not `ignoreIndex`).
    public static func crossEntropySum(
        logProbabilities lp: UnsafePointer<Float>, labels: UnsafeBufferPointer<Int32>,
        split: (outer: Int, classes: Int, inner: Int), ignoreIndex: Int32
    ) -> (total: Double, valid: Int) {
        let (n, c, inner) = split
        var total = 0.0, valid = 0
        for b in 0..<n {
            for i in 0..<inner {
                let l = labels[b * inner + i]
                if l == ignoreIndex { continue }
                precondition(
                    l >= 0 && Int(l) < c, "crossEntropy: label \(l) outside 0..<\(c) and not the ignore index \(ignoreIndex)")
                total -= Double(lp[(b * c + Int(l)) * inner + i])
                valid += 1
            }
        }
        return (total, valid)
    }

    /// Logit gradient of the mean cross-entropy: dx = (softmax - onehot) · scale at labelled
    /// pixels; ignored pixels are left untouched (pass zeros).
    public static func crossEntropyBackward(
        logProbabilities lp: UnsafePointer<Float>, labels: UnsafeBufferPointer<Int32>,
        split: (outer: Int, classes: Int, inner: Int), ignoreIndex: Int32, scale: Float, dx d: UnsafeMutablePointer<Float>
    ) {
        let (n, c, inner) = split
        for b in 0..<n {
            for i in 0..<inner {
                let l = labels[b * inner + i]
                if l == ignoreIndex { continue }
                for k in 0..<c {
                    let j = (b * c + k) * inner + i
                    d[j] = (expf(lp[j]) - (k == Int(l) ? 1 : 0)) * scale
                }
            }
        }
    }

    /// Σ -(t·log σ(x) + (1-t)·log σ(-x)) over `count` logits and 0/1 targets, in Double.
    public static func multiLabelSoftMarginSum(
        logits x: UnsafePointer<Float>, targets t: UnsafePointer<Float>, count: Int
    ) -> Double {
        // log σ(x) = min(x, 0) - log1p(exp(-|x|)), stable for large |x|.
        func logSigmoid(_ v: Float) -> Double { Double(Swift.min(v, 0)) - log1p(Foundation.exp(-Double(abs(v)))) }
        var total = 0.0
        for i in 0..<count { total -= Double(t[i]) * logSigmoid(x[i]) + Double(1 - t[i]) * logSigmoid(-x[i]) }
        return total
    }
}
