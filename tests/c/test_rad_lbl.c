/* The line-by-line absorption model (core/solvers/radiation/lbl.c, lines.c,
 * xsec.c; docs/radiation-lbl.md). References are analytic (line integrals,
 * truncated Lorentz, S(T)) or brute-force numerical (Voigt convolution). */
#include "check.h"
#include "mimic/rad_lbl.h"

#include <omp.h>
#include <stdint.h>
#include <stdlib.h>

static const double PI = 3.14159265358979323846;

static mimic_rad_lbl *make(uint32_t gases, double cutoff)
{
    mimic_rad_lbl_options o;
    mimic_rad_lbl_options_default(&o);
    o.gases = gases;
    if (cutoff > 0)
        o.cutoff = cutoff;
    return mimic_rad_lbl_new(&o);
}

static uint64_t checksum(const double *a, int64_t n, uint64_t h)
{
    for (int64_t i = 0; i < n; i++) {
        uint64_t b;
        memcpy(&b, &a[i], 8);
        h = (h ^ b) * 1099511628211ull;
    }
    return h;
}

/* Same seed -> identical lists; documented counts; sorted; band positions. */
TEST(linelist_reproducible)
{
    mimic_rad_lbl *a = mimic_rad_lbl_new(NULL), *b = mimic_rad_lbl_new(NULL);
    CHECK_PTR(a);
    CHECK_PTR(b);
    if (!a || !b)
        return;
    /* counts with the default seed and range, as in docs/radiation-lbl.md */
    const int64_t expect[6] = {10646, 2249, 11500, 8400, 1346, 177};
    for (int g = 0; g < 6; g++) {
        mimic_rad_lines la, lb;
        CHECK_OK(mimic_rad_lbl_lines(a, g, &la));
        CHECK_OK(mimic_rad_lbl_lines(b, g, &lb));
        CHECK(la.n == expect[g]);
        CHECK(la.n == lb.n);
        uint64_t ha = 1469598103934665603ull, hb = ha;
        ha = checksum(la.nu, la.n, ha), ha = checksum(la.s, la.n, ha), ha = checksum(la.elower, la.n, ha);
        hb = checksum(lb.nu, lb.n, hb), hb = checksum(lb.s, lb.n, hb), hb = checksum(lb.elower, lb.n, hb);
        CHECK(ha == hb);
        for (int64_t i = 1; i < la.n; i++)
            if (!(la.nu[i] >= la.nu[i - 1])) {
                CHECK(!"lines not sorted");
                break;
            }
        for (int64_t i = 0; i < la.n; i++)
            if (!(la.s[i] > 0 && la.gamma_air[i] > 0.01 && la.gamma_air[i] < 0.2 && la.elower[i] >= 0)) {
                CHECK(!"bad line parameters");
                break;
            }
    }
    /* the list depends on the seed */
    mimic_rad_lbl_options o;
    mimic_rad_lbl_options_default(&o);
    o.seed = 7, o.gases = 1u << MIMIC_GAS_H2O;
    mimic_rad_lbl *c = mimic_rad_lbl_new(&o);
    mimic_rad_lines la, lc;
    mimic_rad_lbl_lines(a, MIMIC_GAS_H2O, &la);
    mimic_rad_lbl_lines(c, MIMIC_GAS_H2O, &lc);
    CHECK(lc.n > 0 && la.nu[0] != lc.nu[0]);
    /* a gas's list does not depend on which other gases are selected */
    mimic_rad_lbl_lines(c, MIMIC_GAS_CO2, &lc);
    CHECK(lc.n == 0);
    mimic_rad_lbl_free(c);
    o.seed = MIMIC_RAD_LBL_SEED;
    c = mimic_rad_lbl_new(&o);
    mimic_rad_lbl_lines(c, MIMIC_GAS_H2O, &lc);
    CHECK(lc.n == la.n && memcmp(lc.s, la.s, (size_t)la.n * 8) == 0);
    mimic_rad_lbl_free(c);

    /* band positions: strongest line of each band region where documented */
    struct {
        int g;
        double lo, hi, pk_lo, pk_hi;
    } pk[] = {{MIMIC_GAS_H2O, 10, 1000, 10, 600},     {MIMIC_GAS_H2O, 1200, 2000, 1400, 1800},
              {MIMIC_GAS_CO2, 540, 800, 660, 670},    {MIMIC_GAS_CO2, 2200, 2420, 2330, 2380},
              {MIMIC_GAS_O3, 950, 1120, 1000, 1070},  {MIMIC_GAS_CH4, 1150, 1450, 1250, 1370},
              {MIMIC_GAS_N2O, 1200, 1350, 1250, 1320}, {MIMIC_GAS_CO, 2000, 2300, 2100, 2200}};
    for (size_t i = 0; i < sizeof pk / sizeof pk[0]; i++) {
        mimic_rad_lbl_lines(a, pk[i].g, &la);
        double smax = 0, at = 0;
        for (int64_t j = 0; j < la.n; j++)
            if (la.nu[j] >= pk[i].lo && la.nu[j] <= pk[i].hi && la.s[j] > smax)
                smax = la.s[j], at = la.nu[j];
        CHECK(at >= pk[i].pk_lo && at <= pk[i].pk_hi);
    }
    /* band intensities: lines of gases whose bands lie inside 10-3250 add up to the table */
    for (int g = MIMIC_GAS_CO2; g <= MIMIC_GAS_CO; g++) {
        mimic_rad_lbl_lines(a, g, &la);
        double s = 0, sb = 0;
        for (int64_t j = 0; j < la.n; j++)
            s += la.s[j];
        for (int i = 0; i < mimic_rad_lbl_nbands(g); i++) {
            mimic_rad_band_info bi;
            CHECK_OK(mimic_rad_lbl_band(g, i, &bi));
            sb += bi.strength;
        }
        CHECK_NEAR(s / sb, 1, 1e-12);
    }
    mimic_rad_lbl_free(a);
    mimic_rad_lbl_free(b);
}

