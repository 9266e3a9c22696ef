/* Joining, splitting and indexing: cat, stack, split, gather, index_select,
 * masked_select. Any dtype; indices are int64 and always bounds-checked. */
#include "../base/internal.h"
#include "mimic/ops.h"

#include <string.h>

#define SHAPE_STR(t) mimic_shape_str((t)->ndim, (t)->shape, (char[96]){0}, 96)

/* Element copy of size 1, 4 or 8 bytes (the dtype sizes). */
static inline void copy_elem(char *d, const char *s, size_t es)
{
    switch (es) {
    case 8: memcpy(d, s, 8); break;
    case 4: memcpy(d, s, 4); break;
    default: *d = *s; break;
    }
}

/* The common dtype of a join: all equal, or float32 mixed with float64 -> float64. */
static int join_dtype(const char *fn, mimic_tensor *const *ts, int n, mimic_dtype *out)
{
    mimic_dtype t = ts[0]->dtype;
    for (int i = 1; i < n; i++) {
        mimic_dtype u = ts[i]->dtype;
        if (u == t)
            continue;
        bool floats = (u == MIMIC_F32 || u == MIMIC_F64) && (t == MIMIC_F32 || t == MIMIC_F64);
        if (!floats)
            return mimic_error(MIMIC_EDTYPE, "%s: the %s tensor is %s but the 1st is %s; convert them to one dtype "
                               "first", fn, MIMIC_ORDINAL(i), mimic_dtype_name(u), mimic_dtype_name(ts[0]->dtype));
        t = MIMIC_F64;
    }
    *out = t;
    return MIMIC_OK;
}

static int check_list(const char *fn, mimic_tensor *const *ts, int n)
{
    if (!ts || n < 1)
        return mimic_error(MIMIC_EARG, "%s: needs at least one tensor", fn);
    for (int i = 0; i < n; i++)
        if (!ts[i])
            return mimic_error(MIMIC_EARG, "%s: the %s tensor is NULL", fn, MIMIC_ORDINAL(i));
    return MIMIC_OK;
}

/* Caller owns the result. */
mimic_tensor *mimic_cat(mimic_tensor *const *ts, int n, int dim)
{
    mimic_dtype dt = MIMIC_F32;
    if (check_list("cat", ts, n) || join_dtype("cat", ts, n, &dt))
        return NULL;
    int nd = ts[0]->ndim;
    if (nd == 0) {
        mimic_error(MIMIC_ESHAPE, "cat: 0-dim tensors cannot be concatenated; use stack");
        return NULL;
    }
    if ((dim = mimic_dim("cat", dim, nd)) < 0)
        return NULL;
    int64_t shape[MIMIC_MAX_DIMS];
    memcpy(shape, ts[0]->shape, sizeof shape);
    shape[dim] = 0;
    for (int i = 0; i < n; i++) {
        const mimic_tensor *t = ts[i];
        bool ok = t->ndim == nd;
        for (int d = 0; ok && d < nd; d++)
            ok = d == dim || t->shape[d] == ts[0]->shape[d];
        if (!ok) {
            mimic_error(MIMIC_ESHAPE, "cat: the %s tensor has shape %s but the 1st has %s (all dims but the cat "
                        "dim, dim %d, must match)", MIMIC_ORDINAL(i), SHAPE_STR(t), SHAPE_STR(ts[0]),
                        mimic_dim_from_end(dim, nd));
            return NULL;
        }
        shape[dim] += t->shape[dim];
    }
    mimic_tensor *r = mimic_empty(nd, shape, dt);
    if (!r)
        return NULL;
    /* Copy each input into a stack view of its slab of r: no allocation per piece. */
    mimic_tensor slab = *r;
    int64_t at = 0;
    for (int i = 0; i < n; i++) {
        slab.shape[dim] = ts[i]->shape[dim];
        slab.offset = r->offset + at * r->stride[dim];
        if (slab.shape[dim] && mimic_copy(&slab, ts[i])) {
            mimic_tensor_free(r);
            return NULL;
        }
        at += ts[i]->shape[dim];
    }
    return r;
}

