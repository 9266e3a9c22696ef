/* The compiled training step (mimic/trainstep.h).
 *
 * Layout: a list of dense layers, each with its fused activation. Forward
 * keeps, per layer, the pre-activation z (bias added) and the output a (the
 * same buffer when the activation is the identity): the backward needs z for
 * the derivative and the layer's input for the weight gradient. Two gradient
 * buffers of the widest layer alternate going backward. Everything is one
 * allocation, made at creation for max_batch rows.
 *
 * Threads: a batch is cut into TS_PARTS row blocks (one below
 * 2 * TS_MIN_PART_ROWS rows), a fixed number, whatever the thread count. Each
 * part runs forward and backward on its rows with single-threaded gemms
 * (OpenBLAS's OpenMP build is single-threaded inside a parallel region) and
 * its own weight gradient: part 0 in the flat gradient buffer, part 1 in a
 * private one; the update adds the two (in that order), each thread over
 * its range of the parameters. So the result does not depend on the thread
 * count (the same parts are summed in the same order on 1 thread or 2), and
 * a step with two threads costs one fork/join and one barrier, not a
 * fork/join per gemm (each gemm here is a few Mflop, where a threaded gemm's
 * fork/join costs about what it saves).
 * On a machine with more runnable jobs than cores, though, even one fork/join
 * per step can cost 10x the step (a spinning thread waits for one that is not
 * running; measured: docs/performance.md), so each step object times both
 * ways and keeps the faster, trying the other now and then.
 */
#include "mimic/trainstep.h"

#include "mimic/base.h"
#include "mimic/optim.h"

#include <cblas.h>
#include <math.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "tanh_vec.h"

#define T float
#define SFX(name) name##_f32
#define EXP expf
#define EXPM1 expm1f
#define LOG1P log1pf
#define TANH tanhf_vec
#define SQRT sqrtf
#include "act_kernel.h"
#include "trainstep_kernels.h"
#undef T
#undef SFX
#undef EXP
#undef EXPM1
#undef LOG1P
#undef TANH
#undef SQRT
#define T double
#define SFX(name) name##_f64
#define EXP exp
#define EXPM1 expm1
#define LOG1P log1p
#define TANH tanh
#define SQRT sqrt
#include "act_kernel.h"
#include "trainstep_kernels.h"
#undef T
#undef SFX
#undef EXP
#undef EXPM1
#undef LOG1P
#undef TANH
#undef SQRT

/* Adam/AdamW in float32 without amsgrad, 8 lanes at a time with AVX2: the
 * operations of ts_adam_f32 in the same order, each exactly rounded (no FMA:
 * the target enables none), so the same values; the loop GCC would make of
 * ts_adam_f32 if sqrtf did not have to set errno (see trainstep_kernels.h).
 * Returns how many leading elements it did; the caller does the rest. */
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define TS_AVX2_ADAM 1
__attribute__((target("avx2"))) static int64_t adam_f32_avx2(int64_t n, float *P, const float *G, float *M, float *V,
                                                             bool decoupled, bool l2, float b1, float c1, float b2,
                                                             float c2, float wd, float keep, float nss, float b2s,
                                                             float ep)
{
    const __m256 vb1 = _mm256_set1_ps(b1), vc1 = _mm256_set1_ps(c1), vb2 = _mm256_set1_ps(b2),
                 vc2 = _mm256_set1_ps(c2), vwd = _mm256_set1_ps(wd), vkeep = _mm256_set1_ps(keep),
                 vnss = _mm256_set1_ps(nss), vb2s = _mm256_set1_ps(b2s), vep = _mm256_set1_ps(ep);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 g = _mm256_loadu_ps(G + i), p = _mm256_loadu_ps(P + i);
        if (decoupled)
            p = _mm256_mul_ps(p, vkeep);
        else if (l2)
            g = _mm256_add_ps(_mm256_mul_ps(p, vwd), g);
        __m256 m = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(M + i), vb1), _mm256_mul_ps(g, vc1));
        __m256 v = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(V + i), vb2), _mm256_mul_ps(_mm256_mul_ps(g, vc2), g));
        _mm256_storeu_ps(M + i, m);
        _mm256_storeu_ps(V + i, v);
        __m256 den = _mm256_add_ps(_mm256_div_ps(_mm256_sqrt_ps(v), vb2s), vep);
        _mm256_storeu_ps(P + i, _mm256_add_ps(p, _mm256_div_ps(_mm256_mul_ps(m, vnss), den)));
    }
    return i;
}
#endif

