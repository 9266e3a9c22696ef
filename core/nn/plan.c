/* The execution plan: a model compiled into a flat list of steps over
 * preallocated buffers (see mimic/model.h for the contract).
 *
 * Planning turns records into steps that read a source slot and write a
 * destination slot: the caller's input (read-only), the caller's output, or
 * one of nbuf workspace buffers. Element-wise records (activations, layer
 * norm, batchnorm) run in place when their source is a writable buffer, and
 * an activation right after a dense/norm/residual step is fused into that
 * step's single pass, so a dense layer is one gemm plus one pass over its
 * output (which is still in cache: that pass costs little next to the gemm).
 * The value that leaves the model is written straight into the caller's
 * output rather than copied there at the end.
 *
 * Running: rows are cut into chunks of at most `chunk` rows; with several
 * chunks and threads, each thread takes whole chunks with its own buffer set
 * (a "slot") and single-threaded gemm calls (OpenBLAS's OpenMP build runs
 * single-threaded inside a parallel region). Small layers gain more from
 * this than from a threaded gemm per layer, whose fork/join per call costs
 * more than the layer itself. */
#include "base/internal.h"
#include "nn.h"

#include "mimic/base.h"

#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "tanh_vec.h"

/* One output coordinate of linear upsampling along one axis: two inputs, two weights. */
typedef struct uptap {
    int64_t i[2];
    double w[2];
} uptap;

#define T float
#define SFX(name) name##_f32
#define EXP expf
#define EXPM1 expm1f
#define LOG1P log1pf
#define TANH tanhf_vec
#define RTANH tanhf_vec
#define RSIG(a) (0.5f + 0.5f * tanhf_vec(0.5f * (a)))
#include "kernels.h"
#include "spatial_kernels.h"
#include "rnn_kernels.h"
#undef RTANH
#undef RSIG
#undef T
#undef SFX
#undef EXP
#undef EXPM1
#undef LOG1P
#undef TANH
#define T double
#define SFX(name) name##_f64
#define EXP exp
#define EXPM1 expm1
#define LOG1P log1p
#define TANH tanh
#define RTANH tanh
#define RSIG(a) (1.0 / (1.0 + exp(-(a))))
#include "kernels.h"
#include "spatial_kernels.h"
#include "rnn_kernels.h"
#undef RTANH
#undef RSIG
#undef T
#undef SFX
#undef EXP
#undef EXPM1
#undef LOG1P
#undef TANH

enum { SLOT_IN = -1, SLOT_OUT = -2 };

/* Below this many rows per thread, a small batch runs on the calling thread:
 * the fork/join would cost more than the work it shares (measured: about
 * 2-5 us per parallel region on the bench machine). */
#define MIN_ROWS_PER_THREAD 32

/* Bytes of one im2col tile [K, tile] (see mimic/model.h). */
#ifndef CONV_TILE_BYTES
#define CONV_TILE_BYTES (256 * 1024)
#endif

/* The most bytes of recurrent gate scratch an automatic chunk may ask for. */
#ifndef RNN_GATE_BYTES
#define RNN_GATE_BYTES (8 * 1024 * 1024)
#endif

typedef enum op_kind { OP_DENSE, OP_ACT, OP_LAYERNORM, OP_AFFINE, OP_ADD, OP_COPY, OP_CONV, OP_POOL, OP_GPOOL, OP_UPSAMPLE,
               OP_CONVT, OP_UPLIN, OP_RNN, OP_LAST } op_kind;

typedef struct step {
    op_kind kind;
    mimic_activation act; /* fused activation (identity: none) */
    double a0, a1, eps;
    int64_t in, out;       /* widths */
    int src, src2, dst;    /* slots; src2 only for OP_ADD */
    void *w, *b;           /* borrowed from the plan's weight block */
    void *w2, *b2;         /* OP_RNN: w = w_ih, w2 = w_hh, b = b_ih, b2 = b_hh (zeros if absent) */
    mimic_recurrent rec;   /* OP_RNN, OP_LAST */
    uptap *taps[3];        /* OP_UPLIN: per axis, osz[d] taps (in the plan's aux block) */
    mimic_spatial g;       /* OP_CONV, OP_POOL, OP_GPOOL */
    int64_t osz[3];        /* output spatial size */
    int64_t kg, tile;      /* OP_CONV: in/groups * prod k, output positions per im2col tile;
                              OP_CONVT: out/groups * prod k, input positions per col2im tile */
    bool max;              /* OP_POOL, OP_GPOOL */
} step;

struct mimic_plan {
    mimic_dtype dtype;
    size_t esize;
    int64_t nin, nout, width, chunk;
    int nsteps, nbuf, slots;
    bool deterministic;
    step *steps;
    char *weights;       /* one block: every step's weights, dense ones as [in, out] */
    uptap *aux;          /* linear upsampling taps of every OP_UPLIN step */
    size_t weight_bytes;
    char *ws_raw, *ws;   /* workspace (ws: ws_raw aligned to 64 bytes) */
    size_t buf_stride;   /* bytes per buffer (chunk * width * esize, rounded to 64) */
    size_t col_stride;   /* bytes of one slot's im2col buffer (max kg * tile * esize, rounded to 64) */
    bool spatial;
};

/* --- planning ------------------------------------------------------------------- */
typedef struct planner {
    int cur;
    int stack[NN_MAX_DEPTH], sp;
    int maxbuf;
    bool fusable; /* the last step may absorb a following activation */
} planner;

