/* Autograd of the reductions and linear algebra beyond what the registry's
 * finite-difference walk (test_autograd.c) shows: second derivatives, ties,
 * zeros, the variants one case per op cannot hold, and when no node may be
 * recorded. */
#include "check.h"
#include "mimic/autograd.h"
#include "mimic/ops.h"
#include "mimic/rng.h"

#include "testutil.h"
#include "gradcheck.h"

static mimic_rng rng;

/* Worst |analytic - numeric| / (1 + |numeric|) of f's gradient over the nin
 * float64 inputs (which it marks and consumes). */
static double fd_worst(fd_fn f, mimic_tensor **in, int nin) { return fd_worst_error(&rng, NULL, f, in, nin); }

static mimic_tensor *T(mimic_tensor *t) /* last two dims swapped; t consumed */
{
    mimic_tensor *v = mimic_transpose(t, -2, -1);
    mimic_tensor_free(t);
    return v;
}

static mimic_tensor *mm2(mimic_tensor *const *in) { return mimic_matmul(in[0], in[1]); }

TEST(test_matmul_variants_match_finite_differences)
{
    /* batch x matrix: the weight's gradient is one [k, B*n] x [B*n, m] gemm */
    CHECK(fd_worst(mm2, (mimic_tensor *[]){RAND(MIMIC_F64, 2, 3, 4), T(RAND(MIMIC_F64, 5, 4))}, 2) < 1e-6);
    /* non-contiguous batch (no view can merge it) x matrix */
    mimic_tensor *base = RAND(MIMIC_F64, 3, 2, 4), *a = mimic_transpose(base, 0, 1);
    mimic_tensor_free(base);
    CHECK(fd_worst(mm2, (mimic_tensor *[]){a, RAND(MIMIC_F64, 4, 5)}, 2) < 1e-6);
    /* matrix x batch: the matrix's gradient is summed over the batch */
    CHECK(fd_worst(mm2, (mimic_tensor *[]){RAND(MIMIC_F64, 3, 4), RAND(MIMIC_F64, 2, 1, 4, 5)}, 2) < 1e-6);
    /* vector x matrix, matrix x vector, vector x batch */
    CHECK(fd_worst(mm2, (mimic_tensor *[]){RAND(MIMIC_F64, 4), T(RAND(MIMIC_F64, 5, 4))}, 2) < 1e-6);
    CHECK(fd_worst(mm2, (mimic_tensor *[]){RAND(MIMIC_F64, 3, 4), RAND(MIMIC_F64, 4)}, 2) < 1e-6);
    CHECK(fd_worst(mm2, (mimic_tensor *[]){RAND(MIMIC_F64, 2, 3, 4), RAND(MIMIC_F64, 4)}, 2) < 1e-6);
    CHECK(fd_worst(mm2, (mimic_tensor *[]){RAND(MIMIC_F64, 4), RAND(MIMIC_F64, 2, 4, 5)}, 2) < 1e-6);
    /* an empty inner dim: zero gradients of the right shapes */
    CHECK(fd_worst(mm2, (mimic_tensor *[]){RAND(MIMIC_F64, 3, 0), RAND(MIMIC_F64, 0, 2)}, 2) < 1e-6);
    /* float32 x float64 computes in float64; the float32 leaf's gradient is float32 */
    mimic_tensor *x = RAND(MIMIC_F32, 2, 3), *w = RAND(MIMIC_F64, 3, 2);
    mimic_set_requires_grad(x, true);
    mimic_tensor *y = mimic_matmul(x, w), *s = mimic_reduce(MIMIC_SUM, y, MIMIC_ALL_DIMS, false, 0);
    CHECK_OK(mimic_backward(s, NULL, false));
    CHECK(mimic_grad(x) && mimic_grad(x)->dtype == MIMIC_F32 && SHAPE_IS(mimic_grad(x), 2, 3));
    CHECK(y && strcmp(mimic_grad_fn_name(y), "matmul") == 0 && strcmp(mimic_grad_fn_name(s), "sum") == 0);
    mimic_tensor_free(s);
    mimic_tensor_free(y);
    mimic_tensor_free(w);
    mimic_tensor_free(x);
}

