/* Internal to core/nn: the layer records shared by model.c and plan.c. */
#ifndef MIMIC_NN_INTERNAL_H
#define MIMIC_NN_INTERNAL_H

#include "mimic/model.h"

typedef enum layer_kind {
    LAYER_DENSE, LAYER_ACT, LAYER_LAYERNORM, LAYER_AFFINE, LAYER_RES_BEGIN, LAYER_RES_END,
    LAYER_CONV, LAYER_MAXPOOL, LAYER_AVGPOOL, LAYER_GMAXPOOL, LAYER_GAVGPOOL, LAYER_FLATTEN, LAYER_UPSAMPLE,
    LAYER_CONVT, LAYER_UPLINEAR, LAYER_RNN, LAYER_LASTSTEP
} layer_kind;

typedef struct layer {
    layer_kind kind;
    mimic_activation act; /* LAYER_ACT */
    int64_t in, out;
    double attr[2];
    mimic_spatial sp;  /* spatial records: geometry; global pools: in_channels */
    mimic_recurrent rec; /* LAYER_RNN, LAYER_LASTSTEP */
    void *w[4]; /* owned: dense weight [out, in] + bias [out] (NULL: none);
                   layernorm weight, bias (NULL, NULL: no affine); affine scale, shift;
                   recurrent w_ih, w_hh, b_ih, b_hh */
} layer;

struct mimic_model {
    mimic_dtype dtype;
    int64_t nin, width; /* width: the current output width */
    int n, cap;
    layer *layers;
    int depth;             /* open residual blocks */
    int64_t res_width[64]; /* widths at each open residual_begin */
};

#define NN_MAX_DEPTH 64

#endif
