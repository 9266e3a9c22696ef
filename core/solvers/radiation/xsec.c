/* Smooth absorbers (docs/radiation-lbl.md, "Continua and cross-sections"):
 * the H2O self and foreign continuum (an MT_CKD-like parametrisation built on
 * Roberts et al. 1976 in the window), collision-induced N2 and O2 fundamental
 * bands, and halocarbon cross-sections as sums of Gaussian bands at their real
 * band centres with approximately real integrated strengths. All
 * temperature-independent except the H2O self continuum and the densities. */
#include "lbl_internal.h"

#include <math.h>

typedef struct xband {
    const char *name;
    double centre, strength, fwhm; /* cm^-1; cm^-1/(molecule cm^-2); cm^-1 */
} xband;

/* Halocarbon bands: centres are the real strongest fundamentals; strengths
 * approximate integrated cross-sections at ~296 K (+-30 %). */
static const xband CCL4[] = {{"nu3 C-Cl stretch", 795, 6.8e-17, 20}};
static const xband CFC11[] = {{"nu4 C-Cl stretch", 848, 1.0e-16, 22}, {"nu1 C-F stretch", 1085, 4.5e-17, 26}};
static const xband CFC12[] = {{"nu6 C-Cl stretch", 922, 1.45e-16, 22},
                              {"nu1 C-F stretch", 1101, 7.5e-17, 24},
                              {"nu8 C-F stretch", 1161, 6.5e-17, 24}};
static const xband HCFC22[] = {{"nu4", 809, 1.2e-17, 20}, {"nu3", 1116, 9.5e-17, 24},
                               {"nu8", 1178, 6.0e-17, 24}, {"nu2", 1311, 1.0e-17, 24}};
static const xband HFC143A[] = {{"nu6", 830, 5.0e-18, 20}, {"nu5", 970, 2.0e-17, 22},
                                {"nu11", 1233, 5.0e-17, 24}, {"nu2", 1281, 1.3e-16, 24},
                                {"nu10", 1408, 5.0e-18, 24}};
static const xband HFC125[] = {{"nu13", 725, 2.0e-17, 20}, {"nu5", 865, 3.0e-17, 22},
                               {"nu4/nu12", 1145, 1.2e-16, 28}, {"nu3", 1208, 1.0e-16, 26},
                               {"nu2", 1301, 1.5e-17, 24}};
static const xband HFC23[] = {{"nu3", 700, 5.0e-18, 18}, {"nu2 + nu5", 1152, 2.0e-16, 28},
                              {"nu4", 1377, 2.0e-17, 22}};
static const xband HFC32[] = {{"nu9", 1090, 5.5e-17, 24}, {"nu7", 1176, 1.5e-17, 22},
                              {"nu8", 1435, 5.0e-18, 22}, {"nu2", 1508, 3.0e-18, 22}};
static const xband HFC134A[] = {{"nu14", 844, 2.0e-17, 20}, {"nu11", 972, 2.0e-17, 20},
                                {"nu10", 1104, 3.5e-17, 24}, {"nu5", 1182, 1.05e-16, 26},
                                {"nu4", 1298, 5.5e-17, 24}};
static const xband CF4[] = {{"nu4", 631, 4.0e-18, 12}, {"nu3", 1283, 1.9e-16, 16}};
/* Collision-induced fundamentals: strength = integral of the binary coefficient
 * B(nu) (cm^-1 amagat^-2) over nu, i.e. cm^-2 amagat^-2; the shape is an
 * asymmetric Gaussian (fwhm below / above the centre: see cia_shape). */
static const xband N2_CIA[] = {{"N2 fundamental (collision-induced)", 2340, 0, 0}};
static const xband O2_CIA[] = {{"O2 fundamental (collision-induced)", 1556, 0, 0}};
#define N2_PEAK 1.5e-6
#define N2_WLO 70.0
#define N2_WHI 110.0
#define O2_PEAK 1.0e-7
#define O2_WLO 60.0
#define O2_WHI 90.0

#define NX(a) ((int)(sizeof a / sizeof a[0]))
static const struct {
    const xband *b;
    int n;
} XS[MIMIC_NGAS] = {
    [MIMIC_GAS_CCL4] = {CCL4, NX(CCL4)},         [MIMIC_GAS_CFC11] = {CFC11, NX(CFC11)},
    [MIMIC_GAS_CFC12] = {CFC12, NX(CFC12)},      [MIMIC_GAS_HCFC22] = {HCFC22, NX(HCFC22)},
    [MIMIC_GAS_HFC143A] = {HFC143A, NX(HFC143A)}, [MIMIC_GAS_HFC125] = {HFC125, NX(HFC125)},
    [MIMIC_GAS_HFC23] = {HFC23, NX(HFC23)},      [MIMIC_GAS_HFC32] = {HFC32, NX(HFC32)},
    [MIMIC_GAS_HFC134A] = {HFC134A, NX(HFC134A)}, [MIMIC_GAS_CF4] = {CF4, NX(CF4)},
    [MIMIC_GAS_N2] = {N2_CIA, 1},                [MIMIC_GAS_O2] = {O2_CIA, 1},
};

int lbl_nxsec_bands(mimic_rad_gas gas)
{
    return XS[gas].n;
}

