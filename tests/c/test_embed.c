/* The embedding API (mimic/embed.h): model files written here with the
 * builders, opened as a host would, run on host arrays of every layout and
 * precision and compared with a float64 forward pass written out in this
 * file (encoders, dense, tanh, dense, decoders by hand); batch sizes around
 * the chunk; deterministic bits across batch and thread counts; a host's
 * OpenMP region; no allocation after warm-up; guard, bounds, residual,
 * ensemble flags and the fallback; stats; and every bad input. */
#include "check.h"
#include "testutil.h"

#include "mimic/embed.h"
#include "mimic/guard.h"
#include "mimic/modelfile.h"

#include <float.h>
#include <omp.h>
#include <stdlib.h>
#include <unistd.h>

#define NIN 6
#define NOUT 5
#define HID 16

static char dir[64];

static char *path_in_dir(const char *name)
{
    static char buf[8][160];
    static int k;
    char *p = buf[k++ % 8];
    snprintf(p, 160, "%s/%s", dir, name);
    return p;
}

/* --- a deterministic random stream (independent of mimic's RNG) --------------- */
static uint64_t seed_state = 88172645463325252ull;
static double urand(void) /* [0, 1) */
{
    seed_state ^= seed_state << 13;
    seed_state ^= seed_state >> 7;
    seed_state ^= seed_state << 17;
    return (double)(seed_state >> 11) * 0x1p-53;
}

/* --- the test model: NIN -> HID tanh -> NOUT, with encoders ------------------- */
typedef struct weights {
    double W1[HID * NIN], b1[HID], W2[NOUT * HID], b2[NOUT];
} weights;

/* Encoders: inputs log(x + 1) then standardised per feature; outputs
 * signed_log(scale 0.5) then standardised per feature. */
static const double in_a[NIN] = {5.6, 5.6, 5.65, 0.01, 0.012, 11.2};
static const double in_b[NIN] = {0.1, 0.12, 0.1, 0.006, 0.007, 0.3};
static const double out_a[NOUT] = {0.1, -0.2, 0.3, 0, 0.5};
static const double out_b[NOUT] = {0.8, 1.1, 0.9, 1.3, 0.7};

static const mimic_io_var in_vars[3] = {{"temperature", "K", 3}, {"humidity", "kg/kg", 2}, {"pressure", "Pa", 1}};
static const mimic_io_var out_vars[2] = {{"heating", "K/s", 4}, {"flux", "W/m2", 1}};

static float frnd(double lo, double hi) { return (float)(lo + (hi - lo) * urand()); }

/* Float-representable weights, so f32 and f64 models are the same function. */
static void make_weights(weights *w)
{
    for (int i = 0; i < HID * NIN; i++) w->W1[i] = frnd(-0.8, 0.8);
    for (int i = 0; i < HID; i++) w->b1[i] = frnd(-0.3, 0.3);
    for (int i = 0; i < NOUT * HID; i++) w->W2[i] = frnd(-0.5, 0.5);
    for (int i = 0; i < NOUT; i++) w->b2[i] = frnd(-0.2, 0.2);
}

static mimic_model *build_model(const weights *w, mimic_dtype dt)
{
    mimic_model *m = mimic_model_new(dt, NIN);
    float f1[HID * NIN], fb1[HID], f2[NOUT * HID], fb2[NOUT];
    for (int i = 0; i < HID * NIN; i++) f1[i] = (float)w->W1[i];
    for (int i = 0; i < HID; i++) fb1[i] = (float)w->b1[i];
    for (int i = 0; i < NOUT * HID; i++) f2[i] = (float)w->W2[i];
    for (int i = 0; i < NOUT; i++) fb2[i] = (float)w->b2[i];
    bool f = dt == MIMIC_F32;
    CHECK_OK(mimic_model_add_dense(m, HID, f ? (void *)f1 : (void *)w->W1, f ? (void *)fb1 : (void *)w->b1));
    CHECK_OK(mimic_model_add_activation(m, MIMIC_ACT_TANH, 0, 0));
    CHECK_OK(mimic_model_add_dense(m, NOUT, f ? (void *)f2 : (void *)w->W2, f ? (void *)fb2 : (void *)w->b2));
    return m;
}

/* Saves a model file; variant 1: other units for pressure; 2: other output encoder. */
static void save_model(const char *path, const weights *w, mimic_dtype dt, int variant)
{
    mimic_model *m = build_model(w, dt);
    mimic_io_var iv[3] = {in_vars[0], in_vars[1], in_vars[2]};
    if (variant == 1)
        iv[2].units = "hPa";
    mimic_contract c = {3, 2, iv, out_vars};
    mimic_enc_stage is[2] = {{.kind = MIMIC_ENC_LOG, .offset = 1},
                             {.kind = MIMIC_ENC_STANDARD, .n = NIN, .a = in_a, .b = in_b}};
    mimic_enc_stage os[2] = {{.kind = MIMIC_ENC_SIGNED_LOG, .scale = variant == 2 ? 0.25 : 0.5},
                             {.kind = MIMIC_ENC_STANDARD, .n = NOUT, .a = out_a, .b = out_b}};
    mimic_encoder ie = {2, is}, oe = {2, os};
    CHECK_OK(mimic_model_save(path, m, &c, &ie, &oe, NULL));
    mimic_model_free(m);
}

/* Encoded outputs of one raw input row, in float64. */
static void forward_encoded(const weights *w, const double *x, double *z)
{
    double e[NIN], hdn[HID];
    for (int j = 0; j < NIN; j++)
        e[j] = (log(x[j] + 1) - in_a[j]) / in_b[j];
    for (int k = 0; k < HID; k++) {
        double s = w->b1[k];
        for (int j = 0; j < NIN; j++)
            s += w->W1[k * NIN + j] * e[j];
        hdn[k] = tanh(s);
    }
    for (int o = 0; o < NOUT; o++) {
        double s = w->b2[o];
        for (int k = 0; k < HID; k++)
            s += w->W2[o * HID + k] * hdn[k];
        z[o] = s;
    }
}

static double decode1(double z, int o)
{
    double u = z * out_b[o] + out_a[o];
    return (u > 0 ? 1.0 : u < 0 ? -1.0 : 0.0) * expm1(fabs(u)) * 0.5;
}

/* The raw outputs of an ensemble (mean of encoded outputs), and its spread. */
static double reference(const weights *const *ws, int nw, const double *x, double *y)
{
    double z[8][NOUT], worst = 0;
    for (int k = 0; k < nw; k++)
        forward_encoded(ws[k], x, z[k]);
    for (int o = 0; o < NOUT; o++) {
        double mean = 0, var = 0;
        for (int k = 0; k < nw; k++) mean += z[k][o] / nw;
        for (int k = 0; k < nw; k++) var += (z[k][o] - mean) * (z[k][o] - mean) / nw;
        y[o] = decode1(mean, o);
        if (sqrt(var) > worst) worst = sqrt(var);
    }
    return worst;
}

/* --- host arrays ----------------------------------------------------------- */
enum { ROW, COL, PADDED };
typedef struct hostvar {
    mimic_array a;
    size_t bytes;
} hostvar;

/* n samples of `size` features in dtype dt: ROW x[n][size]; COL Fortran
 * x(ld, size) with ld = n + 3; PADDED x[n][size + 2]. */
