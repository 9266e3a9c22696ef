/* The model: an ordered list of layer records (see mimic/model.h). Building
 * checks widths as records are added, so a compiled plan never meets a
 * mismatch at run time. Records own copies of their weights. */
#include "nn.h"

#include "mimic/base.h"

#include <math.h>
#include <string.h>

static const char *const act_names[MIMIC_ACT_COUNT] = {"identity", "relu", "leaky_relu", "elu",
                                                       "gelu",     "tanh", "sigmoid",    "softplus"};

const char *mimic_activation_name(mimic_activation a)
{
    return (unsigned)a < MIMIC_ACT_COUNT ? act_names[a] : "?";
}

int mimic_activation_parse(const char *name)
{
    for (int i = 0; name && i < MIMIC_ACT_COUNT; i++)
        if (strcmp(name, act_names[i]) == 0)
            return i;
    return -1;
}

mimic_model *mimic_model_new(mimic_dtype dtype, int64_t nin)
{
    if (dtype != MIMIC_F32 && dtype != MIMIC_F64) {
        mimic_error(MIMIC_EDTYPE, "mimic_model_new: dtype %s: models are float32 or float64", mimic_dtype_name(dtype));
        return NULL;
    }
    if (nin <= 0) {
        mimic_error(MIMIC_EARG, "mimic_model_new: nin must be > 0, got %lld", (long long)nin);
        return NULL;
    }
    mimic_model *m = mimic_calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->dtype = dtype;
    m->nin = m->width = nin;
    return m;
}

void mimic_model_free(mimic_model *m)
{
    if (!m)
        return;
    for (int i = 0; i < m->n; i++)
        for (int k = 0; k < 4; k++)
            mimic_free(m->layers[i].w[k]);
    mimic_free(m->layers);
    mimic_free(m);
}

/* Appends a record with zeroed weights slots; NULL on failure (error set). */
static layer *push(mimic_model *m, const char *fn, layer_kind kind, int64_t out)
{
    if (!m) {
        mimic_error(MIMIC_EARG, "%s: model is NULL", fn);
        return NULL;
    }
    if (m->n == m->cap) {
        int cap = m->cap ? 2 * m->cap : 8;
        layer *l = mimic_realloc(m->layers, (size_t)cap * sizeof *l);
        if (!l)
            return NULL;
        m->layers = l;
        m->cap = cap;
    }
    layer *l = &m->layers[m->n];
    memset(l, 0, sizeof *l);
    l->kind = kind;
    l->in = m->width;
    l->out = out;
    return l;
}

/* Copies count elements from src into a new owned array (NULL src: *dst stays NULL). */
static int dup(const mimic_model *m, void **dst, const void *src, int64_t count)
{
    if (!src)
        return MIMIC_OK;
    size_t bytes = (size_t)count * mimic_dtype_size(m->dtype);
    *dst = mimic_malloc(bytes);
    if (!*dst)
        return MIMIC_ENOMEM;
    memcpy(*dst, src, bytes);
    return MIMIC_OK;
}

/* The record at the end is complete: make it part of the model. */
static int commit(mimic_model *m, layer *l)
{
    m->width = l->out;
    m->n++;
    return MIMIC_OK;
}

static int fail(layer *l, int rc)
{
    for (int k = 0; k < 4; k++) {
        mimic_free(l->w[k]);
        l->w[k] = NULL;
    }
    return rc;
}

int mimic_model_add_dense(mimic_model *m, int64_t nout, const void *weight, const void *bias)
{
    if (m && nout <= 0)
        return mimic_error(MIMIC_EARG, "mimic_model_add_dense: nout must be > 0, got %lld", (long long)nout);
    if (m && !weight)
        return mimic_error(MIMIC_EARG, "mimic_model_add_dense: weight is NULL");
    layer *l = push(m, "mimic_model_add_dense", LAYER_DENSE, nout);
    if (!l)
        return mimic_errcode();
    int rc = dup(m, &l->w[0], weight, nout * l->in);
    if (rc == MIMIC_OK)
        rc = dup(m, &l->w[1], bias, nout);
    return rc ? fail(l, rc) : commit(m, l);
}

