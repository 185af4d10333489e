import Foundation

/// The memory this process may allocate: what every size that follows from user input (a crop,
/// a SAM image size, a point grid) is checked against before it is allocated, so a typo ends in
/// a message naming the option instead of an allocation failure.
public enum MemoryLimit {
    /// Bytes: physical memory, or the address-space limit (`ulimit -v`) when that is lower.
    public static var available: Int {
        var limit = Int(clamping: ProcessInfo.processInfo.physicalMemory)
        var rl = rlimit()
        // rlim_t.max is RLIM_INFINITY (no limit).
        if getrlimit(Int32(RLIMIT_AS.rawValue), &rl) == 0 && rl.rlim_cur != rlim_t.max {
            limit = min(limit, Int(clamping: rl.rlim_cur))
        }
        return limit
    }

    /// The product of `factors` in bytes (`Int.max` on overflow): sizes multiplied without a trap.
    public static func bytes(_ factors: Int...) -> Int {
        var total = 1
        for f in factors {
            let (product, overflow) = total.multipliedReportingOverflow(by: max(f, 0))
            if overflow { return Int.max }
            total = product
        }
        return total
    }

    /// "12.3 GB", for messages.
    public static func describe(_ bytes: Int) -> String {
        bytes == Int.max ? "more bytes than a 64-bit count holds" : String(format: "%.1f GB", Double(bytes) / 1e9)
    }
}
