/* Convolution and pooling: forward values against direct loops written here
 * in float64 (independent of im2col and BLAS), output shapes, errors, 1-D and
 * 3-D gradients against finite differences (the 2-D ones are in the registry
 * walk of test_autograd.c), and results that do not depend on the thread
 * count across several tiles and weight-gradient segments. */
#include "check.h"
#include "mimic/autograd.h"
#include "mimic/ops.h"
#include "mimic/rng.h"

#include "testutil.h"
#include "gradcheck.h"

static mimic_rng rng;

/* --- references -------------------------------------------------------------------- */

/* Sizes of a [N, C, spatial...] tensor as 3-D spatial (leading 1s). */
typedef struct box {
    int64_t n, c, s[3];
} box;
static box box_of(const int64_t *shape, int nsp)
{
    box b = {shape[0], shape[1], {1, 1, 1}};
    for (int i = 0; i < nsp; i++)
        b.s[3 - nsp + i] = shape[2 + i];
    return b;
}
static int64_t box_l(const box *b) { return b->s[0] * b->s[1] * b->s[2]; }

/* The options for axis a of 3 (leading axes: identity). */
typedef struct axis {
    int64_t s, p, d, k;
} axis;
static axis axis_of(int nsp, int a, const mimic_conv_opts *o, const int64_t *k)
{
    int i = a - (3 - nsp);
    if (i < 0)
        return (axis){1, 0, 1, 1};
    return (axis){o->stride[i] ? o->stride[i] : 1, o->padding[i], o->dilation[i] ? o->dilation[i] : 1, k[i]};
}
/* Input index of output o, tap j: -1 for a zero pad. */
static int64_t tap(axis x, int64_t o, int64_t j, int64_t n, bool circ)
{
    int64_t i = o * x.s - x.p + j * x.d;
    if (i >= 0 && i < n)
        return i;
    return circ ? ((i % n) + n) % n : -1;
}

/* A contiguous float64 copy's data (caller frees the tensor). */
static mimic_tensor *f64(const mimic_tensor *t) { return mimic_to_dtype(t, MIMIC_F64); }

/* y[n, co, o] = b[co] + sum x[n, g cig + cl, tap(o, k)] w[co, cl, k], or the
 * transpose (mode 1: u -> z) or weight gradient (mode 2: x, u -> dw); all in
 * the same loop, the one written out by hand. */
static void ref_conv(int mode, int nsp, const mimic_conv_opts *o, const box *xb, const box *yb, const int64_t *k,
                     double *x, double *w, double *y, const double *bias)
{
    axis ax[3];
    for (int a = 0; a < 3; a++)
        ax[a] = axis_of(nsp, a, o, k);
    int64_t G = o->groups ? o->groups : 1, cig = xb->c / G, cog = yb->c / G, K = ax[0].k * ax[1].k * ax[2].k;
    int64_t Lx = box_l(xb), Ly = box_l(yb);
    if (mode == 0)
        for (int64_t n = 0; n < yb->n; n++)
            for (int64_t c = 0; c < yb->c; c++)
                for (int64_t q = 0; q < Ly; q++)
                    y[(n * yb->c + c) * Ly + q] = bias ? bias[c] : 0;
    if (mode == 1)
        for (int64_t q = 0; q < xb->n * xb->c * Lx; q++)
            x[q] = bias ? bias[(q / Lx) % xb->c] : 0;
    if (mode == 2)
        for (int64_t q = 0; q < yb->c * cig * K; q++)
            w[q] = 0;
    for (int64_t n = 0; n < xb->n; n++)
        for (int64_t co = 0; co < yb->c; co++)
            for (int64_t cl = 0; cl < cig; cl++)
                for (int64_t o0 = 0; o0 < yb->s[0]; o0++)
                    for (int64_t o1 = 0; o1 < yb->s[1]; o1++)
                        for (int64_t o2 = 0; o2 < yb->s[2]; o2++)
                            for (int64_t k0 = 0; k0 < ax[0].k; k0++)
                                for (int64_t k1 = 0; k1 < ax[1].k; k1++)
                                    for (int64_t k2 = 0; k2 < ax[2].k; k2++) {
                                        int64_t i0 = tap(ax[0], o0, k0, xb->s[0], o->circular);
                                        int64_t i1 = tap(ax[1], o1, k1, xb->s[1], o->circular);
                                        int64_t i2 = tap(ax[2], o2, k2, xb->s[2], o->circular);
                                        if (i0 < 0 || i1 < 0 || i2 < 0)
                                            continue;
                                        int64_t ci = co / cog * cig + cl;
                                        int64_t xi = (n * xb->c + ci) * Lx + (i0 * xb->s[1] + i1) * xb->s[2] + i2;
                                        int64_t yi = (n * yb->c + co) * Ly + (o0 * yb->s[1] + o1) * yb->s[2] + o2;
                                        int64_t wi = (co * cig + cl) * K + (k0 * ax[1].k + k1) * ax[2].k + k2;
                                        if (mode == 0)
                                            y[yi] += x[xi] * w[wi];
                                        else if (mode == 1)
                                            x[xi] += y[yi] * w[wi];
                                        else
                                            w[wi] += y[yi] * x[xi];
                                    }
}

