/* mimic solvers — radiation: a single-column radiative-convective equilibrium
 * (RCE) model, the a-posteriori host of the radiation use case (issue #9).
 * Part of libmimic_solvers.
 *
 * Column: nlay layers on FIXED pressure levels (rad_atmos.h conventions:
 * index 0 = top, level nlay = surface), a surface slab below. Prognostic:
 * layer temperatures and the surface (skin) temperature. One step:
 *
 *  1. water vapour at fixed relative humidity (Manabe & Wetherald 1967):
 *     RH(p) = rh_sfc (p/ps - 0.02) / (1 - 0.02) (0 above p = 0.02 ps),
 *     h2o = RH e_s(T) / (p - RH e_s(T)) mol/mol dry air, capped at saturation
 *     e_s / (p - e_s) and floored at h2o_min; e_s over water at T >= 273.15 K,
 *     over ice below (Alduchov & Eskridge 1996, as lua/mimic/rfmip.lua).
 *     rh_sfc <= 0 keeps the configured h2o profile fixed.
 *  2. level temperatures: interior levels linear in ln p between the adjacent
 *     layers; the top level and the surface level take the temperature of
 *     the layer below / above them (isothermal extrapolation).
 *  3. longwave fluxes and heating from mimic_rad_lw_fluxes with the caller's
 *     optics callback; surface net flux
 *     N = solar_sfc + F_dn(sfc) - F_up(sfc) (W m^-2).
 *  4. prescribed solar heating: the atmosphere absorbs solar_atm W m^-2,
 *     a fraction solar_o3_fraction by stratospheric ozone and the rest by
 *     tropospheric water vapour, distributed per unit pressure as
 *       w_o3(p)  = exp(-ln^2(p / 300 Pa) / 2)    (peak near 3 hPa)
 *       w_h2o(p) = (p / ps)^2
 *     layer l absorbs A_l = solar_atm [f w_o3(p_l) dp_l / sum(w_o3 dp)
 *     + (1 - f) w_h2o(p_l) dp_l / sum(w_h2o dp)] (normalised on the grid, so
 *     sum A_l = solar_atm exactly) and heats at g A_l / (cp dp_l).
 *     A column absorbing 240 W m^-2 in all is e.g. solar_atm = 70,
 *     solar_sfc = 170.
 *  5. time step (semi-implicit, "diagonally preconditioned" Euler):
 *     T_l += dt H_l / (1 + dt j_b), T_s += dt (N / C_s) / (1 + dt j_b),
 *     H_l = LW + solar heating (K/s); j_l = g / (cp dp_l) sum_g w_g frac_g
 *     2 pi (1 - exp(-1.66 tau_g)) dB_g/dT (the layer's own emission
 *     derivative, an upper bound of its radiative damping rate), j_s =
 *     4 e sigma T_s^3 / C_s, and j_b the heat-capacity-weighted mean of j
 *     over the convective block the layer (or surface) belonged to after the
 *     previous step's adjustment (the layer alone otherwise). One factor per
 *     block keeps the equilibrium exactly where every block's net heating
 *     vanishes, so it does not depend on dt; large dt approaches a Jacobi
 *     iteration on the energy balance (stable in every run so far, dt up to
 *     100 days with gray optics and 20 days with the k-distribution and the
 *     LBL model; not proven in general).
 *  6. convective adjustment (lapse_rate > 0): where the lapse rate exceeds
 *     the critical one, i.e. theta = T (p0 / p)^a, a = R_d lapse_rate / g
 *     (constant lapse rate in height under hydrostatics, T ~ p^a) decreases
 *     upward, the unstable layers (and the surface, with heat capacity C_s,
 *     at p = ps when sfc_convective) are mixed to a common theta that
 *     conserves sum_l cp T_l dp_l / g (+ C_s T_s) exactly (pool-adjacent
 *     violators: the result is the enthalpy-conserving projection on the
 *     stable profiles, what iterating Manabe's pairwise adjustment converges
 *     to). 9.8e-3 K/m is the dry adiabat, 6.5e-3 K/m the usual moist-adiabat
 *     stand-in (the default).
 *
 * Residual: the tendency of a step without the preconditioning,
 * r = (T_new - T_old) (1 + dt j_b) / dt in K/day (layers and surface); the
 * run stops when max |r| < tol. Deterministic (no threads of its own; the
 * longwave solver's results do not depend on the thread count).
 */
#ifndef MIMIC_RAD_RCE_H
#define MIMIC_RAD_RCE_H

#include "rad_rte.h"

#define MIMIC_RAD_R_DRY 287.04 /* J kg^-1 K^-1, with MIMIC_RAD_CP_DRY: kappa = 0.2857 */

typedef struct mimic_rad_rce_config {
    int nlay;
    const double *p_lev;      /* [nlay+1] Pa, increasing, > 0 below the top; copied */
    const double *p_lay;      /* [nlay] Pa within its layer, or NULL: (p_lev[l] + p_lev[l+1]) / 2 */
    const double *vmr;        /* [nlay][MIMIC_NGAS] mol/mol dry air, or NULL (all 0); copied.
                                 h2o is overwritten every step when rh_sfc > 0 */
    const double *t_init;     /* [nlay] K, or NULL: max(200, t_sfc_init (p / ps)^a6.5) */
    double t_sfc_init;        /* K; 288 */
    double sfc_emis;          /* [0, 1]; 1 */
    double sfc_heat_capacity; /* J m^-2 K^-1, > 0; 1e7 (a 2.4 m water slab) */
    double solar_sfc;         /* solar flux absorbed by the surface, W m^-2; 170 */
    double solar_atm;         /* solar flux absorbed by the atmosphere, W m^-2; 70 */
    double solar_o3_fraction; /* its part absorbed by stratospheric ozone, [0, 1]; 0.2 */
    double lapse_rate;        /* critical lapse rate, K/m; 6.5e-3; 0 = no convection */
    int sfc_convective;       /* 1: the surface joins the convective adjustment; 1 */
    double rh_sfc;            /* surface relative humidity [0, 1]; 0.77; <= 0: h2o fixed */
    double h2o_min;           /* mol/mol floor of h2o when rh_sfc > 0; 3e-6 */
    int nmu;                  /* longwave directions (mimic_rad_angles); 1 */
} mimic_rad_rce_config;