static void hv_init(hostvar *h, mimic_dtype dt, int64_t size, int64_t n, int layout)
{
    int64_t ss = layout == ROW ? size : layout == COL ? 1 : size + 2, fs = layout == COL ? n + 3 : 1;
    int64_t extent = (n + 3) * (size + 2) + 4;
    h->bytes = (size_t)extent * mimic_dtype_size(dt);
    h->a = (mimic_array){calloc((size_t)extent, mimic_dtype_size(dt)), dt, size, ss, fs};
}
static void hv_free(hostvar *h) { free(h->a.data); }
static double hv_get(const hostvar *h, int64_t i, int64_t j)
{
    int64_t k = i * h->a.sample_stride + j * h->a.feature_stride;
    return h->a.dtype == MIMIC_F32 ? (double)((float *)h->a.data)[k] : ((double *)h->a.data)[k];
}
static void hv_set(hostvar *h, int64_t i, int64_t j, double v)
{
    int64_t k = i * h->a.sample_stride + j * h->a.feature_stride;
    if (h->a.dtype == MIMIC_F32)
        ((float *)h->a.data)[k] = (float)v;
    else
        ((double *)h->a.data)[k] = v;
}

/* A host: 3 input arrays and 2 output arrays for n samples. */
typedef struct host {
    hostvar in[3], out[2];
    int64_t n;
} host;

static void raw_input(int64_t i, double *x)
{
    (void)i;
    x[0] = 250 + 60 * urand(), x[1] = x[0] + 5 * urand(), x[2] = 260 + 40 * urand();
    x[3] = 0.001 + 0.02 * urand(), x[4] = 0.002 + 0.02 * urand();
    x[5] = 5e4 + 5e4 * urand();
}

/* layouts[k] / dts[k] for the 5 variables (3 inputs, 2 outputs). */
static void host_init(host *h, int64_t n, const int *layouts, const mimic_dtype *dts)
{
    h->n = n;
    for (int v = 0; v < 3; v++)
        hv_init(&h->in[v], dts[v], in_vars[v].size, n, layouts[v]);
    for (int v = 0; v < 2; v++)
        hv_init(&h->out[v], dts[3 + v], out_vars[v].size, n, layouts[3 + v]);
    for (int64_t i = 0; i < n; i++) {
        double x[NIN];
        raw_input(i, x);
        hv_set(&h->in[0], i, 0, x[0]), hv_set(&h->in[0], i, 1, x[1]), hv_set(&h->in[0], i, 2, x[2]);
        hv_set(&h->in[1], i, 0, x[3]), hv_set(&h->in[1], i, 1, x[4]);
        hv_set(&h->in[2], i, 0, x[5]);
    }
}
static void host_free(host *h)
{
    for (int v = 0; v < 3; v++) hv_free(&h->in[v]);
    for (int v = 0; v < 2; v++) hv_free(&h->out[v]);
}
/* Sample i's raw inputs as the host holds them. */
static void host_x(const host *h, int64_t i, double *x)
{
    int k = 0;
    for (int v = 0; v < 3; v++)
        for (int64_t j = 0; j < in_vars[v].size; j++)
            x[k++] = hv_get(&h->in[v], i, j);
}
static void host_y(const host *h, int64_t i, double *y)
{
    int k = 0;
    for (int v = 0; v < 2; v++)
        for (int64_t j = 0; j < out_vars[v].size; j++)
            y[k++] = hv_get(&h->out[v], i, j);
}
static void host_bind(mimic_handle *hd, host *h)
{
    for (int v = 0; v < 3; v++)
        CHECK_OK(mimic_bind(hd, MIMIC_INPUT, in_vars[v].name, in_vars[v].units, &h->in[v].a));
    for (int v = 0; v < 2; v++)
        CHECK_OK(mimic_bind(hd, MIMIC_OUTPUT, out_vars[v].name, NULL, &h->out[v].a));
}

/* Worst relative difference of the host's outputs (samples [0, n)) to the reference. */
static double worst_error(const host *h, const weights *const *ws, int nw, int64_t n)
{
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        double x[NIN], y[NOUT], r[NOUT];
        host_x(h, i, x);
        host_y(h, i, y);
        reference(ws, nw, x, r);
        for (int o = 0; o < NOUT; o++) {
            double e = fabs(y[o] - r[o]) / (1 + fabs(r[o]));
            if (!(e <= worst)) worst = e;
        }
    }
    return worst;
}

static weights WA, WB, WC;
static const char *file_a32, *file_a64, *file_b, *file_c, *file_units, *file_enc;

static mimic_handle *open_h(const char *path, int precision, int64_t chunk, int threads, int det)
{
    mimic_options o = {.precision = precision, .chunk = chunk, .num_threads = threads, .deterministic = det};
    mimic_handle *h = NULL;
    CHECK_OK(mimic_open(path, &o, &h));
    return h;
}

/* --- tests ------------------------------------------------------------------- */
TEST(matches_reference)
{
    static const int layouts[3][5] = {{ROW, ROW, ROW, ROW, ROW}, {COL, COL, COL, COL, COL},
                                      {ROW, COL, PADDED, COL, PADDED}};
    static const mimic_dtype dts[3][5] = {{MIMIC_F64, MIMIC_F64, MIMIC_F64, MIMIC_F64, MIMIC_F64},
                                          {MIMIC_F32, MIMIC_F32, MIMIC_F32, MIMIC_F32, MIMIC_F32},
                                          {MIMIC_F32, MIMIC_F64, MIMIC_F32, MIMIC_F64, MIMIC_F32}};
    static const int64_t sizes[] = {0, 1, 15, 16, 17, 300, 1000};
    const weights *ws[1] = {&WA};
    for (int file = 0; file < 2; file++)
        for (int prec = MIMIC_PRECISION_STORED; prec <= MIMIC_PRECISION_F64; prec++)
            for (int thr = 1; thr <= 2; thr++) {
                mimic_handle *hd = open_h(file ? file_a64 : file_a32, prec, 16, thr, 0);
                bool f32 = prec == MIMIC_PRECISION_F32 || (prec == MIMIC_PRECISION_STORED && !file);
                for (int l = 0; hd && l < 3; l++)
                    for (int d = 0; d < 3; d++)
                        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
                            host h;
                            host_init(&h, sizes[s], layouts[l], dts[d]);
                            host_bind(hd, &h);
                            CHECK_OK(mimic_run(hd, sizes[s]));
                            /* f32 anywhere on the path: the inputs, the plan or the outputs */
                            bool any32 = f32 || d > 0;
                            double tol = any32 ? 2e-5 : 1e-12, e = worst_error(&h, ws, 1, sizes[s]);
                            if (!(e <= tol)) {
                                fprintf(stderr, "  file %d prec %d thr %d layout %d dtypes %d n %lld: error %g > %g\n",
                                        file, prec, thr, l, d, (long long)sizes[s], e, tol);
                                check_failures++;
                            }
                            host_free(&h);
                        }
                mimic_close(&hd);
            }
}

/* Several chunks of 2048 per thread: each thread's range of chunks, on
 * Fortran-style and row-major arrays. */
