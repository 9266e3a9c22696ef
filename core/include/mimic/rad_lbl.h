/* mimic solvers — radiation: a longwave line-by-line (LBL) absorption model
 * over a SYNTHETIC line list (docs/radiation-lbl.md). Part of libmimic_solvers.
 *
 * No spectroscopic database is available to the project, so the lines of H2O,
 * CO2, O3, CH4, N2O and CO are generated deterministically (Philox, seeded per
 * gas and band) at their real band positions, with approximately real
 * band-integrated intensities and Goody/Malkmus-like strength statistics. The
 * line shape, its pressure and temperature dependence, the H2O continuum, the
 * N2/O2 collision-induced bands and the halocarbon cross-sections follow the
 * usual LBL physics. Units: wavenumbers cm^-1, pressure Pa, temperature K,
 * line intensities cm^-1/(molecule cm^-2) at 296 K, cross-sections
 * cm^2/molecule, optical depths dimensionless.
 *
 * Typical use (building k-tables): one mimic_rad_lbl, one grid per pressure
 * node (mimic_rad_lbl_grid with p_min = that pressure is as fine as the lines
 * need there and no finer), then mimic_rad_lbl_absorption for each gas and
 * temperature. Every function is thread-safe on a shared const object; the
 * absorption loops run on OpenMP threads with results bit-identical for any
 * thread count.
 */
#ifndef MIMIC_RAD_LBL_H
#define MIMIC_RAD_LBL_H

#include "rad_atmos.h"

#include <stdint.h>

typedef struct mimic_rad_lbl mimic_rad_lbl;

typedef struct mimic_rad_lbl_options {
    double nu_min, nu_max; /* spectral range the lines are kept for (cm^-1); 10, 3250 */
    uint32_t gases;        /* bit mask of (1u << mimic_rad_gas); 0 means all gases */
    double cutoff;         /* line wings are cut |nu - nu_line| > cutoff (cm^-1); 25 */
    uint64_t seed;         /* seed of the synthetic line list; MIMIC_RAD_LBL_SEED */
} mimic_rad_lbl_options;

#define MIMIC_RAD_LBL_SEED 20261126u

void mimic_rad_lbl_options_default(mimic_rad_lbl_options *o);

/* Generates the line lists of the selected gases (lines up to `cutoff` outside
 * [nu_min, nu_max] are kept, so spectra near the range ends are complete).
 * opts NULL = defaults. The caller owns the result: mimic_rad_lbl_free. */
mimic_rad_lbl *mimic_rad_lbl_new(const mimic_rad_lbl_options *opts);
void mimic_rad_lbl_free(mimic_rad_lbl *lbl);

/* A gas's lines, sorted by position: borrowed arrays valid while lbl lives.
 * n = 0 for gases without lines (halocarbons, N2, O2) or not selected. */
typedef struct mimic_rad_lines {
    int64_t n;
    const double *nu;         /* line position, cm^-1 */
    const double *s;          /* intensity at 296 K, cm^-1/(molecule cm^-2) */
    const double *gamma_air;  /* air-broadened HWHM at 296 K, 1 atm, cm^-1 */
    const double *gamma_self; /* self-broadened HWHM at 296 K, 1 atm, cm^-1 */
    const double *n_air;      /* temperature exponent of gamma_air (and gamma_self) */
    const double *elower;     /* lower-state energy E'', cm^-1 */
    double mass;              /* molecular mass, g/mol (Doppler width) */
    double q_exp;             /* rotational partition function Q(T) ~ T^q_exp */
} mimic_rad_lines;
int mimic_rad_lbl_lines(const mimic_rad_lbl *lbl, mimic_rad_gas gas, mimic_rad_lines *out);

/* The documented bands of the synthetic list (or the cross-section bands of a
 * halocarbon): band i of gas, i < mimic_rad_lbl_nbands(gas). */
typedef struct mimic_rad_band_info {
    const char *name;  /* e.g. "nu2 fundamental" */
    double centre;     /* cm^-1 */
    double lo, hi;     /* span of the generated lines (cm^-1) */
    double strength;   /* band-integrated intensity at 296 K, cm^-1/(molecule cm^-2) */
    int64_t nlines;    /* 0 for cross-section bands */
} mimic_rad_band_info;
int mimic_rad_lbl_nbands(mimic_rad_gas gas);
int mimic_rad_lbl_band(mimic_rad_gas gas, int i, mimic_rad_band_info *out);

/* Line intensity at temperature t (lines of `lines`, index i):
 * S(T) = S(296) (296/T)^q_exp exp(-c2 E'' (1/T - 1/296))
 *        (1 - exp(-c2 nu/T)) / (1 - exp(-c2 nu/296)),  c2 = 1.4387769 cm K. */
