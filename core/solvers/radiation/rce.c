/* Single-column radiative-convective equilibrium (rad_rce.h). */
#include "mimic/rad_rce.h"

#include <math.h>
#include <string.h>

#define C2 1.4387769 /* h c / k, cm K */
#define DIFFUSIVITY 1.66
#define PI 3.14159265358979323846

void mimic_rad_rce_config_default(mimic_rad_rce_config *c)
{
    memset(c, 0, sizeof *c);
    c->t_sfc_init = 288;
    c->sfc_emis = 1;
    c->sfc_heat_capacity = 1e7;
    c->solar_sfc = 170;
    c->solar_atm = 70;
    c->solar_o3_fraction = 0.2;
    c->lapse_rate = 6.5e-3;
    c->sfc_convective = 1;
    c->rh_sfc = 0.77;
    c->h2o_min = 3e-6;
    c->nmu = 1;
}

void mimic_rad_rce_run_opts_default(mimic_rad_rce_run_opts *o)
{
    o->dt = 86400;
    o->tol = 1e-3;
    o->max_steps = 20000;
}

/* Alduchov & Eskridge (1996), over water / ice: as lua/mimic/rfmip.lua. */
static double sat_pressure(double t)
{
    double c = t - 273.15;
    if (t >= 273.15)
        return 610.94 * exp(17.625 * c / (c + 243.04));
    return 611.21 * exp(22.587 * c / (c + 273.86));
}

double mimic_rad_rce_h2o(double p, double t, double p_sfc, double rh_sfc, double h2o_min)
{
    double q = p / p_sfc, rh = q > 0.02 ? rh_sfc * (q - 0.02) / 0.98 : 0;
    double es = sat_pressure(t), v = 0;
    if (rh > 0 && rh * es < 0.5 * p) {
        v = rh * es / (p - rh * es);
        if (es < 0.5 * p && v > es / (p - es)) /* saturation cap (rh_sfc > 1 or rounding) */
            v = es / (p - es);
    }
    return v > h2o_min ? v : h2o_min;
}

/* --- convective adjustment -------------------------------------------------------- */