typedef struct ts_layer {
    int64_t in, out;
    int64_t w_off, b_off; /* element offsets in the flat buffers; b_off < 0: no bias */
    mimic_activation act;
    double a0, a1;
    char *z, *a; /* [max_batch, out]; a == z without an activation */
} ts_layer;

struct mimic_trainstep {
    mimic_dtype dtype;
    size_t es;
    int64_t nin, nout, width, max_batch, nparams;
    int n;
    ts_layer *layers;
    mimic_tensor *params, *grads; /* retained */
    mimic_trainstep_loss loss;
    double delta;
    bool sum;
    char *block;          /* every buffer below */
    char *g2;             /* [nparams]: part 1's gradient */
    int64_t count, since, probe; /* thread choice: timed steps, steps since the last probe, probe interval */
    int threads;                 /* 0: choose (below), 1 or 2: fixed */
    double rate[2];       /* seconds per row, moving average: 1 thread, 2 threads */
    char *g0, *g1;        /* [max_batch, width] */
    double *acc;          /* [TS_PARTS][width, padded]: bias gradient sums */
};

#define ALIGN64(b) (((b) + 63) / 64 * 64)
#define TS_PARTS 2
#define TS_MIN_PART_ROWS 32
#define TS_PROBE_MIN 16
#define TS_PROBE_MAX 1024

void mimic_trainstep_free(mimic_trainstep *ts)
{
    if (!ts)
        return;
    mimic_tensor_free(ts->params);
    mimic_tensor_free(ts->grads);
    mimic_free(ts->layers);
    mimic_free(ts->block);
    mimic_free(ts);
}

static bool flat_ok(const mimic_tensor *t, mimic_dtype dt, int64_t n)
{
    return t && t->dtype == dt && t->ndim == 1 && t->shape[0] == n && mimic_is_contiguous(t);
}

