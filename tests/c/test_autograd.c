/* Autograd: the engine's rules, and every differentiable op's gradient against
 * central finite differences in float64. The gradient check walks the core's
 * op registry (mimic_op_name), so an op without a case here fails. */
#include "check.h"
#include "mimic/autograd.h"
#include "mimic/ops.h"
#include "mimic/rng.h"

#include "testutil.h"
#include "gradcheck.h"

static mimic_rng rng;

/* Uniform float64 in [lo, hi) with a random sign when `signed_`, shape given. */
static mimic_tensor *U(double lo, double hi, bool signed_, int ndim, const int64_t *shape)
{
    mimic_tensor *t = mimic_empty(ndim, shape, MIMIC_F64);
    mimic_rng_uniform(&rng, t, lo, hi);
    if (signed_) {
        mimic_tensor *s = mimic_empty(ndim, shape, MIMIC_F64);
        mimic_rng_uniform(&rng, s, -1, 1);
        for (int64_t i = 0; i < mimic_numel(t); i++)
            if (((double *)mimic_data(s))[i] < 0)
                ((double *)mimic_data(t))[i] *= -1;
        mimic_tensor_free(s);
    }
    return t;
}
#define UNIF(lo, hi, ...) U(lo, hi, false, SHAPE_OF(__VA_ARGS__))
#define AWAY0(...) U(0.2, 1.5, true, SHAPE_OF(__VA_ARGS__))

/* A transposed (non-contiguous) float64 view of a fresh [c, r] tensor. */
static mimic_tensor *T2(mimic_tensor *t)
{
    mimic_tensor *v = mimic_transpose(t, 0, 1);
    mimic_tensor_free(t);
    return v;
}

/* --- gradient-check cases -------------------------------------------------------
 * make() fills up to 3 inputs (float64; NULL-terminated when fewer); call()
 * applies the op. Inputs avoid kinks (|x| away from 0 for abs/relu, distinct
 * values for max/min) where the derivative jumps. */
typedef struct gcase {
    const char *name;
    void (*make)(mimic_tensor **in);
    mimic_tensor *(*call)(mimic_tensor *const *in);
} gcase;

#define CASE(NAME) {#NAME, make_##NAME, call_##NAME}
/* One header of cases per op family, each a {NULL}-terminated array. */
#include "gradcases_elementwise.h"
#include "gradcases_reduce_linalg.h"
#include "gradcases_shape.h"
#include "gradcases_conv.h"
#include "gradcases_rnn.h"
static const gcase *const case_lists[] = {cases_elementwise, cases_reduce_linalg, cases_shape, cases_conv,
                                          cases_rnn};

/* Worst |analytic - numeric| / (1 + |numeric|) over every input element. */
static double gradcheck(const gcase *c)
{
    mimic_tensor *in[4] = {0};
    c->make(in);
    int nin = 0;
    while (nin < 3 && in[nin])
        nin++;
    return fd_worst_error(&rng, c->name, c->call, in, nin);
}

TEST(test_every_op_gradient_matches_finite_differences)
{
    int checked = 0;
    for (int i = 0; mimic_op_name(i); i++) {
        const char *name = mimic_op_name(i);
        const gcase *c = NULL;
        for (size_t l = 0; l < sizeof case_lists / sizeof case_lists[0]; l++)
            for (const gcase *k = case_lists[l]; k->name; k++)
                if (strcmp(k->name, name) == 0)
                    c = k;
        if (!c) {
            fprintf(stderr, "op '%s' is differentiable but has no gradient-check case\n", name);
            check_failures++;
            continue;
        }
        double err = gradcheck(c);
        if (!(err < 1e-6)) {
            fprintf(stderr, "op '%s': gradient differs from finite differences by %g\n", name, err);
            check_failures++;
        }
        checked++;
    }
    CHECK(checked >= 21);
}

TEST(test_chain_and_accumulation)
{
    /* y = sum((x*x + x) * 3), dy/dx = 3(2x + 1); twice -> accumulates. */
    mimic_tensor *x = mk(MIMIC_F64, SHAPE_OF(3), (double[]){1, -2, 0.5});
    CHECK_OK(mimic_set_requires_grad(x, true));
    for (int pass = 1; pass <= 2; pass++) {
        mimic_tensor *three = mimic_scalar(3, MIMIC_F64);
        mimic_tensor *sq = mimic_binary(MIMIC_MUL, x, x), *s = mimic_binary(MIMIC_ADD, sq, x);
        mimic_tensor *t = mimic_binary(MIMIC_MUL, s, three);
        mimic_tensor *y = mimic_reduce(MIMIC_SUM, t, MIMIC_ALL_DIMS, false, 0);
        CHECK(y && strcmp(mimic_grad_fn_name(t), "mul") == 0 && !mimic_is_leaf(t));
        CHECK_OK(mimic_backward(y, NULL, false));
        mimic_tensor *g = mimic_grad(x);
        CHECK(g && at(g, 0) == pass * 9.0 && at(g, 1) == pass * -9.0 && at(g, 2) == pass * 6.0);
        mimic_tensor_free(y);
        mimic_tensor_free(t);
        mimic_tensor_free(s);
        mimic_tensor_free(sq);
        mimic_tensor_free(three);
    }
    CHECK_OK(mimic_zero_grad(x));
    CHECK(mimic_grad(x) == NULL);
    mimic_tensor_free(x);
}

