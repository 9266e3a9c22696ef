/* Tensor lifetime, queries and views. A view is a new mimic_tensor struct
 * pointing at the same storage (retained), so the base's memory stays alive
 * as long as any view does. */
#include "../autograd/expr.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

static const char *const dtype_names[] = {
    [MIMIC_F32] = "float32", [MIMIC_F64] = "float64", [MIMIC_I64] = "int64", [MIMIC_BOOL] = "bool"};
static const size_t dtype_sizes[] = {[MIMIC_F32] = 4, [MIMIC_F64] = 8, [MIMIC_I64] = 8, [MIMIC_BOOL] = 1};
_Static_assert(MIMIC_COUNT_OF(dtype_names) == MIMIC_DTYPE_COUNT, "dtype_names incomplete");
_Static_assert(MIMIC_COUNT_OF(dtype_sizes) == MIMIC_DTYPE_COUNT, "dtype_sizes incomplete");

const char *mimic_dtype_name(mimic_dtype t) { return (unsigned)t < MIMIC_DTYPE_COUNT ? dtype_names[t] : "?"; }
size_t mimic_dtype_size(mimic_dtype t) { return (unsigned)t < MIMIC_DTYPE_COUNT ? dtype_sizes[t] : 0; }

int mimic_dtype_parse(const char *name, mimic_dtype *out)
{
    static const struct { const char *name; mimic_dtype t; } alias[] = {
        {"float32", MIMIC_F32}, {"float", MIMIC_F32}, {"f32", MIMIC_F32},
        {"float64", MIMIC_F64}, {"double", MIMIC_F64}, {"f64", MIMIC_F64},
        {"int64", MIMIC_I64}, {"long", MIMIC_I64}, {"i64", MIMIC_I64}, {"bool", MIMIC_BOOL}};
    for (size_t i = 0; i < MIMIC_COUNT_OF(alias); i++)
        if (name && strcmp(name, alias[i].name) == 0) {
            *out = alias[i].t;
            return MIMIC_OK;
        }
    return mimic_error(MIMIC_EARG, "unknown dtype '%s' (use float32, float64, int64 or bool)",
                       name ? name : "(null)");
}

/* --- lifetime --------------------------------------------------------------- */
static void storage_release(mimic_storage *s)
{
    if (atomic_fetch_sub_explicit((_Atomic int *)&s->refcount, 1, memory_order_acq_rel) != 1)
        return;
    if (s->owned)
        mimic_free(s->data);
    else if (s->release)
        s->release(s->release_ctx);
    mimic_free(s);
}

void mimic_tensor_retain(mimic_tensor *t)
{
    if (t)
        atomic_fetch_add_explicit((_Atomic int *)&t->refcount, 1, memory_order_relaxed);
}

void mimic_tensor_free(mimic_tensor *t)
{
    if (!t || atomic_fetch_sub_explicit((_Atomic int *)&t->refcount, 1, memory_order_acq_rel) != 1)
        return;
    if (t->autograd)
        mimic_ag_free_meta(t->autograd);
    storage_release(t->storage);
    mimic_free(t);
}

static int check_shape(const char *fn, int ndim, const int64_t *shape, int64_t *numel)
{
    if (ndim < 0 || ndim > MIMIC_MAX_DIMS)
        return mimic_error(MIMIC_ESHAPE, "%s: %d dims requested; mimic supports 0 to %d", fn, ndim,
                           MIMIC_MAX_DIMS);
    int64_t n = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0)
            return mimic_error(MIMIC_ESHAPE, "%s: size %lld of dim %d is negative", fn,
                               (long long)shape[d], mimic_dim_from_end(d, ndim));
        if (shape[d] && n > INT64_MAX / 16 / shape[d])
            return mimic_error(MIMIC_ENOMEM, "%s: the shape has too many elements", fn);
        n *= shape[d];
    }
    *numel = n;
    return MIMIC_OK;
}

static void set_contiguous_strides(mimic_tensor *t)
{
    int64_t s = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        t->stride[d] = s;
        s *= t->shape[d] ? t->shape[d] : 1;
    }
}

/* A tensor and its storage record, with data/nbytes/owned left to the caller.
 * Both structs or neither: on failure nothing is left allocated. */
