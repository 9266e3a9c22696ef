/* The compiled training step (core/nn/trainstep.c): its gradients against
 * central finite differences of its own loss in float64 (every activation,
 * every loss, with and without bias, batch sizes on both sides of the
 * two-part split), its forward loss against a direct double-precision
 * evaluation, its updates against mimic_adam_update and a written-out SGD,
 * the same bits with 1 and 2 threads, no allocation per step, and errors. */
#include "check.h"
#include "testutil.h"

#include "mimic/optim.h"
#include "mimic/trainstep.h"

#include <stdlib.h>

#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#define COUNT_OF(a) (int)(sizeof(a) / sizeof((a)[0]))

static mimic_rng rng;

static mimic_tensor *vec(mimic_dtype dt, int64_t n) { return mimic_zeros(1, &n, dt); }
static mimic_tensor *randv(mimic_dtype dt, int64_t n, double lo, double hi)
{
    mimic_tensor *t = vec(dt, n);
    mimic_rng_uniform(&rng, t, lo, hi);
    return t;
}
static void set_at(mimic_tensor *t, int64_t i, double v)
{
    if (t->dtype == MIMIC_F32)
        ((float *)mimic_data(t))[i] = (float)v;
    else
        ((double *)mimic_data(t))[i] = v;
}
static double max_abs(const mimic_tensor *t)
{
    double m = 0;
    for (int64_t i = 0; i < mimic_numel(t); i++)
        m = fmax(m, fabs(at(t, i)));
    return m;
}
/* max |a - b| / max |b| */
static double rel_diff(const mimic_tensor *a, const mimic_tensor *b)
{
    double d = 0;
    for (int64_t i = 0; i < mimic_numel(a); i++)
        d = fmax(d, fabs(at(a, i) - at(b, i)));
    double m = max_abs(b);
    return m > 0 ? d / m : d;
}

/* A test network: nin -> hidden widths -> nout, activation `act` after each
 * hidden dense layer (and optionally after the last). */
typedef struct net {
    int nl;
    mimic_trainstep_layer l[8];
    int64_t nin, nout, np;
} net;

static net make_net(int64_t nin, const int64_t *widths, int nw, const char *act, double p0, double p1, bool bias,
                    bool last_act)
{
    net n = {.nin = nin};
    int64_t w = nin;
    for (int i = 0; i < nw; i++) {
        n.l[n.nl++] = (mimic_trainstep_layer){"dense", widths[i], bias, 0, 0};
        n.np += w * widths[i] + (bias ? widths[i] : 0);
        w = widths[i];
        if (i < nw - 1 || last_act)
            n.l[n.nl++] = (mimic_trainstep_layer){act, 0, false, p0, p1};
    }
    n.nout = w;
    return n;
}

/* Parameters as the layers' PyTorch-style default init, U(-1/sqrt(in), 1/sqrt(in)). */
static mimic_tensor *init_params(const net *n, mimic_dtype dt)
{
    mimic_tensor *p = vec(dt, n->np);
    int64_t off = 0, w = n->nin;
    for (int i = 0; i < n->nl; i++) {
        if (strcmp(n->l[i].type, "dense"))
            continue;
        int64_t cnt = w * n->l[i].out + (n->l[i].bias ? n->l[i].out : 0);
        double b = 1 / sqrt((double)w);
        for (int64_t k = 0; k < cnt; k++)
            set_at(p, off + k, -b + 2 * b * (double)(k * 7919 % 1000) / 1000.0); /* spread, deterministic */
        off += cnt;
        w = n->l[i].out;
    }
    mimic_tensor *r = randv(dt, n->np, -0.1, 0.1); /* plus noise: no two weights alike */
    for (int64_t k = 0; k < n->np; k++)
        set_at(p, k, at(p, k) + at(r, k));
    mimic_tensor_free(r);
    return p;
}

