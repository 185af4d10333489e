import Autograd
import Testing

/// Parity fixtures: scripts/make_fixtures.py, conv_cases.
@Suite struct Conv2dTests {
    /// Every algorithm that applies to the case's shape, each against the same reference.
    @Test(
        arguments: try OpFixtures.cases("conv2d").map(\.name),
        [ConvAlgorithm.automatic, .im2col, .tapwise, .pointwise, .winograd, .winograd4, .stackedTaps])
    func matchesPyTorch(_ name: String, algorithm: ConvAlgorithm) throws {
        let fixture = try OpFixtures.Case("/conv2d/\(name)")
        let (stride, padding, dilation) = (try fixture.int("stride"), try fixture.int("padding"), try fixture.int("dilation"))
        let kernel = try fixture.tensor("weight").shape[2]
        let x = try fixture.tensor("x")
        let g = WindowGeometry(
            inHeight: x.shape[2], inWidth: x.shape[3], kernelHeight: kernel, kernelWidth: kernel, stride: (stride, stride),
            padding: (padding, padding), dilation: (dilation, dilation))
        if !algorithm.applies(to: g) { return }
        let names = fixture.has("bias") ? ["x", "weight", "bias"] : ["x", "weight"]
        try expectParity(fixture, inputs: names, caseName: "\(name) \(algorithm)") { t in
            t[0].conv2d(
                weight: t[1], bias: t.count > 2 ? t[2] : nil, stride: stride, padding: padding, dilation: dilation,
                algorithm: algorithm)
        }
    }

    @Test(
        arguments: [(1, 1, 1, 3), (2, 1, 1, 3), (1, 2, 2, 3), (1, 0, 1, 1), (2, 0, 1, 1), (1, 3, 3, 3), (1, 4, 4, 3)],
        [ConvAlgorithm.im2col, .tapwise, .stackedTaps])
    func finiteDifferences(shape: (stride: Int, padding: Int, dilation: Int, kernel: Int), algorithm: ConvAlgorithm) {
        let x = randn([2, 2, 6, 5], seed: 1)
        let w = randn([3, 2, shape.kernel, shape.kernel], seed: 2, scale: 0.5)
        let b = randn([3], seed: 3)
        checkGradients([x, w, b]) { t in
            t[0].conv2d(
                weight: t[1], bias: t[2], stride: shape.stride, padding: shape.padding, dilation: shape.dilation,
                algorithm: algorithm)
        }
    }

    /// Winograd F(2x2, 3x3) and F(4x4, 3x3), forward and input gradient, on odd sizes,
    /// dilations and paddings (including padding 0 and padding 2·dilation, the extremes of its
    /// backward geometry; 9x7 leaves F4 a partial last tile on both axes).
    @Test(arguments: [(1, 1), (0, 1), (2, 1), (2, 2), (0, 2), (4, 2), (3, 3)], [ConvAlgorithm.winograd, .winograd4])
    func winogradFiniteDifferences(shape: (padding: Int, dilation: Int), algorithm: ConvAlgorithm) {
        let x = randn([2, 2, 9, 7], seed: 7)
        let w = randn([3, 2, 3, 3], seed: 8, scale: 0.5)
        let b = randn([3], seed: 9)
        checkGradients([x, w, b]) { t in
            t[0].conv2d(
                weight: t[1], bias: t[2], padding: shape.padding, dilation: shape.dilation, algorithm: algorithm)
        }
    }

    /// Winograd matches im2col to rounding on DeepLab-sized layers (forward and both gradients):
    /// F2 within 1e-5 of the largest value, F4 (larger transform coefficients) within 5e-5
    /// (measured: F2 4e-7 at 64 channels; F4 4e-6 at 64 and 1.3e-5 at 256).
    @Test(arguments: [(ConvAlgorithm.winograd, 64, Float(1e-5)), (.winograd4, 64, 5e-5), (.winograd4, 256, 5e-5)])
    func winogradMatchesIm2colOnAWideLayer(_ algorithm: ConvAlgorithm, channels: Int, bound: Float) {
        let x = randn([2, channels, 13, 11], seed: 10)
        let w = randn([channels, channels, 3, 3], seed: 11, scale: 0.4 / Float(channels).squareRoot())
        let dy = randn([2, channels, 13, 11], seed: 12)
        func run(_ algorithm: ConvAlgorithm) -> (y: [Float], dx: [Float], dw: [Float]) {
            let (xi, wi) = (x.detached().requiringGrad(), w.detached().requiringGrad())
            let y = xi.conv2d(weight: wi, padding: 2, dilation: 2, algorithm: algorithm)
            (y * dy).sum().backward()
            return (y.scalars, xi.grad!.scalars, wi.grad!.scalars)
        }
        let (a, b) = (run(.im2col), run(algorithm))
        for (p, q) in [(a.y, b.y), (a.dx, b.dx), (a.dw, b.dw)] {
            let scale = p.map(abs).max()!
            let error = zip(p, q).map { abs($0 - $1) }.max()! / scale
            #expect(error <= bound, "\(algorithm) \(channels) channels: \(error)")
        }
    }

    /// The pointwise lowering (1x1, stride 1, no padding: one sgemm on the image).
    @Test func pointwiseFiniteDifferences() {
        let x = randn([2, 3, 4, 5], seed: 4), w = randn([2, 3, 1, 1], seed: 5, scale: 0.5), b = randn([2], seed: 6)
        checkGradients([x, w, b]) { t in t[0].conv2d(weight: t[1], bias: t[2], algorithm: .pointwise) }
    }

