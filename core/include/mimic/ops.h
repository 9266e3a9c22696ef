/* mimic — operations on tensors: element-wise math, reductions, linear
 * algebra, joining/indexing, sorting.
 *
 * Broadcasting follows NumPy: shapes are aligned at the last dim; a dim of
 * size 1 (or a missing leading dim) stretches to the other's size.
 * Types: float32 op float64 -> float64. Math ops accept float tensors only; an
 * int64 or bool operand gives MIMIC_EDTYPE with a hint to convert. A plain
 * number is passed as a 0-dim tensor (mimic_scalar) of the other operand's type.
 *
 * Every function comes in two forms:
 *   mimic_tensor *mimic_X(...)           allocates and returns the result (NULL on error);
 *   int mimic_X_out(mimic_tensor *out, ...)  writes into `out`, whose shape must be the
 *                                        result's shape (dtype is converted). out may be
 *                                        an operand for element-wise ops (in place).
 * Reductions are deterministic: the order of additions depends only on the
 * shape, never on the thread count.
 */
#ifndef MIMIC_OPS_H
#define MIMIC_OPS_H

#include "tensor.h"

/* --- element-wise ----------------------------------------------------------- */
/* The tables in core/ops/elementwise.c list these in this order; the _COUNT
 * entries let that file check at compile time that none is missing. */
typedef enum mimic_unop {
    MIMIC_NEG, MIMIC_ABS, MIMIC_EXP, MIMIC_LOG, MIMIC_SQRT, MIMIC_TANH, MIMIC_SIGMOID,
    MIMIC_RELU, MIMIC_SIN, MIMIC_COS, MIMIC_SQUARE, MIMIC_SIGN, MIMIC_UNOP_COUNT
} mimic_unop;
typedef enum mimic_binop {
    MIMIC_ADD, MIMIC_SUB, MIMIC_MUL, MIMIC_DIV, MIMIC_POW, MIMIC_MAXIMUM, MIMIC_MINIMUM,
    MIMIC_BINOP_COUNT
} mimic_binop;
typedef enum mimic_cmpop { /* results are bool tensors */
    MIMIC_EQ, MIMIC_NE, MIMIC_LT, MIMIC_LE, MIMIC_GT, MIMIC_GE, MIMIC_CMPOP_COUNT
} mimic_cmpop;

const char *mimic_unop_name(mimic_unop op);   /* "neg", "abs", ... */
const char *mimic_binop_name(mimic_binop op); /* "add", "sub", ... */
const char *mimic_cmpop_name(mimic_cmpop op); /* "eq", "ne", ... */

mimic_tensor *mimic_unary(mimic_unop op, const mimic_tensor *a);
int mimic_unary_out(mimic_tensor *out, mimic_unop op, const mimic_tensor *a);
mimic_tensor *mimic_binary(mimic_binop op, const mimic_tensor *a, const mimic_tensor *b);
int mimic_binary_out(mimic_tensor *out, mimic_binop op, const mimic_tensor *a, const mimic_tensor *b);
mimic_tensor *mimic_compare(mimic_cmpop op, const mimic_tensor *a, const mimic_tensor *b);
int mimic_compare_out(mimic_tensor *out, mimic_cmpop op, const mimic_tensor *a, const mimic_tensor *b);
/* min(max(a, lo), hi); pass -INFINITY / INFINITY for a one-sided clamp. */
mimic_tensor *mimic_clamp(const mimic_tensor *a, double lo, double hi);
int mimic_clamp_out(mimic_tensor *out, const mimic_tensor *a, double lo, double hi);
/* a > 0 ? a : slope * a (PyTorch's leaky_relu; gradient slope at 0). */
mimic_tensor *mimic_leaky_relu(const mimic_tensor *a, double slope);
/* cond ? a : b, all three broadcast together; cond is bool (or any type: != 0). */
mimic_tensor *mimic_where(const mimic_tensor *cond, const mimic_tensor *a, const mimic_tensor *b);
/* The broadcast shape of a and b into shape/ndim; MIMIC_ESHAPE naming `fn` if none. */
int mimic_broadcast_shape(const char *fn, const mimic_tensor *a, const mimic_tensor *b,
                          int *ndim, int64_t *shape);