int mimic_rad_convective_adjust(int n, const double *p, const double *cap, double lapse_rate, double *t, int *block)
{
    if (n < 1 || !p || !cap || !t)
        return mimic_error(MIMIC_EARG, "convective_adjust: need n >= 1 and non-NULL p, cap, t");
    if (!(lapse_rate > 0) || !isfinite(lapse_rate))
        return mimic_error(MIMIC_EARG, "convective_adjust: lapse_rate is %g K/m; pass a finite value > 0 "
                                       "(6.5e-3 moist, 9.8e-3 dry)", lapse_rate);
    for (int i = 0; i < n; i++) {
        if (!(p[i] > 0) || !isfinite(p[i]) || (i > 0 && !(p[i] > p[i - 1])))
            return mimic_error(MIMIC_EVALUE, "convective_adjust: p[%d] = %g Pa; pressures must be finite, > 0 and "
                                             "increasing (top first)", i, p[i]);
        if (!(cap[i] > 0) || !isfinite(cap[i]) || !(t[i] > 0) || !isfinite(t[i]))
            return mimic_error(MIMIC_EVALUE, "convective_adjust: cap[%d] = %g, t[%d] = %g; both must be finite and > 0",
                               i, cap[i], i, t[i]);
    }
    double a = MIMIC_RAD_R_DRY * lapse_rate / MIMIC_RAD_G, p0 = p[n - 1];
    /* Blocks on a stack, bottom first: [lo, hi] point range (lo = top index),
     * E = sum cap t, W = sum cap pi; theta = E / W. Kept in-place in three
     * parallel arrays indexed by stack position: no allocation. The stack is
     * at most n long; we reuse `block` when given, else a small recursion-free
     * second pass recomputes membership. */
    /* Blocks on a stack, bottom first: hi = the block's lowest point,
     * E = sum cap t, W = sum cap pi (pi = (p / p0)^a); theta = E / W. */
    int top = -1;
    double *E = mimic_malloc((size_t)n * 2 * sizeof *E);
    int *hi = mimic_malloc((size_t)n * sizeof *hi);
    if (!E || !hi) {
        mimic_free(E);
        mimic_free(hi);
        return mimic_error(MIMIC_ENOMEM, "convective_adjust: out of memory for %d points", n);
    }
    double *W = E + n;
    for (int i = n - 1; i >= 0; i--) {
        double pi = pow(p[i] / p0, a);
        top++;
        E[top] = cap[i] * t[i], W[top] = cap[i] * pi, hi[top] = i;
        /* the new (upper) block is unstable if its theta is below the one beneath;
         * the 1e-12 merges neutral neighbours left by a previous adjustment */
        while (top > 0 && E[top] / W[top] < E[top - 1] / W[top - 1] * (1 + 1e-12)) {
            E[top - 1] += E[top], W[top - 1] += W[top];
            top--;
        }
    }
    /* Blocks are contiguous: block b spans points (hi[b+1], hi[b]] going up, i.e.
     * from hi[b] up to hi[b+1] + 1 (the next block's bottom is above). */
    for (int b = 0; b <= top; b++) {
        int upper = b < top ? hi[b + 1] + 1 : 0;
        double theta = E[b] / W[b];
        if (upper == hi[b]) { /* unmixed: leave its temperature bit-identical */
            if (block)
                block[upper] = upper;
            continue;
        }
        for (int i = upper; i <= hi[b]; i++) {
            t[i] = theta * pow(p[i] / p0, a);
            if (block)
                block[i] = hi[b];
        }
    }
    mimic_free(E);
    mimic_free(hi);
    return MIMIC_OK;
}

/* --- init / free -------------------------------------------------------------------- */

void mimic_rad_rce_free(mimic_rad_rce *s)
{
    if (!s)
        return;
    mimic_free(s->p_lev);
    mimic_free(s->block);
    memset(s, 0, sizeof *s);
}

