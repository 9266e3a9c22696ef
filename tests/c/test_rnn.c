/* Recurrent layers (core/ops/rnn.c): one step of each cell against its
 * equations evaluated here by hand, identical bits on 1 and 2 threads
 * (forward and every gradient), float32 against float64, shape errors, the
 * refusal of create_graph, and allocation failures anywhere in a forward and
 * backward. Gradients against finite differences (2 layers, initial states,
 * no biases) are in test_autograd.c (gradcases_rnn.h); PyTorch values in
 * tests/lua/test_rnn.lua. */
#include "check.h"
#include "mimic/autograd.h"
#include "mimic/ops.h"
#include "mimic/rng.h"

#include "testutil.h"

#include <math.h>
#include <string.h>

static mimic_rng rng;

static mimic_tensor *randu(mimic_dtype dt, int ndim, const int64_t *shape)
{
    mimic_tensor *t = mimic_empty(ndim, shape, dt);
    mimic_rng_uniform(&rng, t, -1, 1);
    return t;
}
#define RU(dt, ...) randu(dt, SHAPE_OF(__VA_ARGS__))

static double sig(double a) { return 1 / (1 + exp(-a)); }
/* Element i of a contiguous float64 tensor. */
static double v(const mimic_tensor *t, int64_t i) { return ((const double *)mimic_data(t))[i]; }

/* Two steps, batch 1, one input and one hidden unit, all by hand. */
TEST(test_two_steps_by_hand)
{
    mimic_tensor *x = mk(MIMIC_F64, SHAPE_OF(2, 1, 1), (double[]){0.5, -1.0});
    mimic_tensor *h0 = mk(MIMIC_F64, SHAPE_OF(1, 1), (double[]){0.3});
    mimic_tensor *c0 = mk(MIMIC_F64, SHAPE_OF(1, 1), (double[]){-0.2});
    double wi[4] = {0.7, -0.4, 0.9, 0.2}, wh[4] = {0.1, 0.5, -0.6, 0.8}, bi[4] = {0.05, 0.1, -0.1, 0.2},
           bh[4] = {-0.3, 0.02, 0.4, 0.1};
    /* LSTM: i f g o */
    mimic_tensor *wih = mk(MIMIC_F64, SHAPE_OF(4, 1), wi), *whh = mk(MIMIC_F64, SHAPE_OF(4, 1), wh);
    mimic_tensor *bih = mk(MIMIC_F64, SHAPE_OF(4), bi), *bhh = mk(MIMIC_F64, SHAPE_OF(4), bh);
    mimic_tensor *y = mimic_rnn_layer(MIMIC_LSTM, x, h0, c0, wih, whh, bih, bhh);
    CHECK(SHAPE_IS(y, 2, 2, 1, 1));
    double h = 0.3, c = -0.2, xs[2] = {0.5, -1.0};
    for (int t = 0; t < 2 && y; t++) {
        double a[4];
        for (int k = 0; k < 4; k++)
            a[k] = wi[k] * xs[t] + bi[k] + wh[k] * h + bh[k];
        c = sig(a[1]) * c + sig(a[0]) * tanh(a[2]);
        h = sig(a[3]) * tanh(c);
        CHECK_NEAR(v(y, t), h, 1e-15);
        CHECK_NEAR(v(y, 2 + t), c, 1e-15);
    }
    mimic_tensor_free(y);
    /* GRU: r z n, the first three of each array */
    mimic_tensor *wih3 = mimic_narrow(wih, 0, 0, 3), *whh3 = mimic_narrow(whh, 0, 0, 3);
    mimic_tensor *bih3 = mimic_narrow(bih, 0, 0, 3), *bhh3 = mimic_narrow(bhh, 0, 0, 3);
    y = mimic_rnn_layer(MIMIC_GRU, x, h0, NULL, wih3, whh3, bih3, bhh3);
    CHECK(SHAPE_IS(y, 2, 1, 1));
    h = 0.3;
    for (int t = 0; t < 2 && y; t++) {
        double r = sig(wi[0] * xs[t] + bi[0] + wh[0] * h + bh[0]);
        double z = sig(wi[1] * xs[t] + bi[1] + wh[1] * h + bh[1]);
        double n = tanh(wi[2] * xs[t] + bi[2] + r * (wh[2] * h + bh[2]));
        h = (1 - z) * n + z * h;
        CHECK_NEAR(v(y, t), h, 1e-15);
    }
    mimic_tensor_free(y);
    /* RNN tanh and relu: the first entry */
    mimic_tensor *wih1 = mimic_narrow(wih, 0, 0, 1), *whh1 = mimic_narrow(whh, 0, 0, 1);
    for (int relu = 0; relu < 2; relu++) {
        y = mimic_rnn_layer(relu ? MIMIC_RNN_RELU : MIMIC_RNN_TANH, x, h0, NULL, wih1, whh1, NULL, NULL);
        h = 0.3;
        for (int t = 0; t < 2 && y; t++) {
            double a = wi[0] * xs[t] + wh[0] * h;
            h = relu ? (a > 0 ? a : 0) : tanh(a);
            CHECK_NEAR(v(y, t), h, 1e-15);
        }
        CHECK(y != NULL);
        mimic_tensor_free(y);
    }
    mimic_tensor *all[] = {x, h0, c0, wih, whh, bih, bhh, wih3, whh3, bih3, bhh3, wih1, whh1};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        mimic_tensor_free(all[i]);
}

