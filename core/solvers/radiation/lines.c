/* The synthetic line list (docs/radiation-lbl.md, "Line list").
 *
 * No spectroscopic database is available to mimic, so each gas's lines are
 * generated from a short table of its real bands: position, span, and an
 * approximate band-integrated intensity at 296 K (from the HITRAN-era
 * literature, quoted from memory and documented as +-30 %). Linear molecules
 * (CO2, N2O, CO) get their real P/Q/R branch structure from the rotational
 * constant; asymmetric and spherical tops (H2O, O3, CH4) get random line
 * positions under a P/R double-lobed (or pure-rotation) envelope with
 * lognormal strength scatter, which gives the many-weak/few-strong strength
 * statistics that Goody and Malkmus band models describe.
 *
 * Randomness: line i of band b of gas g takes Philox4x32-10 blocks
 * (counter {i, 0..1, 'LBL', 0}, key {seed ^ g, seed >> 32 ^ b}), so the list
 * is a pure function of the seed, independent of threads or of which gases
 * are selected. The normal deviates use mimic's libm-free log and sincos.
 */
#include "lbl_internal.h"

#include "mimic/rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { K_PAR, K_PERP, K_VR, K_ROT };

typedef struct band_spec {
    const char *name;
    double centre, lo, hi, strength;
    int kind;
    int nlines;       /* random kinds; linear kinds: count is computed */
    double dB;        /* linear: B' - B'' (cm^-1) */
    double evib;      /* lower-state vibrational energy (cm^-1) */
    double w;         /* VR: lobe width; ROT: log-width above the peak */
    double w2;        /* VR: J-cluster spacing (0 = none); ROT: log-width below the peak */
    double qfrac;     /* VR: fraction of Q-branch lines */
    double escale;    /* random kinds: rotational lower-state energy scale (cm^-1) */
    double gair, nair, self_ratio;
} band_spec;

typedef struct gas_spec {
    double mass, q_exp;
    double B;      /* linear molecules: ground-state rotational constant */
    int even_j;    /* CO2: only even J'' (nuclear spin statistics of 16O) */
    double sigma;  /* lognormal strength scatter of random kinds */
    const band_spec *bands;
    int nbands;
} gas_spec;

