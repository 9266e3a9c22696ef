/* The plan's element kernels against independent references: tanh of the
 * float32 plan (its own vectorised form, core/nn/plan.c) against libm's tanh
 * in double over a dense sweep of the floats of both signs, within 1 ulp of
 * the float32 result; its special values; and the float64 plan, which must
 * stay libm's tanh bit for bit. All through the public plan API: a model
 * that is one tanh layer over W features. */
#include "check.h"
#include "testutil.h"

#include "mimic/model.h"

#include <float.h>
#include <stdint.h>
#include <stdlib.h>

#define W 256        /* features per row: rows of W values per plan call */
#define ROWS 512

static mimic_plan *tanh_plan(mimic_dtype dt)
{
    mimic_model *m = mimic_model_new(dt, W);
    CHECK(m != NULL);
    CHECK_OK(mimic_model_add_activation(m, MIMIC_ACT_TANH, 0, 0));
    mimic_plan *p = mimic_plan_new(m, 0);
    CHECK(p != NULL);
    mimic_model_free(m);
    return p;
}

static float from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* |y - tanh(x)| in units of the float spacing at the correctly rounded
 * result (the smallest subnormal at 0). */
static double ulp_error(float x, float y)
{
    double ref = tanh((double)x);
    float r = fabsf((float)ref);
    double ulp = r == 0 ? (double)FLT_TRUE_MIN : (double)(nextafterf(r, INFINITY) - r);
    if (r == 1.0f) /* the spacing below 1 is half the one above */
        ulp = (double)(1.0f - nextafterf(1.0f, 0.0f));
    return fabs((double)y - ref) / ulp;
}

typedef struct sweep {
    mimic_plan *p;
    float *x, *y;
    int64_t used;
    double worst;
    float worst_x;
    int64_t count;
} sweep;

static void flush(sweep *s)
{
    if (!s->used)
        return;
    int64_t rows = (s->used + W - 1) / W;
    for (int64_t k = s->used; k < rows * W; k++)
        s->x[k] = 0;
    CHECK_OK(mimic_plan_run(s->p, s->x, rows, s->y));
    for (int64_t k = 0; k < s->used; k++) {
        double e = ulp_error(s->x[k], s->y[k]);
        if (!(e <= s->worst)) {
            s->worst = e;
            s->worst_x = s->x[k];
        }
    }
    s->count += s->used;
    s->used = 0;
}

static void add(sweep *s, float x)
{
    s->x[s->used++] = x;
    if (s->used == (int64_t)ROWS * W)
        flush(s);
}

/* Every 61st float of each sign, every float in the ranges where the two
 * forms meet (|x| near 0.125) and where the result reaches 1.0f (near 9),
 * and the extremes (subnormals, FLT_MAX). */
TEST(tanh_float32_sweep)
{
    sweep s = {tanh_plan(MIMIC_F32), malloc(sizeof(float) * ROWS * W), malloc(sizeof(float) * ROWS * W), 0, 0, 0, 0};
    for (uint32_t u = 0; u < 0x7f800000u; u += 61) {
        add(&s, from_bits(u));
        add(&s, -from_bits(u));
    }
    for (float x = 0.12f; x <= 0.13f; x = nextafterf(x, 1))
        add(&s, x), add(&s, -x);
    for (float x = 8.9f; x <= 9.1f; x = nextafterf(x, 10))
        add(&s, x);
    const float extremes[] = {FLT_TRUE_MIN, 2 * FLT_TRUE_MIN, FLT_MIN, nextafterf(FLT_MIN, 0), 1e-30f, 0.125f,
                              nextafterf(0.125f, 0), 10.0f, nextafterf(10.0f, 0), 88.0f, FLT_MAX};
    for (size_t i = 0; i < sizeof extremes / sizeof extremes[0]; i++)
        add(&s, extremes[i]), add(&s, -extremes[i]);
    flush(&s);
    if (!(s.worst <= 1.0)) {
        fprintf(stderr, "  tanh float32: %.3f ulp at x = %a\n", s.worst, (double)s.worst_x);
        check_failures++;
    }
    printf("# tanh float32: max error %.3f ulp (at x = %a) over %lld values\n", s.worst, (double)s.worst_x,
           (long long)s.count);
    CHECK(s.count > 70000000);
    mimic_plan_free(s.p);
    free(s.x);
    free(s.y);
}

/* Signs of zero, saturation, infinities, NaN. */
TEST(tanh_float32_special)
{
    mimic_plan *p = tanh_plan(MIMIC_F32);
    float x[W] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, -NAN, FLT_MAX, -FLT_MAX, 20.0f, -20.0f, FLT_TRUE_MIN,
                  -FLT_TRUE_MIN};
    float y[W];
    CHECK_OK(mimic_plan_run(p, x, 1, y));
    CHECK(y[0] == 0 && !signbit(y[0]));
    CHECK(y[1] == 0 && signbit(y[1]));
    CHECK(y[2] == 1.0f && y[3] == -1.0f);
    CHECK(isnan(y[4]) && isnan(y[5]));
    CHECK(y[6] == 1.0f && y[7] == -1.0f && y[8] == 1.0f && y[9] == -1.0f);
    CHECK(y[10] == FLT_TRUE_MIN && y[11] == -FLT_TRUE_MIN);
    /* odd: tanh(-x) = -tanh(x) exactly, on an irregular grid */
    for (int k = 0; k < W / 2; k++)
        x[k] = 0.37f * (float)k * (float)k / 97.0f, x[W / 2 + k] = -x[k];
    CHECK_OK(mimic_plan_run(p, x, 1, y));
    int odd = 1;
    for (int k = 0; k < W / 2; k++)
        odd &= y[W / 2 + k] == -y[k];
    CHECK(odd);
    mimic_plan_free(p);
}

/* The float64 plan keeps libm's tanh, bit for bit. */
TEST(tanh_float64_is_libm)
{
    mimic_plan *p = tanh_plan(MIMIC_F64);
    double x[W], y[W];
    int same = 1;
    for (int r = 0; r < 50; r++) {
        for (int k = 0; k < W; k++)
            x[k] = (k - W / 2) * 0.073 * (1 + r) + 1e-3 * r;
        CHECK_OK(mimic_plan_run(p, x, 1, y));
        for (int k = 0; k < W; k++)
            same &= y[k] == tanh(x[k]);
    }
    CHECK(same);
    mimic_plan_free(p);
}

int main(void)
{
    use_counting_allocator();
    mimic_set_num_threads(2);
    RUN(tanh_float32_sweep);
    RUN(tanh_float32_special);
    RUN(tanh_float64_is_libm);
    return CHECK_DONE();
}
