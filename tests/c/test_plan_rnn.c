/* Recurrent, transposed-conv and linear-upsampling records of the inference
 * plan: each against the autograd ops of the training path (mimic_rnn_layer,
 * mimic_conv_transpose, mimic_upsample, themselves checked against PyTorch
 * fixtures), float32 and float64, every cell type, multi-layer stacks with
 * and without biases, last_step, convT stride/padding/output_padding/
 * dilation/groups in 1-3 D, bilinear/trilinear with and without
 * align_corners; batch sizes around the chunk; no allocation in
 * mimic_plan_run; deterministic mode bit-identical across batch sizes and
 * threads; the recurrent workspace; builder errors; model-file round trip
 * and one hostile edit per new validation path; allocation failures
 * anywhere in load, convert and compile. */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wunused-function" /* modelfile_edit.h helpers this suite does not use */
#include "check.h"

#include "../fuzz/modelfile_edit.h" /* before testutil.h: its model-file edit helpers */
#include "testutil.h"
#include "mimic/model.h"
#include "mimic/modelfile.h"
#include "mimic/ops.h"

#include <stdlib.h>


static mimic_rng rng;
static char dir[256], pbase[300], pedit[300];

static mimic_tensor *rand_t(int nd, const int64_t *shape, mimic_dtype dt, double lo, double hi)
{
    mimic_tensor *t = mimic_empty(nd, shape, dt);
    mimic_rng_uniform(&rng, t, lo, hi);
    return t;
}

/* max |a - b| / max(|b|, 1e-30) over n elements of two arrays of dtype dt. */
static double rel_err(mimic_dtype dt, const void *a, const void *b, int64_t n)
{
    double d = 0, s = 0;
    for (int64_t i = 0; i < n; i++) {
        double x = dt == MIMIC_F32 ? ((const float *)a)[i] : ((const double *)a)[i];
        double y = dt == MIMIC_F32 ? ((const float *)b)[i] : ((const double *)b)[i];
        d = fmax(d, fabs(x - y));
        s = fmax(s, fabs(y));
        if (x != x)
            return INFINITY;
    }
    return d / fmax(s, 1e-30);
}

static double tol(mimic_dtype dt) { return dt == MIMIC_F32 ? 2e-6 : 1e-13; }

static int gates(int cell) { return cell == MIMIC_CELL_LSTM ? 4 : cell == MIMIC_CELL_GRU ? 3 : 1; }

/* Runs plan p (chunk-independent check: n rows at once) and compares with ref [n, nout]. */
static void check_plan(const mimic_model *m, const mimic_tensor *xrows, const mimic_tensor *ref, const char *what)
{
    mimic_dtype dt = mimic_model_dtype(m);
    int64_t n = xrows->shape[0], nout = mimic_model_nout(m);
    for (int chunk = 0; chunk <= 2; chunk += 2)
        for (int det = 0; det < 2; det++) {
            mimic_plan *p = mimic_plan_new(m, chunk);
            CHECK_PTR(p);
            if (!p)
                return;
            mimic_plan_set_deterministic(p, det);
            mimic_tensor *y = mimic_empty(2, (int64_t[]){n, nout}, dt);
            CHECK_OK(mimic_plan_run(p, mimic_data(xrows), n, mimic_data(y)));
            double e = rel_err(dt, mimic_data(y), mimic_data(ref), n * nout);
            if (!(e <= tol(dt))) {
                fprintf(stderr, "%s (%s, chunk %d, det %d, n %lld): rel err %g\n", what, mimic_dtype_name(dt), chunk,
                        det, (long long)n, e);
                check_failures++;
            }
            mimic_tensor_free(y);
            mimic_plan_free(p);
        }
}

/* An L-layer stack of `cell` (H hidden, I inputs, T steps), optionally with
 * a last_step record, against mimic_rnn_layer per layer. */
