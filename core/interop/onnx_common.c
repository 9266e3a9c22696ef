/* Decoding and validating ONNX protobuf files (core/interop/onnx_internal.h). */
#include "onnx_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static void *pb_alloc(void *data, size_t size)
{
    (void)data;
    return mimic_malloc(size ? size : 1);
}

static void pb_free(void *data, void *p)
{
    (void)data;
    mimic_free(p);
}

ProtobufCAllocator onnx_allocator = {pb_alloc, pb_free, NULL};

Onnx__ModelProto *onnx_read(const char *path)
{
    if (!path) {
        mimic_error(MIMIC_EARG, "ONNX import: path is NULL");
        return NULL;
    }
    FILE *f = fopen(path, "rb");
    if (!f) {
        mimic_error(MIMIC_EIO, "%s: cannot open the ONNX file (check the path)", path);
        return NULL;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        mimic_error(MIMIC_EIO, "%s: not a regular file", path);
        return NULL;
    }
    /* The size is checked before the buffer is allocated: protobuf-c then
     * never allocates more than the bytes it was given can describe. */
    if (st.st_size <= 0 || (int64_t)st.st_size > ONNX_MAX_FILE_BYTES) {
        fclose(f);
        mimic_error(MIMIC_EIO, "%s: %s ONNX file (%lld bytes; at most %lld with weights stored inline)", path,
                    st.st_size <= 0 ? "an empty" : "too large an", (long long)st.st_size,
                    (long long)ONNX_MAX_FILE_BYTES);
        return NULL;
    }
    size_t n = (size_t)st.st_size;
    uint8_t *buf = mimic_malloc(n);
    if (!buf) {
        fclose(f);
        return NULL;
    }
    size_t got = fread(buf, 1, n, f);
    fclose(f);
    if (got != n) {
        mimic_free(buf);
        mimic_error(MIMIC_EIO, "%s: short read (%zu of %zu bytes)", path, got, n);
        return NULL;
    }
    Onnx__ModelProto *mp = onnx__model_proto__unpack(&onnx_allocator, n, buf);
    mimic_free(buf);
    if (!mp) {
        mimic_error(MIMIC_EIO, "%s: not a valid ONNX model (the protobuf is malformed or truncated; "
                    "re-export it, e.g. with torch.onnx.export, and check the copy is complete)", path);
        return NULL;
    }
    if (!mp->graph) {
        onnx_model_free(mp);
        mimic_error(MIMIC_EIO, "%s: the ONNX model has no graph (not an ONNX model file?)", path);
        return NULL;
    }
    return mp;
}

void onnx_model_free(Onnx__ModelProto *mp)
{
    if (mp)
        onnx__model_proto__free_unpacked(mp, &onnx_allocator);
}

int onnx_check_opset(const char *path, const Onnx__ModelProto *mp, int64_t *opset)
{
    *opset = -1;
    for (size_t i = 0; i < mp->n_opset_import; i++) {
        const Onnx__OperatorSetIdProto *o = mp->opset_import[i];
        if (!o->domain || o->domain[0] == '\0' || strcmp(o->domain, "ai.onnx") == 0)
            *opset = o->has_version ? o->version : -1;
    }
    if (*opset < 0)
        return mimic_error(MIMIC_EIO, "%s: the ONNX model declares no default-domain opset (opset_import); "
                           "re-export it with an explicit opset (%d..%d)", path, MIMIC_ONNX_OPSET_MIN,
                           MIMIC_ONNX_OPSET_MAX);
    if (*opset < MIMIC_ONNX_OPSET_MIN || *opset > MIMIC_ONNX_OPSET_MAX)
        return mimic_error(MIMIC_EIO, "%s: ONNX opset %lld is not supported (this mimic reads opsets %d..%d); "
                           "re-export with e.g. torch.onnx.export(..., opset_version=%d)", path,
                           (long long)*opset, MIMIC_ONNX_OPSET_MIN, MIMIC_ONNX_OPSET_MAX, MIMIC_ONNX_OPSET_MAX);
    return 0;
}

