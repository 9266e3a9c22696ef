/* Recurrent layers (RNN tanh/ReLU, LSTM, GRU) over a whole sequence, fused.
 *
 * One layer is one op, so a sequence of 100 steps records one node instead of
 * a dozen per step. The forward keeps a workspace ws [T, B, W] per (step,
 * batch row): the activated gates and the states, everything backward through
 * time needs:
 *   RNN  (W = H):  h
 *   LSTM (W = 6H): i f g o | c | h
 *   GRU  (W = 5H): r z n | hn = W_hn h + b_hn | h
 * The input projection of all steps is one gemm written into ws; each step
 * adds (or, for GRU, computes beside) h_{t-1} W_hh^T with one more gemm.
 *
 * Batch rows never interact, so the batch is cut into one contiguous chunk
 * per thread and each thread runs all steps of its rows: no barrier per step,
 * and a row's result is the same whichever thread and chunk size computes it
 * (gemm rows are independent: BLAS splits rows and columns, never the summed
 * dim). The backward is the same: each thread runs its rows back in time,
 * writing the gate gradients dA [T, B, G H]; then the weight gradients are
 * one gemm each over all steps (summed in a fixed order) and the bias
 * gradients column sums in row order. Nothing depends on the thread count.
 *
 * The backward is computed by kernels, not by recorded ops, so under
 * create_graph it refuses (a silently detached gradient would be wrong). */
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

static const char *const NAMES[MIMIC_RNN_MODE_COUNT] = {"rnn_tanh", "rnn_relu", "lstm", "gru"};

typedef struct rgeom {
    int mode;
    int64_t S, B, In, H, G, W, hoff; /* steps, batch, input features, hidden */
} rgeom;

/* The operands of one layer in dtype ct, contiguous; biases are zeros when absent. */
typedef struct rops {
    mimic_tensor *x, *h0, *c0, *wih, *whh, *bih, *bhh;
} rops;

static void rops_free(rops *o)
{
    mimic_tensor *t[7] = {o->x, o->h0, o->c0, o->wih, o->whh, o->bih, o->bhh};
    for (int i = 0; i < 7; i++)
        mimic_tensor_free(t[i]);
    memset(o, 0, sizeof *o);
}

static int rops_make(rops *o, mimic_dtype ct, const rgeom *g, const mimic_tensor *const *in)
{
    bool fail = false;
    memset(o, 0, sizeof *o);
    o->x = mimic_as_contiguous_dtype(in[0], ct, &fail);
    o->h0 = mimic_as_contiguous_dtype(in[1], ct, &fail);
    o->c0 = mimic_as_contiguous_dtype(in[2], ct, &fail);
    o->wih = mimic_as_contiguous_dtype(in[3], ct, &fail);
    o->whh = mimic_as_contiguous_dtype(in[4], ct, &fail);
    o->bih = in[5] ? mimic_as_contiguous_dtype(in[5], ct, &fail) : mimic_zeros(1, (int64_t[]){g->G * g->H}, ct);
    o->bhh = in[6] ? mimic_as_contiguous_dtype(in[6], ct, &fail) : mimic_zeros(1, (int64_t[]){g->G * g->H}, ct);
    if (fail || !o->bih || !o->bhh) {
        rops_free(o);
        return mimic_errcode() ? mimic_errcode() : MIMIC_ENOMEM;
    }
    return MIMIC_OK;
}

#define PTR(t) ((t) ? mimic_data(t) : NULL)

/* --- typed kernels ---------------------------------------------------------------------- */

