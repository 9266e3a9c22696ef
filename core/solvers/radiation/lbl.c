/* The line-by-line absorption model: object, line shape, spectral grid,
 * absorption cross-sections and layer optical depths (docs/radiation-lbl.md).
 *
 * Line sum: lines are sorted, so the lines within the cut-off of a grid point
 * are a contiguous index range found by two pointers that only move forward
 * along a chunk of the grid. Far from a line centre (|x| + y >= 20 in Doppler
 * units) the Voigt profile equals the first continued-fraction approximant of
 * the Faddeeva function, y (x^2 + y^2 + 1/2) / ((x^2 - y^2 - 1/2)^2 + 4 x^2 y^2),
 * to < 2e-5 relative; that branch-free form runs vectorised over the wing
 * ranges. Only the few lines within 20 Doppler widths of a point (at low
 * pressure) take the full Faddeeva function (Weideman's N = 32 series).
 * Each grid point's sum runs over the same lines in the same order whatever
 * the chunking, so results are bit-identical for any thread count.
 */
#include "lbl_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

static const double PI = 3.14159265358979323846;
static const double SQRT_PI = 1.7724538509055160273;
static const double SQRT_LN2 = 0.83255461115769775635;
#define CORE_S 20.0    /* |x| + y below which the full Faddeeva function is used */
#define CHUNK 1024     /* grid points per OpenMP work item */
/* Grid (docs/radiation-lbl.md): spacing hw/4 within GRID_FLAT half-widths of a
 * line, growing by GRID_F times the distance beyond, capped at GRID_HMAX. */
#ifndef GRID_F
#define GRID_F 0.2
#endif
#define GRID_FLAT 2.5
#define GRID_HMAX 0.1

void mimic_rad_lbl_options_default(mimic_rad_lbl_options *o)
{
    o->nu_min = 10, o->nu_max = 3250, o->gases = 0, o->cutoff = 25, o->seed = MIMIC_RAD_LBL_SEED;
}

static uint32_t all_gases(void)
{
    return (1u << MIMIC_NGAS) - 1;
}

mimic_rad_lbl *mimic_rad_lbl_new(const mimic_rad_lbl_options *opts)
{
    mimic_rad_lbl_options o;
    if (opts)
        o = *opts;
    else
        mimic_rad_lbl_options_default(&o);
    if (o.gases == 0)
        o.gases = all_gases();
    if (!(isfinite(o.nu_min) && isfinite(o.nu_max) && o.nu_min >= 0 && o.nu_max > o.nu_min)) {
        mimic_error(MIMIC_EARG, "mimic_rad_lbl_new: need 0 <= nu_min < nu_max (got %g, %g cm^-1)",
                    o.nu_min, o.nu_max);
        return NULL;
    }
    if (!(isfinite(o.cutoff) && o.cutoff > 0)) {
        mimic_error(MIMIC_EARG, "mimic_rad_lbl_new: cutoff must be > 0 cm^-1 (got %g); 25 is usual",
                    o.cutoff);
        return NULL;
    }
    if (o.gases & ~all_gases()) {
        mimic_error(MIMIC_EARG, "mimic_rad_lbl_new: gas mask 0x%x has bits beyond MIMIC_NGAS = %d",
                    o.gases, MIMIC_NGAS);
        return NULL;
    }
    mimic_rad_lbl *l = mimic_calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->o = o;
    for (int g = 0; g < MIMIC_NGAS; g++) {
        if (!(o.gases & (1u << g)))
            continue;
        if (lbl_gen_lines(&o, (mimic_rad_gas)g, &l->g[g])) {
            mimic_rad_lbl_free(l);
            return NULL;
        }
    }
    return l;
}

void mimic_rad_lbl_free(mimic_rad_lbl *l)
{
    if (!l)
        return;
    for (int g = 0; g < MIMIC_NGAS; g++)
        lbl_gas_lines_free(&l->g[g]);
    mimic_free(l);
}