static double act_ref(double v, const char *a, double p0, double p1)
{
    if (!strcmp(a, "relu")) return v < 0 ? 0 : v;
    if (!strcmp(a, "leaky_relu")) return v < 0 ? v * p0 : v;
    if (!strcmp(a, "elu")) return v < 0 ? p0 * expm1(v) : v;
    if (!strcmp(a, "gelu")) return 0.5 * v * (1 + tanh(0.7978845608028654 * (v + 0.044715 * v * v * v)));
    if (!strcmp(a, "tanh")) return tanh(v);
    if (!strcmp(a, "sigmoid")) return 1 / (1 + exp(-v));
    if (!strcmp(a, "softplus")) return p0 * v > p1 ? v : log1p(exp(p0 * v)) / p0;
    return v;
}

/* The loss evaluated directly in double from the parameters (an independent forward). */
static double loss_ref(const net *n, const mimic_tensor *p, const mimic_tensor *x, const mimic_tensor *y, int64_t rows,
                       mimic_trainstep_loss kind, double delta, bool sum)
{
    double total = 0;
    double *h = malloc(64 * sizeof(double)), *o = malloc(64 * sizeof(double));
    for (int64_t r = 0; r < rows; r++) {
        int64_t w = n->nin, off = 0;
        for (int64_t k = 0; k < w; k++)
            h[k] = at(x, r * w + k);
        for (int i = 0; i < n->nl; i++) {
            const mimic_trainstep_layer *l = &n->l[i];
            if (!strcmp(l->type, "dense")) {
                for (int64_t j = 0; j < l->out; j++) {
                    double s = l->bias ? at(p, off + w * l->out + j) : 0;
                    for (int64_t k = 0; k < w; k++)
                        s += at(p, off + j * w + k) * h[k];
                    o[j] = s;
                }
                off += w * l->out + (l->bias ? l->out : 0);
                w = l->out;
                memcpy(h, o, (size_t)w * sizeof(double));
            } else {
                for (int64_t k = 0; k < w; k++)
                    h[k] = act_ref(h[k], l->type, l->p0, l->p1);
            }
        }
        for (int64_t k = 0; k < w; k++) {
            double d = h[k] - at(y, r * w + k), ad = fabs(d);
            total += kind == MIMIC_LOSS_MSE ? d * d : kind == MIMIC_LOSS_L1 ? ad
                     : ad <= delta ? 0.5 * d * d : delta * (ad - 0.5 * delta);
        }
    }
    free(h), free(o);
    return sum ? total : total / (double)(rows * n->nout);
}

static const struct { const char *name; double p0, p1; } ACTS[] = {
    {"relu"}, {"leaky_relu", 0.2}, {"elu", 1.3}, {"gelu"}, {"tanh"}, {"sigmoid"}, {"softplus", 1.5, 2.0}, {"identity"},
};

/* float64 gradients against central differences of the step's own loss, and
 * that loss against loss_ref, for every activation x loss x bias x batch. */
