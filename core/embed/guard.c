/* The guard (mimic/guard.h): per-feature ranges and an optional Mahalanobis
 * distance, fitted on raw training inputs, checked per sample at run time.
 *
 * The distance is computed on standardised features (each divided by its
 * training standard deviation): Mahalanobis distances do not change under
 * per-feature scaling, but the ridge does. With raw covariances a ridge of
 * 1e-9 * trace / nfeat is set by the widest feature (a pressure in Pa) and
 * would swamp a narrow one (a humidity in kg/kg); on standardised features
 * trace / nfeat is 1 and the ridge is 1e-9 of every feature's variance.
 *
 * File (a tensor dictionary, mimic/io.h), format "mimic-guard" version 1:
 *   format (string), version (int), nfeat (int), margin, quantile (numbers),
 *   distance (int 0/1), min, max [nfeat] float64; with distance also
 *   mean, scale [nfeat], chol [nfeat, nfeat] (lower Cholesky factor of the
 *   standardised covariance + ridge) and limit (number).
 * Loading checks every entry's kind, dtype and shape before allocating or
 * reading anything, and every value (finite, ordered, positive) after: a file
 * never yields a guard that would misbehave. */
#include "mimic/guard.h"

#include "mimic/embed.h"
#include "mimic/io.h"

#include <cblas.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GUARD_FORMAT "mimic-guard"
#define GUARD_VERSION 1
#define MAX_FEAT (1 << 20)
#define MAX_DIST_FEAT 8192 /* chol is nfeat^2 doubles: 512 MiB at this width */
#define BLOCK_ROWS 1024

struct mimic_guard {
    int64_t nfeat;
    double margin, quantile;
    int distance;
    double *min, *max, *lo, *hi;   /* [nfeat]; lo/hi with the margin applied */
    double *mean, *scale, *chol;   /* distance only: [nfeat], [nfeat], [nfeat, nfeat] lower */
    double limit;                  /* distance limit (0 when off) */
};

void mimic_guard_free(mimic_guard *g)
{
    if (!g)
        return;
    mimic_free(g->min);
    mimic_free(g->max);
    mimic_free(g->lo);
    mimic_free(g->hi);
    mimic_free(g->mean);
    mimic_free(g->scale);
    mimic_free(g->chol);
    mimic_free(g);
}

/* A guard with its arrays allocated (uninitialised); NULL on failure. */
static mimic_guard *alloc_guard(int64_t nfeat, int distance)
{
    mimic_guard *g = mimic_calloc(1, sizeof *g);
    if (!g)
        return NULL;
    g->nfeat = nfeat;
    g->distance = distance;
    size_t v = (size_t)nfeat * sizeof(double);
    bool ok = (g->min = mimic_malloc(v)) && (g->max = mimic_malloc(v)) && (g->lo = mimic_malloc(v)) &&
              (g->hi = mimic_malloc(v));
    if (ok && distance)
        ok = (g->mean = mimic_malloc(v)) && (g->scale = mimic_malloc(v)) &&
             (g->chol = mimic_calloc((size_t)nfeat * (size_t)nfeat, sizeof(double)));
    if (!ok) {
        mimic_guard_free(g);
        return NULL;
    }
    return g;
}

static void apply_margin(mimic_guard *g)
{
    for (int64_t j = 0; j < g->nfeat; j++) {
        double r = g->max[j] - g->min[j];
        g->lo[j] = g->min[j] - g->margin * r;
        g->hi[j] = g->max[j] + g->margin * r;
    }
}

static inline double xat(const void *x, mimic_dtype dt, int64_t k)
{
    return dt == MIMIC_F32 ? (double)((const float *)x)[k] : ((const double *)x)[k];
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* In-place lower Cholesky of the row-major [n, n] matrix a (upper part zeroed). */
static int cholesky(double *a, int64_t n)
{
    for (int64_t j = 0; j < n; j++) {
        double d = a[j * n + j];
        for (int64_t k = 0; k < j; k++)
            d -= a[j * n + k] * a[j * n + k];
        if (!(d > 0))
            return -1;
        d = sqrt(d);
        a[j * n + j] = d;
        for (int64_t i = j + 1; i < n; i++) {
            double s = a[i * n + j];
            for (int64_t k = 0; k < j; k++)
                s -= a[i * n + k] * a[j * n + k];
            a[i * n + j] = s / d;
        }
        for (int64_t k = j + 1; k < n; k++)
            a[j * n + k] = 0;
    }
    return 0;
}

/* Standardised rows [r0, r0+m) of x into z. */
static void standardise(const mimic_guard *g, const void *x, mimic_dtype dt, int64_t r0, int64_t m, double *z)
{
    int64_t f = g->nfeat;
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < f; j++)
            z[i * f + j] = (xat(x, dt, (r0 + i) * f + j) - g->mean[j]) / g->scale[j];
}