/* Approximate band intensities, cm^-1/(molecule cm^-2) at 296 K. */
static const band_spec H2O_BANDS[] = {
    {"pure rotation", 250, 0.5, 1400, 5.0e-18, K_ROT, 4500, 0, 0, 0.45, 0.9, 0, 320, 0.075, 0.70, 5.0},
    {"nu2 fundamental 010-000", 1594.75, 1000, 2400, 1.05e-17, K_VR, 4500, 0, 0, 140, 0, 0, 320, 0.075, 0.70, 5.0},
    {"nu2 hot 020-010 and isotopologues", 1556.9, 1100, 2100, 1.2e-19, K_VR, 1500, 0, 1594.75, 130, 0, 0, 320, 0.075, 0.70, 5.0},
    {"nu1 + nu3 P-branch wing", 3700, 3000, 4300, 7.7e-18, K_VR, 3000, 0, 0, 140, 0, 0, 320, 0.075, 0.70, 5.0},
};
static const band_spec CO2_BANDS[] = {
    {"nu2 fundamental 01101-00001", 667.38, 540, 800, 7.9e-18, K_PERP, 0, 0.00061, 0, 0, 0, 0, 0, 0.072, 0.73, 1.3},
    {"hot 02201-01101", 667.75, 540, 800, 6.2e-19, K_PERP, 0, 0.00070, 667.38, 0, 0, 0, 0, 0.072, 0.73, 1.3},
    {"hot 10001-01101", 720.80, 600, 850, 3.2e-19, K_PERP, 0, -0.00080, 667.38, 0, 0, 0, 0, 0.072, 0.73, 1.3},
    {"hot 10002-01101", 618.03, 500, 730, 1.4e-19, K_PERP, 0, 0.00050, 667.38, 0, 0, 0, 0, 0.072, 0.73, 1.3},
    {"13CO2 nu2 fundamental", 648.48, 540, 760, 8.0e-20, K_PERP, 0, 0.00061, 0, 0, 0, 0, 0, 0.072, 0.73, 1.3},
    {"hot 03301-02201", 668.12, 560, 780, 4.5e-20, K_PERP, 0, 0.00075, 1335.13, 0, 0, 0, 0, 0.072, 0.73, 1.3},
    {"hot 11101-02201", 741.72, 640, 850, 2.5e-20, K_PERP, 0, -0.00070, 1335.13, 0, 0, 0, 0, 0.072, 0.73, 1.3},
    {"hot 11102-02201", 597.34, 500, 700, 1.0e-20, K_PERP, 0, 0.00050, 1335.13, 0, 0, 0, 0, 0.072, 0.73, 1.3},
    {"hot 11101-10002", 791.45, 700, 880, 8.0e-21, K_PERP, 0, -0.00070, 1285.41, 0, 0, 0, 0, 0.072, 0.73, 1.3},
    {"hot 11102-10001", 544.29, 460, 640, 4.0e-21, K_PERP, 0, 0.00050, 1388.18, 0, 0, 0, 0, 0.072, 0.73, 1.3},
    {"laser band 00011-10001", 960.96, 900, 1020, 2.6e-22, K_PAR, 0, -0.00200, 1388.18, 0, 0, 0, 0, 0.072, 0.73, 1.3},
    {"laser band 00011-10002", 1063.73, 1000, 1120, 3.8e-22, K_PAR, 0, -0.00200, 1285.41, 0, 0, 0, 0, 0.072, 0.73, 1.3},
    {"nu3 fundamental 00011-00001", 2349.14, 2220, 2400, 9.6e-17, K_PAR, 0, -0.00309, 0, 0, 0, 0, 0, 0.072, 0.73, 1.3},
    {"nu3 hot 01111-01101", 2336.63, 2210, 2390, 7.3e-18, K_PERP, 0, -0.00309, 667.38, 0, 0, 0, 0, 0.072, 0.73, 1.3},
    {"13CO2 nu3", 2283.49, 2160, 2330, 1.0e-18, K_PAR, 0, -0.00300, 0, 0, 0, 0, 0, 0.072, 0.73, 1.3},
};
static const band_spec O3_BANDS[] = {
    {"pure rotation", 60, 0.5, 250, 1.0e-18, K_ROT, 1500, 0, 0, 0.6, 1.0, 0, 250, 0.070, 0.75, 1.3},
    {"nu2 fundamental (14 um)", 700.93, 600, 800, 5.8e-19, K_VR, 1500, 0, 0, 18, 0, 0, 250, 0.070, 0.75, 1.3},
    {"nu3 fundamental (9.6 um)", 1042.08, 950, 1120, 1.38e-17, K_VR, 4500, 0, 0, 18, 0, 0, 250, 0.070, 0.75, 1.3},
    {"nu3 + nu2 - nu2 hot", 1015.8, 930, 1100, 6.5e-19, K_VR, 1500, 0, 700.93, 18, 0, 0, 250, 0.070, 0.75, 1.3},
    {"nu1 fundamental", 1103.14, 1030, 1180, 5.5e-19, K_VR, 1500, 0, 0, 18, 0, 0, 250, 0.070, 0.75, 1.3},
    {"nu1 + nu3 combination", 2110.8, 2040, 2170, 1.1e-18, K_VR, 1000, 0, 0, 15, 0, 0, 250, 0.070, 0.75, 1.3},
};
static const band_spec CH4_BANDS[] = {
    {"nu4 fundamental", 1310.76, 1150, 1450, 5.4e-18, K_VR, 3000, 0, 0, 50, 10.5, 0.12, 300, 0.055, 0.75, 1.3},
    {"13CH4 nu4", 1302.8, 1170, 1430, 6.0e-20, K_VR, 600, 0, 0, 50, 10.5, 0.12, 300, 0.055, 0.75, 1.3},
    {"nu2 fundamental", 1533.33, 1400, 1700, 3.0e-19, K_VR, 1000, 0, 0, 50, 10.5, 0.05, 300, 0.055, 0.75, 1.3},
    {"nu2 + nu4 combination", 2830, 2700, 2950, 4.0e-19, K_VR, 800, 0, 0, 50, 10.5, 0.05, 300, 0.055, 0.75, 1.3},
    {"nu3 fundamental", 3018.92, 2850, 3200, 1.1e-17, K_VR, 3000, 0, 0, 55, 10.5, 0.12, 300, 0.055, 0.75, 1.3},
};
static const band_spec N2O_BANDS[] = {
    {"nu2 fundamental 01101-00001", 588.77, 520, 660, 1.0e-18, K_PERP, 0, 0.00018, 0, 0, 0, 0, 0, 0.076, 0.75, 1.3},
    {"2nu2 10000-00001 (Fermi)", 1168.13, 1110, 1230, 3.2e-19, K_PAR, 0, -0.00060, 0, 0, 0, 0, 0, 0.076, 0.75, 1.3},
    {"nu1 fundamental 10001-00001", 1284.90, 1200, 1350, 8.9e-18, K_PAR, 0, -0.00170, 0, 0, 0, 0, 0, 0.076, 0.75, 1.3},
    {"nu1 hot 11101-01101", 1291.50, 1210, 1360, 1.1e-18, K_PERP, 0, -0.00160, 588.77, 0, 0, 0, 0, 0.076, 0.75, 1.3},
    {"nu3 hot 01111-01101", 2209.52, 2130, 2260, 6.5e-18, K_PERP, 0, -0.00340, 588.77, 0, 0, 0, 0, 0.076, 0.75, 1.3},
    {"nu3 fundamental 00011-00001", 2223.76, 2140, 2270, 5.1e-17, K_PAR, 0, -0.00350, 0, 0, 0, 0, 0, 0.076, 0.75, 1.3},
};
static const band_spec CO_BANDS[] = {
    {"13CO fundamental 1-0", 2096.07, 1990, 2200, 1.1e-19, K_PAR, 0, -0.0167, 0, 0, 0, 0, 0, 0.060, 0.73, 1.2},
    {"hot band 2-1", 2116.70, 2000, 2220, 6.0e-22, K_PAR, 0, -0.0175, 2143.27, 0, 0, 0, 0, 0.060, 0.73, 1.2},
    {"fundamental 1-0", 2143.27, 2020, 2260, 9.8e-18, K_PAR, 0, -0.0175, 0, 0, 0, 0, 0, 0.060, 0.73, 1.2},
};

