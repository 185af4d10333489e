import ArgumentParser
import Autograd
import Distributed
import Foundation

extension Bench {
    /// `wsss bench allreduce`: MPI_Allreduce (sum of floats) bandwidth between the ranks of mpirun.
    struct Allreduce: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "allreduce",
            abstract: "MPI_Allreduce bandwidth (float sum) between the ranks of mpirun/srun: one JSON line per message size.",
            discussion: """
                Run under a launcher, e.g. mpirun -np 2 wsss bench allreduce. Every line has bytes, ranks, median_s, min_s, \
                algo_gbps (bytes ÷ median time, GB/s) and bus_gbps (algo_gbps × 2(N−1)/N: what each link carries in a ring \
                allreduce, comparable across rank counts as in nccl-tests). Rank 0 prints; without a launcher there is one rank \
                and nothing to measure.
                """)

        @Option(help: ArgumentHelp("Message sizes in MB (10^6 bytes), comma-separated.", valueName: "list"))
        var sizes = "0.004,0.064,1,4,25,100,176"

        @Option(help: ArgumentHelp("Minimum seconds spent timing each size.", valueName: "s"))
        var seconds: Double = 1.0

        func run() throws {
            let communicator = try Communicator.world()
            defer { communicator.finalize() }
            let list = try parseNumbers(sizes, option: "--sizes", positive: true)
            guard communicator.size > 1 else {
                throw CommandFailure("bench allreduce: one rank only; run it under mpirun -np N (N ≥ 2) or srun")
            }
            for megabytes in list {
                let count = max(1, Int(megabytes * 1e6) / MemoryLayout<Float>.size)
                let buffer = UnsafeMutablePointer<Float>.allocate(capacity: count)
                defer { buffer.deallocate() }
                buffer.update(repeating: 1, count: count)
                try communicator.allreduceSum(buffer, count: count)  // warm-up: connections, registration
                var times: [Double] = []
                let start = Date()
                repeat {
                    try communicator.barrier()
                    let t = Date()
                    try communicator.allreduceSum(buffer, count: count)
                    // Every rank takes the slowest rank's time, so all agree on when to stop.
                    times.append(try communicator.allreduceMax([Date().timeIntervalSince(t)])[0])
                    // Keep the values bounded (1 → N → N² … would overflow to inf).
                    buffer.update(repeating: 1, count: count)
                } while try communicator.allreduceMax([Date().timeIntervalSince(start)])[0] < seconds || times.count < 3
                times.sort()
                let median = times[times.count / 2]
                let bytes = Double(count * MemoryLayout<Float>.size)
                let algo = bytes / median / 1e9
                let n = Double(communicator.size)
                guard communicator.isWriter else { continue }
                let object: [String: Any] = [
                    "name": "allreduce", "bytes": count * MemoryLayout<Float>.size, "ranks": communicator.size,
                    "median_s": median, "min_s": times[0], "reps": times.count,
                    "algo_gbps": (algo * 1000).rounded() / 1000, "bus_gbps": (algo * 2 * (n - 1) / n * 1000).rounded() / 1000,
                ]
                let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
                print(String(decoding: data, as: UTF8.self))
                fflush(stdout)
            }
        }
    }
}
