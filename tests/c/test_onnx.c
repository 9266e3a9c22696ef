/* ONNX import and export (core/interop, libmimic_interop): PyTorch-exported
 * models against PyTorch's outputs (tests/fixtures/gen_onnx.py), the round
 * trip mimic -> ONNX -> mimic, unsupported operators, corrupt files. */
#include "check.h"
#include "testutil.h"

#include "mimic/onnx.h"

#include "../fixtures/onnx/ref.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FIX "tests/fixtures/onnx/"

static char dir[256];

static void tmp_path(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s", dir, name);
}

/* Runs model m on the fixture's inputs (in its dtype) and returns max |y - ref|. */
static double max_diff(const mimic_model *m, const onnx_ref *r)
{
    mimic_plan *p = mimic_plan_new(m, 0);
    if (!p)
        return INFINITY;
    int f64 = mimic_model_dtype(m) == MIMIC_F64;
    size_t es = f64 ? 8 : 4;
    char *x = malloc((size_t)r->n * r->nin * es), *y = malloc((size_t)r->n * r->nout * es);
    for (int i = 0; i < r->n * r->nin; i++)
        f64 ? (void)(((double *)x)[i] = r->x[i]) : (void)(((float *)x)[i] = (float)r->x[i]);
    double d = INFINITY;
    if (mimic_plan_run(p, x, r->n, y) == 0) {
        d = 0;
        for (int i = 0; i < r->n * r->nout; i++) {
            double v = f64 ? ((double *)y)[i] : ((float *)y)[i];
            d = fmax(d, fabs(v - r->y[i]));
        }
    }
    free(x), free(y);
    mimic_plan_free(p);
    return d;
}

static const onnx_ref *ref(const char *name)
{
    for (size_t i = 0; i < sizeof onnx_refs / sizeof onnx_refs[0]; i++)
        if (strcmp(onnx_refs[i].name, name) == 0)
            return &onnx_refs[i];
    return NULL;
}

static void import_matches(const char *name)
{
    char path[300];
    snprintf(path, sizeof path, FIX "%s.onnx", name);
    mimic_model_info *info = NULL;
    mimic_model *m = mimic_onnx_import(path, &info);
    CHECK_PTR(m);
    if (!m)
        return;
    const onnx_ref *r = ref(name);
    CHECK(mimic_model_nin(m) == r->nin && mimic_model_nout(m) == r->nout);
    double d = max_diff(m, r);
    if (!(d <= 1e-5))
        fprintf(stderr, "# %s: max |mimic - PyTorch| = %g\n", name, d);
    CHECK(d <= 1e-5);
    CHECK(info->contract.ninputs == 1 && info->contract.inputs[0].size == r->nin);
    CHECK(info->contract.noutputs == 1 && info->contract.outputs[0].size == r->nout);
    /* The model file takes it as is: contract, metadata, hash. */
    char out[300];
    tmp_path(out, sizeof out, "imported.h5");
    CHECK_OK(mimic_model_save(out, m, &info->contract, NULL, NULL, &info->meta));
    mimic_model_info *info2 = NULL;
    mimic_model *m2 = mimic_model_load(out, &info2);
    CHECK_PTR(m2);
    if (m2)
        CHECK(max_diff(m2, r) == d);
    mimic_model_free(m2);
    mimic_model_info_free(info2);
    mimic_model_info_free(info);
    mimic_model_free(m);
}

