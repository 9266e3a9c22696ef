/* The neural gas optics (rad_nn.h): two embedding handles per pressure regime
 * (k and Planck fractions) run on a feature buffer this object owns, their
 * outputs bound straight to the caller's tau / planck_frac rows (through a
 * block buffer when a regime's layers are not contiguous); then
 * tau = k col_dry and the fractions clamped and renormalised per band, in
 * place, block by block while the outputs are in cache. Layers that either
 * handle flags (the guard, on the k handle only so it runs once per layer;
 * non-finite outputs, on both) or whose results come out unusable are
 * recomputed by the reference kernel, both tau and fractions, in runs of
 * consecutive layers.
 *
 * The flags reach us through each handle's fallback callback, which only
 * marks the layers: the reference runs after the post-processing, on the
 * caller's rows, so a handle's outputs never need copying back. */
#include "mimic/rad_nn.h"
#include "mimic/guard.h"
#include "mimic/rad_rte.h"

#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

enum { LOWER = 0, UPPER = 1 };
/* Layers per pair of model runs: their outputs (2 x BLOCK x ngpt doubles,
 * 8 MiB for 256 g-points) are finished while still in (L3) cache, and a
 * scattered regime's buffers stay that size. Not smaller: every block costs
 * three fork/joins (two runs and the finishing loop). */
enum { BLOCK = 2048 };

typedef struct nn_regime {
    mimic_handle *k, *pf;   /* "k" [ngpt] and "planck_frac" [ngpt] models */
    int64_t n;              /* layers of the current call in this regime */
    int64_t *idx;           /* [cap] their indices in the caller's arrays, ascending */
    double *x;              /* [cap][NFEAT] their features */
    double *tau, *frac;     /* [out_cap][ngpt]: a block's outputs when the layers are not contiguous */
    int64_t out_cap;        /* rows of tau / frac (at most BLOCK) */
    int64_t base;           /* the block being run: its first index in idx */
    struct mimic_rad_nn *s; /* for the fallback callback */
} nn_regime;

struct mimic_rad_nn {
    const mimic_rad_kdist *kd;
    int nreg;               /* 1, or 2 with the upper pair */
    double p_split;
    nn_regime reg[2];
    uint8_t *mark;          /* [cap]: layer goes to the reference kernel */
    int64_t cap;
    int nthreads;           /* opt.open.num_threads */
    mimic_rad_nn_stats stats;
    char err[640];
};

/* --- errors ------------------------------------------------------------------------ */

/* Keeps the calling thread's current message as the surrogate's last error. */
static int keep(mimic_rad_nn *s, int rc)
{
    if (s && rc < 0)
        snprintf(s->err, sizeof s->err, "%s", mimic_errmsg());
    return rc;
}

