/* The versioned model file (mimic/modelfile.h): round trips, hashes, the
 * contract, encoders, and one hostile edit per validation path. */
#include "check.h"

#include "../fuzz/modelfile_edit.h" /* before testutil.h: its model-file edit helpers */
#include "testutil.h"

#include <stdlib.h>

static char dir[256];
static char pbase[300], pedit[300];

static void setup(void)
{
    test_dir_create(dir, sizeof dir, "test_modelfile");
    snprintf(pbase, sizeof pbase, "%s/base.h5", dir);
    snprintf(pedit, sizeof pedit, "%s/edit.h5", dir);
}

/* Runs a model with encoders: raw [n, nin] -> raw [n, nout] (n <= 4), in the model's dtype. */
static int run_raw(const mimic_model *m, const mimic_encoder *ie, const mimic_encoder *oe, const double *x, int64_t n,
                   double *y)
{
    mimic_dtype dt = mimic_model_dtype(m);
    int64_t nin = mimic_model_nin(m), nout = mimic_model_nout(m);
    double buf[64], out[64];
    float fbuf[64], fout[64];
    for (int64_t i = 0; i < n * nin; i++)
        buf[i] = x[i], fbuf[i] = (float)x[i];
    void *in = dt == MIMIC_F32 ? (void *)fbuf : (void *)buf, *o = dt == MIMIC_F32 ? (void *)fout : (void *)out;
    mimic_plan *p = mimic_plan_new(m, 0);
    int rc = p ? 0 : -1;
    if (!rc) rc = mimic_encoder_encode(ie, dt, in, n, nin);
    if (!rc) rc = mimic_plan_run(p, in, n, o);
    if (!rc) rc = mimic_encoder_decode(oe, dt, o, n, nout);
    for (int64_t i = 0; !rc && i < n * nout; i++)
        y[i] = dt == MIMIC_F32 ? (double)fout[i] : out[i];
    mimic_plan_free(p);
    return rc;
}

TEST(test_round_trip)
{
    mimic_dtype dts[2] = {MIMIC_F32, MIMIC_F64};
    for (int k = 0; k < 2; k++) {
        mimic_model *m = mf_sample_model(dts[k]);
        CHECK_PTR(m);
        CHECK_OK(mimic_model_save(pbase, m, &mf_contract, &mf_in_enc, &mf_out_enc, &mf_meta));
        mimic_model_info *info = NULL;
        mimic_model *r = mimic_model_load(pbase, &info);
        CHECK_PTR(r);
        if (!r || !m) {
            mimic_model_free(m);
            continue;
        }
        CHECK(mimic_model_dtype(r) == dts[k]);
        CHECK(mimic_model_num_layers(r) == mimic_model_num_layers(m));
        for (int i = 0; i < mimic_model_num_layers(m); i++) {
            mimic_layer_info a, b;
            CHECK_OK(mimic_model_layer(m, i, &a));
            CHECK_OK(mimic_model_layer(r, i, &b));
            CHECK(strcmp(a.type, b.type) == 0 && a.in == b.in && a.out == b.out);
            CHECK(a.attr[0] == b.attr[0] && a.attr[1] == b.attr[1] && a.nweights == b.nweights);
            for (int j = 0; j < 2; j++) {
                CHECK(!a.weight[j] == !b.weight[j]);
                if (a.weight[j] && b.weight[j])
                    CHECK(memcmp(a.weight[j], b.weight[j],
                                 (size_t)(a.weight_rows[j] * a.weight_cols[j]) * mimic_dtype_size(dts[k])) == 0);
            }
        }
        /* contract, encoders, meta */
        CHECK(info->format_version == 1);
        CHECK(info->contract.ninputs == 2 && info->contract.noutputs == 2);
        CHECK(strcmp(info->contract.inputs[0].name, "temperature") == 0);
        CHECK(strcmp(info->contract.inputs[1].units, "kg/kg") == 0 && info->contract.inputs[0].size == 2);
        CHECK(strcmp(info->contract.outputs[1].name, "moistening") == 0);
        CHECK(info->input_encoder.nstages == 2 && info->output_encoder.nstages == 3);
        CHECK(info->input_encoder.stages[0].kind == MIMIC_ENC_SIGNED_LOG && info->input_encoder.stages[0].scale == 2.0);
        CHECK(info->input_encoder.stages[1].n == 3 && info->input_encoder.stages[1].b[2] == 2.0);
        CHECK(info->output_encoder.stages[0].n == 1 && info->output_encoder.stages[0].a[0] == -1.0);
        CHECK(info->output_encoder.stages[1].offset == 5.0);
        CHECK(info->meta.n == 6);
        const char *keys[6] = {"created", "data_file", "data_hash", "epochs", "mimic_version", "val_rmse"};
        for (int i = 0; i < 6 && i < info->meta.n; i++)
            CHECK(strcmp(info->meta.entries[i].key, keys[i]) == 0);
        CHECK(info->meta.entries[3].kind == MIMIC_META_INT && info->meta.entries[3].i == 42);
        CHECK(info->meta.entries[5].kind == MIMIC_META_NUMBER && info->meta.entries[5].d == 0.125);
        CHECK(strcmp(info->meta.entries[4].s, MIMIC_VERSION) == 0);
        /* hash: stored == recomputed from the original, stable across saves */
        char h[72], h2[72];
        CHECK_OK(mimic_model_hash(m, &mf_contract, &mf_in_enc, &mf_out_enc, h));
        CHECK(strcmp(h, info->hash) == 0);
        CHECK(strncmp(h, "sha256:", 7) == 0 && strlen(h) == 71);
        CHECK_OK(mimic_model_hash(r, &info->contract, &info->input_encoder, &info->output_encoder, h2));
        CHECK(strcmp(h, h2) == 0);
        /* the hash covers encoders and contract, not the metadata */
        CHECK_OK(mimic_model_hash(m, &mf_contract, NULL, &mf_out_enc, h2));
        CHECK(strcmp(h, h2) != 0);
        /* outputs equal, raw in -> raw out */
        double x[6] = {300, 280, 0.01, 250, 260, 0.002}, y1[4], y2[4];
        CHECK_OK(run_raw(m, &mf_in_enc, &mf_out_enc, x, 2, y1));
        CHECK_OK(run_raw(r, &info->input_encoder, &info->output_encoder, x, 2, y2));
        CHECK(memcmp(y1, y2, sizeof y1) == 0);
        CHECK(isfinite(y1[0]) && isfinite(y1[3]));
        mimic_model_free(r);
        mimic_model_info_free(info);
        mimic_model_free(m);
    }
    /* info may be NULL; the model with no metadata and identity encoders */
    mimic_model *m = mf_sample_model(MIMIC_F32);
    CHECK_OK(mimic_model_save(pbase, m, &mf_contract, NULL, NULL, NULL));
    mimic_model *r = mimic_model_load(pbase, NULL);
    CHECK_PTR(r);
    mimic_model_free(r);
    mimic_model_free(m);
}

