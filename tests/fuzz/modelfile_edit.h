/* Shared by tests/c/test_modelfile.c and tests/fuzz/fuzz_modelfile.c: a
 * sample model file, and a rewriter that copies a model file entry by entry
 * through the tensor dictionary (mimic/io.h) while applying a table of edits
 * (drop, retype, change a value, reshape a tensor, add an entry). Edited files
 * stay structurally valid HDF5, so what they exercise is the model-file
 * validation layer, not libhdf5's parser. Static functions: include once. */
#ifndef MIMIC_MODELFILE_EDIT_H
#define MIMIC_MODELFILE_EDIT_H

#include "mimic/io.h"
#include "mimic/modelfile.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

typedef enum ed_op {
    ED_DROP,       /* remove the entry */
    ED_INT,        /* replace with an int scalar i */
    ED_NUM,        /* replace with a number d */
    ED_STR,        /* replace with the string s (slen bytes) */
    ED_TENSOR,     /* replace with a tensor of dt/ndim/shape, values cycled from the original */
    ED_ELEM,       /* set element elem (mod numel) of a tensor to d */
    ED_ADD_INT,    /* add an int entry called name */
    ED_ADD_STR,    /* add a string entry */
    ED_ADD_TENSOR, /* add a tensor entry (dt/ndim/shape, zeros) */
    ED_COUNT
} ed_op;

typedef struct edit {
    ed_op op;
    char name[96];
    int64_t i;
    double d;
    char s[80];
    size_t slen;
    mimic_dtype dt;
    int ndim;
    int64_t shape[3];
    int64_t elem;
} edit;

static double ed_get(const mimic_tensor *t, int64_t k)
{
    const void *p = mimic_data(t);
    switch (t->dtype) {
    case MIMIC_F32: return ((const float *)p)[k];
    case MIMIC_F64: return ((const double *)p)[k];
    case MIMIC_I64: return (double)((const int64_t *)p)[k];
    default: return ((const uint8_t *)p)[k];
    }
}

static void ed_set(mimic_tensor *t, int64_t k, double v)
{
    void *p = mimic_data(t);
    switch (t->dtype) {
    case MIMIC_F32: ((float *)p)[k] = (float)v; break;
    case MIMIC_F64: ((double *)p)[k] = v; break;
    case MIMIC_I64: ((int64_t *)p)[k] = isfinite(v) && fabs(v) < 9e18 ? (int64_t)v : 0; break;
    default: ((uint8_t *)p)[k] = v != 0; break;
    }
}

static int ed_put_tensor(mimic_dict_writer *w, const edit *e, const mimic_tensor *orig)
{
    int64_t n = 1;
    for (int k = 0; k < e->ndim; k++)
        n *= e->shape[k];
    mimic_tensor *t = mimic_empty(e->ndim, e->shape, e->dt);
    if (!t)
        return -1;
    int64_t on = orig ? mimic_numel(orig) : 0;
    for (int64_t k = 0; k < n; k++)
        ed_set(t, k, on ? ed_get(orig, k % on) : 0.0);
    int rc = mimic_dict_put_tensor(w, e->name, t);
    mimic_tensor_free(t);
    return rc;
}

/* Copies src to dst applying the edits (the first edit naming an entry wins).
 * 0 on success; nonzero if the edits make an unwritable dictionary. */
static int mf_rewrite(const char *src, const char *dst, const edit *eds, int n)
{
    mimic_dict *d = mimic_dict_open(src);
    if (!d)
        return -1;
    mimic_dict_writer *w = mimic_dict_create(dst);
    int rc = w ? 0 : -1;
    for (int64_t i = 0; rc == 0 && i < mimic_dict_count(d); i++) {
        const mimic_dict_entry *en = mimic_dict_entry_at(d, i);
        const edit *e = NULL;
        for (int k = 0; k < n && !e; k++)
            if (eds[k].op < ED_ADD_INT && strcmp(eds[k].name, en->name) == 0)
                e = &eds[k];
        if (e && e->op == ED_DROP)
            continue;
        if (e && e->op == ED_INT) {
            rc = mimic_dict_put_int(w, en->name, e->i);
        } else if (e && e->op == ED_NUM) {
            rc = mimic_dict_put_number(w, en->name, e->d);
        } else if (e && e->op == ED_STR) {
            rc = mimic_dict_put_string(w, en->name, e->s, e->slen);
        } else if (en->kind == MIMIC_DICT_TENSOR) {
            mimic_tensor *t = mimic_dict_get_tensor(d, en->name);
            if (!t) {
                rc = -1;
                break;
            }
            if (e && e->op == ED_TENSOR) {
                rc = ed_put_tensor(w, e, t);
            } else {
                if (e && e->op == ED_ELEM && mimic_numel(t) > 0)
                    ed_set(t, (e->elem < 0 ? -e->elem : e->elem) % mimic_numel(t), e->d);
                rc = mimic_dict_put_tensor(w, en->name, t);
            }
            mimic_tensor_free(t);
        } else if (e && e->op == ED_TENSOR) {
            rc = ed_put_tensor(w, e, NULL);
        } else {
            switch (en->kind) {
            case MIMIC_DICT_GROUP: rc = mimic_dict_put_group(w, en->name); break;
            case MIMIC_DICT_INT: rc = mimic_dict_put_int(w, en->name, en->i); break;
            case MIMIC_DICT_NUMBER: rc = mimic_dict_put_number(w, en->name, en->d); break;
            case MIMIC_DICT_STRING: rc = mimic_dict_put_string(w, en->name, en->s, en->len); break;
            case MIMIC_DICT_BOOL: rc = mimic_dict_put_bool(w, en->name, en->b); break;
            default: break;
            }
        }
    }
    for (int k = 0; rc == 0 && k < n; k++) {
        const edit *e = &eds[k];
        if (e->op == ED_ADD_INT)
            rc = mimic_dict_put_int(w, e->name, e->i);
        else if (e->op == ED_ADD_STR)
            rc = mimic_dict_put_string(w, e->name, e->s, e->slen);
        else if (e->op == ED_ADD_TENSOR)
            rc = ed_put_tensor(w, e, NULL);
    }
    mimic_dict_close(d);
    if (!w)
        return -1;
    if (rc) {
        mimic_dict_discard(w);
        return rc;
    }
    return mimic_dict_commit(w);
}

