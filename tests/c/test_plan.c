/* The inference model and plan (core/nn): every layer type against a
 * reference computed with tensor ops in float64 from the model's own records,
 * batch sizes around the chunk size, no allocation after warm-up, the
 * workspace formula, deterministic mode, errors and NaN inputs. */
#include "check.h"
#include "testutil.h"

#include "mimic/model.h"
#include "mimic/ops.h"

#include <stdlib.h>

/* Model specs read as tables, {"dense", 12} or {"relu"}: fields left out are 0. */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#define MIMIC_COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

static mimic_rng rng;

/* A layer of a test model: "dense" (out), an activation name (a0, a1),
 * "layernorm" (a0 = eps; a1 != 0: affine), "batchnorm", "begin", "end". */
typedef struct spec {
    const char *type;
    int64_t out;
    double a0, a1;
} spec;

/* Random weights of the model's dtype, uniform in [lo, hi). */
static void *rand_buf(mimic_dtype dt, int64_t n, double lo, double hi)
{
    mimic_tensor *t = mimic_empty(1, &n, dt);
    mimic_rng_uniform(&rng, t, lo, hi);
    size_t bytes = (size_t)n * mimic_dtype_size(dt);
    void *p = malloc(bytes);
    memcpy(p, mimic_data(t), bytes);
    mimic_tensor_free(t);
    return p;
}

static mimic_model *build(mimic_dtype dt, int64_t nin, const spec *s, int ns)
{
    mimic_model *m = mimic_model_new(dt, nin);
    int64_t w = nin;
    for (int i = 0; i < ns; i++) {
        int rc = MIMIC_OK, act = mimic_activation_parse(s[i].type);
        if (strcmp(s[i].type, "dense") == 0) {
            double bound = 1 / sqrt((double)w);
            void *W = rand_buf(dt, s[i].out * w, -bound, bound), *b = rand_buf(dt, s[i].out, -bound, bound);
            rc = mimic_model_add_dense(m, s[i].out, W, s[i].a0 ? NULL : b); /* a0 != 0: no bias */
            free(W), free(b);
            w = s[i].out;
        } else if (act >= 0) {
            rc = mimic_model_add_activation(m, (mimic_activation)act, s[i].a0, s[i].a1);
        } else if (strcmp(s[i].type, "layernorm") == 0) {
            void *g = rand_buf(dt, w, 0.5, 1.5), *b = rand_buf(dt, w, -0.5, 0.5);
            rc = s[i].a1 ? mimic_model_add_layernorm(m, s[i].a0, g, b) : mimic_model_add_layernorm(m, s[i].a0, NULL, NULL);
            free(g), free(b);
        } else if (strcmp(s[i].type, "batchnorm") == 0) {
            void *mu = rand_buf(dt, w, -0.5, 0.5), *var = rand_buf(dt, w, 0.5, 2), *g = rand_buf(dt, w, 0.5, 1.5),
                 *b = rand_buf(dt, w, -0.5, 0.5);
            rc = mimic_model_add_batchnorm(m, 1e-5, mu, var, g, b);
            free(mu), free(var), free(g), free(b);
        } else if (strcmp(s[i].type, "begin") == 0) {
            rc = mimic_model_begin_residual(m);
        } else {
            rc = mimic_model_end_residual(m);
        }
        CHECK_OK(rc);
    }
    return m;
}

/* A record's weight k as a float64 tensor [rows, cols]. */
static mimic_tensor *weight64(const mimic_model *m, const mimic_layer_info *li, int k)
{
    int64_t shape[2] = {li->weight_rows[k], li->weight_cols[k]};
    mimic_tensor *t = mimic_wrap((void *)(uintptr_t)li->weight[k], 2, shape, NULL, mimic_model_dtype(m), NULL, NULL);
    mimic_tensor *d = mimic_to_dtype(t, MIMIC_F64);
    mimic_tensor_free(t);
    return d;
}

static double act_ref(const char *type, double v, double a0, double a1)
{
    if (v != v)
        return v;
    if (!strcmp(type, "relu")) return v > 0 ? v : 0;
    if (!strcmp(type, "leaky_relu")) return v > 0 ? v : a0 * v;
    if (!strcmp(type, "elu")) return v > 0 ? v : a0 * (exp(v) - 1);
    if (!strcmp(type, "gelu")) return 0.5 * v * (1 + tanh(0.79788456080286535588 * (v + 0.044715 * v * v * v)));
    if (!strcmp(type, "tanh")) return tanh(v);
    if (!strcmp(type, "sigmoid")) return 1 / (1 + exp(-v));
    if (!strcmp(type, "softplus")) return a0 * v > a1 ? v : log1p(exp(a0 * v)) / a0;
    return v;
}