TEST(large_batches)
{
    const weights *ws[1] = {&WA};
    int layouts[5] = {COL, ROW, COL, COL, ROW};
    mimic_dtype dts[5] = {MIMIC_F64, MIMIC_F64, MIMIC_F64, MIMIC_F64, MIMIC_F64};
    for (int thr = 1; thr <= 2; thr++) {
        mimic_handle *hd = open_h(file_a64, 0, 2048, thr, 0);
        host h;
        host_init(&h, 9000, layouts, dts);
        host_bind(hd, &h);
        CHECK_OK(mimic_run(hd, 9000));
        CHECK(worst_error(&h, ws, 1, 9000) <= 1e-12);
        host_free(&h);
        mimic_close(&hd);
    }
}

/* A sample's output bits do not depend on the batch size, the blocking or the thread count. */
TEST(deterministic)
{
    int layouts[5] = {ROW, COL, ROW, ROW, COL};
    mimic_dtype dts[5] = {MIMIC_F32, MIMIC_F64, MIMIC_F64, MIMIC_F32, MIMIC_F64};
    int64_t N = 1000;
    host h;
    host_init(&h, N, layouts, dts);
    double *ref = malloc(sizeof(double) * (size_t)(N * NOUT));
    mimic_handle *one = open_h(file_a32, 0, 0, 1, 1);
    host_bind(one, &h);
    for (int64_t i = 0; i < N; i++) {
        /* each sample alone: a view of the host arrays starting at sample i */
        host hi = h;
        for (int v = 0; v < 3; v++)
            hi.in[v].a.data = (char *)h.in[v].a.data + (size_t)(i * h.in[v].a.sample_stride) * mimic_dtype_size(dts[v]);
        for (int v = 0; v < 2; v++)
            hi.out[v].a.data = (char *)h.out[v].a.data + (size_t)(i * h.out[v].a.sample_stride) * mimic_dtype_size(dts[3 + v]);
        host_bind(one, &hi);
        CHECK_OK(mimic_run(one, 1));
        host_y(&h, i, ref + i * NOUT);
    }
    mimic_close(&one);
    static const int64_t batches[] = {1, 7, 1000};
    static const int64_t chunks[] = {0, 16, 333};
    for (int thr = 1; thr <= 2; thr++)
        for (size_t c = 0; c < 3; c++) {
            mimic_handle *hd = open_h(file_a32, 0, chunks[c], thr, 1);
            for (size_t b = 0; b < 3; b++) {
                for (int v = 0; v < 2; v++)
                    memset(h.out[v].a.data, 0, h.out[v].bytes);
                for (int64_t i0 = 0; i0 + batches[b] <= N; i0 += batches[b]) {
                    host hi = h;
                    for (int v = 0; v < 3; v++)
                        hi.in[v].a.data = (char *)h.in[v].a.data + (size_t)(i0 * h.in[v].a.sample_stride) * mimic_dtype_size(dts[v]);
                    for (int v = 0; v < 2; v++)
                        hi.out[v].a.data = (char *)h.out[v].a.data + (size_t)(i0 * h.out[v].a.sample_stride) * mimic_dtype_size(dts[3 + v]);
                    host_bind(hd, &hi);
                    CHECK_OK(mimic_run(hd, batches[b]));
                }
                int bad = 0;
                for (int64_t i = 0; i < N / batches[b] * batches[b]; i++) {
                    double y[NOUT];
                    host_y(&h, i, y);
                    bad += memcmp(y, ref + i * NOUT, sizeof y) != 0;
                }
                if (bad) {
                    fprintf(stderr, "  threads %d chunk %lld batch %lld: %d samples differ\n", thr,
                            (long long)chunks[c], (long long)batches[b], bad);
                    check_failures++;
                }
            }
            mimic_close(&hd);
        }
    free(ref);
    host_free(&h);
}

/* A host's OpenMP region: each thread its own handle and its own columns of
 * Fortran x(ld, size) arrays; equal to one serial run over all samples. */
TEST(openmp_host)
{
    int layouts[5] = {COL, COL, COL, COL, COL};
    mimic_dtype dts[5] = {MIMIC_F64, MIMIC_F64, MIMIC_F64, MIMIC_F64, MIMIC_F64};
    int64_t N = 777;
    host h;
    host_init(&h, N, layouts, dts);
    mimic_handle *hd = open_h(file_a32, 0, 0, 2, 1);
    host_bind(hd, &h);
    CHECK_OK(mimic_run(hd, N));
    mimic_close(&hd);
    double *serial = malloc(sizeof(double) * (size_t)(N * NOUT));
    for (int64_t i = 0; i < N; i++)
        host_y(&h, i, serial + i * NOUT);
    for (int v = 0; v < 2; v++)
        memset(h.out[v].a.data, 0, h.out[v].bytes);
    int failures = 0, inside = 0;
#pragma omp parallel num_threads(3) reduction(+ : failures, inside)
    {
        int t = omp_get_thread_num(), nt = omp_get_num_threads();
        int64_t i0 = N * t / nt, i1 = N * (t + 1) / nt;
        mimic_handle *mine = NULL;
        mimic_options o = {.deterministic = 1};
        int rc;
        rc = mimic_open(file_a32, &o, &mine); /* opens take turns inside mimic (HDF5) */
        failures += rc != 0;
        inside += mimic_get_num_threads() == 1;
        for (int v = 0; !rc && v < 5; v++) {
            hostvar *hv = v < 3 ? &h.in[v] : &h.out[v - 3];
            mimic_array a = hv->a;
            a.data = (double *)a.data + i0; /* samples i0.. of x(ld, size): sample_stride 1 */
            rc = mimic_bind(mine, v < 3 ? MIMIC_INPUT : MIMIC_OUTPUT, v < 3 ? in_vars[v].name : out_vars[v - 3].name,
                            NULL, &a);
        }
        failures += rc != 0 || mimic_run(mine, i1 - i0) != 0;
        mimic_close(&mine);
    }
    CHECK(failures == 0);
    CHECK(inside == 3);
    int bad = 0;
    for (int64_t i = 0; i < N; i++) {
        double y[NOUT];
        host_y(&h, i, y);
        bad += memcmp(y, serial + i * NOUT, sizeof y) != 0;
    }
    CHECK(bad == 0);
    free(serial);
    host_free(&h);
}

static int64_t fb_calls, fb_count, fb_idx[4096];
static bool fb_ascending;
static int fallback_fn(void *ud, const int64_t *idx, int64_t count)
{
    host *h = ud;
    fb_calls++;
    fb_ascending = true;
    for (int64_t k = 0; k < count; k++) {
        if (k && idx[k] <= idx[k - 1])
            fb_ascending = false;
        if (fb_count < 4096)
            fb_idx[fb_count++] = idx[k];
        /* the host's reference kernel: here a marker value */
        for (int v = 0; v < 2; v++)
            for (int64_t j = 0; j < out_vars[v].size; j++)
                hv_set(&h->out[v], idx[k], j, -1000 - (double)idx[k]);
    }
    return 0;
}

static mimic_guard *fit_guard(int distance)
{
    /* training inputs: the host's distribution, with humidity tied to temperature */
    int64_t n = 4000;
    double *x = malloc(sizeof(double) * (size_t)(n * NIN));
    for (int64_t i = 0; i < n; i++) {
        double *r = x + i * NIN;
        raw_input(i, r);
        r[3] = 0.001 + 0.02 * (r[0] - 250) / 60 + 0.001 * urand(); /* hot is humid */
    }
    mimic_guard *g = mimic_guard_fit(x, MIMIC_F64, n, NIN, &(mimic_guard_options){.margin = 0.05, .distance = distance});
    free(x);
    return g;
}

