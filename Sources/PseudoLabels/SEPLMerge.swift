import Imaging

/// SEPL's merge of seed labels with class-agnostic proposals (Chen et al., "Segment Anything
/// Model (SAM) Enhanced Pseudo Labels for Weakly Supervised Semantic Segmentation", 2023).
///
/// For each class c of the seed map, C = its pixels. A proposal M is *selected* for c when more
/// than half of M lies in C (|M∩C| > `maskShare`·|M|) or M covers most of C
/// (|M∩C| ≥ `regionShare`·|C|). The result labels c on the selected proposals and on the
/// pixels of C that no unclaimed proposal covers (SAM says nothing there, so the seed stands);
/// pixels of C inside proposals that no class selects become background — that is how false
/// activations on background stuff are removed — and everything else is background.
///
/// The public code walks the classes in id order, skips masks an earlier class took, and lets
/// later classes overwrite, so its result depends on the class ids (each mask's test depends
/// only on the mask and the region, so the file order of the masks does not matter there;
/// `Rule.publicCode` reproduces it, `mergePublic`). Ours (`Rule.orderFree`, the default) does not: a proposal that qualifies for several classes goes to the one it overlaps
/// most as a share of the proposal (then the larger overlap, then the smaller class id), and
/// selected proposals are painted from the weakest share to the strongest, so the strongest
/// claim wins where proposals overlap. With `ignoreConflicts`, pixels that selected proposals
/// of two different classes both cover become 255 instead. Seed pixels marked 255 stay 255
/// unless a proposal decides them.
public struct SEPLMerge: Sendable {
    /// Which procedure decides the proposals.
    public enum Rule: String, Sendable, CaseIterable, Codable {
        /// Ours: independent of the order of classes and proposals (above).
        case orderFree = "order-free"
        /// The public code's, to the pixel (cskyl/SAM_WSSS, merge/max_iou_imp2.py; `mergePublic`).
        case publicCode = "public"
    }

    public var maskShare: Double = 0.5
    public var regionShare: Double = 0.85
    public var ignoreConflicts = false
    public var rule = Rule.orderFree

    public init(maskShare: Double = 0.5, regionShare: Double = 0.85, ignoreConflicts: Bool = false, rule: Rule = .orderFree) {
        (self.maskShare, self.regionShare, self.ignoreConflicts, self.rule) = (maskShare, regionShare, ignoreConflicts, rule)
    }

    /// What became of each proposal (for overlays and tests).
    public struct Decision: Equatable, Sendable {
        /// The class the proposal was given, or nil.
        public var assignedClass: UInt8?
        /// |M∩C| / |M| for the assigned class (0 when none).
        public var share: Double
    }

    /// Merges `seeds` (0 background, 1… classes, 255 ignore) with `proposals` of the same size,
    /// by `rule`.
    public func merge(seeds: LabelMap, proposals: [SegmentMask]) -> (labels: LabelMap, decisions: [Decision]) {
        rule == .publicCode ? mergePublic(seeds: seeds, proposals: proposals) : mergeOrderFree(seeds: seeds, proposals: proposals)
    }

    /// The public code's procedure (cskyl/SAM_WSSS, merge/max_iou_imp2.py, `MaxIoU_IMP2.merge`),
    /// step for step. The result starts all background. For each class c present in the seeds,
    /// in id order (255 is never a class, so ignore pixels end as background): walk the proposals
    /// in the given order (the file order there), skipping those an earlier class claimed; every
    /// proposal walked joins the union U of this class's unclaimed proposals, and it is claimed
    /// for c when 2·|M∩C| − |M| > 0 (more than `maskShare`, i.e. half, of it in C) or
    /// |M∩C| / |C| ≥ `regionShare`. Then c is painted over the claimed proposals and over C∖U
    /// (seed pixels no unclaimed proposal covers — including those under proposals an earlier
    /// class took), overwriting what earlier classes painted. `ignoreConflicts` does not apply.
    public func mergePublic(seeds: LabelMap, proposals: [SegmentMask]) -> (labels: LabelMap, decisions: [Decision]) {
        let (w, h) = (seeds.width, seeds.height)
        let n = w * h
        let columnSeeds = ColumnMajor.fromRowMajor(seeds.values, width: w, height: h)
        for mask in proposals {
            precondition(
                mask.width == w && mask.height == h, "SEPLMerge: proposal \(mask.width)x\(mask.height) on a \(w)x\(h) seed map")
        }
        var out = [UInt8](repeating: 0, count: n)
        var decisions = proposals.map { _ in Decision(assignedClass: nil, share: 0) }
        var claimed = [Bool](repeating: false, count: proposals.count)
        var covered = [Bool](repeating: false, count: n)
        for c in seeds.classesPresent.subtracting([0, LabelMap.ignore]).sorted() {
            let region = columnSeeds.reduce(0) { $0 + ($1 == c ? 1 : 0) }
            for i in 0..<n { covered[i] = false }
            var selected: [Int] = []
            for (index, mask) in proposals.enumerated() where !claimed[index] {
                var overlap = 0
                for run in mask.runs {
                    for i in run {
                        covered[Int(i)] = true
                        if columnSeeds[Int(i)] == c { overlap += 1 }
                    }
                }
                let area = mask.area
                // With maskShare 0.5 this is the public code's 2·|M∩C| − |M| > 0 exactly (integers in Double).
                if Double(overlap) > maskShare * Double(area) || Double(overlap) / Double(region) >= regionShare {
                    selected.append(index)
                    claimed[index] = true
                    decisions[index] = Decision(assignedClass: c, share: area > 0 ? Double(overlap) / Double(area) : 0)
                }
            }
            for i in 0..<n where columnSeeds[i] == c && !covered[i] { out[i] = c }
            for index in selected { for run in proposals[index].runs { for i in run { out[Int(i)] = c } } }
        }
        return (LabelMap(width: w, height: h, values: ColumnMajor.toRowMajor(out, width: w, height: h)), decisions)
    }