static bool slot_saved(const planner *pl, int s)
{
    for (int i = 0; i < pl->sp; i++)
        if (pl->stack[i] == s)
            return true;
    return false;
}
/* A buffer that holds no live value: not the current one, not a saved residual input. */
static int new_buffer(planner *pl)
{
    int b = 0;
    while (b == pl->cur || slot_saved(pl, b))
        b++;
    if (b + 1 > pl->maxbuf)
        pl->maxbuf = b + 1;
    return b;
}
/* Where an element-wise step writes: in place unless the current value is
 * the caller's input or a residual input that must survive. */
static int writable_dst(planner *pl)
{
    return pl->cur >= 0 && !slot_saved(pl, pl->cur) ? pl->cur : new_buffer(pl);
}

static int64_t rnn_gates(int cell) { return cell == MIMIC_CELL_LSTM ? 4 : cell == MIMIC_CELL_GRU ? 3 : 1; }

static size_t weights_of(const layer *l, size_t es)
{
    switch (l->kind) {
    case LAYER_DENSE: return ((size_t)l->in * (size_t)l->out + (l->w[1] ? (size_t)l->out : 0)) * es;
    case LAYER_LAYERNORM: return l->w[0] ? 2 * (size_t)l->in * es : 0;
    case LAYER_AFFINE: return 2 * (size_t)l->in * es;
    case LAYER_CONV:
    case LAYER_CONVT:
        return ((size_t)l->sp.out_channels * (size_t)(l->sp.in_channels / l->sp.groups) *
                (size_t)(l->sp.kernel[0] * l->sp.kernel[1] * l->sp.kernel[2]) + (l->w[1] ? (size_t)l->sp.out_channels : 0)) * es;
    case LAYER_RNN: {
        size_t GH = (size_t)rnn_gates(l->rec.cell) * (size_t)l->rec.hidden_size;
        return GH * ((size_t)l->rec.input_size + (size_t)l->rec.hidden_size + 2) * es;
    }
    default: return 0;
    }
}

/* Copies a layer's weights into the block at *pos; dense weight [out, in] -> [in, out]. */
static void place_weights(const layer *l, size_t es, char **pos, step *s)
{
    if (l->kind == LAYER_RNN) {
        /* as given ([G H, I], [G H, H]): gemm reads them transposed */
        size_t GH = (size_t)rnn_gates(l->rec.cell) * (size_t)l->rec.hidden_size;
        size_t n[4] = {GH * (size_t)l->rec.input_size, GH * (size_t)l->rec.hidden_size, GH, GH};
        void **dst[4] = {&s->w, &s->w2, &s->b, &s->b2};
        for (int k = 0; k < 4; k++) {
            *dst[k] = *pos;
            if (l->w[k])
                memcpy(*pos, l->w[k], n[k] * es);
            else
                memset(*pos, 0, n[k] * es); /* no bias: zeros, as the Lua layer adds */
            *pos += n[k] * es;
        }
        return;
    }
    if (l->kind == LAYER_CONV || l->kind == LAYER_CONVT) {
        /* conv: [out, in/groups * prod k] as given: each group's rows are gemm's A;
           transposed: [in, out/groups * prod k], each group's rows gemm's A^T */
        size_t wb = (size_t)(l->kind == LAYER_CONV ? l->sp.out_channels : l->sp.in_channels) * (size_t)s->kg * es;
        s->w = *pos;
        memcpy(*pos, l->w[0], wb);
        *pos += wb;
        if (l->w[1]) {
            s->b = *pos;
            memcpy(*pos, l->w[1], (size_t)l->sp.out_channels * es);
            *pos += (size_t)l->sp.out_channels * es;
        }
        return;
    }
    if (l->kind == LAYER_DENSE) {
        s->w = *pos;
        for (int64_t o = 0; o < l->out; o++)
            for (int64_t k = 0; k < l->in; k++)
                memcpy(*pos + (size_t)(k * l->out + o) * es, (const char *)l->w[0] + (size_t)(o * l->in + k) * es, es);
        *pos += (size_t)l->in * (size_t)l->out * es;
        if (l->w[1]) {
            s->b = *pos;
            memcpy(*pos, l->w[1], (size_t)l->out * es);
            *pos += (size_t)l->out * es;
        }
    } else if (l->w[0] && (l->kind == LAYER_LAYERNORM || l->kind == LAYER_AFFINE)) {
        s->w = *pos;
        memcpy(*pos, l->w[0], (size_t)l->in * es);
        *pos += (size_t)l->in * es;
        s->b = *pos;
        memcpy(*pos, l->w[1], (size_t)l->in * es);
        *pos += (size_t)l->in * es;
    }
}

/* A chunk size whose two activation buffers of the widest layer fit in about
 * 256 KiB (a typical L2 share per core), a multiple of 16 rows in [32, 512].
 * Measured in tests/bench/bench_plan.c (see docs/performance.md). */
static int64_t auto_chunk(int64_t width, size_t es)
{
    int64_t c = (int64_t)((256 * 1024) / (2 * (size_t)width * es));
    c = c / 16 * 16;
    return c < 32 ? 32 : c > 512 ? 512 : c;
}

void mimic_plan_free(mimic_plan *p)
{
    if (!p)
        return;
    mimic_free(p->steps);
    mimic_free(p->weights);
    mimic_free(p->aux);
    mimic_free(p->ws_raw);
    mimic_free(p);
}