/* Forward and every gradient of one layer, B = 37 rows (an odd split). */
static void run_layer(mimic_rnn_mode m, mimic_dtype dt, mimic_tensor *const *in, mimic_tensor **res)
{
    for (int k = 0; k < 7; k++)
        if (in[k])
            mimic_zero_grad(in[k]);
    mimic_tensor *y = mimic_rnn_layer(m, in[0], in[1], m == MIMIC_LSTM ? in[2] : NULL, in[3], in[4], in[5], in[6]);
    mimic_tensor *y2 = y ? mimic_unary(MIMIC_SIN, y) : NULL;
    mimic_tensor *s = y2 ? mimic_reduce(MIMIC_SUM, y2, MIMIC_ALL_DIMS, false, 0) : NULL;
    CHECK(s && mimic_backward(s, NULL, false) == MIMIC_OK);
    res[0] = y ? mimic_to_dtype(y, dt) : NULL;
    for (int k = 0; k < 7; k++)
        res[1 + k] = in[k] && mimic_grad(in[k]) ? mimic_clone(mimic_grad(in[k])) : NULL;
    mimic_tensor_free(s);
    mimic_tensor_free(y2);
    mimic_tensor_free(y);
}

static mimic_tensor **make_inputs(mimic_rnn_mode m, mimic_dtype dt, mimic_tensor **in)
{
    int64_t T = 9, B = 37, I = 5, H = 24, G = m == MIMIC_LSTM ? 4 : m == MIMIC_GRU ? 3 : 1;
    in[0] = RU(dt, T, B, I), in[1] = RU(dt, B, H), in[2] = RU(dt, B, H);
    in[3] = RU(dt, G * H, I), in[4] = RU(dt, G * H, H), in[5] = RU(dt, G * H), in[6] = RU(dt, G * H);
    for (int k = 0; k < 7; k++)
        mimic_set_requires_grad(in[k], true);
    return in;
}