/* --- reductions --------------------------------------------------------------- */
/* dim = MIMIC_ALL_DIMS reduces over all elements (result is 0-dim, or all-ones
 * shape with keepdim). VAR and STD use `param` as the correction (ddof: 0 is the
 * population variance, NumPy's default; 1 the sample variance). NORM uses
 * `param` as the order p (p = INFINITY: max |x|). */
typedef enum mimic_redop {
    MIMIC_SUM, MIMIC_MEAN, MIMIC_PROD, MIMIC_VAR, MIMIC_STD, MIMIC_NORM, MIMIC_MIN, MIMIC_MAX,
    MIMIC_REDOP_COUNT
} mimic_redop;
const char *mimic_redop_name(mimic_redop op);
mimic_tensor *mimic_reduce(mimic_redop op, const mimic_tensor *t, int dim, bool keepdim, double param);
int mimic_reduce_out(mimic_tensor *out, mimic_redop op, const mimic_tensor *t, int dim, bool keepdim,
                     double param); /* out must not overlap t */
/* Index (int64) of the first min/max along dim (all dims: of the flattened tensor). */
mimic_tensor *mimic_argmin(const mimic_tensor *t, int dim, bool keepdim);
mimic_tensor *mimic_argmax(const mimic_tensor *t, int dim, bool keepdim);
mimic_tensor *mimic_cumsum(const mimic_tensor *t, int dim);
/* Sum t down to `shape`, the inverse of broadcasting `shape` up to t's shape
 * (leading dims summed away, size-1 dims summed with keepdim). A new reference
 * to t itself if the shapes are equal. */
mimic_tensor *mimic_sum_to(const mimic_tensor *t, int ndim, const int64_t *shape);

/* --- linear algebra (sgemm/dgemm; transposed views are passed without copies) ---- */
/* NumPy matmul: 1-D operands are promoted and the added dim removed; leading
 * (batch) dims broadcast. */
mimic_tensor *mimic_matmul(const mimic_tensor *a, const mimic_tensor *b);
int mimic_matmul_out(mimic_tensor *out, const mimic_tensor *a, const mimic_tensor *b);
mimic_tensor *mimic_bmm(const mimic_tensor *a, const mimic_tensor *b); /* [B,n,k] x [B,k,m] */
mimic_tensor *mimic_dot(const mimic_tensor *a, const mimic_tensor *b);   /* 1-D . 1-D -> 0-dim */
mimic_tensor *mimic_outer(const mimic_tensor *a, const mimic_tensor *b); /* 1-D x 1-D -> 2-D */

/* --- joining, splitting, indexing ----------------------------------------------- */
mimic_tensor *mimic_cat(mimic_tensor *const *ts, int n, int dim);
mimic_tensor *mimic_stack(mimic_tensor *const *ts, int n, int dim);
/* Views of consecutive pieces of `size` along dim (the last may be shorter).
 * Returns an array of *n new references, allocated with mimic_malloc; free each
 * tensor and then the array with mimic_free. */
mimic_tensor **mimic_split(mimic_tensor *t, int64_t size, int dim, int *n);
/* out[i][j] = t[index[i][j]][j] for dim 0, etc.; index is int64 of t's rank. */
mimic_tensor *mimic_gather(const mimic_tensor *t, int dim, const mimic_tensor *index);
/* The entries of t at the 1-D int64 `index` along dim. */
mimic_tensor *mimic_index_select(const mimic_tensor *t, int dim, const mimic_tensor *index);
/* 1-D tensor of the elements where mask (broadcast to t) is true, row-major order. */
mimic_tensor *mimic_masked_select(const mimic_tensor *t, const mimic_tensor *mask);

/* The scatter forms. Each returns a new tensor (t is not modified); the
 * indexing ops above take their gradients through them, and they are
 * differentiable themselves (w.r.t. t and src). Additions into one element
 * happen in index order, so results never depend on the thread count.
 * float32 and float64 mix (the result is float64); index is int64. */
/* t + src added along dim at `index` (1-D): out[.., index[i], ..] += src[.., i, ..];
 * src has t's shape except index's length along dim (the reverse of index_select). */