TEST(gradients_vs_finite_differences)
{
    const int64_t widths[] = {5, 4, 2};
    const int64_t batches[] = {1, 7, 70}; /* 70: two parts */
    const mimic_trainstep_loss losses[] = {MIMIC_LOSS_MSE, MIMIC_LOSS_L1, MIMIC_LOSS_HUBER};
    for (int a = 0; a < COUNT_OF(ACTS); a++)
        for (int bias = 0; bias < 2; bias++)
            for (int li = 0; li < 3; li++)
                for (int bi = 0; bi < 3; bi++) {
                    net n = make_net(3, widths, 3, ACTS[a].name, ACTS[a].p0, ACTS[a].p1, bias, a == 5);
                    int64_t rows = batches[bi];
                    mimic_tensor *p = init_params(&n, MIMIC_F64), *g = vec(MIMIC_F64, n.np);
                    mimic_tensor *x = randv(MIMIC_F64, rows * n.nin, -2, 2), *y = randv(MIMIC_F64, rows * n.nout, -1, 1);
                    mimic_trainstep *ts = mimic_trainstep_new(MIMIC_F64, n.nin, n.l, n.nl, p, g, 80);
                    CHECK_PTR(ts);
                    if (!ts)
                        continue;
                    bool sum = bi == 1;
                    double delta = 0.3;
                    CHECK_OK(mimic_trainstep_set_loss(ts, losses[li], delta, sum));
                    double loss, lp, lm;
                    CHECK_OK(mimic_trainstep_step(ts, mimic_data(x), mimic_data(y), rows, NULL, &loss));
                    double ref = loss_ref(&n, p, x, y, rows, losses[li], delta, sum);
                    CHECK_NEAR(loss, ref, 1e-12 * fmax(1, fabs(ref)));
                    mimic_tensor *fd = vec(MIMIC_F64, n.np), *g0 = mimic_clone(g);
                    for (int64_t k = 0; k < n.np; k++) {
                        double v = at(p, k), h = 1e-6;
                        set_at(p, k, v + h);
                        mimic_trainstep_step(ts, mimic_data(x), mimic_data(y), rows, NULL, &lp);
                        set_at(p, k, v - h);
                        mimic_trainstep_step(ts, mimic_data(x), mimic_data(y), rows, NULL, &lm);
                        set_at(p, k, v);
                        set_at(fd, k, (lp - lm) / (2 * h));
                    }
                    double err = rel_diff(g0, fd);
                    if (!(err < 1e-6))
                        fprintf(stderr, "  %s bias=%d loss=%d rows=%lld: gradient error %g\n", ACTS[a].name, bias, li,
                                (long long)rows, err);
                    CHECK(err < 1e-6);
                    mimic_trainstep_free(ts);
                    mimic_tensor_free(p), mimic_tensor_free(g), mimic_tensor_free(x), mimic_tensor_free(y);
                    mimic_tensor_free(fd), mimic_tensor_free(g0);
                }
}

/* Adam, AdamW (and amsgrad) equal mimic_adam_update on the step's gradients;
 * SGD (momentum, dampening, nesterov, weight decay) a written-out loop in
 * double; over several steps, both dtypes. */
