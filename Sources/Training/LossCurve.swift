import Foundation
import Imaging

/// `curves.png` next to the checkpoints: two panels drawn from `train.jsonl` — left the training
/// loss (blue, y from 0 to the largest logged loss, grey grid lines at quarters), right the
/// validation mIoU (red dots joined, y from 0 to 100%, grid lines every 10%); x is the
/// iteration in both, from 0 to the last logged one. No text: the JSONL holds the numbers.
public enum LossCurve {
    public static func plot(log: String, to path: String, every: Int, at iteration: Int) throws {
        guard iteration % max(1, every) == 0 else { return }
        let entries = TrainingLog.read(log)
        let losses = entries.compactMap { e -> (Double, Double)? in
            guard let i = e["iteration"] as? Int, let l = e["loss"] as? Double else { return nil }
            return (Double(i), l)
        }
        let mious = entries.compactMap { e -> (Double, Double)? in
            guard let i = e["iteration"] as? Int, let m = e["val_miou"] as? Double else { return nil }
            return (Double(i), m)
        }
        guard !losses.isEmpty else { return }
        let (panelW, panelH, margin) = (320, 240, 12)
        var canvas = Image(width: 2 * panelW, height: panelH, channels: 3, filledWith: 255)
        let maxX = max(losses.map(\.0).max() ?? 1, mious.map(\.0).max() ?? 1, 1)
        let maxLoss = max(losses.map(\.1).filter(\.isFinite).max() ?? 1, 1e-6)
        func point(_ x: Double, _ y: Double, panel: Int, top: Double) -> (Int, Int) {
            let px = panel * panelW + margin + Int(x / maxX * Double(panelW - 2 * margin))
            let py = panelH - margin - Int(min(max(y / top, 0), 1) * Double(panelH - 2 * margin))
            return (px, py)
        }
        func line(_ a: (Int, Int), _ b: (Int, Int), _ color: (UInt8, UInt8, UInt8)) {
            let steps = max(abs(b.0 - a.0), abs(b.1 - a.1), 1)
            for s in 0...steps {
                let x = a.0 + (b.0 - a.0) * s / steps, y = a.1 + (b.1 - a.1) * s / steps
                guard x >= 0 && y >= 0 && x < canvas.width && y < canvas.height else { continue }
                let i = (y * canvas.width + x) * 3
                (canvas.pixels[i], canvas.pixels[i + 1], canvas.pixels[i + 2]) = color
            }
        }
        let grey: (UInt8, UInt8, UInt8) = (220, 220, 220)
        for panel in 0..<2 {
            let lines = panel == 0 ? 4 : 10
            for k in 0...lines {
                let y = Double(k) / Double(lines)
                line(point(0, y, panel: panel, top: 1), point(maxX, y, panel: panel, top: 1), grey)
            }
            line(point(0, 0, panel: panel, top: 1), point(0, 1, panel: panel, top: 1), (0, 0, 0))
            line(point(0, 0, panel: panel, top: 1), point(maxX, 0, panel: panel, top: 1), (0, 0, 0))
        }
        for (a, b) in zip(losses, losses.dropFirst()) {
            line(point(a.0, a.1, panel: 0, top: maxLoss), point(b.0, b.1, panel: 0, top: maxLoss), (30, 90, 200))
        }
        for (k, m) in mious.enumerated() {
            let p = point(m.0, m.1, panel: 1, top: 100)
            for d in -2...2 { line((p.0 - 2, p.1 + d), (p.0 + 2, p.1 + d), (200, 40, 40)) }
            if k > 0 { line(point(mious[k - 1].0, mious[k - 1].1, panel: 1, top: 100), p, (200, 40, 40)) }
        }
        let temporary = path + ".tmp.png"
        try canvas.writePNG(to: temporary)
        _ = rename(temporary, path)
    }
}
