/* Reductions, argmin/argmax, cumsum: values, shapes (keepdim, negative and
 * all dims, 0-dim, empty), NaN rules, layout independence, accuracy, and
 * bit-identical results for 1 and 2 threads. */
#include "check.h"
#include "testutil.h"
#include "mimic/ops.h"
#include "mimic/rng.h"

/* Same shape, dtype and bytes (both contiguous). */
static bool identical(const mimic_tensor *a, const mimic_tensor *b)
{
    return a && b && a->dtype == b->dtype && same_shape(b, a->ndim, a->shape) &&
           memcmp(mimic_data(a), mimic_data(b), (size_t)mimic_numel(a) * mimic_dtype_size(a->dtype)) == 0;
}

static mimic_tensor *randu(int ndim, const int64_t *shape, mimic_dtype dt, uint64_t seed, double lo, double hi)
{
    mimic_rng r;
    mimic_rng_init(&r, seed);
    mimic_tensor *t = mimic_empty(ndim, shape, dt);
    mimic_rng_uniform(&r, t, lo, hi);
    return t;
}

static void free_all(mimic_tensor **ts, size_t n)
{
    for (size_t i = 0; i < n; i++)
        mimic_tensor_free(ts[i]);
}
#define FREE_ALL(...)                                                \
    do {                                                             \
        mimic_tensor *fa_[] = {__VA_ARGS__};                         \
        free_all(fa_, sizeof fa_ / sizeof fa_[0]);                   \
    } while (0)

TEST(test_names)
{
    CHECK(strcmp(mimic_redop_name(MIMIC_SUM), "sum") == 0 && strcmp(mimic_redop_name(MIMIC_STD), "std") == 0);
    CHECK(strcmp(mimic_redop_name(MIMIC_MAX), "max") == 0 && strcmp(mimic_redop_name(MIMIC_REDOP_COUNT), "?") == 0);
    mimic_tensor *a = mimic_scalar(1, MIMIC_F32);
    CHECK_ERR_PTR(mimic_reduce(MIMIC_REDOP_COUNT, a, 0, false, 0), MIMIC_EARG, "unknown op");
    mimic_tensor_free(a);
}

TEST(test_small_values)
{
    /* [[1,2,3],[4,5,-6]] */
    static const double v[] = {1, 2, 3, 4, 5, -6};
    for (int dt = MIMIC_F32; dt <= MIMIC_F64; dt++) {
        mimic_tensor *a = mk((mimic_dtype)dt, 2, (int64_t[]){2, 3}, v);
        mimic_tensor *s0 = mimic_reduce(MIMIC_SUM, a, 0, false, 0);
        CHECK(same_shape(s0, 1, (int64_t[]){3}) && s0->dtype == (mimic_dtype)dt);
        CHECK(at(s0, 0) == 5 && at(s0, 1) == 7 && at(s0, 2) == -3);
        mimic_tensor *s1 = mimic_reduce(MIMIC_SUM, a, -1, true, 0);
        CHECK(same_shape(s1, 2, (int64_t[]){2, 1}) && at(s1, 0) == 6 && at(s1, 1) == 3);
        mimic_tensor *sa = mimic_reduce(MIMIC_SUM, a, MIMIC_ALL_DIMS, false, 0);
        CHECK(same_shape(sa, 0, NULL) && at(sa, 0) == 9);
        mimic_tensor *sk = mimic_reduce(MIMIC_MEAN, a, MIMIC_ALL_DIMS, true, 0);
        CHECK(same_shape(sk, 2, (int64_t[]){1, 1}) && at(sk, 0) == 1.5);
        mimic_tensor *pr = mimic_reduce(MIMIC_PROD, a, 1, false, 0);
        CHECK(at(pr, 0) == 6 && at(pr, 1) == -120);
        mimic_tensor *mn = mimic_reduce(MIMIC_MIN, a, 0, false, 0), *mx = mimic_reduce(MIMIC_MAX, a, 1, false, 0);
        CHECK(at(mn, 0) == 1 && at(mn, 2) == -6 && at(mx, 0) == 3 && at(mx, 1) == 5);
        /* row 1: mean 1, deviations 3,4,-7: ssd 74 */
        mimic_tensor *v0 = mimic_reduce(MIMIC_VAR, a, 1, false, 0), *v1 = mimic_reduce(MIMIC_VAR, a, 1, false, 1);
        mimic_tensor *sd = mimic_reduce(MIMIC_STD, a, 1, false, 1);
        double tol = dt == MIMIC_F32 ? 1e-6 : 1e-14;
        CHECK_NEAR(at(v0, 0), 2.0 / 3, tol);
        CHECK_NEAR(at(v0, 1), 74.0 / 3, 10 * tol);
        CHECK_NEAR(at(v1, 1), 37, 10 * tol);
        CHECK_NEAR(at(sd, 1), sqrt(37), 10 * tol);
        mimic_tensor *n1 = mimic_reduce(MIMIC_NORM, a, MIMIC_ALL_DIMS, false, 1);
        mimic_tensor *n2 = mimic_reduce(MIMIC_NORM, a, MIMIC_ALL_DIMS, false, 2);
        mimic_tensor *n3 = mimic_reduce(MIMIC_NORM, a, 1, false, 3);
        mimic_tensor *ni = mimic_reduce(MIMIC_NORM, a, 0, false, INFINITY);
        CHECK(at(n1, 0) == 21);
        CHECK_NEAR(at(n2, 0), sqrt(91), tol);
        CHECK_NEAR(at(n3, 1), cbrt(64 + 125 + 216), 10 * tol);
        CHECK(at(ni, 0) == 4 && at(ni, 1) == 5 && at(ni, 2) == 6);
        FREE_ALL(a, s0, s1, sa, sk, pr, mn, mx, v0, v1, sd, n1, n2, n3, ni);
    }
}