static void check_rnn(mimic_dtype dt, int cell, int L, bool bias, bool last, int64_t n)
{
    const int64_t T = 5, I = 3, H = 4, GH = gates(cell) * H;
    mimic_model *m = mimic_model_new(dt, T * I);
    mimic_tensor *w[8][4] = {{NULL}};
    for (int l = 0; l < L; l++) {
        int64_t in = l ? H : I;
        w[l][0] = rand_t(2, (int64_t[]){GH, in}, dt, -0.6, 0.6);
        w[l][1] = rand_t(2, (int64_t[]){GH, H}, dt, -0.6, 0.6);
        if (bias) {
            w[l][2] = rand_t(1, &GH, dt, -0.3, 0.3);
            w[l][3] = rand_t(1, &GH, dt, -0.3, 0.3);
        }
        mimic_recurrent r = {.cell = cell, .seq_len = T, .input_size = in, .hidden_size = H};
        CHECK_OK(mimic_model_add_recurrent(m, &r, mimic_data(w[l][0]), mimic_data(w[l][1]),
                                           bias ? mimic_data(w[l][2]) : NULL, bias ? mimic_data(w[l][3]) : NULL));
    }
    if (last)
        CHECK_OK(mimic_model_add_last_step(m, T));
    CHECK(mimic_model_nout(m) == (last ? H : T * H));
    /* the reference, time first: x [n, T, I] -> [T, n, I] */
    mimic_tensor *xr = rand_t(3, (int64_t[]){n, T, I}, dt, -2, 2);
    mimic_tensor *xt = mimic_transpose(xr, 0, 1), *cur = mimic_contiguous(xt);
    mimic_tensor_free(xt);
    for (int l = 0; l < L; l++) {
        mimic_tensor *y = mimic_rnn_layer((mimic_rnn_mode)cell, cur, NULL, NULL, w[l][0], w[l][1], w[l][2], w[l][3]);
        CHECK_PTR(y);
        mimic_tensor_free(cur);
        if (cell == MIMIC_CELL_LSTM) { /* [2, T, n, H]: the hidden states */
            mimic_tensor *h = mimic_select(y, 0, 0);
            cur = mimic_contiguous(h);
            mimic_tensor_free(h);
            mimic_tensor_free(y);
        } else {
            cur = y;
        }
    }
    mimic_tensor *ref;
    if (last) {
        mimic_tensor *s = mimic_select(cur, 0, T - 1);
        ref = mimic_contiguous(s);
        mimic_tensor_free(s);
    } else {
        mimic_tensor *s = mimic_transpose(cur, 0, 1);
        mimic_tensor *c = mimic_contiguous(s);
        ref = mimic_reshape(c, 2, (int64_t[]){n, T * H});
        mimic_tensor_free(s);
        mimic_tensor_free(c);
    }
    mimic_tensor *xrows = mimic_reshape(xr, 2, (int64_t[]){n, T * I});
    char what[96];
    snprintf(what, sizeof what, "%s x%d%s%s", mimic_cell_name((mimic_cell)cell), L, bias ? "" : " nobias",
             last ? " last" : "");
    check_plan(m, xrows, ref, what);
    mimic_tensor_free(xrows), mimic_tensor_free(ref), mimic_tensor_free(cur), mimic_tensor_free(xr);
    for (int l = 0; l < L; l++)
        for (int k = 0; k < 4; k++)
            mimic_tensor_free(w[l][k]);
    mimic_model_free(m);
}

TEST(recurrent_matches_ops)
{
    for (int d = 0; d < 2; d++)
        for (int cell = 0; cell < MIMIC_CELL_COUNT; cell++) {
            mimic_dtype dt = d ? MIMIC_F64 : MIMIC_F32;
            check_rnn(dt, cell, 1, true, false, 3);
            check_rnn(dt, cell, 2, true, true, 7);
            check_rnn(dt, cell, 3, false, true, 1);
            check_rnn(dt, cell, 2, false, false, 4);
        }
}