void mimic_rad_rce_config_default(mimic_rad_rce_config *c);

/* The model state. Arrays are owned by the state (mimic_rad_rce_free); read
 * them freely, write only t_lay and t_sfc (e.g. to restart from a profile). */
typedef struct mimic_rad_rce {
    mimic_rad_rce_config cfg; /* a copy; its pointers point into this state */
    int nlay;
    double *p_lev, *p_lay;    /* [nlay+1], [nlay] Pa */
    double *t_lay, *t_lev;    /* [nlay], [nlay+1] K (t_lev of the last flux evaluation) */
    double t_sfc;             /* K */
    double *vmr;              /* [nlay][MIMIC_NGAS] (h2o of the last step) */
    double *solar_heating;    /* [nlay] K/day, fixed */
    double *lw_heating;       /* [nlay] K/day, at the start of the last step */
    double *flux_up, *flux_dn;/* [nlay+1] W m^-2, longwave, at the start of the last step */
    double *tendency;         /* [nlay] K/day: residual r of the last step (see above) */
    int *convective;          /* [nlay] 1 where the layer was mixed by the last adjustment */
    double olr;               /* W m^-2, flux_up[0] */
    double toa_imbalance;     /* solar_atm + solar_sfc - (flux_up[0] - flux_dn[0]), W m^-2 */
    double sfc_net_rad;       /* N, the surface net radiative flux (down), W m^-2 */
    double sfc_conv_flux;     /* the flux the adjustment took from the surface (W m^-2, up;
                                 the turbulent flux an RCE model parameterises this way) */
    double sfc_imbalance;     /* N - sfc_conv_flux, W m^-2: 0 at equilibrium */
    double max_tendency;      /* max |r| over layers and surface, K/day */
    int64_t steps;            /* steps taken since init */
    int converged;            /* set by mimic_rad_rce_run */
    /* workspace */
    double *work;
    int *block, *prev_block;
} mimic_rad_rce;

/* Copies the configuration into s (zeroed first) and allocates its arrays;
 * the caller owns s's arrays: mimic_rad_rce_free. MIMIC_EARG / MIMIC_EVALUE
 * for bad inputs (sizes, pressures not increasing, out-of-range parameters),
 * MIMIC_ENOMEM; on error nothing is left allocated. */
int mimic_rad_rce_init(mimic_rad_rce *s, const mimic_rad_rce_config *c);
void mimic_rad_rce_free(mimic_rad_rce *s);

/* One step of dt seconds (> 0) with the optics (ngpt, limits, weights,
 * callback: rad_rte.h). Errors of the optics or the solver propagate;
 * MIMIC_EVALUE if a temperature leaves (0, 1000) K (temperatures are then
 * not updated). Allocates and frees a workspace of 2 nlay ngpt doubles per
 * step (MIMIC_ENOMEM), besides mimic_rad_lw_fluxes' own. */
int mimic_rad_rce_step(mimic_rad_rce *s, const mimic_rad_optics *opt, double dt);

typedef struct mimic_rad_rce_run_opts {
    double dt;         /* s; 86400 */
    double tol;        /* K/day; 1e-3 */
    int64_t max_steps; /* 20000 */
} mimic_rad_rce_run_opts;

void mimic_rad_rce_run_opts_default(mimic_rad_rce_run_opts *o);

/* Called after every step; a non-zero return stops the run (still MIMIC_OK). */
typedef int (*mimic_rad_rce_progress_fn)(void *ud, const mimic_rad_rce *s);

/* Steps until max_tendency < tol (s->converged = 1) or max_steps steps were
 * taken in this call (s->converged = 0, still MIMIC_OK: check the flag).
 * ro NULL = defaults; progress may be NULL. */
int mimic_rad_rce_run(mimic_rad_rce *s, const mimic_rad_optics *opt, const mimic_rad_rce_run_opts *ro,
                      mimic_rad_rce_progress_fn progress, void *ud);

/* Convective adjustment of n points, top first: pressures p[n] (increasing,
 * > 0), heat capacities cap[n] (> 0, J m^-2 K^-1, e.g. cp dp / g, or the
 * surface slab's as the last point), temperatures t[n] adjusted in place to
 * the critical lapse_rate (> 0, K/m) conserving sum cap t exactly up to
 * rounding. block[n] (or NULL) receives, per point, the index of the lowest
 * point of its mixed block (itself when unmixed). Allocates and frees a
 * workspace of 3 n values (MIMIC_ENOMEM). */
int mimic_rad_convective_adjust(int n, const double *p, const double *cap, double lapse_rate, double *t,
                                int *block);

/* Manabe-Wetherald water vapour (step 1 above), mol/mol dry air. */
double mimic_rad_rce_h2o(double p, double t, double p_sfc, double rh_sfc, double h2o_min);

#endif
