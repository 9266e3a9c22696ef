/* mimic model -> ONNX (core/include/mimic/onnx.h, docs/interop.md).
 *
 * The protobuf messages are built in a pool of allocations freed together,
 * packed into one buffer and written atomically (temporary file, fsync,
 * rename). Constants are stored inline as little-endian raw_data. */
#include "onnx_internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct ex {
    void **pool;
    int npool, cap;
    Onnx__NodeProto **nodes;
    size_t nnodes, capn;
    Onnx__TensorProto **inits;
    size_t ninits, capi;
    int counter;
    mimic_dtype dt;
    int32_t elem;
    int oom;
} ex;

static void *xalloc(ex *e, size_t n)
{
    if (e->oom)
        return NULL;
    if (e->npool == e->cap) {
        int cap = e->cap ? 2 * e->cap : 256;
        void **p = mimic_realloc(e->pool, (size_t)cap * sizeof *p);
        if (!p) {
            e->oom = 1;
            return NULL;
        }
        e->pool = p, e->cap = cap;
    }
    void *p = mimic_calloc(1, n ? n : 1);
    if (!p) {
        e->oom = 1;
        return NULL;
    }
    return e->pool[e->npool++] = p;
}

static char *xstr(ex *e, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    char *s = xalloc(e, strlen(buf) + 1);
    if (s)
        strcpy(s, buf);
    return s;
}

/* Appends to a growing array of pointers (nodes, initializers). */
static int push(ex *e, void ***arr, size_t *n, size_t *cap, void *item)
{
    if (!item || e->oom)
        return e->oom = 1, -1;
    if (*n == *cap) {
        size_t c = *cap ? 2 * *cap : 64;
        void **p = mimic_realloc(*arr, c * sizeof *p);
        if (!p)
            return e->oom = 1, -1;
        *arr = p, *cap = c;
    }
    (*arr)[(*n)++] = item;
    return 0;
}

/* A constant of the model's element type from doubles (or from the model's
 * own weights when src is not NULL); returns its name. */
static const char *constant_nd(ex *e, const char *hint, const double *vals, const void *src, int rank,
                               const int64_t *shape);

static const char *constant(ex *e, const char *hint, const double *vals, const void *src, int64_t rows, int64_t cols,
                            int rank)
{
    int64_t shape[2] = {rank == 2 ? rows : cols, cols};
    return constant_nd(e, hint, vals, src, rank, shape);
}

static const char *constant_nd(ex *e, const char *hint, const double *vals, const void *src, int rank,
                               const int64_t *shape)
{
    Onnx__TensorProto *t = xalloc(e, sizeof *t);
    int64_t *dims = xalloc(e, 5 * sizeof *dims);
    size_t es = e->dt == MIMIC_F64 ? 8 : 4, n = 1;
    for (int i = 0; i < rank; i++)
        n *= (size_t)shape[i];
    uint8_t *raw = xalloc(e, n * es);
    if (!t || !dims || !raw)
        return NULL;
    onnx__tensor_proto__init(t);
    t->name = xstr(e, "%s_%d", hint, e->counter++);
    for (int i = 0; i < rank; i++)
        dims[i] = shape[i];
    t->n_dims = (size_t)rank, t->dims = dims;
    t->has_data_type = 1, t->data_type = e->elem;
    for (size_t i = 0; i < n; i++) {
        uint64_t u;
        if (es == 8) {
            double d = src ? ((const double *)src)[i] : vals[i];
            memcpy(&u, &d, 8);
        } else {
            float f = src ? ((const float *)src)[i] : (float)vals[i];
            uint32_t u32;
            memcpy(&u32, &f, 4);
            u = u32;
        }
        for (size_t k = 0; k < es; k++)
            raw[i * es + k] = (uint8_t)(u >> (8 * k));
    }
    t->has_raw_data = 1, t->raw_data.len = n * es, t->raw_data.data = raw;
    if (push(e, (void ***)&e->inits, &e->ninits, &e->capi, t))
        return NULL;
    return t->name;
}

static const char *scalar(ex *e, double v)
{
    return constant(e, "c", &v, NULL, 1, 1, 1);
}

static Onnx__AttributeProto *attr_f(ex *e, const char *name, double v)
{
    Onnx__AttributeProto *a = xalloc(e, sizeof *a);
    if (!a)
        return NULL;
    onnx__attribute_proto__init(a);
    a->name = (char *)name;
    a->has_type = 1, a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT;
    a->has_f = 1, a->f = (float)v;
    return a;
}

