/* Element-wise ops: formulas against libm, NaN rules, broadcasting, layouts,
 * in-place aliasing, dtype rules, errors, and the threaded path. */
#include "check.h"
#include "testutil.h"
#include "mimic/ops.h"

static bool same_bits(double a, double b) { return a == b || (isnan(a) && isnan(b)); }

TEST(test_names)
{
    CHECK(strcmp(mimic_unop_name(MIMIC_NEG), "neg") == 0);
    CHECK(strcmp(mimic_unop_name(MIMIC_SIGN), "sign") == 0);
    CHECK(strcmp(mimic_unop_name(MIMIC_UNOP_COUNT), "?") == 0);
    CHECK(strcmp(mimic_binop_name(MIMIC_MAXIMUM), "maximum") == 0);
    CHECK(strcmp(mimic_binop_name(MIMIC_POW), "pow") == 0);
    CHECK(strcmp(mimic_cmpop_name(MIMIC_GE), "ge") == 0);
    CHECK(strcmp(mimic_cmpop_name((mimic_cmpop)-1), "?") == 0);
    mimic_tensor *a = mimic_scalar(1, MIMIC_F32);
    CHECK_ERR_PTR(mimic_unary(MIMIC_UNOP_COUNT, a), MIMIC_EARG, "unknown op");
    CHECK_ERR_PTR(mimic_binary(MIMIC_BINOP_COUNT, a, a), MIMIC_EARG, "unknown op");
    CHECK_ERR_PTR(mimic_compare(MIMIC_CMPOP_COUNT, a, a), MIMIC_EARG, "unknown op");
    mimic_tensor_free(a);
}

TEST(test_broadcast_shape)
{
    mimic_tensor *a = mimic_zeros(2, (int64_t[]){3, 1}, MIMIC_F32), *b = mimic_zeros(1, (int64_t[]){4}, MIMIC_F32);
    int nd = -1;
    int64_t sh[MIMIC_MAX_DIMS];
    CHECK_OK(mimic_broadcast_shape("add", a, b, &nd, sh));
    CHECK(nd == 2 && sh[0] == 3 && sh[1] == 4);
    mimic_tensor *z = mimic_zeros(3, (int64_t[]){2, 0, 1}, MIMIC_F32), *w = mimic_zeros(2, (int64_t[]){1, 5}, MIMIC_F32);
    CHECK_OK(mimic_broadcast_shape("add", z, w, &nd, sh));
    CHECK(nd == 3 && sh[0] == 2 && sh[1] == 0 && sh[2] == 5);
    mimic_tensor *c = mimic_zeros(2, (int64_t[]){3, 4}, MIMIC_F32), *d = mimic_zeros(2, (int64_t[]){5, 4}, MIMIC_F32);
    CHECK_ERR(mimic_broadcast_shape("add", c, d, &nd, sh), MIMIC_ESHAPE,
              "add: shapes [3,4] and [5,4] do not broadcast (dim -2: 3 vs 5)");
    CHECK_ERR_PTR(mimic_binary(MIMIC_MUL, c, d), MIMIC_ESHAPE, "mul: shapes [3,4] and [5,4] do not broadcast");
    mimic_tensor *e = mimic_zeros(1, (int64_t[]){3}, MIMIC_F32);
    CHECK_ERR_PTR(mimic_binary(MIMIC_SUB, c, e), MIMIC_ESHAPE, "sub: shapes [3,4] and [3] do not broadcast (dim -1: 4 vs 3)");
    CHECK_ERR_PTR(mimic_compare(MIMIC_LT, c, e), MIMIC_ESHAPE, "lt: shapes [3,4] and [3]");
    mimic_tensor *zr = mimic_zeros(1, (int64_t[]){0}, MIMIC_F32);
    CHECK_ERR_PTR(mimic_binary(MIMIC_ADD, zr, e), MIMIC_ESHAPE, "(dim -1: 0 vs 3)");
    mimic_tensor *r = mimic_binary(MIMIC_ADD, z, w);
    CHECK(r && r->ndim == 3 && r->shape[1] == 0 && r->shape[2] == 5 && mimic_numel(r) == 0);
    mimic_tensor_free(r);
    mimic_tensor *one = mimic_zeros(1, (int64_t[]){1}, MIMIC_F32);
    r = mimic_binary(MIMIC_ADD, zr, one); /* size 1 stretches to 0 */
    CHECK(r && r->ndim == 1 && r->shape[0] == 0);
    mimic_tensor_free(r);
    mimic_tensor *fs[] = {a, b, z, w, c, d, e, zr, one};
    for (size_t i = 0; i < sizeof fs / sizeof fs[0]; i++)
        mimic_tensor_free(fs[i]);
}