mimic_plan *mimic_plan_new(const mimic_model *m, int64_t chunk)
{
    if (!m) {
        mimic_error(MIMIC_EARG, "mimic_plan_new: model is NULL");
        return NULL;
    }
    if (m->depth) {
        mimic_error(MIMIC_ESTATE, "mimic_plan_new: %d residual block(s) still open; close them with "
                    "mimic_model_end_residual", m->depth);
        return NULL;
    }
    if (chunk < 0) {
        mimic_error(MIMIC_EARG, "mimic_plan_new: chunk must be >= 0 (0: automatic), got %lld", (long long)chunk);
        return NULL;
    }
    mimic_plan *p = mimic_calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->dtype = m->dtype;
    p->esize = mimic_dtype_size(m->dtype);
    p->nin = m->nin;
    p->nout = m->width;
    p->width = m->nin;
    size_t wbytes = 0;
    for (int i = 0; i < m->n; i++) {
        if (m->layers[i].out > p->width)
            p->width = m->layers[i].out;
        wbytes += weights_of(&m->layers[i], p->esize);
    }
    size_t ntaps = 0;
    for (int i = 0; i < m->n; i++) {
        const layer *l = &m->layers[i];
        p->spatial |= l->kind >= LAYER_CONV;
        for (int d = 0; l->kind == LAYER_UPLINEAR && d < 3; d++)
            ntaps += d < l->sp.ndim ? (size_t)(l->sp.size[d] * l->sp.stride[d]) : 1;
    }
    if (chunk)
        p->chunk = chunk;
    else if (p->spatial) {
        /* a sample can be wide: the same 256 KiB rule, down to one row */
        int64_t c = (int64_t)((256 * 1024) / (2 * (size_t)p->width * p->esize));
        p->chunk = c < 1 ? 1 : c > 512 ? 512 : c;
        /* recurrent layers: each step's gemm wants rows (bench_rnn.lua's
         * LSTM, 256 x 100 steps, 2 threads, shared machine: 75 ms with the
         * 5-row chunk above, 44 ms with 64), up to 64 while the gate scratch
         * chunk * T * G H stays within RNN_GATE_BYTES */
        int64_t r = 0;
        for (int i = 0; i < m->n; i++) {
            const layer *l = &m->layers[i];
            if (l->kind != LAYER_RNN)
                continue;
            size_t per = (size_t)l->rec.seq_len * (size_t)(rnn_gates(l->rec.cell) * l->rec.hidden_size) * p->esize;
            int64_t ri = (int64_t)(RNN_GATE_BYTES / per);
            r = r == 0 || ri < r ? (ri > 64 ? 64 : ri) : r;
        }
        if (r > p->chunk)
            p->chunk = r;
    } else
        p->chunk = auto_chunk(p->width, p->esize);
    p->steps = mimic_calloc((size_t)m->n + 1, sizeof(step));
    p->weights = mimic_malloc(wbytes);
    p->weight_bytes = wbytes;
    p->aux = ntaps ? mimic_malloc(ntaps * sizeof(uptap)) : NULL;
    if (!p->steps || !p->weights || (ntaps && !p->aux)) {
        mimic_plan_free(p);
        return NULL;
    }

    planner pl = {.cur = SLOT_IN};
    char *pos = p->weights;
    uptap *tpos = p->aux;
    size_t colmax = 0;
    for (int i = 0; i < m->n; i++) {
        const layer *l = &m->layers[i];
        step *last = p->nsteps ? &p->steps[p->nsteps - 1] : NULL;
        if (l->kind == LAYER_ACT && pl.fusable && last->act == MIMIC_ACT_IDENTITY) {
            last->act = l->act;
            last->a0 = l->attr[0];
            last->a1 = l->attr[1];
            continue;
        }
        if (l->kind == LAYER_FLATTEN)
            continue; /* rows are already flat */
        if (l->kind == LAYER_RES_BEGIN) {
            pl.stack[pl.sp++] = pl.cur;
            pl.fusable = false; /* an activation now must not touch the saved input */
            continue;
        }
        step *s = &p->steps[p->nsteps++];
        s->in = l->in;
        s->out = l->out;
        s->src = pl.cur;
        s->act = MIMIC_ACT_IDENTITY;
        switch (l->kind) {
        case LAYER_DENSE: s->kind = OP_DENSE; s->dst = new_buffer(&pl); break;
        case LAYER_ACT:
            s->kind = OP_ACT, s->act = l->act, s->a0 = l->attr[0], s->a1 = l->attr[1];
            s->dst = writable_dst(&pl);
            break;
        case LAYER_LAYERNORM: s->kind = OP_LAYERNORM, s->eps = l->attr[0]; s->dst = writable_dst(&pl); break;
        case LAYER_AFFINE: s->kind = OP_AFFINE; s->dst = writable_dst(&pl); break;
        case LAYER_CONV:
        case LAYER_CONVT:
        case LAYER_MAXPOOL:
        case LAYER_AVGPOOL:
        case LAYER_UPSAMPLE:
        case LAYER_UPLINEAR:
            s->kind = l->kind == LAYER_CONV ? OP_CONV : l->kind == LAYER_CONVT ? OP_CONVT
                      : l->kind == LAYER_UPSAMPLE ? OP_UPSAMPLE : l->kind == LAYER_UPLINEAR ? OP_UPLIN : OP_POOL;
            s->max = l->kind == LAYER_MAXPOOL;
            s->g = l->sp;
            {
                /* right-align the dims: the kernels see [C, 1.., S...] */
                int sh = 3 - l->sp.ndim;
                mimic_spatial *g = &s->g;
                for (int d = 2; d >= 0; d--) {
                    int from = d - sh;
                    bool keep = from >= 0;
                    g->size[d] = keep ? l->sp.size[from] : 1;
                    g->kernel[d] = keep ? l->sp.kernel[from] : 1;
                    g->stride[d] = keep ? l->sp.stride[from] : 1;
                    g->padding[d] = keep ? l->sp.padding[from] : 0;
                    g->dilation[d] = keep ? l->sp.dilation[from] : 1;
                    g->output_padding[d] = keep ? l->sp.output_padding[from] : 0;
                    s->osz[d] = !keep                        ? 1
                                : s->kind == OP_CONVT        ? mimic_spatial_out_transposed(&l->sp, from)
                                : s->kind == OP_UPSAMPLE || s->kind == OP_UPLIN ? l->sp.size[from] * l->sp.stride[from]
                                                             : mimic_spatial_out(&l->sp, from);
                }
            }
            if (s->kind == OP_CONV || s->kind == OP_CONVT) {
                int64_t kv = l->sp.kernel[0] * l->sp.kernel[1] * l->sp.kernel[2];
                int64_t npos = s->kind == OP_CONV ? s->osz[0] * s->osz[1] * s->osz[2]
                                                  : s->g.size[0] * s->g.size[1] * s->g.size[2];
                s->kg = (s->kind == OP_CONV ? l->sp.in_channels : l->sp.out_channels) / l->sp.groups * kv;
                int64_t t = (int64_t)(CONV_TILE_BYTES / ((size_t)s->kg * p->esize));
                t = t < 16 ? 16 : t;
                s->tile = t > npos ? npos : t;
                size_t cb = (size_t)s->kg * (size_t)s->tile * p->esize;
                if (cb > colmax)
                    colmax = cb;
            }
            if (s->kind == OP_UPLIN) {
                /* PyTorch's taps with scale in/out (core/ops/conv.c's up_taps) */
                for (int d = 0; d < 3; d++) {
                    int64_t in = s->g.size[d], out = s->osz[d];
                    s->taps[d] = tpos;
                    for (int64_t o = 0; o < out; o++, tpos++) {
                        if (in == out && in == 1) {
                            *tpos = (uptap){{0, 0}, {1, 0}};
                            continue;
                        }
                        double src = s->g.circular ? (out > 1 ? (double)o * (double)(in - 1) / (double)(out - 1) : 0)
                                                   : ((double)o + 0.5) * ((double)in / (double)out) - 0.5;
                        if (src < 0)
                            src = 0;
                        int64_t i0 = (int64_t)src;
                        if (i0 > in - 1)
                            i0 = in - 1;
                        int64_t i1 = i0 + 1 < in ? i0 + 1 : in - 1;
                        double lw = src - (double)i0;
                        *tpos = (uptap){{i0, i1}, {1 - lw, lw}};
                    }
                }
            }
            s->dst = new_buffer(&pl);
            break;
        case LAYER_RNN: {
            s->kind = OP_RNN;
            s->rec = l->rec;
            size_t GH = (size_t)rnn_gates(l->rec.cell) * (size_t)l->rec.hidden_size;
            size_t cb = (size_t)p->chunk * ((size_t)l->rec.seq_len * GH + GH) * p->esize;
            if (cb > colmax)
                colmax = cb;
            s->dst = new_buffer(&pl);
            break;
        }
        case LAYER_LASTSTEP:
            s->kind = OP_LAST;
            s->rec = l->rec;
            s->dst = new_buffer(&pl);
            break;
        case LAYER_GMAXPOOL:
        case LAYER_GAVGPOOL:
            s->kind = OP_GPOOL;
            s->max = l->kind == LAYER_GMAXPOOL;
            s->g = l->sp;
            s->dst = new_buffer(&pl);
            break;
        case LAYER_RES_END:
            s->kind = OP_ADD;
            s->src2 = pl.stack[--pl.sp]; /* x; src is f(x) */
            s->dst = writable_dst(&pl);
            break;
        default: break;
        }
        place_weights(l, p->esize, &pos, s);
        pl.cur = s->dst;
        pl.fusable = s->kind != OP_ACT; /* an ACT step already has its activation */
    }
    if (pl.cur == SLOT_IN) {
        /* No step produced a new value (an empty or identity-only model). */
        step *s = &p->steps[p->nsteps++];
        *s = (step){.kind = OP_COPY, .in = p->nin, .out = p->nin, .src = SLOT_IN, .dst = SLOT_OUT};
    } else {
        /* Write the final value straight into the caller's output: from the
         * step that last wrote it out of place, the buffer holds only that
         * value, so every later use of it can be the output instead. */
        int fin = pl.cur, first = 0;
        for (int i = p->nsteps - 1; i >= 0; i--)
            if (p->steps[i].dst == fin && p->steps[i].src != fin && !(p->steps[i].kind == OP_ADD && p->steps[i].src2 == fin)) {
                first = i;
                break;
            }
        for (int i = first; i < p->nsteps; i++) {
            step *s = &p->steps[i];
            if (s->src == fin) s->src = SLOT_OUT;
            if (s->kind == OP_ADD && s->src2 == fin) s->src2 = SLOT_OUT;
            if (s->dst == fin) s->dst = SLOT_OUT;
        }
    }
    p->nbuf = 0;
    for (int i = 0; i < p->nsteps; i++) {
        const step *s = &p->steps[i];
        int hi = s->src > s->dst ? s->src : s->dst;
        if (s->kind == OP_ADD && s->src2 > hi)
            hi = s->src2;
        if (hi + 1 > p->nbuf)
            p->nbuf = hi + 1;
    }
    p->slots = mimic_get_num_threads();
    if (p->slots < 1)
        p->slots = 1;
    p->buf_stride = ((size_t)p->chunk * (size_t)p->width * p->esize + 63) / 64 * 64;
    p->col_stride = (colmax + 63) / 64 * 64;
    if (p->nbuf || p->col_stride) {
        p->ws_raw = mimic_malloc((size_t)p->slots * ((size_t)p->nbuf * p->buf_stride + p->col_stride) + 64);
        if (!p->ws_raw) {
            mimic_plan_free(p);
            return NULL;
        }
        p->ws = p->ws_raw + (64 - (uintptr_t)p->ws_raw % 64) % 64;
    }
    return p;
}

