import Testing

@testable import Autograd

/// The Winograd weight transforms against G g Gᵀ computed in Double, and the four-kernel vector
/// path of F(4x4, 3x3) bit for bit against its one-kernel remainder path.
@Suite struct WinogradWeightTests {
    /// G of F(4x4, 3x3) (winograd4.c) and of F(2x2, 3x3) (Winograd.swift).
    static let g4: [[Double]] = [
        [0.25, 0, 0], [-1.0 / 6, -1.0 / 6, -1.0 / 6], [-1.0 / 6, 1.0 / 6, -1.0 / 6], [1.0 / 24, 1.0 / 12, 1.0 / 6],
        [1.0 / 24, -1.0 / 12, 1.0 / 6], [0, 0, 1],
    ]
    static let g2: [[Double]] = [[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]]

    func reference(_ kernel: ArraySlice<Float>, _ g: [[Double]]) -> [Double] {
        let k = Array(kernel).map(Double.init)
        let n = g.count
        var out = [Double](repeating: 0, count: n * n)
        for r in 0..<n {
            for s in 0..<n {
                var sum = 0.0
                for i in 0..<3 { for j in 0..<3 { sum += g[r][i] * k[3 * i + j] * g[s][j] } }
                out[n * r + s] = sum
            }
        }
        return out
    }

    @Test(arguments: [2, 4])
    func transformsMatchGgGtAndTheVectorPathMatchesTheScalarOne(tile: Int) {
        // 5 outputs × 7 inputs: rows of 7 kernels (four in vector lanes, three one by one), with
        // in-channel 4 repeating in-channel 0, so lane 0 and the remainder see the same kernel; the
        // input gradient's transform takes columns of 5 kernels, out-channel 4 repeating 0.
        let (outs, ins) = (5, 7)
        var g = SeededGenerator(seed: 21)
        var w = (0..<(outs * ins * 9)).map { _ in Float(g.nextUniform() * 2 - 1) }
        for o in 0..<outs { for t in 0..<9 { w[(o * ins + 4) * 9 + t] = w[(o * ins) * 9 + t] } }
        for i in 0..<ins { for t in 0..<9 { w[(4 * ins + i) * 9 + t] = w[i * 9 + t] } }
        let matrix = tile == 4 ? Self.g4 : Self.g2
        let elements = (tile + 2) * (tile + 2)
        w.withUnsafeBufferPointer { p in
            let u = Kernels.winogradWeight(p.baseAddress!, outChannels: outs, inChannels: ins, tile: tile)
            for o in 0..<outs {
                for i in 0..<ins {
                    let want = reference(w[((o * ins + i) * 9)..<((o * ins + i) * 9 + 9)], matrix)
                    for xi in 0..<elements {
                        let got = u.storage.base[xi * u.stride + o * ins + i]
                        #expect(abs(Double(got) - want[xi]) <= 1e-6, "tile \(tile) U_\(xi)[\(o), \(i)]")
                    }
                }
                for xi in 0..<elements {
                    let (lane, remainder) = (u.storage.base[xi * u.stride + o * ins], u.storage.base[xi * u.stride + o * ins + 4])
                    #expect(lane.bitPattern == remainder.bitPattern, "tile \(tile) U_\(xi) row \(o)")
                }
            }
            // The input gradient's transform: W rotated by 180°, channels swapped.
            let t = Kernels.winogradTransposedWeight(p.baseAddress!, outChannels: outs, inChannels: ins, tile: tile)
            for i in 0..<ins {
                for o in 0..<outs {
                    let base = (o * ins + i) * 9
                    let rotated = (0..<9).map { w[base + 8 - $0] }
                    let want = reference(rotated[...], matrix)
                    for xi in 0..<elements {
                        #expect(abs(Double(t.storage.base[xi * t.stride + i * outs + o]) - want[xi]) <= 1e-6)
                    }
                }
                for xi in 0..<elements {
                    let (lane, remainder) = (
                        t.storage.base[xi * t.stride + i * outs], t.storage.base[xi * t.stride + i * outs + 4]
                    )
                    #expect(lane.bitPattern == remainder.bitPattern, "tile \(tile) transposed U_\(xi) row \(i)")
                }
            }
        }
    }
}
