/* The guard (mimic/guard.h): ranges with margins against min/max computed
 * here; Mahalanobis distances against a reference that solves with the raw
 * covariance (Gaussian elimination, no standardising, no Cholesky); the
 * limit as the quantile of the reference's training distances; hot-and-dry
 * combinations; NaN rows; copies; files: round trip, and each corrupt or
 * missing entry with its error code and name. */
#include "check.h"
#include "testutil.h"

#include "mimic/embed.h"
#include "mimic/guard.h"
#include "mimic/io.h"

#include <omp.h>
#include <stdlib.h>
#include <unistd.h>

static char dir[64];
static uint64_t state = 0x9E3779B97F4A7C15ull;
static double urand(void)
{
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return (double)(state >> 11) * 0x1p-53;
}
static double nrand(void) { return sqrt(-2 * log(1 - urand())) * cos(6.283185307179586 * urand()); }

static const char *pth(const char *name)
{
    static char buf[4][160];
    static int k;
    char *p = buf[k++ % 4];
    snprintf(p, 160, "%s/%s", dir, name);
    return p;
}

/* Training data: F features, correlated (feature 1 follows feature 0), very
 * different scales (feature 2 ~ 1e5, feature 1 ~ 1e-3), one constant feature
 * when F > 3. */
#define F 4
static double *training(int64_t n)
{
    double *x = malloc(sizeof(double) * (size_t)(n * F));
    for (int64_t i = 0; i < n; i++) {
        double t = nrand();
        x[i * F + 0] = 280 + 10 * t;
        x[i * F + 1] = 0.01 + 0.003 * (0.9 * t + 0.436 * nrand());
        x[i * F + 2] = 9e4 + 5e3 * nrand();
        x[i * F + 3] = 7.5;
    }
    return x;
}

/* Reference d(x): solve (C + 1e-9 diag(var)) y = x - mu by Gaussian
 * elimination with partial pivoting, d^2 = (x - mu) . y. (On standardised
 * features the ridge is 1e-9 times each variance; a constant feature's
 * variance counts as 1.) */
static void ref_setup(const double *x, int64_t n, double *mu, double *C)
{
    for (int j = 0; j < F; j++) {
        mu[j] = 0;
        for (int64_t i = 0; i < n; i++) mu[j] += x[i * F + j];
        mu[j] /= (double)n; /* sum, then divide: the constant feature's mean is exact */
    }
    for (int a = 0; a < F; a++)
        for (int b = 0; b < F; b++) {
            double s = 0;
            for (int64_t i = 0; i < n; i++) s += (x[i * F + a] - mu[a]) * (x[i * F + b] - mu[b]);
            C[a * F + b] = s / (double)n;
        }
    for (int j = 0; j < F; j++)
        C[j * F + j] += 1e-9 * (C[j * F + j] > 0 ? C[j * F + j] : 1);
}
static double ref_dist(const double *mu, const double *C, const double *x)
{
    double A[F][F + 1], diff[F];
    for (int a = 0; a < F; a++) {
        diff[a] = x[a] - mu[a];
        for (int b = 0; b < F; b++) A[a][b] = C[a * F + b];
        A[a][F] = diff[a];
    }
    for (int c = 0; c < F; c++) {
        int p = c;
        for (int r = c + 1; r < F; r++) if (fabs(A[r][c]) > fabs(A[p][c])) p = r;
        for (int k = 0; k <= F; k++) { double t = A[c][k]; A[c][k] = A[p][k]; A[p][k] = t; }
        for (int r = c + 1; r < F; r++) {
            double f = A[r][c] / A[c][c];
            for (int k = c; k <= F; k++) A[r][k] -= f * A[c][k];
        }
    }
    double y[F], d2 = 0;
    for (int r = F - 1; r >= 0; r--) {
        double s = A[r][F];
        for (int k = r + 1; k < F; k++) s -= A[r][k] * y[k];
        y[r] = s / A[r][r];
    }
    for (int a = 0; a < F; a++) d2 += diff[a] * y[a];
    return sqrt(d2);
}
static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

