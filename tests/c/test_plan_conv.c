/* Spatial records of the inference plan (conv, pools, global pools,
 * flatten): every record against a direct reference written here (nested
 * loops in double over the PyTorch definitions, independent of the plan's
 * im2col + gemm), float32 and float64, strides, padding (zeros and
 * circular), dilation, groups, batch sizes around the chunk; no allocation
 * in mimic_plan_run; deterministic mode bit-identical across batch sizes and
 * threads; the workspace formula; invalid geometry. */
#include "check.h"
#include "testutil.h"

#include "mimic/model.h"

#include <stdlib.h>

#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

static mimic_rng rng;

static double *rand_d(int64_t n, double lo, double hi)
{
    mimic_tensor *t = mimic_empty(1, &n, MIMIC_F64);
    mimic_rng_uniform(&rng, t, lo, hi);
    double *p = malloc((size_t)n * sizeof *p);
    memcpy(p, mimic_data(t), (size_t)n * sizeof *p);
    mimic_tensor_free(t);
    return p;
}

/* Converts a double array to the model's dtype (caller frees). */
static void *as_dt(mimic_dtype dt, const double *p, int64_t n)
{
    if (dt == MIMIC_F64) {
        double *q = malloc((size_t)n * 8);
        memcpy(q, p, (size_t)n * 8);
        return q;
    }
    float *q = malloc((size_t)n * 4);
    for (int64_t i = 0; i < n; i++)
        q[i] = (float)p[i];
    return q;
}

static double get(mimic_dtype dt, const void *p, int64_t i)
{
    return dt == MIMIC_F32 ? (double)((const float *)p)[i] : ((const double *)p)[i];
}

static int64_t vol(const mimic_spatial *g, const int64_t *s)
{
    int64_t v = 1;
    for (int d = 0; d < g->ndim; d++)
        v *= s[d];
    return v;
}

/* Index of position pos (ndim entries) in sizes sz. */
static int64_t lin(int nd, const int64_t *pos, const int64_t *sz)
{
    int64_t i = 0;
    for (int d = 0; d < nd; d++)
        i = i * sz[d] + pos[d];
    return i;
}

/* Reference conv of one sample (double), PyTorch's definition. */
static void ref_conv(const mimic_spatial *g, const double *w, const double *b, const double *x, double *y)
{
    int nd = g->ndim;
    int64_t osz[3], kv = vol(g, g->kernel), ov, cig = g->in_channels / g->groups, ocg = g->out_channels / g->groups;
    for (int d = 0; d < nd; d++)
        osz[d] = mimic_spatial_out(g, d);
    ov = vol(g, osz);
    int64_t iv = vol(g, g->size);
    for (int64_t oc = 0; oc < g->out_channels; oc++)
        for (int64_t o = 0; o < ov; o++) {
            int64_t op[3], rem = o;
            for (int d = nd - 1; d >= 0; d--)
                op[d] = rem % osz[d], rem /= osz[d];
            double acc = b ? b[oc] : 0;
            int64_t grp = oc / ocg;
            for (int64_t ci = 0; ci < cig; ci++)
                for (int64_t k = 0; k < kv; k++) {
                    int64_t kp[3], r2 = k, ip[3];
                    for (int d = nd - 1; d >= 0; d--)
                        kp[d] = r2 % g->kernel[d], r2 /= g->kernel[d];
                    bool in = true;
                    for (int d = 0; d < nd; d++) {
                        ip[d] = op[d] * g->stride[d] - g->padding[d] + kp[d] * g->dilation[d];
                        if (g->circular)
                            ip[d] = ((ip[d] % g->size[d]) + g->size[d]) % g->size[d];
                        in = in && ip[d] >= 0 && ip[d] < g->size[d];
                    }
                    if (in)
                        acc += w[(oc * cig + ci) * kv + k] * x[(grp * cig + ci) * iv + lin(nd, ip, g->size)];
                }
            y[oc * ov + o] = acc;
        }
}