/* The reference: each record applied with tensor ops (matmul, add, mul) in
 * float64; per-element activations and row statistics with libm. Returns a
 * new [n, nout] float64 tensor. */
static mimic_tensor *reference(const mimic_model *m, const mimic_tensor *x_in)
{
    mimic_tensor *x = mimic_to_dtype(x_in, MIMIC_F64), *stack[8];
    int sp = 0;
    for (int i = 0; i < mimic_model_num_layers(m); i++) {
        mimic_layer_info li;
        CHECK_OK(mimic_model_layer(m, i, &li));
        mimic_tensor *y = NULL;
        if (!strcmp(li.type, "dense")) {
            mimic_tensor *W = weight64(m, &li, 0), *Wt = mimic_transpose(W, 0, 1);
            y = mimic_matmul(x, Wt);
            mimic_tensor_free(Wt), mimic_tensor_free(W);
            if (li.weight[1]) {
                mimic_tensor *b = weight64(m, &li, 1);
                CHECK_OK(mimic_binary_out(y, MIMIC_ADD, y, b));
                mimic_tensor_free(b);
            }
        } else if (!strcmp(li.type, "batchnorm1d")) {
            mimic_tensor *s = weight64(m, &li, 0), *t = weight64(m, &li, 1), *xs = mimic_binary(MIMIC_MUL, x, s);
            y = mimic_binary(MIMIC_ADD, xs, t);
            mimic_tensor_free(s), mimic_tensor_free(t), mimic_tensor_free(xs);
        } else if (!strcmp(li.type, "residual_begin")) {
            mimic_tensor_retain(x);
            stack[sp++] = x;
            continue;
        } else if (!strcmp(li.type, "residual_end")) {
            mimic_tensor *s = stack[--sp];
            y = mimic_binary(MIMIC_ADD, s, x);
            mimic_tensor_free(s);
        } else {
            y = mimic_clone(x);
            double *d = mimic_data(y);
            int64_t n = y->shape[0], w = y->shape[1];
            if (!strcmp(li.type, "layernorm")) {
                mimic_tensor *g = li.weight[0] ? weight64(m, &li, 0) : NULL, *b = li.weight[1] ? weight64(m, &li, 1) : NULL;
                for (int64_t r = 0; r < n; r++) {
                    double mu = 0, var = 0;
                    for (int64_t j = 0; j < w; j++) mu += d[r * w + j] / (double)w;
                    for (int64_t j = 0; j < w; j++) var += (d[r * w + j] - mu) * (d[r * w + j] - mu) / (double)w;
                    for (int64_t j = 0; j < w; j++) {
                        double v = (d[r * w + j] - mu) / sqrt(var + li.attr[0]);
                        d[r * w + j] = g ? v * at(g, j) + at(b, j) : v;
                    }
                }
                mimic_tensor_free(g), mimic_tensor_free(b);
            } else {
                for (int64_t k = 0; k < n * w; k++) d[k] = act_ref(li.type, d[k], li.attr[0], li.attr[1]);
            }
        }
        mimic_tensor_free(x);
        x = y;
    }
    return x;
}

/* Runs the plan on a random [n, nin] input and compares with the reference. */
static void check_model(const mimic_model *m, mimic_plan *p, int64_t n, double tol)
{
    mimic_dtype dt = mimic_model_dtype(m);
    int64_t nin = mimic_model_nin(m), nout = mimic_model_nout(m);
    mimic_tensor *x = RAND(dt, n, nin);
    mimic_tensor *y = mimic_empty(2, (int64_t[]){n, nout}, dt);
    CHECK_OK(mimic_plan_run(p, mimic_data(x), n, mimic_data(y)));
    mimic_tensor *r = reference(m, x);
    double worst = 0;
    for (int64_t k = 0; k < n * nout; k++) {
        double e = fabs(at(y, k) - at(r, k)) / (1 + fabs(at(r, k)));
        if (!(e <= worst)) worst = e;
    }
    if (!(worst <= tol)) {
        fprintf(stderr, "  n=%lld %s: worst relative error %g > %g\n", (long long)n, mimic_dtype_name(dt), worst, tol);
        check_failures++;
    }
    mimic_tensor_free(x), mimic_tensor_free(y), mimic_tensor_free(r);
}