/* Trapezoid integral of the profile on a grid geometric about the centre. */
static double profile_integral(double gl, double gd, double cut)
{
    double hw = gl + gd, s = 0, prev_x = 0, prev_f = mimic_rad_voigt(0, gl, gd);
    double x = hw / 400;
    while (prev_x < cut) {
        double xn = prev_x + fmin(hw / 400, 0.002 * prev_x) + hw / 4000;
        if (xn > cut)
            xn = cut;
        double f = mimic_rad_voigt(xn, gl, gd);
        s += (xn - prev_x) * (f + prev_f) / 2;
        prev_x = xn, prev_f = f;
    }
    (void)x;
    return 2 * s;
}

/* The profile is normalised: over +-C it integrates to the truncated-Lorentz
 * value (2/pi) atan(C/gl) in the Lorentz limit, and to 1 - 2 gl/(pi C) when
 * Doppler dominates. */
TEST(line_integral)
{
    CHECK_NEAR(profile_integral(0.07, 1e-4, 25), 2 / PI * atan(25 / 0.07), 1e-5);
    CHECK_NEAR(profile_integral(1e-6, 1e-3, 25), 1 - 2 * 1e-6 / (PI * 25), 1e-5);
    CHECK_NEAR(profile_integral(2e-3, 2e-3, 25), 1 - 2 * 2e-3 / (PI * 25), 1e-4);
    CHECK_NEAR(profile_integral(0.07, 1e-4, 200), 1, 1e-3);

    /* end to end: CO absorption integrates to sum_j S_j(T) * (truncated profile) */
    mimic_rad_lbl *l = make(1u << MIMIC_GAS_CO, 0);
    CHECK_PTR(l);
    if (!l)
        return;
    mimic_rad_lines L;
    mimic_rad_lbl_lines(l, MIMIC_GAS_CO, &L);
    double ps[3] = {1e5, 1e3, 5}, ts[3] = {280, 240, 210};
    for (int c = 0; c < 3; c++) {
        mimic_rad_grid *G = mimic_rad_lbl_grid(l, 1940, 2320, ps[c], 1);
        CHECK_PTR(G);
        double *k = malloc((size_t)G->n * sizeof *k);
        CHECK_OK(mimic_rad_lbl_absorption(l, MIMIC_GAS_CO, ps[c], ts[c], 0, MIMIC_RAD_LBL_LINES, G->n, G->nu, k));
        double s = 0, ref = 0;
        for (int64_t i = 0; i < G->n; i++)
            s += k[i] * G->w[i];
        for (int64_t j = 0; j < L.n; j++) {
            double gl = mimic_rad_lorentz_hw(&L, j, ps[c], ts[c], 0);
            ref += mimic_rad_line_strength(&L, j, ts[c]) * 2 / PI * atan(25 / gl);
        }
        CHECK_NEAR(s / ref, 1, 1e-3);
        free(k);
        mimic_rad_grid_free(G);
    }
    mimic_rad_lbl_free(l);
}