static mimic_tensor *tensor_alloc(const char *fn, int ndim, const int64_t *shape, mimic_dtype dtype,
                                  int64_t *numel)
{
    if ((unsigned)dtype >= MIMIC_DTYPE_COUNT) {
        mimic_error(MIMIC_EDTYPE, "%s: invalid dtype %d", fn, (int)dtype);
        return NULL;
    }
    if (check_shape(fn, ndim, shape, numel))
        return NULL;
    mimic_tensor *t = mimic_calloc(1, sizeof *t);
    mimic_storage *s = t ? mimic_calloc(1, sizeof *s) : NULL;
    if (!s) {
        mimic_free(t);
        return NULL;
    }
    s->refcount = 1;
    t->storage = s;
    t->ndim = ndim;
    t->dtype = dtype;
    t->refcount = 1;
    if (ndim)
        memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
    set_contiguous_strides(t);
    return t;
}

mimic_tensor *mimic_empty(int ndim, const int64_t *shape, mimic_dtype dtype)
{
    int64_t n;
    mimic_tensor *t = tensor_alloc("empty", ndim, shape, dtype, &n);
    if (!t)
        return NULL;
    mimic_storage *s = t->storage;
    s->nbytes = (size_t)n * dtype_sizes[dtype];
    s->owned = true;
    if (!(s->data = mimic_malloc(s->nbytes))) {
        mimic_free(s);
        mimic_free(t);
        return NULL;
    }
    return t;
}

mimic_tensor *mimic_wrap(void *data, int ndim, const int64_t *shape, const int64_t *strides,
                         mimic_dtype dtype, void (*release)(void *ctx), void *ctx)
{
    for (int d = 0; strides && d < ndim && d < MIMIC_MAX_DIMS; d++)
        if (strides[d] < 0) {
            mimic_error(MIMIC_EARG, "wrap: stride %lld of dim %d is negative; pass the lowest address "
                        "and a positive stride", (long long)strides[d], mimic_dim_from_end(d, ndim));
            return NULL;
        }
    int64_t n;
    mimic_tensor *t = tensor_alloc("wrap", ndim, shape, dtype, &n);
    if (!t)
        return NULL;
    if (!data && n > 0) {
        mimic_tensor_free(t); /* storage not owned and data NULL: frees only the structs */
        mimic_error(MIMIC_EARG, "wrap: data is NULL for a tensor of %lld elements", (long long)n);
        return NULL;
    }
    if (strides)
        memcpy(t->stride, strides, (size_t)ndim * sizeof *strides);
    int64_t extent = 0; /* highest element offset reached, to size the storage */
    for (int d = 0; d < ndim; d++)
        extent += (shape[d] - 1) * t->stride[d];
    *t->storage = (mimic_storage){.data = data, .nbytes = n ? (size_t)(extent + 1) * dtype_sizes[dtype] : 0,
                                  .refcount = 1, .owned = false, .release = release, .release_ctx = ctx};
    return t;
}

mimic_tensor *mimic_tensor_new_view(const mimic_tensor *base, int ndim, const int64_t *shape,
                                    const int64_t *stride, int64_t offset)
{
    mimic_tensor *t = mimic_calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->storage = base->storage;
    atomic_fetch_add_explicit((_Atomic int *)&t->storage->refcount, 1, memory_order_relaxed);
    t->offset = offset;
    t->ndim = ndim;
    t->dtype = base->dtype;
    t->refcount = 1;
    if (ndim) {
        memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
        memcpy(t->stride, stride, (size_t)ndim * sizeof *stride);
    }
    return t;
}

/* --- queries ------------------------------------------------------------------ */
int64_t mimic_numel(const mimic_tensor *t)
{
    int64_t n = 1;
    for (int d = 0; d < t->ndim; d++)
        n *= t->shape[d];
    return n;
}

bool mimic_is_contiguous(const mimic_tensor *t)
{
    int64_t s = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        if (t->shape[d] == 0)
            return true;
        if (t->shape[d] != 1 && t->stride[d] != s)
            return false;
        s *= t->shape[d];
    }
    return true;
}

static int64_t offset_of(const mimic_tensor *t, const int64_t *idx)
{
    int64_t off = t->offset;
    for (int d = 0; d < t->ndim; d++)
        off += idx[d] * t->stride[d];
    return off;
}

