import Autograd
import Testing

/// Parity fixtures: scripts/make_fixtures.py, resize_cases.
@Suite struct ResizeTests {
    @Test(arguments: try OpFixtures.cases("bilinear").map(\.name))
    func bilinearMatchesPyTorch(_ name: String) throws {
        let fixture = try OpFixtures.Case("/bilinear/\(name)")
        let (h, w, align) = (try fixture.int("height"), try fixture.int("width"), try fixture.int("align_corners") == 1)
        try expectParity(fixture, inputs: ["x"], caseName: name) { t in t[0].resizedBilinear(to: (h, w), alignCorners: align) }
    }

    @Test(arguments: try OpFixtures.cases("bilinear_factor").map(\.name))
    func bilinearScaleFactorMatchesPyTorch(_ name: String) throws {
        let fixture = try OpFixtures.Case("/bilinear_factor/\(name)")
        let factor = try fixture.double("factor")
        try expectParity(fixture, inputs: ["x"], caseName: name) { t in
            t[0].resizedBilinear(scaleFactor: factor, alignCorners: false)
        }
    }

    @Test(arguments: try OpFixtures.cases("nearest").map(\.name))
    func nearestMatchesPyTorch(_ name: String) throws {
        let fixture = try OpFixtures.Case("/nearest/\(name)")
        let (h, w) = (try fixture.int("height"), try fixture.int("width"))
        try expectParity(fixture, inputs: ["x"], caseName: name) { t in t[0].resizedNearest(to: (h, w)) }
    }

    @Test(arguments: [true, false])
    func bilinearFiniteDifferences(alignCorners: Bool) {
        let x = randn([1, 2, 4, 5], seed: 3)
        checkGradients([x]) { t in t[0].resizedBilinear(to: (7, 3), alignCorners: alignCorners) }
    }

    @Test(arguments: [true, false])
    func croppedResizeEqualsResizeThenSlice(alignCorners: Bool) {
        let x = randn([2, 3, 5, 7], seed: 6)
        let y = withoutGrad { x.resizedBilinear(to: (13, 17), alignCorners: alignCorners, croppedTo: 2..<11, 0..<9) }
        let reference = withoutGrad {
            x.resizedBilinear(to: (13, 17), alignCorners: alignCorners).slice(alongAxis: 2, 2..<11).slice(alongAxis: 3, 0..<9)
        }
        #expect(y.shape == [2, 3, 9, 9])
        #expect(y.scalars == reference.scalars)
        checkGradients([randn([1, 2, 4, 5], seed: 7)]) { t in
            t[0].resizedBilinear(to: (9, 8), alignCorners: alignCorners, croppedTo: 1..<6, 2..<8)
        }
    }

    @Test(arguments: [0.5, 1.5, 2.0])
    func scaleFactorFiniteDifferences(factor: Double) {
        checkGradients([randn([1, 2, 6, 5], seed: 8)]) { t in t[0].resizedBilinear(scaleFactor: factor, alignCorners: false) }
    }

    @Test func nearestFiniteDifferences() {
        checkGradients([randn([1, 1, 5, 4], seed: 4)]) { t in t[0].resizedNearest(to: (3, 7)) }
    }

    @Test func labelsShrinkLikeNearestResize() {
        // Labels and a float map resized the same way pick the same pixels.
        let values = (0..<(2 * 9 * 7)).map { Int32($0 % 21) }
        let labels = LabelTensor(shape: [2, 9, 7], values: values)
        let asFloat = Tensor(shape: [2, 1, 9, 7], values: values.map(Float.init))
        let small = labels.resizedNearest(to: (4, 3))
        let reference = withoutGrad { asFloat.resizedNearest(to: (4, 3)) }
        #expect(small.shape == [2, 4, 3])
        #expect(small.values.map(Float.init) == reference.scalars)
    }
}

/// The two-pass resize used when enlarging gives the direct formula's bits.
@Suite struct SeparableResizeTests {
    @Test(arguments: [(7, 5, 29, 17, false), (8, 8, 32, 32, true), (6, 9, 13, 4, false), (5, 4, 20, 12, false)])
    func twoPassesGiveTheDirectBits(_ size: (h: Int, w: Int, oh: Int, ow: Int, nearest: Bool)) {
        let rows =
            size.nearest
            ? ResizeAxis(nearestFrom: size.h, to: size.oh) : ResizeAxis(linearFrom: size.h, to: size.oh, alignCorners: false)
        let columns = ResizeAxis(linearFrom: size.w, to: size.ow, alignCorners: false).restricted(to: 1..<(size.ow - 1))
        let planes = 3
        let x = randn([planes, size.h, size.w], seed: 21).scalars
        var y = [Float](repeating: .nan, count: planes * size.oh * columns.lower.count)
        x.withUnsafeBufferPointer { xp in
            y.withUnsafeMutableBufferPointer {
                Kernels.resize(
                    xp.baseAddress!, $0.baseAddress!, planes: planes, inSize: (size.h, size.w), rows: rows, columns: columns)
            }
        }
        let ow = columns.lower.count
        for p in 0..<planes {
            for i in 0..<size.oh {
                let (a, b) = (p * size.h * size.w + rows.lower[i] * size.w, p * size.h * size.w + rows.upper[i] * size.w)
                let hl = rows.upperWeight[i], h0 = 1 - hl
                for j in 0..<ow {
                    let wl = columns.upperWeight[j], w0 = 1 - wl
                    let (c0, c1) = (columns.lower[j], columns.upper[j])
                    let direct = h0 * (w0 * x[a + c0] + wl * x[a + c1]) + hl * (w0 * x[b + c0] + wl * x[b + c1])
                    #expect(y[(p * size.oh + i) * ow + j].bitPattern == direct.bitPattern, "plane \(p), (\(i), \(j))")
                }
            }
        }
    }
}
