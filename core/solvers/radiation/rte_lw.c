/* Longwave radiative transfer without scattering (rad_rte.h): RTE's
 * "no-scattering" solver with its linear-in-tau source, angles by
 * Gauss-Jacobi quadrature or the diffusivity approximation, heating rates,
 * and a column driver that takes its gas optics through a callback.
 *
 * Per direction mu (slant factor D = 1/mu), each layer has transmissivity
 * T = exp(-D tau) and adds the radiance of mimic_rad_linear_source to a beam
 * crossing it; one sweep down from the top (no incident radiation), the
 * surface, one sweep up. Arrays keep the g-point fastest so every inner loop
 * runs over contiguous g-points (vectorisable; exp is the only call). */
#include "mimic/rad_rte.h"

#include <math.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static const double PI = 3.14159265358979323846;

/* Nodes and weights for int_0^1 f(mu) mu dmu (RTE's table, recomputed: the
 * roots of the degree-n polynomial orthogonal for the weight mu on [0, 1]). */
static const double gauss_mu[MIMIC_RAD_MAX_MU][MIMIC_RAD_MAX_MU] = {
    {1.0 / 1.66, 0, 0, 0},
    {0.35505102572168223, 0.84494897427831772, 0, 0},
    {0.212340538239153, 0.59053313555926523, 0.91141204048729585, 0},
    {0.13975986434378057, 0.41640956763108328, 0.72315698636187675, 0.94289580388548244},
};
static const double gauss_w[MIMIC_RAD_MAX_MU][MIMIC_RAD_MAX_MU] = {
    {0.5, 0, 0, 0},
    {0.18195861825602283, 0.31804138174397717, 0, 0},
    {0.069826979901454228, 0.22924110635958586, 0.20093191373895988, 0},
    {0.031180970950009157, 0.12984754760823036, 0.20346456801027335, 0.1355069134314871},
};

int mimic_rad_angles(int nmu, double *mu, double *w)
{
    if (nmu < 1 || nmu > MIMIC_RAD_MAX_MU)
        return mimic_error(MIMIC_EARG, "nmu = %d directions is out of range; use 1 (diffusivity angle) to %d "
                                       "(Gauss-Jacobi)", nmu, MIMIC_RAD_MAX_MU);
    for (int i = 0; i < nmu; i++) {
        if (mu)
            mu[i] = gauss_mu[nmu - 1][i];
        if (w)
            w[i] = gauss_w[nmu - 1][i];
    }
    return MIMIC_OK;
}

/* f(tau) = (1 - e^-tau)/tau - e^-tau, given a = 1 - e^-tau (from expm1: one
 * transcendental call per element, accurate for thin and thick layers alike).
 * Below 0.02 its Taylor series sum_k (-1)^(k+1) k/(k+1)! tau^k (k = 1..6):
 * the closed form would lose about eps/tau to cancellation there. */
static inline double lin_fact(double tau, double a)
{
    if (tau < 0.02)
        return tau * (1.0 / 2 - tau * (1.0 / 3 - tau * (1.0 / 8 - tau * (1.0 / 30 - tau * (1.0 / 144 - tau / 840)))));
    return a / tau - (1.0 - a);
}

double mimic_rad_linear_source(double tau_s, double b_lay, double b_exit)
{
    double a = -expm1(-tau_s);
    return a * b_exit + 2.0 * lin_fact(tau_s, a) * (b_lay - b_exit);
}

/* --- input checks ------------------------------------------------------------------ */

static int check_finite(const double *a, int64_t n, int ngpt, const char *what, int col, int nonneg)
{
    for (int64_t k = 0; k < n; k++)
        if (!isfinite(a[k]) || (nonneg && a[k] < 0))
            return mimic_error(MIMIC_EVALUE, "lw_solve: %s[col %d][%d][gpt %d] = %g; it must be finite%s (check the "
                                             "gas optics / sources that produced it)", what, col, (int)(k / ngpt),
                               (int)(k % ngpt), a[k], nonneg ? " and >= 0" : "");
    return MIMIC_OK;
}