    @Test func automaticChoiceFollowsTheShape() {
        func choice(_ cin: Int, _ cout: Int, k: Int, s: Int = 1, p: Int = 0, d: Int = 1) -> ConvAlgorithm {
            let g = WindowGeometry(
                inHeight: 41, inWidth: 41, kernelHeight: k, kernelWidth: k, stride: (s, s),
                padding: (p, p), dilation: (d, d))
            return ConvAlgorithm.automatic.resolved(inChannels: cin, outChannels: cout, geometry: g)
        }
        #expect(choice(1024, 256, k: 1) == .pointwise)
        #expect(choice(1024, 512, k: 1, s: 2) == .im2col)
        #expect(choice(256, 256, k: 3, p: 2, d: 2) == .winograd4)
        #expect(choice(512, 512, k: 3, p: 4, d: 4) == .winograd4)
        #expect(choice(512, 512, k: 3, p: 8, d: 8) == .winograd)
        #expect(choice(128, 128, k: 3, p: 1) == .winograd)
        #expect(choice(32, 256, k: 3, p: 1) == .im2col)
        #expect(choice(256, 256, k: 3, s: 2, p: 1) == .im2col)
        #expect(choice(2048, 21, k: 3, p: 24, d: 24) == .stackedTaps)
        #expect(choice(16, 16, k: 3, p: 1) == .tapwise)
        #expect(choice(256, 21, k: 3, s: 2, p: 1) == .tapwise)
    }

    @Test func outputSizeFollowsTorch() {
        // DeepLab-v2 ASPP branch: dilation 24, padding 24 keeps 41x41.
        let y = withoutGrad {
            Tensor(zeros: [1, 4, 41, 41]).conv2d(weight: Tensor(zeros: [2, 4, 3, 3]), padding: 24, dilation: 24)
        }
        #expect(y.shape == [1, 2, 41, 41])
        // ResNet stem: 7x7 stride 2 pad 3 on 321 gives 161.
        let stem = withoutGrad {
            Tensor(zeros: [1, 3, 321, 321]).conv2d(weight: Tensor(zeros: [1, 3, 7, 7]), stride: 2, padding: 3)
        }
        #expect(stem.shape == [1, 1, 161, 161])
    }

    @Test func inputWithoutGradGetsNoGradientButWeightDoes() {
        let x = randn([1, 2, 4, 4], seed: 4)
        let w = randn([3, 2, 3, 3], seed: 5).requiringGrad()
        let y = x.conv2d(weight: w, padding: 1).sum()
        y.backward()
        #expect(x.grad == nil)
        #expect(w.grad?.shape == [3, 2, 3, 3])
    }
}

extension Conv2dTests {
    /// Small convolutions of a batch run image by image across the pool
    /// (`Kernels.imagesInParallel`): each image's output and input gradient are the ones it gets
    /// alone, and the weight and bias gradients their sums.
    @Test(arguments: [ConvAlgorithm.pointwise, .im2col, .tapwise])
    func imagesInParallelMatchImageByImage(_ algorithm: ConvAlgorithm) {
        let kernel = algorithm == .pointwise ? 1 : 3, padding = algorithm == .pointwise ? 0 : 2
        let (batch, cin, cout) = (5, 8, 16)
        let x = randn([batch, cin, 12, 10], seed: 20), w = randn([cout, cin, kernel, kernel], seed: 21, scale: 0.3)
        let b = randn([cout], seed: 22)
        func run(_ x: Tensor) -> (y: Tensor, dx: Tensor, dw: Tensor, db: Tensor) {
            let (xi, wi, bi) = (x.detached().requiringGrad(), w.detached().requiringGrad(), b.detached().requiringGrad())
            let y = xi.conv2d(weight: wi, bias: bi, padding: padding, dilation: 2, algorithm: algorithm)
            (y * randn(y.shape, seed: 23 + UInt64(x.shape[0]))).sum().backward()
            return (y, xi.grad!, wi.grad!, bi.grad!)
        }
        // (Another suite's CLI test may have set one thread for the process meanwhile: the
        // equalities below hold either way; with two or more threads this is the parallel path.)
        #expect(
            Runtime.threads == 1
                || Kernels.imagesInParallel(batch: batch, multiplyAdds: cout * cin * kernel * kernel * 120, algorithm: algorithm))
        let all = run(x)
        var (dw, db) = (Tensor(zeros: w.shape), Tensor(zeros: b.shape))
        let dy = randn(all.y.shape, seed: 23 + UInt64(batch))
        for n in 0..<batch {
            let (xi, wi, bi) = (
                x.slice(alongAxis: 0, n..<(n + 1)).requiringGrad(), w.detached().requiringGrad(), b.detached().requiringGrad()
            )
            let y = xi.conv2d(weight: wi, bias: bi, padding: padding, dilation: 2, algorithm: algorithm)
            (y * dy.slice(alongAxis: 0, n..<(n + 1))).sum().backward()
            #expect(y.scalars == all.y.slice(alongAxis: 0, n..<(n + 1)).scalars, "\(algorithm) image \(n): output")
            #expect(
                xi.grad!.scalars == all.dx.slice(alongAxis: 0, n..<(n + 1)).scalars, "\(algorithm) image \(n): input gradient")
            (dw, db) = (dw + wi.grad!, db + bi.grad!)
        }
        #expect(relativeError(all.dw, dw) < 1e-5 && relativeError(all.db, db) < 1e-5, "\(algorithm): parameter gradients")
    }
}