/* Caller owns the result. */
mimic_tensor *mimic_stack(mimic_tensor *const *ts, int n, int dim)
{
    mimic_dtype dt = MIMIC_F32;
    if (check_list("stack", ts, n) || join_dtype("stack", ts, n, &dt))
        return NULL;
    int nd = ts[0]->ndim;
    if (nd >= MIMIC_MAX_DIMS) {
        mimic_error(MIMIC_ESHAPE, "stack: tensors already have the maximum of %d dims", MIMIC_MAX_DIMS);
        return NULL;
    }
    if ((dim = mimic_dim("stack", dim, nd + 1)) < 0)
        return NULL;
    for (int i = 1; i < n; i++) {
        bool ok = ts[i]->ndim == nd;
        for (int d = 0; ok && d < nd; d++)
            ok = ts[i]->shape[d] == ts[0]->shape[d];
        if (!ok) {
            mimic_error(MIMIC_ESHAPE, "stack: the %s tensor has shape %s but the 1st has %s (all must match)",
                        MIMIC_ORDINAL(i), SHAPE_STR(ts[i]), SHAPE_STR(ts[0]));
            return NULL;
        }
    }
    int64_t shape[MIMIC_MAX_DIMS];
    for (int d = 0, k = 0; d <= nd; d++)
        shape[d] = d == dim ? n : ts[0]->shape[k++];
    mimic_tensor *r = mimic_empty(nd + 1, shape, dt);
    if (!r)
        return NULL;
    /* r with dim dropped, as a stack view moved along dim for each input. */
    mimic_tensor slot = *r;
    slot.ndim = nd;
    for (int d = 0, k = 0; d <= nd; d++)
        if (d != dim) {
            slot.shape[k] = r->shape[d];
            slot.stride[k++] = r->stride[d];
        }
    for (int i = 0; i < n; i++) {
        slot.offset = r->offset + i * r->stride[dim];
        if (mimic_copy(&slot, ts[i])) {
            mimic_tensor_free(r);
            return NULL;
        }
    }
    return r;
}

/* Returns an array (mimic_malloc) of *n new views; the caller frees each, then the array. */
mimic_tensor **mimic_split(mimic_tensor *t, int64_t size, int dim, int *n)
{
    if (!t || !n) {
        mimic_error(MIMIC_EARG, "split: tensor or count pointer is NULL");
        return NULL;
    }
    *n = 0;
    if (t->ndim == 0) {
        mimic_error(MIMIC_ESHAPE, "split: cannot split a 0-dim tensor");
        return NULL;
    }
    if ((dim = mimic_dim("split", dim, t->ndim)) < 0)
        return NULL;
    if (size < 1) {
        mimic_error(MIMIC_EARG, "split: piece size %lld must be >= 1", (long long)size);
        return NULL;
    }
    int64_t len = t->shape[dim];
    /* An empty dim gives one empty piece, as in torch. */
    int64_t count = len == 0 ? 1 : (len + size - 1) / size;
    if (count > INT32_MAX) {
        mimic_error(MIMIC_EARG, "split: %lld pieces are too many", (long long)count);
        return NULL;
    }
    mimic_tensor **out = mimic_calloc((size_t)count, sizeof *out);
    if (!out)
        return NULL;
    for (int64_t i = 0; i < count; i++) {
        int64_t start = i * size, l = len - start < size ? len - start : size;
        if (!(out[i] = mimic_narrow(t, dim, start, l))) {
            for (int64_t j = 0; j < i; j++)
                mimic_tensor_free(out[j]);
            mimic_free(out);
            return NULL;
        }
    }
    *n = (int)count;
    return out;
}

static int check_index(const char *fn, const mimic_tensor *index)
{
    if (!index)
        return mimic_error(MIMIC_EARG, "%s: index is NULL", fn);
    if (index->dtype != MIMIC_I64)
        return mimic_error(MIMIC_EDTYPE, "%s: index must be int64, got %s; convert it with :long()", fn,
                           mimic_dtype_name(index->dtype));
    return MIMIC_OK;
}

/* i is the caller's 0-based value: the Lua binding range-checks its 1-based
 * indices itself, so only C callers see this. */