/* Reference max / avg pool of one sample. */
static void ref_pool(const mimic_spatial *g, bool max, const double *x, double *y)
{
    int nd = g->ndim;
    int64_t osz[3], kv = vol(g, g->kernel), iv = vol(g, g->size);
    for (int d = 0; d < nd; d++)
        osz[d] = mimic_spatial_out(g, d);
    int64_t ov = vol(g, osz);
    for (int64_t c = 0; c < g->in_channels; c++)
        for (int64_t o = 0; o < ov; o++) {
            int64_t op[3], rem = o;
            for (int d = nd - 1; d >= 0; d--)
                op[d] = rem % osz[d], rem /= osz[d];
            double acc = max ? -INFINITY : 0;
            int cnt = 0;
            for (int64_t k = 0; k < kv; k++) {
                int64_t kp[3], r2 = k, ip[3];
                for (int d = nd - 1; d >= 0; d--)
                    kp[d] = r2 % g->kernel[d], r2 /= g->kernel[d];
                bool in = true;
                for (int d = 0; d < nd; d++) {
                    ip[d] = op[d] * g->stride[d] - g->padding[d] + kp[d] * (max ? g->dilation[d] : 1);
                    in = in && ip[d] >= 0 && ip[d] < g->size[d];
                }
                if (!in)
                    continue;
                double v = x[c * iv + lin(nd, ip, g->size)];
                acc = max ? (v > acc ? v : acc) : acc + v;
                cnt++;
            }
            y[c * ov + o] = max ? acc : acc / (g->circular ? (double)kv : (double)cnt);
        }
}

static int64_t width_out(const mimic_spatial *g, int64_t ch)
{
    int64_t v = ch;
    for (int d = 0; d < g->ndim; d++)
        v *= mimic_spatial_out(g, d);
    return v;
}

/* One conv (+ relu when act) compared with the reference for n in a range around the chunk. */
static void check_conv(mimic_dtype dt, const mimic_spatial *g, bool bias, bool act, bool det)
{
    int64_t nin = g->in_channels * vol(g, g->size), nout = width_out(g, g->out_channels);
    int64_t nw = g->out_channels * (g->in_channels / g->groups) * vol(g, g->kernel);
    double *w = rand_d(nw, -0.5, 0.5), *b = rand_d(g->out_channels, -0.5, 0.5);
    void *wt = as_dt(dt, w, nw), *bt = as_dt(dt, b, g->out_channels);
    mimic_model *m = mimic_model_new(dt, nin);
    CHECK_OK(mimic_model_add_conv(m, g, wt, bias ? bt : NULL));
    if (act)
        CHECK_OK(mimic_model_add_activation(m, MIMIC_ACT_RELU, 0, 0));
    CHECK(mimic_model_nout(m) == nout);
    mimic_plan *p = mimic_plan_new(m, 3);
    CHECK(p != NULL);
    mimic_plan_set_deterministic(p, det);
    int64_t nmax = 7;
    double *x = rand_d(nmax * nin, -1, 1), *yr = malloc((size_t)(nmax * nout) * 8);
    void *xt = as_dt(dt, x, nmax * nin), *y = calloc((size_t)(nmax * nout), 8);
    for (int64_t r = 0; r < nmax; r++) {
        double *xd = malloc((size_t)nin * 8);
        for (int64_t i = 0; i < nin; i++)
            xd[i] = get(dt, xt, r * nin + i); /* the rounded input, so only the arithmetic differs */
        ref_conv(g, w, bias ? b : NULL, xd, yr + r * nout);
        free(xd);
    }
    if (dt == MIMIC_F32) { /* the weights as the plan sees them */
        double *w32 = malloc((size_t)nw * 8), *b32 = malloc((size_t)g->out_channels * 8);
        for (int64_t i = 0; i < nw; i++) w32[i] = (float)w[i];
        for (int64_t i = 0; i < g->out_channels; i++) b32[i] = (float)b[i];
        for (int64_t r = 0; r < nmax; r++) {
            double *xd = malloc((size_t)nin * 8);
            for (int64_t i = 0; i < nin; i++) xd[i] = get(dt, xt, r * nin + i);
            ref_conv(g, w32, bias ? b32 : NULL, xd, yr + r * nout);
            free(xd);
        }
        free(w32), free(b32);
    }
    double tol = dt == MIMIC_F32 ? 1e-5 : 1e-12;
    for (int64_t n = 1; n <= nmax; n += 2) {
        CHECK_OK(mimic_plan_run(p, xt, n, y));
        double err = 0, mag = 1e-30;
        for (int64_t i = 0; i < n * nout; i++) {
            double r = act && yr[i] < 0 ? 0 : yr[i];
            err = fmax(err, fabs(get(dt, y, i) - r));
            mag = fmax(mag, fabs(r));
        }
        if (!(err <= tol * mag * 10))
            fprintf(stderr, "  conv%dd dt=%s n=%lld: err %g (scale %g)\n", g->ndim, mimic_dtype_name(dt),
                    (long long)n, err, mag);
        CHECK(err <= tol * mag * 10);
    }
    free(w), free(b), free(wt), free(bt), free(x), free(yr), free(xt), free(y);
    mimic_plan_free(p);
    mimic_model_free(m);
}

