/* The a-posteriori test of the neural gas optics (issue #9): a single-column
 * radiative-convective equilibrium (rad_rce.h) run to equilibrium once with
 * the reference kernel (rad_kdist.h) and once with the guarded surrogate
 * (rad_nn.h, through the embedding API), from the same initial state with the
 * same time step and tolerance; target: equilibrium temperatures within 0.5 K
 * below 10 hPa (docs/radiation-surrogate.md).
 *
 *   rad_rce_hybrid [--kdist PATH] [--tau PATH --planck PATH [--guard PATH]]
 *                  [--tau-upper PATH --planck-upper PATH [--guard-upper PATH] [--p-split PA]]
 *                  [--co2 PPM ...] [--warm W] [--site N] [--rfmip DIR] [--out DIR]
 *                  [--dt DAYS] [--tol K_PER_DAY] [--max-steps N] [--precision stored|f32|f64]
 *                  [--threads N] [--quick] [--check-target]
 *
 * Without --tau the second run uses the reference kernel too: a self-check of
 * the host, whose temperatures must then be identical bit for bit (exit 1
 * otherwise). Column: the warmest RFMIP present-day site within 20 degrees of
 * the equator (as scripts/rad_rce.lua), its 60 layers on fixed pressure
 * levels, its ozone profile and the present-day global means of the other
 * gases; water vapour at fixed relative humidity; everything else the
 * rad_rce.h defaults (solar 170 W m^-2 at the surface, 70 in the atmosphere,
 * 6.5 K/km convective adjustment). Climates: each --co2 value (default: the
 * RFMIP present-day and 4xCO2 concentrations) and one warmer climate (the
 * first CO2 with --warm W m^-2 more solar at the surface; default 60, 0 = none).
 *
 * Writes DIR/rce.md, DIR/rce_profiles.dat (one gnuplot index per climate) and,
 * when gnuplot is installed, DIR/rce.gp and DIR/rce.png. Exit status: 0, 1 on
 * any error (message on stderr), 3 with --check-target when a climate misses
 * the 0.5 K target or a run does not converge.
 *
 * Built and run by `make rce-hybrid` (the shipped models/rad_lw_*.h5, report
 * in build/rce-hybrid/; RCE_TAU=, RCE_PLANCK=, RCE_GUARD=, RCE_OUT= override).
 * Defaults: dt 20 days, tol 1e-4 K/day, <= 5000 steps (~10 s for the three
 * default climates); --quick: tol 1e-2 K/day, <= 300 steps (~3-5 s). One
 * thread by default: a column is 60 layers, too few for a thread team. */
#include "mimic/data.h"
#include "mimic/rad_kdist.h"
#include "mimic/rad_nn.h"
#include "mimic/rad_rce.h"
#include "mimic/rad_rte.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PROG "rad_rce_hybrid"
#define MAX_CLIMATES 8
#define TARGET_K 0.5      /* |dT| target below P_TARGET */
#define P_TARGET 1000.0   /* Pa: 10 hPa */

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, PROG ": ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    return 1;
}

/* --- options -------------------------------------------------------------------- */

typedef struct options {
    const char *kdist, *rfmip, *out;
    const char *tau, *planck, *guard, *tau_upper, *planck_upper, *guard_upper;
    double p_split;           /* Pa; 0: the k-distribution's */
    double co2_ppm[MAX_CLIMATES];
    int nco2;
    double warm;              /* W m^-2 extra surface solar of the warm climate; 0 = none */
    int site;                 /* 1-based; 0: the warmest tropical one */
    double dt_days, tol;
    int64_t max_steps;
    int precision, threads, quick, check_target;
} options;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: " PROG " [--kdist PATH] [--tau PATH --planck PATH [--guard PATH]]\n"
            "         [--tau-upper PATH --planck-upper PATH [--guard-upper PATH] [--p-split PA]]\n"
            "         [--co2 PPM ...] [--warm W] [--site N] [--rfmip DIR] [--out DIR]\n"
            "         [--dt DAYS] [--tol K_PER_DAY] [--max-steps N] [--precision stored|f32|f64]\n"
            "         [--threads N] [--quick] [--check-target]\n"
            "  RCE with the reference kernel, then with the surrogate (--tau/--planck; without them\n"
            "  the reference kernel again, a self-check that must give dT == 0 exactly).\n"
            "  defaults: --kdist $MIMIC_KDIST or data/kdist/mimic-lw-kdist.h5, --rfmip $MIMIC_RFMIP_DIR\n"
            "  or data/rfmip, --out build/rce-hybrid, --co2: RFMIP present day and 4xCO2, --warm 60,\n"
            "  --dt 20 --tol 1e-4 --max-steps 5000 (--quick: --tol 1e-2 --max-steps 300), --threads 1\n");
}

static int parse_num(const char *opt, const char *s, double *v)
{
    char *end;
    errno = 0;
    double x = s ? strtod(s, &end) : 0;
    if (!s || end == s || *end || errno || !isfinite(x))
        return fail("%s needs a number, got '%s' (see --help)", opt, s ? s : "(nothing)");
    *v = x;
    return 0;
}