mimic_tensor *mimic_index_add(const mimic_tensor *t, int dim, const mimic_tensor *index, const mimic_tensor *src);
/* t + src added at the gathered positions: out[index[i][j]][j] += src[i][j] for
 * dim 0, etc. (the reverse of gather); index has src's shape and t's rank, each
 * dim but dim no larger than t's. */
mimic_tensor *mimic_scatter_add(const mimic_tensor *t, int dim, const mimic_tensor *index, const mimic_tensor *src);
/* t with mimic_slice(t, dim, start, stop, step) replaced by src, which has that
 * slice's shape (the reverse of slice, narrow and, with a size-1 dim, select). */
mimic_tensor *mimic_slice_scatter(const mimic_tensor *t, const mimic_tensor *src, int dim, int64_t start,
                                  int64_t stop, int64_t step);
/* t with the positions where mask (broadcast to t) is true replaced by the
 * elements of src in row-major order; src (any shape) has exactly one element
 * per true position (the reverse of masked_select). */
mimic_tensor *mimic_masked_scatter(const mimic_tensor *t, const mimic_tensor *mask, const mimic_tensor *src);

/* --- sorting ------------------------------------------------------------------------ */
/* The sorted values are differentiable (each gradient goes back to the element's
 * original position); the int64 indices are not. */
/* Stable sort along dim; *indices (if not NULL) receives the int64 permutation. NaN ranks
 * above every number: last in ascending order (as NumPy), first in descending order. */
mimic_tensor *mimic_sort(const mimic_tensor *t, int dim, bool descending, mimic_tensor **indices);
/* The k largest (or smallest) along dim, sorted; *indices as for sort. */
mimic_tensor *mimic_topk(const mimic_tensor *t, int64_t k, int dim, bool largest, mimic_tensor **indices);

/* --- convolution and pooling (core/ops/conv.c) ------------------------------------ */
/* Channels first, as PyTorch: inputs are [N, C, L], [N, C, H, W] or
 * [N, C, D, H, W] (1, 2 or 3 spatial dims). Options are per spatial dim (only
 * the first 1, 2 or 3 entries are read); a zeroed struct is the default:
 * stride 0 means 1 (pooling: the kernel size), dilation 0 means 1, groups 0
 * means 1. With `circular` the input wraps around (a periodic domain) instead
 * of being padded with zeros; then padding must not exceed the input size.
 * Results are float64 when any operand is, else float32; they do not depend on
 * the thread count. Differentiable (any order) in every float input. */
typedef struct mimic_conv_opts {
    int64_t stride[3], padding[3], dilation[3];
    int64_t groups;
    bool circular;
} mimic_conv_opts;

/* Cross-correlation as PyTorch's conv1d/2d/3d: w is [Cout, Cin/groups, k...]
 * (its rank gives the number of spatial dims), bias NULL or [Cout]. Output
 * size per dim: (in + 2 pad - dil (k - 1) - 1) / stride + 1. */
mimic_tensor *mimic_conv(const mimic_tensor *x, const mimic_tensor *w, const mimic_tensor *bias,
                         const mimic_conv_opts *o);
/* The transposed convolution (the adjoint of mimic_conv in x, PyTorch's
 * conv_transpose): x is [N, Cin, ...], w is [Cin, Cout/groups, k...], bias
 * NULL or [Cout]; output size (in - 1) stride - 2 pad + dil (k - 1) + 1 +
 * output_padding, output_padding (NULL: zeros) smaller than stride or dilation. */
mimic_tensor *mimic_conv_transpose(const mimic_tensor *x, const mimic_tensor *w, const mimic_tensor *bias,
                                   const mimic_conv_opts *o, const int64_t *output_padding);
/* The gradient of mimic_conv w.r.t. its weight: x [N, Cin, ...] and the
 * output gradient gy [N, Cout, ...] give [Cout, Cin/groups, ksize...]. */
mimic_tensor *mimic_conv_weight(const mimic_tensor *x, const mimic_tensor *gy, const int64_t *ksize,
                                const mimic_conv_opts *o);