static mimic_spatial geom(int nd, int64_t cin, int64_t cout, int64_t groups, int64_t size, int64_t k, int64_t s,
                          int64_t pad, int64_t dil, int circ)
{
    mimic_spatial g = {.ndim = nd, .in_channels = cin, .out_channels = cout, .groups = groups, .circular = circ};
    for (int d = 0; d < nd && d < 3; d++) {
        g.size[d] = size + d; /* unequal sizes catch swapped dims */
        g.kernel[d] = k, g.stride[d] = s, g.padding[d] = pad, g.dilation[d] = dil;
    }
    return g;
}

TEST(convolutions)
{
    for (int dti = 0; dti < 2; dti++) {
        mimic_dtype dt = dti ? MIMIC_F64 : MIMIC_F32;
        for (int nd = 1; nd <= 3; nd++) {
            int64_t sz = nd == 3 ? 5 : 7;
            mimic_spatial cases[] = {
                geom(nd, 2, 3, 1, sz, 3, 1, 1, 1, 0),  /* plain, "same" */
                geom(nd, 4, 6, 2, sz, 3, 2, 1, 1, 0),  /* groups, stride */
                geom(nd, 3, 2, 1, sz, 2, 1, 2, 2, 0),  /* dilation, wide padding */
                geom(nd, 2, 4, 2, sz, 3, 1, 2, 1, 1),  /* circular, groups */
                geom(nd, 3, 3, 3, sz, 3, 2, 1, 2, 1),  /* depthwise, circular, stride, dilation */
                geom(nd, 1, 2, 1, sz, 1, 1, 0, 1, 0),  /* 1x1 */
            };
            for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
                for (int det = 0; det < 2; det++)
                    check_conv(dt, &cases[c], c % 2 == 0, c % 3 == 0, det);
        }
        /* a 2-D kernel that is not square, per-dim stride and padding */
        mimic_spatial g = {.ndim = 2, .in_channels = 2, .out_channels = 3, .groups = 1, .size = {6, 9},
                           .kernel = {3, 2}, .stride = {2, 1}, .padding = {1, 0}, .dilation = {1, 3}};
        check_conv(dt, &g, true, false, false);
        /* more output positions than one im2col tile holds */
        mimic_spatial big = geom(3, 8, 4, 1, 12, 3, 1, 1, 1, 0);
        check_conv(dt, &big, true, true, false);
    }
}

static void check_pool(mimic_dtype dt, const mimic_spatial *g, bool max, bool global)
{
    int64_t nin = g->in_channels * vol(g, g->size);
    mimic_model *m = mimic_model_new(dt, nin);
    if (global)
        CHECK_OK(mimic_model_add_global_pool(m, max, g->in_channels));
    else
        CHECK_OK(mimic_model_add_pool(m, max, g));
    int64_t nout = mimic_model_nout(m);
    CHECK(nout == (global ? g->in_channels : width_out(g, g->in_channels)));
    mimic_plan *p = mimic_plan_new(m, 2);
    int64_t n = 5;
    double *x = rand_d(n * nin, -1, 1);
    void *xt = as_dt(dt, x, n * nin), *y = calloc((size_t)(n * nout), 8);
    CHECK_OK(mimic_plan_run(p, xt, n, y));
    double *yr = malloc((size_t)nout * 8), *xd = malloc((size_t)nin * 8), err = 0;
    int64_t iv = vol(g, g->size);
    for (int64_t r = 0; r < n; r++) {
        for (int64_t i = 0; i < nin; i++)
            xd[i] = get(dt, xt, r * nin + i);
        if (global)
            for (int64_t c = 0; c < g->in_channels; c++) {
                double acc = max ? -INFINITY : 0;
                for (int64_t s = 0; s < iv; s++)
                    acc = max ? fmax(acc, xd[c * iv + s]) : acc + xd[c * iv + s];
                yr[c] = max ? acc : acc / (double)iv;
            }
        else
            ref_pool(g, max, xd, yr);
        for (int64_t i = 0; i < nout; i++)
            err = fmax(err, fabs(get(dt, y, r * nout + i) - yr[i]));
    }
    CHECK(err <= (dt == MIMIC_F32 ? 1e-6 : 1e-14));
    free(x), free(xt), free(y), free(yr), free(xd);
    mimic_plan_free(p);
    mimic_model_free(m);
}

