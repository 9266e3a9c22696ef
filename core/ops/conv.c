/* Convolution, pooling and upsampling over 1, 2 or 3 spatial dims, channels
 * first.
 *
 * Every op works on a 3-D geometry: 1-D and 2-D inputs are 3-D ones with
 * leading spatial dims of size 1 (kernel 1, stride 1, no padding), so one set
 * of kernels serves all ranks.
 *
 * Convolution is im2col + gemm, by tiles of output rows: a tile's columns
 * [Cin K, tile] stay cache-sized whatever the batch or field size, and each
 * group's product with the weight is one gemm per tile, written straight
 * into the result (no copy of the output). Units of work (conv_run) run on
 * separate threads with single-threaded gemms, or, when there is only one
 * unit, one after another with threaded gemms (OpenBLAS splits rows and
 * columns of the result, never the summed dim). Three ops, each the adjoint
 * of another in one argument, so the family is closed under differentiation
 * (create_graph, any order):
 *   conv(x, w)            y = W cols(x)
 *   conv_transpose(u, w)  z = col2im(W^T u)      the gradient of conv in x
 *   conv_weight(x, u)     dW = u cols(x)^T       the gradient of conv in w
 * col2im adds into each input plane in a fixed order, and conv_weight sums
 * the batch in segments fixed by the shape: results never depend on the
 * number of threads, and no float is ever added atomically.
 *
 * Pooling runs one (sample, channel) plane per thread. Max pooling keeps the
 * flat position of each maximum; its gradient, max_pool_backward, adds g at
 * those positions, and differentiates into mimic_gather (core/ops/index.c).
 * avg_pool and avg_pool_backward are each other's adjoint, so they
 * differentiate into one another; so do upsample and upsample_backward
 * (separable nearest or linear taps, one plane per thread as well). */
#include "../autograd/expr.h"
#include "../base/internal.h"
#include "mimic/ops.h"

#include <limits.h>
#include <math.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define SHAPE_STR(t) mimic_shape_str((t)->ndim, (t)->shape, (char[96]){0}, 96)

/* Elements of one tile's columns (1 MiB of float32): cache-sized, yet wide
 * enough (thousands of columns) for an efficient gemm. */
#ifndef TILE_BUDGET
#define TILE_BUDGET ((int64_t)1 << 18)
#endif
/* The weight gradient sums the batch in at most this many segments, each
 * with its own buffer (at most ACC_BUDGET elements for all of them). */
#define MAX_SEGMENTS 8
#define ACC_BUDGET ((int64_t)1 << 22)
/* Node parameters are packed 21 bits each into iarg (graph.h has 10 slots). */
#define PACK_MAX ((int64_t)1 << 21)
/* The geometry of a convolution (or pooling) in conv's terms: x has Cin
 * channels and spatial sizes in[], y has Cout channels and out[]. */
typedef struct cgeom {
    int nsp;
    int64_t N, Cin, Cout, G;
    int64_t in[3], out[3], k[3], s[3], p[3], d[3];
    bool circ;
    int64_t Lin, Lout, K; /* products of in, out, k */
} cgeom;

/* --- argument checks ------------------------------------------------------------- */

static const char *conv_name(int nsp, bool transposed)
{
    static const char *const n[2][4] = {{"conv", "conv1d", "conv2d", "conv3d"},
                                        {"conv_transpose", "conv_transpose1d", "conv_transpose2d",
                                         "conv_transpose3d"}};
    return n[transposed][nsp >= 1 && nsp <= 3 ? nsp : 0];
}

static const char *const AXES[4][3] = {{"", "", ""}, {"L", "", ""}, {"H", "W", ""}, {"D", "H", "W"}};

/* Options with defaults applied, checked. */
static int conv_opts_norm(const char *fn, int nsp, const mimic_conv_opts *o, mimic_conv_opts *n)
{
    mimic_conv_opts z = {0};
    if (!o)
        o = &z;
    memset(n, 0, sizeof *n);
    for (int i = 0; i < nsp; i++) {
        n->stride[i] = o->stride[i] ? o->stride[i] : 1;
        n->dilation[i] = o->dilation[i] ? o->dilation[i] : 1;
        n->padding[i] = o->padding[i];
        if (n->stride[i] < 1 || n->stride[i] >= PACK_MAX)
            return mimic_error(MIMIC_EARG, "%s: stride %lld along %s must be between 1 and %lld", fn,
                               (long long)o->stride[i], AXES[nsp][i], (long long)PACK_MAX - 1);
        if (n->dilation[i] < 1 || n->dilation[i] >= PACK_MAX)
            return mimic_error(MIMIC_EARG, "%s: dilation %lld along %s must be between 1 and %lld", fn,
                               (long long)o->dilation[i], AXES[nsp][i], (long long)PACK_MAX - 1);
        if (n->padding[i] < 0 || n->padding[i] >= PACK_MAX)
            return mimic_error(MIMIC_EARG, "%s: padding %lld along %s is negative or too large; give a padding "
                               "between 0 and %lld", fn, (long long)o->padding[i], AXES[nsp][i],
                               (long long)PACK_MAX - 1);
    }
    n->groups = o->groups ? o->groups : 1;
    if (n->groups < 1 || n->groups >= PACK_MAX)
        return mimic_error(MIMIC_EARG, "%s: groups %lld must be >= 1", fn, (long long)o->groups);
    n->circular = o->circular;
    return MIMIC_OK;
}

/* x of nsp + 2 dims, float. */
static int check_input(const char *fn, const char *what, const mimic_tensor *x, int nsp)
{
    static const char *const lay[4] = {"", "[N, C, L]", "[N, C, H, W]", "[N, C, D, H, W]"};
    if (!x)
        return mimic_error(MIMIC_EARG, "%s: %s is NULL", fn, what);
    int rc = mimic_check_float(fn, x);
    if (rc)
        return rc;
    if (x->ndim != nsp + 2)
        return mimic_error(MIMIC_ESHAPE, "%s: %s of shape %s must have %d dims %s (a single sample needs a batch "
                           "dim of 1 in front)", fn, what, SHAPE_STR(x), nsp + 2, lay[nsp]);
    return MIMIC_OK;
}

/* Fills g's spatial fields (3-D, leading 1s) from conv's sizes and checks
 * that every kernel fits its padded input. in/out may be given (out < 0: computed). */
static int geom_spatial(const char *fn, cgeom *g, int nsp, const int64_t *in, const int64_t *k,
                        const mimic_conv_opts *o)
{
    g->nsp = nsp;
    g->Lin = g->Lout = g->K = 1;
    for (int a = 0; a < 3; a++) {
        int i = a - (3 - nsp);
        if (i < 0) {
            g->in[a] = g->out[a] = g->k[a] = g->s[a] = g->d[a] = 1;
            g->p[a] = 0;
            continue;
        }
        g->in[a] = in[i];
        g->k[a] = k[i];
        g->s[a] = o->stride[i];
        g->p[a] = o->padding[i];
        g->d[a] = o->dilation[i];
        int64_t span = g->d[a] * (g->k[a] - 1) + 1, padded = g->in[a] + 2 * g->p[a];
        if (g->k[a] < 1)
            return mimic_error(MIMIC_ESHAPE, "%s: kernel size %lld along %s must be >= 1", fn, (long long)k[i],
                               AXES[nsp][i]);
        if (g->circ && g->p[a] > g->in[a])
            return mimic_error(MIMIC_ESHAPE, "%s: circular padding %lld along %s exceeds the input size %lld; "
                               "give a padding of at most the input size", fn, (long long)g->p[a],
                               AXES[nsp][i], (long long)g->in[a]);
        if (span > padded)
            return mimic_error(MIMIC_ESHAPE, "%s: the kernel along %s (size %lld, dilation %lld: spans %lld) is "
                               "larger than the padded input (%lld + 2*%lld = %lld); use a smaller kernel or more "
                               "padding", fn, AXES[nsp][i], (long long)g->k[a], (long long)g->d[a],
                               (long long)span, (long long)g->in[a], (long long)g->p[a], (long long)padded);
        g->out[a] = (padded - span) / g->s[a] + 1;
        g->Lin *= g->in[a];
        g->Lout *= g->out[a];
        g->K *= g->k[a];
    }
    return MIMIC_OK;
}

/* BLAS takes int sizes: the workspace's rows and a tile's columns must fit. */
static int geom_blas_fits(const char *fn, const cgeom *g)
{
    if (g->Cin * g->K > INT_MAX || g->Lout > INT_MAX || g->Cout > INT_MAX)
        return mimic_error(MIMIC_ESHAPE, "%s: %lld channels x %lld kernel taps or %lld output positions exceed "
                           "BLAS's limit of %d", fn, (long long)g->Cin, (long long)g->K, (long long)g->Lout, INT_MAX);
    return MIMIC_OK;
}

static mimic_dtype ct_of(const mimic_tensor *a, const mimic_tensor *b, const mimic_tensor *c)
{
    return (a && a->dtype == MIMIC_F64) || (b && b->dtype == MIMIC_F64) || (c && c->dtype == MIMIC_F64)
               ? MIMIC_F64
               : MIMIC_F32;
}


/* --- typed kernels ------------------------------------------------------------------- */