int mimic_model_add_activation(mimic_model *m, mimic_activation act, double p0, double p1)
{
    if ((unsigned)act >= MIMIC_ACT_COUNT)
        return mimic_error(MIMIC_EARG, "mimic_model_add_activation: unknown activation %d", (int)act);
    if (act == MIMIC_ACT_SOFTPLUS && !(p0 > 0))
        return mimic_error(MIMIC_EARG, "mimic_model_add_activation: softplus beta must be > 0, got %g", p0);
    if ((act == MIMIC_ACT_LEAKY_RELU || act == MIMIC_ACT_ELU || act == MIMIC_ACT_SOFTPLUS) && !isfinite(p0))
        return mimic_error(MIMIC_EARG, "mimic_model_add_activation: %s parameter must be finite, got %g",
                           act_names[act], p0);
    layer *l = push(m, "mimic_model_add_activation", LAYER_ACT, m ? m->width : 0);
    if (!l)
        return mimic_errcode();
    l->act = act;
    if (act == MIMIC_ACT_LEAKY_RELU || act == MIMIC_ACT_ELU)
        l->attr[0] = p0;
    else if (act == MIMIC_ACT_SOFTPLUS)
        l->attr[0] = p0, l->attr[1] = p1;
    return commit(m, l);
}

int mimic_model_add_layernorm(mimic_model *m, double eps, const void *weight, const void *bias)
{
    if (!(eps >= 0) || !isfinite(eps))
        return mimic_error(MIMIC_EARG, "mimic_model_add_layernorm: eps must be finite and >= 0, got %g", eps);
    if (!weight != !bias)
        return mimic_error(MIMIC_EARG, "mimic_model_add_layernorm: give both weight and bias, or neither");
    layer *l = push(m, "mimic_model_add_layernorm", LAYER_LAYERNORM, m ? m->width : 0);
    if (!l)
        return mimic_errcode();
    l->attr[0] = eps;
    int rc = dup(m, &l->w[0], weight, l->in);
    if (rc == MIMIC_OK)
        rc = dup(m, &l->w[1], bias, l->in);
    return rc ? fail(l, rc) : commit(m, l);
}

int mimic_model_add_affine(mimic_model *m, const void *scale, const void *shift)
{
    if (m && (!scale || !shift))
        return mimic_error(MIMIC_EARG, "mimic_model_add_affine: scale and shift are required");
    layer *l = push(m, "mimic_model_add_affine", LAYER_AFFINE, m ? m->width : 0);
    if (!l)
        return mimic_errcode();
    int rc = dup(m, &l->w[0], scale, l->in);
    if (rc == MIMIC_OK)
        rc = dup(m, &l->w[1], shift, l->in);
    return rc ? fail(l, rc) : commit(m, l);
}

static double elem(mimic_dtype dt, const void *p, int64_t i)
{
    return dt == MIMIC_F32 ? (double)((const float *)p)[i] : ((const double *)p)[i];
}

int mimic_model_add_batchnorm(mimic_model *m, double eps, const void *mean, const void *var, const void *weight,
                              const void *bias)
{
    if (!m)
        return mimic_error(MIMIC_EARG, "mimic_model_add_batchnorm: model is NULL");
    if (!mean || !var)
        return mimic_error(MIMIC_EARG, "mimic_model_add_batchnorm: running mean and variance are required");
    if (!(eps >= 0) || !isfinite(eps))
        return mimic_error(MIMIC_EARG, "mimic_model_add_batchnorm: eps must be finite and >= 0, got %g", eps);
    int64_t w = m->width;
    size_t es = mimic_dtype_size(m->dtype);
    char *ss = mimic_malloc(2 * (size_t)w * es); /* scale then shift */
    if (!ss)
        return MIMIC_ENOMEM;
    for (int64_t i = 0; i < w; i++) {
        double s = (weight ? elem(m->dtype, weight, i) : 1.0) / sqrt(elem(m->dtype, var, i) + eps);
        double t = (bias ? elem(m->dtype, bias, i) : 0.0) - elem(m->dtype, mean, i) * s;
        if (m->dtype == MIMIC_F32)
            ((float *)ss)[i] = (float)s, ((float *)ss)[w + i] = (float)t;
        else
            ((double *)ss)[i] = s, ((double *)ss)[w + i] = t;
    }
    int rc = mimic_model_add_affine(m, ss, ss + (size_t)w * es);
    mimic_free(ss);
    return rc;
}

int mimic_model_begin_residual(mimic_model *m)
{
    if (m && m->depth >= NN_MAX_DEPTH)
        return mimic_error(MIMIC_EARG, "mimic_model_begin_residual: more than %d nested residual blocks",
                           NN_MAX_DEPTH);
    layer *l = push(m, "mimic_model_begin_residual", LAYER_RES_BEGIN, m ? m->width : 0);
    if (!l)
        return mimic_errcode();
    m->res_width[m->depth++] = m->width;
    return commit(m, l);
}

