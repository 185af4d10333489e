import Foundation
import Synchronization
import Testing

@testable import Autograd

@Suite(.serialized) struct WorkerPoolTests {
    /// Every chunk runs exactly once, on the caller and the workers, job after job.
    @Test func everyChunkRunsOnceAcrossManyJobs() {
        let pool = WorkerPool(workers: 3)
        defer { pool.shutdown() }
        for job in 0..<2000 {
            let chunks = 2 + job % 7
            // Each chunk owns its slot, so a chunk run twice shows as a 2.
            let counts = UnsafeMutableBufferPointer<Int>.allocate(capacity: chunks)
            defer { counts.deallocate() }
            counts.initialize(repeating: 0)
            pool.run(chunks: chunks) { counts[$0] += 1 }
            #expect(counts.allSatisfy { $0 == 1 }, "job \(job)")
        }
    }

    /// A job started inside a chunk (a kernel calling a kernel) or from a second thread while
    /// the pool is busy runs inline instead of waiting.
    @Test func nestedAndConcurrentJobsRunInline() {
        let pool = WorkerPool(workers: 1)
        defer { pool.shutdown() }
        let total = Atomic<Int>(0)
        pool.run(chunks: 4) { _ in
            pool.run(chunks: 5) { _ in total.wrappingAdd(1, ordering: .relaxed) }
        }
        #expect(total.load(ordering: .relaxed) == 20)
        DispatchQueue.concurrentPerform(iterations: 4) { _ in
            for _ in 0..<200 { pool.run(chunks: 3) { _ in total.wrappingAdd(1, ordering: .relaxed) } }
        }
        #expect(total.load(ordering: .relaxed) == 20 + 4 * 200 * 3)
    }

    /// parallelFor covers the range once whatever the thread count, and products split across
    /// the pool equal the single-threaded product.
    @Test func parallelForAndSplitProductsAfterResizing() {
        defer { Runtime.configure(threads: nil) }
        for threads in [1, 2, 3] {
            Runtime.configure(threads: threads)
            var seen = [Int](repeating: 0, count: 1000)
            seen.withUnsafeMutableBufferPointer { buffer in
                let base = buffer.baseAddress!
                parallelFor(1000) { r in for i in r { base[i] += 1 } }
            }
            #expect(seen.allSatisfy { $0 == 1 })
            // Wide (split by columns) and tall (split by rows), each operand plain or transposed.
            for (m, n, k) in [(70, 300, 64), (300, 70, 64)] {
                for (transA, transB) in [(false, false), (true, false), (false, true), (true, true)] {
                    let a = (0..<(m * k)).map { Float($0 % 13) - 6 }, b = (0..<(k * n)).map { Float($0 % 7) - 3 }
                    var c = [Float](repeating: 0.5, count: m * n), reference = c
                    Kernels.gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: 0.5, a: a, b: b, beta: 1, c: &c)
                    Kernels.sgemm(transA, transB, m, n, k, 0.5, a, transA ? m : k, b, transB ? k : n, 1, &reference, n)
                    #expect(c == reference, "threads \(threads), \(m)x\(n)x\(k), trans \(transA) \(transB)")
                }
            }
        }
    }
}