/* Worst |a - b| / (1 + |b|) between a tensor and reference values. */
static double worst_vs(const mimic_tensor *t, const double *ref)
{
    if (!t)
        return INFINITY;
    mimic_tensor *c = f64(t);
    const double *v = mimic_data(c);
    double worst = 0;
    for (int64_t i = 0; i < mimic_numel(c); i++) {
        double e = fabs(v[i] - ref[i]) / (1 + fabs(ref[i]));
        if (!(e <= worst))
            worst = e != e ? INFINITY : e;
    }
    mimic_tensor_free(c);
    return worst;
}

typedef struct ccase {
    int nsp;
    int64_t n, cin, cout, in[3], k[3];
    mimic_conv_opts o;
} ccase;

static const ccase CASES[] = {
    {1, 2, 3, 4, {11}, {3}, {.stride = {2}, .padding = {1}}},
    {1, 3, 4, 6, {9}, {2}, {.dilation = {3}, .padding = {2}, .groups = 2}},
    {1, 2, 2, 3, {7}, {3}, {.padding = {2}, .circular = true}},
    {1, 1, 1, 1, {5}, {5}, {.groups = 1}},
    {2, 2, 3, 5, {7, 6}, {3, 2}, {.stride = {2, 1}, .padding = {1, 1}, .dilation = {1, 2}}},
    {2, 2, 4, 4, {5, 8}, {3, 3}, {.padding = {1, 1}, .groups = 4, .circular = true}},
    {2, 1, 6, 4, {9, 9}, {3, 3}, {.stride = {3, 2}, .padding = {0, 2}, .groups = 2}},
    {2, 2, 2, 2, {4, 4}, {3, 3}, {.stride = {2, 2}, .padding = {3, 1}, .circular = true}},
    {3, 2, 2, 3, {5, 4, 6}, {3, 2, 3}, {.stride = {1, 2, 2}, .padding = {1, 0, 1}, .dilation = {1, 1, 2}}},
    {3, 1, 4, 2, {4, 5, 3}, {3, 3, 3}, {.padding = {1, 1, 1}, .groups = 2, .circular = true}},
};

/* Runs case c in dtype dt (bias on or off): forward, transpose and weight
 * gradient against ref_conv; returns the worst error. */
static double run_case(const ccase *c, mimic_dtype dt, bool with_bias)
{
    int nsp = c->nsp;
    int64_t G = c->o.groups ? c->o.groups : 1;
    int64_t xs[5] = {c->n, c->cin}, ws[5] = {c->cout, c->cin / G};
    for (int i = 0; i < nsp; i++)
        xs[2 + i] = c->in[i], ws[2 + i] = c->k[i];
    mimic_tensor *x = rand_tensor(&rng, nsp + 2, xs, dt), *w = rand_tensor(&rng, nsp + 2, ws, dt);
    mimic_tensor *b = with_bias ? rand_tensor(&rng, 1, &c->cout, dt) : NULL;
    mimic_tensor *y = mimic_conv(x, w, b, &c->o);
    double worst = INFINITY;
    if (!y) {
        fprintf(stderr, "conv failed: %s\n", mimic_errmsg());
        goto out;
    }
    mimic_tensor *x64 = f64(x), *w64 = f64(w), *b64 = b ? f64(b) : NULL;
    box xb = box_of(xs, nsp), yb = box_of(y->shape, nsp);
    int64_t ny = mimic_numel(y), nx = mimic_numel(x), nw = mimic_numel(w);
    double *ry = calloc((size_t)ny, sizeof(double)), *rx = calloc((size_t)nx, sizeof(double));
    double *rw = calloc((size_t)nw, sizeof(double));
    ref_conv(0, nsp, &c->o, &xb, &yb, c->k, mimic_data(x64), mimic_data(w64), ry, b64 ? mimic_data(b64) : NULL);
    worst = worst_vs(y, ry);
    /* transpose: y's shape back to x's (output_padding where the stride leaves a remainder) */
    int64_t opad[3] = {0};
    for (int i = 0; i < nsp; i++) {
        axis a = axis_of(nsp, 3 - nsp + i, &c->o, c->k);
        opad[i] = c->in[i] - ((y->shape[2 + i] - 1) * a.s - 2 * a.p + a.d * (a.k - 1) + 1);
    }
    mimic_tensor *u = rand_tensor(&rng, y->ndim, y->shape, dt), *u64 = f64(u);
    mimic_tensor *bz = with_bias ? rand_tensor(&rng, 1, &c->cin, dt) : NULL, *bz64 = bz ? f64(bz) : NULL;
    mimic_conv_opts ot = c->o;
    ot.groups = G;
    /* conv_transpose's weight is conv's: [Cout, Cin/G, k] maps Cout channels to Cin */
    mimic_tensor *z = mimic_conv_transpose(u, w, bz, &ot, opad);
    ref_conv(1, nsp, &c->o, &xb, &yb, c->k, rx, mimic_data(w64), mimic_data(u64), bz64 ? mimic_data(bz64) : NULL);
    double e = z && same_shape(z, nsp + 2, xs) ? worst_vs(z, rx) : INFINITY;
    if (!z)
        fprintf(stderr, "conv_transpose failed: %s\n", mimic_errmsg());
    worst = e > worst ? e : worst;
    mimic_tensor *dw = mimic_conv_weight(x, u, c->k, &c->o);
    ref_conv(2, nsp, &c->o, &xb, &yb, c->k, mimic_data(x64), rw, mimic_data(u64), NULL);
    e = dw ? worst_vs(dw, rw) : INFINITY;
    if (!dw)
        fprintf(stderr, "conv_weight failed: %s\n", mimic_errmsg());
    worst = e > worst ? e : worst;
    free(ry);
    free(rx);
    free(rw);
    mimic_tensor *fr[] = {x64, w64, b64, u, u64, bz, bz64, z, dw};
    for (size_t i = 0; i < sizeof fr / sizeof fr[0]; i++)
        mimic_tensor_free(fr[i]);
out:
    mimic_tensor_free(y);
    mimic_tensor_free(x);
    mimic_tensor_free(w);
    mimic_tensor_free(b);
    return worst;
}