TEST(test_zero_dim_and_dims)
{
    mimic_tensor *s = mimic_scalar(-2.5, MIMIC_F64);
    mimic_tensor *r0 = mimic_reduce(MIMIC_SUM, s, 0, false, 0), *r1 = mimic_reduce(MIMIC_MAX, s, -1, true, 0);
    mimic_tensor *r2 = mimic_reduce(MIMIC_VAR, s, MIMIC_ALL_DIMS, false, 0);
    CHECK(same_shape(r0, 0, NULL) && at(r0, 0) == -2.5);
    CHECK(same_shape(r1, 0, NULL) && at(r1, 0) == -2.5);
    CHECK(r2 && at(r2, 0) == 0);
    CHECK_ERR_PTR(mimic_reduce(MIMIC_SUM, s, 1, false, 0), MIMIC_EARG, "sum: dim 1 out of range");
    mimic_tensor *am = mimic_argmax(s, MIMIC_ALL_DIMS, false);
    CHECK(same_shape(am, 0, NULL) && am->dtype == MIMIC_I64 && at(am, 0) == 0);
    mimic_tensor *cs = mimic_cumsum(s, 0);
    CHECK(same_shape(cs, 0, NULL) && at(cs, 0) == -2.5);
    mimic_tensor *a = mimic_zeros(3, (int64_t[]){2, 3, 4}, MIMIC_F32);
    CHECK_ERR_PTR(mimic_reduce(MIMIC_MEAN, a, 3, false, 0), MIMIC_EARG, "mean: dim 3 out of range for a 3-dim tensor");
    CHECK_ERR_PTR(mimic_argmin(a, -4, false), MIMIC_EARG, "argmin: dim -4 out of range");
    CHECK_ERR_PTR(mimic_cumsum(a, 5), MIMIC_EARG, "cumsum: dim 5");
    mimic_tensor *m = mimic_reduce(MIMIC_SUM, a, -2, false, 0), *mk_ = mimic_reduce(MIMIC_SUM, a, 1, true, 0);
    CHECK(same_shape(m, 2, (int64_t[]){2, 4}) && same_shape(mk_, 3, (int64_t[]){2, 1, 4}));
    FREE_ALL(s, r0, r1, r2, am, cs, a, m, mk_);
}