static const double vals[] = {-3.5, -1, -0.25, 0, 0.5, 1, 2.75, 40, -60};
#define NV ((int64_t)(sizeof vals / sizeof vals[0]))

static double ref_unary(mimic_unop op, double x)
{
    switch (op) {
    case MIMIC_NEG: return -x;
    case MIMIC_ABS: return fabs(x);
    case MIMIC_EXP: return exp(x);
    case MIMIC_LOG: return log(x);
    case MIMIC_SQRT: return sqrt(x);
    case MIMIC_TANH: return tanh(x);
    case MIMIC_SIGMOID: return 1 / (1 + exp(-x));
    case MIMIC_RELU: return x > 0 ? x : 0;
    case MIMIC_SIN: return sin(x);
    case MIMIC_COS: return cos(x);
    case MIMIC_SQUARE: return x * x;
    case MIMIC_SIGN: return x > 0 ? 1 : x < 0 ? -1 : 0;
    default: return NAN;
    }
}

/* |got - want| within rel relative error (NaN matches NaN, inf matches inf). */
static bool close_rel(double got, double want, double rel)
{
    if (isnan(want) || isinf(want))
        return same_bits(got, want);
    return fabs(got - want) <= rel * fabs(want) + 1e-300;
}

TEST(test_unary_values)
{
    for (int dt = MIMIC_F32; dt <= MIMIC_F64; dt++) {
        mimic_tensor *a = mk((mimic_dtype)dt, 1, (int64_t[]){NV}, vals);
        double rel = dt == MIMIC_F32 ? 2e-6 : 1e-14;
        for (int op = 0; op < MIMIC_UNOP_COUNT; op++) {
            mimic_tensor *r = mimic_unary((mimic_unop)op, a);
            CHECK_PTR(r);
            if (!r)
                continue;
            CHECK(r->dtype == (mimic_dtype)dt && r->ndim == 1 && r->shape[0] == NV);
            for (int64_t i = 0; i < NV; i++) {
                double x = at(a, i), want = ref_unary((mimic_unop)op, x), got = at(r, i);
                if (dt == MIMIC_F32 && isfinite(want) && fabs(want) > 3.4e38)
                    want = copysign(INFINITY, want);
                if (!close_rel(got, want, rel)) {
                    fprintf(stderr, "%s(%g) [%s] = %.17g, want %.17g\n", mimic_unop_name((mimic_unop)op), x,
                            mimic_dtype_name((mimic_dtype)dt), got, want);
                    check_failures++;
                }
            }
            mimic_tensor_free(r);
        }
        mimic_tensor_free(a);
    }
}

TEST(test_sigmoid_stable)
{
    static const double xs[] = {-1000, -100, -30, 30, 100, 1000, INFINITY, -INFINITY};
    for (int dt = MIMIC_F32; dt <= MIMIC_F64; dt++) {
        mimic_tensor *a = mk((mimic_dtype)dt, 1, (int64_t[]){8}, xs);
        mimic_tensor *r = mimic_unary(MIMIC_SIGMOID, a);
        for (int i = 0; i < 8; i++) {
            double x = xs[i], y = at(r, i);
            CHECK(!isnan(y) && y >= 0 && y <= 1);
            /* exact reference for x << 0 is exp(x)/(1+exp(x)) ~ exp(x) */
            double want = x < 0 ? exp(x) / (1 + exp(x)) : 1 / (1 + exp(-x));
            if (dt == MIMIC_F32 && want < 1e-37) /* below float's normal range */
                CHECK(fabs(y - want) < 1e-44);
            else
                CHECK(close_rel(y, want, dt == MIMIC_F32 ? 1e-6 : 1e-15));
        }
        mimic_tensor_free(r);
        mimic_tensor_free(a);
    }
}