#define DEFINE_KERNELS(T, SFX, EXP, TANH)                                                                       \
    static inline T sig_##SFX(T a) { return (T)1 / ((T)1 + EXP(-a)); }                                        \
    /* Forward of batch rows [b0, b1) over all steps; ws holds the input                                      \
     * projection in its gate columns; sc is [B, 3H] scratch (GRU). */                                        \
    static void fwd_##SFX(const rgeom *g, T *ws, const T *h0, const T *c0, const T *whh, const T *bih,         \
                          const T *bhh, T *sc, int64_t b0, int64_t b1)                                         \
    {                                                                                                          \
        const int64_t H = g->H, W = g->W, B = g->B, GH = g->G * g->H, nb = b1 - b0;                            \
        const mimic_dtype ct = sizeof(T) == 4 ? MIMIC_F32 : MIMIC_F64;                                        \
        for (int64_t t = 0; t < g->S; t++) {                                                                   \
            T *row0 = ws + (t * B + b0) * W;                                                                   \
            const T *hp = NULL, *cp = NULL;                                                                    \
            int64_t ldh = H;                                                                                   \
            if (t > 0) {                                                                                       \
                hp = ws + ((t - 1) * B + b0) * W + g->hoff;                                                    \
                cp = g->mode == MIMIC_LSTM ? ws + ((t - 1) * B + b0) * W + 4 * H : NULL;                       \
                ldh = W;                                                                                       \
            } else {                                                                                           \
                hp = h0 ? h0 + b0 * H : NULL;                                                                  \
                cp = c0 ? c0 + b0 * H : NULL;                                                                  \
            }                                                                                                  \
            if (g->mode != MIMIC_GRU) {                                                                        \
                if (hp)                                                                                        \
                    mimic_gemm_rm(ct, false, true, nb, GH, H, hp, ldh, whh, H, true, row0, W);                          \
            } else {                                                                                           \
                if (hp)                                                                                        \
                    mimic_gemm_rm(ct, false, true, nb, GH, H, hp, ldh, whh, H, false, sc + b0 * GH, GH);                \
                else                                                                                           \
                    memset(sc + b0 * GH, 0, (size_t)(nb * GH) * sizeof(T));                                    \
            }                                                                                                  \
            for (int64_t b = 0; b < nb; b++) {                                                                 \
                T *r = row0 + b * W;                                                                           \
                const T *hpv = hp ? hp + b * ldh : NULL, *cpv = cp ? cp + b * (t > 0 ? W : H) : NULL;          \
                switch (g->mode) {                                                                             \
                case MIMIC_RNN_TANH:                                                                           \
                    for (int64_t j = 0; j < H; j++)                                                            \
                        r[j] = TANH(r[j] + bih[j] + bhh[j]);                                                   \
                    break;                                                                                     \
                case MIMIC_RNN_RELU:                                                                           \
                    for (int64_t j = 0; j < H; j++) {                                                          \
                        T a = r[j] + bih[j] + bhh[j];                                                          \
                        r[j] = a > 0 ? a : (T)0;                                                               \
                    }                                                                                          \
                    break;                                                                                     \
                case MIMIC_LSTM:                                                                               \
                    for (int64_t j = 0; j < H; j++) {                                                          \
                        T i = sig_##SFX(r[j] + bih[j] + bhh[j]);                                               \
                        T f = sig_##SFX(r[H + j] + bih[H + j] + bhh[H + j]);                                   \
                        T gg = TANH(r[2 * H + j] + bih[2 * H + j] + bhh[2 * H + j]);                           \
                        T o = sig_##SFX(r[3 * H + j] + bih[3 * H + j] + bhh[3 * H + j]);                       \
                        T c = f * (cpv ? cpv[j] : (T)0) + i * gg;                                              \
                        r[j] = i, r[H + j] = f, r[2 * H + j] = gg, r[3 * H + j] = o;                           \
                        r[4 * H + j] = c;                                                                      \
                        r[5 * H + j] = o * TANH(c);                                                            \
                    }                                                                                          \
                    break;                                                                                     \
                default: {                                                                                     \
                    const T *s = sc + (b0 + b) * GH;                                                           \
                    for (int64_t j = 0; j < H; j++) {                                                          \
                        T rr = sig_##SFX(r[j] + bih[j] + s[j] + bhh[j]);                                       \
                        T z = sig_##SFX(r[H + j] + bih[H + j] + s[H + j] + bhh[H + j]);                        \
                        T hn = s[2 * H + j] + bhh[2 * H + j];                                                  \
                        T n = TANH(r[2 * H + j] + bih[2 * H + j] + rr * hn);                                   \
                        T hv = hpv ? hpv[j] : (T)0;                                                            \
                        r[j] = rr, r[H + j] = z, r[2 * H + j] = n, r[3 * H + j] = hn;                          \
                        r[4 * H + j] = ((T)1 - z) * n + z * hv;                                                \
                    }                                                                                          \
                }                                                                                              \
                }                                                                                              \
            }                                                                                                  \
        }                                                                                                      \
    }                                                                                                          \
    /* Backward through time of batch rows [b0, b1): gy is the output gradient                                 \
     * (h: [T, B, H]; LSTM then c: [T, B, H]); writes the gate gradients dA                                    \
     * [T, B, GH] (GRU: input side dA, hidden side dAh) and leaves the                                         \
     * gradients of h0 and c0 in dh, dc [B, H]. */                                                             \
    static void bwd_##SFX(const rgeom *g, const T *ws, const T *h0, const T *c0, const T *whh, const T *gy,   \
                          T *dA, T *dAh, T *dh, T *dc, int64_t b0, int64_t b1)                                 \
    {                                                                                                          \
        const int64_t H = g->H, W = g->W, B = g->B, GH = g->G * g->H, nb = b1 - b0, TBH = g->S * B * H;       \
        const mimic_dtype ct = sizeof(T) == 4 ? MIMIC_F32 : MIMIC_F64;                                        \
        memset(dh + b0 * H, 0, (size_t)(nb * H) * sizeof(T));                                                  \
        if (dc)                                                                                                \
            memset(dc + b0 * H, 0, (size_t)(nb * H) * sizeof(T));                                              \
        for (int64_t t = g->S - 1; t >= 0; t--) {                                                              \
            for (int64_t b = 0; b < nb; b++) {                                                                 \
                int64_t row = t * B + b0 + b;                                                                  \
                const T *r = ws + row * W, *gh = gy + row * H;                                                 \
                const T *hpv = t > 0 ? ws + (row - B) * W + g->hoff : h0 ? h0 + (b0 + b) * H : NULL;          \
                const T *cpv = g->mode != MIMIC_LSTM ? NULL : t > 0 ? ws + (row - B) * W + 4 * H              \
                               : c0                       ? c0 + (b0 + b) * H                                    \
                                                          : NULL;                                                \
                T *a = dA + row * GH, *dhb = dh + (b0 + b) * H;                                                \
                switch (g->mode) {                                                                             \
                case MIMIC_RNN_TANH:                                                                           \
                    for (int64_t j = 0; j < H; j++)                                                            \
                        a[j] = (dhb[j] + gh[j]) * ((T)1 - r[j] * r[j]);                                        \
                    break;                                                                                     \
                case MIMIC_RNN_RELU:                                                                           \
                    for (int64_t j = 0; j < H; j++)                                                            \
                        a[j] = r[j] > 0 ? dhb[j] + gh[j] : (T)0;                                               \
                    break;                                                                                     \
                case MIMIC_LSTM: {                                                                             \
                    T *dcb = dc + (b0 + b) * H;                                                                \
                    const T *gc = gy + TBH + row * H;                                                          \
                    for (int64_t j = 0; j < H; j++) {                                                          \
                        T i = r[j], f = r[H + j], gg = r[2 * H + j], o = r[3 * H + j];                         \
                        T tc = TANH(r[4 * H + j]), cp = cpv ? cpv[j] : (T)0;                                   \
                        T dhv = dhb[j] + gh[j];                                                                \
                        T dcv = dcb[j] + gc[j] + dhv * o * ((T)1 - tc * tc);                                   \
                        a[j] = dcv * gg * i * ((T)1 - i);                                                      \
                        a[H + j] = dcv * cp * f * ((T)1 - f);                                                  \
                        a[2 * H + j] = dcv * i * ((T)1 - gg * gg);                                             \
                        a[3 * H + j] = dhv * tc * o * ((T)1 - o);                                              \
                        dcb[j] = dcv * f;                                                                      \
                    }                                                                                          \
                    break;                                                                                     \
                }                                                                                              \
                default: {                                                                                     \
                    T *ah = dAh + row * GH;                                                                    \
                    for (int64_t j = 0; j < H; j++) {                                                          \
                        T rr = r[j], z = r[H + j], n = r[2 * H + j], hn = r[3 * H + j];                        \
                        T hv = hpv ? hpv[j] : (T)0;                                                            \
                        T dhv = dhb[j] + gh[j];                                                                \
                        T dan = dhv * ((T)1 - z) * ((T)1 - n * n);                                             \
                        T daz = dhv * (hv - n) * z * ((T)1 - z);                                               \
                        T dar = dan * hn * rr * ((T)1 - rr);                                                   \
                        a[j] = ah[j] = dar;                                                                    \
                        a[H + j] = ah[H + j] = daz;                                                            \
                        a[2 * H + j] = dan;                                                                    \
                        ah[2 * H + j] = dan * rr;                                                              \
                        dhb[j] = dhv * z;                                                                      \
                    }                                                                                          \
                }                                                                                              \
                }                                                                                              \
            }                                                                                                  \
            /* dh_{t-1} (+)= dA_t W_hh */                                                                      \
            const T *src = (g->mode == MIMIC_GRU ? dAh : dA) + (t * B + b0) * GH;                              \
            mimic_gemm_rm(ct, false, false, nb, H, GH, src, GH, whh, H, g->mode == MIMIC_GRU, dh + b0 * H, H);          \
        }                                                                                                      \
    }                                                                                                          \
    /* out[c] = sum over rows of a[row][c] (n rows, m columns), columns [c0, c1), rows in order. */            \
    static void colsum_##SFX(const T *a, int64_t n, int64_t m, T *out, int64_t c0, int64_t c1)                \
    {                                                                                                          \
        for (int64_t c = c0; c < c1; c++)                                                                      \
            out[c] = 0;                                                                                        \
        for (int64_t i = 0; i < n; i++)                                                                        \
            for (int64_t c = c0; c < c1; c++)                                                                  \
                out[c] += a[i * m + c];                                                                        \
    }