TEST(test_no_grad_and_errors)
{
    mimic_tensor *x = mk(MIMIC_F64, SHAPE_OF(2), (double[]){1, 2});
    mimic_set_requires_grad(x, true);
    bool prev = mimic_set_grad_enabled(false);
    mimic_tensor *y = mimic_unary(MIMIC_EXP, x);
    CHECK(prev && !mimic_requires_grad(y) && mimic_is_leaf(y));
    mimic_set_grad_enabled(true);
    CHECK_ERR(mimic_backward(y, NULL, false), MIMIC_ESTATE, "does not require grad");
    mimic_tensor *z = mimic_unary(MIMIC_EXP, x);
    CHECK_ERR(mimic_backward(z, NULL, false), MIMIC_ESHAPE, "must have one element");
    CHECK_ERR(mimic_binary_out(x, MIMIC_ADD, x, x), MIMIC_ESTATE, "not recorded");
    CHECK_ERR(mimic_unary_out(y, MIMIC_EXP, x), MIMIC_ESTATE, "requires grad");
    mimic_tensor *i = mimic_zeros(SHAPE_OF(2), MIMIC_I64);
    CHECK_ERR(mimic_set_requires_grad(i, true), MIMIC_EDTYPE, "float32/float64");
    CHECK_ERR(mimic_set_requires_grad(z, false), MIMIC_ESTATE, "result of 'exp'");
    mimic_tensor_free(i);
    mimic_tensor_free(z);
    mimic_tensor_free(y);
    mimic_tensor_free(x);
}

TEST(test_in_place_change_after_use_is_caught)
{
    mimic_tensor *w = mk(MIMIC_F64, SHAPE_OF(2), (double[]){1, 2});
    mimic_tensor *x = mk(MIMIC_F64, SHAPE_OF(2), (double[]){3, 4});
    mimic_set_requires_grad(w, true);
    mimic_tensor *p = mimic_binary(MIMIC_MUL, w, x); /* dp/dw needs x */
    mimic_tensor *q = mimic_binary(MIMIC_ADD, w, x); /* dq/dw does not */
    mimic_tensor *s = mimic_binary(MIMIC_ADD, p, q);
    mimic_tensor *y = mimic_reduce(MIMIC_SUM, s, MIMIC_ALL_DIMS, false, 0);
    CHECK_OK(mimic_fill(x, 0));
    CHECK_ERR(mimic_backward(y, NULL, false), MIMIC_ESTATE, "'mul' needs for its gradient was modified in place");
    mimic_tensor_free(y);
    mimic_tensor_free(s);
    /* add alone does not read x: changing it is harmless */
    y = mimic_reduce(MIMIC_SUM, q, MIMIC_ALL_DIMS, false, 0);
    CHECK_OK(mimic_backward(y, NULL, false));
    mimic_tensor_free(y);
    mimic_tensor_free(q);
    mimic_tensor_free(p);
    mimic_tensor_free(x);
    mimic_tensor_free(w);
}

TEST(test_second_derivative_with_create_graph)
{
    /* y = x^3 via mul; dy/dx = 3x^2 recorded; d2y/dx2 = 6x. */
    mimic_tensor *x = mk(MIMIC_F64, SHAPE_OF(2), (double[]){2, -1});
    mimic_set_requires_grad(x, true);
    mimic_tensor *x2 = mimic_binary(MIMIC_MUL, x, x), *x3 = mimic_binary(MIMIC_MUL, x2, x);
    mimic_tensor *y = mimic_reduce(MIMIC_SUM, x3, MIMIC_ALL_DIMS, false, 0);
    CHECK_OK(mimic_backward(y, NULL, true));
    mimic_tensor *g = mimic_grad(x);
    CHECK(g && at(g, 0) == 12 && at(g, 1) == 3 && mimic_requires_grad(g));
    mimic_tensor_retain(g);
    mimic_zero_grad(x);
    mimic_tensor *gs = mimic_reduce(MIMIC_SUM, g, MIMIC_ALL_DIMS, false, 0);
    CHECK_OK(mimic_backward(gs, NULL, false));
    mimic_tensor *h = mimic_grad(x);
    CHECK(h && at(h, 0) == 12 && at(h, 1) == -6);
    mimic_tensor_free(gs);
    mimic_tensor_free(g);
    mimic_tensor_free(y);
    mimic_tensor_free(x3);
    mimic_tensor_free(x2);
    mimic_tensor_free(x);
}

TEST(test_float32_leaf_gets_float32_grad)
{
    mimic_tensor *x = mk(MIMIC_F32, SHAPE_OF(2, 2), (double[]){1, 2, 3, 4});
    mimic_tensor *b = mk(MIMIC_F64, SHAPE_OF(2), (double[]){1, 1});
    mimic_set_requires_grad(x, true);
    mimic_tensor *y = mimic_binary(MIMIC_MUL, x, b); /* promoted to float64 */
    mimic_tensor *s = mimic_reduce(MIMIC_SUM, y, MIMIC_ALL_DIMS, false, 0);
    CHECK_OK(mimic_backward(s, NULL, false));
    CHECK(mimic_grad(x) && mimic_grad(x)->dtype == MIMIC_F32 && at(mimic_grad(x), 3) == 1);
    mimic_tensor_free(s);
    mimic_tensor_free(y);
    mimic_tensor_free(b);
    mimic_tensor_free(x);
}

int main(void)
{
    mimic_rng_init(&rng, 2024);
    RUN(test_every_op_gradient_matches_finite_differences);
    RUN(test_chain_and_accumulation);
    RUN(test_no_grad_and_errors);
    RUN(test_in_place_change_after_use_is_caught);
    RUN(test_second_derivative_with_create_graph);
    RUN(test_float32_leaf_gets_float32_grad);
    return CHECK_DONE();
}