TEST(test_one_and_two_threads_give_the_same_bits)
{
    int prev = mimic_get_num_threads();
    for (int m = 0; m < MIMIC_RNN_MODE_COUNT; m++) {
        mimic_tensor *in[7], *r1[8] = {0}, *r2[8] = {0};
        make_inputs((mimic_rnn_mode)m, MIMIC_F32, in);
        mimic_set_num_threads(1);
        run_layer((mimic_rnn_mode)m, MIMIC_F32, in, r1);
        mimic_set_num_threads(2);
        run_layer((mimic_rnn_mode)m, MIMIC_F32, in, r2);
        for (int k = 0; k < 8; k++) {
            bool present = k == 3 ? m == MIMIC_LSTM : true; /* c0's gradient: LSTM only */
            CHECK(!present || (r1[k] && r2[k]));
            if (r1[k] && r2[k])
                CHECK(memcmp(mimic_data(r1[k]), mimic_data(r2[k]), (size_t)mimic_numel(r1[k]) * 4) == 0);
            mimic_tensor_free(r1[k]);
            mimic_tensor_free(r2[k]);
        }
        for (int k = 0; k < 7; k++)
            mimic_tensor_free(in[k]);
    }
    mimic_set_num_threads(prev);
}

TEST(test_float32_agrees_with_float64)
{
    for (int m = 0; m < MIMIC_RNN_MODE_COUNT; m++) {
        mimic_tensor *in[7], *in32[7], *r64[8] = {0}, *r32[8] = {0};
        make_inputs((mimic_rnn_mode)m, MIMIC_F64, in);
        for (int k = 0; k < 7; k++) {
            in32[k] = mimic_to_dtype(in[k], MIMIC_F32);
            mimic_set_requires_grad(in32[k], true);
        }
        run_layer((mimic_rnn_mode)m, MIMIC_F64, in, r64);
        run_layer((mimic_rnn_mode)m, MIMIC_F64, in32, r32);
        for (int k = 0; k < 8; k++) {
            if (r64[k] && r32[k]) {
                CHECK(r32[k]->dtype == (k == 0 ? MIMIC_F64 : MIMIC_F32)); /* gradients keep the input's dtype */
                mimic_tensor *a = mimic_to_dtype(r32[k], MIMIC_F64);
                double worst = 0;
                for (int64_t i = 0; i < mimic_numel(a); i++) {
                    double d = fabs(v(a, i) - v(r64[k], i)) / (1 + fabs(v(r64[k], i)));
                    worst = d > worst ? d : worst;
                }
                CHECK(worst < 1e-4);
                mimic_tensor_free(a);
            }
            mimic_tensor_free(r64[k]);
            mimic_tensor_free(r32[k]);
        }
        for (int k = 0; k < 7; k++) {
            mimic_tensor_free(in[k]);
            mimic_tensor_free(in32[k]);
        }
    }
}

