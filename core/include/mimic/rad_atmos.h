/* mimic solvers — radiation: the gases and the atmospheric state shared by the
 * line-by-line model (rad_lbl.h), the k-distribution and its gas-optics
 * kernel, and the longwave solver (rad_rte.h). Part of libmimic_solvers.
 *
 * Conventions (those of RFMIP and RRTMGP): a column has nlay layers and
 * nlay + 1 levels (interfaces); index 0 is the TOP of the atmosphere, so
 * pressure increases with the index and level nlay is the surface. Pressure
 * in Pa, temperature in K, gas amounts as volume mixing ratios (mol/mol) of
 * DRY air, wavenumbers in cm^-1.
 */
#ifndef MIMIC_RAD_ATMOS_H
#define MIMIC_RAD_ATMOS_H

#include "base.h"

/* Absorbers treated in the longwave. Major gases have (synthetic) line lists;
 * the others absorb through cross-sections (halocarbons) or are minor
 * line absorbers (CO) or collision-induced (N2, O2). */
typedef enum mimic_rad_gas {
    MIMIC_GAS_H2O, MIMIC_GAS_CO2, MIMIC_GAS_O3, MIMIC_GAS_CH4, MIMIC_GAS_N2O,
    MIMIC_GAS_CO, MIMIC_GAS_O2, MIMIC_GAS_N2,
    MIMIC_GAS_CCL4, MIMIC_GAS_CFC11, MIMIC_GAS_CFC12, MIMIC_GAS_HCFC22,
    MIMIC_GAS_HFC143A, MIMIC_GAS_HFC125, MIMIC_GAS_HFC23, MIMIC_GAS_HFC32,
    MIMIC_GAS_HFC134A, MIMIC_GAS_CF4,
    MIMIC_NGAS
} mimic_rad_gas;

/* "h2o", "co2", "o3", "ch4", "n2o", "co", "o2", "n2", "ccl4", "cfc11", "cfc12",
 * "hcfc22", "hfc143a", "hfc125", "hfc23", "hfc32", "hfc134a", "cf4";
 * parse returns -1 for an unknown name. */
const char *mimic_rad_gas_name(mimic_rad_gas g);
int mimic_rad_gas_parse(const char *name);

/* One layer's state: what gas optics (reference kernel or surrogate) takes. */
typedef struct mimic_rad_layer {
    double p;                 /* layer pressure, Pa */
    double t;                 /* layer temperature, K */
    double vmr[MIMIC_NGAS];   /* volume mixing ratio of each gas, mol/mol dry air */
    double col_dry;           /* dry-air column in the layer, molecules / cm^2 */
} mimic_rad_layer;

/* Dry-air molecules per cm^2 between two pressures (Pa), with the water vapour
 * mixing ratio h2o (mol/mol dry air) of the layer: dp / (g (m_dry + m_h2o h2o)) N_A,
 * g = 9.80665 m s^-2 (RRTMGP's formula, without its latitude dependence). */
double mimic_rad_col_dry(double p_top, double p_bottom, double h2o);

#define MIMIC_RAD_AVOGADRO 6.02214076e23
#define MIMIC_RAD_M_DRY 0.028964    /* kg/mol */
#define MIMIC_RAD_M_H2O 0.018016    /* kg/mol */
#define MIMIC_RAD_G 9.80665         /* m s^-2 */
#define MIMIC_RAD_CP_DRY 1004.64    /* J kg^-1 K^-1 */
#define MIMIC_RAD_PLANCK 6.62607015e-34
#define MIMIC_RAD_LIGHT 2.99792458e8
#define MIMIC_RAD_BOLTZMANN 1.380649e-23
#define MIMIC_RAD_STEFAN 5.670374419e-8

#endif