static int fit_distance(mimic_guard *g, const void *x, mimic_dtype dt, int64_t n)
{
    int64_t f = g->nfeat;
    for (int64_t j = 0; j < f; j++)
        g->mean[j] = 0, g->scale[j] = 0;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < f; j++)
            g->mean[j] += xat(x, dt, i * f + j);
    for (int64_t j = 0; j < f; j++)
        g->mean[j] /= (double)n;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < f; j++) {
            double d = xat(x, dt, i * f + j) - g->mean[j];
            g->scale[j] += d * d;
        }
    for (int64_t j = 0; j < f; j++) {
        double sd = sqrt(g->scale[j] / (double)n);
        /* a constant feature (up to the rounding of its mean): scale 1, and the
         * ridge keeps the covariance definite */
        g->scale[j] = sd > 1e-12 * fabs(g->mean[j]) && isfinite(sd) ? sd : 1;
    }
    int64_t bn = n < BLOCK_ROWS ? n : BLOCK_ROWS;
    double *z = mimic_malloc((size_t)(bn * f) * sizeof(double));
    double *dist = mimic_malloc((size_t)n * sizeof(double));
    if (!z || !dist) {
        mimic_free(z), mimic_free(dist);
        return MIMIC_ENOMEM;
    }
    double *C = g->chol;
    for (int64_t r0 = 0; r0 < n; r0 += bn) {
        int64_t m = n - r0 < bn ? n - r0 : bn;
        standardise(g, x, dt, r0, m, z);
        cblas_dsyrk(CblasRowMajor, CblasLower, CblasTrans, (int)f, (int)m, 1.0 / (double)n, z, (int)f,
                    r0 ? 1.0 : 0.0, C, (int)f);
    }
    double trace = 0;
    for (int64_t j = 0; j < f; j++)
        trace += C[j * f + j];
    double ridge = trace > 0 ? 1e-9 * trace / (double)f : 1e-9;
    for (int64_t j = 0; j < f; j++)
        C[j * f + j] += ridge;
    if (cholesky(C, f)) {
        mimic_free(z), mimic_free(dist);
        return mimic_error(MIMIC_EVALUE, "mimic_guard_fit: the training covariance is not positive definite even "
                           "with a ridge (non-finite or degenerate data)");
    }
    for (int64_t r0 = 0; r0 < n; r0 += bn) {
        int64_t m = n - r0 < bn ? n - r0 : bn;
        standardise(g, x, dt, r0, m, z);
        /* rows y with L y = z: Y = Z L^-T */
        cblas_dtrsm(CblasRowMajor, CblasRight, CblasLower, CblasTrans, CblasNonUnit, (int)m, (int)f, 1.0, C, (int)f,
                    z, (int)f);
        for (int64_t i = 0; i < m; i++) {
            double s = 0;
            for (int64_t j = 0; j < f; j++)
                s += z[i * f + j] * z[i * f + j];
            dist[r0 + i] = sqrt(s);
        }
    }
    qsort(dist, (size_t)n, sizeof *dist, cmp_double);
    double pos = g->quantile * (double)(n - 1);
    int64_t k = (int64_t)pos;
    double q = k + 1 < n ? dist[k] + (pos - (double)k) * (dist[k + 1] - dist[k]) : dist[n - 1];
    g->limit = q * (1 + g->margin);
    mimic_free(z), mimic_free(dist);
    return MIMIC_OK;
}

