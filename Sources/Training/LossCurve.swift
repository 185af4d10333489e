import Foundation
import Imaging
import Reporting

/// `curves.png` and `curves.svg` next to the checkpoints, drawn from `train.jsonl`: the training
/// loss on a log axis (left) and the validation mIoU in percent at each evaluation (right,
/// markers), against the iteration, with ticks, axis titles, a legend and a title.
public enum LossCurve {
    /// Redraws the curves when `iteration` is a multiple of `every`; written through temporary
    /// files and renames, so a reader never sees half a picture.
    public static func plot(log: String, to path: String, every: Int, at iteration: Int, title: String = "DeepLab-v2 training")
        throws
    {
        guard iteration % max(1, every) == 0 else { return }
        let entries = TrainingLog.read(log)
        let losses = entries.compactMap { e -> (x: Double, y: Double)? in
            guard let i = e["iteration"] as? Int, let l = e["loss"] as? Double else { return nil }
            return (Double(i), l)
        }
        let mious = entries.compactMap { e -> (x: Double, y: Double)? in
            guard let i = e["iteration"] as? Int, let m = e["val_miou"] as? Double else { return nil }
            return (Double(i), m)
        }
        guard !losses.isEmpty else { return }
        var plot = LinePlot(title: title, xLabel: "iteration", yLabel: "loss", rightYLabel: mious.isEmpty ? "" : "val mIoU %")
        // A log axis needs positive values; a run whose loss reached exactly 0 falls back to linear.
        plot.yScale = losses.allSatisfy { $0.y > 0 || !$0.y.isFinite } ? .log : .linear
        plot.add("train loss", points: losses, color: (31, 119, 180))
        if !mious.isEmpty {
            plot.rightYRange = 0...100
            plot.add("val mIoU", points: mious, color: (214, 39, 40), axis: .right, markers: true)
        }
        let (width, height) = (800, 480)
        let temporary = path + ".tmp.png"
        try plot.render(width: width, height: height).writePNG(to: temporary)
        guard rename(temporary, path) == 0 else { throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: path]) }
        let svg = (path as NSString).deletingPathExtension + ".svg"
        try plot.writeSVG(to: svg + ".tmp", width: width, height: height)
        guard rename(svg + ".tmp", svg) == 0 else { throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: svg]) }
    }
}
