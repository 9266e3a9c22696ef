/* Radiative-convective equilibrium (rce.c). References: enthalpy sums and the
 * critical lapse rate computed here; the gray two-stream radiative
 * equilibrium in closed form (pi B = F0 (1 + D tau) / 2, sigma Ts^4 =
 * F0 (1 + D tau* / 2), D = 1.66 the diffusivity of nmu = 1), approached as
 * the grid is refined; energy closure at the top and the surface. */
#include "check.h"
#include "mimic/rad_rce.h"

#include <stdlib.h>

#define D 1.66

/* Gray optics: tau = k * (dry mass path) * (1 + kq * h2o / 0.01), one band over
 * the whole spectrum (Planck fraction 1). */
typedef struct gray {
    double k, kq;
    int calls;
} gray;

static int gray_fn(void *ud, const mimic_rad_layer *lay, int nlay, double *tau, double *frac)
{
    gray *g = ud;
    g->calls++;
    for (int l = 0; l < nlay; l++) {
        double mass = lay[l].col_dry * 1e4 * MIMIC_RAD_M_DRY / MIMIC_RAD_AVOGADRO; /* kg m^-2 */
        tau[l] = g->k * mass * (1 + g->kq * lay[l].vmr[MIMIC_GAS_H2O] / 0.01);
        frac[l] = 1;
    }
    return 0;
}

static int failing_fn(void *ud, const mimic_rad_layer *lay, int nlay, double *tau, double *frac)
{
    (void)ud, (void)lay, (void)nlay, (void)tau, (void)frac;
    return mimic_error(MIMIC_EVALUE, "test optics: deliberate failure");
}

static const double NU1[1] = {0}, NU2[1] = {INFINITY};

static mimic_rad_optics gray_optics(gray *g)
{
    mimic_rad_optics o = {1, NU1, NU2, NULL, gray_fn, g};
    return o;
}

static double *uniform_levels(int n, double ptop, double ps)
{
    double *p = malloc((size_t)(n + 1) * sizeof *p);
    for (int l = 0; l <= n; l++)
        p[l] = ptop + (ps - ptop) * l / n;
    return p;
}

/* --- convective adjustment -------------------------------------------------------- */

TEST(adjust_conserves_and_stabilises)
{
    enum { N = 30 };
    double p[N], cap[N], t[N], t0[N];
    double lapse = 6.5e-3, a = MIMIC_RAD_R_DRY * lapse / MIMIC_RAD_G;
    for (int i = 0; i < N; i++) {
        p[i] = 1000 + 99000.0 * i / (N - 1);
        cap[i] = (i == N - 1 ? 1e7 : MIMIC_RAD_CP_DRY * 3300 / MIMIC_RAD_G) * (1 + 0.3 * sin(i));
        /* isothermal aloft (stable), a strongly super-critical layer near the ground */
        t[i] = i < 15 ? 220 + 3 * sin(0.7 * i) : 220 + 8.0 * (i - 15) + (i % 3);
        t0[i] = t[i];
    }
    int block[N];
    long double e0 = 0, e1 = 0;
    for (int i = 0; i < N; i++)
        e0 += (long double)cap[i] * t[i];
    CHECK_OK(mimic_rad_convective_adjust(N, p, cap, lapse, t, block));
    for (int i = 0; i < N; i++)
        e1 += (long double)cap[i] * t[i];
    CHECK_NEAR((double)(e1 / e0), 1.0, 4e-15);
    int mixed = 0;
    for (int i = 0; i + 1 < N; i++) {
        /* stable: T_i >= T_{i+1} (p_i / p_{i+1})^a, to rounding */
        double crit = t[i + 1] * pow(p[i] / p[i + 1], a);
        CHECK(t[i] >= crit * (1 - 1e-12));
        if (block[i] == block[i + 1]) {
            CHECK_NEAR(t[i] / crit, 1.0, 1e-12); /* mixed layers sit on the critical lapse rate */
            mixed++;
        }
    }
    CHECK(mixed >= 10);
    CHECK(block[N - 1] == N - 1);
    /* the top layers were stable and are untouched (bit-identical) */
    CHECK(t[0] == t0[0] && t[1] == t0[1]);
    /* a stable profile is left alone */
    double ts[3] = {250, 260, 270}, ps3[3] = {50000, 70000, 100000}, c3[3] = {1, 1, 1};
    CHECK_OK(mimic_rad_convective_adjust(3, ps3, c3, 9.8e-3, ts, NULL));
    CHECK(ts[0] == 250 && ts[1] == 260 && ts[2] == 270);
    /* two points by hand: theta = (c1 t1 + c2 t2) / (c1 pi1 + c2 pi2) */
    double t2[2] = {280, 300}, p2[2] = {80000, 100000}, c2[2] = {2, 3};
    double ad = MIMIC_RAD_R_DRY * 9.8e-3 / MIMIC_RAD_G, pi1 = pow(0.8, ad);
    double th = (2 * 280.0 + 3 * 300.0) / (2 * pi1 + 3);
    CHECK_OK(mimic_rad_convective_adjust(2, p2, c2, 9.8e-3, t2, NULL));
    CHECK_NEAR(t2[0], th * pi1, 1e-12);
    CHECK_NEAR(t2[1], th, 1e-12);
    /* errors */
    CHECK_ERR(mimic_rad_convective_adjust(2, p2, c2, 0, t2, NULL), MIMIC_EARG, "lapse_rate");
    double pbad[2] = {100000, 80000};
    CHECK_ERR(mimic_rad_convective_adjust(2, pbad, c2, 9.8e-3, t2, NULL), MIMIC_EVALUE, "increasing");
}

