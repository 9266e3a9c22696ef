/* Flat parameter and gradient buffers (mimic/optim.h).
 *
 * A flat buffer is an ordinary storage whose memory comes with a small header
 * and whose release hook is flat_release. The hook doubles as the mark that
 * tells a storage made here from any other, so a parameter that already lives
 * in a flat buffer is recognised without a field in mimic_storage. */
#include "../autograd/graph.h"
#include "mimic/optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { FLAT_PARAMS = 1, FLAT_GRADS = 2 };

typedef struct flat_block {
    int kind;      /* FLAT_PARAMS or FLAT_GRADS */
    int64_t numel; /* elements in the buffer */
} flat_block;
/* Where the elements start in the block: a multiple of 64 bytes, so they are
 * as aligned as the block mimic_malloc returned. */
#define FLAT_HEADER ((sizeof(flat_block) + 63) / 64 * 64)

static void flat_release(void *ctx) { mimic_free(ctx); }

/* The header of s if s is a flat buffer, else NULL. */
static const flat_block *flat_of(const mimic_storage *s)
{
    return s->release == flat_release ? s->release_ctx : NULL;
}

/* A new 1-D tensor of numel elements over a fresh flat buffer of `kind`.
 * Gradient buffers start at zero; parameter buffers are left for the caller,
 * which copies every parameter in. */
static mimic_tensor *flat_new(int kind, int64_t numel, mimic_dtype dt)
{
    size_t es = mimic_dtype_size(dt);
    if ((uint64_t)numel > (SIZE_MAX - FLAT_HEADER) / es) {
        mimic_error(MIMIC_ENOMEM, "flatten_parameters: %lld elements do not fit in memory", (long long)numel);
        return NULL;
    }
    flat_block *b = mimic_malloc(FLAT_HEADER + (size_t)numel * es);
    if (!b)
        return NULL;
    b->kind = kind;
    b->numel = numel;
    char *data = (char *)b + FLAT_HEADER;
    if (kind == FLAT_GRADS)
        memset(data, 0, (size_t)numel * es);
    mimic_tensor *t = mimic_wrap(data, 1, &numel, NULL, dt, flat_release, b);
    if (!t)
        mimic_free(b); /* wrap calls the hook only for tensors it made */
    return t;
}

/* A contiguous view of `base`'s storage with the shape of p, starting at
 * element `offset` of the storage. */
static mimic_tensor *slice_like(const mimic_tensor *base, const mimic_tensor *p, int64_t offset)
{
    int64_t stride[MIMIC_MAX_DIMS], s = 1;
    for (int d = p->ndim - 1; d >= 0; d--) {
        stride[d] = s;
        s *= p->shape[d] ? p->shape[d] : 1;
    }
    return mimic_tensor_new_view(base, p->ndim, p->shape, stride, offset);
}

/* Whether t is exactly the contiguous slice of storage s at `offset` shaped
 * like p, i.e. what slice_like would make. */
static bool is_slice(const mimic_tensor *t, const mimic_storage *s, int64_t offset, const mimic_tensor *p)
{
    if (!t || t->storage != s || t->offset != offset || t->dtype != p->dtype || t->ndim != p->ndim ||
        memcmp(t->shape, p->shape, (size_t)p->ndim * sizeof *p->shape))
        return false;
    return mimic_is_contiguous(t);
}

/* Checks each parameter on its own and sums their sizes. */
static int check_params(const char *fn, mimic_tensor *const *params, int n, int64_t *total)
{
    if (!params || n <= 0)
        return mimic_error(MIMIC_EARG, "%s: no parameters (pass a list of at least one tensor)", fn);
    int64_t sum = 0;
    for (int i = 0; i < n; i++) {
        const mimic_tensor *p = params[i];
        if (!p)
            return mimic_error(MIMIC_EARG, "%s: the %s parameter is NULL", fn, MIMIC_ORDINAL(i));
        if (p->dtype != MIMIC_F32 && p->dtype != MIMIC_F64)
            return mimic_error(MIMIC_EDTYPE, "%s: the %s parameter is %s; parameters are "
                               "float32 or float64", fn, MIMIC_ORDINAL(i), mimic_dtype_name(p->dtype));
        if (p->dtype != params[0]->dtype)
            return mimic_error(MIMIC_EDTYPE, "%s: mixed dtypes: the 1st parameter is %s but "
                               "the %s is %s; convert them to one dtype before making the optimizer",
                               fn, mimic_dtype_name(params[0]->dtype), MIMIC_ORDINAL(i), mimic_dtype_name(p->dtype));
        if (!mimic_is_leaf(p))
            return mimic_error(MIMIC_ESTATE, "%s: the %s parameter is the result of '%s', not a "
                               "leaf; an optimizer updates leaves (use detach() for a new leaf)",
                               fn, MIMIC_ORDINAL(i), mimic_grad_fn_name(p));
        const flat_block *b = flat_of(p->storage);
        if (b && b->kind == FLAT_GRADS)
            return mimic_error(MIMIC_EARG, "%s: the %s parameter is a view of a flat gradient "
                               "buffer (a .grad), not a parameter", fn, MIMIC_ORDINAL(i));
        sum += mimic_numel(p);
        if (sum > INT64_MAX / 16)
            return mimic_error(MIMIC_ENOMEM, "%s: the parameters have too many elements", fn);
    }
    *total = sum;
    return MIMIC_OK;
}