mimic_guard *mimic_guard_fit(const void *x, mimic_dtype dtype, int64_t n, int64_t nfeat,
                             const mimic_guard_options *opt)
{
    mimic_guard_options o = opt ? *opt : (mimic_guard_options){0};
    if (o.quantile == 0)
        o.quantile = 0.999;
    int rc = MIMIC_OK;
    if (!x)
        rc = mimic_error(MIMIC_EARG, "mimic_guard_fit: x is NULL");
    else if (dtype != MIMIC_F32 && dtype != MIMIC_F64)
        rc = mimic_error(MIMIC_EARG, "mimic_guard_fit: x is %s; float32 or float64 only", mimic_dtype_name(dtype));
    else if (nfeat < 1 || nfeat > MAX_FEAT)
        rc = mimic_error(MIMIC_EARG, "mimic_guard_fit: nfeat must be in 1..%d, got %lld", MAX_FEAT, (long long)nfeat);
    else if (n < 2)
        rc = mimic_error(MIMIC_EARG, "mimic_guard_fit: n = %lld training rows; at least 2 are needed", (long long)n);
    else if (o.distance && (n <= nfeat || nfeat > MAX_DIST_FEAT))
        rc = mimic_error(MIMIC_EARG, "mimic_guard_fit: the distance test needs more rows than features (n = %lld, "
                         "nfeat = %lld) and at most %d features", (long long)n, (long long)nfeat, MAX_DIST_FEAT);
    else if (!(o.margin >= 0) || !isfinite(o.margin))
        rc = mimic_error(MIMIC_EARG, "mimic_guard_fit: margin must be finite and >= 0, got %g", o.margin);
    else if (!(o.quantile > 0 && o.quantile <= 1))
        rc = mimic_error(MIMIC_EARG, "mimic_guard_fit: quantile must be in (0, 1] (0: 0.999), got %g", o.quantile);
    else if (n > INT32_MAX / 2)
        rc = mimic_error(MIMIC_EARG, "mimic_guard_fit: n = %lld rows is too many for one fit (at most %d); fit on a "
                         "random subsample", (long long)n, INT32_MAX / 2);
    if (rc)
        return NULL;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < nfeat; j++)
            if (!isfinite(xat(x, dtype, i * nfeat + j))) {
                mimic_error(MIMIC_EVALUE, "mimic_guard_fit: training row %lld, feature %lld is %g; drop non-finite "
                            "rows before fitting", (long long)i, (long long)j, xat(x, dtype, i * nfeat + j));
                return NULL;
            }
    mimic_guard *g = alloc_guard(nfeat, o.distance != 0);
    if (!g)
        return NULL;
    g->margin = o.margin;
    g->quantile = o.quantile;
    for (int64_t j = 0; j < nfeat; j++)
        g->min[j] = g->max[j] = xat(x, dtype, j);
    for (int64_t i = 1; i < n; i++)
        for (int64_t j = 0; j < nfeat; j++) {
            double v = xat(x, dtype, i * nfeat + j);
            if (v < g->min[j])
                g->min[j] = v;
            if (v > g->max[j])
                g->max[j] = v;
        }
    apply_margin(g);
    if (g->distance && fit_distance(g, x, dtype, n) != MIMIC_OK) {
        mimic_guard_free(g);
        return NULL;
    }
    return g;
}

mimic_guard *mimic_guard_copy(const mimic_guard *g)
{
    if (!g) {
        mimic_error(MIMIC_EARG, "mimic_guard_copy: guard is NULL");
        return NULL;
    }
    mimic_guard *c = alloc_guard(g->nfeat, g->distance);
    if (!c)
        return NULL;
    size_t v = (size_t)g->nfeat * sizeof(double);
    c->margin = g->margin;
    c->quantile = g->quantile;
    c->limit = g->limit;
    memcpy(c->min, g->min, v);
    memcpy(c->max, g->max, v);
    memcpy(c->lo, g->lo, v);
    memcpy(c->hi, g->hi, v);
    if (g->distance) {
        memcpy(c->mean, g->mean, v);
        memcpy(c->scale, g->scale, v);
        memcpy(c->chol, g->chol, v * (size_t)g->nfeat);
    }
    return c;
}

int64_t mimic_guard_nfeat(const mimic_guard *g) { return g ? g->nfeat : 0; }