TEST(guard_and_fallback)
{
    int layouts[5] = {ROW, COL, ROW, ROW, COL};
    mimic_dtype dts[5] = {MIMIC_F64, MIMIC_F64, MIMIC_F32, MIMIC_F64, MIMIC_F32};
    int64_t N = 600;
    host h;
    host_init(&h, N, layouts, dts);
    for (int64_t i = 0; i < N; i++) /* consistent with the guard's training data */
        hv_set(&h.in[1], i, 0, 0.001 + 0.02 * (hv_get(&h.in[0], i, 0) - 250) / 60 + 0.0005);
    /* 5: NaN; 17: temperature out of range; 99: hot and dry (each feature in range) */
    hv_set(&h.in[0], 5, 1, NAN);
    hv_set(&h.in[0], 17, 2, 400);
    hv_set(&h.in[0], 99, 0, 305), hv_set(&h.in[1], 99, 0, 0.0015);
    mimic_guard *g = fit_guard(1);
    CHECK_PTR(g);
    CHECK(mimic_guard_check(g, (double[]){305, 306, 280, 0.0015, 0.01, 7e4}, (double[2 * NIN]){0}) ==
          MIMIC_FLAG_DISTANCE);
    mimic_handle *hd = open_h(file_a32, MIMIC_PRECISION_F64, 64, 2, 0);
    host_bind(hd, &h);
    CHECK_OK(mimic_set_guard(hd, g));
    mimic_guard_free(g); /* the handle has its copy */
    CHECK_OK(mimic_set_fallback(hd, fallback_fn, &h));
    fb_calls = fb_count = 0;
    CHECK_OK(mimic_run(hd, N));
    const uint8_t *flags;
    int64_t nf;
    CHECK_OK(mimic_last_flags(hd, &flags, &nf));
    CHECK(nf == N);
    CHECK(flags[5] == (MIMIC_FLAG_INPUT_NAN | MIMIC_FLAG_RANGE | MIMIC_FLAG_DISTANCE | MIMIC_FLAG_OUTPUT_NAN));
    CHECK(flags[17] & MIMIC_FLAG_RANGE);
    CHECK(flags[99] == MIMIC_FLAG_DISTANCE);
    CHECK(fb_calls == 1 && fb_ascending);
    int64_t expect = 0;
    for (int64_t i = 0; i < N; i++) {
        double y[NOUT];
        host_y(&h, i, y);
        if (flags[i]) {
            CHECK(expect < fb_count && fb_idx[expect] == i);
            expect++;
            CHECK(y[0] == -1000 - (double)i && y[4] == -1000 - (double)i);
        } else {
            double x[NIN], r[NOUT];
            const weights *ws[1] = {&WA};
            host_x(&h, i, x);
            reference(ws, 1, x, r);
            for (int o = 0; o < NOUT; o++)
                CHECK_NEAR(y[o], r[o], 1e-5 * (1 + fabs(r[o])));
        }
    }
    CHECK(expect == fb_count && expect >= 3 && expect < N / 10);
    mimic_stats st;
    CHECK_OK(mimic_get_stats(hd, &st));
    CHECK(st.calls == 1 && st.samples == N && st.fallback == expect && st.surrogate == N - expect);
    CHECK(st.flagged[0] == 1 && st.flagged[2] >= 2 && st.flagged[3] == 1 && st.flagged[4] == 0);
    CHECK(st.seconds > 0 && st.fallback_seconds >= 0 && st.fallback_seconds <= st.seconds);
    CHECK_OK(mimic_run(hd, 0)); /* not a call */
    CHECK_OK(mimic_get_stats(hd, &st));
    CHECK(st.calls == 1);
    CHECK_OK(mimic_reset_stats(hd));
    CHECK_OK(mimic_get_stats(hd, &st));
    CHECK(st.calls == 0 && st.samples == 0 && st.flagged[0] == 0 && st.seconds == 0);
    /* removing the guard: only the NaN sample is flagged */
    CHECK_OK(mimic_set_guard(hd, NULL));
    CHECK_OK(mimic_run(hd, N));
    CHECK_OK(mimic_last_flags(hd, &flags, &nf));
    int64_t nflag = 0;
    for (int64_t i = 0; i < N; i++)
        nflag += flags[i] != 0;
    CHECK(nflag == 1 && flags[5] == (MIMIC_FLAG_INPUT_NAN | MIMIC_FLAG_OUTPUT_NAN));
    mimic_close(&hd);
    host_free(&h);
}

static int64_t resid_calls, resid_bad_order;
static int residual_fn(void *ud, const int64_t *idx, int64_t count, double *res)
{
    host *h = ud;
    resid_calls++;
    for (int64_t k = 0; k < count; k++) {
        if (k && idx[k] <= idx[k - 1])
            resid_bad_order++;
        res[k] = hv_get(&h->out[1], idx[k], 0); /* "residual": the flux the surrogate wrote */
    }
    return 0;
}

TEST(bounds_and_residual)
{
    int layouts[5] = {ROW, ROW, ROW, ROW, ROW};
    mimic_dtype dts[5] = {MIMIC_F64, MIMIC_F64, MIMIC_F64, MIMIC_F64, MIMIC_F64};
    int64_t N = 400;
    host h;
    host_init(&h, N, layouts, dts);
    const weights *ws[1] = {&WA};
    double *fl = malloc(sizeof(double) * (size_t)N), *h0 = malloc(sizeof(double) * (size_t)N);
    for (int64_t i = 0; i < N; i++) {
        double x[NIN], r[NOUT];
        host_x(&h, i, x);
        reference(ws, 1, x, r);
        h0[i] = fmax(fmax(r[0], r[1]), fmax(r[2], r[3])), fl[i] = r[4]; /* the bound is on all of heating */
    }
    /* bounds: heating[0] at most its median-ish value; residual: |flux| <= a threshold */
    double hi = 0, tol = 0;
    for (int64_t i = 0; i < N; i++) hi += h0[i] / N, tol += fabs(fl[i]) / N;
    mimic_handle *hd = open_h(file_a64, 0, 0, 1, 0);
    host_bind(hd, &h);
    CHECK_OK(mimic_set_output_bounds(hd, "heating", -INFINITY, hi));
    CHECK_OK(mimic_set_residual(hd, residual_fn, &h, tol));
    resid_calls = resid_bad_order = 0;
    CHECK_OK(mimic_run(hd, N));
    const uint8_t *flags;
    int64_t nf;
    CHECK_OK(mimic_last_flags(hd, &flags, &nf));
    CHECK(resid_calls == 1 && resid_bad_order == 0);
    int nb = 0, nr = 0, wrong = 0;
    for (int64_t i = 0; i < N; i++) {
        bool out_of_bounds = h0[i] > hi, big = fabs(fl[i]) > tol;
        /* ties within rounding of the threshold are not tested */
        if (fabs(h0[i] - hi) < 1e-9 || fabs(fabs(fl[i]) - tol) < 1e-9)
            continue;
        unsigned want = out_of_bounds ? MIMIC_FLAG_BOUNDS : big ? MIMIC_FLAG_RESIDUAL : 0;
        wrong += flags[i] != want;
        nb += out_of_bounds, nr += !out_of_bounds && big;
    }
    CHECK(wrong == 0 && nb > 10 && nr > 10);
    if (wrong || nb <= 10 || nr <= 10)
        fprintf(stderr, "  wrong %d, bounds %d, residual %d\n", wrong, nb, nr);
    mimic_stats st;
    CHECK_OK(mimic_get_stats(hd, &st));
    CHECK(st.flagged[4] == nb && st.flagged[5] == nr && st.surrogate == N && st.fallback == 0);
    /* bounds removed, residual removed: nothing flagged */
    CHECK_OK(mimic_set_output_bounds(hd, "heating", -INFINITY, INFINITY));
    CHECK_OK(mimic_set_residual(hd, NULL, NULL, 0));
    CHECK_OK(mimic_run(hd, N));
    CHECK_OK(mimic_last_flags(hd, &flags, &nf));
    int any = 0;
    for (int64_t i = 0; i < N; i++) any += flags[i] != 0;
    CHECK(any == 0);
    mimic_close(&hd);
    free(fl), free(h0);
    host_free(&h);
}