static int index_range_error(const char *fn, int64_t i, int dim, int ndim, int64_t size)
{
    return mimic_error(MIMIC_EARG, "%s: index %lld is out of range for dim %d of size %lld (valid: 0..%lld)", fn,
                       (long long)i, mimic_dim_from_end(dim, ndim), (long long)size, (long long)size - 1);
}

/* gather rows: p[0] out, p[1] index, p[2] t with dim's stride zeroed. */
typedef struct gather_ctx {
    int64_t dstride; /* bytes along dim in t */
    int64_t size;    /* t's size along dim */
    size_t es;
    bool bad;
    int64_t bad_index;
} gather_ctx;

static void gather_row(void *vctx, int64_t n, char **p, const int64_t *s)
{
    gather_ctx *c = vctx;
    if (c->bad)
        return;
    char *o = p[0];
    const char *ix = p[1], *src = p[2];
    for (int64_t i = 0; i < n; i++, o += s[0], ix += s[1], src += s[2]) {
        int64_t j = *(const int64_t *)ix;
        if (j < 0 || j >= c->size) {
            c->bad = true;
            c->bad_index = j;
            return;
        }
        copy_elem(o, src + j * c->dstride, c->es);
    }
}

/* Caller owns the result. */
mimic_tensor *mimic_gather(const mimic_tensor *t, int dim, const mimic_tensor *index)
{
    if (!t) {
        mimic_error(MIMIC_EARG, "gather: tensor is NULL");
        return NULL;
    }
    if (check_index("gather", index))
        return NULL;
    if ((dim = mimic_dim("gather", dim, t->ndim)) < 0)
        return NULL;
    bool ok = index->ndim == t->ndim;
    for (int d = 0; ok && d < t->ndim; d++)
        ok = d == dim || index->shape[d] <= t->shape[d];
    if (!ok) {
        mimic_error(MIMIC_ESHAPE, "gather: index of shape %s does not fit tensor %s (same rank; each dim but "
                    "dim %d no larger)", SHAPE_STR(index), SHAPE_STR(t), mimic_dim_from_end(dim, t->ndim));
        return NULL;
    }
    mimic_tensor *r = mimic_empty(index->ndim, index->shape, t->dtype);
    if (!r || mimic_numel(r) == 0)
        return r;
    int64_t tst[MIMIC_MAX_DIMS];
    memcpy(tst, t->stride, sizeof tst);
    int64_t tsize = t->ndim ? t->shape[dim] : 1;
    if (t->ndim)
        tst[dim] = 0;
    size_t es = mimic_dtype_size(t->dtype);
    const int64_t *strides[3] = {r->stride, index->stride, tst};
    size_t esz[3] = {es, sizeof(int64_t), es};
    mimic_iter it;
    mimic_iter_init(&it, r->ndim, r->shape, 3, strides, esz);
    gather_ctx c = {.dstride = t->ndim ? t->stride[dim] * (int64_t)es : 0, .size = tsize, .es = es};
    char *base[3] = {mimic_data(r), mimic_data(index), mimic_data(t)};
    /* Sequential, so the first bad index is the one reported. */
    mimic_iter_run(&it, base, gather_row, &c, false);
    if (c.bad) {
        index_range_error("gather", c.bad_index, dim, t->ndim, tsize);
        mimic_tensor_free(r);
        return NULL;
    }
    return r;
}