TEST(import_mlp)
{
    import_matches("mlp");
    mimic_model_info *info = NULL;
    mimic_model *m = mimic_onnx_import(FIX "mlp.onnx", &info);
    CHECK_PTR(m);
    if (!m)
        return;
    /* Names carry into the contract; 4 Gemm -> dense (transB = 1), 3 activations. */
    CHECK(strcmp(info->contract.inputs[0].name, "state") == 0);
    CHECK(strcmp(info->contract.outputs[0].name, "tendency") == 0);
    CHECK(strcmp(info->contract.inputs[0].units, "") == 0);
    CHECK(mimic_model_num_layers(m) == 7);
    mimic_layer_info li;
    CHECK_OK(mimic_model_layer(m, 0, &li));
    CHECK(strcmp(li.type, "dense") == 0 && li.in == 5 && li.out == 16);
    CHECK_OK(mimic_model_layer(m, 5, &li));
    CHECK(strcmp(li.type, "leaky_relu") == 0 && fabs(li.attr[0] - 0.1) < 1e-7);
    mimic_model_info_free(info);
    mimic_model_free(m);
}

TEST(import_norm)
{
    import_matches("norm");
}

TEST(import_resnet)
{
    import_matches("resnet");
    mimic_model *m = mimic_onnx_import(FIX "resnet.onnx", NULL);
    CHECK_PTR(m);
    if (!m)
        return;
    int begins = 0, ends = 0;
    for (int i = 0; i < mimic_model_num_layers(m); i++) {
        mimic_layer_info li;
        mimic_model_layer(m, i, &li);
        begins += strcmp(li.type, "residual_begin") == 0;
        ends += strcmp(li.type, "residual_end") == 0;
    }
    CHECK(begins == 2 && ends == 2);
    mimic_model_free(m);
}

TEST(import_matmul)
{
    import_matches("matmul");
}

TEST(import_cnn)
{
    import_matches("cnn1d");
    import_matches("cnn2d");
}

TEST(unsupported_ops)
{
    CHECK_ERR_PTR(mimic_onnx_import(FIX "unsupported.onnx", NULL), MIMIC_EIO, "Cos (node 'my_cos')");
    CHECK(strstr(mimic_errmsg(), "Erf (node 'my_erf')") != NULL);
    CHECK(strstr(mimic_errmsg(), "2 ONNX operators are not supported") != NULL);
}

static void write_bytes(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(p, 1, n, f);
        fclose(f);
    }
}

TEST(corrupt_files)
{
    CHECK_ERR_PTR(mimic_onnx_import(FIX "missing.onnx", NULL), MIMIC_EIO, "cannot open");
    FILE *f = fopen(FIX "mlp.onnx", "rb");
    CHECK(f != NULL);
    if (!f)
        return;
    static unsigned char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    char path[300];
    tmp_path(path, sizeof path, "bad.onnx");
    /* Truncated anywhere inside a field: a clear error, never a crash. */
    int errors = 0;
    for (size_t cut = 1; cut < n; cut += 37) {
        write_bytes(path, buf, cut);
        mimic_model *m = mimic_onnx_import(path, NULL);
        if (!m)
            errors++;
        mimic_model_free(m);
    }
    CHECK(errors == (int)((n - 2) / 37) + 1);
    write_bytes(path, buf, n / 2);
    CHECK_ERR_PTR(mimic_onnx_import(path, NULL), MIMIC_EIO, "malformed or truncated");
    write_bytes(path, "", 0);
    CHECK_ERR_PTR(mimic_onnx_import(path, NULL), MIMIC_EIO, "empty");
    write_bytes(path, "\xff\xff\xff\xff garbage", 13);
    CHECK_ERR_PTR(mimic_onnx_import(path, NULL), MIMIC_EIO, "not a valid ONNX model");
    /* Flipped bytes: an error or a model, but always a message on failure. */
    for (size_t i = 0; i < n; i += 11) {
        unsigned char save = buf[i];
        buf[i] ^= 0x5a;
        write_bytes(path, buf, n);
        mimic_model *m = mimic_onnx_import(path, NULL);
        if (!m)
            CHECK(mimic_errmsg()[0] != '\0');
        mimic_model_free(m);
        buf[i] = save;
    }
}

/* A model with every record type the exporter translates and the importer
 * reads back. Attributes are exactly representable in float (ONNX stores
 * attributes as float32), so the round trip is exact. */