/* Position along one axis of output o, tap j: the input index, or -1 for padding. */
static inline int64_t src_index(const cgeom *g, int a, int64_t o, int64_t j)
{
    int64_t i = o * g->s[a] - g->p[a] + j * g->d[a];
    if (i >= 0 && i < g->in[a])
        return i;
    if (!g->circ)
        return -1;
    i %= g->in[a];
    return i < 0 ? i + g->in[a] : i;
}

/* The first output along the last axis whose tap j is inside [0, in) and the
 * end of that range (zero padding only). */
static inline void valid_range(const cgeom *g, int64_t j, int64_t *lo, int64_t *hi)
{
    int64_t off = j * g->d[2] - g->p[2], s = g->s[2], n = g->in[2];
    int64_t a = off >= 0 ? 0 : (-off + s - 1) / s;
    int64_t b = n - 1 - off < 0 ? 0 : (n - 1 - off) / s + 1;
    if (b > g->out[2])
        b = g->out[2];
    if (a > b)
        a = b;
    *lo = a;
    *hi = b;
}

#define DEFINE_KERNELS(T, SFX)                                                                                  \
    /* The K rows of one input plane x for output rows [r0, r1) (a row: one                                   \
     * (o0, o1) pair, O2 positions) into col, row stride ldc. */                                             \
    static void im2col_##SFX(const T *x, T *col, int64_t ldc, const cgeom *g, int64_t r0, int64_t r1)      \
    {                                                                                                         \
        int64_t O1 = g->out[1], O2 = g->out[2];                                                               \
        for (int64_t k0 = 0; k0 < g->k[0]; k0++)                                                              \
            for (int64_t k1 = 0; k1 < g->k[1]; k1++)                                                          \
                for (int64_t k2 = 0; k2 < g->k[2]; k2++) {                                                    \
                    T *dst = col + ((k0 * g->k[1] + k1) * g->k[2] + k2) * ldc;                                \
                    int64_t lo = 0, hi = O2, s2 = g->s[2], base = k2 * g->d[2] - g->p[2];                     \
                    if (!g->circ)                                                                             \
                        valid_range(g, k2, &lo, &hi);                                                         \
                    for (int64_t r = r0; r < r1; r++) {                                                       \
                        T *d = dst + (r - r0) * O2;                                                           \
                        int64_t i0 = src_index(g, 0, r / O1, k0), i1 = src_index(g, 1, r % O1, k1);           \
                        if (i0 < 0 || i1 < 0) {                                                               \
                            memset(d, 0, (size_t)O2 * sizeof(T));                                             \
                            continue;                                                                         \
                        }                                                                                     \
                        const T *src = x + (i0 * g->in[1] + i1) * g->in[2];                                   \
                        if (g->circ) {                                                                        \
                            for (int64_t o2 = 0; o2 < O2; o2++)                                               \
                                d[o2] = src[src_index(g, 2, o2, k2)];                                         \
                            continue;                                                                         \
                        }                                                                                     \
                        for (int64_t o2 = 0; o2 < lo; o2++)                                                   \
                            d[o2] = 0;                                                                        \
                        if (s2 == 1)                                                                          \
                            memcpy(d + lo, src + lo + base, (size_t)(hi - lo) * sizeof(T));                   \
                        else                                                                                  \
                            for (int64_t o2 = lo; o2 < hi; o2++)                                              \
                                d[o2] = src[o2 * s2 + base];                                                  \
                        for (int64_t o2 = hi; o2 < O2; o2++)                                                  \
                            d[o2] = 0;                                                                        \
                    }                                                                                         \
                }                                                                                             \
    }                                                                                                         \
    /* Adds the K rows of col (output rows [r0, r1), row stride ldc) into input                               \
     * plane x, taps and positions in a fixed order. */                                                      \
    static void col2im_##SFX(const T *col, int64_t ldc, T *x, const cgeom *g, int64_t r0, int64_t r1)      \
    {                                                                                                         \
        int64_t O1 = g->out[1], O2 = g->out[2];                                                               \
        for (int64_t k0 = 0; k0 < g->k[0]; k0++)                                                              \
            for (int64_t k1 = 0; k1 < g->k[1]; k1++)                                                          \
                for (int64_t k2 = 0; k2 < g->k[2]; k2++) {                                                    \
                    const T *srcrow = col + ((k0 * g->k[1] + k1) * g->k[2] + k2) * ldc;                       \
                    int64_t lo = 0, hi = O2, s2 = g->s[2], base = k2 * g->d[2] - g->p[2];                     \
                    if (!g->circ)                                                                             \
                        valid_range(g, k2, &lo, &hi);                                                         \
                    for (int64_t r = r0; r < r1; r++) {                                                       \
                        int64_t i0 = src_index(g, 0, r / O1, k0), i1 = src_index(g, 1, r % O1, k1);           \
                        if (i0 < 0 || i1 < 0)                                                                 \
                            continue;                                                                         \
                        const T *s = srcrow + (r - r0) * O2;                                                  \
                        T *dst = x + (i0 * g->in[1] + i1) * g->in[2];                                         \
                        if (g->circ) {                                                                        \
                            for (int64_t o2 = 0; o2 < O2; o2++)                                               \
                                dst[src_index(g, 2, o2, k2)] += s[o2];                                        \
                            continue;                                                                         \
                        }                                                                                     \
                        if (s2 == 1)                                                                          \
                            for (int64_t o2 = lo; o2 < hi; o2++)                                              \
                                dst[o2 + base] += s[o2];                                                      \
                        else                                                                                  \
                            for (int64_t o2 = lo; o2 < hi; o2++)                                              \
                                dst[o2 * s2 + base] += s[o2];                                                 \
                    }                                                                                         \
                }                                                                                             \
    }                                                                                                         \
    /* dst[0..n) += b, or = b when set */                                                                     \
    static void add_bias_##SFX(T *dst, int64_t n, const T *b, bool set)                                       \
    {                                                                                                         \
        T v = b ? *b : (T)0;                                                                                  \
        if (set)                                                                                              \
            for (int64_t i = 0; i < n; i++)                                                                   \
                dst[i] = v;                                                                                   \
        else if (b)                                                                                           \
            for (int64_t i = 0; i < n; i++)                                                                   \
                dst[i] += v;                                                                                  \
    }                                                                                                         \
    static void accumulate_##SFX(T *dst, const T *src, int64_t n)                                             \
    {                                                                                                         \
        for (int64_t i = 0; i < n; i++)                                                                       \
            dst[i] += src[i];                                                                                 \
    }

DEFINE_KERNELS(float, f32)
DEFINE_KERNELS(double, f64)

static void im2col(mimic_dtype ct, const char *x, char *col, int64_t ldc, const cgeom *g, int64_t r0, int64_t r1)
{
    if (ct == MIMIC_F32)
        im2col_f32((const float *)x, (float *)col, ldc, g, r0, r1);
    else
        im2col_f64((const double *)x, (double *)col, ldc, g, r0, r1);
}
static void col2im(mimic_dtype ct, const char *col, int64_t ldc, char *x, const cgeom *g, int64_t r0, int64_t r1)
{
    if (ct == MIMIC_F32)
        col2im_f32((const float *)col, ldc, (float *)x, g, r0, r1);
    else
        col2im_f64((const double *)col, ldc, (double *)x, g, r0, r1);
}
static void add_bias(mimic_dtype ct, char *dst, int64_t n, const char *b, bool set)
{
    if (ct == MIMIC_F32)
        add_bias_f32((float *)dst, n, (const float *)b, set);
    else
        add_bias_f64((double *)dst, n, (const double *)b, set);
}
static void accumulate(mimic_dtype ct, char *dst, const char *src, int64_t n)
{
    if (ct == MIMIC_F32)
        accumulate_f32((float *)dst, (const float *)src, n);
    else
        accumulate_f64((double *)dst, (const double *)src, n);
}

static bool use_threads(int64_t work) { return mimic_get_num_threads() > 1 && work >= MIMIC_PARALLEL_MIN; }

