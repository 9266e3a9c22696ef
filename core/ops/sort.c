/* Sorting along a dim: stable merge sort of (value, index) pairs per row.
 *
 * Order: ascending puts NaN last (NumPy's np.sort). Descending is its own
 * stable sort that treats NaN as the largest value, so NaN comes first - the
 * exact reverse of the ascending order of values, as -np.sort(-x) and torch
 * give - while equal values keep their original order (a reversed ascending
 * sort would reverse ties). topk(largest) is the head of the descending order,
 * topk(smallest) of the ascending one.
 *
 * Autograd: the values are differentiable (each value's gradient goes back to
 * the position it came from, through the permutation); the indices are
 * integers and carry no gradient. */
#include "../autograd/expr.h"

#include <math.h>
#include <string.h>

#define SHAPE_STR(t) mimic_shape_str((t)->ndim, (t)->shape, (char[96]){0}, 96)

/* Rows shorter than this are insertion-sorted before merging. */
#define RUN 16

/* Float keys compare as double (exact for float32); int64 keys as int64, which
 * double would round beyond 2^53. */
typedef struct fpair { double v; int64_t i; } fpair;
typedef struct ipair { int64_t v; int64_t i; } ipair;

/* x strictly before y: NaN is larger than every number. */
static inline bool f_asc(double x, double y) { return !isnan(x) && (isnan(y) || x < y); }
static inline bool f_desc(double x, double y) { return !isnan(y) && (isnan(x) || x > y); }
static inline bool i_asc(int64_t x, int64_t y) { return x < y; }
static inline bool i_desc(int64_t x, int64_t y) { return x > y; }

/* Stable: an element moves ahead of another only when strictly before it. */
#define MERGE_SORT(NAME, PAIR, BEFORE)                                              \
    static void NAME(PAIR *a, PAIR *tmp, int64_t n)                                 \
    {                                                                               \
        for (int64_t s = 0; s < n; s += RUN) {                                      \
            int64_t e = s + RUN < n ? s + RUN : n;                                  \
            for (int64_t i = s + 1; i < e; i++) {                                   \
                PAIR x = a[i];                                                      \
                int64_t j = i;                                                      \
                for (; j > s && BEFORE(x.v, a[j - 1].v); j--)                       \
                    a[j] = a[j - 1];                                                \
                a[j] = x;                                                           \
            }                                                                       \
        }                                                                           \
        PAIR *src = a, *dst = tmp;                                                  \
        for (int64_t w = RUN; w < n; w *= 2) {                                      \
            for (int64_t lo = 0; lo < n; lo += 2 * w) {                             \
                int64_t mid = lo + w < n ? lo + w : n;                              \
                int64_t hi = lo + 2 * w < n ? lo + 2 * w : n;                       \
                int64_t i = lo, j = mid, k = lo;                                    \
                while (i < mid && j < hi)                                           \
                    dst[k++] = BEFORE(src[j].v, src[i].v) ? src[j++] : src[i++];    \
                while (i < mid)                                                     \
                    dst[k++] = src[i++];                                            \
                while (j < hi)                                                      \
                    dst[k++] = src[j++];                                            \
            }                                                                       \
            PAIR *t = src;                                                          \
            src = dst;                                                              \
            dst = t;                                                                \
        }                                                                           \
        if (src != a)                                                               \
            memcpy(a, src, (size_t)n * sizeof *a);                                  \
    }
MERGE_SORT(sort_f_asc, fpair, f_asc)
MERGE_SORT(sort_f_desc, fpair, f_desc)
MERGE_SORT(sort_i_asc, ipair, i_asc)
MERGE_SORT(sort_i_desc, ipair, i_desc)

typedef struct sort_job {
    const mimic_tensor *t;
    int dim;
    int64_t len, k; /* row length in t, entries kept */
    bool desc;
    mimic_tensor *vals, *idx; /* contiguous, t's shape with dim of size k; idx may be NULL */
} sort_job;

