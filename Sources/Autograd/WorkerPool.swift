import Foundation
import CKernels
import Synchronization

/// The threads our kernels — and, through `Kernels.gemm`, OpenBLAS's matrix products — run on:
/// the calling thread plus `Runtime.threads - 1` workers. One pool for everything, because two
/// pools on few cores fight: with OpenBLAS's own threads beside Dispatch's, the demo's narrow
/// segmenter spent 42% of its time in the scheduler (OpenBLAS's idle threads call `sched_yield`
/// in a loop for ~0.1 s after every product; perf, docs/PERFORMANCE.md). OpenBLAS is therefore
/// set to one thread and large products are split across this pool instead.
///
/// A job is `chunks` calls of one body, taken in turn by the caller and the workers. Workers
/// spin briefly on the job counter after finishing (kernels come back to back), then park on a
/// condition variable. A job started while another is running — a kernel inside a chunk, or a
/// second thread such as the data loader — runs inline on its caller: nesting never waits.
final class WorkerPool: @unchecked Sendable {
    /// Extra threads (the caller is the other participant).
    let workers: Int
    /// The current job in one word, so a chunk is only ever claimed for the job it belongs to:
    /// generation (bits 32…63) · chunk count (16…31) · next chunk to hand out (0…15).
    private let state = Atomic<Int>(0)
    /// Chunks of the current job not yet finished; the caller waits for 0.
    private let unfinished = Atomic<Int>(0)
    /// Set while a job runs (or once the pool shuts down).
    private let busy = Atomic<Bool>(false)
    private let sleepers = Atomic<Int>(0)
    private let stopping = Atomic<Bool>(false)
    /// The current job's body: set before its generation is published and cleared only after
    /// every chunk finished, so a worker that claimed a chunk always sees it.
    private var body: ((Int) -> Void)?
    /// The caller's product arithmetic for the current job (`Kernels.withProducts`).
    private var arithmetic: Int32 = 0
    private var mutex = pthread_mutex_t()
    private var condition = pthread_cond_t()
    /// Busy-wait iterations before a worker parks (tens of microseconds).
    private let spinLimit = 20_000

    init(workers: Int) {
        self.workers = max(0, workers)
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&condition, nil)
        for index in 0..<self.workers {
            // A strong reference: a replaced pool lives until its workers have left (shutdown).
            let thread = Thread { self.workerLoop() }
            thread.name = "wsss.worker.\(index + 1)"
            thread.stackSize = 8 << 20
            thread.start()
        }
    }

    static func generation(_ word: Int) -> Int { word >> 32 }

    /// Runs `body(0..<chunks)` across the pool and returns when every chunk is done.
    func run(chunks: Int, _ body: (Int) -> Void) {
        guard workers > 0, chunks > 1, chunks < 1 << 16,
            busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged
        else {
            for chunk in 0..<chunks { body(chunk) }
            return
        }
        withoutActuallyEscaping(body) { escaping in
            self.body = escaping
            arithmetic = wsss_product_arithmetic()  // the workers run this job's products as the caller does
            unfinished.store(chunks, ordering: .relaxed)
            let next = (Self.generation(state.load(ordering: .relaxed)) &+ 1) & 0xFFFF_FFFF
            state.store(next << 32 | chunks << 16, ordering: .sequentiallyConsistent)
            if sleepers.load(ordering: .sequentiallyConsistent) > 0 {
                pthread_mutex_lock(&mutex)
                pthread_cond_broadcast(&condition)
                pthread_mutex_unlock(&mutex)
            }
            work(generation: next)
            // The last chunks may still run on workers.
            while unfinished.load(ordering: .acquiring) > 0 {}
            self.body = nil
        }
        busy.store(false, ordering: .releasing)
    }

    /// Claims and runs chunks of job `generation` until none is left (or another job started).
    private func work(generation: Int) {
        var word = state.load(ordering: .acquiring)
        while true {
            let count = (word >> 16) & 0xFFFF, chunk = word & 0xFFFF
            guard Self.generation(word) == generation, chunk < count else { return }
            let (claimed, current) = state.compareExchange(expected: word, desired: word + 1, ordering: .acquiringAndReleasing)
            guard claimed else {
                word = current
                continue
            }
            body?(chunk)
            unfinished.wrappingSubtract(1, ordering: .releasing)
            word = state.load(ordering: .acquiring)
        }
    }

    private func workerLoop() {
        var seen = Self.generation(state.load(ordering: .acquiring))
        while true {
            var spins = 0
            while Self.generation(state.load(ordering: .acquiring)) == seen && !stopping.load(ordering: .relaxed) {
                spins += 1
                if spins < spinLimit { continue }
                pthread_mutex_lock(&mutex)
                sleepers.wrappingAdd(1, ordering: .sequentiallyConsistent)
                while Self.generation(state.load(ordering: .sequentiallyConsistent)) == seen
                    && !stopping.load(ordering: .sequentiallyConsistent)
                {
                    pthread_cond_wait(&condition, &mutex)
                }
                sleepers.wrappingSubtract(1, ordering: .sequentiallyConsistent)
                pthread_mutex_unlock(&mutex)
                spins = 0
            }
            if stopping.load(ordering: .acquiring) { return }
            seen = Self.generation(state.load(ordering: .acquiring))
            wsss_set_product_arithmetic(arithmetic)
            work(generation: seen)
        }
    }

    /// Ends the workers once the current job is done; later jobs run on the caller alone.
    func shutdown() {
        while !busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged {}
        stopping.store(true, ordering: .sequentiallyConsistent)
        pthread_mutex_lock(&mutex)
        pthread_cond_broadcast(&condition)
        pthread_mutex_unlock(&mutex)
    }
}
