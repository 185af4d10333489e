import Autograd
import Imaging
import Testing

@testable import PseudoLabels

/// Hand-made 10x1 / 10x2 cases that pin each SEPL rule down. Rows are drawn as strings:
/// digits are classes, "." is background, "x" is in the mask.
func labelRow(_ rows: String...) -> LabelMap {
    let values = rows.flatMap { $0.map { $0 == "." ? UInt8(0) : $0 == "i" ? 255 : UInt8(String($0))! } }
    return LabelMap(width: rows[0].count, height: rows.count, values: values)
}

func maskRow(_ rows: String...) -> SegmentMask {
    SegmentMask(width: rows[0].count, height: rows.count, bitmap: rows.flatMap { $0.map { $0 == "x" } })
}

func render(_ map: LabelMap) -> String {
    (0..<map.height).map { y in
        String(
            (0..<map.width).map { x in
                let v = map.values[y * map.width + x]
                return v == 0 ? "." : v == 255 ? "i" : Character(String(v))
            })
    }.joined(separator: "/")
}

@Suite struct SEPLMergeTests {
    let merge = SEPLMerge()

    @Test func aMaskMostlyInsideTheRegionIsSelectedAndGrowsIt() {
        // 3 of 5 mask pixels in C (> half): the whole mask becomes class 1.
        let out = merge.merge(seeds: labelRow("..111....."), proposals: [maskRow(".xxxxx....")])
        #expect(render(out.labels) == ".11111....")
        #expect(out.decisions == [.init(assignedClass: 1, share: 0.6)])
    }

    @Test func exactlyHalfIsNotMoreThanHalf() {
        // 2 of 4 in C, and 2 of 4 C pixels covered (< 85%): not selected; C pixels inside the
        // unselected mask become background, the rest of C stays.
        let out = merge.merge(seeds: labelRow("..1111...."), proposals: [maskRow("xxxx......")])
        #expect(render(out.labels) == "....11....")
        #expect(out.decisions[0].assignedClass == nil)
    }

    @Test func aLargeMaskCoveringMostOfTheRegionIsSelected() {
        // Mask 10 pixels, C = 2 pixels all covered (≥ 85% of C) though only 20% of the mask.
        let out = merge.merge(seeds: labelRow("....11...."), proposals: [maskRow("xxxxxxxxxx")])
        #expect(render(out.labels) == "1111111111")
        // 6 of 7 C pixels = 85.7% ≥ 85%: selected; a mask covering 1 of 4 (25%) and 1/7 of itself: not.
        let c = labelRow("1111111...")
        #expect(merge.merge(seeds: c, proposals: [maskRow(".xxxxxxxxx")]).decisions[0].assignedClass == 1)
        #expect(merge.merge(seeds: labelRow("......1111"), proposals: [maskRow("xxxxxxx...")]).decisions[0].assignedClass == nil)
    }

    @Test func seedPixelsOutsideEveryProposalAreKept() {
        let out = merge.merge(seeds: labelRow("11....2..."), proposals: [maskRow("....xxx...")])
        // The mask has 1 of 3 pixels of class 2 (not > half) and covers all of C2 (≥ 85%): selected.
        #expect(render(out.labels) == "11..222...")
    }

    @Test func falseActivationInsideABackgroundProposalIsRemoved() {
        // CAM spills onto a clutter blob that SAM segments separately.
        let out = merge.merge(seeds: labelRow("..111111.."), proposals: [maskRow("..xxxx...."), maskRow("......xxxx")])
        #expect(render(out.labels) == "..1111....")
    }

    @Test func conflictsGoToTheLargerShareRegardlessOfOrder() {
        // The mask qualifies for both classes (≥ 85% of each tiny region); share 2/6 vs 1/6.
        let seeds = labelRow(".11.2.....")
        let masks = [maskRow("xxxxxx....")]
        let out = merge.merge(seeds: seeds, proposals: masks)
        #expect(out.decisions[0].assignedClass == 1)
        #expect(render(out.labels) == "111111....")
        // Two overlapping selected masks of different classes: the stronger share paints last.
        let two = labelRow("1111.222..")
        let a = maskRow("xxxxxx....")  // 4/6 of class 1
        let b = maskRow("....xxxx..")  // 3/4 of class 2 (stronger)
        #expect(render(merge.merge(seeds: two, proposals: [a, b]).labels) == "11112222..")
        #expect(render(merge.merge(seeds: two, proposals: [b, a]).labels) == "11112222..")
        var ignoring = merge
        ignoring.ignoreConflicts = true
        #expect(render(ignoring.merge(seeds: two, proposals: [a, b]).labels) == "1111ii22..")
    }

