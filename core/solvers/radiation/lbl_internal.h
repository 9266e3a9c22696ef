/* Shared by lines.c, xsec.c and lbl.c (not installed). */
#ifndef MIMIC_RAD_LBL_INTERNAL_H
#define MIMIC_RAD_LBL_INTERNAL_H

#include "mimic/rad_lbl.h"

#define LBL_C2 1.4387769     /* second radiation constant, cm K */
#define LBL_TREF 296.0
#define LBL_P0 101325.0
#define LBL_LOSCHMIDT 2.6867811e19 /* molecules cm^-3 per amagat (273.15 K, 1 atm) */

/* One gas's lines, structure of arrays sorted by nu (what mimic_rad_lines views). */
typedef struct lbl_gas_lines {
    int64_t n;
    double *nu, *s, *gair, *gself, *nair, *elow;
    double mass, q_exp;
} lbl_gas_lines;

struct mimic_rad_lbl {
    mimic_rad_lbl_options o;
    lbl_gas_lines g[MIMIC_NGAS];
};

/* lines.c: generate gas's synthetic lines into out (owned arrays, one block). */
int lbl_gen_lines(const mimic_rad_lbl_options *o, mimic_rad_gas gas, lbl_gas_lines *out);
void lbl_gas_lines_free(lbl_gas_lines *g);
int lbl_nline_bands(mimic_rad_gas gas);
int lbl_line_band(mimic_rad_gas gas, int i, mimic_rad_band_info *out);

/* xsec.c: cross-section bands (halocarbons) and collision-induced bands (N2, O2). */
int lbl_nxsec_bands(mimic_rad_gas gas);
int lbl_xsec_band(mimic_rad_gas gas, int i, mimic_rad_band_info *out);
/* Continuum-type cross-section per molecule of gas at (p, t): H2O self+foreign
 * continuum (x_h2o = vmr of H2O, dry), N2/O2 CIA, halocarbon bands; 0 for the rest. */
void lbl_continuum(mimic_rad_gas gas, double p, double t, double x_h2o, int64_t n,
                   const double *nu, double *k_out, int accumulate);

#endif