double mimic_get(const mimic_tensor *t, const int64_t *idx)
{
    int64_t off = offset_of(t, idx);
    const void *p = t->storage->data;
    switch (t->dtype) {
    case MIMIC_F32: return ((const float *)p)[off];
    case MIMIC_F64: return ((const double *)p)[off];
    case MIMIC_I64: return (double)((const int64_t *)p)[off];
    case MIMIC_BOOL: return ((const uint8_t *)p)[off];
    default: return 0;
    }
}

/* A raw accessor, so no autograd check (finite differences poke at leaves that
 * require grad); the version bump still lets backward notice the change. */
void mimic_set(mimic_tensor *t, const int64_t *idx, double v)
{
    atomic_fetch_add_explicit((_Atomic uint64_t *)&t->storage->version, 1, memory_order_relaxed);
    int64_t off = offset_of(t, idx);
    void *p = t->storage->data;
    switch (t->dtype) {
    case MIMIC_F32: ((float *)p)[off] = (float)v; break;
    case MIMIC_F64: ((double *)p)[off] = v; break;
    case MIMIC_I64: ((int64_t *)p)[off] = mimic_f2i64(v); break;
    case MIMIC_BOOL: ((uint8_t *)p)[off] = v != 0; break;
    default: break;
    }
}

char *mimic_shape_str(int ndim, const int64_t *shape, char *buf, size_t size)
{
    size_t k = 0;
    if (size == 0)
        return buf;
    buf[0] = '\0';
    k += (size_t)snprintf(buf + k, size - k, "[");
    for (int d = 0; d < ndim && k < size; d++)
        k += (size_t)snprintf(buf + k, size - k, d ? ",%lld" : "%lld", (long long)shape[d]);
    if (k < size)
        snprintf(buf + k, size - k, "]");
    return buf;
}

/* The message echoes the caller's dim as given (0-based): the Lua binding checks
 * its 1-based dims before calling, so this one only reaches C callers. */
int mimic_dim(const char *fn, int dim, int ndim)
{
    int n = ndim ? ndim : 1;
    if (dim < -n || dim >= n) {
        mimic_error(MIMIC_EARG, "%s: dim %d out of range for a %d-dim tensor (valid: %d..%d)", fn, dim,
                    ndim, -n, n - 1);
        return -1;
    }
    return dim < 0 ? dim + n : dim;
}

/* --- views --------------------------------------------------------------------- */
#define SHAPE_STR(nd, sh) mimic_shape_str((nd), (sh), (char[96]){0}, 96)

/* Resolve a single -1 in a requested shape against numel. */
static int infer_shape(const char *fn, const mimic_tensor *t, int ndim, const int64_t *in, int64_t *out)
{
    int64_t numel = mimic_numel(t), known = 1;
    int neg = -1;
    if (ndim < 0 || ndim > MIMIC_MAX_DIMS)
        return mimic_error(MIMIC_ESHAPE, "%s: %d dims requested; mimic supports 0 to %d", fn, ndim, MIMIC_MAX_DIMS);
    for (int d = 0; d < ndim; d++) {
        out[d] = in[d];
        if (in[d] == -1) {
            if (neg >= 0)
                return mimic_error(MIMIC_ESHAPE, "%s: only one size may be -1", fn);
            neg = d;
        } else if (in[d] < 0) {
            return mimic_error(MIMIC_ESHAPE, "%s: size %lld is negative", fn, (long long)in[d]);
        } else {
            known *= in[d];
        }
    }
    if (neg >= 0) {
        if (known == 0 || numel % known)
            return mimic_error(MIMIC_ESHAPE, "%s: cannot infer the -1 size of %s from %s (%lld elements)", fn,
                               SHAPE_STR(ndim, in), SHAPE_STR(t->ndim, t->shape), (long long)numel);
        out[neg] = numel / known;
        known = numel;
    }
    if (known != numel)
        return mimic_error(MIMIC_ESHAPE, "%s: shape %s has %lld elements but the tensor %s has %lld", fn,
                           SHAPE_STR(ndim, out), (long long)known, SHAPE_STR(t->ndim, t->shape),
                           (long long)numel);
    return MIMIC_OK;
}

/* Strides for viewing t as `shape` without a copy, if t's layout allows it
 * (each group of old dims that maps to a group of new dims is contiguous in
 * itself). Returns false if a copy is needed. */
