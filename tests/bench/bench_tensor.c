/* Tensor benchmarks: mimic's matmul and element-wise ops, each beside a
 * baseline timed in the same run on the same buffers (raw cblas_sgemm; a plain
 * C loop with the same OpenMP threads; memcpy). Repeats interleave mimic and
 * baseline after a warm-up, and the table reports medians.
 *
 * Threads: all cores, or MIMIC_BENCH_THREADS. Repeats: 9, or MIMIC_BENCH_REPEATS (>= 7 advised). */
#include "mimic/ops.h"
#include "mimic/rng.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "benchutil.h"

#define SAMPLE_SECONDS 0.08 /* each timed sample loops the op for at least this long */

static int repeats = 9;

static void die_if(int failed, const char *what)
{
    if (failed) {
        fprintf(stderr, "bench_tensor: %s failed: %s\n", what, mimic_errmsg());
        exit(1);
    }
}

typedef void (*bench_fn)(void *ctx);

/* Seconds per call over `inner` back-to-back calls. */
static double sample(bench_fn f, void *ctx, int inner)
{
    double t0 = now();
    for (int i = 0; i < inner; i++)
        f(ctx);
    return (now() - t0) / inner;
}

/* Median seconds per call of a and b, timed alternately, and the median of the
 * per-repeat throughput ratios a/b: adjacent samples see the same machine load,
 * so the ratio stays steady when other work slows both down. */
static void compare(bench_fn fa, void *ca, bench_fn fb, void *cb, double *ta, double *tb, double *ratio)
{
    sample(fa, ca, 1); /* warm-up: pages, caches, thread pools */
    sample(fb, cb, 1);
    double one = sample(fa, ca, 1);
    int inner = one >= SAMPLE_SECONDS ? 1 : (int)(SAMPLE_SECONDS / one) + 1;
    double sa[64], sb[64], q[64];
    for (int r = 0; r < repeats; r++) {
        sa[r] = sample(fa, ca, inner);
        sb[r] = sample(fb, cb, inner);
        q[r] = sb[r] / sa[r];
    }
    *ta = median(sa, repeats);
    *tb = median(sb, repeats);
    *ratio = median(q, repeats);
}

static void row(const char *name, double work, const char *unit, double ta, const char *base, double tb,
                double ratio)
{
    printf("| %-38s | %8.1f %-6s | %8.1f %-6s | %-20s | %5.2f |\n", name, work / ta, unit, work / tb, unit, base,
           ratio);
    fflush(stdout);
}

static mimic_tensor *randn(int ndim, const int64_t *shape, mimic_rng *r)
{
    mimic_tensor *t = mimic_empty(ndim, shape, MIMIC_F32);
    die_if(!t || mimic_rng_uniform(r, t, -1, 1), "allocating an operand");
    return t;
}

/* --- matmul --------------------------------------------------------------------- */
typedef struct mm_case {
    mimic_tensor *out;
    const mimic_tensor *a, *b;
    /* the same product as one raw sgemm */
    enum CBLAS_TRANSPOSE ta, tb;
    int M, N, K, lda, ldb;
    const float *A, *B;
    float *C;
} mm_case;

static void run_mimic_mm(void *ctx)
{
    mm_case *c = ctx;
    die_if(mimic_matmul_out(c->out, c->a, c->b), "mimic_matmul_out");
}

static void run_sgemm(void *ctx)
{
    mm_case *c = ctx;
    cblas_sgemm(CblasRowMajor, c->ta, c->tb, c->M, c->N, c->K, 1.0f, c->A, c->lda, c->B, c->ldb, 0.0f, c->C, c->N);
}

/* trans_a/trans_b: the operand is a transposed view of a contiguous matrix.
 * batch > 1: a is [batch, M/batch, K] (mimic folds it into one gemm). */