static int gas_ok(const char *fn, mimic_rad_gas gas)
{
    if ((int)gas < 0 || gas >= MIMIC_NGAS)
        return mimic_error(MIMIC_EARG, "%s: gas %d out of range 0..%d (mimic_rad_gas)", fn, (int)gas,
                           MIMIC_NGAS - 1);
    return 0;
}

int mimic_rad_lbl_lines(const mimic_rad_lbl *l, mimic_rad_gas gas, mimic_rad_lines *out)
{
    if (!l || !out)
        return mimic_error(MIMIC_EARG, "mimic_rad_lbl_lines: lbl and out must not be NULL");
    if (gas_ok("mimic_rad_lbl_lines", gas))
        return MIMIC_EARG;
    const lbl_gas_lines *g = &l->g[gas];
    out->n = g->n, out->nu = g->nu, out->s = g->s, out->gamma_air = g->gair;
    out->gamma_self = g->gself, out->n_air = g->nair, out->elower = g->elow;
    out->mass = g->mass, out->q_exp = g->q_exp;
    return 0;
}

int mimic_rad_lbl_nbands(mimic_rad_gas gas)
{
    if ((int)gas < 0 || gas >= MIMIC_NGAS)
        return 0;
    return lbl_nline_bands(gas) + lbl_nxsec_bands(gas);
}

int mimic_rad_lbl_band(mimic_rad_gas gas, int i, mimic_rad_band_info *out)
{
    if (gas_ok("mimic_rad_lbl_band", gas))
        return MIMIC_EARG;
    int nl = lbl_nline_bands(gas), nb = nl + lbl_nxsec_bands(gas);
    if (!out || i < 0 || i >= nb)
        return mimic_error(MIMIC_EARG, "mimic_rad_lbl_band: band %d out of range 0..%d for %s", i, nb - 1,
                           mimic_rad_gas_name(gas));
    return i < nl ? lbl_line_band(gas, i, out) : lbl_xsec_band(gas, i - nl, out);
}

/* ---- line parameters at (p, T) ------------------------------------------------ */

static double strength_t(double s, double nu, double el, double q_exp, double t)
{
    double se = (1 - exp(-LBL_C2 * nu / t)) / (1 - exp(-LBL_C2 * nu / LBL_TREF));
    return s * pow(LBL_TREF / t, q_exp) * exp(-LBL_C2 * el * (1 / t - 1 / LBL_TREF)) * se;
}

double mimic_rad_line_strength(const mimic_rad_lines *L, int64_t i, double t)
{
    return strength_t(L->s[i], L->nu[i], L->elower[i], L->q_exp, t);
}

/* Doppler 1/e half-width per unit wavenumber: sqrt(2 k T / (m c^2)). */
static double doppler_fac(double t, double mass)
{
    double m = mass * 1e-3 / MIMIC_RAD_AVOGADRO;
    return sqrt(2 * MIMIC_RAD_BOLTZMANN * t / m) / MIMIC_RAD_LIGHT;
}

double mimic_rad_doppler_hw(double nu, double t, double mass)
{
    return nu * doppler_fac(t, mass) * SQRT_LN2;
}

double mimic_rad_lorentz_hw(const mimic_rad_lines *L, int64_t i, double p, double t, double x_self)
{
    return (L->gamma_air[i] * (1 - x_self) + L->gamma_self[i] * x_self) * (p / LBL_P0) *
           pow(LBL_TREF / t, L->n_air[i]);
}

/* ---- the Faddeeva function ----------------------------------------------------- */

/* Weideman (1994), N = 32, L = sqrt(N / sqrt 2): w(z) = 2 p(Z) / (L - iz)^2 +
 * 1 / (sqrt(pi) (L - iz)), Z = (L + iz) / (L - iz), p's coefficients (highest
 * power first) computed once with NumPy from Weideman's formula. */