static int thread_id(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* The three drivers. Operands are contiguous of dtype ct.
 *   OP_CONV:  x [N,Cin,Lin], w [Cout,Cin/G,K], bias [Cout] -> y [N,Cout,Lout]
 *   OP_CONVT: u [N,Cout,Lout], w, bias [Cin]              -> z [N,Cin,Lin]
 *   OP_CONVW: x [N,Cin,Lin], u [N,Cout,Lout]              -> dw [Cout,Cin/G,K]
 * Work goes by tiles of output rows (a row: O2 positions), so a tile's
 * columns [Cin K, rows O2] stay small (cache-sized), whatever the batch or
 * field size. The units of work run on separate threads, each gemm on its
 * own thread; a unit's result never depends on which thread runs it:
 *   conv:       (sample, tile): disjoint parts of y;
 *   transposed: a sample: its tiles add into z[n] one after another;
 *   weight:     a segment of consecutive samples, fixed by the shape, adds
 *               its tiles in order into its own buffer; the buffers are then
 *               summed in segment order.
 * Returns MIMIC_ENOMEM if the workspace cannot be allocated. */
enum { OP_CONV, OP_CONVT, OP_CONVW };

static int conv_run(int op, mimic_dtype ct, const cgeom *g, const char *a, const char *b, const char *bias, char *out)
{
    size_t es = mimic_dtype_size(ct);
    int64_t Cin = g->Cin, Cout = g->Cout, G = g->G, K = g->K, Lin = g->Lin, Lout = g->Lout;
    int64_t cig = Cin / G, cog = Cout / G, rows = Cin * K, O2 = g->out[2], O01 = g->out[0] * g->out[1];
    int64_t wsize = Cout * cig * K;
    if (op == OP_CONVW && g->N == 0) {
        memset(out, 0, (size_t)wsize * es);
        return MIMIC_OK;
    }
    if (g->N == 0)
        return MIMIC_OK;
    int64_t R = TILE_BUDGET / (rows * O2);
    R = R < 1 ? 1 : R > O01 ? O01 : R;
    int64_t ntile = (O01 + R - 1) / R, tcols = R * O2;
    /* weight: up to MAX_SEGMENTS segments, as many buffers as fit the budget */
    int64_t nseg = 1;
    if (op == OP_CONVW) {
        nseg = g->N < MAX_SEGMENTS ? g->N : MAX_SEGMENTS;
        int64_t fit = ACC_BUDGET / (wsize ? wsize : 1);
        nseg = nseg > fit + 1 ? fit + 1 : nseg;
        nseg = nseg < 1 ? 1 : nseg;
    }
    int64_t nwork = op == OP_CONV ? g->N * ntile : op == OP_CONVT ? g->N : nseg;
    int nthr = mimic_get_num_threads();
    bool par = nthr > 1 && nwork > 1 && use_threads(g->N * Cout * rows * Lout);
    int64_t nbuf = par ? (nwork < nthr ? nwork : nthr) : 1;
    char *cols = mimic_malloc((size_t)(nbuf * rows * tcols) * es);
    char *acc = nseg > 1 ? mimic_malloc((size_t)((nseg - 1) * wsize) * es) : NULL;
    if (!cols || (nseg > 1 && !acc)) {
        mimic_free(cols);
        mimic_free(acc);
        return mimic_errcode();
    }
    const char *w = b;
#pragma omp parallel for schedule(dynamic) num_threads((int)nbuf) if (par)
    for (int64_t unit = 0; unit < nwork; unit++) {
        if (par)
            mimic_blas_on_this_thread();
        char *col = cols + (size_t)((par ? thread_id() : 0) * rows * tcols) * es;
        if (op == OP_CONV) {
            int64_t n = unit / ntile, r0 = unit % ntile * R, r1 = r0 + R < O01 ? r0 + R : O01, nc = (r1 - r0) * O2;
            for (int64_t c = 0; c < Cin; c++)
                im2col(ct, a + (size_t)((n * Cin + c) * Lin) * es, col + (size_t)(c * K * nc) * es, nc, g, r0, r1);
            char *y = out + (size_t)(n * Cout * Lout + r0 * O2) * es;
            for (int64_t gi = 0; gi < G; gi++)
                mimic_gemm_rm(ct, false, false, cog, nc, cig * K, w + (size_t)(gi * cog * cig * K) * es, cig * K,
                     col + (size_t)(gi * cig * K * nc) * es, nc, false, y + (size_t)(gi * cog * Lout) * es, Lout);
            for (int64_t c = 0; bias && c < Cout; c++)
                add_bias(ct, y + (size_t)(c * Lout) * es, nc, bias + (size_t)c * es, false);
        } else if (op == OP_CONVT) {
            int64_t n = unit;
            char *z = out + (size_t)(n * Cin * Lin) * es;
            for (int64_t c = 0; c < Cin; c++)
                add_bias(ct, z + (size_t)(c * Lin) * es, Lin, bias ? bias + (size_t)c * es : NULL, true);
            for (int64_t r0 = 0; r0 < O01; r0 += R) {
                int64_t r1 = r0 + R < O01 ? r0 + R : O01, nc = (r1 - r0) * O2;
                const char *u = a + (size_t)(n * Cout * Lout + r0 * O2) * es;
                for (int64_t gi = 0; gi < G; gi++)
                    mimic_gemm_rm(ct, true, false, cig * K, nc, cog, w + (size_t)(gi * cog * cig * K) * es, cig * K,
                         u + (size_t)(gi * cog * Lout) * es, Lout, false, col + (size_t)(gi * cig * K * nc) * es, nc);
                for (int64_t c = 0; c < Cin; c++)
                    col2im(ct, col + (size_t)(c * K * nc) * es, nc, z + (size_t)(c * Lin) * es, g, r0, r1);
            }
        } else {
            int64_t s = unit, n0 = g->N * s / nseg, n1 = g->N * (s + 1) / nseg;
            char *dst = s == 0 ? out : acc + (size_t)((s - 1) * wsize) * es;
            bool first = true;
            for (int64_t n = n0; n < n1; n++)
                for (int64_t r0 = 0; r0 < O01; r0 += R) {
                    int64_t r1 = r0 + R < O01 ? r0 + R : O01, nc = (r1 - r0) * O2;
                    for (int64_t c = 0; c < Cin; c++)
                        im2col(ct, a + (size_t)((n * Cin + c) * Lin) * es, col + (size_t)(c * K * nc) * es, nc, g,
                               r0, r1);
                    const char *u = b + (size_t)(n * Cout * Lout + r0 * O2) * es;
                    for (int64_t gi = 0; gi < G; gi++)
                        mimic_gemm_rm(ct, false, true, cog, cig * K, nc, u + (size_t)(gi * cog * Lout) * es, Lout,
                             col + (size_t)(gi * cig * K * nc) * es, nc, !first,
                             dst + (size_t)(gi * cog * cig * K) * es, cig * K);
                    first = false;
                }
        }
    }
    for (int64_t s = 1; s < nseg; s++)
        accumulate(ct, out, acc + (size_t)((s - 1) * wsize) * es, wsize);
    mimic_free(cols);
    mimic_free(acc);
    return MIMIC_OK;
}

/* --- node parameters ------------------------------------------------------------------ */

static void pack_conv(mimic_node *n, int nsp, const mimic_conv_opts *o, const int64_t *size)
{
    n->iarg[0] = nsp;
    for (int i = 0; i < 3; i++)
        n->iarg[1 + i] = i < nsp ? o->stride[i] | o->padding[i] << 21 | o->dilation[i] << 42 : 0;
    n->iarg[4] = o->groups;
    n->iarg[5] = o->circular;
    for (int i = 0; i < 3; i++)
        n->iarg[6 + i] = size && i < nsp ? size[i] : 0;
}

static void unpack_conv(const mimic_node *n, int *nsp, mimic_conv_opts *o, int64_t *size)
{
    memset(o, 0, sizeof *o);
    *nsp = (int)n->iarg[0];
    for (int i = 0; i < 3; i++) {
        o->stride[i] = n->iarg[1 + i] & (PACK_MAX - 1);
        o->padding[i] = n->iarg[1 + i] >> 21 & (PACK_MAX - 1);
        o->dilation[i] = n->iarg[1 + i] >> 42 & (PACK_MAX - 1);
        size[i] = n->iarg[6 + i];
    }
    o->groups = n->iarg[4];
    o->circular = n->iarg[5] != 0;
}

static int conv_backward(mimic_node *n, const mimic_tensor *g, mimic_tensor **gin);
static int convT_backward(mimic_node *n, const mimic_tensor *g, mimic_tensor **gin);
static int convW_backward(mimic_node *n, const mimic_tensor *g, mimic_tensor **gin);

/* Attach a node to a fresh result (freed on failure). reads: bit i = the backward reads input i. */
static mimic_tensor *record(mimic_tensor *out, const char *name, mimic_backward_fn bw, int nin,
                            const mimic_tensor *const *in, uint32_t reads, int nsp, const mimic_conv_opts *o,
                            const int64_t *size)
{
    if (!out || !mimic_ag_wanted(nin, in))
        return out;
    mimic_node *n = mimic_ag_record(out, name, bw, nin, in);
    if (!n) {
        mimic_tensor_free(out);
        return NULL;
    }
    n->reads = reads;
    pack_conv(n, nsp, o, size);
    return out;
}

/* --- the three convolution ops --------------------------------------------------------- */

/* Shapes for conv: returns the geometry; o is normalised. */
static int conv_geom(const char *fn, const mimic_tensor *x, const mimic_tensor *w, int nsp, const mimic_conv_opts *o,
                     cgeom *g)
{
    memset(g, 0, sizeof *g);
    g->circ = o->circular;
    g->N = x->shape[0];
    g->Cin = x->shape[1];
    g->Cout = w->shape[0];
    g->G = o->groups;
    if (g->Cout % g->G)
        return mimic_error(MIMIC_ESHAPE, "%s: %lld output channels (weight %s) are not divisible by groups = %lld",
                           fn, (long long)g->Cout, SHAPE_STR(w), (long long)g->G);
    if (w->shape[1] * g->G != g->Cin)
        return mimic_error(MIMIC_ESHAPE, "%s: input %s has %lld channels but weight %s with groups = %lld expects "
                           "%lld (weight dim 2 is in_channels / groups)", fn, SHAPE_STR(x), (long long)g->Cin,
                           SHAPE_STR(w), (long long)g->G, (long long)(w->shape[1] * g->G));
    int rc = geom_spatial(fn, g, nsp, x->shape + 2, w->shape + 2, o);
    return rc ? rc : geom_blas_fits(fn, g);
}

static int check_bias(const char *fn, const mimic_tensor *bias, int64_t c)
{
    if (!bias)
        return MIMIC_OK;
    int rc = mimic_check_float(fn, bias);
    if (rc)
        return rc;
    if (bias->ndim != 1 || bias->shape[0] != c)
        return mimic_error(MIMIC_ESHAPE, "%s: bias of shape %s must be [%lld] (one per output channel)", fn,
                           SHAPE_STR(bias), (long long)c);
    return MIMIC_OK;
}

/* Runs op on contiguous ct copies of a, b, bias into a new tensor of shape (ndim, shape). */
static mimic_tensor *run_new(int op, const cgeom *g, const mimic_tensor *a, const mimic_tensor *b,
                             const mimic_tensor *bias, int ndim, const int64_t *shape)
{
    mimic_dtype ct = ct_of(a, b, bias);
    bool fail = false, prev = mimic_set_grad_enabled(false);
    mimic_tensor *ac = mimic_as_contiguous_dtype(a, ct, &fail), *bcv = mimic_as_contiguous_dtype(b, ct, &fail), *biasc = mimic_as_contiguous_dtype(bias, ct, &fail);
    mimic_tensor *out = fail ? NULL : mimic_empty(ndim, shape, ct);
    if (out && conv_run(op, ct, g, mimic_data(ac), mimic_data(bcv), biasc ? mimic_data(biasc) : NULL,
                        mimic_data(out))) {
        mimic_tensor_free(out);
        out = NULL;
    }
    mimic_tensor_free(ac);
    mimic_tensor_free(bcv);
    mimic_tensor_free(biasc);
    mimic_set_grad_enabled(prev);
    return out;
}

/* conv with normalised options. */
static mimic_tensor *conv_op(const mimic_tensor *x, const mimic_tensor *w, const mimic_tensor *bias, int nsp,
                             const mimic_conv_opts *o)
{
    const char *fn = conv_name(nsp, false);
    cgeom g;
    if (check_input(fn, "input", x, nsp) || check_input(fn, "weight", w, nsp) || conv_geom(fn, x, w, nsp, o, &g) ||
        check_bias(fn, bias, g.Cout))
        return NULL;
    int64_t shape[5] = {g.N, g.Cout};
    for (int i = 0; i < nsp; i++)
        shape[2 + i] = g.out[3 - nsp + i];
    mimic_tensor *out = run_new(OP_CONV, &g, x, w, bias, nsp + 2, shape);
    const mimic_tensor *in[3] = {x, w, bias};
    uint32_t reads = (mimic_requires_grad(x) ? 2u : 0u) | (mimic_requires_grad(w) ? 1u : 0u);
    return record(out, "conv", conv_backward, 3, in, reads, nsp, o, NULL);
}

/* conv_transpose with normalised options and the output's spatial sizes. */
static mimic_tensor *convT_op(const mimic_tensor *u, const mimic_tensor *w, const mimic_tensor *bias, int nsp,
                              const mimic_conv_opts *o, const int64_t *size)
{
    const char *fn = conv_name(nsp, true);
    cgeom g;
    if (check_input(fn, "input", u, nsp) || check_input(fn, "weight", w, nsp))
        return NULL;
    memset(&g, 0, sizeof g);
    g.circ = o->circular;
    g.N = u->shape[0];
    g.Cout = w->shape[0];
    g.G = o->groups;
    g.Cin = w->shape[1] * g.G;
    if (u->shape[1] != g.Cout) {
        mimic_error(MIMIC_ESHAPE, "%s: input %s has %lld channels but weight %s expects %lld (dim 1 of the weight)",
                    fn, SHAPE_STR(u), (long long)u->shape[1], SHAPE_STR(w), (long long)g.Cout);
        return NULL;
    }
    if (g.Cout % g.G) {
        mimic_error(MIMIC_ESHAPE, "%s: %lld input channels (weight %s) are not divisible by groups = %lld", fn,
                    (long long)g.Cout, SHAPE_STR(w), (long long)g.G);
        return NULL;
    }
    if (geom_spatial(fn, &g, nsp, size, w->shape + 2, o) || geom_blas_fits(fn, &g) || check_bias(fn, bias, g.Cin))
        return NULL;
    for (int i = 0; i < nsp; i++)
        if (g.out[3 - nsp + i] != u->shape[2 + i]) {
            mimic_error(MIMIC_ESHAPE, "%s: an output of size %lld along %s does not map back to the input's %lld; "
                        "output_padding must be smaller than stride or dilation", fn, (long long)size[i],
                        AXES[nsp][i], (long long)u->shape[2 + i]);
            return NULL;
        }
    int64_t shape[5] = {g.N, g.Cin};
    for (int i = 0; i < nsp; i++)
        shape[2 + i] = size[i];
    mimic_tensor *out = run_new(OP_CONVT, &g, u, w, bias, nsp + 2, shape);
    const mimic_tensor *in[3] = {u, w, bias};
    uint32_t reads = (mimic_requires_grad(u) ? 2u : 0u) | (mimic_requires_grad(w) ? 1u : 0u);
    return record(out, "conv_transpose", convT_backward, 3, in, reads, nsp, o, size);
}

/* conv_weight with normalised options and the kernel sizes. */
static mimic_tensor *convW_op(const mimic_tensor *x, const mimic_tensor *u, int nsp, const mimic_conv_opts *o,
                              const int64_t *ksize)
{
    const char *fn = "conv_weight";
    cgeom g;
    if (check_input(fn, "input", x, nsp) || check_input(fn, "output gradient", u, nsp))
        return NULL;
    memset(&g, 0, sizeof g);
    g.circ = o->circular;
    g.N = x->shape[0];
    g.Cin = x->shape[1];
    g.Cout = u->shape[1];
    g.G = o->groups;
    if (u->shape[0] != g.N || g.Cin % g.G || g.Cout % g.G) {
        mimic_error(MIMIC_ESHAPE, "%s: input %s and output gradient %s need the same batch size and channel counts "
                    "divisible by groups = %lld", fn, SHAPE_STR(x), SHAPE_STR(u), (long long)g.G);
        return NULL;
    }
    if (geom_spatial(fn, &g, nsp, x->shape + 2, ksize, o) || geom_blas_fits(fn, &g))
        return NULL;
    for (int i = 0; i < nsp; i++)
        if (g.out[3 - nsp + i] != u->shape[2 + i]) {
            mimic_error(MIMIC_ESHAPE, "%s: output gradient %s does not match the convolution of input %s (size %lld "
                        "along %s)", fn, SHAPE_STR(u), SHAPE_STR(x), (long long)g.out[3 - nsp + i], AXES[nsp][i]);
            return NULL;
        }
    int64_t shape[5] = {g.Cout, g.Cin / g.G};
    for (int i = 0; i < nsp; i++)
        shape[2 + i] = ksize[i];
    mimic_tensor *out = run_new(OP_CONVW, &g, x, u, NULL, nsp + 2, shape);
    const mimic_tensor *in[2] = {x, u};
    uint32_t reads = (mimic_requires_grad(x) ? 2u : 0u) | (mimic_requires_grad(u) ? 1u : 0u);
    return record(out, "conv_weight", convW_backward, 2, in, reads, nsp, o, ksize);
}

static int nsp_of_weight(const char *fn, const mimic_tensor *w)
{
    if (!w)
        return mimic_error(MIMIC_EARG, "%s: weight is NULL", fn);
    if (w->ndim < 3 || w->ndim > 5)
        return mimic_error(MIMIC_ESHAPE, "%s: weight of shape %s must be [out, in/groups, k...] with 1 to 3 kernel "
                           "dims (3 to 5 dims)", fn, SHAPE_STR(w));
    return w->ndim - 2;
}

mimic_tensor *mimic_conv(const mimic_tensor *x, const mimic_tensor *w, const mimic_tensor *bias,
                         const mimic_conv_opts *o)
{
    int nsp = nsp_of_weight("conv", w);
    mimic_conv_opts no;
    if (nsp < 0 || conv_opts_norm(conv_name(nsp, false), nsp, o, &no))
        return NULL;
    return conv_op(x, w, bias, nsp, &no);
}

mimic_tensor *mimic_conv_transpose(const mimic_tensor *x, const mimic_tensor *w, const mimic_tensor *bias,
                                   const mimic_conv_opts *o, const int64_t *output_padding)
{
    int nsp = nsp_of_weight("conv_transpose", w);
    mimic_conv_opts no;
    const char *fn = conv_name(nsp, true);
    if (nsp < 0 || conv_opts_norm(fn, nsp, o, &no) || check_input(fn, "input", x, nsp))
        return NULL;
    int64_t size[3];
    for (int i = 0; i < nsp; i++) {
        int64_t op = output_padding ? output_padding[i] : 0;
        if (op < 0 || (op >= no.stride[i] && op >= no.dilation[i])) {
            mimic_error(MIMIC_EARG, "%s: output_padding %lld along %s must be >= 0 and smaller than stride (%lld) "
                        "or dilation (%lld)", fn, (long long)op, AXES[nsp][i], (long long)no.stride[i],
                        (long long)no.dilation[i]);
            return NULL;
        }
        size[i] = (x->shape[2 + i] - 1) * no.stride[i] - 2 * no.padding[i] + no.dilation[i] * (w->shape[2 + i] - 1) +
                  1 + op;
        if (size[i] < 1) {
            mimic_error(MIMIC_ESHAPE, "%s: input %s gives an empty output along %s (padding %lld too large)", fn,
                        SHAPE_STR(x), AXES[nsp][i], (long long)no.padding[i]);
            return NULL;
        }
    }
    return convT_op(x, w, bias, nsp, &no, size);
}

mimic_tensor *mimic_conv_weight(const mimic_tensor *x, const mimic_tensor *gy, const int64_t *ksize,
                                const mimic_conv_opts *o)
{
    if (!x || !ksize) {
        mimic_error(MIMIC_EARG, "conv_weight: input or kernel size is NULL");
        return NULL;
    }
    int nsp = x->ndim - 2;
    mimic_conv_opts no;
    if (nsp < 1 || nsp > 3) {
        mimic_error(MIMIC_ESHAPE, "conv_weight: input of shape %s must have 3 to 5 dims", SHAPE_STR(x));
        return NULL;
    }
    if (conv_opts_norm("conv_weight", nsp, o, &no))
        return NULL;
    return convW_op(x, gy, nsp, &no, ksize);
}

/* --- convolution gradients ------------------------------------------------------------- */

/* The bias gradient: g summed over every dim but the channels. */
static mimic_tensor *bias_grad(const mimic_tensor *g)
{
    int64_t one[5] = {1, g->shape[1], 1, 1, 1};
    mimic_tensor *s = mimic_sum_to(g, g->ndim, one);
    mimic_tensor *r = s ? mimic_reshape(s, 1, one + 1) : NULL;
    mimic_tensor_free(s);
    return r;
}

static int conv_backward(mimic_node *n, const mimic_tensor *g, mimic_tensor **gin)
{
    int nsp;
    mimic_conv_opts o;
    int64_t size[3];
    unpack_conv(n, &nsp, &o, size);
    const mimic_tensor *x = n->in[0], *w = n->in[1];
    int rc = MIMIC_OK;
    if (mimic_node_needs(n, 0))
        rc = E_set(gin, 0, convT_op(g, w, NULL, nsp, &o, x->shape + 2));
    if (rc == MIMIC_OK && mimic_node_needs(n, 1))
        rc = E_set(gin, 1, convW_op(x, g, nsp, &o, w->shape + 2));
    if (rc == MIMIC_OK && n->in[2] && mimic_node_needs(n, 2))
        rc = E_set(gin, 2, bias_grad(g));
    return rc;
}

/* z = convT(u, w): <z, h> = <u, conv(h, w)>, so gu = conv(g, w) and gw = conv_weight(g, u). */
static int convT_backward(mimic_node *n, const mimic_tensor *g, mimic_tensor **gin)
{
    int nsp;
    mimic_conv_opts o;
    int64_t size[3];
    unpack_conv(n, &nsp, &o, size);
    const mimic_tensor *u = n->in[0], *w = n->in[1];
    int rc = MIMIC_OK;
    if (mimic_node_needs(n, 0))
        rc = E_set(gin, 0, conv_op(g, w, NULL, nsp, &o));
    if (rc == MIMIC_OK && mimic_node_needs(n, 1))
        rc = E_set(gin, 1, convW_op(g, u, nsp, &o, w->shape + 2));
    if (rc == MIMIC_OK && n->in[2] && mimic_node_needs(n, 2))
        rc = E_set(gin, 2, bias_grad(g));
    return rc;
}

/* v = conv_weight(x, u): <v, m> = <conv(x, m), u> = <x, convT(u, m)>. */
static int convW_backward(mimic_node *n, const mimic_tensor *g, mimic_tensor **gin)
{
    int nsp;
    mimic_conv_opts o;
    int64_t size[3];
    unpack_conv(n, &nsp, &o, size);
    const mimic_tensor *x = n->in[0], *u = n->in[1];
    int rc = MIMIC_OK;
    if (mimic_node_needs(n, 0))
        rc = E_set(gin, 0, convT_op(u, g, NULL, nsp, &o, x->shape + 2));
    if (rc == MIMIC_OK && mimic_node_needs(n, 1))
        rc = E_set(gin, 1, conv_op(x, g, NULL, nsp, &o));
    return rc;
}

/* --- pooling ------------------------------------------------------------------------------ */

static const char *pool_name(int kind, int nsp)
{
    static const char *const n[3][4] = {{"max_pool", "max_pool1d", "max_pool2d", "max_pool3d"},
                                        {"avg_pool", "avg_pool1d", "avg_pool2d", "avg_pool3d"},
                                        {"avg_pool_backward", "avg_pool1d_backward", "avg_pool2d_backward",
                                         "avg_pool3d_backward"}};
    return n[kind][nsp >= 1 && nsp <= 3 ? nsp : 0];
}

/* Pool options checked and normalised into conv terms (o) and a geometry over in[]. */
static int pool_geom(const char *fn, int nsp, const mimic_pool_opts *po, bool dilation_ok, int64_t N, int64_t C,
                     const int64_t *in, cgeom *g, mimic_conv_opts *o)
{
    if (!po)
        return mimic_error(MIMIC_EARG, "%s: options are NULL (the kernel size is required)", fn);
    memset(o, 0, sizeof *o);
    int64_t k[3];
    for (int i = 0; i < nsp; i++) {
        k[i] = po->kernel[i];
        if (k[i] < 1 || k[i] >= PACK_MAX)
            return mimic_error(MIMIC_EARG, "%s: kernel size %lld along %s must be between 1 and %lld", fn,
                               (long long)k[i], AXES[nsp][i], (long long)PACK_MAX - 1);
        o->stride[i] = po->stride[i] ? po->stride[i] : k[i];
        o->padding[i] = po->padding[i];
        o->dilation[i] = po->dilation[i] ? po->dilation[i] : 1;
        if (o->dilation[i] != 1 && !dilation_ok)
            return mimic_error(MIMIC_EARG, "%s: dilation is not supported (only max pooling dilates)", fn);
        if (o->padding[i] < 0 || 2 * o->padding[i] > k[i])
            return mimic_error(MIMIC_EARG, "%s: padding %lld along %s must be between 0 and half the kernel size "
                               "(%lld)", fn, (long long)o->padding[i], AXES[nsp][i], (long long)k[i] / 2);
    }
    mimic_conv_opts chk;
    int rc = conv_opts_norm(fn, nsp, o, &chk);
    if (rc)
        return rc;
    o->groups = 1;
    memset(g, 0, sizeof *g);
    g->N = N;
    g->Cin = g->Cout = C;
    g->G = 1;
    return geom_spatial(fn, g, nsp, in, k, o);
}

static void pack_pool(mimic_node *n, int nsp, const mimic_conv_opts *o, const int64_t *k, bool exclude,
                      const int64_t *in)
{
    n->iarg[0] = nsp;
    for (int i = 0; i < 3; i++) {
        n->iarg[1 + i] = i < nsp ? k[i] | o->stride[i] << 21 | o->padding[i] << 42 : 0;
        n->iarg[4 + i] = i < nsp ? in[i] : 0;
    }
    n->iarg[7] = exclude;
}

static void unpack_pool(const mimic_node *n, int *nsp, mimic_pool_opts *po, int64_t *in)
{
    memset(po, 0, sizeof *po);
    *nsp = (int)n->iarg[0];
    for (int i = 0; i < 3; i++) {
        po->kernel[i] = n->iarg[1 + i] & (PACK_MAX - 1);
        po->stride[i] = n->iarg[1 + i] >> 21 & (PACK_MAX - 1);
        po->padding[i] = n->iarg[1 + i] >> 42 & (PACK_MAX - 1);
        in[i] = n->iarg[4 + i];
    }
    po->exclude_pad = n->iarg[7] != 0;
}

/* The taps j of output o along axis a that land inside the input (zero
 * padding): [*j0, *j1), input index base + j d. */
static inline void tap_range(const cgeom *g, int a, int64_t o, int64_t *j0, int64_t *j1, int64_t *base)
{
    int64_t b = o * g->s[a] - g->p[a], d = g->d[a], last = g->in[a] - 1 - b;
    *base = b;
    *j0 = b >= 0 ? 0 : (-b + d - 1) / d;
    *j1 = last < 0 ? 0 : last / d + 1;
    if (*j1 > g->k[a])
        *j1 = g->k[a];
    if (*j0 > *j1)
        *j0 = *j1;
}

#define DEFINE_POOL(T, SFX)                                                                                     \
    /* One plane: y (and idx) over the window maxima; returns false if a window is all padding. */            \
    static bool maxpool_##SFX(const T *x, T *y, int64_t *idx, const cgeom *g)                                  \
    {                                                                                                         \
        bool ok = true;                                                                                       \
        int64_t q = 0, I1 = g->in[1], I2 = g->in[2], d0 = g->d[0], d1 = g->d[1], d2 = g->d[2];                \
        for (int64_t o0 = 0; o0 < g->out[0]; o0++) {                                                          \
            int64_t a0, e0, b0;                                                                               \
            tap_range(g, 0, o0, &a0, &e0, &b0);                                                               \
            for (int64_t o1 = 0; o1 < g->out[1]; o1++) {                                                      \
                int64_t a1, e1, b1;                                                                           \
                tap_range(g, 1, o1, &a1, &e1, &b1);                                                           \
                for (int64_t o2 = 0; o2 < g->out[2]; o2++, q++) {                                             \
                    int64_t a2, e2, b2;                                                                       \
                    tap_range(g, 2, o2, &a2, &e2, &b2);                                                       \
                    T best = 0;                                                                               \
                    int64_t at = -1;                                                                          \
                    for (int64_t j0 = a0; j0 < e0; j0++)                                                      \
                        for (int64_t j1 = a1; j1 < e1; j1++) {                                                \
                            int64_t row = ((b0 + j0 * d0) * I1 + b1 + j1 * d1) * I2 + b2;                     \
                            for (int64_t j2 = a2; j2 < e2; j2++) {                                            \
                                int64_t i = row + j2 * d2;                                                    \
                                T v = x[i];                                                                   \
                                if (at < 0 || v > best || (v != v && best == best)) {                         \
                                    best = v;                                                                 \
                                    at = i;                                                                   \
                                }                                                                             \
                            }                                                                                 \
                        }                                                                                     \
                    if (at < 0) {                                                                             \
                        ok = false;                                                                           \
                        at = 0;                                                                               \
                        best = (T)-INFINITY;                                                                  \
                    }                                                                                         \
                    y[q] = best;                                                                              \
                    idx[q] = at;                                                                              \
                }                                                                                             \
            }                                                                                                 \
        }                                                                                                     \
        return ok;                                                                                            \
    }                                                                                                         \
    /* One plane of avg_pool (adjoint = false: x -> y) or of its adjoint (y -> x, x zeroed first). */         \
    static void avgpool_##SFX(T *x, T *y, const cgeom *g, bool exclude, bool adjoint)                         \
    {                                                                                                         \
        if (adjoint)                                                                                          \
            memset(x, 0, (size_t)g->Lin * sizeof(T));                                                         \
        int64_t q = 0, I1 = g->in[1], I2 = g->in[2];                                                          \
        for (int64_t o0 = 0; o0 < g->out[0]; o0++) {                                                          \
            int64_t a0, e0, b0;                                                                               \
            tap_range(g, 0, o0, &a0, &e0, &b0);                                                               \
            for (int64_t o1 = 0; o1 < g->out[1]; o1++) {                                                      \
                int64_t a1, e1, b1;                                                                           \
                tap_range(g, 1, o1, &a1, &e1, &b1);                                                           \
                for (int64_t o2 = 0; o2 < g->out[2]; o2++, q++) {                                             \
                    int64_t a2, e2, b2;                                                                       \
                    tap_range(g, 2, o2, &a2, &e2, &b2);                                                       \
                    double div = exclude ? (double)((e0 - a0) * (e1 - a1) * (e2 - a2)) : (double)g->K;        \
                    T inv = (T)(1.0 / div), acc = 0, gv = adjoint ? y[q] * inv : 0;                           \
                    for (int64_t j0 = a0; j0 < e0; j0++)                                                      \
                        for (int64_t j1 = a1; j1 < e1; j1++) {                                                \
                            T *row = x + ((b0 + j0) * I1 + b1 + j1) * I2 + b2;                                \
                            if (adjoint)                                                                      \
                                for (int64_t j2 = a2; j2 < e2; j2++)                                          \
                                    row[j2] += gv;                                                            \
                            else                                                                              \
                                for (int64_t j2 = a2; j2 < e2; j2++)                                          \
                                    acc += row[j2];                                                           \
                        }                                                                                     \
                    if (!adjoint)                                                                             \
                        y[q] = acc * inv;                                                                     \
                }                                                                                             \
            }                                                                                                 \
        }                                                                                                     \
    }

DEFINE_POOL(float, f32)
DEFINE_POOL(double, f64)

static int maxpool_backward(mimic_node *n, const mimic_tensor *g, mimic_tensor **gin);
static int avgpool_backward_fn(mimic_node *n, const mimic_tensor *g, mimic_tensor **gin);
static int avgpool_adjoint_backward(mimic_node *n, const mimic_tensor *g, mimic_tensor **gin);

mimic_tensor *mimic_max_pool(const mimic_tensor *x, int nsp, const mimic_pool_opts *po, mimic_tensor **indices)
{
    const char *fn = pool_name(0, nsp);
    cgeom g;
    mimic_conv_opts o;
    if (indices)
        *indices = NULL;
    if (nsp < 1 || nsp > 3) {
        mimic_error(MIMIC_EARG, "max_pool: %d spatial dims; give 1, 2 or 3", nsp);
        return NULL;
    }
    if (check_input(fn, "input", x, nsp) || pool_geom(fn, nsp, po, true, x->shape[0], x->shape[1], x->shape + 2, &g,
                                                      &o))
        return NULL;
    int64_t shape[5] = {g.N, g.Cin};
    for (int i = 0; i < nsp; i++)
        shape[2 + i] = g.out[3 - nsp + i];
    mimic_dtype ct = x->dtype;
    bool fail = false, prev = mimic_set_grad_enabled(false);
    mimic_tensor *xc = mimic_as_contiguous_dtype(x, ct, &fail);
    mimic_tensor *y = fail ? NULL : mimic_empty(nsp + 2, shape, ct);
    mimic_tensor *idx = y ? mimic_empty(nsp + 2, shape, MIMIC_I64) : NULL;
    mimic_set_grad_enabled(prev);
    if (!idx) {
        mimic_tensor_free(xc);
        mimic_tensor_free(y);
        return NULL;
    }
    int64_t planes = g.N * g.Cin, bad = 0;
    size_t es = mimic_dtype_size(ct);
    const char *xd = mimic_data(xc);
    char *yd = mimic_data(y);
    int64_t *id = mimic_data(idx);
#pragma omp parallel for schedule(static) reduction(+ : bad) if (use_threads(planes * g.Lout * g.K))
    for (int64_t q = 0; q < planes; q++) {
        bool ok = ct == MIMIC_F32 ? maxpool_f32((const float *)(xd + (size_t)(q * g.Lin) * es),
                                                (float *)(yd + (size_t)(q * g.Lout) * es), id + q * g.Lout, &g)
                                  : maxpool_f64((const double *)(xd + (size_t)(q * g.Lin) * es),
                                                (double *)(yd + (size_t)(q * g.Lout) * es), id + q * g.Lout, &g);
        bad += !ok;
    }
    mimic_tensor_free(xc);
    if (bad) {
        mimic_tensor_free(y);
        mimic_tensor_free(idx);
        mimic_error(MIMIC_ESHAPE, "%s: a window of input %s covers only padding; reduce the dilation or padding", fn,
                    SHAPE_STR(x));
        return NULL;
    }
    const mimic_tensor *in[1] = {x};
    if (mimic_ag_wanted(1, in)) {
        mimic_node *n = mimic_ag_record(y, "max_pool", maxpool_backward, 1, in);
        if (!n || mimic_ag_save(n, idx)) {
            mimic_tensor_free(y);
            mimic_tensor_free(idx);
            return NULL;
        }
        n->reads = 0; /* only x's shape and the saved positions */
    }
    if (indices)
        *indices = idx;
    else
        mimic_tensor_free(idx);
    return y;
}

/* avg_pool (adjoint = false: a is x, result [N,C,out]) or its adjoint (a is g,
 * result in_shape); nsp is checked. */
static mimic_tensor *avg_common(const mimic_tensor *a, const int64_t *in_shape, int nsp, const mimic_pool_opts *po,
                                bool adjoint)
{
    const char *fn = pool_name(adjoint ? 2 : 1, nsp);
    cgeom g;
    mimic_conv_opts o;
    if (nsp < 1 || nsp > 3) {
        mimic_error(MIMIC_EARG, "%s: %d spatial dims; give 1, 2 or 3", fn, nsp);
        return NULL;
    }
    if (check_input(fn, adjoint ? "gradient" : "input", a, nsp))
        return NULL;
    if (adjoint && !in_shape) {
        mimic_error(MIMIC_EARG, "%s: the input shape is NULL", fn);
        return NULL;
    }
    const int64_t *xs = adjoint ? in_shape : a->shape;
    if (pool_geom(fn, nsp, po, false, xs[0], xs[1], xs + 2, &g, &o))
        return NULL;
    int64_t oshape[5] = {g.N, g.Cin};
    for (int i = 0; i < nsp; i++)
        oshape[2 + i] = g.out[3 - nsp + i];
    if (adjoint) {
        bool same = true;
        for (int d = 0; d < nsp + 2; d++)
            same = same && a->shape[d] == oshape[d];
        if (!same) {
            char s[96];
            mimic_error(MIMIC_ESHAPE, "%s: gradient %s does not have the pooled shape %s", fn, SHAPE_STR(a),
                        mimic_shape_str(nsp + 2, oshape, s, sizeof s));
            return NULL;
        }
    }
    mimic_dtype ct = a->dtype;
    bool fail = false, prev = mimic_set_grad_enabled(false);
    mimic_tensor *ac = mimic_as_contiguous_dtype(a, ct, &fail);
    mimic_tensor *r = fail ? NULL : mimic_empty(nsp + 2, adjoint ? in_shape : oshape, ct);
    mimic_set_grad_enabled(prev);
    if (!r) {
        mimic_tensor_free(ac);
        return NULL;
    }
    int64_t planes = g.N * g.Cin;
    size_t es = mimic_dtype_size(ct);
    char *ad = mimic_data(ac), *rd = mimic_data(r);
    bool ex = po->exclude_pad;
#pragma omp parallel for schedule(static) if (use_threads(planes * g.Lout * g.K))
    for (int64_t q = 0; q < planes; q++) {
        char *xp = adjoint ? rd + (size_t)(q * g.Lin) * es : ad + (size_t)(q * g.Lin) * es;
        char *yp = adjoint ? ad + (size_t)(q * g.Lout) * es : rd + (size_t)(q * g.Lout) * es;
        if (ct == MIMIC_F32)
            avgpool_f32((float *)xp, (float *)yp, &g, ex, adjoint);
        else
            avgpool_f64((double *)xp, (double *)yp, &g, ex, adjoint);
    }
    mimic_tensor_free(ac);
    const mimic_tensor *in[1] = {a};
    if (mimic_ag_wanted(1, in)) {
        mimic_node *n = mimic_ag_record(r, adjoint ? "avg_pool_backward" : "avg_pool",
                                        adjoint ? avgpool_adjoint_backward : avgpool_backward_fn, 1, in);
        if (!n) {
            mimic_tensor_free(r);
            return NULL;
        }
        n->reads = 0; /* linear */
        int64_t k[3];
        for (int i = 0; i < nsp; i++)
            k[i] = po->kernel[i];
        pack_pool(n, nsp, &o, k, ex, xs + 2);
    }
    return r;
}

mimic_tensor *mimic_avg_pool(const mimic_tensor *x, int nsp, const mimic_pool_opts *o)
{
    return avg_common(x, NULL, nsp, o, false);
}

mimic_tensor *mimic_avg_pool_backward(const mimic_tensor *g, const int64_t *in_shape, int nsp,
                                      const mimic_pool_opts *o)
{
    return avg_common(g, in_shape, nsp, o, true);
}

static int maxpool_backward(mimic_node *n, const mimic_tensor *g, mimic_tensor **gin)
{
    const mimic_tensor *x = n->in[0];
    return E_set(gin, 0, mimic_max_pool_backward(g, n->saved, x->shape, x->ndim - 2));
}

#define DEFINE_UNPOOL(T, SFX)                                                                                    \
    static void unpool_##SFX(T *x, int64_t lin, const T *g, const int64_t *idx, int64_t lout)                  \
    {                                                                                                          \
        memset(x, 0, (size_t)lin * sizeof(T));                                                                \
        for (int64_t q = 0; q < lout; q++)                                                                     \
            x[idx[q]] += g[q];                                                                                 \
    }
DEFINE_UNPOOL(float, f32)
DEFINE_UNPOOL(double, f64)

static int maxpool_adjoint_backward(mimic_node *n, const mimic_tensor *g, mimic_tensor **gin);

mimic_tensor *mimic_max_pool_backward(const mimic_tensor *g, const mimic_tensor *indices, const int64_t *in_shape,
                                      int nsp)
{
    const char *fn = "max_pool_backward";
    if (nsp < 1 || nsp > 3) {
        mimic_error(MIMIC_EARG, "%s: %d spatial dims; give 1, 2 or 3", fn, nsp);
        return NULL;
    }
    if (check_input(fn, "gradient", g, nsp))
        return NULL;
    if (!indices || !in_shape) {
        mimic_error(MIMIC_EARG, "%s: indices or input shape is NULL", fn);
        return NULL;
    }
    bool same = indices->dtype == MIMIC_I64 && indices->ndim == g->ndim;
    for (int d = 0; same && d < g->ndim; d++)
        same = indices->shape[d] == g->shape[d];
    if (!same) {
        mimic_error(MIMIC_ESHAPE, "%s: indices %s must be int64 of the gradient's shape %s", fn, SHAPE_STR(indices),
                    SHAPE_STR(g));
        return NULL;
    }
    int64_t lin = 1, lout = 1;
    for (int d = 0; d < nsp; d++) {
        if (in_shape[2 + d] < 1) {
            mimic_error(MIMIC_ESHAPE, "%s: input size %lld along spatial dim %d must be >= 1", fn,
                        (long long)in_shape[2 + d], d + 1);
            return NULL;
        }
        lin *= in_shape[2 + d];
        lout *= g->shape[2 + d];
    }
    if (in_shape[0] != g->shape[0] || in_shape[1] != g->shape[1]) {
        mimic_error(MIMIC_ESHAPE, "%s: gradient %s and input shape differ in batch or channels", fn, SHAPE_STR(g));
        return NULL;
    }
    mimic_dtype ct = g->dtype;
    bool fail = false, prev = mimic_set_grad_enabled(false);
    mimic_tensor *gc = mimic_as_contiguous_dtype(g, ct, &fail), *ic = fail ? NULL : mimic_contiguous((mimic_tensor *)indices);
    mimic_tensor *r = ic ? mimic_empty(nsp + 2, in_shape, ct) : NULL;
    mimic_set_grad_enabled(prev);
    int64_t planes = g->shape[0] * g->shape[1], bad = 0;
    const int64_t *id = ic ? mimic_data(ic) : NULL;
    for (int64_t i = 0; r && i < planes * lout; i++)
        bad += id[i] < 0 || id[i] >= lin;
    if (r && bad) {
        mimic_error(MIMIC_EARG, "%s: %lld indices are outside their plane of %lld elements", fn, (long long)bad,
                    (long long)lin);
        mimic_tensor_free(r);
        r = NULL;
    }
    if (r) {
        size_t es = mimic_dtype_size(ct);
        char *rd = mimic_data(r);
        const char *gd = mimic_data(gc);
#pragma omp parallel for schedule(static) if (use_threads(planes * (lin + lout)))
        for (int64_t q = 0; q < planes; q++) {
            if (ct == MIMIC_F32)
                unpool_f32((float *)(rd + (size_t)(q * lin) * es), lin, (const float *)(gd + (size_t)(q * lout) * es),
                           id + q * lout, lout);
            else
                unpool_f64((double *)(rd + (size_t)(q * lin) * es), lin,
                           (const double *)(gd + (size_t)(q * lout) * es), id + q * lout, lout);
        }
    }
    mimic_tensor_free(gc);
    const mimic_tensor *in[1] = {g};
    if (r && mimic_ag_wanted(1, in)) {
        mimic_node *n = mimic_ag_record(r, "max_pool_backward", maxpool_adjoint_backward, 1, in);
        if (!n || mimic_ag_save(n, ic)) {
            mimic_tensor_free(r);
            r = NULL;
        } else {
            n->reads = 0; /* linear in g */
        }
    }
    mimic_tensor_free(ic);
    return r;
}

/* The gradient of unpooling is gathering at the same positions (recorded
 * through mimic_gather, so the pair stays differentiable). */
static int maxpool_adjoint_backward(mimic_node *n, const mimic_tensor *gg, mimic_tensor **gin)
{
    const mimic_tensor *idx = n->saved;
    int64_t N = gg->shape[0], C = gg->shape[1], fl[3] = {N, C, -1};
    mimic_tensor *gf = N * C != 0 ? mimic_reshape((mimic_tensor *)gg, 3, fl) : NULL;
    mimic_tensor *ii = gf ? mimic_reshape((mimic_tensor *)idx, 3, fl) : NULL;
    mimic_tensor *r = ii ? mimic_gather(gf, 2, ii) : NULL;
    mimic_tensor *out = r ? mimic_reshape(r, idx->ndim, idx->shape) : N * C == 0 ? mimic_zeros(idx->ndim, idx->shape, gg->dtype) : NULL;
    mimic_tensor_free(gf);
    mimic_tensor_free(ii);
    mimic_tensor_free(r);
    return E_set(gin, 0, out);
}

static int avgpool_backward_fn(mimic_node *n, const mimic_tensor *g, mimic_tensor **gin)
{
    int nsp;
    mimic_pool_opts po;
    int64_t in[3];
    unpack_pool(n, &nsp, &po, in);
    const mimic_tensor *x = n->in[0];
    return E_set(gin, 0, mimic_avg_pool_backward(g, x->shape, nsp, &po));
}

static int avgpool_adjoint_backward(mimic_node *n, const mimic_tensor *g, mimic_tensor **gin)
{
    int nsp;
    mimic_pool_opts po;
    int64_t in[3];
    unpack_pool(n, &nsp, &po, in);
    return E_set(gin, 0, mimic_avg_pool(g, nsp, &po));
}

/* --- upsampling ------------------------------------------------------------------------- */

/* The taps of one output coordinate along one axis: up to 2 input indices and weights. */
typedef struct utap {
    int64_t i[2];
    double w[2];
} utap;

/* Taps of every output coordinate o < out from in, as PyTorch's nearest and
 * linear (align_corners or half-pixel) rules with scale in/out. */
static void up_taps(utap *t, int64_t in, int64_t out, mimic_upsample_mode mode, bool align)
{
    double scale = (double)in / (double)out;
    for (int64_t o = 0; o < out; o++) {
        if (mode == MIMIC_UPSAMPLE_NEAREST) {
            int64_t i = (int64_t)floor((double)o * scale);
            t[o] = (utap){{i < in ? i : in - 1, 0}, {1, 0}};
            continue;
        }
        double src = align ? (out > 1 ? (double)o * (double)(in - 1) / (double)(out - 1) : 0)
                           : ((double)o + 0.5) * scale - 0.5;
        if (src < 0)
            src = 0;
        int64_t i0 = (int64_t)src;
        if (i0 > in - 1)
            i0 = in - 1;
        int64_t i1 = i0 + 1 < in ? i0 + 1 : in - 1;
        double l = src - (double)i0;
        t[o] = (utap){{i0, i1}, {1 - l, l}};
    }
}

#define DEFINE_UPSAMPLE(T, SFX)                                                                                   \
    /* One plane: y from x (adjoint = false), or x (zeroed first) from y. */                                    \
    static void upsample_##SFX(T *x, T *y, const int64_t *in, const int64_t *out, utap *const *tp, int nt,        \
                               bool adjoint)                                                                    \
    {                                                                                                           \
        if (adjoint)                                                                                            \
            memset(x, 0, (size_t)(in[0] * in[1] * in[2]) * sizeof(T));                                          \
        int64_t q = 0;                                                                                          \
        for (int64_t o0 = 0; o0 < out[0]; o0++)                                                                 \
            for (int64_t o1 = 0; o1 < out[1]; o1++)                                                             \
                for (int64_t o2 = 0; o2 < out[2]; o2++, q++) {                                                  \
                    const utap *a = &tp[0][o0], *b = &tp[1][o1], *c = &tp[2][o2];                               \
                    double acc = 0, gv = adjoint ? (double)y[q] : 0;                                            \
                    for (int t0 = 0; t0 < nt; t0++)                                                             \
                        for (int t1 = 0; t1 < nt; t1++)                                                         \
                            for (int t2 = 0; t2 < nt; t2++) {                                                   \
                                double wv = a->w[t0] * b->w[t1] * c->w[t2];                                     \
                                if (wv == 0)                                                                    \
                                    continue;                                                                   \
                                int64_t i = (a->i[t0] * in[1] + b->i[t1]) * in[2] + c->i[t2];                   \
                                if (adjoint)                                                                    \
                                    x[i] += (T)(wv * gv);                                                       \
                                else                                                                            \
                                    acc += wv * (double)x[i];                                                   \
                            }                                                                                   \
                    if (!adjoint)                                                                               \
                        y[q] = (T)acc;                                                                          \
                }                                                                                               \
    }