static Onnx__AttributeProto *attr_i(ex *e, const char *name, int64_t v)
{
    Onnx__AttributeProto *a = xalloc(e, sizeof *a);
    if (!a)
        return NULL;
    onnx__attribute_proto__init(a);
    a->name = (char *)name;
    a->has_type = 1, a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
    a->has_i = 1, a->i = v;
    return a;
}

static Onnx__AttributeProto *attr_ints(ex *e, const char *name, const int64_t *v, int n)
{
    Onnx__AttributeProto *a = xalloc(e, sizeof *a);
    int64_t *vals = xalloc(e, (size_t)n * sizeof *vals);
    if (!a || !vals)
        return NULL;
    onnx__attribute_proto__init(a);
    a->name = (char *)name;
    a->has_type = 1, a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
    memcpy(vals, v, (size_t)n * sizeof *vals);
    a->n_ints = (size_t)n, a->ints = vals;
    return a;
}

static const char *int_constant(ex *e, const int64_t *v, int n)
{
    Onnx__TensorProto *t = xalloc(e, sizeof *t);
    int64_t *vals = xalloc(e, (size_t)n * sizeof *vals), *dims = xalloc(e, sizeof *dims);
    if (!t || !vals || !dims)
        return NULL;
    onnx__tensor_proto__init(t);
    memcpy(vals, v, (size_t)n * sizeof *vals);
    dims[0] = n;
    t->name = xstr(e, "shape_%d", e->counter++), t->n_dims = 1, t->dims = dims;
    t->has_data_type = 1, t->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__INT64;
    t->n_int64_data = (size_t)n, t->int64_data = vals;
    if (push(e, (void ***)&e->inits, &e->ninits, &e->capi, t))
        return NULL;
    return t->name;
}

/* Adds a node reading in[0..nin) and returns its (new) output name, or the
 * given output name when out is not NULL. */
static const char *node5(ex *e, const char *op, const char *out, int nin, const char *const *in, int nattr,
                         Onnx__AttributeProto *const *a);

static const char *node(ex *e, const char *op, const char *out, int nin, const char *const *in, int nattr,
                        Onnx__AttributeProto *a0, Onnx__AttributeProto *a1)
{
    Onnx__AttributeProto *a[2] = {a0, a1};
    return node5(e, op, out, nin, in, nattr, a);
}

static const char *node5(ex *e, const char *op, const char *out, int nin, const char *const *in, int nattr,
                         Onnx__AttributeProto *const *a)
{
    Onnx__NodeProto *n = xalloc(e, sizeof *n);
    char **ins = xalloc(e, (size_t)nin * sizeof *ins);
    char **outs = xalloc(e, sizeof *outs);
    Onnx__AttributeProto **attrs = xalloc(e, 5 * sizeof *attrs);
    if (!n || !ins || !outs || !attrs)
        return NULL;
    onnx__node_proto__init(n);
    n->op_type = (char *)op;
    n->name = xstr(e, "%s_%d", op, e->counter++);
    for (int i = 0; i < nin; i++)
        if (!(ins[i] = (char *)in[i]))
            return e->oom = 1, NULL;
    n->n_input = (size_t)nin, n->input = ins;
    outs[0] = out ? (char *)out : xstr(e, "t%d", e->counter++);
    n->n_output = 1, n->output = outs;
    for (int i = 0; i < nattr; i++)
        if (!(attrs[i] = a[i]))
            return e->oom = 1, NULL;
    n->n_attribute = (size_t)nattr, n->attribute = attrs;
    if (push(e, (void ***)&e->nodes, &e->nnodes, &e->capn, n))
        return NULL;
    return outs[0];
}

static const char *op1(ex *e, const char *op, const char *x)
{
    return node(e, op, NULL, 1, &x, 0, NULL, NULL);
}

static const char *op2(ex *e, const char *op, const char *x, const char *y)
{
    const char *in[2] = {x, y};
    return node(e, op, NULL, 2, in, 0, NULL, NULL);
}