static const double WEI_L = 4.756828460010884;
static const double WEI_A[32] = {
    -1.3031797863050087e-12, 3.740951992625696e-12,  8.03035415941622e-12,   -2.1543655748246238e-11,
    -5.54423729148823e-11,   1.165826046811702e-10,  4.15374443174521e-10,   -5.231020686058407e-10,
    -3.2080151035618343e-09, 8.124890309157973e-10,  2.379755679061263e-08,  2.293043906143044e-08,
    -1.4813078910620194e-07, -4.184076370551958e-07, 4.255833137338123e-07,  4.401531731492494e-06,
    6.821031944001985e-06,   -2.140961920187231e-05, -0.00013075449254633574, -0.00024532980270021025,
    0.0003925913607005805,   0.004519541105349148,   0.019006155784845324,   0.057304403529837206,
    0.1406071622689377,      0.2954445107150873,     0.5460139720639341,     0.9019254893648001,
    1.345544169234545,       1.8256696296324813,     2.2635372999002676,     2.5722534081245696};

/* Re w(x + iy), y >= 0, written in real arithmetic (no complex.h). */
static double faddeeva_re(double x, double y)
{
    /* d = L - iz = (L + y) - i x ; Z = (L + iz) / d = ((L - y) + i x) / d */
    double dr = WEI_L + y, di = -x, dd = dr * dr + di * di;
    double nr = WEI_L - y, ni = x;
    double zr = (nr * dr + ni * di) / dd, zi = (ni * dr - nr * di) / dd;
    double pr = WEI_A[0], pi = 0;
    for (int k = 1; k < 32; k++) {
        double t = pr * zr - pi * zi + WEI_A[k];
        pi = pr * zi + pi * zr;
        pr = t;
    }
    /* 1/d and 1/d^2 */
    double ir = dr / dd, ii = -di / dd;
    double i2r = ir * ir - ii * ii, i2i = 2 * ir * ii;
    return 2 * (pr * i2r - pi * i2i) + ir / SQRT_PI;
}

/* y (x^2 + y^2 + 1/2) / ((x^2 - y^2 - 1/2)^2 + 4 x^2 y^2) = sqrt(pi) Re w, far field */
static inline double far_ratio(double x2, double y)
{
    double c1 = y * y + 0.5, a = x2 - c1;
    return y * (x2 + c1) / (a * a + 4 * x2 * y * y);
}

double mimic_rad_voigt(double dnu, double gl, double gd)
{
    double ad = gd / SQRT_LN2; /* 1/e half-width */
    double x = dnu / ad, y = gl / ad;
    if (fabs(x) + y >= CORE_S)
        return far_ratio(x * x, y) / (PI * ad);
    return faddeeva_re(fabs(x), y) / (SQRT_PI * ad);
}

/* ---- spectral grid --------------------------------------------------------------- */

mimic_rad_grid *mimic_rad_grid_uniform(double nu_min, double nu_max, double dnu)
{
    if (!(isfinite(nu_min) && isfinite(nu_max) && nu_max > nu_min && isfinite(dnu) && dnu > 0)) {
        mimic_error(MIMIC_EARG, "mimic_rad_grid_uniform: need nu_min < nu_max and dnu > 0 (got %g, %g, %g)",
                    nu_min, nu_max, dnu);
        return NULL;
    }
    double nd = ceil((nu_max - nu_min) / dnu);
    if (nd > 1e9) {
        mimic_error(MIMIC_EARG, "mimic_rad_grid_uniform: %g points is too many; use a larger dnu", nd);
        return NULL;
    }
    int64_t n = (int64_t)nd + 1;
    mimic_rad_grid *g = mimic_calloc(1, sizeof *g);
    if (!g)
        return NULL;
    g->nu = mimic_malloc((size_t)n * sizeof(double));
    g->w = mimic_malloc((size_t)n * sizeof(double));
    if (!g->nu || !g->w) {
        mimic_rad_grid_free(g);
        return NULL;
    }
    g->n = n;
    double h = (nu_max - nu_min) / (double)(n - 1);
    for (int64_t i = 0; i < n; i++) {
        g->nu[i] = i == n - 1 ? nu_max : nu_min + h * (double)i;
        g->w[i] = (i == 0 || i == n - 1) ? h / 2 : h;
    }
    return g;
}