TEST(pools)
{
    for (int dti = 0; dti < 2; dti++) {
        mimic_dtype dt = dti ? MIMIC_F64 : MIMIC_F32;
        for (int nd = 1; nd <= 3; nd++)
            for (int max = 0; max < 2; max++) {
                mimic_spatial a = geom(nd, 3, 3, 1, 6, 2, 2, 0, 1, 0);
                mimic_spatial b = geom(nd, 2, 2, 1, 7, 3, 2, 1, max ? 2 : 1, 1); /* padding, (max) dilation */
                mimic_spatial c = geom(nd, 2, 2, 1, 7, 3, 1, 1, 1, 0);           /* avg: count_include_pad off */
                check_pool(dt, &a, max, false);
                check_pool(dt, &b, max, false);
                check_pool(dt, &c, max, false);
                check_pool(dt, &a, max, true);
            }
    }
}

/* The interface-classifier shape, small: conv, relu, pool, conv, relu, pool, flatten, dense. */
static mimic_model *cnn(mimic_dtype dt)
{
    mimic_model *m = mimic_model_new(dt, 2 * 10 * 10 * 10);
    mimic_spatial c1 = geom(3, 2, 4, 1, 10, 3, 1, 1, 1, 0), p1 = geom(3, 4, 4, 1, 10, 2, 2, 0, 1, 0);
    mimic_spatial c2 = geom(3, 4, 6, 2, 5, 3, 1, 1, 1, 1), p2 = geom(3, 6, 6, 1, 5, 2, 2, 0, 1, 0);
    for (int d = 0; d < 3; d++) /* geom's unequal sizes: use cubes here */
        c1.size[d] = p1.size[d] = 10, c2.size[d] = p2.size[d] = 5;
    double *w1 = rand_d(4 * 2 * 27, -0.3, 0.3), *w2 = rand_d(6 * 2 * 27, -0.3, 0.3), *b = rand_d(6, -0.1, 0.1);
    double *wd = rand_d(2 * 6 * 8, -0.3, 0.3);
    void *t1 = as_dt(dt, w1, 4 * 2 * 27), *t2 = as_dt(dt, w2, 6 * 2 * 27), *tb = as_dt(dt, b, 6),
         *td = as_dt(dt, wd, 2 * 48);
    CHECK_OK(mimic_model_add_conv(m, &c1, t1, tb));
    CHECK_OK(mimic_model_add_activation(m, MIMIC_ACT_RELU, 0, 0));
    CHECK_OK(mimic_model_add_pool(m, true, &p1));
    CHECK_OK(mimic_model_add_conv(m, &c2, t2, tb));
    CHECK_OK(mimic_model_add_activation(m, MIMIC_ACT_TANH, 0, 0));
    CHECK_OK(mimic_model_add_pool(m, false, &p2));
    CHECK_OK(mimic_model_add_flatten(m));
    CHECK_OK(mimic_model_add_dense(m, 2, td, tb));
    CHECK(mimic_model_nout(m) == 2);
    free(w1), free(w2), free(b), free(wd), free(t1), free(t2), free(tb), free(td);
    return m;
}

TEST(no_allocation)
{
    for (int d = 0; d < 2; d++) {
        mimic_dtype dt = d ? MIMIC_F64 : MIMIC_F32;
        mimic_model *m = cnn(dt);
        check_plan_allocates_nothing(m);
        mimic_model_free(m);
    }
}