TEST(test_conv_matches_direct_loops)
{
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
        double e64 = run_case(&CASES[i], MIMIC_F64, i % 2 == 0), e32 = run_case(&CASES[i], MIMIC_F32, i % 2 == 1);
        if (!(e64 < 1e-12) || !(e32 < 1e-5)) {
            fprintf(stderr, "case %zu (%dd): worst error %g (float64), %g (float32)\n", i, CASES[i].nsp, e64, e32);
            check_failures++;
        }
    }
}

/* A hand-computed 1-D example: [1 2 3 4] * [1 0 -1], padding 1, zero and circular. */
TEST(test_conv_small_example_by_hand)
{
    mimic_tensor *x = mk(MIMIC_F64, SHAPE_OF(1, 1, 4), (double[]){1, 2, 3, 4});
    mimic_tensor *w = mk(MIMIC_F64, SHAPE_OF(1, 1, 3), (double[]){1, 0, -1});
    mimic_conv_opts z = {.padding = {1}}, c = {.padding = {1}, .circular = true};
    mimic_tensor *y = mimic_conv(x, w, NULL, &z), *yc = mimic_conv(x, w, NULL, &c);
    CHECK(SHAPE_IS(y, 1, 1, 4) && SHAPE_IS(yc, 1, 1, 4));
    const double want[] = {-2, -2, -2, 3}, wantc[] = {2, -2, -2, 2};
    for (int i = 0; i < 4 && y && yc; i++) {
        CHECK_NEAR(at(y, i), want[i], 0);
        CHECK_NEAR(at(yc, i), wantc[i], 0);
    }
    mimic_tensor_free(yc);
    mimic_tensor_free(y);
    mimic_tensor_free(w);
    mimic_tensor_free(x);
}

/* --- pooling ------------------------------------------------------------------------- */

/* max (kind 0) or avg (1) over windows, direct loops; idx gets the flat argmax. */
static void ref_pool(int kind, int nsp, const mimic_pool_opts *po, const box *xb, const box *yb, const double *x,
                     double *y, int64_t *idx)
{
    axis ax[3];
    for (int a = 0; a < 3; a++) {
        int i = a - (3 - nsp);
        ax[a] = i < 0 ? (axis){1, 0, 1, 1}
                      : (axis){po->stride[i] ? po->stride[i] : po->kernel[i], po->padding[i],
                               po->dilation[i] ? po->dilation[i] : 1, po->kernel[i]};
    }
    int64_t Lx = box_l(xb), Ly = box_l(yb);
    for (int64_t p = 0; p < xb->n * xb->c; p++)
        for (int64_t o0 = 0; o0 < yb->s[0]; o0++)
            for (int64_t o1 = 0; o1 < yb->s[1]; o1++)
                for (int64_t o2 = 0; o2 < yb->s[2]; o2++) {
                    double best = -INFINITY, sum = 0;
                    int64_t at_ = -1, cnt = 0;
                    for (int64_t k0 = 0; k0 < ax[0].k; k0++)
                        for (int64_t k1 = 0; k1 < ax[1].k; k1++)
                            for (int64_t k2 = 0; k2 < ax[2].k; k2++) {
                                int64_t i0 = tap(ax[0], o0, k0, xb->s[0], false);
                                int64_t i1 = tap(ax[1], o1, k1, xb->s[1], false);
                                int64_t i2 = tap(ax[2], o2, k2, xb->s[2], false);
                                if (i0 < 0 || i1 < 0 || i2 < 0)
                                    continue;
                                int64_t i = (i0 * xb->s[1] + i1) * xb->s[2] + i2;
                                double v = x[p * Lx + i];
                                if (v > best)
                                    best = v, at_ = i;
                                sum += v;
                                cnt++;
                            }
                    int64_t q = p * Ly + (o0 * yb->s[1] + o1) * yb->s[2] + o2;
                    if (kind == 0) {
                        y[q] = best;
                        idx[q] = at_;
                    } else {
                        y[q] = sum / (po->exclude_pad ? (double)cnt : (double)(ax[0].k * ax[1].k * ax[2].k));
                    }
                }
}