int mimic_plan_set_deterministic(mimic_plan *p, bool on)
{
    if (!p)
        return mimic_error(MIMIC_EARG, "mimic_plan_set_deterministic: plan is NULL");
    p->deterministic = on;
    return MIMIC_OK;
}

/* --- running -------------------------------------------------------------------- */
/* Address of the chunk's rows [i0, ...) in slot s of buffer set `set`. */
static void *slot_ptr(const mimic_plan *p, int s, int set, const void *in, void *out, int64_t i0, int64_t width)
{
    if (s == SLOT_IN)
        return (char *)(uintptr_t)in + (size_t)(i0 * width) * p->esize;
    if (s == SLOT_OUT)
        return (char *)out + (size_t)(i0 * width) * p->esize;
    return p->ws + ((size_t)set * (size_t)p->nbuf + (size_t)s) * p->buf_stride;
}

/* The per-slot scratch (im2col / col2im columns, recurrent gates). */
static char *scratch_of(const mimic_plan *p, int set)
{
    return p->ws + (size_t)p->slots * (size_t)p->nbuf * p->buf_stride + (size_t)set * p->col_stride;
}

/* y[o * ldy + j] = b[o] (0 if b is NULL) for o < nch, j < n: the channels'
 * outputs start from their bias. */
static void fill_bias(const mimic_plan *p, void *y, int64_t ldy, int64_t nch, int64_t n, const void *b)
{
    for (int64_t o = 0; o < nch; o++) {
        if (p->dtype == MIMIC_F32) {
            float *yo = (float *)y + o * ldy, bv = b ? ((const float *)b)[o] : 0.0f;
            for (int64_t j = 0; j < n; j++)
                yo[j] = bv;
        } else {
            double *yo = (double *)y + o * ldy, bv = b ? ((const double *)b)[o] : 0.0;
            for (int64_t j = 0; j < n; j++)
                yo[j] = bv;
        }
    }
}

