import CBLAS
import Dispatch
import Foundation

/// Process-wide compute settings: the OpenBLAS kernel and the thread count used by OpenBLAS and
/// by our own kernels. Set once at start-up (`configure(threads:)`) and logged.
public enum Runtime {
    /// Threads our own kernels split work across (OpenBLAS is set to the same number).
    public private(set) static nonisolated(unsafe) var threads = max(1, ProcessInfo.processInfo.activeProcessorCount)

    /// Sets the thread count for OpenBLAS and our kernels; nil keeps one per core.
    public static func configure(threads requested: Int?) {
        let n = max(1, requested ?? ProcessInfo.processInfo.activeProcessorCount)
        threads = n
        // OpenBLAS runs single-threaded inside our pool (`Kernels.gemm` splits large products);
        // its own threads would spin against ours (`WorkerPool`).
        openblas_set_num_threads(1)
        poolLock.lock()
        if pool.workers != n - 1 {
            pool.shutdown()
            pool = WorkerPool(workers: n - 1)
        }
        poolLock.unlock()
        tuneAllocator()
    }

    /// The pool `parallelFor` runs on, sized by `configure(threads:)`.
    nonisolated(unsafe) static var pool = WorkerPool(workers: max(1, ProcessInfo.processInfo.activeProcessorCount) - 1)
    static let poolLock = NSLock()

    /// Keeps glibc malloc from hoarding freed activations.
    ///
    /// Tensors of a few MB are freed on one thread and allocated on another; with glibc's
    /// defaults every thread gets its own arena and the mmap threshold grows after each large
    /// free, so freed blocks pile up: peak RSS of DeepLab-v2 inference varied from 0.4 to 1.6 GB
    /// between identical runs. One arena and a fixed 64 MB mmap threshold keep it at 0.4-0.75 GB.
    /// (A 1 MB threshold gives 0.28 GB but is 1.6x slower: every activation is freshly mmapped
    /// and page-faulted; measured with `wsss bench model`.) `MALLOC_*` variables still win.
    static func tuneAllocator() {
        let env = ProcessInfo.processInfo.environment
        if env["MALLOC_ARENA_MAX"] == nil { _ = mallopt(M_ARENA_MAX, 1) }
        if env["MALLOC_MMAP_THRESHOLD_"] == nil { _ = mallopt(M_MMAP_THRESHOLD, 64 << 20) }
        if env["MALLOC_TRIM_THRESHOLD_"] == nil { _ = mallopt(M_TRIM_THRESHOLD, trimThreshold) }
    }

    /// glibc's trim threshold outside `TensorStorage.reusingLargeBuffers` scopes.
    static let trimThreshold: Int32 = 64 << 20

    /// Whether the user set glibc's trim threshold (read once: scopes open many times per image).
    static let trimThresholdFromEnvironment = ProcessInfo.processInfo.environment["MALLOC_TRIM_THRESHOLD_"] != nil

    /// Inside a scope glibc keeps the freed top of its heap instead of trimming it back to the
    /// kernel at 64 MB (`Runtime.tuneAllocator`): the heap's 32–64 MB activations are then reused
    /// rather than unmapped and faulted in, zeroed, again — 1.5 s of Grounding DINO's 10 s at
    /// Swin-T's 800x1333, for the same peak RSS. Leaving the scope restores the threshold (the
    /// next free above it trims). A `MALLOC_TRIM_THRESHOLD_` in the environment still wins.
    static func holdHeapTop(_ hold: Bool) {
        guard !trimThresholdFromEnvironment else { return }
        _ = mallopt(M_TRIM_THRESHOLD, hold ? Int32.max : trimThreshold)
    }

    /// The OpenBLAS kernel in use, e.g. "Zen" or "SkylakeX".
    public static var blasCore: String {
        guard let name = openblas_get_corename() else { return "unknown" }
        return String(cString: name).trimmingCharacters(in: .whitespaces)
    }

    /// OpenBLAS's own thread count (1: our pool runs its products, `Kernels.gemm`).
    public static var blasThreads: Int { Int(openblas_get_num_threads()) }

    /// One line for logs and benchmarks: kernel, who chose it, threads, and whether the CPU
    /// multiplies bf16 (AVX512-BF16, which `Kernels.sbgemm` then uses).
    public static var summary: String {
        "OpenBLAS \(blasCore) (\(BLASKernelChoice.origin)), \(threads) thread\(threads == 1 ? "" : "s"), "
            + (Kernels.bf16Hardware ? "bf16 arithmetic (AVX512-BF16)" : "no bf16 arithmetic")
    }
}

/// Chooses the OpenBLAS kernel from the CPU's features.
///
/// Debian's OpenBLAS 0.3.21 does not recognise recent AVX-512 CPUs (e.g. AMD Zen 4/5) and falls
/// back to AVX2 kernels, about half as fast; forcing an AVX-512 kernel on an AVX2-only CPU dies
/// with SIGILL. OpenBLAS reads `OPENBLAS_CORETYPE` when it loads, so the choice must be made
/// before that: `wsss` re-executes itself once with the variable set (docs/ARCHITECTURE.md).
public enum BLASKernelChoice {
    /// Kernels that already use AVX-512 (no change needed when OpenBLAS picked one of these).
    static let avx512Cores: Set<String> = ["skylakex", "cooperlake", "sapphirerapids"]