typedef struct pcase {
    int nsp;
    int64_t shape[5];
    mimic_pool_opts o;
} pcase;

static const pcase PCASES[] = {
    {1, {2, 3, 10}, {.kernel = {3}, .stride = {2}, .padding = {1}}},
    {1, {1, 2, 9}, {.kernel = {2}, .dilation = {3}, .padding = {1}, .exclude_pad = true}},
    {2, {2, 2, 7, 6}, {.kernel = {3, 2}, .stride = {2, 1}, .padding = {1, 1}}},
    {2, {1, 3, 8, 8}, {.kernel = {2, 2}}},
    {2, {2, 1, 5, 7}, {.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}, .exclude_pad = true}},
    {3, {2, 2, 5, 4, 6}, {.kernel = {2, 2, 3}, .stride = {2, 1, 2}, .padding = {1, 0, 1}}},
};

TEST(test_pooling_matches_direct_loops)
{
    for (size_t c = 0; c < sizeof PCASES / sizeof PCASES[0]; c++) {
        const pcase *p = &PCASES[c];
        for (int dti = 0; dti < 2; dti++) {
            mimic_dtype dt = dti ? MIMIC_F32 : MIMIC_F64;
            mimic_tensor *x = rand_tensor(&rng, p->nsp + 2, p->shape, dt), *idx = NULL;
            mimic_tensor *mx = mimic_max_pool(x, p->nsp, &p->o, &idx);
            mimic_pool_opts ao = p->o;
            memset(ao.dilation, 0, sizeof ao.dilation);
            mimic_tensor *av = mimic_avg_pool(x, p->nsp, &ao);
            CHECK(mx && av && idx);
            if (!mx || !av || !idx) {
                fprintf(stderr, "pool case %zu: %s\n", c, mimic_errmsg());
                continue;
            }
            mimic_tensor *x64 = f64(x);
            box xb = box_of(p->shape, p->nsp), yb = box_of(mx->shape, p->nsp), ab = box_of(av->shape, p->nsp);
            double *ry = calloc((size_t)mimic_numel(mx), sizeof(double));
            double *ra = calloc((size_t)mimic_numel(av), sizeof(double));
            int64_t *ri = calloc((size_t)mimic_numel(mx), sizeof(int64_t));
            ref_pool(0, p->nsp, &p->o, &xb, &yb, mimic_data(x64), ry, ri);
            ref_pool(1, p->nsp, &ao, &xb, &ab, mimic_data(x64), ra, NULL);
            double tol = dt == MIMIC_F64 ? 1e-14 : 1e-6;
            CHECK(worst_vs(mx, ry) == 0);
            CHECK(worst_vs(av, ra) < tol);
            bool same_idx = idx->dtype == MIMIC_I64;
            for (int64_t i = 0; same_idx && i < mimic_numel(idx); i++)
                same_idx = ((int64_t *)mimic_data(idx))[i] == ri[i];
            CHECK(same_idx);
            free(ry);
            free(ra);
            free(ri);
            mimic_tensor_free(x64);
            mimic_tensor_free(av);
            mimic_tensor_free(mx);
            mimic_tensor_free(idx);
            mimic_tensor_free(x);
        }
    }
}

TEST(test_max_pool_nan_wins_and_gradient_goes_to_the_maximum)
{
    mimic_tensor *x = mk(MIMIC_F64, SHAPE_OF(1, 1, 4), (double[]){1, NAN, 3, 5});
    mimic_pool_opts o = {.kernel = {2}};
    mimic_tensor *y = mimic_max_pool(x, 1, &o, NULL);
    CHECK(y && isnan(at(y, 0)) && at(y, 1) == 5);
    mimic_tensor_free(y);
    mimic_tensor_free(x);
    x = mk(MIMIC_F64, SHAPE_OF(1, 1, 2, 2), (double[]){1, 4, 3, 2});
    mimic_set_requires_grad(x, true);
    mimic_pool_opts o2 = {.kernel = {2, 2}};
    y = mimic_max_pool(x, 2, &o2, NULL);
    CHECK(y && strcmp(mimic_grad_fn_name(y), "max_pool") == 0);
    mimic_tensor *g = mk(MIMIC_F64, SHAPE_OF(1, 1, 1, 1), (double[]){7});
    CHECK_OK(mimic_backward(y, g, false));
    mimic_tensor *gx = mimic_grad(x);
    CHECK(gx && at(gx, 0) == 0 && at(gx, 1) == 7 && at(gx, 2) == 0 && at(gx, 3) == 0);
    mimic_tensor_free(g);
    mimic_tensor_free(y);
    mimic_tensor_free(x);
}

/* --- shapes and errors ----------------------------------------------------------------- */