double mimic_rad_line_strength(const mimic_rad_lines *lines, int64_t i, double t);

/* The Voigt profile (normalised: its integral over nu is 1) at distance dnu
 * from the centre, Lorentz HWHM gamma_l and Doppler HWHM gamma_d (cm^-1).
 * Faddeeva function by Weideman's rational series (N = 32, ~1e-13 of the
 * peak) where |x| + y < 20 in Doppler units, its first continued-fraction
 * approximant (< 2e-5 relative, exact Lorentz limit) beyond; no cut-off. */
double mimic_rad_voigt(double dnu, double gamma_l, double gamma_d);
/* Line widths (HWHM, cm^-1) of line i of `lines` at (p, t) with self mole
 * fraction x_self (only H2O is self-broadened in practice; pass 0 otherwise). */
double mimic_rad_lorentz_hw(const mimic_rad_lines *lines, int64_t i, double p, double t, double x_self);
double mimic_rad_doppler_hw(double nu, double t, double mass);

/* A spectral grid with variable spacing: points nu[0..n-1] strictly
 * increasing, and quadrature weights w[i] (trapezoid, cm^-1; sum = range).
 * The caller owns it: mimic_rad_grid_free. */
typedef struct mimic_rad_grid {
    int64_t n;
    double *nu;
    double *w;
} mimic_rad_grid;

/* The grid resolves every line of the selected gases at pressures >= p_min
 * (Pa) and temperatures >= 180 K: with hw the line's Voigt HWHM at
 * (p_min, 180 K), the spacing near it is
 *   h = max(res * hw / 4, res * 0.2 * (|nu - nu_line| - 2.5 hw)), capped at res * 0.1 cm^-1,
 * i.e. 4 points per half-width over the core, growing geometrically (20 %
 * steps) into the wings. Lines too weak to reach a centre optical depth of
 * 1e-3 in a generous column do not refine the grid (they are still summed).
 * res = 1 is the standard resolution; res = 0.5 halves every spacing
 * (convergence checks). The grid spans [nu_min, nu_max] exactly; for
 * k-tables build one grid per pressure node (p_min = that pressure). */
mimic_rad_grid *mimic_rad_lbl_grid(const mimic_rad_lbl *lbl, double nu_min, double nu_max,
                                   double p_min, double res);
/* A uniform grid with spacing close to dnu (same ownership). */
mimic_rad_grid *mimic_rad_grid_uniform(double nu_min, double nu_max, double dnu);
void mimic_rad_grid_free(mimic_rad_grid *g);

/* What mimic_rad_lbl_absorption adds up. */
enum {
    MIMIC_RAD_LBL_LINES = 1,     /* line absorption (with cut-off) */
    MIMIC_RAD_LBL_CONTINUUM = 2, /* H2O self + foreign continuum, N2/O2 CIA, halocarbon bands */
    MIMIC_RAD_LBL_ALL = 3
};

/* Absorption cross-section k(nu) per molecule of `gas` (cm^2/molecule) at
 * pressure p (Pa), temperature t (K); vmr_h2o (mol/mol dry air) sets H2O
 * self-broadening and the self continuum (used for gas = H2O only; for N2 and
 * O2 the collision partner is air at (p, t)). nu[0..n-1] strictly increasing,
 * within the lbl's [nu_min, nu_max] for complete line wings. Errors (EARG,
 * EVALUE): p, t not finite and > 0, vmr_h2o < 0 or NaN, nu not increasing,
 * gas not selected when lbl was made. */
int mimic_rad_lbl_absorption(const mimic_rad_lbl *lbl, mimic_rad_gas gas, double p, double t,
                             double vmr_h2o, unsigned parts, int64_t n, const double *nu,
                             double *k_out);

/* Optical depth of one layer: sum over the lbl's gases of
 * k_gas(p, t) * vmr[gas] * col_dry (lines + continua). tau_out[n]. */
int mimic_rad_lbl_layer_tau(const mimic_rad_lbl *lbl, const mimic_rad_layer *lay, int64_t n,
                            const double *nu, double *tau_out);

/* The continua alone (cm^2/molecule of the absorbing gas), exposed for tests
 * and the k-distribution: H2O self (per H2O molecule, at partial pressure
 * p_self) and foreign (partner pressure p_foreign), both Pa. */
double mimic_rad_h2o_self_continuum(double nu, double t, double p_self);
double mimic_rad_h2o_foreign_continuum(double nu, double t, double p_foreign);

#endif
