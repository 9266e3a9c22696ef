/* One thread setting for mimic's loops and BLAS. The build uses Debian's
 * OpenMP variant of OpenBLAS, so both read OpenMP's nthreads-var and an
 * OpenBLAS call inside a parallel region runs on the calling thread; with
 * another BLAS (a cluster's MKL or a pthreads OpenBLAS) the BLAS count is set
 * too when the library offers openblas_set_num_threads. */
#include "mimic/base.h"

#ifdef _OPENMP
#include <omp.h>
#endif

/* Weak: present with OpenBLAS, absent (NULL) with other BLAS libraries. */
extern void openblas_set_num_threads(int n) __attribute__((weak));

void mimic_set_num_threads(int n)
{
#ifdef _OPENMP
    if (n <= 0)
        n = omp_get_num_procs();
    omp_set_num_threads(n);
#else
    n = 1;
#endif
    if (openblas_set_num_threads)
        openblas_set_num_threads(n);
}

int mimic_get_num_threads(void)
{
#ifdef _OPENMP
    return omp_in_parallel() ? 1 : omp_get_max_threads();
#else
    return 1;
#endif
}