TEST(test_sha256_vectors)
{
    unsigned char d[32];
    mimic_sha256("abc", 3, d);
    CHECK(d[0] == 0xba && d[1] == 0x78 && d[30] == 0x15 && d[31] == 0xad);
    mimic_sha256("", 0, d);
    CHECK(d[0] == 0xe3 && d[1] == 0xb0 && d[31] == 0x55);
    const char *s = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"; /* 56 bytes: two blocks */
    mimic_sha256(s, strlen(s), d);
    CHECK(d[0] == 0x24 && d[1] == 0x8d && d[31] == 0xc1);
}

TEST(test_encoders_invert)
{
    double x[6] = {300, -2, 0.01, 0.5, 3, 1e-3}, z[6];
    memcpy(z, x, sizeof z);
    CHECK_OK(mimic_encoder_encode(&mf_in_enc, MIMIC_F64, z, 2, 3));
    CHECK(z[0] != x[0]);
    CHECK_OK(mimic_encoder_decode(&mf_in_enc, MIMIC_F64, z, 2, 3));
    for (int i = 0; i < 6; i++)
        CHECK_NEAR(z[i], x[i], 1e-12 * fabs(x[i]) + 1e-15);
    /* standard: (x - mean) / std, first feature */
    double one[3] = {1.6, 0, 0};
    mimic_enc_stage st = {.kind = MIMIC_ENC_STANDARD, .n = 3, .a = mf_mean, .b = mf_std};
    mimic_encoder e = {1, &st};
    CHECK_OK(mimic_encoder_encode(&e, MIMIC_F64, one, 1, 3));
    CHECK_NEAR(one[0], 1.0, 1e-15);
    CHECK_ERR(mimic_encoder_encode(&e, MIMIC_F64, one, 1, 4), MIMIC_ESHAPE, "expected 1 or 4");
    CHECK_ERR(mimic_encoder_encode(&e, MIMIC_I64, one, 1, 3), MIMIC_EDTYPE, "float32 or float64");
    double zero = 0;
    mimic_enc_stage bad = {.kind = MIMIC_ENC_MINMAX, .n = 1, .a = mf_min, .b = &zero};
    mimic_encoder eb = {1, &bad};
    CHECK_ERR(mimic_encoder_encode(&eb, MIMIC_F64, one, 1, 3), MIMIC_EVALUE, "> 0");
    CHECK(mimic_enc_kind_parse("signed_log") == MIMIC_ENC_SIGNED_LOG && mimic_enc_kind_parse("x") == -1);
}