void mimic_rad_grid_free(mimic_rad_grid *g)
{
    if (!g)
        return;
    mimic_free(g->nu);
    mimic_free(g->w);
    mimic_free(g);
}

/* Lines that get a refined grid: those whose centre optical depth in a
 * generous column (u_max, molecules cm^-2, over a surface-like 0.07 cm^-1
 * width) reaches 1e-3; weaker lines are still summed, only not resolved. */
static double umax_of(int g)
{
    switch (g) {
    case MIMIC_GAS_H2O: return 1.5e23; /* ~45 kg m^-2 precipitable water */
    case MIMIC_GAS_CO2: return 3.5e22; /* 4 x CO2 */
    case MIMIC_GAS_O3: return 1.5e19;
    case MIMIC_GAS_CH4: return 1.0e20;
    case MIMIC_GAS_N2O: return 1.5e19;
    case MIMIC_GAS_CO: return 1.0e19;
    default: return 0;
    }
}

typedef struct gline {
    double nu, h, flat; /* centre, core spacing, half-width of the uniformly fine core */
} gline;
static int cmp_gline(const void *a, const void *b)
{
    const gline *x = a, *y = b;
    return (x->nu > y->nu) - (x->nu < y->nu);
}

/* One pass of the stepping; fills nu (if not NULL), returns the count. */
static int64_t grid_walk(const gline *gl, int64_t nl, double a, double b, double res, double *nu)
{
    const double hmax = GRID_HMAX * res, f = GRID_F * res, reach = hmax / f + 1;
    int64_t n = 0, j = 0;
    double v = a;
    for (;;) {
        if (nu)
            nu[n] = v;
        n++;
        if (v >= b)
            break;
        while (j < nl && gl[j].nu < v - reach)
            j++;
        double h = hmax;
        for (int64_t k = j; k < nl && gl[k].nu <= v + reach; k++) {
            double hk = fmax(gl[k].h, f * (fabs(v - gl[k].nu) - gl[k].flat));
            if (hk < h)
                h = hk;
        }
        double nv = v + h;
        if (nv > b - 0.25 * h) /* no sliver at the end */
            nv = b;
        v = nv;
    }
    return n;
}

