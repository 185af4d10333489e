import Foundation

extension Tensor {
    /// Exact GELU, as torch.nn.functional.gelu(approximate="none"): y = x · Φ(x) with
    /// Φ(x) = ½(1 + erf(x/√2)). Backward: dy · (Φ(x) + x · φ(x)), φ the standard normal density.
    public func gelu() -> Tensor {
        let y = Tensor(uninitialized: shape)
        Kernels.gelu(storage.base, y.storage.base, count: count)
        let x = detached()
        return recorded(y, name: "gelu", inputs: [self]) { dy in
            let dx = Tensor(uninitialized: dy.shape)
            Kernels.geluBackward(x.storage.base, dy.storage.base, dx.storage.base, count: dx.count)
            return [dx]
        }
    }
}

extension Kernels {
    /// y = x · ½(1 + erf(x/√2)) (may alias).
    public static func gelu(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int) {
        parallelFor(count, minimumPerThread: 1 << 14) { r in
            for i in r { y[i] = 0.5 * x[i] * (1 + erff(x[i] * Float(0.5.squareRoot()))) }
        }
    }

    /// dx = dy · (Φ(x) + x · φ(x)) (may alias dy).
    public static func geluBackward(
        _ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>, count: Int
    ) {
        let density = Float(1 / (2 * Double.pi).squareRoot())
        parallelFor(count, minimumPerThread: 1 << 14) { r in
            for i in r {
                let v = x[i]
                let cdf = 0.5 * (1 + erff(v * Float(0.5.squareRoot())))
                dx[i] = dy[i] * (cdf + v * density * expf(-0.5 * v * v))
            }
        }
    }
}