static bool view_strides(const mimic_tensor *t, int ndim, const int64_t *shape, int64_t *stride)
{
    int64_t numel = mimic_numel(t);
    if (numel == 0 || numel == 1) {
        int64_t s = 1;
        for (int d = ndim - 1; d >= 0; d--) {
            stride[d] = s;
            s *= shape[d] ? shape[d] : 1;
        }
        return true;
    }
    /* Old dims without size-1 ones. */
    int64_t osh[MIMIC_MAX_DIMS], ost[MIMIC_MAX_DIMS];
    int on = 0;
    for (int d = 0; d < t->ndim; d++)
        if (t->shape[d] != 1) {
            osh[on] = t->shape[d];
            ost[on++] = t->stride[d];
        }
    int oi = 0, ni = 0;
    while (ni < ndim) {
        if (shape[ni] == 1) {
            stride[ni] = 1;
            ni++;
            continue;
        }
        /* Take old dims [oi, oj) and new dims [ni, nj) with equal products. */
        int64_t op = osh[oi], np = shape[ni];
        int oj = oi + 1, nj = ni + 1;
        while (op != np) {
            if (op < np)
                op *= osh[oj++];
            else
                np *= shape[nj++];
        }
        while (nj < ndim && shape[nj] == 1)
            nj++;
        for (int k = oi; k < oj - 1; k++)
            if (ost[k] != ost[k + 1] * osh[k + 1])
                return false;
        int64_t s = ost[oj - 1];
        for (int k = nj - 1; k >= ni; k--) {
            stride[k] = s;
            s *= shape[k];
        }
        oi = oj;
        ni = nj;
    }
    return true;
}

/* --- autograd of views -----------------------------------------------------------
 * The public view functions record a node when their input needs a gradient.
 * Code inside the core builds its views with mimic_tensor_new_view, which never
 * records, so an op's scratch views leave no nodes behind. A view's gradient
 * is the upstream gradient taken back through the inverse view, written with
 * the public ops so that create_graph records it too. No view backward reads
 * the input's values (reads = 0), only shapes and the arguments in iarg: an
 * in-place change of the base after the view cannot invalidate it. */

/* view, reshape, flatten, squeeze, unsqueeze: same elements, another shape. */
static int reshape_backward(mimic_node *n, const mimic_tensor *g, mimic_tensor **gin)
{
    const mimic_tensor *x = n->in[0];
    return E_set(gin, 0, mimic_reshape((mimic_tensor *)g, x->ndim, x->shape));
}

static int transpose_backward(mimic_node *n, const mimic_tensor *g, mimic_tensor **gin)
{
    return E_set(gin, 0, mimic_transpose((mimic_tensor *)g, (int)n->iarg[0], (int)n->iarg[1]));
}

/* iarg[d] is the input dim that became dim d; the inverse sends it back. */
static int permute_backward(mimic_node *n, const mimic_tensor *g, mimic_tensor **gin)
{
    int inv[MIMIC_MAX_DIMS];
    for (int d = 0; d < g->ndim; d++)
        inv[n->iarg[d]] = d;
    return E_set(gin, 0, mimic_permute((mimic_tensor *)g, inv));
}

static int expand_backward(mimic_node *n, const mimic_tensor *g, mimic_tensor **gin)
{
    const mimic_tensor *x = n->in[0];
    return E_set(gin, 0, mimic_sum_to(g, x->ndim, x->shape));
}

/* g (consumed) placed at slice a = {dim, start, stop, step} of zeros shaped
 * like x: slice_scatter rather than a copy into a view, because an in-place
 * copy could not be recorded for create_graph. */
static mimic_tensor *embed(const mimic_tensor *x, mimic_tensor *g, const int64_t *a)
{
    mimic_tensor *z = g ? mimic_zeros(x->ndim, x->shape, g->dtype) : NULL;
    mimic_tensor *r = z ? mimic_slice_scatter(z, g, (int)a[0], a[1], a[2], a[3]) : NULL;
    mimic_tensor_free(z);
    mimic_tensor_free(g);
    return r;
}

/* slice and narrow: iarg = {dim, start, stop, step}. */
static int slice_backward(mimic_node *n, const mimic_tensor *g, mimic_tensor **gin)
{
    return E_set(gin, 0, embed(n->in[0], E_ref(g), n->iarg));
}

/* iarg = {dim, index}: the dropped dim comes back as a slice of length 1. */
static int select_backward(mimic_node *n, const mimic_tensor *g, mimic_tensor **gin)
{
    int64_t dim = n->iarg[0], a[4] = {dim, n->iarg[1], n->iarg[1] + 1, 1};
    return E_set(gin, 0, embed(n->in[0], mimic_unsqueeze((mimic_tensor *)g, (int)dim), a));
}

