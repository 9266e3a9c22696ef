/* Inference plan benchmark: float32 MLPs (LeakyReLU 0.2 between dense layers)
 * through mimic_plan_run, beside the bare sgemm calls of the same layer stack
 * timed in the same run, and beside PyTorch (tests/bench/torch_mlp.py, run
 * first by this program under the same protocol).
 *
 * Protocol: 2 threads (MIMIC_BENCH_THREADS), warm-up, repeats interleaved
 * (MIMIC_BENCH_REPEATS, default 7), medians, preallocated inputs/outputs.
 *  - throughput at batch 131072: samples/s, GFLOP/s (2 * sum(in*out) per
 *    sample; the bias and activation pass is not counted), % of the best raw
 *    sgemm rate (the better of: one threaded sgemm per layer over the whole
 *    batch; per-thread chunks of single-threaded sgemm calls), ratio to PyTorch;
 *  - latency of one batch of 64 against the bare sgemm calls of that batch
 *    (the better of: threaded sgemm per layer; rows split over the threads
 *    in one parallel region, as the plan does).
 * MIMIC_TORCH=0 skips PyTorch. Nothing here asserts on speed. */
#include "mimic/model.h"

#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "benchutil.h"

#define BIG 131072
#define SMALL 64
#define SMALL_CALLS 2000

static int repeats = 7, threads = 2;

static void die_if(int failed, const char *what)
{
    if (failed) {
        fprintf(stderr, "bench_plan: %s failed: %s\n", what, mimic_errmsg());
        exit(1);
    }
}

typedef struct net {
    const char *name;
    int nl;         /* dense layers */
    int64_t w[4];   /* widths: w[0] -> ... -> w[nl] */
    float *W[3];    /* [in, out] for the raw sgemm baseline */
    float *buf[3];  /* raw baseline outputs, BIG rows each */
    mimic_model *model;
} net;

static net nets[] = {
    {"7-64-64-256", 3, {7, 64, 64, 256}, {0}, {0}, NULL},
    {"375-64-64-6", 3, {375, 64, 64, 6}, {0}, {0}, NULL},
    {"10-128-128-10", 3, {10, 128, 128, 10}, {0}, {0}, NULL},
};
#define NNETS (int)(sizeof nets / sizeof nets[0])

static float frand(void) { return (float)rand() / (float)RAND_MAX * 2 - 1; }

static void setup(net *n)
{
    n->model = mimic_model_new(MIMIC_F32, n->w[0]);
    die_if(!n->model, "mimic_model_new");
    for (int l = 0; l < n->nl; l++) {
        int64_t in = n->w[l], out = n->w[l + 1];
        float *W = malloc((size_t)(in * out) * sizeof(float)), *b = malloc((size_t)out * sizeof(float));
        for (int64_t i = 0; i < in * out; i++)
            W[i] = frand() / 8;
        for (int64_t i = 0; i < out; i++)
            b[i] = frand() / 8;
        die_if(mimic_model_add_dense(n->model, out, W, b), "add_dense");
        if (l < n->nl - 1)
            die_if(mimic_model_add_activation(n->model, MIMIC_ACT_LEAKY_RELU, 0.2, 0), "add_activation");
        n->W[l] = malloc((size_t)(in * out) * sizeof(float)); /* transposed copy: [in, out] */
        for (int64_t o = 0; o < out; o++)
            for (int64_t k = 0; k < in; k++)
                n->W[l][k * out + o] = W[o * in + k];
        n->buf[l] = calloc((size_t)BIG * (size_t)out, sizeof(float));
        free(W), free(b);
    }
}

static double flops_per_sample(const net *n)
{
    double f = 0;
    for (int l = 0; l < n->nl; l++)
        f += 2.0 * (double)n->w[l] * (double)n->w[l + 1];
    return f;
}

/* The raw layer stack: sgemm only, no bias, no activation. rows at x. */
static void raw_stack(const net *n, const float *x, int64_t r0, int64_t rows)
{
    const float *h = x + r0 * n->w[0];
    for (int l = 0; l < n->nl; l++) {
        float *y = n->buf[l] + r0 * n->w[l + 1];
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)n->w[l + 1], (int)n->w[l], 1.0f, h,
                    (int)n->w[l], n->W[l], (int)n->w[l + 1], 0.0f, y, (int)n->w[l + 1]);
        h = y;
    }
}

/* The same, in per-thread chunks of single-threaded sgemm calls. */
static void raw_chunked(const net *n, const float *x, int64_t rows, int64_t chunk)
{
    int64_t nchunks = (rows + chunk - 1) / chunk;
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t c = 0; c < nchunks; c++) {
        int64_t r0 = c * chunk;
        raw_stack(n, x, r0, rows - r0 < chunk ? rows - r0 : chunk);
    }
}