/* f(A, B) = sum((A B)^2): dA = 2 A B Bt. With create_graph that gradient is
 * recorded, so s = sum(dA * C) differentiates again:
 * ds/dA = 2 C B Bt, ds/dB = 2 (Ct A + At C) B. */
TEST(test_matmul_second_derivatives)
{
    mimic_tensor *A = RAND(MIMIC_F64, 2, 3), *B = T(RAND(MIMIC_F64, 4, 3)), *C = RAND(MIMIC_F64, 2, 3);
    mimic_set_requires_grad(A, true);
    mimic_set_requires_grad(B, true);
    mimic_tensor *AB = mimic_matmul(A, B), *sq = mimic_unary(MIMIC_SQUARE, AB);
    mimic_tensor *f = mimic_reduce(MIMIC_SUM, sq, MIMIC_ALL_DIMS, false, 0);
    CHECK_OK(mimic_backward(f, NULL, true));
    mimic_tensor *gA = mimic_grad(A);
    CHECK(gA && mimic_requires_grad(gA));
    mimic_tensor_retain(gA);
    mimic_zero_grad(A);
    mimic_zero_grad(B);
    mimic_tensor *gC = mimic_binary(MIMIC_MUL, gA, C), *s = mimic_reduce(MIMIC_SUM, gC, MIMIC_ALL_DIMS, false, 0);
    CHECK_OK(mimic_backward(s, NULL, false));

    bool prev = mimic_set_grad_enabled(false);
    mimic_tensor *two = mimic_scalar(2, MIMIC_F64), *Bt = mimic_transpose(B, 0, 1);
    mimic_tensor *BBt = mimic_matmul(B, Bt), *CBBt = mimic_matmul(C, BBt), *wantA = mimic_binary(MIMIC_MUL, CBBt, two);
    mimic_tensor *At = mimic_transpose(A, 0, 1), *Ct = mimic_transpose(C, 0, 1);
    mimic_tensor *CtA = mimic_matmul(Ct, A), *AtC = mimic_matmul(At, C), *X = mimic_binary(MIMIC_ADD, CtA, AtC);
    mimic_tensor *XB = mimic_matmul(X, B), *wantB = mimic_binary(MIMIC_MUL, XB, two);
    mimic_tensor *ABBt = mimic_matmul(AB, Bt), *wantgA = mimic_binary(MIMIC_MUL, ABBt, two);
    mimic_set_grad_enabled(prev);

    mimic_tensor *hA = mimic_grad(A), *hB = mimic_grad(B);
    CHECK(hA && hB);
    for (int64_t i = 0; hA && i < 6; i++) {
        int64_t idx[2] = {i / 3, i % 3};
        CHECK_NEAR(mimic_get(gA, idx), mimic_get(wantgA, idx), 1e-12);
        CHECK_NEAR(mimic_get(hA, idx), mimic_get(wantA, idx), 1e-12);
    }
    for (int64_t i = 0; hB && i < 12; i++) {
        int64_t idx[2] = {i / 4, i % 4};
        CHECK_NEAR(mimic_get(hB, idx), mimic_get(wantB, idx), 1e-12);
    }
    mimic_tensor *tmp[] = {two, Bt, BBt, CBBt, wantA, At, Ct, CtA, AtC, X, XB, wantB, ABBt, wantgA,
                           s, gC, gA, f, sq, AB, C, B, A};
    for (size_t i = 0; i < sizeof tmp / sizeof tmp[0]; i++)
        mimic_tensor_free(tmp[i]);
}

/* Hessian-vector products: with create_graph the gradient g(x) of
 * sum(f(x) * w) is itself recorded, so backward of sum(g * v) gives H v;
 * compared with central differences of sum(g(x) * v), g computed plainly. */