static int parse_args(int argc, char **argv, options *o)
{
    memset(o, 0, sizeof *o);
    o->kdist = getenv("MIMIC_KDIST") ? getenv("MIMIC_KDIST") : "data/kdist/mimic-lw-kdist.h5";
    o->rfmip = getenv("MIMIC_RFMIP_DIR") ? getenv("MIMIC_RFMIP_DIR") : "data/rfmip";
    o->out = "build/rce-hybrid";
    o->warm = 60;
    o->dt_days = 20;
    o->tol = -1;
    o->max_steps = -1;
    o->threads = 1;
    o->precision = MIMIC_PRECISION_STORED;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        double x;
        const char **path = NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            exit(0);
        } else if (!strcmp(a, "--quick")) {
            o->quick = 1;
            continue;
        } else if (!strcmp(a, "--check-target")) {
            o->check_target = 1;
            continue;
        } else if (!strcmp(a, "--co2")) {
            int n = 0;
            while (i + 1 < argc && strncmp(argv[i + 1], "--", 2)) {
                if (n == MAX_CLIMATES - 1)
                    return fail("--co2: at most %d values", MAX_CLIMATES - 1);
                if (parse_num("--co2", argv[++i], &x))
                    return 1;
                if (!(x > 0 && x < 1e6))
                    return fail("--co2: %g ppm is out of range (0, 1e6)", x);
                o->co2_ppm[n++] = x;
            }
            if (!n)
                return fail("--co2 needs at least one value in ppm, e.g. --co2 400 1600");
            o->nco2 = n;
            continue;
        }
        if (!strcmp(a, "--kdist"))
            path = &o->kdist;
        else if (!strcmp(a, "--rfmip"))
            path = &o->rfmip;
        else if (!strcmp(a, "--out"))
            path = &o->out;
        else if (!strcmp(a, "--tau"))
            path = &o->tau;
        else if (!strcmp(a, "--planck"))
            path = &o->planck;
        else if (!strcmp(a, "--guard"))
            path = &o->guard;
        else if (!strcmp(a, "--tau-upper"))
            path = &o->tau_upper;
        else if (!strcmp(a, "--planck-upper"))
            path = &o->planck_upper;
        else if (!strcmp(a, "--guard-upper"))
            path = &o->guard_upper;
        if (path) {
            if (!v || !*v)
                return fail("%s needs a value (see --help)", a);
            *path = v;
            i++;
            continue;
        }
        if (!strcmp(a, "--precision")) {
            if (!v)
                return fail("--precision needs stored, f32 or f64");
            if (!strcmp(v, "stored"))
                o->precision = MIMIC_PRECISION_STORED;
            else if (!strcmp(v, "f32"))
                o->precision = MIMIC_PRECISION_F32;
            else if (!strcmp(v, "f64"))
                o->precision = MIMIC_PRECISION_F64;
            else
                return fail("--precision must be stored, f32 or f64, got '%s'", v);
            i++;
            continue;
        }
        if (!strcmp(a, "--p-split") || !strcmp(a, "--warm") || !strcmp(a, "--site") || !strcmp(a, "--dt") ||
            !strcmp(a, "--tol") || !strcmp(a, "--max-steps") || !strcmp(a, "--threads")) {
            if (parse_num(a, v, &x))
                return 1;
            i++;
            if (!strcmp(a, "--p-split")) {
                if (!(x > 0))
                    return fail("--p-split must be > 0 Pa, got %g", x);
                o->p_split = x;
            } else if (!strcmp(a, "--warm")) {
                if (!(x >= 0 && x <= 500))
                    return fail("--warm must be in [0, 500] W m^-2, got %g", x);
                o->warm = x;
            } else if (!strcmp(a, "--dt")) {
                if (!(x > 0 && x <= 1000))
                    return fail("--dt must be in (0, 1000] days, got %g", x);
                o->dt_days = x;
            } else if (!strcmp(a, "--tol")) {
                if (!(x > 0))
                    return fail("--tol must be > 0 K/day, got %g", x);
                o->tol = x;
            } else {
                if (x != floor(x) || x < 1 || x > 1e9)
                    return fail("%s must be a positive integer, got %s", a, v);
                if (!strcmp(a, "--site"))
                    o->site = (int)x;
                else if (!strcmp(a, "--max-steps"))
                    o->max_steps = (int64_t)x;
                else
                    o->threads = (int)x;
            }
            continue;
        }
        usage(stderr);
        return fail("unknown argument '%s'", a);
    }
    if (!o->tau != !o->planck)
        return fail("--tau and --planck go together (the surrogate is a tau model and a Planck-fraction model)");
    if (!o->tau_upper != !o->planck_upper)
        return fail("--tau-upper and --planck-upper go together");
    if (o->tau_upper && !o->tau)
        return fail("--tau-upper needs --tau and --planck (the lower pair)");
    if (!o->tau && (o->guard || o->guard_upper))
        return fail("--guard needs --tau and --planck");
    if (o->guard_upper && !o->tau_upper)
        return fail("--guard-upper needs --tau-upper and --planck-upper");
    if (o->tol < 0)
        o->tol = o->quick ? 1e-2 : 1e-4;
    if (o->max_steps < 0)
        o->max_steps = o->quick ? 300 : 5000;
    return 0;
}

/* --- the column from RFMIP ---------------------------------------------------------- */

#define RFMIP_INPUT "multiple_input4MIPs_radiation_RFMIP_UColorado-RFMIP-1-2_none.nc"
#define NEXP 18

/* rad_atmos.h gas -> RFMIP variable (as lua/mimic/rfmip.lua); h2o and o3 are
 * profiles [expt, site, layer], the others global means [expt]. */
static const char *const gas_var[MIMIC_NGAS] = {
    [MIMIC_GAS_H2O] = "water_vapor",       [MIMIC_GAS_CO2] = "carbon_dioxide_GM",
    [MIMIC_GAS_O3] = "ozone",              [MIMIC_GAS_CH4] = "methane_GM",
    [MIMIC_GAS_N2O] = "nitrous_oxide_GM",  [MIMIC_GAS_CO] = "carbon_monoxide_GM",
    [MIMIC_GAS_O2] = "oxygen_GM",          [MIMIC_GAS_N2] = "nitrogen_GM",
    [MIMIC_GAS_CCL4] = "carbon_tetrachloride_GM", [MIMIC_GAS_CFC11] = "cfc11_GM",
    [MIMIC_GAS_CFC12] = "cfc12_GM",        [MIMIC_GAS_HCFC22] = "hcfc22_GM",
    [MIMIC_GAS_HFC143A] = "hfc143a_GM",    [MIMIC_GAS_HFC125] = "hfc125_GM",
    [MIMIC_GAS_HFC23] = "hfc23_GM",        [MIMIC_GAS_HFC32] = "hfc32_GM",
    [MIMIC_GAS_HFC134A] = "hfc134a_GM",    [MIMIC_GAS_CF4] = "cf4_GM",
};

typedef struct column {
    int site, nlay; /* site 1-based */
    double lat, t_sfc_rfmip;
    double *p_lev, *p_lay, *t_lay, *vmr; /* [nlay+1], [nlay], [nlay], [nlay][MIMIC_NGAS] */
    double co2_pd, co2_4x;               /* mol/mol, RFMIP experiments 1 and 3 */
} column;

static void column_free(column *c)
{
    free(c->p_lev);
    free(c->p_lay);
    free(c->t_lay);
    free(c->vmr);
    memset(c, 0, sizeof *c);
}

static mimic_tensor *read_f64(mimic_h5 *f, const char *path, const char *name, int ndim, int exp0)
{
    mimic_h5_read_opts ro = {.dtype = MIMIC_F64, .check_ndim = 1, .ndim = ndim, .finite = 1};
    if (exp0 >= 0) {
        ro.rows = 1;
        ro.start = exp0;
        ro.count = 1;
    }
    mimic_tensor *t = mimic_h5_read(f, name, &ro);
    if (!t)
        fail("%s: reading '%s': %s", path, name, mimic_errmsg());
    return t;
}