/* One conv layer over `rows` samples (see mimic/model.h: per sample, per
 * tile of output positions, one gemm per group). */
static void run_conv(const mimic_plan *p, const step *s, int set, const char *x, char *y, int64_t rows)
{
    bool f32 = p->dtype == MIMIC_F32;
    size_t es = p->esize;
    char *col = scratch_of(p, set);
    int64_t G = s->g.groups, cig = s->g.in_channels / G, ocg = s->g.out_channels / G;
    int64_t npos = s->osz[0] * s->osz[1] * s->osz[2], K = s->kg;
    for (int64_t r = 0; r < rows; r++) {
        const char *xr = x + (size_t)(r * s->in) * es;
        char *yr = y + (size_t)(r * s->out) * es;
        for (int64_t t0 = 0; t0 < npos; t0 += s->tile) {
            int64_t nt = npos - t0 < s->tile ? npos - t0 : s->tile;
            for (int64_t gi = 0; gi < G; gi++) {
                const char *wg = (const char *)s->w + (size_t)(gi * ocg * K) * es;
                const char *bg = s->b ? (const char *)s->b + (size_t)(gi * ocg) * es : NULL;
                char *yg = yr + (size_t)(gi * ocg * npos + t0) * es;
                if (f32)
                    im2col_f32(&s->g, s->osz, (const float *)xr, gi * cig, cig, t0, nt, (float *)col);
                else
                    im2col_f64(&s->g, s->osz, (const double *)xr, gi * cig, cig, t0, nt, (double *)col);
                if (p->deterministic) {
                    if (f32)
                        gemm_det_f32(ocg, K, nt, (const float *)wg, K, 1, (const float *)col, nt, (const float *)bg,
                                     (float *)yg, npos);
                    else
                        gemm_det_f64(ocg, K, nt, (const double *)wg, K, 1, (const double *)col, nt, (const double *)bg,
                                     (double *)yg, npos);
                    continue;
                }
                if (bg)
                    fill_bias(p, yg, npos, ocg, nt, bg);
                if (f32)
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)ocg, (int)nt, (int)K, 1.0f,
                                (const float *)wg, (int)K, (const float *)col, (int)nt, bg ? 1.0f : 0.0f, (float *)yg,
                                (int)npos);
                else
                    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)ocg, (int)nt, (int)K, 1.0,
                                (const double *)wg, (int)K, (const double *)col, (int)nt, bg ? 1.0 : 0.0, (double *)yg,
                                (int)npos);
            }
        }
    }
}