#define NB(a) ((int)(sizeof a / sizeof a[0]))
static const gas_spec GASES[MIMIC_NGAS] = {
    [MIMIC_GAS_H2O] = {18.0153, 1.5, 0, 0, 2.5, H2O_BANDS, NB(H2O_BANDS)},
    [MIMIC_GAS_CO2] = {43.9898, 1.0, 0.39022, 1, 0, CO2_BANDS, NB(CO2_BANDS)},
    [MIMIC_GAS_O3] = {47.9982, 1.5, 0, 0, 1.4, O3_BANDS, NB(O3_BANDS)},
    [MIMIC_GAS_CH4] = {16.0313, 1.5, 0, 0, 1.2, CH4_BANDS, NB(CH4_BANDS)},
    [MIMIC_GAS_N2O] = {44.0011, 1.0, 0.41901, 0, 0, N2O_BANDS, NB(N2O_BANDS)},
    [MIMIC_GAS_CO] = {27.9949, 1.0, 1.92253, 0, 0, CO_BANDS, NB(CO_BANDS)},
};

int lbl_nline_bands(mimic_rad_gas gas)
{
    return (gas >= 0 && gas < MIMIC_NGAS) ? GASES[gas].nbands : 0;
}

/* Lines per band: random kinds as tabled; linear kinds as generated (J <= JMAX). */
#define JMAX 150
static int64_t band_capacity(const gas_spec *gs, const band_spec *b)
{
    (void)gs;
    return (b->kind == K_PAR || b->kind == K_PERP) ? 3 * (JMAX + 1) : b->nlines;
}

/* Philox draws for line i of band b: 8 uniforms in (0, 1). */
typedef struct draws {
    double u[8];
} draws;
static void draw(uint64_t seed, int gas, int band, int64_t i, draws *d)
{
    uint32_t key[2] = {(uint32_t)seed ^ (0x9E3779B9u * (uint32_t)(gas + 1)),
                       (uint32_t)(seed >> 32) ^ (0x85EBCA6Bu * (uint32_t)(band + 1))};
    for (uint32_t blk = 0; blk < 2; blk++) {
        uint32_t ctr[4] = {(uint32_t)i, blk, 0x4C424C00u, (uint32_t)((uint64_t)i >> 32)}, out[4];
        mimic_philox4x32(ctr, key, out);
        for (int k = 0; k < 4; k++)
            d->u[4 * blk + k] = ((double)out[k] + 0.5) * (1.0 / 4294967296.0);
    }
}
/* A standard normal from two uniforms (Box-Muller, libm-free log and sincos). */
static double normal(double u1, double u2)
{
    double s, c;
    mimic_det_sincos2pi(u2 < 1 ? u2 : 0, &s, &c);
    return sqrt(-2 * mimic_det_log(u1)) * c;
}
static double clampd(double x, double lo, double hi)
{
    return x < lo ? lo : x > hi ? hi : x;
}

