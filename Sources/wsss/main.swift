import ArgumentParser
import Autograd
import Distributed
import Foundation
import Training

// OpenBLAS picks its kernel when the library loads, before any Swift code runs; when a faster
// safe kernel applies (AVX-512 CPU that OpenBLAS 0.3.21 does not recognise), run again with
// OPENBLAS_CORETYPE set. See BLASKernelChoice.
BLASKernelChoice.reexecWithFastestKernelIfNeeded()

do {
    var command = try WSSS.parseAsRoot()
    try command.run()
    Communicator.current.finalize()
} catch {
    let communicator = Communicator.current
    if communicator.usesMPI {
        if error is ExitCode {
            // An agreed stop (Ctrl-C: every rank stopped at the same iteration): end MPI cleanly.
            communicator.finalize()
            WSSS.exit(withError: error)
        }
        if case TrainingError.nonFiniteLoss = error {
            // Every rank sees the loss summed over all ranks, so all stop here together; rank 0
            // names the last good checkpoint.
            communicator.finalize()
            if communicator.isWriter { WSSS.exit(withError: error) }
            WSSS.exit(withError: ExitCode(1))
        }
        // One rank's error the others cannot know of: say which rank, then stop the whole job
        // (MPI_Abort) so no peer waits in a collective.
        let message = (FileSystemFailure(error) ?? error).localizedDescription
        // DistributedError's messages name the rank already.
        let prefix = error is DistributedError ? "wsss: " : "wsss: rank \(communicator.rank) of \(communicator.size): "
        FileHandle.standardError.write(Data((prefix + message + "\n").utf8))
        communicator.abort(code: 1)
    }
    WSSS.exit(withError: FileSystemFailure(error) ?? error)
}