/* Re-records the thread's message with a prefix (copied first: same slot). */
static int prefixed(int rc, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static int prefixed(int rc, const char *fmt, ...)
{
    char msg[512], pre[300];
    snprintf(msg, sizeof msg, "%s", mimic_errmsg());
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    return mimic_error(rc < 0 ? rc : MIMIC_EINTERNAL, "%s%s", pre, msg);
}

const char *mimic_rad_nn_last_error(const mimic_rad_nn *s)
{
    return s ? s->err : mimic_errmsg();
}

/* --- open / close -------------------------------------------------------------------- */

static const char *const out_name[2] = {"k", "planck_frac"};
static const char *const out_units[2] = {"cm^2", "1"};
static const char *const model_kind[2] = {"tau", "planck"};

/* The file's contract must be exactly: input "features" [NFEAT] in the
 * feature units, output out_name[which] [ngpt] in out_units[which]. */
static int check_contract(mimic_handle *h, const char *path, int which, const char *regime, int ngpt)
{
    static const char *fn = "mimic_rad_nn_open";
    int nin = 0, nout = 0;
    const char *name, *units;
    int64_t size;
    if (mimic_num_vars(h, MIMIC_INPUT, &nin) || mimic_num_vars(h, MIMIC_OUTPUT, &nout))
        return prefixed(mimic_errcode(), "%s: %s%s model '%s': ", fn, regime, model_kind[which], path);
    if (nin != 1 || mimic_var_info(h, MIMIC_INPUT, 0, &name, &units, &size))
        return mimic_error(MIMIC_EVALUE, "%s: %s%s model '%s' has %d inputs; the contract is one input 'features' "
                           "[%d] with units '%s' (mimic_rad_nn_features)", fn, regime, model_kind[which], path, nin,
                           MIMIC_RAD_NN_NFEAT, MIMIC_RAD_NN_FEATURE_UNITS);
    if (strcmp(name, "features") != 0 || size != MIMIC_RAD_NN_NFEAT || strcmp(units, MIMIC_RAD_NN_FEATURE_UNITS) != 0)
        return mimic_error(MIMIC_EVALUE, "%s: %s%s model '%s': input '%s' [%lld] has units '%s'; the contract is "
                           "'features' [%d] with units '%s' (a model trained on another feature definition?)", fn,
                           regime, model_kind[which], path, name, (long long)size, units, MIMIC_RAD_NN_NFEAT,
                           MIMIC_RAD_NN_FEATURE_UNITS);
    if (nout != 1 || mimic_var_info(h, MIMIC_OUTPUT, 0, &name, &units, &size))
        return mimic_error(MIMIC_EVALUE, "%s: %s%s model '%s' has %d outputs; the contract is one output '%s' [%d] "
                           "with units '%s'", fn, regime, model_kind[which], path, nout, out_name[which], ngpt,
                           out_units[which]);
    if (strcmp(name, out_name[which]) != 0)
        return mimic_error(MIMIC_EVALUE, "%s: %s%s model '%s' has output '%s'; the contract is '%s' [%d] with units "
                           "'%s'%s", fn, regime, model_kind[which], path, name, out_name[which], ngpt, out_units[which],
                           strcmp(name, out_name[!which]) == 0 ? " (tau and planck files swapped?)" : "");
    if (size != ngpt)
        return mimic_error(MIMIC_EVALUE, "%s: %s%s model '%s': output '%s' has %lld features but the "
                           "k-distribution has %d g-points", fn, regime, model_kind[which], path, name,
                           (long long)size, ngpt);
    if (strcmp(units, out_units[which]) != 0)
        return mimic_error(MIMIC_EVALUE, "%s: %s%s model '%s': output '%s' has units '%s', expected '%s'%s", fn,
                           regime, model_kind[which], path, name, units, out_units[which],
                           which == 0 ? " (optical depth per dry-air molecule: tau / col_dry)" : "");
    return MIMIC_OK;
}

static int mark_layers(void *ud, const int64_t *idx, int64_t count)
{
    nn_regime *r = ud;
    for (int64_t i = 0; i < count; i++)
        r->s->mark[r->idx[r->base + idx[i]]] = 1;
    return 0;
}

static int open_regime(mimic_rad_nn *s, int which_reg, const char *tau_path, const char *pf_path,
                       const char *guard_path, const mimic_options *mo)
{
    static const char *fn = "mimic_rad_nn_open";
    const char *regime = s->nreg == 1 ? "" : which_reg == UPPER ? "upper " : "lower ";
    nn_regime *r = &s->reg[which_reg];
    r->s = s;
    const char *paths[2] = {tau_path, pf_path};
    mimic_handle **hs[2] = {&r->k, &r->pf};
    for (int w = 0; w < 2; w++) {
        int rc = mimic_open(paths[w], mo, hs[w]);
        if (rc)
            return prefixed(rc, "%s: %s%s model: ", fn, regime, model_kind[w]);
        rc = check_contract(*hs[w], paths[w], w, regime, s->kd->ngpt);
        if (!rc)
            rc = mimic_set_fallback(*hs[w], mark_layers, r);
        if (rc)
            return rc;
    }
    if (guard_path) {
        mimic_guard *g = mimic_guard_load(guard_path);
        if (!g)
            return prefixed(mimic_errcode(), "%s: %sguard '%s': ", fn, regime, guard_path);
        int rc = mimic_set_guard(r->k, g);
        mimic_guard_free(g);
        if (rc)
            return prefixed(rc, "%s: %sguard '%s': ", fn, regime, guard_path);
    }
    return MIMIC_OK;
}

int mimic_rad_nn_open(const mimic_rad_nn_options *o, const mimic_rad_kdist *kd, mimic_rad_nn **out)
{
    static const char *fn = "mimic_rad_nn_open";
    if (!out)
        return mimic_error(MIMIC_EARG, "%s: out is NULL", fn);
    *out = NULL;
    if (!o || !kd)
        return mimic_error(MIMIC_EARG, "%s: %s is NULL", fn, o ? "the k-distribution" : "the options");
    if (!o->tau_path || !o->planck_path)
        return mimic_error(MIMIC_EARG, "%s: tau_path and planck_path are required (%s is NULL)", fn,
                           o->tau_path ? "planck_path" : "tau_path");
    int upper = o->tau_upper_path || o->planck_upper_path;
    if (upper && (!o->tau_upper_path || !o->planck_upper_path))
        return mimic_error(MIMIC_EARG, "%s: the upper pair needs both tau_upper_path and planck_upper_path "
                           "(%s is NULL)", fn, o->tau_upper_path ? "planck_upper_path" : "tau_upper_path");
    if (upper && !(o->p_split > 0 && isfinite(o->p_split)))
        return mimic_error(MIMIC_EARG, "%s: p_split = %g Pa: with the upper pair it must be finite and > 0 "
                           "(the k-distribution's is %g)", fn, o->p_split, kd->p_split);
    if (!upper && o->guard_upper_path)
        return mimic_error(MIMIC_EARG, "%s: guard_upper_path is given without the upper pair (tau_upper_path, "
                           "planck_upper_path)", fn);
    if (kd->ngpt < 1 || kd->ngb < 1 || kd->nband * kd->ngb != kd->ngpt)
        return mimic_error(MIMIC_EARG, "%s: the k-distribution has ngpt %d, nband %d, ngb %d (ngpt must be "
                           "nband x ngb)", fn, kd->ngpt, kd->nband, kd->ngb);
    mimic_rad_nn *s = mimic_calloc(1, sizeof *s);
    if (!s)
        return MIMIC_ENOMEM;
    s->kd = kd;
    s->nreg = upper ? 2 : 1;
    s->p_split = upper ? o->p_split : 0;
    s->nthreads = o->open.num_threads;
    int rc = open_regime(s, LOWER, o->tau_path, o->planck_path, o->guard_path, &o->open);
    if (!rc && upper)
        rc = open_regime(s, UPPER, o->tau_upper_path, o->planck_upper_path, o->guard_upper_path, &o->open);
    if (rc) {
        char msg[640];
        snprintf(msg, sizeof msg, "%s", mimic_errmsg()); /* closing may touch the error slot */
        mimic_rad_nn_close(&s);
        return mimic_error(rc, "%s", msg);
    }
    *out = s;
    return MIMIC_OK;
}

void mimic_rad_nn_close(mimic_rad_nn **ps)
{
    if (!ps || !*ps)
        return;
    mimic_rad_nn *s = *ps;
    for (int r = 0; r < 2; r++) {
        mimic_close(&s->reg[r].k);
        mimic_close(&s->reg[r].pf);
        mimic_free(s->reg[r].idx);
        mimic_free(s->reg[r].x);
        mimic_free(s->reg[r].tau);
        mimic_free(s->reg[r].frac);
    }
    mimic_free(s->mark);
    mimic_free(s);
    *ps = NULL;
}

/* --- running ------------------------------------------------------------------------- */

/* Per-layer buffers for n layers (grown, never shrunk). */
static int reserve(mimic_rad_nn *s, int64_t n)
{
    if (n <= s->cap)
        return MIMIC_OK;
    uint8_t *m = mimic_realloc(s->mark, (size_t)n);
    if (!m)
        return MIMIC_ENOMEM;
    s->mark = m;
    for (int r = 0; r < s->nreg; r++) {
        int64_t *i = mimic_realloc(s->reg[r].idx, (size_t)n * sizeof *i);
        if (!i)
            return MIMIC_ENOMEM;
        s->reg[r].idx = i;
        double *x = mimic_realloc(s->reg[r].x, (size_t)n * MIMIC_RAD_NN_NFEAT * sizeof *x);
        if (!x)
            return MIMIC_ENOMEM;
        s->reg[r].x = x;
    }
    s->cap = n;
    return MIMIC_OK;
}

/* Output rows for a regime whose layers are scattered. */
static int reserve_out(nn_regime *r, int64_t n, int ngpt)
{
    if (n <= r->out_cap)
        return MIMIC_OK;
    size_t bytes = (size_t)n * (size_t)ngpt * sizeof(double);
    double *t = mimic_realloc(r->tau, bytes);
    if (!t)
        return MIMIC_ENOMEM;
    r->tau = t;
    double *f = mimic_realloc(r->frac, bytes);
    if (!f)
        return MIMIC_ENOMEM;
    r->frac = f;
    r->out_cap = n;
    return MIMIC_OK;
}

/* The reference kernel's input checks, with the same messages' content. */
static int check_layers(const mimic_rad_layer *lay, int64_t nlay)
{
    static const char *fn = "mimic_rad_nn_optics";
    for (int64_t l = 0; l < nlay; l++) {
        const mimic_rad_layer *L = lay + l;
        if (!(L->p > 0) || !isfinite(L->p) || !(L->t > 0) || !isfinite(L->t))
            return mimic_error(MIMIC_EVALUE, "%s: layer %lld has p = %g Pa, T = %g K; both must be finite and > 0",
                               fn, (long long)l, L->p, L->t);
        if (!(L->col_dry >= 0) || !isfinite(L->col_dry))
            return mimic_error(MIMIC_EVALUE, "%s: layer %lld has col_dry = %g; it must be finite and >= 0 "
                               "(molecules cm^-2)", fn, (long long)l, L->col_dry);
        for (int g = 0; g < MIMIC_NGAS; g++)
            if (!(L->vmr[g] >= 0) || !isfinite(L->vmr[g]))
                return mimic_error(MIMIC_EVALUE, "%s: layer %lld: vmr of %s is %g; mixing ratios must be finite "
                                   "and >= 0", fn, (long long)l, mimic_rad_gas_name((mimic_rad_gas)g), L->vmr[g]);
    }
    return MIMIC_OK;
}

static int bind_rows(mimic_handle *h, int which, const char *name, double *data, int64_t size)
{
    mimic_array a = {data, MIMIC_F64, size, size, 1};
    return mimic_bind(h, which, name, NULL, &a);
}

/* tau = k col_dry (k clamped at 0), fractions clamped at 0 and renormalised
 * per band; returns nonzero when the layer's results are unusable (a
 * non-finite tau, a band whose fractions sum to 0 or overflow). Written
 * branch-free (max as a select, OR-reduced checks) so the loops vectorise. */
static int finish_layer(const mimic_rad_kdist *kd, double col_dry, double *restrict tau, double *restrict frac)
{
    unsigned bad = 0;
    const int ngpt = kd->ngpt, ngb = kd->ngb;
#pragma omp simd reduction(| : bad)
    for (int g = 0; g < ngpt; g++) {
        double k = tau[g];
        double t = (k > 0 ? k : 0) * col_dry; /* NaN k (already flagged) -> 0 */
        bad |= !(t <= DBL_MAX);
        tau[g] = t;
    }
    for (int b = 0; b < kd->nband; b++) {
        double *restrict f = frac + b * ngb, sum = 0;
#pragma omp simd reduction(+ : sum)
        for (int g = 0; g < ngb; g++) {
            double v = f[g] > 0 ? f[g] : 0;
            f[g] = v;
            sum += v;
        }
        if (!(sum > 0 && sum <= DBL_MAX)) {
            bad = 1;
            continue;
        }
        double inv = 1 / sum;
#pragma omp simd
        for (int g = 0; g < ngb; g++)
            f[g] *= inv;
    }
    return bad != 0;
}

/* Runs regime r's two models on its r->n layers, BLOCK layers at a time so
 * that the models' outputs are still in cache when they are finished: the
 * outputs land in the caller's rows (the regime's layers are contiguous) or
 * in r's buffers and are copied; then finish_layer on every layer no handle
 * flagged. */
static int run_regime(mimic_rad_nn *s, nn_regime *r, const mimic_rad_layer *lay, double *tau, double *frac,
                      const char *regime, int nt)
{
    static const char *fn = "mimic_rad_nn_optics";
    const int ngpt = s->kd->ngpt;
    const int64_t n = r->n, first = r->idx[0], *idx = r->idx;
    const int contiguous = idx[n - 1] - first + 1 == n;
    if (!contiguous) {
        int rc = reserve_out(r, n < BLOCK ? n : BLOCK, ngpt);
        if (rc)
            return rc;
    }
    mimic_handle *hs[2] = {r->k, r->pf};
    uint8_t *mark = s->mark;
    for (int64_t i0 = 0; i0 < n; i0 += BLOCK) {
        int64_t m = n - i0 < BLOCK ? n - i0 : BLOCK;
        double *outs[2] = {contiguous ? tau + (first + i0) * ngpt : r->tau,
                           contiguous ? frac + (first + i0) * ngpt : r->frac};
        for (int w = 0; w < 2; w++) {
            int rc = bind_rows(hs[w], MIMIC_INPUT, "features", r->x + i0 * MIMIC_RAD_NN_NFEAT, MIMIC_RAD_NN_NFEAT);
            if (!rc)
                rc = bind_rows(hs[w], MIMIC_OUTPUT, out_name[w], outs[w], ngpt);
            if (!rc) {
                r->base = i0;
                rc = mimic_run(hs[w], m);
            }
            if (rc)
                return prefixed(rc, "%s: %s%s model: ", fn, regime, model_kind[w]);
        }
        if (!contiguous)
            for (int64_t i = 0; i < m; i++) {
                memcpy(tau + idx[i0 + i] * ngpt, outs[0] + i * ngpt, (size_t)ngpt * sizeof(double));
                memcpy(frac + idx[i0 + i] * ngpt, outs[1] + i * ngpt, (size_t)ngpt * sizeof(double));
            }
        const mimic_rad_kdist *kd = s->kd;
#pragma omp parallel for schedule(static) num_threads(nt) if (m >= 512 && nt > 1)
        for (int64_t i = i0; i < i0 + m; i++) {
            int64_t l = idx[i];
            if (!mark[l] && finish_layer(kd, lay[l].col_dry, tau + l * ngpt, frac + l * ngpt))
                mark[l] = 1;
        }
    }
    return MIMIC_OK;
}

int mimic_rad_nn_optics(mimic_rad_nn *s, const mimic_rad_layer *lay, int64_t nlay, double *tau, double *planck_frac)
{
    static const char *fn = "mimic_rad_nn_optics";
    if (!s)
        return mimic_error(MIMIC_EARG, "%s: the surrogate is NULL (closed, or the open failed)", fn);
    if (nlay < 0)
        return keep(s, mimic_error(MIMIC_EARG, "%s: nlay must be >= 0 (got %lld)", fn, (long long)nlay));
    if (nlay == 0)
        return MIMIC_OK;
    if (!lay || !tau || !planck_frac)
        return keep(s, mimic_error(MIMIC_EARG, "%s: lay, tau and planck_frac must not be NULL", fn));
    int rc = check_layers(lay, nlay);
    if (!rc)
        rc = reserve(s, nlay);
    if (rc)
        return keep(s, rc);
    const mimic_rad_kdist *kd = s->kd;
    const int64_t ngpt = kd->ngpt;
    const int nt = s->nthreads > 0 ? s->nthreads : mimic_get_num_threads();

    /* the regimes' index lists and features, in the caller's order */
    s->reg[LOWER].n = s->reg[UPPER].n = 0;
    for (int64_t l = 0; l < nlay; l++) {
        nn_regime *r = &s->reg[s->nreg == 2 && lay[l].p < s->p_split ? UPPER : LOWER];
        r->idx[r->n++] = l;
    }
    for (int q = 0; q < s->nreg; q++) {
        nn_regime *r = &s->reg[q];
        int64_t n = r->n;
        const int64_t *idx = r->idx;
        double *x = r->x;
#pragma omp parallel for schedule(static) num_threads(nt) if (n >= 1024 && nt > 1)
        for (int64_t i = 0; i < n; i++)
            mimic_rad_nn_features(lay + idx[i], 1, x + i * MIMIC_RAD_NN_NFEAT);
    }
    memset(s->mark, 0, (size_t)nlay);
    for (int q = 0; q < s->nreg && !rc; q++)
        if (s->reg[q].n > 0)
            rc = run_regime(s, &s->reg[q], lay, tau, planck_frac,
                            s->nreg == 1 ? "" : q == UPPER ? "upper " : "lower ", nt);
    if (rc)
        return keep(s, rc);
    const uint8_t *mark = s->mark;

    /* the reference kernel on runs of consecutive marked layers */
    int64_t nfb = 0;
    for (int64_t l = 0; l < nlay;) {
        if (!mark[l]) {
            l++;
            continue;
        }
        int64_t e = l + 1;
        while (e < nlay && mark[e])
            e++;
        rc = mimic_rad_gas_optics(kd, lay + l, e - l, tau + l * ngpt, planck_frac + l * ngpt);
        if (rc)
            return keep(s, prefixed(rc, "%s: the reference kernel (fallback for layers %lld..%lld): ", fn,
                                    (long long)l, (long long)(e - 1)));
        nfb += e - l;
        l = e;
    }
    s->stats.layers += nlay;
    s->stats.fallback += nfb;
    return MIMIC_OK;
}

void mimic_rad_nn_get_stats(const mimic_rad_nn *s, mimic_rad_nn_stats *st)
{
    if (!st)
        return;
    if (!s) {
        st->layers = st->fallback = 0;
        return;
    }
    *st = s->stats;
}

static int optics_cb(void *ud, const mimic_rad_layer *lay, int nlay, double *tau, double *planck_frac)
{
    return mimic_rad_nn_optics(ud, lay, nlay, tau, planck_frac);
}

void mimic_rad_nn_optics_fn(mimic_rad_nn *s, struct mimic_rad_optics *opt)
{
    opt->ngpt = s->kd->ngpt;
    opt->nu1 = s->kd->nu1;
    opt->nu2 = s->kd->nu2;
    opt->weight = NULL;
    opt->fn = optics_cb;
    opt->ud = s;
}