int mimic_model_end_residual(mimic_model *m)
{
    if (!m)
        return mimic_error(MIMIC_EARG, "mimic_model_end_residual: model is NULL");
    if (m->depth == 0)
        return mimic_error(MIMIC_ESTATE, "mimic_model_end_residual: no residual block is open");
    if (m->res_width[m->depth - 1] != m->width)
        return mimic_error(MIMIC_ESHAPE,
                           "mimic_model_end_residual: the block maps width %lld to %lld; x + f(x) needs the same width",
                           (long long)m->res_width[m->depth - 1], (long long)m->width);
    layer *l = push(m, "mimic_model_end_residual", LAYER_RES_END, m->width);
    if (!l)
        return mimic_errcode();
    m->depth--;
    return commit(m, l);
}

/* --- spatial records --------------------------------------------------------- */
int64_t mimic_spatial_out(const mimic_spatial *g, int d)
{
    int64_t span = g->dilation[d] * (g->kernel[d] - 1) + 1, room = g->size[d] + 2 * g->padding[d];
    return room < span ? 0 : (room - span) / g->stride[d] + 1;
}

/* Limits keep every product below 2^62: sizes, kernels <= 2^20 each and
 * channel-volume products checked as they are formed. */
#define SP_MAX (INT64_C(1) << 20)

static int64_t mul_ck(int64_t a, int64_t b) { return a > 0 && b > (INT64_C(1) << 40) / a ? -1 : a * b; }

/* The error for a geometry whose input width vin (channels x sizes) is not
 * the model's current width. */
static int width_error(const mimic_model *m, const char *fn, int64_t vin)
{
    return mimic_error(MIMIC_ESHAPE, "%s: geometry gives an input width of %lld (channels x sizes), the model's "
                       "current width is %lld; fix in_channels or size", fn, (long long)vin, (long long)m->width);
}

/* Checks g for a record of kind `what` against the current width; sets
 * *in, *out (widths) and *kvol (prod k). Conv: groups, channels, circular. */
static int check_spatial(const mimic_model *m, const char *fn, const mimic_spatial *g, bool conv, int64_t *out,
                         int64_t *kvol)
{
    if (!m || !g)
        return mimic_error(MIMIC_EARG, "%s: model or geometry is NULL", fn);
    if (g->ndim < 1 || g->ndim > 3)
        return mimic_error(MIMIC_EARG, "%s: ndim must be 1, 2 or 3, got %d", fn, g->ndim);
    if (g->in_channels < 1 || g->in_channels > SP_MAX)
        return mimic_error(MIMIC_EARG, "%s: in_channels must be 1..%lld, got %lld", fn, (long long)SP_MAX,
                           (long long)g->in_channels);
    if (conv && (g->out_channels < 1 || g->out_channels > SP_MAX || g->groups < 1 || g->in_channels % g->groups ||
                 g->out_channels % g->groups))
        return mimic_error(MIMIC_EARG, "%s: out_channels (%lld) must be 1..%lld and groups (%lld) >= 1 must divide "
                           "in_channels (%lld) and out_channels", fn, (long long)g->out_channels, (long long)SP_MAX,
                           (long long)g->groups, (long long)g->in_channels);
    int64_t vin = g->in_channels, vout = conv ? g->out_channels : g->in_channels, kv = 1;
    for (int d = 0; d < g->ndim; d++) {
        if (g->size[d] < 1 || g->size[d] > SP_MAX || g->kernel[d] < 1 || g->kernel[d] > SP_MAX || g->stride[d] < 1 ||
            g->stride[d] > SP_MAX || g->dilation[d] < 1 || g->dilation[d] > SP_MAX || g->padding[d] < 0 ||
            g->padding[d] > SP_MAX)
            return mimic_error(MIMIC_EARG, "%s: dim %d: size %lld, kernel %lld, stride %lld, dilation %lld must be "
                               "1..%lld and padding %lld 0..%lld", fn, d, (long long)g->size[d], (long long)g->kernel[d],
                               (long long)g->stride[d], (long long)g->dilation[d], (long long)SP_MAX,
                               (long long)g->padding[d], (long long)SP_MAX);
        if (conv && g->circular && g->padding[d] > g->size[d])
            return mimic_error(MIMIC_EARG, "%s: dim %d: circular padding %lld is larger than the input size %lld", fn,
                               d, (long long)g->padding[d], (long long)g->size[d]);
        if (!conv && 2 * g->padding[d] > g->kernel[d])
            return mimic_error(MIMIC_EARG, "%s: dim %d: padding %lld must be at most half the kernel %lld (as PyTorch)",
                               fn, d, (long long)g->padding[d], (long long)g->kernel[d]);
        int64_t o = mimic_spatial_out(g, d);
        if (o < 1)
            return mimic_error(MIMIC_ESHAPE, "%s: dim %d: the window (kernel %lld, dilation %lld) does not fit the "
                               "input size %lld + 2 x padding %lld; use a smaller kernel or more padding", fn, d,
                               (long long)g->kernel[d], (long long)g->dilation[d], (long long)g->size[d],
                               (long long)g->padding[d]);
        vin = mul_ck(vin, g->size[d]);
        vout = mul_ck(vout, o);
        kv = mul_ck(kv, g->kernel[d]);
        if (vin < 0 || vout < 0 || kv < 0)
            return mimic_error(MIMIC_ESHAPE, "%s: the feature width overflows (more than 2^40 features)", fn);
    }
    if (vin != m->width)
        return width_error(m, fn, vin);
    if (conv && mul_ck(kv, g->in_channels / g->groups * g->out_channels) < 0)
        return mimic_error(MIMIC_ESHAPE, "%s: the weight has too many elements", fn);
    *out = vout;
    *kvol = kv;
    return MIMIC_OK;
}