DEFINE_KERNELS(float, f32, expf, tanhf)
DEFINE_KERNELS(double, f64, exp, tanh)

/* Threads for B batch rows of H units: one per ~16k elements of a step's
 * gates (the fork is once per layer, not per step). */
static int nthreads(const rgeom *g)
{
    int nt = mimic_get_num_threads();
    int64_t work = g->B * g->G * g->H * g->S;
    if (nt > g->B)
        nt = (int)g->B;
    if (work < (1 << 16))
        nt = 1;
    return nt < 1 ? 1 : nt;
}

static int thread_id(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* --- shapes ------------------------------------------------------------------------------- */

static int check2(const char *fn, const char *what, const mimic_tensor *t, int64_t d0, int64_t d1, const char *hint)
{
    int rc = mimic_check_float(fn, t);
    if (rc)
        return rc;
    if (t->ndim != 2 || t->shape[0] != d0 || t->shape[1] != d1)
        return mimic_error(MIMIC_ESHAPE, "%s: %s of shape %s must be [%lld, %lld] (%s)", fn, what, SHAPE_STR(t),
                           (long long)d0, (long long)d1, hint);
    return MIMIC_OK;
}

static int geom_of(const char *fn, int mode, const mimic_tensor *const *in, rgeom *g)
{
    const mimic_tensor *x = in[0], *wih = in[3], *whh = in[4];
    memset(g, 0, sizeof *g);
    if (mode < 0 || mode >= MIMIC_RNN_MODE_COUNT)
        return mimic_error(MIMIC_EARG, "rnn_layer: mode %d is not one of MIMIC_RNN_TANH, MIMIC_RNN_RELU, "
                           "MIMIC_LSTM, MIMIC_GRU", mode);
    if (!x || !wih || !whh)
        return mimic_error(MIMIC_EARG, "%s: input, w_ih and w_hh are required (only h0, c0 and biases may be NULL)",
                           fn);
    int rc = mimic_check_float(fn, x);
    if (rc)
        return rc;
    if (x->ndim != 3)
        return mimic_error(MIMIC_ESHAPE, "%s: input of shape %s must be [T, B, features] (time first; transpose a "
                           "batch-first input)", fn, SHAPE_STR(x));
    g->mode = mode;
    g->G = mode == MIMIC_LSTM ? 4 : mode == MIMIC_GRU ? 3 : 1;
    g->S = x->shape[0], g->B = x->shape[1], g->In = x->shape[2];
    if (whh->ndim != 2)
        return mimic_error(MIMIC_ESHAPE, "%s: w_hh of shape %s must be [%lld hidden, hidden]", fn, SHAPE_STR(whh),
                           (long long)g->G);
    g->H = whh->shape[1];
    if (g->S < 1 || g->B < 1 || g->H < 1)
        return mimic_error(MIMIC_ESHAPE, "%s: input %s and w_hh %s need at least one step, one batch row and one "
                           "hidden unit", fn, SHAPE_STR(x), SHAPE_STR(whh));
    int64_t GH = g->G * g->H;
    if ((rc = check2(fn, "w_hh", whh, GH, g->H, "gates x hidden, PyTorch's weight_hh_l{k}")) ||
        (rc = check2(fn, "w_ih", wih, GH, g->In, "gates x hidden by input features, PyTorch's weight_ih_l{k}")))
        return rc;
    for (int k = 5; k < 7; k++)
        if (in[k]) {
            if ((rc = mimic_check_float(fn, in[k])))
                return rc;
            if (in[k]->ndim != 1 || in[k]->shape[0] != GH)
                return mimic_error(MIMIC_ESHAPE, "%s: %s of shape %s must be [%lld] (gates x hidden)", fn,
                                   k == 5 ? "b_ih" : "b_hh", SHAPE_STR(in[k]), (long long)GH);
        }
    if (in[1] && (rc = check2(fn, "h0", in[1], g->B, g->H, "batch x hidden")))
        return rc;
    if (in[2] && mode != MIMIC_LSTM)
        return mimic_error(MIMIC_EARG, "%s: a cell state c0 is for LSTM only; pass NULL", fn);
    if (in[2] && (rc = check2(fn, "c0", in[2], g->B, g->H, "batch x hidden")))
        return rc;
    g->W = mode == MIMIC_LSTM ? 6 * g->H : mode == MIMIC_GRU ? 5 * g->H : g->H;
    g->hoff = mode == MIMIC_LSTM ? 5 * g->H : mode == MIMIC_GRU ? 4 * g->H : 0;
    if (g->S * g->B > INT_MAX || g->W > INT_MAX || g->In > INT_MAX)
        return mimic_error(MIMIC_ESHAPE, "%s: %lld steps x %lld rows exceed BLAS's limit of %d rows; split the "
                           "sequence", fn, (long long)g->S, (long long)g->B, INT_MAX);
    return MIMIC_OK;
}

static mimic_dtype ct_of(const mimic_tensor *const *in)
{
    for (int i = 0; i < 7; i++)
        if (in[i] && in[i]->dtype == MIMIC_F64)
            return MIMIC_F64;
    return MIMIC_F32;
}

/* --- forward ----------------------------------------------------------------------------- */

/* The workspace [T, B, W] of a layer (new tensor, NULL on failure). */
static mimic_tensor *run_forward(const rgeom *g, mimic_dtype ct, const rops *o)
{
    mimic_tensor *ws = mimic_empty(3, (int64_t[]){g->S, g->B, g->W}, ct);
    mimic_tensor *sc = g->mode == MIMIC_GRU ? mimic_empty(2, (int64_t[]){g->B, 3 * g->H}, ct) : NULL;
    if (!ws || (g->mode == MIMIC_GRU && !sc)) {
        mimic_tensor_free(ws);
        mimic_tensor_free(sc);
        return NULL;
    }
    /* the input projection of every step: one gemm (threaded by BLAS) */
    mimic_gemm_rm(ct, false, true, g->S * g->B, g->G * g->H, g->In, mimic_data(o->x), g->In, mimic_data(o->wih), g->In, false,
         mimic_data(ws), g->W);
    int nt = nthreads(g);
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        if (nt > 1)
            mimic_blas_on_this_thread();
        int id = thread_id(), n = nt;
#ifdef _OPENMP
        n = omp_get_num_threads();
#endif
        int64_t b0 = g->B * id / n, b1 = g->B * (id + 1) / n;
        if (ct == MIMIC_F32)
            fwd_f32(g, mimic_data(ws), PTR(o->h0), PTR(o->c0), mimic_data(o->whh), mimic_data(o->bih),
                    mimic_data(o->bhh), PTR(sc), b0, b1);
        else
            fwd_f64(g, mimic_data(ws), PTR(o->h0), PTR(o->c0), mimic_data(o->whh), mimic_data(o->bih),
                    mimic_data(o->bhh), PTR(sc), b0, b1);
    }
    mimic_tensor_free(sc);
    return ws;
}

