/* Radiation: gases and dry columns (atmos.c), Planck integrals (planck.c), the
 * longwave solver and its column driver (rte_lw.c). References are
 * independent: closed forms (sigma T^4, exp, isothermal equilibrium), this
 * file's own Planck function integrated by composite Simpson in long double,
 * E3 by quadrature, finite differences, sub-layer refinement. */
#include "check.h"
#include "mimic/rad_rte.h"

#include <stdlib.h>

static const double PI = 3.14159265358979323846;

/* --- independent references ----------------------------------------------------- */

/* B(nu, T) per cm^-1 from the SI constants, in long double. */
static long double ref_planck(long double nu, long double t)
{
    const long double h = 6.62607015e-34L, c = 2.99792458e8L, k = 1.380649e-23L;
    long double nm = 100.0L * nu;
    if (nu == 0)
        return 0;
    return 100.0L * 2.0L * h * c * c * nm * nm * nm / expm1l(h * c * nm / (k * t));
}

/* Composite Simpson over [a, b] with n (even) panels. */
static double ref_band(double a, double b, double t, int n)
{
    long double h = ((long double)b - a) / n, s = ref_planck(a, t) + ref_planck(b, t);
    for (int i = 1; i < n; i++)
        s += (i % 2 ? 4.0L : 2.0L) * ref_planck(a + i * h, t);
    return (double)(s * h / 3.0L);
}

/* 2 E3(tau) = 2 int_0^1 mu exp(-tau/mu) dmu (Simpson; the integrand is flat at 0). */
static double two_e3(double tau)
{
    int n = 200000;
    double h = 1.0 / n, s = exp(-tau); /* mu = 1 end; mu = 0 end is 0 */
    for (int i = 1; i < n; i++) {
        double mu = i * h;
        s += (i % 2 ? 4.0 : 2.0) * mu * exp(-tau / mu);
    }
    return 2.0 * s * h / 3.0;
}

static double sigma_t4_pi(double t) { return MIMIC_RAD_STEFAN * t * t * t * t / PI; }

/* --- gases, columns ----------------------------------------------------------------- */

TEST(gas_names)
{
    CHECK(mimic_rad_gas_parse("h2o") == MIMIC_GAS_H2O);
    CHECK(mimic_rad_gas_parse("cf4") == MIMIC_GAS_CF4);
    CHECK(mimic_rad_gas_parse("hfc134a") == MIMIC_GAS_HFC134A);
    CHECK(mimic_rad_gas_parse("H2O") == -1);
    CHECK(mimic_rad_gas_parse("xenon") == -1);
    CHECK(mimic_rad_gas_parse(NULL) == -1);
    for (int g = 0; g < MIMIC_NGAS; g++)
        CHECK(mimic_rad_gas_parse(mimic_rad_gas_name((mimic_rad_gas)g)) == g);
    CHECK(mimic_rad_gas_name(MIMIC_NGAS) == NULL);
    CHECK(strcmp(mimic_rad_gas_name(MIMIC_GAS_O3), "o3") == 0);
}

TEST(col_dry)
{
    /* Dry: p / (g M) * N_A per m^2 -> cm^2; 1000 hPa of dry air ~ 2.12e25 molecules/cm^2. */
    double dry = mimic_rad_col_dry(0, 1e5, 0);
    CHECK_NEAR(dry / (1e5 / (9.80665 * 0.028964) * 6.02214076e23 * 1e-4), 1.0, 1e-14);
    CHECK_NEAR(dry, 2.12e25, 0.01e25);
    /* Moist: the same pressure difference holds fewer dry molecules. */
    double q = 0.02, moist = mimic_rad_col_dry(5e4, 6e4, q);
    CHECK_NEAR(moist * (0.028964 + 0.018016 * q), mimic_rad_col_dry(5e4, 6e4, 0) * 0.028964, 1e-6 * moist);
}

/* --- Planck -------------------------------------------------------------------------- */

TEST(planck_total_is_stefan_boltzmann)
{
    const double ts[] = {100, 150, 200, 250, 288.15, 320, 350, 1000};
    for (size_t i = 0; i < sizeof ts / sizeof *ts; i++) {
        double t = ts[i], ref = sigma_t4_pi(t);
        /* sigma is given to 10 digits in rad_atmos.h: 3e-11 relative */
        CHECK_NEAR(mimic_rad_planck_band(0, INFINITY, t) / ref, 1.0, 1e-10);
        /* adjacent bands of very different widths (narrow ones take the Gauss-Legendre path) add up */
        double s = 0, nu = 0;
        const double widths[] = {10, 0.01, 0.3, 40, 123.4, 1e-4, 2, 350};
        for (int k = 0; nu < 3250; k++) {
            double w = widths[k % 8];
            s += mimic_rad_planck_band(nu, nu + w, t);
            nu += w;
        }
        s += mimic_rad_planck_band(nu, INFINITY, t);
        CHECK_NEAR(s / ref, 1.0, 1e-10);
    }
}