/* One encoder stage on x (width w), forward (encode) or back (decode). */
static const char *stage(ex *e, const mimic_enc_stage *s, const char *x, int decode)
{
    switch (s->kind) {
    case MIMIC_ENC_IDENTITY: return x;
    case MIMIC_ENC_STANDARD:
    case MIMIC_ENC_MINMAX: {
        const char *a = constant(e, "enc_a", s->a, NULL, 1, s->n, 1), *b = constant(e, "enc_b", s->b, NULL, 1, s->n, 1);
        return decode ? op2(e, "Add", op2(e, "Mul", x, b), a) : op2(e, "Div", op2(e, "Sub", x, a), b);
    }
    case MIMIC_ENC_LOG:
        return decode ? op2(e, "Sub", op1(e, "Exp", x), scalar(e, s->offset))
                      : op1(e, "Log", op2(e, "Add", x, scalar(e, s->offset)));
    case MIMIC_ENC_SIGNED_LOG: {
        const char *sg = op1(e, "Sign", x), *ab = op1(e, "Abs", x);
        const char *mag = decode ? op2(e, "Mul", op2(e, "Sub", op1(e, "Exp", ab), scalar(e, 1)), scalar(e, s->scale))
                                 : op1(e, "Log", op2(e, "Add", op2(e, "Div", ab, scalar(e, s->scale)), scalar(e, 1)));
        return op2(e, "Mul", sg, mag);
    }
    default: return NULL;
    }
}

/* Spatial records work on [batch, C, spatial...] tensors: a Reshape enters
 * that form, a Flatten leaves it (e->spatial says which form x has). */
static const char *to_rows(ex *e, const char *x, int *spatial)
{
    if (!*spatial || !x)
        return x;
    *spatial = 0;
    return node(e, "Flatten", NULL, 1, &x, 1, attr_i(e, "axis", 1), NULL);
}

static int any_dilation(const mimic_spatial *g)
{
    for (int d = 0; d < g->ndim; d++)
        if (g->dilation[d] != 1)
            return 1;
    return 0;
}

static const char *spatial_layer(ex *e, const mimic_layer_info *li, const char *x, int *spatial)
{
    const mimic_spatial *g = li->spatial;
    int nd = g->ndim;
    if (!*spatial) {
        int64_t shape[5] = {-1, g->in_channels};
        for (int d = 0; d < nd; d++)
            shape[d + 2] = g->size[d];
        const char *in[2] = {x, int_constant(e, shape, nd + 2)};
        x = node(e, "Reshape", NULL, 2, in, 0, NULL, NULL);
        *spatial = 1;
    }
    if (strncmp(li->type, "global_", 7) == 0)
        return op1(e, strcmp(li->type, "global_max_pool") == 0 ? "GlobalMaxPool" : "GlobalAveragePool", x);
    int64_t pads[6], ks[3];
    for (int d = 0; d < nd; d++)
        pads[d] = pads[d + nd] = g->padding[d], ks[d] = g->kernel[d];
    Onnx__AttributeProto *a[5] = {attr_ints(e, "strides", g->stride, nd), attr_ints(e, "pads", pads, 2 * nd),
                                  attr_ints(e, "dilations", g->dilation, nd), NULL, NULL};
    if (strncmp(li->type, "conv", 4) == 0) {
        if (g->circular) {
            mimic_error(MIMIC_EARG, "ONNX export: %s with circular padding has no ONNX operator; not exported",
                        li->type);
            return NULL;
        }
        int64_t shape[5] = {g->out_channels, g->in_channels / g->groups};
        for (int d = 0; d < nd; d++)
            shape[d + 2] = g->kernel[d];
        const char *in[3] = {x, constant_nd(e, "conv_weight", NULL, li->weight[0], nd + 2, shape), NULL};
        int n = 2;
        if (li->weight[1])
            in[n++] = constant(e, "conv_bias", NULL, li->weight[1], 1, g->out_channels, 1);
        a[3] = attr_i(e, "group", g->groups);
        return node5(e, "Conv", NULL, n, in, 4, a);
    }
    if (strncmp(li->type, "max_pool", 8) != 0 && strncmp(li->type, "avg_pool", 8) != 0) {
        /* upsample (ONNX Resize) is not exported yet: refuse rather than guess */
        mimic_error(MIMIC_EARG, "ONNX export: %s has no ONNX export yet; not exported", li->type);
        return NULL;
    }
    a[3] = attr_ints(e, "kernel_shape", ks, nd);
    if (strncmp(li->type, "max", 3) == 0)
        return node5(e, "MaxPool", NULL, 1, &x, 4, a);
    if (any_dilation(g)) {
        mimic_error(MIMIC_EARG, "ONNX export: %s with dilation has no ONNX AveragePool form; not exported", li->type);
        return NULL;
    }
    a[2] = attr_i(e, "count_include_pad", g->circular);
    return node5(e, "AveragePool", NULL, 1, &x, 4, a);
}