static double ref_binary(mimic_binop op, double x, double y)
{
    switch (op) {
    case MIMIC_ADD: return x + y;
    case MIMIC_SUB: return x - y;
    case MIMIC_MUL: return x * y;
    case MIMIC_DIV: return x / y;
    case MIMIC_POW: return pow(x, y);
    case MIMIC_MAXIMUM: return isnan(x) || isnan(y) ? NAN : fmax(x, y);
    case MIMIC_MINIMUM: return isnan(x) || isnan(y) ? NAN : fmin(x, y);
    default: return NAN;
    }
}

TEST(test_binary_values_broadcast)
{
    /* [3,1] op [4] -> [3,4], in float32 (computed in float, so compare with
     * the float-rounded double result) and float64. */
    static const double av[] = {1.5, -2, 0.5}, bv[] = {2, -0.5, 3, 0.25};
    for (int dt = MIMIC_F32; dt <= MIMIC_F64; dt++) {
        mimic_tensor *a = mk((mimic_dtype)dt, 2, (int64_t[]){3, 1}, av);
        mimic_tensor *b = mk((mimic_dtype)dt, 1, (int64_t[]){4}, bv);
        for (int op = 0; op < MIMIC_BINOP_COUNT; op++) {
            mimic_tensor *r = mimic_binary((mimic_binop)op, a, b);
            CHECK(r && r->ndim == 2 && r->shape[0] == 3 && r->shape[1] == 4 && r->dtype == (mimic_dtype)dt);
            if (!r)
                continue;
            for (int i = 0; i < 3; i++)
                for (int j = 0; j < 4; j++) {
                    double want = ref_binary((mimic_binop)op, av[i], bv[j]);
                    if (dt == MIMIC_F32)
                        want = (float)want;
                    CHECK(close_rel(at(r, i * 4 + j), want, dt == MIMIC_F32 ? 1e-6 : 1e-15));
                }
            mimic_tensor_free(r);
        }
        mimic_tensor_free(a);
        mimic_tensor_free(b);
    }
}

TEST(test_promotion_and_out_dtype)
{
    static const double av[] = {0.1, 0.2, 0.3};
    mimic_tensor *a = mk(MIMIC_F32, 1, (int64_t[]){3}, av), *b = mk(MIMIC_F64, 1, (int64_t[]){3}, av);
    mimic_tensor *r = mimic_binary(MIMIC_ADD, a, b);
    CHECK(r && r->dtype == MIMIC_F64);
    for (int i = 0; r && i < 3; i++)
        CHECK(at(r, i) == (double)(float)av[i] + av[i]);
    /* float32 inputs into a float64 out: computed in float32, then widened */
    mimic_tensor *o64 = mimic_empty(1, (int64_t[]){3}, MIMIC_F64);
    CHECK_OK(mimic_binary_out(o64, MIMIC_MUL, a, a));
    for (int i = 0; i < 3; i++)
        CHECK(at(o64, i) == (double)((float)av[i] * (float)av[i]));
    /* float64 into float32: rounded */
    mimic_tensor *o32 = mimic_empty(1, (int64_t[]){3}, MIMIC_F32);
    CHECK_OK(mimic_binary_out(o32, MIMIC_DIV, b, b));
    CHECK(at(o32, 0) == 1 && at(o32, 2) == 1);
    CHECK_OK(mimic_unary_out(o32, MIMIC_SQRT, b));
    CHECK(at(o32, 1) == (float)sqrt(0.2));
    /* comparison into a float out: 0/1 */
    mimic_tensor *th = mimic_scalar(0.15, MIMIC_F64);
    CHECK_OK(mimic_compare_out(o32, MIMIC_GT, b, th));
    CHECK(at(o32, 0) == 0 && at(o32, 1) == 1 && at(o32, 2) == 1);
    /* float64 into int64: truncated like a copy */
    mimic_tensor *oi = mimic_empty(1, (int64_t[]){3}, MIMIC_I64), *ten = mimic_scalar(10, MIMIC_F64);
    CHECK_OK(mimic_binary_out(oi, MIMIC_MUL, b, ten));
    CHECK(at(oi, 0) == 1 && at(oi, 2) == 3);
    mimic_tensor_free(ten);
    mimic_tensor_free(th);
    mimic_tensor_free(oi);
    mimic_tensor_free(o32);
    mimic_tensor_free(o64);
    mimic_tensor_free(r);
    mimic_tensor_free(a);
    mimic_tensor_free(b);
}