DEFINE_UPSAMPLE(float, f32)
DEFINE_UPSAMPLE(double, f64)

static int upsample_backward_fn(mimic_node *n, const mimic_tensor *g, mimic_tensor **gin);
static int upsample_adjoint_backward(mimic_node *n, const mimic_tensor *g, mimic_tensor **gin);

/* upsample (adjoint = false: a is x of in_shape, result out sizes) or its
 * adjoint (a is g, result in_shape). */
static mimic_tensor *up_common(const mimic_tensor *a, const int64_t *in_shape, const int64_t *size, int nsp,
                               mimic_upsample_mode mode, bool align, bool adjoint)
{
    const char *fn = adjoint ? "upsample_backward" : "upsample";
    if (nsp < 1 || nsp > 3) {
        mimic_error(MIMIC_EARG, "%s: %d spatial dims; give 1, 2 or 3", fn, nsp);
        return NULL;
    }
    if (check_input(fn, adjoint ? "gradient" : "input", a, nsp))
        return NULL;
    if (!size || (adjoint && !in_shape)) {
        mimic_error(MIMIC_EARG, "%s: the output size or input shape is NULL", fn);
        return NULL;
    }
    if (mode != MIMIC_UPSAMPLE_NEAREST && mode != MIMIC_UPSAMPLE_LINEAR) {
        mimic_error(MIMIC_EARG, "%s: unknown mode %d", fn, (int)mode);
        return NULL;
    }
    const int64_t *xs = adjoint ? in_shape : a->shape;
    int64_t in[3] = {1, 1, 1}, out[3] = {1, 1, 1}, oshape[5] = {xs[0], xs[1]};
    for (int i = 0; i < nsp; i++) {
        if (size[i] < 1 || size[i] >= PACK_MAX || xs[2 + i] < 1 || xs[2 + i] >= PACK_MAX) {
            mimic_error(MIMIC_EARG, "%s: sizes %lld -> %lld along spatial dim %d must be between 1 and %lld", fn,
                        (long long)xs[2 + i], (long long)size[i], i + 1, (long long)PACK_MAX - 1);
            return NULL;
        }
        in[3 - nsp + i] = xs[2 + i];
        out[3 - nsp + i] = size[i];
        oshape[2 + i] = size[i];
    }
    if (adjoint) {
        bool same = a->shape[0] == xs[0] && a->shape[1] == xs[1];
        for (int i = 0; i < nsp; i++)
            same = same && a->shape[2 + i] == size[i];
        if (!same) {
            char b[96];
            mimic_error(MIMIC_ESHAPE, "%s: gradient %s does not have the upsampled shape %s", fn, SHAPE_STR(a),
                        mimic_shape_str(nsp + 2, oshape, b, sizeof b));
            return NULL;
        }
    }
    utap *tp[3];
    tp[0] = mimic_malloc((size_t)(out[0] + out[1] + out[2]) * sizeof(utap));
    if (!tp[0])
        return NULL;
    tp[1] = tp[0] + out[0];
    tp[2] = tp[1] + out[1];
    for (int ax = 0; ax < 3; ax++)
        up_taps(tp[ax], in[ax], out[ax], ax < 3 - nsp ? MIMIC_UPSAMPLE_NEAREST : mode, align);
    int nt = mode == MIMIC_UPSAMPLE_NEAREST ? 1 : 2;
    mimic_dtype ct = a->dtype;
    bool fail = false, prev = mimic_set_grad_enabled(false);
    mimic_tensor *ac = mimic_as_contiguous_dtype(a, ct, &fail);
    mimic_tensor *r = fail ? NULL : mimic_empty(nsp + 2, adjoint ? in_shape : oshape, ct);
    mimic_set_grad_enabled(prev);
    if (r) {
        int64_t planes = xs[0] * xs[1], lin = in[0] * in[1] * in[2], lout = out[0] * out[1] * out[2];
        size_t es = mimic_dtype_size(ct);
        char *ad = mimic_data(ac), *rd = mimic_data(r);
#pragma omp parallel for schedule(static) if (use_threads(planes * lout * nt * nt * nt))
        for (int64_t q = 0; q < planes; q++) {
            char *xp = (adjoint ? rd : ad) + (size_t)(q * lin) * es, *yp = (adjoint ? ad : rd) + (size_t)(q * lout) * es;
            if (ct == MIMIC_F32)
                upsample_f32((float *)xp, (float *)yp, in, out, tp, nt, adjoint);
            else
                upsample_f64((double *)xp, (double *)yp, in, out, tp, nt, adjoint);
        }
    }
    mimic_free(tp[0]);
    mimic_tensor_free(ac);
    const mimic_tensor *inputs[1] = {a};
    if (r && mimic_ag_wanted(1, inputs)) {
        mimic_node *n = mimic_ag_record(r, adjoint ? "upsample_backward" : "upsample",
                                        adjoint ? upsample_adjoint_backward : upsample_backward_fn, 1, inputs);
        if (!n) {
            mimic_tensor_free(r);
            return NULL;
        }
        n->reads = 0; /* linear */
        n->iarg[0] = nsp;
        n->iarg[1] = mode;
        n->iarg[2] = align;
        for (int i = 0; i < nsp; i++) {
            n->iarg[3 + i] = size[i];
            n->iarg[6 + i] = xs[2 + i];
        }
    }
    return r;
}