/* 1 if params are exactly the layout of one flat parameter buffer (flattened
 * before from this very list), 0 if none of them is in a flat buffer, else an
 * error: some are, but not as this list. */
static int existing_layout(mimic_tensor *const *params, int n, int64_t total)
{
    int first = -1;
    for (int i = 0; i < n && first < 0; i++)
        if (flat_of(params[i]->storage))
            first = i;
    if (first < 0)
        return 0;
    const mimic_storage *s = params[first]->storage;
    const flat_block *b = flat_of(s);
    int64_t off = 0;
    for (int i = 0; i < n; i++) {
        if (!is_slice(params[i], s, off, params[i]))
            goto mismatch;
        off += mimic_numel(params[i]);
    }
    if (b->numel != total)
        goto mismatch;
    return 1;
mismatch:
    return mimic_error(MIMIC_ESTATE, "flatten_parameters: the %s parameter already belongs to the flat buffer of "
                       "another optimizer, made from a different parameter list; a parameter can be in one flat "
                       "buffer only: make one optimizer over the whole list (or pass exactly that list again)",
                       MIMIC_ORDINAL(first));
}

typedef struct { const mimic_storage *s; int i; } storage_ref;
static int by_storage(const void *a, const void *b)
{
    const storage_ref *x = a, *y = b;
    if (x->s != y->s)
        return (uintptr_t)x->s < (uintptr_t)y->s ? -1 : 1;
    return x->i - y->i;
}

/* No two parameters may share memory: the update would reach a shared value
 * twice, and rebinding would silently untie them. Sorting finds every pair in
 * n log n; sharing a storage counts even for disjoint views, since their
 * relation (a tied transpose, say) would not survive the move either. */
static int check_aliasing(mimic_tensor *const *params, int n)
{
    storage_ref *r = mimic_malloc((size_t)n * sizeof *r);
    if (!r)
        return MIMIC_ENOMEM;
    for (int i = 0; i < n; i++)
        r[i] = (storage_ref){params[i]->storage, i};
    qsort(r, (size_t)n, sizeof *r, by_storage);
    int rc = MIMIC_OK;
    for (int k = 1; k < n && rc == MIMIC_OK; k++)
        if (r[k].s == r[k - 1].s) {
            const mimic_tensor *a = params[r[k - 1].i], *b = params[r[k].i];
            const char *what = a == b ? "are the same tensor" : "share memory (views of one tensor)";
            rc = mimic_error(MIMIC_EARG, "flatten_parameters: the %s and %s parameters %s; pass each parameter "
                             "once, and tie weights by using one tensor in both places",
                             MIMIC_ORDINAL(r[k - 1].i), MIMIC_ORDINAL(r[k].i), what);
        }
    mimic_free(r);
    return rc;
}

int mimic_flat_attach_grads(mimic_tensor *const *params, int n, mimic_tensor *flat_grads)
{
    int64_t total = 0;
    int rc = check_params("flat_attach_grads", params, n, &total);
    if (rc)
        return rc;
    const flat_block *b = flat_grads ? flat_of(flat_grads->storage) : NULL;
    if (!b || b->kind != FLAT_GRADS || flat_grads->ndim != 1 || !mimic_is_contiguous(flat_grads) ||
        flat_grads->shape[0] != total || flat_grads->dtype != params[0]->dtype)
        return mimic_error(MIMIC_EARG, "flat_attach_grads: the gradient buffer is not the flat gradient buffer "
                           "of these %d parameters (pass the one flatten_parameters returned for this list)", n);
    int64_t off = flat_grads->offset;
    for (int i = 0; i < n; i++) {
        mimic_tensor *p = params[i], *g = mimic_grad(p);
        if (!is_slice(g, flat_grads->storage, off, p)) {
            mimic_tensor *v = slice_like(flat_grads, p, off);
            if (!v)
                return MIMIC_ENOMEM;
            /* The parameter's current gradient is the truth: copy it in. */
            rc = g ? mimic_copy(v, g) : mimic_fill(v, 0);
            if (rc == MIMIC_OK)
                rc = mimic_set_grad(p, v);
            mimic_tensor_free(v);
            if (rc)
                return rc;
        }
        off += mimic_numel(p);
    }
    return MIMIC_OK;
}

