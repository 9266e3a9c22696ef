/* Checks shared by the op families, so every op words its errors the same way. */
#include "../base/internal.h"

#include <cblas.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

int mimic_check_float(const char *fn, const mimic_tensor *t)
{
    if (t->dtype == MIMIC_F32 || t->dtype == MIMIC_F64)
        return MIMIC_OK;
    return mimic_error(MIMIC_EDTYPE, "%s: %s tensors are not supported; convert with :float() or :double()",
                       fn, mimic_dtype_name(t->dtype));
}

int mimic_check_out_shape(const char *fn, const mimic_tensor *out, int ndim, const int64_t *shape)
{
    bool same = out->ndim == ndim;
    for (int d = 0; same && d < ndim; d++)
        same = out->shape[d] == shape[d];
    if (same)
        return MIMIC_OK;
    char a[96], b[96];
    return mimic_error(MIMIC_ESHAPE, "%s: output has shape %s but the result has shape %s", fn,
                       mimic_shape_str(out->ndim, out->shape, a, sizeof a), mimic_shape_str(ndim, shape, b, sizeof b));
}

/* Below this many flops, a single gemm runs on the calling thread only.
 * OpenBLAS threads any product above 64^3 multiply-adds, but the products of
 * a training step at batch 256 (256x128 by 128x128: 8.4 Mflop, ~0.1 ms) are
 * too short for a fork/join to pay off, and on a machine with more runnable
 * jobs than cores its spinning worker steals the calling thread's core: a
 * 2-thread epoch of a 10-128-128-10 MLP ran 10x slower than a 1-thread one
 * (tests/bench/bench_train.lua, docs/performance.md). Threading is by rows
 * or columns of C, never K, so each element's sum is the same either way. */
#ifndef MIMIC_SERIAL_GEMM_FLOPS
#define MIMIC_SERIAL_GEMM_FLOPS (1 << 25)
#endif

void mimic_gemm_rm(mimic_dtype ct, bool ta, bool tb, int64_t M, int64_t N, int64_t K, const void *A, int64_t lda,
                   const void *B, int64_t ldb, bool accumulate, void *C, int64_t ldc)
{
    if (M == 0 || N == 0)
        return;
    if (K == 0) {
        /* BLAS leaves C alone with K = 0 only when beta is 1 */
        size_t es = ct == MIMIC_F32 ? 4 : 8;
        if (!accumulate)
            for (int64_t i = 0; i < M; i++)
                memset((char *)C + (size_t)(i * ldc) * es, 0, (size_t)N * es);
        return;
    }
    enum CBLAS_TRANSPOSE a = ta ? CblasTrans : CblasNoTrans, b = tb ? CblasTrans : CblasNoTrans;
#ifdef _OPENMP
    /* OpenBLAS's OpenMP build follows omp_get_max_threads() at each call. */
    int nthr = omp_get_max_threads();
    bool serial = nthr > 1 && !omp_in_parallel() && 2.0 * (double)M * (double)N * (double)K < MIMIC_SERIAL_GEMM_FLOPS;
    if (serial)
        omp_set_num_threads(1);
#endif
    if (ct == MIMIC_F32)
        cblas_sgemm(CblasRowMajor, a, b, (int)M, (int)N, (int)K, 1.0f, A, (int)lda, B, (int)ldb,
                    accumulate ? 1.0f : 0.0f, C, (int)ldc);
    else
        cblas_dgemm(CblasRowMajor, a, b, (int)M, (int)N, (int)K, 1.0, A, (int)lda, B, (int)ldb,
                    accumulate ? 1.0 : 0.0, C, (int)ldc);
#ifdef _OPENMP
    if (serial)
        omp_set_num_threads(nthr);
#endif
}

mimic_tensor *mimic_as_contiguous_dtype(const mimic_tensor *t, mimic_dtype ct, bool *fail)
{
    if (!t)
        return NULL;
    mimic_tensor *r;
    if (t->dtype == ct && mimic_is_contiguous(t)) {
        r = (mimic_tensor *)t;
        mimic_tensor_retain(r);
    } else {
        r = mimic_to_dtype(t, ct);
    }
    if (!r)
        *fail = true;
    return r;
}