/* --- gray radiative equilibrium ------------------------------------------------------ */

/* Runs pure radiative equilibrium on n equal-mass layers with tau* = taus;
 * returns the max |T - analytic| over the layers, and the surface error. */
static double gray_re(int n, double taus, double dt, double *ts_err, mimic_rad_rce *out)
{
    double ps = 1e5, F0 = 240;
    double *p = uniform_levels(n, 0, ps);
    mimic_rad_rce_config c;
    mimic_rad_rce_config_default(&c);
    c.nlay = n, c.p_lev = p, c.lapse_rate = 0, c.rh_sfc = 0, c.solar_atm = 0, c.solar_sfc = F0;
    gray g = {taus * MIMIC_RAD_G / ps, 0, 0};
    mimic_rad_optics o = gray_optics(&g);
    mimic_rad_rce s;
    CHECK_OK(mimic_rad_rce_init(&s, &c));
    mimic_rad_rce_run_opts ro = {dt, 1e-5, 20000};
    CHECK_OK(mimic_rad_rce_run(&s, &o, &ro, NULL, NULL));
    CHECK(s.converged);
    double err = 0;
    for (int l = 0; l < n; l++) {
        double tau = taus * s.p_lay[l] / ps;
        double ta = pow(F0 * (1 + D * tau) / (2 * MIMIC_RAD_STEFAN), 0.25);
        if (fabs(s.t_lay[l] - ta) > err)
            err = fabs(s.t_lay[l] - ta);
    }
    *ts_err = fabs(s.t_sfc - pow(F0 * (1 + D * taus / 2) / MIMIC_RAD_STEFAN, 0.25));
    /* energy closes: OLR = absorbed solar, surface balanced */
    CHECK_NEAR(s.olr, F0, 0.1);
    CHECK_NEAR(s.toa_imbalance, 0, 0.1);
    CHECK_NEAR(s.sfc_imbalance, 0, 0.1);
    free(p);
    if (out)
        *out = s;
    else
        mimic_rad_rce_free(&s);
    return err;
}

TEST(gray_radiative_equilibrium)
{
    double se1, se2, se3;
    double e1 = gray_re(20, 2, 86400, &se1, NULL);
    double e2 = gray_re(40, 2, 86400, &se2, NULL);
    double e3 = gray_re(80, 2, 86400, &se3, NULL);
    fprintf(stderr, "# gray RE, tau* = 2: max |T - analytic| = %.4f, %.4f, %.4f K (20, 40, 80 layers); "
                    "surface %.4f, %.4f, %.4f K\n", e1, e2, e3, se1, se2, se3);
    /* converges to the continuous solution as the grid is refined */
    CHECK(e2 < 0.6 * e1 && e3 < 0.6 * e2);
    CHECK(e3 < 0.5);
    CHECK(se3 < 0.1);
}

