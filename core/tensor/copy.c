/* Copies, dtype conversion and fills: all strided, broadcasting the source.
 *
 * Autograd: the allocating forms (contiguous when it copies, clone, float to
 * float to_dtype) record a node; the writing forms (copy, fill) write into an
 * existing tensor, which is not recorded, so they go through
 * mimic_ag_inplace: refused on a tensor that requires grad (grad mode on),
 * and the storage version is bumped so backward notices stale inputs. */
#include "../autograd/expr.h"

#include <string.h>

/* One row-copy kernel per (dst, src) dtype pair. */
#define CONV(NAME, TD, TS, EXPR)                                                    \
    static void NAME(void *ctx, int64_t n, char **p, const int64_t *s)             \
    {                                                                               \
        (void)ctx;                                                                  \
        char *d = p[0];                                                             \
        const char *q = p[1];                                                       \
        if (s[0] == (int64_t)sizeof(TD) && s[1] == (int64_t)sizeof(TS)) {           \
            TD *dd = (TD *)d;                                                       \
            const TS *qq = (const TS *)q;                                           \
            for (int64_t i = 0; i < n; i++) {                                       \
                TS x = qq[i];                                                       \
                dd[i] = (TD)(EXPR);                                                 \
            }                                                                       \
        } else {                                                                    \
            for (int64_t i = 0; i < n; i++, d += s[0], q += s[1]) {                 \
                TS x = *(const TS *)q;                                              \
                *(TD *)d = (TD)(EXPR);                                              \
            }                                                                       \
        }                                                                           \
    }