/* The "units" attribute as a factor ("1.e-6" -> 1e-6). */
static int units_factor(mimic_h5 *f, const char *path, const char *var, double *k)
{
    mimic_h5_attr a;
    if (mimic_h5_get_attr(f, var, "units", &a) != MIMIC_OK)
        return fail("%s: units of '%s': %s", path, var, mimic_errmsg());
    char *end = NULL;
    double x = a.kind == MIMIC_H5_ATTR_STRING ? strtod(a.str, &end) : NAN;
    int ok = a.kind == MIMIC_H5_ATTR_STRING && end != a.str && isfinite(x) && x > 0;
    if (!ok)
        fail("%s: units of '%s' are '%s', expected a number like \"1.e-6\"", path, var,
             a.kind == MIMIC_H5_ATTR_STRING ? a.str : "(not a string)");
    if (a.kind == MIMIC_H5_ATTR_STRING)
        mimic_free(a.str);
    *k = x;
    return !ok;
}

static int load_column(const char *dir, int site_opt, column *c)
{
    memset(c, 0, sizeof *c);
    char path[4096];
    if (snprintf(path, sizeof path, "%s/%s", dir, RFMIP_INPUT) >= (int)sizeof path)
        return fail("--rfmip path too long");
    mimic_h5 *f = mimic_h5_open(path);
    if (!f)
        return fail("%s (set --rfmip or MIMIC_RFMIP_DIR to the folder with the RFMIP files)", mimic_errmsg());
    int rc = 1;
    mimic_tensor *plev = NULL, *play = NULL, *tlay = NULL, *tsfc = NULL, *lat = NULL, *prof = NULL, *gm = NULL;
    if (!(plev = read_f64(f, path, "pres_level", 2, -1)) || !(play = read_f64(f, path, "pres_layer", 2, -1)) ||
        !(tlay = read_f64(f, path, "temp_layer", 3, 0)) || !(tsfc = read_f64(f, path, "surface_temperature", 2, 0)) ||
        !(lat = read_f64(f, path, "lat", 1, -1)))
        goto done;
    int nsite = (int)play->shape[0], nlay = (int)play->shape[1];
    if (plev->shape[0] != nsite || plev->shape[1] != nlay + 1 || tlay->shape[1] != nsite ||
        tlay->shape[2] != nlay || tsfc->shape[1] != nsite || lat->shape[0] != nsite || nlay < 2) {
        fail("%s: inconsistent shapes (pres_layer [%d, %d])", path, nsite, nlay);
        goto done;
    }
    const double *pl = mimic_data(plev), *pm = mimic_data(play), *tl = mimic_data(tlay), *ts = mimic_data(tsfc),
                 *la = mimic_data(lat);
    int s = site_opt - 1;
    if (site_opt == 0) {
        for (int i = 0; i < nsite; i++)
            if (fabs(la[i]) < 20 && (s < 0 || ts[i] > ts[s]))
                s = i;
        if (s < 0) {
            fail("%s: no site within 20 degrees of the equator; pick one with --site", path);
            goto done;
        }
    } else if (s >= nsite) {
        fail("--site %d: the file has %d sites", site_opt, nsite);
        goto done;
    }
    c->site = s + 1;
    c->nlay = nlay;
    c->lat = la[s];
    c->t_sfc_rfmip = ts[s];
    c->p_lev = malloc((size_t)(nlay + 1) * sizeof *c->p_lev);
    c->p_lay = malloc((size_t)nlay * sizeof *c->p_lay);
    c->t_lay = malloc((size_t)nlay * sizeof *c->t_lay);
    c->vmr = calloc((size_t)nlay * MIMIC_NGAS, sizeof *c->vmr);
    if (!c->p_lev || !c->p_lay || !c->t_lay || !c->vmr) {
        fail("out of memory");
        goto done;
    }
    for (int l = 0; l <= nlay; l++)
        c->p_lev[l] = pl[(size_t)s * (nlay + 1) + l];
    for (int l = 0; l < nlay; l++) {
        c->p_lay[l] = pm[(size_t)s * nlay + l];
        c->t_lay[l] = tl[(size_t)s * nlay + l];
        if (!(c->p_lev[l + 1] > c->p_lev[l])) {
            fail("%s: pres_level of site %d does not increase at level %d; expected the top first", path, s + 1, l + 1);
            goto done;
        }
    }
    for (int g = 0; g < MIMIC_NGAS; g++) {
        double k = 1;
        if (units_factor(f, path, gas_var[g], &k))
            goto done;
        if (g == MIMIC_GAS_H2O || g == MIMIC_GAS_O3) {
            if (!(prof = read_f64(f, path, gas_var[g], 3, 0)))
                goto done;
            if (prof->shape[1] != nsite || prof->shape[2] != nlay) {
                fail("%s: '%s' has the wrong shape", path, gas_var[g]);
                goto done;
            }
            const double *v = mimic_data(prof);
            for (int l = 0; l < nlay; l++)
                c->vmr[(size_t)l * MIMIC_NGAS + g] = v[(size_t)s * nlay + l] * k;
            mimic_tensor_free(prof);
            prof = NULL;
        } else {
            if (!(gm = read_f64(f, path, gas_var[g], 1, -1)))
                goto done;
            if (gm->shape[0] != NEXP) {
                fail("%s: '%s' has %lld experiments, expected %d", path, gas_var[g], (long long)gm->shape[0], NEXP);
                goto done;
            }
            const double *v = mimic_data(gm);
            for (int l = 0; l < nlay; l++)
                c->vmr[(size_t)l * MIMIC_NGAS + g] = v[0] * k; /* experiment 1: present day */
            if (g == MIMIC_GAS_CO2) {
                c->co2_pd = v[0] * k;
                c->co2_4x = v[2] * k; /* experiment 3: 4xCO2 */
            }
            mimic_tensor_free(gm);
            gm = NULL;
        }
    }
    rc = 0;
done:
    mimic_tensor_free(plev);
    mimic_tensor_free(play);
    mimic_tensor_free(tlay);
    mimic_tensor_free(tsfc);
    mimic_tensor_free(lat);
    mimic_tensor_free(prof);
    mimic_tensor_free(gm);
    mimic_h5_close(f);
    if (rc)
        column_free(c);
    return rc;
}

/* --- optics with a stopwatch ------------------------------------------------------ */

typedef struct timed_optics {
    mimic_rad_optics inner;
    double secs;
    int64_t calls;
} timed_optics;

static int timed_fn(void *ud, const mimic_rad_layer *lay, int nlay, double *tau, double *pf)
{
    timed_optics *t = ud;
    double t0 = now();
    int rc = t->inner.fn(t->inner.ud, lay, nlay, tau, pf);
    t->secs += now() - t0;
    t->calls++;
    return rc;
}

static mimic_rad_optics timed(timed_optics *t)
{
    mimic_rad_optics o = t->inner;
    o.fn = timed_fn;
    o.ud = t;
    return o;
}