TEST(test_empty)
{
    mimic_tensor *e = mimic_zeros(2, (int64_t[]){0, 3}, MIMIC_F32);
    mimic_tensor *s = mimic_reduce(MIMIC_SUM, e, 0, false, 0), *p = mimic_reduce(MIMIC_PROD, e, 0, false, 0);
    mimic_tensor *mn = mimic_reduce(MIMIC_MEAN, e, 0, false, 0), *va = mimic_reduce(MIMIC_VAR, e, 0, false, 0);
    mimic_tensor *nr = mimic_reduce(MIMIC_NORM, e, 0, false, 2), *sa = mimic_reduce(MIMIC_SUM, e, MIMIC_ALL_DIMS, false, 0);
    CHECK(same_shape(s, 1, (int64_t[]){3}) && at(s, 0) == 0 && at(s, 2) == 0);
    CHECK(at(p, 1) == 1 && isnan(at(mn, 0)) && isnan(at(va, 2)) && at(nr, 0) == 0 && at(sa, 0) == 0);
    CHECK_ERR_PTR(mimic_reduce(MIMIC_MAX, e, 0, false, 0), MIMIC_ESHAPE, "max: cannot reduce an empty dim (size 0); dim -2 of shape [0,3]");
    CHECK_ERR_PTR(mimic_reduce(MIMIC_MIN, e, MIMIC_ALL_DIMS, false, 0), MIMIC_ESHAPE, "min: cannot reduce an empty dim (size 0)");
    CHECK_ERR_PTR(mimic_argmax(e, 0, false), MIMIC_ESHAPE, "argmax: cannot reduce an empty dim");
    CHECK_ERR_PTR(mimic_argmin(e, MIMIC_ALL_DIMS, true), MIMIC_ESHAPE, "argmin: cannot reduce an empty dim");
    /* no output elements: nothing to complain about */
    mimic_tensor *m1 = mimic_reduce(MIMIC_MAX, e, 1, false, 0), *a1 = mimic_argmax(e, 1, true);
    CHECK(same_shape(m1, 1, (int64_t[]){0}) && same_shape(a1, 2, (int64_t[]){0, 1}));
    mimic_tensor *c = mimic_cumsum(e, 0), *ca = mimic_cumsum(e, MIMIC_ALL_DIMS);
    CHECK(same_shape(c, 2, (int64_t[]){0, 3}) && same_shape(ca, 1, (int64_t[]){0}));
    FREE_ALL(e, s, p, mn, va, nr, sa, m1, a1, c, ca);
}

TEST(test_nan_rules)
{
    static const double v[] = {1, NAN, 3, 3, -1, 0, NAN, 5, -1};
    mimic_tensor *a = mk(MIMIC_F64, 2, (int64_t[]){3, 3}, v); /* row 0 has a NaN, row 1 ties */
    mimic_tensor *mx = mimic_reduce(MIMIC_MAX, a, 1, false, 0), *mn = mimic_reduce(MIMIC_MIN, a, 0, false, 0);
    CHECK(isnan(at(mx, 0)) && at(mx, 1) == 3 && isnan(at(mx, 2)));
    CHECK(isnan(at(mn, 0)) && isnan(at(mn, 1)) && at(mn, 2) == -1);
    mimic_tensor *all = mimic_reduce(MIMIC_MAX, a, MIMIC_ALL_DIMS, false, 0);
    CHECK(isnan(at(all, 0)));
    mimic_tensor *s = mimic_reduce(MIMIC_SUM, a, 1, false, 0);
    CHECK(isnan(at(s, 0)) && at(s, 1) == 2);
    mimic_tensor *ni = mimic_reduce(MIMIC_NORM, a, 1, false, INFINITY);
    CHECK(isnan(at(ni, 0)) && at(ni, 1) == 3);
    /* first occurrence; NaN is the extreme for both */
    mimic_tensor *am = mimic_argmax(a, 1, false), *an = mimic_argmin(a, 1, true);
    CHECK(am->dtype == MIMIC_I64 && at(am, 0) == 1 && at(am, 1) == 0 && at(am, 2) == 0);
    CHECK(same_shape(an, 2, (int64_t[]){3, 1}) && at(an, 0) == 1 && at(an, 1) == 1 && at(an, 2) == 0);
    mimic_tensor *aa = mimic_argmax(a, MIMIC_ALL_DIMS, false), *a0 = mimic_argmin(a, 0, false);
    CHECK(at(aa, 0) == 1 && at(a0, 0) == 2 && at(a0, 1) == 0 && at(a0, 2) == 2);
    FREE_ALL(a, mx, mn, all, s, ni, am, an, aa, a0);
}