/* Checks the inputs of column c (pointers already offset to the column). */
static int check_column(int c, int nlay, int ngpt, const double *tau, const double *lay_src, const double *lev_src,
                        const double *sfc_src, double emis, const double *emis_gpt)
{
    int64_t nl = (int64_t)nlay * ngpt;
    int rc;
    if ((rc = check_finite(tau, nl, ngpt, "tau", c, 1)) != MIMIC_OK)
        return rc;
    if (lay_src && (rc = check_finite(lay_src, nl, ngpt, "lay_src", c, 0)) != MIMIC_OK)
        return rc;
    if ((rc = check_finite(lev_src, nl + ngpt, ngpt, "lev_src", c, 0)) != MIMIC_OK)
        return rc;
    if ((rc = check_finite(sfc_src, ngpt, ngpt, "sfc_src", c, 0)) != MIMIC_OK)
        return rc;
    if (emis_gpt) {
        for (int g = 0; g < ngpt; g++)
            if (!(emis_gpt[g] >= 0 && emis_gpt[g] <= 1))
                return mimic_error(MIMIC_EVALUE, "lw_solve: sfc_emis_gpt[col %d][gpt %d] = %g; emissivity must be in "
                                                 "[0, 1]", c, g, emis_gpt[g]);
    } else if (!(emis >= 0 && emis <= 1))
        return mimic_error(MIMIC_EVALUE, "lw_solve: sfc_emis[col %d] = %g; emissivity must be in [0, 1]", c, emis);
    return MIMIC_OK;
}

static int check_sizes(const char *fn, int ncol, int nlay, int ngpt, int nmu)
{
    if (ncol < 1 || nlay < 1 || ngpt < 1)
        return mimic_error(MIMIC_EARG, "%s: ncol = %d, nlay = %d, ngpt = %d; all must be >= 1", fn, ncol, nlay, ngpt);
    if ((int64_t)(nlay + 1) * ngpt > ((int64_t)1 << 40) / 8)
        return mimic_error(MIMIC_EARG, "%s: nlay x ngpt = %d x %d is too large for one column's workspace", fn, nlay,
                           ngpt);
    if (nmu < 1 || nmu > MIMIC_RAD_MAX_MU)
        return mimic_error(MIMIC_EARG, "%s: nmu = %d directions is out of range; use 1 (diffusivity angle) to %d "
                                       "(Gauss-Jacobi)", fn, nmu, MIMIC_RAD_MAX_MU);
    return MIMIC_OK;
}

/* --- one column ------------------------------------------------------------------------ */

static int64_t ws_size(int nlay, int ngpt) { return 3 * (int64_t)nlay * ngpt + 2 * (int64_t)ngpt; }

/* Adds wf * rad into the per-gpt flux row (if any) and weight . rad * wf into *f. */
static inline void accumulate(int ngpt, double wf, const double *rad, const double *weight, double *f, double *gf)
{
    double s = 0;
    if (weight)
        for (int g = 0; g < ngpt; g++)
            s += weight[g] * rad[g];
    else
        for (int g = 0; g < ngpt; g++)
            s += rad[g];
    *f += wf * s;
    if (gf)
        for (int g = 0; g < ngpt; g++)
            gf[g] += wf * rad[g];
}

/* Fluxes of one column (all pointers offset to it; outputs overwritten). */
static void solve_column(int nlay, int ngpt, int nmu, const double *tau, const double *lay_src, const double *lev_src,
                         const double *sfc_src, double emis, const double *emis_gpt, const double *weight, double *fup,
                         double *fdn, double *gfup, double *gfdn, double *ws)
{
    int nlev = nlay + 1;
    int64_t nl = (int64_t)nlay * ngpt;
    double *trans = ws, *src_up = ws + nl, *src_dn = ws + 2 * nl, *rad = ws + 3 * nl;
    memset(fup, 0, (size_t)nlev * sizeof *fup);
    memset(fdn, 0, (size_t)nlev * sizeof *fdn);
    if (gfup)
        memset(gfup, 0, (size_t)(nlev * (int64_t)ngpt) * sizeof *gfup);
    if (gfdn)
        memset(gfdn, 0, (size_t)(nlev * (int64_t)ngpt) * sizeof *gfdn);
    for (int i = 0; i < nmu; i++) {
        double d = 1.0 / gauss_mu[nmu - 1][i], wf = 2.0 * PI * gauss_w[nmu - 1][i];
        for (int l = 0; l < nlay; l++) {
            const double *tl = tau + (int64_t)l * ngpt, *bt = lev_src + (int64_t)l * ngpt, *bb = bt + ngpt;
            const double *bl = lay_src ? lay_src + (int64_t)l * ngpt : NULL;
            /* trans = 1 - a loses T's relative precision below ~1e-16, an absolute
             * error of eps in a factor of the incoming radiance: harmless */
            double *tr = trans + (int64_t)l * ngpt, *su = src_up + (int64_t)l * ngpt, *sd = src_dn + (int64_t)l * ngpt;
            for (int g = 0; g < ngpt; g++) {
                double ts = d * tl[g], a = -expm1(-ts), t = 1.0 - a, f2 = 2.0 * lin_fact(ts, a);
                double blay = bl ? bl[g] : 0.5 * (bt[g] + bb[g]);
                tr[g] = t;
                sd[g] = a * bb[g] + f2 * (blay - bb[g]); /* leaves at the bottom */
                su[g] = a * bt[g] + f2 * (blay - bt[g]); /* leaves at the top */
            }
        }
        for (int g = 0; g < ngpt; g++)
            rad[g] = 0;
        accumulate(ngpt, wf, rad, weight, &fdn[0], gfdn);
        for (int l = 0; l < nlay; l++) {
            const double *tr = trans + (int64_t)l * ngpt, *sd = src_dn + (int64_t)l * ngpt;
            for (int g = 0; g < ngpt; g++)
                rad[g] = tr[g] * rad[g] + sd[g];
            accumulate(ngpt, wf, rad, weight, &fdn[l + 1], gfdn ? gfdn + (int64_t)(l + 1) * ngpt : NULL);
        }
        for (int g = 0; g < ngpt; g++) {
            double e = emis_gpt ? emis_gpt[g] : emis;
            rad[g] = (1.0 - e) * rad[g] + e * sfc_src[g];
        }
        accumulate(ngpt, wf, rad, weight, &fup[nlay], gfup ? gfup + (int64_t)nlay * ngpt : NULL);
        for (int l = nlay - 1; l >= 0; l--) {
            const double *tr = trans + (int64_t)l * ngpt, *su = src_up + (int64_t)l * ngpt;
            for (int g = 0; g < ngpt; g++)
                rad[g] = tr[g] * rad[g] + su[g];
            accumulate(ngpt, wf, rad, weight, &fup[l], gfup ? gfup + (int64_t)l * ngpt : NULL);
        }
    }
}

