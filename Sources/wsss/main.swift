import Autograd

// OpenBLAS picks its kernel when the library loads, before any Swift code runs; when a faster
// safe kernel applies (AVX-512 CPU that OpenBLAS 0.3.21 does not recognise), run again with
// OPENBLAS_CORETYPE set. See BLASKernelChoice.
BLASKernelChoice.reexecWithFastestKernelIfNeeded()
WSSS.main()