/* Each model at batch sizes 1, below, at, above and far above the chunk, f32 and f64. */
static void check_spec(int64_t nin, const spec *s, int ns)
{
    static const int64_t sizes[] = {1, 5, 16, 17, 37, 100};
    for (int d = 0; d < 2; d++) {
        mimic_dtype dt = d ? MIMIC_F64 : MIMIC_F32;
        mimic_model *m = build(dt, nin, s, ns);
        for (int det = 0; det < 2; det++) {
            mimic_plan *p = mimic_plan_new(m, 16);
            CHECK_PTR(p);
            CHECK_OK(mimic_plan_set_deterministic(p, det));
            for (size_t k = 0; p && k < MIMIC_COUNT_OF(sizes); k++)
                check_model(m, p, sizes[k], dt == MIMIC_F32 ? 2e-5 : 1e-12);
            mimic_plan_free(p);
        }
        mimic_model_free(m);
    }
}
#define CHECK_SPEC(nin, ...) check_spec(nin, (spec[]){__VA_ARGS__}, (int)(sizeof((spec[]){__VA_ARGS__}) / sizeof(spec)))

TEST(dense_layers)
{
    CHECK_SPEC(5, {"dense", 12});
    CHECK_SPEC(5, {"dense", 12, 1}); /* no bias */
    CHECK_SPEC(7, {"dense", 64}, {"leaky_relu", 0, 0.2}, {"dense", 64}, {"leaky_relu", 0, 0.2}, {"dense", 33});
    CHECK_SPEC(3, {"dense", 1}, {"dense", 40}, {"dense", 2});
}

TEST(activations)
{
    static const spec acts[] = {{"relu"}, {"leaky_relu", 0, 0.2}, {"elu", 0, 0.7}, {"gelu"}, {"tanh"},
                                {"sigmoid"}, {"softplus", 0, 2, 1.5}, {"identity"}};
    for (size_t i = 0; i < MIMIC_COUNT_OF(acts); i++) {
        spec a = acts[i];
        /* fused after dense, standalone on the input, and twice in a row (the second not fused) */
        CHECK_SPEC(5, {"dense", 9}, a);
        CHECK_SPEC(5, a);
        CHECK_SPEC(5, {"dense", 9}, a, a, {"dense", 4});
    }
}

TEST(norms)
{
    CHECK_SPEC(6, {"dense", 10}, {"layernorm", 0, 1e-5, 1}, {"relu"}, {"dense", 3});
    CHECK_SPEC(6, {"layernorm", 0, 1e-3, 0}, {"dense", 3});
    CHECK_SPEC(6, {"dense", 10}, {"batchnorm"}, {"tanh"}, {"dense", 3});
    CHECK_SPEC(6, {"batchnorm"});
}

TEST(residual)
{
    CHECK_SPEC(6, {"dense", 8}, {"begin"}, {"dense", 8}, {"relu"}, {"begin"}, {"layernorm", 0, 1e-5, 1}, {"end"},
               {"tanh"}, {"end"}, {"dense", 3});
    CHECK_SPEC(4, {"begin"}, {"dense", 4}, {"end"});                   /* x is the caller's input */
    CHECK_SPEC(4, {"begin"}, {"end"}, {"relu"});                       /* empty block: 2x, then fused relu */
    CHECK_SPEC(4, {"dense", 5}, {"begin"}, {"gelu"}, {"end"}, {"dense", 2}); /* in-place op must not touch x */
    CHECK_SPEC(4, {"begin"}, {"begin"}, {"sigmoid"}, {"end"}, {"dense", 4}, {"end"});
}

TEST(trivial_models)
{
    CHECK_SPEC(3, {"identity"});
    mimic_model *m = mimic_model_new(MIMIC_F64, 3); /* no layers: a copy */
    mimic_plan *p = mimic_plan_new(m, 0);
    check_model(m, p, 4, 0);
    CHECK(mimic_plan_nout(p) == 3);
    mimic_plan_free(p);
    mimic_model_free(m);
}