/* Appends band b's lines to the arrays at offset *n; returns lines added. */
static int64_t gen_band(const mimic_rad_lbl_options *o, int gas, int ib, const gas_spec *gs,
                        lbl_gas_lines *L, int64_t n0)
{
    const band_spec *b = &gs->bands[ib];
    int64_t n = n0;
    draws d;
    if (b->kind == K_PAR || b->kind == K_PERP) {
        double B = gs->B, wmax = 0;
        /* the strongest weight of the band, for dropping negligible lines */
        for (int J = 0; J <= JMAX; J++)
            wmax = fmax(wmax, (2 * J + 1) * exp(-LBL_C2 * B * J * (J + 1) / LBL_TREF));
        for (int J = 0; J <= JMAX; J++) {
            if (gs->even_j && (J & 1))
                continue;
            double boltz = exp(-LBL_C2 * B * J * (J + 1) / LBL_TREF);
            for (int br = 0; br < 3; br++) { /* P, Q, R */
                double w, nu, m;
                if (b->kind == K_PAR) {
                    if (br == 1)
                        continue;
                    w = br == 0 ? J : J + 1;
                } else {
                    w = br == 0 ? (J - 1) / 2.0 : br == 1 ? (2 * J + 1) / 2.0 : (J + 2) / 2.0;
                }
                if (w <= 0 || w * boltz < 1e-10 * wmax)
                    continue;
                if (br == 0)
                    nu = b->centre - 2 * B * J + b->dB * J * (J - 1), m = J;
                else if (br == 1)
                    nu = b->centre + b->dB * J * (J + 1), m = J;
                else
                    nu = b->centre + 2 * B * (J + 1) + b->dB * (J + 1) * (J + 2), m = J + 1;
                draw(o->seed, gas, ib, 3 * J + br, &d);
                nu += 0.002 * normal(d.u[0], d.u[1]);
                if (nu < b->lo || nu > b->hi)
                    continue;
                double mm = fmin(m, 60) / 60;
                L->nu[n] = nu;
                L->s[n] = w * boltz * exp(0.05 * normal(d.u[2], d.u[3]));
                L->gair[n] = b->gair * (1.15 - 0.35 * mm) * (1 + 0.03 * normal(d.u[4], d.u[5]));
                L->gself[n] = L->gair[n] * b->self_ratio;
                L->nair[n] = b->nair - 0.1 * mm;
                L->elow[n] = b->evib + B * J * (J + 1);
                n++;
            }
        }
    } else {
        double sig = gs->sigma;
        for (int64_t i = 0; i < b->nlines; i++) {
            draw(o->seed, gas, ib, i, &d);
            double g1 = normal(d.u[1], d.u[2]), g2 = normal(d.u[5], d.u[6]);
            double e1 = -mimic_det_log(d.u[4]); /* Exp(1): rotational excitation */
            double nu, m, r2;
            if (b->kind == K_ROT) {
                /* half the lines log-normally about the peak, half uniform */
                if (d.u[0] < 0.5)
                    nu = b->centre * exp(0.5 * (b->w + b->w2) * g1);
                else
                    nu = b->lo + (b->hi - b->lo) * d.u[3];
                if (nu < b->lo || nu > b->hi)
                    nu = b->lo + (b->hi - b->lo) * d.u[3];
                double lr = log(nu / b->centre) / (nu > b->centre ? b->w : b->w2);
                r2 = lr * lr;
                m = exp(-r2) + 1e-6;
                r2 = nu / b->centre; /* lower-state energy grows with the line's J */
            } else {
                double dl, mq = 0;
                if (d.u[0] < b->qfrac) { /* Q-branch line */
                    dl = 3 * g1, mq = 0.6;
                } else if (d.u[0] < b->qfrac + 0.2 * (1 - b->qfrac)) { /* weak background */
                    dl = b->lo + (b->hi - b->lo) * d.u[3] - b->centre;
                } else { /* P or R lobe: Rayleigh-distributed distance */
                    dl = 1.3 * b->w * sqrt(-mimic_det_log(d.u[3])) * (d.u[7] < 0.5 ? -1 : 1);
                }
                if (b->w2 > 0 && mq == 0) /* J manifolds (CH4) */
                    dl = b->w2 * floor(dl / b->w2 + 0.5) + 0.8 * g1;
                nu = b->centre + dl;
                if (nu < b->lo || nu > b->hi) {
                    nu = b->lo + (b->hi - b->lo) * d.u[3];
                    dl = nu - b->centre;
                }
                double x = fabs(dl) / b->w;
                m = mq > 0 ? mq : x * exp(-x * x) + 1e-7;
                r2 = x * x;
            }
            L->nu[n] = nu;
            L->s[n] = m * exp(sig * g2) * exp(-LBL_C2 * b->escale * e1 / LBL_TREF);
            double gj = normal(d.u[7], d.u[0]), gn = normal(d.u[2], d.u[6]);
            L->gair[n] = b->gair * clampd(1 + 0.2 * gj, 0.4, 1.8);
            L->gself[n] = L->gair[n] * b->self_ratio;
            L->nair[n] = clampd(b->nair + 0.08 * gn, 0.4, 1.0);
            L->elow[n] = b->evib + b->escale * (r2 + e1);
            n++;
        }
    }
    /* normalise to the band intensity (before any range cut) */
    double sum = 0;
    for (int64_t i = n0; i < n; i++)
        sum += L->s[i];
    for (int64_t i = n0; i < n; i++)
        L->s[i] *= b->strength / sum;
    return n - n0;
}