/* Brute-force Voigt: (1/pi) int_{-pi/2}^{pi/2} G(d - gl tan th) dth (Lorentz
 * substituted away), midpoint rule with many points. */
static double voigt_brute(double d, double gl, double gd)
{
    const int N = 400000;
    double ad = gd / sqrt(log(2.0)), s = 0;
    for (int i = 0; i < N; i++) {
        double th = -PI / 2 + PI * (i + 0.5) / N, u = (d - gl * tan(th)) / ad;
        s += exp(-u * u);
    }
    return s * (PI / N) / PI / (ad * sqrt(PI));
}

TEST(voigt_vs_convolution)
{
    const double gd = 1e-3;
    const double ys[] = {0.01, 0.1, 0.5, 1, 3};
    double worst = 0;
    for (size_t a = 0; a < sizeof ys / sizeof ys[0]; a++) {
        double gl = ys[a] * gd;
        double hw = 0.5346 * gl + sqrt(0.2166 * gl * gl + gd * gd);
        for (double d = 0; d <= 3 * hw; d += hw / 4) {
            double v = mimic_rad_voigt(d, gl, gd), r = voigt_brute(d, gl, gd);
            worst = fmax(worst, fabs(v - r) / r);
        }
    }
    CHECK(worst < 1e-4);
    /* the far-field branch (|x| + y >= 20) against the brute force too */
    double d = 0.05, gl = 2e-3;
    CHECK_NEAR(mimic_rad_voigt(d, gl, gd) / voigt_brute(d, gl, gd), 1, 1e-4);
    /* Lorentz limit */
    CHECK_NEAR(mimic_rad_voigt(0.3, 0.07, 1e-5) * PI * (0.09 + 0.0049) / 0.07, 1, 1e-6);
}

/* gamma = gamma_air (p/p0)(296/T)^n; end to end: between lines the wing grows
 * like p, at a line centre the peak falls like 1/p. */
TEST(pressure_scaling)
{
    mimic_rad_lbl *l = make(1u << MIMIC_GAS_CO, 0);
    mimic_rad_lines L;
    mimic_rad_lbl_lines(l, MIMIC_GAS_CO, &L);
    int64_t j = L.n / 2;
    double g1 = mimic_rad_lorentz_hw(&L, j, 101325, 296, 0);
    CHECK_NEAR(g1, L.gamma_air[j], 1e-15);
    CHECK_NEAR(mimic_rad_lorentz_hw(&L, j, 50662.5, 250, 0), 0.5 * g1 * pow(296.0 / 250, L.n_air[j]), 1e-15);
    CHECK_NEAR(mimic_rad_lorentz_hw(&L, j, 101325, 296, 1), L.gamma_self[j], 1e-15);
    /* strongest CO line and the midpoint to its neighbour */
    int64_t m = 0;
    for (int64_t i = 0; i < L.n; i++)
        if (L.s[i] > L.s[m])
            m = i;
    double nu[2] = {L.nu[m], 0.5 * (L.nu[m] + L.nu[m + 1])}, k1[2], k2[2];
    CHECK_OK(mimic_rad_lbl_absorption(l, MIMIC_GAS_CO, 2e4, 260, 0, MIMIC_RAD_LBL_LINES, 2, nu, k1));
    CHECK_OK(mimic_rad_lbl_absorption(l, MIMIC_GAS_CO, 4e4, 260, 0, MIMIC_RAD_LBL_LINES, 2, nu, k2));
    CHECK_NEAR(k2[1] / k1[1], 2, 0.04);
    CHECK_NEAR(k2[0] / k1[0], 0.5, 0.03);
    /* the profile's half width is the Lorentz width when Doppler is negligible */
    CHECK_NEAR(mimic_rad_voigt(0.05, 0.05, 1e-6) / mimic_rad_voigt(0, 0.05, 1e-6), 0.5, 1e-6);
    mimic_rad_lbl_free(l);
}

