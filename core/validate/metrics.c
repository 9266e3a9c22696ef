/* Validation metrics (mimic/validate.h). Every function first copies its
 * tensor inputs to contiguous double arrays (load) and checks them for
 * NaN/inf there, so the numerics below are plain loops over doubles and the
 * error messages can name the offending position. Validation runs on
 * held-out sets of at most millions of values, so the copies cost little
 * next to producing the predictions. */
#include "mimic/validate.h"
#include "base/internal.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PI_ 3.14159265358979323846

/* A contiguous double copy of t. Owns `data` (mimic_free). */
typedef struct vec {
    double *data;
    int64_t n, cols, rows;
} vec;

static void vec_free(vec *v)
{
    mimic_free(v->data);
    v->data = NULL;
}

static int load(const char *fn, const char *name, const mimic_tensor *t, vec *v)
{
    v->data = NULL;
    if (!t)
        return mimic_error(MIMIC_EARG, "%s: %s is NULL", fn, name);
    if ((unsigned)t->dtype >= MIMIC_DTYPE_COUNT)
        return mimic_error(MIMIC_EDTYPE, "%s: %s has an invalid dtype", fn, name);
    v->n = mimic_numel(t);
    v->cols = mimic_val_ncols(t);
    v->rows = v->cols ? v->n / v->cols : 0;
    v->data = mimic_malloc((size_t)(v->n ? v->n : 1) * sizeof(double));
    if (!v->data)
        return MIMIC_ENOMEM;
    /* Wrap our buffer as an F64 tensor of t's shape and let mimic_copy walk
     * t's strides and convert: one strided loop for every layout and dtype. */
    mimic_tensor *dst = mimic_wrap(v->data, t->ndim, t->shape, NULL, MIMIC_F64, NULL, NULL);
    if (!dst) {
        vec_free(v);
        return mimic_errcode();
    }
    int rc = mimic_copy(dst, t);
    mimic_tensor_free(dst);
    if (rc != MIMIC_OK) {
        vec_free(v);
        return rc;
    }
    for (int64_t i = 0; i < v->n; i++)
        if (!isfinite(v->data[i])) {
            double x = v->data[i];
            vec_free(v);
            if (t->ndim >= 2)
                return mimic_error(MIMIC_EVALUE, "%s: %s has %s at row %lld, column %lld (0-based); remove or mask it first",
                                   fn, name, x != x ? "NaN" : "an infinity", (long long)(i / v->cols),
                                   (long long)(i % v->cols));
            return mimic_error(MIMIC_EVALUE, "%s: %s has %s at element %lld (0-based); remove or mask it first", fn, name,
                               x != x ? "NaN" : "an infinity", (long long)i);
        }
    return MIMIC_OK;
}

/* Load a then b; if b fails, a is freed too, so on error neither needs freeing. */
static int load_pair(const char *fn, const char *na, const mimic_tensor *a, vec *va, const char *nb,
                     const mimic_tensor *b, vec *vb)
{
    int rc = load(fn, na, a, va);
    if (rc)
        return rc;
    if ((rc = load(fn, nb, b, vb))) {
        vec_free(va);
        return rc;
    }
    return MIMIC_OK;
}

static int check_edges(const char *fn, const char *name, int nbins, const double *edges)
{
    if (nbins < 1 || !edges)
        return mimic_error(MIMIC_EARG, "%s: %s needs at least one bin (nbins %d)", fn, name, nbins);
    for (int i = 0; i <= nbins; i++)
        if (!isfinite(edges[i]) || (i > 0 && !(edges[i] > edges[i - 1])))
            return mimic_error(MIMIC_EARG, "%s: %s must be finite and strictly increasing (edge %d is %g)", fn, name,
                               i, edges[i]);
    return MIMIC_OK;
}