/* --- one run ------------------------------------------------------------------------- */

typedef struct climate {
    char name[64];
    double co2;               /* mol/mol */
    double solar_sfc;         /* W m^-2 */
} climate;

typedef struct run_result {
    int converged;
    int64_t steps, nn_layers, nn_fallback;
    double wall, optics_secs, olr, t_sfc, toa, sfc, max_tend, conv_top_p, cold_t, cold_p;
    double *t_lay, *lw, *solar, *tend; /* [nlay] */
    int *conv;
} run_result;

static void result_free(run_result *r)
{
    free(r->t_lay);
    free(r->lw);
    free(r->solar);
    free(r->tend);
    free(r->conv);
    memset(r, 0, sizeof *r);
}

typedef struct progress {
    const char *label;
    double t0, tol, last_tend;
    int64_t last_step, every;
} progress;

/* Prints every `every` steps, with an ETA from the decay rate of the maximum
 * tendency over the last interval (the approach to equilibrium is close to
 * exponential once the convective region has settled). */
static int progress_fn(void *ud, const mimic_rad_rce *s)
{
    progress *p = ud;
    if (s->steps % p->every && !s->converged)
        return 0;
    double el = now() - p->t0;
    char eta[64] = "";
    if (s->converged) {
        snprintf(eta, sizeof eta, "converged");
    } else if (p->last_step > 0 && p->last_tend > s->max_tendency && s->max_tendency > p->tol) {
        double rate = log(p->last_tend / s->max_tendency) / (double)(s->steps - p->last_step);
        double left = log(s->max_tendency / p->tol) / rate;
        snprintf(eta, sizeof eta, "ETA ~%.0f steps, ~%.1f s", ceil(left), left * el / (double)s->steps);
    } else {
        snprintf(eta, sizeof eta, "ETA ?");
    }
    printf("  [%s] step %5lld: max |dT/dt| %.2e K/day, Ts %.2f K, OLR %.2f W m-2, %.1f s, %s\n", p->label,
           (long long)s->steps, s->max_tendency, s->t_sfc, s->olr, el, eta);
    fflush(stdout);
    p->last_step = s->steps;
    p->last_tend = s->max_tendency;
    return 0;
}

static int run_rce(const column *col, const climate *cl, const options *o, const mimic_rad_optics *opt,
                   mimic_rad_nn *nn, const char *label, run_result *r)
{
    memset(r, 0, sizeof *r);
    int n = col->nlay;
    double *vmr = malloc((size_t)n * MIMIC_NGAS * sizeof *vmr);
    if (!vmr)
        return fail("out of memory");
    memcpy(vmr, col->vmr, (size_t)n * MIMIC_NGAS * sizeof *vmr);
    for (int l = 0; l < n; l++)
        vmr[(size_t)l * MIMIC_NGAS + MIMIC_GAS_CO2] = cl->co2;
    mimic_rad_rce_config c;
    mimic_rad_rce_config_default(&c);
    c.nlay = n;
    c.p_lev = col->p_lev;
    c.p_lay = col->p_lay;
    c.vmr = vmr;
    c.t_init = col->t_lay;
    c.t_sfc_init = col->t_sfc_rfmip;
    c.solar_sfc = cl->solar_sfc;
    mimic_rad_rce s;
    int rc = mimic_rad_rce_init(&s, &c);
    free(vmr);
    if (rc != MIMIC_OK)
        return fail("%s: rce_init: %s", label, mimic_errmsg());
    timed_optics to = {.inner = *opt};
    mimic_rad_optics top = timed(&to);
    mimic_rad_rce_run_opts ro = {.dt = o->dt_days * 86400, .tol = o->tol, .max_steps = o->max_steps};
    progress pr = {.label = label, .t0 = now(), .tol = o->tol, .every = o->quick ? 50 : 100};
    mimic_rad_nn_stats st0 = {0}, st1 = {0};
    if (nn)
        mimic_rad_nn_get_stats(nn, &st0);
    rc = mimic_rad_rce_run(&s, &top, &ro, progress_fn, &pr);
    r->wall = now() - pr.t0;
    if (rc != MIMIC_OK) {
        const char *msg = nn ? mimic_rad_nn_last_error(nn) : NULL;
        fail("%s: RCE failed after %lld steps: %s%s%s", label, (long long)s.steps, mimic_errmsg(),
             msg && *msg && strcmp(msg, mimic_errmsg()) ? "; surrogate: " : "",
             msg && *msg && strcmp(msg, mimic_errmsg()) ? msg : "");
        mimic_rad_rce_free(&s);
        return 1;
    }
    if (!s.converged)
        printf("  [%s] NOT converged after %lld steps (max |dT/dt| %.2e K/day > tol %.1e)\n", label,
               (long long)s.steps, s.max_tendency, o->tol);
    if (nn) {
        mimic_rad_nn_get_stats(nn, &st1);
        r->nn_layers = st1.layers - st0.layers;
        r->nn_fallback = st1.fallback - st0.fallback;
    }
    r->converged = s.converged;
    r->steps = s.steps;
    r->optics_secs = to.secs;
    r->olr = s.olr;
    r->t_sfc = s.t_sfc;
    r->toa = s.toa_imbalance;
    r->sfc = s.sfc_imbalance;
    r->max_tend = s.max_tendency;
    r->t_lay = malloc((size_t)n * sizeof *r->t_lay);
    r->lw = malloc((size_t)n * sizeof *r->lw);
    r->solar = malloc((size_t)n * sizeof *r->solar);
    r->tend = malloc((size_t)n * sizeof *r->tend);
    r->conv = malloc((size_t)n * sizeof *r->conv);
    if (!r->t_lay || !r->lw || !r->solar || !r->tend || !r->conv) {
        mimic_rad_rce_free(&s);
        result_free(r);
        return fail("out of memory");
    }
    memcpy(r->t_lay, s.t_lay, (size_t)n * sizeof *r->t_lay);
    memcpy(r->lw, s.lw_heating, (size_t)n * sizeof *r->lw);
    memcpy(r->solar, s.solar_heating, (size_t)n * sizeof *r->solar);
    memcpy(r->tend, s.tendency, (size_t)n * sizeof *r->tend);
    memcpy(r->conv, s.convective, (size_t)n * sizeof *r->conv);
    /* convective top: the highest layer of the convective region touching the surface */
    r->conv_top_p = NAN;
    for (int l = n - 1; l >= 0 && s.convective[l]; l--)
        r->conv_top_p = s.p_lay[l];
    /* cold point: the coldest layer below 50 hPa */
    int cold = -1;
    for (int l = 0; l < n; l++)
        if (s.p_lay[l] > 5000 && (cold < 0 || s.t_lay[l] < s.t_lay[cold]))
            cold = l;
    r->cold_t = cold >= 0 ? s.t_lay[cold] : NAN;
    r->cold_p = cold >= 0 ? s.p_lay[cold] : NAN;
    mimic_rad_rce_free(&s);
    printf("  [%s] %s in %lld steps, %.2f s (optics %.2f s): Ts %.3f K, OLR %.3f W m-2, TOA imbalance %.1e W m-2%s\n",
           label, r->converged ? "converged" : "stopped", (long long)r->steps, r->wall, r->optics_secs, r->t_sfc,
           r->olr, r->toa, nn ? "" : "");
    if (nn)
        printf("  [%s] surrogate layers %lld, guard/NaN fallbacks to the reference kernel %lld (%.3f %%)\n", label,
               (long long)r->nn_layers, (long long)r->nn_fallback,
               r->nn_layers ? 100.0 * (double)r->nn_fallback / (double)r->nn_layers : 0.0);
    return 0;
}

