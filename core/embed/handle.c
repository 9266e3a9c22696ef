/* The embedding API (mimic/embed.h): a model file compiled into plans,
 * bound to a host's arrays, run inside the host's time loop.
 *
 * A plan may run from one thread at a time, so a handle holds one
 * single-slot plan per thread slot (weights copied per slot: a surrogate's
 * weights are small beside a host's fields), and a call is one parallel
 * region (none when the call is one chunk or one thread): each thread takes
 * a contiguous range of chunks and, per chunk, gathers from the host arrays
 * into its own buffer, encoding and checking on the way, runs its plan(s),
 * then averages members and scatters to the host arrays, decoding and
 * checking on the way. The encoders are compiled once at open (affine runs
 * folded, no per-call validation), and the gather/scatter loops vectorise.
 * One fork/join per call, as in mimic_plan_run; per-sample work never
 * depends on the split, so deterministic mode stays bit-identical for any
 * batch and thread count. */
#include "base/internal.h"
#include "embed_internal.h"
#include "io/modelfile_internal.h"

#include "mimic/guard.h"

#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#ifdef _OPENMP
#include <omp.h>
#endif

/* Fewer rows than this per thread stay on the calling thread (as in
 * mimic_plan_run): a fork/join costs more than they do. */
#define MIN_ROWS_PER_THREAD 32

/* The guard checks raw rows gathered this many at a time into each thread
 * slot's work area (GUARD_ROWS rows + 2 rows of the guard's scratch). */
#define GUARD_ROWS 32
#define WORK_ROWS (GUARD_ROWS + 2)

static const char *const side_names[2] = {"input", "output"};
#define side_name(w) side_names[(w) ? 1 : 0]

/* --- errors ------------------------------------------------------------------ */
/* The handle keeps the message of its last failed call; the error slot is
 * logically mutable even through a const handle (allocated non-const). */
static int keep(const mimic_handle *h, int rc)
{
    if (rc < 0 && h)
        snprintf(((mimic_handle *)(uintptr_t)h)->err, sizeof h->err, "%s", mimic_errmsg());
    return rc;
}