TEST(ensemble)
{
    int layouts[5] = {ROW, COL, ROW, PADDED, ROW};
    mimic_dtype dts[5] = {MIMIC_F64, MIMIC_F64, MIMIC_F64, MIMIC_F64, MIMIC_F64};
    int64_t N = 500;
    host h;
    host_init(&h, N, layouts, dts);
    const weights *ws[3] = {&WA, &WB, &WC};
    double *spread = malloc(sizeof(double) * (size_t)N), *sorted = malloc(sizeof(double) * (size_t)N);
    for (int64_t i = 0; i < N; i++) {
        double x[NIN], r[NOUT];
        host_x(&h, i, x);
        spread[i] = sorted[i] = reference(ws, 3, x, r);
    }
    /* a limit in the middle of the widest gap near the median: no sample sits on it */
    for (int64_t i = 0; i < N; i++)
        for (int64_t k = i + 1; k < N; k++)
            if (sorted[k] < sorted[i]) { double t = sorted[i]; sorted[i] = sorted[k]; sorted[k] = t; }
    int64_t at = N / 2;
    for (int64_t k = N / 3; k < 2 * N / 3; k++)
        if (sorted[k + 1] - sorted[k] > sorted[at + 1] - sorted[at]) at = k;
    double limit = 0.5 * (sorted[at] + sorted[at + 1]);
    mimic_handle *hd = open_h(file_a64, 0, 32, 2, 0);
    host_bind(hd, &h);
    CHECK_OK(mimic_add_member(hd, file_b));
    CHECK_OK(mimic_add_member(hd, file_c));
    CHECK_OK(mimic_set_spread_limit(hd, limit));
    CHECK_OK(mimic_run(hd, N));
    CHECK(worst_error(&h, ws, 3, N) <= 1e-12);
    const uint8_t *flags;
    int64_t nf;
    CHECK_OK(mimic_last_flags(hd, &flags, &nf));
    int wrong = 0, nflag = 0;
    for (int64_t i = 0; i < N; i++) {
        wrong += (flags[i] == MIMIC_FLAG_SPREAD) != (spread[i] > limit) || (flags[i] & ~MIMIC_FLAG_SPREAD);
        nflag += flags[i] != 0;
    }
    CHECK(wrong == 0 && nflag > 0 && nflag < N);
    /* members must share the contract and the encoders */
    CHECK_ERR(mimic_add_member(hd, file_units), MIMIC_EARG, "pressure [hPa]");
    CHECK(strstr(mimic_last_error(hd), "same contract") != NULL);
    CHECK_ERR(mimic_add_member(hd, file_enc), MIMIC_EARG, "output encoder differs");
    CHECK_ERR(mimic_add_member(hd, path_in_dir("missing.h5")), MIMIC_EIO, "missing.h5");
    CHECK_ERR(mimic_set_spread_limit(hd, -1), MIMIC_EARG, "max_spread");
    CHECK_ERR(mimic_set_spread_limit(hd, NAN), MIMIC_EARG, "max_spread");
    /* a float32 ensemble converted at open gives the same within float rounding */
    mimic_handle *h32 = open_h(file_a64, MIMIC_PRECISION_F32, 0, 1, 0);
    host_bind(h32, &h);
    CHECK_OK(mimic_add_member(h32, file_b));
    CHECK_OK(mimic_add_member(h32, file_c));
    CHECK_OK(mimic_run(h32, N));
    CHECK(worst_error(&h, ws, 3, N) <= 2e-5);
    mimic_close(&h32);
    mimic_close(&hd);
    free(spread), free(sorted);
    host_free(&h);
}

TEST(no_allocation_after_warmup)
{
    int layouts[5] = {ROW, COL, PADDED, COL, ROW};
    mimic_dtype dts[5] = {MIMIC_F32, MIMIC_F64, MIMIC_F32, MIMIC_F64, MIMIC_F32};
    int64_t N = 5000;
    host h;
    host_init(&h, N, layouts, dts);
    hv_set(&h.in[0], 3, 0, NAN);
    mimic_guard *g = fit_guard(1);
    for (int det = 0; det < 2; det++) {
        mimic_handle *hd = open_h(file_a32, 0, 1024, 2, det);
        host_bind(hd, &h);
        CHECK_OK(mimic_set_guard(hd, g));
        CHECK_OK(mimic_add_member(hd, file_b));
        CHECK_OK(mimic_set_spread_limit(hd, 0.5));
        CHECK_OK(mimic_set_output_bounds(hd, "flux", -1, 1));
        CHECK_OK(mimic_set_residual(hd, residual_fn, &h, 0.5));
        CHECK_OK(mimic_set_fallback(hd, fallback_fn, &h));
        CHECK_OK(mimic_run(hd, N)); /* warm-up: the flag buffers, OpenMP, OpenBLAS */
        long before = alloc_count();
        for (int64_t n = 1; n <= N; n = n * 3 + 1) {
            fb_count = 0;
            CHECK_OK(mimic_run(hd, n));
        }
        CHECK_OK(mimic_run(hd, N));
        CHECK(alloc_count() == before);
        mimic_close(&hd);
    }
    mimic_guard_free(g);
    host_free(&h);
}

/* The log callback: INFO at open, one WARN for flagged samples without a fallback. */
static int n_info, n_warn;
static char last_info[600];
static void log_fn(void *ud, int level, const char *msg)
{
    (void)ud;
    if (level == MIMIC_LOG_INFO) {
        n_info++;
        snprintf(last_info, sizeof last_info, "%s", msg);
    }
    n_warn += level == MIMIC_LOG_WARN;
}