static double gdot(fd_fn f, mimic_tensor *x, const mimic_tensor *w, const mimic_tensor *v)
{
    mimic_zero_grad(x);
    mimic_tensor *y = f(&x), *p = mimic_binary(MIMIC_MUL, y, w);
    mimic_tensor *l = mimic_reduce(MIMIC_SUM, p, MIMIC_ALL_DIMS, false, 0);
    double r = NAN;
    if (l && mimic_backward(l, NULL, false) == MIMIC_OK && mimic_grad(x)) {
        bool prev = mimic_set_grad_enabled(false);
        mimic_tensor *gv = mimic_binary(MIMIC_MUL, mimic_grad(x), v);
        mimic_tensor *sv = mimic_reduce(MIMIC_SUM, gv, MIMIC_ALL_DIMS, false, 0);
        r = mimic_get(sv, NULL);
        mimic_tensor_free(sv);
        mimic_tensor_free(gv);
        mimic_set_grad_enabled(prev);
    }
    mimic_tensor_free(l);
    mimic_tensor_free(p);
    mimic_tensor_free(y);
    return r;
}

static double hvp_worst(fd_fn f, mimic_tensor *x)
{
    mimic_set_requires_grad(x, true);
    mimic_tensor *y = f(&x);
    mimic_tensor *w = mimic_empty(y->ndim, y->shape, MIMIC_F64), *v = mimic_empty(x->ndim, x->shape, MIMIC_F64);
    mimic_rng_uniform(&rng, w, -1, 1);
    mimic_rng_uniform(&rng, v, -1, 1);
    mimic_tensor *p = mimic_binary(MIMIC_MUL, y, w), *l = mimic_reduce(MIMIC_SUM, p, MIMIC_ALL_DIMS, false, 0);
    double worst = INFINITY;
    mimic_tensor *g = NULL, *gv = NULL, *sv = NULL;
    if (mimic_backward(l, NULL, true) || !(g = mimic_grad(x)) || !mimic_requires_grad(g)) {
        fprintf(stderr, "create_graph backward: %s\n", g ? "the gradient was not recorded" : mimic_errmsg());
        g = NULL;
        goto done;
    }
    mimic_tensor_retain(g);
    mimic_zero_grad(x);
    gv = mimic_binary(MIMIC_MUL, g, v);
    sv = mimic_reduce(MIMIC_SUM, gv, MIMIC_ALL_DIMS, false, 0);
    if (mimic_backward(sv, NULL, false)) {
        fprintf(stderr, "second backward: %s\n", mimic_errmsg());
        goto done;
    }
    mimic_tensor *hv = mimic_grad(x);
    if (hv)
        mimic_tensor_retain(hv);
    worst = 0;
    const double h = 1e-5;
    for (int64_t i = 0; i < mimic_numel(x); i++) {
        int64_t idx[MIMIC_MAX_DIMS];
        fd_unravel(x, i, idx);
        double x0 = mimic_get(x, idx);
        mimic_set(x, idx, x0 + h);
        double fp = gdot(f, x, w, v);
        mimic_set(x, idx, x0 - h);
        double fm = gdot(f, x, w, v);
        mimic_set(x, idx, x0);
        double num = (fp - fm) / (2 * h), err = fabs((hv ? mimic_get(hv, idx) : 0) - num) / (1 + fabs(num));
        if (!(err <= worst))
            worst = err != err ? INFINITY : err;
    }
    mimic_tensor_free(hv);
done:
    mimic_tensor_free(sv);
    mimic_tensor_free(gv);
    mimic_tensor_free(g);
    mimic_tensor_free(l);
    mimic_tensor_free(p);
    mimic_tensor_free(v);
    mimic_tensor_free(w);
    mimic_tensor_free(y);
    mimic_tensor_free(x);
    return worst;
}