static void bench_matmul(mimic_rng *r, int M, int N, int K, bool trans_a, bool trans_b, int batch)
{
    mimic_tensor *as = trans_a ? randn(2, (int64_t[]){K, M}, r) : randn(2, (int64_t[]){M, K}, r);
    mimic_tensor *bs = trans_b ? randn(2, (int64_t[]){N, K}, r) : randn(2, (int64_t[]){K, N}, r);
    mimic_tensor *a = trans_a ? mimic_transpose(as, 0, 1) : mimic_view(as, 2, (int64_t[]){M, K});
    mimic_tensor *b = trans_b ? mimic_transpose(bs, 0, 1) : mimic_view(bs, 2, (int64_t[]){K, N});
    mimic_tensor *out = mimic_zeros(2, (int64_t[]){M, N}, MIMIC_F32);
    if (batch > 1) {
        mimic_tensor *a3 = mimic_view(as, 3, (int64_t[]){batch, M / batch, K});
        mimic_tensor *o3 = mimic_view(out, 3, (int64_t[]){batch, M / batch, N});
        mimic_tensor_free(a);
        mimic_tensor_free(out);
        a = a3;
        out = o3;
    }
    die_if(!a || !b || !out, "making views");
    mm_case c = {.out = out, .a = a, .b = b, .ta = trans_a ? CblasTrans : CblasNoTrans,
                 .tb = trans_b ? CblasTrans : CblasNoTrans, .M = M, .N = N, .K = K,
                 .lda = trans_a ? M : K, .ldb = trans_b ? K : N, .A = mimic_data(as), .B = mimic_data(bs),
                 .C = mimic_data(out)};
    double tm, ts, q;
    compare(run_mimic_mm, &c, run_sgemm, &c, &tm, &ts, &q);
    char name[80];
    if (batch > 1)
        snprintf(name, sizeof name, "matmul [%d,%d,%d]x[%d,%d] (batched)", batch, M / batch, K, K, N);
    else
        snprintf(name, sizeof name, "matmul %dx%dx%d%s%s", M, K, N, trans_a ? " A^T" : "", trans_b ? " B^T" : "");
    row(name, 2.0 * M * N * K * 1e-9, "GFLOP/s", tm, "cblas_sgemm", ts, q);
    mimic_tensor_free(a);
    mimic_tensor_free(b);
    mimic_tensor_free(as);
    mimic_tensor_free(bs);
    mimic_tensor_free(out);
}

/* --- element-wise ------------------------------------------------------------------ */
typedef struct ew_case {
    mimic_tensor *out, *a, *b; /* b: second operand (add), or NULL */
    float *restrict o;
    const float *restrict x, *restrict y;
    int64_t n, rows, cols;
} ew_case;

static void m_add(void *ctx) { ew_case *c = ctx; die_if(mimic_binary_out(c->out, MIMIC_ADD, c->a, c->b), "add"); }
static void m_exp(void *ctx) { ew_case *c = ctx; die_if(mimic_unary_out(c->out, MIMIC_EXP, c->a), "exp"); }
static void m_relu(void *ctx) { ew_case *c = ctx; die_if(mimic_unary_out(c->out, MIMIC_RELU, c->a), "relu"); }
static void m_copy(void *ctx) { ew_case *c = ctx; die_if(mimic_copy(c->out, c->a), "copy"); }

static void c_add(void *ctx)
{
    ew_case *c = ctx;
    float *restrict o = c->o;
    const float *restrict x = c->x, *restrict y = c->y;
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < c->n; i++)
        o[i] = x[i] + y[i];
}

static void c_exp(void *ctx)
{
    ew_case *c = ctx;
    float *restrict o = c->o;
    const float *restrict x = c->x;
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < c->n; i++)
        o[i] = expf(x[i]);
}

static void c_relu(void *ctx)
{
    ew_case *c = ctx;
    float *restrict o = c->o;
    const float *restrict x = c->x;
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < c->n; i++)
        o[i] = x[i] > 0 ? x[i] : 0;
}

static void c_add_row(void *ctx)
{
    ew_case *c = ctx;
    float *restrict o = c->o;
    const float *restrict x = c->x, *restrict y = c->y;
    int64_t cols = c->cols;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < c->rows; i++) {
#pragma omp simd
        for (int64_t j = 0; j < cols; j++)
            o[i * cols + j] = x[i * cols + j] + y[j];
    }
}

/* out = x^T, x square rows x cols, in 32x32 tiles. */
static void c_transpose(void *ctx)
{
    ew_case *c = ctx;
    float *restrict o = c->o;
    const float *restrict x = c->x;
    int64_t R = c->rows, C = c->cols;
#pragma omp parallel for schedule(static)
    for (int64_t i0 = 0; i0 < C; i0 += 32)
        for (int64_t j0 = 0; j0 < R; j0 += 32)
            for (int64_t i = i0; i < i0 + 32 && i < C; i++)
                for (int64_t j = j0; j < j0 + 32 && j < R; j++)
                    o[i * R + j] = x[j * C + i];
}

