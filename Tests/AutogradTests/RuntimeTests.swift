import Autograd
import Testing

@Suite struct RuntimeTests {
    static let avx512: Set<String> = ["sse2", "avx2", "fma", "avx512f", "avx512bw", "avx512dq", "avx512vl"]
    static let avx2Only: Set<String> = ["sse2", "avx2", "fma"]

    @Test func forcesSkylakeXOnlyOnAVX512CPUsThatOpenBLASMissed() {
        #expect(BLASKernelChoice.coreToForce(flags: Self.avx512, detectedCore: "Haswell", userSetting: nil) == "SkylakeX")
        #expect(BLASKernelChoice.coreToForce(flags: Self.avx512, detectedCore: "Zen", userSetting: nil) == "SkylakeX")
        // Already an AVX-512 kernel: nothing to do.
        #expect(BLASKernelChoice.coreToForce(flags: Self.avx512, detectedCore: "SkylakeX", userSetting: nil) == nil)
        #expect(BLASKernelChoice.coreToForce(flags: Self.avx512, detectedCore: "Cooperlake", userSetting: nil) == nil)
        // AVX2-only CPUs would die with SIGILL under an AVX-512 kernel.
        #expect(BLASKernelChoice.coreToForce(flags: Self.avx2Only, detectedCore: "Zen", userSetting: nil) == nil)
        #expect(
            BLASKernelChoice.coreToForce(flags: Self.avx512.subtracting(["avx512vl"]), detectedCore: "Zen", userSetting: nil)
                == nil)
        // The user's choice always wins.
        #expect(BLASKernelChoice.coreToForce(flags: Self.avx512, detectedCore: "Zen", userSetting: "Haswell") == nil)
    }

    @Test func warnsOnceWhenTheUserPinsAnOlderKernelThanTheCPURuns() throws {
        let warning = try #require(
            BLASKernelChoice.pinnedKernelWarning(flags: Self.avx512, loadedCore: "Haswell", userSetting: "Haswell"))
        #expect(
            warning.hasPrefix("warning: OPENBLAS_CORETYPE=Haswell pins OpenBLAS to its Haswell kernel")
                && warning.contains("1.9x"))
        // Nothing to say: no setting, an AVX-512 kernel pinned, or a CPU without AVX-512.
        #expect(BLASKernelChoice.pinnedKernelWarning(flags: Self.avx512, loadedCore: "Haswell", userSetting: nil) == nil)
        #expect(BLASKernelChoice.pinnedKernelWarning(flags: Self.avx512, loadedCore: "SkylakeX", userSetting: "SkylakeX") == nil)
        #expect(BLASKernelChoice.pinnedKernelWarning(flags: Self.avx2Only, loadedCore: "Haswell", userSetting: "Haswell") == nil)
    }

    @Test func readsFlagsFromCpuinfo() {
        let text = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f\nbugs\t\t: none\n"
        #expect(BLASKernelChoice.cpuFlags(cpuinfo: text) == ["fpu", "sse2", "avx2", "avx512f"])
        #expect(BLASKernelChoice.cpuFlags(cpuinfo: nil).isEmpty)
    }

    @Test func reportsKernelAndThreads() {
        Runtime.configure(threads: 1)
        #expect(Runtime.blasThreads == 1)
        #expect(!Runtime.blasCore.isEmpty)
        #expect(Runtime.summary.contains("1 thread"))
        Runtime.configure(threads: nil)
    }
}