/* The layer's result from the workspace: h (and c) of every step. */
static mimic_tensor *extract(const rgeom *g, const mimic_tensor *ws)
{
    bool lstm = g->mode == MIMIC_LSTM;
    int64_t shape[4] = {2, g->S, g->B, g->H};
    mimic_tensor *out = lstm ? mimic_empty(4, shape, ws->dtype) : mimic_empty(3, shape + 1, ws->dtype);
    if (!out)
        return NULL;
    size_t es = ws->dtype == MIMIC_F32 ? 4 : 8;
    const char *src = mimic_data(ws);
    char *dst = mimic_data(out);
    int64_t rows = g->S * g->B;
    for (int k = 0; k < (lstm ? 2 : 1); k++) {
        int64_t off = lstm ? (k ? 4 * g->H : 5 * g->H) : g->hoff;
        char *d = dst + (size_t)(k * rows * g->H) * es;
        for (int64_t r = 0; r < rows; r++)
            memcpy(d + (size_t)(r * g->H) * es, src + (size_t)(r * g->W + off) * es, (size_t)g->H * es);
    }
    return out;
}

static int rnn_backward(mimic_node *n, const mimic_tensor *g, mimic_tensor **gin);

mimic_tensor *mimic_rnn_layer(mimic_rnn_mode mode, const mimic_tensor *x, const mimic_tensor *h0,
                              const mimic_tensor *c0, const mimic_tensor *w_ih, const mimic_tensor *w_hh,
                              const mimic_tensor *b_ih, const mimic_tensor *b_hh)
{
    const mimic_tensor *in[7] = {x, h0, c0, w_ih, w_hh, b_ih, b_hh};
    const char *fn = mode >= 0 && mode < MIMIC_RNN_MODE_COUNT ? NAMES[mode] : "rnn_layer";
    rgeom g;
    if (geom_of(fn, (int)mode, in, &g))
        return NULL;
    mimic_dtype ct = ct_of(in);
    bool prev = mimic_set_grad_enabled(false);
    rops o;
    mimic_tensor *ws = NULL, *out = NULL;
    if (rops_make(&o, ct, &g, in) == MIMIC_OK) {
        ws = run_forward(&g, ct, &o);
        out = ws ? extract(&g, ws) : NULL;
        rops_free(&o);
    }
    mimic_set_grad_enabled(prev);
    if (out && mimic_ag_wanted(7, in)) {
        mimic_node *n = mimic_ag_record(out, NAMES[mode], rnn_backward, 7, in);
        if (!n || mimic_ag_save(n, ws)) {
            mimic_tensor_free(out);
            out = NULL;
        } else {
            n->iarg[0] = mode;
        }
    }
    mimic_tensor_free(ws);
    return out;
}

