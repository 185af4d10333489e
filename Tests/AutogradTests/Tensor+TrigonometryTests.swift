import Autograd
import Foundation
import Testing

/// sin and cos (used by SAM's random-Fourier position encoding): values against Foundation's
/// Float functions, gradients by central differences.
@Suite struct TrigonometryTests {
    @Test func valuesAreFoundations() {
        let x = Tensor(shape: [5], values: [-7.5, -1, 0, 0.5, 12.25])
        #expect(x.sin().scalars == x.scalars.map { Foundation.sin($0) })
        #expect(x.cos().scalars == x.scalars.map { Foundation.cos($0) })
    }

    @Test func gradientsMatchCentralDifferences() {
        var generator = SeededGenerator(seed: 3)
        let x = Tensor.randomNormal([3, 4], standardDeviation: 2, using: &generator)
        checkGradients([x]) { $0[0].sin() }
        checkGradients([x]) { $0[0].cos() }
        checkGradients([x]) { ($0[0] * 3).sin() * $0[0].cos() }
    }
}