mimic_tensor *mimic_upsample(const mimic_tensor *x, int nsp, const int64_t *size, mimic_upsample_mode mode,
                             bool align_corners)
{
    return up_common(x, NULL, size, nsp, mode, align_corners, false);
}

mimic_tensor *mimic_upsample_backward(const mimic_tensor *g, const int64_t *in_shape, int nsp,
                                      mimic_upsample_mode mode, bool align_corners)
{
    return up_common(g, in_shape, g ? g->shape + 2 : NULL, nsp, mode, align_corners, true);
}

static int upsample_backward_fn(mimic_node *n, const mimic_tensor *g, mimic_tensor **gin)
{
    const mimic_tensor *x = n->in[0];
    return E_set(gin, 0, mimic_upsample_backward(g, x->shape, (int)n->iarg[0], (mimic_upsample_mode)n->iarg[1],
                                                 n->iarg[2] != 0));
}

static int upsample_adjoint_backward(mimic_node *n, const mimic_tensor *g, mimic_tensor **gin)
{
    int nsp = (int)n->iarg[0];
    int64_t size[3] = {n->iarg[3], n->iarg[4], n->iarg[5]}; /* the upsampled sizes */
    return E_set(gin, 0, mimic_upsample(g, nsp, size, (mimic_upsample_mode)n->iarg[1], n->iarg[2] != 0));
}

const mimic_opdef mimic_ops_conv[] = {
    {"conv", conv_backward},
    {"conv_transpose", convT_backward},
    {"conv_weight", convW_backward},
    {"max_pool", maxpool_backward},
    {"max_pool_backward", maxpool_adjoint_backward},
    {"avg_pool", avgpool_backward_fn},
    {"avg_pool_backward", avgpool_adjoint_backward},
    {"upsample", upsample_backward_fn},
    {"upsample_backward", upsample_adjoint_backward},
    {NULL, NULL},
};