static const char *layer(ex *e, const mimic_model *m, int i, const char *x, const char **stack, int *depth,
                         int *spatial)
{
    mimic_layer_info li;
    if (mimic_model_layer(m, i, &li))
        return NULL;
    const char *t = li.type;
    if (li.spatial || strncmp(t, "global_", 7) == 0) {
        if (strncmp(t, "global_", 7) == 0 && !li.spatial) {
            mimic_error(MIMIC_EARG, "ONNX export: layer %d: %s without geometry", i, t);
            return NULL;
        }
        return spatial_layer(e, &li, x, spatial);
    }
    if (strcmp(t, "flatten") == 0)
        return *spatial ? to_rows(e, x, spatial) : op1(e, "Identity", x);
    /* element-wise activations keep the spatial form; everything else works on rows */
    if (strcmp(t, "relu") && strcmp(t, "tanh") && strcmp(t, "sigmoid") && strcmp(t, "identity") &&
        strcmp(t, "leaky_relu") && strcmp(t, "elu") && strcmp(t, "softplus") && strcmp(t, "gelu"))
        x = to_rows(e, x, spatial);
    if (strcmp(t, "dense") == 0) {
        const char *in[3] = {x, constant(e, "weight", NULL, li.weight[0], li.out, li.in, 2), NULL};
        int n = 2;
        if (li.weight[1])
            in[n++] = constant(e, "bias", NULL, li.weight[1], 1, li.out, 1);
        return node(e, "Gemm", NULL, n, in, 1, attr_i(e, "transB", 1), NULL);
    }
    if (strcmp(t, "relu") == 0)
        return op1(e, "Relu", x);
    if (strcmp(t, "tanh") == 0)
        return op1(e, "Tanh", x);
    if (strcmp(t, "sigmoid") == 0)
        return op1(e, "Sigmoid", x);
    if (strcmp(t, "identity") == 0)
        return op1(e, "Identity", x);
    if (strcmp(t, "leaky_relu") == 0)
        return node(e, "LeakyRelu", NULL, 1, &x, 1, attr_f(e, "alpha", li.attr[0]), NULL);
    if (strcmp(t, "elu") == 0)
        return node(e, "Elu", NULL, 1, &x, 1, attr_f(e, "alpha", li.attr[0]), NULL);
    if (strcmp(t, "softplus") == 0) { /* log(1 + e^(beta x)) / beta; ONNX has no threshold */
        if (li.attr[0] == 1.0)
            return op1(e, "Softplus", x);
        const char *b = scalar(e, li.attr[0]);
        return op2(e, "Div", op1(e, "Softplus", op2(e, "Mul", x, b)), b);
    }
    if (strcmp(t, "gelu") == 0) { /* 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
        const char *x3 = op2(e, "Mul", op2(e, "Mul", x, x), x);
        const char *in = op2(e, "Mul", op2(e, "Add", x, op2(e, "Mul", x3, scalar(e, 0.044715))),
                             scalar(e, 0.7978845608028654)); /* sqrt(2 / pi) */
        return op2(e, "Mul", op2(e, "Mul", x, op2(e, "Add", op1(e, "Tanh", in), scalar(e, 1))), scalar(e, 0.5));
    }
    if (strcmp(t, "layernorm") == 0) {
        double *ones = xalloc(e, (size_t)li.out * sizeof(double));
        if (!ones)
            return NULL;
        for (int64_t k = 0; k < li.out; k++)
            ones[k] = 1;
        const char *in[3] = {x, li.weight[0] ? constant(e, "ln_weight", NULL, li.weight[0], 1, li.out, 1)
                                             : constant(e, "ln_weight", ones, NULL, 1, li.out, 1),
                             NULL};
        int n = 2;
        if (li.weight[1])
            in[n++] = constant(e, "ln_bias", NULL, li.weight[1], 1, li.out, 1);
        return node(e, "LayerNormalization", NULL, n, in, 2, attr_i(e, "axis", -1), attr_f(e, "epsilon", li.attr[0]));
    }
    if (strcmp(t, "batchnorm1d") == 0)
        return op2(e, "Add", op2(e, "Mul", x, constant(e, "scale", NULL, li.weight[0], 1, li.out, 1)),
                   constant(e, "shift", NULL, li.weight[1], 1, li.out, 1));
    if (strcmp(t, "residual_begin") == 0) {
        stack[(*depth)++] = x;
        return x;
    }
    if (strcmp(t, "residual_end") == 0)
        return op2(e, "Add", stack[--(*depth)], x);
    mimic_error(MIMIC_EARG, "ONNX export: layer %d: record type '%s' has no ONNX translation yet", i, t);
    return NULL;
}