TEST(test_nan_rules)
{
    static const double av[] = {NAN, 1, NAN, -0.0, 0};
    static const double bv[] = {1, NAN, NAN, 2, -3};
    for (int dt = MIMIC_F32; dt <= MIMIC_F64; dt++) {
        mimic_tensor *a = mk((mimic_dtype)dt, 1, (int64_t[]){5}, av), *b = mk((mimic_dtype)dt, 1, (int64_t[]){5}, bv);
        mimic_tensor *mx = mimic_binary(MIMIC_MAXIMUM, a, b), *mn = mimic_binary(MIMIC_MINIMUM, a, b);
        CHECK(isnan(at(mx, 0)) && isnan(at(mx, 1)) && isnan(at(mx, 2)) && at(mx, 3) == 2 && at(mx, 4) == 0);
        CHECK(isnan(at(mn, 0)) && isnan(at(mn, 1)) && isnan(at(mn, 2)) && at(mn, 3) == 0 && at(mn, 4) == -3);
        /* broadcast scalar on either side takes the scalar loops */
        mimic_tensor *nan = mimic_scalar(NAN, (mimic_dtype)dt);
        mimic_tensor *m1 = mimic_binary(MIMIC_MAXIMUM, b, nan), *m2 = mimic_binary(MIMIC_MINIMUM, nan, b);
        for (int i = 0; i < 5; i++)
            CHECK(isnan(at(m1, i)) && isnan(at(m2, i)));
        mimic_tensor *re = mimic_unary(MIMIC_RELU, a), *sg = mimic_unary(MIMIC_SIGN, a);
        CHECK(isnan(at(re, 0)) && at(re, 1) == 1 && at(re, 3) == 0);
        CHECK(isnan(at(sg, 0)) && at(sg, 1) == 1 && at(sg, 3) == 0 && at(sg, 4) == 0);
        mimic_tensor *cl = mimic_clamp(a, 0, 0.5);
        CHECK(isnan(at(cl, 0)) && at(cl, 1) == 0.5 && at(cl, 3) == 0);
        const bool want[MIMIC_CMPOP_COUNT][5] = {
            [MIMIC_EQ] = {0, 0, 0, 0, 0}, [MIMIC_NE] = {1, 1, 1, 1, 1}, [MIMIC_LT] = {0, 0, 0, 1, 0},
            [MIMIC_LE] = {0, 0, 0, 1, 0}, [MIMIC_GT] = {0, 0, 0, 0, 1}, [MIMIC_GE] = {0, 0, 0, 0, 1}};
        for (int op = 0; op < MIMIC_CMPOP_COUNT; op++) {
            mimic_tensor *c = mimic_compare((mimic_cmpop)op, a, b);
            CHECK(c && c->dtype == MIMIC_BOOL);
            for (int i = 0; c && i < 5; i++)
                if (at(c, i) != want[op][i]) {
                    fprintf(stderr, "%s elem %d: got %g\n", mimic_cmpop_name((mimic_cmpop)op), i, at(c, i));
                    check_failures++;
                }
            mimic_tensor_free(c);
        }
        mimic_tensor *e = mimic_compare(MIMIC_EQ, a, a); /* -0 == 0, NaN != NaN */
        CHECK(at(e, 0) == 0 && at(e, 1) == 1 && at(e, 3) == 1);
        mimic_tensor *fs[] = {a, b, mx, mn, nan, m1, m2, re, sg, cl, e};
        for (size_t i = 0; i < sizeof fs / sizeof fs[0]; i++)
            mimic_tensor_free(fs[i]);
    }
}