static void copy_geom(layer *l, const mimic_spatial *g, bool conv)
{
    l->sp = *g;
    for (int d = g->ndim; d < 3; d++)
        l->sp.size[d] = l->sp.kernel[d] = l->sp.stride[d] = l->sp.dilation[d] = 1, l->sp.padding[d] = 0;
    if (!conv)
        l->sp.out_channels = g->in_channels, l->sp.groups = 1;
    l->sp.circular = g->circular != 0;
    for (int d = 0; d < 3; d++) /* a transposed conv sets its own */
        l->sp.output_padding[d] = 0;
}

int mimic_model_add_conv(mimic_model *m, const mimic_spatial *g, const void *weight, const void *bias)
{
    const char *fn = "mimic_model_add_conv";
    int64_t out, kv;
    int rc = check_spatial(m, fn, g, true, &out, &kv);
    if (rc)
        return rc;
    if (!weight)
        return mimic_error(MIMIC_EARG, "%s: weight is NULL", fn);
    layer *l = push(m, fn, LAYER_CONV, out);
    if (!l)
        return mimic_errcode();
    copy_geom(l, g, true);
    rc = dup(m, &l->w[0], weight, g->out_channels * (g->in_channels / g->groups) * kv);
    if (rc == MIMIC_OK)
        rc = dup(m, &l->w[1], bias, g->out_channels);
    return rc ? fail(l, rc) : commit(m, l);
}

int mimic_model_add_pool(mimic_model *m, bool max, const mimic_spatial *g)
{
    const char *fn = "mimic_model_add_pool";
    int64_t out, kv;
    int rc = check_spatial(m, fn, g, false, &out, &kv);
    if (rc)
        return rc;
    layer *l = push(m, fn, max ? LAYER_MAXPOOL : LAYER_AVGPOOL, out);
    if (!l)
        return mimic_errcode();
    copy_geom(l, g, false);
    if (!max)
        for (int d = 0; d < 3; d++)
            l->sp.dilation[d] = 1;
    return commit(m, l);
}

int mimic_model_add_global_pool(mimic_model *m, bool max, int64_t channels)
{
    const char *fn = "mimic_model_add_global_pool";
    if (m && (channels < 1 || m->width % channels))
        return mimic_error(MIMIC_ESHAPE, "%s: %lld channels do not divide the width %lld", fn, (long long)channels,
                           (long long)m->width);
    layer *l = push(m, fn, max ? LAYER_GMAXPOOL : LAYER_GAVGPOOL, channels);
    if (!l)
        return mimic_errcode();
    l->sp.ndim = 1;
    l->sp.in_channels = l->sp.out_channels = channels;
    l->sp.size[0] = l->in / channels;
    return commit(m, l);
}