TEST(nan_inputs_and_log)
{
    int layouts[5] = {ROW, ROW, ROW, ROW, ROW};
    mimic_dtype dts[5] = {MIMIC_F32, MIMIC_F32, MIMIC_F32, MIMIC_F32, MIMIC_F32};
    host h;
    host_init(&h, 10, layouts, dts);
    hv_set(&h.in[2], 4, 0, INFINITY);
    hv_set(&h.in[1], 7, 1, NAN);
    mimic_options o = {.log = log_fn};
    mimic_handle *hd = NULL;
    n_info = n_warn = 0;
    CHECK_OK(mimic_open(file_a32, &o, &hd));
    CHECK(n_info == 1 && strstr(last_info, file_a32) && strstr(last_info, "sha256:") && strstr(last_info, "float32") &&
          strstr(last_info, "workspace"));
    host_bind(hd, &h);
    CHECK_OK(mimic_run(hd, 10));
    CHECK_OK(mimic_run(hd, 10));
    CHECK(n_warn == 1);
    const uint8_t *flags;
    int64_t nf;
    CHECK_OK(mimic_last_flags(hd, &flags, &nf));
    for (int64_t i = 0; i < 10; i++) {
        double y[NOUT];
        host_y(&h, i, y);
        /* NaN propagates to the outputs; Inf may saturate (tanh) into finite ones */
        if (i == 4)
            CHECK((flags[i] & ~MIMIC_FLAG_OUTPUT_NAN) == MIMIC_FLAG_INPUT_NAN);
        else
            CHECK(flags[i] == (i == 7 ? MIMIC_FLAG_INPUT_NAN | MIMIC_FLAG_OUTPUT_NAN : 0));
        CHECK(i == 4 || (i == 7 ? isnan(y[0]) : isfinite(y[0])));
    }
    /* with a fallback: exactly those two */
    fb_calls = fb_count = 0;
    CHECK_OK(mimic_set_fallback(hd, fallback_fn, &h));
    CHECK_OK(mimic_run(hd, 10));
    CHECK(fb_calls == 1 && fb_count == 2 && fb_idx[0] == 4 && fb_idx[1] == 7);
    double y[NOUT];
    host_y(&h, 7, y);
    CHECK(y[0] == -1007);
    CHECK(n_warn == 1);
    mimic_close(&hd);
    host_free(&h);
}

static int failing_fallback(void *ud, const int64_t *idx, int64_t count)
{
    (void)idx, (void)count;
    if (ud)
        mimic_error(MIMIC_EVALUE, "host kernel diverged");
    return 1;
}

static int failing_residual(void *ud, const int64_t *idx, int64_t count, double *r)
{
    (void)ud, (void)idx, (void)count, (void)r;
    return 2;
}

