/* Builds the longwave k-distribution from the line-by-line model and compares
 * its fluxes with the LBL model's on one column (docs/radiation-kdist.md).
 *
 *   rad_build_kdist build OUT.h5 [np] [res]     the full table (16 bands x 16 g)
 *   rad_build_kdist compare TABLE.h5 [nlay] [res] [nmu]
 *                                              k-dist vs LBL fluxes, MLS-like column
 *   rad_build_kdist bench TABLE.h5 [nlay] [reps] kernel time per layer
 *
 * Built and run by `make kdist` (or by hand, like the bench binaries). The
 * git commit for the provenance comes from the environment (GIT_COMMIT). */
#include "mimic/rad_kdist.h"
#include "mimic/rad_rte.h"

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
static double cpu(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int fail(const char *what)
{
    fprintf(stderr, "rad_build_kdist: %s: %s\n", what, mimic_errmsg());
    return 1;
}

static int build(int argc, char **argv)
{
    const char *out = argv[2];
    mimic_rad_kdist_build_options o;
    mimic_rad_kdist_build_options_default(&o);
    if (argc > 3)
        o.np = atoi(argv[3]);
    if (argc > 4)
        o.res = atof(argv[4]);
    int64_t bytes = mimic_rad_kdist_table_bytes(&o);
    if (bytes < 0)
        return fail("options");
    printf("table: %d bands x %d g, %d pressures (+1 split slot), %d temperatures, %d eta: %.2f MB float32\n",
           o.nband, o.ngb, o.np, o.nt, o.neta, bytes / 1e6);
    double w0 = now(), c0 = cpu();
    mimic_rad_lbl *lbl = mimic_rad_lbl_new(NULL);
    if (!lbl)
        return fail("lbl");
    mimic_rad_kdist *k = mimic_rad_kdist_build(lbl, &o);
    if (!k)
        return fail("build");
    double wall = now() - w0, cs = cpu() - c0;
    time_t tt = time(NULL);
    char date[64], prov[2048];
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", gmtime(&tt));
    const char *commit = getenv("GIT_COMMIT");
    snprintf(prov, sizeof prov,
             "command=scripts/rad_build_kdist build %s %d %g\ndate=%s\ngit_commit=%s\nlbl_seed=%llu\n"
             "lbl=mimic_rad_lbl_new(NULL): all gases, 10-3250 cm^-1, cut-off 25 cm^-1\n"
             "grid_res=%g\nnp=%d\np_min=%g\np_max=%g\np_split=%g\nnt=%d\nt_min=%g\ndt=%g\nneta=%d\n"
             "build_wall_s=%.1f\nbuild_cpu_s=%.1f\n",
             out, o.np, o.res, date, commit ? commit : "unknown", (unsigned long long)MIMIC_RAD_LBL_SEED, o.res, o.np,
             o.p_min, o.p_max, k->p_split, o.nt, o.t_min, o.dt, o.neta, wall, cs);
    if (mimic_rad_kdist_save(k, out, prov))
        return fail("save");
    printf("%s", prov);
    printf("built in %.1f s wall, %.1f CPU s; wrote %s\n", wall, cs, out);
    mimic_rad_kdist_free(k);
    mimic_rad_lbl_free(lbl);
    return 0;
}

/* --- the comparison column (the LBL convergence check's MLS-like column) --- */

static double temp_of_z(double z)
{
    if (z < 13) return 294 - 6.0 * z;
    if (z < 20) return 216;
    if (z < 32) return 216 + (z - 20);
    if (z < 47) return 228 + 2.8 * (z - 32);
    if (z < 51) return 270;
    if (z < 71) return 270 - 2.8 * (z - 51);
    return 214 - 2.0 * (z - 71);
}

typedef struct column {
    int nlay;
    double *plev, *tlev, *play, *tlay, *vmr;
} column;

static void make_column(int nlay, column *c)
{
    c->nlay = nlay;
    c->plev = malloc((size_t)(nlay + 1) * sizeof(double));
    c->tlev = malloc((size_t)(nlay + 1) * sizeof(double));
    c->play = malloc((size_t)nlay * sizeof(double));
    c->tlay = malloc((size_t)nlay * sizeof(double));
    c->vmr = calloc((size_t)nlay * MIMIC_NGAS, sizeof(double));
    const double H = 7.0, ztop = 80;
    for (int i = 0; i <= nlay; i++) {
        double u = (double)(nlay - i) / nlay, z = ztop * pow(u, 1.7);
        c->plev[i] = 101325 * exp(-z / H);
        c->tlev[i] = temp_of_z(z);
    }
    for (int l = 0; l < nlay; l++) {
        double *v = c->vmr + (size_t)l * MIMIC_NGAS;
        c->play[l] = sqrt(c->plev[l] * c->plev[l + 1]);
        c->tlay[l] = 0.5 * (c->tlev[l] + c->tlev[l + 1]);
        double z = -H * log(c->play[l] / 101325);
        v[MIMIC_GAS_H2O] = fmax(0.019 * exp(-z / 2.1), 4e-6);
        v[MIMIC_GAS_O3] = 3e-8 + 7.5e-6 * exp(-((z - 27) / 8) * ((z - 27) / 8));
        v[MIMIC_GAS_CO2] = 415e-6;
        v[MIMIC_GAS_CH4] = 1.9e-6;
        v[MIMIC_GAS_N2O] = 0.332e-6;
        v[MIMIC_GAS_CO] = z < 15 ? 1.0e-7 : 3e-8;
        v[MIMIC_GAS_O2] = 0.2095;
        v[MIMIC_GAS_N2] = 0.7808;
        v[MIMIC_GAS_CCL4] = 0.08e-9;
        v[MIMIC_GAS_CFC11] = 0.23e-9;
        v[MIMIC_GAS_CFC12] = 0.50e-9;
        v[MIMIC_GAS_HCFC22] = 0.25e-9;
        v[MIMIC_GAS_HFC143A] = 0.025e-9;
        v[MIMIC_GAS_HFC125] = 0.03e-9;
        v[MIMIC_GAS_HFC23] = 0.03e-9;
        v[MIMIC_GAS_HFC32] = 0.02e-9;
        v[MIMIC_GAS_HFC134A] = 0.10e-9;
        v[MIMIC_GAS_CF4] = 0.085e-9;
    }
}

/* LBL optics for a chunk of monochromatic points. */
typedef struct lbl_ud {
    const mimic_rad_lbl *lbl;
    int64_t n;
    const double *nu;
} lbl_ud;

static int lbl_optics(void *ud, const mimic_rad_layer *lay, int nlay, double *tau, double *pf)
{
    const lbl_ud *u = ud;
    for (int l = 0; l < nlay; l++) {
        int rc = mimic_rad_lbl_layer_tau(u->lbl, &lay[l], u->n, u->nu, tau + (int64_t)l * u->n);
        if (rc)
            return rc;
    }
    for (int64_t i = 0; i < (int64_t)nlay * u->n; i++)
        pf[i] = 1;
    return 0;
}

static int compare(int argc, char **argv)
{
    int nlay = argc > 3 ? atoi(argv[3]) : 24, nmu = argc > 5 ? atoi(argv[5]) : 1;
    double res = argc > 4 ? atof(argv[4]) : 1;
    mimic_rad_kdist *k = mimic_rad_kdist_load(argv[2]);
    if (!k)
        return fail("load");
    column c;
    make_column(nlay, &c);
    double tsfc = c.tlev[nlay], emis = 1;
    mimic_rad_atm atm = {1, nlay, c.play, c.tlay, c.plev, c.tlev, &tsfc, &emis, c.vmr};
    int nlev = nlay + 1;
    double *up = malloc(nlev * sizeof *up), *dn = malloc(nlev * sizeof *dn);
    double *kup = calloc(nlev, sizeof *kup), *kdn = calloc(nlev, sizeof *kdn);
    double *lup = calloc(nlev, sizeof *lup), *ldn = calloc(nlev, sizeof *ldn);
    double *kh = malloc(nlay * sizeof *kh), *lh = malloc(nlay * sizeof *lh);
    /* k-distribution, band by band (weights select one band) */
    mimic_rad_optics opt;
    mimic_rad_kdist_optics(k, &opt);
    double *wsel = malloc(k->ngpt * sizeof *wsel), bk_up[16], bk_dn[16], bl_up[16], bl_dn[16];
    double t0 = now();
    for (int b = 0; b < k->nband; b++) {
        for (int g = 0; g < k->ngpt; g++)
            wsel[g] = g / k->ngb == b;
        opt.weight = wsel;
        if (mimic_rad_lw_fluxes(&atm, &opt, nmu, up, dn, NULL))
            return fail("kdist fluxes");
        bk_up[b] = up[0], bk_dn[b] = dn[nlay];
        for (int i = 0; i < nlev; i++)
            kup[i] += up[i], kdn[i] += dn[i];
    }
    double tk = now() - t0;
    /* LBL: each band on its own grid, in chunks of monochromatic points */
    mimic_rad_lbl *lbl = mimic_rad_lbl_new(NULL);
    if (!lbl)
        return fail("lbl");
    t0 = now();
    int64_t npts = 0;
    for (int b = 0; b < k->nband; b++) {
        mimic_rad_grid *gr = mimic_rad_lbl_grid(lbl, k->band_lo[b], k->band_hi[b], c.plev[0] > 0 ? c.plev[0] : 1, res);
        if (!gr)
            return fail("grid");
        npts += gr->n;
        bl_up[b] = bl_dn[b] = 0;
        const int64_t CH = 20000;
        for (int64_t i0 = 0; i0 < gr->n; i0 += CH) {
            int64_t n = gr->n - i0 < CH ? gr->n - i0 : CH;
            lbl_ud u = {lbl, n, gr->nu + i0};
            mimic_rad_optics lo = {(int)n, gr->nu + i0, gr->nu + i0, gr->w + i0, lbl_optics, &u};
            if (mimic_rad_lw_fluxes(&atm, &lo, nmu, up, dn, NULL))
                return fail("lbl fluxes");
            bl_up[b] += up[0], bl_dn[b] += dn[nlay];
            for (int i = 0; i < nlev; i++)
                lup[i] += up[i], ldn[i] += dn[i];
        }
        mimic_rad_grid_free(gr);
    }
    double tl = now() - t0;
    mimic_rad_heating_rate(1, nlay, c.plev, kup, kdn, kh);
    mimic_rad_heating_rate(1, nlay, c.plev, lup, ldn, lh);
    printf("column: MLS-like, %d layers (top %.2f Pa), T_sfc %.1f K, %d angle(s); LBL res %g, %lld points\n", nlay,
           c.plev[0], tsfc, nmu, res, (long long)npts);
    printf("band cm^-1      up_toa kdist    lbl      diff   dn_sfc kdist    lbl      diff\n");
    for (int b = 0; b < k->nband; b++)
        printf("%4.0f-%-4.0f   %12.4f %9.4f %9.4f   %12.4f %9.4f %9.4f\n", k->band_lo[b], k->band_hi[b], bk_up[b],
               bl_up[b], bk_up[b] - bl_up[b], bk_dn[b], bl_dn[b], bk_dn[b] - bl_dn[b]);
    printf("level  p (Pa)      up kdist-lbl   dn kdist-lbl   (lbl up, dn)\n");
    double maxd = 0;
    for (int i = 0; i < nlev; i++) {
        printf("%3d %10.2f  %12.4f %14.4f   (%.3f, %.3f)\n", i, c.plev[i], kup[i] - lup[i], kdn[i] - ldn[i], lup[i],
               ldn[i]);
        maxd = fmax(maxd, fmax(fabs(kup[i] - lup[i]), fabs(kdn[i] - ldn[i])));
    }
    double maxh = 0;
    for (int l = 0; l < nlay; l++)
        if (c.play[l] > 1000)
            maxh = fmax(maxh, fabs(kh[l] - lh[l]));
    printf("OLR: kdist %.4f, lbl %.4f, diff %+.4f W m^-2\n", kup[0], lup[0], kup[0] - lup[0]);
    printf("surface down: kdist %.4f, lbl %.4f, diff %+.4f W m^-2\n", kdn[nlay], ldn[nlay], kdn[nlay] - ldn[nlay]);
    printf("max |flux diff| over levels %.4f W m^-2; max |heating diff| below 10 hPa %.4f K/day\n", maxd, maxh);
    printf("time: kdist %.3f s (16 solver calls), lbl %.1f s\n", tk, tl);
    mimic_rad_lbl_free(lbl);
    mimic_rad_kdist_free(k);
    return 0;
}

static int bench(int argc, char **argv)
{
    int nlay = argc > 3 ? atoi(argv[3]) : 100 * 60, reps = argc > 4 ? atoi(argv[4]) : 20;
    mimic_rad_kdist *k = mimic_rad_kdist_load(argv[2]);
    if (!k)
        return fail("load");
    column c;
    make_column(60, &c);
    mimic_rad_layer *lay = calloc(nlay, sizeof *lay);
    for (int i = 0; i < nlay; i++) {
        int l = i % 60;
        lay[i].p = c.play[l], lay[i].t = c.tlay[l] + (i / 60 % 7) - 3;
        memcpy(lay[i].vmr, c.vmr + l * MIMIC_NGAS, sizeof lay[i].vmr);
        lay[i].col_dry = mimic_rad_col_dry(c.plev[l], c.plev[l + 1], lay[i].vmr[0]);
    }
    double *tau = malloc((size_t)nlay * k->ngpt * sizeof *tau), *pf = malloc((size_t)nlay * k->ngpt * sizeof *pf);
    mimic_rad_gas_optics(k, lay, nlay, tau, pf);
    double t0 = now();
    for (int r = 0; r < reps; r++)
        if (mimic_rad_gas_optics(k, lay, nlay, tau, pf))
            return fail("optics");
    double t = (now() - t0) / reps;
    printf("gas optics: %d layers x %d g-points: %.3f ms per call, %.1f ns per layer, %.2f ns per layer-gpoint\n", nlay,
           k->ngpt, 1e3 * t, 1e9 * t / nlay, 1e9 * t / nlay / k->ngpt);
    mimic_rad_kdist_free(k);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 3 && !strcmp(argv[1], "build"))
        return build(argc, argv);
    if (argc >= 3 && !strcmp(argv[1], "compare"))
        return compare(argc, argv);
    if (argc >= 3 && !strcmp(argv[1], "bench"))
        return bench(argc, argv);
    fprintf(stderr, "usage: rad_build_kdist build OUT.h5 [np] [res] | compare TABLE.h5 [nlay] [res] [nmu] | "
                    "bench TABLE.h5 [nlay] [reps]\n");
    return 2;
}