/* --- the sample model: every record type, encoders of every kind ------------------ */
static const mimic_io_var mf_inputs[] = {{"temperature", "K", 2}, {"humidity", "kg/kg", 1}};
static const mimic_io_var mf_outputs[] = {{"heating", "K/s", 1}, {"moistening", "kg/kg/s", 1}};
static const double mf_mean[3] = {0.1, -0.2, 0.3}, mf_std[3] = {1.5, 0.5, 2.0};
static const double mf_min[1] = {-1.0}, mf_range[1] = {4.0};
static const mimic_enc_stage mf_in_stages[] = {
    {.kind = MIMIC_ENC_SIGNED_LOG, .scale = 2.0},
    {.kind = MIMIC_ENC_STANDARD, .n = 3, .a = mf_mean, .b = mf_std},
};
static const mimic_enc_stage mf_out_stages[] = {
    {.kind = MIMIC_ENC_MINMAX, .n = 1, .a = mf_min, .b = mf_range},
    {.kind = MIMIC_ENC_LOG, .offset = 5.0},
    {.kind = MIMIC_ENC_IDENTITY},
};
static const mimic_contract mf_contract = {2, 2, mf_inputs, mf_outputs};
static const mimic_encoder mf_in_enc = {2, mf_in_stages}, mf_out_enc = {3, mf_out_stages};
static const mimic_meta_entry mf_meta_entries[] = {
    {.key = "data_file", .kind = MIMIC_META_STRING, .s = "train.h5"},
    {.key = "data_hash", .kind = MIMIC_META_STRING, .s = "sha256:00ff"},
    {.key = "val_rmse", .kind = MIMIC_META_NUMBER, .d = 0.125},
    {.key = "epochs", .kind = MIMIC_META_INT, .i = 42},
};
static const mimic_meta mf_meta = {4, mf_meta_entries};

/* 3 -> dense 4 -> relu -> layernorm -> residual(dense 4, tanh) -> batchnorm ->
 * softplus -> leaky_relu -> elu -> gelu -> sigmoid -> identity -> dense 2 (no bias) */
static mimic_model *mf_sample_model(mimic_dtype dt)
{
    double w[64];
    float wf[64];
    for (int i = 0; i < 64; i++)
        w[i] = 0.1 * ((i * 7) % 11) - 0.5, wf[i] = (float)w[i];
    const void *p = dt == MIMIC_F32 ? (const void *)wf : (const void *)w;
    const void *ones = dt == MIMIC_F32 ? (const void *)(const float[]){1, 1.5f, 0.5f, 1}
                                       : (const void *)(const double[]){1, 1.5, 0.5, 1};
    mimic_model *m = mimic_model_new(dt, 3);
    int rc = m ? 0 : -1;
    if (!rc) rc = mimic_model_add_dense(m, 4, p, p);
    if (!rc) rc = mimic_model_add_activation(m, MIMIC_ACT_RELU, 0, 0);
    if (!rc) rc = mimic_model_add_layernorm(m, 1e-5, ones, p);
    if (!rc) rc = mimic_model_begin_residual(m);
    if (!rc) rc = mimic_model_add_dense(m, 4, p, NULL);
    if (!rc) rc = mimic_model_add_activation(m, MIMIC_ACT_TANH, 0, 0);
    if (!rc) rc = mimic_model_end_residual(m);
    if (!rc) rc = mimic_model_add_affine(m, ones, p);
    if (!rc) rc = mimic_model_add_activation(m, MIMIC_ACT_SOFTPLUS, 2.0, 20.0);
    if (!rc) rc = mimic_model_add_activation(m, MIMIC_ACT_LEAKY_RELU, 0.01, 0);
    if (!rc) rc = mimic_model_add_activation(m, MIMIC_ACT_ELU, 1.0, 0);
    if (!rc) rc = mimic_model_add_activation(m, MIMIC_ACT_GELU, 0, 0);
    if (!rc) rc = mimic_model_add_activation(m, MIMIC_ACT_SIGMOID, 0, 0);
    if (!rc) rc = mimic_model_add_activation(m, MIMIC_ACT_IDENTITY, 0, 0);
    if (!rc) rc = mimic_model_add_dense(m, 2, p, NULL);
    if (rc) {
        mimic_model_free(m);
        return NULL;
    }
    return m;
}

static int mf_save_sample(const char *path, mimic_dtype dt)
{
    mimic_model *m = mf_sample_model(dt);
    if (!m)
        return -1;
    int rc = mimic_model_save(path, m, &mf_contract, &mf_in_enc, &mf_out_enc, &mf_meta);
    mimic_model_free(m);
    return rc;
}

#endif