/* op(x)^2, so that linear ops have a nonzero Hessian too. */
static mimic_tensor *sq(mimic_tensor *t)
{
    mimic_tensor *r = t ? mimic_unary(MIMIC_SQUARE, t) : NULL;
    mimic_tensor_free(t);
    return r;
}
static mimic_tensor *h_sum(mimic_tensor *const *in) { return sq(mimic_reduce(MIMIC_SUM, in[0], 1, false, 0)); }
static mimic_tensor *h_mean(mimic_tensor *const *in) { return sq(mimic_reduce(MIMIC_MEAN, in[0], 0, true, 0)); }
static mimic_tensor *h_prod(mimic_tensor *const *in) { return mimic_reduce(MIMIC_PROD, in[0], 1, false, 0); }
static mimic_tensor *h_var(mimic_tensor *const *in) { return sq(mimic_reduce(MIMIC_VAR, in[0], 0, false, 1)); }
static mimic_tensor *h_std(mimic_tensor *const *in) { return mimic_reduce(MIMIC_STD, in[0], 1, true, 0); }
static mimic_tensor *h_norm2(mimic_tensor *const *in)
{
    return mimic_reduce(MIMIC_NORM, in[0], MIMIC_ALL_DIMS, false, 2);
}
static mimic_tensor *h_norm3(mimic_tensor *const *in) { return mimic_reduce(MIMIC_NORM, in[0], 0, false, 3); }
static mimic_tensor *h_max(mimic_tensor *const *in) { return sq(mimic_reduce(MIMIC_MAX, in[0], 1, false, 0)); }
static mimic_tensor *h_cumsum(mimic_tensor *const *in) { return sq(mimic_cumsum(in[0], 0)); }
static mimic_tensor *h_matmul(mimic_tensor *const *in) { return mimic_matmul(in[0], in[0]); }
static mimic_tensor *h_dot(mimic_tensor *const *in)
{
    mimic_tensor *r0 = mimic_select(in[0], 0, 0), *r1 = mimic_select(in[0], 0, 1), *r = mimic_dot(r0, r1);
    mimic_tensor_free(r1);
    mimic_tensor_free(r0);
    return r;
}

TEST(test_second_derivatives_of_every_formula)
{
    static const struct { const char *name; fd_fn f; } fs[] = {
        {"sum", h_sum}, {"mean", h_mean}, {"prod", h_prod}, {"var", h_var}, {"std", h_std}, {"norm 2", h_norm2},
        {"norm 3", h_norm3}, {"max", h_max}, {"cumsum", h_cumsum}, {"matmul", h_matmul}, {"dot", h_dot},
    };
    for (size_t i = 0; i < sizeof fs / sizeof fs[0]; i++) {
        mimic_tensor *x = mimic_empty(SHAPE_OF(3, 3), MIMIC_F64);
        mimic_rng_uniform(&rng, x, 0.5, 2); /* away from 0 for prod and the norms */
        double err = hvp_worst(fs[i].f, x);
        if (!(err < 1e-6)) {
            fprintf(stderr, "%s: Hessian-vector product differs from finite differences by %g\n", fs[i].name, err);
            check_failures++;
        }
    }
}

/* Gradient of sum(op(x, dim, keepdim)) into x (a fresh leaf of vals). */
static mimic_tensor *grad_of(mimic_redop op, int ndim, const int64_t *shape, const double *vals, int dim,
                             double param)
{
    mimic_tensor *x = mk(MIMIC_F64, ndim, shape, vals);
    mimic_set_requires_grad(x, true);
    mimic_tensor *y = mimic_reduce(op, x, dim, false, param);
    mimic_tensor *s = mimic_reduce(MIMIC_SUM, y, MIMIC_ALL_DIMS, false, 0);
    mimic_tensor *g = NULL;
    if (s && mimic_backward(s, NULL, false) == MIMIC_OK && (g = mimic_grad(x)))
        mimic_tensor_retain(g);
    mimic_tensor_free(s);
    mimic_tensor_free(y);
    mimic_tensor_free(x);
    return g;
}