TEST(test_errors_and_out)
{
    mimic_tensor *i = mimic_arange(0, 4, 1, MIMIC_I64), *f = mimic_arange(0, 6, 1, MIMIC_F32);
    CHECK_ERR_PTR(mimic_reduce(MIMIC_SUM, i, 0, false, 0), MIMIC_EDTYPE, "sum: int64 tensors are not supported");
    CHECK_ERR_PTR(mimic_argmax(i, 0, false), MIMIC_EDTYPE, "argmax: int64");
    CHECK_ERR_PTR(mimic_cumsum(i, 0), MIMIC_EDTYPE, "cumsum: int64");
    CHECK_ERR_PTR(mimic_reduce(MIMIC_NORM, f, 0, false, 0), MIMIC_EARG, "norm: the order p must be > 0");
    CHECK_ERR_PTR(mimic_reduce(MIMIC_NORM, f, 0, false, NAN), MIMIC_EARG, "norm: the order p");
    mimic_tensor *m = mimic_view(f, 2, (int64_t[]){2, 3});
    mimic_tensor *o = mimic_zeros(1, (int64_t[]){2}, MIMIC_F64);
    CHECK_ERR(mimic_reduce_out(o, MIMIC_SUM, m, 0, false, 0), MIMIC_ESHAPE, "sum: output has shape [2] but the result has shape [3]");
    CHECK_OK(mimic_reduce_out(o, MIMIC_SUM, m, 1, false, 0));
    CHECK(at(o, 0) == 3 && at(o, 1) == 12);
    /* a strided out (a column of a matrix) with keepdim */
    mimic_tensor *big = mimic_zeros(2, (int64_t[]){2, 2}, MIMIC_F32);
    mimic_tensor *col = mimic_narrow(big, 1, 1, 1);
    CHECK_OK(mimic_reduce_out(col, MIMIC_MAX, m, 1, true, 0));
    CHECK(at(big, 1) == 2 && at(big, 3) == 5 && at(big, 0) == 0);
    CHECK_ERR(mimic_reduce_out(NULL, MIMIC_SUM, m, 1, false, 0), MIMIC_EARG, "out is NULL");
    FREE_ALL(i, f, m, o, big, col);
}

/* Reductions over every dim of a permuted/sliced tensor equal those of its
 * contiguous copy bit for bit: the order depends on the shape only. */
TEST(test_layout_independence)
{
    mimic_tensor *base = randu(3, (int64_t[]){30, 9, 70}, MIMIC_F32, 7, -1, 1);
    mimic_tensor *p = mimic_permute(base, (int[]){2, 0, 1}); /* [70,30,9] */
    mimic_tensor *sl = mimic_slice(p, 0, 1, 70, 3);          /* [23,30,9], stepped */
    mimic_tensor *views[2] = {p, sl};
    for (int v = 0; v < 2; v++) {
        mimic_tensor *c = mimic_contiguous(views[v]);
        for (int op = 0; op < MIMIC_REDOP_COUNT; op++) {
            double param = op == MIMIC_NORM ? 3 : op == MIMIC_VAR || op == MIMIC_STD ? 1 : 0;
            for (int d = -1; d < 3; d++) {
                int dim = d < 0 ? MIMIC_ALL_DIMS : d;
                mimic_tensor *x = mimic_reduce((mimic_redop)op, views[v], dim, false, param);
                mimic_tensor *y = mimic_reduce((mimic_redop)op, c, dim, false, param);
                if (!identical(x, y)) {
                    fprintf(stderr, "%s dim %d view %d differs\n", mimic_redop_name((mimic_redop)op), dim, v);
                    check_failures++;
                }
                FREE_ALL(x, y);
            }
        }
        for (int d = -1; d < 3; d++) {
            int dim = d < 0 ? MIMIC_ALL_DIMS : d;
            mimic_tensor *x = mimic_argmax(views[v], dim, false), *y = mimic_argmax(c, dim, false);
            mimic_tensor *x2 = mimic_argmin(views[v], dim, true), *y2 = mimic_argmin(c, dim, true);
            mimic_tensor *x3 = mimic_cumsum(views[v], dim), *y3 = mimic_cumsum(c, dim);
            CHECK(identical(x, y) && identical(x2, y2) && identical(x3, y3));
            FREE_ALL(x, y, x2, y2, x3, y3);
        }
        mimic_tensor_free(c);
    }
    /* long columns: several blocks on the column-tile path vs a strided line */
    mimic_tensor *w = randu(2, (int64_t[]){3, 5000}, MIMIC_F64, 9, -1, 1);
    mimic_tensor *wt = mimic_transpose(w, 0, 1), *wc = mimic_contiguous(wt);
    for (int op = 0; op < MIMIC_REDOP_COUNT; op++) {
        mimic_tensor *x = mimic_reduce((mimic_redop)op, wt, 0, true, 1.5);
        mimic_tensor *y = mimic_reduce((mimic_redop)op, wc, 0, true, 1.5);
        CHECK(identical(x, y));
        FREE_ALL(x, y);
    }
    FREE_ALL(base, p, sl, w, wt, wc);
}