TEST(test_zero_dim_scalars)
{
    mimic_tensor *s = mimic_scalar(2, MIMIC_F32), *t = mimic_scalar(3, MIMIC_F32);
    mimic_tensor *r = mimic_binary(MIMIC_POW, s, t);
    CHECK(r && r->ndim == 0 && at(r, 0) == 8);
    mimic_tensor *v = mimic_arange(0, 4, 1, MIMIC_F32);
    mimic_tensor *q = mimic_binary(MIMIC_SUB, s, v); /* scalar on the left */
    CHECK(q && q->ndim == 1 && q->shape[0] == 4 && at(q, 3) == -1 && at(q, 0) == 2);
    mimic_tensor *u = mimic_unary(MIMIC_NEG, s);
    CHECK(u && u->ndim == 0 && at(u, 0) == -2);
    mimic_tensor *c = mimic_compare(MIMIC_LE, v, s);
    CHECK(c && at(c, 2) == 1 && at(c, 3) == 0);
    CHECK_OK(mimic_binary_out(s, MIMIC_MUL, s, t)); /* 0-dim in place */
    CHECK(at(s, 0) == 6);
    mimic_tensor *fs[] = {s, t, r, v, q, u, c};
    for (size_t i = 0; i < sizeof fs / sizeof fs[0]; i++)
        mimic_tensor_free(fs[i]);
}

TEST(test_non_contiguous_inputs)
{
    mimic_tensor *a = arange2(4, 3, MIMIC_F64);          /* [4,3] */
    mimic_tensor *at_ = mimic_transpose(a, 0, 1);         /* [3,4], strides (1,3) */
    mimic_tensor *b = arange2(3, 8, MIMIC_F64);
    mimic_tensor *bs = mimic_slice(b, 1, 1, 8, 2);        /* [3,4], columns 1,3,5,7 */
    mimic_tensor *r = mimic_binary(MIMIC_MUL, at_, bs);
    CHECK(r && mimic_is_contiguous(r));
    for (int i = 0; r && i < 3; i++)
        for (int j = 0; j < 4; j++)
            CHECK(at(r, i * 4 + j) == (double)(j * 3 + i) * (double)(i * 8 + 2 * j + 1));
    /* a transposed float32 input against a float64 one: mixed types, strided */
    mimic_tensor *f = arange2(4, 3, MIMIC_F32);
    mimic_tensor *ft = mimic_transpose(f, 0, 1);
    mimic_tensor *m = mimic_binary(MIMIC_SUB, ft, bs);
    for (int i = 0; m && i < 3; i++)
        for (int j = 0; j < 4; j++)
            CHECK(at(m, i * 4 + j) == (double)(j * 3 + i) - (double)(i * 8 + 2 * j + 1));
    /* strided output */
    mimic_tensor *o = mimic_zeros(2, (int64_t[]){4, 3}, MIMIC_F64);
    mimic_tensor *ot = mimic_transpose(o, 0, 1);
    CHECK_OK(mimic_binary_out(ot, MIMIC_ADD, at_, bs));
    CHECK(at(o, 3 * 3 + 2) == (double)(3 * 3 + 2) + (double)(2 * 8 + 2 * 3 + 1));
    /* unary and where on a stepped slice */
    mimic_tensor *e = mimic_unary(MIMIC_SQUARE, bs);
    CHECK(e && at(e, 5) == 11.0 * 11.0);
    mimic_tensor *ten = mimic_scalar(10, MIMIC_F64);
    mimic_tensor *cond = mimic_compare(MIMIC_GT, bs, ten);
    mimic_tensor *w = mimic_where(cond, bs, at_);
    CHECK(w && at(w, 0) == 0 && at(w, 5) == 11 && at(w, 4) == 1);
    mimic_tensor *fs[] = {a, at_, b, bs, r, f, ft, m, o, ot, e, ten, cond, w};
    for (size_t i = 0; i < sizeof fs / sizeof fs[0]; i++)
        mimic_tensor_free(fs[i]);
}