static const double SQRT_PI = 1.7724538509055160273;

int lbl_xsec_band(mimic_rad_gas gas, int i, mimic_rad_band_info *out)
{
    const xband *b = &XS[gas].b[i];
    out->name = b->name, out->centre = b->centre, out->nlines = 0;
    if (gas == MIMIC_GAS_N2 || gas == MIMIC_GAS_O2) {
        double pk = gas == MIMIC_GAS_N2 ? N2_PEAK : O2_PEAK;
        double wl = gas == MIMIC_GAS_N2 ? N2_WLO : O2_WLO, wh = gas == MIMIC_GAS_N2 ? N2_WHI : O2_WHI;
        out->strength = pk * SQRT_PI * (wl + wh) / 2; /* integral of the two half-Gaussians */
        out->lo = b->centre - 4 * wl, out->hi = b->centre + 4 * wh;
    } else {
        double sg = b->fwhm / 2.3548200450309493;
        out->strength = b->strength;
        out->lo = b->centre - 6 * sg, out->hi = b->centre + 6 * sg;
    }
    return 0;
}

/* Self continuum at 296 K, cm^2 molecule^-1 atm^-1 (per H2O molecule, per atm
 * of H2O): Roberts' window form a + b exp(-beta nu) below 1000 cm^-1 (rotation
 * band tail + window), the constant term fading above 1000, plus smooth bumps
 * under the nu2 (1600) and nu1/nu3 (3700) bands. */
static double cs296(double nu)
{
    double a = nu <= 1000 ? 1.25e-22 : 1.25e-22 * exp(-((nu - 1000) / 650) * ((nu - 1000) / 650));
    double d2 = (nu - 1600) / 180, d3 = (nu - 3700) / 200;
    return a + 1.67e-19 * exp(-7.87e-3 * nu) + 3.0e-21 * exp(-d2 * d2) + 1.0e-20 * exp(-d3 * d3);
}
/* Foreign continuum, cm^2 molecule^-1 atm^-1 of foreign gas, temperature-independent. */
static double cf296(double nu)
{
    double dw = (nu - 1000) / 800, d2 = (nu - 1600) / 150, d3 = (nu - 3700) / 200;
    return 8.0e-22 * exp(-nu / 120) + 7.0e-25 * exp(-dw * dw) + 2.0e-23 * exp(-d2 * d2) +
           2.0e-22 * exp(-d3 * d3);
}
#define SELF_T0 1800.0 /* Roberts et al.: C_s(T) = C_s(296) exp(T0 (1/T - 1/296)) */

double mimic_rad_h2o_self_continuum(double nu, double t, double p_self)
{
    return cs296(nu) * exp(SELF_T0 * (1 / t - 1 / LBL_TREF)) * (p_self / LBL_P0) * (LBL_TREF / t);
}
double mimic_rad_h2o_foreign_continuum(double nu, double t, double p_foreign)
{
    return cf296(nu) * (p_foreign / LBL_P0) * (LBL_TREF / t);
}

static double cia_shape(double nu, double c, double wl, double wh)
{
    double d = (nu - c) / (nu < c ? wl : wh);
    return exp(-d * d);
}

void lbl_continuum(mimic_rad_gas gas, double p, double t, double x_h2o, int64_t n,
                   const double *nu, double *k, int acc)
{
    if (!acc)
        for (int64_t i = 0; i < n; i++)
            k[i] = 0;
    if (gas == MIMIC_GAS_H2O) {
        double q = x_h2o / (1 + x_h2o); /* dry vmr -> mole fraction of moist air */
        double ps = p * q, pf = p * (1 - q);
        double fs = exp(SELF_T0 * (1 / t - 1 / LBL_TREF)) * (ps / LBL_P0) * (LBL_TREF / t);
        double ff = (pf / LBL_P0) * (LBL_TREF / t);
        for (int64_t i = 0; i < n; i++)
            k[i] += cs296(nu[i]) * fs + cf296(nu[i]) * ff;
    } else if (gas == MIMIC_GAS_N2 || gas == MIMIC_GAS_O2) {
        /* per molecule: B(nu) * rho_air / Loschmidt, partner = air at (p, t) */
        double rho = (p / LBL_P0) * (273.15 / t);
        int n2 = gas == MIMIC_GAS_N2;
        double pk = (n2 ? N2_PEAK : O2_PEAK) * rho / LBL_LOSCHMIDT, c = n2 ? 2340 : 1556;
        double wl = n2 ? N2_WLO : O2_WLO, wh = n2 ? N2_WHI : O2_WHI;
        for (int64_t i = 0; i < n; i++)
            k[i] += pk * cia_shape(nu[i], c, wl, wh);
    } else if (XS[gas].n > 0) {
        for (int b = 0; b < XS[gas].n; b++) {
            const xband *x = &XS[gas].b[b];
            double sg = x->fwhm / 2.3548200450309493, amp = x->strength / (sg * 2.5066282746310002);
            double lo = x->centre - 10 * sg, hi = x->centre + 10 * sg;
            for (int64_t i = 0; i < n; i++)
                if (nu[i] > lo && nu[i] < hi) {
                    double d = (nu[i] - x->centre) / sg;
                    k[i] += amp * exp(-0.5 * d * d);
                }
        }
    }
}