    func mergeOrderFree(seeds: LabelMap, proposals: [SegmentMask]) -> (labels: LabelMap, decisions: [Decision]) {
        let (w, h) = (seeds.width, seeds.height)
        let n = w * h
        // Seeds in column-major order, to match the proposals' runs.
        let columnSeeds = ColumnMajor.fromRowMajor(seeds.values, width: w, height: h)
        let classes = seeds.classesPresent.subtracting([0]).sorted()
        // Prefix counts per present class: overlap of a run = two lookups.
        var prefix = [[Int32]](repeating: [], count: classes.count)
        var regionSize = [Int](repeating: 0, count: classes.count)
        for (k, c) in classes.enumerated() {
            var p = [Int32](repeating: 0, count: n + 1)
            var total: Int32 = 0
            columnSeeds.withUnsafeBufferPointer { s in
                p.withUnsafeMutableBufferPointer { out in
                    for i in 0..<n {
                        if s[i] == c { total += 1 }
                        out[i + 1] = total
                    }
                }
            }
            prefix[k] = p
            regionSize[k] = Int(total)
        }
        // Decide each proposal.
        var decisions: [Decision] = []
        decisions.reserveCapacity(proposals.count)
        for mask in proposals {
            precondition(
                mask.width == w && mask.height == h, "SEPLMerge: proposal \(mask.width)x\(mask.height) on a \(w)x\(h) seed map")
            let area = mask.area
            var best: (share: Double, overlap: Int, k: Int)?
            if area > 0 {
                for k in classes.indices {
                    var overlap = 0
                    prefix[k].withUnsafeBufferPointer { p in
                        for run in mask.runs { overlap += Int(p[Int(run.upperBound)] - p[Int(run.lowerBound)]) }
                    }
                    guard overlap > 0 else { continue }
                    let qualifies =
                        Double(overlap) > maskShare * Double(area) || Double(overlap) >= regionShare * Double(regionSize[k])
                    guard qualifies else { continue }
                    let share = Double(overlap) / Double(area)
                    if best == nil || share > best!.share || (share == best!.share && overlap > best!.overlap) {
                        best = (share, overlap, k)
                    }
                }
            }
            decisions.append(Decision(assignedClass: best.map { classes[$0.k] }, share: best?.share ?? 0))
        }
        // Compose: seeds where no unclaimed proposal speaks, background where one does, then the
        // selected proposals from the weakest claim to the strongest.
        var out = columnSeeds
        out.withUnsafeMutableBufferPointer { o in
            for (mask, decision) in zip(proposals, decisions) where decision.assignedClass == nil {
                for run in mask.runs { for i in run { o[Int(i)] = 0 } }
            }
        }
        var owner = [UInt8](repeating: 0, count: ignoreConflicts ? n : 0)
        var conflict = [Bool](repeating: false, count: ignoreConflicts ? n : 0)
        let painting = decisions.indices.filter { decisions[$0].assignedClass != nil }
            .sorted { (decisions[$0].share, $1) < (decisions[$1].share, $0) }
        out.withUnsafeMutableBufferPointer { o in
            for index in painting {
                let c = decisions[index].assignedClass!
                for run in proposals[index].runs {
                    for i in run {
                        let p = Int(i)
                        o[p] = c
                        if ignoreConflicts {
                            if owner[p] != 0 && owner[p] != c { conflict[p] = true }
                            owner[p] = c
                        }
                    }
                }
            }
            if ignoreConflicts { for p in 0..<n where conflict[p] { o[p] = LabelMap.ignore } }
        }
        return (LabelMap(width: w, height: h, values: ColumnMajor.toRowMajor(out, width: w, height: h)), decisions)
    }
}