TEST(planck_band_vs_quadrature)
{
    /* RRTMGP's 16 longwave bands (cm^-1), a narrow band and a far-wing one. */
    const double b[][2] = {{10, 250},    {250, 500},   {500, 630},   {630, 700},   {700, 820},   {820, 980},
                           {980, 1080},  {1080, 1180}, {1180, 1390}, {1390, 1480}, {1480, 1800}, {1800, 2080},
                           {2080, 2250}, {2250, 2390}, {2390, 2680}, {2680, 3250}, {667, 667.01}, {0, 3},
                           {3000, 3001}, {1.9, 2.6}};
    const double ts[] = {160, 210, 288, 340};
    double worst = 0;
    for (size_t i = 0; i < sizeof b / sizeof *b; i++)
        for (size_t j = 0; j < sizeof ts / sizeof *ts; j++) {
            double got = mimic_rad_planck_band(b[i][0], b[i][1], ts[j]);
            double ref = ref_band(b[i][0], b[i][1], ts[j], 20000);
            double rel = fabs(got / ref - 1);
            if (rel > worst)
                worst = rel;
            CHECK_NEAR(got / ref, 1.0, 1e-10);
        }
    CHECK(worst < 1e-10);
}

TEST(planck_derivative_and_mono)
{
    const double b[][2] = {{10, 250},       {630, 700}, {2680, 3250},     {667, 667.01},
                           {0, INFINITY},   {1000, INFINITY}, {0, 1e-3}, {0.5, 0.6}, {1e-3, 2e-3}};
    for (size_t i = 0; i < sizeof b / sizeof *b; i++)
        for (double t = 180; t < 340; t += 40) {
            double h = 1e-3;
            double fd = (mimic_rad_planck_band(b[i][0], b[i][1], t + h) - mimic_rad_planck_band(b[i][0], b[i][1], t - h)) /
                        (2 * h);
            CHECK_NEAR(mimic_rad_planck_band_dt(b[i][0], b[i][1], t) / fd, 1.0, 1e-7);
        }
    /* d(sigma T^4 / pi)/dT = 4 sigma T^3 / pi */
    CHECK_NEAR(mimic_rad_planck_band_dt(0, INFINITY, 250) / (4 * MIMIC_RAD_STEFAN * 250 * 250 * 250 / PI), 1, 1e-10);
    for (double nu = 1; nu < 4000; nu *= 1.7)
        CHECK_NEAR(mimic_rad_planck(nu, 255) / (double)ref_planck(nu, 255), 1.0, 1e-13);
    CHECK(mimic_rad_planck(0, 300) == 0);
    CHECK(isnan(mimic_rad_planck(-1, 300)) && isnan(mimic_rad_planck(100, 0)));
    CHECK(isnan(mimic_rad_planck_band(20, 10, 300)) && isnan(mimic_rad_planck_band(10, 20, NAN)));
}

TEST(planck_source)
{
    double t[2] = {200, 300}, nu1[4] = {10, 10, 350, 667}, nu2[4] = {350, 350, 3250, 667};
    double frac[8] = {0.25, 0.75, 1, 1, 0.5, 0.5, 1, 2}, src[8];
    CHECK_OK(mimic_rad_planck_source(2, t, 4, nu1, nu2, frac, src));
    CHECK_NEAR(src[0], 0.25 * mimic_rad_planck_band(10, 350, 200), 1e-15);
    CHECK_NEAR(src[1], 0.75 * mimic_rad_planck_band(10, 350, 200), 1e-15);
    CHECK_NEAR(src[6], mimic_rad_planck_band(350, 3250, 300), 1e-13);
    CHECK_NEAR(src[7], 2 * mimic_rad_planck(667, 300), 1e-15); /* nu1 == nu2: monochromatic */
    double bad_t = -5;
    CHECK_ERR(mimic_rad_planck_source(1, &bad_t, 4, nu1, nu2, NULL, src), MIMIC_EARG, "temperature 0");
    frac[3] = -1;
    CHECK_ERR(mimic_rad_planck_source(2, t, 4, nu1, nu2, frac, src), MIMIC_EVALUE, "fraction [0][3]");
    nu2[2] = 300;
    CHECK_ERR(mimic_rad_planck_source(2, t, 4, nu1, nu2, NULL, src), MIMIC_EARG, "g-point 2");
}

/* --- angles, linear-in-tau source ------------------------------------------------------- */

TEST(angles)
{
    double mu[4], w[4];
    CHECK_OK(mimic_rad_angles(1, mu, w));
    CHECK_NEAR(mu[0], 1 / 1.66, 1e-16);
    CHECK_NEAR(w[0], 0.5, 0);
    for (int n = 2; n <= 4; n++) {
        CHECK_OK(mimic_rad_angles(n, mu, w));
        for (int k = 0; k < 2 * n; k++) { /* int_0^1 mu^k mu dmu = 1/(k+2), exactly for k < 2n */
            double s = 0;
            for (int i = 0; i < n; i++)
                s += w[i] * pow(mu[i], k);
            CHECK_NEAR(s, 1.0 / (k + 2), 1e-15);
        }
        double s = 0; /* degree 2n is not integrated exactly */
        for (int i = 0; i < n; i++)
            s += w[i] * pow(mu[i], 2 * n);
        CHECK(fabs(s - 1.0 / (2 * n + 2)) > 1e-8);
    }
    CHECK_ERR(mimic_rad_angles(0, mu, w), MIMIC_EARG, "nmu = 0");
    CHECK_ERR(mimic_rad_angles(5, mu, w), MIMIC_EARG, "nmu = 5");
}