static mimic_model *sample_model(mimic_dtype dt)
{
    double w[64], b[8], v[8], mu[8];
    for (int i = 0; i < 64; i++) /* deterministic, irregular values */
        w[i] = 0.3 * sin(1.7 * i + 0.3);
    for (int i = 0; i < 8; i++)
        b[i] = 0.01 * i - 0.03, v[i] = 0.5 + 0.1 * i, mu[i] = 0.2 - 0.05 * i;
    float wf[64], bf[8], vf[8], muf[8];
    for (int i = 0; i < 64; i++)
        wf[i] = (float)w[i];
    for (int i = 0; i < 8; i++)
        bf[i] = (float)b[i], vf[i] = (float)v[i], muf[i] = (float)mu[i];
    int f = dt == MIMIC_F32;
    const void *W = f ? (const void *)wf : w, *B = f ? (const void *)bf : b;
    const void *V = f ? (const void *)vf : v, *MU = f ? (const void *)muf : mu;
    mimic_model *m = mimic_model_new(dt, 5);
    int rc = mimic_model_add_dense(m, 8, W, B);
    rc |= mimic_model_add_activation(m, MIMIC_ACT_TANH, 0, 0);
    rc |= mimic_model_begin_residual(m);
    rc |= mimic_model_add_dense(m, 8, W, NULL);
    rc |= mimic_model_add_activation(m, MIMIC_ACT_RELU, 0, 0);
    rc |= mimic_model_end_residual(m);
    rc |= mimic_model_add_layernorm(m, 1.0 / 65536, V, B);
    rc |= mimic_model_add_batchnorm(m, 1e-5, MU, V, V, B);
    rc |= mimic_model_add_activation(m, MIMIC_ACT_ELU, 0.5, 0);
    rc |= mimic_model_add_activation(m, MIMIC_ACT_LEAKY_RELU, 0.25, 0);
    rc |= mimic_model_add_activation(m, MIMIC_ACT_SIGMOID, 0, 0);
    rc |= mimic_model_add_activation(m, MIMIC_ACT_SOFTPLUS, 1, 20);
    rc |= mimic_model_add_dense(m, 3, W, B);
    if (rc) {
        mimic_model_free(m);
        return NULL;
    }
    return m;
}

static int same_records(const mimic_model *a, const mimic_model *b)
{
    if (mimic_model_num_layers(a) != mimic_model_num_layers(b) || mimic_model_dtype(a) != mimic_model_dtype(b))
        return 0;
    size_t es = mimic_model_dtype(a) == MIMIC_F64 ? 8 : 4;
    for (int i = 0; i < mimic_model_num_layers(a); i++) {
        mimic_layer_info x, y;
        mimic_model_layer(a, i, &x);
        mimic_model_layer(b, i, &y);
        if (strcmp(x.type, y.type) || x.in != y.in || x.out != y.out || x.attr[0] != y.attr[0] ||
            x.attr[1] != y.attr[1] || x.nweights != y.nweights) {
            fprintf(stderr, "# layer %d: %s vs %s\n", i, x.type, y.type);
            return 0;
        }
        for (int k = 0; k < 2; k++) {
            if (!x.weight[k] != !y.weight[k])
                return 0;
            if (x.weight[k] && memcmp(x.weight[k], y.weight[k], (size_t)(x.weight_rows[k] * x.weight_cols[k]) * es))
                return 0;
        }
    }
    return 1;
}

