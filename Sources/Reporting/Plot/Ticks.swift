import Foundation

/// Tick positions for a plot axis and the axis range they span.
///
/// Linear axes step by 1, 2 or 5 times a power of ten (Heckbert, "Nice numbers for graph labels",
/// Graphics Gems 1990, with the step rounded up so there are at most `maxCount` ticks) and the
/// range is widened to whole steps, so the first and last ticks sit on the axis ends. Log axes
/// tick at powers of ten, or at 1-2-5 multiples when the data spans less than two decades.
public struct Ticks: Equatable, Sendable {
    /// Tick values, ascending.
    public let values: [Double]
    /// The axis minimum: the first tick.
    public let lower: Double
    /// The axis maximum: the last tick.
    public let upper: Double
    /// The step between linear ticks (for log ticks: the factor between decades shown, e.g. 10).
    public let step: Double
    /// Whether the ticks are for a log axis.
    public let isLog: Bool

    /// Ticks at 1-2-5 steps covering `lower…upper`, at most `maxCount` of them (at least 2). An
    /// empty range (lower == upper) is widened around its value; non-finite bounds give 0…1.
    public static func linear(lower: Double, upper: Double, maxCount: Int = 6) -> Ticks {
        precondition(maxCount >= 2, "Ticks: maxCount \(maxCount) must be at least 2")
        var (lo, hi) = lower.isFinite && upper.isFinite ? (min(lower, upper), max(lower, upper)) : (0, 1)
        if hi - lo <= max(abs(hi), abs(lo)) * 1e-12 {
            let pad = lo == 0 ? 1 : abs(lo) * 0.1
            (lo, hi) = (lo - pad, hi + pad)
        }
        // Start from the step that would give exactly maxCount-1 intervals and round it up to a
        // nice one; widening to whole steps can add an interval, then take the next nice step.
        var step = niceStep(atLeast: (hi - lo) / Double(maxCount - 1))
        var first = (lo / step).rounded(.down), last = (hi / step).rounded(.up)
        while last - first + 1 > Double(maxCount) {
            step = niceStep(atLeast: step * 1.0001)
            first = (lo / step).rounded(.down)
            last = (hi / step).rounded(.up)
        }
        let values = stride(from: first, through: last, by: 1).map { cleaned($0 * step, step: step) }
        return Ticks(values: values, lower: values[0], upper: values[values.count - 1], step: step, isLog: false)
    }

    /// Ticks for a log axis covering `lower…upper` (both > 0): whole decades, every k-th one when
    /// there are more than `maxCount`, or 1-2-5 multiples inside spans under two decades.
    /// Non-positive or non-finite bounds give 1…10.
    public static func log(lower: Double, upper: Double, maxCount: Int = 6) -> Ticks {
        precondition(maxCount >= 2, "Ticks: maxCount \(maxCount) must be at least 2")
        var (lo, hi) = (min(lower, upper), max(lower, upper))
        if !(lo > 0 && hi.isFinite) { (lo, hi) = (1, 10) }
        let e0 = log10(lo).rounded(.down), e1 = max(log10(hi).rounded(.up), e0 + 1)
        if e1 - e0 <= 2 {
            // Within two decades, decades alone give 2–3 ticks: add 2x and 5x, trimmed to the
            // 1-2-5 values just outside the data.
            var candidates: [Double] = []
            for e in stride(from: e0, through: e1, by: 1) {
                for m in [1.0, 2.0, 5.0] { candidates.append(cleaned(m * pow(10, e), step: m * pow(10, e))) }
            }
            let below = candidates.last { $0 <= lo * (1 + 1e-12) } ?? candidates[0]
            let above = candidates.first { $0 >= hi * (1 - 1e-12) } ?? candidates[candidates.count - 1]
            let values = candidates.filter { $0 >= below && $0 <= above }
            if values.count <= maxCount {
                return Ticks(values: values, lower: below, upper: above, step: 10, isLog: true)
            }
        }
        let decades = Int(e1 - e0)
        let every = max(1, Int((Double(decades) / Double(maxCount - 1)).rounded(.up)))
        let first = (e0 / Double(every)).rounded(.down) * Double(every)
        let last = (e1 / Double(every)).rounded(.up) * Double(every)
        let values = stride(from: first, through: last, by: Double(every)).map { pow(10, $0) }
        return Ticks(values: values, lower: values[0], upper: values[values.count - 1], step: pow(10, Double(every)), isLog: true)
    }

    /// The smallest of 1, 2, 5 x 10^k that is at least `raw` (> 0).
    static func niceStep(atLeast raw: Double) -> Double {
        let exponent = log10(raw).rounded(.down)
        let magnitude = pow(10, exponent)
        let fraction = raw / magnitude
        let nice: Double = fraction <= 1 + 1e-9 ? 1 : fraction <= 2 + 1e-9 ? 2 : fraction <= 5 + 1e-9 ? 5 : 10
        return nice * magnitude
    }

    /// `value` with the rounding noise of `k * step` removed (0.30000000000000004 → 0.3) and
    /// without a negative zero.
    static func cleaned(_ value: Double, step: Double) -> Double {
        let decimals = max(0, -Int(log10(step).rounded(.down)))
        let scale = pow(10, Double(min(decimals, 15)))
        let rounded = (value * scale).rounded() / scale
        return rounded == 0 ? 0 : rounded
    }

    /// The tick labels: linear ticks with as many decimals as the step needs ("0.00", "0.05",
    /// "15000"), in short exponent form ("5e5", "1.5e6", "2e-5") when values reach a million or
    /// the step is below 1e-4; log ticks as plain numbers from 0.001 to 10000, exponents beyond.
    public var labels: [String] { values.map(label(for:)) }

    /// The label of one tick value, as in `labels`.
    public func label(for value: Double) -> String {
        if isLog {
            guard value > 0 && value.isFinite else { return String(format: "%g", value) }
            let exponent = log10(value).rounded(.down)
            if exponent < -3 || exponent > 4 { return Self.scientific(value) }
            return Self.fixed(value, decimals: max(0, -Int(exponent)))
        }
        let largest = values.map { abs($0) }.max() ?? abs(value)
        if largest >= 1e6 || step < 1e-4 { return Self.scientific(value) }
        let decimals = max(0, -Int((log10(step) + 1e-9).rounded(.down)))
        return Self.fixed(value, decimals: decimals)
    }

    /// "1.5e6", "2e-5", "0": mantissa to 6 significant digits without trailing zeros, exponent
    /// without sign padding (narrower than printf's "1.5e+06", which matters on an axis).
    static func scientific(_ value: Double) -> String {
        guard value != 0 && value.isFinite else { return value == 0 ? "0" : String(format: "%g", value) }
        var exponent = Int(log10(abs(value)).rounded(.down))
        var mantissa = String(format: "%.6g", value / pow(10, Double(exponent)))
        if mantissa == "10" || mantissa == "-10" {
            exponent += 1
            mantissa = mantissa.hasPrefix("-") ? "-1" : "1"
        }
        return "\(mantissa)e\(exponent)"
    }

    static func fixed(_ value: Double, decimals: Int) -> String {
        let text = String(format: "%.\(decimals)f", value)
        return text.hasPrefix("-") && Double(text) == 0 ? String(text.dropFirst()) : text
    }
}