/* int_0^tau S(t) e^{-(tau - t)} dt for S linear from b_top (t = 0) to b_exit (t = tau), Simpson. */
static double ref_linear(double tau, double b_top, double b_exit)
{
    int n = 20000;
    double h = tau / n, s = 0;
    for (int i = 0; i <= n; i++) {
        double t = i * h, f = (b_top + (b_exit - b_top) * t / tau) * exp(-(tau - t));
        s += (i == 0 || i == n ? 1.0 : i % 2 ? 4.0 : 2.0) * f;
    }
    return s * h / 3;
}

TEST(linear_source_limits)
{
    double bt = 3.0, bb = 7.0, bl = 0.5 * (bt + bb);
    /* exact for a linear source, both branches of the weighting factor */
    const double taus[] = {1e-3, 0.0199, 0.0201, 0.3, 1.0, 5.0, 30.0};
    for (size_t i = 0; i < sizeof taus / sizeof *taus; i++)
        CHECK_NEAR(mimic_rad_linear_source(taus[i], bl, bb) / ref_linear(taus[i], bt, bb), 1.0, 1e-10);
    /* both sides of the series / closed-form switch at 0.02, against the closed
     * form in long double: b_exit (1 - T) + (b_top - b_exit) ((1 - T)/tau - T) */
    for (double tau = 0.005; tau < 0.04; tau *= 1.13) {
        long double a = -expm1l(-(long double)tau), ref = bb * a + (bt - bb) * (a / tau - (1 - a));
        CHECK_NEAR(mimic_rad_linear_source(tau, bl, bb) / (double)ref, 1.0, 1e-13);
    }
    /* tau -> inf: the layer radiates its exit level's value (not its mean),
     * approached as b_exit + 2 (b_lay - b_exit) / tau */
    CHECK_NEAR(mimic_rad_linear_source(1e3, bl, bb), bb + 2 * (bl - bb) / 1e3, 1e-13);
    CHECK_NEAR(mimic_rad_linear_source(60, bl, bt), bt + 2 * (bl - bt) / 60, 1e-13);
    CHECK_NEAR(mimic_rad_linear_source(1e15, bl, bb), bb, 1e-13);
    /* tau -> 0: emission tau * b_lay (optically thin), second order in tau */
    double tau = 1e-7;
    CHECK_NEAR(mimic_rad_linear_source(tau, bl, bb) / (tau * bl), 1.0, 1e-6);
    CHECK(mimic_rad_linear_source(0, bl, bb) == 0);
}

/* --- the solver -------------------------------------------------------------------------- */

typedef struct col {
    int nlay, ngpt;
    double *tau, *lev, *lay, *sfc, *fu, *fd, *gfu, *gfd;
} col;