TEST(test_contract_bind)
{
    const char *ok[] = {"temperature", "humidity"};
    CHECK_OK(mimic_contract_bind(&mf_contract, 0, ok, (const int64_t[]){2, 1}, 2));
    const char *swapped[] = {"humidity", "temperature"};
    CHECK_ERR(mimic_contract_bind(&mf_contract, 0, swapped, NULL, 2), MIMIC_EARG, "'humidity' is at position 1, the model has it at 2");
    const char *unknown[] = {"temperature", "pressure"};
    CHECK_ERR(mimic_contract_bind(&mf_contract, 0, unknown, NULL, 2), MIMIC_EARG, "'pressure' (position 2) is not one");
    CHECK_ERR(mimic_contract_bind(&mf_contract, 0, ok, NULL, 1), MIMIC_EARG, "'humidity' (position 2) is not bound");
    CHECK_ERR(mimic_contract_bind(&mf_contract, 0, ok, (const int64_t[]){3, 1}, 2), MIMIC_EARG, "has size 3, the model expects 2");
    const char *outs[] = {"heating", "moistening"};
    CHECK_OK(mimic_contract_bind(&mf_contract, 1, outs, NULL, 2));
    CHECK_ERR(mimic_contract_bind(&mf_contract, 1, ok, NULL, 2), MIMIC_EARG, "heating [K/s] (1)");
}

TEST(test_save_errors)
{
    mimic_model *m = mf_sample_model(MIMIC_F32);
    CHECK_ERR(mimic_model_save(pbase, m, NULL, NULL, NULL, NULL), MIMIC_EARG, "contract: required");
    mimic_io_var in1[] = {{"t", "K", 2}};
    mimic_contract c = {1, 2, in1, mf_outputs};
    CHECK_ERR(mimic_model_save(pbase, m, &c, NULL, NULL, NULL), MIMIC_ESHAPE, "inputs' sizes add up to 2, the model has 3");
    mimic_io_var dup[] = {{"t", "K", 2}, {"t", "K", 1}};
    c.ninputs = 2, c.inputs = dup;
    CHECK_ERR(mimic_model_save(pbase, m, &c, NULL, NULL, NULL), MIMIC_EARG, "named twice");
    mimic_io_var slash[] = {{"a/b", "K", 2}, {"t", "K", 1}};
    c.inputs = slash;
    CHECK_ERR(mimic_model_save(pbase, m, &c, NULL, NULL, NULL), MIMIC_EARG, "without '/'");
    CHECK_ERR(mimic_model_save(pbase, m, &mf_contract, NULL, &mf_in_enc, NULL), MIMIC_ESHAPE, "expected 1 or 2");
    mimic_meta_entry me[] = {{.key = "a/b", .kind = MIMIC_META_INT}};
    mimic_meta meta = {1, me};
    CHECK_ERR(mimic_model_save(pbase, m, &mf_contract, NULL, NULL, &meta), MIMIC_EARG, "meta: key 0");
    CHECK_ERR(mimic_model_save("/nonexistent/dir/m.h5", m, &mf_contract, NULL, NULL, NULL), MIMIC_EIO, "");
    mimic_model_free(m);
    /* an open residual block has no file form */
    m = mimic_model_new(MIMIC_F32, 2);
    CHECK_OK(mimic_model_begin_residual(m));
    mimic_io_var v2[] = {{"x", "", 2}};
    mimic_contract c2 = {1, 1, v2, v2};
    CHECK_ERR(mimic_model_save(pbase, m, &c2, NULL, NULL, NULL), MIMIC_ESTATE, "still open");
    mimic_model_free(m);
    /* nesting deeper than the format allows (the builder allows more) */
    m = mimic_model_new(MIMIC_F32, 2);
    for (int i = 0; i < 17; i++)
        CHECK_OK(mimic_model_begin_residual(m));
    for (int i = 0; i < 17; i++)
        CHECK_OK(mimic_model_end_residual(m));
    CHECK_ERR(mimic_model_save(pbase, m, &c2, NULL, NULL, NULL), MIMIC_EARG, "nested more than 16 deep");
    mimic_model_free(m);
}

TEST(test_bad_files)
{
    CHECK_ERR_PTR(mimic_model_load("/nonexistent.h5", NULL), MIMIC_EIO, "");
    char p[320];
    snprintf(p, sizeof p, "%s/garbage.h5", dir);
    FILE *f = fopen(p, "wb");
    for (int i = 0; f && i < 4096; i++)
        fputc((i * 131) & 0xff, f);
    if (f)
        fclose(f);
    CHECK_ERR_PTR(mimic_model_load(p, NULL), MIMIC_EIO, "");
    /* truncated copies of a valid file */
    CHECK_OK(mf_save_sample(pbase, MIMIC_F32));
    FILE *in = fopen(pbase, "rb");
    static char buf[1 << 20];
    size_t n = in ? fread(buf, 1, sizeof buf, in) : 0;
    if (in)
        fclose(in);
    CHECK(n > 1000);
    size_t cuts[] = {0, 8, 100, n / 2, n - 1};
    for (int k = 0; k < 5; k++) {
        f = fopen(p, "wb");
        if (f) {
            fwrite(buf, 1, cuts[k], f);
            fclose(f);
        }
        CHECK_ERR_PTR(mimic_model_load(p, NULL), MIMIC_EIO, "");
    }
    /* Flipped bytes: HDF5's metadata checksums reject them all, but HDF5
     * 1.10.8 then keeps internal memory it cannot free and prints "infinite
     * loop closing library" at exit (its bug #3790; docs/model-format.md,
     * trust boundary), so this sweep runs only on request: MIMIC_TEST_FLIPS=1. */
    for (size_t k = 0; getenv("MIMIC_TEST_FLIPS") && k < n; k += n / 61 + 1) {
        char save = buf[k];
        buf[k] ^= 0x5a;
        f = fopen(p, "wb");
        if (f) {
            fwrite(buf, 1, n, f);
            fclose(f);
        }
        mimic_model_info *info = NULL;
        mimic_model *r = mimic_model_load(p, &info);
        mimic_model_free(r);
        mimic_model_info_free(info);
        buf[k] = save;
    }
    /* a tensor dictionary that is not a model file */
    mimic_dict_writer *w = mimic_dict_create(p);
    CHECK_OK(mimic_dict_put_int(w, "x", 1));
    CHECK_OK(mimic_dict_commit(w));
    CHECK_ERR_PTR(mimic_model_load(p, NULL), MIMIC_EIO, "not a mimic model file");
}