TEST(ranges)
{
    int64_t n = 500;
    double *x = training(n);
    mimic_guard *g = mimic_guard_fit(x, MIMIC_F64, n, F, &(mimic_guard_options){.margin = 0.1});
    CHECK_PTR(g);
    CHECK(mimic_guard_nfeat(g) == F);
    const double *lo, *hi;
    double dl = -1;
    CHECK_OK(mimic_guard_limits(g, &lo, &hi, &dl));
    CHECK(dl == 0);
    double w[2 * F];
    for (int j = 0; j < F; j++) {
        double mn = INFINITY, mx = -INFINITY;
        for (int64_t i = 0; i < n; i++) mn = fmin(mn, x[i * F + j]), mx = fmax(mx, x[i * F + j]);
        CHECK_NEAR(lo[j], mn - 0.1 * (mx - mn), 1e-12 * fabs(mn));
        CHECK_NEAR(hi[j], mx + 0.1 * (mx - mn), 1e-12 * fabs(mx));
        /* just inside and just outside each bound */
        double row[F];
        for (int k = 0; k < F; k++) row[k] = x[k];
        row[j] = lo[j];
        CHECK(mimic_guard_check(g, row, w) == 0);
        row[j] = hi[j];
        CHECK(mimic_guard_check(g, row, w) == 0);
        row[j] = nextafter(lo[j], -INFINITY) - 1e-9 * fabs(lo[j]);
        CHECK(mimic_guard_check(g, row, w) == MIMIC_FLAG_RANGE);
        row[j] = hi[j] + 1e-9 * fabs(hi[j]) + 1e-12;
        CHECK(mimic_guard_check(g, row, w) == MIMIC_FLAG_RANGE);
        row[j] = NAN;
        CHECK(mimic_guard_check(g, row, w) == (MIMIC_FLAG_INPUT_NAN | MIMIC_FLAG_RANGE));
        row[j] = -INFINITY;
        CHECK(mimic_guard_check(g, row, w) == (MIMIC_FLAG_INPUT_NAN | MIMIC_FLAG_RANGE));
    }
    /* float32 data fits the same ranges as the same values in float64 */
    float *xf = malloc(sizeof(float) * (size_t)(n * F));
    double *xd = malloc(sizeof(double) * (size_t)(n * F));
    for (int64_t k = 0; k < n * F; k++) xf[k] = (float)x[k], xd[k] = xf[k];
    mimic_guard *gf = mimic_guard_fit(xf, MIMIC_F32, n, F, &(mimic_guard_options){.margin = 0.1});
    mimic_guard *gd = mimic_guard_fit(xd, MIMIC_F64, n, F, &(mimic_guard_options){.margin = 0.1});
    const double *lo2, *hi2;
    CHECK_OK(mimic_guard_limits(gf, &lo, &hi, NULL));
    CHECK_OK(mimic_guard_limits(gd, &lo2, &hi2, NULL));
    CHECK(memcmp(lo, lo2, sizeof(double) * F) == 0 && memcmp(hi, hi2, sizeof(double) * F) == 0);
    mimic_guard_free(gf), mimic_guard_free(gd);
    free(xf), free(xd), free(x);
    mimic_guard_free(g);
}