TEST(records)
{
    mimic_model *m = build(MIMIC_F32, 4, (spec[]){{"dense", 6}, {"leaky_relu", 0, 0.2}, {"softplus", 0, 2, 10}}, 3);
    mimic_layer_info li;
    CHECK(mimic_model_num_layers(m) == 3 && mimic_model_nin(m) == 4 && mimic_model_nout(m) == 6);
    CHECK_OK(mimic_model_layer(m, 0, &li));
    CHECK(!strcmp(li.type, "dense") && li.in == 4 && li.out == 6 && li.nweights == 2);
    CHECK(li.weight_rows[0] == 6 && li.weight_cols[0] == 4 && !strcmp(li.weight_name[1], "bias"));
    CHECK_OK(mimic_model_layer(m, 1, &li));
    CHECK(!strcmp(li.type, "leaky_relu") && li.attr[0] == 0.2 && li.nweights == 0);
    CHECK_OK(mimic_model_layer(m, 2, &li));
    CHECK(!strcmp(li.type, "softplus") && li.attr[0] == 2 && li.attr[1] == 10);
    CHECK_ERR(mimic_model_layer(m, 3, &li), MIMIC_EARG, "out of range");
    CHECK(mimic_activation_parse("gelu") == MIMIC_ACT_GELU && mimic_activation_parse("swish") == -1);
    mimic_model_free(m);
}

static mimic_model *mlp(mimic_dtype dt)
{
    return build(dt, 7, (spec[]){{"dense", 64}, {"leaky_relu", 0, 0.2}, {"dense", 64}, {"leaky_relu", 0, 0.2},
                                 {"dense", 256}}, 5);
}

TEST(no_allocation_after_warmup)
{
    mimic_set_num_threads(2);
    for (int d = 0; d < 2; d++) {
        mimic_model *m = build(d ? MIMIC_F64 : MIMIC_F32, 6,
                               (spec[]){{"dense", 8}, {"begin"}, {"dense", 8}, {"gelu"}, {"layernorm", 0, 1e-5, 1},
                                        {"end"}, {"batchnorm"}, {"relu"}, {"dense", 3}}, 9);
        mimic_plan *p = mimic_plan_new(m, 32);
        size_t es = d ? 8 : 4;
        char *x = calloc(1000 * 6, es), *y = calloc(1000 * 3, es);
        CHECK_OK(mimic_plan_run(p, x, 1000, y)); /* warm-up: OpenBLAS and OpenMP set themselves up */
        long before = alloc_count();
        for (int det = 0; det < 2; det++) {
            mimic_plan_set_deterministic(p, det);
            for (int64_t n = 1; n <= 1000; n = n * 3 + 1)
                CHECK_OK(mimic_plan_run(p, x, n, y));
        }
        CHECK(alloc_count() == before);
        free(x), free(y);
        mimic_plan_free(p);
        mimic_model_free(m);
    }
}

TEST(memory_formula)
{
    mimic_set_num_threads(2);
    mimic_model *m = mlp(MIMIC_F32);
    mimic_plan *p = mimic_plan_new(m, 100);
    /* slots * (2 + depth) * chunk * W * sizeof(float), depth 0, W = 256, each buffer rounded to 64 bytes */
    CHECK(mimic_plan_slots(p) == 2 && mimic_plan_chunk(p) == 100);
    CHECK(mimic_plan_workspace_bytes(p) == (size_t)2 * 2 * 100 * 256 * 4);
    CHECK(mimic_plan_weight_bytes(p) == (size_t)(7 * 64 + 64 + 64 * 64 + 64 + 64 * 256 + 256) * 4);
    mimic_plan_free(p);
    /* one dense layer writes straight into the output: no buffer at all */
    mimic_model *one = build(MIMIC_F64, 7, (spec[]){{"dense", 5}, {"relu"}}, 2);
    p = mimic_plan_new(one, 0);
    CHECK(mimic_plan_workspace_bytes(p) == 0);
    CHECK(mimic_plan_chunk(p) >= 32 && mimic_plan_chunk(p) % 16 == 0);
    mimic_plan_free(p);
    mimic_model_free(one);
    mimic_model_free(m);
}