TEST(workspace_formula)
{
    mimic_set_num_threads(2);
    mimic_model *m = cnn(MIMIC_F32);
    mimic_plan *p = mimic_plan_new(m, 5);
    /* buffers: slots * nbuf * round64(chunk * W * 4) with W = 4 * 1000 (conv1's output), nbuf = 2;
     * im2col: slots * round64(K * tile * 4), K = 2 * 27 (conv1) or 2 * 27 (conv2, groups 2):
     * tile = min(positions, 256 KiB / (K * 4)) = 1000 for conv1 */
    size_t buf = ((size_t)5 * 4000 * 4 + 63) / 64 * 64, col = ((size_t)54 * 1000 * 4 + 63) / 64 * 64;
    CHECK(mimic_plan_slots(p) == 2);
    CHECK(mimic_plan_workspace_bytes(p) == 2 * (2 * buf + col));
    CHECK(mimic_plan_weight_bytes(p) == (size_t)(4 * 54 + 4 + 6 * 54 + 6 + 2 * 48 + 2) * 4);
    mimic_plan_free(p);
    /* automatic chunk: two activation buffers of the widest layer in 256 KiB, at least 1 row */
    p = mimic_plan_new(m, 0);
    CHECK(mimic_plan_chunk(p) == (256 * 1024) / (2 * 4000 * 4));
    mimic_plan_free(p);
    mimic_model_free(m);
}

TEST(deterministic)
{
    for (int d = 0; d < 2; d++) {
        mimic_dtype dt = d ? MIMIC_F64 : MIMIC_F32;
        mimic_model *m = cnn(dt);
        double *xd = rand_d(23 * 2000, -1, 1);
        void *x = as_dt(dt, xd, 23 * 2000);
        check_plan_deterministic(m, x, 23);
        free(xd), free(x);
        mimic_model_free(m);
    }
}

TEST(records_and_errors)
{
    mimic_model *m = cnn(MIMIC_F32);
    mimic_layer_info li;
    CHECK_OK(mimic_model_layer(m, 0, &li));
    CHECK(strcmp(li.type, "conv3d") == 0 && li.in == 2000 && li.out == 4000 && li.spatial);
    CHECK(li.weight_rows[0] == 4 && li.weight_cols[0] == 54 && li.nweights == 2);
    CHECK_OK(mimic_model_layer(m, 2, &li));
    CHECK(strcmp(li.type, "max_pool3d") == 0 && li.out == 500 && li.nweights == 0);
    CHECK_OK(mimic_model_layer(m, 5, &li));
    CHECK(strcmp(li.type, "avg_pool3d") == 0 && li.out == 48);
    CHECK_OK(mimic_model_layer(m, 6, &li));
    CHECK(strcmp(li.type, "flatten") == 0 && li.in == 48 && li.out == 48 && !li.spatial);
    mimic_model_free(m);

    float w[64] = {0};
    m = mimic_model_new(MIMIC_F32, 2 * 16);
    mimic_spatial g = geom(1, 2, 2, 1, 16, 3, 1, 0, 1, 0);
    mimic_spatial bad = g;
    bad.size[0] = 15;
    CHECK_ERR(mimic_model_add_conv(m, &bad, w, NULL), MIMIC_ESHAPE, "current width is 32");
    bad = g, bad.groups = 3;
    CHECK_ERR(mimic_model_add_conv(m, &bad, w, NULL), MIMIC_EARG, "groups");
    bad = g, bad.kernel[0] = 20;
    CHECK_ERR(mimic_model_add_conv(m, &bad, w, NULL), MIMIC_ESHAPE, "does not fit");
    bad = g, bad.circular = 1, bad.padding[0] = 17;
    CHECK_ERR(mimic_model_add_conv(m, &bad, w, NULL), MIMIC_EARG, "circular padding");
    bad = g, bad.stride[0] = 0;
    CHECK_ERR(mimic_model_add_conv(m, &bad, w, NULL), MIMIC_EARG, "stride");
    bad = g, bad.ndim = 4;
    CHECK_ERR(mimic_model_add_conv(m, &bad, w, NULL), MIMIC_EARG, "ndim");
    CHECK_ERR(mimic_model_add_conv(m, &g, NULL, NULL), MIMIC_EARG, "weight is NULL");
    bad = g, bad.padding[0] = 2;
    CHECK_ERR(mimic_model_add_pool(m, true, &bad), MIMIC_EARG, "half the kernel");
    CHECK_ERR(mimic_model_add_global_pool(m, true, 5), MIMIC_ESHAPE, "do not divide");
    CHECK(mimic_model_num_layers(m) == 0);
    CHECK_OK(mimic_model_add_conv(m, &g, w, NULL));
    CHECK(mimic_model_nout(m) == 28);
    mimic_model_free(m);
}