TEST(distance)
{
    int64_t n = 3000;
    double *x = training(n);
    double q = 0.99, margin = 0.05;
    mimic_guard *g = mimic_guard_fit(x, MIMIC_F64, n, F, &(mimic_guard_options){margin, 1, q});
    CHECK_PTR(g);
    double mu[F], C[F * F];
    ref_setup(x, n, mu, C);
    double *d = malloc(sizeof(double) * (size_t)n);
    for (int64_t i = 0; i < n; i++) d[i] = ref_dist(mu, C, x + i * F);
    qsort(d, (size_t)n, sizeof *d, cmp_d);
    double pos = q * (double)(n - 1), frac = pos - floor(pos);
    double want = (d[(int64_t)pos] + frac * (d[(int64_t)pos + 1] - d[(int64_t)pos])) * (1 + margin), limit;
    CHECK_OK(mimic_guard_limits(g, NULL, NULL, &limit));
    CHECK_NEAR(limit, want, 1e-6 * want);
    /* points at chosen reference distances along random directions: flagged iff beyond the limit */
    double w[2 * F];
    int wrong = 0, far = 0;
    for (int k = 0; k < 400; k++) {
        double row[F], dir_[F];
        int64_t i = (int64_t)(urand() * (double)n);
        for (int j = 0; j < F; j++) dir_[j] = x[i * F + j] - mu[j];
        double r = ref_dist(mu, C, x + i * F), s = (0.5 + 1.5 * urand()) * limit / r;
        for (int j = 0; j < F; j++) row[j] = mu[j] + s * dir_[j];
        double dr = ref_dist(mu, C, row);
        if (fabs(dr - limit) < 1e-6 * limit)
            continue;
        unsigned m = mimic_guard_check(g, row, w);
        wrong += ((m & MIMIC_FLAG_DISTANCE) != 0) != (dr > limit);
        far += dr > limit;
    }
    CHECK(wrong == 0 && far > 50);
    /* hot and dry: every feature inside its range, the combination never seen */
    double hot_dry[F] = {300, 0.005, 9e4, 7.5};
    CHECK(mimic_guard_check(g, hot_dry, w) == MIMIC_FLAG_DISTANCE);
    double hot_humid[F] = {300, 0.0155, 9e4, 7.5};
    CHECK(mimic_guard_check(g, hot_humid, w) == 0);
    CHECK(mimic_guard_check(g, hot_dry, NULL) == MIMIC_FLAG_DISTANCE && mimic_guard_check(g, hot_humid, NULL) == 0);
    CHECK(mimic_guard_check(NULL, hot_dry, w) == 0);
    double nan_row[F] = {280, NAN, 9e4, 7.5};
    CHECK(mimic_guard_check(g, nan_row, w) == (MIMIC_FLAG_INPUT_NAN | MIMIC_FLAG_RANGE | MIMIC_FLAG_DISTANCE));
    /* a copy behaves the same */
    mimic_guard *c = mimic_guard_copy(g);
    CHECK(mimic_guard_check(c, hot_dry, w) == MIMIC_FLAG_DISTANCE && mimic_guard_check(c, hot_humid, w) == 0);
    double l2;
    CHECK_OK(mimic_guard_limits(c, NULL, NULL, &l2));
    CHECK(l2 == limit);
    mimic_guard_free(c);
    mimic_guard_free(g);
    free(d), free(x);
}

static void copy_entry(mimic_dict *d, mimic_dict_writer *w, const mimic_dict_entry *e)
{
    switch (e->kind) {
    case MIMIC_DICT_TENSOR: {
        mimic_tensor *v = mimic_dict_get_tensor(d, e->name);
        CHECK_OK(mimic_dict_put_tensor(w, e->name, v));
        mimic_tensor_free(v);
        break;
    }
    case MIMIC_DICT_INT: CHECK_OK(mimic_dict_put_int(w, e->name, e->i)); break;
    case MIMIC_DICT_NUMBER: CHECK_OK(mimic_dict_put_number(w, e->name, e->d)); break;
    case MIMIC_DICT_STRING: CHECK_OK(mimic_dict_put_string(w, e->name, e->s, e->len)); break;
    default: break;
    }
}

/* Copies every entry of src into a new dictionary at dst, except `drop`, and
 * replacing tensor `swap` by t (NULL: no swap) or adding `extra`. */
static void rewrite(const char *src, const char *dst, const char *drop, const char *swap, const mimic_tensor *t,
                    const char *extra)
{
    mimic_dict *d = mimic_dict_open(src);
    mimic_dict_writer *w = mimic_dict_create(dst);
    CHECK(d && w);
    for (int64_t i = 0; d && w && i < mimic_dict_count(d); i++) {
        const mimic_dict_entry *e = mimic_dict_entry_at(d, i);
        if (drop && !strcmp(e->name, drop))
            continue;
        if (swap && !strcmp(e->name, swap)) {
            CHECK_OK(mimic_dict_put_tensor(w, e->name, t));
            continue;
        }
        copy_entry(d, w, e);
    }
    if (extra)
        CHECK_OK(mimic_dict_put_number(w, extra, 1));
    CHECK_OK(mimic_dict_commit(w));
    mimic_dict_close(d);
}

/* The largest single request since the last reset: what loading a file dares
 * to allocate before it has checked the file. */
static size_t largest_alloc;
static void *track_alloc(void *ud, size_t n)
{
    (void)ud;
    largest_alloc = n > largest_alloc ? n : largest_alloc;
    return malloc(n);
}
static void *track_realloc(void *ud, void *p, size_t n)
{
    (void)ud;
    largest_alloc = n > largest_alloc ? n : largest_alloc;
    return realloc(p, n);
}
static void track_free(void *ud, void *p)
{
    (void)ud;
    free(p);
}