/* The parameters already make up one flat buffer, in this order: new views
 * of it, and of the gradient buffer their gradients are in (a new one,
 * filled from their current gradients, if there is none). */
static int reuse(mimic_tensor *const *params, int n, int64_t total, mimic_tensor **fp, mimic_tensor **fg)
{
    mimic_tensor *p0 = params[0];
    mimic_tensor *flat = mimic_tensor_new_view(p0, 1, &total, (int64_t[]){1}, 0);
    if (!flat)
        return MIMIC_ENOMEM;
    /* Params and grads are laid out alike, so the first gradient at offset 0
     * of a gradient buffer of the same size identifies the buffer. */
    mimic_tensor *g0 = mimic_grad(p0), *grads;
    const flat_block *gb = g0 ? flat_of(g0->storage) : NULL;
    if (gb && gb->kind == FLAT_GRADS && gb->numel == total && is_slice(g0, g0->storage, 0, p0))
        grads = mimic_tensor_new_view(g0, 1, &total, (int64_t[]){1}, 0);
    else
        grads = flat_new(FLAT_GRADS, total, p0->dtype);
    int rc = grads ? mimic_flat_attach_grads(params, n, grads) : mimic_errcode();
    if (rc) {
        mimic_tensor_free(grads);
        mimic_tensor_free(flat);
        return rc;
    }
    *fp = flat;
    *fg = grads;
    return MIMIC_OK;
}

int mimic_flatten_parameters(mimic_tensor *const *params, int n, mimic_tensor **flat_params,
                             mimic_tensor **flat_grads)
{
    mimic_tensor *fp = NULL, *fg = NULL, **views = NULL, **old_grads = NULL;
    int64_t total = 0;
    int rc = check_params("flatten_parameters", params, n, &total), set = 0;
    if (rc)
        return rc;
    int have = existing_layout(params, n, total);
    if (have < 0)
        return have;
    if (have) {
        if ((rc = reuse(params, n, total, &fp, &fg)))
            return rc;
        goto done;
    }
    if ((rc = check_aliasing(params, n)))
        return rc;

    /* Everything that can fail happens before the first parameter changes:
     * the buffers, a view per parameter and gradient, the copies. */
    mimic_dtype dt = params[0]->dtype;
    fp = flat_new(FLAT_PARAMS, total, dt);
    fg = fp ? flat_new(FLAT_GRADS, total, dt) : NULL;
    views = fg ? mimic_calloc((size_t)n * 2, sizeof *views) : NULL;
    old_grads = views ? mimic_calloc((size_t)n, sizeof *old_grads) : NULL;
    if (!old_grads)
        goto fail;
    mimic_tensor **pv = views, **gv = views + n;
    int64_t off = 0;
    for (int i = 0; i < n; i++) {
        mimic_tensor *p = params[i], *g = mimic_grad(p);
        if (!(pv[i] = slice_like(fp, p, off)) || !(gv[i] = slice_like(fg, p, off)))
            goto fail;
        if (mimic_copy(pv[i], p) || (g && mimic_copy(gv[i], g)))
            goto fail;
        off += mimic_numel(p);
    }
    /* Gradients: mimic_set_grad may allocate the autograd record, so it can
     * fail; undo the ones done (restoring into an existing record cannot). */
    for (; set < n; set++) {
        old_grads[set] = mimic_grad(params[set]);
        mimic_tensor_retain(old_grads[set]);
        if (mimic_set_grad(params[set], gv[set]))
            goto fail;
    }
    /* Parameters: swap each one's storage and layout with its slice view, so
     * the struct the caller knows views the flat buffer and the view struct,
     * freed below, takes the old storage's reference with it. */
    for (int i = 0; i < n; i++) {
        mimic_tensor *p = params[i], *v = pv[i];
        mimic_storage *s = p->storage;
        p->storage = v->storage;
        v->storage = s;
        p->offset = v->offset;
        memcpy(p->stride, v->stride, sizeof p->stride);
    }
    rc = MIMIC_OK;
    goto cleanup;
fail:
    rc = mimic_errcode() ? mimic_errcode() : MIMIC_ENOMEM;
    for (int i = 0; i < set; i++)
        mimic_set_grad(params[i], old_grads[i]);
    mimic_tensor_free(fp);
    mimic_tensor_free(fg);
    fp = fg = NULL;
cleanup:
    for (int i = 0; old_grads && i < n; i++)
        mimic_tensor_free(old_grads[i]);
    for (int i = 0; views && i < 2 * n; i++)
        mimic_tensor_free(views[i]);
    mimic_free(old_grads);
    mimic_free(views);
    if (rc)
        return rc;
done:
    if (flat_params)
        *flat_params = fp;
    else
        mimic_tensor_free(fp);
    if (flat_grads)
        *flat_grads = fg;
    else
        mimic_tensor_free(fg);
    return MIMIC_OK;
}