/* Against straightforward long double loops over a matrix. */
TEST(test_against_serial)
{
    const int64_t R = 300, C = 517;
    mimic_tensor *a = randu(2, (int64_t[]){R, C}, MIMIC_F64, 11, -2, 3);
    const double *x = mimic_data(a);
    mimic_tensor *s0 = mimic_reduce(MIMIC_SUM, a, 0, false, 0), *s1 = mimic_reduce(MIMIC_SUM, a, 1, false, 0);
    mimic_tensor *v0 = mimic_reduce(MIMIC_VAR, a, 0, false, 1), *n1 = mimic_reduce(MIMIC_NORM, a, 1, false, 2);
    mimic_tensor *p1 = mimic_reduce(MIMIC_NORM, a, 1, false, 2.5), *am = mimic_argmax(a, 0, false);
    mimic_tensor *cs = mimic_cumsum(a, 0);
    int bad = 0;
    for (int64_t j = 0; j < C; j++) {
        long double s = 0, ss = 0, best = -INFINITY;
        int64_t bi = -1;
        for (int64_t i = 0; i < R; i++) {
            s += x[i * C + j];
            if (x[i * C + j] > best) {
                best = x[i * C + j];
                bi = i;
            }
            bad += fabs(at(cs, i * C + j) - (double)s) > 1e-12 * (fabsl(s) + 1);
        }
        long double mean = s / R;
        for (int64_t i = 0; i < R; i++)
            ss += (x[i * C + j] - mean) * (x[i * C + j] - mean);
        bad += fabs(at(s0, j) - (double)s) > 1e-13 * (fabsl(s) + 1);
        bad += fabs(at(v0, j) - (double)(ss / (R - 1))) > 1e-13 * (double)(ss / (R - 1));
        bad += at(am, j) != bi;
    }
    for (int64_t i = 0; i < R; i++) {
        long double s = 0, q = 0, pp = 0;
        for (int64_t j = 0; j < C; j++) {
            s += x[i * C + j];
            q += (long double)x[i * C + j] * x[i * C + j];
            pp += powl(fabsl(x[i * C + j]), 2.5L);
        }
        bad += fabs(at(s1, i) - (double)s) > 1e-13 * (fabsl(s) + 1);
        bad += fabs(at(n1, i) - (double)sqrtl(q)) > 1e-13 * (double)sqrtl(q);
        bad += fabs(at(p1, i) - (double)powl(pp, 1 / 2.5L)) > 1e-12 * (double)powl(pp, 1 / 2.5L);
    }
    CHECK(bad == 0);
    FREE_ALL(a, s0, s1, v0, n1, p1, am, cs);
}

/* 10^7 float32 values: accumulated in double along a pairwise tree, so the
 * sum of 0.1f is right to ~1e-12 (a float accumulator is off by ~10%). */
TEST(test_accuracy_long)
{
    const int64_t n = 10000000;
    mimic_tensor *a = mimic_full(1, &n, 0.1, MIMIC_F32);
    mimic_tensor *s = mimic_reduce(MIMIC_SUM, a, 0, false, 0), *m = mimic_reduce(MIMIC_MEAN, a, MIMIC_ALL_DIMS, false, 0);
    double want = (double)n * (double)0.1f;
    CHECK(s && fabs(at(s, 0) - (float)want) <= 0); /* exact after rounding to float */
    CHECK(m && at(m, 0) == 0.1f);
    /* a large offset: two-pass variance keeps the small spread */
    mimic_tensor *b = randu(1, &n, MIMIC_F64, 5, 1e6, 1e6 + 1);
    mimic_tensor *v = mimic_reduce(MIMIC_VAR, b, 0, false, 0);
    long double mu = 0, ss = 0;
    const double *x = mimic_data(b);
    for (int64_t i = 0; i < n; i++)
        mu += x[i];
    mu /= n;
    for (int64_t i = 0; i < n; i++)
        ss += (x[i] - mu) * (x[i] - mu);
    CHECK_NEAR(at(v, 0), (double)(ss / n), 1e-9);
    FREE_ALL(a, s, m, b, v);
}