TEST(test_every_validation_error)
{
    CHECK_OK(mf_save_sample(pbase, MIMIC_F32));
    /* the sample's layer indices: 0 dense, 1 relu, 2 layernorm, 3 res_begin, 4 dense, 5 tanh,
     * 6 res_end, 7 batchnorm1d, 8 softplus, 9 leaky_relu, 10 elu, ..., 14 dense (no bias) */
    bad_case cases[] = {
        {{.op = ED_INT, .name = "format_version", .i = 2}, MIMIC_EIO, "format version 2 is not supported (this mimic 0.1.0 reads format version 1"},
        {{.op = ED_NUM, .name = "format_version", .d = 1}, MIMIC_EIO, "'format_version' is a number, expected an int"},
        {STR("mimic_format", "mimic-modelx"), MIMIC_EIO, "not a mimic model file"},
        {{.op = ED_DROP, .name = "mimic_format"}, MIMIC_EIO, "not a mimic model file"},
        {{.op = ED_INT, .name = "mimic_format", .i = 1}, MIMIC_EIO, "not a mimic model file"},
        {STR("layers/004/type", "conv4d"), MIMIC_EIO, "layers/004: unknown layer type 'conv4d' at layer index 4"},
        {STR("dtype", "int64"), MIMIC_EDTYPE, "'dtype' is 'int64'"},
        {STR("dtype", "float64"), MIMIC_EDTYPE, "is float32, expected float64"},
        {{.op = ED_INT, .name = "nin", .i = 4}, MIMIC_ESHAPE, "'in' is 3 but the previous layer gives 4"},
        {{.op = ED_INT, .name = "nin", .i = (int64_t)1 << 40}, MIMIC_EVALUE, "'nin' is 1099511627776, expected 1..1048576"},
        {{.op = ED_INT, .name = "nout", .i = 3}, MIMIC_ESHAPE, "'nout' is 3 but the layers give 2"},
        {{.op = ED_INT, .name = "num_layers", .i = 14}, MIMIC_ESHAPE, "'nout' is 2 but the layers give 4"},
        {{.op = ED_INT, .name = "num_layers", .i = 16}, MIMIC_EIO, "'layers/015/type' is missing"},
        {{.op = ED_INT, .name = "num_layers", .i = -1}, MIMIC_EVALUE, "'num_layers' is -1"},
        {{.op = ED_INT, .name = "num_layers", .i = 4097}, MIMIC_EVALUE, "'num_layers' is 4097, expected 0..4096"},
        {{.op = ED_TENSOR, .name = "layers/000/weight", .dt = MIMIC_I64, .ndim = 2, .shape = {4, 3}}, MIMIC_EDTYPE, "is int64, expected float32"},
        {{.op = ED_TENSOR, .name = "layers/000/weight", .dt = MIMIC_BOOL, .ndim = 2, .shape = {4, 3}}, MIMIC_EDTYPE, "is bool, expected float32"},
        {{.op = ED_INT, .name = "layers/000/type", .i = 3}, MIMIC_EIO, "'layers/000/type' is an int, expected a string"},
        {{.op = ED_DROP, .name = "format_version"}, MIMIC_EIO, "'format_version' is missing"},
        {{.op = ED_INT, .name = "num_layers", .i = 7}, MIMIC_ESHAPE, "'nout' is 2 but the layers give 4"},
        {{.op = ED_ADD_INT, .name = "layers/015/in", .i = 2}, MIMIC_EIO, "unexpected entry 'layers/015' (group)"},
        {{.op = ED_DROP, .name = "content_hash"}, MIMIC_EIO, "'content_hash' is missing"},
        {STR("content_hash", "md5:123"), MIMIC_EVALUE, "'content_hash' is not"},
        {STR("content_hash", "sha256:0000000000000000000000000000000000000000000000000000000000000000"), MIMIC_EIO, "content hash mismatch"},
        {{.op = ED_ELEM, .name = "layers/000/weight", .elem = 3, .d = 0.25}, MIMIC_EIO, "content hash mismatch"},
        {{.op = ED_ELEM, .name = "layers/000/weight", .elem = 3, .d = NAN}, MIMIC_EVALUE, "'layers/000/weight': element 3 is nan"},
        {{.op = ED_ELEM, .name = "layers/007/scale", .elem = 1, .d = INFINITY}, MIMIC_EVALUE, "element 1 is inf"},
        {{.op = ED_TENSOR, .name = "layers/000/weight", .dt = MIMIC_F32, .ndim = 2, .shape = {3, 4}}, MIMIC_ESHAPE, "'layers/000/weight' has shape [3, 4], expected [4, 3]"},
        {{.op = ED_TENSOR, .name = "layers/000/weight", .dt = MIMIC_F32, .ndim = 1, .shape = {12}}, MIMIC_ESHAPE, "has shape [12], expected [4, 3]"},
        {{.op = ED_TENSOR, .name = "layers/000/weight", .dt = MIMIC_F64, .ndim = 2, .shape = {4, 3}}, MIMIC_EDTYPE, "'layers/000/weight' is float64, expected float32"},
        {{.op = ED_TENSOR, .name = "layers/000/bias", .dt = MIMIC_F32, .ndim = 1, .shape = {5}}, MIMIC_ESHAPE, "'layers/000/bias' has shape [5]"},
        {{.op = ED_TENSOR, .name = "layers/000/bias", .dt = MIMIC_F32, .ndim = 0}, MIMIC_ESHAPE, "has shape [], expected [4]"},
        {{.op = ED_DROP, .name = "layers/000/weight"}, MIMIC_EIO, "'layers/000/weight' is missing"},
        {{.op = ED_DROP, .name = "layers/002/bias"}, MIMIC_EIO, "give both weight and bias, or neither"},
        {{.op = ED_DROP, .name = "layers/007/shift"}, MIMIC_EIO, "'layers/007/shift' is missing"},
        {{.op = ED_INT, .name = "layers/000/out", .i = 5}, MIMIC_ESHAPE, "'layers/000/weight' has shape [4, 3], expected [5, 3]"},
        {{.op = ED_INT, .name = "layers/001/out", .i = 5}, MIMIC_ESHAPE, "layers/001 (relu): 'out' is 5, expected 4"},
        {{.op = ED_INT, .name = "layers/001/in", .i = 0}, MIMIC_EVALUE, "'layers/001/in' is 0"},
        {{.op = ED_STR, .name = "layers/001/in", .s = "4", .slen = 1}, MIMIC_EIO, "'layers/001/in' is a string, expected an int"},
        {STR("layers/006/type", "relu"), MIMIC_EIO, "a residual block is not closed"},
        {STR("layers/003/type", "relu"), MIMIC_EIO, "layers/006: residual_end without a residual_begin"},
        {{.op = ED_NUM, .name = "layers/008/beta", .d = -1}, MIMIC_EVALUE, "beta must be > 0"},
        {{.op = ED_NUM, .name = "layers/008/threshold", .d = NAN}, MIMIC_EVALUE, "'layers/008/threshold' is nan"},
        {{.op = ED_DROP, .name = "layers/009/slope"}, MIMIC_EIO, "'layers/009/slope' is missing"},
        {{.op = ED_NUM, .name = "layers/002/eps", .d = -1e-5}, MIMIC_EVALUE, "eps must be >= 0"},
        {{.op = ED_ADD_INT, .name = "layers/001/slope", .i = 1}, MIMIC_EIO, "unexpected entry 'layers/001/slope'"},
        {{.op = ED_ADD_TENSOR, .name = "layers/014/bias", .dt = MIMIC_F32, .ndim = 1, .shape = {2}}, MIMIC_EIO, "content hash mismatch"},
        {{.op = ED_ADD_INT, .name = "extra", .i = 1}, MIMIC_EIO, "unexpected entry 'extra'"},
        {STR("layers/001/type", "re\x01lu"), MIMIC_EVALUE, "'layers/001/type' must be"},
        {{.op = ED_STR, .name = "layers/001/type", .s = "relu\0x", .slen = 6}, MIMIC_EVALUE, "'layers/001/type' must be"},
        /* encoders */
        {{.op = ED_INT, .name = "encoders/input/num_stages", .i = 17}, MIMIC_EVALUE, "'encoders/input/num_stages' is 17"},
        {{.op = ED_INT, .name = "encoders/input/num_stages", .i = 3}, MIMIC_EIO, "'encoders/input/002/kind' is missing"},
        {STR("encoders/input/000/kind", "sqrt"), MIMIC_EIO, "encoders/input/000: unknown encoder kind 'sqrt'"},
        {{.op = ED_NUM, .name = "encoders/input/000/scale", .d = 0}, MIMIC_EVALUE, "scale must be finite and > 0"},
        {{.op = ED_NUM, .name = "encoders/output/001/offset", .d = INFINITY}, MIMIC_EVALUE, "'encoders/output/001/offset' is inf"},
        {{.op = ED_ELEM, .name = "encoders/input/001/std", .elem = 1, .d = 0}, MIMIC_EVALUE, "divisors finite and > 0"},
        {{.op = ED_ELEM, .name = "encoders/input/001/mean", .elem = 1, .d = NAN}, MIMIC_EVALUE, "element 1 is nan"},
        {{.op = ED_TENSOR, .name = "encoders/input/001/std", .dt = MIMIC_F64, .ndim = 1, .shape = {1}}, MIMIC_ESHAPE, "'encoders/input/001/std' has shape [1], expected [3]"},
        {{.op = ED_TENSOR, .name = "encoders/input/001/mean", .dt = MIMIC_F64, .ndim = 1, .shape = {2}}, MIMIC_ESHAPE, "has shape [2], expected [3]"},
        {{.op = ED_TENSOR, .name = "encoders/output/000/min", .dt = MIMIC_F32, .ndim = 1, .shape = {1}}, MIMIC_EDTYPE, "is float32, expected float64"},
        {STR("encoders/output/002/kind", "standard"), MIMIC_EIO, "'encoders/output/002/mean' is missing"},
        /* contract */
        {{.op = ED_INT, .name = "contract/batch_axis", .i = 1}, MIMIC_EVALUE, "'contract/batch_axis' is 1, expected 0..0"},
        {{.op = ED_INT, .name = "contract/inputs/000/size", .i = 1}, MIMIC_ESHAPE, "contract/inputs: the sizes add up to 2, the model has 3"},
        {STR("contract/inputs/001/name", "temperature"), MIMIC_EVALUE, "'temperature' is named twice"},
        {STR("contract/inputs/001/name", ""), MIMIC_EVALUE, "'contract/inputs/001/name' must be 1..256"},
        {STR("contract/inputs/001/name", "a/b"), MIMIC_EVALUE, "contains '/'"},
        {{.op = ED_INT, .name = "contract/outputs/num", .i = 0}, MIMIC_EVALUE, "'contract/outputs/num' is 0"},
        {{.op = ED_DROP, .name = "contract/outputs/001/units"}, MIMIC_EIO, "'contract/outputs/001/units' is missing"},
        /* metadata */
        {{.op = ED_ADD_TENSOR, .name = "meta/loss", .dt = MIMIC_F64, .ndim = 1, .shape = {3}}, MIMIC_EIO, "'meta/loss' is tensor"},
        {{.op = ED_ADD_INT, .name = "meta/sub/x", .i = 1}, MIMIC_EIO, "'meta/sub' is group"},
        {{.op = ED_STR, .name = "meta/data_file", .s = "a\0b", .slen = 3}, MIMIC_EVALUE, "without NUL bytes"},
    };
    check_bad_cases("sample", pbase, pedit, cases, (int)(sizeof cases / sizeof cases[0]));
    /* an unedited copy loads: the rewriter itself is faithful */
    CHECK(mf_rewrite(pbase, pedit, NULL, 0) == 0);
    mimic_model *r = mimic_model_load(pedit, NULL);
    CHECK_PTR(r);
    mimic_model_free(r);
}