mimic_trainstep *mimic_trainstep_new(mimic_dtype dt, int64_t nin, const mimic_trainstep_layer *layers, int nlayers,
                                     mimic_tensor *params, mimic_tensor *grads, int64_t max_batch)
{
    const char *fn = "mimic_trainstep_new";
    if (dt != MIMIC_F32 && dt != MIMIC_F64) {
        mimic_error(MIMIC_EDTYPE, "%s: dtype %s; a training step is float32 or float64", fn, mimic_dtype_name(dt));
        return NULL;
    }
    if (nin < 1 || max_batch < 1 || max_batch > INT32_MAX || !layers || nlayers < 1) {
        mimic_error(MIMIC_EARG, "%s: need nin >= 1, 1 <= max_batch <= %d and at least one layer (got nin %lld, "
                    "max_batch %lld, %d layers)", fn, INT32_MAX, (long long)nin, (long long)max_batch, nlayers);
        return NULL;
    }
    /* Count dense layers and check the sequence before allocating. */
    int ndense = 0;
    bool act_taken = true; /* no activation before the first dense layer */
    int64_t w = nin, width = nin, nparams = 0;
    for (int i = 0; i < nlayers; i++) {
        const mimic_trainstep_layer *l = &layers[i];
        if (!l->type) {
            mimic_error(MIMIC_EARG, "%s: layer %d has no type", fn, i);
            return NULL;
        }
        if (strcmp(l->type, "dense") == 0) {
            if (l->out < 1 || l->out > INT32_MAX) {
                mimic_error(MIMIC_EARG, "%s: layer %d (dense) has %lld outputs; need 1..%d", fn, i, (long long)l->out,
                            INT32_MAX);
                return NULL;
            }
            nparams += w * l->out + (l->bias ? l->out : 0);
            w = l->out;
            if (w > width)
                width = w;
            ndense++;
            act_taken = false;
            continue;
        }
        int act = mimic_activation_parse(l->type);
        if (act < 0) {
            mimic_error(MIMIC_EARG, "%s: layer %d is '%s'; a compiled training step takes \"dense\" layers and "
                        "activations (relu, leaky_relu, elu, gelu, tanh, sigmoid, softplus, identity); train other "
                        "models with autograd", fn, i, l->type);
            return NULL;
        }
        if (act == MIMIC_ACT_IDENTITY)
            continue;
        if (act_taken) {
            mimic_error(MIMIC_EARG, "%s: layer %d ('%s') %s; each activation must follow a dense layer, one per "
                        "dense layer", fn, i, l->type, ndense ? "follows another activation" : "comes before any dense layer");
            return NULL;
        }
        if (act == MIMIC_ACT_SOFTPLUS && !(l->p0 > 0)) {
            mimic_error(MIMIC_EARG, "%s: layer %d (softplus) has beta %g; beta must be > 0", fn, i, l->p0);
            return NULL;
        }
        act_taken = true;
    }
    if (!flat_ok(params, dt, nparams) || !flat_ok(grads, dt, nparams) || params->storage == grads->storage) {
        mimic_error(MIMIC_EARG, "%s: params and grads must be two distinct 1-D contiguous %s tensors of %lld elements "
                    "(the layers' weights and biases, in order: the flat buffers of mimic_flatten_parameters)",
                    fn, mimic_dtype_name(dt), (long long)nparams);
        return NULL;
    }

    mimic_trainstep *ts = mimic_calloc(1, sizeof *ts);
    if (!ts)
        return NULL;
    ts->dtype = dt;
    ts->es = mimic_dtype_size(dt);
    ts->nin = nin;
    ts->nout = w;
    ts->width = width;
    ts->max_batch = max_batch;
    ts->nparams = nparams;
    ts->loss = MIMIC_LOSS_MSE;
    ts->n = ndense;
    ts->layers = mimic_calloc((size_t)ndense, sizeof *ts->layers);
    if (!ts->layers) {
        mimic_trainstep_free(ts);
        return NULL;
    }
    /* Layers and the size of the block: z (and a) per layer, 2 gradient buffers, the sums. */
    size_t bytes = 0, rowb = (size_t)max_batch * ts->es;
    int k = -1;
    int64_t off = 0;
    w = nin;
    for (int i = 0; i < nlayers; i++) {
        const mimic_trainstep_layer *l = &layers[i];
        if (strcmp(l->type, "dense") == 0) {
            ts_layer *d = &ts->layers[++k];
            d->in = w;
            d->out = l->out;
            d->w_off = off;
            off += w * l->out;
            d->b_off = l->bias ? off : -1;
            off += l->bias ? l->out : 0;
            d->act = MIMIC_ACT_IDENTITY;
            w = l->out;
        } else if (mimic_activation_parse(l->type) != MIMIC_ACT_IDENTITY) {
            ts_layer *d = &ts->layers[k];
            d->act = (mimic_activation)mimic_activation_parse(l->type);
            d->a0 = l->p0;
            d->a1 = l->p1;
        }
    }
    for (int i = 0; i < ndense; i++)
        bytes += ALIGN64(rowb * (size_t)ts->layers[i].out) * (ts->layers[i].act == MIMIC_ACT_IDENTITY ? 1 : 2);
    bytes += 2 * ALIGN64(rowb * (size_t)width) + TS_PARTS * ALIGN64((size_t)width * sizeof(double)) +
             ALIGN64((size_t)nparams * ts->es);
    ts->block = mimic_malloc(bytes + 64);
    if (!ts->block) {
        mimic_trainstep_free(ts);
        return NULL;
    }
    char *pos = ts->block + (64 - (uintptr_t)ts->block % 64) % 64;
    for (int i = 0; i < ndense; i++) {
        ts_layer *d = &ts->layers[i];
        size_t b = ALIGN64(rowb * (size_t)d->out);
        d->z = pos;
        pos += b;
        if (d->act == MIMIC_ACT_IDENTITY) {
            d->a = d->z;
        } else {
            d->a = pos;
            pos += b;
        }
    }
    ts->g0 = pos;
    pos += ALIGN64(rowb * (size_t)width);
    ts->g1 = pos;
    pos += ALIGN64(rowb * (size_t)width);
    ts->acc = (double *)(void *)pos;
    pos += TS_PARTS * ALIGN64((size_t)width * sizeof(double));
    ts->g2 = pos;
    mimic_tensor_retain(params);
    mimic_tensor_retain(grads);
    ts->params = params;
    ts->grads = grads;
    return ts;
}