/* v (a new view of t, or NULL) with a node when t needs a gradient; the
 * backward gets args in iarg. On failure v is freed. */
static mimic_tensor *record_view(mimic_tensor *v, mimic_tensor *t, const char *name, mimic_backward_fn bw,
                                 int nargs, const int64_t *args)
{
    const mimic_tensor *in = t;
    if (!v || !mimic_ag_wanted(1, &in))
        return v;
    mimic_node *n = mimic_ag_record(v, name, bw, 1, &in);
    if (!n) {
        mimic_tensor_free(v);
        return NULL;
    }
    n->reads = 0;
    if (nargs)
        memcpy(n->iarg, args, (size_t)nargs * sizeof *args);
    return v;
}

const mimic_opdef mimic_ops_views[] = {
    {"view", reshape_backward},       {"reshape", reshape_backward},     {"flatten", reshape_backward},
    {"squeeze", reshape_backward},    {"unsqueeze", reshape_backward},   {"transpose", transpose_backward},
    {"permute", permute_backward},    {"expand", expand_backward},       {"slice", slice_backward},
    {"narrow", slice_backward},       {"select", select_backward},       {NULL, NULL},
};

/* --- the view functions ------------------------------------------------------------- */
mimic_tensor *mimic_view(mimic_tensor *t, int ndim, const int64_t *shape)
{
    int64_t sh[MIMIC_MAX_DIMS], st[MIMIC_MAX_DIMS];
    if (infer_shape("view", t, ndim, shape, sh))
        return NULL;
    if (!view_strides(t, ndim, sh, st)) {
        mimic_error(MIMIC_ESHAPE, "view: a tensor of shape %s with these strides cannot be viewed as %s "
                    "without a copy; use reshape (copies) or contiguous() first",
                    SHAPE_STR(t->ndim, t->shape), SHAPE_STR(ndim, sh));
        return NULL;
    }
    return record_view(mimic_tensor_new_view(t, ndim, sh, st, t->offset), t, "view", reshape_backward, 0, NULL);
}

/* A view of t as shape, or a view of a contiguous copy; records nothing. */
static mimic_tensor *reshape_impl(mimic_tensor *t, int ndim, const int64_t *shape)
{
    int64_t sh[MIMIC_MAX_DIMS], st[MIMIC_MAX_DIMS];
    if (infer_shape("reshape", t, ndim, shape, sh))
        return NULL;
    if (view_strides(t, ndim, sh, st))
        return mimic_tensor_new_view(t, ndim, sh, st, t->offset);
    /* The copy is part of this op: the caller records one node for the whole
     * reshape, so the copy itself must not record one. */
    bool prev = mimic_set_grad_enabled(false);
    mimic_tensor *c = mimic_contiguous(t);
    mimic_set_grad_enabled(prev);
    if (!c)
        return NULL;
    view_strides(c, ndim, sh, st); /* always possible for a contiguous tensor */
    mimic_tensor *v = mimic_tensor_new_view(c, ndim, sh, st, c->offset);
    mimic_tensor_free(c);
    return v;
}

mimic_tensor *mimic_reshape(mimic_tensor *t, int ndim, const int64_t *shape)
{
    return record_view(reshape_impl(t, ndim, shape), t, "reshape", reshape_backward, 0, NULL);
}

mimic_tensor *mimic_transpose(mimic_tensor *t, int d0, int d1)
{
    if ((d0 = mimic_dim("transpose", d0, t->ndim)) < 0 || (d1 = mimic_dim("transpose", d1, t->ndim)) < 0)
        return NULL;
    int64_t sh[MIMIC_MAX_DIMS], st[MIMIC_MAX_DIMS];
    memcpy(sh, t->shape, sizeof sh);
    memcpy(st, t->stride, sizeof st);
    sh[d0] = t->shape[d1], sh[d1] = t->shape[d0];
    st[d0] = t->stride[d1], st[d1] = t->stride[d0];
    return record_view(mimic_tensor_new_view(t, t->ndim, sh, st, t->offset), t, "transpose", transpose_backward, 2,
                       (int64_t[]){d0, d1});
}