/* A transposed conv record against mimic_conv_transpose on n samples. */
static void check_convt(mimic_dtype dt, const mimic_spatial *g, bool bias, int64_t n)
{
    int nd = g->ndim;
    int64_t kv = 1, xs[5] = {n, g->in_channels}, ws[5] = {g->in_channels, g->out_channels / g->groups};
    for (int d = 0; d < nd; d++)
        kv *= g->kernel[d], xs[2 + d] = g->size[d], ws[2 + d] = g->kernel[d];
    mimic_tensor *w = rand_t(nd + 2, ws, dt, -0.5, 0.5), *b = bias ? rand_t(1, &g->out_channels, dt, -0.2, 0.2) : NULL;
    mimic_tensor *x = rand_t(nd + 2, xs, dt, -1, 1);
    mimic_conv_opts o = {.groups = g->groups};
    for (int d = 0; d < nd; d++)
        o.stride[d] = g->stride[d], o.padding[d] = g->padding[d], o.dilation[d] = g->dilation[d];
    mimic_tensor *ref = mimic_conv_transpose(x, w, b, &o, g->output_padding);
    CHECK_PTR(ref);
    int64_t nin = mimic_numel(x) / n;
    mimic_model *m = mimic_model_new(dt, nin);
    CHECK_OK(mimic_model_add_conv_transpose(m, g, mimic_data(w), b ? mimic_data(b) : NULL));
    CHECK(ref && mimic_model_nout(m) == mimic_numel(ref) / n);
    mimic_layer_info li;
    CHECK_OK(mimic_model_layer(m, 0, &li));
    CHECK(strncmp(li.type, "conv_transpose", 14) == 0 && li.type[14] == '0' + nd && li.spatial &&
          li.weight_rows[0] == g->in_channels && li.weight_cols[0] == g->out_channels / g->groups * kv);
    mimic_tensor *xrows = mimic_reshape(x, 2, (int64_t[]){n, nin});
    mimic_tensor *rrows = ref ? mimic_reshape(ref, 2, (int64_t[]){n, mimic_numel(ref) / n}) : NULL;
    if (rrows)
        check_plan(m, xrows, rrows, "conv_transpose");
    mimic_tensor_free(xrows), mimic_tensor_free(rrows), mimic_tensor_free(ref);
    mimic_tensor_free(x), mimic_tensor_free(w), mimic_tensor_free(b);
    mimic_model_free(m);
}

TEST(conv_transpose_matches_op)
{
    for (int d = 0; d < 2; d++) {
        mimic_dtype dt = d ? MIMIC_F64 : MIMIC_F32;
        check_convt(dt, &(mimic_spatial){.ndim = 1, .in_channels = 3, .out_channels = 4, .groups = 1, .size = {7},
                                         .kernel = {3}, .stride = {2}, .padding = {1}, .dilation = {1},
                                         .output_padding = {1}}, true, 3);
        check_convt(dt, &(mimic_spatial){.ndim = 1, .in_channels = 4, .out_channels = 2, .groups = 2, .size = {5},
                                         .kernel = {4}, .stride = {1}, .padding = {0}, .dilation = {3}}, false, 1);
        check_convt(dt, &(mimic_spatial){.ndim = 2, .in_channels = 4, .out_channels = 6, .groups = 2, .size = {5, 6},
                                         .kernel = {3, 2}, .stride = {2, 1}, .padding = {1, 0}, .dilation = {1, 2},
                                         .output_padding = {1, 0}}, true, 4);
        check_convt(dt, &(mimic_spatial){.ndim = 3, .in_channels = 2, .out_channels = 3, .groups = 1,
                                         .size = {3, 4, 3}, .kernel = {2, 3, 2}, .stride = {2, 1, 3},
                                         .padding = {0, 1, 1}, .dilation = {1, 1, 1}, .output_padding = {1, 0, 2}},
                    true, 2);
    }
}

TEST(upsample_linear_matches_op)
{
    for (int d = 0; d < 2; d++)
        for (int nd = 1; nd <= 3; nd++)
            for (int align = 0; align < 2; align++) {
                mimic_dtype dt = d ? MIMIC_F64 : MIMIC_F32;
                mimic_spatial g = {.ndim = nd, .in_channels = 2, .size = {3, 2, 4}, .stride = {2, 3, 1}, .circular = align};
                int64_t n = 3, xs[5] = {n, 2}, osz[3], nin = 2;
                for (int k = 0; k < nd; k++)
                    xs[2 + k] = g.size[k], osz[k] = g.size[k] * g.stride[k], nin *= g.size[k];
                mimic_tensor *x = rand_t(nd + 2, xs, dt, -1, 1);
                mimic_tensor *ref = mimic_upsample(x, nd, osz, MIMIC_UPSAMPLE_LINEAR, align);
                mimic_model *m = mimic_model_new(dt, nin);
                CHECK_OK(mimic_model_add_upsample_linear(m, &g));
                mimic_layer_info li;
                CHECK_OK(mimic_model_layer(m, 0, &li));
                CHECK(strncmp(li.type, "upsample_linear", 15) == 0 && li.type[15] == '0' + nd && li.spatial &&
                      li.spatial->circular == align);
                mimic_tensor *xrows = mimic_reshape(x, 2, (int64_t[]){n, nin});
                mimic_tensor *rrows = mimic_reshape(ref, 2, (int64_t[]){n, mimic_numel(ref) / n});
                CHECK(mimic_model_nout(m) == rrows->shape[1]);
                /* the plan sums the taps as the op does: equal, not just close */
                mimic_plan *p = mimic_plan_new(m, 2);
                mimic_tensor *y = mimic_empty(2, rrows->shape, dt);
                CHECK_OK(mimic_plan_run(p, mimic_data(xrows), n, mimic_data(y)));
                CHECK(rel_err(dt, mimic_data(y), mimic_data(rrows), mimic_numel(y)) == 0);
                mimic_plan_free(p);
                mimic_tensor_free(y), mimic_tensor_free(xrows), mimic_tensor_free(rrows);
                mimic_tensor_free(ref), mimic_tensor_free(x);
                mimic_model_free(m);
            }
    mimic_model *m = mimic_model_new(MIMIC_F32, 6);
    mimic_spatial g = {.ndim = 1, .in_channels = 2, .size = {3}, .stride = {0}};
    CHECK_ERR(mimic_model_add_upsample_linear(m, &g), MIMIC_EARG, "the factor 0 1..64");
    g.stride[0] = 2, g.size[0] = 4;
    CHECK_ERR(mimic_model_add_upsample_linear(m, &g), MIMIC_ESHAPE, "current width is 6");
    mimic_model_free(m);
}