int mimic_trainstep_set_threads(mimic_trainstep *ts, int n)
{
    if (!ts)
        return mimic_error(MIMIC_EARG, "mimic_trainstep_set_threads: step is NULL");
    if (n < 0 || n > TS_PARTS)
        return mimic_error(MIMIC_EARG, "mimic_trainstep_set_threads: %d threads; give 0 (choose by timing), 1 or 2", n);
    ts->threads = n;
    return MIMIC_OK;
}

int mimic_trainstep_set_loss(mimic_trainstep *ts, mimic_trainstep_loss kind, double delta, bool sum)
{
    if (!ts)
        return mimic_error(MIMIC_EARG, "mimic_trainstep_set_loss: step is NULL");
    if (kind != MIMIC_LOSS_MSE && kind != MIMIC_LOSS_L1 && kind != MIMIC_LOSS_HUBER)
        return mimic_error(MIMIC_EARG, "mimic_trainstep_set_loss: unknown loss %d (MIMIC_LOSS_MSE, _L1, _HUBER)",
                           (int)kind);
    if (kind == MIMIC_LOSS_HUBER && !(delta > 0))
        return mimic_error(MIMIC_EARG, "mimic_trainstep_set_loss: Huber delta must be > 0, got %g", delta);
    ts->loss = kind;
    ts->delta = delta;
    ts->sum = sum;
    return MIMIC_OK;
}

/* C = op(A) op(B) (alpha 1, beta 0), row-major, in the step's dtype. */
static void gemm(const mimic_trainstep *ts, bool ta, bool tb, int64_t m, int64_t n, int64_t k, const void *a,
                 int64_t lda, const void *b, int64_t ldb, void *c, int64_t ldc)
{
    enum CBLAS_TRANSPOSE oa = ta ? CblasTrans : CblasNoTrans, ob = tb ? CblasTrans : CblasNoTrans;
    if (ts->dtype == MIMIC_F32)
        cblas_sgemm(CblasRowMajor, oa, ob, (int)m, (int)n, (int)k, 1.0f, a, (int)lda, b, (int)ldb, 0.0f, c, (int)ldc);
    else
        cblas_dgemm(CblasRowMajor, oa, ob, (int)m, (int)n, (int)k, 1.0, a, (int)lda, b, (int)ldb, 0.0, c, (int)ldc);
}

static int check_state(const char *what, const mimic_tensor *t, const mimic_trainstep *ts)
{
    if (!flat_ok(t, ts->dtype, ts->nparams))
        return mimic_error(MIMIC_EARG, "mimic_trainstep_step: the optimizer's %s must be a 1-D contiguous %s tensor "
                           "of %lld elements (one per parameter)", what, mimic_dtype_name(ts->dtype),
                           (long long)ts->nparams);
    return MIMIC_OK;
}