/* The bin of x, or -1 outside: [e_i, e_{i+1}), the last bin closed (NumPy). */
static int find_bin(int nbins, const double *e, double x)
{
    if (x < e[0] || x > e[nbins])
        return -1;
    if (x == e[nbins])
        return nbins - 1;
    int lo = 0, hi = nbins; /* e[lo] <= x < e[hi] */
    while (hi - lo > 1) {
        int mid = lo + (hi - lo) / 2;
        if (x >= e[mid])
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* NumPy's default (linear) quantile of sorted x[0..n-1], n >= 1. */
static double quantile_sorted(const double *x, int64_t n, double q)
{
    double h = q * (double)(n - 1);
    int64_t lo = (int64_t)floor(h);
    if (lo >= n - 1)
        return x[n - 1];
    double f = h - (double)lo;
    return x[lo] + f * (x[lo + 1] - x[lo]);
}

int64_t mimic_val_ncols(const mimic_tensor *t)
{
    return (!t || t->ndim < 2) ? 1 : t->shape[t->ndim - 1];
}

/* --- regression ------------------------------------------------------------------ */

/* Average ranks (1-based, ties averaged) of x[0..n-1] (stride s) into r;
 * idx is scratch for n indices. */
typedef struct keyed {
    double v;
    int64_t i;
} keyed;
static int cmp_keyed(const void *a, const void *b)
{
    const keyed *x = a, *y = b;
    return (x->v > y->v) - (x->v < y->v);
}
static void avg_ranks(const double *x, int64_t n, int64_t s, double *r, keyed *k)
{
    for (int64_t i = 0; i < n; i++)
        k[i] = (keyed){x[i * s], i};
    qsort(k, (size_t)n, sizeof *k, cmp_keyed);
    for (int64_t i = 0; i < n;) {
        int64_t j = i;
        while (j + 1 < n && k[j + 1].v == k[i].v)
            j++;
        double rank = 0.5 * (double)(i + j) + 1.0;
        for (int64_t m = i; m <= j; m++)
            r[k[m].i] = rank;
        i = j + 1;
    }
}

/* Pearson correlation with two-pass (centred) sums, for accuracy when the
 * values sit far from zero (ln tau ~ -10 with errors ~ 1e-2). */
static double pearson(const double *x, int64_t sx, const double *y, int64_t sy, int64_t n)
{
    double mx = 0, my = 0;
    for (int64_t i = 0; i < n; i++) {
        mx += x[i * sx];
        my += y[i * sy];
    }
    mx /= (double)n;
    my /= (double)n;
    double sxy = 0, sxx = 0, syy = 0;
    for (int64_t i = 0; i < n; i++) {
        double dx = x[i * sx] - mx, dy = y[i * sy] - my;
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    if (sxx == 0 || syy == 0)
        return NAN;
    double r = sxy / sqrt(sxx * syy);
    return r > 1 ? 1 : r < -1 ? -1 : r;
}

int mimic_val_regression(const mimic_tensor *pred, const mimic_tensor *ref, double rel_floor,
                         mimic_val_reg *out)
{
    static const char fn[] = "validate_regression";
    if (!out)
        return mimic_error(MIMIC_EARG, "%s: out is NULL", fn);
    if (!(rel_floor >= 0) || !isfinite(rel_floor))
        return mimic_error(MIMIC_EARG, "%s: rel_floor must be finite and >= 0, got %g", fn, rel_floor);
    if (pred && ref) {
        bool same = pred->ndim == ref->ndim;
        for (int d = 0; same && d < pred->ndim; d++)
            same = pred->shape[d] == ref->shape[d];
        if (!same) {
            char a[96], b[96];
            return mimic_error(MIMIC_ESHAPE, "%s: pred %s and ref %s must have the same shape", fn,
                               mimic_shape_str(pred->ndim, pred->shape, a, sizeof a),
                               mimic_shape_str(ref->ndim, ref->shape, b, sizeof b));
        }
    }
    vec p, r;
    int rc = load_pair(fn, "pred", pred, &p, "ref", ref, &r);
    if (rc)
        return rc;
    int64_t n = r.rows, C = r.cols;
    if (n < 1) {
        vec_free(&p);
        vec_free(&r);
        return mimic_error(MIMIC_ESHAPE, "%s: no samples (ref has 0 rows)", fn);
    }
    double *rp = mimic_malloc((size_t)n * sizeof(double)), *rr = mimic_malloc((size_t)n * sizeof(double));
    keyed *k = mimic_malloc((size_t)n * sizeof(keyed));
    if (!rp || !rr || !k) {
        rc = MIMIC_ENOMEM;
        goto done;
    }
    for (int64_t c = 0; c < C; c++) {
        const double *x = p.data + c, *y = r.data + c;
        double s = 0, sa = 0, s2 = 0, mx = 0, srel = 0, my = 0;
        for (int64_t i = 0; i < n; i++) {
            double e = x[i * C] - y[i * C], a = fabs(e);
            s += e;
            sa += a;
            s2 += e * e;
            if (a > mx)
                mx = a;
            double den = fmax(fabs(y[i * C]), rel_floor);
            srel += a == 0 ? 0 : a / den; /* den 0 and a > 0: +inf, as documented */
            my += y[i * C];
        }
        my /= (double)n;
        double tot = 0;
        for (int64_t i = 0; i < n; i++)
            tot += (y[i * C] - my) * (y[i * C] - my);
        mimic_val_reg *o = &out[c];
        o->n = n;
        o->bias = s / (double)n;
        o->mae = sa / (double)n;
        o->rmse = sqrt(s2 / (double)n);
        o->max_abs = mx;
        o->rel = srel / (double)n;
        o->r2 = tot > 0 ? 1 - s2 / tot : (s2 == 0 ? 1.0 : 0.0);
        o->pearson = pearson(x, C, y, C, n);
        avg_ranks(x, n, C, rp, k);
        avg_ranks(y, n, C, rr, k);
        o->spearman = pearson(rp, 1, rr, 1, n);
    }
done:
    mimic_free(rp);
    mimic_free(rr);
    mimic_free(k);
    vec_free(&p);
    vec_free(&r);
    return rc;
}

int mimic_val_binned_quantiles(const mimic_tensor *value, const mimic_tensor *coord, int nbins,
                               const double *edges, int nq, const double *q, int64_t *count,
                               double *mean, double *quant)
{
    static const char fn[] = "validate_binned_quantiles";
    int rc = check_edges(fn, "edges", nbins, edges);
    if (rc)
        return rc;
    if (nq < 0 || (nq > 0 && (!q || !quant)) || !count || !mean)
        return mimic_error(MIMIC_EARG, "%s: NULL output or bad nq %d", fn, nq);
    for (int j = 0; j < nq; j++)
        if (!(q[j] >= 0 && q[j] <= 1))
            return mimic_error(MIMIC_EARG, "%s: quantile %d is %g, expected a probability in [0, 1]", fn, j, q[j]);
    vec v, c;
    if ((rc = load_pair(fn, "value", value, &v, "coord", coord, &c)))
        return rc;
    int64_t share; /* value elements per coordinate */
    if (c.n == v.n)
        share = 1;
    else if (c.n == v.rows)
        share = v.cols;
    else {
        vec_free(&v);
        vec_free(&c);
        return mimic_error(MIMIC_ESHAPE,
                           "%s: coord has %lld elements; expected one per value (%lld) or one per row (%lld)", fn,
                           (long long)c.n, (long long)v.n, (long long)v.rows);
    }
    /* Bucket the values by bin (counting sort), then sort each bucket. */
    int64_t *start = mimic_calloc((size_t)nbins + 1, sizeof(int64_t));
    int *bin = mimic_malloc((size_t)(v.n ? v.n : 1) * sizeof(int));
    double *buf = mimic_malloc((size_t)(v.n ? v.n : 1) * sizeof(double));
    if (!start || !bin || !buf) {
        rc = MIMIC_ENOMEM;
        goto done;
    }
    for (int64_t i = 0; i < v.n; i++) {
        bin[i] = find_bin(nbins, edges, c.data[i / share]);
        if (bin[i] >= 0)
            start[bin[i] + 1]++;
    }
    for (int b = 0; b < nbins; b++) {
        count[b] = start[b + 1];
        start[b + 1] += start[b];
    }
    for (int64_t i = 0; i < v.n; i++) /* start[b] walks to the end of bucket b */
        if (bin[i] >= 0)
            buf[start[bin[i]]++] = v.data[i];
    for (int b = 0; b < nbins; b++) {
        int64_t m = count[b];
        double *x = buf + start[b] - m;
        qsort(x, (size_t)m, sizeof *x, cmp_double);
        double s = 0;
        for (int64_t i = 0; i < m; i++)
            s += x[i];
        mean[b] = m ? s / (double)m : NAN;
        for (int j = 0; j < nq; j++)
            quant[(size_t)b * (size_t)nq + (size_t)j] = m ? quantile_sorted(x, m, q[j]) : NAN;
    }
done:
    mimic_free(start);
    mimic_free(bin);
    mimic_free(buf);
    vec_free(&v);
    vec_free(&c);
    return rc;
}

/* --- distributions ------------------------------------------------------------------ */

int mimic_val_histogram(const mimic_tensor *x, int nbins, const double *edges, double *counts, int64_t *outside)
{
    static const char fn[] = "validate_histogram";
    int rc = check_edges(fn, "edges", nbins, edges);
    if (rc)
        return rc;
    if (!counts)
        return mimic_error(MIMIC_EARG, "%s: counts is NULL", fn);
    vec v;
    if ((rc = load(fn, "x", x, &v)))
        return rc;
    int64_t out = 0;
    memset(counts, 0, (size_t)nbins * sizeof *counts);
    for (int64_t i = 0; i < v.n; i++) {
        int b = find_bin(nbins, edges, v.data[i]);
        if (b < 0)
            out++;
        else
            counts[b] += 1;
    }
    if (outside)
        *outside = out;
    vec_free(&v);
    return MIMIC_OK;
}

int mimic_val_histogram2d(const mimic_tensor *x, const mimic_tensor *y, int nx, const double *ex, int ny,
                          const double *ey, double *counts, int64_t *outside)
{
    static const char fn[] = "validate_histogram2d";
    int rc = check_edges(fn, "x edges", nx, ex);
    if (rc || (rc = check_edges(fn, "y edges", ny, ey)))
        return rc;
    if (!counts)
        return mimic_error(MIMIC_EARG, "%s: counts is NULL", fn);
    vec a, b;
    if ((rc = load_pair(fn, "x", x, &a, "y", y, &b)))
        return rc;
    if (a.n != b.n) {
        rc = mimic_error(MIMIC_ESHAPE, "%s: x has %lld elements, y %lld; they must pair up", fn, (long long)a.n,
                         (long long)b.n);
    } else {
        int64_t out = 0;
        memset(counts, 0, (size_t)nx * (size_t)ny * sizeof *counts);
        for (int64_t i = 0; i < a.n; i++) {
            int bx = find_bin(nx, ex, a.data[i]), by = find_bin(ny, ey, b.data[i]);
            if (bx < 0 || by < 0)
                out++;
            else
                counts[(size_t)bx * (size_t)ny + (size_t)by] += 1;
        }
        if (outside)
            *outside = out;
    }
    vec_free(&a);
    vec_free(&b);
    return rc;
}

/* Regularised upper incomplete gamma Q(a, x) (Numerical Recipes' gammq):
 * the series for x < a + 1, the continued fraction (modified Lentz) beyond. */
static double gamma_q(double a, double x)
{
    if (x <= 0)
        return 1.0;
    double gln = lgamma(a);
    if (x < a + 1) {
        double ap = a, del = 1.0 / a, sum = del;
        for (int i = 0; i < 10000; i++) {
            ap += 1;
            del *= x / ap;
            sum += del;
            if (fabs(del) < fabs(sum) * 1e-16)
                break;
        }
        return 1.0 - sum * exp(-x + a * log(x) - gln);
    }
    double b = x + 1 - a, c = 1.0 / DBL_MIN, d = 1.0 / b, h = d;
    for (int i = 1; i < 10000; i++) {
        double an = -i * (i - a);
        b += 2;
        d = an * d + b;
        if (fabs(d) < DBL_MIN)
            d = DBL_MIN;
        c = b + an / c;
        if (fabs(c) < DBL_MIN)
            c = DBL_MIN;
        d = 1.0 / d;
        double del = d * c;
        h *= del;
        if (fabs(del - 1) < 1e-16)
            break;
    }
    return exp(-x + a * log(x) - gln) * h;
}

static int check_counts(const char *fn, const char *name, int64_t n, const double *a, double *total)
{
    if (!a)
        return mimic_error(MIMIC_EARG, "%s: %s is NULL", fn, name);
    double s = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!(a[i] >= 0) || !isfinite(a[i]))
            return mimic_error(MIMIC_EVALUE, "%s: %s has %g at bin %lld (0-based); counts must be finite and >= 0", fn,
                               name, a[i], (long long)i);
        s += a[i];
    }
    *total = s;
    return MIMIC_OK;
}

/* The checks shared by the two-histogram comparisons: at least one bin,
 * valid counts in both, and neither empty (the metrics divide by totals). */
static int check_hist_pair(const char *fn, int n, const char *na, const double *a, double *ta, const char *nb,
                           const double *b, double *tb)
{
    int rc;
    if (n < 1)
        return mimic_error(MIMIC_EARG, "%s: needs at least one bin (n %d)", fn, n);
    if ((rc = check_counts(fn, na, n, a, ta)) || (rc = check_counts(fn, nb, n, b, tb)))
        return rc;
    if (*ta == 0 || *tb == 0)
        return mimic_error(MIMIC_EVALUE, "%s: histogram %s is empty (total count 0)", fn, *ta == 0 ? na : nb);
    return MIMIC_OK;
}

int mimic_val_chi2(int n, const double *a, const double *b, double *chi2, int *dof, double *p)
{
    static const char fn[] = "validate_chi2";
    double na, nb;
    int rc = check_hist_pair(fn, n, "a", a, &na, "b", b, &nb);
    if (rc)
        return rc;
    double s = 0;
    int used = 0;
    for (int i = 0; i < n; i++) {
        if (a[i] + b[i] == 0)
            continue; /* empty in both: no information, no degree of freedom */
        double t = a[i] * nb - b[i] * na;
        s += t * t / (na * nb * (a[i] + b[i]));
        used++;
    }
    int k = used > 0 ? used - 1 : 0;
    if (chi2)
        *chi2 = s;
    if (dof)
        *dof = k;
    if (p)
        *p = k == 0 ? 1.0 : gamma_q(0.5 * k, 0.5 * s);
    return MIMIC_OK;
}

double mimic_val_kolmogorov_sf(double x)
{
    if (!(x > 0))
        return 1.0;
    if (x < 1.0) {
        /* Q = 1 - sqrt(2 pi)/x sum_k exp(-(2k-1)^2 pi^2 / (8 x^2)): converges fast for small x,
         * where the alternating series below would need many terms. */
        double s = 0, f = -PI_ * PI_ / (8 * x * x);
        for (int k = 1; k <= 20; k++) {
            double t = exp(f * (double)((2 * k - 1) * (2 * k - 1)));
            s += t;
            if (t < 1e-17 * s)
                break;
        }
        return 1.0 - sqrt(2 * PI_) / x * s;
    }
    double s = 0;
    for (int k = 1; k <= 100; k++) {
        double t = exp(-2.0 * k * k * x * x);
        s += (k & 1) ? t : -t;
        if (t < 1e-17)
            break;
    }
    double q = 2 * s;
    return q < 0 ? 0 : q > 1 ? 1 : q;
}

static int load_sorted(const char *fn, const char *name, const mimic_tensor *t, vec *v)
{
    int rc = load(fn, name, t, v);
    if (rc)
        return rc;
    if (v->n < 1) {
        vec_free(v);
        return mimic_error(MIMIC_ESHAPE, "%s: %s is empty", fn, name);
    }
    qsort(v->data, (size_t)v->n, sizeof(double), cmp_double);
    return MIMIC_OK;
}

/* The two samples a, b of a two-sample test, each sorted; as load_pair,
 * on error neither needs freeing. */
static int load_sorted_pair(const char *fn, const mimic_tensor *a, vec *x, const mimic_tensor *b, vec *y)
{
    int rc = load_sorted(fn, "a", a, x);
    if (rc)
        return rc;
    if ((rc = load_sorted(fn, "b", b, y))) {
        vec_free(x);
        return rc;
    }
    return MIMIC_OK;
}

/* The index past the run of copies of v starting at i in sorted x: both
 * ECDF walks step over ties in one go. */
static int64_t skip_ties(const vec *x, int64_t i, double v)
{
    while (i < x->n && x->data[i] == v)
        i++;
    return i;
}

int mimic_val_ks(const mimic_tensor *a, const mimic_tensor *b, double *d, double *p)
{
    static const char fn[] = "validate_ks";
    vec x, y;
    int rc = load_sorted_pair(fn, a, &x, b, &y);
    if (rc)
        return rc;
    /* Walk both sorted samples; after consuming all copies of the smaller
     * value the ECDFs are compared (ties cross together, as in SciPy). */
    int64_t i = 0, j = 0;
    double dmax = 0;
    while (i < x.n && j < y.n) {
        double v = fmin(x.data[i], y.data[j]);
        i = skip_ties(&x, i, v);
        j = skip_ties(&y, j, v);
        double diff = fabs((double)i / (double)x.n - (double)j / (double)y.n);
        if (diff > dmax)
            dmax = diff;
    }
    double en = (double)x.n * (double)y.n / (double)(x.n + y.n);
    if (d)
        *d = dmax;
    if (p)
        *p = mimic_val_kolmogorov_sf(sqrt(en) * dmax);
    vec_free(&x);
    vec_free(&y);
    return MIMIC_OK;
}

int mimic_val_wasserstein(const mimic_tensor *a, const mimic_tensor *b, double *w)
{
    static const char fn[] = "validate_wasserstein";
    vec x, y;
    int rc = load_sorted_pair(fn, a, &x, b, &y);
    if (rc)
        return rc;
    /* Integrate |F_a - F_b| over the merged breakpoints. */
    int64_t i = 0, j = 0;
    double s = 0, prev = fmin(x.data[0], y.data[0]);
    while (i < x.n || j < y.n) {
        double v = j >= y.n || (i < x.n && x.data[i] <= y.data[j]) ? x.data[i] : y.data[j];
        s += fabs((double)i / (double)x.n - (double)j / (double)y.n) * (v - prev);
        prev = v;
        i = skip_ties(&x, i, v);
        j = skip_ties(&y, j, v);
    }
    if (w)
        *w = s;
    vec_free(&x);
    vec_free(&y);
    return MIMIC_OK;
}

int mimic_val_js(int n, const double *p, const double *q, double *js)
{
    static const char fn[] = "validate_js";
    double np_, nq_;
    int rc = check_hist_pair(fn, n, "p", p, &np_, "q", q, &nq_);
    if (rc)
        return rc;
    double s = 0;
    for (int i = 0; i < n; i++) {
        double a = p[i] / np_, b = q[i] / nq_, m = 0.5 * (a + b);
        if (a > 0)
            s += 0.5 * a * log2(a / m);
        if (b > 0)
            s += 0.5 * b * log2(b / m);
    }
    if (js)
        *js = s < 0 ? 0 : s; /* rounding can leave -1e-17 for identical histograms */
    return MIMIC_OK;
}

int mimic_val_holes_count(int64_t n, const double *ref, const double *sample, mimic_val_holes *out)
{
    static const char fn[] = "validate_holes";
    double nr, ns;
    int rc;
    if (!out)
        return mimic_error(MIMIC_EARG, "%s: out is NULL", fn);
    if ((rc = check_counts(fn, "ref", n, ref, &nr)) || (rc = check_counts(fn, "sample", n, sample, &ns)))
        return rc;
    mimic_val_holes h = {0};
    double hm = 0, sm = 0;
    for (int64_t i = 0; i < n; i++) {
        if (ref[i] > 0)
            h.ref_bins++;
        if (ref[i] > 0 && sample[i] == 0) {
            h.holes++;
            hm += ref[i];
        }
        if (ref[i] == 0 && sample[i] > 0) {
            h.spurious++;
            sm += sample[i];
        }
    }
    h.hole_mass = nr > 0 ? hm / nr : 0;
    h.spurious_mass = ns > 0 ? sm / ns : 0;
    *out = h;
    return MIMIC_OK;
}

int mimic_val_moments_of(const mimic_tensor *x, mimic_val_moments *out)
{
    static const char fn[] = "validate_moments";
    if (!out)
        return mimic_error(MIMIC_EARG, "%s: out is NULL", fn);
    vec v;
    int rc = load(fn, "x", x, &v);
    if (rc)
        return rc;
    int64_t n = v.rows, C = v.cols;
    for (int64_t c = 0; c < C; c++) {
        double m = 0;
        for (int64_t i = 0; i < n; i++)
            m += v.data[i * C + c];
        m = n ? m / (double)n : NAN;
        double m2 = 0, m3 = 0, m4 = 0;
        for (int64_t i = 0; i < n; i++) {
            double d = v.data[i * C + c] - m, d2 = d * d;
            m2 += d2;
            m3 += d2 * d;
            m4 += d2 * d2;
        }
        mimic_val_moments *o = &out[c];
        o->n = n;
        o->mean = m;
        o->var = n >= 2 ? m2 / (double)(n - 1) : NAN;
        m2 /= (double)n;
        m3 /= (double)n;
        m4 /= (double)n;
        o->skew = n && m2 > 0 ? m3 / pow(m2, 1.5) : NAN;
        o->kurt = n && m2 > 0 ? m4 / (m2 * m2) - 3 : NAN;
    }
    vec_free(&v);
    return MIMIC_OK;
}

/* --- classification ------------------------------------------------------------------ */

static int load_labels(const char *fn, const char *name, const mimic_tensor *t, int k, vec *v)
{
    int rc = load(fn, name, t, v);
    if (rc)
        return rc;
    for (int64_t i = 0; i < v->n; i++) {
        double x = v->data[i];
        if (x != floor(x) || x < 0 || x >= k) {
            vec_free(v);
            return mimic_error(MIMIC_EVALUE, "%s: %s has %g at element %lld (0-based); labels are integers in 0..%d",
                               fn, name, x, (long long)i, k - 1);
        }
    }
    return MIMIC_OK;
}

int mimic_val_confusion(const mimic_tensor *pred, const mimic_tensor *truth, int k, int64_t *cm)
{
    static const char fn[] = "validate_confusion";
    if (k < 1 || !cm)
        return mimic_error(MIMIC_EARG, "%s: needs k >= 1 classes and a matrix (k %d)", fn, k);
    vec p, t;
    int rc = load_labels(fn, "pred", pred, k, &p);
    if (rc)
        return rc;
    if ((rc = load_labels(fn, "truth", truth, k, &t))) {
        vec_free(&p);
        return rc;
    }
    if (p.n != t.n)
        rc = mimic_error(MIMIC_ESHAPE, "%s: pred has %lld labels, truth %lld", fn, (long long)p.n, (long long)t.n);
    else {
        memset(cm, 0, (size_t)k * (size_t)k * sizeof *cm);
        for (int64_t i = 0; i < p.n; i++)
            cm[(int64_t)t.data[i] * k + (int64_t)p.data[i]]++;
    }
    vec_free(&p);
    vec_free(&t);
    return rc;
}

int mimic_val_class_scores(int k, const int64_t *cm, mimic_val_class *out, double *precision, double *recall,
                           double *f1)
{
    static const char fn[] = "validate_class_scores";
    if (k < 1 || !cm || !out)
        return mimic_error(MIMIC_EARG, "%s: needs k >= 1, a matrix and an output (k %d)", fn, k);
    int64_t n = 0, diag = 0;
    for (int i = 0; i < k * k; i++) {
        if (cm[i] < 0)
            return mimic_error(MIMIC_EVALUE, "%s: negative count at entry %d", fn, i);
        n += cm[i];
    }
    double sp = 0, sr = 0, sf = 0, sbal = 0;
    int present = 0;
    for (int c = 0; c < k; c++) {
        int64_t tp = cm[c * k + c], row = 0, col = 0;
        for (int j = 0; j < k; j++) {
            row += cm[c * k + j];
            col += cm[j * k + c];
        }
        diag += tp;
        double pr = col ? (double)tp / (double)col : 0, rc = row ? (double)tp / (double)row : 0;
        double f = pr + rc > 0 ? 2 * pr * rc / (pr + rc) : 0;
        if (precision)
            precision[c] = pr;
        if (recall)
            recall[c] = rc;
        if (f1)
            f1[c] = f;
        sp += pr;
        sr += rc;
        sf += f;
        if (row) {
            sbal += rc;
            present++;
        }
    }
    out->n = n;
    out->accuracy = n ? (double)diag / (double)n : NAN;
    out->balanced_accuracy = present ? sbal / present : NAN;
    out->macro_precision = sp / k;
    out->macro_recall = sr / k;
    out->macro_f1 = sf / k;
    return MIMIC_OK;
}

int mimic_val_roc(const mimic_tensor *score, const mimic_tensor *label, double *auc, int64_t *npoints, double **fpr,
                  double **tpr, double **thr)
{
    static const char fn[] = "validate_roc";
    if (!auc || !npoints || !fpr || !tpr || !thr)
        return mimic_error(MIMIC_EARG, "%s: NULL output", fn);
    *fpr = *tpr = *thr = NULL;
    vec s, l;
    int rc = load_pair(fn, "score", score, &s, "label", label, &l);
    if (rc)
        return rc;
    keyed *k = NULL;
    int64_t n = s.n, pos = 0;
    if (l.n != n) {
        rc = mimic_error(MIMIC_ESHAPE, "%s: score has %lld elements, label %lld", fn, (long long)n, (long long)l.n);
        goto done;
    }
    for (int64_t i = 0; i < n; i++)
        pos += l.data[i] != 0;
    if (pos == 0 || pos == n) {
        rc = mimic_error(MIMIC_EVALUE, "%s: labels must contain both classes (%lld positive of %lld)", fn,
                         (long long)pos, (long long)n);
        goto done;
    }
    k = mimic_malloc((size_t)n * sizeof *k);
    double *f = mimic_malloc((size_t)(n + 1) * sizeof(double)), *t = mimic_malloc((size_t)(n + 1) * sizeof(double)),
           *h = mimic_malloc((size_t)(n + 1) * sizeof(double));
    *fpr = f, *tpr = t, *thr = h;
    if (!k || !f || !t || !h) {
        rc = MIMIC_ENOMEM;
        goto done;
    }
    for (int64_t i = 0; i < n; i++)
        k[i] = (keyed){-s.data[i], i}; /* descending scores */
    qsort(k, (size_t)n, sizeof *k, cmp_keyed);
    double np_ = (double)pos, nn_ = (double)(n - pos), a = 0;
    int64_t m = 0, tp = 0, fp = 0;
    f[0] = t[0] = 0;
    h[0] = INFINITY;
    m = 1;
    for (int64_t i = 0; i < n;) {
        int64_t j = i;
        while (j < n && k[j].v == k[i].v) { /* a tie moves diagonally: trapezoid counts it 1/2 */
            if (l.data[k[j].i] != 0)
                tp++;
            else
                fp++;
            j++;
        }
        f[m] = (double)fp / nn_;
        t[m] = (double)tp / np_;
        h[m] = -k[i].v;
        a += (f[m] - f[m - 1]) * 0.5 * (t[m] + t[m - 1]);
        m++;
        i = j;
    }
    *auc = a;
    *npoints = m;
done:
    if (rc) {
        mimic_free(*fpr);
        mimic_free(*tpr);
        mimic_free(*thr);
        *fpr = *tpr = *thr = NULL;
    }
    mimic_free(k);
    vec_free(&s);
    vec_free(&l);
    return rc;
}

int mimic_val_calibration(const mimic_tensor *prob, const mimic_tensor *label, int nbins, int64_t *count,
                          double *mean_prob, double *frac_pos, double *ece)
{
    static const char fn[] = "validate_calibration";
    if (nbins < 1 || !count || !mean_prob || !frac_pos)
        return mimic_error(MIMIC_EARG, "%s: needs nbins >= 1 and outputs (nbins %d)", fn, nbins);
    vec p, l;
    int rc = load_pair(fn, "prob", prob, &p, "label", label, &l);
    if (rc)
        return rc;
    if (p.n != l.n) {
        rc = mimic_error(MIMIC_ESHAPE, "%s: prob has %lld elements, label %lld", fn, (long long)p.n, (long long)l.n);
        goto done;
    }
    for (int64_t i = 0; i < p.n; i++)
        if (p.data[i] < 0 || p.data[i] > 1) {
            rc = mimic_error(MIMIC_EVALUE, "%s: prob has %g at element %lld (0-based), outside [0, 1]", fn, p.data[i],
                             (long long)i);
            goto done;
        }
    for (int b = 0; b < nbins; b++) {
        count[b] = 0;
        mean_prob[b] = frac_pos[b] = 0;
    }
    for (int64_t i = 0; i < p.n; i++) {
        int b = (int)(p.data[i] * nbins);
        if (b >= nbins)
            b = nbins - 1; /* p == 1 belongs to the last bin */
        count[b]++;
        mean_prob[b] += p.data[i];
        frac_pos[b] += l.data[i] != 0;
    }
    double e = 0;
    for (int b = 0; b < nbins; b++) {
        if (!count[b]) {
            mean_prob[b] = frac_pos[b] = NAN;
            continue;
        }
        mean_prob[b] /= (double)count[b];
        frac_pos[b] /= (double)count[b];
        e += (double)count[b] / (double)p.n * fabs(frac_pos[b] - mean_prob[b]);
    }
    if (ece)
        *ece = p.n ? e : NAN;
done:
    vec_free(&p);
    vec_free(&l);
    return rc;
}

/* --- conservation ------------------------------------------------------------------ */

static double rel_residual(double before, double after)
{
    double d = fabs(after - before);
    return before != 0 ? d / fabs(before) : d;
}

int mimic_val_conservation_check(const mimic_tensor *before, const mimic_tensor *after, const mimic_tensor *weight,
                                 mimic_val_conservation *out)
{
    static const char fn[] = "validate_conservation";
    if (!out)
        return mimic_error(MIMIC_EARG, "%s: out is NULL", fn);
    vec b, a, w = {0};
    int rc = load_pair(fn, "before", before, &b, "after", after, &a);
    if (rc)
        return rc;
    if (weight && (rc = load(fn, "weight", weight, &w)))
        goto done;
    if (a.n != b.n || a.cols != b.cols) {
        rc = mimic_error(MIMIC_ESHAPE, "%s: before and after must have the same shape", fn);
        goto done;
    }
    if (weight && w.n != b.cols) {
        rc = mimic_error(MIMIC_ESHAPE, "%s: weight has %lld elements, expected one per column (%lld)", fn,
                         (long long)w.n, (long long)b.cols);
        goto done;
    }
    int64_t C = b.cols, n = b.rows;
    double gb = 0, ga = 0, mx = 0, sum = 0;
    for (int64_t i = 0; i < n; i++) {
        double rb = 0, ra = 0;
        for (int64_t c = 0; c < C; c++) {
            double wc = weight ? w.data[c] : 1.0;
            rb += wc * b.data[i * C + c];
            ra += wc * a.data[i * C + c];
        }
        double r = rel_residual(rb, ra);
        mx = fmax(mx, r);
        sum += r;
        gb += rb;
        ga += ra;
    }
    out->before = gb;
    out->after = ga;
    out->global_rel = rel_residual(gb, ga);
    out->max_row_rel = mx;
    out->mean_row_rel = n ? sum / (double)n : 0;
done:
    vec_free(&b);
    vec_free(&a);
    vec_free(&w);
    return rc;
}