int mimic_rad_rce_init(mimic_rad_rce *s, const mimic_rad_rce_config *c)
{
    if (!s || !c)
        return mimic_error(MIMIC_EARG, "rce_init: state and config must not be NULL");
    memset(s, 0, sizeof *s);
    int n = c->nlay;
    if (n < 2 || n > 1 << 20 || !c->p_lev)
        return mimic_error(MIMIC_EARG, "rce_init: need nlay in 2..2^20 (got %d) and p_lev [nlay+1]", n);
    for (int l = 0; l <= n; l++)
        if (!isfinite(c->p_lev[l]) || !(c->p_lev[l] >= 0) || (l > 0 && !(c->p_lev[l] > c->p_lev[l - 1])))
            return mimic_error(MIMIC_EVALUE, "rce_init: p_lev[%d] = %g Pa; levels must be finite, >= 0 and increasing "
                                             "(index 0 = top of the atmosphere)", l, c->p_lev[l]);
    if (c->p_lay)
        for (int l = 0; l < n; l++)
            if (!(c->p_lay[l] > c->p_lev[l] && c->p_lay[l] < c->p_lev[l + 1]))
                return mimic_error(MIMIC_EVALUE, "rce_init: p_lay[%d] = %g Pa is not inside its layer (%g, %g Pa)", l,
                                   c->p_lay[l], c->p_lev[l], c->p_lev[l + 1]);
#define RANGE(x, lo, hi, hint)                                                                                  \
    if (!(c->x >= (lo) && c->x <= (hi)))                                                                        \
        return mimic_error(MIMIC_EARG, "rce_init: " #x " = %g is outside [%g, %g]; " hint, c->x, (double)(lo), \
                           (double)(hi));
    RANGE(t_sfc_init, 50, 1000, "give a surface temperature in K")
    RANGE(sfc_emis, 0, 1, "an emissivity")
    RANGE(sfc_heat_capacity, 1e-300, 1e12, "a slab heat capacity in J m^-2 K^-1 (1e7 = 2.4 m of water)")
    RANGE(solar_sfc, 0, 1e4, "absorbed solar fluxes in W m^-2")
    RANGE(solar_atm, 0, 1e4, "absorbed solar fluxes in W m^-2")
    RANGE(solar_o3_fraction, 0, 1, "a fraction")
    RANGE(lapse_rate, 0, 0.1, "a lapse rate in K/m (6.5e-3), 0 for no convection")
    RANGE(rh_sfc, -1, 1, "a relative humidity in [0, 1], or <= 0 to keep h2o fixed")
    RANGE(h2o_min, 0, 0.1, "a mixing ratio in mol/mol")
#undef RANGE
    if (c->nmu < 1 || c->nmu > MIMIC_RAD_MAX_MU)
        return mimic_error(MIMIC_EARG, "rce_init: nmu = %d; use 1..%d directions", c->nmu, MIMIC_RAD_MAX_MU);
    if (c->t_init)
        for (int l = 0; l < n; l++)
            if (!(c->t_init[l] > 0 && c->t_init[l] < 1000))
                return mimic_error(MIMIC_EVALUE, "rce_init: t_init[%d] = %g K; temperatures must be in (0, 1000) K", l,
                                   c->t_init[l]);
    if (c->vmr)
        for (int64_t i = 0; i < (int64_t)n * MIMIC_NGAS; i++)
            if (!(c->vmr[i] >= 0) || !isfinite(c->vmr[i]))
                return mimic_error(MIMIC_EVALUE, "rce_init: vmr[lay %d][%s] = %g; mixing ratios must be finite, >= 0",
                                   (int)(i / MIMIC_NGAS), mimic_rad_gas_name((mimic_rad_gas)(i % MIMIC_NGAS)), c->vmr[i]);

    /* one block of doubles: p_lev, t_lev, flux_up, flux_dn (n+1 each), p_lay, t_lay,
     * solar, lw, tendency (n each), vmr (n NGAS), work (4 (n+1)); ints: block, prev_block, convective */
    size_t nd = 4 * (size_t)(n + 1) + 5 * (size_t)n + (size_t)n * MIMIC_NGAS + 4 * (size_t)(n + 1);
    double *d = mimic_calloc(nd, sizeof *d);
    int *iw = mimic_calloc(3 * (size_t)n + 3, sizeof *iw);
    if (!d || !iw) {
        mimic_free(d);
        mimic_free(iw);
        return mimic_error(MIMIC_ENOMEM, "rce_init: out of memory for %d layers", n);
    }
    s->p_lev = d, d += n + 1;
    s->t_lev = d, d += n + 1;
    s->flux_up = d, d += n + 1;
    s->flux_dn = d, d += n + 1;
    s->p_lay = d, d += n;
    s->t_lay = d, d += n;
    s->solar_heating = d, d += n;
    s->lw_heating = d, d += n;
    s->tendency = d, d += n;
    s->vmr = d, d += (size_t)n * MIMIC_NGAS;
    s->work = d;
    s->block = iw, s->prev_block = iw + n + 1, s->convective = iw + 2 * (n + 1);
    s->nlay = n;
    s->cfg = *c;
    memcpy(s->p_lev, c->p_lev, (size_t)(n + 1) * sizeof(double));
    double ps = s->p_lev[n], a65 = MIMIC_RAD_R_DRY * 6.5e-3 / MIMIC_RAD_G;
    for (int l = 0; l < n; l++) {
        s->p_lay[l] = c->p_lay ? c->p_lay[l] : 0.5 * (s->p_lev[l] + s->p_lev[l + 1]);
        double t0 = c->t_sfc_init * pow(s->p_lay[l] / ps, a65);
        s->t_lay[l] = c->t_init ? c->t_init[l] : (t0 > 200 ? t0 : 200);
    }
    if (c->vmr)
        memcpy(s->vmr, c->vmr, (size_t)n * MIMIC_NGAS * sizeof(double));
    s->t_sfc = c->t_sfc_init;
    s->cfg.p_lev = s->p_lev, s->cfg.p_lay = s->p_lay, s->cfg.vmr = s->vmr, s->cfg.t_init = NULL;
    for (int i = 0; i <= n; i++)
        s->prev_block[i] = i;

    /* prescribed solar heating (header, step 4), K/day */
    double so3 = 0, sh2o = 0;
    for (int l = 0; l < n; l++) {
        double dp = s->p_lev[l + 1] - s->p_lev[l], lp = log(s->p_lay[l] / 300.0), q = s->p_lay[l] / ps;
        so3 += exp(-0.5 * lp * lp) * dp, sh2o += q * q * dp;
    }
    for (int l = 0; l < n; l++) {
        double dp = s->p_lev[l + 1] - s->p_lev[l], lp = log(s->p_lay[l] / 300.0), q = s->p_lay[l] / ps;
        double A = c->solar_atm * (c->solar_o3_fraction * exp(-0.5 * lp * lp) * dp / so3 +
                                   (1 - c->solar_o3_fraction) * q * q * dp / sh2o);
        s->solar_heating[l] = MIMIC_RAD_G * A / (MIMIC_RAD_CP_DRY * dp) * 86400;
    }
    return MIMIC_OK;
}