/* Sort row r (row-major over the dims other than dim) using buf (2 * len pairs). */
static void sort_row(const sort_job *j, int64_t r, void *buf)
{
    const mimic_tensor *t = j->t;
    int64_t toff = t->offset, voff = 0;
    for (int d = t->ndim - 1; d >= 0; d--) {
        if (d == j->dim)
            continue;
        int64_t x = r % t->shape[d];
        r /= t->shape[d];
        toff += x * t->stride[d];
        voff += x * j->vals->stride[d];
    }
    int64_t ts = t->ndim ? t->stride[j->dim] : 0, vs = j->vals->ndim ? j->vals->stride[j->dim] : 0;
    int64_t n = j->len, k = j->k;
    int64_t *io = j->idx ? (int64_t *)mimic_data(j->idx) + voff : NULL;
    const char *src = t->storage->data;
    if (t->dtype == MIMIC_I64) {
        ipair *p = buf;
        const int64_t *s = (const int64_t *)src + toff;
        for (int64_t i = 0; i < n; i++)
            p[i] = (ipair){s[i * ts], i};
        (j->desc ? sort_i_desc : sort_i_asc)(p, p + n, n);
        int64_t *o = (int64_t *)mimic_data(j->vals) + voff;
        for (int64_t i = 0; i < k; i++)
            o[i * vs] = p[i].v;
        for (int64_t i = 0; io && i < k; i++)
            io[i * vs] = p[i].i;
        return;
    }
    fpair *p = buf;
    if (t->dtype == MIMIC_F32) {
        const float *s = (const float *)src + toff;
        for (int64_t i = 0; i < n; i++)
            p[i] = (fpair){s[i * ts], i};
    } else {
        const double *s = (const double *)src + toff;
        for (int64_t i = 0; i < n; i++)
            p[i] = (fpair){s[i * ts], i};
    }
    (j->desc ? sort_f_desc : sort_f_asc)(p, p + n, n);
    if (t->dtype == MIMIC_F32) {
        float *o = (float *)mimic_data(j->vals) + voff;
        for (int64_t i = 0; i < k; i++)
            o[i * vs] = (float)p[i].v;
    } else {
        double *o = (double *)mimic_data(j->vals) + voff;
        for (int64_t i = 0; i < k; i++)
            o[i * vs] = p[i].v;
    }
    for (int64_t i = 0; io && i < k; i++)
        io[i * vs] = p[i].i;
}

/* Sorts every row; rows are independent, so threads never change the result. */
static int sort_rows(const sort_job *j)
{
    int64_t rows = 1;
    for (int d = 0; d < j->t->ndim; d++)
        if (d != j->dim)
            rows *= j->t->shape[d];
    if (rows == 0 || j->k == 0)
        return MIMIC_OK;
    size_t bytes = 2 * (size_t)j->len * sizeof(fpair);
    _Static_assert(sizeof(fpair) == sizeof(ipair), "pair sizes differ");
    bool par = rows > 1 && rows * j->len >= MIMIC_PARALLEL_MIN && mimic_get_num_threads() > 1;
    int failed = 0;
    if (!par) {
        void *buf = mimic_malloc(bytes);
        if (!buf)
            return MIMIC_ENOMEM;
        for (int64_t r = 0; r < rows; r++)
            sort_row(j, r, buf);
        mimic_free(buf);
        return MIMIC_OK;
    }
#pragma omp parallel reduction(| : failed)
    {
        void *buf = mimic_malloc(bytes);
        if (!buf)
            failed = 1;
#pragma omp for schedule(static)
        for (int64_t r = 0; r < rows; r++)
            if (buf)
                sort_row(j, r, buf);
        mimic_free(buf);
    }
    /* mimic_malloc records the error on the failing thread; say it here too. */
    return failed ? mimic_error(MIMIC_ENOMEM, "sort: out of memory for the row buffers") : MIMIC_OK;
}