TEST(test_output_shapes)
{
    mimic_tensor *x = mimic_zeros(SHAPE_OF(2, 4, 7), MIMIC_F32), *w = mimic_zeros(SHAPE_OF(6, 2, 3), MIMIC_F32);
    mimic_conv_opts o = {.stride = {2}, .padding = {1}, .groups = 2};
    mimic_tensor *y = mimic_conv(x, w, NULL, &o);
    CHECK(SHAPE_IS(y, 2, 6, 4) && y->dtype == MIMIC_F32);
    mimic_tensor *u = mimic_zeros(SHAPE_OF(2, 6, 4), MIMIC_F64);
    mimic_tensor *z = mimic_conv_transpose(u, w, NULL, &o, NULL), *z1 = mimic_conv_transpose(u, w, NULL, &o, (int64_t[]){1});
    CHECK(SHAPE_IS(z, 2, 4, 7) && SHAPE_IS(z1, 2, 4, 8) && z->dtype == MIMIC_F64);
    mimic_tensor *x3 = mimic_zeros(SHAPE_OF(1, 1, 6, 6, 6), MIMIC_F32), *w3 = mimic_zeros(SHAPE_OF(1, 1, 3, 3, 3), MIMIC_F64);
    mimic_conv_opts d = {.dilation = {2, 2, 2}, .padding = {2, 0, 1}};
    mimic_tensor *y3 = mimic_conv(x3, w3, NULL, &d);
    CHECK(SHAPE_IS(y3, 1, 1, 6, 2, 4) && y3->dtype == MIMIC_F64);
    mimic_pool_opts po = {.kernel = {2, 2, 2}};
    mimic_tensor *p = mimic_max_pool(x3, 3, &po, NULL), *a = mimic_avg_pool(x3, 3, &po);
    CHECK(SHAPE_IS(p, 1, 1, 3, 3, 3) && SHAPE_IS(a, 1, 1, 3, 3, 3));
    /* an empty batch gives an empty result */
    mimic_tensor *e = mimic_zeros(SHAPE_OF(0, 4, 7), MIMIC_F32), *ye = mimic_conv(e, w, NULL, &o);
    CHECK(SHAPE_IS(ye, 0, 6, 4));
    mimic_tensor *fr[] = {x, w, y, u, z, z1, x3, w3, y3, p, a, e, ye};
    for (size_t i = 0; i < sizeof fr / sizeof fr[0]; i++)
        mimic_tensor_free(fr[i]);
}

TEST(test_errors_name_the_problem)
{
    mimic_tensor *x = mimic_zeros(SHAPE_OF(2, 4, 5, 5), MIMIC_F32), *w = mimic_zeros(SHAPE_OF(6, 4, 3, 3), MIMIC_F32);
    mimic_tensor *x3 = mimic_zeros(SHAPE_OF(4, 5, 5), MIMIC_F32), *wi = mimic_zeros(SHAPE_OF(6, 4, 3, 3), MIMIC_I64);
    mimic_tensor *w7 = mimic_zeros(SHAPE_OF(6, 4, 7, 3), MIMIC_F32), *b = mimic_zeros(SHAPE_OF(5), MIMIC_F32);
    mimic_conv_opts none = {.groups = 1};
    CHECK_ERR_PTR(mimic_conv(x3, w, NULL, &none), MIMIC_ESHAPE, "must have 4 dims [N, C, H, W]");
    CHECK_ERR_PTR(mimic_conv(x, wi, NULL, &none), MIMIC_EDTYPE, "int64");
    CHECK_ERR_PTR(mimic_conv(x, w7, NULL, &none), MIMIC_ESHAPE, "larger than the padded input");
    CHECK_ERR_PTR(mimic_conv(x, w, b, &none), MIMIC_ESHAPE, "bias of shape [5] must be [6]");
    CHECK_ERR_PTR(mimic_conv(x, w, NULL, &(mimic_conv_opts){.padding = {-1, 0}}), MIMIC_EARG, "padding -1 along H");
    CHECK_ERR_PTR(mimic_conv(x, w, NULL, &(mimic_conv_opts){.stride = {1, -2}}), MIMIC_EARG, "stride -2 along W");
    CHECK_ERR_PTR(mimic_conv(x, w, NULL, &(mimic_conv_opts){.groups = 2}), MIMIC_ESHAPE, "expects 8");
    CHECK_ERR_PTR(mimic_conv(x, w, NULL, &(mimic_conv_opts){.groups = 4}), MIMIC_ESHAPE, "not divisible by groups");
    CHECK_ERR_PTR(mimic_conv(x, w, NULL, &(mimic_conv_opts){.padding = {6, 0}, .circular = true}), MIMIC_ESHAPE,
                  "circular padding 6 along H exceeds the input size 5");
    mimic_tensor *w2 = mimic_zeros(SHAPE_OF(6, 4), MIMIC_F32);
    CHECK_ERR_PTR(mimic_conv(x, w2, NULL, &none), MIMIC_ESHAPE, "1 to 3 kernel dims");
    mimic_tensor_free(w2);
    mimic_tensor *u = mimic_zeros(SHAPE_OF(2, 6, 3, 3), MIMIC_F32);
    CHECK_ERR_PTR(mimic_conv_transpose(u, w, NULL, &none, (int64_t[]){1, 0}), MIMIC_EARG, "output_padding 1 along H");
    CHECK_ERR_PTR(mimic_conv_transpose(x, w, NULL, &none, NULL), MIMIC_ESHAPE, "has 4 channels but weight");
    mimic_pool_opts p = {.kernel = {2, 2}, .padding = {2, 0}};
    CHECK_ERR_PTR(mimic_max_pool(x, 2, &p, NULL), MIMIC_EARG, "half the kernel size");
    CHECK_ERR_PTR(mimic_avg_pool(x, 2, &(mimic_pool_opts){.kernel = {6, 1}}), MIMIC_ESHAPE, "larger than the padded");
    CHECK_ERR_PTR(mimic_avg_pool(x, 2, &(mimic_pool_opts){.kernel = {0, 1}}), MIMIC_EARG, "kernel size 0 along H");
    CHECK_ERR_PTR(mimic_max_pool(x, 3, &(mimic_pool_opts){.kernel = {2, 2, 2}}, NULL), MIMIC_ESHAPE, "must have 5 dims");
    mimic_tensor *fr[] = {x, w, x3, wi, w7, b, u};
    for (size_t i = 0; i < sizeof fr / sizeof fr[0]; i++)
        mimic_tensor_free(fr[i]);
}

