/* mimic solvers — radiation: Planck integrals and the longwave solver
 * (no scattering), RTE-style. Part of libmimic_solvers.
 *
 * Conventions: those of rad_atmos.h (index 0 = top of atmosphere, nlay
 * layers, nlay + 1 levels, level nlay = surface; Pa, K, cm^-1). Arrays are
 * row-major with the spectral index fastest: tau[col][lay][gpt], so the inner
 * loops over g-points vectorise.
 *
 * Units. Sources are RADIANCES in W m^-2 sr^-1: per g-point, the Planck
 * fraction times the band-integrated Planck radiance (RRTMGP), or, for a
 * monochromatic point of a line-by-line calculation, B(nu, T) per cm^-1 with
 * the point's quadrature width (cm^-1) as its weight. Fluxes are W m^-2:
 * flux = sum_gpt weight[gpt] * 2 pi * sum_angles w_i I(mu_i), with
 * sum_i w_i = 1/2, so an isotropic radiance I gives the flux pi I.
 */
#ifndef MIMIC_RAD_RTE_H
#define MIMIC_RAD_RTE_H

#include "rad_atmos.h"

/* --- Planck ------------------------------------------------------------------ */

/* B(nu, T): monochromatic Planck radiance per unit wavenumber, in
 * W m^-2 sr^-1 (cm^-1)^-1, for nu in cm^-1 (nu >= 0) and T > 0 in K. */
double mimic_rad_planck(double nu, double t);

/* Band-integrated Planck radiance, integral of B(nu, T) over [nu1, nu2]
 * cm^-1, in W m^-2 sr^-1; 0 <= nu1 <= nu2, nu2 may be INFINITY (then
 * [0, inf) gives sigma T^4 / pi). Widger & Woodall (1976) series above
 * x = h c nu / k T = 2, Bernoulli series below, Gauss-Legendre on bands
 * narrower than 0.5 in x: within 4e-15 relative of 40-digit quadrature on 110
 * bands x temperatures (10-3250 cm^-1, widths 1e-3..inf, 150-350 K). NaN for
 * invalid arguments: the solvers check their inputs once; this is the
 * inner-loop function. */
double mimic_rad_planck_band(double nu1, double nu2, double t);
/* d/dT of mimic_rad_planck_band, W m^-2 sr^-1 K^-1 (exact, not differenced). */
double mimic_rad_planck_band_dt(double nu1, double nu2, double t);

/* Sources for n temperatures t[n] and ngpt spectral points:
 * src[i][g] = frac[i][g] * P_g(t[i]), where P_g is the band-integrated Planck
 * radiance over [nu1[g], nu2[g]] or, when nu1[g] == nu2[g], the monochromatic
 * B(nu1[g], t[i]) (a line-by-line point). frac may be NULL (all 1).
 * Consecutive g-points with the same band share one Planck evaluation.
 * MIMIC_EARG for bad sizes, temperatures <= 0 or non-finite, bad limits. */
int mimic_rad_planck_source(int n, const double *t, int ngpt, const double *nu1, const double *nu2,
                            const double *frac, double *src);

/* --- angular quadrature ------------------------------------------------------ */

#define MIMIC_RAD_MAX_MU 4
/* The nmu (1..4) directions and weights of the flux integral over the
 * hemisphere, int_0^1 I(mu) mu dmu ~ sum_i w[i] I(mu[i]) (sum w = 1/2):
 * nmu = 1 is the diffusivity approximation, mu = 1/1.66 (not a Gauss node);
 * nmu = 2..4 are Gauss-Jacobi nodes for the weight mu on [0, 1] (exact for
 * polynomials of degree 2 nmu - 1), as RTE's. MIMIC_EARG if nmu is out of range. */
int mimic_rad_angles(int nmu, double *mu, double *w);

/* --- longwave solver ----------------------------------------------------------- */

/* Linear-in-tau emission across a layer (Clough et al. 1992, RTE): for a
 * slant optical depth tau_s, transmissivity T = exp(-tau_s) and source value
 * b_exit at the level where the beam leaves the layer, the radiance the layer
 * adds to the beam is (1 - T) b_exit + 2 f(tau_s) (b_lay - b_exit),
 * f = (1 - T)/tau_s - T (Taylor series for small tau_s). With
 * b_lay = (b_top + b_bottom) / 2 the source is exactly linear in optical
 * depth between the two level values; as tau_s -> inf the layer radiates
 * b_exit (its boundary value, which is what makes thick layers right), as
 * tau_s -> 0 it radiates tau_s b_lay. Exposed for tests and callers. */
double mimic_rad_linear_source(double tau_s, double b_lay, double b_exit);