/* Nearest (kind LAYER_UPSAMPLE) and linear (LAYER_UPLINEAR) upsampling by the
 * integer factors g->stride: one check of g against the model, one layer. */
static int add_upsampling(mimic_model *m, const char *fn, layer_kind kind, const mimic_spatial *g, bool align_corners)
{
    if (!m || !g)
        return mimic_error(MIMIC_EARG, "%s: model or geometry is NULL", fn);
    if (g->ndim < 1 || g->ndim > 3 || g->in_channels < 1 || g->in_channels > SP_MAX)
        return mimic_error(MIMIC_EARG, "%s: ndim must be 1..3 and in_channels 1..%lld", fn, (long long)SP_MAX);
    int64_t vin = g->in_channels, vout = g->in_channels;
    for (int d = 0; d < g->ndim; d++) {
        if (g->size[d] < 1 || g->size[d] > SP_MAX || g->stride[d] < 1 || g->stride[d] > 64)
            return mimic_error(MIMIC_EARG, "%s: dim %d: size %lld must be 1..%lld and the factor %lld 1..64", fn, d,
                               (long long)g->size[d], (long long)SP_MAX, (long long)g->stride[d]);
        vin = mul_ck(vin, g->size[d]);
        vout = mul_ck(vout, g->size[d] * g->stride[d]);
        if (vin < 0 || vout < 0)
            return mimic_error(MIMIC_ESHAPE, "%s: the feature width overflows", fn);
    }
    if (vin != m->width)
        return width_error(m, fn, vin);
    layer *l = push(m, fn, kind, vout);
    if (!l)
        return mimic_errcode();
    mimic_spatial c = *g;
    for (int d = 0; d < 3; d++)
        c.kernel[d] = c.dilation[d] = 1, c.padding[d] = 0;
    copy_geom(l, &c, false);
    l->sp.circular = align_corners;
    return commit(m, l);
}

int mimic_model_add_upsample(mimic_model *m, const mimic_spatial *g)
{
    return add_upsampling(m, "mimic_model_add_upsample", LAYER_UPSAMPLE, g, false);
}

int mimic_model_add_upsample_linear(mimic_model *m, const mimic_spatial *g)
{
    return add_upsampling(m, "mimic_model_add_upsample_linear", LAYER_UPLINEAR, g, g && g->circular != 0);
}

int64_t mimic_spatial_out_transposed(const mimic_spatial *g, int d)
{
    return (g->size[d] - 1) * g->stride[d] - 2 * g->padding[d] + g->dilation[d] * (g->kernel[d] - 1) + 1 +
           g->output_padding[d];
}