/* A file claiming 8192 features (a 512 MiB Cholesky factor) whose arrays have
 * 4: refused on the shapes, before the factor is allocated. */
static void claims_more_than_it_holds(const char *good, const char *bad)
{
    mimic_dict *d = mimic_dict_open(good);
    mimic_dict_writer *w = mimic_dict_create(bad);
    CHECK(d && w);
    for (int64_t i = 0; d && w && i < mimic_dict_count(d); i++) {
        const mimic_dict_entry *e = mimic_dict_entry_at(d, i);
        if (!strcmp(e->name, "nfeat"))
            CHECK_OK(mimic_dict_put_int(w, e->name, 8192));
        else
            copy_entry(d, w, e);
    }
    CHECK_OK(mimic_dict_commit(w));
    mimic_dict_close(d);
    largest_alloc = 0;
    mimic_set_allocator(&(mimic_allocator){track_alloc, track_realloc, track_free, NULL});
    CHECK_ERR_PTR(mimic_guard_load(bad), MIMIC_EIO, "entry 'min' is float64 [4], expected float64 [8192]");
    use_counting_allocator();
    CHECK(largest_alloc < 8192 * sizeof(double));
}

TEST(files)
{
    int64_t n = 800;
    double *x = training(n);
    mimic_guard *g = mimic_guard_fit(x, MIMIC_F64, n, F, &(mimic_guard_options){0.02, 1, 0});
    const char *good = pth("guard.h5"), *bad = pth("bad.h5");
    CHECK_OK(mimic_guard_save(g, good));
    mimic_guard *r = mimic_guard_load(good);
    CHECK_PTR(r);
    const double *lo, *hi, *lo2, *hi2;
    double l1, l2;
    CHECK_OK(mimic_guard_limits(g, &lo, &hi, &l1));
    CHECK_OK(mimic_guard_limits(r, &lo2, &hi2, &l2));
    CHECK(l1 == l2 && l1 > 0 && !memcmp(lo, lo2, sizeof(double) * F) && !memcmp(hi, hi2, sizeof(double) * F));
    double w[2 * F];
    int differ = 0;
    for (int k = 0; k < 300; k++) {
        double row[F];
        for (int j = 0; j < F; j++) row[j] = x[(k % n) * F + j] * (0.97 + 0.06 * urand());
        differ += mimic_guard_check(g, row, w) != mimic_guard_check(r, row, w);
    }
    CHECK(differ == 0);
    mimic_guard_free(r);
    /* a range-only guard too */
    mimic_guard *g0 = mimic_guard_fit(x, MIMIC_F64, n, F, NULL);
    CHECK_OK(mimic_guard_save(g0, bad));
    r = mimic_guard_load(bad);
    CHECK(r && mimic_guard_limits(r, NULL, NULL, &l2) == 0 && l2 == 0);
    mimic_guard_free(r), mimic_guard_free(g0);

    /* corrupt and missing entries */
    claims_more_than_it_holds(good, bad);
    rewrite(good, bad, "chol", NULL, NULL, NULL);
    CHECK_ERR_PTR(mimic_guard_load(bad), MIMIC_EIO, "entry 'chol' is missing");
    rewrite(good, bad, "min", NULL, NULL, NULL);
    CHECK_ERR_PTR(mimic_guard_load(bad), MIMIC_EIO, "entry 'min' is missing");
    rewrite(good, bad, "format", NULL, NULL, NULL);
    CHECK_ERR_PTR(mimic_guard_load(bad), MIMIC_EIO, "not a guard file");
    rewrite(good, bad, NULL, NULL, NULL, "surprise");
    CHECK_ERR_PTR(mimic_guard_load(bad), MIMIC_EIO, "unexpected entry 'surprise'");
    mimic_tensor *t5 = mimic_zeros(1, (int64_t[]){F + 1}, MIMIC_F64);
    rewrite(good, bad, NULL, "max", t5, NULL);
    CHECK_ERR_PTR(mimic_guard_load(bad), MIMIC_EIO, "entry 'max' is float64 [5], expected float64 [4]");
    mimic_tensor *tf = mimic_zeros(1, (int64_t[]){F}, MIMIC_F32);
    rewrite(good, bad, NULL, "mean", tf, NULL);
    CHECK_ERR_PTR(mimic_guard_load(bad), MIMIC_EIO, "entry 'mean' is float32");
    mimic_dict *gd = mimic_dict_open(good);
    mimic_tensor *mx = mimic_dict_get_tensor(gd, "max");
    ((double *)mimic_data(mx))[2] = INFINITY;
    rewrite(good, bad, NULL, "max", mx, NULL);
    CHECK_ERR_PTR(mimic_guard_load(bad), MIMIC_EVALUE, "entry 'max': element 2 is inf");
    ((double *)mimic_data(mx))[2] = -1e300; /* below min */
    rewrite(good, bad, NULL, "max", mx, NULL);
    CHECK_ERR_PTR(mimic_guard_load(bad), MIMIC_EVALUE, "feature 2: min");
    mimic_tensor *ch = mimic_dict_get_tensor(gd, "chol");
    ((double *)mimic_data(ch))[1] = 0.5; /* above the diagonal */
    rewrite(good, bad, NULL, "chol", ch, NULL);
    CHECK_ERR_PTR(mimic_guard_load(bad), MIMIC_EVALUE, "'chol' is not lower triangular");
    ((double *)mimic_data(ch))[1] = 0, ((double *)mimic_data(ch))[0] = -1;
    rewrite(good, bad, NULL, "chol", ch, NULL);
    CHECK_ERR_PTR(mimic_guard_load(bad), MIMIC_EVALUE, "'chol': diagonal element 0");
    mimic_tensor *sc = mimic_dict_get_tensor(gd, "scale");
    ((double *)mimic_data(sc))[3] = 0;
    rewrite(good, bad, NULL, "scale", sc, NULL);
    CHECK_ERR_PTR(mimic_guard_load(bad), MIMIC_EVALUE, "entry 'scale': element 3");
    mimic_dict_close(gd);
    mimic_tensor_free(mx), mimic_tensor_free(ch), mimic_tensor_free(sc);
    mimic_tensor_free(t5), mimic_tensor_free(tf);
    /* not a dictionary at all, truncated, missing */
    FILE *f = fopen(bad, "wb");
    fputs("min,max\n0,1\n", f);
    fclose(f);
    CHECK_ERR_PTR(mimic_guard_load(bad), MIMIC_EIO, "bad.h5");
    f = fopen(good, "rb");
    char buf[1 << 16];
    size_t nb = fread(buf, 1, sizeof buf, f);
    fclose(f);
    f = fopen(bad, "wb");
    fwrite(buf, 1, nb / 2, f);
    fclose(f);
    CHECK_ERR_PTR(mimic_guard_load(bad), MIMIC_EIO, "bad.h5");
    CHECK_ERR_PTR(mimic_guard_load(pth("none.h5")), MIMIC_EIO, "none.h5");
    CHECK_ERR_PTR(mimic_guard_load(NULL), MIMIC_EARG, "path is NULL");
    CHECK_ERR(mimic_guard_save(NULL, good), MIMIC_EARG, "guard is NULL");
    CHECK_ERR(mimic_guard_save(g, "/nonexistent-dir/g.h5"), MIMIC_EIO, "nonexistent-dir");
    unlink(good), unlink(bad);
    mimic_guard_free(g);
    free(x);
}