    /// The CPU flags listed in /proc/cpuinfo (empty when unreadable).
    public static func cpuFlags(cpuinfo: String? = readProcFile("/proc/cpuinfo")) -> Set<String> {
        guard let cpuinfo else { return [] }
        for line in cpuinfo.split(separator: "\n") where line.hasPrefix("flags") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            return Set(line[line.index(after: colon)...].split(separator: " ").map(String.init))
        }
        return []
    }

    /// Reads a /proc file. These report a size of 0, so Foundation's whole-file readers return
    /// nothing; read with stdio until end of file instead.
    public static func readProcFile(_ path: String) -> String? {
        guard let file = fopen(path, "r") else { return nil }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = fread(&chunk, 1, chunk.count, file)
            if n <= 0 { break }
            bytes += chunk[0..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The `OPENBLAS_CORETYPE` to force, or nil to keep what OpenBLAS detected.
    /// - Parameters:
    ///   - flags: CPU feature flags.
    ///   - detectedCore: `openblas_get_corename()` as loaded.
    ///   - userSetting: the user's own `OPENBLAS_CORETYPE`, which always wins.
    public static func coreToForce(flags: Set<String>, detectedCore: String, userSetting: String?) -> String? {
        if let userSetting, !userSetting.isEmpty { return nil }
        let needed: Set<String> = ["avx512f", "avx512bw", "avx512dq", "avx512vl"]
        guard needed.isSubset(of: flags) else { return nil }
        guard !avx512Cores.contains(detectedCore.lowercased()) else { return nil }
        return "SkylakeX"
    }

    /// A warning when the user's `OPENBLAS_CORETYPE` pins a kernel older than the CPU runs: an
    /// AVX2 (or older) kernel on a CPU with AVX-512, which about halves sgemm. The setting is
    /// obeyed; the line says what unsetting it would gain. nil when there is nothing to say.
    public static func pinnedKernelWarning(flags: Set<String>, loadedCore: String, userSetting: String?) -> String? {
        guard let userSetting, !userSetting.isEmpty, let _ = coreToForce(flags: flags, detectedCore: loadedCore, userSetting: nil)
        else { return nil }
        return "warning: OPENBLAS_CORETYPE=\(userSetting) pins OpenBLAS to its \(loadedCore) kernel, but this CPU has AVX-512: "
            + "unset it (env -u OPENBLAS_CORETYPE) for OpenBLAS's AVX-512 kernel, about 1.9x faster sgemm "
            + "(105-109 vs 193-204 GFLOP/s per core on an AMD EPYC, `wsss bench ops`)"
    }

    /// Set alongside OPENBLAS_CORETYPE when wsss chose the kernel, so logs can tell the user's
    /// choice from ours.
    static let chosenMarker = "WSSS_CHOSE_OPENBLAS_CORETYPE"

    /// Who chose the kernel in use: wsss from the CPU flags, the user's OPENBLAS_CORETYPE, or
    /// OpenBLAS's own detection.
    public static var origin: String {
        let env = ProcessInfo.processInfo.environment
        if let chosen = env[chosenMarker], chosen == env["OPENBLAS_CORETYPE"] { return "chosen by wsss for this CPU's AVX-512" }
        if let user = env["OPENBLAS_CORETYPE"], !user.isEmpty { return "OPENBLAS_CORETYPE=\(user) from the environment" }
        return "detected by OpenBLAS"
    }

    /// Re-executes the current process with the faster kernel when one applies. Returns only if
    /// nothing was to be done or `execv` failed (then the detected kernel stays in use).
    public static func reexecWithFastestKernelIfNeeded() {
        let env = ProcessInfo.processInfo.environment
        guard
            let core = coreToForce(
                flags: cpuFlags(), detectedCore: Runtime.blasCore,
                userSetting: env["OPENBLAS_CORETYPE"])
        else { return }
        setenv("OPENBLAS_CORETYPE", core, 1)
        setenv(chosenMarker, core, 1)
        execv("/proc/self/exe", CommandLine.unsafeArgv)
        unsetenv("OPENBLAS_CORETYPE")
        unsetenv(chosenMarker)
    }
}

/// Splits `count` independent work items into at most `Runtime.threads` contiguous ranges and
/// runs them concurrently (`body` gets each range once).
@inline(__always)
public func parallelFor(_ count: Int, minimumPerThread: Int = 1, _ body: (Range<Int>) -> Void) {
    let chunks = min(Runtime.threads, max(1, count / max(1, minimumPerThread)))
    if chunks <= 1 || count <= 1 {
        body(0..<count)
        return
    }
    Runtime.pool.run(chunks: chunks) { chunk in
        let lo = count * chunk / chunks, hi = count * (chunk + 1) / chunks
        if lo < hi { body(lo..<hi) }
    }
}
