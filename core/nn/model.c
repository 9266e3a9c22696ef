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
    for (int i = 0; i < m->n; i++) {
        mimic_free(m->layers[i].w[0]);
        mimic_free(m->layers[i].w[1]);
    }
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
    mimic_free(l->w[0]);
    mimic_free(l->w[1]);
    l->w[0] = l->w[1] = NULL;
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
    static const char *const names[][2] = {
        [LAYER_DENSE] = {"weight", "bias"}, [LAYER_LAYERNORM] = {"weight", "bias"}, [LAYER_AFFINE] = {"scale", "shift"}};
    static const char *const types[] = {[LAYER_DENSE] = "dense", [LAYER_LAYERNORM] = "layernorm",
                                        [LAYER_AFFINE] = "batchnorm1d", [LAYER_RES_BEGIN] = "residual_begin",
                                        [LAYER_RES_END] = "residual_end"};
    info->type = l->kind == LAYER_ACT ? act_names[l->act] : types[l->kind];
    for (int k = 0; k < 2; k++) {
        if (!l->w[k])
            continue;
        info->weight_name[k] = names[l->kind][k];
        info->weight[k] = l->w[k];
        info->weight_rows[k] = l->kind == LAYER_DENSE && k == 0 ? l->out : 1;
        info->weight_cols[k] = l->kind == LAYER_DENSE && k == 0 ? l->in : l->out;
        info->nweights = k + 1;
    }
    return MIMIC_OK;
}
