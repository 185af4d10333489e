/// Element-wise arithmetic with numpy/PyTorch broadcasting. Gradients come back in the
/// broadcast shape; the tape sums them down to each input's shape.
extension Tensor {
    /// The broadcast shape of two shapes (trailing axes aligned; 1 stretches).
    public static func broadcastShape(_ a: [Int], _ b: [Int]) -> [Int] {
        let rank = Swift.max(a.count, b.count)
        let pa = Array(repeating: 1, count: rank - a.count) + a
        let pb = Array(repeating: 1, count: rank - b.count) + b
        return zip(pa, pb).map { x, y in
            precondition(x == y || x == 1 || y == 1, "broadcast: shapes \(a) and \(b) are incompatible")
            return Swift.max(x, y)
        }
    }

    /// f applied to broadcast pairs of `a` and `b`; no tape.
    static func broadcastMap(
        _ a: Tensor, _ b: Tensor, fast: Kernels.BinaryOp? = nil, _ f: (Float, Float) -> Float
    ) -> Tensor {
        if a.shape == b.shape, let fast {
            let y = Tensor(uninitialized: a.shape)
            Kernels.binary(fast, a.storage.base, b.storage.base, y.storage.base, count: y.count)
            return y
        }
        if a.shape == b.shape {
            let y = Tensor(uninitialized: a.shape)
            Kernels.zip(a.storage.base, b.storage.base, y.storage.base, count: y.count, f)
            return y
        }
        let shape = broadcastShape(a.shape, b.shape)
        let y = Tensor(uninitialized: shape)
        if let fast, let block = repeatedBlock(a.shape, b.shape, in: shape) {
            // One operand repeats whole over the other's leading axes ([B, N, C] + [1, N, C] or + [C]):
            // the dedicated loop on each block, the same f per element.
            let (ap, bp, yp) = (a.storage.base, b.storage.base, y.storage.base)
            let aRepeats = a.count == block
            parallelFor(y.count / block, minimumPerThread: Swift.max(1, (1 << 16) / block)) { range in
                for r in range {
                    let o = r * block
                    Kernels.binary(fast, aRepeats ? ap : ap + o, aRepeats ? bp + o : bp, yp + o, count: block)
                }
            }
            return y
        }
        Kernels.broadcastZip(a.storage.base, a.shape, b.storage.base, b.shape, y.storage.base, shape: shape, f)
        return y
    }

    /// The element count of the smaller operand when it is, apart from leading 1s, the trailing
    /// axes of the broadcast shape and the larger operand has the broadcast shape itself: then
    /// the smaller one repeats as one contiguous block. nil otherwise.
    static func repeatedBlock(_ a: [Int], _ b: [Int], in shape: [Int]) -> Int? {
        let (big, small) = a == shape ? (a, b) : (b == shape ? (b, a) : ([], []))
        guard !big.isEmpty else { return nil }
        let trimmed = Array(small.drop { $0 == 1 })
        guard !trimmed.isEmpty, trimmed.count <= big.count, Array(big.suffix(trimmed.count)) == trimmed else { return nil }
        let count = trimmed.reduce(1, *)
        return count >= 16 ? count : nil
    }

    /// This tensor's values repeated to a broadcast-compatible larger shape; no tape.
    public func expanded(to target: [Int]) -> Tensor {
        if shape == target { return self }
        precondition(Tensor.broadcastShape(shape, target) == target, "expand: \(shape) does not broadcast to \(target)")
        return Tensor.broadcastMap(self, Tensor(zeros: target)) { a, _ in a }
    }

    /// a + b.
    public static func + (a: Tensor, b: Tensor) -> Tensor {
        let y = broadcastMap(a, b, fast: .add, +)
        return record(y, name: "add", inputs: [a, b]) { dy in [dy, dy] }
    }

    /// a - b.
    public static func - (a: Tensor, b: Tensor) -> Tensor {
        let y = broadcastMap(a, b, fast: .subtract, -)
        return record(y, name: "sub", inputs: [a, b]) { dy in [dy, b.requiresGrad ? -dy : nil] }
    }

    /// a * b.
    public static func * (a: Tensor, b: Tensor) -> Tensor {
        let y = broadcastMap(a, b, fast: .multiply, *)
        let (ca, cb) = (a.detached(), b.detached())
        return record(y, name: "mul", inputs: [a, b]) { dy in
            [
                a.requiresGrad ? broadcastMap(dy, cb, fast: .multiply, *) : nil,
                b.requiresGrad ? broadcastMap(dy, ca, fast: .multiply, *) : nil,
            ]
        }
    }

    /// a / b.
    public static func / (a: Tensor, b: Tensor) -> Tensor {
        let y = broadcastMap(a, b, /)
        let (ca, cb) = (a.detached(), b.detached())
        return record(y, name: "div", inputs: [a, b]) { dy in
            [
                a.requiresGrad ? broadcastMap(dy, cb, /) : nil,
                b.requiresGrad ? broadcastMap(broadcastMap(dy, ca, *), broadcastMap(cb, cb, *)) { -$0 / $1 } : nil,
            ]
        }
    }

    /// -x.
    public static prefix func - (x: Tensor) -> Tensor { x * -1 }

    /// x + s.
    public static func + (x: Tensor, s: Float) -> Tensor {
        let y = Tensor(uninitialized: x.shape)
        Kernels.map(x.storage.base, y.storage.base, count: x.count) { $0 + s }
        return record(y, name: "add_scalar", inputs: [x]) { dy in [dy] }
    }

    /// x - s.
    public static func - (x: Tensor, s: Float) -> Tensor { x + (-s) }

    /// s + x.
    public static func + (s: Float, x: Tensor) -> Tensor { x + s }

    /// x * s.
    public static func * (x: Tensor, s: Float) -> Tensor {
        let y = Tensor(uninitialized: x.shape)
        Kernels.map(x.storage.base, y.storage.base, count: x.count) { $0 * s }
        return record(y, name: "mul_scalar", inputs: [x]) { dy in
            let dx = Tensor(uninitialized: dy.shape)
            Kernels.map(dy.storage.base, dx.storage.base, count: dy.count) { $0 * s }
            return [dx]
        }
    }

    /// s * x.
    public static func * (s: Float, x: Tensor) -> Tensor { x * s }

    /// x / s.
    public static func / (x: Tensor, s: Float) -> Tensor { x * (1 / s) }
}