TEST(updates)
{
    const int64_t widths[] = {6, 3};
    for (int d = 0; d < 2; d++) {
        mimic_dtype dt = d ? MIMIC_F64 : MIMIC_F32;
        double tol = d ? 1e-14 : 1e-6;
        for (int kind = 0; kind < 5; kind++) {
            net n = make_net(4, widths, 2, "tanh", 0, 0, true, false);
            mimic_tensor *p = init_params(&n, dt), *g = vec(dt, n.np);
            mimic_tensor *pr = mimic_clone(p), *gr = vec(dt, n.np);
            mimic_tensor *m = vec(dt, n.np), *v = vec(dt, n.np), *vm = vec(dt, n.np);
            mimic_tensor *mr = vec(dt, n.np), *vr = vec(dt, n.np), *vmr = vec(dt, n.np);
            mimic_tensor *buf = vec(dt, n.np);
            double *bufr = calloc((size_t)n.np, sizeof(double));
            mimic_trainstep *ts = mimic_trainstep_new(dt, n.nin, n.l, n.nl, p, g, 100);
            mimic_trainstep *tr = mimic_trainstep_new(dt, n.nin, n.l, n.nl, pr, gr, 100);
            mimic_tensor *x = randv(dt, 100 * n.nin, -1, 1), *y = randv(dt, 100 * n.nout, -1, 1);
            for (int step = 1; step <= 4; step++) {
                int64_t rows = step == 4 ? 37 : 100;
                mimic_trainstep_optim o = {.lr = 0.01, .beta1 = 0.9, .beta2 = 0.99, .eps = 1e-8, .step = step};
                o.kind = kind == 0 ? MIMIC_OPTIM_ADAM : kind == 1 ? MIMIC_OPTIM_ADAMW : kind == 2 ? MIMIC_OPTIM_ADAM
                                                                                                  : MIMIC_OPTIM_SGD;
                o.weight_decay = kind == 0 ? 0 : 0.05;
                o.exp_avg = m, o.exp_avg_sq = v, o.max_exp_avg_sq = kind == 2 ? vm : NULL;
                o.momentum = 0.9, o.dampening = kind == 4 ? 0.1 : 0, o.nesterov = kind == 3;
                o.momentum_buffer = buf, o.init_buffer = step == 1;
                double l, lr_;
                CHECK_OK(mimic_trainstep_step(ts, mimic_data(x), mimic_data(y), rows, &o, &l));
                CHECK_OK(mimic_trainstep_step(tr, mimic_data(x), mimic_data(y), rows, NULL, &lr_));
                CHECK(l == lr_);
                CHECK(rel_diff(g, gr) == 0); /* the gradient the update used is left in the buffer */
                CHECK(rel_diff(p, pr) > 0);  /* and it did update */
                if (o.kind != MIMIC_OPTIM_SGD) {
                    CHECK_OK(mimic_adam_update(pr, gr, mr, vr, kind == 2 ? vmr : NULL, o.lr, o.beta1, o.beta2, o.eps,
                                               o.weight_decay, o.kind == MIMIC_OPTIM_ADAMW, step));
                } else {
                    for (int64_t i = 0; i < n.np; i++) {
                        double gi = at(gr, i) + o.weight_decay * at(pr, i);
                        bufr[i] = step == 1 ? gi : o.momentum * bufr[i] + (1 - o.dampening) * gi;
                        double u = o.nesterov ? gi + o.momentum * bufr[i] : bufr[i];
                        set_at(pr, i, at(pr, i) - o.lr * u);
                    }
                }
                /* Adam: the same operations as mimic_adam_update, so the same bits. */
                double err = rel_diff(p, pr), want = o.kind == MIMIC_OPTIM_SGD ? tol : 0;
                if (!(err <= want))
                    fprintf(stderr, "  dtype %d kind %d step %d: parameter error %g\n", d, kind, step, err);
                CHECK(err <= want);
                CHECK_OK(mimic_copy(pr, p)); /* the next step starts from the same parameters */
            }
            mimic_trainstep_free(ts), mimic_trainstep_free(tr);
            mimic_tensor *all[] = {p, g, pr, gr, m, v, vm, mr, vr, vmr, buf, x, y};
            for (int i = 0; i < COUNT_OF(all); i++)
                mimic_tensor_free(all[i]);
            free(bufr);
        }
    }
}

/* 1 thread, 2 threads (forced, and chosen by timing) give the same bits (the
 * batch parts do not depend on it), and after warm-up a step allocates nothing. */
