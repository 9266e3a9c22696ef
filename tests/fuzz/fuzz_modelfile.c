/* libFuzzer harness for the model-file reader (make fuzz; docs/model-format.md).
 *
 * The fuzzer input is not a file: it is decoded into a small table of edits
 * (drop an entry, retype it, change its value, reshape or retype a tensor,
 * poke one element, add an entry) applied to a valid model file while it is
 * rewritten through the tensor dictionary into /dev/shm. The files are thus
 * always structurally valid HDF5 and every run reaches mimic_model_load's own
 * validation, which is what we fuzz; libhdf5's parser is a trust boundary
 * (fuzzing raw bytes would mostly fuzz HDF5, and HDF5's checksums reject
 * almost every flipped byte before our code runs).
 *
 * Input layout: byte 0 picks the base file (float32 or float64 model), then
 * 12 bytes per edit (at most 8): op, entry index (2 bytes), 9 payload bytes. */
#include "modelfile_edit.h"

#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

static char base[2][128], out[128];
static const char *names[256];
static int nnames;
static mimic_dict *base_dict[2];

static const int64_t ints[] = {0, 1, -1, 2, 3, 4, 5, 16, 17, 255, 1 << 20, (1 << 20) + 1, (int64_t)1 << 31,
                               (int64_t)1 << 40, INT64_MAX, INT64_MIN, 4096, 4097, 15, 14};
static const double nums[] = {0, -0.0, 1, -1, 1e-5, 2, 20, 1e308, -1e308, 5e-324, NAN, INFINITY, -INFINITY, 0.5};
static const char *const strs[] = {"dense", "relu", "tanh", "sigmoid", "identity", "gelu", "leaky_relu", "elu",
                                   "softplus", "layernorm", "batchnorm1d", "residual_begin", "residual_end",
                                   "conv2d", "standard", "minmax", "log", "signed_log", "sqrt", "float32",
                                   "float64", "int64", "mimic-model", "", "a/b", "temperature", "humidity",
                                   "sha256:", "x\x01y", "K"};
/* Names to add that the spec does not have (or has elsewhere). */
static const char *const extra[] = {"extra", "layers/000/slope", "layers/015/type", "layers/015", "meta/sub/x",
                                    "encoders/input/002/kind", "contract/inputs/002/name", "layers/001/weight",
                                    "encoders/output/000/mean", "meta/loss", "layers/014/bias", "contract/extra"};

/* libFuzzer ends with exit(): leave nothing behind in /dev/shm. */
static void cleanup(void)
{
    for (int k = 0; k < 2; k++) {
        mimic_dict_close(base_dict[k]);
        base_dict[k] = NULL;
        unlink(base[k]);
    }
    unlink(out);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    atexit(cleanup);
    snprintf(out, sizeof out, "/dev/shm/mimic_fuzz_%d.h5", (int)getpid());
    for (int k = 0; k < 2; k++) {
        snprintf(base[k], sizeof base[k], "/dev/shm/mimic_fuzz_base%d_%d.h5", k, (int)getpid());
        if (mf_save_sample(base[k], k ? MIMIC_F64 : MIMIC_F32) != 0 || !(base_dict[k] = mimic_dict_open(base[k]))) {
            fprintf(stderr, "fuzz_modelfile: cannot write the base file: %s\n", mimic_errmsg());
            abort();
        }
    }
    for (int64_t i = 0; i < mimic_dict_count(base_dict[0]) && nnames < 256; i++)
        names[nnames++] = mimic_dict_entry_at(base_dict[0], i)->name;
    return 0;
}

static uint64_t u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static void decode(const uint8_t *p, edit *e)
{
    memset(e, 0, sizeof *e);
    e->op = (ed_op)(p[0] % ED_COUNT);
    const uint8_t *v = p + 3;
    int idx = (p[1] | p[2] << 8);
    if (e->op >= ED_ADD_INT)
        snprintf(e->name, sizeof e->name, "%s", extra[idx % (int)(sizeof extra / sizeof extra[0])]);
    else
        snprintf(e->name, sizeof e->name, "%s", names[idx % nnames]);
    /* Half the values come from the tables of edge cases, half are raw. */
    bool table = v[0] & 1;
    e->i = table ? ints[v[1] % (sizeof ints / sizeof ints[0])] : (int64_t)u64(v + 1) >> (v[0] >> 2 & 63);
    uint64_t bits = u64(v + 1);
    memcpy(&e->d, &bits, 8);
    if (table)
        e->d = nums[v[1] % (sizeof nums / sizeof nums[0])];
    if (table || (v[2] & 1)) {
        const char *s = strs[v[2] % (sizeof strs / sizeof strs[0])];
        e->slen = strlen(s);
        memcpy(e->s, s, e->slen);
    } else {
        e->slen = v[3] % 9;
        memcpy(e->s, v + 1, e->slen);
    }
    static const mimic_dtype dts[4] = {MIMIC_F32, MIMIC_F64, MIMIC_I64, MIMIC_BOOL};
    e->dt = dts[v[4] % 4];
    e->ndim = v[5] % 3;
    e->shape[0] = v[6] % 6;
    e->shape[1] = v[7] % 6;
    e->elem = v[8];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int which = data[0] & 1;
    edit eds[8];
    int n = 0;
    for (size_t at = 1; at + 12 <= size && n < 8; at += 12)
        decode(data + at, &eds[n++]);
    if (mf_rewrite(base[which], out, eds, n) != 0)
        return 0; /* the edits make an unwritable dictionary (e.g. a name conflict) */
    mimic_model_info *info = NULL;
    mimic_model *m = mimic_model_load(out, &info);
    if (m) {
        /* A file that loads must run: raw row -> encoders -> plan -> decoders. */
        int64_t nin = mimic_model_nin(m), nout = mimic_model_nout(m);
        double *x = calloc((size_t)(nin + nout), sizeof(double));
        float *xf = calloc((size_t)(nin + nout), sizeof(float));
        mimic_dtype dt = mimic_model_dtype(m);
        void *in = dt == MIMIC_F32 ? (void *)xf : (void *)x, *o = dt == MIMIC_F32 ? (void *)(xf + nin) : (void *)(x + nin);
        mimic_plan *p = mimic_plan_new(m, 0);
        if (!p || mimic_encoder_encode(&info->input_encoder, dt, in, 1, nin) || mimic_plan_run(p, in, 1, o) ||
            mimic_encoder_decode(&info->output_encoder, dt, o, 1, nout)) {
            fprintf(stderr, "a loaded model does not run: %s\n", mimic_errmsg());
            abort();
        }
        char h[72];
        if (mimic_model_hash(m, &info->contract, &info->input_encoder, &info->output_encoder, h) ||
            strcmp(h, info->hash) != 0)
            abort();
        mimic_plan_free(p);
        free(x);
        free(xf);
    } else if (info) {
        abort(); /* a failed load returns no info */
    } else if (mimic_errmsg()[0] == '\0') {
        abort(); /* every failure has a message */
    }
    mimic_model_free(m);
    mimic_model_info_free(info);
    return 0;
}