static bool grad_is(mimic_tensor *g, const double *want, int64_t n)
{
    bool ok = g && mimic_numel(g) == n;
    for (int64_t i = 0; ok && i < n; i++)
        ok = fabs(at(g, i) - want[i]) < 1e-12;
    if (!ok && g)
        for (int64_t i = 0; i < n; i++)
            fprintf(stderr, "  grad[%lld] = %g, want %g\n", (long long)i, at(g, i), want[i]);
    mimic_tensor_free(g);
    return ok;
}

TEST(test_min_max_split_the_gradient_on_ties)
{
    const double x[] = {1, 3, 3, 2, 2, 2};
    CHECK(grad_is(grad_of(MIMIC_MAX, SHAPE_OF(2, 3), x, 1, 0), (double[]){0, .5, .5, 1. / 3, 1. / 3, 1. / 3}, 6));
    CHECK(grad_is(grad_of(MIMIC_MIN, SHAPE_OF(2, 3), x, 1, 0), (double[]){1, 0, 0, 1. / 3, 1. / 3, 1. / 3}, 6));
    CHECK(grad_is(grad_of(MIMIC_MAX, SHAPE_OF(2, 3), x, MIMIC_ALL_DIMS, 0), (double[]){0, .5, .5, 0, 0, 0}, 6));
    CHECK(grad_is(grad_of(MIMIC_MIN, SHAPE_OF(2, 3), x, 0, 0), (double[]){1, 0, 0, 0, 1, 1}, 6));
    /* inf-norm: to the largest |x|, with its sign */
    CHECK(grad_is(grad_of(MIMIC_NORM, SHAPE_OF(3), (double[]){-3, 3, 1}, 0, INFINITY), (double[]){-.5, .5, 0}, 3));
}

TEST(test_prod_gradient_at_zeros_is_exact)
{
    CHECK(grad_is(grad_of(MIMIC_PROD, SHAPE_OF(4), (double[]){2, 0, 3, 4}, 0, 0), (double[]){0, 24, 0, 0}, 4));
    CHECK(grad_is(grad_of(MIMIC_PROD, SHAPE_OF(3), (double[]){0, 2, 0}, 0, 0), (double[]){0, 0, 0}, 3));
    CHECK(grad_is(grad_of(MIMIC_PROD, SHAPE_OF(2, 3), (double[]){2, 0, 3, 1, 2, 3}, 1, 0),
                  (double[]){0, 6, 0, 6, 3, 2}, 6));
    CHECK(grad_is(grad_of(MIMIC_PROD, SHAPE_OF(2, 2), (double[]){2, 0, 3, 5}, MIMIC_ALL_DIMS, 0),
                  (double[]){0, 30, 0, 0}, 4));
}

TEST(test_flat_points_give_zero_not_nan)
{
    /* a constant has std 0, a zero vector norm 0: the gradient is 0 (as PyTorch) */
    CHECK(grad_is(grad_of(MIMIC_STD, SHAPE_OF(3), (double[]){2, 2, 2}, 0, 0), (double[]){0, 0, 0}, 3));
    CHECK(grad_is(grad_of(MIMIC_NORM, SHAPE_OF(2), (double[]){0, 0}, 0, 2), (double[]){0, 0}, 2));
    CHECK(grad_is(grad_of(MIMIC_NORM, SHAPE_OF(2), (double[]){0, 0}, 0, 3), (double[]){0, 0}, 2));
    CHECK(grad_is(grad_of(MIMIC_NORM, SHAPE_OF(2), (double[]){0, 0}, 0, INFINITY), (double[]){0, 0}, 2));
    CHECK(grad_is(grad_of(MIMIC_NORM, SHAPE_OF(2), (double[]){0, 2}, 0, 0.5), (double[]){0, 1}, 2));
    /* var with ddof 1: 2 (x - mean) / (n - 1) */
    CHECK(grad_is(grad_of(MIMIC_VAR, SHAPE_OF(3), (double[]){1, 2, 6}, 0, 1), (double[]){-2, -1, 3}, 3));
}