int mimic_rad_lw_solve(const mimic_rad_lw_input *in, const mimic_rad_lw_output *out)
{
    if (!in || !out)
        return mimic_error(MIMIC_EARG, "lw_solve: input and output must not be NULL");
    int rc = check_sizes("lw_solve", in->ncol, in->nlay, in->ngpt, in->nmu);
    if (rc != MIMIC_OK)
        return rc;
    if (!in->tau || !in->lev_src || !in->sfc_src || (!in->sfc_emis && !in->sfc_emis_gpt) || !out->flux_up ||
        !out->flux_dn)
        return mimic_error(MIMIC_EARG, "lw_solve: tau, lev_src, sfc_src, sfc_emis (or sfc_emis_gpt), flux_up and "
                                       "flux_dn are required (got a NULL)");
    int ncol = in->ncol, nlay = in->nlay, ngpt = in->ngpt, nlev = nlay + 1;
    int64_t nl = (int64_t)nlay * ngpt, nv = (int64_t)nlev * ngpt;
    if (in->weight && (rc = check_finite(in->weight, ngpt, ngpt, "weight", 0, 0)) != MIMIC_OK)
        return rc;
    for (int c = 0; c < ncol; c++) {
        rc = check_column(c, nlay, ngpt, in->tau + c * nl, in->lay_src ? in->lay_src + c * nl : NULL,
                          in->lev_src + c * nv, in->sfc_src + (int64_t)c * ngpt, in->sfc_emis ? in->sfc_emis[c] : 0,
                          in->sfc_emis_gpt ? in->sfc_emis_gpt + (int64_t)c * ngpt : NULL);
        if (rc != MIMIC_OK)
            return rc;
    }
    int nth = 1;
#ifdef _OPENMP
    /* Threads only when there is enough work to pay for them. */
    if ((double)ncol * (double)nl * in->nmu > 2e4)
        nth = omp_get_max_threads();
#endif
    if (nth > ncol)
        nth = ncol;
    int64_t wsz = ws_size(nlay, ngpt);
    double *ws = mimic_malloc((size_t)(wsz * nth) * sizeof *ws);
    if (!ws)
        return MIMIC_ENOMEM;
#ifdef _OPENMP
#pragma omp parallel for num_threads(nth) schedule(static) if (nth > 1)
#endif
    for (int c = 0; c < ncol; c++) {
        int th = 0;
#ifdef _OPENMP
        th = omp_get_thread_num();
#endif
        solve_column(nlay, ngpt, in->nmu, in->tau + c * nl, in->lay_src ? in->lay_src + c * nl : NULL,
                     in->lev_src + c * nv, in->sfc_src + (int64_t)c * ngpt, in->sfc_emis ? in->sfc_emis[c] : 0,
                     in->sfc_emis_gpt ? in->sfc_emis_gpt + (int64_t)c * ngpt : NULL, in->weight,
                     out->flux_up + (int64_t)c * nlev, out->flux_dn + (int64_t)c * nlev,
                     out->gpt_flux_up ? out->gpt_flux_up + c * nv : NULL,
                     out->gpt_flux_dn ? out->gpt_flux_dn + c * nv : NULL, ws + th * wsz);
    }
    mimic_free(ws);
    return MIMIC_OK;
}