mimic_tensor *mimic_permute(mimic_tensor *t, const int *dims)
{
    int64_t sh[MIMIC_MAX_DIMS], st[MIMIC_MAX_DIMS], src[MIMIC_MAX_DIMS];
    bool seen[MIMIC_MAX_DIMS] = {0};
    for (int d = 0; d < t->ndim; d++) {
        int s = mimic_dim("permute", dims[d], t->ndim);
        if (s < 0)
            return NULL;
        if (seen[s]) {
            mimic_error(MIMIC_EARG, "permute: dim %d appears twice; give each of the %d dims once",
                        mimic_dim_from_end(s, t->ndim), t->ndim);
            return NULL;
        }
        seen[s] = true;
        src[d] = s;
        sh[d] = t->shape[s];
        st[d] = t->stride[s];
    }
    return record_view(mimic_tensor_new_view(t, t->ndim, sh, st, t->offset), t, "permute", permute_backward,
                       t->ndim, src);
}

/* The slice view; *dimp gets the normalised dim. Records nothing. */
static mimic_tensor *slice_impl(mimic_tensor *t, int dim, int64_t start, int64_t stop, int64_t step, int *dimp)
{
    if ((dim = mimic_dim("slice", dim, t->ndim)) < 0)
        return NULL;
    if (t->ndim == 0) {
        mimic_error(MIMIC_ESHAPE, "slice: cannot slice a 0-dim tensor");
        return NULL;
    }
    int64_t n = t->shape[dim];
    if (step < 1) {
        mimic_error(MIMIC_EARG, "slice: step %lld must be >= 1", (long long)step);
        return NULL;
    }
    if (start < 0 || start > n || stop < start || stop > n) {
        mimic_error(MIMIC_EARG, "slice: range [%lld, %lld) is outside dim %d of size %lld", (long long)start,
                    (long long)stop, mimic_dim_from_end(dim, t->ndim), (long long)n);
        return NULL;
    }
    int64_t sh[MIMIC_MAX_DIMS], st[MIMIC_MAX_DIMS];
    memcpy(sh, t->shape, sizeof sh);
    memcpy(st, t->stride, sizeof st);
    sh[dim] = (stop - start + step - 1) / step;
    st[dim] = t->stride[dim] * step;
    *dimp = dim;
    return mimic_tensor_new_view(t, t->ndim, sh, st, t->offset + start * t->stride[dim]);
}

mimic_tensor *mimic_slice(mimic_tensor *t, int dim, int64_t start, int64_t stop, int64_t step)
{
    mimic_tensor *v = slice_impl(t, dim, start, stop, step, &dim);
    return record_view(v, t, "slice", slice_backward, 4, (int64_t[]){dim, start, stop, step});
}

mimic_tensor *mimic_narrow(mimic_tensor *t, int dim, int64_t start, int64_t length)
{
    if (length < 0) {
        mimic_error(MIMIC_EARG, "narrow: length %lld is negative", (long long)length);
        return NULL;
    }
    mimic_tensor *v = slice_impl(t, dim, start, start + length, 1, &dim);
    return record_view(v, t, "narrow", slice_backward, 4, (int64_t[]){dim, start, start + length, 1});
}

mimic_tensor *mimic_select(mimic_tensor *t, int dim, int64_t index)
{
    if (t->ndim == 0) {
        mimic_error(MIMIC_ESHAPE, "select: cannot index a 0-dim tensor");
        return NULL;
    }
    if ((dim = mimic_dim("select", dim, t->ndim)) < 0)
        return NULL;
    if (index < 0 || index >= t->shape[dim]) {
        mimic_error(MIMIC_EARG, "select: index %lld is out of range for dim %d of size %lld", (long long)index,
                    mimic_dim_from_end(dim, t->ndim), (long long)t->shape[dim]);
        return NULL;
    }
    int64_t sh[MIMIC_MAX_DIMS], st[MIMIC_MAX_DIMS];
    int k = 0;
    for (int d = 0; d < t->ndim; d++)
        if (d != dim) {
            sh[k] = t->shape[d];
            st[k++] = t->stride[d];
        }
    return record_view(mimic_tensor_new_view(t, t->ndim - 1, sh, st, t->offset + index * t->stride[dim]), t, "select",
                       select_backward, 2, (int64_t[]){dim, index});
}