/* --- gradients in 1-D and 3-D -------------------------------------------------------------- */

static double fd_worst(fd_fn f, mimic_tensor **in, int nin) { return fd_worst_error(&rng, NULL, f, in, nin); }

static mimic_tensor *g_conv1d(mimic_tensor *const *in)
{
    mimic_conv_opts o = {.stride = {2}, .padding = {3}, .dilation = {2}, .circular = true};
    return mimic_conv(in[0], in[1], in[2], &o);
}
static mimic_tensor *g_conv3d(mimic_tensor *const *in)
{
    mimic_conv_opts o = {.stride = {2, 1, 1}, .padding = {1, 0, 1}, .dilation = {1, 2, 1}, .groups = 2};
    return mimic_conv(in[0], in[1], in[2], &o);
}
static mimic_tensor *g_convT1d(mimic_tensor *const *in)
{
    mimic_conv_opts o = {.stride = {3}, .padding = {1}};
    return mimic_conv_transpose(in[0], in[1], in[2], &o, (int64_t[]){2});
}
static mimic_tensor *g_convW3d(mimic_tensor *const *in)
{
    mimic_conv_opts o = {.padding = {1, 1, 1}, .circular = true};
    return mimic_conv_weight(in[0], in[1], (int64_t[]){3, 2, 3}, &o);
}
static mimic_tensor *g_pool3d(mimic_tensor *const *in)
{
    mimic_pool_opts o = {.kernel = {2, 3, 2}, .stride = {1, 2, 2}, .padding = {1, 1, 0}};
    mimic_tensor *a = mimic_max_pool(in[0], 3, &o, NULL), *b = mimic_avg_pool(in[0], 3, &o);
    mimic_tensor *r = a && b ? mimic_binary(MIMIC_ADD, a, b) : NULL;
    mimic_tensor_free(a);
    mimic_tensor_free(b);
    return r;
}
/* (x, w) -> convT(2 conv(x, w), w): the gradient of sum(conv(x, w)^2) in x,
 * as a function of both, i.e. conv and conv_transpose chained. */
static mimic_tensor *g_second(mimic_tensor *const *in)
{
    mimic_conv_opts o = {.stride = {2}, .padding = {1}};
    mimic_tensor *y = mimic_conv(in[0], in[1], NULL, &o);
    mimic_tensor *two_y = y ? mimic_binary(MIMIC_ADD, y, y) : NULL;
    mimic_tensor *r = two_y ? mimic_conv_transpose(two_y, in[1], NULL, &o, (int64_t[]){1}) : NULL;
    mimic_tensor_free(y);
    mimic_tensor_free(two_y);
    return r;
}

TEST(test_gradients_in_1d_and_3d)
{
    CHECK(fd_worst(g_conv1d, (mimic_tensor *[]){RAND(MIMIC_F64, 2, 2, 9), RAND(MIMIC_F64, 3, 2, 3), RAND(MIMIC_F64, 3)},
                   3) < 1e-6);
    CHECK(fd_worst(g_conv3d, (mimic_tensor *[]){RAND(MIMIC_F64, 1, 4, 4, 5, 3), RAND(MIMIC_F64, 2, 2, 2, 2, 3),
                                                RAND(MIMIC_F64, 2)},
                   3) < 1e-6);
    CHECK(fd_worst(g_convT1d, (mimic_tensor *[]){RAND(MIMIC_F64, 2, 3, 4), RAND(MIMIC_F64, 3, 2, 4), RAND(MIMIC_F64, 2)},
                   3) < 1e-6);
    CHECK(fd_worst(g_convW3d, (mimic_tensor *[]){RAND(MIMIC_F64, 2, 2, 3, 4, 3), RAND(MIMIC_F64, 2, 3, 3, 5, 3)}, 2) <
          1e-6);
    CHECK(fd_worst(g_pool3d, (mimic_tensor *[]){RAND(MIMIC_F64, 2, 2, 4, 5, 4)}, 1) < 1e-6);
    /* through conv and conv_transpose in a chain: (x, w) -> convT(2 conv(x, w), w) */
    CHECK(fd_worst(g_second, (mimic_tensor *[]){RAND(MIMIC_F64, 2, 2, 8), RAND(MIMIC_F64, 3, 2, 3)}, 2) < 1e-6);
}