/* LSTM x2 -> last_step -> dense, the bench-like sequence-to-one model. */
static mimic_model *seq_model(mimic_dtype dt, int64_t T, int64_t I, int64_t H)
{
    mimic_model *m = mimic_model_new(dt, T * I);
    for (int l = 0; l < 2; l++) {
        int64_t in = l ? H : I;
        mimic_tensor *wi = rand_t(2, (int64_t[]){4 * H, in}, dt, -0.4, 0.4);
        mimic_tensor *wh = rand_t(2, (int64_t[]){4 * H, H}, dt, -0.4, 0.4);
        mimic_tensor *b = rand_t(1, (int64_t[]){4 * H}, dt, -0.2, 0.2);
        mimic_recurrent r = {.cell = MIMIC_CELL_LSTM, .seq_len = T, .input_size = in, .hidden_size = H};
        CHECK_OK(mimic_model_add_recurrent(m, &r, mimic_data(wi), mimic_data(wh), mimic_data(b), mimic_data(b)));
        mimic_tensor_free(wi), mimic_tensor_free(wh), mimic_tensor_free(b);
    }
    CHECK_OK(mimic_model_add_last_step(m, T));
    mimic_tensor *wd = rand_t(2, (int64_t[]){2, H}, dt, -0.4, 0.4);
    CHECK_OK(mimic_model_add_dense(m, 2, mimic_data(wd), NULL));
    mimic_tensor_free(wd);
    return m;
}

TEST(no_allocation_and_workspace)
{
    for (int d = 0; d < 2; d++) {
        mimic_dtype dt = d ? MIMIC_F64 : MIMIC_F32;
        mimic_model *m = seq_model(dt, 6, 3, 8);
        mimic_spatial g = {.ndim = 1, .in_channels = 1, .out_channels = 2, .groups = 1, .size = {2}, .kernel = {3},
                           .stride = {2}, .dilation = {1}};
        double wt[6] = {0.1, -0.2, 0.3, 0.4, 0.5, -0.6};
        float wf[6];
        for (int i = 0; i < 6; i++)
            wf[i] = (float)wt[i];
        CHECK_OK(mimic_model_add_conv_transpose(m, &g, d ? (void *)wt : (void *)wf, NULL));
        mimic_spatial u = {.ndim = 1, .in_channels = 2, .size = {5}, .stride = {2}};
        CHECK_OK(mimic_model_add_upsample_linear(m, &u));
        check_plan_allocates_nothing(m);
        mimic_model_free(m);
    }
    /* recurrent scratch: slots * round64(chunk * (T G H + G H) * es) when it is the largest */
    mimic_set_num_threads(2);
    mimic_model *m = seq_model(MIMIC_F32, 6, 3, 8);
    mimic_plan *p = mimic_plan_new(m, 5);
    size_t buf = ((size_t)5 * 48 * 4 + 63) / 64 * 64, sc = ((size_t)5 * (6 * 32 + 32) * 4 + 63) / 64 * 64;
    CHECK(mimic_plan_workspace_bytes(p) == 2 * (2 * buf + sc));
    CHECK(mimic_plan_weight_bytes(p) == (size_t)(32 * 3 + 32 * 8 + 64 + 32 * 8 + 32 * 8 + 64 + 16) * 4);
    mimic_plan_free(p);
    mimic_model_free(m);
}