TEST(threads_and_allocation)
{
    const int64_t widths[] = {64, 64, 10};
    for (int d = 0; d < 2; d++) {
        mimic_dtype dt = d ? MIMIC_F64 : MIMIC_F32;
        net n = make_net(10, widths, 3, "leaky_relu", 0.2, 0, true, false);
        mimic_tensor *p0 = init_params(&n, dt), *ps[2] = {mimic_clone(p0), mimic_clone(p0)};
        mimic_tensor *x = randv(dt, 256 * n.nin, -1, 1), *y = randv(dt, 256 * n.nout, -1, 1);
        double losses[3][6];
        mimic_tensor *p2 = mimic_clone(p0);
        for (int t = 0; t < 3; t++) {
            mimic_set_num_threads(t ? 2 : 1);
            mimic_tensor *g = vec(dt, n.np), *m = vec(dt, n.np), *v = vec(dt, n.np);
            mimic_trainstep *ts = mimic_trainstep_new(dt, n.nin, n.l, n.nl, t < 2 ? ps[t] : p2, g, 256);
            if (t == 2)
                CHECK_OK(mimic_trainstep_set_threads(ts, 2));
            long before = 0;
            for (int s = 0; s < 6; s++) {
                if (s == 1)
                    before = alloc_count(); /* after the first step: OpenMP and OpenBLAS set up */
                mimic_trainstep_optim o = {.kind = MIMIC_OPTIM_ADAM, .lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999,
                                           .eps = 1e-8, .step = s + 1, .exp_avg = m, .exp_avg_sq = v};
                CHECK_OK(mimic_trainstep_step(ts, mimic_data(x), mimic_data(y), s == 5 ? 100 : 256, &o, &losses[t][s]));
            }
            CHECK(alloc_count() == before);
            mimic_trainstep_free(ts);
            mimic_tensor_free(g), mimic_tensor_free(m), mimic_tensor_free(v);
        }
        mimic_set_num_threads(2);
        for (int s = 0; s < 6; s++)
            CHECK(losses[0][s] == losses[1][s] && losses[0][s] == losses[2][s]);
        CHECK(rel_diff(ps[0], ps[1]) == 0 && rel_diff(ps[0], p2) == 0);
        mimic_tensor_free(p2);
        CHECK(rel_diff(ps[0], p0) > 0);
        mimic_tensor_free(p0), mimic_tensor_free(ps[0]), mimic_tensor_free(ps[1]);
        mimic_tensor_free(x), mimic_tensor_free(y);
    }
}

/* A non-finite loss leaves gradients and parameters alone and is reported. */
TEST(nonfinite_loss)
{
    const int64_t widths[] = {4, 2};
    net n = make_net(3, widths, 2, "relu", 0, 0, true, false);
    mimic_tensor *p = init_params(&n, MIMIC_F32), *g = vec(MIMIC_F32, n.np), *m = vec(MIMIC_F32, n.np),
                 *v = vec(MIMIC_F32, n.np);
    mimic_tensor *p0 = mimic_clone(p);
    float x[6] = {1, 2, 3, 4, 5, 6}, y[4] = {0, NAN, 0, 0};
    mimic_trainstep *ts = mimic_trainstep_new(MIMIC_F32, 3, n.l, n.nl, p, g, 8);
    mimic_trainstep_optim o = {.kind = MIMIC_OPTIM_ADAM, .lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8,
                               .step = 1, .exp_avg = m, .exp_avg_sq = v};
    double l = 0;
    CHECK_OK(mimic_trainstep_step(ts, x, y, 2, &o, &l));
    CHECK(isnan(l));
    CHECK(rel_diff(p, p0) == 0 && max_abs(g) == 0);
    mimic_trainstep_free(ts);
    mimic_tensor_free(p), mimic_tensor_free(g), mimic_tensor_free(m), mimic_tensor_free(v), mimic_tensor_free(p0);
}