/* Scatters the gradient of the values back through the permutation (saved). */
static int sort_backward(mimic_node *n, const mimic_tensor *g, mimic_tensor **gin)
{
    const mimic_tensor *x = n->in[0];
    mimic_tensor *z = mimic_zeros(x->ndim, x->shape, g->dtype);
    mimic_tensor *r = z ? mimic_scatter_add(z, (int)n->iarg[0], n->saved, g) : NULL;
    mimic_tensor_free(z);
    return E_set(gin, 0, r);
}

const mimic_opdef mimic_ops_sort[] = {{"sort", sort_backward}, {"topk", sort_backward}, {NULL, NULL}};

/* Hands the sorted values (with a node when t needs a gradient) and the
 * indices to the caller; frees both on failure. */
static mimic_tensor *record(const char *fn, const mimic_tensor *t, int dim, sort_job *j, mimic_tensor **indices)
{
    if (mimic_ag_wanted(1, &t)) {
        mimic_node *n = mimic_ag_record(j->vals, fn, sort_backward, 1, &t);
        if (!n || mimic_ag_save(n, j->idx)) {
            mimic_tensor_free(j->vals);
            mimic_tensor_free(j->idx);
            return NULL;
        }
        n->reads = 0;
        n->iarg[0] = dim;
    }
    if (indices)
        *indices = j->idx;
    else
        mimic_tensor_free(j->idx); /* the node keeps its own view */
    return j->vals;
}

/* values and (optionally) indices of the first k of each sorted row. */
static mimic_tensor *sort_common(const char *fn, const mimic_tensor *t, int64_t k, int dim, bool desc,
                                 mimic_tensor **indices)
{
    if (indices)
        *indices = NULL;
    if (!t) {
        mimic_error(MIMIC_EARG, "%s: tensor is NULL", fn);
        return NULL;
    }
    if (t->dtype == MIMIC_BOOL) {
        mimic_error(MIMIC_EDTYPE, "%s: bool tensors are not supported; convert with :long() or :float()", fn);
        return NULL;
    }
    if ((dim = mimic_dim(fn, dim, t->ndim)) < 0)
        return NULL;
    int64_t len = t->ndim ? t->shape[dim] : 1;
    if (k < 0)
        k = len;
    int64_t shape[MIMIC_MAX_DIMS];
    memcpy(shape, t->shape, sizeof shape);
    if (t->ndim)
        shape[dim] = k;
    sort_job j = {.t = t, .dim = dim, .len = len, .k = k, .desc = desc};
    /* The backward needs the permutation even when the caller does not. */
    bool want_idx = indices || mimic_ag_wanted(1, &t);
    j.vals = mimic_empty(t->ndim, shape, t->dtype);
    j.idx = want_idx ? mimic_empty(t->ndim, shape, MIMIC_I64) : NULL;
    if (!j.vals || (want_idx && !j.idx) || sort_rows(&j)) {
        mimic_tensor_free(j.vals);
        mimic_tensor_free(j.idx);
        return NULL;
    }
    return record(fn, t, dim, &j, indices);
}

/* Caller owns the result and *indices. */
mimic_tensor *mimic_sort(const mimic_tensor *t, int dim, bool descending, mimic_tensor **indices)
{
    return sort_common("sort", t, -1, dim, descending, indices);
}

/* Caller owns the result and *indices. */
mimic_tensor *mimic_topk(const mimic_tensor *t, int64_t k, int dim, bool largest, mimic_tensor **indices)
{
    if (indices)
        *indices = NULL;
    if (!t) {
        mimic_error(MIMIC_EARG, "topk: tensor is NULL");
        return NULL;
    }
    int d = mimic_dim("topk", dim, t->ndim);
    if (d < 0)
        return NULL;
    int64_t len = t->ndim ? t->shape[d] : 1;
    if (k < 0 || k > len) {
        mimic_error(MIMIC_EARG, "topk: k = %lld is out of range for dim %d of size %lld in %s (valid: 0..%lld)",
                    (long long)k, mimic_dim_from_end(d, t->ndim), (long long)len, SHAPE_STR(t), (long long)len);
        return NULL;
    }
    return sort_common("topk", t, k, d, largest, indices);
}