/* Deterministic mode: every row's bits equal those of the row run alone. */
TEST(deterministic)
{
    mimic_model *m = build(MIMIC_F32, 7, (spec[]){{"dense", 37}, {"leaky_relu", 0, 0.2}, {"begin"}, {"dense", 37},
                                                  {"gelu"}, {"end"}, {"layernorm", 0, 1e-5, 1}, {"dense", 64},
                                                  {"batchnorm"}, {"elu", 0, 1}, {"dense", 5}}, 11);
    int64_t N = 1000;
    mimic_tensor *x = RAND(MIMIC_F32, N, 7);
    float *ref = malloc((size_t)N * 5 * sizeof(float)), *y = malloc((size_t)N * 5 * sizeof(float));
    mimic_set_num_threads(1);
    mimic_plan *p1 = mimic_plan_new(m, 64);
    mimic_plan_set_deterministic(p1, true);
    for (int64_t i = 0; i < N; i++)
        CHECK_OK(mimic_plan_run(p1, (float *)mimic_data(x) + i * 7, 1, ref + i * 5));
    static const int64_t sizes[] = {1, 7, 64, 1000};
    static const int64_t chunks[] = {0, 16, 64, 333};
    for (int thr = 1; thr <= 2; thr++) {
        mimic_set_num_threads(thr);
        for (size_t c = 0; c < MIMIC_COUNT_OF(chunks); c++) {
            mimic_plan *p = mimic_plan_new(m, chunks[c]);
            mimic_plan_set_deterministic(p, true);
            for (size_t s = 0; s < MIMIC_COUNT_OF(sizes); s++) {
                for (int64_t i0 = 0; i0 + sizes[s] <= N; i0 += sizes[s])
                    CHECK_OK(mimic_plan_run(p, (float *)mimic_data(x) + i0 * 7, sizes[s], y + i0 * 5));
                int64_t done = N / sizes[s] * sizes[s];
                if (memcmp(y, ref, (size_t)done * 5 * sizeof(float)) != 0) {
                    fprintf(stderr, "  threads %d chunk %lld batch %lld: not bit-identical\n", thr,
                            (long long)chunks[c], (long long)sizes[s]);
                    check_failures++;
                }
            }
            mimic_plan_free(p);
        }
    }
    mimic_set_num_threads(2);
    free(ref), free(y);
    mimic_tensor_free(x);
    mimic_plan_free(p1);
    mimic_model_free(m);
}

TEST(nan_propagates)
{
    mimic_model *m = build(MIMIC_F32, 4, (spec[]){{"dense", 8}, {"relu"}, {"layernorm", 0, 1e-5, 1}, {"dense", 3},
                                                  {"sigmoid"}}, 5);
    mimic_plan *p = mimic_plan_new(m, 0);
    float x[3 * 4] = {NAN, 1, 2, 3, 0.5f, -1, 2, 0, INFINITY, 0, 0, 0}, y[3 * 3], y1[3];
    CHECK_OK(mimic_plan_run(p, x, 3, y));
    CHECK_OK(mimic_plan_run(p, x + 4, 1, y1));
    for (int j = 0; j < 3; j++) {
        CHECK(isnan(y[j]));
        CHECK_NEAR(y[3 + j], y1[j], 1e-6); /* the other rows are untouched by the NaN */
    }
    mimic_plan_free(p);
    mimic_model_free(m);
}

