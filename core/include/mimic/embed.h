/* mimic — the embedding API: a host simulation opens a model file and calls it
 * on its own arrays, inside its time loop (docs/embedding.md).
 *
 * A handle = one loaded model file (layer records, encoders, I/O contract)
 * compiled into an inference plan, the host arrays bound to its named inputs
 * and outputs, an optional guard with a fallback to the host's reference
 * kernel, and counters. Only BLAS, HDF5 and libc/libm are behind it.
 *
 * Host arrays. A mimic_array describes one contract variable (`size`
 * features) for every sample, wherever the host keeps it, by two strides in
 * elements; nothing is copied by the host:
 *   C  double x[n][size]        sample_stride = size, feature_stride = 1
 *   C  double x[size][n]        sample_stride = 1,    feature_stride = n
 *   Fortran x(size, n)          sample_stride = size, feature_stride = 1
 *   Fortran x(n, size)          sample_stride = 1,    feature_stride = n
 * (Fortran x(ld, m) with ld > n: feature_stride = ld.) Every layout works;
 * mimic gathers each chunk of samples into its own buffer, encoding on the
 * way, and scatters decoded outputs back, so the host's inputs are never
 * written. The gather is contiguous per sample when feature_stride == 1 (the
 * layout that runs fastest); the others are a strided (transposing) gather.
 * float32 or float64 host data, independently of the plan's precision.
 *
 * Calls. Every function returns MIMIC_OK or a negative MIMIC_E* status (those
 * of mimic/base.h); mimic_last_error(h) is the message of the handle's last
 * failed call ("" if none). Nothing prints, exits or aborts; the optional log
 * callback gets what a host may want to write to its own log.
 *
 * Threads. A handle is used by one thread at a time; separate handles run
 * concurrently. A call uses opt.num_threads threads (0: the calling thread's
 * mimic_get_num_threads()), and exactly one when called from inside a host's
 * OpenMP parallel region; never more than the handle's thread slots (fixed
 * at open: opt.num_threads, or the caller's count then).
 * mimic_open and mimic_add_member read HDF5, which is not thread-safe: they
 * take turns with each other (an OpenMP critical section), but the host must
 * keep its own HDF5 calls apart from them (mimic/io.h).
 *
 * Memory. mimic_open allocates the plan and buffers for `chunk` samples per
 * thread (a plan, weights included, per thread slot: the slots are
 * opt.num_threads, or the caller's thread count at open); the first run with
 * n samples may grow the per-sample flag buffer to
 * n. After that, runs with at most that many samples allocate nothing.
 *
 * Ownership. mimic_open returns a handle the caller owns and releases with
 * mimic_close(&h), which also sets h to NULL: a call with a NULL (closed)
 * handle is MIMIC_EARG "handle is NULL (closed, or the open failed)".
 * Bound arrays are borrowed: they must stay valid while bound.
 */
#ifndef MIMIC_EMBED_H
#define MIMIC_EMBED_H

#include "tensor.h"

typedef struct mimic_handle mimic_handle;
typedef struct mimic_guard mimic_guard; /* mimic/guard.h */

/* One contract variable's data in host memory (see the table above). */
typedef struct mimic_array {
    void *data;               /* sample 0, feature 0 */
    mimic_dtype dtype;        /* MIMIC_F32 or MIMIC_F64 */
    int64_t size;             /* features; must equal the variable's size */
    int64_t sample_stride;    /* elements from sample i to i+1 */
    int64_t feature_stride;   /* elements from feature j to j+1 */
} mimic_array;

/* Plan precision: as stored in the file, or converted at open. */
enum { MIMIC_PRECISION_STORED = 0, MIMIC_PRECISION_F32 = 1, MIMIC_PRECISION_F64 = 2 };

/* Log levels passed to the log callback. */
enum { MIMIC_LOG_ERROR = 0, MIMIC_LOG_WARN = 1, MIMIC_LOG_INFO = 2 };

/* Options for mimic_open; all-zero means the defaults. */
typedef struct mimic_options {
    int precision;          /* MIMIC_PRECISION_* */
    int64_t chunk;          /* samples per chunk and thread; 0: the engine's choice */
    int num_threads;        /* 0: the caller's mimic_get_num_threads() at each call */
    int deterministic;      /* nonzero: a sample's outputs are bit-identical for any
                               n, chunk and thread count (slower dense kernel) */
    void (*log)(void *ud, int level, const char *msg); /* NULL: nothing is logged */
    void *log_ud;
} mimic_options;

/* Opens and validates a model file (mimic/modelfile.h) and compiles its plan.
 * opt may be NULL. On failure *out is NULL, and mimic_last_error(NULL) gives
 * the message (missing, truncated or corrupt file, wrong format...). */
int mimic_open(const char *path, const mimic_options *opt, mimic_handle **out);
/* Frees the handle and sets *h = NULL. NULL or *h == NULL is fine. */
int mimic_close(mimic_handle **h);
/* The handle's last error message; h == NULL: the calling thread's (mimic_errmsg()). */
const char *mimic_last_error(const mimic_handle *h);