typedef struct key_idx {
    double nu;
    int64_t i;
} key_idx;
static int cmp_key(const void *a, const void *b)
{
    const key_idx *x = a, *y = b;
    if (x->nu != y->nu)
        return x->nu < y->nu ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);
}

static int alloc_lines(lbl_gas_lines *L, int64_t cap)
{
    double *blk = mimic_malloc((size_t)(cap > 0 ? cap : 1) * 6 * sizeof(double));
    if (!blk)
        return MIMIC_ENOMEM;
    L->nu = blk, L->s = blk + cap, L->gair = blk + 2 * cap, L->gself = blk + 3 * cap;
    L->nair = blk + 4 * cap, L->elow = blk + 5 * cap;
    return 0;
}

void lbl_gas_lines_free(lbl_gas_lines *g)
{
    mimic_free(g->nu); /* one block holds all six arrays */
    memset(g, 0, sizeof *g);
}

int lbl_gen_lines(const mimic_rad_lbl_options *o, mimic_rad_gas gas, lbl_gas_lines *out)
{
    memset(out, 0, sizeof *out);
    const gas_spec *gs = &GASES[gas];
    out->mass = gs->mass, out->q_exp = gs->q_exp;
    if (gs->nbands == 0)
        return 0;
    int64_t cap = 0;
    for (int b = 0; b < gs->nbands; b++)
        cap += band_capacity(gs, &gs->bands[b]);
    lbl_gas_lines tmp = {0};
    if (alloc_lines(&tmp, cap))
        return MIMIC_ENOMEM;
    int64_t n = 0;
    for (int b = 0; b < gs->nbands; b++)
        n += gen_band(o, (int)gas, b, gs, &tmp, n);
    /* keep what can reach [nu_min, nu_max] within the cut-off; sort by position */
    key_idx *k = mimic_malloc((size_t)(n > 0 ? n : 1) * sizeof *k);
    if (!k) {
        lbl_gas_lines_free(&tmp);
        return MIMIC_ENOMEM;
    }
    int64_t m = 0;
    for (int64_t i = 0; i < n; i++)
        if (tmp.nu[i] >= o->nu_min - o->cutoff && tmp.nu[i] <= o->nu_max + o->cutoff && tmp.nu[i] > 0)
            k[m].nu = tmp.nu[i], k[m].i = i, m++;
    qsort(k, (size_t)m, sizeof *k, cmp_key);
    if (alloc_lines(out, m)) {
        mimic_free(k);
        lbl_gas_lines_free(&tmp);
        return MIMIC_ENOMEM;
    }
    out->n = m, out->mass = gs->mass, out->q_exp = gs->q_exp;
    for (int64_t j = 0; j < m; j++) {
        int64_t i = k[j].i;
        out->nu[j] = tmp.nu[i], out->s[j] = tmp.s[i], out->gair[j] = tmp.gair[i];
        out->gself[j] = tmp.gself[i], out->nair[j] = tmp.nair[i], out->elow[j] = tmp.elow[i];
    }
    mimic_free(k);
    lbl_gas_lines_free(&tmp);
    return 0;
}

/* Band table view; nlines is the generated count (before the range cut). */
int lbl_line_band(mimic_rad_gas gas, int i, mimic_rad_band_info *out)
{
    const gas_spec *gs = &GASES[gas];
    const band_spec *b = &gs->bands[i];
    out->name = b->name, out->centre = b->centre, out->lo = b->lo, out->hi = b->hi;
    out->strength = b->strength;
    if (b->kind == K_PAR || b->kind == K_PERP) {
        /* count by generating into scratch (cheap: < 500 lines) */
        lbl_gas_lines tmp = {0};
        if (alloc_lines(&tmp, band_capacity(gs, b)))
            return MIMIC_ENOMEM;
        mimic_rad_lbl_options o;
        mimic_rad_lbl_options_default(&o);
        out->nlines = gen_band(&o, (int)gas, i, gs, &tmp, 0);
        lbl_gas_lines_free(&tmp);
    } else {
        out->nlines = b->nlines;
    }
    return 0;
}