/* --- comparison and output ------------------------------------------------------------ */

typedef struct comparison {
    double max_below, max_above, d_sfc, d_olr; /* |dT| K below / above 10 hPa, surface; OLR diff */
    double p_max_below;                        /* where max_below occurs, Pa */
    double rms_below;
    int identical;                             /* every layer, the surface and the step count equal */
    int converged;                             /* both runs converged */
    int pass;                                  /* max(max_below, |d_sfc|) <= TARGET_K and both converged */
} comparison;

static comparison compare(const column *col, const run_result *a, const run_result *b)
{
    comparison c = {.p_max_below = NAN};
    int nb = 0;
    c.identical = a->t_sfc == b->t_sfc && a->steps == b->steps;
    for (int l = 0; l < col->nlay; l++) {
        double d = fabs(b->t_lay[l] - a->t_lay[l]);
        if (b->t_lay[l] != a->t_lay[l])
            c.identical = 0;
        if (col->p_lay[l] >= P_TARGET) {
            if (d > c.max_below) {
                c.max_below = d;
                c.p_max_below = col->p_lay[l];
            }
            c.rms_below += d * d;
            nb++;
        } else if (d > c.max_above) {
            c.max_above = d;
        }
    }
    c.rms_below = nb ? sqrt(c.rms_below / nb) : 0;
    c.d_sfc = b->t_sfc - a->t_sfc;
    c.d_olr = b->olr - a->olr;
    c.converged = a->converged && b->converged;
    c.pass = fmax(c.max_below, fabs(c.d_sfc)) <= TARGET_K && c.converged;
    return c;
}

/* Text buffer for the markdown (printed and written). */
typedef struct sbuf {
    char *s;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        size_t room = b->cap - b->n;
        int k = vsnprintf(b->s ? b->s + b->n : NULL, b->s ? room : 0, fmt, ap);
        va_end(ap);
        if (k < 0) {
            b->oom = 1;
            return;
        }
        if (b->s && (size_t)k < room) {
            b->n += (size_t)k;
            return;
        }
        size_t cap = b->cap ? 2 * b->cap : 4096;
        while (cap < b->n + (size_t)k + 1)
            cap *= 2;
        char *s = realloc(b->s, cap);
        if (!s) {
            b->oom = 1;
            return;
        }
        b->s = s;
        b->cap = cap;
    }
}

/* Writes path atomically: a temporary file beside it, then rename. */
static int write_atomic(const char *path, const char *text, size_t len)
{
    char tmp[4200];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return fail("path too long: %s", path);
    FILE *f = fopen(tmp, "wb");
    if (!f)
        return fail("cannot write %s: %s", tmp, strerror(errno));
    int ok = fwrite(text, 1, len, f) == len;
    ok = fflush(f) == 0 && ok;
    ok = fsync(fileno(f)) == 0 && ok;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path)) {
        int e = errno;
        remove(tmp);
        return fail("cannot write %s: %s", path, strerror(e));
    }
    return 0;
}

static int mkdirs(const char *dir)
{
    char p[4096];
    if (snprintf(p, sizeof p, "%s", dir) >= (int)sizeof p)
        return fail("--out path too long");
    for (char *q = p + 1; *q; q++) {
        if (*q != '/')
            continue;
        *q = 0;
        if (mkdir(p, 0777) && errno != EEXIST)
            return fail("cannot create %s: %s", p, strerror(errno));
        *q = '/';
    }
    if (mkdir(p, 0777) && errno != EEXIST)
        return fail("cannot create %s: %s", p, strerror(errno));
    struct stat st;
    if (stat(p, &st) || !S_ISDIR(st.st_mode))
        return fail("--out %s is not a directory", p);
    return 0;
}

static void shell_quote(char *out, size_t cap, const char *s)
{
    size_t n = 0;
    out[n++] = '\'';
    for (; *s && n + 5 < cap; s++) {
        if (*s == '\'') {
            memcpy(out + n, "'\\''", 4);
            n += 4;
        } else {
            out[n++] = *s;
        }
    }
    out[n++] = '\'';
    out[n] = 0;
}

static const char *fmt_p(char *buf, size_t cap, double p)
{
    if (isnan(p))
        snprintf(buf, cap, "-");
    else
        snprintf(buf, cap, "%.1f", p / 100);
    return buf;
}

/* --- the study: climates, runs, report ------------------------------------------------- */

typedef struct study {
    const options *o;
    int argc;
    char **argv;
    const column *col;
    const mimic_rad_kdist *kd;
    int surrogate;                 /* 0: the reference kernel on both sides (self-check) */
    const char *tag;               /* "nn" or "ref2": the second run's name in files */
    climate cl[MAX_CLIMATES];
    int ncl, nrun;                 /* climates configured, climates run */
    run_result ref[MAX_CLIMATES], sur[MAX_CLIMATES];
    comparison cmp[MAX_CLIMATES];
} study;

static void set_climates(study *st)
{
    const options *o = st->o;
    mimic_rad_rce_config d;
    mimic_rad_rce_config_default(&d);
    climate *cl = st->cl;
    int n = 0;
    if (o->nco2) {
        for (int i = 0; i < o->nco2; i++, n++) {
            cl[n] = (climate){.co2 = o->co2_ppm[i] * 1e-6, .solar_sfc = d.solar_sfc};
            snprintf(cl[n].name, sizeof cl[n].name, "CO2 %.4g ppm", o->co2_ppm[i]);
        }
    } else {
        cl[n] = (climate){.co2 = st->col->co2_pd, .solar_sfc = d.solar_sfc};
        snprintf(cl[n].name, sizeof cl[n].name, "present day (CO2 %.1f ppm)", cl[n].co2 * 1e6);
        n++;
        cl[n] = (climate){.co2 = st->col->co2_4x, .solar_sfc = d.solar_sfc};
        snprintf(cl[n].name, sizeof cl[n].name, "4xCO2 (CO2 %.1f ppm)", cl[n].co2 * 1e6);
        n++;
    }
    if (o->warm > 0) {
        cl[n] = (climate){.co2 = cl[0].co2, .solar_sfc = d.solar_sfc + o->warm};
        snprintf(cl[n].name, sizeof cl[n].name, "warm: +%.0f W m-2 solar (CO2 %.1f ppm)", o->warm, cl[0].co2 * 1e6);
        n++;
    }
    st->ncl = n;
}