static int check_optim(const mimic_trainstep *ts, const mimic_trainstep_optim *o)
{
    const char *fn = "mimic_trainstep_step";
    if (!(o->lr >= 0) || !(o->weight_decay >= 0))
        return mimic_error(MIMIC_EARG, "%s: lr and weight_decay must be >= 0, got %g and %g", fn, o->lr, o->weight_decay);
    switch (o->kind) {
    case MIMIC_OPTIM_ADAM:
    case MIMIC_OPTIM_ADAMW:
        if (o->step < 1)
            return mimic_error(MIMIC_EARG, "%s: the Adam step count must be >= 1 (the count after this update)", fn);
        if (check_state("exp_avg", o->exp_avg, ts) || check_state("exp_avg_sq", o->exp_avg_sq, ts) ||
            (o->max_exp_avg_sq && check_state("max_exp_avg_sq", o->max_exp_avg_sq, ts)))
            return mimic_errcode();
        return MIMIC_OK;
    case MIMIC_OPTIM_SGD:
        if (o->momentum != 0 && check_state("momentum_buffer", o->momentum_buffer, ts))
            return mimic_errcode();
        return MIMIC_OK;
    }
    return mimic_error(MIMIC_EARG, "%s: unknown optimizer kind %d (MIMIC_OPTIM_SGD, _ADAM, _ADAMW)", fn, (int)o->kind);
}

/* Rows [r0, r0 + rows) of a row-major [*, w] buffer. */
static char *rows_at(const mimic_trainstep *ts, const void *base, int64_t r0, int64_t w)
{
    return (char *)(uintptr_t)base + (size_t)(r0 * w) * ts->es;
}

/* Forward and loss of rows [r0, r0 + rows) of the batch of n: the loss summed
 * over those rows, and its gradient (scaled for the whole batch) in g0. */
static double forward_part(mimic_trainstep *ts, const void *x, const void *y, int64_t r0, int64_t rows, int64_t n)
{
    bool f32 = ts->dtype == MIMIC_F32;
    size_t es = ts->es;
    const char *P = mimic_data(ts->params);
    const void *in = rows_at(ts, x, r0, ts->nin);
    for (int i = 0; i < ts->n; i++) {
        ts_layer *l = &ts->layers[i];
        char *z = rows_at(ts, l->z, r0, l->out), *a = rows_at(ts, l->a, r0, l->out);
        gemm(ts, false, true, rows, l->out, l->in, in, l->in, P + (size_t)l->w_off * es, l->in, z, l->out);
        const void *b = l->b_off >= 0 ? P + (size_t)l->b_off * es : NULL;
        if (f32)
            ts_bias_act_f32(rows, l->out, (float *)(void *)z, (float *)(void *)a, b, l->act, (float)l->a0,
                            (float)l->a1);
        else
            ts_bias_act_f64(rows, l->out, (double *)(void *)z, (double *)(void *)a, b, l->act, l->a0, l->a1);
        in = a;
    }
    int64_t m = rows * ts->nout;
    double scale = ts->sum ? 1.0 : 1.0 / (double)(n * ts->nout);
    const void *yp = rows_at(ts, y, r0, ts->nout);
    void *g = rows_at(ts, ts->g0, r0, ts->width); /* each part's own region: see backward_part */
    if (f32)
        return ts_loss_f32(m, in, yp, g, ts->loss, (float)ts->delta, (float)scale);
    return ts_loss_f64(m, in, yp, g, ts->loss, ts->delta, scale);
}

/* Backward of the part's rows, its parameter gradient into G (a buffer laid
 * out as the flat parameters). */