TEST(gray_timestep_independent)
{
    double se;
    mimic_rad_rce a, b;
    gray_re(30, 1.5, 86400, &se, &a);
    gray_re(30, 1.5, 4 * 86400, &se, &b);
    double d = 0;
    for (int l = 0; l < 30; l++)
        d = fmax(d, fabs(a.t_lay[l] - b.t_lay[l]));
    CHECK(d < 1e-3);
    CHECK_NEAR(a.t_sfc, b.t_sfc, 1e-3);
    mimic_rad_rce_free(&a);
    mimic_rad_rce_free(&b);
}

/* --- radiative-convective equilibrium -------------------------------------------------- */

static void rce_run(double dt, double lapse, int n, mimic_rad_rce *s)
{
    double *p = uniform_levels(n, 100, 1e5);
    mimic_rad_rce_config c;
    mimic_rad_rce_config_default(&c);
    c.nlay = n, c.p_lev = p, c.lapse_rate = lapse; /* solar 70 atm + 170 sfc, RH 0.77 */
    gray g = {4 * MIMIC_RAD_G / 1e5, 1.0, 0};      /* tau* ~ 4 dry, more with vapour */
    mimic_rad_optics o = gray_optics(&g);
    CHECK_OK(mimic_rad_rce_init(s, &c));
    mimic_rad_rce_run_opts ro = {dt, 1e-4, 20000};
    CHECK_OK(mimic_rad_rce_run(s, &o, &ro, NULL, NULL));
    CHECK(s->converged);
    free(p);
}

TEST(convective_equilibrium)
{
    enum { N = 40 };
    mimic_rad_rce s, s2;
    double lapse = 6.5e-3, a = MIMIC_RAD_R_DRY * lapse / MIMIC_RAD_G;
    rce_run(86400, lapse, N, &s);
    fprintf(stderr, "# gray RCE: %lld steps, Ts = %.3f K, OLR = %.4f, TOA %.2e, sfc %.2e W m-2, "
                    "convective flux %.2f W m-2\n", (long long)s.steps, s.t_sfc, s.olr, s.toa_imbalance,
            s.sfc_imbalance, s.sfc_conv_flux);
    CHECK_NEAR(s.toa_imbalance, 0, 0.1);
    CHECK_NEAR(s.sfc_imbalance, 0, 0.1);
    CHECK(s.sfc_conv_flux > 10); /* the surface heats the troposphere through convection */
    CHECK_NEAR(s.sfc_net_rad, s.sfc_conv_flux, 0.1);
    CHECK(s.convective[N - 1]);
    /* lower troposphere on the critical lapse rate, surface included */
    int nconv = 0;
    for (int l = 0; l + 1 < N; l++)
        if (s.convective[l] && s.convective[l + 1]) {
            CHECK_NEAR(s.t_lay[l] / (s.t_lay[l + 1] * pow(s.p_lay[l] / s.p_lay[l + 1], a)), 1.0, 1e-10);
            nconv++;
        }
    CHECK_NEAR(s.t_lay[N - 1] / (s.t_sfc * pow(s.p_lay[N - 1] / 1e5, a)), 1.0, 1e-10);
    CHECK(nconv >= 5);
    /* above the convective region the profile is stable (sub-critical) */
    for (int l = 0; l + 1 < N; l++)
        CHECK(s.t_lay[l] >= s.t_lay[l + 1] * pow(s.p_lay[l] / s.p_lay[l + 1], a) * (1 - 1e-10));
    /* a different time step gives the same equilibrium */
    rce_run(3 * 86400, lapse, N, &s2);
    double d = 0;
    for (int l = 0; l < N; l++)
        d = fmax(d, fabs(s.t_lay[l] - s2.t_lay[l]));
    fprintf(stderr, "# dt 1 d vs 3 d: max |dT| = %.2e K, Ts %.6f vs %.6f\n", d, s.t_sfc, s2.t_sfc);
    CHECK(d < 0.01);
    CHECK_NEAR(s.t_sfc, s2.t_sfc, 0.01);
    mimic_rad_rce_free(&s);
    mimic_rad_rce_free(&s2);
}