TEST(fit_errors)
{
    double x[3 * 2] = {1, 2, 3, 4, 5, 6};
    CHECK_ERR_PTR(mimic_guard_fit(NULL, MIMIC_F64, 3, 2, NULL), MIMIC_EARG, "x is NULL");
    CHECK_ERR_PTR(mimic_guard_fit(x, MIMIC_I64, 3, 2, NULL), MIMIC_EARG, "float32 or float64");
    CHECK_ERR_PTR(mimic_guard_fit(x, MIMIC_F64, 1, 2, NULL), MIMIC_EARG, "at least 2");
    CHECK_ERR_PTR(mimic_guard_fit(x, MIMIC_F64, 3, 0, NULL), MIMIC_EARG, "nfeat");
    CHECK_ERR_PTR(mimic_guard_fit(x, MIMIC_F64, 2, 3, &(mimic_guard_options){.distance = 1}), MIMIC_EARG,
                  "more rows than features");
    CHECK_ERR_PTR(mimic_guard_fit(x, MIMIC_F64, 3, 2, &(mimic_guard_options){.margin = -1}), MIMIC_EARG, "margin");
    CHECK_ERR_PTR(mimic_guard_fit(x, MIMIC_F64, 3, 2, &(mimic_guard_options){.quantile = 1.5}), MIMIC_EARG, "quantile");
    /* refused on n alone, before x is read */
    CHECK_ERR_PTR(mimic_guard_fit(x, MIMIC_F64, 2000000000, 2, NULL), MIMIC_EARG, "fit on a random subsample");
    x[3] = NAN;
    CHECK_ERR_PTR(mimic_guard_fit(x, MIMIC_F64, 3, 2, NULL), MIMIC_EVALUE, "training row 1, feature 1");
    CHECK_ERR_PTR(mimic_guard_copy(NULL), MIMIC_EARG, "NULL");
    CHECK_ERR(mimic_guard_limits(NULL, NULL, NULL, NULL), MIMIC_EARG, "NULL");
    CHECK(mimic_guard_nfeat(NULL) == 0);
}