static void backward_part(mimic_trainstep *ts, const void *x, int64_t r0, int64_t rows, int part, char *G)
{
    bool f32 = ts->dtype == MIMIC_F32;
    size_t es = ts->es;
    const char *P = mimic_data(ts->params);
    double *acc = ts->acc + (size_t)part * (ALIGN64((size_t)ts->width * sizeof(double)) / sizeof(double));
    char *g = ts->g0, *other = ts->g1;
    for (int i = ts->n - 1; i >= 0; i--) {
        ts_layer *l = &ts->layers[i];
        /* The gradient buffers are [n, width]: part p owns rows from r0 at that
         * width, so its [rows, w] matrices never reach another part's. */
        char *gi = rows_at(ts, g, r0, ts->width);
        const char *z = rows_at(ts, l->z, r0, l->out), *a = rows_at(ts, l->a, r0, l->out);
        double *ac = l->b_off >= 0 ? acc : NULL;
        if (f32)
            ts_dact_colsum_f32(rows, l->out, (float *)(void *)gi, (const float *)(const void *)z,
                               (const float *)(const void *)a, l->act, (float)l->a0, (float)l->a1, ac);
        else
            ts_dact_colsum_f64(rows, l->out, (double *)(void *)gi, (const double *)(const void *)z,
                               (const double *)(const void *)a, l->act, l->a0, l->a1, ac);
        if (ac) {
            if (f32) {
                float *gb = (float *)(void *)(G + (size_t)l->b_off * es);
                for (int64_t j = 0; j < l->out; j++)
                    gb[j] = (float)ac[j];
            } else {
                memcpy(G + (size_t)l->b_off * es, ac, (size_t)l->out * sizeof(double));
            }
        }
        const void *prev = i ? rows_at(ts, ts->layers[i - 1].a, r0, l->in) : rows_at(ts, x, r0, ts->nin);
        gemm(ts, true, false, l->out, l->in, rows, gi, l->out, prev, l->in, G + (size_t)l->w_off * es, l->in);
        if (i) {
            gemm(ts, false, false, rows, l->in, l->out, gi, l->out, P + (size_t)l->w_off * es, l->in,
                 rows_at(ts, other, r0, ts->width), l->in);
            char *t = g;
            g = other;
            other = t;
        }
    }
}

static void add_into(const mimic_trainstep *ts, int64_t n, char *G, const char *G2)
{
    if (ts->dtype == MIMIC_F32)
        ts_add_f32(n, (float *)(void *)G, (const float *)(const void *)G2);
    else
        ts_add_f64(n, (double *)(void *)G, (const double *)(const void *)G2);
}

/* Elements [i0, i1) of the gradient (adding part 1's when g2 is not NULL)
 * and of the update (o NULL: none). */
static void update_range(mimic_trainstep *ts, const mimic_trainstep_optim *o, const char *g2, int64_t i0, int64_t i1)
{
    if (i1 <= i0)
        return;
    size_t es = ts->es, off = (size_t)i0 * es;
    char *P = (char *)mimic_data(ts->params) + off, *G = (char *)mimic_data(ts->grads) + off;
    const char *G2 = g2 ? g2 + off : NULL;
    int64_t n = i1 - i0;
    bool f32 = ts->dtype == MIMIC_F32;
    if (G2)
        add_into(ts, n, G, G2); /* the two parts' gradients, in cache for the update */
    if (!o)
        return;
    if (o->kind == MIMIC_OPTIM_SGD) {
        char *buf = o->momentum != 0 ? (char *)mimic_data(o->momentum_buffer) + off : NULL;
        if (f32)
            ts_sgd_f32(n, (float *)(void *)P, (const float *)(void *)G, (float *)(void *)buf, o->init_buffer,
                       (float)o->lr, (float)o->weight_decay, (float)o->momentum, (float)(1 - o->dampening),
                       o->nesterov);
        else
            ts_sgd_f64(n, (double *)(void *)P, (const double *)(void *)G, (double *)(void *)buf, o->init_buffer, o->lr,
                       o->weight_decay, o->momentum, 1 - o->dampening, o->nesterov);
        return;
    }
    /* As mimic_adam_update: the constants in double, then rounded to T. */
    double lr = o->lr, wd = o->weight_decay;
    double bias1 = 1 - pow(o->beta1, (double)o->step), bias2 = 1 - pow(o->beta2, (double)o->step);
    double step_size = lr / bias1, bias2_sqrt = sqrt(bias2);
    bool decoupled = o->kind == MIMIC_OPTIM_ADAMW, l2 = !decoupled && wd != 0;
    char *M = (char *)mimic_data(o->exp_avg) + off, *V = (char *)mimic_data(o->exp_avg_sq) + off;
    char *VM = o->max_exp_avg_sq ? (char *)mimic_data(o->max_exp_avg_sq) + off : NULL;
    if (f32) {
        float *Pf = (float *)(void *)P, *Mf = (float *)(void *)M, *Vf = (float *)(void *)V;
        const float *Gf = (const float *)(void *)G;
        float b1 = (float)o->beta1, c1 = (float)(1 - o->beta1), b2 = (float)o->beta2, c2 = (float)(1 - o->beta2),
              wdf = (float)wd, keep = (float)(1 - lr * wd), nss = (float)(-step_size), b2s = (float)bias2_sqrt,
              ep = (float)o->eps;
        int64_t done = 0;
#ifdef TS_AVX2_ADAM
        if (!VM && __builtin_cpu_supports("avx2"))
            done = adam_f32_avx2(n, Pf, Gf, Mf, Vf, decoupled, l2, b1, c1, b2, c2, wdf, keep, nss, b2s, ep);
#endif
        ts_adam_f32(n - done, Pf + done, Gf + done, Mf + done, Vf + done, VM ? (float *)(void *)VM + done : NULL,
                    decoupled, l2, b1, c1, b2, c2, wdf, keep, nss, b2s, ep);
    } else
        ts_adam_f64(n, (double *)(void *)P, (const double *)(void *)G,
                    (double *)(void *)M, (double *)(void *)V, (double *)(void *)VM, decoupled, l2, o->beta1,
                    1 - o->beta1, o->beta2, 1 - o->beta2, wd, 1 - lr * wd, -step_size, bias2_sqrt, o->eps);
}