TEST(deterministic_across_batches_and_threads)
{
    for (int d = 0; d < 2; d++) {
        mimic_dtype dt = d ? MIMIC_F64 : MIMIC_F32;
        mimic_model *m = seq_model(dt, 7, 3, 16);
        mimic_tensor *x = rand_t(2, (int64_t[]){23, 21}, dt, -1, 1);
        check_plan_deterministic(m, mimic_data(x), 23);
        mimic_tensor_free(x);
        mimic_model_free(m);
    }
}

TEST(builder_errors)
{
    float w[256] = {0};
    mimic_model *m = mimic_model_new(MIMIC_F32, 12);
    mimic_recurrent r = {.cell = MIMIC_CELL_GRU, .seq_len = 4, .input_size = 3, .hidden_size = 2};
    mimic_recurrent bad = r;
    bad.cell = 7;
    CHECK_ERR(mimic_model_add_recurrent(m, &bad, w, w, NULL, NULL), MIMIC_EARG, "unknown cell 7");
    bad = r, bad.seq_len = 5;
    CHECK_ERR(mimic_model_add_recurrent(m, &bad, w, w, NULL, NULL), MIMIC_ESHAPE, "the model's current width is 12");
    bad = r, bad.hidden_size = 0;
    CHECK_ERR(mimic_model_add_recurrent(m, &bad, w, w, NULL, NULL), MIMIC_EARG, "must be 1..");
    CHECK_ERR(mimic_model_add_recurrent(m, &r, w, NULL, NULL, NULL), MIMIC_EARG, "weight_hh are required");
    CHECK_ERR(mimic_model_add_recurrent(m, &r, w, w, w, NULL), MIMIC_EARG, "both biases");
    CHECK_ERR(mimic_model_add_last_step(m, 5), MIMIC_ESHAPE, "does not divide the width 12");
    CHECK(mimic_model_num_layers(m) == 0);
    CHECK_OK(mimic_model_add_recurrent(m, &r, w, w, NULL, NULL));
    CHECK_OK(mimic_model_add_last_step(m, 4));
    CHECK(mimic_model_nout(m) == 2);
    mimic_layer_info li;
    CHECK_OK(mimic_model_layer(m, 0, &li));
    CHECK(strcmp(li.type, "gru") == 0 && li.recurrent && li.nweights == 2 && li.weight_rows[0] == 6 &&
          li.weight_cols[0] == 3 && li.weight_cols[1] == 2 && strcmp(li.weight_name[1], "weight_hh") == 0);
    CHECK_OK(mimic_model_layer(m, 1, &li));
    CHECK(strcmp(li.type, "last_step") == 0 && li.recurrent && li.recurrent->seq_len == 4 && li.in == 8 && li.out == 2);
    mimic_model_free(m);

    m = mimic_model_new(MIMIC_F32, 8);
    mimic_spatial g = {.ndim = 1, .in_channels = 2, .out_channels = 2, .groups = 1, .size = {4}, .kernel = {3},
                       .stride = {2}, .dilation = {1}};
    mimic_spatial b = g;
    b.output_padding[0] = 2;
    CHECK_ERR(mimic_model_add_conv_transpose(m, &b, w, NULL), MIMIC_EARG, "smaller than stride 2 or dilation 1");
    b = g, b.padding[0] = 5;
    CHECK_ERR(mimic_model_add_conv_transpose(m, &b, w, NULL), MIMIC_ESHAPE, "the output size -1 is < 1");
    b = g, b.circular = 1;
    CHECK_ERR(mimic_model_add_conv_transpose(m, &b, w, NULL), MIMIC_EARG, "only zero padding");
    b = g, b.groups = 3;
    CHECK_ERR(mimic_model_add_conv_transpose(m, &b, w, NULL), MIMIC_EARG, "groups (3)");
    b = g, b.size[0] = 3;
    CHECK_ERR(mimic_model_add_conv_transpose(m, &b, w, NULL), MIMIC_ESHAPE, "current width is 8");
    CHECK_ERR(mimic_model_add_conv_transpose(m, &g, NULL, NULL), MIMIC_EARG, "weight is NULL");
    CHECK_OK(mimic_model_add_conv_transpose(m, &g, w, NULL));
    CHECK(mimic_model_nout(m) == 2 * 9);
    mimic_model_free(m);
}

static bool same_geometry(const mimic_spatial *a, const mimic_spatial *b)
{
    bool same = a->ndim == b->ndim && a->in_channels == b->in_channels && a->out_channels == b->out_channels &&
                a->groups == b->groups && a->circular == b->circular;
    for (int d = 0; d < 3; d++)
        same = same && a->size[d] == b->size[d] && a->kernel[d] == b->kernel[d] && a->stride[d] == b->stride[d] &&
               a->padding[d] == b->padding[d] && a->dilation[d] == b->dilation[d] &&
               a->output_padding[d] == b->output_padding[d];
    return same;
}

