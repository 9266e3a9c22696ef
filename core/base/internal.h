/* Internal helpers shared by core/: not installed, not for hosts. */
#ifndef MIMIC_INTERNAL_H
#define MIMIC_INTERNAL_H

#include "mimic/tensor.h"

#define MIMIC_COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

#ifdef _OPENMP
#include <omp.h>
#endif
/* Call first inside a parallel region whose threads call BLAS: their gemms
 * stay on their own thread. OpenBLAS's OpenMP build sizes its work by
 * nthreads-var even inside a team, and the team's threads then wait on each
 * other's buffers (the embedding API measured 5x slower on 2 threads than on
 * one for 60-row batches). nthreads-var is per task: this changes nothing
 * outside the region. */
static inline void mimic_blas_on_this_thread(void)
{
#ifdef _OPENMP
    omp_set_num_threads(1);
#endif
}

/* --- strided iteration ------------------------------------------------------
 * Walks `nt` operands over one shape, with per-operand byte strides (0 for a
 * broadcast dim). Dims that are contiguous for every operand are merged, so a
 * contiguous tensor is one row. The callback gets one row at a time: n
 * elements, the row's start pointers and each operand's byte stride along it.
 * Rows are independent, so mimic_iter_run spreads them over threads when the
 * work is large; element-wise results therefore never depend on thread count. */
#define MIMIC_ITER_MAX 4
typedef struct mimic_iter {
    int nt, ndim; /* ndim >= 1 after init; the last dim is the row */
    int64_t shape[MIMIC_MAX_DIMS];
    int64_t stride[MIMIC_ITER_MAX][MIMIC_MAX_DIMS]; /* bytes */
    int64_t rows, numel;
} mimic_iter;
typedef void (*mimic_row_fn)(void *ctx, int64_t n, char **p, const int64_t *s);

/* strides[k] are element strides of operand k over `shape` (already broadcast,
 * 0 where broadcast); esize[k] its element size in bytes. */
void mimic_iter_init(mimic_iter *it, int ndim, const int64_t *shape, int nt,
                     const int64_t *const *strides, const size_t *esize);
/* base[k]: address of operand k's first element. `parallel` allows threads. */
void mimic_iter_run(const mimic_iter *it, char *const *base, mimic_row_fn fn, void *ctx, bool parallel);

/* Strides of t broadcast to a shape of ndim dims: t's dims aligned right, size-1 dims
 * stride 0. The caller has checked compatibility. */
void mimic_broadcast_strides(const mimic_tensor *t, int ndim, int64_t *out);

/* Float to int64, saturating (NaN -> 0): a plain cast of those is undefined in C. */
static inline int64_t mimic_f2i64(double x)
{
    return x != x ? 0 : x >= 0x1p63 ? INT64_MAX : x < -0x1p63 ? INT64_MIN : (int64_t)x;
}

/* How messages name things (see base.h): a dim counted from the end, a 0-dim
 * tensor counting as one dim as in mimic_dim; a list position i (0-based) as
 * "1st", "2nd", ... written into buf, which ORDINAL provides for one call. */
static inline int mimic_dim_from_end(int d, int ndim) { return d - (ndim ? ndim : 1); }
const char *mimic_ordinal(int i, char *buf, size_t size);
#define MIMIC_ORDINAL(i) mimic_ordinal((i), (char[16]){0}, 16)

/* Below this many elements (1 MiB of float32), element-wise work stays on one
 * thread. It was 32768; but a pass over 32k floats takes a few µs, and the
 * ops of a training step at batch 256 (256x128 activations) then each paid a
 * fork/join, and on a machine with more runnable jobs than cores the spinning
 * OpenMP worker took the core the calling thread needed: a 2-thread epoch ran
 * several times slower than a 1-thread one (tests/bench/bench_train.lua,
 * docs/performance.md). Results do not depend on it (every threaded path
 * gives the same bits as the serial one; tests/c check 1 vs 2 threads). */
#define MIMIC_PARALLEL_MIN (1 << 18)

/* Checks shared by ops; each returns MIMIC_OK or records an error naming fn. */
int mimic_check_float(const char *fn, const mimic_tensor *t);
int mimic_check_out_shape(const char *fn, const mimic_tensor *out, int ndim, const int64_t *shape);
/* Row-major C = op(A) op(B) (+ C when accumulate) in dtype ct (F32/F64); M, N
 * or K may be 0. Small products run on one thread (MIMIC_SERIAL_GEMM_FLOPS). */
void mimic_gemm_rm(mimic_dtype ct, bool ta, bool tb, int64_t M, int64_t N, int64_t K, const void *A, int64_t lda,
                   const void *B, int64_t ldb, bool accumulate, void *C, int64_t ldc);
/* t as a contiguous tensor of dtype ct: t itself (retained) or a copy, which
 * the caller releases either way. NULL passes through; a failed copy sets *fail. */
mimic_tensor *mimic_as_contiguous_dtype(const mimic_tensor *t, mimic_dtype ct, bool *fail);

/* A new tensor struct (refcount 1) over storage s (retained), with given layout. */
mimic_tensor *mimic_tensor_new_view(const mimic_tensor *base, int ndim, const int64_t *shape,
                                    const int64_t *stride, int64_t offset);

#endif