/* With create_graph, conv's gradient is itself differentiable: d/dw of
 * sum(dL/dx * v), L = sum(conv(x, w)^2), against finite differences in w. */
static double second_objective(mimic_tensor *x, mimic_tensor *w, const mimic_tensor *v, mimic_tensor **gw)
{
    mimic_conv_opts o = {.padding = {1}, .circular = true};
    mimic_zero_grad(x);
    mimic_zero_grad(w);
    mimic_tensor *y = mimic_conv(x, w, NULL, &o), *sq = mimic_unary(MIMIC_SQUARE, y);
    mimic_tensor *L = mimic_reduce(MIMIC_SUM, sq, MIMIC_ALL_DIMS, false, 0);
    double r = NAN;
    if (mimic_backward(L, NULL, true) == MIMIC_OK && mimic_grad(x)) {
        mimic_tensor *gx = mimic_grad(x);
        mimic_tensor_retain(gx);
        mimic_tensor *p = mimic_binary(MIMIC_MUL, gx, v), *s = mimic_reduce(MIMIC_SUM, p, MIMIC_ALL_DIMS, false, 0);
        r = mimic_get(s, NULL);
        if (gw) {
            mimic_zero_grad(w);
            if (mimic_backward(s, NULL, false) == MIMIC_OK && mimic_grad(w)) {
                *gw = mimic_grad(w);
                mimic_tensor_retain(*gw);
            }
        }
        mimic_tensor_free(s);
        mimic_tensor_free(p);
        mimic_tensor_free(gx);
    }
    mimic_tensor_free(L);
    mimic_tensor_free(sq);
    mimic_tensor_free(y);
    return r;
}

TEST(test_second_derivative_through_create_graph)
{
    mimic_tensor *x = RAND(MIMIC_F64, 2, 2, 6), *w = RAND(MIMIC_F64, 3, 2, 3), *v = RAND(MIMIC_F64, 2, 2, 6);
    mimic_set_requires_grad(x, true);
    mimic_set_requires_grad(w, true);
    mimic_tensor *gw = NULL;
    second_objective(x, w, v, &gw);
    CHECK(gw != NULL);
    double worst = 0, h = 1e-5;
    for (int64_t i = 0; gw && i < mimic_numel(w); i++) {
        int64_t idx[3];
        fd_unravel(w, i, idx);
        double w0 = mimic_get(w, idx);
        mimic_set(w, idx, w0 + h);
        double fp = second_objective(x, w, v, NULL);
        mimic_set(w, idx, w0 - h);
        double fm = second_objective(x, w, v, NULL);
        mimic_set(w, idx, w0);
        double num = (fp - fm) / (2 * h), e = fabs(mimic_get(gw, idx) - num) / (1 + fabs(num));
        worst = e > worst ? e : worst;
    }
    CHECK(worst < 1e-6);
    mimic_zero_grad(x); /* a recorded gradient refers back to x: drop it before x goes */
    mimic_zero_grad(w);
    mimic_tensor_free(gw);
    mimic_tensor_free(v);
    mimic_tensor_free(w);
    mimic_tensor_free(x);
}

/* --- threads and tiles ------------------------------------------------------------------- */

/* Forward, input gradient and weight gradient of a conv big enough to be cut
 * into several tiles and threaded; returns them (caller frees). */
static void big_conv(mimic_tensor *x, mimic_tensor *w, mimic_tensor **y, mimic_tensor **gx, mimic_tensor **gw)
{
    mimic_conv_opts o = {.padding = {1, 1, 1}};
    mimic_zero_grad(x);
    mimic_zero_grad(w);
    *y = mimic_conv(x, w, NULL, &o);
    mimic_tensor *s = mimic_reduce(MIMIC_SUM, *y, MIMIC_ALL_DIMS, false, 0);
    mimic_backward(s, NULL, false);
    mimic_tensor_free(s);
    *gx = mimic_clone(mimic_grad(x));
    *gw = mimic_clone(mimic_grad(w));
}

static bool same_bits(const mimic_tensor *a, const mimic_tensor *b)
{
    return a && b && mimic_numel(a) == mimic_numel(b) &&
           memcmp(mimic_data(a), mimic_data(b), (size_t)mimic_numel(a) * mimic_dtype_size(a->dtype)) == 0;
}