static Onnx__ValueInfoProto *value_info(ex *e, const char *name, int64_t width)
{
    Onnx__ValueInfoProto *v = xalloc(e, sizeof *v);
    Onnx__TypeProto *tp = xalloc(e, sizeof *tp);
    Onnx__TypeProto__Tensor *tt = xalloc(e, sizeof *tt);
    Onnx__TensorShapeProto *sh = xalloc(e, sizeof *sh);
    Onnx__TensorShapeProto__Dimension **d = xalloc(e, 2 * sizeof *d);
    Onnx__TensorShapeProto__Dimension *d0 = xalloc(e, sizeof *d0), *d1 = xalloc(e, sizeof *d1);
    if (!v || !tp || !tt || !sh || !d || !d0 || !d1)
        return NULL;
    onnx__value_info_proto__init(v);
    onnx__type_proto__init(tp);
    onnx__type_proto__tensor__init(tt);
    onnx__tensor_shape_proto__init(sh);
    onnx__tensor_shape_proto__dimension__init(d0);
    onnx__tensor_shape_proto__dimension__init(d1);
    d0->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM, d0->dim_param = (char *)"batch";
    d1->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE, d1->dim_value = width;
    d[0] = d0, d[1] = d1;
    sh->n_dim = 2, sh->dim = d;
    tt->has_elem_type = 1, tt->elem_type = e->elem, tt->shape = sh;
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE, tp->tensor_type = tt;
    v->name = (char *)name, v->type = tp;
    return v;
}

static int write_atomic(const char *path, const uint8_t *buf, size_t n)
{
    size_t len = strlen(path);
    char *tmp = mimic_malloc(len + 16);
    if (!tmp)
        return MIMIC_ENOMEM;
    snprintf(tmp, len + 16, "%s.tmpXXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        mimic_free(tmp);
        return mimic_error(MIMIC_EIO, "%s: cannot create a temporary file next to it (check the directory exists "
                           "and is writable)", path);
    }
    size_t done = 0;
    while (done < n) {
        ssize_t k = write(fd, buf + done, n - done);
        if (k <= 0)
            break;
        done += (size_t)k;
    }
    int bad = done != n || fsync(fd) != 0;
    bad |= close(fd) != 0;
    if (bad || rename(tmp, path) != 0) {
        unlink(tmp);
        mimic_free(tmp);
        return mimic_error(MIMIC_EIO, "%s: writing failed (disk full or not writable?)", path);
    }
    mimic_free(tmp);
    return 0;
}