unsigned mimic_guard_check(const mimic_guard *g, const double *row, double *work)
{
    if (!g || !row)
        return 0;
    int64_t f = g->nfeat;
    unsigned mask = 0;
    for (int64_t j = 0; j < f; j++) {
        double v = row[j];
        if (!isfinite(v))
            return MIMIC_FLAG_INPUT_NAN | MIMIC_FLAG_RANGE | (g->distance ? MIMIC_FLAG_DISTANCE : 0u);
        if (v < g->lo[j] || v > g->hi[j])
            mask |= MIMIC_FLAG_RANGE;
    }
    if (g->distance) {
        /* forward substitution L y = z, z the standardised row; d = |y| */
        double small[64], *y = work ? work : f <= 64 ? small : NULL, s = 0;
        if (!y) /* no scratch for a wide guard: not "inside" unchecked */
            return mask | MIMIC_FLAG_DISTANCE;
        for (int64_t i = 0; i < f; i++) {
            double t = (row[i] - g->mean[i]) / g->scale[i];
            const double *L = g->chol + i * f;
            for (int64_t k = 0; k < i; k++)
                t -= L[k] * y[k];
            y[i] = t / L[i];
            s += y[i] * y[i];
        }
        if (!(sqrt(s) <= g->limit))
            mask |= MIMIC_FLAG_DISTANCE;
    }
    return mask;
}

int mimic_guard_limits(const mimic_guard *g, const double **lo, const double **hi, double *dist_limit)
{
    if (!g)
        return mimic_error(MIMIC_EARG, "mimic_guard_limits: guard is NULL");
    if (lo)
        *lo = g->lo;
    if (hi)
        *hi = g->hi;
    if (dist_limit)
        *dist_limit = g->distance ? g->limit : 0;
    return MIMIC_OK;
}

/* --- files ------------------------------------------------------------------- */
static int put_vec(mimic_dict_writer *w, const char *name, const double *p, int ndim, int64_t r, int64_t c)
{
    int64_t shape[2] = {r, c};
    mimic_tensor *t = mimic_wrap((void *)(uintptr_t)p, ndim, ndim == 1 ? &shape[1] : shape, NULL, MIMIC_F64, NULL, NULL);
    if (!t)
        return mimic_errcode();
    int rc = mimic_dict_put_tensor(w, name, t);
    mimic_tensor_free(t);
    return rc;
}

static int save_body(const mimic_guard *g, const char *path)
{
    mimic_dict_writer *w = mimic_dict_create(path);
    if (!w)
        return mimic_errcode();
    int64_t f = g->nfeat;
    int rc = mimic_dict_put_string(w, "format", GUARD_FORMAT, strlen(GUARD_FORMAT));
    if (!rc) rc = mimic_dict_put_int(w, "version", GUARD_VERSION);
    if (!rc) rc = mimic_dict_put_int(w, "nfeat", f);
    if (!rc) rc = mimic_dict_put_number(w, "margin", g->margin);
    if (!rc) rc = mimic_dict_put_number(w, "quantile", g->quantile);
    if (!rc) rc = mimic_dict_put_int(w, "distance", g->distance);
    if (!rc) rc = put_vec(w, "min", g->min, 1, 1, f);
    if (!rc) rc = put_vec(w, "max", g->max, 1, 1, f);
    if (g->distance) {
        if (!rc) rc = put_vec(w, "mean", g->mean, 1, 1, f);
        if (!rc) rc = put_vec(w, "scale", g->scale, 1, 1, f);
        if (!rc) rc = put_vec(w, "chol", g->chol, 2, f, f);
        if (!rc) rc = mimic_dict_put_number(w, "limit", g->limit);
    }
    if (rc) {
        mimic_dict_discard(w);
        return rc;
    }
    return mimic_dict_commit(w);
}

/* HDF5 is not thread-safe: guard files take turns with mimic_open and
 * mimic_add_member (the same critical section, core/embed/handle.c), so a
 * host's threads may each open a handle and load its guard at once. */
int mimic_guard_save(const mimic_guard *g, const char *path)
{
    if (!g || !path)
        return mimic_error(MIMIC_EARG, "mimic_guard_save: %s is NULL", g ? "path" : "guard");
    int rc;
#pragma omp critical(mimic_hdf5)
    rc = save_body(g, path);
    return rc;
}

typedef struct gload {
    const char *path;
    mimic_dict *d;
} gload;