TEST(test_in_place)
{
    mimic_tensor *a = arange2(3, 4, MIMIC_F32), *b = mimic_arange(10, 14, 1, MIMIC_F32);
    CHECK_OK(mimic_binary_out(a, MIMIC_ADD, a, b));
    CHECK(at(a, 0) == 10 && at(a, 11) == 11 + 13);
    CHECK_OK(mimic_binary_out(a, MIMIC_SUB, b, a)); /* out aliases the second operand */
    CHECK(at(a, 0) == 0 && at(a, 11) == -11);
    CHECK_OK(mimic_unary_out(a, MIMIC_ABS, a));
    CHECK(at(a, 11) == 11);
    CHECK_OK(mimic_clamp_out(a, a, 2, 9));
    CHECK(at(a, 0) == 2 && at(a, 5) == 5 && at(a, 11) == 9);
    /* in place with a dtype change on the other operand (chunked path) */
    mimic_tensor *d = mimic_full(1, (int64_t[]){4}, 0.5, MIMIC_F64);
    CHECK_OK(mimic_binary_out(a, MIMIC_MUL, a, d));
    CHECK(at(a, 0) == 1 && at(a, 11) == 4.5);
    /* out = a + a^T: the transposed operand overlaps out with another layout */
    mimic_tensor *s = arange2(3, 3, MIMIC_F64);
    mimic_tensor *st = mimic_transpose(s, 0, 1);
    CHECK_OK(mimic_binary_out(s, MIMIC_ADD, s, st));
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            CHECK(at(s, i * 3 + j) == (double)(i * 3 + j + j * 3 + i));
    /* shifted overlap: x[1:] = x[:-1] * 2 must read the old values */
    mimic_tensor *x = mimic_arange(0, 6, 1, MIMIC_F64);
    mimic_tensor *hi = mimic_narrow(x, 0, 1, 5), *lo = mimic_narrow(x, 0, 0, 5);
    mimic_tensor *two = mimic_scalar(2, MIMIC_F64);
    CHECK_OK(mimic_binary_out(hi, MIMIC_MUL, lo, two));
    for (int i = 1; i < 6; i++)
        CHECK(at(x, i) == 2.0 * (i - 1));
    /* a broadcast row of out itself as operand: out = out - out[0] */
    mimic_tensor *y = arange2(3, 2, MIMIC_F64);
    mimic_tensor *row = mimic_narrow(y, 0, 0, 1);
    CHECK_OK(mimic_binary_out(y, MIMIC_SUB, y, row));
    CHECK(at(y, 0) == 0 && at(y, 1) == 0 && at(y, 4) == 4 && at(y, 5) == 4);
    mimic_tensor *fs[] = {a, b, d, s, st, x, hi, lo, two, y, row};
    for (size_t i = 0; i < sizeof fs / sizeof fs[0]; i++)
        mimic_tensor_free(fs[i]);
}

TEST(test_out_errors)
{
    mimic_tensor *a = arange2(3, 4, MIMIC_F32), *o = mimic_zeros(2, (int64_t[]){3, 3}, MIMIC_F32);
    CHECK_ERR(mimic_binary_out(o, MIMIC_ADD, a, a), MIMIC_ESHAPE, "add: output has shape [3,3] but the result has shape [3,4]");
    CHECK_ERR(mimic_unary_out(o, MIMIC_EXP, a), MIMIC_ESHAPE, "exp: output has shape [3,3]");
    CHECK_ERR(mimic_compare_out(o, MIMIC_EQ, a, a), MIMIC_ESHAPE, "eq: output has shape");
    CHECK_ERR(mimic_clamp_out(o, a, 0, 1), MIMIC_ESHAPE, "clamp: output has shape");
    CHECK_ERR(mimic_binary_out(NULL, MIMIC_ADD, a, a), MIMIC_EARG, "out is NULL");
    /* an out that is a broadcast view would be written twice per element */
    mimic_tensor *r = mimic_zeros(1, (int64_t[]){4}, MIMIC_F32);
    mimic_tensor *x = mimic_expand(r, 2, (int64_t[]){3, 4});
    CHECK_ERR(mimic_binary_out(x, MIMIC_ADD, a, a), MIMIC_EARG, "broadcast view");
    mimic_tensor_free(x);
    mimic_tensor_free(r);
    mimic_tensor_free(o);
    mimic_tensor_free(a);
}