TEST(test_results_do_not_depend_on_threads_or_tiles)
{
    /* 8 channels x 27 taps = 216 column rows, 16^3 positions: 4 tiles of up
     * to 75 output rows of 16 per sample; 12 samples make 8 weight-gradient
     * segments. */
    mimic_tensor *x = RAND(MIMIC_F32, 12, 8, 16, 16, 16), *w = RAND(MIMIC_F32, 4, 8, 3, 3, 3);
    mimic_set_requires_grad(x, true);
    mimic_set_requires_grad(w, true);
    int prev = mimic_get_num_threads();
    mimic_tensor *y1, *gx1, *gw1, *y2, *gx2, *gw2;
    mimic_set_num_threads(1);
    big_conv(x, w, &y1, &gx1, &gw1);
    mimic_set_num_threads(2);
    big_conv(x, w, &y2, &gx2, &gw2);
    mimic_set_num_threads(prev);
    CHECK(same_bits(y1, y2) && same_bits(gx1, gx2) && same_bits(gw1, gw2));
    /* and the tiled forward agrees with the direct loops on a few samples */
    mimic_tensor *x64 = mimic_to_dtype(x, MIMIC_F64), *w64 = mimic_to_dtype(w, MIMIC_F64);
    box xb = box_of(x->shape, 3), yb = box_of(y1->shape, 3);
    double *ry = calloc((size_t)mimic_numel(y1), sizeof(double));
    mimic_conv_opts o = {.padding = {1, 1, 1}};
    ref_conv(0, 3, &o, &xb, &yb, (int64_t[]){3, 3, 3}, mimic_data(x64), mimic_data(w64), ry, NULL);
    CHECK(worst_vs(y1, ry) < 1e-5);
    free(ry);
    mimic_tensor *fr[] = {x64, w64, y1, gx1, gw1, y2, gx2, gw2, w, x};
    for (size_t i = 0; i < sizeof fr / sizeof fr[0]; i++)
        mimic_tensor_free(fr[i]);
}

/* Every allocation of each op (recording a node, as the inputs require
 * grad) fails in turn: each must fail cleanly with ENOMEM (ASan checks for
 * leaks), then succeed with memory back; then the same for a whole backward. */
static mimic_tensor *oom_op(int which, mimic_tensor *x, mimic_tensor *w, mimic_tensor *b)
{
    mimic_conv_opts o = {.padding = {1, 1}, .circular = true};
    mimic_pool_opts po = {.kernel = {2, 2}};
    mimic_tensor *idx = NULL, *r = NULL;
    switch (which) {
    case 0: return mimic_conv(x, w, b, &o);
    case 1: return mimic_conv_transpose(x, w, b, &o, NULL);
    case 2: return mimic_conv_weight(x, x, (int64_t[]){3, 3}, &o);
    case 3:
        r = mimic_max_pool(x, 2, &po, &idx);
        mimic_tensor_free(idx);
        return r;
    case 4: return mimic_avg_pool(x, 2, &po);
    default: return mimic_upsample(x, 2, (int64_t[]){8, 6}, MIMIC_UPSAMPLE_LINEAR, false);
    }
}

TEST(test_out_of_memory)
{
    mimic_tensor *x = RAND(MIMIC_F32, 2, 4, 4, 3), *w = RAND(MIMIC_F32, 4, 4, 3, 3), *b = RAND(MIMIC_F32, 4);
    mimic_set_requires_grad(x, true);
    mimic_set_requires_grad(w, true);
    use_counting_allocator();
    for (int which = 0; which < 6; which++) {
        int successes = 0, failures = 0;
        for (long k = 0; k < 60 && successes == 0; k++) {
            alloc_fail_next(k);
            mimic_tensor *r = oom_op(which, x, w, b);
            oom_tally(r != NULL, &successes, &failures);
            alloc_fail_none();
            mimic_tensor_free(r);
        }
        if (!(successes == 1 && failures >= 1)) {
            fprintf(stderr, "op %d: %d successes, %d ENOMEM failures\n", which, successes, failures);
            check_failures++;
        }
    }
    /* the backward of a recorded conv: every allocation of the gradient formulas fails in turn */
    mimic_conv_opts o = {.padding = {1, 1}};
    int successes = 0, failures = 0;
    for (long k = 0; k < 200 && successes == 0; k++) {
        mimic_zero_grad(x);
        mimic_zero_grad(w);
        mimic_tensor *y = mimic_conv(x, w, b, &o), *s = mimic_reduce(MIMIC_SUM, y, MIMIC_ALL_DIMS, false, 0);
        alloc_fail_next(k);
        int rc = mimic_backward(s, NULL, false);
        alloc_fail_none();
        oom_tally(rc == MIMIC_OK, &successes, &failures);
        mimic_tensor_free(s);
        mimic_tensor_free(y);
    }
    CHECK(successes == 1 && failures >= 1);
    mimic_set_allocator(NULL);
    mimic_tensor_free(b);
    mimic_tensor_free(w);
    mimic_tensor_free(x);
}

int main(void)
{
    mimic_rng_init(&rng, 11);
    RUN(test_conv_matches_direct_loops);
    RUN(test_conv_small_example_by_hand);
    RUN(test_pooling_matches_direct_loops);
    RUN(test_max_pool_nan_wins_and_gradient_goes_to_the_maximum);
    RUN(test_output_shapes);
    RUN(test_errors_name_the_problem);
    RUN(test_gradients_in_1d_and_3d);
    RUN(test_second_derivative_through_create_graph);
    RUN(test_results_do_not_depend_on_threads_or_tiles);
    RUN(test_out_of_memory);
    return CHECK_DONE();
}