TEST(errors)
{
    mimic_handle *hd = NULL;
    mimic_options bad_prec = {.precision = 7}, bad_chunk = {.chunk = -1}, bad_thr = {.num_threads = -2};
    CHECK_ERR(mimic_open(NULL, NULL, &hd), MIMIC_EARG, "path is NULL");
    CHECK_ERR(mimic_open(file_a32, NULL, NULL), MIMIC_EARG, "out is NULL");
    CHECK_ERR(mimic_open(file_a32, &bad_prec, &hd), MIMIC_EARG, "precision 7");
    CHECK_ERR(mimic_open(file_a32, &bad_chunk, &hd), MIMIC_EARG, "chunk");
    CHECK_ERR(mimic_open(file_a32, &bad_thr, &hd), MIMIC_EARG, "num_threads");
    CHECK(hd == NULL);
    /* files: missing, truncated, not HDF5 */
    CHECK_ERR(mimic_open(path_in_dir("nope.h5"), NULL, &hd), MIMIC_EIO, "nope.h5");
    CHECK(hd == NULL && strstr(mimic_last_error(NULL), "nope.h5"));
    FILE *f = fopen(file_a32, "rb");
    char *bytes = malloc(1 << 20);
    size_t nb = fread(bytes, 1, 1 << 20, f);
    fclose(f);
    const char *trunc = path_in_dir("truncated.h5"), *text = path_in_dir("text.h5");
    f = fopen(trunc, "wb");
    fwrite(bytes, 1, nb / 2, f);
    fclose(f);
    free(bytes);
    CHECK_ERR(mimic_open(trunc, NULL, &hd), MIMIC_EIO, "truncated.h5");
    CHECK(hd == NULL);
    f = fopen(text, "wb");
    fputs("temperature,humidity\n1,2\n", f);
    fclose(f);
    CHECK_ERR(mimic_open(text, NULL, &hd), MIMIC_EIO, "HDF5");
    CHECK(hd == NULL);

    CHECK_OK(mimic_open(file_a32, NULL, &hd));
    CHECK(strcmp(mimic_last_error(hd), "") == 0);
    /* the contract */
    int count;
    const char *name, *units;
    int64_t size;
    CHECK_OK(mimic_num_vars(hd, MIMIC_INPUT, &count));
    CHECK(count == 3);
    CHECK_OK(mimic_var_info(hd, MIMIC_OUTPUT, 1, &name, &units, &size));
    CHECK(!strcmp(name, "flux") && !strcmp(units, "W/m2") && size == 1);
    CHECK_ERR(mimic_var_info(hd, MIMIC_OUTPUT, 2, &name, &units, &size), MIMIC_EARG, "out of range");
    CHECK_ERR(mimic_num_vars(hd, 2, &count), MIMIC_EARG, "which");
    mimic_model_info *info = NULL;
    mimic_model *m = mimic_model_load(file_a32, &info);
    CHECK(m && !strcmp(mimic_model_hash_of(hd), info->hash));
    mimic_model_free(m);
    mimic_model_info_free(info);
    /* a host whose own list differs from the model's contract */
    const char *mine[3] = {"temperature", "pressure", "humidity"};
    CHECK_ERR(mimic_check_vars(hd, MIMIC_INPUT, mine, NULL, 3), MIMIC_EARG, "'pressure' is at position 2");
    CHECK_ERR(mimic_check_vars(hd, MIMIC_INPUT, mine, NULL, 1), MIMIC_EARG, "'humidity' (position 2) is not bound");
    const char *outs[2] = {"heating", "flux"};
    CHECK_ERR(mimic_check_vars(hd, MIMIC_OUTPUT, outs, (int64_t[]){4, 2}, 2), MIMIC_EARG, "'flux' has size 2");
    CHECK_OK(mimic_check_vars(hd, MIMIC_OUTPUT, outs, (int64_t[]){4, 1}, 2));
    CHECK(strstr(mimic_last_error(hd), "'flux' has size 2") != NULL); /* the last failure is kept */

    /* binding */
    double buf[64] = {0};
    mimic_array a = {buf, MIMIC_F64, 3, 3, 1};
    CHECK_ERR(mimic_bind(hd, 2, "temperature", NULL, &a), MIMIC_EARG, "which");
    CHECK_ERR(mimic_bind(hd, MIMIC_INPUT, NULL, NULL, &a), MIMIC_EARG, "name is NULL");
    CHECK_ERR(mimic_bind(hd, MIMIC_INPUT, "temp", NULL, &a), MIMIC_EARG,
              "no input called 'temp'; its inputs are: temperature [K] (3), humidity [kg/kg] (2), pressure [Pa] (1)");
    CHECK(strstr(mimic_last_error(hd), "no input called 'temp'") != NULL);
    CHECK_ERR(mimic_bind(hd, MIMIC_INPUT, "flux", NULL, &a), MIMIC_EARG, "'flux' is an output of the model");
    CHECK_ERR(mimic_bind(hd, MIMIC_INPUT, "temperature", NULL, NULL), MIMIC_EARG, "'temperature': the array descriptor is NULL");
    a.data = NULL;
    CHECK_ERR(mimic_bind(hd, MIMIC_INPUT, "temperature", NULL, &a), MIMIC_EARG, "'temperature': data is NULL");
    a.data = buf;
    a.dtype = MIMIC_I64;
    CHECK_ERR(mimic_bind(hd, MIMIC_INPUT, "temperature", NULL, &a), MIMIC_EARG, "'temperature': host data of dtype int64");
    a.dtype = MIMIC_F64;
    a.size = 2;
    CHECK_ERR(mimic_bind(hd, MIMIC_INPUT, "temperature", NULL, &a), MIMIC_EARG,
              "mimic_bind: input 'temperature' has size 3 in the model, the host array has 2");
    a.size = 3;
    CHECK_ERR(mimic_bind(hd, MIMIC_INPUT, "temperature", "degC", &a), MIMIC_EARG,
              "input 'temperature' is in units 'K' in the model, the host passed 'degC'");
    a.sample_stride = 0;
    CHECK_ERR(mimic_bind(hd, MIMIC_INPUT, "temperature", "K", &a), MIMIC_EARG, "'temperature': sample_stride must be >= 1");
    a.sample_stride = 3, a.feature_stride = 0;
    CHECK_ERR(mimic_bind(hd, MIMIC_INPUT, "temperature", "K", &a), MIMIC_EARG, "'temperature': feature_stride must be >= 1");
    a.feature_stride = 3;
    CHECK_ERR(mimic_bind(hd, MIMIC_INPUT, "temperature", "K", &a), MIMIC_EARG, "samples share elements");
    a.feature_stride = 1;
    CHECK_OK(mimic_bind(hd, MIMIC_INPUT, "temperature", "K", &a));
    /* running: unbound variables, then a layout that overlaps for this n */
    CHECK_ERR(mimic_run(hd, -1), MIMIC_EARG, "n must be >= 0");
    CHECK_ERR(mimic_run(hd, 2), MIMIC_ESTATE, "input 'humidity' is not bound");
    CHECK(strstr(mimic_last_error(hd), "'humidity' is not bound") != NULL);
    mimic_array hum = {buf, MIMIC_F64, 2, 1, 4}; /* Fortran x(4, 2): 4 samples at most */
    mimic_array p = {buf, MIMIC_F64, 1, 1, 1};
    CHECK_OK(mimic_bind(hd, MIMIC_INPUT, "humidity", NULL, &hum));
    CHECK_OK(mimic_bind(hd, MIMIC_INPUT, "pressure", "Pa", &p));
    CHECK_ERR(mimic_run(hd, 2), MIMIC_ESTATE, "output 'heating' is not bound");
    double out[64];
    mimic_array heat = {out, MIMIC_F64, 4, 4, 1}, flux = {out + 40, MIMIC_F32, 1, 1, 1};
    CHECK_OK(mimic_bind(hd, MIMIC_OUTPUT, "heating", "K/s", &heat));
    CHECK_OK(mimic_bind(hd, MIMIC_OUTPUT, "flux", NULL, &flux));
    for (int i = 0; i < 64; i++) buf[i] = 1;
    CHECK_OK(mimic_run(hd, 4));
    CHECK_ERR(mimic_run(hd, 5), MIMIC_EARG, "input 'humidity': with sample_stride 1 and feature_stride 4, 5 samples");
    /* settings */
    CHECK_ERR(mimic_set_output_bounds(hd, "fluxx", 0, 1), MIMIC_EARG, "no output called 'fluxx'");
    CHECK_ERR(mimic_set_output_bounds(hd, "flux", 2, 1), MIMIC_EARG, "'flux': bounds [2, 1]");
    CHECK_ERR(mimic_set_output_bounds(hd, NULL, 2, 1), MIMIC_EARG, "NULL");
    CHECK_ERR(mimic_set_residual(hd, residual_fn, NULL, -1), MIMIC_EARG, "tol");
    mimic_guard *g5 = mimic_guard_fit((double[]){1, 2, 3, 4, 5, 2, 3, 4, 5, 6}, MIMIC_F64, 2, 5, NULL);
    CHECK_ERR(mimic_set_guard(hd, g5), MIMIC_EARG, "the guard has 5 features, the model's raw input width is 6");
    mimic_guard_free(g5);
    const uint8_t *fl;
    int64_t nf;
    CHECK_ERR(mimic_last_flags(hd, NULL, &nf), MIMIC_EARG, "flags is NULL");
    CHECK_ERR(mimic_last_flags(hd, &fl, NULL), MIMIC_EARG, "n is NULL");
    CHECK_ERR(mimic_get_stats(hd, NULL), MIMIC_EARG, "NULL");
    CHECK_ERR(mimic_add_member(hd, NULL), MIMIC_EARG, "path is NULL");
    /* a failing host callback fails the run, with the host's message when it gave one */
    buf[0] = NAN;
    CHECK_OK(mimic_set_fallback(hd, failing_fallback, (void *)1));
    CHECK_ERR(mimic_run(hd, 4), MIMIC_EVALUE, "the fallback failed: host kernel diverged");
    CHECK_OK(mimic_set_fallback(hd, failing_fallback, NULL));
    CHECK_ERR(mimic_run(hd, 4), MIMIC_ESTATE, "the fallback returned 1");
    CHECK_OK(mimic_set_residual(hd, failing_residual, NULL, 1));
    CHECK_ERR(mimic_run(hd, 4), MIMIC_ESTATE, "the residual callback returned 2");
    /* closed */
    CHECK_OK(mimic_close(&hd));
    CHECK(hd == NULL);
    CHECK_OK(mimic_close(&hd));
    CHECK_OK(mimic_close(NULL));
    CHECK_ERR(mimic_run(hd, 1), MIMIC_EARG, "mimic_run: handle is NULL (closed, or the open failed)");
    CHECK(strstr(mimic_last_error(NULL), "handle is NULL") != NULL);
    CHECK_ERR(mimic_bind(hd, MIMIC_INPUT, "temperature", NULL, &a), MIMIC_EARG, "handle is NULL");
    CHECK_ERR(mimic_num_vars(hd, 0, &count), MIMIC_EARG, "handle is NULL");
    CHECK_ERR(mimic_var_info(hd, 0, 0, &name, &units, &size), MIMIC_EARG, "handle is NULL");
    CHECK_ERR(mimic_set_guard(hd, NULL), MIMIC_EARG, "handle is NULL");
    CHECK_ERR(mimic_set_output_bounds(hd, "flux", 0, 1), MIMIC_EARG, "handle is NULL");
    CHECK_ERR(mimic_set_residual(hd, NULL, NULL, 0), MIMIC_EARG, "handle is NULL");
    CHECK_ERR(mimic_set_fallback(hd, NULL, NULL), MIMIC_EARG, "handle is NULL");
    CHECK_ERR(mimic_add_member(hd, file_b), MIMIC_EARG, "handle is NULL");
    CHECK_ERR(mimic_set_spread_limit(hd, 1), MIMIC_EARG, "handle is NULL");
    CHECK_ERR(mimic_last_flags(hd, &fl, &nf), MIMIC_EARG, "handle is NULL");
    mimic_stats st;
    CHECK_ERR(mimic_get_stats(hd, &st), MIMIC_EARG, "handle is NULL");
    CHECK_ERR(mimic_reset_stats(hd), MIMIC_EARG, "handle is NULL");
    CHECK_ERR(mimic_check_vars(hd, 0, mine, NULL, 3), MIMIC_EARG, "handle is NULL");
    CHECK_ERR_PTR(mimic_model_hash_of(hd), MIMIC_EARG, "handle is NULL");
}