/* Pooling windows: kernel (required, >= 1), stride (0: the kernel), zero
 * padding (at most half the kernel, as PyTorch), dilation (max pool only).
 * Windows start inside the padded input (PyTorch's ceil_mode = false). */
typedef struct mimic_pool_opts {
    int64_t kernel[3], stride[3], padding[3], dilation[3];
    bool exclude_pad; /* avg: divide by the count of real elements (count_include_pad = false) */
} mimic_pool_opts;
/* Max over each window (NaN wins, as PyTorch); *indices (if not NULL) gets
 * the int64 0-based flat position of each maximum within its input plane.
 * The gradient goes to the first maximum of each window. */
mimic_tensor *mimic_max_pool(const mimic_tensor *x, int nsp, const mimic_pool_opts *o, mimic_tensor **indices);
/* The adjoint of mimic_max_pool (its gradient w.r.t. x): each element of g
 * added at its position in `indices` (as max_pool returns them) of a zeroed
 * tensor of in_shape (nsp + 2 dims). */
mimic_tensor *mimic_max_pool_backward(const mimic_tensor *g, const mimic_tensor *indices, const int64_t *in_shape,
                                      int nsp);
/* Mean over each window (padding counts as zeros unless exclude_pad). */
mimic_tensor *mimic_avg_pool(const mimic_tensor *x, int nsp, const mimic_pool_opts *o);
/* The adjoint of mimic_avg_pool (its gradient w.r.t. x): g has avg_pool's
 * output shape, in_shape (nsp + 2 dims) is x's shape. */
mimic_tensor *mimic_avg_pool_backward(const mimic_tensor *g, const int64_t *in_shape, int nsp,
                                      const mimic_pool_opts *o);

/* Upsampling to `size` (nsp sizes; any size, also smaller), PyTorch's rules
 * with the scale in/out per dim: nearest takes input floor(o in / out);
 * linear interpolates along each spatial dim (linear, bilinear, trilinear),
 * from half-pixel centres, or with align_corners from the corner pixels. */
typedef enum mimic_upsample_mode { MIMIC_UPSAMPLE_NEAREST, MIMIC_UPSAMPLE_LINEAR } mimic_upsample_mode;
mimic_tensor *mimic_upsample(const mimic_tensor *x, int nsp, const int64_t *size, mimic_upsample_mode mode,
                             bool align_corners);
/* The adjoint of mimic_upsample (its gradient w.r.t. x): g of the upsampled
 * shape back to in_shape (nsp + 2 dims). */
mimic_tensor *mimic_upsample_backward(const mimic_tensor *g, const int64_t *in_shape, int nsp,
                                      mimic_upsample_mode mode, bool align_corners);

/* --- recurrent layers (core/ops/rnn.c) -------------------------------------------- */
/* One layer of PyTorch's RNN (tanh or ReLU), LSTM or GRU over a whole
 * sequence, time first: x is [T, B, I] (batch-first callers pass a transposed
 * view). Weights in PyTorch's layout and gate order: w_ih [G H, I], w_hh
 * [G H, H], b_ih and b_hh NULL (no bias) or [G H], with G = 1 (RNN), 4 (LSTM:
 * i, f, g, o) or 3 (GRU: r, z, n). h0 and c0 (LSTM only) are NULL (zeros) or
 * [B, H]. Returns the hidden state of every step, [T, B, H]; an LSTM returns
 * [2, T, B, H], hidden then cell states (the last step of each is h_n, c_n).
 * The input projection of all steps is one gemm and each step one more;
 * batch rows run on separate threads, so results do not depend on the thread
 * count. Differentiable once in every float input (backward through time);
 * second derivatives (create_graph) are refused with MIMIC_ESTATE. */
typedef enum mimic_rnn_mode { MIMIC_RNN_TANH, MIMIC_RNN_RELU, MIMIC_LSTM, MIMIC_GRU, MIMIC_RNN_MODE_COUNT } mimic_rnn_mode;
mimic_tensor *mimic_rnn_layer(mimic_rnn_mode mode, const mimic_tensor *x, const mimic_tensor *h0,
                              const mimic_tensor *c0, const mimic_tensor *w_ih, const mimic_tensor *w_hh,
                              const mimic_tensor *b_ih, const mimic_tensor *b_hh);

#endif
