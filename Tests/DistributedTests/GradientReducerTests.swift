import Autograd
import Distributed
import Testing

/// The reducer's bucketing and its single-process behaviour (sums over real ranks are tested
/// under mpirun in WSSSTests/DistributedTrainingTests).
@Suite struct GradientReducerTests {
    func parameters() -> [Tensor] {
        [Tensor(repeating: 1, shape: [1000]), Tensor(repeating: 2, shape: [10]), Tensor(repeating: 3, shape: [3000])].map {
            $0.requiringGrad()
        }
    }

    @Test func bucketsFillInReverseOrderUpToTheirSize() {
        let ps = parameters()
        // Last parameter first: p2 (3000 floats = 12 KB) fills a 12 KB bucket alone; p1 and p0 share the next.
        let reducer = GradientReducer(parameters: ps, communicator: .single, bucketBytes: 12_000)
        #expect(reducer.bucketCount == 2)
        #expect(GradientReducer(parameters: ps, communicator: .single).bucketCount == 1)
    }

    @Test func oneProcessKeepsTheGradients() throws {
        let ps = parameters()
        let loss = ps.enumerated().map { ($0.element * Float($0.offset + 1)).sum() }.reduce(Tensor(scalar: 0), +)
        let reducer = GradientReducer(parameters: ps, communicator: .single, bucketBytes: 4_000)
        try reducer.backwardAndReduce(loss)
        for (k, p) in ps.enumerated() {
            #expect(p.grad?.scalars == [Float](repeating: Float(k + 1), count: p.count))
        }
    }

    @Test func singleCommunicatorIsOneRankWithoutMPI() throws {
        let c = Communicator.single
        #expect(c.rank == 0 && c.size == 1 && !c.usesMPI && c.isWriter)
        #expect(try c.allreduceSum([1, 2]) == [1, 2])
        #expect(try c.broadcast(3.5) == 3.5)
        try c.barrier()
        try c.waitForAll()
    }

    @Test func aLauncherIsRecognisedByItsEnvironment() {
        #expect(Communicator.launchedByMPI(environment: ["OMPI_COMM_WORLD_SIZE": "2"]))
        #expect(Communicator.launchedByMPI(environment: ["SLURM_NTASKS": "4", "SLURM_STEP_ID": "0"]))
        // An sbatch script outside srun has SLURM_NTASKS but no step: not a rank.
        #expect(!Communicator.launchedByMPI(environment: ["SLURM_NTASKS": "4"]))
        #expect(!Communicator.launchedByMPI(environment: [:]))
    }
}