/* PyTorch's medians, by net and batch, from the script's output. */
static double torch_s[NNETS][2];

static void run_torch(void)
{
    const char *flag = getenv("MIMIC_TORCH");
    if (flag && strcmp(flag, "0") == 0)
        return;
    const char *script = getenv("MIMIC_TORCH_SCRIPT") ? getenv("MIMIC_TORCH_SCRIPT") : "tests/bench/torch_mlp.py";
    char cmd[512];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s %d 2>/dev/null", script, repeats);
    FILE *f = popen(cmd, "r");
    if (!f)
        return;
    char line[256], name[64];
    long batch;
    double s;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "torch %63s %ld %lf", name, &batch, &s) == 3)
            for (int i = 0; i < NNETS; i++)
                if (strcmp(name, nets[i].name) == 0)
                    torch_s[i][batch == SMALL] = s;
    pclose(f);
}

int main(void)
{
    if (getenv("MIMIC_BENCH_REPEATS"))
        repeats = atoi(getenv("MIMIC_BENCH_REPEATS"));
    if (getenv("MIMIC_BENCH_THREADS"))
        threads = atoi(getenv("MIMIC_BENCH_THREADS"));
    if (repeats < 5)
        repeats = 5;
    run_torch(); /* first, alone on the machine */
    mimic_set_num_threads(threads);
    srand(1);
    for (int i = 0; i < NNETS; i++)
        setup(&nets[i]);

    static const int64_t chunks[] = {0, 64, 128, 256, 512, 1024, 4096};
#define NCH (int)(sizeof chunks / sizeof chunks[0])
    double plan_big[NNETS], det_big[NNETS], raw_best[NNETS], raw_full[NNETS], raw_chunk[NNETS];
    double chunk_s[NNETS][NCH], plan_small[NNETS], raw_small[NNETS], raw_small_threaded[NNETS], raw_small_split[NNETS];
    int64_t auto_chunk[NNETS];
    double *t = malloc(sizeof(double) * (size_t)repeats * (NCH + 5));

    for (int i = 0; i < NNETS; i++) {
        net *n = &nets[i];
        float *x = malloc((size_t)BIG * (size_t)n->w[0] * sizeof(float));
        float *y = malloc((size_t)BIG * (size_t)n->w[n->nl] * sizeof(float));
        for (int64_t k = 0; k < BIG * n->w[0]; k++)
            x[k] = frand();
        mimic_plan *plans[NCH], *det;
        for (int c = 0; c < NCH; c++)
            die_if(!(plans[c] = mimic_plan_new(n->model, chunks[c])), "mimic_plan_new");
        auto_chunk[i] = mimic_plan_chunk(plans[0]);
        die_if(!(det = mimic_plan_new(n->model, 0)), "mimic_plan_new");
        mimic_plan_set_deterministic(det, true);
        int64_t base_chunk = auto_chunk[i];

        /* batch BIG: warm-up, then every variant once per repeat */
        for (int c = 0; c < NCH; c++)
            die_if(mimic_plan_run(plans[c], x, BIG, y), "mimic_plan_run");
        die_if(mimic_plan_run(det, x, BIG, y), "mimic_plan_run");
        raw_stack(n, x, 0, BIG);
        raw_chunked(n, x, BIG, base_chunk);
        for (int r = 0; r < repeats; r++) {
            for (int c = 0; c < NCH; c++) {
                double t0 = now();
                mimic_plan_run(plans[c], x, BIG, y);
                t[c * repeats + r] = now() - t0;
            }
            double t0 = now();
            raw_stack(n, x, 0, BIG);
            t[NCH * repeats + r] = now() - t0;
            t0 = now();
            raw_chunked(n, x, BIG, base_chunk);
            t[(NCH + 1) * repeats + r] = now() - t0;
            t0 = now();
            mimic_plan_run(det, x, BIG, y);
            t[(NCH + 2) * repeats + r] = now() - t0;
        }
        for (int c = 0; c < NCH; c++)
            chunk_s[i][c] = median(t + c * repeats, repeats);
        plan_big[i] = chunk_s[i][0];
        raw_full[i] = median(t + NCH * repeats, repeats);
        raw_chunk[i] = median(t + (NCH + 1) * repeats, repeats);
        det_big[i] = median(t + (NCH + 2) * repeats, repeats);
        raw_best[i] = raw_full[i] < raw_chunk[i] ? raw_full[i] : raw_chunk[i];

        /* batch SMALL: latency of one call, SMALL_CALLS calls per sample */
        for (int k = 0; k < 200; k++) {
            mimic_plan_run(plans[0], x, SMALL, y);
            raw_stack(n, x, 0, SMALL);
            raw_chunked(n, x, SMALL, SMALL / threads);
        }
        for (int r = 0; r < repeats; r++) {
            double t0 = now();
            for (int k = 0; k < SMALL_CALLS; k++)
                mimic_plan_run(plans[0], x, SMALL, y);
            t[r] = (now() - t0) / SMALL_CALLS;
            t0 = now();
            for (int k = 0; k < SMALL_CALLS; k++)
                raw_stack(n, x, 0, SMALL);
            t[repeats + r] = (now() - t0) / SMALL_CALLS;
            t0 = now();
            for (int k = 0; k < SMALL_CALLS; k++)
                raw_chunked(n, x, SMALL, SMALL / threads);
            t[2 * repeats + r] = (now() - t0) / SMALL_CALLS;
        }
        plan_small[i] = median(t, repeats);
        raw_small_threaded[i] = median(t + repeats, repeats);
        raw_small_split[i] = median(t + 2 * repeats, repeats);
        raw_small[i] = raw_small_threaded[i] < raw_small_split[i] ? raw_small_threaded[i] : raw_small_split[i];
        for (int c = 0; c < NCH; c++)
            mimic_plan_free(plans[c]);
        mimic_plan_free(det);
        free(x), free(y);
    }

    printf("float32, %d threads, %d repeats (medians). Throughput at batch %d:\n\n", threads, repeats, BIG);
    printf("| net | mimic samples/s | mimic GFLOP/s | best raw sgemm GFLOP/s | mimic / sgemm | PyTorch samples/s | mimic / PyTorch | deterministic samples/s |\n");
    printf("|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for (int i = 0; i < NNETS; i++) {
        double fps = flops_per_sample(&nets[i]);
        char tr[32] = "n/a", ts[32] = "n/a";
        if (torch_s[i][0] > 0) {
            snprintf(tr, sizeof tr, "%.3g", BIG / torch_s[i][0]);
            snprintf(ts, sizeof ts, "%.2fx", torch_s[i][0] / plan_big[i]);
        }
        printf("| %s | %.3g | %.1f | %.1f (%s) | %.0f %% | %s | %s | %.3g |\n", nets[i].name, BIG / plan_big[i],
               fps * BIG / plan_big[i] * 1e-9, fps * BIG / raw_best[i] * 1e-9,
               raw_full[i] < raw_chunk[i] ? "whole batch" : "chunked", 100 * raw_best[i] / plan_big[i], tr, ts,
               BIG / det_big[i]);
    }
    printf("\nLatency of one batch of %d (µs per call):\n\n", SMALL);
    printf("| net | mimic | bare sgemm calls: threaded | split over threads | mimic - best sgemm | PyTorch |\n"
           "|---|---:|---:|---:|---:|---:|\n");
    for (int i = 0; i < NNETS; i++) {
        char tr[32] = "n/a";
        if (torch_s[i][1] > 0)
            snprintf(tr, sizeof tr, "%.1f", torch_s[i][1] * 1e6);
        printf("| %s | %.2f | %.2f | %.2f | %+.2f | %s |\n", nets[i].name, plan_small[i] * 1e6,
               raw_small_threaded[i] * 1e6, raw_small_split[i] * 1e6, (plan_small[i] - raw_small[i]) * 1e6, tr);
    }
    printf("\nChunk size sweep at batch %d (ms per batch; \"auto\" is the plan's default choice):\n\n", BIG);
    printf("| net | auto |");
    for (int c = 1; c < NCH; c++)
        printf(" %lld |", (long long)chunks[c]);
    printf("\n|---|---:|");
    for (int c = 1; c < NCH; c++)
        printf("---:|");
    printf("\n");
    for (int i = 0; i < NNETS; i++) {
        printf("| %s | %.2f (%lld) |", nets[i].name, chunk_s[i][0] * 1e3, (long long)auto_chunk[i]);
        for (int c = 1; c < NCH; c++)
            printf(" %.2f |", chunk_s[i][c] * 1e3);
        printf("\n");
    }
    printf("\nraw sgemm baselines (ms): ");
    for (int i = 0; i < NNETS; i++)
        printf("%s whole batch %.2f, chunked %.2f; ", nets[i].name, raw_full[i] * 1e3, raw_chunk[i] * 1e3);
    printf("\n");
    for (int i = 0; i < NNETS; i++) {
        mimic_model_free(nets[i].model);
        for (int l = 0; l < nets[i].nl; l++)
            free(nets[i].W[l]), free(nets[i].buf[l]);
    }
    free(t);
    return 0;
}
