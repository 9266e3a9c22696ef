/* Strided iteration shared by element-wise ops, copies and fills. */
#include "internal.h"

#include <string.h>

void mimic_iter_init(mimic_iter *it, int ndim, const int64_t *shape, int nt,
                     const int64_t *const *strides, const size_t *esize)
{
    it->nt = nt;
    it->numel = 1;
    for (int d = 0; d < ndim; d++)
        it->numel *= shape[d];
    /* Drop size-1 dims, then merge dim d into d+1 when every operand steps
     * through d exactly as a continuation of d+1. */
    int m = 0;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] == 1)
            continue;
        it->shape[m] = shape[d];
        for (int k = 0; k < nt; k++)
            it->stride[k][m] = strides[k][d] * (int64_t)esize[k];
        m++;
    }
    if (m == 0) {
        it->shape[0] = ndim == 0 || it->numel == 1 ? 1 : 0;
        for (int k = 0; k < nt; k++)
            it->stride[k][0] = 0;
        m = 1;
    }
    int w = 0;
    for (int d = 1; d < m; d++) {
        bool merge = true;
        for (int k = 0; k < nt; k++)
            if (it->stride[k][w] != it->stride[k][d] * it->shape[d])
                merge = false;
        if (merge) {
            it->shape[w] *= it->shape[d];
            for (int k = 0; k < nt; k++)
                it->stride[k][w] = it->stride[k][d];
        } else {
            w++;
            it->shape[w] = it->shape[d];
            for (int k = 0; k < nt; k++)
                it->stride[k][w] = it->stride[k][d];
        }
    }
    it->ndim = w + 1;
    if (it->numel == 0)
        it->shape[it->ndim - 1] = 0;
    it->rows = 1;
    for (int d = 0; d < it->ndim - 1; d++)
        it->rows *= it->shape[d];
    if (it->numel == 0)
        it->rows = 0;
}

/* Run rows [r0, r1). */
static void run_rows(const mimic_iter *it, char *const *base, mimic_row_fn fn, void *ctx,
                     int64_t r0, int64_t r1, int64_t col0, int64_t ncol)
{
    int nd = it->ndim, nt = it->nt;
    int64_t n = it->shape[nd - 1];
    int64_t idx[MIMIC_MAX_DIMS];
    char *p[MIMIC_ITER_MAX];
    int64_t s[MIMIC_ITER_MAX];
    for (int k = 0; k < nt; k++)
        s[k] = it->stride[k][nd - 1];
    /* Decompose r0 into an index over the outer dims. */
    int64_t r = r0;
    for (int d = nd - 2; d >= 0; d--) {
        idx[d] = r % it->shape[d];
        r /= it->shape[d];
    }
    for (int64_t row = r0; row < r1; row++) {
        for (int k = 0; k < nt; k++) {
            int64_t off = col0 * s[k];
            for (int d = 0; d < nd - 1; d++)
                off += idx[d] * it->stride[k][d];
            p[k] = base[k] + off;
        }
        fn(ctx, ncol < 0 ? n : ncol, p, s);
        for (int d = nd - 2; d >= 0; d--) {
            if (++idx[d] < it->shape[d])
                break;
            idx[d] = 0;
        }
    }
}

void mimic_iter_run(const mimic_iter *it, char *const *base, mimic_row_fn fn, void *ctx, bool parallel)
{
    if (it->numel == 0)
        return;
    int64_t n = it->shape[it->ndim - 1];
    if (!parallel || it->numel < MIMIC_PARALLEL_MIN || mimic_get_num_threads() == 1) {
        run_rows(it, base, fn, ctx, 0, it->rows, 0, -1);
        return;
    }
    if (it->rows == 1) {
        /* One long row: split it into fixed-size column blocks. */
        const int64_t blk = 16384;
        int64_t nblk = (n + blk - 1) / blk;
#pragma omp parallel for schedule(static)
        for (int64_t b = 0; b < nblk; b++) {
            int64_t c0 = b * blk, len = n - c0 < blk ? n - c0 : blk;
            run_rows(it, base, fn, ctx, 0, 1, c0, len);
        }
        return;
    }
    /* Many rows: give each thread a contiguous range of whole rows. */
    int64_t per = (MIMIC_PARALLEL_MIN / 4 + n - 1) / n; /* rows per task, at least ~8k elements */
    if (per < 1)
        per = 1;
    int64_t ntask = (it->rows + per - 1) / per;
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < ntask; t++) {
        int64_t r0 = t * per, r1 = r0 + per < it->rows ? r0 + per : it->rows;
        run_rows(it, base, fn, ctx, r0, r1, 0, -1);
    }
}

void mimic_broadcast_strides(const mimic_tensor *t, int ndim, int64_t *out)
{
    int off = ndim - t->ndim;
    for (int d = 0; d < ndim; d++) {
        int td = d - off;
        out[d] = td < 0 || t->shape[td] == 1 ? 0 : t->stride[td];
    }
}
