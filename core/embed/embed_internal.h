/* Internal to core/embed: the handle behind mimic/embed.h. */
#ifndef MIMIC_EMBED_INTERNAL_H
#define MIMIC_EMBED_INTERNAL_H

#include "mimic/embed.h"
#include "mimic/modelfile.h"

#include <stdbool.h>

typedef struct binding {
    mimic_array a;
    bool bound;
} binding;

/* An encoder compiled once at open (core/embed/handle.c): runs of affine
 * stages (standard, minmax) folded into one z = (x - a) / b per feature
 * (decode: z * b + a), log and signed_log kept in order, so a call neither
 * re-validates the file's encoder nor switches on stage kinds per element. */
typedef struct cenc_op {
    mimic_enc_kind kind;        /* MIMIC_ENC_STANDARD (any folded affine run), _LOG or _SIGNED_LOG */
    double p;                   /* log: offset; signed_log: scale */
    const double *a, *b;        /* affine: [width] each, inside the encoder's coef block */
} cenc_op;

typedef enum cenc_mode { CENC_NONE, CENC_AFFINE, CENC_LOG_AFFINE, CENC_GENERAL } cenc_mode;

typedef struct cenc {
    cenc_mode mode;             /* NONE: no op; AFFINE: exactly one affine op; LOG_AFFINE: log
                                   then one affine op (outputs decode through a vector exp) */
    int nops;
    cenc_op *ops;               /* in the handle's work block */
} cenc;

/* A further ensemble member: its own plans over the same encoded chunks. */
typedef struct member {
    mimic_plan **plans;         /* one per thread slot */
    mimic_model_info *info;
} member;

struct mimic_handle {
    mimic_options opt;
    mimic_model_info *info;     /* contract, encoders, hash */
    cenc enc[2];                /* the input and output encoders, compiled */
    int slots;                  /* threads a call may use: one plan and buffer set each */
    mimic_plan **plans;         /* [slots], single-slot plans of the same model */
    mimic_dtype dtype;          /* the plans' */
    size_t esize;
    int64_t nin, nout;
    int64_t chunk;              /* samples per chunk (the plans' chunk) */
    binding *bind[2];           /* per contract variable: inputs, outputs */
    int64_t *off[2];            /* each variable's first feature in the model's row */
    double *bound_lo, *bound_hi;/* per output variable, raw units; -inf/inf: none */
    void *X, *Y;                /* per slot: encoded inputs [chunk, nin], outputs [chunk, nout] */
    double *work;               /* slots * WORK_ROWS * nin: the guard's rows per thread; then enc's coefficients and ops */
    int nmembers;
    member *members;
    void *Ym;                   /* [nmembers][slots][chunk, nout]: their outputs */
    double max_spread;
    mimic_guard *guard;
    mimic_residual_fn resid_fn;
    void *resid_ud;
    double resid_tol;
    mimic_fallback_fn fb_fn;
    void *fb_ud;
    int64_t cap, last_n;        /* per-sample buffers' capacity; samples of the last run */
    uint8_t *flags;
    int64_t *idx;
    double *resid;
    mimic_stats stats;
    bool warned;                /* flagged samples without a fallback were logged once */
    char err[600];
};

#endif
