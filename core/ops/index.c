/* Joining, splitting and indexing: cat, stack, split, gather, index_select,
 * masked_select, and their scatter counterparts index_add, scatter_add,
 * slice_scatter, masked_scatter. Any dtype; indices are int64 and always
 * bounds-checked.
 *
 * Autograd: every op here records a node when a float input needs a gradient
 * (split through mimic_narrow). Each indexing op's gradient is its scatter
 * counterpart applied to zeros, and each scatter op's gradient w.r.t. its
 * source is the indexing op, so the pairs are closed under differentiation
 * and create_graph works. The forward code runs its internal copies and
 * conversions with grad mode off: the op records one node for itself. */
#include "../autograd/expr.h"

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

/* --- autograd plumbing ------------------------------------------------------------- */
/* Attach a node to a fresh result when an input needs a gradient; bit i of
 * `reads` marks input i as read by the backward (only ever the index or the
 * mask: the data's gradient needs its shape, not its values). On failure the
 * result is freed. */
static mimic_tensor *record(mimic_tensor *out, const char *name, mimic_backward_fn bw, int nin,
                            const mimic_tensor *const *in, uint32_t reads, int nargs, const int64_t *args)
{
    if (!out || !mimic_ag_wanted(nin, in))
        return out;
    mimic_node *n = mimic_ag_record(out, name, bw, nin, in);
    if (!n) {
        mimic_tensor_free(out);
        return NULL;
    }
    n->reads = reads;
    if (nargs)
        memcpy(n->iarg, args, (size_t)nargs * sizeof *args);
    return out;
}

/* g (consumed) in dtype dt: a float32 input of a float64 result gets its
 * gradient in float32. */
static mimic_tensor *as_dtype(mimic_tensor *g, mimic_dtype dt)
{
    if (!g || g->dtype == dt)
        return g;
    mimic_tensor *r = mimic_to_dtype(g, dt);
    mimic_tensor_free(g);
    return r;
}

/* Zeros shaped like input x, in g's dtype: what a scatter-gradient starts from. */
static mimic_tensor *zeros_for(const mimic_tensor *x, const mimic_tensor *g)
{
    return mimic_zeros(x->ndim, x->shape, g->dtype);
}

static int cat_backward(mimic_node *n, const mimic_tensor *g, mimic_tensor **gin);
static int stack_backward(mimic_node *n, const mimic_tensor *g, mimic_tensor **gin);

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
    return record(r, "cat", cat_backward, n, (const mimic_tensor *const *)ts, 0, 1, (int64_t[]){dim});
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
    return record(r, "stack", stack_backward, n, (const mimic_tensor *const *)ts, 0, 1, (int64_t[]){dim});
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

static int gather_backward(mimic_node *n, const mimic_tensor *g, mimic_tensor **gin);

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
    const mimic_tensor *in[2] = {t, index};
    mimic_tensor *r = mimic_empty(index->ndim, index->shape, t->dtype);
    if (!r || mimic_numel(r) == 0)
        return record(r, "gather", gather_backward, 2, in, 1u << 1, 1, (int64_t[]){dim});
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
    return record(r, "gather", gather_backward, 2, in, 1u << 1, 1, (int64_t[]){dim});
}

static int index_select_backward(mimic_node *n, const mimic_tensor *g, mimic_tensor **gin);

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
    const mimic_tensor *in[2] = {t, index};
    mimic_tensor *r = mimic_empty(t->ndim, shape, t->dtype);
    if (!r || mimic_numel(r) == 0)
        return record(r, "index_select", index_select_backward, 2, in, 1u << 1, 1, (int64_t[]){dim});
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
    return record(r, "index_select", index_select_backward, 2, in, 1u << 1, 1, (int64_t[]){dim});
}

/* masked_select rows: p[0] t, p[1] mask; selected elements are appended at
 * c->dst. masked_scatter rows: p[0] the result, whose selected elements are
 * taken in turn from c->src. */