/* One transposed conv layer over `rows` samples (see mimic/model.h: per
 * sample, per tile of input positions, one gemm per group, then col2im). */
static void run_convt(const mimic_plan *p, const step *s, int set, const char *x, char *y, int64_t rows)
{
    bool f32 = p->dtype == MIMIC_F32;
    size_t es = p->esize;
    char *col = scratch_of(p, set);
    int64_t G = s->g.groups, cig = s->g.in_channels / G, ocg = s->g.out_channels / G, R = s->kg;
    int64_t npin = s->g.size[0] * s->g.size[1] * s->g.size[2], npout = s->osz[0] * s->osz[1] * s->osz[2];
    for (int64_t r = 0; r < rows; r++) {
        const char *xr = x + (size_t)(r * s->in) * es;
        char *yr = y + (size_t)(r * s->out) * es;
        fill_bias(p, yr, npout, s->g.out_channels, npout, s->b);
        for (int64_t t0 = 0; t0 < npin; t0 += s->tile) {
            int64_t nt = npin - t0 < s->tile ? npin - t0 : s->tile;
            for (int64_t gi = 0; gi < G; gi++) {
                const char *wg = (const char *)s->w + (size_t)(gi * cig * R) * es;
                const char *xg = xr + (size_t)(gi * cig * npin + t0) * es;
                char *yg = yr + (size_t)(gi * ocg * npout) * es;
                if (p->deterministic) {
                    if (f32)
                        gemm_det_f32(R, cig, nt, (const float *)wg, 1, R, (const float *)xg, npin, NULL, (float *)col, nt);
                    else
                        gemm_det_f64(R, cig, nt, (const double *)wg, 1, R, (const double *)xg, npin, NULL, (double *)col,
                                     nt);
                } else if (f32) {
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)R, (int)nt, (int)cig, 1.0f,
                                (const float *)wg, (int)R, (const float *)xg, (int)npin, 0.0f, (float *)col, (int)nt);
                } else {
                    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)R, (int)nt, (int)cig, 1.0,
                                (const double *)wg, (int)R, (const double *)xg, (int)npin, 0.0, (double *)col, (int)nt);
                }
                if (f32)
                    col2im_t_f32(&s->g, s->osz, (const float *)col, ocg, t0, nt, (float *)yg);
                else
                    col2im_t_f64(&s->g, s->osz, (const double *)col, ocg, t0, nt, (double *)yg);
            }
        }
    }
}

/* C (+)= A W^T: [M, K] times [N, K]^T, BLAS or the deterministic kernel. */
static void gemm_nt(const mimic_plan *p, int64_t M, int64_t N, int64_t K, const void *A, int64_t lda, const void *W,
                    void *C, int64_t ldc, bool acc)
{
    bool f32 = p->dtype == MIMIC_F32;
    if (p->deterministic) {
        if (f32)
            gemm_nt_det_f32(M, N, K, A, lda, W, C, ldc, acc);
        else
            gemm_nt_det_f64(M, N, K, A, lda, W, C, ldc, acc);
    } else if (f32) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)M, (int)N, (int)K, 1.0f, A, (int)lda, W, (int)K,
                    acc ? 1.0f : 0.0f, C, (int)ldc);
    } else {
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)M, (int)N, (int)K, 1.0, A, (int)lda, W, (int)K,
                    acc ? 1.0 : 0.0, C, (int)ldc);
    }
}

/* One recurrent layer over `rows` sequences x [rows, T, I] -> y [rows, T, H]
 * (see mimic/model.h): the input projection of all rows and steps is one
 * gemm into the gate buffer P [rows, T, G H]; each step then adds (GRU:
 * computes beside, in S [rows, G H]) h_{t-1} W_hh^T, read back from y, and
 * applies the cell. LSTM keeps c in S. */
static void run_rnn(const mimic_plan *p, const step *s, int set, const char *x, char *y, int64_t rows)
{
    bool f32 = p->dtype == MIMIC_F32;
    size_t es = p->esize;
    const int cell = s->rec.cell;
    const int64_t NT = s->rec.seq_len, NI = s->rec.input_size, H = s->rec.hidden_size, GH = rnn_gates(cell) * H;
    char *P = scratch_of(p, set), *S = P + (size_t)(rows * NT * GH) * es;
    gemm_nt(p, rows * NT, GH, NI, x, NI, s->w, P, GH, false);
    for (int64_t t = 0; t < NT; t++) {
        char *Pt = P + (size_t)(t * GH) * es, *yt = y + (size_t)(t * H) * es;
        const char *hp = t > 0 ? y + (size_t)((t - 1) * H) * es : NULL;
        int64_t ldh = NT * H;
        if (cell == MIMIC_CELL_GRU) {
            if (hp) {
                gemm_nt(p, rows, GH, H, hp, ldh, s->w2, S, GH, false);
            } else { /* h_0 = 0: the zeroed hidden side serves as h_0 too */
                memset(S, 0, (size_t)(rows * GH) * es);
                hp = S, ldh = GH;
            }
        } else if (hp) {
            gemm_nt(p, rows, GH, H, hp, ldh, s->w2, Pt, NT * GH, true);
        } else if (cell == MIMIC_CELL_LSTM) {
            memset(S, 0, (size_t)(rows * H) * es); /* c_0 = 0 */
        }
        if (f32)
            rnn_cell_f32(cell, rows, H, (const float *)Pt, NT * GH, (const float *)S, (const float *)hp, ldh,
                         (float *)S, s->b, s->b2, (float *)yt, NT * H);
        else
            rnn_cell_f64(cell, rows, H, (const double *)Pt, NT * GH, (const double *)S, (const double *)hp, ldh,
                         (double *)S, s->b, s->b2, (double *)yt, NT * H);
    }
}