/* Saves m, loads it back: same records and weights, same outputs. */
static void round_trip(mimic_model *m, const mimic_contract *c)
{
    CHECK_OK(mimic_model_save(pbase, m, c, NULL, NULL, NULL));
    mimic_model *r = mimic_model_load(pbase, NULL);
    CHECK_PTR(r);
    if (!r)
        return;
    mimic_dtype dt = mimic_model_dtype(m);
    CHECK(mimic_model_num_layers(r) == mimic_model_num_layers(m));
    for (int i = 0; i < mimic_model_num_layers(m); i++) {
        mimic_layer_info a, b;
        CHECK_OK(mimic_model_layer(m, i, &a));
        CHECK_OK(mimic_model_layer(r, i, &b));
        CHECK(strcmp(a.type, b.type) == 0 && a.in == b.in && a.out == b.out && a.nweights == b.nweights);
        CHECK(!a.recurrent == !b.recurrent && !a.spatial == !b.spatial);
        if (a.recurrent && b.recurrent)
            CHECK(a.recurrent->cell == b.recurrent->cell && a.recurrent->seq_len == b.recurrent->seq_len &&
                  a.recurrent->input_size == b.recurrent->input_size &&
                  a.recurrent->hidden_size == b.recurrent->hidden_size);
        if (a.spatial && b.spatial)
            CHECK(same_geometry(a.spatial, b.spatial));
        for (int k = 0; k < 4; k++) {
            CHECK(!a.weight[k] == !b.weight[k]);
            if (a.weight[k] && b.weight[k])
                CHECK(a.weight_rows[k] == b.weight_rows[k] && a.weight_cols[k] == b.weight_cols[k] &&
                      memcmp(a.weight[k], b.weight[k], (size_t)(a.weight_rows[k] * a.weight_cols[k]) *
                                                           mimic_dtype_size(dt)) == 0);
        }
    }
    int64_t n = 3, nin = mimic_model_nin(m), nout = mimic_model_nout(m);
    mimic_tensor *x = rand_t(2, (int64_t[]){n, nin}, dt, -1, 1), *y1 = mimic_empty(2, (int64_t[]){n, nout}, dt),
                 *y2 = mimic_empty(2, (int64_t[]){n, nout}, dt);
    mimic_plan *p1 = mimic_plan_new(m, 0), *p2 = mimic_plan_new(r, 0);
    CHECK_OK(mimic_plan_run(p1, mimic_data(x), n, mimic_data(y1)));
    CHECK_OK(mimic_plan_run(p2, mimic_data(x), n, mimic_data(y2)));
    CHECK(memcmp(mimic_data(y1), mimic_data(y2), (size_t)(n * nout) * mimic_dtype_size(dt)) == 0);
    mimic_plan_free(p1), mimic_plan_free(p2);
    mimic_tensor_free(x), mimic_tensor_free(y1), mimic_tensor_free(y2);
    char h1[72], h2[72];
    CHECK_OK(mimic_model_hash(m, c, NULL, NULL, h1));
    CHECK_OK(mimic_model_hash(r, c, NULL, NULL, h2));
    CHECK(strcmp(h1, h2) == 0);
    mimic_model_free(r);
}