int mimic_model_add_conv_transpose(mimic_model *m, const mimic_spatial *g, const void *weight, const void *bias)
{
    const char *fn = "mimic_model_add_conv_transpose";
    if (!m || !g)
        return mimic_error(MIMIC_EARG, "%s: model or geometry is NULL", fn);
    if (g->ndim < 1 || g->ndim > 3)
        return mimic_error(MIMIC_EARG, "%s: ndim must be 1, 2 or 3, got %d", fn, g->ndim);
    if (g->in_channels < 1 || g->in_channels > SP_MAX || g->out_channels < 1 || g->out_channels > SP_MAX ||
        g->groups < 1 || g->in_channels % g->groups || g->out_channels % g->groups)
        return mimic_error(MIMIC_EARG, "%s: channels (%lld -> %lld) must be 1..%lld and groups (%lld) >= 1 must "
                           "divide both", fn, (long long)g->in_channels, (long long)g->out_channels,
                           (long long)SP_MAX, (long long)g->groups);
    if (g->circular)
        return mimic_error(MIMIC_EARG, "%s: only zero padding (as PyTorch's ConvTranspose)", fn);
    if (!weight)
        return mimic_error(MIMIC_EARG, "%s: weight is NULL", fn);
    int64_t vin = g->in_channels, vout = g->out_channels, kv = 1;
    for (int d = 0; d < g->ndim; d++) {
        if (g->size[d] < 1 || g->size[d] > SP_MAX || g->kernel[d] < 1 || g->kernel[d] > SP_MAX || g->stride[d] < 1 ||
            g->stride[d] > SP_MAX || g->dilation[d] < 1 || g->dilation[d] > SP_MAX || g->padding[d] < 0 ||
            g->padding[d] > SP_MAX || g->output_padding[d] < 0)
            return mimic_error(MIMIC_EARG, "%s: dim %d: size %lld, kernel %lld, stride %lld, dilation %lld must be "
                               "1..%lld, padding %lld and output_padding %lld >= 0", fn, d, (long long)g->size[d],
                               (long long)g->kernel[d], (long long)g->stride[d], (long long)g->dilation[d],
                               (long long)SP_MAX, (long long)g->padding[d], (long long)g->output_padding[d]);
        if (g->output_padding[d] >= g->stride[d] && g->output_padding[d] >= g->dilation[d])
            return mimic_error(MIMIC_EARG, "%s: dim %d: output_padding %lld must be smaller than stride %lld or "
                               "dilation %lld (as PyTorch)", fn, d, (long long)g->output_padding[d],
                               (long long)g->stride[d], (long long)g->dilation[d]);
        int64_t o = mimic_spatial_out_transposed(g, d);
        if (o < 1)
            return mimic_error(MIMIC_ESHAPE, "%s: dim %d: the output size %lld is < 1 (padding %lld too large)", fn, d,
                               (long long)o, (long long)g->padding[d]);
        vin = mul_ck(vin, g->size[d]);
        vout = mul_ck(vout, o);
        kv = mul_ck(kv, g->kernel[d]);
        if (vin < 0 || vout < 0 || kv < 0)
            return mimic_error(MIMIC_ESHAPE, "%s: the feature width overflows (more than 2^40 features)", fn);
    }
    if (vin != m->width)
        return width_error(m, fn, vin);
    if (mul_ck(kv, g->out_channels / g->groups * g->in_channels) < 0)
        return mimic_error(MIMIC_ESHAPE, "%s: the weight has too many elements", fn);
    layer *l = push(m, fn, LAYER_CONVT, vout);
    if (!l)
        return mimic_errcode();
    copy_geom(l, g, true);
    for (int d = 0; d < g->ndim; d++)
        l->sp.output_padding[d] = g->output_padding[d];
    int rc = dup(m, &l->w[0], weight, g->in_channels * (g->out_channels / g->groups) * kv);
    if (rc == MIMIC_OK)
        rc = dup(m, &l->w[1], bias, g->out_channels);
    return rc ? fail(l, rc) : commit(m, l);
}

/* --- recurrent records --------------------------------------------------------- */
static const char *const cell_names[MIMIC_CELL_COUNT] = {"rnn_tanh", "rnn_relu", "lstm", "gru"};
static const int cell_gates[MIMIC_CELL_COUNT] = {1, 1, 4, 3};

const char *mimic_cell_name(mimic_cell c) { return (unsigned)c < MIMIC_CELL_COUNT ? cell_names[c] : "?"; }

int mimic_cell_parse(const char *name)
{
    for (int i = 0; name && i < MIMIC_CELL_COUNT; i++)
        if (strcmp(name, cell_names[i]) == 0)
            return i;
    return -1;
}

int mimic_model_add_recurrent(mimic_model *m, const mimic_recurrent *r, const void *w_ih, const void *w_hh,
                              const void *b_ih, const void *b_hh)
{
    const char *fn = "mimic_model_add_recurrent";
    if (!m || !r)
        return mimic_error(MIMIC_EARG, "%s: model or record is NULL", fn);
    if (r->cell < 0 || r->cell >= MIMIC_CELL_COUNT)
        return mimic_error(MIMIC_EARG, "%s: unknown cell %d (rnn_tanh, rnn_relu, lstm, gru)", fn, r->cell);
    if (r->seq_len < 1 || r->seq_len > SP_MAX || r->input_size < 1 || r->input_size > SP_MAX || r->hidden_size < 1 ||
        r->hidden_size > SP_MAX)
        return mimic_error(MIMIC_EARG, "%s: seq_len %lld, input_size %lld, hidden_size %lld must be 1..%lld", fn,
                           (long long)r->seq_len, (long long)r->input_size, (long long)r->hidden_size,
                           (long long)SP_MAX);
    if (!w_ih || !w_hh)
        return mimic_error(MIMIC_EARG, "%s: weight_ih and weight_hh are required", fn);
    if (!b_ih != !b_hh)
        return mimic_error(MIMIC_EARG, "%s: give both biases (bias_ih, bias_hh) or neither", fn);
    int64_t vin = mul_ck(r->seq_len, r->input_size), vout = mul_ck(r->seq_len, r->hidden_size);
    if (vin < 0 || vout < 0)
        return mimic_error(MIMIC_ESHAPE, "%s: the feature width overflows", fn);
    if (vin != m->width)
        return mimic_error(MIMIC_ESHAPE, "%s: seq_len %lld x input_size %lld = %lld features, the model's current "
                           "width is %lld (a row is one sample's [T, features] sequence)", fn,
                           (long long)r->seq_len, (long long)r->input_size, (long long)vin, (long long)m->width);
    int64_t GH = cell_gates[r->cell] * r->hidden_size;
    layer *l = push(m, fn, LAYER_RNN, vout);
    if (!l)
        return mimic_errcode();
    l->rec = *r;
    int rc = dup(m, &l->w[0], w_ih, GH * r->input_size);
    if (rc == MIMIC_OK)
        rc = dup(m, &l->w[1], w_hh, GH * r->hidden_size);
    if (rc == MIMIC_OK)
        rc = dup(m, &l->w[2], b_ih, GH);
    if (rc == MIMIC_OK)
        rc = dup(m, &l->w[3], b_hh, GH);
    return rc ? fail(l, rc) : commit(m, l);
}