static void report_md(const study *st, sbuf *md)
{
    const options *o = st->o;
    const column *col = st->col;
    int sur = st->surrogate;
    time_t tt = time(NULL);
    char date[64];
    strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", gmtime(&tt));
    sb_printf(md, "# A-posteriori test: radiative-convective equilibrium, reference vs %s gas optics\n\n",
              sur ? "neural" : "reference (self-check)");
    sb_printf(md, "Generated %s by `" PROG, date);
    for (int i = 1; i < st->argc; i++)
        sb_printf(md, " %s", st->argv[i]);
    sb_printf(md, "`.\n\n");
    sb_printf(md, "- column: RFMIP site %d (lat %.1f), %d layers on fixed levels %.3g..%.0f Pa; initial state the "
                  "site's present-day temperatures (Ts %.2f K); water vapour at fixed RH; rad_rce.h defaults\n",
              col->site, col->lat, col->nlay, col->p_lev[0], col->p_lev[col->nlay], col->t_sfc_rfmip);
    sb_printf(md, "- reference kernel: `%s` (%d g-points)\n", o->kdist, st->kd->ngpt);
    if (sur) {
        sb_printf(md, "- surrogate: tau `%s`, planck `%s`", o->tau, o->planck);
        if (o->tau_upper)
            sb_printf(md, ", upper pair `%s`, `%s` (p < %.0f Pa)", o->tau_upper, o->planck_upper,
                      o->p_split > 0 ? o->p_split : st->kd->p_split);
        sb_printf(md, "; guard %s%s%s%s%s%s (flagged layers go to the reference kernel)\n", o->guard ? "`" : "none",
                  o->guard ? o->guard : "", o->guard ? "`" : "", o->guard_upper ? ", upper `" : "",
                  o->guard_upper ? o->guard_upper : "", o->guard_upper ? "`" : "");
    } else {
        sb_printf(md, "- second run: the reference kernel again (no `--tau`): a self-check of the host\n");
    }
    sb_printf(md, "- time step %g days, tolerance %g K/day on the maximum tendency, at most %lld steps\n", o->dt_days,
              o->tol, (long long)o->max_steps);
    sb_printf(md, "- target: |dT| <= %.1f K at every layer below 10 hPa and at the surface\n\n", TARGET_K);
    sb_printf(md, "| climate | max \\|dT\\| below 10 hPa (K) | at (hPa) | rms below 10 hPa (K) | max \\|dT\\| above "
                  "10 hPa (K) | dTs (K) | dOLR (W m-2) | fallback layers | target |\n");
    sb_printf(md, "|---|---|---|---|---|---|---|---|---|\n");
    for (int k = 0; k < st->nrun; k++) {
        const comparison *c = &st->cmp[k];
        char fb[64] = "-", pm[32];
        if (sur)
            snprintf(fb, sizeof fb, "%lld / %lld", (long long)st->sur[k].nn_fallback, (long long)st->sur[k].nn_layers);
        int mostly_ref = sur && st->sur[k].nn_fallback * 2 > st->sur[k].nn_layers;
        sb_printf(md, "| %s | %.4f | %s | %.4f | %.4f | %+.4f | %+.4f | %s | %s%s |\n", st->cl[k].name, c->max_below,
                  fmt_p(pm, sizeof pm, c->p_max_below), c->rms_below, c->max_above, c->d_sfc, c->d_olr, fb,
                  !c->converged ? "**not converged**" : c->pass ? "met" : "**missed**", mostly_ref ? " (mostly by the guard's fallback)" : "");
    }
    for (int k = 0; k < st->nrun; k++) {
        const run_result *a = &st->ref[k], *b = &st->sur[k];
        char p1[32], p2[32];
        sb_printf(md, "\n### %s, surface solar %.0f W m-2\n\n", st->cl[k].name, st->cl[k].solar_sfc);
        sb_printf(md, "| | reference | %s | difference |\n|---|---|---|---|\n", sur ? "surrogate" : "reference again");
        sb_printf(md, "| converged | %s | %s | |\n", a->converged ? "yes" : "**no**", b->converged ? "yes" : "**no**");
        sb_printf(md, "| steps | %lld | %lld | %+lld |\n", (long long)a->steps, (long long)b->steps,
                  (long long)(b->steps - a->steps));
        sb_printf(md, "| final max \\|dT/dt\\| (K/day) | %.2e | %.2e | |\n", a->max_tend, b->max_tend);
        sb_printf(md, "| surface T (K) | %.3f | %.3f | %+.4f |\n", a->t_sfc, b->t_sfc, b->t_sfc - a->t_sfc);
        sb_printf(md, "| OLR (W m-2) | %.3f | %.3f | %+.4f |\n", a->olr, b->olr, b->olr - a->olr);
        sb_printf(md, "| TOA imbalance (W m-2) | %.2e | %.2e | |\n", a->toa, b->toa);
        sb_printf(md, "| convective top (hPa) | %s | %s | |\n", fmt_p(p1, sizeof p1, a->conv_top_p),
                  fmt_p(p2, sizeof p2, b->conv_top_p));
        sb_printf(md, "| cold point (K at hPa) | %.2f at %.1f | %.2f at %.1f | %+.4f |\n", a->cold_t, a->cold_p / 100,
                  b->cold_t, b->cold_p / 100, b->cold_t - a->cold_t);
        sb_printf(md, "| wall time (s) | %.3f | %.3f | |\n", a->wall, b->wall);
        sb_printf(md, "| time in gas optics (s) | %.3f | %.3f | ratio ref/%s %.2f |\n", a->optics_secs, b->optics_secs,
                  st->tag, b->optics_secs > 0 ? a->optics_secs / b->optics_secs : NAN);
        sb_printf(md, "| gas optics per step (ms) | %.3f | %.3f | |\n", 1e3 * a->optics_secs / (double)a->steps,
                  1e3 * b->optics_secs / (double)b->steps);
        sb_printf(md, "| gas optics share of the run | %.0f %% | %.0f %% | |\n", 100 * a->optics_secs / a->wall,
                  100 * b->optics_secs / b->wall);
        if (sur)
            sb_printf(md, "| guard/NaN fallbacks (layers) | | %lld of %lld (%.3f %%) | |\n", (long long)b->nn_fallback,
                      (long long)b->nn_layers, b->nn_layers ? 100.0 * (double)b->nn_fallback / (double)b->nn_layers : 0.0);
        sb_printf(md, "| max \\|dT\\| below / above 10 hPa (K) | | | %.4f / %.4f |\n", st->cmp[k].max_below,
                  st->cmp[k].max_above);
    }
    sb_printf(md, "\nProfiles: `rce_profiles.dat` (one gnuplot index per climate: p (hPa), T_ref, T_%s, dT (K), "
                  "longwave heating ref / %s, solar heating (K/day), convective ref / %s).\n",
              st->tag, st->tag, st->tag);
}