static int herr(const mimic_handle *h, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static int herr(const mimic_handle *h, int code, const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    mimic_error(code, "%s", msg);
    return keep(h, code);
}

/* Re-records the thread's current error with a prefix (the message is copied
 * first: mimic_error formats into the same slot). */
static int prefix_error(const mimic_handle *h, int rc, const char *prefix)
{
    char msg[512];
    snprintf(msg, sizeof msg, "%s", mimic_errmsg());
    if (rc >= 0)
        rc = MIMIC_EINTERNAL;
    mimic_error(rc, "%s%s", prefix, msg);
    return keep(h, rc);
}

#define NULL_HANDLE(fn) mimic_error(MIMIC_EARG, fn ": handle is NULL (closed, or the open failed)")

static void logf_(const mimic_handle *h, int level, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static void logf_(const mimic_handle *h, int level, const char *fmt, ...)
{
    if (!h->opt.log)
        return;
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    h->opt.log(h->opt.log_ud, level, msg);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* --- threads ------------------------------------------------------------------ */
static bool in_parallel(void)
{
#ifdef _OPENMP
    return omp_in_parallel();
#else
    return false;
#endif
}

/* Sets the calling thread's count to n (when it differs) and returns what to
 * restore (0: nothing). mimic_set_num_threads would also call OpenBLAS's
 * setter, which the OpenMP build does not need: it reads nthreads-var. */
static int push_threads(int n)
{
#ifdef _OPENMP
    int cur = omp_get_max_threads();
    if (n > 0 && n != cur && !omp_in_parallel()) {
        omp_set_num_threads(n);
        return cur;
    }
#else
    (void)n;
#endif
    return 0;
}

static void pop_threads(int prev)
{
#ifdef _OPENMP
    if (prev > 0)
        omp_set_num_threads(prev);
#else
    (void)prev;
#endif
}

/* --- encoders, compiled ------------------------------------------------------- */
/* Affine stages and all stages of e. */
static void count_stages(const mimic_encoder *e, int *naff, int *ns)
{
    *ns = e ? e->nstages : 0;
    *naff = 0;
    for (int s = 0; s < *ns; s++)
        if (e->stages[s].kind == MIMIC_ENC_STANDARD || e->stages[s].kind == MIMIC_ENC_MINMAX)
            (*naff)++;
}

/* e (validated by the loader) for rows of `width` features into c, its ops
 * at *ops and its coefficients at *coef (both advanced past what it uses:
 * the handle's one block, sized by count_stages). A run of affine stages
 * folds into one: ((x - a1)/b1 - a2)/b2 = (x - (a1 + a2 b1)) / (b1 b2), and
 * in reverse (z b2 + a2) b1 + a1 = z (b1 b2) + (a1 + a2 b1): the same pair
 * both ways. A single stage keeps its own a and b, so it rounds exactly as
 * mimic_encoder_encode/decode do; a folded run may differ in the last bits. */
static void compile_encoder(const mimic_encoder *e, int64_t width, cenc *c, cenc_op **ops, double **coef)
{
    memset(c, 0, sizeof *c);
    c->ops = *ops;
    int ns = e ? e->nstages : 0;
    for (int s = 0; s < ns; s++) {
        const mimic_enc_stage *st = &e->stages[s];
        switch (st->kind) {
        case MIMIC_ENC_STANDARD:
        case MIMIC_ENC_MINMAX: {
            cenc_op *last = c->nops ? &c->ops[c->nops - 1] : NULL;
            if (last && last->kind == MIMIC_ENC_STANDARD) {
                double *a = (double *)(uintptr_t)last->a, *b = (double *)(uintptr_t)last->b;
                for (int64_t j = 0; j < width; j++) {
                    int64_t k = st->n == 1 ? 0 : j;
                    a[j] += st->a[k] * b[j];
                    b[j] *= st->b[k];
                }
            } else {
                double *a = *coef, *b = *coef + width;
                *coef += 2 * width;
                for (int64_t j = 0; j < width; j++) {
                    int64_t k = st->n == 1 ? 0 : j;
                    a[j] = st->a[k];
                    b[j] = st->b[k];
                }
                c->ops[c->nops++] = (cenc_op){MIMIC_ENC_STANDARD, 0, a, b};
            }
            break;
        }
        case MIMIC_ENC_LOG: c->ops[c->nops++] = (cenc_op){MIMIC_ENC_LOG, st->offset, NULL, NULL}; break;
        case MIMIC_ENC_SIGNED_LOG: c->ops[c->nops++] = (cenc_op){MIMIC_ENC_SIGNED_LOG, st->scale, NULL, NULL}; break;
        default: break; /* identity */
        }
    }
    *ops += c->nops;
    c->mode = c->nops == 0                                              ? CENC_NONE
              : c->nops == 1 && c->ops[0].kind == MIMIC_ENC_STANDARD ? CENC_AFFINE
              : c->nops == 2 && c->ops[0].kind == MIMIC_ENC_LOG && c->ops[1].kind == MIMIC_ENC_STANDARD
                  ? CENC_LOG_AFFINE
                  : CENC_GENERAL;
}

/* Both encoders of the handle's model, compiled into mem: at least
 * encoders_bytes(h) bytes, aligned for doubles. */
static size_t encoders_bytes(const mimic_handle *h, size_t *ndoubles)
{
    const mimic_encoder *e[2] = {&h->info->input_encoder, &h->info->output_encoder};
    int64_t width[2] = {h->nin, h->nout};
    size_t nd = 0, no = 0;
    for (int s = 0; s < 2; s++) {
        int naff, ns;
        count_stages(e[s], &naff, &ns);
        nd += (size_t)naff * 2 * (size_t)width[s];
        no += (size_t)ns;
    }
    *ndoubles = nd;
    return nd * sizeof(double) + no * sizeof(cenc_op);
}

static void compile_encoders(mimic_handle *h, void *mem)
{
    size_t nd;
    encoders_bytes(h, &nd);
    double *coef = mem; /* doubles first: both parts stay aligned */
    cenc_op *ops = (cenc_op *)(coef + nd);
    compile_encoder(&h->info->input_encoder, h->nin, &h->enc[0], &ops, &coef);
    compile_encoder(&h->info->output_encoder, h->nout, &h->enc[1], &ops, &coef);
}

/* Feature j of one value through the ops (the formulas of mimic_encoder_encode). */
static double enc_x(const cenc *c, int64_t j, double x)
{
    for (int k = 0; k < c->nops; k++) {
        const cenc_op *o = &c->ops[k];
        if (o->kind == MIMIC_ENC_STANDARD)
            x = (x - o->a[j]) / o->b[j];
        else if (o->kind == MIMIC_ENC_LOG)
            x = log(x + o->p);
        else
            x = (x > 0 ? 1.0 : x < 0 ? -1.0 : 0.0) * log1p(fabs(x) / o->p);
    }
    return x;
}

/* The inverse, ops in reverse (the formulas of mimic_encoder_decode). */
static double dec_x(const cenc *c, int64_t j, double x)
{
    for (int k = c->nops - 1; k >= 0; k--) {
        const cenc_op *o = &c->ops[k];
        if (o->kind == MIMIC_ENC_STANDARD)
            x = x * o->b[j] + o->a[j];
        else if (o->kind == MIMIC_ENC_LOG)
            x = exp(x) - o->p;
        else
            x = (x > 0 ? 1.0 : x < 0 ? -1.0 : 0.0) * expm1(fabs(x)) * o->p;
    }
    return x;
}

/* --- loading ------------------------------------------------------------------ */
/* A copy of m in dtype dt (the caller owns it): every record type, conv and
 * recurrent ones included (mimic_model_convert, core/nn/model.c). */
static mimic_model *convert_model(const mimic_model *m, mimic_dtype dt) { return mimic_model_convert(m, dt); }

static void free_plans(mimic_plan **plans, int slots)
{
    for (int t = 0; plans && t < slots; t++)
        mimic_plan_free(plans[t]);
    mimic_free(plans);
}

/* Loads path and compiles `slots` single-slot plans of it, following the
 * options (precision, chunk, deterministic). On success the caller owns
 * *info and *plans (free_plans). */
static int load_plans(const char *fn, const char *path, const mimic_options *o, int slots, mimic_model_info **info,
                      mimic_plan ***plans)
{
    *info = NULL;
    *plans = NULL;
    mimic_model *m;
    /* HDF5 is not thread-safe: handles opened from a host's threads at once
     * take turns (the host's own HDF5 calls are its business, mimic/io.h) */
#pragma omp critical(mimic_hdf5)
    m = mimic_model_load(path, info);
    if (!m) {
        char msg[512];
        int rc = mimic_errcode() ? mimic_errcode() : MIMIC_EIO;
        snprintf(msg, sizeof msg, "%s", mimic_errmsg());
        return mimic_error(rc, "%s: %s", fn, msg);
    }
    mimic_dtype want = o->precision == MIMIC_PRECISION_F32   ? MIMIC_F32
                       : o->precision == MIMIC_PRECISION_F64 ? MIMIC_F64
                                                             : mimic_model_dtype(m);
    if (want != mimic_model_dtype(m)) {
        mimic_model *c = convert_model(m, want);
        mimic_model_free(m);
        m = c;
    }
    mimic_plan **p = m ? mimic_calloc((size_t)slots, sizeof *p) : NULL;
    int rc = p ? MIMIC_OK : mimic_errcode() ? mimic_errcode() : MIMIC_ENOMEM;
    int prev = push_threads(1); /* a plan's slots: the thread count when it is made */
    for (int t = 0; !rc && t < slots; t++) {
        if (!(p[t] = mimic_plan_new(m, o->chunk)))
            rc = mimic_errcode() ? mimic_errcode() : MIMIC_ENOMEM;
        else
            mimic_plan_set_deterministic(p[t], o->deterministic != 0);
    }
    pop_threads(prev);
    mimic_model_free(m);
    if (rc) {
        free_plans(p, slots);
        mimic_model_info_free(*info);
        *info = NULL;
        return rc;
    }
    *plans = p;
    return MIMIC_OK;
}

static void free_handle(mimic_handle *h)
{
    if (!h)
        return;
    for (int k = 0; k < h->nmembers; k++) {
        free_plans(h->members[k].plans, h->slots);
        mimic_model_info_free(h->members[k].info);
    }
    mimic_free(h->members);
    mimic_free(h->Ym);
    free_plans(h->plans, h->slots);
    mimic_model_info_free(h->info);
    mimic_free(h->bind[0]);
    mimic_free(h->bind[1]);
    mimic_free(h->off[0]);
    mimic_free(h->off[1]);
    mimic_free(h->bound_lo);
    mimic_free(h->bound_hi);
    mimic_free(h->X);
    mimic_free(h->Y);
    mimic_free(h->work);
    mimic_free(h->flags);
    mimic_free(h->idx);
    mimic_free(h->resid);
    mimic_guard_free(h->guard);
    mimic_free(h);
}

int mimic_open(const char *path, const mimic_options *opt, mimic_handle **out)
{
    if (!out)
        return mimic_error(MIMIC_EARG, "mimic_open: out is NULL (pass the address of a mimic_handle pointer)");
    *out = NULL;
    if (!path)
        return mimic_error(MIMIC_EARG, "mimic_open: path is NULL");
    mimic_options o = opt ? *opt : (mimic_options){0};
    if (o.precision < MIMIC_PRECISION_STORED || o.precision > MIMIC_PRECISION_F64)
        return mimic_error(MIMIC_EARG, "mimic_open: precision %d: use MIMIC_PRECISION_STORED, _F32 or _F64", o.precision);
    if (o.chunk < 0)
        return mimic_error(MIMIC_EARG, "mimic_open: chunk must be >= 0 (0: the engine's choice), got %lld",
                           (long long)o.chunk);
    if (o.num_threads < 0)
        return mimic_error(MIMIC_EARG, "mimic_open: num_threads must be >= 0 (0: the caller's setting), got %d",
                           o.num_threads);
    mimic_handle *h = mimic_calloc(1, sizeof *h);
    if (!h)
        return MIMIC_ENOMEM;
    h->opt = o;
    h->max_spread = INFINITY;
    h->slots = o.num_threads > 0 ? o.num_threads : mimic_get_num_threads();
    if (h->slots < 1)
        h->slots = 1;
    int rc = load_plans("mimic_open", path, &o, h->slots, &h->info, &h->plans);
    if (rc) {
        free_handle(h);
        return rc;
    }
    h->dtype = mimic_plan_dtype(h->plans[0]);
    h->esize = mimic_dtype_size(h->dtype);
    h->nin = mimic_plan_nin(h->plans[0]);
    h->nout = mimic_plan_nout(h->plans[0]);
    h->chunk = mimic_plan_chunk(h->plans[0]);
    const mimic_contract *c = &h->info->contract;
    int nv[2] = {c->ninputs, c->noutputs};
    for (int s = 0; s < 2 && !rc; s++) {
        const mimic_io_var *v = s ? c->outputs : c->inputs;
        h->bind[s] = mimic_calloc((size_t)nv[s], sizeof *h->bind[s]);
        h->off[s] = mimic_calloc((size_t)nv[s], sizeof *h->off[s]);
        if (!h->bind[s] || !h->off[s]) {
            rc = MIMIC_ENOMEM;
            break;
        }
        for (int i = 1; i < nv[s]; i++)
            h->off[s][i] = h->off[s][i - 1] + v[i - 1].size;
    }
    if (!rc) {
        size_t rows = (size_t)h->slots * (size_t)h->chunk;
        h->bound_lo = mimic_malloc((size_t)c->noutputs * sizeof(double));
        h->bound_hi = mimic_malloc((size_t)c->noutputs * sizeof(double));
        h->X = mimic_malloc(rows * (size_t)h->nin * h->esize);
        h->Y = mimic_malloc(rows * (size_t)h->nout * h->esize);
        /* the guard's scratch, then the compiled encoders: one allocation */
        size_t nwork = (size_t)h->slots * WORK_ROWS * (size_t)h->nin, nd;
        h->work = mimic_malloc(nwork * sizeof(double) + encoders_bytes(h, &nd));
        if (h->work)
            compile_encoders(h, h->work + nwork);
        if (!h->bound_lo || !h->bound_hi || !h->X || !h->Y || !h->work)
            rc = MIMIC_ENOMEM;
    }
    if (rc) {
        free_handle(h);
        return rc;
    }
    for (int i = 0; i < c->noutputs; i++)
        h->bound_lo[i] = -INFINITY, h->bound_hi[i] = INFINITY;
    size_t ws = 0;
    for (int t = 0; t < h->slots; t++)
        ws += mimic_plan_workspace_bytes(h->plans[t]);
    logf_(h, MIMIC_LOG_INFO,
          "mimic: opened %s (%s): %lld inputs -> %lld outputs, plan %s%s, %d thread slot(s) x chunk %lld, "
          "workspace %zu bytes, weights %zu bytes x %d",
          path, h->info->hash, (long long)h->nin, (long long)h->nout, mimic_dtype_name(h->dtype),
          o.deterministic ? " deterministic" : "", h->slots, (long long)h->chunk, ws,
          mimic_plan_weight_bytes(h->plans[0]), h->slots);
    *out = h;
    return MIMIC_OK;
}

int mimic_close(mimic_handle **h)
{
    if (h && *h) {
        free_handle(*h);
        *h = NULL;
    }
    return MIMIC_OK;
}

const char *mimic_last_error(const mimic_handle *h) { return h ? h->err : mimic_errmsg(); }

/* --- the contract ----------------------------------------------------------- */
static int check_which(const mimic_handle *h, const char *fn, int which)
{
    if (which != MIMIC_INPUT && which != MIMIC_OUTPUT)
        return herr(h, MIMIC_EARG, "%s: which must be MIMIC_INPUT (0) or MIMIC_OUTPUT (1), got %d", fn, which);
    return MIMIC_OK;
}

static int nvars(const mimic_handle *h, int which)
{
    return which ? h->info->contract.noutputs : h->info->contract.ninputs;
}

static const mimic_io_var *vars(const mimic_handle *h, int which)
{
    return which ? h->info->contract.outputs : h->info->contract.inputs;
}

int mimic_num_vars(const mimic_handle *h, int which, int *count)
{
    if (!h)
        return NULL_HANDLE("mimic_num_vars");
    if (check_which(h, "mimic_num_vars", which))
        return MIMIC_EARG;
    if (!count)
        return herr(h, MIMIC_EARG, "mimic_num_vars: count is NULL");
    *count = nvars(h, which);
    return MIMIC_OK;
}

int mimic_var_info(const mimic_handle *h, int which, int i, const char **name, const char **units, int64_t *size)
{
    if (!h)
        return NULL_HANDLE("mimic_var_info");
    if (check_which(h, "mimic_var_info", which))
        return MIMIC_EARG;
    if (i < 0 || i >= nvars(h, which))
        return herr(h, MIMIC_EARG, "mimic_var_info: %s %d is out of range (the model has %d %ss, numbered from 0)",
                    side_name(which), i, nvars(h, which), side_name(which));
    const mimic_io_var *v = &vars(h, which)[i];
    if (name)
        *name = v->name;
    if (units)
        *units = v->units;
    if (size)
        *size = v->size;
    return MIMIC_OK;
}

const char *mimic_model_hash_of(const mimic_handle *h)
{
    if (!h) {
        NULL_HANDLE("mimic_model_hash_of");
        return NULL;
    }
    return h->info->hash;
}

int mimic_check_vars(const mimic_handle *h, int which, const char *const *names, const int64_t *sizes, int n)
{
    if (!h)
        return NULL_HANDLE("mimic_check_vars");
    if (check_which(h, "mimic_check_vars", which))
        return MIMIC_EARG;
    int rc = mimic_contract_bind(&h->info->contract, which, names, sizes, n);
    return rc ? prefix_error(h, rc, "mimic_check_vars: ") : MIMIC_OK;
}

static int find_var(const mimic_handle *h, int which, const char *name)
{
    for (int i = 0; i < nvars(h, which); i++)
        if (!strcmp(vars(h, which)[i].name, name))
            return i;
    return -1;
}

/* Unknown name: names what the model has, and the right side if it is on the other one. */
static int unknown_var(const mimic_handle *h, const char *fn, int which, const char *name)
{
    if (find_var(h, !which, name) >= 0)
        return herr(h, MIMIC_EARG, "%s: '%s' is an %s of the model, not an %s (use %s)", fn, name,
                    side_name(!which), side_name(which), which ? "MIMIC_INPUT" : "MIMIC_OUTPUT");
    char list[400];
    mimic_contract_list_vars(list, sizeof list, vars(h, which), nvars(h, which));
    return herr(h, MIMIC_EARG, "%s: the model has no %s called '%s'; its %ss are: %s", fn, side_name(which), name,
                side_name(which), list);
}

int mimic_bind(mimic_handle *h, int which, const char *name, const char *units, const mimic_array *a)
{
    if (!h)
        return NULL_HANDLE("mimic_bind");
    if (check_which(h, "mimic_bind", which))
        return MIMIC_EARG;
    if (!name)
        return herr(h, MIMIC_EARG, "mimic_bind: name is NULL");
    int i = find_var(h, which, name);
    if (i < 0)
        return unknown_var(h, "mimic_bind", which, name);
    const mimic_io_var *v = &vars(h, which)[i];
    const char *s = side_name(which);
    if (!a)
        return herr(h, MIMIC_EARG, "mimic_bind: %s '%s': the array descriptor is NULL", s, name);
    if (!a->data)
        return herr(h, MIMIC_EARG, "mimic_bind: %s '%s': data is NULL", s, name);
    if (a->dtype != MIMIC_F32 && a->dtype != MIMIC_F64)
        return herr(h, MIMIC_EARG, "mimic_bind: %s '%s': host data of dtype %s; only MIMIC_F32 (float) or MIMIC_F64 "
                    "(double) arrays can be bound", s, name, mimic_dtype_name(a->dtype));
    if (a->size != v->size)
        return herr(h, MIMIC_EARG, "mimic_bind: %s '%s' has size %lld in the model, the host array has %lld", s, name,
                    (long long)v->size, (long long)a->size);
    if (units && strcmp(units, v->units) != 0)
        return herr(h, MIMIC_EARG, "mimic_bind: %s '%s' is in units '%s' in the model, the host passed '%s' (convert "
                    "the data, or pass units = NULL to skip the check)", s, name, v->units, units);
    if (a->sample_stride < 1)
        return herr(h, MIMIC_EARG, "mimic_bind: %s '%s': sample_stride must be >= 1 (elements from one sample to the "
                    "next), got %lld", s, name, (long long)a->sample_stride);
    if (v->size > 1 && a->feature_stride < 1)
        return herr(h, MIMIC_EARG, "mimic_bind: %s '%s': feature_stride must be >= 1 (elements from one feature to "
                    "the next), got %lld", s, name, (long long)a->feature_stride);
    if (v->size > 1 && a->feature_stride == a->sample_stride)
        return herr(h, MIMIC_EARG, "mimic_bind: %s '%s': sample_stride and feature_stride are both %lld, so samples "
                    "share elements (row-major x[n][%lld]: %lld and 1; column-major: 1 and the leading dimension)",
                    s, name, (long long)a->sample_stride, (long long)v->size, (long long)v->size);
    h->bind[which][i].a = *a;
    if (v->size == 1)
        h->bind[which][i].a.feature_stride = 1;
    h->bind[which][i].bound = true;
    return MIMIC_OK;
}

/* With n samples the array's elements must be distinct (for outputs: writes
 * must not clash; for inputs: overlap means the strides are wrong), and the
 * last one addressable: features packed inside each sample, or samples packed
 * inside each feature. */
static int check_layout(const mimic_handle *h, int which, int i, int64_t n)
{
    const mimic_array *a = &h->bind[which][i].a;
    int64_t ss = a->sample_stride, fs = a->feature_stride, sz = a->size;
    const char *name = vars(h, which)[i].name;
    /* in double: the strides are the host's, any size */
    if (sz > 1 && n > 1 && !((double)fs * (double)(sz - 1) < (double)ss || (double)ss * (double)(n - 1) < (double)fs))
        return herr(h, MIMIC_EARG, "mimic_run: %s '%s': with sample_stride %lld and feature_stride %lld, %lld samples "
                    "of %lld features overlap in memory (row-major: feature_stride 1 and sample_stride >= %lld; "
                    "column-major: sample_stride 1 and feature_stride >= %lld)", side_name(which), name,
                    (long long)ss, (long long)fs, (long long)n, (long long)sz, (long long)sz, (long long)n);
    if ((double)(n - 1) * (double)ss + (double)(sz - 1) * (double)fs > 0x1p62)
        return herr(h, MIMIC_EARG, "mimic_run: %s '%s': the strides address beyond 2^62 elements", side_name(which),
                    name);
    return MIMIC_OK;
}

/* --- guard, bounds, callbacks, ensemble ------------------------------------ */
int mimic_set_guard(mimic_handle *h, const mimic_guard *g)
{
    if (!h)
        return NULL_HANDLE("mimic_set_guard");
    if (g && mimic_guard_nfeat(g) != h->nin)
        return herr(h, MIMIC_EARG, "mimic_set_guard: the guard has %lld features, the model's raw input width is %lld "
                    "(fit the guard on the raw inputs in contract order)", (long long)mimic_guard_nfeat(g),
                    (long long)h->nin);
    mimic_guard *c = NULL;
    if (g && !(c = mimic_guard_copy(g)))
        return keep(h, mimic_errcode() ? mimic_errcode() : MIMIC_ENOMEM);
    mimic_guard_free(h->guard);
    h->guard = c;
    return MIMIC_OK;
}

int mimic_set_output_bounds(mimic_handle *h, const char *output, double lo, double hi)
{
    if (!h)
        return NULL_HANDLE("mimic_set_output_bounds");
    if (!output)
        return herr(h, MIMIC_EARG, "mimic_set_output_bounds: output name is NULL");
    int i = find_var(h, MIMIC_OUTPUT, output);
    if (i < 0)
        return unknown_var(h, "mimic_set_output_bounds", MIMIC_OUTPUT, output);
    if (isnan(lo) || isnan(hi) || lo > hi)
        return herr(h, MIMIC_EARG, "mimic_set_output_bounds: output '%s': bounds [%g, %g] are not an interval (lo <= "
                    "hi; -INFINITY/INFINITY for none)", output, lo, hi);
    h->bound_lo[i] = lo;
    h->bound_hi[i] = hi;
    return MIMIC_OK;
}

int mimic_set_residual(mimic_handle *h, mimic_residual_fn fn, void *ud, double tol)
{
    if (!h)
        return NULL_HANDLE("mimic_set_residual");
    if (fn && !(tol >= 0))
        return herr(h, MIMIC_EARG, "mimic_set_residual: tol must be >= 0, got %g", tol);
    h->resid_fn = fn;
    h->resid_ud = ud;
    h->resid_tol = tol;
    return MIMIC_OK;
}

int mimic_set_fallback(mimic_handle *h, mimic_fallback_fn fn, void *ud)
{
    if (!h)
        return NULL_HANDLE("mimic_set_fallback");
    h->fb_fn = fn;
    h->fb_ud = ud;
    return MIMIC_OK;
}

int mimic_set_spread_limit(mimic_handle *h, double max_spread)
{
    if (!h)
        return NULL_HANDLE("mimic_set_spread_limit");
    if (!(max_spread >= 0))
        return herr(h, MIMIC_EARG, "mimic_set_spread_limit: max_spread must be >= 0 (INFINITY: no limit), got %g",
                    max_spread);
    h->max_spread = max_spread;
    return MIMIC_OK;
}

/* Members must agree on everything between the host's raw values and the
 * plan: the contract (names, units, sizes, order) and both encoders, value
 * for value. The weights are free to differ; that is the point. */
static bool same_encoder(const mimic_encoder *x, const mimic_encoder *y)
{
    if (x->nstages != y->nstages)
        return false;
    for (int i = 0; i < x->nstages; i++) {
        const mimic_enc_stage *a = &x->stages[i], *b = &y->stages[i];
        if (a->kind != b->kind || a->n != b->n || a->offset != b->offset || a->scale != b->scale)
            return false;
        for (int64_t j = 0; j < a->n; j++)
            if (a->a[j] != b->a[j] || a->b[j] != b->b[j])
                return false;
    }
    return true;
}

static int compare_contract(const mimic_handle *h, const char *path, const mimic_model_info *m)
{
    for (int s = 0; s < 2; s++) {
        const mimic_io_var *v = vars(h, s), *w = s ? m->contract.outputs : m->contract.inputs;
        int n = nvars(h, s), nw = s ? m->contract.noutputs : m->contract.ninputs;
        char want[400];
        mimic_contract_list_vars(want, sizeof want, v, n);
        bool same = n == nw;
        for (int i = 0; same && i < n; i++)
            same = !strcmp(v[i].name, w[i].name) && !strcmp(v[i].units, w[i].units) && v[i].size == w[i].size;
        if (!same) {
            char got[400];
            mimic_contract_list_vars(got, sizeof got, w, nw);
            return herr(h, MIMIC_EARG, "mimic_add_member: %s: its %ss are %s; the ensemble's are %s (members need the "
                        "same contract)", path, side_name(s), got, want);
        }
    }
    if (!same_encoder(&h->info->input_encoder, &m->input_encoder))
        return herr(h, MIMIC_EARG, "mimic_add_member: %s: its input encoder differs from the first model's (members "
                    "must be trained on identically encoded data)", path);
    if (!same_encoder(&h->info->output_encoder, &m->output_encoder))
        return herr(h, MIMIC_EARG, "mimic_add_member: %s: its output encoder differs from the first model's (members "
                    "are averaged in encoded units, so the encoders must be identical)", path);
    return MIMIC_OK;
}

int mimic_add_member(mimic_handle *h, const char *path)
{
    if (!h)
        return NULL_HANDLE("mimic_add_member");
    if (!path)
        return herr(h, MIMIC_EARG, "mimic_add_member: path is NULL");
    mimic_model_info *info;
    mimic_plan **plans;
    /* in the first model's precision: all plans read the same encoded chunk */
    mimic_options o = h->opt;
    o.precision = h->dtype == MIMIC_F32 ? MIMIC_PRECISION_F32 : MIMIC_PRECISION_F64;
    int rc = load_plans("mimic_add_member", path, &o, h->slots, &info, &plans);
    if (rc)
        return keep(h, rc);
    rc = compare_contract(h, path, info);
    member *mem = NULL;
    void *ym = NULL;
    if (!rc) {
        mem = mimic_realloc(h->members, (size_t)(h->nmembers + 1) * sizeof *mem);
        if (mem)
            h->members = mem;
        ym = mimic_realloc(h->Ym, (size_t)(h->nmembers + 1) * (size_t)h->slots * (size_t)(h->chunk * h->nout) *
                                      h->esize);
        if (ym)
            h->Ym = ym;
        if (!mem || !ym)
            rc = keep(h, MIMIC_ENOMEM);
    }
    if (rc) {
        free_plans(plans, h->slots);
        mimic_model_info_free(info);
        return rc;
    }
    h->members[h->nmembers++] = (member){plans, info};
    return MIMIC_OK;
}

/* --- running ------------------------------------------------------------------ */
/* Per-sample buffers for n samples: grown once, kept. */
static int reserve(mimic_handle *h, int64_t n)
{
    if (n <= h->cap)
        return MIMIC_OK;
    uint8_t *f = mimic_realloc(h->flags, (size_t)n);
    if (f)
        h->flags = f;
    int64_t *idx = mimic_realloc(h->idx, (size_t)n * sizeof *idx);
    if (idx)
        h->idx = idx;
    double *r = mimic_realloc(h->resid, (size_t)n * sizeof *r);
    if (r)
        h->resid = r;
    if (!f || !idx || !r)
        return herr(h, MIMIC_ENOMEM, "mimic_run: out of memory for the flags of %lld samples", (long long)n);
    h->cap = n;
    return MIMIC_OK;
}

/* 1 unless v is finite as a TD (NaN fails both comparisons); written
 * without && so that the loops below vectorise (OR reductions). */
#define NOT_FINITE(v, MAX) (1u ^ (unsigned)(((v) >= -(MAX)) & ((v) <= (MAX))))

/* The gather and scatter loops are the whole of a call's own cost at large
 * n: `omp simd` makes GCC vectorise them at -O2 (the general encoder calls a
 * function per element and stays scalar), and they are compiled for AVX-512
 * and AVX2 too, picked at load time as in core/nn/kernels.h. No FMA is
 * enabled and nothing is reassociated, so every version rounds the same. */
#define SIMD_OR1 _Pragma("omp simd reduction(|:bad_)")
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define CLONES
#endif

/* The checks are per sample, but a per-sample OR over a vector loop of a
 * few features costs more than the loop (a horizontal reduction per row):
 * the loops below OR into one lane per feature instead (ACC features at a
 * time), and only a block where some lane is set goes through a second,
 * scalar pass that recomputes the same values and flags the samples. */
#define ACC 32

/* One input variable's m samples from the host (TS) into the plan's rows (TD,
 * width nin, from feature off), encoded on the way: each value is read once,
 * encoded in double and rounded to the plan's type once. The input check
 * looks at the raw value as the plan's type would hold it (as before the
 * encoders were fused: a raw value that overflows the plan's type is bad). */
#define GATHER_ENC(TD, TS, MAX, ENC)                                                      \
    do {                                                                                  \
        const TS *src_ = (const TS *)a->data + i0 * ss;                                   \
        TD *dst_ = (TD *)X + off;                                                         \
        if (sz == 1) {                                                                    \
            unsigned bad_ = 0;                                                            \
            SIMD_OR1 for (int64_t i = 0; i < m; i++) {                                    \
                TS x_ = src_[i * ss];                                                     \
                dst_[i * nin] = (TD)(ENC((double)x_, 0));                                 \
                bad_ |= NOT_FINITE((TD)x_, MAX);                                          \
            }                                                                             \
            for (int64_t i = 0; bad_ && i < m; i++)                                       \
                fl[i] |= (uint8_t)(NOT_FINITE((TD)src_[i * ss], MAX) * MIMIC_FLAG_INPUT_NAN); \
            break;                                                                        \
        }                                                                                 \
        for (int64_t j0 = 0; j0 < sz; j0 += ACC) {                                        \
            int64_t jn = sz - j0 < ACC ? sz - j0 : ACC;                                   \
            unsigned acc_[ACC] = {0}, any_ = 0;                                           \
            for (int64_t i = 0; i < m; i++) {                                             \
                const TS *s_ = src_ + i * ss + j0 * fs;                                   \
                TD *d_ = dst_ + i * nin + j0;                                             \
                SIMD for (int64_t j = 0; j < jn; j++) {                                   \
                    TS x_ = s_[j * fs];                                                   \
                    d_[j] = (TD)(ENC((double)x_, j0 + j));                                \
                    acc_[j] |= NOT_FINITE((TD)x_, MAX);                                   \
                }                                                                         \
            }                                                                             \
            for (int64_t j = 0; j < jn; j++)                                              \
                any_ |= acc_[j];                                                          \
            for (int64_t i = 0; any_ && i < m; i++) {                                     \
                const TS *s_ = src_ + i * ss + j0 * fs;                                   \
                unsigned bad_ = 0;                                                        \
                for (int64_t j = 0; j < jn; j++)                                          \
                    bad_ |= NOT_FINITE((TD)s_[j * fs], MAX);                              \
                fl[i] |= (uint8_t)(bad_ * MIMIC_FLAG_INPUT_NAN);                          \
            }                                                                             \
        }                                                                                 \
    } while (0)

#define GATHER_TYPES(ENC)                                                                 \
    do {                                                                                  \
        if (dt == MIMIC_F32) {                                                            \
            if (a->dtype == MIMIC_F32)                                                    \
                GATHER_ENC(float, float, FLT_MAX, ENC);                                   \
            else                                                                          \
                GATHER_ENC(float, double, FLT_MAX, ENC);                                  \
        } else {                                                                          \
            if (a->dtype == MIMIC_F32)                                                    \
                GATHER_ENC(double, float, DBL_MAX, ENC);                                  \
            else                                                                          \
                GATHER_ENC(double, double, DBL_MAX, ENC);                                 \
        }                                                                                 \
    } while (0)

/* exp(x) for decoding log-encoded outputs (the common "log, then
 * standardise" of positive quantities spanning decades): Cody-Waite
 * reduction x = n ln2 + r, |r| <= ln2/2, a degree-13 Taylor polynomial
 * (truncation < 5e-18 relative) and 2^n built in the exponent bits, all
 * branch-free so `omp simd` vectorises it, where libm's exp is a call per
 * element that costs more than the network's last layer. Within 2 ulp of
 * exp; 0 below x = -708 (exp is subnormal there), +inf above 709, NaN kept. */
static inline double vexp(double x)
{
    const double shift = 0x1.8p52, log2e = 1.4426950408889634, ln2_hi = 6.93147180369123816490e-01,
                 ln2_lo = 1.90821492927058770002e-10;
    double xc = x == x ? (x < -708.0 ? -708.0 : x > 709.0 ? 709.0 : x) : 0.0;
    double t = xc * log2e + shift; /* n = round(xc log2e) in the low mantissa bits */
    double n = t - shift;
    double r = (xc - n * ln2_hi) - n * ln2_lo;
    double p = 1.0 / 6227020800.0;
    p = p * r + 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    uint64_t ti, sb;
    memcpy(&ti, &t, sizeof ti);
    sb = (ti + 1023) << 52; /* n + 1023 in [2, 2046]: a normal 2^n */
    double scale;
    memcpy(&scale, &sb, sizeof scale);
    double y = p * scale;
    return x != x ? x : x < -708.0 ? 0.0 : x > 709.0 ? (double)INFINITY : y;
}

#define ENC_NONE(x, j) (x)
#define ENC_AFFINE(x, j) (((x) - A[j]) / B[j])
#define ENC_GENERAL(x, j) enc_x(c, off + (j), x)
#define DEC_AFFINE(x, j) ((x) * B[j] + A[j])
#define DEC_LOG_AFFINE(x, j) (vexp((x) * B[j] + A[j]) - P)
#define DEC_GENERAL(x, j) dec_x(c, off + (j), x)

CLONES static void gather_fast(const mimic_array *a, const double *A, const double *B, int64_t off, mimic_dtype dt,
                               void *X, int64_t nin, int64_t i0, int64_t m, uint8_t *fl)
{
    int64_t ss = a->sample_stride, fs = a->feature_stride, sz = a->size;
#define SIMD _Pragma("omp simd")
    if (!A)
        GATHER_TYPES(ENC_NONE);
    else
        GATHER_TYPES(ENC_AFFINE);
#undef SIMD
}

static void gather_enc(const mimic_array *a, const cenc *c, int64_t off, mimic_dtype dt, void *X, int64_t nin,
                       int64_t i0, int64_t m, uint8_t *fl)
{
    if (c->mode == CENC_NONE || c->mode == CENC_AFFINE) {
        gather_fast(a, c->mode == CENC_AFFINE ? c->ops[0].a + off : NULL,
                    c->mode == CENC_AFFINE ? c->ops[0].b + off : NULL, off, dt, X, nin, i0, m, fl);
        return;
    }
    int64_t ss = a->sample_stride, fs = a->feature_stride, sz = a->size;
#define SIMD
    GATHER_TYPES(ENC_GENERAL);
#undef SIMD
}

/* One output variable's m samples from the plan's rows (TS, width nout, from
 * feature off) to the host (TD), decoded on the way in double and rounded to
 * the host's type once; the checks look at what the host gets. Unset bounds
 * are -inf/inf, which nothing (NaN included) falls outside of. */
#define SCATTER_FLAGS(y, MAX) (NOT_FINITE(y, MAX) * MIMIC_FLAG_OUTPUT_NAN |           \
                          (unsigned)(((double)(y) < lo) | ((double)(y) > hi)) * MIMIC_FLAG_BOUNDS)
/* The first pass's test: outside [max(lo, -MAX), min(hi, MAX)] or NaN, i.e.
 * whatever SCATTER_FLAGS would flag, in two comparisons. */
#define SUSPECT(y, L, H) (1u ^ (unsigned)(((double)(y) >= (L)) & ((double)(y) <= (H))))
#define SCATTER_DEC(TD, TS, MAX, DEC)                                                     \
    do {                                                                                  \
        TD *dst_ = (TD *)a->data + i0 * ss;                                               \
        const TS *src_ = (const TS *)Y + off;                                             \
        double L_ = lo > -(double)(MAX) ? lo : -(double)(MAX);                        \
        double H_ = hi < (double)(MAX) ? hi : (double)(MAX);                              \
        for (int64_t j0 = 0; j0 < sz; j0 += ACC) {                                        \
            int64_t jn = sz - j0 < ACC ? sz - j0 : ACC;                                   \
            unsigned acc_[ACC] = {0}, any_ = 0;                                           \
            for (int64_t i = 0; i < m; i++) {                                             \
                TD *d_ = dst_ + i * ss + j0 * fs;                                         \
                const TS *s_ = src_ + i * nout + j0;                                      \
                if (fs == 1) {                                                            \
                    SIMD for (int64_t j = 0; j < jn; j++) {                               \
                        TD y_ = (TD)(DEC((double)s_[j], j0 + j));                         \
                        d_[j] = y_;                                                       \
                        acc_[j] |= SUSPECT(y_, L_, H_);                                   \
                    }                                                                     \
                } else {                                                                  \
                    SIMD for (int64_t j = 0; j < jn; j++) {                               \
                        TD y_ = (TD)(DEC((double)s_[j], j0 + j));                         \
                        d_[j * fs] = y_;                                                  \
                        acc_[j] |= SUSPECT(y_, L_, H_);                                   \
                    }                                                                     \
                }                                                                         \
            }                                                                             \
            for (int64_t j = 0; j < jn; j++)                                              \
                any_ |= acc_[j];                                                          \
            for (int64_t i = 0; any_ && i < m; i++) {                                     \
                const TS *s_ = src_ + i * nout + j0;                                      \
                unsigned f_ = 0;                                                          \
                for (int64_t j = 0; j < jn; j++) {                                        \
                    TD y_ = (TD)(DEC((double)s_[j], j0 + j));                             \
                    f_ |= SCATTER_FLAGS(y_, MAX);                                     \
                }                                                                         \
                fl[i] |= (uint8_t)f_;                                                     \
            }                                                                             \
        }                                                                                 \
    } while (0)

#define SCATTER_TYPES(DEC)                                                                \
    do {                                                                                  \
        if (dt == MIMIC_F32) {                                                            \
            if (a->dtype == MIMIC_F32)                                                    \
                SCATTER_DEC(float, float, FLT_MAX, DEC);                                  \
            else                                                                          \
                SCATTER_DEC(double, float, DBL_MAX, DEC);                                 \
        } else {                                                                          \
            if (a->dtype == MIMIC_F32)                                                    \
                SCATTER_DEC(float, double, FLT_MAX, DEC);                                 \
            else                                                                          \
                SCATTER_DEC(double, double, DBL_MAX, DEC);                                \
        }                                                                                 \
    } while (0)

/* mode CENC_NONE (A NULL), CENC_AFFINE, or CENC_LOG_AFFINE (offset P). */
CLONES static void scatter_fast(const mimic_array *a, cenc_mode mode, const double *A, const double *B, double P,
                                int64_t off, mimic_dtype dt, const void *Y, int64_t nout, int64_t i0, int64_t m,
                                double lo, double hi, uint8_t *fl)
{
    int64_t ss = a->sample_stride, fs = a->feature_stride, sz = a->size;
#define SIMD _Pragma("omp simd")
    if (mode == CENC_NONE)
        SCATTER_TYPES(ENC_NONE);
    else if (mode == CENC_AFFINE)
        SCATTER_TYPES(DEC_AFFINE);
    else
        SCATTER_TYPES(DEC_LOG_AFFINE);
#undef SIMD
}

static void scatter_dec(const mimic_array *a, const cenc *c, int64_t off, mimic_dtype dt, const void *Y, int64_t nout,
                        int64_t i0, int64_t m, double lo, double hi, uint8_t *fl)
{
    if (c->mode != CENC_GENERAL) {
        const cenc_op *aff = c->mode == CENC_AFFINE ? &c->ops[0] : c->mode == CENC_LOG_AFFINE ? &c->ops[1] : NULL;
        scatter_fast(a, c->mode, aff ? aff->a + off : NULL, aff ? aff->b + off : NULL,
                     c->mode == CENC_LOG_AFFINE ? c->ops[0].p : 0.0, off, dt, Y, nout,
                     i0, m, lo, hi, fl);
        return;
    }
    int64_t ss = a->sample_stride, fs = a->feature_stride, sz = a->size;
#define SIMD
    SCATTER_TYPES(DEC_GENERAL);
#undef SIMD
}

/* m raw rows of one input variable into dst (doubles, row width w), each
 * value rounded to the plan's type dt first: what the guard checks. */
#define GATHER_RAW(TD, TS)                                                                \
    do {                                                                                  \
        const TS *src_ = (const TS *)a->data + i0 * ss;                                   \
        for (int64_t i = 0; i < m; i++)                                                   \
            for (int64_t j = 0; j < sz; j++)                                              \
                dst[i * w + j] = (double)(TD)src_[i * ss + j * fs];                       \
    } while (0)

static void gather_raw(const mimic_array *a, mimic_dtype dt, double *dst, int64_t w, int64_t i0, int64_t m)
{
    int64_t ss = a->sample_stride, fs = a->feature_stride, sz = a->size;
    if (dt == MIMIC_F32) {
        if (a->dtype == MIMIC_F32)
            GATHER_RAW(float, float);
        else
            GATHER_RAW(float, double);
    } else {
        if (a->dtype == MIMIC_F32)
            GATHER_RAW(double, float);
        else
            GATHER_RAW(double, double);
    }
}

static inline double elem(mimic_dtype dt, const void *p, int64_t k)
{
    return dt == MIMIC_F32 ? (double)((const float *)p)[k] : ((const double *)p)[k];
}

static inline void set_elem(mimic_dtype dt, void *p, int64_t k, double v)
{
    if (dt == MIMIC_F32)
        ((float *)p)[k] = (float)v;
    else
        ((double *)p)[k] = v;
}

/* Thread slot t's buffers. */
static char *xbuf(const mimic_handle *h, int t) { return (char *)h->X + (size_t)t * (size_t)(h->chunk * h->nin) * h->esize; }
static char *ybuf(const mimic_handle *h, int t) { return (char *)h->Y + (size_t)t * (size_t)(h->chunk * h->nout) * h->esize; }
static char *ymbuf(const mimic_handle *h, int e, int t)
{
    return (char *)h->Ym + ((size_t)e * (size_t)h->slots + (size_t)t) * (size_t)(h->chunk * h->nout) * h->esize;
}

/* Samples [i0, i0+m), m <= chunk, on thread slot t: gather + encode + input
 * checks, guard, the plans, ensemble mean and spread, decode + output checks
 * + scatter. *any gets the OR of the chunk's flags. Returns the first plan's
 * failure (never expected: the plans were made for these widths). */
static int run_chunk(mimic_handle *h, int t, int64_t i0, int64_t m, unsigned *any)
{
    int64_t nin = h->nin, nout = h->nout;
    mimic_dtype dt = h->dtype;
    const mimic_contract *ct = &h->info->contract;
    char *X = xbuf(h, t), *Y = ybuf(h, t);
    uint8_t *flags = h->flags + i0;
    memset(flags, 0, (size_t)m);
    for (int v = 0; v < ct->ninputs; v++)
        gather_enc(&h->bind[0][v].a, &h->enc[0], h->off[0][v], dt, X, nin, i0, m, flags);
    if (h->guard) {
        /* the guard sees raw rows, each value as the plan's type holds it,
         * gathered GUARD_ROWS at a time (typed loops per variable) */
        double *raw = h->work + (size_t)t * WORK_ROWS * (size_t)nin, *scratch = raw + GUARD_ROWS * nin;
        for (int64_t r0 = 0; r0 < m; r0 += GUARD_ROWS) {
            int64_t mr = m - r0 < GUARD_ROWS ? m - r0 : GUARD_ROWS;
            for (int v = 0; v < ct->ninputs; v++)
                gather_raw(&h->bind[0][v].a, dt, raw + h->off[0][v], nin, i0 + r0, mr);
            for (int64_t i = 0; i < mr; i++)
                flags[r0 + i] |= (uint8_t)mimic_guard_check(h->guard, raw + i * nin, scratch);
        }
    }
    int rc = mimic_plan_run(h->plans[t], X, m, Y);
    for (int e = 0; !rc && e < h->nmembers; e++)
        rc = mimic_plan_run(h->members[e].plans[t], X, m, ymbuf(h, e, t));
    if (rc)
        return rc;
    if (h->nmembers) {
        int M = h->nmembers + 1;
        for (int64_t i = 0; i < m; i++) {
            double worst = 0;
            for (int64_t j = 0; j < nout; j++) {
                int64_t k = i * nout + j;
                double sum = elem(dt, Y, k);
                for (int e = 0; e < h->nmembers; e++)
                    sum += elem(dt, ymbuf(h, e, t), k);
                double mean = sum / M, ss = elem(dt, Y, k) - mean;
                ss *= ss;
                for (int e = 0; e < h->nmembers; e++) {
                    double d = elem(dt, ymbuf(h, e, t), k) - mean;
                    ss += d * d;
                }
                double sd = sqrt(ss / M); /* population standard deviation over the members */
                if (!(sd <= worst))
                    worst = sd;
                set_elem(dt, Y, k, mean);
            }
            if (!(worst <= h->max_spread))
                flags[i] |= MIMIC_FLAG_SPREAD;
        }
    }
    for (int v = 0; v < ct->noutputs; v++)
        scatter_dec(&h->bind[1][v].a, &h->enc[1], h->off[1][v], dt, Y, nout, i0, m, h->bound_lo[v], h->bound_hi[v],
                    flags);
    unsigned f = 0;
    for (int64_t i = 0; i < m; i++)
        f |= flags[i];
    *any |= f;
    return MIMIC_OK;
}

/* How run_all splits n samples, as mimic_plan_run splits a batch: chunks of
 * the plans' size, or for a batch smaller than one chunk per thread, equal
 * shares of at least MIN_ROWS_PER_THREAD rows. *nthr becomes the threads
 * actually used (at most those asked). */
static void split_batch(const mimic_handle *h, int64_t n, int *nthr, int64_t *per_out)
{
    int64_t per = h->chunk;
    int nt = *nthr > h->slots ? h->slots : *nthr;
    if (nt > 1 && n < nt * per) {
        per = ((n + nt - 1) / nt + 15) / 16 * 16;
        if (per < MIN_ROWS_PER_THREAD)
            per = h->chunk, nt = 1;
        else if (per > h->chunk)
            per = h->chunk;
    }
    int64_t nchunks = (n + per - 1) / per;
    if (nt > nchunks)
        nt = (int)nchunks;
    *nthr = nt < 1 ? 1 : nt;
    *per_out = per;
}

/* All n samples on up to nthr threads (split_batch). One chunk or one
 * thread runs on the calling thread, without a parallel region. *any gets
 * the OR of all flags. */
static int run_all(mimic_handle *h, int64_t n, int nthr, unsigned *any)
{
    int64_t per;
    split_batch(h, n, &nthr, &per);
    int64_t nchunks = (n + per - 1) / per;
    int rc = MIMIC_OK;
    unsigned fa = 0;
    if (nthr <= 1) {
        for (int64_t c = 0; !rc && c < nchunks; c++)
            rc = run_chunk(h, 0, c * per, n - c * per < per ? n - c * per : per, &fa);
    } else {
#ifdef _OPENMP
#pragma omp parallel num_threads(nthr)
        {
            mimic_blas_on_this_thread();
            /* contiguous ranges of chunks per thread; the team may be smaller than asked */
            int t = omp_get_thread_num(), nt = omp_get_num_threads();
            int64_t c0 = nchunks * t / nt, c1 = nchunks * (t + 1) / nt;
            unsigned mine = 0;
            for (int64_t c = c0; c < c1; c++) {
                int r = run_chunk(h, t, c * per, n - c * per < per ? n - c * per : per, &mine);
                if (r) {
#pragma omp atomic write
                    rc = r;
                }
            }
#pragma omp atomic update
            fa |= mine;
        }
#endif
    }
    *any = fa;
    if (rc)
        return herr(h, rc, "mimic_run: a plan failed (code %d); this is a bug in mimic, please report it", rc);
    return MIMIC_OK;
}

/* A host callback failed: keep its message if it recorded one. */
static int callback_failed(mimic_handle *h, const char *what, int ret)
{
    if (mimic_errcode() != MIMIC_OK) {
        char prefix[64];
        snprintf(prefix, sizeof prefix, "mimic_run: the %s failed: ", what);
        return prefix_error(h, mimic_errcode(), prefix);
    }
    return herr(h, MIMIC_ESTATE, "mimic_run: the %s returned %d (record a message with mimic_error to say why)", what,
                ret);
}

int mimic_run(mimic_handle *h, int64_t n)
{
    if (!h)
        return NULL_HANDLE("mimic_run");
    if (n < 0)
        return herr(h, MIMIC_EARG, "mimic_run: n must be >= 0, got %lld", (long long)n);
    h->last_n = 0;
    if (n == 0)
        return MIMIC_OK;
    for (int s = 0; s < 2; s++)
        for (int i = 0; i < nvars(h, s); i++) {
            if (!h->bind[s][i].bound)
                return herr(h, MIMIC_ESTATE, "mimic_run: %s '%s' is not bound (mimic_bind every input and output "
                            "before running)", side_name(s), vars(h, s)[i].name);
            int rc = check_layout(h, s, i, n);
            if (rc)
                return rc;
        }
    int rc = reserve(h, n);
    if (rc)
        return rc;
    double t0 = now();
    int nthr = in_parallel() ? 1 : h->opt.num_threads > 0 ? h->opt.num_threads : mimic_get_num_threads();
    /* BLAS inside a chunk on the calling thread gets the threads the split
     * uses: a batch too small to share stays on one thread for BLAS too (a
     * team for a 60-row gemm costs more than the gemm, far more on a busy
     * machine). */
    int64_t per_unused;
    split_batch(h, n, &nthr, &per_unused);
    int prev = push_threads(nthr);
    unsigned any = 0;
    rc = run_all(h, n, nthr, &any);
    pop_threads(prev); /* the host's callbacks run with its own setting */
    if (rc)
        return rc;
    h->last_n = n;

    /* the host's conservation check, on the samples the surrogate kept */
    if (h->resid_fn) {
        int64_t c = 0;
        for (int64_t s = 0; s < n; s++)
            if (!h->flags[s])
                h->idx[c++] = s;
        if (c) {
            mimic_clear_error();
            int ret = h->resid_fn(h->resid_ud, h->idx, c, h->resid);
            if (ret)
                return callback_failed(h, "residual callback", ret);
            for (int64_t k = 0; k < c; k++)
                if (!(fabs(h->resid[k]) <= h->resid_tol))
                    h->flags[h->idx[k]] |= MIMIC_FLAG_RESIDUAL;
        }
    }
    int64_t nflag = 0, per[MIMIC_NUM_FLAGS] = {0};
    for (int64_t s = 0; (any || h->resid_fn) && s < n; s++) {
        unsigned f = h->flags[s];
        if (!f)
            continue;
        h->idx[nflag++] = s;
        for (int k = 0; k < MIMIC_NUM_FLAGS; k++)
            per[k] += (f >> k) & 1;
    }
    double tf = 0;
    if (nflag && h->fb_fn) {
        double t1 = now();
        mimic_clear_error();
        int ret = h->fb_fn(h->fb_ud, h->idx, nflag);
        tf = now() - t1;
        if (ret)
            return callback_failed(h, "fallback", ret);
    } else if (nflag && !h->warned) {
        h->warned = true;
        logf_(h, MIMIC_LOG_WARN, "mimic: %lld of %lld samples flagged (input NaN %lld, range %lld, distance %lld, "
              "output NaN %lld, bounds %lld, residual %lld, spread %lld) and no fallback is set: they keep the "
              "surrogate's outputs (warned once per handle)", (long long)nflag, (long long)n, (long long)per[0],
              (long long)per[1], (long long)per[2], (long long)per[3], (long long)per[4], (long long)per[5],
              (long long)per[6]);
    }
    mimic_stats *st = &h->stats;
    st->calls++;
    st->samples += n;
    int64_t fb = h->fb_fn ? nflag : 0;
    st->fallback += fb;
    st->surrogate += n - fb;
    for (int k = 0; k < MIMIC_NUM_FLAGS; k++)
        st->flagged[k] += per[k];
    st->fallback_seconds += tf;
    st->seconds += now() - t0;
    return MIMIC_OK;
}

int mimic_last_flags(const mimic_handle *h, const uint8_t **flags, int64_t *n)
{
    if (!h)
        return NULL_HANDLE("mimic_last_flags");
    if (!flags || !n)
        return herr(h, MIMIC_EARG, "mimic_last_flags: %s is NULL", flags ? "n" : "flags");
    *flags = h->flags;
    *n = h->last_n;
    return MIMIC_OK;
}

int mimic_get_stats(const mimic_handle *h, mimic_stats *s)
{
    if (!h)
        return NULL_HANDLE("mimic_get_stats");
    if (!s)
        return herr(h, MIMIC_EARG, "mimic_get_stats: s is NULL");
    *s = h->stats;
    return MIMIC_OK;
}

int mimic_reset_stats(mimic_handle *h)
{
    if (!h)
        return NULL_HANDLE("mimic_reset_stats");
    memset(&h->stats, 0, sizeof h->stats);
    return MIMIC_OK;
}