TEST(errors)
{
    float buf[64] = {0};
    CHECK_ERR_PTR(mimic_model_new(MIMIC_I64, 3), MIMIC_EDTYPE, "float32 or float64");
    CHECK_ERR_PTR(mimic_model_new(MIMIC_F32, 0), MIMIC_EARG, "nin");
    CHECK_ERR(mimic_model_add_dense(NULL, 3, buf, NULL), MIMIC_EARG, "NULL");
    mimic_model *m = mimic_model_new(MIMIC_F32, 4);
    CHECK_ERR(mimic_model_add_dense(m, 3, NULL, NULL), MIMIC_EARG, "weight is NULL");
    CHECK_ERR(mimic_model_add_dense(m, 0, buf, NULL), MIMIC_EARG, "nout");
    CHECK_ERR(mimic_model_add_activation(m, MIMIC_ACT_COUNT, 0, 0), MIMIC_EARG, "unknown activation");
    CHECK_ERR(mimic_model_add_activation(m, MIMIC_ACT_SOFTPLUS, 0, 20), MIMIC_EARG, "beta");
    CHECK_ERR(mimic_model_add_layernorm(m, -1, NULL, NULL), MIMIC_EARG, "eps");
    CHECK_ERR(mimic_model_add_layernorm(m, 1e-5, buf, NULL), MIMIC_EARG, "both");
    CHECK_ERR(mimic_model_end_residual(m), MIMIC_ESTATE, "no residual block");
    CHECK_OK(mimic_model_begin_residual(m));
    CHECK_OK(mimic_model_add_dense(m, 3, buf, NULL));
    CHECK_ERR(mimic_model_end_residual(m), MIMIC_ESHAPE, "width 4 to 3");
    CHECK_ERR_PTR(mimic_plan_new(m, 0), MIMIC_ESTATE, "still open");
    CHECK_OK(mimic_model_add_dense(m, 4, buf, NULL));
    CHECK_OK(mimic_model_end_residual(m));
    CHECK_ERR_PTR(mimic_plan_new(NULL, 0), MIMIC_EARG, "NULL");
    CHECK_ERR_PTR(mimic_plan_new(m, -1), MIMIC_EARG, "chunk");
    mimic_plan *p = mimic_plan_new(m, 0);
    CHECK_ERR(mimic_plan_run(NULL, buf, 1, buf), MIMIC_EARG, "plan is NULL");
    CHECK_ERR(mimic_plan_run(p, NULL, 1, buf), MIMIC_EARG, "in is NULL");
    CHECK_ERR(mimic_plan_run(p, buf, 1, NULL), MIMIC_EARG, "out is NULL");
    CHECK_ERR(mimic_plan_run(p, buf, -1, buf + 8), MIMIC_EARG, "n must be");
    CHECK_OK(mimic_plan_run(p, NULL, 0, NULL));
    CHECK_ERR(mimic_plan_set_deterministic(NULL, true), MIMIC_EARG, "NULL");
    /* tensor form: shape and dtype checked */
    mimic_tensor *bad = mimic_zeros(2, (int64_t[]){2, 5}, MIMIC_F32), *bad64 = mimic_zeros(2, (int64_t[]){2, 4}, MIMIC_F64);
    CHECK_ERR_PTR(mimic_plan_forward(p, bad), MIMIC_ESHAPE, "expected [n, 4]");
    CHECK_ERR_PTR(mimic_plan_forward(p, bad64), MIMIC_EDTYPE, "float64");
    CHECK_ERR_PTR(mimic_plan_forward(p, NULL), MIMIC_EARG, "NULL");
    mimic_tensor *ok = mimic_ones(2, (int64_t[]){3, 4}, MIMIC_F32), *okt = mimic_transpose(ok, 0, 1);
    mimic_tensor *y = mimic_plan_forward(p, okt); /* [4, 3]: wrong */
    CHECK(y == NULL);
    mimic_tensor *sq = mimic_ones(2, (int64_t[]){4, 4}, MIMIC_F32), *sqt = mimic_transpose(sq, 0, 1);
    y = mimic_plan_forward(p, sqt); /* strided input is fine */
    CHECK(SHAPE_IS(y, 4, 4));
    mimic_tensor_free(y);
    mimic_tensor_free(sq), mimic_tensor_free(sqt), mimic_tensor_free(ok), mimic_tensor_free(okt);
    mimic_tensor_free(bad), mimic_tensor_free(bad64);
    mimic_plan_free(p);
    mimic_model_free(m);
}

/* Out of memory anywhere in building and compiling fails cleanly (ASan sees leaks). */
TEST(out_of_memory)
{
    int ok = 0, failed = 0, tries = 0;
    for (int budget = 0; budget < 40; budget++, tries++) {
        use_budget_allocator(budget);
        float w[16 * 16] = {0};
        mimic_model *m = mimic_model_new(MIMIC_F32, 16);
        bool good = m && mimic_model_add_dense(m, 16, w, w) == 0 && mimic_model_add_activation(m, MIMIC_ACT_RELU, 0, 0) == 0 &&
                    mimic_model_begin_residual(m) == 0 && mimic_model_add_batchnorm(m, 1e-5, w, w, NULL, NULL) == 0 &&
                    mimic_model_end_residual(m) == 0 && mimic_model_add_dense(m, 16, w, NULL) == 0;
        mimic_plan *p = good ? mimic_plan_new(m, 0) : NULL;
        oom_tally(p != NULL, &ok, &failed);
        mimic_plan_free(p);
        mimic_model_free(m);
    }
    use_counting_allocator();
    CHECK(ok + failed == tries && ok > 0 && failed > 0);
}

int main(void)
{
    use_counting_allocator();
    mimic_rng_init(&rng, 42);
    mimic_set_num_threads(2);
    RUN(dense_layers);
    RUN(activations);
    RUN(norms);
    RUN(residual);
    RUN(trivial_models);
    RUN(records);
    RUN(no_allocation_after_warmup);
    RUN(memory_formula);
    RUN(deterministic);
    RUN(nan_propagates);
    RUN(errors);
    RUN(out_of_memory);
    return CHECK_DONE();
}