mimic_rad_grid *mimic_rad_lbl_grid(const mimic_rad_lbl *l, double nu_min, double nu_max, double p_min,
                                   double res)
{
    if (!l) {
        mimic_error(MIMIC_EARG, "mimic_rad_lbl_grid: lbl is NULL");
        return NULL;
    }
    if (!(isfinite(nu_min) && isfinite(nu_max) && nu_max > nu_min && isfinite(p_min) && p_min > 0 &&
          isfinite(res) && res > 0 && res <= 10)) {
        mimic_error(MIMIC_EARG,
                    "mimic_rad_lbl_grid: need nu_min < nu_max, p_min > 0 (Pa), 0 < res <= 10 (got %g, %g, %g, %g)",
                    nu_min, nu_max, p_min, res);
        return NULL;
    }
    int64_t nl = 0;
    for (int g = 0; g < MIMIC_NGAS; g++)
        nl += l->g[g].n;
    gline *gl = mimic_malloc((size_t)(nl > 0 ? nl : 1) * sizeof *gl);
    if (!gl)
        return NULL;
    int64_t m = 0;
    const double tmin = 180.0;
    for (int g = 0; g < MIMIC_NGAS; g++) {
        const lbl_gas_lines *L = &l->g[g];
        mimic_rad_lines lv;
        mimic_rad_lbl_lines(l, (mimic_rad_gas)g, &lv);
        double smin = 1e-3 * PI * 0.07 / (umax_of(g) > 0 ? umax_of(g) : 1);
        for (int64_t i = 0; i < L->n; i++) {
            if (L->s[i] < smin || L->nu[i] < nu_min - 1 || L->nu[i] > nu_max + 1)
                continue;
            double gd = mimic_rad_doppler_hw(L->nu[i], tmin, L->mass);
            double glr = mimic_rad_lorentz_hw(&lv, i, p_min, tmin, 0);
            double hw = 0.5346 * glr + sqrt(0.2166 * glr * glr + gd * gd); /* Olivero & Longbothum */
            gl[m].nu = L->nu[i], gl[m].h = res * hw / 4, gl[m].flat = GRID_FLAT * hw;
            m++;
        }
    }
    qsort(gl, (size_t)m, sizeof *gl, cmp_gline);
    int64_t n = grid_walk(gl, m, nu_min, nu_max, res, NULL);
    mimic_rad_grid *G = mimic_calloc(1, sizeof *G);
    if (G) {
        G->nu = mimic_malloc((size_t)n * sizeof(double));
        G->w = mimic_malloc((size_t)n * sizeof(double));
    }
    if (!G || !G->nu || !G->w) {
        mimic_free(gl);
        mimic_rad_grid_free(G);
        return NULL;
    }
    G->n = n;
    grid_walk(gl, m, nu_min, nu_max, res, G->nu);
    mimic_free(gl);
    for (int64_t i = 0; i < n; i++) {
        double lo = i > 0 ? G->nu[i - 1] : G->nu[i], hi = i < n - 1 ? G->nu[i + 1] : G->nu[i];
        G->w[i] = (hi - lo) / 2;
    }
    return G;
}

/* ---- absorption ------------------------------------------------------------------ */

static int check_state(const char *fn, double p, double t, double vmr_h2o)
{
    if (!(isfinite(p) && p > 0))
        return mimic_error(MIMIC_EVALUE, "%s: pressure must be finite and > 0 Pa (got %g)", fn, p);
    if (!(isfinite(t) && t > 0))
        return mimic_error(MIMIC_EVALUE, "%s: temperature must be finite and > 0 K (got %g)", fn, t);
    if (!(isfinite(vmr_h2o) && vmr_h2o >= 0))
        return mimic_error(MIMIC_EVALUE, "%s: H2O mixing ratio must be finite and >= 0 (got %g)", fn,
                           vmr_h2o);
    return 0;
}

static int check_grid(const char *fn, int64_t n, const double *nu, const double *out)
{
    if (n < 0 || (n > 0 && (!nu || !out)))
        return mimic_error(MIMIC_EARG, "%s: need n >= 0 and non-NULL nu and output arrays", fn);
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(nu[i]) || nu[i] < 0)
            return mimic_error(MIMIC_EVALUE, "%s: nu[%lld] = %g is not a finite wavenumber >= 0", fn,
                               (long long)i, nu[i]);
        if (i > 0 && !(nu[i] > nu[i - 1]))
            return mimic_error(MIMIC_EARG,
                               "%s: the nu grid must be strictly increasing (nu[%lld] = %.17g after %.17g)",
                               fn, (long long)i, nu[i], nu[i - 1]);
    }
    return 0;
}

/* Per-line quantities at (p, T), structure of arrays for the vectorised sum. */
typedef struct line_pt {
    double *nu, *inv_a, *y, *ay, *c1, *y24, *amp, *ped;
} line_pt;

static int64_t lower_bound(const double *a, int64_t n, double v) /* first a[i] >= v */
{
    int64_t lo = 0, hi = n;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (a[mid] < v)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}