int mimic_onnx_export(const char *path, const mimic_model *m, const mimic_contract *contract,
                      const mimic_encoder *input_enc, const mimic_encoder *output_enc)
{
    if (!path || !m)
        return mimic_error(MIMIC_EARG, "mimic_onnx_export: path and model are required");
    ex e = {.dt = mimic_model_dtype(m)};
    e.elem = e.dt == MIMIC_F64 ? ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE : ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    int64_t nin = mimic_model_nin(m), nout = mimic_model_nout(m);
    int rc = 0;
    int nl = mimic_model_num_layers(m);
    const char **stack = mimic_calloc((size_t)nl + 1, sizeof *stack);
    mimic_io_var def_in = {"x", "", nin}, def_out = {"y", "", nout};
    mimic_contract c = contract ? *contract : (mimic_contract){1, 1, &def_in, &def_out};
    Onnx__ValueInfoProto **gin = xalloc(&e, (size_t)c.ninputs * sizeof *gin);
    Onnx__ValueInfoProto **gout = xalloc(&e, (size_t)c.noutputs * sizeof *gout);
    if (!stack || !gin || !gout) {
        rc = MIMIC_ENOMEM;
        goto done;
    }
    /* Several contract variables: graph inputs joined by Concat, outputs by Split. */
    const char **names = xalloc(&e, (size_t)c.ninputs * sizeof *names);
    if (!names) {
        rc = MIMIC_ENOMEM;
        goto done;
    }
    for (int i = 0; i < c.ninputs; i++) {
        names[i] = c.inputs[i].name;
        gin[i] = value_info(&e, c.inputs[i].name, c.inputs[i].size);
    }
    const char *x = c.ninputs == 1 ? names[0] : node(&e, "Concat", NULL, c.ninputs, names, 1, attr_i(&e, "axis", 1), NULL);
    for (int i = 0; input_enc && i < input_enc->nstages && x; i++)
        x = stage(&e, &input_enc->stages[i], x, 0);
    int depth = 0, spatial = 0;
    for (int i = 0; i < nl && x; i++)
        if (!(x = layer(&e, m, i, x, stack, &depth, &spatial)) && !e.oom) {
            rc = MIMIC_EARG;
            goto done;
        }
    x = to_rows(&e, x, &spatial);
    for (int i = output_enc ? output_enc->nstages - 1 : -1; i >= 0 && x; i--)
        x = stage(&e, &output_enc->stages[i], x, 1);
    if (x && c.noutputs == 1) {
        const char *in = x;
        x = node(&e, "Identity", c.outputs[0].name, 1, &in, 0, NULL, NULL);
    } else if (x) {
        Onnx__NodeProto *split = NULL;
        /* Split's sizes are an int64 input from opset 13 on. */
        Onnx__TensorProto *t = xalloc(&e, sizeof *t);
        int64_t *sz = xalloc(&e, (size_t)c.noutputs * sizeof *sz), *dims = xalloc(&e, sizeof *dims);
        char **outs = xalloc(&e, (size_t)c.noutputs * sizeof *outs);
        if (t && sz && dims && outs) {
            onnx__tensor_proto__init(t);
            for (int i = 0; i < c.noutputs; i++)
                sz[i] = c.outputs[i].size, outs[i] = (char *)c.outputs[i].name;
            dims[0] = c.noutputs;
            t->name = xstr(&e, "split_%d", e.counter++), t->n_dims = 1, t->dims = dims;
            t->has_data_type = 1, t->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__INT64;
            t->n_int64_data = (size_t)c.noutputs, t->int64_data = sz;
            push(&e, (void ***)&e.inits, &e.ninits, &e.capi, t);
            const char *in[2] = {x, t->name};
            if (node(&e, "Split", NULL, 2, in, 1, attr_i(&e, "axis", 1), NULL)) {
                split = e.nodes[e.nnodes - 1];
                split->n_output = (size_t)c.noutputs, split->output = outs;
            }
        }
        x = split ? "split" : NULL;
    }
    for (int i = 0; i < c.noutputs; i++)
        gout[i] = value_info(&e, c.outputs[i].name, c.outputs[i].size);
    if (!x || e.oom) {
        rc = e.oom ? mimic_error(MIMIC_ENOMEM, "ONNX export: out of memory") : MIMIC_EARG;
        goto done;
    }
    Onnx__GraphProto g;
    onnx__graph_proto__init(&g);
    g.name = (char *)"mimic";
    g.n_node = e.nnodes, g.node = e.nodes;
    g.n_initializer = e.ninits, g.initializer = e.inits;
    g.n_input = (size_t)c.ninputs, g.input = gin;
    g.n_output = (size_t)c.noutputs, g.output = gout;
    Onnx__OperatorSetIdProto os;
    onnx__operator_set_id_proto__init(&os);
    os.domain = (char *)"", os.has_version = 1, os.version = MIMIC_ONNX_OPSET_EXPORT;
    Onnx__OperatorSetIdProto *osp = &os;
    Onnx__ModelProto mp;
    onnx__model_proto__init(&mp);
    mp.has_ir_version = 1, mp.ir_version = 8;
    mp.n_opset_import = 1, mp.opset_import = &osp;
    mp.producer_name = (char *)"mimic", mp.producer_version = (char *)MIMIC_VERSION;
    mp.graph = &g;
    size_t n = onnx__model_proto__get_packed_size(&mp);
    uint8_t *buf = mimic_malloc(n ? n : 1);
    if (!buf) {
        rc = MIMIC_ENOMEM;
        goto done;
    }
    onnx__model_proto__pack(&mp, buf);
    rc = write_atomic(path, buf, n);
    mimic_free(buf);
done:
    for (int i = 0; i < e.npool; i++)
        mimic_free(e.pool[i]);
    mimic_free(e.pool), mimic_free(e.nodes), mimic_free(e.inits), mimic_free(stack);
    return rc;
}