TEST(test_dtype_rules)
{
    mimic_tensor *i = mimic_arange(0, 4, 1, MIMIC_I64), *f = mimic_arange(0, 4, 1, MIMIC_F32);
    mimic_tensor *one = mimic_scalar(1, MIMIC_F32);
    mimic_tensor *bo = mimic_compare(MIMIC_GT, f, one);
    CHECK_ERR_PTR(mimic_binary(MIMIC_ADD, i, f), MIMIC_EDTYPE, "add: int64 tensors are not supported; convert with :float()");
    CHECK_ERR_PTR(mimic_binary(MIMIC_MUL, f, bo), MIMIC_EDTYPE, "mul: bool tensors are not supported");
    CHECK_ERR_PTR(mimic_unary(MIMIC_EXP, i), MIMIC_EDTYPE, "exp: int64");
    CHECK_ERR_PTR(mimic_clamp(bo, 0, 1), MIMIC_EDTYPE, "clamp: bool");
    CHECK_ERR_PTR(mimic_where(bo, i, f), MIMIC_EDTYPE, "where: int64");
    /* comparisons take any dtype */
    mimic_tensor *c1 = mimic_compare(MIMIC_EQ, i, f); /* int64 vs float32 via double */
    CHECK(c1 && at(c1, 0) == 1 && at(c1, 3) == 1);
    mimic_tensor *big = mk(MIMIC_I64, 1, (int64_t[]){1}, (double[]){0});
    ((int64_t *)mimic_data(big))[0] = (INT64_C(1) << 60) + 1;
    mimic_tensor *big2 = mk(MIMIC_I64, 1, (int64_t[]){1}, (double[]){0});
    ((int64_t *)mimic_data(big2))[0] = INT64_C(1) << 60;
    mimic_tensor *c2 = mimic_compare(MIMIC_GT, big, big2); /* int64 vs int64 stays exact */
    CHECK(c2 && at(c2, 0) == 1);
    mimic_tensor *c3 = mimic_compare(MIMIC_NE, bo, bo);
    CHECK(c3 && at(c3, 0) == 0 && at(c3, 3) == 0);
    mimic_tensor *c4 = mimic_compare(MIMIC_LT, bo, i);
    CHECK(c4 && at(c4, 0) == 0 && at(c4, 1) == 1 && at(c4, 2) == 1);
    mimic_tensor *fs[] = {i, f, one, bo, c1, big, big2, c2, c3, c4};
    for (size_t k = 0; k < sizeof fs / sizeof fs[0]; k++)
        mimic_tensor_free(fs[k]);
}

TEST(test_where_and_clamp)
{
    mimic_tensor *cf = mk(MIMIC_F32, 2, (int64_t[]){2, 1}, (double[]){0, NAN}); /* any dtype: != 0 */
    mimic_tensor *a = mimic_arange(1, 4, 1, MIMIC_F64), *b = mimic_scalar(-1, MIMIC_F32);
    mimic_tensor *w = mimic_where(cf, a, b);
    CHECK(w && w->ndim == 2 && w->shape[0] == 2 && w->shape[1] == 3 && w->dtype == MIMIC_F64);
    CHECK(at(w, 0) == -1 && at(w, 2) == -1 && at(w, 3) == 1 && at(w, 5) == 3);
    mimic_tensor *cb = mk(MIMIC_BOOL, 1, (int64_t[]){3}, (double[]){1, 0, 1});
    mimic_tensor *af = mimic_arange(1, 4, 1, MIMIC_F32), *z = mimic_scalar(0, MIMIC_F32);
    mimic_tensor *w2 = mimic_where(cb, af, z); /* the all-float32 scalar-b fast loop */
    CHECK(w2 && w2->dtype == MIMIC_F32 && at(w2, 0) == 1 && at(w2, 1) == 0 && at(w2, 2) == 3);
    mimic_tensor *bad = mimic_zeros(1, (int64_t[]){2}, MIMIC_F32);
    CHECK_ERR_PTR(mimic_where(cb, af, bad), MIMIC_ESHAPE, "where: shapes [3] and [2] do not broadcast");
    mimic_tensor *c = mimic_clamp(a, -INFINITY, 2);
    CHECK(c && at(c, 0) == 1 && at(c, 2) == 2);
    mimic_tensor *c2 = mimic_clamp(af, 2.5, INFINITY);
    CHECK(c2 && c2->dtype == MIMIC_F32 && at(c2, 0) == 2.5 && at(c2, 2) == 3);
    mimic_tensor *fs[] = {cf, a, b, w, cb, af, z, w2, bad, c, c2};
    for (size_t i = 0; i < sizeof fs / sizeof fs[0]; i++)
        mimic_tensor_free(fs[i]);
}