static void run_chunk(const mimic_plan *p, int set, const void *in, void *out, int64_t i0, int64_t rows)
{
    bool f32 = p->dtype == MIMIC_F32;
    for (int i = 0; i < p->nsteps; i++) {
        const step *s = &p->steps[i];
        const void *x = slot_ptr(p, s->src, set, in, out, i0, s->in);
        void *y = slot_ptr(p, s->dst, set, in, out, i0, s->out);
        const void *x2 = s->kind == OP_ADD ? slot_ptr(p, s->src2, set, in, out, i0, s->in) : NULL;
        int64_t n = s->out;
        switch (s->kind) {
        case OP_DENSE:
            if (p->deterministic) {
                if (f32)
                    dense_det_f32(rows, s->in, n, x, s->w, y);
                else
                    dense_det_f64(rows, s->in, n, x, s->w, y);
            } else if (f32) {
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)n, (int)s->in, 1.0f, x,
                            (int)s->in, s->w, (int)n, 0.0f, y, (int)n);
            } else {
                cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)n, (int)s->in, 1.0, x,
                            (int)s->in, s->w, (int)n, 0.0, y, (int)n);
            }
            if (s->b || s->act != MIMIC_ACT_IDENTITY) {
                if (f32)
                    bias_act_f32(rows, n, y, y, s->b, s->act, (float)s->a0, (float)s->a1);
                else
                    bias_act_f64(rows, n, y, y, s->b, s->act, s->a0, s->a1);
            }
            break;
        case OP_ACT:
        case OP_COPY:
            if (f32)
                bias_act_f32(rows, n, x, y, NULL, s->act, (float)s->a0, (float)s->a1);
            else
                bias_act_f64(rows, n, x, y, NULL, s->act, s->a0, s->a1);
            break;
        case OP_LAYERNORM:
            if (f32)
                layernorm_act_f32(rows, n, x, y, s->w, s->b, s->eps, s->act, (float)s->a0, (float)s->a1);
            else
                layernorm_act_f64(rows, n, x, y, s->w, s->b, s->eps, s->act, s->a0, s->a1);
            break;
        case OP_AFFINE:
            if (f32)
                affine_act_f32(rows, n, x, y, s->w, s->b, s->act, (float)s->a0, (float)s->a1);
            else
                affine_act_f64(rows, n, x, y, s->w, s->b, s->act, s->a0, s->a1);
            break;
        case OP_ADD:
            if (f32)
                add_act_f32(rows, n, x, x2, y, s->act, (float)s->a0, (float)s->a1);
            else
                add_act_f64(rows, n, x, x2, y, s->act, s->a0, s->a1);
            break;
        case OP_CONVT:
        case OP_RNN:
        case OP_LAST:
        case OP_CONV:
        case OP_POOL:
        case OP_GPOOL:
        case OP_UPSAMPLE:
        case OP_UPLIN:
            if (s->kind == OP_CONV)
                run_conv(p, s, set, x, y, rows);
            else if (s->kind == OP_CONVT)
                run_convt(p, s, set, x, y, rows);
            else if (s->kind == OP_RNN)
                run_rnn(p, s, set, x, y, rows);
            for (int64_t r = 0; s->kind == OP_LAST && r < rows; r++) /* the last step of each row */
                memcpy((char *)y + (size_t)(r * s->out) * p->esize,
                       (const char *)x + (size_t)(r * s->in + s->in - s->out) * p->esize, (size_t)s->out * p->esize);
            for (int64_t r = 0; s->kind == OP_UPLIN && r < rows; r++) {
                const char *xr = (const char *)x + (size_t)(r * s->in) * p->esize;
                char *yr = (char *)y + (size_t)(r * s->out) * p->esize;
                const uptap *const *tp = (const uptap *const *)s->taps;
                if (f32)
                    upsample_linear_f32(&s->g, s->osz, tp, (const float *)xr, (float *)yr);
                else
                    upsample_linear_f64(&s->g, s->osz, tp, (const double *)xr, (double *)yr);
            }
            for (int64_t r = 0; (s->kind == OP_POOL || s->kind == OP_GPOOL || s->kind == OP_UPSAMPLE) && r < rows; r++) {
                const char *xr = (const char *)x + (size_t)(r * s->in) * p->esize;
                char *yr = (char *)y + (size_t)(r * s->out) * p->esize;
                if (s->kind == OP_UPSAMPLE && f32)
                    upsample_f32(&s->g, s->osz, (const float *)xr, (float *)yr);
                else if (s->kind == OP_UPSAMPLE)
                    upsample_f64(&s->g, s->osz, (const double *)xr, (double *)yr);
                else if (s->kind == OP_POOL && f32)
                    pool_f32(&s->g, s->osz, s->max, (const float *)xr, (float *)yr);
                else if (s->kind == OP_POOL)
                    pool_f64(&s->g, s->osz, s->max, (const double *)xr, (double *)yr);
                else if (f32)
                    global_pool_f32(s->g.in_channels, s->g.size[0], s->max, (const float *)xr, (float *)yr);
                else
                    global_pool_f64(s->g.in_channels, s->g.size[0], s->max, (const double *)xr, (double *)yr);
            }
            if (s->act != MIMIC_ACT_IDENTITY) {
                if (f32)
                    bias_act_f32(rows, n, y, y, NULL, s->act, (float)s->a0, (float)s->a1);
                else
                    bias_act_f64(rows, n, y, y, NULL, s->act, s->a0, s->a1);
            }
            break;
        }
    }
}