/* --- backward through time -------------------------------------------------------------- */

/* r (consumed) as the dtype of the input it is the gradient of. */
static mimic_tensor *as_dtype_of(mimic_tensor *r, const mimic_tensor *like)
{
    if (!r || r->dtype == like->dtype)
        return r;
    mimic_tensor *c = mimic_to_dtype(r, like->dtype);
    mimic_tensor_free(r);
    return c;
}

static int rnn_backward(mimic_node *n, const mimic_tensor *gout, mimic_tensor **gin)
{
    int mode = (int)n->iarg[0];
    const char *fn = NAMES[mode];
    if (mimic_grad_enabled())
        return mimic_error(MIMIC_ESTATE, "%s: second derivatives through a recurrent layer are not supported; "
                           "call backward without create_graph", fn);
    const mimic_tensor *const *in = (const mimic_tensor *const *)n->in;
    rgeom g;
    int rc = geom_of(fn, mode, in, &g);
    if (rc)
        return rc;
    const mimic_tensor *ws = n->saved;
    mimic_dtype ct = ws->dtype;
    int64_t GH = g.G * g.H, rows = g.S * g.B;
    rops o;
    if ((rc = rops_make(&o, ct, &g, in)))
        return rc;
    bool fail = false;
    mimic_tensor *gy = mimic_as_contiguous_dtype(gout, ct, &fail);
    mimic_tensor *dA = mimic_empty(2, (int64_t[]){rows, GH}, ct);
    mimic_tensor *dAh = mode == MIMIC_GRU ? mimic_empty(2, (int64_t[]){rows, GH}, ct) : NULL;
    mimic_tensor *dh = mimic_empty(2, (int64_t[]){g.B, g.H}, ct);
    mimic_tensor *dc = mode == MIMIC_LSTM ? mimic_empty(2, (int64_t[]){g.B, g.H}, ct) : NULL;
    mimic_tensor *r[7] = {0};
    if (fail || !dA || !dh || (mode == MIMIC_GRU && !dAh) || (mode == MIMIC_LSTM && !dc)) {
        rc = mimic_errcode() ? mimic_errcode() : MIMIC_ENOMEM;
        goto done;
    }
    int nt = nthreads(&g);
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        if (nt > 1)
            mimic_blas_on_this_thread();
        int id = thread_id(), m = nt;
#ifdef _OPENMP
        m = omp_get_num_threads();
#endif
        int64_t b0 = g.B * id / m, b1 = g.B * (id + 1) / m;
        if (ct == MIMIC_F32)
            bwd_f32(&g, mimic_data(ws), PTR(o.h0), PTR(o.c0), mimic_data(o.whh), mimic_data(gy), mimic_data(dA),
                    PTR(dAh), mimic_data(dh), PTR(dc), b0, b1);
        else
            bwd_f64(&g, mimic_data(ws), PTR(o.h0), PTR(o.c0), mimic_data(o.whh), mimic_data(gy), mimic_data(dA),
                    PTR(dAh), mimic_data(dh), PTR(dc), b0, b1);
    }
    const mimic_tensor *ah = dAh ? dAh : dA; /* the hidden side's gate gradients */
    const char *wsd = mimic_data(ws);
    size_t es = ct == MIMIC_F32 ? 4 : 8;
    if (mimic_node_needs(n, 0) && (r[0] = mimic_empty(3, (int64_t[]){g.S, g.B, g.In}, ct)))
        mimic_gemm_rm(ct, false, false, rows, g.In, GH, mimic_data(dA), GH, mimic_data(o.wih), g.In, false, mimic_data(r[0]),
             g.In);
    if (mimic_node_needs(n, 1)) {
        r[1] = dh;
        dh = NULL;
    }
    if (mimic_node_needs(n, 2)) {
        r[2] = dc;
        dc = NULL;
    }
    if (mimic_node_needs(n, 3) && (r[3] = mimic_empty(2, (int64_t[]){GH, g.In}, ct)))
        mimic_gemm_rm(ct, true, false, GH, g.In, rows, mimic_data(dA), GH, mimic_data(o.x), g.In, false, mimic_data(r[3]), g.In);
    if (mimic_node_needs(n, 4) && (r[4] = mimic_empty(2, (int64_t[]){GH, g.H}, ct))) {
        /* sum over t >= 1 of dAh_t^T h_{t-1} (h in ws, row stride W), then step 0 with h0 */
        const char *a = (const char *)mimic_data(ah);
        mimic_gemm_rm(ct, true, false, GH, g.H, (g.S - 1) * g.B, a + (size_t)(g.B * GH) * es, GH, wsd + (size_t)g.hoff * es,
             g.W, false, mimic_data(r[4]), g.H);
        if (o.h0)
            mimic_gemm_rm(ct, true, false, GH, g.H, g.B, a, GH, mimic_data(o.h0), g.H, true, mimic_data(r[4]), g.H);
    }
    for (int k = 5; k < 7; k++)
        if (in[k] && mimic_node_needs(n, k) && (r[k] = mimic_empty(1, (int64_t[]){GH}, ct))) {
            const mimic_tensor *src = k == 5 ? dA : ah;
            if (ct == MIMIC_F32)
                colsum_f32(mimic_data(src), rows, GH, mimic_data(r[k]), 0, GH);
            else
                colsum_f64(mimic_data(src), rows, GH, mimic_data(r[k]), 0, GH);
        }
    for (int k = 0; k < 7; k++) {
        if (!in[k] || !mimic_node_needs(n, k))
            continue;
        if (!r[k] || !(r[k] = as_dtype_of(r[k], in[k]))) {
            rc = mimic_errcode() ? mimic_errcode() : MIMIC_ENOMEM;
            break;
        }
    }
    if (rc == MIMIC_OK)
        for (int k = 0; k < 7; k++) {
            gin[k] = r[k];
            r[k] = NULL;
        }
done:
    for (int k = 0; k < 7; k++)
        mimic_tensor_free(r[k]);
    mimic_tensor_free(gy);
    mimic_tensor_free(dA);
    mimic_tensor_free(dAh);
    mimic_tensor_free(dh);
    mimic_tensor_free(dc);
    rops_free(&o);
    return rc;
}

const mimic_opdef mimic_ops_rnn[] = {
    {"rnn_tanh", rnn_backward},
    {"rnn_relu", rnn_backward},
    {"lstm", rnn_backward},
    {"gru", rnn_backward},
    {NULL, NULL},
};