TEST(test_out_of_memory)
{
    CHECK_OK(mf_save_sample(pbase, MIMIC_F64));
    int ok = 0, fails = 0;
    for (int budget = 0; budget < 2000; budget++) {
        use_budget_allocator(budget);
        mimic_model_info *info = NULL;
        mimic_model *r = mimic_model_load(pbase, &info);
        int code = mimic_errcode();
        mimic_model_free(r);
        mimic_model_info_free(info);
        mimic_set_allocator(NULL);
        if (r) {
            ok++;
            break;
        }
        fails++;
        if (code != MIMIC_ENOMEM)
            fprintf(stderr, "budget %d: %s\n", budget, mimic_errmsg()), check_failures++;
    }
    CHECK(ok == 1 && fails > 10);
}

/* A small CNN on rows of [2, 12] samples: conv1d (circular, groups 2,
 * stride 2, dilation 2), relu, max pool, conv1d, avg pool (no pad count),
 * global average pool, flatten, dense. */
static mimic_model *cnn_model(mimic_dtype dt)
{
    mimic_model *m = mimic_model_new(dt, 2 * 12);
    double w[64], b[8];
    for (int i = 0; i < 64; i++)
        w[i] = sin(0.7 * i + 0.3) * 0.5;
    for (int i = 0; i < 8; i++)
        b[i] = 0.1 * i - 0.2;
    float wf[64], bf[8];
    for (int i = 0; i < 64; i++) wf[i] = (float)w[i];
    for (int i = 0; i < 8; i++) bf[i] = (float)b[i];
    const void *W = dt == MIMIC_F32 ? (const void *)wf : (const void *)w, *B = dt == MIMIC_F32 ? (const void *)bf : (const void *)b;
    mimic_spatial c1 = {.ndim = 1, .in_channels = 2, .out_channels = 4, .groups = 2, .size = {12}, .kernel = {3},
                        .stride = {2}, .padding = {2}, .dilation = {2}, .circular = 1};      /* 12 -> 6 */
    mimic_spatial p1 = {.ndim = 1, .in_channels = 4, .size = {6}, .kernel = {2}, .stride = {1}, .dilation = {1}}; /* 6 -> 5 */
    mimic_spatial c2 = {.ndim = 1, .in_channels = 4, .out_channels = 3, .groups = 1, .size = {5}, .kernel = {3},
                        .stride = {1}, .padding = {1}, .dilation = {1}};                    /* 5 -> 5 */
    mimic_spatial p2 = {.ndim = 1, .in_channels = 3, .size = {5}, .kernel = {2}, .stride = {2}, .padding = {1},
                        .dilation = {1}, .circular = 0};                                    /* 5 -> 3 */
    int rc = mimic_model_add_conv(m, &c1, W, B);
    if (!rc) rc = mimic_model_add_activation(m, MIMIC_ACT_RELU, 0, 0);
    if (!rc) rc = mimic_model_add_pool(m, true, &p1);
    if (!rc) rc = mimic_model_add_conv(m, &c2, W, NULL);
    if (!rc) rc = mimic_model_add_pool(m, false, &p2);
    if (!rc) rc = mimic_model_add_global_pool(m, false, 3);
    if (!rc) rc = mimic_model_add_flatten(m);
    if (!rc) rc = mimic_model_add_dense(m, 2, W, B);
    if (rc) {
        mimic_model_free(m);
        return NULL;
    }
    return m;
}