/* Every reduction path gives the same bits with 1 and 2 threads. */
TEST(test_thread_count_independence)
{
    int old = mimic_get_num_threads();
    mimic_tensor *a = randu(2, (int64_t[]){1000, 1200}, MIMIC_F32, 3, -1, 1);
    mimic_tensor *at_ = mimic_transpose(a, 0, 1);
    mimic_tensor *flat = mimic_view(a, 1, (int64_t[]){1200000});
    const mimic_tensor *src[3] = {a, at_, flat};
    int bad = 0;
    for (int sidx = 0; sidx < 3; sidx++) {
        const mimic_tensor *t = src[sidx];
        for (int op = 0; op < MIMIC_REDOP_COUNT; op++) {
            double param = op == MIMIC_NORM ? 2 : 0;
            for (int d = -1; d < t->ndim; d++) {
                int dim = d < 0 ? MIMIC_ALL_DIMS : d;
                mimic_set_num_threads(1);
                mimic_tensor *x = mimic_reduce((mimic_redop)op, t, dim, false, param);
                mimic_tensor *ax = op == 0 ? mimic_argmax(t, dim, false) : NULL;
                mimic_tensor *cx = op == 0 ? mimic_cumsum(t, dim) : NULL;
                mimic_set_num_threads(2);
                mimic_tensor *y = mimic_reduce((mimic_redop)op, t, dim, false, param);
                mimic_tensor *ay = op == 0 ? mimic_argmax(t, dim, false) : NULL;
                mimic_tensor *cy = op == 0 ? mimic_cumsum(t, dim) : NULL;
                bad += !identical(x, y);
                bad += op == 0 && (!identical(ax, ay) || !identical(cx, cy));
                FREE_ALL(x, y, ax, ay, cx, cy);
            }
        }
    }
    mimic_set_num_threads(old);
    CHECK(bad == 0);
    FREE_ALL(a, at_, flat);
}

TEST(test_cumsum)
{
    static const double v[] = {1, 2, 3, 4, 5, 6};
    mimic_tensor *a = mk(MIMIC_F32, 2, (int64_t[]){2, 3}, v);
    mimic_tensor *c0 = mimic_cumsum(a, 0), *c1 = mimic_cumsum(a, -1), *ca = mimic_cumsum(a, MIMIC_ALL_DIMS);
    CHECK(same_shape(c0, 2, (int64_t[]){2, 3}) && c0->dtype == MIMIC_F32);
    CHECK(at(c0, 0) == 1 && at(c0, 3) == 5 && at(c0, 5) == 9);
    CHECK(at(c1, 2) == 6 && at(c1, 5) == 15 && at(c1, 3) == 4);
    CHECK(same_shape(ca, 1, (int64_t[]){6}) && at(ca, 5) == 21 && at(ca, 3) == 10);
    mimic_tensor *t = mimic_transpose(a, 0, 1); /* [[1,4],[2,5],[3,6]] */
    mimic_tensor *ct = mimic_cumsum(t, 0), *cta = mimic_cumsum(t, MIMIC_ALL_DIMS);
    CHECK(at(ct, 4) == 6 && at(ct, 5) == 15);
    CHECK(at(cta, 1) == 5 && at(cta, 5) == 21); /* row-major order of the view: 1,4,2,5,3,6 */
    mimic_tensor *s = mimic_scalar(3, MIMIC_F64), *cs = mimic_cumsum(s, MIMIC_ALL_DIMS);
    CHECK(same_shape(cs, 1, (int64_t[]){1}) && at(cs, 0) == 3);
    FREE_ALL(a, c0, c1, ca, t, ct, cta, s, cs);
}

int main(void)
{
    RUN(test_names);
    RUN(test_small_values);
    RUN(test_zero_dim_and_dims);
    RUN(test_empty);
    RUN(test_nan_rules);
    RUN(test_errors_and_out);
    RUN(test_layout_independence);
    RUN(test_against_serial);
    RUN(test_accuracy_long);
    RUN(test_thread_count_independence);
    RUN(test_cumsum);
    return CHECK_DONE();
}