static col col_new(int nlay, int ngpt)
{
    col c = {nlay, ngpt, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    c.tau = calloc((size_t)(nlay * ngpt), sizeof(double));
    c.lay = calloc((size_t)(nlay * ngpt), sizeof(double));
    c.lev = calloc((size_t)((nlay + 1) * ngpt), sizeof(double));
    c.sfc = calloc((size_t)ngpt, sizeof(double));
    c.fu = calloc((size_t)(nlay + 1), sizeof(double));
    c.fd = calloc((size_t)(nlay + 1), sizeof(double));
    c.gfu = calloc((size_t)((nlay + 1) * ngpt), sizeof(double));
    c.gfd = calloc((size_t)((nlay + 1) * ngpt), sizeof(double));
    return c;
}

static void col_free(col *c)
{
    free(c->tau), free(c->lay), free(c->lev), free(c->sfc), free(c->fu), free(c->fd), free(c->gfu), free(c->gfd);
}

static int col_solve(col *c, int nmu, double emis, int use_lay, const double *weight)
{
    mimic_rad_lw_input in = {.ncol = 1, .nlay = c->nlay, .ngpt = c->ngpt, .nmu = nmu, .tau = c->tau,
                             .lay_src = use_lay ? c->lay : NULL, .lev_src = c->lev, .sfc_src = c->sfc,
                             .sfc_emis = &emis, .weight = weight};
    mimic_rad_lw_output out = {c->fu, c->fd, c->gfu, c->gfd};
    return mimic_rad_lw_solve(&in, &out);
}

TEST(transparent_atmosphere)
{
    col c = col_new(10, 1);
    double ts = 295, e = 0.9;
    c.sfc[0] = mimic_rad_planck_band(0, INFINITY, ts);
    for (int l = 0; l <= 10; l++)
        c.lev[l] = mimic_rad_planck_band(0, INFINITY, 200 + 5 * l); /* no effect with tau = 0 */
    for (int nmu = 1; nmu <= 4; nmu++) {
        CHECK_OK(col_solve(&c, nmu, e, 0, NULL));
        for (int l = 0; l <= 10; l++) {
            CHECK_NEAR(c.fu[l] / (e * MIMIC_RAD_STEFAN * pow(ts, 4)), 1.0, 1e-10);
            CHECK_NEAR(c.fd[l], 0, 0);
        }
    }
    col_free(&c);
}

TEST(thick_layer_reflection)
{
    /* One very thick layer at ta over a surface at ts: the surface receives
     * pi B(ta) and sends e pi B(ts) + (1 - e) pi B(ta) up. */
    col c = col_new(1, 1);
    double ta = 260, ts = 300, e = 0.8, ba = mimic_rad_planck_band(0, INFINITY, ta);
    c.tau[0] = 500;
    c.lev[0] = c.lev[1] = c.lay[0] = ba;
    c.sfc[0] = mimic_rad_planck_band(0, INFINITY, ts);
    CHECK_OK(col_solve(&c, 3, e, 1, NULL));
    CHECK_NEAR(c.fd[1], PI * ba, 1e-10);
    CHECK_NEAR(c.fu[1], e * PI * c.sfc[0] + (1 - e) * PI * ba, 1e-10);
    CHECK_NEAR(c.fu[0], PI * ba, 1e-10); /* the thick layer hides the surface */
    col_free(&c);
}

TEST(isothermal_thick_equilibrium)
{
    int nlay = 20, ngpt = 3;
    col c = col_new(nlay, ngpt);
    double t = 250, nu1[3] = {10, 500, 1500}, nu2[3] = {500, 1500, 3250};
    double b[3];
    for (int g = 0; g < ngpt; g++)
        b[g] = mimic_rad_planck_band(nu1[g], nu2[g], t);
    for (int l = 0; l < nlay; l++)
        for (int g = 0; g < ngpt; g++) {
            c.tau[l * ngpt + g] = 10.0 * (g + 1);
            c.lay[l * ngpt + g] = b[g];
        }
    for (int l = 0; l <= nlay; l++)
        for (int g = 0; g < ngpt; g++)
            c.lev[l * ngpt + g] = b[g];
    for (int g = 0; g < ngpt; g++)
        c.sfc[g] = b[g];
    double total = PI * (b[0] + b[1] + b[2]);
    for (int nmu = 1; nmu <= 4; nmu++) {
        CHECK_OK(col_solve(&c, nmu, 0.7, 1, NULL));
        /* below the top few layers (tau >= 40: e^-40 negligible) both streams
         * are pi B; the net is 0 */
        for (int l = 4; l <= nlay; l++) {
            CHECK_NEAR(c.fu[l] / total, 1.0, 1e-12);
            CHECK_NEAR(c.fd[l] / total, 1.0, 1e-12);
            CHECK_NEAR(c.fu[l] - c.fd[l], 0, 1e-9);
        }
        CHECK_NEAR(c.fu[0] / total, 1.0, 1e-12); /* the top emits pi B to space... */
        CHECK(c.fd[0] == 0);                     /* ...and receives nothing */
    }
    col_free(&c);
}

TEST(single_layer_transmission_quadrature)
{
    /* A cold (non-emitting) layer over a black surface of unit radiance:
     * F_toa / pi is the flux transmissivity 2 E3(tau); 1 direction gives
     * exp(-1.66 tau) exactly; Gauss-Jacobi converges to 2 E3. */
    const double taus[] = {0.1, 0.5, 1.0, 2.0};
    for (size_t i = 0; i < sizeof taus / sizeof *taus; i++) {
        col c = col_new(1, 1);
        c.tau[0] = taus[i];
        c.sfc[0] = 1;
        double ref = two_e3(taus[i]), err[5] = {0};
        for (int nmu = 1; nmu <= 4; nmu++) {
            CHECK_OK(col_solve(&c, nmu, 1.0, 1, NULL));
            err[nmu] = fabs(c.fu[0] / PI - ref);
            if (nmu == 1)
                CHECK_NEAR(c.fu[0] / PI, exp(-1.66 * taus[i]), 1e-15);
        }
        /* Gauss-Jacobi: 2 -> 4 directions always better; monotone for tau <= 1 */
        CHECK(err[4] < err[2] && (taus[i] > 1 || err[4] < err[3]) && err[3] < err[2]);
        CHECK(err[4] < 1e-3 * ref);
        CHECK(err[1] < 0.02 * ref || taus[i] > 0.5); /* diffusivity angle: ~2 % off for thin layers */
        CHECK(err[1] > 10 * err[4]);
        col_free(&c);
    }
}

/* Splitting layers into sub-layers with sources interpolated linearly in
 * optical depth changes nothing: the scheme is exact for a linear source. */
TEST(linear_in_tau_is_exact_under_refinement)
{
    int nlay = 3, ngpt = 2, nsub = 7;
    col c = col_new(nlay, ngpt), f = col_new(nlay * nsub, ngpt);
    const double tau[3][2] = {{0.01, 0.5}, {2.0, 0.03}, {40.0, 1.5}};
    const double tlev[4] = {200, 230, 270, 290};
    for (int l = 0; l <= nlay; l++)
        for (int g = 0; g < ngpt; g++)
            c.lev[l * ngpt + g] = mimic_rad_planck_band(g ? 700 : 10, g ? 3250 : 700, tlev[l]);
    for (int g = 0; g < ngpt; g++) {
        c.sfc[g] = mimic_rad_planck_band(g ? 700 : 10, g ? 3250 : 700, 295);
        f.sfc[g] = c.sfc[g];
    }
    for (int l = 0; l < nlay; l++)
        for (int g = 0; g < ngpt; g++) {
            c.tau[l * ngpt + g] = tau[l][g];
            for (int s = 0; s < nsub; s++)
                f.tau[(l * nsub + s) * ngpt + g] = tau[l][g] / nsub;
            for (int s = 0; s <= nsub; s++) {
                double a = (double)s / nsub;
                f.lev[(l * nsub + s) * ngpt + g] = (1 - a) * c.lev[l * ngpt + g] + a * c.lev[(l + 1) * ngpt + g];
            }
        }
    for (int nmu = 1; nmu <= 4; nmu += 3) {
        CHECK_OK(col_solve(&c, nmu, 0.95, 0, NULL));
        CHECK_OK(col_solve(&f, nmu, 0.95, 0, NULL));
        for (int l = 0; l <= nlay; l++) {
            CHECK_NEAR(c.fu[l], f.fu[l * nsub], 1e-11 * c.fu[l]);
            CHECK_NEAR(c.fd[l], f.fd[l * nsub], 1e-11 * (c.fd[l] + 1));
        }
    }
    /* with lay_src = mean of its levels, identical to lay_src = NULL */
    double fu0[4], fd0[4];
    memcpy(fu0, c.fu, sizeof fu0), memcpy(fd0, c.fd, sizeof fd0);
    for (int l = 0; l < nlay; l++)
        for (int g = 0; g < ngpt; g++)
            c.lay[l * ngpt + g] = 0.5 * (c.lev[l * ngpt + g] + c.lev[(l + 1) * ngpt + g]);
    CHECK_OK(col_solve(&c, 4, 0.95, 1, NULL));
    for (int l = 0; l <= nlay; l++) {
        CHECK_NEAR(c.fu[l], fu0[l], 1e-13 * fu0[l]);
        CHECK_NEAR(c.fd[l], fd0[l], 1e-13 * (fd0[l] + 1));
    }
    col_free(&c), col_free(&f);
}

/* A column with random optics: per-gpt fluxes sum (with weights) to the
 * broadband ones, and column-integrated heating equals the net flux
 * difference between the surface and the top. */
TEST(energy_conservation_and_weights)
{
    int nlay = 30, ngpt = 5, nlev = nlay + 1;
    col c = col_new(nlay, ngpt);
    unsigned s = 12345;
#define RND() ((s = s * 1103515245u + 12345u), (double)((s >> 8) & 0xffff) / 65536.0)
    double p[31], t[31], w[5] = {0.3, 1.0, 2.5, 0.1, 1.7};
    for (int l = 0; l <= nlay; l++) {
        p[l] = 1e5 * pow((double)l / nlay, 2) + 1.0;
        t[l] = 200 + 90.0 * l / nlay + 5 * RND();
    }
    for (int l = 0; l <= nlay; l++)
        for (int g = 0; g < ngpt; g++)
            c.lev[l * ngpt + g] = (0.5 + RND()) * mimic_rad_planck_band(100.0 * g, 100.0 * g + 400, t[l]);
    for (int l = 0; l < nlay; l++)
        for (int g = 0; g < ngpt; g++) {
            c.tau[l * ngpt + g] = pow(10, -3 + 5 * RND());
            c.lay[l * ngpt + g] = 0.5 * (c.lev[l * ngpt + g] + c.lev[(l + 1) * ngpt + g]) * (0.9 + 0.2 * RND());
        }
    for (int g = 0; g < ngpt; g++)
        c.sfc[g] = mimic_rad_planck_band(100.0 * g, 100.0 * g + 400, 300);
    CHECK_OK(col_solve(&c, 3, 0.93, 1, w));
    for (int l = 0; l < nlev; l++) {
        double su = 0, sd = 0;
        for (int g = 0; g < ngpt; g++)
            su += w[g] * c.gfu[l * ngpt + g], sd += w[g] * c.gfd[l * ngpt + g];
        CHECK_NEAR(su, c.fu[l], 1e-12 * c.fu[l]);
        CHECK_NEAR(sd, c.fd[l], 1e-12 * (c.fd[l] + 1));
    }
    double h[30], sum = 0;
    CHECK_OK(mimic_rad_heating_rate(1, nlay, p, c.fu, c.fd, h));
    for (int l = 0; l < nlay; l++)
        sum += h[l] * (p[l + 1] - p[l]) * MIMIC_RAD_CP_DRY / (MIMIC_RAD_G * 86400.0);
    double toa = c.fu[0] - c.fd[0], sfc = c.fu[nlay] - c.fd[nlay];
    CHECK_NEAR(sum, sfc - toa, 1e-10 * fabs(toa));
    /* units: 10 W m^-2 more net upward flux at the top of a 100 hPa layer */
    double p2[2] = {5e4, 6e4}, fu[2] = {110, 100}, fd[2] = {0, 0}, h1;
    CHECK_OK(mimic_rad_heating_rate(1, 1, p2, fu, fd, &h1));
    CHECK_NEAR(h1, -9.80665 / 1004.64 * 10 / 1e4 * 86400, 1e-12);
    col_free(&c);
#undef RND
}

TEST(heating_sign)
{
    /* Isothermal atmosphere over a surface at the same temperature: the top
     * layer sees cold space and cools; in the thick interior the net flux
     * vanishes and so does the heating. */
    int nlay = 10;
    col c = col_new(nlay, 1);
    double b = mimic_rad_planck_band(0, INFINITY, 260), p[11];
    for (int l = 0; l <= nlay; l++) {
        c.lev[l] = b;
        p[l] = 100.0 + 1e4 * l;
    }
    for (int l = 0; l < nlay; l++)
        c.tau[l] = 1.0;
    c.sfc[0] = b;
    CHECK_OK(col_solve(&c, 1, 1.0, 0, NULL));
    double h[10];
    CHECK_OK(mimic_rad_heating_rate(1, nlay, p, c.fu, c.fd, h));
    CHECK(h[0] < -0.1);
    for (int l = 1; l < nlay; l++)
        CHECK(h[l] <= 0 && fabs(h[l]) < fabs(h[l - 1]) + 1e-15);
    /* a warm layer in the middle of a cold column cools */
    for (int l = 0; l <= nlay; l++)
        c.lev[l] = mimic_rad_planck_band(0, INFINITY, l == 5 || l == 6 ? 300 : 220);
    c.sfc[0] = mimic_rad_planck_band(0, INFINITY, 220);
    CHECK_OK(col_solve(&c, 2, 1.0, 0, NULL));
    CHECK_OK(mimic_rad_heating_rate(1, nlay, p, c.fu, c.fd, h));
    CHECK(h[5] < 0 && h[3] > 0 && h[8] > 0);
    p[3] = p[2];
    CHECK_ERR(mimic_rad_heating_rate(1, nlay, p, c.fu, c.fd, h), MIMIC_EVALUE, "increasing at level 2");
    col_free(&c);
}

TEST(bad_inputs)
{
    col c = col_new(4, 2);
    for (int g = 0; g < 2; g++)
        c.sfc[g] = 1;
    CHECK_OK(col_solve(&c, 1, 1, 1, NULL));
    c.tau[5] = -0.1;
    CHECK_ERR(col_solve(&c, 1, 1, 1, NULL), MIMIC_EVALUE, "tau[col 0][2][gpt 1] = -0.1");
    c.tau[5] = NAN;
    CHECK_ERR(col_solve(&c, 1, 1, 1, NULL), MIMIC_EVALUE, "tau[col 0][2][gpt 1]");
    c.tau[5] = INFINITY;
    CHECK_ERR(col_solve(&c, 1, 1, 1, NULL), MIMIC_EVALUE, "tau[col 0]");
    c.tau[5] = 0;
    c.lev[9] = NAN;
    CHECK_ERR(col_solve(&c, 1, 1, 1, NULL), MIMIC_EVALUE, "lev_src[col 0][4][gpt 1]");
    c.lev[9] = 0;
    c.lay[0] = INFINITY;
    CHECK_ERR(col_solve(&c, 1, 1, 1, NULL), MIMIC_EVALUE, "lay_src");
    c.lay[0] = 0;
    CHECK_ERR(col_solve(&c, 0, 1, 1, NULL), MIMIC_EARG, "nmu = 0");
    CHECK_ERR(col_solve(&c, 5, 1, 1, NULL), MIMIC_EARG, "nmu = 5");
    CHECK_ERR(col_solve(&c, 1, 1.5, 1, NULL), MIMIC_EVALUE, "emissivity");
    CHECK_ERR(col_solve(&c, 1, NAN, 1, NULL), MIMIC_EVALUE, "emissivity");
    double w[2] = {1, NAN};
    CHECK_ERR(col_solve(&c, 1, 1, 1, w), MIMIC_EVALUE, "weight");
    mimic_rad_lw_input in = {.ncol = 0, .nlay = 4, .ngpt = 2, .nmu = 1};
    mimic_rad_lw_output out = {c.fu, c.fd, NULL, NULL};
    CHECK_ERR(mimic_rad_lw_solve(&in, &out), MIMIC_EARG, "ncol = 0");
    in.ncol = 1;
    CHECK_ERR(mimic_rad_lw_solve(&in, &out), MIMIC_EARG, "NULL");
    CHECK_ERR(mimic_rad_lw_solve(NULL, &out), MIMIC_EARG, "NULL");
    col_free(&c);
}

/* Many columns in one call (the threaded path) equal single-column calls. */
TEST(many_columns)
{
    int ncol = 64, nlay = 40, ngpt = 16;
    int64_t nl = (int64_t)nlay * ngpt, nv = (int64_t)(nlay + 1) * ngpt;
    double *tau = malloc(sizeof(double) * (size_t)(ncol * nl)), *lev = malloc(sizeof(double) * (size_t)(ncol * nv));
    double *sfc = malloc(sizeof(double) * (size_t)(ncol * ngpt)), *emis = malloc(sizeof(double) * (size_t)ncol);
    double *fu = malloc(sizeof(double) * (size_t)(ncol * (nlay + 1))), *fd = malloc(sizeof(double) * (size_t)(ncol * (nlay + 1)));
    for (int64_t k = 0; k < ncol * nl; k++)
        tau[k] = 0.001 * (double)(k % 997);
    for (int64_t k = 0; k < ncol * nv; k++)
        lev[k] = 1 + 0.01 * (double)(k % 101);
    for (int64_t k = 0; k < ncol * ngpt; k++)
        sfc[k] = 2 + 0.01 * (double)(k % 13);
    for (int c = 0; c < ncol; c++)
        emis[c] = 0.9 + 0.001 * c;
    mimic_rad_lw_input in = {.ncol = ncol, .nlay = nlay, .ngpt = ngpt, .nmu = 2, .tau = tau, .lev_src = lev,
                             .sfc_src = sfc, .sfc_emis = emis};
    mimic_rad_lw_output out = {fu, fd, NULL, NULL};
    CHECK_OK(mimic_rad_lw_solve(&in, &out));
    double fu1[41], fd1[41];
    for (int c = 0; c < ncol; c += 9) {
        mimic_rad_lw_input one = in;
        one.ncol = 1, one.tau = tau + c * nl, one.lev_src = lev + c * nv, one.sfc_src = sfc + c * ngpt,
        one.sfc_emis = emis + c;
        mimic_rad_lw_output o1 = {fu1, fd1, NULL, NULL};
        CHECK_OK(mimic_rad_lw_solve(&one, &o1));
        for (int l = 0; l <= nlay; l++)
            CHECK(fu1[l] == fu[c * (nlay + 1) + l] && fd1[l] == fd[c * (nlay + 1) + l]);
    }
    free(tau), free(lev), free(sfc), free(emis), free(fu), free(fd);
}

/* --- the column driver ------------------------------------------------------------------------ */

typedef struct gray {
    int ngpt, calls, fail;
    double k_h2o, k_dry;
} gray;

/* tau = k_h2o * h2o column (molecules/cm^2) + k_dry * dry column; fractions 1 */
static int gray_optics(void *ud, const mimic_rad_layer *lay, int nlay, double *tau, double *frac)
{
    gray *gr = ud;
    gr->calls++;
    if (gr->fail == 1)
        return mimic_error(MIMIC_EVALUE, "gray: synthetic failure");
    if (gr->fail == 2)
        return 0; /* leaves everything unset */
    for (int l = 0; l < nlay; l++)
        for (int g = 0; g < gr->ngpt; g++) {
            tau[l * gr->ngpt + g] =
                (g + 1) * (gr->k_h2o * lay[l].vmr[MIMIC_GAS_H2O] * lay[l].col_dry + gr->k_dry * lay[l].col_dry);
            frac[l * gr->ngpt + g] = 1;
        }
    return 0;
}

TEST(driver_matches_solver)
{
    enum { NC = 2, NL = 12 };
    double p_lev[NC][NL + 1], t_lev[NC][NL + 1], p_lay[NC][NL], t_lay[NC][NL], vmr[NC][NL][MIMIC_NGAS];
    double t_sfc[NC] = {295, 270}, emis[NC] = {0.98, 0.9};
    memset(vmr, 0, sizeof vmr);
    for (int c = 0; c < NC; c++) {
        for (int l = 0; l <= NL; l++) {
            p_lev[c][l] = 10 + 1e5 * pow((double)l / NL, 1.5);
            t_lev[c][l] = 210 + 0.8 * l * (c ? 4 : 7);
        }
        for (int l = 0; l < NL; l++) {
            p_lay[c][l] = 0.5 * (p_lev[c][l] + p_lev[c][l + 1]);
            t_lay[c][l] = 0.5 * (t_lev[c][l] + t_lev[c][l + 1]) + 1;
            vmr[c][l][MIMIC_GAS_H2O] = 1e-5 * exp(6.0 * l / NL);
            vmr[c][l][MIMIC_GAS_CO2] = 4e-4;
        }
    }
    double nu1[2] = {10, 350}, nu2[2] = {350, 3250}, wt[2] = {1, 1};
    gray gr = {2, 0, 0, 2e-22, 3e-26};
    mimic_rad_atm atm = {NC, NL, &p_lay[0][0], &t_lay[0][0], &p_lev[0][0], &t_lev[0][0], t_sfc, emis, &vmr[0][0][0]};
    mimic_rad_optics opt = {2, nu1, nu2, wt, gray_optics, &gr};
    double fu[NC][NL + 1], fd[NC][NL + 1], hr[NC][NL];
    CHECK_OK(mimic_rad_lw_fluxes(&atm, &opt, 2, &fu[0][0], &fd[0][0], &hr[0][0]));
    CHECK(gr.calls == NC);
    /* the same column assembled by hand */
    for (int c = 0; c < NC; c++) {
        col k = col_new(NL, 2);
        mimic_rad_layer lay[NL];
        for (int l = 0; l < NL; l++) {
            lay[l].p = p_lay[c][l], lay[l].t = t_lay[c][l];
            memcpy(lay[l].vmr, vmr[c][l], sizeof lay[l].vmr);
            lay[l].col_dry = mimic_rad_col_dry(p_lev[c][l], p_lev[c][l + 1], vmr[c][l][MIMIC_GAS_H2O]);
        }
        double frac[NL * 2];
        gray_optics(&gr, lay, NL, k.tau, frac);
        for (int g = 0; g < 2; g++) {
            for (int l = 0; l < NL; l++)
                k.lay[l * 2 + g] = mimic_rad_planck_band(nu1[g], nu2[g], t_lay[c][l]);
            for (int l = 0; l <= NL; l++)
                k.lev[l * 2 + g] = mimic_rad_planck_band(nu1[g], nu2[g], t_lev[c][l]);
            k.sfc[g] = mimic_rad_planck_band(nu1[g], nu2[g], t_sfc[c]);
        }
        CHECK_OK(col_solve(&k, 2, emis[c], 1, NULL));
        for (int l = 0; l <= NL; l++) {
            CHECK_NEAR(fu[c][l], k.fu[l], 1e-12 * k.fu[l]);
            CHECK_NEAR(fd[c][l], k.fd[l], 1e-12 * (k.fd[l] + 1));
        }
        double h[NL];
        CHECK_OK(mimic_rad_heating_rate(1, NL, p_lev[c], k.fu, k.fd, h));
        for (int l = 0; l < NL; l++)
            CHECK_NEAR(hr[c][l], h[l], 1e-9 * (fabs(h[l]) + 1e-3));
        col_free(&k);
    }
    /* plausibility: OLR below surface emission, some back radiation */
    CHECK(fu[0][0] < emis[0] * MIMIC_RAD_STEFAN * pow(t_sfc[0], 4) && fd[0][NL] > 50);
    /* errors from the callback come through, unset values are named */
    gr.fail = 1;
    CHECK_ERR(mimic_rad_lw_fluxes(&atm, &opt, 2, &fu[0][0], &fd[0][0], NULL), MIMIC_EVALUE, "synthetic failure");
    gr.fail = 2;
    CHECK_ERR(mimic_rad_lw_fluxes(&atm, &opt, 2, &fu[0][0], &fd[0][0], NULL), MIMIC_EVALUE, "NaN: not set");
    gr.fail = 0;
    vmr[1][3][MIMIC_GAS_O3] = -1;
    CHECK_ERR(mimic_rad_lw_fluxes(&atm, &opt, 2, &fu[0][0], &fd[0][0], NULL), MIMIC_EVALUE, "vmr of o3 at [col 1][lay 3]");
    vmr[1][3][MIMIC_GAS_O3] = 0;
    CHECK_ERR(mimic_rad_lw_fluxes(&atm, &opt, 7, &fu[0][0], &fd[0][0], NULL), MIMIC_EARG, "nmu = 7");
}

/* tau = k * dry column at every spectral point (ud: k); fractions 1 */
static int flat_optics(void *ud, const mimic_rad_layer *lay, int nlay, double *tau, double *frac)
{
    const double *k = ud;
    int ngpt = (int)k[1];
    for (int l = 0; l < nlay; l++)
        for (int g = 0; g < ngpt; g++)
            tau[l * ngpt + g] = k[0] * lay[l].col_dry, frac[l * ngpt + g] = 1;
    return 0;
}

/* Line-by-line mode: monochromatic points (nu1 == nu2) with their widths as
 * weights reproduce the band-integrated result (midpoint rule in nu). */
TEST(driver_monochromatic_points)
{
    enum { NL = 5, NP = 3240 };
    double p_lev[NL + 1], t_lev[NL + 1], p_lay[NL], t_lay[NL], vmr[NL][MIMIC_NGAS] = {{0}};
    for (int l = 0; l <= NL; l++)
        p_lev[l] = 1e3 + 2e4 * l, t_lev[l] = 220 + 12 * l;
    for (int l = 0; l < NL; l++)
        p_lay[l] = 0.5 * (p_lev[l] + p_lev[l + 1]), t_lay[l] = 0.5 * (t_lev[l] + t_lev[l + 1]);
    double t_sfc = 290, emis = 0.97;
    static double nu[NP], w[NP];
    for (int k = 0; k < NP; k++)
        nu[k] = 10.5 + k, w[k] = 1.0; /* midpoints of [10, 3250] */
    mimic_rad_atm atm = {1, NL, p_lay, t_lay, p_lev, t_lev, &t_sfc, &emis, &vmr[0][0]};
    double a = 10, b = 3250, kb[2] = {1e-25, 1}, km[2] = {1e-25, NP}; /* total tau ~ 2 */
    mimic_rad_optics band = {1, &a, &b, NULL, flat_optics, kb};
    mimic_rad_optics mono = {NP, nu, nu, w, flat_optics, km};
    double fub[NL + 1], fdb[NL + 1], fum[NL + 1], fdm[NL + 1];
    for (int nmu = 1; nmu <= 2; nmu++) {
        CHECK_OK(mimic_rad_lw_fluxes(&atm, &band, nmu, fub, fdb, NULL));
        CHECK_OK(mimic_rad_lw_fluxes(&atm, &mono, nmu, fum, fdm, NULL));
        for (int l = 0; l <= NL; l++) {
            CHECK_NEAR(fum[l] / fub[l], 1.0, 2e-5); /* midpoint rule, h = 1 cm^-1 */
            if (l > 0)
                CHECK_NEAR(fdm[l] / fdb[l], 1.0, 2e-5);
        }
    }
    CHECK(fdb[NL] > 100 && fub[0] < 0.97 * MIMIC_RAD_STEFAN * pow(t_sfc, 4)); /* not transparent */
}

int main(void)
{
    RUN(gas_names);
    RUN(col_dry);
    RUN(planck_total_is_stefan_boltzmann);
    RUN(planck_band_vs_quadrature);
    RUN(planck_derivative_and_mono);
    RUN(planck_source);
    RUN(angles);
    RUN(linear_source_limits);
    RUN(transparent_atmosphere);
    RUN(thick_layer_reflection);
    RUN(isothermal_thick_equilibrium);
    RUN(single_layer_transmission_quadrature);
    RUN(linear_in_tau_is_exact_under_refinement);
    RUN(energy_conservation_and_weights);
    RUN(heating_sign);
    RUN(bad_inputs);
    RUN(many_columns);
    RUN(driver_matches_solver);
    RUN(driver_monochromatic_points);
    return CHECK_DONE();
}