int mimic_plan_run(mimic_plan *p, const void *in, int64_t n, void *out)
{
    if (!p)
        return mimic_error(MIMIC_EARG, "mimic_plan_run: plan is NULL");
    if (n < 0)
        return mimic_error(MIMIC_EARG, "mimic_plan_run: n must be >= 0, got %lld", (long long)n);
    if (n == 0)
        return MIMIC_OK;
    if (!in || !out)
        return mimic_error(MIMIC_EARG, "mimic_plan_run: %s is NULL", in ? "out" : "in");
    if (n > INT_MAX)
        return mimic_error(MIMIC_EARG, "mimic_plan_run: n = %lld rows is more than one call takes (%d)",
                           (long long)n, INT_MAX);
    int nthr = mimic_get_num_threads();
    if (nthr > p->slots)
        nthr = p->slots;
    int64_t per = p->chunk;
    if (nthr > 1 && n < nthr * per) {
        /* Fewer chunks than threads (a host's small batch): split the rows
         * evenly, so one fork/join serves the whole call instead of BLAS
         * forking once per layer; too few rows stay on the calling thread. */
        per = ((n + nthr - 1) / nthr + 15) / 16 * 16;
        if (per < MIN_ROWS_PER_THREAD)
            per = p->chunk, nthr = 1;
        else if (per > p->chunk)
            per = p->chunk;
    }
    int64_t nchunks = (n + per - 1) / per;
    if (nthr > nchunks)
        nthr = (int)nchunks;
    if (nthr <= 1) {
        for (int64_t c = 0; c < nchunks; c++) {
            int64_t i0 = c * per;
            run_chunk(p, 0, in, out, i0, n - i0 < per ? n - i0 : per);
        }
        return MIMIC_OK;
    }
#ifdef _OPENMP
#pragma omp parallel num_threads(nthr)
    {
        mimic_blas_on_this_thread();
        int set = omp_get_thread_num();
        /* Contiguous ranges of chunks per thread: neighbouring rows stay on one core. */
        int64_t c0 = nchunks * set / nthr, c1 = nchunks * (set + 1) / nthr;
        for (int64_t c = c0; c < c1; c++) {
            int64_t i0 = c * per;
            run_chunk(p, set, in, out, i0, n - i0 < per ? n - i0 : per);
        }
    }
#endif
    return MIMIC_OK;
}

mimic_tensor *mimic_plan_forward(mimic_plan *p, const mimic_tensor *x)
{
    if (!p || !x) {
        mimic_error(MIMIC_EARG, "mimic_plan_forward: %s is NULL", p ? "x" : "plan");
        return NULL;
    }
    if (x->dtype != p->dtype) {
        mimic_error(MIMIC_EDTYPE, "mimic_plan_forward: input is %s, the plan was compiled for %s (convert the input)",
                    mimic_dtype_name(x->dtype), mimic_dtype_name(p->dtype));
        return NULL;
    }
    bool row = x->ndim == 1;
    if ((x->ndim != 1 && x->ndim != 2) || x->shape[x->ndim - 1] != p->nin) {
        char buf[96];
        mimic_error(MIMIC_ESHAPE, "mimic_plan_forward: input of shape %s; expected [n, %lld] or [%lld]",
                    mimic_shape_str(x->ndim, x->shape, buf, sizeof buf), (long long)p->nin, (long long)p->nin);
        return NULL;
    }
    int64_t n = row ? 1 : x->shape[0];
    mimic_tensor *xc = mimic_contiguous((mimic_tensor *)(uintptr_t)x);
    if (!xc)
        return NULL;
    int64_t shape[2] = {n, p->nout};
    mimic_tensor *y = row ? mimic_empty(1, &shape[1], p->dtype) : mimic_empty(2, shape, p->dtype);
    if (!y || mimic_plan_run(p, mimic_data(xc), n, mimic_data(y)) != MIMIC_OK) {
        mimic_tensor_free(y);
        y = NULL;
    }
    mimic_tensor_free(xc);
    return y;
}

int64_t mimic_plan_nin(const mimic_plan *p) { return p ? p->nin : 0; }
int64_t mimic_plan_nout(const mimic_plan *p) { return p ? p->nout : 0; }
mimic_dtype mimic_plan_dtype(const mimic_plan *p) { return p ? p->dtype : MIMIC_F32; }
int64_t mimic_plan_chunk(const mimic_plan *p) { return p ? p->chunk : 0; }
int mimic_plan_slots(const mimic_plan *p) { return p ? p->slots : 0; }
size_t mimic_plan_workspace_bytes(const mimic_plan *p)
{
    return p ? (size_t)p->slots * ((size_t)p->nbuf * p->buf_stride + p->col_stride) : 0;
}
size_t mimic_plan_weight_bytes(const mimic_plan *p) { return p ? p->weight_bytes : 0; }