TEST(strength_temperature)
{
    mimic_rad_lbl *l = make(1u << MIMIC_GAS_H2O, 0);
    mimic_rad_lines L;
    mimic_rad_lbl_lines(l, MIMIC_GAS_H2O, &L);
    const double c2 = 1.4387769;
    for (int64_t j = 0; j < L.n; j += 997) {
        CHECK_NEAR(mimic_rad_line_strength(&L, j, 296) / L.s[j], 1, 1e-14);
        for (double t = 180; t <= 320; t += 35) {
            double ref = L.s[j] * pow(296 / t, 1.5) * exp(-c2 * L.elower[j] * (1 / t - 1 / 296.0)) *
                         (1 - exp(-c2 * L.nu[j] / t)) / (1 - exp(-c2 * L.nu[j] / 296));
            CHECK_NEAR(mimic_rad_line_strength(&L, j, t) / ref, 1, 1e-12);
        }
    }
    mimic_rad_lbl_free(l);
}

/* Lines end exactly at the cut-off; a wider cut-off adds the far wings. */
TEST(cutoff)
{
    mimic_rad_lbl *l = make(1u << MIMIC_GAS_CO, 0), *w = make(1u << MIMIC_GAS_CO, 100);
    mimic_rad_lines L;
    mimic_rad_lbl_lines(l, MIMIC_GAS_CO, &L);
    double nu[3] = {L.nu[0] - 25.001, L.nu[0] - 24.99, L.nu[L.n - 1] + 25.001}, k[3], kw[3];
    CHECK_OK(mimic_rad_lbl_absorption(l, MIMIC_GAS_CO, 1e5, 296, 0, MIMIC_RAD_LBL_ALL, 3, nu, k));
    CHECK(k[0] == 0 && k[2] == 0);
    /* just inside: the first line's Lorentz wing (the nearest line dominates) */
    double lw = L.s[0] * L.gamma_air[0] * (1e5 / 101325) / (PI * 24.99 * 24.99);
    CHECK_NEAR(k[1] / lw, 1, 1e-3);
    CHECK_OK(mimic_rad_lbl_absorption(w, MIMIC_GAS_CO, 1e5, 296, 0, MIMIC_RAD_LBL_ALL, 3, nu, kw));
    CHECK(kw[0] > 0 && kw[2] > 0 && kw[1] > k[1]);
    /* H2O follows the MT_CKD convention: the line value at the cut-off is
     * removed (the "pedestal"), so line absorption stays >= 0 and continuous */
    mimic_rad_lbl *h = make(1u << MIMIC_GAS_H2O, 0);
    mimic_rad_grid *G = mimic_rad_grid_uniform(700, 760, 0.01);
    double *kh = malloc((size_t)G->n * sizeof *kh);
    CHECK_OK(mimic_rad_lbl_absorption(h, MIMIC_GAS_H2O, 1e5, 290, 0.01, MIMIC_RAD_LBL_LINES, G->n, G->nu, kh));
    double mn = 1;
    for (int64_t i = 0; i < G->n; i++)
        mn = fmin(mn, kh[i]);
    CHECK(mn >= 0);
    free(kh);
    mimic_rad_grid_free(G);
    mimic_rad_lbl_free(h);
    mimic_rad_lbl_free(l);
    mimic_rad_lbl_free(w);
}