/* --- the I/O contract ----------------------------------------------------------- */
/* which: 0 inputs, 1 outputs. */
enum { MIMIC_INPUT = 0, MIMIC_OUTPUT = 1 };
int mimic_num_vars(const mimic_handle *h, int which, int *count);
/* Variable i (0-based) of the contract. Strings belong to the handle. */
int mimic_var_info(const mimic_handle *h, int which, int i, const char **name, const char **units,
                   int64_t *size);
/* The content hash of the model file ("sha256:..."), for the host's provenance
 * (NULL if h is NULL). */
const char *mimic_model_hash_of(const mimic_handle *h);
/* Checks the host's whole list of variable names, in order (and sizes, unless
 * NULL), against the contract at start-up: a missing, extra, renamed,
 * reordered or resized variable is MIMIC_EARG naming it and listing what the
 * model expects (mimic_contract_bind of mimic/modelfile.h). */
int mimic_check_vars(const mimic_handle *h, int which, const char *const *names, const int64_t *sizes, int n);

/* Binds host data to the variable called `name`. units: NULL skips the check,
 * else it must equal the contract's units. A name not in the contract, or a
 * size or unit mismatch, is MIMIC_EARG naming the variable and what the
 * model expects. Rebinding replaces the previous binding. */
int mimic_bind(mimic_handle *h, int which, const char *name, const char *units, const mimic_array *a);

/* Runs the model on samples 0..n-1 of the bound arrays: every input and
 * output must be bound (else MIMIC_ESTATE naming the first unbound one).
 * Inputs are encoded, the plan runs, outputs are decoded and written to the
 * output arrays. With a guard or output checks set (below), flagged samples
 * go to the fallback. n == 0 does nothing. */
int mimic_run(mimic_handle *h, int64_t n);

/* --- guarded fallback ------------------------------------------------------------ */
/* Why a sample was flagged (bits of a per-sample mask). */
enum {
    MIMIC_FLAG_INPUT_NAN = 1,     /* NaN/Inf in its inputs */
    MIMIC_FLAG_RANGE = 2,         /* an input outside the guard's per-feature range */
    MIMIC_FLAG_DISTANCE = 4,      /* too far from the training distribution */
    MIMIC_FLAG_OUTPUT_NAN = 8,    /* NaN/Inf in its outputs */
    MIMIC_FLAG_BOUNDS = 16,       /* an output outside the bounds set for it */
    MIMIC_FLAG_RESIDUAL = 32,     /* the host's conservation residual above tolerance */
    MIMIC_FLAG_SPREAD = 64,       /* ensemble members disagree beyond the limit */
    MIMIC_NUM_FLAGS = 7
};

/* The guard is copied into the handle; NULL removes it. Its feature count
 * must be the model's input width (raw, before encoding). */
int mimic_set_guard(mimic_handle *h, const mimic_guard *g);
/* Bounds on a named output, in its raw units (-INFINITY/INFINITY: none). */
int mimic_set_output_bounds(mimic_handle *h, const char *output, double lo, double hi);

/* The host's conservation check: after the surrogate has written the outputs
 * of samples idx[0..count-1] to the bound output arrays, fills residual[k]
 * for sample idx[k]; |residual| > tol flags it. Return nonzero to fail the run. */
typedef int (*mimic_residual_fn)(void *ud, const int64_t *idx, int64_t count, double *residual);
int mimic_set_residual(mimic_handle *h, mimic_residual_fn fn, void *ud, double tol);

/* Ensemble: further model files with the same contract and encoders. The
 * output is the members' mean; a sample whose largest per-feature standard
 * deviation across members (in encoded output units) exceeds max_spread is
 * flagged. */
int mimic_add_member(mimic_handle *h, const char *path);
int mimic_set_spread_limit(mimic_handle *h, double max_spread);

/* The host's reference kernel: recompute samples idx[0..count-1] (ascending)
 * from the bound inputs and write their outputs into the bound output arrays.
 * Return nonzero to fail the run (its message: the host's, via mimic_error).
 * Without a fallback, flagged samples keep the surrogate's outputs (NaN where
 * the input was NaN) and are only counted and reported in the flags. */
typedef int (*mimic_fallback_fn)(void *ud, const int64_t *idx, int64_t count);
int mimic_set_fallback(mimic_handle *h, mimic_fallback_fn fn, void *ud);

/* Per-sample flag masks of the last run (n entries), owned by the handle. */
int mimic_last_flags(const mimic_handle *h, const uint8_t **flags, int64_t *n);

typedef struct mimic_stats {
    int64_t calls;                   /* mimic_run calls with n > 0 */
    int64_t samples;                 /* samples seen */
    int64_t surrogate;               /* samples whose outputs are the surrogate's */
    int64_t fallback;                /* samples recomputed by the fallback */
    int64_t flagged[MIMIC_NUM_FLAGS];/* samples flagged per reason (bit k -> entry k) */
    double seconds;                  /* wall time inside mimic_run, fallback included */
    double fallback_seconds;         /* of which in the fallback callback */
} mimic_stats;
int mimic_get_stats(const mimic_handle *h, mimic_stats *s);
int mimic_reset_stats(mimic_handle *h);

#endif