TEST(export_round_trip)
{
    for (int f = 0; f < 2; f++) {
        mimic_dtype dt = f ? MIMIC_F64 : MIMIC_F32;
        mimic_model *m = sample_model(dt);
        CHECK_PTR(m);
        if (!m)
            return;
        char path[300];
        tmp_path(path, sizeof path, "rt.onnx");
        mimic_io_var in = {"state", "K", 5}, out = {"rate", "K/s", 3};
        mimic_contract c = {1, 1, &in, &out};
        CHECK_OK(mimic_onnx_export(path, m, &c, NULL, NULL));
        mimic_model_info *info = NULL;
        mimic_model *m2 = mimic_onnx_import(path, &info);
        CHECK_PTR(m2);
        if (m2) {
            CHECK(same_records(m, m2));
            CHECK(strcmp(info->contract.inputs[0].name, "state") == 0);
            CHECK(strcmp(info->contract.outputs[0].name, "rate") == 0);
            char h1[72], h2[72];
            /* Units are not an ONNX notion: with the same contract the hashes agree. */
            CHECK_OK(mimic_model_hash(m, &c, NULL, NULL, h1));
            CHECK_OK(mimic_model_hash(m2, &c, NULL, NULL, h2));
            CHECK(strcmp(h1, h2) == 0);
        }
        mimic_model_info_free(info);
        mimic_model_free(m2);
        mimic_model_free(m);
    }
}

/* PyTorch CNN -> mimic -> ONNX (Reshape, Conv, pools, Flatten) -> mimic: same records. */
TEST(export_cnn_round_trip)
{
    const char *names[] = {"cnn1d", "cnn2d"};
    for (int k = 0; k < 2; k++) {
        char src[300], path[300];
        snprintf(src, sizeof src, FIX "%s.onnx", names[k]);
        tmp_path(path, sizeof path, "cnn_rt.onnx");
        mimic_model_info *info = NULL, *info2 = NULL;
        mimic_model *m = mimic_onnx_import(src, &info);
        CHECK_PTR(m);
        if (!m)
            return;
        CHECK_OK(mimic_onnx_export(path, m, &info->contract, NULL, NULL));
        mimic_model *m2 = mimic_onnx_import(path, &info2);
        CHECK_PTR(m2);
        if (m2) {
            CHECK(same_records(m, m2));
            CHECK(max_diff(m2, ref(names[k])) <= 1e-5);
        }
        mimic_model_info_free(info2);
        mimic_model_free(m2);
        mimic_model_info_free(info);
        mimic_model_free(m);
    }
}

TEST(export_errors)
{
    mimic_model *m = sample_model(MIMIC_F32);
    CHECK_ERR(mimic_onnx_export("/nonexistent_dir/x.onnx", m, NULL, NULL, NULL), MIMIC_EIO, "temporary file");
    CHECK_ERR(mimic_onnx_export(NULL, m, NULL, NULL, NULL), MIMIC_EARG, "required");
    mimic_model_free(m);
}

/* A record ONNX export has no form for yet is refused by name, never
 * written as some other operator. */
TEST(export_refuses_upsample)
{
    mimic_model *m = mimic_model_new(MIMIC_F32, 2 * 4);
    mimic_spatial g = {.ndim = 1, .in_channels = 2, .out_channels = 2, .groups = 1, .size = {4},
                       .kernel = {1}, .stride = {2}, .dilation = {1}};
    CHECK_OK(mimic_model_add_upsample(m, &g));
    char path[600];
    snprintf(path, sizeof path, "%s/up.onnx", dir);
    CHECK_ERR(mimic_onnx_export(path, m, NULL, NULL, NULL), MIMIC_EARG, "upsample1d has no ONNX export");
    mimic_model_free(m);
}

int main(void)
{
    use_counting_allocator();
    snprintf(dir, sizeof dir, "/tmp/mimic_test_onnx_%d", (int)getpid());
    char cmd[300];
    snprintf(cmd, sizeof cmd, "mkdir -p %s", dir);
    if (system(cmd) != 0)
        return 1;
    RUN(import_mlp);
    RUN(import_norm);
    RUN(import_resnet);
    RUN(import_matmul);
    RUN(import_cnn);
    RUN(unsupported_ops);
    RUN(corrupt_files);
    RUN(export_round_trip);
    RUN(export_cnn_round_trip);
    RUN(export_errors);
    RUN(export_refuses_upsample);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        return 1;
    return CHECK_DONE();
}