mimic_tensor *mimic_expand(mimic_tensor *t, int ndim, const int64_t *shape)
{
    if (ndim < t->ndim || ndim > MIMIC_MAX_DIMS) {
        mimic_error(MIMIC_ESHAPE, "expand: cannot expand %s to %d dims", SHAPE_STR(t->ndim, t->shape), ndim);
        return NULL;
    }
    int64_t sh[MIMIC_MAX_DIMS], st[MIMIC_MAX_DIMS];
    int off = ndim - t->ndim;
    for (int d = 0; d < ndim; d++) {
        int td = d - off;
        int64_t have = td >= 0 ? t->shape[td] : 1;
        sh[d] = shape[d] == -1 ? have : shape[d];
        if (td < 0 && shape[d] == -1) {
            mimic_error(MIMIC_ESHAPE, "expand: -1 is not allowed for the new leading dim %d",
                        mimic_dim_from_end(d, ndim));
            return NULL;
        }
        if (have == sh[d])
            st[d] = td >= 0 ? t->stride[td] : 0;
        else if (have == 1 && sh[d] >= 0)
            st[d] = 0;
        else {
            mimic_error(MIMIC_ESHAPE, "expand: cannot expand %s to %s (dim %d: %lld to %lld; only size-1 dims "
                        "stretch)", SHAPE_STR(t->ndim, t->shape), SHAPE_STR(ndim, shape), mimic_dim_from_end(d, ndim),
                        (long long)have, (long long)sh[d]);
            return NULL;
        }
    }
    return record_view(mimic_tensor_new_view(t, ndim, sh, st, t->offset), t, "expand", expand_backward, 0, NULL);
}

mimic_tensor *mimic_squeeze(mimic_tensor *t, int dim)
{
    int64_t sh[MIMIC_MAX_DIMS], st[MIMIC_MAX_DIMS];
    int k = 0;
    if (dim != MIMIC_ALL_DIMS) {
        if ((dim = mimic_dim("squeeze", dim, t->ndim)) < 0)
            return NULL;
    }
    for (int d = 0; d < t->ndim; d++)
        if (!(t->shape[d] == 1 && (dim == MIMIC_ALL_DIMS || dim == d))) {
            sh[k] = t->shape[d];
            st[k++] = t->stride[d];
        }
    return record_view(mimic_tensor_new_view(t, k, sh, st, t->offset), t, "squeeze", reshape_backward, 0, NULL);
}

mimic_tensor *mimic_unsqueeze(mimic_tensor *t, int dim)
{
    if (t->ndim >= MIMIC_MAX_DIMS) {
        mimic_error(MIMIC_ESHAPE, "unsqueeze: tensor already has the maximum of %d dims", MIMIC_MAX_DIMS);
        return NULL;
    }
    if ((dim = mimic_dim("unsqueeze", dim, t->ndim + 1)) < 0)
        return NULL;
    int64_t sh[MIMIC_MAX_DIMS], st[MIMIC_MAX_DIMS];
    for (int d = 0, k = 0; d <= t->ndim; d++) {
        if (d == dim) {
            sh[d] = 1;
            st[d] = dim < t->ndim ? t->stride[dim] * t->shape[dim] : 1;
        } else {
            sh[d] = t->shape[k];
            st[d] = t->stride[k++];
        }
    }
    return record_view(mimic_tensor_new_view(t, t->ndim + 1, sh, st, t->offset), t, "unsqueeze", reshape_backward,
                       0, NULL);
}

mimic_tensor *mimic_flatten(mimic_tensor *t, int start_dim, int end_dim)
{
    if (t->ndim == 0)
        return record_view(reshape_impl(t, 1, (int64_t[]){1}), t, "flatten", reshape_backward, 0, NULL);
    if ((start_dim = mimic_dim("flatten", start_dim, t->ndim)) < 0 ||
        (end_dim = mimic_dim("flatten", end_dim, t->ndim)) < 0)
        return NULL;
    if (end_dim < start_dim) {
        mimic_error(MIMIC_EARG, "flatten: end dim %d comes before start dim %d", mimic_dim_from_end(end_dim, t->ndim),
                    mimic_dim_from_end(start_dim, t->ndim));
        return NULL;
    }
    int64_t sh[MIMIC_MAX_DIMS];
    int k = 0;
    for (int d = 0; d < t->ndim; d++) {
        if (d > start_dim && d <= end_dim)
            sh[k - 1] *= t->shape[d];
        else
            sh[k++] = t->shape[d];
    }
    return record_view(reshape_impl(t, k, sh), t, "flatten", reshape_backward, 0, NULL);
}