int mimic_rad_heating_rate(int ncol, int nlay, const double *p_lev, const double *flux_up, const double *flux_dn,
                           double *heating)
{
    if (ncol < 1 || nlay < 1 || !p_lev || !flux_up || !flux_dn || !heating)
        return mimic_error(MIMIC_EARG, "heating_rate: need ncol, nlay >= 1 (got %d, %d) and non-NULL arrays", ncol,
                           nlay);
    for (int c = 0; c < ncol; c++) {
        const double *p = p_lev + (int64_t)c * (nlay + 1);
        for (int l = 0; l < nlay; l++)
            if (!(p[l + 1] > p[l]) || !isfinite(p[l + 1]) || !isfinite(p[l]))
                return mimic_error(MIMIC_EVALUE, "heating_rate: p_lev[col %d] is not finite and increasing at level "
                                                 "%d (%g, %g Pa); index 0 is the top of the atmosphere", c, l, p[l],
                                   p[l + 1]);
    }
    const double k = MIMIC_RAD_G / MIMIC_RAD_CP_DRY * 86400.0;
    for (int c = 0; c < ncol; c++) {
        int64_t o = (int64_t)c * (nlay + 1);
        const double *p = p_lev + o, *u = flux_up + o, *d = flux_dn + o;
        double *h = heating + (int64_t)c * nlay;
        for (int l = 0; l < nlay; l++)
            h[l] = k * ((u[l + 1] - d[l + 1]) - (u[l] - d[l])) / (p[l + 1] - p[l]);
    }
    return MIMIC_OK;
}

/* --- column driver ------------------------------------------------------------------------ */