static void profiles_dat(const study *st, sbuf *dat)
{
    const column *col = st->col;
    const char *t = st->tag;
    sb_printf(dat, "# " PROG ": equilibrium profiles, reference vs %s; one block (gnuplot index) per climate\n",
              st->surrogate ? "surrogate" : "reference again");
    sb_printf(dat, "# columns: p_hPa T_ref T_%s dT lw_heat_ref lw_heat_%s solar_heat conv_ref conv_%s\n", t, t, t);
    for (int k = 0; k < st->nrun; k++) {
        const run_result *a = &st->ref[k], *b = &st->sur[k];
        if (k)
            sb_printf(dat, "\n\n");
        sb_printf(dat, "# index %d: %s, solar_sfc %.0f W m-2; surface: Ts_ref %.6f Ts_%s %.6f dTs %.6g\n", k,
                  st->cl[k].name, st->cl[k].solar_sfc, a->t_sfc, t, b->t_sfc, b->t_sfc - a->t_sfc);
        for (int l = 0; l < col->nlay; l++)
            sb_printf(dat, "%.6g %.6f %.6f %.6g %.6g %.6g %.6g %d %d\n", col->p_lay[l] / 100, a->t_lay[l], b->t_lay[l],
                      b->t_lay[l] - a->t_lay[l], a->lw[l], b->lw[l], a->solar[l], a->conv[l], b->conv[l]);
    }
}

static void plot_gp(const study *st, sbuf *gp)
{
    sb_printf(gp, "# Draws rce.png from rce_profiles.dat: gnuplot rce.gp\n"
                  "set terminal pngcairo size 1200,720 font 'sans,10' noenhanced\n"
                  "set output 'rce.png.tmp'\nset multiplot layout 1,2\nset logscale y\nset yrange [*:*] reverse\n"
                  "set ylabel 'pressure (hPa)'\nset grid\nset key outside below maxcols 2 font ',8' spacing 1.1\nset bmargin 9\n"
                  "set xlabel 'temperature (K)'\nset title 'equilibrium temperature'\nplot ");
    for (int k = 0; k < st->nrun; k++)
        sb_printf(gp, "%s'rce_profiles.dat' index %d using 2:1 with lines lw 2 lc %d title 'ref: %s', "
                      "'' index %d using 3:1 with lines dt 2 lw 2 lc %d title '%s'",
                  k ? ", " : "", k, k + 1, st->cl[k].name, k, k + 1, st->surrogate ? "surrogate" : "ref again");
    /* a symmetric x range that always shows the +-0.5 K target lines */
    double dmax = TARGET_K * 1.2;
    for (int k = 0; k < st->nrun; k++)
        for (int l = 0; l < st->col->nlay; l++)
            dmax = fmax(dmax, 1.1 * fabs(st->sur[k].t_lay[l] - st->ref[k].t_lay[l]));
    sb_printf(gp, "\nset xlabel 'T_%s - T_ref (K)'\nset title 'temperature difference (target: |dT| <= 0.5 K below "
                  "10 hPa)'\nset xrange [%.4g:%.4g]\n"
                  "set arrow 1 from graph 0, first 10 to graph 1, first 10 nohead dt 3\n"
                  "set arrow 2 from -0.5, first 10 to -0.5, graph 0 nohead dt 3 lc rgb 'red'\n"
                  "set arrow 3 from 0.5, first 10 to 0.5, graph 0 nohead dt 3 lc rgb 'red'\nplot ",
              st->tag, -dmax, dmax);
    for (int k = 0; k < st->nrun; k++)
        sb_printf(gp, "%s'rce_profiles.dat' index %d using 4:1 with linespoints pt 7 ps 0.5 lw 2 lc %d title '%s'",
                  k ? ", " : "", k, k + 1, st->cl[k].name);
    sb_printf(gp, "\nunset multiplot\nset output\nsystem \"mv -f 'rce.png.tmp' 'rce.png'\"\n");
}

static int write_sbuf(const char *dir, const char *name, const sbuf *b)
{
    char path[4200];
    if (b->oom)
        return fail("out of memory");
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path)
        return fail("--out path too long");
    return write_atomic(path, b->s ? b->s : "", b->n);
}

/* Writes rce_profiles.dat, rce.gp + rce.png (gnuplot installed), then rce.md,
 * and prints the markdown. */
static int write_outputs(const study *st, double t_start)
{
    const char *out = st->o->out;
    if (mkdirs(out))
        return 1;
    sbuf dat = {0}, gp = {0}, md = {0};
    profiles_dat(st, &dat);
    int rc = write_sbuf(out, "rce_profiles.dat", &dat), drawn = 0;
    if (!rc && system("command -v gnuplot >/dev/null 2>&1") == 0) {
        plot_gp(st, &gp);
        rc = write_sbuf(out, "rce.gp", &gp);
        if (!rc) {
            char q[4400], cmd[9000];
            shell_quote(q, sizeof q, out);
            snprintf(cmd, sizeof cmd, "cd %s && gnuplot rce.gp", q);
            if (system(cmd) != 0)
                rc = fail("gnuplot failed on %s/rce.gp (the data is in %s/rce_profiles.dat)", out, out);
            drawn = !rc;
        }
    }
    if (!rc) {
        report_md(st, &md);
        if (!st->surrogate) {
            int same = 1;
            for (int k = 0; k < st->nrun; k++)
                same = same && st->cmp[k].identical;
            sb_printf(&md, "\nSelf-check (reference kernel on both sides): %s\n",
                      same ? "dT == 0 exactly at every layer and the surface, same step counts: OK"
                           : "**FAILED**: the two reference runs differ");
        }
        if (drawn)
            sb_printf(&md, "\n![equilibrium temperatures and differences](rce.png)\n");
        else
            sb_printf(&md, "\nNo plot: gnuplot was not found (apt-get install gnuplot-nox and rerun).\n");
        sb_printf(&md, "\nTotal time %.1f s.\n", now() - t_start);
        rc = write_sbuf(out, "rce.md", &md);
    }
    if (!rc) {
        printf("\n%s", md.s);
        printf("\nwrote %s/rce.md, %s/rce_profiles.dat%s\n", out, out, drawn ? ", rce.gp, rce.png" : "");
    }
    free(dat.s);
    free(gp.s);
    free(md.s);
    return rc;
}