TEST(model_file)
{
    /* recurrent: layers 0, 1 lstm (bias), 2 last_step, 3 dense */
    for (int d = 0; d < 2; d++) {
        mimic_model *m = seq_model(d ? MIMIC_F64 : MIMIC_F32, 6, 3, 8);
        round_trip(m, &(mimic_contract){1, 1, (mimic_io_var[]){{"seq", "1", 18}}, (mimic_io_var[]){{"y", "1", 2}}});
        mimic_model_free(m);
    }
    bad_case rcases[] = {
        {{.op = ED_INT, .name = "layers/000/seq_len", .i = 5}, MIMIC_ESHAPE, "seq_len 5 maps 5 x 3 features to 5 x 8, but 'in' is 18"},
        {{.op = ED_INT, .name = "layers/000/hidden_size", .i = 0}, MIMIC_EVALUE, "'layers/000/hidden_size' is 0, expected 1..1048576"},
        {{.op = ED_INT, .name = "layers/001/input_size", .i = 4}, MIMIC_ESHAPE, "'in' is 48"},
        {{.op = ED_DROP, .name = "layers/001/weight_hh"}, MIMIC_EIO, "'layers/001/weight_hh' is missing"},
        {{.op = ED_DROP, .name = "layers/001/bias_hh"}, MIMIC_EIO, "give both bias_ih and bias_hh, or neither"},
        {{.op = ED_TENSOR, .name = "layers/000/weight_ih", .dt = MIMIC_F64, .ndim = 2, .shape = {24, 3}}, MIMIC_ESHAPE, "'layers/000/weight_ih' has shape [24, 3], expected [32, 3]"},
        {{.op = ED_TENSOR, .name = "layers/000/bias_ih", .dt = MIMIC_F64, .ndim = 1, .shape = {8}}, MIMIC_ESHAPE, "'layers/000/bias_ih' has shape [8], expected [32]"},
        {{.op = ED_ELEM, .name = "layers/001/weight_hh", .elem = 5, .d = INFINITY}, MIMIC_EVALUE, "element 5 is inf"},
        {STR("layers/000/type", "gru"), MIMIC_ESHAPE, "'layers/000/weight_ih' has shape [32, 3], expected [24, 3]"},
        {STR("layers/000/type", "lstm2"), MIMIC_EIO, "unknown layer type 'lstm2' at layer index 0"},
        {{.op = ED_INT, .name = "layers/002/seq_len", .i = 3}, MIMIC_ESHAPE, "(last_step): seq_len 3 maps 3 x 8 features to 1 x 8, but 'in' is 48"},
        {{.op = ED_INT, .name = "layers/002/features", .i = 4}, MIMIC_ESHAPE, "(last_step): seq_len 6 maps 6 x 4"},
        {{.op = ED_ADD_INT, .name = "layers/002/hidden_size", .i = 3}, MIMIC_EIO, "unexpected entry 'layers/002/hidden_size'"},
    };
    check_bad_cases("recurrent", pbase, pedit, rcases, (int)(sizeof rcases / sizeof rcases[0]));

    /* transposed conv (layer 0) and linear upsampling (layer 1) */
    for (int d = 0; d < 2; d++) {
        mimic_dtype dt = d ? MIMIC_F64 : MIMIC_F32;
        mimic_model *m = mimic_model_new(dt, 2 * 3 * 4);
        mimic_spatial g = {.ndim = 2, .in_channels = 2, .out_channels = 4, .groups = 2, .size = {3, 4},
                           .kernel = {3, 2}, .stride = {2, 1}, .padding = {1, 0}, .dilation = {1, 2},
                           .output_padding = {1, 0}};
        mimic_tensor *w = rand_t(2, (int64_t[]){2, 2 * 6}, dt, -0.5, 0.5), *b = rand_t(1, (int64_t[]){4}, dt, -1, 1);
        CHECK_OK(mimic_model_add_conv_transpose(m, &g, mimic_data(w), mimic_data(b)));
        /* out: 4 x 6 x 6 */
        mimic_spatial u = {.ndim = 2, .in_channels = 4, .size = {6, 6}, .stride = {2, 1}, .circular = 1};
        CHECK_OK(mimic_model_add_upsample_linear(m, &u));
        CHECK(mimic_model_nout(m) == 4 * 12 * 6);
        round_trip(m, &(mimic_contract){1, 1, (mimic_io_var[]){{"f", "1", 24}}, (mimic_io_var[]){{"g", "1", 288}}});
        mimic_tensor_free(w), mimic_tensor_free(b);
        mimic_model_free(m);
    }
    bad_case ccases[] = {
        {{.op = ED_INT, .name = "layers/000/output_padding_0", .i = 2}, MIMIC_EVALUE, "output_padding_0 = 2 must be smaller than stride_0 or dilation_0"},
        {{.op = ED_INT, .name = "layers/000/output_padding_1", .i = -1}, MIMIC_EVALUE, "'layers/000/output_padding_1' is -1"},
        {{.op = ED_INT, .name = "layers/000/padding_0", .i = 4}, MIMIC_ESHAPE, "dim 0: the output size is 0 (padding 4 too large)"},
        {{.op = ED_INT, .name = "layers/000/stride_1", .i = 2}, MIMIC_ESHAPE, "the geometry maps 24 features to 216, but 'in' is 24 and 'out' 144"},
        {{.op = ED_INT, .name = "layers/000/groups", .i = 3}, MIMIC_EVALUE, "groups 3 must divide in_channels 2"},
        {{.op = ED_TENSOR, .name = "layers/000/weight", .dt = MIMIC_F64, .ndim = 2, .shape = {4, 6}}, MIMIC_ESHAPE, "'layers/000/weight' has shape [4, 6], expected [2, 12]"},
        {{.op = ED_DROP, .name = "layers/000/output_padding_1"}, MIMIC_EIO, "'layers/000/output_padding_1' is missing"},
        {{.op = ED_ADD_INT, .name = "layers/000/circular_padding", .i = 0}, MIMIC_EIO, "unexpected entry 'layers/000/circular_padding'"},
        {{.op = ED_INT, .name = "layers/001/align_corners", .i = 2}, MIMIC_EVALUE, "'layers/001/align_corners' is 2, expected 0..1"},
        {{.op = ED_INT, .name = "layers/001/align_corners", .i = 0}, MIMIC_EIO, "content hash mismatch"},
        {{.op = ED_INT, .name = "layers/001/scale_0", .i = 65}, MIMIC_EVALUE, "scale_0 = 65, expected 1..64"},
        {{.op = ED_INT, .name = "layers/001/scale_1", .i = 2}, MIMIC_ESHAPE, "the geometry maps 144 features to 576"},
        {STR("layers/001/type", "upsample2d"), MIMIC_EIO, "unexpected entry 'layers/001/align_corners'"},
    };
    check_bad_cases("conv_transpose/upsample_linear", pbase, pedit, ccases, (int)(sizeof ccases / sizeof ccases[0]));
}