/* Inputs for ncol columns (pointers borrowed; all [col]-major, gpt fastest). */
typedef struct mimic_rad_lw_input {
    int ncol, nlay, ngpt;
    int nmu;                    /* directions, 1..MIMIC_RAD_MAX_MU (mimic_rad_angles) */
    const double *tau;          /* [ncol][nlay][ngpt] vertical optical depth, >= 0 */
    const double *lay_src;      /* [ncol][nlay][ngpt] layer-mean source, or NULL: the
                                   mean of its two level sources (linear in tau) */
    const double *lev_src;      /* [ncol][nlay+1][ngpt] source at the levels */
    const double *sfc_src;      /* [ncol][ngpt] surface source (at the skin temperature) */
    const double *sfc_emis;     /* [ncol] surface emissivity in [0, 1] */
    const double *sfc_emis_gpt; /* [ncol][ngpt], or NULL; overrides sfc_emis */
    const double *weight;       /* [ngpt] spectral weights, or NULL (all 1) */
} mimic_rad_lw_input;

/* Outputs (caller-owned buffers). Downwelling radiance at the top is 0. The
 * surface reflects each direction separately, (1 - e) I_dn + e S_sfc, as RTE
 * does: the reflected flux is (1 - e) F_dn exactly. */
typedef struct mimic_rad_lw_output {
    double *flux_up, *flux_dn;         /* [ncol][nlay+1], W m^-2, weighted sum over gpt */
    double *gpt_flux_up, *gpt_flux_dn; /* [ncol][nlay+1][ngpt], unweighted, or NULL */
} mimic_rad_lw_output;

/* Fluxes. Inputs are checked first (sizes; nmu in range; tau >= 0, sources and
 * weights finite; emissivity in [0, 1]): MIMIC_EARG/MIMIC_EVALUE naming the
 * first bad element, and nothing is written. One workspace of
 * 3 nlay ngpt + 2 ngpt doubles per thread is allocated for the call
 * (MIMIC_ENOMEM); columns run in parallel (OpenMP), results do not depend
 * on the thread count. */
int mimic_rad_lw_solve(const mimic_rad_lw_input *in, const mimic_rad_lw_output *out);

/* Heating rates [ncol][nlay] in K/day from level fluxes [ncol][nlay+1] and
 * level pressures p_lev [ncol][nlay+1] (Pa, increasing with the index):
 * dT/dt = g / cp * (Fnet[l+1] - Fnet[l]) / (p[l+1] - p[l]) * 86400,
 * Fnet = up - dn (positive upward), g and cp of rad_atmos.h. */
int mimic_rad_heating_rate(int ncol, int nlay, const double *p_lev, const double *flux_up,
                           const double *flux_dn, double *heating);

/* --- column driver with pluggable gas optics ---------------------------------- */

/* Gas optics for one column of nlay layers (lay[0] at the top): fills
 * tau[nlay][ngpt] (vertical optical depth) and planck_frac[nlay][ngpt]
 * (the fraction of the band's Planck radiance each g-point carries; 1 for
 * monochromatic points). Returns 0, or a negative MIMIC_E* code after
 * mimic_error() (any other non-zero value is reported as a failed callback).
 * The reference kernel, a surrogate or a test's gray gas plug in here. */
typedef int (*mimic_rad_optics_fn)(void *ud, const mimic_rad_layer *lay, int nlay, double *tau /*[nlay][ngpt]*/,
                                   double *planck_frac /*[nlay][ngpt]*/);

typedef struct mimic_rad_optics {
    int ngpt;
    const double *nu1, *nu2;  /* [ngpt] band limits of each g-point, cm^-1;
                                 nu1 == nu2: a monochromatic point (LBL) */
    const double *weight;     /* [ngpt] or NULL (all 1); LBL: quadrature widths, cm^-1 */
    mimic_rad_optics_fn fn;
    void *ud;                 /* passed to fn */
} mimic_rad_optics;

/* The atmosphere of ncol columns (pointers borrowed). */
typedef struct mimic_rad_atm {
    int ncol, nlay;
    const double *p_lay, *t_lay;  /* [ncol][nlay] Pa, K */
    const double *p_lev, *t_lev;  /* [ncol][nlay+1] */
    const double *t_sfc;          /* [ncol] skin temperature */
    const double *sfc_emis;       /* [ncol] */
    const double *vmr;            /* [ncol][nlay][MIMIC_NGAS] mol/mol dry air */
} mimic_rad_atm;

/* Longwave fluxes [ncol][nlay+1] (and heating [ncol][nlay] K/day unless
 * NULL) of the atmosphere with the optics' callback, column by column:
 * layers get col_dry from mimic_rad_col_dry; sources are Planck fraction x
 * band Planck radiance at the layer temperature (layer), at the level
 * temperature with the mean of the adjacent layers' fractions (levels; the
 * single adjacent layer at the top and at the surface) and at the skin
 * temperature with the lowest layer's fractions (surface). One workspace is
 * allocated per call; the callback runs serially, in column order. */
int mimic_rad_lw_fluxes(const mimic_rad_atm *atm, const mimic_rad_optics *opt, int nmu, double *flux_up,
                        double *flux_dn, double *heating);

#endif