/* depth bounds chains of Identity nodes (a malformed graph may loop). */
static const Onnx__TensorProto *find_const(const Onnx__GraphProto *g, const char *name, int depth)
{
    if (!name || !name[0] || depth > 64)
        return NULL;
    for (size_t i = 0; i < g->n_initializer; i++)
        if (g->initializer[i]->name && strcmp(g->initializer[i]->name, name) == 0)
            return g->initializer[i];
    for (size_t i = 0; i < g->n_node; i++) {
        const Onnx__NodeProto *n = g->node[i];
        if (n->op_type && strcmp(n->op_type, "Constant") == 0 && n->n_output == 1 && strcmp(n->output[0], name) == 0) {
            const Onnx__AttributeProto *a = onnx_attr(n, "value");
            return a ? a->t : NULL;
        }
        /* PyTorch exports shared or copied weights as Identity of an initializer. */
        if (n->op_type && strcmp(n->op_type, "Identity") == 0 && n->n_output == 1 && n->n_input == 1 &&
            strcmp(n->output[0], name) == 0)
            return find_const(g, n->input[0], depth + 1);
    }
    return NULL;
}

const Onnx__TensorProto *onnx_find_const(const Onnx__GraphProto *g, const char *name)
{
    return find_const(g, name, 0);
}

/* dims validated, product computed where it cannot overflow. */
static int64_t checked_numel(const char *path, const Onnx__TensorProto *t, const char *what, int64_t dims[4], int *ndim)
{
    if (t->n_dims > 4) {
        mimic_error(MIMIC_ESHAPE, "%s: %s has %zu dims (at most 4 expected)", path, what, t->n_dims);
        return -1;
    }
    int64_t numel = 1;
    for (size_t i = 0; i < t->n_dims; i++) {
        if (t->dims[i] < 0 || t->dims[i] > ONNX_MAX_NUMEL || numel * t->dims[i] > ONNX_MAX_NUMEL) {
            mimic_error(MIMIC_ESHAPE, "%s: %s: dim %zu = %lld is negative or the tensor exceeds 2^28 elements",
                        path, what, i, (long long)t->dims[i]);
            return -1;
        }
        numel *= t->dims[i];
        dims[i] = t->dims[i];
    }
    *ndim = (int)t->n_dims;
    if (t->has_data_location && t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL) {
        mimic_error(MIMIC_EIO, "%s: %s stores its data in an external file, which mimic does not read; "
                    "re-save the model with the weights inline (onnx.save(model, path, save_as_external_data=False))",
                    path, what);
        return -1;
    }
    return numel;
}

double *onnx_const_doubles(const char *path, const Onnx__TensorProto *t, const char *what, int64_t dims[4],
                           int *ndim, int64_t *numel)
{
    int64_t n = checked_numel(path, t, what, dims, ndim);
    if (n < 0)
        return NULL;
    int32_t ty = t->has_data_type ? t->data_type : 0;
    size_t es = ty == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT ? 4 : ty == ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE ? 8 : 0;
    if (!es) {
        mimic_error(MIMIC_EDTYPE, "%s: %s has ONNX element type %d; float (1) or double (11) expected", path, what,
                    (int)ty);
        return NULL;
    }
    size_t have = t->has_raw_data ? t->raw_data.len / es
                  : es == 4        ? t->n_float_data
                                   : t->n_double_data;
    if ((t->has_raw_data && t->raw_data.len % es) || have != (size_t)n) {
        mimic_error(MIMIC_ESHAPE, "%s: %s holds %zu values, its dims say %lld (truncated or inconsistent tensor)",
                    path, what, have, (long long)n);
        return NULL;
    }
    double *out = mimic_malloc((size_t)(n ? n : 1) * sizeof *out);
    if (!out)
        return NULL;
    for (int64_t i = 0; i < n; i++) {
        double v;
        if (t->has_raw_data) { /* little-endian, as ONNX specifies */
            const uint8_t *p = t->raw_data.data + (size_t)i * es;
            uint64_t u = 0;
            for (size_t k = 0; k < es; k++)
                u |= (uint64_t)p[k] << (8 * k);
            if (es == 4) {
                uint32_t u32 = (uint32_t)u;
                float fv;
                memcpy(&fv, &u32, 4);
                v = fv;
            } else {
                memcpy(&v, &u, 8);
            }
        } else {
            v = es == 4 ? (double)t->float_data[i] : t->double_data[i];
        }
        if (!isfinite(v)) {
            mimic_free(out);
            mimic_error(MIMIC_EVALUE, "%s: %s: element %lld is %g (weights must be finite)", path, what, (long long)i, v);
            return NULL;
        }
        out[i] = v;
    }
    *numel = n;
    return out;
}

