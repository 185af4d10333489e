import Autograd
import Foundation
import Imaging
import Testing

@testable import Datasets

@Suite struct AugmentationTests {
    @Test func caffePreprocessingIsBGRMinusMean() {
        let image = Image(width: 1, height: 1, channels: 3, pixels: [200, 100, 50])
        let planar = Preprocessing.caffe.normalize(image)
        let expected: [Float] = [50 - 104.008, 100 - 116.669, 200 - 122.675]
        #expect(planar.values == expected)
        let torch = Preprocessing.torchvision.normalize(image)
        #expect(abs(torch.values[0] - (200 / 255 - 0.485) / 0.229) < 1e-5)
    }

    @Test func settingsNoImageCanTakeAreRefusedUpFront() throws {
        try Augmentation().validate()
        try Augmentation(scale: .choices([0.5, 0.75, 1, 1.25, 1.5])).validate()
        let bad: [(Augmentation, String)] = [
            (Augmentation(scale: .range(0.5, 1e9)), "scale 1000000000.0 is outside (0, 8.0]"),
            (Augmentation(scale: .range(1.5, 0.5)), "scale range 1.5…0.5 is reversed"),
            (Augmentation(scale: .choices([1, .nan])), "scale nan is outside (0, 8.0]"),
            (Augmentation(scale: .choices([0])), "scale 0.0 is outside (0, 8.0]"),
            (Augmentation(cropSize: 0), "crop size 0 must be at least 1"),
        ]
        for (augmentation, reason) in bad {
            #expect(throws: DatasetError.badAugmentation(reason: reason)) { try augmentation.validate() }
        }
    }

    @Test func irnsProcedureResizesTheLongSideAndPlacesTheImageInTheCrop() {
        // A 20x30 image with the long side drawn from 40…40: 27x40 (np.round(26.67)); a 32 crop
        // takes a 32-wide window and places the 27 rows at a random offset, 0 (the mean) around them.
        let image = Image(width: 30, height: 20, channels: 3, filledWith: 200)
        let labels = LabelMap(width: 30, height: 20, filledWith: 2)
        let augmentation = Augmentation(preprocessing: .torchvision, cropSize: 32, flip: true, resizeLong: 40...40)
        var seen = Set<Int>()
        for seed in 0..<12 {
            var g = SeededGenerator(seed: UInt64(seed))
            let (planar, cropLabels) = augmentation.apply(image: image, labels: labels, generator: &g)
            #expect(planar.height == 32 && planar.width == 32)
            let filledRows = (0..<32).filter { y in planar.values[y * 32] != 0 }
            #expect(filledRows.count == 27 && filledRows.last! - filledRows.first! == 26, "seed \(seed)")
            #expect((0..<32).allSatisfy { y in (cropLabels.values[y * 32] == 2) == filledRows.contains(y) })
            seen.insert(filledRows.first!)
            var again = SeededGenerator(seed: UInt64(seed))
            #expect(augmentation.apply(image: image, labels: labels, generator: &again).0 == planar, "deterministic")
        }
        #expect(seen.count > 1 && seen.allSatisfy { $0 <= 5 }, "the image lands at offsets 0…5: \(seen.sorted())")
        #expect(throws: DatasetError.self) { try Augmentation(resizeLong: 0...10).validate() }
    }

    @Test func smallImagesArePaddedWithTheMeanAndIgnore() {
        // A 4x3 image at scale 1 in a 6x6 crop: the image sits top-left (crop offset 0), padding
        // is 0 after mean subtraction and 255 in the labels.
        let image = Image(width: 4, height: 3, channels: 3, filledWith: 120)
        let labels = LabelMap(width: 4, height: 3, filledWith: 1)
        let augmentation = Augmentation(preprocessing: .caffe, scale: .choices([1]), cropSize: 6, flip: false)
        var g = SeededGenerator(seed: 1)
        let (planar, cropLabels) = augmentation.apply(image: image, labels: labels, generator: &g)
        #expect(cropLabels.values.filter { $0 == 1 }.count == 12)
        #expect(cropLabels.values.filter { $0 == 255 }.count == 24)
        #expect(cropLabels[0, 0] == 1 && cropLabels[5, 5] == 255)
        #expect(planar.values[5 * 6 + 5] == 0)
        #expect(abs(planar.values[0] - (120 - 104.008)) < 1e-4)
    }

    @Test func flipsMirrorImageAndLabelsTogether() {
        let image = Image(width: 2, height: 1, channels: 3, pixels: [10, 10, 10, 200, 200, 200])
        let labels = LabelMap(width: 2, height: 1, values: [1, 2])
        let augmentation = Augmentation(preprocessing: .caffe, scale: .choices([1]), cropSize: 2, flip: true)
        var flipped = 0
        for seed in 0..<20 {
            var g = SeededGenerator(seed: UInt64(seed))
            let (planar, out) = augmentation.apply(image: image, labels: labels, generator: &g)
            // Row 0 holds the image; row 1 is padding.
            let brightLeft = planar.values[0] > planar.values[1]
            let labelsFlipped = Array(out.values.prefix(2)) == [2, 1]
            #expect(brightLeft == labelsFlipped, "image and labels flip together")
            #expect(Array(out.values.suffix(2)) == [255, 255])
            if labelsFlipped { flipped += 1 }
        }
        #expect(flipped > 3 && flipped < 17)
    }

    @Test func loaderIsDeterministicAndCoversEachEpoch() throws {
        let root = try makeSyntheticRoot(train: 9)
        let dataset = try VOCDataset(root: root, split: "train", classes: SyntheticDataset.classes, requireLabels: true)
        let augmentation = Augmentation(scale: .range(0.5, 1.5), cropSize: 48)
        let a = try BatchLoader(dataset: dataset, augmentation: augmentation, batchSize: 4, seed: 5)
        let b = try BatchLoader(dataset: dataset, augmentation: augmentation, batchSize: 4, seed: 5, prefetch: 1)
        #expect(a.batchesPerEpoch == 2)
        var seen: [String] = []
        for k in 0..<4 {
            let (x, y) = (try a.next(), try b.next())
            #expect(x.images.shape == [4, 3, 48, 48] && x.labels.shape == [4, 48, 48])
            #expect(x.images.scalars == y.images.scalars)
            #expect(x.labels == y.labels)
            #expect(x.ids == y.ids)
            #expect(x.epoch == k / 2 && x.index == k % 2)
            if k < 2 { seen += x.ids }
        }
        #expect(Set(seen).count == 8)
        // Resuming at batch 3 gives the same batch as the fourth of a fresh run.
        let resumed = try BatchLoader(dataset: dataset, augmentation: augmentation, batchSize: 4, seed: 5, startBatch: 3)
        let fresh = try BatchLoader(dataset: dataset, augmentation: augmentation, batchSize: 4, seed: 5)
        for _ in 0..<3 { _ = try fresh.next() }
        #expect(try resumed.next().labels == (try fresh.next()).labels)
    }

    @Test func loaderReportsABrokenImage() throws {
        let root = try makeSyntheticRoot(train: 4)
        let dataset = try VOCDataset(root: root, split: "train", classes: SyntheticDataset.classes, requireLabels: true)
        for sample in dataset.samples { try Data("x".utf8).write(to: URL(fileURLWithPath: sample.imagePath)) }
        let loader = try BatchLoader(dataset: dataset, augmentation: Augmentation(cropSize: 32), batchSize: 2, seed: 1)
        #expect(throws: ImageError.self) { try loader.next() }
    }
}
