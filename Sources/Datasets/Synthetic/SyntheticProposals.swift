import Foundation
import Autograd

/// One mask of the SAM stand-in (see `SyntheticScene.standInProposals`).
public struct SyntheticProposal: Sendable {
    public enum Kind: String, Sendable { case object, splitPart, mergedWithNeighbour, discriminativePart, clutter, background }
    /// Row-major, `size` x `size`.
    public var bitmap: [Bool]
    public var kind: Kind
    public var predictedIoU: Float
    public var stabilityScore: Float
}

extension SyntheticScene {
    /// Masks that imitate SAM's automatic mask generator on this scene — derived from the scene's
    /// own layout, so they stand in for SAM and are not SAM (docs/SYNTHETIC.md says what they do
    /// and do not tell). Per visible object: the whole object with a boundary jitter of up to two
    /// pixels (grown or shrunk), or (15%) split in two halves along a random line, or (12%)
    /// merged with a touching clutter blob or object; its discriminative part as a separate mask
    /// (70%). Every clutter blob (90%), and the background cut into regions by its two shades
    /// (connected pieces of at least 1% of the image, at most six). Scores: predicted IoU and
    /// stability in SAM's usual range, lower for split and merged masks. Order: shuffled.
    func standInProposals() -> [SyntheticProposal] {
        var g = SeededGenerator(seed: (seed &+ 0x5A11) &* 0x9E37_79B9_7F4A_7C15 ^ UInt64(index) &* 0xA24B_AED4_963E_E407)
        func uniform(_ low: Float, _ high: Float) -> Float { low + (high - low) * g.nextUniform() }
        let n = size * size
        var out: [SyntheticProposal] = []
        func add(_ bitmap: [Bool], _ kind: SyntheticProposal.Kind, quality: ClosedRange<Float>) {
            guard bitmap.contains(true) else { return }
            out.append(
                SyntheticProposal(
                    bitmap: bitmap, kind: kind, predictedIoU: uniform(quality.lowerBound, quality.upperBound),
                    stabilityScore: uniform(0.9, 0.99)))
        }
        let objectIDs = Set(instances.filter { $0 >= 0 }).sorted()
        let clutterIDs = Set(clutterIndex.filter { $0 >= 0 }).sorted()
        for k in objectIDs {
            let body = instances.map { $0 == k }
            let roll = g.nextUniform()
            if roll < 0.15 {
                // Split along a line through the centroid.
                var (sx, sy, count) = (0.0, 0.0, 0.0)
                for p in 0..<n where body[p] { (sx, sy, count) = (sx + Double(p % size), sy + Double(p / size), count + 1) }
                let (cx, cy) = (sx / count, sy / count)
                let angle = Double(uniform(0, 3.14159))
                let (nx, ny) = (cos(angle), sin(angle))
                let side = (0..<n).map { p in (Double(p % size) - cx) * nx + (Double(p / size) - cy) * ny > 0 }
                add(zip(body, side).map { $0 && $1 }, .splitPart, quality: 0.8...0.92)
                add(zip(body, side).map { $0 && !$1 }, .splitPart, quality: 0.8...0.92)
            } else if roll < 0.27, let neighbour = touchingNeighbour(of: body, g: &g) {
                add(zip(body, neighbour).map { $0 || $1 }, .mergedWithNeighbour, quality: 0.8...0.92)
            } else {
                let jitter = Int(g.next() % 5) - 2  // -2…2 pixels
                add(morphed(body, by: jitter), .object, quality: 0.88...0.99)
            }
            if g.nextUniform() < 0.7 { add(partIndex.map { $0 == k }, .discriminativePart, quality: 0.85...0.97) }
        }
        for c in clutterIDs where g.nextUniform() < 0.9 {
            add(clutterIndex.map { $0 == c }, .clutter, quality: 0.86...0.98)
        }
        // Background regions: connected pieces of each shade.
        for shade in [false, true] {
            let region = (0..<n).map { instances[$0] < 0 && clutterIndex[$0] < 0 && backgroundShade[$0] == shade }
            let pieces = connectedPieces(region).filter { $0.count >= n / 100 }.sorted { $0.count > $1.count }.prefix(3)
            for piece in pieces {
                var bitmap = [Bool](repeating: false, count: n)
                for p in piece { bitmap[p] = true }
                add(bitmap, .background, quality: 0.8...0.95)
            }
        }
        for i in stride(from: out.count - 1, to: 0, by: -1) { out.swapAt(i, Int(g.next() % UInt64(i + 1))) }
        return out
    }

    /// A clutter blob or another object that touches `body` (4-neighbours), if any.
    private func touchingNeighbour(of body: [Bool], g: inout SeededGenerator) -> [Bool]? {
        var candidates: [(isObject: Bool, id: Int)] = []
        for p in 0..<(size * size) where body[p] {
            let (x, y) = (p % size, p / size)
            for (qx, qy) in [(x + 1, y), (x - 1, y), (x, y + 1), (x, y - 1)] where qx >= 0 && qy >= 0 && qx < size && qy < size {
                let q = qy * size + qx
                if body[q] { continue }
                if clutterIndex[q] >= 0 && !candidates.contains(where: { !$0.isObject && $0.id == clutterIndex[q] }) {
                    candidates.append((false, clutterIndex[q]))
                }
                if instances[q] >= 0 && !candidates.contains(where: { $0.isObject && $0.id == instances[q] }) {
                    candidates.append((true, instances[q]))
                }
            }
        }
        guard !candidates.isEmpty else { return nil }
        let pick = candidates[Int(g.next() % UInt64(candidates.count))]
        return pick.isObject ? instances.map { $0 == pick.id } : clutterIndex.map { $0 == pick.id }
    }

    /// The mask grown (positive) or shrunk (negative) by |by| pixels (3x3 steps).
    private func morphed(_ mask: [Bool], by amount: Int) -> [Bool] {
        var current = mask
        for _ in 0..<abs(amount) {
            var next = current
            for y in 0..<size {
                for x in 0..<size {
                    var any = false, all = true
                    for dy in -1...1 {
                        for dx in -1...1 {
                            let (nx, ny) = (x + dx, y + dy)
                            let v = nx >= 0 && ny >= 0 && nx < size && ny < size ? current[ny * size + nx] : false
                            any = any || v
                            all = all && v
                        }
                    }
                    next[y * size + x] = amount > 0 ? any : all
                }
            }
            current = next
        }
        return current
    }

    /// 4-connected pieces of a mask, as pixel lists.
    private func connectedPieces(_ mask: [Bool]) -> [[Int]] {
        var seen = [Bool](repeating: false, count: mask.count)
        var pieces: [[Int]] = []
        for start in 0..<mask.count where mask[start] && !seen[start] {
            var piece: [Int] = []
            var stack = [start]
            seen[start] = true
            while let p = stack.popLast() {
                piece.append(p)
                let (x, y) = (p % size, p / size)
                for (qx, qy) in [(x + 1, y), (x - 1, y), (x, y + 1), (x, y - 1)]
                where qx >= 0 && qy >= 0 && qx < size && qy < size {
                    let q = qy * size + qx
                    if mask[q] && !seen[q] {
                        seen[q] = true
                        stack.append(q)
                    }
                }
            }
            pieces.append(piece)
        }
        return pieces
    }
}
