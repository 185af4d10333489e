// OpenBLAS's cblas.h also declares openblas_set_num_threads / openblas_get_corename.
#include <cblas.h>
// mallopt: Runtime tunes glibc malloc next to the BLAS threads (Swift's Glibc module omits malloc.h).
#include <malloc.h>