/* Forward, loss and backward of part p (whose gradient goes to the flat
 * buffer for part 0, to g2 for part 1). */
static void run_part(mimic_trainstep *ts, const void *x, const void *y, int64_t n, int parts, int p, double *part_loss)
{
    int64_t cut = parts == 1 ? n : (n / 2 + 7) / 8 * 8;
    int64_t r0 = p ? cut : 0, rows = p ? n - cut : cut;
    part_loss[p] = forward_part(ts, x, y, r0, rows, n);
    if (isfinite(part_loss[p]))
        backward_part(ts, x, r0, rows, p, p == 0 ? (char *)mimic_data(ts->grads) : ts->g2);
}

static double total_loss(const mimic_trainstep *ts, const double *part_loss, int parts, int64_t n)
{
    double s = 0;
    for (int p = 0; p < parts; p++)
        s += part_loss[p];
    return ts->sum ? s : s / (double)(n * ts->nout);
}

/* The step as thread t of nt runs it (t = 0, nt = 1: serially): its parts,
 * then (after a barrier inside a parallel region) its share of the update,
 * cut at multiples of 16 elements (whole cache lines). */
static void run_thread(mimic_trainstep *ts, const void *x, const void *y, int64_t n, int parts,
                       const mimic_trainstep_optim *o, double *part_loss, int t, int nt)
{
    for (int p = t; p < parts; p += nt)
        run_part(ts, x, y, n, parts, p, part_loss);
#ifdef _OPENMP
    if (nt > 1) {
#pragma omp barrier
    }
#endif
    if (!isfinite(total_loss(ts, part_loss, parts, n)))
        return; /* every thread sees the same sum: all stop here */
    int64_t np = ts->nparams, i0 = np * t / nt / 16 * 16, i1 = t == nt - 1 ? np : np * (t + 1) / nt / 16 * 16;
    update_range(ts, o, parts > 1 ? ts->g2 : NULL, i0, i1);
}