TEST(continuum)
{
    mimic_rad_lbl *l = make(0, 0);
    mimic_rad_grid *G = mimic_rad_grid_uniform(10, 3250, 1);
    double *k = malloc((size_t)G->n * sizeof *k), *k2 = malloc((size_t)G->n * sizeof *k2);
    CHECK_OK(mimic_rad_lbl_absorption(l, MIMIC_GAS_H2O, 8e4, 280, 0.01, MIMIC_RAD_LBL_CONTINUUM, G->n, G->nu, k));
    int pos = 1;
    for (int64_t i = 0; i < G->n; i++)
        pos &= k[i] > 0;
    CHECK(pos);
    /* Roberts et al. in the window at 296 K, per atm of H2O */
    double cs = 1.25e-22 + 1.67e-19 * exp(-7.87e-3 * 900);
    CHECK_NEAR(mimic_rad_h2o_self_continuum(900, 296, 101325) / cs, 1, 0.01);
    /* negative temperature dependence: exp(1800 (1/T - 1/296)) times density */
    double r = mimic_rad_h2o_self_continuum(1000, 260, 1000) / mimic_rad_h2o_self_continuum(1000, 296, 1000);
    CHECK_NEAR(r, exp(1800 * (1 / 260.0 - 1 / 296.0)) * 296 / 260, 1e-12);
    CHECK(r > 2);
    CHECK_NEAR(mimic_rad_h2o_foreign_continuum(1000, 260, 1000) / mimic_rad_h2o_foreign_continuum(1000, 296, 1000),
               296 / 260.0, 1e-12);
    /* self part grows like the H2O partial pressure: k(x) = a + b q */
    double nu1 = 1000, ka, kb, kc;
    mimic_rad_lbl_absorption(l, MIMIC_GAS_H2O, 8e4, 280, 0, MIMIC_RAD_LBL_CONTINUUM, 1, &nu1, &ka);
    mimic_rad_lbl_absorption(l, MIMIC_GAS_H2O, 8e4, 280, 0.01, MIMIC_RAD_LBL_CONTINUUM, 1, &nu1, &kb);
    mimic_rad_lbl_absorption(l, MIMIC_GAS_H2O, 8e4, 280, 0.02, MIMIC_RAD_LBL_CONTINUUM, 1, &nu1, &kc);
    double q1 = 0.01 / 1.01, q2 = 0.02 / 1.02, fs = (kb - ka) / q1;
    CHECK(kb > ka);
    CHECK_NEAR((kc - ka) / q2 / fs, 1, 0.02); /* self - foreign pressure trade-off is small */
    /* window minimum: weaker at 1000 than at 400 or 1600 */
    CHECK(k[990] < k[390] && k[990] < k[1590]);
    /* CIA: per molecule proportional to the air density */
    double n2a, n2b, nu2 = 2340;
    CHECK_OK(mimic_rad_lbl_absorption(l, MIMIC_GAS_N2, 1e5, 250, 0, MIMIC_RAD_LBL_ALL, 1, &nu2, &n2a));
    CHECK_OK(mimic_rad_lbl_absorption(l, MIMIC_GAS_N2, 5e4, 250, 0, MIMIC_RAD_LBL_ALL, 1, &nu2, &n2b));
    CHECK_NEAR(n2a / n2b, 2, 1e-12);
    CHECK_NEAR(n2a, 1.5e-6 * (1e5 / 101325) * (273.15 / 250) / 2.6867811e19, 1e-35);
    free(k), free(k2);
    mimic_rad_grid_free(G);
    mimic_rad_lbl_free(l);
}

/* Gaussian bands integrate to the documented strengths. */
TEST(halocarbons)
{
    mimic_rad_lbl *l = make(0, 0);
    mimic_rad_grid *G = mimic_rad_grid_uniform(300, 1800, 0.05);
    double *k = malloc((size_t)G->n * sizeof *k);
    for (int g = MIMIC_GAS_CCL4; g <= MIMIC_GAS_CF4; g++) {
        CHECK_OK(mimic_rad_lbl_absorption(l, g, 5e4, 250, 0, MIMIC_RAD_LBL_ALL, G->n, G->nu, k));
        double s = 0, sb = 0;
        for (int64_t i = 0; i < G->n; i++)
            s += k[i] * G->w[i];
        CHECK(mimic_rad_lbl_nbands(g) >= 1);
        for (int i = 0; i < mimic_rad_lbl_nbands(g); i++) {
            mimic_rad_band_info bi;
            mimic_rad_lbl_band(g, i, &bi);
            sb += bi.strength;
        }
        CHECK_NEAR(s / sb, 1, 1e-6);
        CHECK(sb > 5e-17 && sb < 4e-16);
    }
    free(k);
    mimic_rad_grid_free(G);
    mimic_rad_lbl_free(l);
}