    @Test func ignoreSeedsStayUnlessAProposalDecides() {
        let out = merge.merge(seeds: labelRow("ii11ii...."), proposals: [maskRow("xxxx......")])
        #expect(render(out.labels) == "1111ii....")
    }

    @Test func thresholdsAreOptions() {
        let strict = SEPLMerge(maskShare: 0.7, regionShare: 1.0)
        // 3 of 5 mask pixels (0.6) and 3 of 4 region pixels (0.75): selected by default only.
        let (seeds, mask) = (labelRow("..111.1..."), maskRow(".xxxxx...."))
        #expect(merge.merge(seeds: seeds, proposals: [mask]).decisions[0].assignedClass == 1)
        #expect(strict.merge(seeds: seeds, proposals: [mask]).decisions[0].assignedClass == nil)
    }

    @Test func worksInTwoDimensions() {
        let seeds = labelRow("..11", "..1.", "....")
        let mask = maskRow(".xxx", ".xxx", "....")
        #expect(render(merge.merge(seeds: seeds, proposals: [mask]).labels) == ".111/.111/....")
    }
}

@Suite struct CAMThresholdTests {
    @Test func backgroundByThresholdElseArgmaxAndAnOptionalIgnoreBand() {
        // Two classes (3 and 5) over 4 pixels.
        let maps = Tensor(shape: [2, 1, 4], values: [0.1, 0.5, 0.9, 0.2, 0.05, 0.6, 0.3, 0.25])
        let cams = ImageCAMs(classes: [3, 5], maps: maps)
        #expect(CAMThreshold(background: 0.15).labels(cams).values == [0, 5, 3, 5])
        #expect(CAMThreshold(background: 0.3).labels(cams).values == [0, 5, 3, 0])
        #expect(CAMThreshold(background: 0.15, ignoreBand: 0.15...0.55).labels(cams).values == [0, 5, 3, 255])
    }
}

@Suite struct BoxMergeTests {
    @Test func masksArePaintedInAscendingScoreAndUnlistedClassesDropped() {
        let a = maskRow("xxxxx.....", "xxxxx.....")
        let b = maskRow("...xxxxx..", "...xxxxx..")
        let detections = [
            Detection(classID: 1, box: (0, 0, 5, 2), score: 0.9),
            Detection(classID: 2, box: (3, 0, 8, 2), score: 0.5),
            Detection(classID: 4, box: (3, 0, 8, 2), score: 0.99),  // not in the image labels
            Detection(classID: 2, box: (0, 0, 10, 2), score: 0.2),  // below the threshold
        ]
        let out = BoxMerge(order: .score).merge(
            width: 10, height: 2, detections: detections, imageClasses: [1, 2], proposals: [a, b])
        #expect(render(out.labels) == "11111222../11111222..")
        // Sun et al.'s order: the file's, later over earlier (the 0.5 box after the 0.9 one).
        let inOrder = BoxMerge().merge(width: 10, height: 2, detections: detections, imageClasses: [1, 2], proposals: [a, b])
        #expect(render(inOrder.labels) == "11122222../11122222..")
        #expect(out.unmatched == 0)
        // A box no proposal fits is counted, not painted.
        let far = BoxMerge().merge(
            width: 10, height: 2, detections: [Detection(classID: 1, box: (8, 0, 10, 1), score: 0.8)],
            imageClasses: [1], proposals: [a])
        #expect(far.unmatched == 1)
        #expect(far.labels.values.allSatisfy { $0 == 0 })
    }

    @Test func componentsOfTheSeedsGiveBoxes() {
        let seeds = labelRow("11...22...", "11....2..2")
        let boxes = BoxMerge.detections(fromComponentsOf: seeds, minimumArea: 2)
        #expect(boxes.count == 2)
        #expect(boxes[0] == Detection(classID: 1, box: (0, 0, 2, 2), score: 1))
        #expect(boxes[1] == Detection(classID: 2, box: (5, 0, 7, 2), score: 0.75))
    }
}