int mimic_model_add_last_step(mimic_model *m, int64_t seq_len)
{
    const char *fn = "mimic_model_add_last_step";
    if (m && (seq_len < 1 || m->width % seq_len))
        return mimic_error(MIMIC_ESHAPE, "%s: seq_len %lld does not divide the width %lld ([T, H] per row)", fn,
                           (long long)seq_len, (long long)m->width);
    layer *l = push(m, fn, LAYER_LASTSTEP, m ? m->width / seq_len : 0);
    if (!l)
        return mimic_errcode();
    l->rec = (mimic_recurrent){.cell = -1, .seq_len = seq_len, .input_size = l->out, .hidden_size = l->out};
    return commit(m, l);
}

int mimic_model_add_flatten(mimic_model *m)
{
    layer *l = push(m, "mimic_model_add_flatten", LAYER_FLATTEN, m ? m->width : 0);
    return l ? commit(m, l) : mimic_errcode();
}

mimic_model *mimic_model_convert(const mimic_model *m, mimic_dtype dtype)
{
    if (!m) {
        mimic_error(MIMIC_EARG, "mimic_model_convert: model is NULL");
        return NULL;
    }
    if (m->depth) {
        mimic_error(MIMIC_ESTATE, "mimic_model_convert: a residual block is still open");
        return NULL;
    }
    mimic_model *c = mimic_model_new(dtype, m->nin);
    if (!c)
        return NULL;
    c->layers = m->n ? mimic_calloc((size_t)m->n, sizeof(layer)) : NULL;
    if (m->n && !c->layers) {
        mimic_model_free(c);
        return NULL;
    }
    c->cap = m->n;
    size_t es = mimic_dtype_size(dtype);
    for (int i = 0; i < m->n; i++) {
        mimic_layer_info li;
        mimic_model_layer(m, i, &li);
        layer *l = &c->layers[i];
        *l = m->layers[i];
        memset(l->w, 0, sizeof l->w);
        c->n = i + 1; /* counted first: a failure below frees what exists */
        for (int k = 0; k < 4; k++) {
            if (!m->layers[i].w[k])
                continue;
            int64_t cnt = li.weight_rows[k] * li.weight_cols[k];
            if (!(l->w[k] = mimic_malloc((size_t)cnt * es))) {
                mimic_model_free(c);
                return NULL;
            }
            for (int64_t j = 0; j < cnt; j++) {
                double v = elem(m->dtype, m->layers[i].w[k], j);
                if (dtype == MIMIC_F32)
                    ((float *)l->w[k])[j] = (float)v;
                else
                    ((double *)l->w[k])[j] = v;
            }
        }
    }
    c->width = m->width;
    return c;
}

int64_t mimic_model_nin(const mimic_model *m) { return m ? m->nin : 0; }
int64_t mimic_model_nout(const mimic_model *m) { return m ? m->width : 0; }
mimic_dtype mimic_model_dtype(const mimic_model *m) { return m ? m->dtype : MIMIC_F32; }
int mimic_model_num_layers(const mimic_model *m) { return m ? m->n : 0; }