static void c_memcpy(void *ctx)
{
    ew_case *c = ctx;
    int64_t chunk = 1 << 16;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < c->n; i += chunk)
        memcpy(c->o + i, c->x + i, sizeof(float) * (size_t)(c->n - i < chunk ? c->n - i : chunk));
}

static void bench_elementwise(mimic_rng *r)
{
    const int64_t n = INT64_C(1) << 24, side = INT64_C(1) << 12; /* side^2 == n */
    mimic_tensor *a = randn(1, &n, r), *b = randn(1, &n, r), *out = mimic_zeros(1, &n, MIMIC_F32);
    ew_case c = {.out = out, .a = a, .b = b, .o = mimic_data(out), .x = mimic_data(a), .y = mimic_data(b), .n = n};
    double gb = 1e-9 * sizeof(float) * (double)n, tm, tb, q;

    compare(m_add, &c, c_add, &c, &tm, &tb, &q);
    row("add, 2^24 float32", 3 * gb, "GB/s", tm, "C loop", tb, q);
    compare(m_exp, &c, c_exp, &c, &tm, &tb, &q);
    row("exp, 2^24 float32", 2 * gb, "GB/s", tm, "C loop", tb, q);
    compare(m_relu, &c, c_relu, &c, &tm, &tb, &q);
    row("relu, 2^24 float32", 2 * gb, "GB/s", tm, "C loop", tb, q);

    mimic_tensor *a2 = mimic_view(a, 2, (int64_t[]){side, side}), *o2 = mimic_view(out, 2, (int64_t[]){side, side});
    mimic_tensor *rowv = randn(1, &side, r);
    die_if(!a2 || !o2, "making views");
    ew_case rc = {.out = o2, .a = a2, .b = rowv, .o = mimic_data(o2), .x = mimic_data(a2), .y = mimic_data(rowv),
                  .n = n, .rows = side, .cols = side};
    compare(m_add, &rc, c_add_row, &rc, &tm, &tb, &q);
    row("add row vector, [4096,4096]+[4096]", 2 * gb, "GB/s", tm, "C loop", tb, q);

    mimic_tensor *at = mimic_transpose(a2, 0, 1);
    ew_case tc = {.out = o2, .a = at, .o = mimic_data(o2), .x = mimic_data(a2), .n = n, .rows = side, .cols = side};
    compare(m_copy, &tc, c_transpose, &tc, &tm, &tb, &q);
    row("copy transposed [4096,4096]", 2 * gb, "GB/s", tm, "C loop (32x32 tiles)", tb, q);
    compare(m_copy, &tc, c_memcpy, &tc, &tm, &tb, &q);
    row("copy transposed [4096,4096]", 2 * gb, "GB/s", tm, "memcpy", tb, q);

    mimic_tensor *list[] = {a, b, out, a2, o2, rowv, at};
    for (size_t i = 0; i < sizeof list / sizeof list[0]; i++)
        mimic_tensor_free(list[i]);
}

int main(void)
{
    const char *env = getenv("MIMIC_BENCH_THREADS");
    mimic_set_num_threads(env ? atoi(env) : 0);
    if ((env = getenv("MIMIC_BENCH_REPEATS")) && atoi(env) > 0)
        repeats = atoi(env) > 63 ? 63 : atoi(env);
    mimic_rng rng;
    mimic_rng_init(&rng, 1);
    double t0 = now();
    printf("### bench_tensor: %d threads, median of %d interleaved repeats (after a warm-up)\n\n",
           mimic_get_num_threads(), repeats);
    printf("| %-38s | %-15s | %-15s | %-20s | %5s |\n", "case", "mimic", "baseline", "baseline is", "ratio");
    printf("|%s|%s|%s|%s|%s|\n", "----------------------------------------", "-----------------:",
           "-----------------:", "----------------------", "------:");
    bench_matmul(&rng, 256, 256, 256, false, false, 1);
    bench_matmul(&rng, 1024, 1024, 1024, false, false, 1);
    bench_matmul(&rng, 65536, 64, 64, false, false, 1);
    bench_matmul(&rng, 1024, 1024, 1024, true, false, 1);
    bench_matmul(&rng, 1024, 1024, 1024, false, true, 1);
    bench_matmul(&rng, 65536, 64, 64, false, false, 64);
    bench_elementwise(&rng);
    printf("\nratio: median over repeats of mimic/baseline throughput, each repeat timing both back to back; "
           "%.0f s in all\n", now() - t0);
    return 0;
}