/* Out of memory anywhere in building, converting, compiling, saving and
 * loading the new records fails cleanly (ASan sees leaks). */
TEST(out_of_memory)
{
    static float w[64 * 64];
    for (int i = 0; i < 64 * 64; i++)
        w[i] = 0.01f * (float)(i % 17);
    /* a reference file, written with plenty of memory */
    {
        mimic_model *m = mimic_model_new(MIMIC_F32, 4 * 3);
        mimic_recurrent r = {.cell = MIMIC_CELL_LSTM, .seq_len = 4, .input_size = 3, .hidden_size = 2};
        mimic_spatial u = {.ndim = 1, .in_channels = 4, .size = {2}, .stride = {2}};
        mimic_spatial g = {.ndim = 1, .in_channels = 4, .out_channels = 2, .groups = 2, .size = {4}, .kernel = {3},
                           .stride = {2}, .dilation = {1}, .output_padding = {1}};
        CHECK_OK(mimic_model_add_recurrent(m, &r, w, w, w, w));
        CHECK_OK(mimic_model_add_upsample_linear(m, &u)); /* [4, 2] -> [4, 4] as channels x size */
        CHECK_OK(mimic_model_add_conv_transpose(m, &g, w, w));
        CHECK_OK(mimic_model_add_last_step(m, 2));
        CHECK_OK(mimic_model_save(pbase, m, &(mimic_contract){1, 1, (mimic_io_var[]){{"x", "1", 12}},
                                  (mimic_io_var[]){{"y", "1", mimic_model_nout(m)}}}, NULL, NULL, NULL));
        mimic_model_free(m);
    }
    int ok = 0, failed = 0;
    for (int budget = 0; budget < 400; budget++) {
        use_budget_allocator(budget);
        mimic_model *m = mimic_model_load(pbase, NULL);
        mimic_model *c = m ? mimic_model_convert(m, MIMIC_F64) : NULL;
        mimic_plan *p = c ? mimic_plan_new(c, 0) : NULL;
        oom_tally(p != NULL, &ok, &failed);
        if (!m || !c || !p)
            CHECK(mimic_errcode() != 0);
        mimic_plan_free(p);
        mimic_model_free(c);
        mimic_model_free(m);
    }
    use_counting_allocator();
    CHECK(ok > 0 && failed > 0);
}

int main(void)
{
    test_dir_create(dir, sizeof dir, "test_plan_rnn");
    snprintf(pbase, sizeof pbase, "%s/base.h5", dir);
    snprintf(pedit, sizeof pedit, "%s/edit.h5", dir);
    use_counting_allocator();
    mimic_rng_init(&rng, 7);
    mimic_set_num_threads(2);
    RUN(recurrent_matches_ops);
    RUN(conv_transpose_matches_op);
    RUN(upsample_linear_matches_op);
    RUN(no_allocation_and_workspace);
    RUN(deterministic_across_batches_and_threads);
    RUN(builder_errors);
    RUN(model_file);
    RUN(out_of_memory);
    test_dir_remove(dir);
    return CHECK_DONE();
}