TEST(test_errors)
{
    mimic_tensor *x = mimic_zeros(SHAPE_OF(4, 2, 3), MIMIC_F32), *w = mimic_zeros(SHAPE_OF(16, 3), MIMIC_F32);
    mimic_tensor *u = mimic_zeros(SHAPE_OF(16, 4), MIMIC_F32), *b = mimic_zeros(SHAPE_OF(12), MIMIC_F32);
    mimic_tensor *h = mimic_zeros(SHAPE_OF(3, 4), MIMIC_F32), *x2 = mimic_zeros(SHAPE_OF(8, 3), MIMIC_F32);
    mimic_tensor *xi = mimic_zeros(SHAPE_OF(4, 2, 3), MIMIC_I64);
    CHECK_ERR_PTR(mimic_rnn_layer(MIMIC_LSTM, x2, NULL, NULL, w, u, NULL, NULL), MIMIC_ESHAPE, "[T, B, features]");
    CHECK_ERR_PTR(mimic_rnn_layer(MIMIC_GRU, x, NULL, NULL, w, u, NULL, NULL), MIMIC_ESHAPE,
                  "w_hh of shape [16,4] must be [12, 4]");
    CHECK_ERR_PTR(mimic_rnn_layer(MIMIC_LSTM, x, NULL, NULL, w, u, b, NULL), MIMIC_ESHAPE,
                  "b_ih of shape [12] must be [16]");
    CHECK_ERR_PTR(mimic_rnn_layer(MIMIC_LSTM, x, h, NULL, w, u, NULL, NULL), MIMIC_ESHAPE,
                  "h0 of shape [3,4] must be [2, 4]");
    mimic_tensor *w1 = mimic_zeros(SHAPE_OF(4, 3), MIMIC_F32), *u1 = mimic_zeros(SHAPE_OF(4, 4), MIMIC_F32);
    mimic_tensor *c1 = mimic_zeros(SHAPE_OF(2, 4), MIMIC_F32);
    CHECK_ERR_PTR(mimic_rnn_layer(MIMIC_RNN_TANH, x, NULL, c1, w1, u1, NULL, NULL), MIMIC_EARG, "LSTM only");
    mimic_tensor_free(w1);
    mimic_tensor_free(u1);
    mimic_tensor_free(c1);
    CHECK_ERR_PTR(mimic_rnn_layer(MIMIC_LSTM, xi, NULL, NULL, w, u, NULL, NULL), MIMIC_EDTYPE, "");
    CHECK_ERR_PTR(mimic_rnn_layer(MIMIC_RNN_MODE_COUNT, x, NULL, NULL, w, u, NULL, NULL), MIMIC_EARG, "mode");
    CHECK_ERR_PTR(mimic_rnn_layer(MIMIC_LSTM, x, NULL, NULL, NULL, u, NULL, NULL), MIMIC_EARG, "required");
    /* second derivatives are refused rather than silently detached */
    mimic_set_requires_grad(w, true);
    mimic_tensor *y = mimic_rnn_layer(MIMIC_LSTM, x, NULL, NULL, w, u, NULL, NULL);
    mimic_tensor *s = y ? mimic_reduce(MIMIC_SUM, y, MIMIC_ALL_DIMS, false, 0) : NULL;
    CHECK(s && strcmp(mimic_grad_fn_name(y), "lstm") == 0);
    CHECK_ERR(mimic_backward(s, NULL, true), MIMIC_ESTATE, "second derivatives");
    mimic_tensor *all[] = {s, y, x, w, u, b, h, x2, xi};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        mimic_tensor_free(all[i]);
}

/* Every allocation failing in turn through a 2-layer GRU/LSTM forward and
 * backward: an error or a success, never a crash or a leak (ASan). */
TEST(test_out_of_memory)
{
    for (int m = MIMIC_LSTM; m <= MIMIC_GRU; m++) {
        mimic_tensor *in[7];
        make_inputs((mimic_rnn_mode)m, MIMIC_F64, in);
        int successes = 0, failures = 0, n = 80;
        for (int budget = 0; budget < n; budget++) {
            use_budget_allocator(budget);
            mimic_tensor *y = mimic_rnn_layer((mimic_rnn_mode)m, in[0], in[1], m == MIMIC_LSTM ? in[2] : NULL,
                                              in[3], in[4], in[5], in[6]);
            mimic_tensor *s = y ? mimic_reduce(MIMIC_SUM, y, MIMIC_ALL_DIMS, false, 0) : NULL;
            bool ok = s && mimic_backward(s, NULL, false) == MIMIC_OK;
            mimic_set_allocator(NULL);
            oom_tally(ok, &successes, &failures);
            mimic_tensor_free(s);
            mimic_tensor_free(y);
        }
        CHECK(successes > 0 && failures > 5 && successes + failures == n);
        for (int k = 0; k < 7; k++)
            mimic_tensor_free(in[k]);
    }
}

int main(void)
{
    mimic_rng_init(&rng, 7);
    RUN(test_two_steps_by_hand);
    RUN(test_one_and_two_threads_give_the_same_bits);
    RUN(test_float32_agrees_with_float64);
    RUN(test_errors);
    RUN(test_out_of_memory);
    return CHECK_DONE();
}
