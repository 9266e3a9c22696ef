/* Spectral-resolution convergence of the line-by-line model (docs/radiation-lbl.md).
 *
 * One mid-latitude-summer-like analytic column (temperature, H2O and O3
 * profiles below; well-mixed gases at present-day values). Optical depths
 * from mimic_rad_lbl_layer_tau on the variable grid at resolution factor res
 * and res/2; fluxes by a private no-scattering two-stream (diffusivity 1.66,
 * source linear in optical depth, black surface) in 16 RRTMGP-like bands.
 * Prints OLR, surface downwelling flux, per-band fluxes and column
 * transmittances at both resolutions and their differences, plus timings of
 * mimic_rad_lbl_absorption per gas on the full grid.
 *
 * Build and run: scripts/rad_lbl_convergence [nlay] [nu_min] [nu_max] [res]
 *            or: scripts/rad_lbl_convergence budget [npressures]   (k-table timing)
 *            or: scripts/rad_lbl_convergence attrib [nlay] [res]   (OLR by absorber group)
 */
#include "mimic/rad_lbl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* CPU seconds of the process (all threads): the machine may be shared. */
static double cpu(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Planck radiance per cm^-1, W m^-2 sr^-1 (cm^-1)^-1. */
static double planck(double nu, double t)
{
    const double c1 = 1.191042972e-8, c2 = 1.4387769; /* 2hc^2 in W m^-2 sr^-1 (cm^-1)^-4, hc/k cm K */
    return c1 * nu * nu * nu / expm1(c2 * nu / t);
}

static double temp_of_z(double z) /* km -> K; close to AFGL mid-latitude summer */
{
    if (z < 13) return 294 - 6.0 * z;
    if (z < 20) return 216;
    if (z < 32) return 216 + (z - 20);
    if (z < 47) return 228 + 2.8 * (z - 32);
    if (z < 51) return 270;
    if (z < 71) return 270 - 2.8 * (z - 51);
    return 214 - 2.0 * (z - 71);
}

#define NB 16
static const double BANDS[NB + 1] = {10,   250,  500,  630,  700,  820,  980,  1080, 1180,
                                     1390, 1480, 1800, 2080, 2250, 2390, 2680, 3250};

typedef struct column {
    int nlay;
    double *plev, *tlev;
    mimic_rad_layer *lay;
} column;

static void make_column(int nlay, column *c)
{
    c->nlay = nlay;
    c->plev = malloc((size_t)(nlay + 1) * sizeof(double));
    c->tlev = malloc((size_t)(nlay + 1) * sizeof(double));
    c->lay = calloc((size_t)nlay, sizeof(mimic_rad_layer));
    const double H = 7.0, ztop = 80;
    for (int i = 0; i <= nlay; i++) { /* level i: index 0 = top */
        double u = (double)(nlay - i) / nlay, z = ztop * pow(u, 1.7);
        c->plev[i] = 101325 * exp(-z / H);
        c->tlev[i] = temp_of_z(z);
    }
    for (int l = 0; l < nlay; l++) {
        mimic_rad_layer *L = &c->lay[l];
        double pt = c->plev[l], pb = c->plev[l + 1];
        L->p = sqrt(pt * pb);
        L->t = 0.5 * (c->tlev[l] + c->tlev[l + 1]);
        double z = -H * log(L->p / 101325);
        double h2o = fmax(0.019 * exp(-z / 2.1), 4e-6);
        double o3 = 3e-8 + 7.5e-6 * exp(-((z - 27) / 8) * ((z - 27) / 8));
        L->vmr[MIMIC_GAS_H2O] = h2o;
        L->vmr[MIMIC_GAS_O3] = o3;
        L->vmr[MIMIC_GAS_CO2] = 415e-6;
        L->vmr[MIMIC_GAS_CH4] = 1.9e-6;
        L->vmr[MIMIC_GAS_N2O] = 0.332e-6;
        L->vmr[MIMIC_GAS_CO] = z < 15 ? 1.0e-7 : 3e-8;
        L->vmr[MIMIC_GAS_O2] = 0.2095;
        L->vmr[MIMIC_GAS_N2] = 0.7808;
        L->vmr[MIMIC_GAS_CCL4] = 0.08e-9;
        L->vmr[MIMIC_GAS_CFC11] = 0.23e-9;
        L->vmr[MIMIC_GAS_CFC12] = 0.50e-9;
        L->vmr[MIMIC_GAS_HCFC22] = 0.25e-9;
        L->vmr[MIMIC_GAS_HFC143A] = 0.025e-9;
        L->vmr[MIMIC_GAS_HFC125] = 0.03e-9;
        L->vmr[MIMIC_GAS_HFC23] = 0.03e-9;
        L->vmr[MIMIC_GAS_HFC32] = 0.02e-9;
        L->vmr[MIMIC_GAS_HFC134A] = 0.10e-9;
        L->vmr[MIMIC_GAS_CF4] = 0.085e-9;
        L->col_dry = mimic_rad_col_dry(pt, pb, h2o);
    }
}

typedef struct result {
    double olr, sfc_dn, band_up[NB], band_dn[NB], band_tr[NB], band_w[NB];
    int64_t npts;
    double seconds, cpu;
} result;

static double lin_src(double tau, double tr, double blay, double bexit)
{
    double f = tau > 1e-4 ? (1 - tr) / tau - tr : tau / 2 - tau * tau / 3;
    return (1 - tr) * bexit + 2 * f * (blay - bexit);
}

/* One band [nu0, nu1] on its own grid (so band edges are grid points at every resolution). */
static int run_band(const mimic_rad_lbl *lbl, const column *c, double nu0, double nu1, double res, result *r)
{
    double pmin = c->lay[0].p;
    mimic_rad_grid *G = mimic_rad_lbl_grid(lbl, nu0, nu1, pmin, res);
    if (!G)
        return -1;
    r->npts += G->n;
    const int64_t CH = 65536;
    int nl = c->nlay;
    double *tau = malloc((size_t)nl * CH * sizeof(double));
    const double D = 1.66, pi = 3.14159265358979323846;
    for (int64_t i0 = 0; i0 < G->n; i0 += CH) {
        int64_t m = G->n - i0 < CH ? G->n - i0 : CH;
        for (int l = 0; l < nl; l++)
            if (mimic_rad_lbl_layer_tau(lbl, &c->lay[l], m, G->nu + i0, tau + (size_t)l * CH)) {
                fprintf(stderr, "layer_tau: %s\n", mimic_errmsg());
                return -1;
            }
        for (int64_t i = 0; i < m; i++) {
            double nu = G->nu[i0 + i], w = G->w[i0 + i];
            /* down from the top (index 0) */
            double I = 0, colt = 0;
            for (int l = 0; l < nl; l++) {
                double ts = D * tau[(size_t)l * CH + i], tr = exp(-ts);
                double bl = planck(nu, c->lay[l].t), bx = planck(nu, c->tlev[l + 1]);
                I = I * tr + lin_src(ts, tr, bl, bx);
                colt += tau[(size_t)l * CH + i];
            }
            double dn = pi * I;
            /* up from a black surface at the lowest level temperature */
            I = planck(nu, c->tlev[nl]);
            for (int l = nl - 1; l >= 0; l--) {
                double ts = D * tau[(size_t)l * CH + i], tr = exp(-ts);
                double bl = planck(nu, c->lay[l].t), bx = planck(nu, c->tlev[l]);
                I = I * tr + lin_src(ts, tr, bl, bx);
            }
            double up = pi * I;
            int b = 0;
            while (b < NB - 1 && nu >= BANDS[b + 1])
                b++;
            r->band_up[b] += up * w, r->band_dn[b] += dn * w;
            r->band_tr[b] += exp(-colt) * w, r->band_w[b] += w;
            r->olr += up * w, r->sfc_dn += dn * w;
        }
    }
    free(tau);
    mimic_rad_grid_free(G);
    return 0;
}

static int run(const mimic_rad_lbl *lbl, const column *c, double nu0, double nu1, double res, result *r)
{
    memset(r, 0, sizeof *r);
    double t0 = now(), c0 = cpu();
    for (int b = 0; b < NB; b++) {
        double lo = fmax(nu0, BANDS[b]), hi = fmin(nu1, BANDS[b + 1]);
        if (hi > lo && run_band(lbl, c, lo, hi, res, r))
            return -1;
    }
    for (int b = 0; b < NB; b++)
        r->band_tr[b] = r->band_w[b] > 0 ? r->band_tr[b] / r->band_w[b] : 0;
    r->seconds = now() - t0;
    r->cpu = cpu() - c0;
    return 0;
}

/* Attribution: OLR per band with every absorber group, and its increase when
 * one group is removed (H2O lines, H2O continuum, CO2, O3, CH4 + N2O,
 * CO + CIA, halocarbons); grid at resolution res. */
#define NGRP 7
static int attrib(int nlay, double res)
{
    mimic_rad_lbl *lbl = mimic_rad_lbl_new(NULL);
    if (!lbl)
        return 1;
    column c;
    make_column(nlay, &c);
    static const char *nm[NGRP] = {"h2o_lin", "h2o_cnt", "co2", "o3", "ch4+n2o", "co+cia", "halo"};
    double olr[NGRP + 1][NB], dn = 0, pi = 3.14159265358979323846;
    memset(olr, 0, sizeof olr);
    for (int b = 0; b < NB; b++) {
        mimic_rad_grid *G = mimic_rad_lbl_grid(lbl, BANDS[b], BANDS[b + 1], c.lay[0].p, res);
        if (!G)
            return 1;
        int64_t n = G->n;
        double *tau = calloc((size_t)NGRP * nlay * n, sizeof(double)), *k = malloc((size_t)n * sizeof(double));
        for (int l = 0; l < nlay; l++) {
            const mimic_rad_layer *L = &c.lay[l];
            for (int g = 0; g < MIMIC_NGAS; g++) {
                if (L->vmr[g] == 0)
                    continue;
                for (int part = 0; part < (g == MIMIC_GAS_H2O ? 2 : 1); part++) {
                    unsigned parts = g != MIMIC_GAS_H2O ? MIMIC_RAD_LBL_ALL
                                     : part == 0        ? MIMIC_RAD_LBL_LINES
                                                        : MIMIC_RAD_LBL_CONTINUUM;
                    int grp = g == MIMIC_GAS_H2O ? part
                              : g == MIMIC_GAS_CO2 ? 2
                              : g == MIMIC_GAS_O3 ? 3
                              : (g == MIMIC_GAS_CH4 || g == MIMIC_GAS_N2O) ? 4
                              : (g == MIMIC_GAS_CO || g == MIMIC_GAS_O2 || g == MIMIC_GAS_N2) ? 5
                                                                                               : 6;
                    if (mimic_rad_lbl_absorption(lbl, g, L->p, L->t, L->vmr[MIMIC_GAS_H2O], parts, n, G->nu, k))
                        return 1;
                    double *t = tau + ((size_t)grp * nlay + l) * n;
                    for (int64_t i = 0; i < n; i++)
                        t[i] += k[i] * L->vmr[g] * L->col_dry;
                }
            }
        }
        for (int cs = 0; cs <= NGRP; cs++) /* cs = NGRP: all groups */
            for (int64_t i = 0; i < n; i++) {
                double nu = G->nu[i], I = planck(nu, c.tlev[nlay]), Id = 0;
                for (int l = nlay - 1; l >= 0; l--) {
                    double tt = 0;
                    for (int q = 0; q < NGRP; q++)
                        tt += q != cs ? tau[((size_t)q * nlay + l) * n + i] : 0;
                    double ts = 1.66 * tt, tr = exp(-ts);
                    I = I * tr + lin_src(ts, tr, planck(nu, c.lay[l].t), planck(nu, c.tlev[l]));
                }
                olr[cs][b] += pi * I * G->w[i];
                if (cs == NGRP) {
                    for (int l = 0; l < nlay; l++) {
                        double tt = 0;
                        for (int q = 0; q < NGRP; q++)
                            tt += tau[((size_t)q * nlay + l) * n + i];
                        double ts = 1.66 * tt, tr = exp(-ts);
                        Id = Id * tr + lin_src(ts, tr, planck(nu, c.lay[l].t), planck(nu, c.tlev[l + 1]));
                    }
                    dn += pi * Id * G->w[i];
                }
            }
        free(tau), free(k);
        mimic_rad_grid_free(G);
    }
    printf("%-11s %9s", "band cm^-1", "OLR");
    for (int q = 0; q < NGRP; q++)
        printf(" %8s", nm[q]);
    printf("   (OLR increase when the group is removed)\n");
    double tot[NGRP + 1] = {0};
    for (int b = 0; b < NB; b++) {
        printf("%4.0f-%-6.0f %9.3f", BANDS[b], BANDS[b + 1], olr[NGRP][b]);
        for (int q = 0; q < NGRP; q++)
            printf(" %8.3f", olr[q][b] - olr[NGRP][b]);
        printf("\n");
        for (int q = 0; q <= NGRP; q++)
            tot[q] += olr[q][b];
    }
    printf("%-11s %9.3f", "total", tot[NGRP]);
    for (int q = 0; q < NGRP; q++)
        printf(" %8.3f", tot[q] - tot[NGRP]);
    printf("\nsurface downwelling %.3f W m^-2 (%d layers, res %g)\n", dn, nlay, res);
    mimic_rad_lbl_free(lbl);
    free(c.plev), free(c.tlev), free(c.lay);
    return 0;
}

/* k-table budget: CPU seconds of one (p, T) spectrum of each line gas on the
 * grid built for that pressure (p_min = p), at np pressures log-spaced over
 * [1, 1e5] Pa; then the estimate for RRTMGP's 59 pressures x 14 temperatures. */
static int budget(int np)
{
    mimic_rad_lbl *lbl = mimic_rad_lbl_new(NULL);
    if (!lbl)
        return 1;
    double sum = 0, wall = 0;
    printf("%10s %9s %7s %7s %7s %7s %7s %7s %7s %8s\n", "p (Pa)", "points", "grid", "h2o", "co2", "o3", "ch4",
           "n2o", "co", "CPU s");
    for (int i = 0; i < np; i++) {
        double p = pow(10, 5.0 * i / (np - 1)), c0 = cpu(), w0 = now();
        mimic_rad_grid *G = mimic_rad_lbl_grid(lbl, 10, 3250, p, 1);
        double tg = cpu() - c0, tot = 0;
        double *k = malloc((size_t)G->n * sizeof *k);
        printf("%10.3g %9lld %7.3f", p, (long long)G->n, tg);
        for (int g = 0; g < 6; g++) {
            double ta = cpu();
            mimic_rad_lbl_absorption(lbl, g, p, 250, 1e-3, MIMIC_RAD_LBL_ALL, G->n, G->nu, k);
            printf(" %7.3f", cpu() - ta);
            tot += cpu() - ta;
        }
        printf(" %8.3f\n", tot);
        sum += tot;
        wall += now() - w0;
        free(k);
        mimic_rad_grid_free(G);
    }
    double per = sum / np;
    printf("mean CPU s per (p, T) node, 6 line gases, whole 10-3250 cm^-1: %.3f (wall for all: %.1f s)\n", per, wall);
    printf("59 x 14 nodes: %.0f CPU s = %.1f min on 2 cores (grids once per pressure, not counted)\n",
           per * 59 * 14, per * 59 * 14 / 2 / 60);
    mimic_rad_lbl_free(lbl);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "budget") == 0)
        return budget(argc > 2 ? atoi(argv[2]) : 11);
    if (argc > 1 && strcmp(argv[1], "attrib") == 0)
        return attrib(argc > 2 ? atoi(argv[2]) : 16, argc > 3 ? atof(argv[3]) : 2);
    int nlay = argc > 1 ? atoi(argv[1]) : 30;
    double nu0 = argc > 2 ? atof(argv[2]) : 10, nu1 = argc > 3 ? atof(argv[3]) : 3250;
    double res = argc > 4 ? atof(argv[4]) : 1;
    if (nlay < 1 || !(nu1 > nu0) || !(res > 0)) {
        fprintf(stderr, "usage: rad_lbl_convergence [nlay>0] [nu_min] [nu_max] [res>0]\n");
        return 2;
    }
    double t0 = now();
    mimic_rad_lbl *lbl = mimic_rad_lbl_new(NULL);
    if (!lbl) {
        fprintf(stderr, "%s\n", mimic_errmsg());
        return 1;
    }
    printf("line list: %.3f s;", now() - t0);
    for (int g = 0; g < 6; g++) {
        mimic_rad_lines L;
        mimic_rad_lbl_lines(lbl, g, &L);
        printf(" %s %lld", mimic_rad_gas_name(g), (long long)L.n);
    }
    printf(" lines\n");
    column c;
    make_column(nlay, &c);
    printf("column: %d layers, p_top %.3g Pa, T_sfc %.1f K, %d threads\n", nlay, c.lay[0].p, c.tlev[nlay],
           mimic_get_num_threads());

    /* timings: one (p, T) spectrum per gas on the full grid at two pressures */
    double tp[2] = {c.lay[0].p, c.lay[nlay - 1].p}, tt[2] = {c.lay[0].t, c.lay[nlay - 1].t};
    for (int q = 0; q < 2; q++) {
        double tg = now();
        mimic_rad_grid *G = mimic_rad_lbl_grid(lbl, nu0, nu1, tp[q], res);
        printf("grid for p_min = %.4g Pa, res %g: %lld points (%.3f s); absorption CPU s per gas:", tp[q], res,
               (long long)G->n, now() - tg);
        double *k = malloc((size_t)G->n * sizeof *k), tot = 0;
        for (int g = 0; g < MIMIC_NGAS; g++) {
            double ta = cpu();
            mimic_rad_lbl_absorption(lbl, g, tp[q], tt[q], 1e-3, MIMIC_RAD_LBL_ALL, G->n, G->nu, k);
            double dt = cpu() - ta;
            tot += dt;
            if (g < 6)
                printf(" %s %.3f", mimic_rad_gas_name(g), dt);
        }
        printf(" | all 18 gases %.3f\n", tot);
        free(k);
        mimic_rad_grid_free(G);
    }

    result a, b;
    if (run(lbl, &c, nu0, nu1, res, &a) || run(lbl, &c, nu0, nu1, res / 2, &b)) {
        fprintf(stderr, "%s\n", mimic_errmsg());
        return 1;
    }
    printf("res %-5g: %9lld points, %.1f s (%.1f CPU s); res %-5g: %9lld points, %.1f s (%.1f CPU s)\n", res,
           (long long)a.npts, a.seconds, a.cpu, res / 2, (long long)b.npts, b.seconds, b.cpu);
    printf("%-11s %12s %12s %10s %12s %12s %10s %9s %9s\n", "band cm^-1", "up_toa", "up_toa/2", "diff",
           "dn_sfc", "dn_sfc/2", "diff", "trans", "trans/2");
    double worst = 0;
    for (int q = 0; q < NB; q++) {
        printf("%4.0f-%-6.0f %12.5f %12.5f %10.2e %12.5f %12.5f %10.2e %9.5f %9.5f\n", BANDS[q], BANDS[q + 1],
               a.band_up[q], b.band_up[q], a.band_up[q] - b.band_up[q], a.band_dn[q], b.band_dn[q],
               a.band_dn[q] - b.band_dn[q], a.band_tr[q], b.band_tr[q]);
        worst = fmax(worst, fmax(fabs(a.band_up[q] - b.band_up[q]), fabs(a.band_dn[q] - b.band_dn[q])));
    }
    printf("OLR %.4f -> %.4f W m^-2 (diff %.2e); surface down %.4f -> %.4f (diff %.2e); worst band diff %.2e\n",
           a.olr, b.olr, a.olr - b.olr, a.sfc_dn, b.sfc_dn, a.sfc_dn - b.sfc_dn, worst);
    mimic_rad_lbl_free(lbl);
    free(c.plev), free(c.tlev), free(c.lay);
    return 0;
}