static int64_t upper_bound(const double *a, int64_t n, double v) /* first a[i] > v */
{
    int64_t lo = 0, hi = n;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (a[mid] <= v)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Sum of the far-field form over lines [j0, j1) at nu (vectorised). */
static double wing_sum(const line_pt *P, int64_t j0, int64_t j1, double v)
{
    const double *restrict lnu = P->nu, *restrict ia = P->inv_a, *restrict ay = P->ay;
    const double *restrict c1 = P->c1, *restrict y24 = P->y24, *restrict ped = P->ped;
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t j = j0; j < j1; j++) {
        double x = (v - lnu[j]) * ia[j], x2 = x * x, a = x2 - c1[j];
        s += ay[j] * (x2 + c1[j]) / (a * a + x2 * y24[j]) - ped[j];
    }
    return s;
}

static void line_sum(const mimic_rad_lbl *l, const lbl_gas_lines *L, const line_pt *P, double dfac,
                     int64_t n, const double *nu, double *k)
{
    const double cut = l->o.cutoff;
    int64_t nchunk = (n + CHUNK - 1) / CHUNK;
#pragma omp parallel for schedule(dynamic, 1) if (nchunk > 1)
    for (int64_t c = 0; c < nchunk; c++) {
        int64_t i0 = c * CHUNK, i1 = i0 + CHUNK < n ? i0 + CHUNK : n;
        int64_t j0 = lower_bound(L->nu, L->n, nu[i0] - cut);
        int64_t j1 = upper_bound(L->nu, L->n, nu[i0] + cut);
        double r = CORE_S * dfac * (nu[i0] + 1);
        int64_t c0 = upper_bound(L->nu, L->n, nu[i0] - r);
        int64_t c1 = lower_bound(L->nu, L->n, nu[i0] + r);
        for (int64_t i = i0; i < i1; i++) {
            double v = nu[i];
            r = CORE_S * dfac * (v + 1); /* >= 20 Doppler widths of every line within 1 cm^-1 */
            while (j0 < L->n && L->nu[j0] < v - cut)
                j0++;
            while (j1 < L->n && L->nu[j1] <= v + cut)
                j1++;
            while (c0 < L->n && L->nu[c0] <= v - r)
                c0++;
            while (c1 < L->n && L->nu[c1] < v + r)
                c1++;
            int64_t a = c0 > j0 ? c0 : j0, b = c1 < j1 ? c1 : j1;
            if (a > b)
                a = b;
            double s = wing_sum(P, j0, a, v);
            for (int64_t j = a; j < b; j++) {
                double x = fabs(v - P->nu[j]) * P->inv_a[j], y = P->y[j];
                if (x + y >= CORE_S)
                    s += P->ay[j] * (x * x + P->c1[j]) / ((x * x - P->c1[j]) * (x * x - P->c1[j]) + x * x * P->y24[j]) - P->ped[j];
                else
                    s += P->amp[j] * SQRT_PI * faddeeva_re(x, y) - P->ped[j];
            }
            s += wing_sum(P, b, j1, v);
            k[i] += s;
        }
    }
}