static mimic_tensor *cumsum_all(mimic_tensor *const *in) { return mimic_cumsum(in[0], MIMIC_ALL_DIMS); }
static mimic_tensor *cumsum_0d(mimic_tensor *const *in) { return mimic_cumsum(in[0], 0); }

TEST(test_cumsum_over_all_dims)
{
    /* over the flattened (here transposed) tensor: the gradient is reshaped back */
    CHECK(fd_worst(cumsum_all, (mimic_tensor *[]){T(RAND(MIMIC_F64, 4, 3))}, 1) < 1e-6);
    CHECK(fd_worst(cumsum_all, (mimic_tensor *[]){RAND(MIMIC_F64, 5)}, 1) < 1e-6);
    CHECK(fd_worst(cumsum_all, (mimic_tensor *[]){mimic_scalar(0.5, MIMIC_F64)}, 1) < 1e-6);
    CHECK(fd_worst(cumsum_0d, (mimic_tensor *[]){mimic_scalar(0.5, MIMIC_F64)}, 1) < 1e-6);
    mimic_tensor *x = mk(MIMIC_F64, SHAPE_OF(2, 2), (double[]){1, 2, 3, 4});
    mimic_set_requires_grad(x, true);
    mimic_tensor *y = mimic_cumsum(x, MIMIC_ALL_DIMS);
    mimic_tensor *w = mk(MIMIC_F64, SHAPE_OF(4), (double[]){1, 10, 100, 1000});
    CHECK(y && strcmp(mimic_grad_fn_name(y), "cumsum") == 0);
    CHECK_OK(mimic_backward(y, w, false));
    mimic_tensor *g = mimic_grad(x);
    CHECK(SHAPE_IS(g, 2, 2));
    if (g)
        mimic_tensor_retain(g); /* grad_is releases it */
    CHECK(grad_is(g, (double[]){1111, 1110, 1100, 1000}, 4));
    mimic_tensor_free(w);
    mimic_tensor_free(y);
    mimic_tensor_free(x);
}

TEST(test_no_node_without_grad)
{
    mimic_tensor *x = RAND(MIMIC_F64, 3, 4), *v = RAND(MIMIC_F64, 4);
    /* inputs that do not require grad: plain results */
    mimic_tensor *r[] = {mimic_reduce(MIMIC_SUM, x, 0, false, 0), mimic_cumsum(x, 1), mimic_matmul(x, v),
                         mimic_dot(v, v), mimic_outer(v, v)};
    for (size_t i = 0; i < sizeof r / sizeof r[0]; i++) {
        CHECK(r[i] && mimic_is_leaf(r[i]) && !mimic_requires_grad(r[i]) && r[i]->autograd == NULL);
        mimic_tensor_free(r[i]);
    }
    /* grad mode off: not recorded even though x requires grad */
    mimic_set_requires_grad(x, true);
    bool prev = mimic_set_grad_enabled(false);
    mimic_tensor *q[] = {mimic_reduce(MIMIC_NORM, x, MIMIC_ALL_DIMS, false, 2), mimic_reduce(MIMIC_MAX, x, 1, true, 0),
                         mimic_cumsum(x, MIMIC_ALL_DIMS), mimic_matmul(x, v)};
    for (size_t i = 0; i < sizeof q / sizeof q[0]; i++) {
        CHECK(q[i] && mimic_is_leaf(q[i]) && !mimic_requires_grad(q[i]));
        mimic_tensor_free(q[i]);
    }
    mimic_set_grad_enabled(prev);
    /* argmin/argmax are not differentiable: an int64 result with no node */
    mimic_tensor *am = mimic_argmax(x, 1, false), *an = mimic_argmin(x, MIMIC_ALL_DIMS, false);
    CHECK(am && an && mimic_is_leaf(am) && !mimic_requires_grad(am) && !mimic_requires_grad(an));
    mimic_tensor_free(an);
    mimic_tensor_free(am);
    mimic_tensor_free(v);
    mimic_tensor_free(x);
}