static int gbad(const gload *L, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static int gbad(const gload *L, int code, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return mimic_error(code, "mimic_guard_load: %s: %s", L->path, msg);
}

static const mimic_dict_entry *gentry(const gload *L, const char *name, mimic_dict_kind k, int *rc)
{
    const mimic_dict_entry *e = mimic_dict_find(L->d, name);
    if (!e)
        *rc = gbad(L, MIMIC_EIO, "entry '%s' is missing (a guard file of version %d needs it)", name, GUARD_VERSION);
    else if (e->kind != k)
        *rc = gbad(L, MIMIC_EIO, "entry '%s' is a %s, expected a %s", name, mimic_dict_kind_name(e->kind),
                   mimic_dict_kind_name(k));
    return *rc ? NULL : e;
}

/* Checks that a float64 tensor entry of shape [r, c] (ndim 1: [c]) is there:
 * kind, dtype and shape, before anything is allocated for it. */
static int gvec_check(gload *L, const char *name, int ndim, int64_t r, int64_t c)
{
    int rc = MIMIC_OK;
    const mimic_dict_entry *e = gentry(L, name, MIMIC_DICT_TENSOR, &rc);
    if (!e)
        return rc;
    bool shape_ok = e->ndim == ndim && (ndim == 1 ? e->shape[0] == c : e->shape[0] == r && e->shape[1] == c);
    if (e->dtype != MIMIC_F64 || !shape_ok) {
        char got[96];
        return gbad(L, MIMIC_EIO, "entry '%s' is %s %s, expected float64 [%s%lld]", name, mimic_dtype_name(e->dtype),
                    mimic_shape_str(e->ndim, e->shape, got, sizeof got), ndim == 2 ? "nfeat, " : "", (long long)c);
    }
    return MIMIC_OK;
}

/* Reads the entry gvec_check accepted into dst; values must be finite. */
static int gvec(gload *L, const char *name, int ndim, int64_t r, int64_t c, double *dst)
{
    int rc = gvec_check(L, name, ndim, r, c);
    if (rc)
        return rc;
    int64_t shape[2] = {r, c};
    mimic_tensor *t = mimic_wrap(dst, ndim, ndim == 1 ? &shape[1] : shape, NULL, MIMIC_F64, NULL, NULL);
    if (!t)
        return mimic_errcode();
    rc = mimic_dict_read_into(L->d, name, t);
    mimic_tensor_free(t);
    if (rc) {
        char msg[400];
        snprintf(msg, sizeof msg, "%s", mimic_errmsg());
        return gbad(L, rc, "entry '%s': %s", name, msg);
    }
    for (int64_t k = 0; k < r * c; k++)
        if (!isfinite(dst[k]))
            return gbad(L, MIMIC_EVALUE, "entry '%s': element %lld is %g (must be finite)", name, (long long)k, dst[k]);
    return MIMIC_OK;
}

static int gnum(gload *L, const char *name, double *out)
{
    int rc = MIMIC_OK;
    const mimic_dict_entry *e = mimic_dict_find(L->d, name);
    if (e && e->kind == MIMIC_DICT_INT) {
        *out = (double)e->i;
        return MIMIC_OK;
    }
    e = gentry(L, name, MIMIC_DICT_NUMBER, &rc);
    if (!e)
        return rc;
    *out = e->d;
    if (!isfinite(*out))
        return gbad(L, MIMIC_EVALUE, "entry '%s' is %g (must be finite)", name, *out);
    return MIMIC_OK;
}

static int gint(gload *L, const char *name, int64_t lo, int64_t hi, int64_t *out)
{
    int rc = MIMIC_OK;
    const mimic_dict_entry *e = gentry(L, name, MIMIC_DICT_INT, &rc);
    if (!e)
        return rc;
    if (e->i < lo || e->i > hi)
        return gbad(L, MIMIC_EVALUE, "entry '%s' is %lld, expected %lld..%lld", name, (long long)e->i, (long long)lo,
                    (long long)hi);
    *out = e->i;
    return MIMIC_OK;
}

static int load_body(gload *L, mimic_guard **out)
{
    int rc = MIMIC_OK;
    const mimic_dict_entry *fe = mimic_dict_find(L->d, "format");
    if (!fe || fe->kind != MIMIC_DICT_STRING || strcmp(fe->s, GUARD_FORMAT) != 0)
        return gbad(L, MIMIC_EIO, "not a guard file (entry 'format' must be the string '%s')", GUARD_FORMAT);
    int64_t version, nfeat, distance;
    if ((rc = gint(L, "version", GUARD_VERSION, GUARD_VERSION, &version)) ||
        (rc = gint(L, "nfeat", 1, MAX_FEAT, &nfeat)) || (rc = gint(L, "distance", 0, 1, &distance)))
        return rc;
    if (distance && nfeat > MAX_DIST_FEAT)
        return gbad(L, MIMIC_EVALUE, "entry 'nfeat' is %lld; the distance test takes at most %d features",
                    (long long)nfeat, MAX_DIST_FEAT);
    /* a strict reader: only the entries of this version */
    static const char *const known[] = {"format", "version", "nfeat", "margin", "quantile", "distance",
                                        "min",    "max",     "mean",  "scale",  "chol",     "limit"};
    for (int64_t i = 0; i < mimic_dict_count(L->d); i++) {
        const mimic_dict_entry *e = mimic_dict_entry_at(L->d, i);
        bool ok = false;
        for (size_t k = 0; k < sizeof known / sizeof known[0]; k++)
            ok = ok || (!strcmp(e->name, known[k]) && (distance || k < 8));
        if (!ok)
            return gbad(L, MIMIC_EIO, "unexpected entry '%s' in a version %d guard file", e->name, GUARD_VERSION);
    }
    /* every array's shape before allocating nfeat (distance: nfeat^2) doubles */
    static const char *const vecs[] = {"min", "max", "mean", "scale", "chol"};
    for (int k = 0; k < (distance ? 5 : 2); k++)
        if ((rc = gvec_check(L, vecs[k], k == 4 ? 2 : 1, nfeat, nfeat)))
            return rc;
    mimic_guard *g = alloc_guard(nfeat, (int)distance);
    if (!g)
        return MIMIC_ENOMEM;
    rc = gnum(L, "margin", &g->margin);
    if (!rc && !(g->margin >= 0))
        rc = gbad(L, MIMIC_EVALUE, "entry 'margin' is %g, must be >= 0", g->margin);
    if (!rc)
        rc = gnum(L, "quantile", &g->quantile);
    if (!rc && !(g->quantile > 0 && g->quantile <= 1))
        rc = gbad(L, MIMIC_EVALUE, "entry 'quantile' is %g, must be in (0, 1]", g->quantile);
    if (!rc)
        rc = gvec(L, "min", 1, 1, nfeat, g->min);
    if (!rc)
        rc = gvec(L, "max", 1, 1, nfeat, g->max);
    for (int64_t j = 0; !rc && j < nfeat; j++)
        if (!(g->min[j] <= g->max[j]))
            rc = gbad(L, MIMIC_EVALUE, "feature %lld: min %g > max %g", (long long)j, g->min[j], g->max[j]);
    if (!rc && distance) {
        rc = gvec(L, "mean", 1, 1, nfeat, g->mean);
        if (!rc)
            rc = gvec(L, "scale", 1, 1, nfeat, g->scale);
        for (int64_t j = 0; !rc && j < nfeat; j++)
            if (!(g->scale[j] > 0))
                rc = gbad(L, MIMIC_EVALUE, "entry 'scale': element %lld is %g, must be > 0", (long long)j, g->scale[j]);
        if (!rc)
            rc = gvec(L, "chol", 2, nfeat, nfeat, g->chol);
        for (int64_t i = 0; !rc && i < nfeat; i++) {
            if (!(g->chol[i * nfeat + i] > 0))
                rc = gbad(L, MIMIC_EVALUE, "entry 'chol': diagonal element %lld is %g, must be > 0", (long long)i,
                          g->chol[i * nfeat + i]);
            for (int64_t k = i + 1; !rc && k < nfeat; k++)
                if (g->chol[i * nfeat + k] != 0)
                    rc = gbad(L, MIMIC_EVALUE, "entry 'chol' is not lower triangular (row %lld, column %lld)",
                              (long long)i, (long long)k);
        }
        if (!rc)
            rc = gnum(L, "limit", &g->limit);
        if (!rc && !(g->limit >= 0))
            rc = gbad(L, MIMIC_EVALUE, "entry 'limit' is %g, must be >= 0", g->limit);
    }
    if (rc) {
        mimic_guard_free(g);
        return rc;
    }
    apply_margin(g);
    *out = g;
    return MIMIC_OK;
}

mimic_guard *mimic_guard_load(const char *path)
{
    if (!path) {
        mimic_error(MIMIC_EARG, "mimic_guard_load: path is NULL");
        return NULL;
    }
    mimic_guard *g = NULL;
    int rc;
#pragma omp critical(mimic_hdf5)
    {
        gload L = {path, mimic_dict_open(path)};
        rc = L.d ? load_body(&L, &g) : MIMIC_EIO; /* the open recorded why */
        mimic_dict_close(L.d);
    }
    return rc ? NULL : g;
}