int mimic_model_layer(const mimic_model *m, int i, mimic_layer_info *info)
{
    if (!m || !info)
        return mimic_error(MIMIC_EARG, "mimic_model_layer: model or info is NULL");
    if (i < 0 || i >= m->n)
        return mimic_error(MIMIC_EARG, "mimic_model_layer: layer %d is out of range (the model has %d)", i, m->n);
    const layer *l = &m->layers[i];
    memset(info, 0, sizeof *info);
    info->in = l->in;
    info->out = l->out;
    info->attr[0] = l->attr[0];
    info->attr[1] = l->attr[1];
    static const char *const names[][4] = {
        [LAYER_DENSE] = {"weight", "bias"}, [LAYER_LAYERNORM] = {"weight", "bias"}, [LAYER_AFFINE] = {"scale", "shift"},
        [LAYER_CONV] = {"weight", "bias"}, [LAYER_FLATTEN] = {NULL, NULL}, [LAYER_CONVT] = {"weight", "bias"},
        [LAYER_RNN] = {"weight_ih", "weight_hh", "bias_ih", "bias_hh"}, [LAYER_LASTSTEP] = {NULL}};
    static const char *const types[] = {[LAYER_DENSE] = "dense", [LAYER_LAYERNORM] = "layernorm",
                                        [LAYER_AFFINE] = "batchnorm1d", [LAYER_RES_BEGIN] = "residual_begin",
                                        [LAYER_RES_END] = "residual_end"};
    static const char *const sptypes[][3] = {{"conv1d", "conv2d", "conv3d"},
                                             {"max_pool1d", "max_pool2d", "max_pool3d"},
                                             {"avg_pool1d", "avg_pool2d", "avg_pool3d"}};
    if (l->kind == LAYER_UPSAMPLE || l->kind == LAYER_UPLINEAR || l->kind == LAYER_CONVT) {
        static const char *const up[3][3] = {{"upsample1d", "upsample2d", "upsample3d"},
                                             {"upsample_linear1d", "upsample_linear2d", "upsample_linear3d"},
                                             {"conv_transpose1d", "conv_transpose2d", "conv_transpose3d"}};
        info->type = up[l->kind == LAYER_UPSAMPLE ? 0 : l->kind == LAYER_UPLINEAR ? 1 : 2][l->sp.ndim - 1];
        info->spatial = &l->sp;
    } else if (l->kind == LAYER_RNN || l->kind == LAYER_LASTSTEP) {
        info->type = l->kind == LAYER_RNN ? cell_names[l->rec.cell] : "last_step";
        info->recurrent = &l->rec;
    } else if (l->kind == LAYER_CONV || l->kind == LAYER_MAXPOOL || l->kind == LAYER_AVGPOOL) {
        info->type = sptypes[l->kind - LAYER_CONV][l->sp.ndim - 1];
        info->spatial = &l->sp;
    } else if (l->kind == LAYER_GMAXPOOL || l->kind == LAYER_GAVGPOOL || l->kind == LAYER_FLATTEN) {
        info->type = l->kind == LAYER_GMAXPOOL ? "global_max_pool" : l->kind == LAYER_GAVGPOOL ? "global_avg_pool"
                                                                                                : "flatten";
        if (l->kind != LAYER_FLATTEN)
            info->spatial = &l->sp;
    } else {
        info->type = l->kind == LAYER_ACT ? act_names[l->act] : types[l->kind];
    }
    for (int k = 0; k < 4; k++) {
        if (!l->w[k])
            continue;
        info->weight_name[k] = names[l->kind][k];
        info->weight[k] = l->w[k];
        info->weight_rows[k] = l->kind == LAYER_DENSE && k == 0 ? l->out : 1;
        info->weight_cols[k] = l->kind == LAYER_DENSE && k == 0 ? l->in : l->out;
        if (l->kind == LAYER_CONV || l->kind == LAYER_CONVT) {
            int64_t kv = l->sp.kernel[0] * l->sp.kernel[1] * l->sp.kernel[2];
            bool t = l->kind == LAYER_CONVT;
            info->weight_rows[k] = k == 0 ? (t ? l->sp.in_channels : l->sp.out_channels) : 1;
            info->weight_cols[k] = k == 0 ? (t ? l->sp.out_channels : l->sp.in_channels) / l->sp.groups * kv
                                          : l->sp.out_channels;
        }
        if (l->kind == LAYER_RNN) {
            int64_t GH = cell_gates[l->rec.cell] * l->rec.hidden_size;
            info->weight_rows[k] = k < 2 ? GH : 1;
            info->weight_cols[k] = k == 0 ? l->rec.input_size : k == 1 ? l->rec.hidden_size : GH;
        }
        info->nweights = k + 1;
    }
    return MIMIC_OK;
}