TEST(errors)
{
    mimic_tensor *p = vec(MIMIC_F32, 4 * 3 + 3), *g = vec(MIMIC_F32, 4 * 3 + 3), *g64 = vec(MIMIC_F64, 15);
    mimic_trainstep_layer ok[] = {{"dense", 3, true}, {"relu"}};
    mimic_trainstep_layer conv[] = {{"conv2d", 3}};
    mimic_trainstep_layer act_first[] = {{"relu"}, {"dense", 3, true}};
    mimic_trainstep_layer two_acts[] = {{"dense", 3, true}, {"relu"}, {"tanh"}};
    mimic_trainstep_layer ln[] = {{"dense", 3, true}, {"layernorm"}};
    CHECK_ERR_PTR(mimic_trainstep_new(MIMIC_F32, 4, conv, 1, p, g, 8), MIMIC_EARG, "'conv2d'");
    CHECK_ERR_PTR(mimic_trainstep_new(MIMIC_F32, 4, ln, 2, p, g, 8), MIMIC_EARG, "train other models with autograd");
    CHECK_ERR_PTR(mimic_trainstep_new(MIMIC_F32, 4, act_first, 2, p, g, 8), MIMIC_EARG, "before any dense layer");
    CHECK_ERR_PTR(mimic_trainstep_new(MIMIC_F32, 4, two_acts, 3, p, g, 8), MIMIC_EARG, "follows another activation");
    CHECK_ERR_PTR(mimic_trainstep_new(MIMIC_F32, 5, ok, 2, p, g, 8), MIMIC_EARG, "of 18 elements");
    CHECK_ERR_PTR(mimic_trainstep_new(MIMIC_F32, 4, ok, 2, p, g64, 8), MIMIC_EARG, "flat buffers");
    CHECK_ERR_PTR(mimic_trainstep_new(MIMIC_F32, 4, ok, 2, p, p, 8), MIMIC_EARG, "two distinct");
    CHECK_ERR_PTR(mimic_trainstep_new(MIMIC_I64, 4, ok, 2, p, g, 8), MIMIC_EDTYPE, "float32 or float64");
    CHECK_ERR_PTR(mimic_trainstep_new(MIMIC_F32, 4, ok, 2, p, g, 0), MIMIC_EARG, "max_batch");
    mimic_trainstep *ts = mimic_trainstep_new(MIMIC_F32, 4, ok, 2, p, g, 8);
    CHECK_PTR(ts);
    float x[9 * 4] = {0}, y[9 * 3] = {0};
    double l;
    CHECK_ERR(mimic_trainstep_step(ts, x, y, 9, NULL, &l), MIMIC_EARG, "1..8");
    CHECK_ERR(mimic_trainstep_set_loss(ts, MIMIC_LOSS_HUBER, 0, false), MIMIC_EARG, "delta");
    CHECK_ERR(mimic_trainstep_set_threads(ts, 3), MIMIC_EARG, "0 (choose by timing), 1 or 2");
    mimic_trainstep_optim o = {.kind = MIMIC_OPTIM_ADAM, .lr = 1e-3, .step = 1};
    CHECK_ERR(mimic_trainstep_step(ts, x, y, 2, &o, &l), MIMIC_EARG, "exp_avg");
    o.kind = MIMIC_OPTIM_SGD, o.momentum = 0.9;
    CHECK_ERR(mimic_trainstep_step(ts, x, y, 2, &o, &l), MIMIC_EARG, "momentum_buffer");
    mimic_trainstep_free(ts);
    mimic_tensor_free(p), mimic_tensor_free(g), mimic_tensor_free(g64);
}

/* Out of memory while creating fails cleanly (ASan sees leaks). */
TEST(out_of_memory)
{
    const int64_t widths[] = {8, 2};
    net n = make_net(3, widths, 2, "tanh", 0, 0, true, false);
    mimic_tensor *p = vec(MIMIC_F32, n.np), *g = vec(MIMIC_F32, n.np);
    int ok = 0, failed = 0, tries = 0;
    for (int budget = 0; budget < 6; budget++, tries++) {
        use_budget_allocator(budget);
        mimic_trainstep *ts = mimic_trainstep_new(MIMIC_F32, 3, n.l, n.nl, p, g, 16);
        oom_tally(ts != NULL, &ok, &failed);
        mimic_trainstep_free(ts);
    }
    use_counting_allocator();
    CHECK(ok + failed == tries && ok > 0 && failed > 0);
    mimic_tensor_free(p), mimic_tensor_free(g);
}

int main(void)
{
    use_counting_allocator();
    mimic_rng_init(&rng, 7);
    mimic_set_num_threads(2);
    RUN(gradients_vs_finite_differences);
    RUN(updates);
    RUN(threads_and_allocation);
    RUN(nonfinite_loss);
    RUN(errors);
    RUN(out_of_memory);
    return CHECK_DONE();
}