/* Caller owns the result. */
mimic_tensor *mimic_index_select(const mimic_tensor *t, int dim, const mimic_tensor *index)
{
    if (!t) {
        mimic_error(MIMIC_EARG, "index_select: tensor is NULL");
        return NULL;
    }
    if (check_index("index_select", index))
        return NULL;
    if (index->ndim > 1) {
        mimic_error(MIMIC_ESHAPE, "index_select: index must be 1-D, got shape %s", SHAPE_STR(index));
        return NULL;
    }
    if (t->ndim == 0) {
        mimic_error(MIMIC_ESHAPE, "index_select: cannot index a 0-dim tensor");
        return NULL;
    }
    if ((dim = mimic_dim("index_select", dim, t->ndim)) < 0)
        return NULL;
    int64_t len = index->ndim ? index->shape[0] : 1, istride = index->ndim ? index->stride[0] : 0;
    const int64_t *ix = mimic_data(index);
    for (int64_t i = 0; i < len; i++)
        if (ix[i * istride] < 0 || ix[i * istride] >= t->shape[dim]) {
            index_range_error("index_select", ix[i * istride], dim, t->ndim, t->shape[dim]);
            return NULL;
        }
    int64_t shape[MIMIC_MAX_DIMS];
    memcpy(shape, t->shape, sizeof shape);
    shape[dim] = len;
    mimic_tensor *r = mimic_empty(t->ndim, shape, t->dtype);
    if (!r || mimic_numel(r) == 0)
        return r;
    /* Each selected slab is a stack view of t copied into a stack view of r. */
    mimic_tensor src = *t, dst = *r;
    src.shape[dim] = dst.shape[dim] = 1;
    for (int64_t i = 0; i < len; i++) {
        src.offset = t->offset + ix[i * istride] * t->stride[dim];
        dst.offset = r->offset + i * r->stride[dim];
        if (mimic_copy(&dst, &src)) {
            mimic_tensor_free(r);
            return NULL;
        }
    }
    return r;
}

/* masked_select rows: p[0] t, p[1] mask; selected elements are appended at c->dst. */
typedef struct mask_ctx {
    char *dst; /* NULL: only count */
    int64_t count;
    size_t es;
    mimic_dtype mdt;
} mask_ctx;

static inline bool mask_true(const char *m, mimic_dtype dt)
{
    switch (dt) {
    case MIMIC_F32: return *(const float *)m != 0;
    case MIMIC_F64: return *(const double *)m != 0;
    case MIMIC_I64: return *(const int64_t *)m != 0;
    default: return *(const uint8_t *)m != 0;
    }
}

static void mask_row(void *vctx, int64_t n, char **p, const int64_t *s)
{
    mask_ctx *c = vctx;
    const char *v = p[0], *m = p[1];
    for (int64_t i = 0; i < n; i++, v += s[0], m += s[1])
        if (mask_true(m, c->mdt)) {
            if (c->dst)
                copy_elem(c->dst + (size_t)c->count * c->es, v, c->es);
            c->count++;
        }
}

/* Caller owns the result. */
mimic_tensor *mimic_masked_select(const mimic_tensor *t, const mimic_tensor *mask)
{
    if (!t || !mask) {
        mimic_error(MIMIC_EARG, "masked_select: tensor or mask is NULL");
        return NULL;
    }
    bool ok = mask->ndim <= t->ndim;
    for (int d = 0; ok && d < mask->ndim; d++) {
        int64_t ms = mask->shape[mask->ndim - 1 - d], ts = t->shape[t->ndim - 1 - d];
        ok = ms == ts || ms == 1;
    }
    if (!ok) {
        mimic_error(MIMIC_ESHAPE, "masked_select: mask of shape %s does not broadcast to the tensor's shape %s",
                    SHAPE_STR(mask), SHAPE_STR(t));
        return NULL;
    }
    int64_t mst[MIMIC_MAX_DIMS];
    mimic_broadcast_strides(mask, t->ndim, mst);
    const int64_t *strides[2] = {t->stride, mst};
    size_t esz[2] = {mimic_dtype_size(t->dtype), mimic_dtype_size(mask->dtype)};
    mimic_iter it;
    mimic_iter_init(&it, t->ndim, t->shape, 2, strides, esz);
    char *base[2] = {mimic_data(t), mimic_data(mask)};
    /* Two sequential passes (count, then fill) keep row-major order. */
    mask_ctx c = {.es = esz[0], .mdt = mask->dtype};
    mimic_iter_run(&it, base, mask_row, &c, false);
    mimic_tensor *r = mimic_empty(1, (int64_t[]){c.count}, t->dtype);
    if (!r || c.count == 0)
        return r;
    c.dst = mimic_data(r);
    c.count = 0;
    mimic_iter_run(&it, base, mask_row, &c, false);
    return r;
}