static const mimic_io_var cnn_in[] = {{"field", "1", 24}}, cnn_out[] = {{"class", "1", 2}};
static const mimic_contract cnn_contract = {1, 1, cnn_in, cnn_out};

TEST(test_conv_records)
{
    mimic_dtype dts[2] = {MIMIC_F32, MIMIC_F64};
    for (int k = 0; k < 2; k++) {
        mimic_model *m = cnn_model(dts[k]);
        CHECK_PTR(m);
        CHECK(mimic_model_nout(m) == 2);
        CHECK_OK(mimic_model_save(pbase, m, &cnn_contract, NULL, NULL, NULL));
        mimic_model_info *info = NULL;
        mimic_model *r = mimic_model_load(pbase, &info);
        CHECK_PTR(r);
        char h0[72];
        CHECK_OK(mimic_model_hash(m, &cnn_contract, NULL, NULL, h0));
        CHECK(info && strcmp(info->hash, h0) == 0);
        CHECK(mimic_model_num_layers(r) == 8);
        /* the same records: identical outputs */
        double x[4 * 24], y0[8], y1[8];
        for (int i = 0; i < 4 * 24; i++)
            x[i] = cos(0.37 * i);
        CHECK_OK(run_raw(m, NULL, NULL, x, 2, y0));
        CHECK_OK(run_raw(r, NULL, NULL, x, 2, y1));
        CHECK(memcmp(y0, y1, sizeof(double) * 4) == 0);
        for (int i = 0; i < mimic_model_num_layers(m); i++) {
            mimic_layer_info a, b;
            CHECK_OK(mimic_model_layer(m, i, &a));
            CHECK_OK(mimic_model_layer(r, i, &b));
            CHECK(strcmp(a.type, b.type) == 0 && a.in == b.in && a.out == b.out && !a.spatial == !b.spatial);
            if (a.spatial)
                CHECK(memcmp(a.spatial, b.spatial, sizeof *a.spatial) == 0);
        }
        mimic_model_info_free(info);
        mimic_model_free(r);
        mimic_model_free(m);
    }
    /* the hash covers the geometry: the circular_padding and count_include_pad edits below are
     * caught as hash mismatches */
    mimic_model *m;
    /* hostile edits of the spatial records: layer 0 conv1d, 2 max_pool1d, 3 conv1d, 4 avg_pool1d,
     * 5 global_avg_pool, 6 flatten */
    m = cnn_model(MIMIC_F32);
    CHECK_OK(mimic_model_save(pbase, m, &cnn_contract, NULL, NULL, NULL));
    mimic_model_free(m);
    bad_case cases[] = {
        {{.op = ED_INT, .name = "layers/000/circular_padding", .i = 0}, MIMIC_EIO, "content hash mismatch"},
        {{.op = ED_INT, .name = "layers/000/circular_padding", .i = 2}, MIMIC_EVALUE, "'layers/000/circular_padding' is 2, expected 0..1"},
        {{.op = ED_INT, .name = "layers/000/groups", .i = 3}, MIMIC_EVALUE, "groups 3 must divide in_channels 2"},
        {{.op = ED_INT, .name = "layers/000/groups", .i = 0}, MIMIC_EVALUE, "'layers/000/groups' is 0, expected 1..1048576"},
        {{.op = ED_INT, .name = "layers/000/size_0", .i = 11}, MIMIC_ESHAPE, "the geometry maps 22 features to"},
        {{.op = ED_INT, .name = "layers/000/kernel_0", .i = 30}, MIMIC_ESHAPE, "the window does not fit size 12"},
        {{.op = ED_INT, .name = "layers/000/stride_0", .i = -1}, MIMIC_EVALUE, "'layers/000/stride_0' is -1"},
        {{.op = ED_INT, .name = "layers/000/padding_0", .i = 13}, MIMIC_EVALUE, "circular padding_0 = 13 is larger than size_0 = 12"},
        {{.op = ED_INT, .name = "layers/000/dilation_0", .i = (int64_t)1 << 40}, MIMIC_EVALUE, "'layers/000/dilation_0' is 1099511627776"},
        {{.op = ED_INT, .name = "layers/000/out_channels", .i = 6}, MIMIC_ESHAPE, "the geometry maps 24 features to 36"},
        {{.op = ED_DROP, .name = "layers/000/kernel_0"}, MIMIC_EIO, "'layers/000/kernel_0' is missing"},
        {{.op = ED_DROP, .name = "layers/000/weight"}, MIMIC_EIO, "'layers/000/weight' is missing"},
        {{.op = ED_TENSOR, .name = "layers/000/weight", .dt = MIMIC_F32, .ndim = 2, .shape = {4, 6}}, MIMIC_ESHAPE, "'layers/000/weight' has shape [4, 6], expected [4, 3]"},
        {{.op = ED_TENSOR, .name = "layers/000/bias", .dt = MIMIC_F32, .ndim = 1, .shape = {24}}, MIMIC_ESHAPE, "'layers/000/bias' has shape [24], expected [4]"},
        {{.op = ED_ELEM, .name = "layers/000/weight", .elem = 2, .d = NAN}, MIMIC_EVALUE, "element 2 is nan"},
        {{.op = ED_ADD_INT, .name = "layers/000/kernel_1", .i = 3}, MIMIC_EIO, "unexpected entry 'layers/000/kernel_1'"},
        {STR("layers/000/type", "conv2d"), MIMIC_EIO, "'layers/000/size_1' is missing"},
        {STR("layers/002/type", "avg_pool1d"), MIMIC_EIO, "'layers/002/count_include_pad' is missing"},
        {{.op = ED_INT, .name = "layers/002/padding_0", .i = 2}, MIMIC_EVALUE, "padding_0 = 2 is more than half the kernel 2"},
        {{.op = ED_INT, .name = "layers/002/in_channels", .i = 3}, MIMIC_ESHAPE, "the geometry maps 18 features to 15"},
        {{.op = ED_INT, .name = "layers/004/count_include_pad", .i = 1}, MIMIC_EIO, "content hash mismatch"},
        {{.op = ED_INT, .name = "layers/005/channels", .i = 2}, MIMIC_ESHAPE, "2 channels: 'in' (9) must be a multiple"},
        {{.op = ED_INT, .name = "layers/006/out", .i = 4}, MIMIC_ESHAPE, "layers/006 (flatten): 'out' is 4, expected 3"},
    };
    check_bad_cases("conv", pbase, pedit, cases, (int)(sizeof cases / sizeof cases[0]));
    /* an upsample record: round trip, then its checks */
    m = mimic_model_new(MIMIC_F64, 2 * 3 * 4);
    mimic_spatial up = {.ndim = 2, .in_channels = 2, .size = {3, 4}, .stride = {2, 3}};
    CHECK_OK(mimic_model_add_upsample(m, &up));
    CHECK_OK(mimic_model_save(pbase, m, &(mimic_contract){1, 1, (mimic_io_var[]){{"f", "1", 24}},
                                                          (mimic_io_var[]){{"g", "1", 144}}}, NULL, NULL, NULL));
    mimic_model_free(m);
    mimic_model *r = mimic_model_load(pbase, NULL);
    CHECK_PTR(r);
    mimic_layer_info li;
    CHECK(r && mimic_model_layer(r, 0, &li) == 0 && strcmp(li.type, "upsample2d") == 0 && li.out == 144 &&
          li.spatial->stride[1] == 3);
    mimic_model_free(r);
    bad_case ucases[] = {
        {{.op = ED_INT, .name = "layers/000/scale_1", .i = 65}, MIMIC_EVALUE, "scale_1 = 65, expected 1..64"},
        {{.op = ED_INT, .name = "layers/000/scale_0", .i = 1}, MIMIC_ESHAPE, "the geometry maps 24 features to 72"},
        {{.op = ED_INT, .name = "layers/000/size_0", .i = 4}, MIMIC_ESHAPE, "the geometry maps 32 features"},
        {{.op = ED_DROP, .name = "layers/000/scale_0"}, MIMIC_EIO, "'layers/000/scale_0' is missing"},
    };
    check_bad_cases("upsample", pbase, pedit, ucases, (int)(sizeof ucases / sizeof ucases[0]));
}

int main(void)
{
    setup();
    RUN(test_round_trip);
    RUN(test_sha256_vectors);
    RUN(test_encoders_invert);
    RUN(test_contract_bind);
    RUN(test_save_errors);
    RUN(test_bad_files);
    RUN(test_every_validation_error);
    RUN(test_out_of_memory);
    RUN(test_conv_records);
    test_dir_remove(dir);
    return CHECK_DONE();
}