static double now_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int mimic_trainstep_step(mimic_trainstep *ts, const void *x, const void *y, int64_t n,
                         const mimic_trainstep_optim *opt, double *loss)
{
    const char *fn = "mimic_trainstep_step";
    if (!ts || !x || !y || !loss)
        return mimic_error(MIMIC_EARG, "%s: %s is NULL", fn, !ts ? "step" : !x ? "x" : !y ? "y" : "loss");
    if (n < 1 || n > ts->max_batch)
        return mimic_error(MIMIC_EARG, "%s: batch of %lld rows; this step takes 1..%lld (max_batch at creation: make "
                           "a new step for larger batches)", fn, (long long)n, (long long)ts->max_batch);
    if (opt && check_optim(ts, opt))
        return mimic_errcode();
    int parts = n >= 2 * TS_MIN_PART_ROWS ? TS_PARTS : 1;
    double part_loss[TS_PARTS] = {0};
#ifdef _OPENMP
    int nthr = omp_get_max_threads();
    bool nested = omp_in_parallel();
    /* Two threads or one: the faster on recent steps (seconds per row, a
     * moving average of the way in use). The other way is tried one step in
     * `probe` (its measure replaces its stale average); the interval grows,
     * up to TS_PROBE_MAX, while the probes confirm the choice, since a probe
     * on a loaded machine can cost 10 steps. The first two steps (one each
     * way) only warm up. The bits are the same either way. */
    bool threads = !nested && nthr > 1 && parts > 1, timed = threads && !ts->threads, probing = false;
    int64_t k = 0;
    if (threads && ts->threads) {
        threads = ts->threads == 2;
    } else if (threads) {
        k = ts->count++;
        if (k < 4) {
            threads = k & 1;
        } else if (++ts->since >= ts->probe) {
            threads = ts->rate[1] > ts->rate[0];
            ts->since = 0;
            probing = true;
        } else {
            threads = ts->rate[1] <= ts->rate[0];
        }
    }
    double t0 = timed ? now_seconds() : 0;
    if (threads) {
#pragma omp parallel num_threads(parts)
        run_thread(ts, x, y, n, parts, opt, part_loss, omp_get_thread_num(), omp_get_num_threads());
    } else {
        if (!nested && nthr > 1)
            omp_set_num_threads(1); /* single-threaded gemms (OpenBLAS's OpenMP build follows it) */
        run_thread(ts, x, y, n, parts, opt, part_loss, 0, 1);
        if (!nested && nthr > 1)
            omp_set_num_threads(nthr);
    }
    if (timed && k >= 2) {
        bool before = ts->rate[1] <= ts->rate[0];
        double r = (now_seconds() - t0) / (double)n, *avg = &ts->rate[threads];
        *avg = k < 4 || probing ? r : 0.75 * *avg + 0.25 * r;
        if (k == 3 || probing) {
            /* The further behind the other way, the longer until the next
             * probe: the interval grows by the ratio of the two (2..8x). */
            double hi = fmax(ts->rate[0], ts->rate[1]), lo = fmin(ts->rate[0], ts->rate[1]);
            double f = lo > 0 ? fmin(fmax(hi / lo, 2), 8) : 2;
            bool same = (ts->rate[1] <= ts->rate[0]) == before;
            if (k == 3)
                ts->probe = (int64_t)(TS_PROBE_MIN * f / 2);
            else
                ts->probe = same ? (int64_t)((double)ts->probe * f) : TS_PROBE_MIN;
            if (ts->probe > TS_PROBE_MAX)
                ts->probe = TS_PROBE_MAX;
        }
    }
#else
    run_thread(ts, x, y, n, parts, opt, part_loss, 0, 1);
#endif
    double l = total_loss(ts, part_loss, parts, n);
    *loss = l;
    if (!isfinite(l)) /* as after zero_grad in the autograd path: no gradient (and no update was made) */
        memset(mimic_data(ts->grads), 0, (size_t)ts->nparams * ts->es);
    return MIMIC_OK;
}

mimic_dtype mimic_trainstep_dtype(const mimic_trainstep *ts) { return ts ? ts->dtype : MIMIC_F32; }
int64_t mimic_trainstep_nin(const mimic_trainstep *ts) { return ts ? ts->nin : 0; }
int64_t mimic_trainstep_nout(const mimic_trainstep *ts) { return ts ? ts->nout : 0; }
int64_t mimic_trainstep_max_batch(const mimic_trainstep *ts) { return ts ? ts->max_batch : 0; }
int64_t mimic_trainstep_num_params(const mimic_trainstep *ts) { return ts ? ts->nparams : 0; }