/* 1 and 2 threads give bit-identical spectra (low pressure: core branch too). */
TEST(threads_deterministic)
{
    mimic_rad_lbl *l = make((1u << MIMIC_GAS_H2O) | (1u << MIMIC_GAS_CO2), 0);
    mimic_rad_grid *G = mimic_rad_lbl_grid(l, 600, 700, 50, 1);
    CHECK(G && G->n > 4 * 1024);
    double *a = malloc((size_t)G->n * sizeof *a), *b = malloc((size_t)G->n * sizeof *b);
    int nt = mimic_get_num_threads();
    for (int g = 0; g < 2; g++) {
        mimic_set_num_threads(1);
        CHECK_OK(mimic_rad_lbl_absorption(l, g, 50, 220, 3e-6, MIMIC_RAD_LBL_ALL, G->n, G->nu, a));
        mimic_set_num_threads(2);
        CHECK_OK(mimic_rad_lbl_absorption(l, g, 50, 220, 3e-6, MIMIC_RAD_LBL_ALL, G->n, G->nu, b));
        CHECK(memcmp(a, b, (size_t)G->n * sizeof *a) == 0);
    }
    mimic_set_num_threads(nt);
    /* the grid resolves lines at p_min: spacing at a strong line <= its width / 4 */
    mimic_rad_lines L;
    mimic_rad_lbl_lines(l, MIMIC_GAS_CO2, &L);
    int64_t m = 0;
    for (int64_t i = 0; i < L.n; i++)
        if (L.nu[i] > 600 && L.nu[i] < 700 && L.s[i] > L.s[m])
            m = i;
    int64_t i = 0;
    while (G->nu[i] < L.nu[m])
        i++;
    double gd = mimic_rad_doppler_hw(L.nu[m], 180, L.mass), gl = mimic_rad_lorentz_hw(&L, m, 50, 180, 0);
    double hw = 0.5346 * gl + sqrt(0.2166 * gl * gl + gd * gd);
    CHECK(G->nu[i] - G->nu[i - 1] <= hw / 4 * 1.0001);
    CHECK(G->nu[i] - G->nu[i - 1] >= hw / 4 * 0.5);
    double sw = 0;
    for (int64_t j = 0; j < G->n; j++)
        sw += G->w[j];
    CHECK_NEAR(sw, 100, 1e-9);
    free(a), free(b);
    mimic_rad_grid_free(G);
    mimic_rad_lbl_free(l);
}

TEST(layer_tau)
{
    mimic_rad_lbl *l = make(0, 0);
    mimic_rad_layer lay = {0};
    lay.p = 6e4, lay.t = 255, lay.col_dry = 3e24;
    lay.vmr[MIMIC_GAS_H2O] = 2e-3, lay.vmr[MIMIC_GAS_CO2] = 4e-4, lay.vmr[MIMIC_GAS_O3] = 5e-8;
    lay.vmr[MIMIC_GAS_N2] = 0.78, lay.vmr[MIMIC_GAS_CFC12] = 5e-10;
    mimic_rad_grid *G = mimic_rad_grid_uniform(900, 1000, 0.02);
    double *t = malloc((size_t)G->n * 8), *k = malloc((size_t)G->n * 8), *s = calloc((size_t)G->n, 8);
    CHECK_OK(mimic_rad_lbl_layer_tau(l, &lay, G->n, G->nu, t));
    int gs[] = {MIMIC_GAS_H2O, MIMIC_GAS_CO2, MIMIC_GAS_O3, MIMIC_GAS_N2, MIMIC_GAS_CFC12};
    for (int q = 0; q < 5; q++) {
        mimic_rad_lbl_absorption(l, gs[q], lay.p, lay.t, 2e-3, MIMIC_RAD_LBL_ALL, G->n, G->nu, k);
        for (int64_t i = 0; i < G->n; i++)
            s[i] += k[i] * lay.vmr[gs[q]] * lay.col_dry;
    }
    double worst = 0;
    for (int64_t i = 0; i < G->n; i++)
        worst = fmax(worst, fabs(t[i] - s[i]) / s[i]);
    CHECK(worst < 1e-12);
    free(t), free(k), free(s);
    mimic_rad_grid_free(G);
    mimic_rad_lbl_free(l);
}

