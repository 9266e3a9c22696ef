/* mimic — the guard: is a sample inside what the surrogate was trained on?
 *
 * Fitted on the raw (unencoded) training inputs, one row per sample. Two
 * tests, per sample:
 *  - range: every feature within [min - margin*range, max + margin*range] of
 *    the training data (range = max - min);
 *  - distance (optional): the Mahalanobis distance to the training mean,
 *    d^2 = (x - mu)^T C^-1 (x - mu) with C the training covariance plus a
 *    small ridge, at most the training distances' `quantile` times
 *    (1 + margin). Catches combinations never seen even when each feature
 *    is in range (e.g. hot and dry at once).
 * A row with NaN/Inf fails both. Used by the embedding API (mimic/embed.h:
 * mimic_set_guard) and from Lua (mimic.guard).
 *
 * Ownership: fit and load return a guard the caller frees (mimic_guard_free).
 * Files are tensor dictionaries (mimic/io.h), written atomically.
 */
#ifndef MIMIC_GUARD_H
#define MIMIC_GUARD_H

#include "tensor.h"

typedef struct mimic_guard mimic_guard;

typedef struct mimic_guard_options {
    double margin;    /* fraction of each feature's range allowed beyond it (>= 0) */
    int distance;     /* nonzero: also the Mahalanobis test */
    double quantile;  /* of training distances used as the limit; 0: 0.999 */
} mimic_guard_options;

/* x: row-major [n, nfeat] (dtype F32 or F64), n >= 2 (n > nfeat for distance). */
mimic_guard *mimic_guard_fit(const void *x, mimic_dtype dtype, int64_t n, int64_t nfeat,
                             const mimic_guard_options *opt);
void mimic_guard_free(mimic_guard *g); /* NULL is fine */
mimic_guard *mimic_guard_copy(const mimic_guard *g);
int64_t mimic_guard_nfeat(const mimic_guard *g);

/* One row of nfeat raw values (contiguous), as double; g NULL: 0.
 * returns a mask of MIMIC_FLAG_INPUT_NAN | MIMIC_FLAG_RANGE | MIMIC_FLAG_DISTANCE
 * (mimic/embed.h), 0 when inside. work: nfeat doubles of scratch for the
 * distance test (NULL: up to 64 features are fine, wider rows are flagged
 * DISTANCE unchecked). Thread-safe: a guard is only read. */
unsigned mimic_guard_check(const mimic_guard *g, const double *row, double *work);

/* The limits, for reports: lo/hi [nfeat] (margin applied); distance limit
 * (0 if the distance test is off). Pointers belong to the guard. */
int mimic_guard_limits(const mimic_guard *g, const double **lo, const double **hi, double *dist_limit);

/* File format "mimic-guard" version 1 (entries listed in core/embed/guard.c);
 * load checks every entry (missing, unexpected, wrong dtype or shape:
 * MIMIC_EIO; non-finite or inconsistent values: MIMIC_EVALUE), naming it,
 * before allocating for it. Both take the same OpenMP critical section as
 * mimic_open (HDF5 may not be thread-safe); a host's own HDF5 calls must not
 * run at the same time. */
int mimic_guard_save(const mimic_guard *g, const char *path);
mimic_guard *mimic_guard_load(const char *path);

#endif
