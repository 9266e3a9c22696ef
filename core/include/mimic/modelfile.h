/* mimic — the versioned model file: what a host loads (docs/model-format.md).
 *
 * One HDF5 file (a tensor dictionary, mimic/io.h) holds, in format version 1:
 *  - the layer records of a mimic_model (type name + attributes + weights);
 *  - the encoders of the inputs and outputs (standardise, min-max, log,
 *    signed log; chains of them), so a host passes raw inputs and gets raw
 *    outputs: encode(in) -> model -> decode(out);
 *  - the I/O contract: named inputs and outputs with units, each a
 *    contiguous run of `size` features, in order; rows are samples (the
 *    batch is axis 0 of a row-major [n, features] array, i.e. the LAST index
 *    of a Fortran array x(features, n));
 *  - metadata (mimic version, creation date, data file and hash, metrics...)
 *    as scalar attributes;
 *  - a SHA-256 content hash over the canonical bytes of the records,
 *    weights, encoders and contract (not the metadata), "sha256:<64 hex>",
 *    which a host can copy into its own output's metadata.
 *
 * Saving is atomic (a crash never leaves a half-written file at path).
 * Loading never executes anything from the file: it validates every entry
 * against the spec (names, kinds, dtypes, ranks, shapes, sizes with overflow
 * checks, finiteness) BEFORE reading or allocating for it, rebuilds the model
 * with the mimic_model_* builders and checks the stored hash. Errors are
 * MIMIC_EIO (not a model file, unknown version, missing/unexpected entries,
 * hash mismatch), MIMIC_EDTYPE, MIMIC_ESHAPE or MIMIC_EVALUE with a message
 * naming the entry (e.g. "layers/003: unknown layer type 'conv2d'").
 *
 * Ownership: the save functions borrow everything. mimic_model_load returns
 * a model and a mimic_model_info that the caller owns (mimic_model_free,
 * mimic_model_info_free); every string and array inside the info belongs to
 * the info. Not thread-safe with other HDF5 use (see mimic/io.h).
 */
#ifndef MIMIC_MODELFILE_H
#define MIMIC_MODELFILE_H

#include "model.h"

#define MIMIC_MODEL_FORMAT "mimic-model"
#define MIMIC_MODEL_FORMAT_VERSION 1

/* --- encoders ------------------------------------------------------------------ */
typedef enum mimic_enc_kind {
    MIMIC_ENC_IDENTITY, MIMIC_ENC_STANDARD, MIMIC_ENC_MINMAX, MIMIC_ENC_LOG, MIMIC_ENC_SIGNED_LOG, MIMIC_ENC_COUNT
} mimic_enc_kind;
/* "identity", "standard", "minmax", "log", "signed_log"; parse: -1 if unknown. */
const char *mimic_enc_kind_name(mimic_enc_kind k);
int mimic_enc_kind_parse(const char *name);

/* One stage, as lua/mimic/data.lua's encoders:
 *   standard:   z = (x - a) / b     (a = mean, b = std)
 *   minmax:     z = (x - a) / b     (a = min, b = range)
 *   log:        z = log(x + offset)
 *   signed_log: z = sign(x) log(1 + |x| / scale)
 * a and b have n elements: 1 (one value for every feature) or the width. */
typedef struct mimic_enc_stage {
    mimic_enc_kind kind;
    int64_t n;          /* standard/minmax: 1 or the width; else 0 */
    const double *a, *b;
    double offset;      /* log */
    double scale;       /* signed_log, > 0 */
} mimic_enc_stage;

/* encode applies stages 0..n-1, decode the reverse. nstages 0: identity. */
typedef struct mimic_encoder {
    int nstages;
    const mimic_enc_stage *stages;
} mimic_encoder;

/* In-place on a row-major [n, width] array of dtype (float32/float64),
 * computed in double precision. */
int mimic_encoder_encode(const mimic_encoder *e, mimic_dtype dtype, void *rows, int64_t n, int64_t width);
int mimic_encoder_decode(const mimic_encoder *e, mimic_dtype dtype, void *rows, int64_t n, int64_t width);

/* --- I/O contract -------------------------------------------------------------- */
typedef struct mimic_io_var {
    const char *name;   /* unique within inputs / outputs; non-empty, printable */
    const char *units;  /* "" when dimensionless / unknown; never NULL */
    int64_t size;       /* features it takes (> 0); they are consecutive */
} mimic_io_var;

/* The sizes of inputs add up to the model's nin, of outputs to its nout. */
typedef struct mimic_contract {
    int ninputs, noutputs;
    const mimic_io_var *inputs, *outputs;
} mimic_contract;

/* A host binds by name: names[i] (and sizes[i] if sizes is not NULL) must be
 * exactly the contract's inputs (outputs: which = 1) in its order. A missing,
 * extra, renamed, reordered or resized variable is MIMIC_EARG with a message
 * naming it and listing what the model expects. */
int mimic_contract_bind(const mimic_contract *c, int which, const char *const *names, const int64_t *sizes, int n);

/* --- metadata ------------------------------------------------------------------ */
typedef enum mimic_meta_kind { MIMIC_META_STRING, MIMIC_META_NUMBER, MIMIC_META_INT } mimic_meta_kind;
typedef struct mimic_meta_entry {
    const char *key;    /* a name component: no '/', not "." or ".." */
    mimic_meta_kind kind;
    const char *s;      /* STRING */
    double d;           /* NUMBER */
    int64_t i;          /* INT */
} mimic_meta_entry;
/* Saving adds "mimic_version" and "created" (UTC, ISO 8601) unless given. */
typedef struct mimic_meta {
    int n;
    const mimic_meta_entry *entries;
} mimic_meta;

/* --- saving and loading -------------------------------------------------------- */
/* Writes model + contract + encoders (NULL: identity both ways) + meta (NULL:
 * only the automatic keys) to path, atomically. contract is required. */
int mimic_model_save(const char *path, const mimic_model *m, const mimic_contract *contract,
                     const mimic_encoder *input_enc, const mimic_encoder *output_enc, const mimic_meta *meta);

/* What a model file holds besides the model (all owned by the info). */
typedef struct mimic_model_info {
    int format_version;
    mimic_contract contract;
    mimic_encoder input_encoder, output_encoder;
    mimic_meta meta;              /* sorted by key */
    char hash[72];                /* "sha256:" + 64 lowercase hex digits */
} mimic_model_info;

/* Loads and validates path. info may be NULL (then it is freed internally). */
mimic_model *mimic_model_load(const char *path, mimic_model_info **info);
void mimic_model_info_free(mimic_model_info *info); /* NULL is fine */

/* The content hash that mimic_model_save would store, into out[72]. */
int mimic_model_hash(const mimic_model *m, const mimic_contract *contract, const mimic_encoder *input_enc,
                     const mimic_encoder *output_enc, char out[72]);

/* SHA-256 of n bytes (FIPS 180-4), exposed for tests and hosts. */
void mimic_sha256(const void *data, size_t n, unsigned char digest[32]);
/* SHA-256 of a whole file (read in 64 KiB pieces) as 64 hex digits + NUL:
 * the training data's fingerprint for a model's provenance. */
int mimic_sha256_file(const char *path, char hex[65]);

#endif