TEST(bad_inputs)
{
    mimic_rad_lbl *l = make(1u << MIMIC_GAS_CO, 0);
    double nu[3] = {2100, 2101, 2102}, k[3];
    CHECK_ERR(mimic_rad_lbl_absorption(l, MIMIC_GAS_CO, 0, 250, 0, 3, 3, nu, k), MIMIC_EVALUE, "pressure");
    CHECK_ERR(mimic_rad_lbl_absorption(l, MIMIC_GAS_CO, -5, 250, 0, 3, 3, nu, k), MIMIC_EVALUE, "pressure");
    CHECK_ERR(mimic_rad_lbl_absorption(l, MIMIC_GAS_CO, NAN, 250, 0, 3, 3, nu, k), MIMIC_EVALUE, "pressure");
    CHECK_ERR(mimic_rad_lbl_absorption(l, MIMIC_GAS_CO, 1e4, 0, 0, 3, 3, nu, k), MIMIC_EVALUE, "temperature");
    CHECK_ERR(mimic_rad_lbl_absorption(l, MIMIC_GAS_CO, 1e4, NAN, 0, 3, 3, nu, k), MIMIC_EVALUE, "temperature");
    CHECK_ERR(mimic_rad_lbl_absorption(l, MIMIC_GAS_CO, 1e4, 250, NAN, 3, 3, nu, k), MIMIC_EVALUE, "H2O");
    CHECK_ERR(mimic_rad_lbl_absorption(l, MIMIC_GAS_CO2, 1e4, 250, 0, 3, 3, nu, k), MIMIC_EARG, "not selected");
    CHECK_ERR(mimic_rad_lbl_absorption(l, (mimic_rad_gas)99, 1e4, 250, 0, 3, 3, nu, k), MIMIC_EARG, "out of range");
    CHECK_ERR(mimic_rad_lbl_absorption(l, MIMIC_GAS_CO, 1e4, 250, 0, 0, 3, nu, k), MIMIC_EARG, "parts");
    double bad[3] = {2100, 2100, 2102}, nan[3] = {2100, NAN, 2102};
    CHECK_ERR(mimic_rad_lbl_absorption(l, MIMIC_GAS_CO, 1e4, 250, 0, 3, 3, bad, k), MIMIC_EARG, "increasing");
    CHECK_ERR(mimic_rad_lbl_absorption(l, MIMIC_GAS_CO, 1e4, 250, 0, 3, 3, nan, k), MIMIC_EVALUE, "finite");
    CHECK_ERR(mimic_rad_lbl_absorption(NULL, MIMIC_GAS_CO, 1e4, 250, 0, 3, 3, nu, k), MIMIC_EARG, "NULL");
    mimic_rad_layer lay = {0};
    lay.p = 1e4, lay.t = -1, lay.col_dry = 1e24;
    CHECK_ERR(mimic_rad_lbl_layer_tau(l, &lay, 3, nu, k), MIMIC_EVALUE, "temperature");
    lay.t = 250, lay.vmr[MIMIC_GAS_CO] = NAN;
    CHECK_ERR(mimic_rad_lbl_layer_tau(l, &lay, 3, nu, k), MIMIC_EVALUE, "co");
    CHECK_ERR_PTR(mimic_rad_lbl_grid(l, 2100, 2000, 100, 1), MIMIC_EARG, "nu_min < nu_max");
    CHECK_ERR_PTR(mimic_rad_lbl_grid(l, 2000, 2100, 0, 1), MIMIC_EARG, "p_min");
    mimic_rad_lbl_options o;
    mimic_rad_lbl_options_default(&o);
    o.cutoff = -1;
    CHECK_ERR_PTR(mimic_rad_lbl_new(&o), MIMIC_EARG, "cutoff");
    mimic_rad_lbl_free(l);
}

int main(void)
{
    RUN(linelist_reproducible);
    RUN(line_integral);
    RUN(voigt_vs_convolution);
    RUN(pressure_scaling);
    RUN(strength_temperature);
    RUN(cutoff);
    RUN(continuum);
    RUN(halocarbons);
    RUN(threads_deterministic);
    RUN(layer_tau);
    RUN(bad_inputs);
    return CHECK_DONE();
}