int mimic_rad_lbl_absorption(const mimic_rad_lbl *l, mimic_rad_gas gas, double p, double t, double vmr_h2o,
                             unsigned parts, int64_t n, const double *nu, double *k)
{
    static const char *fn = "mimic_rad_lbl_absorption";
    if (!l)
        return mimic_error(MIMIC_EARG, "%s: lbl is NULL", fn);
    if (gas_ok(fn, gas) || check_state(fn, p, t, vmr_h2o) || check_grid(fn, n, nu, k))
        return mimic_errcode();
    if (!(l->o.gases & (1u << gas)))
        return mimic_error(MIMIC_EARG, "%s: %s was not selected when the lbl was made (add it to options.gases)",
                           fn, mimic_rad_gas_name(gas));
    if (parts == 0 || parts > MIMIC_RAD_LBL_ALL)
        return mimic_error(MIMIC_EARG, "%s: parts must be a non-empty combination of MIMIC_RAD_LBL_LINES and "
                           "MIMIC_RAD_LBL_CONTINUUM (got %u)", fn, parts);
    for (int64_t i = 0; i < n; i++)
        k[i] = 0;
    if (parts & MIMIC_RAD_LBL_CONTINUUM)
        lbl_continuum(gas, p, t, vmr_h2o, n, nu, k, 1);
    const lbl_gas_lines *L = &l->g[gas];
    if (!(parts & MIMIC_RAD_LBL_LINES) || L->n == 0 || n == 0)
        return 0;
    double *blk = mimic_malloc((size_t)L->n * 7 * sizeof(double));
    if (!blk)
        return MIMIC_ENOMEM;
    line_pt P = {L->nu, blk, blk + L->n, blk + 2 * L->n, blk + 3 * L->n, blk + 4 * L->n, blk + 5 * L->n,
                 blk + 6 * L->n};
    double dfac = doppler_fac(t, L->mass);
    double xs = gas == MIMIC_GAS_H2O ? vmr_h2o / (1 + vmr_h2o) : 0; /* self mole fraction */
    int ped = gas == MIMIC_GAS_H2O;                                 /* MT_CKD convention */
    mimic_rad_lines lv;
    mimic_rad_lbl_lines(l, gas, &lv);
    for (int64_t j = 0; j < L->n; j++) {
        double a = L->nu[j] * dfac, gl = mimic_rad_lorentz_hw(&lv, j, p, t, xs);
        double s = strength_t(L->s[j], L->nu[j], L->elow[j], L->q_exp, t);
        double y = gl / a;
        P.inv_a[j] = 1 / a, P.y[j] = y, P.amp[j] = s / (PI * a);
        P.ay[j] = P.amp[j] * y, P.c1[j] = y * y + 0.5, P.y24[j] = 4 * y * y;
        if (ped) {
            double xc = l->o.cutoff / a;
            P.ped[j] = P.amp[j] * far_ratio(xc * xc, y);
        } else {
            P.ped[j] = 0;
        }
    }
    line_sum(l, L, &P, dfac, n, nu, k);
    mimic_free(blk);
    return 0;
}

int mimic_rad_lbl_layer_tau(const mimic_rad_lbl *l, const mimic_rad_layer *lay, int64_t n, const double *nu,
                            double *tau)
{
    static const char *fn = "mimic_rad_lbl_layer_tau";
    if (!l || !lay)
        return mimic_error(MIMIC_EARG, "%s: lbl and layer must not be NULL", fn);
    if (check_state(fn, lay->p, lay->t, lay->vmr[MIMIC_GAS_H2O]) || check_grid(fn, n, nu, tau))
        return mimic_errcode();
    if (!(isfinite(lay->col_dry) && lay->col_dry >= 0))
        return mimic_error(MIMIC_EVALUE, "%s: col_dry must be finite and >= 0 molecules cm^-2 (got %g)", fn,
                           lay->col_dry);
    for (int g = 0; g < MIMIC_NGAS; g++)
        if (!(isfinite(lay->vmr[g]) && lay->vmr[g] >= 0))
            return mimic_error(MIMIC_EVALUE, "%s: vmr of %s must be finite and >= 0 (got %g)", fn,
                               mimic_rad_gas_name((mimic_rad_gas)g), lay->vmr[g]);
    for (int64_t i = 0; i < n; i++)
        tau[i] = 0;
    if (n == 0)
        return 0;
    double *k = mimic_malloc((size_t)n * sizeof *k);
    if (!k)
        return MIMIC_ENOMEM;
    int rc = 0;
    for (int g = 0; g < MIMIC_NGAS && !rc; g++) {
        double u = lay->vmr[g] * lay->col_dry;
        if (!(l->o.gases & (1u << g)) || u == 0)
            continue;
        rc = mimic_rad_lbl_absorption(l, (mimic_rad_gas)g, lay->p, lay->t, lay->vmr[MIMIC_GAS_H2O],
                                      MIMIC_RAD_LBL_ALL, n, nu, k);
        for (int64_t i = 0; i < n && !rc; i++)
            tau[i] += k[i] * u;
    }
    mimic_free(k);
    return rc;
}