/* Threads of a host each loading and saving guard files at once: HDF5 is not
 * thread-safe, so mimic must make them take turns (without that, HDF5's
 * shared state breaks: errors, wrong data or a crash). */
TEST(threads_load_and_save)
{
    int64_t n = 300;
    double *x = training(n);
    mimic_guard *g = mimic_guard_fit(x, MIMIC_F64, n, F, &(mimic_guard_options){0.02, 1, 0});
    const char *src = pth("shared.h5");
    CHECK_OK(mimic_guard_save(g, src));
    const double *lo, *hi;
    double lim;
    CHECK_OK(mimic_guard_limits(g, &lo, &hi, &lim));
    int failures = 0;
#pragma omp parallel num_threads(4) reduction(+ : failures)
    {
        char own[200];
        snprintf(own, sizeof own, "%s/own%d.h5", dir, omp_get_thread_num());
        for (int k = 0; k < 25; k++) {
            mimic_guard *a = mimic_guard_load(src);
            mimic_guard *b = a && mimic_guard_save(a, own) == MIMIC_OK ? mimic_guard_load(own) : NULL;
            const double *lo2, *hi2;
            double lim2;
            failures += !b || mimic_guard_limits(b, &lo2, &hi2, &lim2) != MIMIC_OK || lim2 != lim ||
                        memcmp(lo, lo2, sizeof(double) * F) != 0 || memcmp(hi, hi2, sizeof(double) * F) != 0;
            mimic_guard_free(a), mimic_guard_free(b);
        }
        unlink(own);
    }
    CHECK(failures == 0);
    unlink(src);
    mimic_guard_free(g);
    free(x);
}

/* Out of memory anywhere in fit, copy, save and load fails cleanly. */
TEST(out_of_memory)
{
    int64_t n = 200;
    double *x = training(n);
    int ok = 0, failed = 0, tries = 0;
    for (int budget = 0; budget < 200; budget += 2, tries++) {
        use_budget_allocator(budget);
        mimic_guard *g = mimic_guard_fit(x, MIMIC_F64, n, F, &(mimic_guard_options){.distance = 1});
        mimic_guard *c = g ? mimic_guard_copy(g) : NULL;
        mimic_guard *r = c && mimic_guard_save(c, pth("oom.h5")) == 0 ? mimic_guard_load(pth("oom.h5")) : NULL;
        oom_tally(r != NULL, &ok, &failed);
        mimic_guard_free(r), mimic_guard_free(c), mimic_guard_free(g);
    }
    use_counting_allocator();
    unlink(pth("oom.h5"));
    CHECK(ok + failed == tries && ok > 0 && failed > 0);
    free(x);
}

int main(void)
{
    use_counting_allocator();
    mimic_set_num_threads(2);
    snprintf(dir, sizeof dir, "/tmp/mimic_guard_XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(ranges);
    RUN(distance);
    RUN(files);
    RUN(fit_errors);
    RUN(threads_load_and_save);
    RUN(out_of_memory);
    rmdir(dir);
    return CHECK_DONE();
}