#define ROWS(TD, SD)                                                                \
    CONV(cp_##SD##_f32, TD, float, x)                                               \
    CONV(cp_##SD##_f64, TD, double, x)                                              \
    CONV(cp_##SD##_i64, TD, int64_t, x)                                             \
    CONV(cp_##SD##_bool, TD, uint8_t, x)
ROWS(float, f32)
ROWS(double, f64)
CONV(cp_i64_f32, int64_t, float, mimic_f2i64(x))
CONV(cp_i64_f64, int64_t, double, mimic_f2i64(x))
CONV(cp_i64_i64, int64_t, int64_t, x)
CONV(cp_i64_bool, int64_t, uint8_t, x)
CONV(cp_bool_f32, uint8_t, float, x != 0)
CONV(cp_bool_f64, uint8_t, double, x != 0)
CONV(cp_bool_i64, uint8_t, int64_t, x != 0)
CONV(cp_bool_bool, uint8_t, uint8_t, x)

static const mimic_row_fn copy_fn[MIMIC_DTYPE_COUNT][MIMIC_DTYPE_COUNT] = {
    [MIMIC_F32] = {cp_f32_f32, cp_f32_f64, cp_f32_i64, cp_f32_bool},
    [MIMIC_F64] = {cp_f64_f32, cp_f64_f64, cp_f64_i64, cp_f64_bool},
    [MIMIC_I64] = {cp_i64_f32, cp_i64_f64, cp_i64_i64, cp_i64_bool},
    [MIMIC_BOOL] = {cp_bool_f32, cp_bool_f64, cp_bool_i64, cp_bool_bool},
};

/* A transposing copy (the source steps through the destination's rows with a
 * large stride but is contiguous down its columns) goes in square tiles, so
 * both sides stay in cache: a plain row walk touches a new source cache line
 * per element. Returns false when the layout is not of that kind. */
static bool copy_tiled(const mimic_iter *it, char *const *base, mimic_row_fn fn, const size_t *es)
{
    enum { T = 32 };
    int nd = it->ndim;
    if (nd < 2 || it->stride[0][nd - 1] != (int64_t)es[0] || it->stride[1][nd - 2] != (int64_t)es[1] ||
        it->stride[1][nd - 1] < 64 || it->shape[nd - 1] < T || it->shape[nd - 2] < T)
        return false;
    int64_t R = it->shape[nd - 2], C = it->shape[nd - 1], outer = it->rows / R;
    int64_t tr = (R + T - 1) / T, tc = (C + T - 1) / T, ntiles = outer * tr * tc;
    const int64_t s[2] = {it->stride[0][nd - 1], it->stride[1][nd - 1]};
#pragma omp parallel for schedule(static) if (it->numel >= MIMIC_PARALLEL_MIN)
    for (int64_t k = 0; k < ntiles; k++) {
        int64_t o = k / (tr * tc), i0 = k % (tr * tc) / tc * T, j0 = k % tc * T;
        int64_t off[2] = {0, 0};
        for (int d = nd - 3; d >= 0; d--) {
            int64_t idx = o % it->shape[d];
            o /= it->shape[d];
            off[0] += idx * it->stride[0][d];
            off[1] += idx * it->stride[1][d];
        }
        int64_t n = C - j0 < T ? C - j0 : T;
        for (int64_t i = i0; i < i0 + T && i < R; i++) {
            char *p[2] = {base[0] + off[0] + i * it->stride[0][nd - 2] + j0 * s[0],
                          base[1] + off[1] + i * it->stride[1][nd - 2] + j0 * s[1]};
            fn(NULL, n, p, s);
        }
    }
    return true;
}

/* dst = src without checks: the shapes broadcast and dst is writable. */
static void copy_raw(mimic_tensor *dst, const mimic_tensor *src)
{
    int64_t sst[MIMIC_MAX_DIMS];
    mimic_broadcast_strides(src, dst->ndim, sst);
    const int64_t *strides[2] = {dst->stride, sst};
    size_t es[2] = {mimic_dtype_size(dst->dtype), mimic_dtype_size(src->dtype)};
    mimic_iter it;
    mimic_iter_init(&it, dst->ndim, dst->shape, 2, strides, es);
    char *base[2] = {mimic_data(dst), mimic_data(src)};
    if (!copy_tiled(&it, base, copy_fn[dst->dtype][src->dtype], es))
        mimic_iter_run(&it, base, copy_fn[dst->dtype][src->dtype], NULL, true);
}

/* The source's history is not carried over: only the values are copied. */
int mimic_copy(mimic_tensor *dst, const mimic_tensor *src)
{
    char a[96], b[96];
    bool ok = src->ndim <= dst->ndim;
    for (int d = 0; ok && d < src->ndim; d++) {
        int64_t s = src->shape[src->ndim - 1 - d], t = dst->shape[dst->ndim - 1 - d];
        ok = s == t || s == 1;
    }
    if (!ok)
        return mimic_error(MIMIC_ESHAPE, "copy: source of shape %s does not broadcast to destination %s",
                           mimic_shape_str(src->ndim, src->shape, a, sizeof a),
                           mimic_shape_str(dst->ndim, dst->shape, b, sizeof b));
    int rc = mimic_ag_inplace("copy", dst);
    if (rc == MIMIC_OK)
        copy_raw(dst, src);
    return rc;
}

int mimic_fill(mimic_tensor *t, double v)
{
    int rc = mimic_ag_inplace("fill", t);
    if (rc)
        return rc;
    /* Broadcast a one-element source of t's dtype: the copy kernels do the rest. */
    union { float f; double d; int64_t i; uint8_t b; } one;
    switch (t->dtype) {
    case MIMIC_F32: one.f = (float)v; break;
    case MIMIC_F64: one.d = v; break;
    case MIMIC_I64: one.i = mimic_f2i64(v); break;
    default: one.b = v != 0; break;
    }
    mimic_storage s = {.data = &one, .nbytes = sizeof one, .refcount = 1};
    mimic_tensor src = {.storage = &s, .ndim = 0, .dtype = t->dtype, .refcount = 1};
    copy_raw(t, &src);
    return MIMIC_OK;
}

/* --- allocating copies ---------------------------------------------------------------- */
/* Gradient of every copy: the upstream gradient in the input's dtype. */
static int copy_backward(mimic_node *n, const mimic_tensor *g, mimic_tensor **gin)
{
    mimic_dtype dt = n->in[0]->dtype;
    return E_set(gin, 0, g->dtype == dt ? E_ref(g) : mimic_to_dtype(g, dt));
}

const mimic_opdef mimic_ops_copy[] = {
    {"contiguous", copy_backward}, {"clone", copy_backward}, {"to_dtype", copy_backward}, {NULL, NULL},
};

static bool is_float(mimic_dtype dt) { return dt == MIMIC_F32 || dt == MIMIC_F64; }

/* A new contiguous copy of t in dtype, with a node named `name` when t needs
 * a gradient and the result can carry one (a float dtype: int64 and bool
 * results are cut off from the graph, like any comparison). */
static mimic_tensor *copy_new(const char *name, const mimic_tensor *t, mimic_dtype dtype)
{
    mimic_tensor *c = mimic_empty(t->ndim, t->shape, dtype);
    if (!c)
        return NULL;
    copy_raw(c, t);
    if (!is_float(dtype) || !mimic_ag_wanted(1, &t))
        return c;
    mimic_node *n = mimic_ag_record(c, name, copy_backward, 1, &t);
    if (!n) {
        mimic_tensor_free(c);
        return NULL;
    }
    n->reads = 0;
    return c;
}

mimic_tensor *mimic_clone(const mimic_tensor *t) { return copy_new("clone", t, t->dtype); }

mimic_tensor *mimic_to_dtype(const mimic_tensor *t, mimic_dtype dtype)
{
    if ((unsigned)dtype >= MIMIC_DTYPE_COUNT) {
        mimic_error(MIMIC_EDTYPE, "to_dtype: invalid dtype %d", (int)dtype);
        return NULL;
    }
    return copy_new("to_dtype", t, dtype);
}

/* Already contiguous: t itself, history and all (no node: nothing happened). */
mimic_tensor *mimic_contiguous(mimic_tensor *t)
{
    if (mimic_is_contiguous(t)) {
        mimic_tensor_retain(t);
        return t;
    }
    return copy_new("contiguous", t, t->dtype);
}