static mimic_rad_nn *open_surrogate(const options *o, const mimic_rad_kdist *kd)
{
    mimic_rad_nn_options no = {.tau_path = o->tau, .planck_path = o->planck, .tau_upper_path = o->tau_upper,
                               .planck_upper_path = o->planck_upper,
                               .p_split = o->p_split > 0 ? o->p_split : kd->p_split, .guard_path = o->guard,
                               .guard_upper_path = o->guard_upper};
    no.open.precision = o->precision;
    no.open.num_threads = o->threads;
    mimic_rad_nn *nn = NULL;
    if (mimic_rad_nn_open(&no, kd, &nn) != MIMIC_OK)
        fail("opening the surrogate (--tau %s --planck %s%s%s): %s (without --tau the host runs the reference kernel "
             "twice, a self-check)",
             o->tau, o->planck, o->guard ? " --guard " : "", o->guard ? o->guard : "", mimic_errmsg());
    return nn;
}

int main(int argc, char **argv)
{
    options o;
    if (parse_args(argc, argv, &o))
        return 1;
    mimic_set_num_threads(o.threads);
    double t_start = now();
    column col;
    if (load_column(o.rfmip, o.site, &col))
        return 1;
    mimic_rad_kdist *kd = mimic_rad_kdist_load(o.kdist);
    if (!kd) {
        column_free(&col);
        return fail("%s (set --kdist or MIMIC_KDIST to the k-distribution table; `make kdist` builds it)", mimic_errmsg());
    }
    static study st; /* large (results of every climate); one per process */
    st = (study){.o = &o, .argc = argc, .argv = argv, .col = &col, .kd = kd, .surrogate = o.tau != NULL};
    st.tag = st.surrogate ? "nn" : "ref2";
    mimic_rad_nn *nn = NULL;
    if (st.surrogate && !(nn = open_surrogate(&o, kd))) {
        mimic_rad_kdist_free(kd);
        column_free(&col);
        return 1;
    }
    mimic_rad_optics ref_opt, sur_opt;
    mimic_rad_kdist_optics(kd, &ref_opt);
    if (nn)
        mimic_rad_nn_optics_fn(nn, &sur_opt);
    else
        sur_opt = ref_opt;
    set_climates(&st);

    printf(PROG ": RFMIP site %d (lat %.1f, RFMIP Ts %.2f K), %d layers %.3g..%.0f Pa; k-distribution %s (%d g-points)\n",
           col.site, col.lat, col.t_sfc_rfmip, col.nlay, col.p_lev[0], col.p_lev[col.nlay], o.kdist, kd->ngpt);
    if (nn)
        printf("surrogate: tau %s, planck %s%s%s%s%s (precision %s, %d thread%s)\n", o.tau, o.planck,
               o.tau_upper ? ", upper pair " : "", o.tau_upper ? o.tau_upper : "", o.guard ? ", guard " : ", NO guard",
               o.guard ? o.guard : "",
               o.precision == MIMIC_PRECISION_F32 ? "f32" : o.precision == MIMIC_PRECISION_F64 ? "f64" : "stored",
               o.threads, o.threads > 1 ? "s" : "");
    else
        printf("no --tau: the second run uses the reference kernel again (self-check: dT must be 0 exactly)\n");
    printf("dt %g days, tol %g K/day, max %lld steps%s; %d climate%s\n", o.dt_days, o.tol, (long long)o.max_steps,
           o.quick ? " (--quick)" : "", st.ncl, st.ncl > 1 ? "s" : "");
    fflush(stdout);

    int rc = 0;
    for (int k = 0; k < st.ncl && !rc; k++) {
        printf("\n== climate %d: %s, solar %.0f W m-2 at the surface\n", k + 1, st.cl[k].name, st.cl[k].solar_sfc);
        char la[32], lb[32];
        snprintf(la, sizeof la, "%d ref", k + 1);
        snprintf(lb, sizeof lb, "%d %s", k + 1, st.tag);
        if (run_rce(&col, &st.cl[k], &o, &ref_opt, NULL, la, &st.ref[k]))
            rc = 1;
        else if (run_rce(&col, &st.cl[k], &o, &sur_opt, nn, lb, &st.sur[k])) {
            result_free(&st.ref[k]);
            rc = 1;
        } else {
            const comparison *c = &st.cmp[k];
            st.cmp[k] = compare(&col, &st.ref[k], &st.sur[k]);
            st.nrun++;
            char pm[32];
            printf("  max |dT| below 10 hPa %.4f K (at %s hPa), above %.4f K, surface %+.4f K; dOLR %+.4f W m-2: %s\n",
                   c->max_below, fmt_p(pm, sizeof pm, c->p_max_below), c->max_above, c->d_sfc, c->d_olr,
                   !c->converged ? "a run did NOT converge (target not assessed)"
                   : c->pass     ? "within the 0.5 K target"
                                 : "MISSES the 0.5 K target");
            if (nn && st.sur[k].nn_fallback * 2 > st.sur[k].nn_layers)
                printf("  note: the guard sent %.0f %% of the layers to the reference kernel: this climate tests the "
                       "guard more than the network\n",
                       100.0 * (double)st.sur[k].nn_fallback / (double)st.sur[k].nn_layers);
        }
    }
    int all_pass = st.nrun == st.ncl, same = 1;
    for (int k = 0; k < st.nrun; k++) {
        all_pass = all_pass && st.cmp[k].pass;
        same = same && st.cmp[k].identical;
    }
    if (!rc)
        rc = write_outputs(&st, t_start);
    if (!rc && !st.surrogate) {
        if (same)
            printf("self-check: reference kernel on both sides gives dT == 0 exactly (%d climate%s): OK\n", st.nrun,
                   st.nrun > 1 ? "s" : "");
        else
            rc = fail("self-check FAILED: two runs with the reference kernel from the same state differ");
    }
    for (int k = 0; k < st.nrun; k++) {
        result_free(&st.ref[k]);
        result_free(&st.sur[k]);
    }
    mimic_rad_nn_close(&nn);
    mimic_rad_kdist_free(kd);
    column_free(&col);
    if (rc)
        return 1;
    if (o.check_target && !all_pass) {
        fprintf(stderr, PROG ": --check-target: a climate misses the %.1f K target (or did not converge)\n", TARGET_K);
        return 3;
    }
    return 0;
}