TEST(water_vapour)
{
    /* Manabe-Wetherald RH at p/ps = 0.5: rh = 0.77 (0.5 - 0.02) / 0.98 */
    double t = 260, p = 50000, es = 611.21 * exp(22.587 * (t - 273.15) / (t - 273.15 + 273.86));
    double rh = 0.77 * 0.48 / 0.98;
    CHECK_NEAR(mimic_rad_rce_h2o(p, t, 1e5, 0.77, 3e-6), rh * es / (p - rh * es), 1e-15);
    CHECK_NEAR(mimic_rad_rce_h2o(1000, 200, 1e5, 0.77, 3e-6), 3e-6, 0); /* above 0.02 ps: the floor */
    /* saturation cap with rh > 1 is not allowed by the config, but the function caps */
    double t2 = 300, es2 = 610.94 * exp(17.625 * 26.85 / (26.85 + 243.04));
    CHECK(mimic_rad_rce_h2o(1e5, t2, 1e5, 1.0, 0) <= es2 / (1e5 - es2) * (1 + 1e-15));
}

TEST(bad_inputs)
{
    mimic_rad_rce_config c;
    mimic_rad_rce_config_default(&c);
    mimic_rad_rce s;
    double p[4] = {0, 30000, 20000, 100000};
    c.nlay = 3, c.p_lev = p;
    CHECK_ERR(mimic_rad_rce_init(&s, &c), MIMIC_EVALUE, "increasing");
    p[2] = 60000;
    c.nlay = 1;
    CHECK_ERR(mimic_rad_rce_init(&s, &c), MIMIC_EARG, "nlay");
    c.nlay = 3;
    c.sfc_emis = 1.5;
    CHECK_ERR(mimic_rad_rce_init(&s, &c), MIMIC_EARG, "sfc_emis");
    c.sfc_emis = 1, c.sfc_heat_capacity = 0;
    CHECK_ERR(mimic_rad_rce_init(&s, &c), MIMIC_EARG, "sfc_heat_capacity");
    c.sfc_heat_capacity = 1e7;
    CHECK_OK(mimic_rad_rce_init(&s, &c));
    gray g = {1e-4, 0, 0};
    mimic_rad_optics o = gray_optics(&g);
    CHECK_ERR(mimic_rad_rce_step(&s, &o, -1), MIMIC_EARG, "dt");
    mimic_rad_optics bad = {1, NU1, NU2, NULL, failing_fn, NULL};
    double t0 = s.t_lay[1];
    CHECK_ERR(mimic_rad_rce_step(&s, &bad, 86400), MIMIC_EVALUE, "deliberate");
    CHECK(s.t_lay[1] == t0 && s.steps == 0);
    mimic_rad_rce_run_opts ro = {86400, 0, 10};
    CHECK_ERR(mimic_rad_rce_run(&s, &o, &ro, NULL, NULL), MIMIC_EARG, "tol");
    /* max_steps reached: OK but not converged */
    ro.tol = 1e-12, ro.max_steps = 3;
    CHECK_OK(mimic_rad_rce_run(&s, &o, &ro, NULL, NULL));
    CHECK(!s.converged && s.steps == 3);
    mimic_rad_rce_free(&s);
}

static int stop_after(void *ud, const mimic_rad_rce *s)
{
    return s->steps >= *(int *)ud;
}

TEST(progress_stops)
{
    double *p = uniform_levels(10, 0, 1e5);
    mimic_rad_rce_config c;
    mimic_rad_rce_config_default(&c);
    c.nlay = 10, c.p_lev = p, c.lapse_rate = 0;
    mimic_rad_rce s;
    CHECK_OK(mimic_rad_rce_init(&s, &c));
    gray g = {2e-4, 0, 0};
    mimic_rad_optics o = gray_optics(&g);
    int k = 5;
    CHECK_OK(mimic_rad_rce_run(&s, &o, NULL, stop_after, &k));
    CHECK(s.steps == 5 && !s.converged && g.calls == 5);
    mimic_rad_rce_free(&s);
    free(p);
}

int main(void)
{
    RUN(adjust_conserves_and_stabilises);
    RUN(gray_radiative_equilibrium);
    RUN(gray_timestep_independent);
    RUN(convective_equilibrium);
    RUN(water_vapour);
    RUN(bad_inputs);
    RUN(progress_stops);
    return CHECK_DONE();
}
