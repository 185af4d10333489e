import Autograd
import Foundation
import Training

// OpenBLAS picks its kernel when the library loads, before any Swift code runs; when a faster
// safe kernel applies (AVX-512 CPU that OpenBLAS 0.3.21 does not recognise), run again with
// OPENBLAS_CORETYPE set. See BLASKernelChoice.
BLASKernelChoice.reexecWithFastestKernelIfNeeded()

do {
    var command = try WSSS.parseAsRoot()
    try command.run()
} catch {
    WSSS.exit(withError: FileSystemFailure(error) ?? error)
}