int onnx_const_ints(const char *path, const Onnx__TensorProto *t, const char *what, int64_t *out, int max)
{
    int64_t dims[4];
    int ndim;
    int64_t n = checked_numel(path, t, what, dims, &ndim);
    if (n < 0)
        return -1;
    if (!t->has_data_type || t->data_type != ONNX__TENSOR_PROTO__DATA_TYPE__INT64)
        return mimic_error(MIMIC_EDTYPE, "%s: %s must be an int64 tensor", path, what);
    if (n > max)
        return mimic_error(MIMIC_ESHAPE, "%s: %s has %lld elements (at most %d expected)", path, what, (long long)n, max);
    if (t->has_raw_data) {
        if (t->raw_data.len != (size_t)n * 8)
            return mimic_error(MIMIC_ESHAPE, "%s: %s: truncated data", path, what);
        for (int64_t i = 0; i < n; i++) {
            uint64_t u = 0;
            for (int k = 0; k < 8; k++)
                u |= (uint64_t)t->raw_data.data[i * 8 + k] << (8 * k);
            out[i] = (int64_t)u;
        }
    } else {
        if (t->n_int64_data != (size_t)n)
            return mimic_error(MIMIC_ESHAPE, "%s: %s: truncated data", path, what);
        memcpy(out, t->int64_data, (size_t)n * 8);
    }
    return (int)n;
}

const Onnx__AttributeProto *onnx_attr(const Onnx__NodeProto *n, const char *name)
{
    for (size_t i = 0; i < n->n_attribute; i++)
        if (n->attribute[i]->name && strcmp(n->attribute[i]->name, name) == 0)
            return n->attribute[i];
    return NULL;
}

double onnx_attr_f(const Onnx__NodeProto *n, const char *name, double def)
{
    const Onnx__AttributeProto *a = onnx_attr(n, name);
    return a && a->has_f ? (double)a->f : def;
}

int64_t onnx_attr_i(const Onnx__NodeProto *n, const char *name, int64_t def)
{
    const Onnx__AttributeProto *a = onnx_attr(n, name);
    return a && a->has_i ? a->i : def;
}

const char *onnx_node_label(const Onnx__NodeProto *n, int index, char buf[32])
{
    if (n->name && n->name[0])
        return n->name;
    snprintf(buf, 32, "#%d", index);
    return buf;
}

int onnx_graph_io(const char *path, const Onnx__GraphProto *g, const Onnx__ValueInfoProto **in, int64_t *width,
                  int32_t *elem)
{
    *in = NULL;
    int nreal = 0;
    for (size_t i = 0; i < g->n_input; i++) {
        const Onnx__ValueInfoProto *v = g->input[i];
        if (onnx_find_const(g, v->name))
            continue; /* older exporters list initializers as inputs too */
        if (nreal++ == 0)
            *in = v;
    }
    if (nreal != 1)
        return mimic_error(MIMIC_EIO, "%s: the graph has %d inputs besides its weights; mimic imports models with "
                           "exactly one input of shape [batch, features] (concatenate the inputs before export)",
                           path, nreal);
    const Onnx__ValueInfoProto *v = *in;
    const Onnx__TypeProto *tp = v->type;
    if (!tp || tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !tp->tensor_type->shape)
        return mimic_error(MIMIC_EIO, "%s: graph input '%s' has no tensor type and shape", path, v->name);
    const Onnx__TensorShapeProto *sh = tp->tensor_type->shape;
    *elem = tp->tensor_type->has_elem_type ? tp->tensor_type->elem_type : 0;
    if (*elem != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT && *elem != ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE)
        return mimic_error(MIMIC_EDTYPE, "%s: graph input '%s' has element type %d; float or double expected", path,
                           v->name, (int)*elem);
    /* [batch, F], or [batch, C, spatial...] (1..3 spatial dims) taken as rows of C * prod(spatial). */
    int64_t w = 1;
    int ok = sh->n_dim >= 2 && sh->n_dim <= 5;
    for (size_t d = 1; ok && d < sh->n_dim; d++) {
        const Onnx__TensorShapeProto__Dimension *dm = sh->dim[d];
        ok = dm->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE && dm->dim_value >= 1 &&
             dm->dim_value <= ONNX_MAX_WIDTH && w * dm->dim_value <= ONNX_MAX_WIDTH;
        w *= ok ? dm->dim_value : 1;
    }
    if (!ok)
        return mimic_error(MIMIC_ESHAPE, "%s: graph input '%s' must have shape [batch, F] or [batch, C, spatial...] "
                           "with fixed sizes and at most 2^20 features per sample (rank %zu given)", path, v->name,
                           sh->n_dim);
    *width = w;
    return 0;
}