/* --- one step ------------------------------------------------------------------------- */

/* Wraps the caller's optics to keep tau and the Planck fractions (the
 * preconditioner needs them). */
typedef struct capture {
    const mimic_rad_optics *opt;
    double *tau, *frac; /* [nlay][ngpt] */
} capture;

static int capture_fn(void *ud, const mimic_rad_layer *lay, int nlay, double *tau, double *frac)
{
    capture *cp = ud;
    int rc = cp->opt->fn(cp->opt->ud, lay, nlay, tau, frac);
    if (rc == MIMIC_OK) {
        size_t sz = (size_t)nlay * (size_t)cp->opt->ngpt * sizeof(double);
        memcpy(cp->tau, tau, sz);
        memcpy(cp->frac, frac, sz);
    }
    return rc;
}

/* dB/dT of g-point g: band-integrated, or monochromatic when nu1 == nu2. */
static double dplanck(const mimic_rad_optics *opt, int g, double t)
{
    double a = opt->nu1[g], b = opt->nu2[g];
    if (a == b) {
        double x = C2 * a / t;
        return a > 0 ? mimic_rad_planck(a, t) * x / (t * -expm1(-x)) : 0;
    }
    return mimic_rad_planck_band_dt(a, b, t);
}

int mimic_rad_rce_step(mimic_rad_rce *s, const mimic_rad_optics *opt, double dt)
{
    if (!s || !s->p_lev || !opt || !opt->fn || !opt->nu1 || !opt->nu2)
        return mimic_error(MIMIC_EARG, "rce_step: need an initialised state (mimic_rad_rce_init) and optics with "
                                       "fn, nu1, nu2");
    if (!(dt > 0) || !isfinite(dt))
        return mimic_error(MIMIC_EARG, "rce_step: dt = %g s; pass a finite time step > 0 (e.g. 86400)", dt);
    if (opt->ngpt < 1)
        return mimic_error(MIMIC_EARG, "rce_step: optics ngpt = %d; need >= 1", opt->ngpt);
    const mimic_rad_rce_config *c = &s->cfg;
    int n = s->nlay, ngpt = opt->ngpt;
    double ps = s->p_lev[n], g = MIMIC_RAD_G, cp = MIMIC_RAD_CP_DRY, Cs = c->sfc_heat_capacity;

    /* 1. water vapour */
    if (c->rh_sfc > 0)
        for (int l = 0; l < n; l++)
            s->vmr[(size_t)l * MIMIC_NGAS + MIMIC_GAS_H2O] =
                mimic_rad_rce_h2o(s->p_lay[l], s->t_lay[l], ps, c->rh_sfc, c->h2o_min);
    /* 2. levels */
    s->t_lev[0] = s->t_lay[0];
    s->t_lev[n] = s->t_lay[n - 1];
    for (int l = 1; l < n; l++) {
        double w = log(s->p_lev[l] / s->p_lay[l - 1]) / log(s->p_lay[l] / s->p_lay[l - 1]);
        s->t_lev[l] = s->t_lay[l - 1] + w * (s->t_lay[l] - s->t_lay[l - 1]);
    }
    /* 3. longwave */
    size_t ntg = (size_t)n * (size_t)ngpt;
    double *tf = mimic_malloc(2 * ntg * sizeof *tf);
    if (!tf)
        return mimic_error(MIMIC_ENOMEM, "rce_step: out of memory for %d layers x %d g-points", n, ngpt);
    capture cap = {opt, tf, tf + ntg};
    mimic_rad_optics wrapped = *opt;
    wrapped.fn = capture_fn, wrapped.ud = &cap;
    double emis = c->sfc_emis, ts = s->t_sfc;
    mimic_rad_atm atm = {1, n, s->p_lay, s->t_lay, s->p_lev, s->t_lev, &ts, &emis, s->vmr};
    int rc = mimic_rad_lw_fluxes(&atm, &wrapped, c->nmu, s->flux_up, s->flux_dn, s->lw_heating);
    if (rc != MIMIC_OK) {
        mimic_free(tf);
        return rc;
    }
    double N = c->solar_sfc + s->flux_dn[n] - s->flux_up[n];
    s->olr = s->flux_up[0];
    s->toa_imbalance = c->solar_atm + c->solar_sfc - (s->flux_up[0] - s->flux_dn[0]);
    s->sfc_net_rad = N;

    /* 5. damping rates j (1/s) and heat capacities, surface as point n */
    double *j = s->work, *capc = s->work + n + 1, *f = s->work + 2 * (n + 1);
    for (int l = 0; l < n; l++) {
        double dp = s->p_lev[l + 1] - s->p_lev[l], sum = 0;
        const double *tau = cap.tau + (size_t)l * ngpt, *fr = cap.frac + (size_t)l * ngpt;
        for (int k = 0; k < ngpt; k++)
            sum += (opt->weight ? opt->weight[k] : 1) * fr[k] * -expm1(-DIFFUSIVITY * tau[k]) *
                   dplanck(opt, k, s->t_lay[l]);
        capc[l] = cp * dp / g;
        j[l] = 2 * PI * sum / capc[l];
    }
    mimic_free(tf);
    capc[n] = Cs;
    j[n] = 4 * emis * MIMIC_RAD_STEFAN * ts * ts * ts / Cs;
    /* one factor per previous block: blocks are contiguous runs ending at prev_block */
    for (int i = 0; i <= n;) {
        int hi = s->prev_block[i];
        if (hi < i || hi > n)
            hi = i;
        double cj = 0, cc = 0;
        for (int k = i; k <= hi; k++)
            cj += capc[k] * j[k], cc += capc[k];
        for (int k = i; k <= hi; k++)
            f[k] = 1 / (1 + dt * cj / cc);
        i = hi + 1;
    }
    double *tn = s->tendency; /* new layer temperatures, temporarily */
    for (int l = 0; l < n; l++)
        tn[l] = s->t_lay[l] + dt * f[l] * (s->lw_heating[l] + s->solar_heating[l]) / 86400;
    double tsn = ts + dt * f[n] * N / Cs;
    for (int l = 0; l < n; l++)
        if (!(tn[l] > 0 && tn[l] < 1000)) {
            double bad = tn[l];
            memset(tn, 0, (size_t)n * sizeof *tn);
            return mimic_error(MIMIC_EVALUE, "rce_step: layer %d temperature would become %g K (from %g K); the "
                                             "optics or the configuration is unphysical", l, bad, s->t_lay[l]);
        }
    if (!(tsn > 0 && tsn < 1000))
        return mimic_error(MIMIC_EVALUE, "rce_step: surface temperature would become %g K (from %g K)", tsn, ts);

    double ts_pre = tsn;
    /* 6. convective adjustment */
    for (int i = 0; i <= n; i++)
        s->block[i] = i;
    if (c->lapse_rate > 0) {
        /* the surface joins as point n at p = ps */
        int m = c->sfc_convective ? n + 1 : n;
        double *tt = mimic_malloc((size_t)(n + 1) * 2 * sizeof *tt);
        if (!tt)
            return mimic_error(MIMIC_ENOMEM, "rce_step: out of memory");
        double *pv = tt + n + 1;
        for (int l = 0; l < n; l++)
            tt[l] = tn[l], pv[l] = s->p_lay[l];
        tt[n] = tsn, pv[n] = ps;
        rc = mimic_rad_convective_adjust(m, pv, capc, c->lapse_rate, tt, s->block);
        if (rc == MIMIC_OK) {
            for (int l = 0; l < n; l++)
                tn[l] = tt[l];
            tsn = tt[n];
        }
        mimic_free(tt);
        if (rc != MIMIC_OK)
            return rc;
    }
    /* residuals and commit */
    double mx = fabs(tsn - ts) / (dt * f[n]) * 86400;
    for (int l = 0; l < n; l++) {
        double r = (tn[l] - s->t_lay[l]) / (dt * f[l]) * 86400;
        s->t_lay[l] = tn[l];
        s->tendency[l] = r;
        if (fabs(r) > mx)
            mx = fabs(r);
    }
    /* a layer is convective when it shares a block with another point */
    for (int l = 0; l < n; l++)
        s->convective[l] = (l > 0 && s->block[l - 1] == s->block[l]) || s->block[l + 1] == s->block[l];
    /* the surface's convective flux: the adjustment's energy change per unit
     * (unpreconditioned) time, as the residual */
    s->sfc_conv_flux = Cs * (ts_pre - tsn) / (dt * f[n]);
    s->sfc_imbalance = N - s->sfc_conv_flux;
    s->t_sfc = tsn;
    s->max_tendency = mx;
    memcpy(s->prev_block, s->block, (size_t)(n + 1) * sizeof(int));
    s->steps++;
    return MIMIC_OK;
}

int mimic_rad_rce_run(mimic_rad_rce *s, const mimic_rad_optics *opt, const mimic_rad_rce_run_opts *ro,
                      mimic_rad_rce_progress_fn progress, void *ud)
{
    mimic_rad_rce_run_opts d;
    mimic_rad_rce_run_opts_default(&d);
    if (!ro)
        ro = &d;
    if (!(ro->tol > 0) || ro->max_steps < 1)
        return mimic_error(MIMIC_EARG, "rce_run: tol = %g K/day and max_steps = %lld; both must be > 0", ro->tol,
                           (long long)ro->max_steps);
    if (!s)
        return mimic_error(MIMIC_EARG, "rce_run: state must not be NULL");
    s->converged = 0;
    for (int64_t k = 0; k < ro->max_steps; k++) {
        int rc = mimic_rad_rce_step(s, opt, ro->dt);
        if (rc != MIMIC_OK)
            return rc;
        if (s->max_tendency < ro->tol) {
            s->converged = 1;
            if (progress)
                progress(ud, s);
            break;
        }
        if (progress && progress(ud, s))
            break;
    }
    return MIMIC_OK;
}
