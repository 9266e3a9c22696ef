/* mimic — n-dimensional tensors: storage, views, creation, copies.
 *
 * A tensor is a strided view of a reference-counted storage. Dims are 0-based
 * in C (the Lua binding is 1-based). Strides count elements, not bytes, and may
 * be zero (broadcast) but never negative. Views (transpose, narrow, select,
 * view, expand, ...) share the storage and keep it alive.
 *
 * Ownership: every function that returns a mimic_tensor* returns a new
 * reference that the caller releases with mimic_tensor_free(). Arguments are
 * borrowed. mimic_tensor_retain() adds a reference.
 */
#ifndef MIMIC_TENSOR_H
#define MIMIC_TENSOR_H

#include "base.h"
#include <stdbool.h>

#define MIMIC_MAX_DIMS 8

typedef enum mimic_dtype {
    MIMIC_F32 = 0, /* float, the default */
    MIMIC_F64,     /* double */
    MIMIC_I64,     /* int64_t: indices, argmax, sort permutations */
    MIMIC_BOOL,    /* uint8_t 0/1: comparison results, masks */
    MIMIC_DTYPE_COUNT
} mimic_dtype;

const char *mimic_dtype_name(mimic_dtype t); /* "float32", "float64", "int64", "bool" */
size_t mimic_dtype_size(mimic_dtype t);
/* Parse a name ("float32"/"float"/"f32", "float64"/"double"/"f64", "int64", "bool").
 * Returns MIMIC_EARG for an unknown name. */
int mimic_dtype_parse(const char *name, mimic_dtype *out);

typedef struct mimic_storage {
    void *data;
    size_t nbytes;
    int refcount;                /* atomically updated */
    bool owned;                  /* false: wraps a host's memory, never freed by mimic */
    uint64_t version;            /* bumped by every in-place write; autograd checks it */
    void (*release)(void *ctx);  /* called when the last reference goes (wrapped memory) */
    void *release_ctx;
} mimic_storage;

/* The fields are read-only for users: change them through the functions below. */
typedef struct mimic_tensor {
    mimic_storage *storage;
    int64_t offset; /* first element, in elements from storage->data */
    int ndim;       /* 0 for a scalar */
    mimic_dtype dtype;
    int64_t shape[MIMIC_MAX_DIMS];
    int64_t stride[MIMIC_MAX_DIMS];
    int refcount;
    void *autograd; /* autograd state (core/autograd), NULL for a plain tensor */
} mimic_tensor;

/* --- lifetime ------------------------------------------------------------ */
void mimic_tensor_retain(mimic_tensor *t);
void mimic_tensor_free(mimic_tensor *t); /* release one reference; NULL is fine */

/* New contiguous tensor, uninitialised. shape may be NULL when ndim == 0. */
mimic_tensor *mimic_empty(int ndim, const int64_t *shape, mimic_dtype dtype);
/* A tensor over memory the caller owns (a host's array), without copying.
 * strides are in elements; NULL means contiguous row-major. `release`, if not
 * NULL, is called with `ctx` when the last view of it goes away. The caller
 * keeps `data` valid until then. */
mimic_tensor *mimic_wrap(void *data, int ndim, const int64_t *shape, const int64_t *strides,
                         mimic_dtype dtype, void (*release)(void *ctx), void *ctx);

/* --- queries --------------------------------------------------------------- */
int64_t mimic_numel(const mimic_tensor *t);
bool mimic_is_contiguous(const mimic_tensor *t);
static inline void *mimic_data(const mimic_tensor *t) /* address of the first element */
{
    return (char *)t->storage->data + (size_t)t->offset * mimic_dtype_size(t->dtype);
}
/* Element at a multi-index (0-based), converted to double. No bounds check. */
double mimic_get(const mimic_tensor *t, const int64_t *idx);
/* A raw accessor: unlike copy and fill it writes even into a tensor that
 * requires grad (finite differences need that), but it bumps the storage
 * version, so a backward that needs the old value still fails. */
void mimic_set(mimic_tensor *t, const int64_t *idx, double v);
/* Format a shape as "[3,4]" into buf (always terminated). Returns buf. */
char *mimic_shape_str(int ndim, const int64_t *shape, char *buf, size_t size);
/* Normalise a possibly negative dim against ndim; returns -1 (with an error
 * naming `fn`) when out of range. */
int mimic_dim(const char *fn, int dim, int ndim);

/* --- views (share storage; never copy) ------------------------------------
 * With autograd, a view of a tensor that requires grad is recorded (it is not
 * a leaf) and its gradient flows back to the base; a view shares the base's
 * storage version, so writing through either is seen by backward. */
mimic_tensor *mimic_view(mimic_tensor *t, int ndim, const int64_t *shape); /* one dim may be -1; fails if strides forbid */
mimic_tensor *mimic_reshape(mimic_tensor *t, int ndim, const int64_t *shape); /* a view when possible, else a copy */
mimic_tensor *mimic_transpose(mimic_tensor *t, int d0, int d1);
mimic_tensor *mimic_permute(mimic_tensor *t, const int *dims);
mimic_tensor *mimic_narrow(mimic_tensor *t, int dim, int64_t start, int64_t length);
/* elements start, start+step, ... < stop along dim (step >= 1) */
mimic_tensor *mimic_slice(mimic_tensor *t, int dim, int64_t start, int64_t stop, int64_t step);
mimic_tensor *mimic_select(mimic_tensor *t, int dim, int64_t index); /* drops dim */
mimic_tensor *mimic_expand(mimic_tensor *t, int ndim, const int64_t *shape); /* -1 keeps a size */
mimic_tensor *mimic_squeeze(mimic_tensor *t, int dim); /* dim < -ndim..: all size-1 dims when dim == MIMIC_ALL_DIMS */
mimic_tensor *mimic_unsqueeze(mimic_tensor *t, int dim);
mimic_tensor *mimic_flatten(mimic_tensor *t, int start_dim, int end_dim); /* view when possible */
#define MIMIC_ALL_DIMS INT32_MIN

/* --- copies and conversion ------------------------------------------------ */
mimic_tensor *mimic_contiguous(mimic_tensor *t); /* t itself (retained) if already contiguous */
mimic_tensor *mimic_clone(const mimic_tensor *t);
mimic_tensor *mimic_to_dtype(const mimic_tensor *t, mimic_dtype dtype); /* always a copy */
/* dst[...] = src, src broadcast to dst's shape, converting dtype. The values
 * are copied, not src's autograd history. copy and fill refuse (MIMIC_ESTATE)
 * a destination that requires grad while grad mode is on (an in-place change
 * is not recorded); do such updates with grad mode off. */
int mimic_copy(mimic_tensor *dst, const mimic_tensor *src);
int mimic_fill(mimic_tensor *t, double v);

/* --- creation -------------------------------------------------------------- */
mimic_tensor *mimic_zeros(int ndim, const int64_t *shape, mimic_dtype dtype);
mimic_tensor *mimic_ones(int ndim, const int64_t *shape, mimic_dtype dtype);
mimic_tensor *mimic_full(int ndim, const int64_t *shape, double v, mimic_dtype dtype);
/* start, start+step, ... while < stop (> stop for step < 0); NumPy's length rule. */
mimic_tensor *mimic_arange(double start, double stop, double step, mimic_dtype dtype);
mimic_tensor *mimic_linspace(double start, double stop, int64_t n, mimic_dtype dtype);
mimic_tensor *mimic_eye(int64_t n, int64_t m, mimic_dtype dtype);
/* A 0-dim tensor holding v. */
mimic_tensor *mimic_scalar(double v, mimic_dtype dtype);

#endif