int mimic_rad_lw_fluxes(const mimic_rad_atm *atm, const mimic_rad_optics *opt, int nmu, double *flux_up,
                        double *flux_dn, double *heating)
{
    if (!atm || !opt || !opt->fn || !flux_up || !flux_dn)
        return mimic_error(MIMIC_EARG, "lw_fluxes: atm, opt, opt->fn, flux_up and flux_dn must not be NULL");
    int ncol = atm->ncol, nlay = atm->nlay, ngpt = opt->ngpt, nlev = nlay + 1;
    int rc = check_sizes("lw_fluxes", ncol, nlay, ngpt, nmu);
    if (rc != MIMIC_OK)
        return rc;
    if (!atm->p_lay || !atm->t_lay || !atm->p_lev || !atm->t_lev || !atm->t_sfc || !atm->sfc_emis || !atm->vmr ||
        !opt->nu1 || !opt->nu2)
        return mimic_error(MIMIC_EARG, "lw_fluxes: every array of the atmosphere (p_lay, t_lay, p_lev, t_lev, t_sfc, "
                                       "sfc_emis, vmr) and the band limits nu1, nu2 are required (got a NULL)");
    for (int c = 0; c < ncol; c++) {
        const double *p = atm->p_lev + (int64_t)c * nlev;
        for (int l = 0; l < nlay; l++)
            if (!(p[l + 1] > p[l]) || !(p[l] >= 0) || !isfinite(p[l + 1]))
                return mimic_error(MIMIC_EVALUE, "lw_fluxes: p_lev[col %d] is not finite, >= 0 and increasing at level "
                                                 "%d (%g, %g Pa); index 0 is the top of the atmosphere", c, l, p[l],
                                   p[l + 1]);
        for (int l = 0; l < nlay; l++)
            for (int g = 0; g < MIMIC_NGAS; g++) {
                double v = atm->vmr[((int64_t)c * nlay + l) * MIMIC_NGAS + g];
                if (!(v >= 0) || !isfinite(v))
                    return mimic_error(MIMIC_EVALUE, "lw_fluxes: vmr of %s at [col %d][lay %d] is %g; mixing ratios "
                                                     "must be finite and >= 0", mimic_rad_gas_name((mimic_rad_gas)g),
                                       c, l, v);
            }
    }
    int64_t nl = (int64_t)nlay * ngpt, nv = (int64_t)nlev * ngpt;
    /* layers | tau, frac, lay_src (nl each) | lev_frac, lev_src (nv each) | sfc_src | solver */
    size_t nlay_dbl = ((size_t)nlay * sizeof(mimic_rad_layer) + sizeof(double) - 1) / sizeof(double);
    int64_t ndbl = (int64_t)nlay_dbl + 3 * nl + 2 * nv + ngpt + ws_size(nlay, ngpt);
    double *ws = mimic_malloc((size_t)ndbl * sizeof *ws);
    if (!ws)
        return MIMIC_ENOMEM;
    mimic_rad_layer *lay = (mimic_rad_layer *)ws;
    double *tau = ws + nlay_dbl, *frac = tau + nl, *lay_src = frac + nl, *lev_frac = lay_src + nl,
           *lev_src = lev_frac + nv, *sfc_src = lev_src + nv, *solver_ws = sfc_src + ngpt;
    for (int c = 0; c < ncol && rc == MIMIC_OK; c++) {
        const double *plev = atm->p_lev + (int64_t)c * nlev, *tlev = atm->t_lev + (int64_t)c * nlev;
        const double *tlay = atm->t_lay + (int64_t)c * nlay;
        for (int l = 0; l < nlay; l++) {
            lay[l].p = atm->p_lay[(int64_t)c * nlay + l];
            lay[l].t = tlay[l];
            memcpy(lay[l].vmr, atm->vmr + ((int64_t)c * nlay + l) * MIMIC_NGAS, sizeof lay[l].vmr);
            lay[l].col_dry = mimic_rad_col_dry(plev[l], plev[l + 1], lay[l].vmr[MIMIC_GAS_H2O]);
        }
        /* NaN marks what the callback left unset: the checks below name it. */
        for (int64_t k = 0; k < nl; k++)
            tau[k] = frac[k] = NAN;
        int cb = opt->fn(opt->ud, lay, nlay, tau, frac);
        if (cb != 0) {
            rc = cb < 0 && mimic_errcode() == cb
                     ? cb
                     : mimic_error(MIMIC_EVALUE, "lw_fluxes: the optics callback failed on column %d (status %d)", c,
                                   cb);
            break;
        }
        for (int64_t k = 0; k < nl; k++)
            if (!(tau[k] >= 0) || !isfinite(tau[k]) || !(frac[k] >= 0) || !isfinite(frac[k])) {
                rc = mimic_error(MIMIC_EVALUE, "lw_fluxes: the optics callback gave tau = %g, planck_frac = %g at "
                                               "[col %d][lay %d][gpt %d]; both must be finite and >= 0 (NaN: not "
                                               "set)", tau[k], frac[k], c, (int)(k / ngpt), (int)(k % ngpt));
                break;
            }
        if (rc != MIMIC_OK)
            break;
        for (int g = 0; g < ngpt; g++) {
            lev_frac[g] = frac[g];
            lev_frac[(int64_t)nlay * ngpt + g] = frac[(int64_t)(nlay - 1) * ngpt + g];
        }
        for (int l = 1; l < nlay; l++)
            for (int g = 0; g < ngpt; g++)
                lev_frac[(int64_t)l * ngpt + g] = 0.5 * (frac[(int64_t)(l - 1) * ngpt + g] + frac[(int64_t)l * ngpt + g]);
        if ((rc = mimic_rad_planck_source(nlay, tlay, ngpt, opt->nu1, opt->nu2, frac, lay_src)) != MIMIC_OK ||
            (rc = mimic_rad_planck_source(nlev, tlev, ngpt, opt->nu1, opt->nu2, lev_frac, lev_src)) != MIMIC_OK ||
            (rc = mimic_rad_planck_source(1, atm->t_sfc + c, ngpt, opt->nu1, opt->nu2, frac + (nlay - 1) * (int64_t)ngpt,
                                          sfc_src)) != MIMIC_OK)
            break;
        if ((rc = check_column(c, nlay, ngpt, tau, lay_src, lev_src, sfc_src, atm->sfc_emis[c], NULL)) != MIMIC_OK)
            break;
        if (opt->weight && (rc = check_finite(opt->weight, ngpt, ngpt, "weight", c, 0)) != MIMIC_OK)
            break;
        solve_column(nlay, ngpt, nmu, tau, lay_src, lev_src, sfc_src, atm->sfc_emis[c], NULL, opt->weight,
                     flux_up + (int64_t)c * nlev, flux_dn + (int64_t)c * nlev, NULL, NULL, solver_ws);
    }
    mimic_free(ws);
    if (rc == MIMIC_OK && heating)
        rc = mimic_rad_heating_rate(ncol, nlay, atm->p_lev, flux_up, flux_dn, heating);
    return rc;
}