/* > 100k elements through the threaded iterator, non-contiguous and
 * broadcast, against a serial loop; and the same bits for 1 and 2 threads. */
TEST(test_large_threaded)
{
    int old = mimic_get_num_threads();
    const int64_t R = 600, C = 700;
    mimic_tensor *base = arange2(C, R, MIMIC_F32);
    mimic_tensor *a = mimic_transpose(base, 0, 1); /* [600,700], non-contiguous */
    mimic_tensor *row = mimic_linspace(-1, 1, C, MIMIC_F32);
    mimic_tensor *r2 = NULL, *r1 = NULL, *e2 = NULL, *e1 = NULL;
    mimic_set_num_threads(2);
    r2 = mimic_binary(MIMIC_MUL, a, row);
    e2 = mimic_unary(MIMIC_TANH, r2);
    mimic_set_num_threads(1);
    r1 = mimic_binary(MIMIC_MUL, a, row);
    e1 = mimic_unary(MIMIC_TANH, r1);
    mimic_set_num_threads(old);
    CHECK(r1 && r2 && e1 && e2);
    int bad = 0;
    const float *rw = mimic_data(row);
    for (int64_t i = 0; i < R && r2; i++)
        for (int64_t j = 0; j < C; j++) {
            float want = (float)(j * R + i) * rw[j];
            float got = ((float *)mimic_data(r2))[i * C + j];
            bad += got != want || got != ((float *)mimic_data(r1))[i * C + j];
            bad += ((float *)mimic_data(e2))[i * C + j] != tanhf(want);
            bad += ((float *)mimic_data(e1))[i * C + j] != ((float *)mimic_data(e2))[i * C + j];
        }
    CHECK(bad == 0);
    /* a long contiguous row (split into column blocks) with a dtype change */
    mimic_tensor *big = mimic_linspace(0, 1, 300001, MIMIC_F64);
    mimic_tensor *out = mimic_empty(1, (int64_t[]){300001}, MIMIC_F32);
    CHECK_OK(mimic_unary_out(out, MIMIC_SQRT, big));
    bad = 0;
    for (int64_t i = 0; i < 300001; i++)
        bad += ((float *)mimic_data(out))[i] != (float)sqrt(((double *)mimic_data(big))[i]);
    CHECK(bad == 0);
    mimic_tensor *fs[] = {base, a, row, r1, r2, e1, e2, big, out};
    for (size_t i = 0; i < sizeof fs / sizeof fs[0]; i++)
        mimic_tensor_free(fs[i]);
}

TEST(test_out_of_memory)
{
    mimic_tensor *a = arange2(3, 3, MIMIC_F64);
    mimic_tensor *t = mimic_transpose(a, 0, 1);
    int failures = 0;
    for (int budget = 0; budget < 8; budget++) {
        use_budget_allocator(budget);
        mimic_tensor *r = mimic_binary(MIMIC_ADD, a, t);
        int rc = mimic_binary_out(a, MIMIC_ADD, a, t); /* needs a temporary copy of t */
        mimic_set_allocator(NULL);
        if (!r || rc) {
            failures++;
            CHECK(mimic_errcode() == MIMIC_ENOMEM);
        }
        mimic_tensor_free(r);
    }
    CHECK(failures >= 2);
    mimic_tensor_free(t);
    mimic_tensor_free(a);
}

int main(void)
{
    RUN(test_names);
    RUN(test_broadcast_shape);
    RUN(test_unary_values);
    RUN(test_sigmoid_stable);
    RUN(test_binary_values_broadcast);
    RUN(test_promotion_and_out_dtype);
    RUN(test_nan_rules);
    RUN(test_zero_dim_scalars);
    RUN(test_non_contiguous_inputs);
    RUN(test_in_place);
    RUN(test_out_errors);
    RUN(test_dtype_rules);
    RUN(test_where_and_clamp);
    RUN(test_large_threaded);
    RUN(test_out_of_memory);
    return CHECK_DONE();
}