/* --- fused Adam --------------------------------------------------------------
 * mimic.optim's Adam used to be ~12 tensor ops over the flat buffers per step
 * (each a pass over memory plus a Lua call and an iterator set-up); this is
 * the same arithmetic, element by element, in one pass. The constants are
 * rounded to T once and every step is one rounding in T, in the order of the
 * ops it replaces, so the results equal the old sequence's. */
#define ADAM_LOOP(T, SQRT)                                                                         \
    do {                                                                                           \
        T *P = mimic_data(p), *M = mimic_data(m), *V = mimic_data(v);                              \
        T *VM = vmax ? mimic_data(vmax) : NULL;                                                    \
        const T *G = mimic_data(g);                                                                \
        const T b1 = (T)beta1, c1 = (T)(1 - beta1), b2 = (T)beta2, c2 = (T)(1 - beta2);            \
        const T wd = (T)weight_decay, keep = (T)(1 - lr * weight_decay), nss = (T)(-step_size);    \
        const T b2s = (T)bias2_sqrt, ep = (T)eps;                                                  \
        for (int64_t i = 0; i < n; i++) {                                                          \
            T gi = G[i], pi = P[i];                                                                \
            if (decoupled)                                                                         \
                pi = pi * keep;                                                                    \
            else if (weight_decay != 0)                                                            \
                gi = pi * wd + gi;                                                                 \
            T mi = M[i] * b1 + gi * c1;                                                            \
            T vi = V[i] * b2 + (gi * c2) * gi;                                                     \
            M[i] = mi;                                                                             \
            V[i] = vi;                                                                             \
            T vh = vi;                                                                             \
            if (VM) {                                                                              \
                T old = VM[i];                                                                     \
                vh = ((old != old) | (old > vi)) ? old : vi; /* maximum_: NaN wins */              \
                VM[i] = vh;                                                                        \
            }                                                                                      \
            T denom = SQRT(vh) / b2s + ep;                                                         \
            P[i] = pi + (mi * nss) / denom;                                                        \
        }                                                                                          \
    } while (0)

int mimic_adam_update(mimic_tensor *p, const mimic_tensor *g, mimic_tensor *m, mimic_tensor *v,
                      mimic_tensor *vmax, double lr, double beta1, double beta2, double eps, double weight_decay,
                      bool decoupled, int64_t step)
{
    const mimic_tensor *all[5] = {p, g, m, v, vmax};
    int nt = vmax ? 5 : 4;
    for (int k = 0; k < nt; k++)
        if (!all[k])
            return mimic_error(MIMIC_EARG, "adam_update: tensor %d is NULL", k + 1);
    mimic_dtype dt = p->dtype;
    if (dt != MIMIC_F32 && dt != MIMIC_F64)
        return mimic_error(MIMIC_EDTYPE, "adam_update: parameters must be float32 or float64");
    int64_t n = mimic_numel(p);
    for (int k = 0; k < nt; k++)
        if (all[k]->dtype != dt || mimic_numel(all[k]) != n || !mimic_is_contiguous(all[k]))
            return mimic_error(MIMIC_EARG, "adam_update: tensor %d must be contiguous, of the parameters' dtype "
                                           "and element count",
                               k + 1);
    if (step < 1)
        return mimic_error(MIMIC_EARG, "adam_update: step must be >= 1");
    double bias1 = 1 - pow(beta1, (double)step), bias2 = 1 - pow(beta2, (double)step);
    double step_size = lr / bias1, bias2_sqrt = sqrt(bias2);
    if (dt == MIMIC_F32)
        ADAM_LOOP(float, sqrtf);
    else
        ADAM_LOOP(double, sqrt);
    return MIMIC_OK;
}