/* Out of memory anywhere in open, bind, member, guard and the first run fails cleanly (ASan: no leak). */
TEST(out_of_memory)
{
    int ok = 0, failed = 0, tries = 0;
    int layouts[5] = {ROW, ROW, ROW, ROW, ROW};
    mimic_dtype dts[5] = {MIMIC_F64, MIMIC_F64, MIMIC_F64, MIMIC_F64, MIMIC_F64};
    host h;
    host_init(&h, 50, layouts, dts);
    mimic_guard *g = fit_guard(1);
    for (int budget = 0; budget < 600; budget += 3, tries++) {
        use_budget_allocator(budget);
        mimic_handle *hd = NULL;
        mimic_options o = {.precision = MIMIC_PRECISION_F32, .num_threads = 1};
        bool good = mimic_open(file_a64, &o, &hd) == 0;
        for (int v = 0; good && v < 3; v++)
            good = mimic_bind(hd, MIMIC_INPUT, in_vars[v].name, NULL, &h.in[v].a) == 0;
        for (int v = 0; good && v < 2; v++)
            good = mimic_bind(hd, MIMIC_OUTPUT, out_vars[v].name, NULL, &h.out[v].a) == 0;
        good = good && mimic_set_guard(hd, g) == 0 && mimic_add_member(hd, file_b) == 0 && mimic_run(hd, 50) == 0;
        oom_tally(good, &ok, &failed);
        mimic_close(&hd);
    }
    use_counting_allocator();
    CHECK(ok + failed == tries && ok > 0 && failed > 0);
    mimic_guard_free(g);
    host_free(&h);
}

/* Outputs decoded by "log, then standard" take the vectorised exp path:
 * within 2 ulp of libm's exp over the whole double range, 0 where exp
 * underflows below -708, +inf where it overflows, in float64 and float32
 * host arrays. A 1 -> 8 dense layer of unit weights copies the input. */
TEST(log_affine_decode)
{
    enum { W = 8, N = 4001 };
    const double oa[W] = {0, 1, -2, 3.5, 0, -40, 10, 0.25}, ob[W] = {1, 0.5, 2, 1e-3, 100, 1, 3, 7};
    double w1[W], b1[W] = {0};
    for (int j = 0; j < W; j++)
        w1[j] = 1;
    mimic_model *m = mimic_model_new(MIMIC_F64, 1);
    CHECK_OK(mimic_model_add_dense(m, W, w1, b1));
    mimic_io_var iv = {"x", "1", 1}, ov = {"y", "1", W};
    mimic_contract c = {1, 1, &iv, &ov};
    mimic_enc_stage os[2] = {{.kind = MIMIC_ENC_LOG, .offset = 0.5}, {.kind = MIMIC_ENC_STANDARD, .n = W, .a = oa, .b = ob}};
    mimic_encoder ie = {0, NULL}, oe = {2, os};
    const char *path = path_in_dir("logaff.h5");
    CHECK_OK(mimic_model_save(path, m, &c, &ie, &oe, NULL));
    mimic_model_free(m);
    mimic_handle *h = NULL;
    CHECK_OK(mimic_open(path, &(mimic_options){.precision = MIMIC_PRECISION_F64}, &h));
    double *x = malloc(N * sizeof *x), *y = malloc((size_t)N * W * sizeof *y);
    float *yf = malloc((size_t)N * W * sizeof *yf);
    for (int i = 0; i < N; i++)
        x[i] = -12.0 + 24.0 * i / (N - 1); /* u = x b + a spans about -1240 .. 1240 */
    CHECK_OK(mimic_bind(h, MIMIC_INPUT, "x", NULL, &(mimic_array){x, MIMIC_F64, 1, 1, 1}));
    CHECK_OK(mimic_bind(h, MIMIC_OUTPUT, "y", NULL, &(mimic_array){y, MIMIC_F64, W, W, 1}));
    CHECK_OK(mimic_run(h, N));
    double worst = 0;
    int bad = 0;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < W; j++) {
            double u = x[i] * ob[j] + oa[j], want = exp(u) - 0.5, got = y[(int64_t)i * W + j];
            if (u < -708)
                bad += got != -0.5;
            else if (u > 709)
                bad += !(isinf(got) && got > 0);
            else {
                /* exp(u) to 2 ulp; subtracting 0.5 rounds once more */
                double ulp = fabs(got - want) / (DBL_EPSILON * fmax(exp(u), 0.5));
                worst = fmax(worst, ulp);
                bad += ulp > 2.5;
            }
        }
    CHECK(bad == 0);
    CHECK(worst < 2.5);
    CHECK_OK(mimic_bind(h, MIMIC_OUTPUT, "y", NULL, &(mimic_array){yf, MIMIC_F32, W, W, 1}));
    CHECK_OK(mimic_run(h, N));
    bad = 0;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < W; j++) {
            double u = x[i] * ob[j] + oa[j];
            if (u > -708 && u < 88)
                bad += yf[(int64_t)i * W + j] != (float)y[(int64_t)i * W + j];
        }
    CHECK(bad == 0);
    mimic_close(&h);
    free(x), free(y), free(yf);
    unlink(path);
}

int main(void)
{
    use_counting_allocator();
    mimic_set_num_threads(2);
    snprintf(dir, sizeof dir, "/tmp/mimic_embed_XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    make_weights(&WA), make_weights(&WB), make_weights(&WC);
    /* member B is A perturbed (a modest spread), C further away */
    for (int i = 0; i < NOUT * HID; i++)
        WB.W2[i] = (float)(WA.W2[i] + 0.1 * (WB.W2[i])), WC.W2[i] = (float)(WA.W2[i] + 0.3 * WC.W2[i]);
    for (int i = 0; i < HID * NIN; i++)
        WB.W1[i] = WA.W1[i], WC.W1[i] = WA.W1[i];
    file_a32 = strdup(path_in_dir("a32.h5"));
    file_a64 = strdup(path_in_dir("a64.h5"));
    file_b = strdup(path_in_dir("b.h5"));
    file_c = strdup(path_in_dir("c.h5"));
    file_units = strdup(path_in_dir("units.h5"));
    file_enc = strdup(path_in_dir("enc.h5"));
    save_model(file_a32, &WA, MIMIC_F32, 0);
    save_model(file_a64, &WA, MIMIC_F64, 0);
    save_model(file_b, &WB, MIMIC_F64, 0);
    save_model(file_c, &WC, MIMIC_F32, 0);
    save_model(file_units, &WB, MIMIC_F64, 1);
    save_model(file_enc, &WB, MIMIC_F64, 2);
    RUN(matches_reference);
    RUN(large_batches);
    RUN(deterministic);
    RUN(openmp_host);
    RUN(guard_and_fallback);
    RUN(bounds_and_residual);
    RUN(ensemble);
    RUN(no_allocation_after_warmup);
    RUN(nan_inputs_and_log);
    RUN(errors);
    RUN(out_of_memory);
    RUN(log_affine_decode);
    const char *files[] = {"a32.h5", "a64.h5", "b.h5", "c.h5", "units.h5", "enc.h5", "truncated.h5", "text.h5"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        unlink(path_in_dir(files[i]));
    rmdir(dir);
    free((void *)file_a32), free((void *)file_a64), free((void *)file_b), free((void *)file_c);
    free((void *)file_units), free((void *)file_enc);
    return CHECK_DONE();
}
