import Foundation

/// A seeded pseudo-random generator (SplitMix64): the same seed gives the same stream on every
/// machine. Code that needs randomness takes one explicitly; the system generator is never used.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A uniform Float in [0, 1).
    public mutating func nextUniform() -> Float { Float(next() >> 40) * (1 / Float(1 << 24)) }

    /// A standard normal sample (Box–Muller).
    public mutating func nextNormal() -> Float {
        let u1 = Double(next() >> 11) * (1 / Double(1 << 53)) + .leastNonzeroMagnitude
        let u2 = Double(next() >> 11) * (1 / Double(1 << 53))
        return Float((-2 * log(u1)).squareRoot() * cos(2 * .pi * u2))
    }
}

extension Tensor {
    /// Normal samples with the given mean and standard deviation.
    public static func randomNormal(
        _ shape: [Int], mean: Float = 0, standardDeviation: Float = 1, using generator: inout SeededGenerator
    ) -> Tensor {
        let t = Tensor(uninitialized: shape)
        for i in 0..<t.count { t.storage.base[i] = mean + standardDeviation * generator.nextNormal() }
        return t
    }
}