TEST(test_out_forms_refuse_inputs_that_require_grad)
{
    mimic_tensor *x = RAND(MIMIC_F64, 3, 4), *w = RAND(MIMIC_F64, 4, 2);
    mimic_tensor *o = mimic_empty(SHAPE_OF(3), MIMIC_F64), *m = mimic_empty(SHAPE_OF(3, 2), MIMIC_F64);
    mimic_set_requires_grad(x, true);
    CHECK_ERR(mimic_reduce_out(o, MIMIC_SUM, x, 1, false, 0), MIMIC_ESTATE, "an input requires grad");
    CHECK_ERR(mimic_matmul_out(m, x, w), MIMIC_ESTATE, "an input requires grad");
    uint64_t v0 = mimic_version(o);
    bool prev = mimic_set_grad_enabled(false);
    CHECK_OK(mimic_reduce_out(o, MIMIC_MEAN, x, 1, false, 0));
    CHECK_OK(mimic_matmul_out(m, x, w));
    mimic_set_grad_enabled(prev);
    CHECK(mimic_version(o) > v0); /* a write into out is an in-place change */
    /* nor may the output itself require grad */
    mimic_set_requires_grad(o, true);
    mimic_set_requires_grad(x, false);
    CHECK_ERR(mimic_reduce_out(o, MIMIC_SUM, x, 1, false, 0), MIMIC_ESTATE, "not recorded");
    mimic_tensor_free(m);
    mimic_tensor_free(o);
    mimic_tensor_free(w);
    mimic_tensor_free(x);
}

TEST(test_what_the_backward_reads)
{
    /* sum and mean never read x, so changing it afterwards is harmless;
     * prod does read it, and the change is caught. */
    mimic_tensor *x = mk(MIMIC_F64, SHAPE_OF(3), (double[]){1, 2, 3});
    mimic_set_requires_grad(x, true);
    mimic_tensor *s = mimic_reduce(MIMIC_MEAN, x, 0, false, 0), *p = mimic_reduce(MIMIC_PROD, x, 0, false, 0);
    mimic_set(x, (int64_t[]){0}, 5);
    CHECK_OK(mimic_backward(s, NULL, false));
    CHECK_ERR(mimic_backward(p, NULL, false), MIMIC_ESTATE, "'prod' needs for its gradient was modified");
    /* x @ W with only W requiring grad reads x, not W */
    mimic_tensor *a = RAND(MIMIC_F64, 2, 3), *W = RAND(MIMIC_F64, 3, 2);
    mimic_set_requires_grad(W, true);
    mimic_tensor *y = mimic_matmul(a, W), *l = mimic_reduce(MIMIC_SUM, y, MIMIC_ALL_DIMS, false, 0);
    mimic_set(a, (int64_t[]){0, 0}, 1);
    CHECK_ERR(mimic_backward(l, NULL, false), MIMIC_ESTATE, "'matmul' needs");
    mimic_tensor_free(l);
    mimic_tensor_free(y);
    mimic_tensor_free(W);
    mimic_tensor_free(a);
    mimic_tensor_free(p);
    mimic_tensor_free(s);
    mimic_tensor_free(x);
}

int main(void)
{
    mimic_rng_init(&rng, 7);
    RUN(test_matmul_variants_match_finite_differences);
    RUN(test_matmul_second_derivatives);
    RUN(test_second_derivatives_of_every_formula);
    RUN(test_min_max_split_the_gradient_on_ties);
    RUN(test_prod_gradient_at_zeros_is_exact);
    RUN(test_flat_points_give_zero_not_nan);
    RUN(test_cumsum_over_all_dims);
    RUN(test_no_node_without_grad);
    RUN(test_out_forms_refuse_inputs_that_require_grad);
    RUN(test_what_the_backward_reads);
    return CHECK_DONE();
}