typedef struct mask_ctx {
    char *dst; /* NULL: only count */
    const char *src;
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

static void unmask_row(void *vctx, int64_t n, char **p, const int64_t *s)
{
    mask_ctx *c = vctx;
    char *v = p[0];
    const char *m = p[1];
    for (int64_t i = 0; i < n; i++, v += s[0], m += s[1])
        if (mask_true(m, c->mdt))
            copy_elem(v, c->src + (size_t)c->count++ * c->es, c->es);
}

/* An iterator over t (operand 0) and mask broadcast to t's shape (operand 1),
 * or an error naming fn when the mask does not broadcast. Run it without
 * threads: the row-major order of the selected elements is the contract. */
static int mask_iter(const char *fn, const mimic_tensor *t, const mimic_tensor *mask, mimic_iter *it)
{
    bool ok = mask->ndim <= t->ndim;
    for (int d = 0; ok && d < mask->ndim; d++) {
        int64_t ms = mask->shape[mask->ndim - 1 - d], ts = t->shape[t->ndim - 1 - d];
        ok = ms == ts || ms == 1;
    }
    if (!ok)
        return mimic_error(MIMIC_ESHAPE, "%s: mask of shape %s does not broadcast to the tensor's shape %s", fn,
                           SHAPE_STR(mask), SHAPE_STR(t));
    int64_t mst[MIMIC_MAX_DIMS];
    mimic_broadcast_strides(mask, t->ndim, mst);
    const int64_t *strides[2] = {t->stride, mst};
    size_t esz[2] = {mimic_dtype_size(t->dtype), mimic_dtype_size(mask->dtype)};
    mimic_iter_init(it, t->ndim, t->shape, 2, strides, esz);
    return MIMIC_OK;
}

static int masked_select_backward(mimic_node *n, const mimic_tensor *g, mimic_tensor **gin);

/* Caller owns the result. */
mimic_tensor *mimic_masked_select(const mimic_tensor *t, const mimic_tensor *mask)
{
    if (!t || !mask) {
        mimic_error(MIMIC_EARG, "masked_select: tensor or mask is NULL");
        return NULL;
    }
    mimic_iter it;
    if (mask_iter("masked_select", t, mask, &it))
        return NULL;
    char *base[2] = {mimic_data(t), mimic_data(mask)};
    /* Two sequential passes (count, then fill) keep row-major order. */
    mask_ctx c = {.es = mimic_dtype_size(t->dtype), .mdt = mask->dtype};
    mimic_iter_run(&it, base, mask_row, &c, false);
    const mimic_tensor *in[2] = {t, mask};
    mimic_tensor *r = mimic_empty(1, (int64_t[]){c.count}, t->dtype);
    if (r && c.count) {
        c.dst = mimic_data(r);
        c.count = 0;
        mimic_iter_run(&it, base, mask_row, &c, false);
    }
    return record(r, "masked_select", masked_select_backward, 2, in, 1u << 1, 0, NULL);
}

/* --- scatter counterparts ----------------------------------------------------------- */
/* The result dtype of t combined with src: equal, or float64 for mixed floats. */
static int pair_dtype(const char *fn, const mimic_tensor *t, const mimic_tensor *src, bool add, mimic_dtype *out)
{
    mimic_dtype a = t->dtype, b = src->dtype;
    bool floats = (a == MIMIC_F32 || a == MIMIC_F64) && (b == MIMIC_F32 || b == MIMIC_F64);
    if (a != b && !floats)
        return mimic_error(MIMIC_EDTYPE, "%s: src is %s but the tensor is %s; convert them to one dtype first", fn,
                           mimic_dtype_name(b), mimic_dtype_name(a));
    if (add && a == MIMIC_BOOL)
        return mimic_error(MIMIC_EDTYPE, "%s: bool tensors cannot be added; convert with :long() or :float()", fn);
    *out = a == b ? a : MIMIC_F64;
    return MIMIC_OK;
}

/* The result (t converted to dt, a new contiguous tensor) and src in dt (a new
 * reference; contiguous when `contig`). These copies are the op's own work,
 * so they are made with grad mode off: only the op itself is recorded. */
static int scatter_prepare(const mimic_tensor *t, const mimic_tensor *src, mimic_dtype dt, bool contig,
                           mimic_tensor **out, mimic_tensor **s)
{
    bool prev = mimic_set_grad_enabled(false);
    *out = mimic_to_dtype(t, dt);
    *s = NULL;
    if (*out && src->dtype != dt)
        *s = mimic_to_dtype(src, dt);
    else if (*out)
        *s = contig ? mimic_contiguous((mimic_tensor *)src) : E_ref(src);
    mimic_set_grad_enabled(prev);
    if (*s)
        return MIMIC_OK;
    mimic_tensor_free(*out);
    *out = NULL;
    return mimic_errcode();
}

/* Range check of every index entry, in row-major order so that the first bad
 * one is reported. */
typedef struct range_ctx {
    int64_t size, bad_index;
    bool bad;
} range_ctx;

static void range_row(void *vctx, int64_t n, char **p, const int64_t *s)
{
    range_ctx *c = vctx;
    const char *ix = p[0];
    for (int64_t i = 0; i < n && !c->bad; i++, ix += s[0]) {
        int64_t j = *(const int64_t *)ix;
        if (j < 0 || j >= c->size) {
            c->bad = true;
            c->bad_index = j;
        }
    }
}

static int check_range(const char *fn, const mimic_tensor *index, int dim, int ndim, int64_t size)
{
    if (mimic_numel(index) == 0)
        return MIMIC_OK;
    mimic_iter it;
    size_t es = sizeof(int64_t);
    const int64_t *strides[1] = {index->stride};
    mimic_iter_init(&it, index->ndim, index->shape, 1, strides, &es);
    range_ctx c = {.size = size};
    char *base[1] = {mimic_data(index)};
    mimic_iter_run(&it, base, range_row, &c, false);
    return c.bad ? index_range_error(fn, c.bad_index, dim, ndim, size) : MIMIC_OK;
}

/* out[.., ix[p], ..] += src[p] for every position p of `shape`, where the index
 * replaces p's coordinate in dim. Positions that differ outside dim land in
 * different elements of out, so the lines along dim are spread over threads
 * while each line adds in index order: the sums never depend on the thread
 * count. Strides in elements; out and src share the dtype dt. */
typedef struct scatter_job {
    int ndim, dim;
    int64_t shape[MIMIC_MAX_DIMS];
    int64_t ost[MIMIC_MAX_DIMS], ist[MIMIC_MAX_DIMS], sst[MIMIC_MAX_DIMS];
    char *out;
    const int64_t *ix;
    const char *src;
    mimic_dtype dt;
} scatter_job;

/* int64 adds wrap (through uint64) as NumPy's do, instead of overflowing. */
#define ADD_AS(T, U, X, Y) ((T)((U)(X) + (U)(Y)))
#define SCATTER_LINE(T, U)                                                          \
    {                                                                               \
        T *o_ = (T *)j->out + oo;                                                   \
        const T *s_ = (const T *)j->src + so;                                       \
        for (int64_t i = 0; i < len; i++) {                                         \
            T *d_ = o_ + j->ix[io + i * is] * os;                                   \
            *d_ = ADD_AS(T, U, *d_, s_[i * ss]);                                    \
        }                                                                           \
    }

static void scatter_line(const scatter_job *j, int64_t line)
{
    int64_t oo = 0, io = 0, so = 0;
    for (int d = j->ndim - 1; d >= 0; d--) {
        if (d == j->dim)
            continue;
        int64_t c = line % j->shape[d];
        line /= j->shape[d];
        oo += c * j->ost[d];
        io += c * j->ist[d];
        so += c * j->sst[d];
    }
    int64_t len = j->shape[j->dim], os = j->ost[j->dim], is = j->ist[j->dim], ss = j->sst[j->dim];
    switch (j->dt) {
    case MIMIC_F32: SCATTER_LINE(float, float) break;
    case MIMIC_F64: SCATTER_LINE(double, double) break;
    default: SCATTER_LINE(int64_t, uint64_t) break;
    }
}

static void scatter_run(const scatter_job *j)
{
    int64_t numel = 1;
    for (int d = 0; d < j->ndim; d++)
        numel *= j->shape[d];
    if (numel == 0)
        return;
    int64_t lines = numel / j->shape[j->dim];
#pragma omp parallel for schedule(static) if (numel >= MIMIC_PARALLEL_MIN && lines > 1)
    for (int64_t l = 0; l < lines; l++)
        scatter_line(j, l);
}

static int index_add_backward(mimic_node *n, const mimic_tensor *g, mimic_tensor **gin);

/* Caller owns the result. */
mimic_tensor *mimic_index_add(const mimic_tensor *t, int dim, const mimic_tensor *index, const mimic_tensor *src)
{
    const char *fn = "index_add";
    if (!t || !src) {
        mimic_error(MIMIC_EARG, "index_add: tensor or src is NULL");
        return NULL;
    }
    if (check_index(fn, index))
        return NULL;
    if (index->ndim > 1) {
        mimic_error(MIMIC_ESHAPE, "index_add: index must be 1-D, got shape %s", SHAPE_STR(index));
        return NULL;
    }
    if (t->ndim == 0) {
        mimic_error(MIMIC_ESHAPE, "index_add: cannot index a 0-dim tensor");
        return NULL;
    }
    if ((dim = mimic_dim(fn, dim, t->ndim)) < 0)
        return NULL;
    int64_t len = index->ndim ? index->shape[0] : 1;
    bool ok = src->ndim == t->ndim;
    for (int d = 0; ok && d < t->ndim; d++)
        ok = src->shape[d] == (d == dim ? len : t->shape[d]);
    if (!ok) {
        mimic_error(MIMIC_ESHAPE, "index_add: src of shape %s does not fit the tensor %s and %lld indices (src needs "
                    "the tensor's shape with size %lld in dim %d)", SHAPE_STR(src), SHAPE_STR(t), (long long)len,
                    (long long)len, mimic_dim_from_end(dim, t->ndim));
        return NULL;
    }
    mimic_dtype dt;
    mimic_tensor *out, *s;
    if (pair_dtype(fn, t, src, true, &dt) || check_range(fn, index, dim, t->ndim, t->shape[dim]) ||
        scatter_prepare(t, src, dt, false, &out, &s))
        return NULL;
    /* The 1-D index, broadcast along src's other dims. */
    scatter_job j = {.ndim = t->ndim, .dim = dim, .out = mimic_data(out), .ix = mimic_data(index),
                     .src = mimic_data(s), .dt = dt};
    memcpy(j.shape, s->shape, sizeof j.shape);
    memcpy(j.ost, out->stride, sizeof j.ost);
    memcpy(j.sst, s->stride, sizeof j.sst);
    j.ist[dim] = index->ndim ? index->stride[0] : 0;
    scatter_run(&j);
    mimic_tensor_free(s);
    const mimic_tensor *in[3] = {t, index, src};
    return record(out, fn, index_add_backward, 3, in, 1u << 1, 1, (int64_t[]){dim});
}

static int scatter_add_backward(mimic_node *n, const mimic_tensor *g, mimic_tensor **gin);

/* Caller owns the result. */
mimic_tensor *mimic_scatter_add(const mimic_tensor *t, int dim, const mimic_tensor *index, const mimic_tensor *src)
{
    const char *fn = "scatter_add";
    if (!t || !src) {
        mimic_error(MIMIC_EARG, "scatter_add: tensor or src is NULL");
        return NULL;
    }
    if (check_index(fn, index) || (dim = mimic_dim(fn, dim, t->ndim)) < 0)
        return NULL;
    bool ok = index->ndim == t->ndim && src->ndim == t->ndim;
    for (int d = 0; ok && d < t->ndim; d++)
        ok = src->shape[d] == index->shape[d] && (d == dim || index->shape[d] <= t->shape[d]);
    if (!ok) {
        mimic_error(MIMIC_ESHAPE, "scatter_add: index %s and src %s do not fit the tensor %s (index and src of one "
                    "shape, the tensor's rank, each dim but dim %d no larger than the tensor's)", SHAPE_STR(index),
                    SHAPE_STR(src), SHAPE_STR(t), mimic_dim_from_end(dim, t->ndim));
        return NULL;
    }
    int64_t size = t->ndim ? t->shape[dim] : 1;
    mimic_dtype dt;
    mimic_tensor *out, *s;
    if (pair_dtype(fn, t, src, true, &dt) || check_range(fn, index, dim, t->ndim, size) ||
        scatter_prepare(t, src, dt, false, &out, &s))
        return NULL;
    scatter_job j = {.ndim = t->ndim, .dim = dim, .out = mimic_data(out), .ix = mimic_data(index),
                     .src = mimic_data(s), .dt = dt};
    if (t->ndim == 0) { /* one element: a line of length 1 */
        j.ndim = 1;
        j.shape[0] = 1;
    } else {
        memcpy(j.shape, index->shape, sizeof j.shape);
        memcpy(j.ost, out->stride, sizeof j.ost);
        memcpy(j.ist, index->stride, sizeof j.ist);
        memcpy(j.sst, s->stride, sizeof j.sst);
    }
    scatter_run(&j);
    mimic_tensor_free(s);
    const mimic_tensor *in[3] = {t, index, src};
    return record(out, fn, scatter_add_backward, 3, in, 1u << 1, 1, (int64_t[]){dim});
}

static int slice_scatter_backward(mimic_node *n, const mimic_tensor *g, mimic_tensor **gin);

/* Caller owns the result. */
mimic_tensor *mimic_slice_scatter(const mimic_tensor *t, const mimic_tensor *src, int dim, int64_t start,
                                  int64_t stop, int64_t step)
{
    const char *fn = "slice_scatter";
    if (!t || !src) {
        mimic_error(MIMIC_EARG, "slice_scatter: tensor or src is NULL");
        return NULL;
    }
    mimic_dtype dt;
    if ((dim = mimic_dim(fn, dim, t->ndim)) < 0 || pair_dtype(fn, t, src, false, &dt))
        return NULL;
    bool prev = mimic_set_grad_enabled(false); /* the copies are this op's own work */
    mimic_tensor *out = mimic_to_dtype(t, dt);
    mimic_tensor *v = out ? mimic_slice(out, dim, start, stop, step) : NULL;
    if (v && (v->ndim != src->ndim || memcmp(v->shape, src->shape, (size_t)v->ndim * sizeof *v->shape))) {
        mimic_error(MIMIC_ESHAPE, "slice_scatter: src of shape %s does not match the slice's shape %s",
                    SHAPE_STR(src), SHAPE_STR(v));
        mimic_tensor_free(v);
        v = NULL;
    }
    int rc = v ? mimic_copy(v, src) : mimic_errcode();
    mimic_set_grad_enabled(prev);
    mimic_tensor_free(v);
    if (rc) {
        mimic_tensor_free(out);
        return NULL;
    }
    const mimic_tensor *in[2] = {t, src};
    return record(out, fn, slice_scatter_backward, 2, in, 0, 4, (int64_t[]){dim, start, stop, step});
}

static int masked_scatter_backward(mimic_node *n, const mimic_tensor *g, mimic_tensor **gin);

/* Caller owns the result. */
mimic_tensor *mimic_masked_scatter(const mimic_tensor *t, const mimic_tensor *mask, const mimic_tensor *src)
{
    const char *fn = "masked_scatter";
    if (!t || !mask || !src) {
        mimic_error(MIMIC_EARG, "masked_scatter: tensor, mask or src is NULL");
        return NULL;
    }
    mimic_dtype dt;
    mimic_iter it;
    if (pair_dtype(fn, t, src, false, &dt) || mask_iter(fn, t, mask, &it))
        return NULL;
    char *base[2] = {mimic_data(t), mimic_data(mask)};
    mask_ctx c = {.es = mimic_dtype_size(dt), .mdt = mask->dtype};
    mimic_iter_run(&it, base, mask_row, &c, false);
    if (c.count != mimic_numel(src)) {
        mimic_error(MIMIC_ESHAPE, "masked_scatter: src has %lld elements but the mask selects %lld positions; give "
                    "one element per position", (long long)mimic_numel(src), (long long)c.count);
        return NULL;
    }
    mimic_tensor *out, *s;
    if (scatter_prepare(t, src, dt, true, &out, &s))
        return NULL;
    if (c.count) {
        mask_iter(fn, out, mask, &it); /* cannot fail: out has t's shape */
        char *obase[2] = {mimic_data(out), mimic_data(mask)};
        mask_ctx u = {.src = mimic_data(s), .es = c.es, .mdt = mask->dtype};
        mimic_iter_run(&it, obase, unmask_row, &u, false);
    }
    mimic_tensor_free(s);
    const mimic_tensor *in[3] = {t, mask, src};
    return record(out, fn, masked_scatter_backward, 3, in, 1u << 1, 0, NULL);
}

/* --- gradients ---------------------------------------------------------------------
 * The index or mask is the node's input 1 (never differentiated); the others
 * get their gradients through the paired op, so create_graph records them. */
static int cat_backward(mimic_node *n, const mimic_tensor *g, mimic_tensor **gin)
{
    int dim = (int)n->iarg[0], rc = MIMIC_OK;
    int64_t at = 0;
    for (int i = 0; i < n->nin && rc == MIMIC_OK; i++) {
        const mimic_tensor *x = n->in[i];
        if (mimic_node_needs(n, i))
            rc = E_set(gin, i, as_dtype(mimic_narrow((mimic_tensor *)g, dim, at, x->shape[dim]), x->dtype));
        at += x->shape[dim];
    }
    return rc;
}

static int stack_backward(mimic_node *n, const mimic_tensor *g, mimic_tensor **gin)
{
    int dim = (int)n->iarg[0], rc = MIMIC_OK;
    for (int i = 0; i < n->nin && rc == MIMIC_OK; i++)
        if (mimic_node_needs(n, i))
            rc = E_set(gin, i, as_dtype(mimic_select((mimic_tensor *)g, dim, i), n->in[i]->dtype));
    return rc;
}

static int gather_backward(mimic_node *n, const mimic_tensor *g, mimic_tensor **gin)
{
    mimic_tensor *z = zeros_for(n->in[0], g);
    mimic_tensor *r = z ? mimic_scatter_add(z, (int)n->iarg[0], n->in[1], g) : NULL;
    mimic_tensor_free(z);
    return E_set(gin, 0, as_dtype(r, n->in[0]->dtype));
}

static int index_select_backward(mimic_node *n, const mimic_tensor *g, mimic_tensor **gin)
{
    mimic_tensor *z = zeros_for(n->in[0], g);
    mimic_tensor *r = z ? mimic_index_add(z, (int)n->iarg[0], n->in[1], g) : NULL;
    mimic_tensor_free(z);
    return E_set(gin, 0, as_dtype(r, n->in[0]->dtype));
}

static int masked_select_backward(mimic_node *n, const mimic_tensor *g, mimic_tensor **gin)
{
    mimic_tensor *z = zeros_for(n->in[0], g);
    mimic_tensor *r = z ? mimic_masked_scatter(z, n->in[1], g) : NULL;
    mimic_tensor_free(z);
    return E_set(gin, 0, as_dtype(r, n->in[0]->dtype));
}

/* index_add and scatter_add: t's gradient passes through; src's is read back
 * from the positions it was added to. */
static int index_add_backward(mimic_node *n, const mimic_tensor *g, mimic_tensor **gin)
{
    int rc = MIMIC_OK;
    if (mimic_node_needs(n, 0))
        rc = E_set(gin, 0, as_dtype(E_ref(g), n->in[0]->dtype));
    if (rc == MIMIC_OK && mimic_node_needs(n, 2))
        rc = E_set(gin, 2, as_dtype(mimic_index_select(g, (int)n->iarg[0], n->in[1]), n->in[2]->dtype));
    return rc;
}

static int scatter_add_backward(mimic_node *n, const mimic_tensor *g, mimic_tensor **gin)
{
    int rc = MIMIC_OK;
    if (mimic_node_needs(n, 0))
        rc = E_set(gin, 0, as_dtype(E_ref(g), n->in[0]->dtype));
    if (rc == MIMIC_OK && mimic_node_needs(n, 2))
        rc = E_set(gin, 2, as_dtype(mimic_gather(g, (int)n->iarg[0], n->in[1]), n->in[2]->dtype));
    return rc;
}

/* t's gradient is g with the overwritten slice zeroed; src's is that slice. */
static int slice_scatter_backward(mimic_node *n, const mimic_tensor *g, mimic_tensor **gin)
{
    const int64_t *a = n->iarg;
    const mimic_tensor *src = n->in[1];
    int rc = MIMIC_OK;
    if (mimic_node_needs(n, 0)) {
        mimic_tensor *z = mimic_zeros(src->ndim, src->shape, g->dtype);
        mimic_tensor *r = z ? mimic_slice_scatter(g, z, (int)a[0], a[1], a[2], a[3]) : NULL;
        mimic_tensor_free(z);
        rc = E_set(gin, 0, as_dtype(r, n->in[0]->dtype));
    }
    if (rc == MIMIC_OK && mimic_node_needs(n, 1))
        rc = E_set(gin, 1, as_dtype(mimic_slice((mimic_tensor *)g, (int)a[0], a[1], a[2], a[3]), src->dtype));
    return rc;
}

static int masked_scatter_backward(mimic_node *n, const mimic_tensor *g, mimic_tensor **gin)
{
    const mimic_tensor *mask = n->in[1], *src = n->in[2];
    int rc = MIMIC_OK;
    if (mimic_node_needs(n, 0))
        rc = E_set(gin, 0, as_dtype(E_where(E_ref(mask), E_num(0, g->dtype), E_ref(g)), n->in[0]->dtype));
    if (rc == MIMIC_OK && mimic_node_needs(n, 2)) {
        mimic_tensor *sel = mimic_masked_select(g, mask);
        mimic_tensor *r = sel ? mimic_reshape(sel, src->ndim, src->shape) : NULL;
        mimic_tensor_free(sel);
        rc = E_set(gin, 2, as_dtype(r, src->dtype));
    }
    return rc;
}

const mimic_opdef mimic_ops_index[] = {
    {"cat", cat_backward},
    {"stack", stack_backward},
    {"gather", gather_backward},
    {"index_select", index_select_backward},
    {"masked_select", masked_select_backward},
    {"index_add", index_add_backward},
    {"scatter_add", scatter_add_backward},
    {"slice_scatter", slice_scatter_backward},
    {"masked_scatter", masked_scatter_backward},
    {NULL, NULL},
};