TEST(upsample)
{
    for (int nd = 1; nd <= 3; nd++)
        for (int dti = 0; dti < 2; dti++) {
            mimic_dtype dt = dti ? MIMIC_F64 : MIMIC_F32;
            mimic_spatial g = {.ndim = nd, .in_channels = 2, .size = {3, 2, 4}, .stride = {2, 3, 1}};
            int64_t nin = 2 * vol(&g, g.size), osz[3] = {6, 6, 4}, nout = 2 * vol(&g, osz);
            mimic_model *m = mimic_model_new(dt, nin);
            CHECK_OK(mimic_model_add_upsample(m, &g));
            CHECK(mimic_model_nout(m) == nout);
            mimic_layer_info li;
            CHECK_OK(mimic_model_layer(m, 0, &li));
            CHECK(strncmp(li.type, "upsample", 8) == 0 && li.type[8] == '0' + nd && li.spatial);
            mimic_plan *p = mimic_plan_new(m, 2);
            double *x = rand_d(3 * nin, -1, 1);
            void *xt = as_dt(dt, x, 3 * nin), *y = calloc((size_t)(3 * nout), 8);
            CHECK_OK(mimic_plan_run(p, xt, 3, y));
            bool same = true;
            for (int64_t r = 0; r < 3; r++)
                for (int64_t c = 0; c < 2; c++)
                    for (int64_t o = 0; o < vol(&g, osz); o++) {
                        int64_t op[3], rem = o, ip[3];
                        for (int d = nd - 1; d >= 0; d--)
                            op[d] = rem % osz[d], rem /= osz[d];
                        for (int d = 0; d < nd; d++)
                            ip[d] = op[d] / g.stride[d]; /* nearest: floor(o / factor) */
                        double want = get(dt, xt, r * nin + c * vol(&g, g.size) + lin(nd, ip, g.size));
                        same = same && get(dt, y, r * nout + c * vol(&g, osz) + o) == want;
                    }
            CHECK(same);
            free(x), free(xt), free(y);
            mimic_plan_free(p);
            mimic_model_free(m);
        }
    mimic_model *m = mimic_model_new(MIMIC_F32, 6);
    mimic_spatial g = {.ndim = 1, .in_channels = 2, .size = {3}, .stride = {65}};
    CHECK_ERR(mimic_model_add_upsample(m, &g), MIMIC_EARG, "factor 65 1..64");
    g.stride[0] = 2, g.size[0] = 4;
    CHECK_ERR(mimic_model_add_upsample(m, &g), MIMIC_ESHAPE, "current width is 6");
    mimic_model_free(m);
}

TEST(nan_propagates)
{
    mimic_model *m = mimic_model_new(MIMIC_F64, 8);
    mimic_spatial g = geom(1, 1, 1, 1, 8, 2, 2, 0, 1, 0);
    CHECK_OK(mimic_model_add_pool(m, true, &g));
    mimic_plan *p = mimic_plan_new(m, 0);
    double x[8] = {1, NAN, 2, 3, 4, 5, 6, 7}, y[4];
    CHECK_OK(mimic_plan_run(p, x, 1, y));
    CHECK(isnan(y[0]) && y[1] == 3 && y[3] == 7);
    x[1] = 0, x[0] = NAN;
    CHECK_OK(mimic_plan_run(p, x, 1, y));
    CHECK(isnan(y[0]));
    mimic_plan_free(p);
    mimic_model_free(m);
}

int main(void)
{
    use_counting_allocator();
    mimic_rng_init(&rng, 7);
    mimic_set_num_threads(2);
    RUN(convolutions);
    RUN(pools);
    RUN(no_allocation);
    RUN(workspace_formula);
    RUN(deterministic);
    RUN(records_and_errors);
    RUN(upsample);
    RUN(nan_propagates);
    return CHECK_DONE();
}
