import Foundation

/// A progress bar on stderr: `label [#####.....] 120/300 45.2 img/s ETA 0:04 extra`. Redraws
/// in place at most ten times a second on a terminal; elsewhere (logs, CI) prints a line every
/// 10% so logs stay short. Thread-safe.
final class ProgressBar: @unchecked Sendable {
    let label: String
    let total: Int
    let unit: String
    private let start = Date()
    private var done = 0
    /// Items already done before this process (a resumed run): shown, but not counted in the rate.
    private var baseline = 0
    private var rateStart = Date()
    private var lastDraw = Date.distantPast
    private var lastDecile = -1
    private let lock = NSLock()
    private let isTerminal = isatty(STDERR_FILENO) != 0
    /// False on the ranks after the first of a data-parallel job (`startDistributed`).
    nonisolated(unsafe) static var enabled = true

    init(_ label: String, total: Int, unit: String = "img") {
        (self.label, self.total, self.unit) = (label, total, unit)
    }

    /// Starts the bar at `count` items already done (a resumed run), without counting them in
    /// the rate or the ETA.
    func resume(at count: Int) {
        lock.lock()
        defer { lock.unlock() }
        (done, baseline, rateStart) = (count, count, Date())
    }

    /// Marks `count` more items done; `extra` is appended to the line (e.g. "loss 0.213").
    func advance(by count: Int = 1, extra: String = "") {
        lock.lock()
        defer { lock.unlock() }
        done += count
        guard ProgressBar.enabled else { return }
        let now = Date()
        let decile = total > 0 ? done * 10 / total : 10
        if isTerminal {
            guard now.timeIntervalSince(lastDraw) >= 0.1 || done >= total else { return }
            lastDraw = now
            FileHandle.standardError.write(Data(("\r\u{1B}[K" + line(now: now, extra: extra) + (done >= total ? "\n" : "")).utf8))
        } else if decile != lastDecile {
            lastDecile = decile
            Log.info(line(now: now, extra: extra))
        }
    }

    var elapsed: TimeInterval { Date().timeIntervalSince(start) }

    private func line(now: Date, extra: String) -> String {
        let seconds = max(now.timeIntervalSince(start), 1e-9)
        let rate = Double(done - baseline) / max(now.timeIntervalSince(rateStart), 1e-9)
        let width = 24
        let filled = total > 0 ? min(width, done * width / total) : width
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        let eta = rate > 0 ? Double(total - done) / rate : 0
        var text = "\(label) [\(bar)] \(done)/\(total) \(String(format: rate >= 10 ? "%.0f" : "%.2f", rate)) \(unit)/s"
        text += done >= total ? " in \(Self.clock(seconds))" : " ETA \(Self.clock(eta))"
        return extra.isEmpty ? text : text + " " + extra
    }

    static func clock(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return s >= 3600
            ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
    }
}
