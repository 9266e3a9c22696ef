/* Planck radiance: monochromatic, band-integrated, its temperature
 * derivative, and RRTMGP-style sources (rad_rte.h).
 *
 * With x = h c nu / (k T) the band integral is
 *   int_{nu1}^{nu2} B dnu = K T^4 int_{x1}^{x2} t^3 / (e^t - 1) dt,
 *   K = 2 h c^2 (k / h c)^4,
 * and K T^4 pi^4 / 15 = sigma T^4 / pi. The dimensionless integral is split
 * at x = 2: below, the Bernoulli-number series of t / (e^t - 1) (radius of
 * convergence 2 pi: ten-fold decrease per term at x = 2); above, Widger &
 * Woodall's (1976) series of the upper tail, whose terms decay as e^{-n x}.
 * A band narrower than 0.5 in x is integrated directly with 10-point
 * Gauss-Legendre instead, which avoids the cancellation of two nearly equal
 * tails (the integrand is analytic within 2 pi of the real axis, so the rule
 * is exact to rounding there). */
#include "mimic/rad_rte.h"

#include <math.h>

#define C2 (MIMIC_RAD_PLANCK * MIMIC_RAD_LIGHT / MIMIC_RAD_BOLTZMANN) /* m K */
#define C2_CM (100.0 * C2)                                             /* cm K */
#define PI4_15 6.4939394022668291491                                   /* pi^4 / 15 */
#define X_SPLIT 2.0

/* K T^4 with K = 2 h c^2 / C2^4: W m^-2 sr^-1 per unit of the x-integral. */
static double band_scale(double t)
{
    const double k = 2.0 * MIMIC_RAD_PLANCK * MIMIC_RAD_LIGHT * MIMIC_RAD_LIGHT / (C2 * C2 * C2 * C2);
    double t2 = t * t;
    return k * t2 * t2;
}

/* t^3 / (e^t - 1) */
static double integrand(double t)
{
    if (t < 1e-8)
        return t * t * (1.0 - 0.5 * t);
    return t * t * t / expm1(t);
}

/* B_{2j} / (2j)!, j = 1..20: x / (e^x - 1) = 1 - x/2 + sum_j c_j x^{2j}. */
static const double bern[20] = {
    8.3333333333333333333e-2,  -1.3888888888888888889e-3, 3.3068783068783068783e-5,  -8.2671957671957671958e-7,
    2.0876756987868098979e-8,  -5.2841901386874931848e-10, 1.3382536530684678833e-11, -3.3896802963225828668e-13,
    8.5860620562778445641e-15, -2.174868698558061873e-16, 5.5090028283602295152e-18, -1.3954464685812523341e-19,
    3.5347070396294674717e-21, -8.9535174270375468504e-23, 2.2679524523376830603e-24, -5.7447906688722024453e-26,
    1.4551724756148649019e-27, -3.6859949406653101782e-29, 9.336734257095044672e-31,  -2.3650224157006299346e-32,
};

/* int_0^x t^3 / (e^t - 1) dt for 0 <= x <= X_SPLIT:
 * x^3/3 - x^4/8 + sum_j c_j x^{2j+3} / (2j+3). */
static double lower(double x)
{
    double x2 = x * x, s = 0;
    for (int j = 19; j >= 0; j--)
        s = s * x2 + bern[j] / (2.0 * (j + 1) + 3.0);
    return x2 * x * (1.0 / 3.0 - x / 8.0 + x2 * s);
}

/* int_x^inf t^3 / (e^t - 1) dt for x >= X_SPLIT (Widger & Woodall):
 * sum_n e^{-n x} (x^3/n + 3 x^2/n^2 + 6 x/n^3 + 6/n^4). */
static double upper(double x)
{
    if (isinf(x))
        return 0;
    double e = exp(-x), en = 1, s = 0, x2 = x * x, x3 = x2 * x;
    int nmax = (int)(40.0 / x) + 2; /* e^{-n x} < 4e-18 beyond */
    for (int n = 1; n <= nmax; n++) {
        en *= e;
        double r = 1.0 / n;
        s += en * r * (x3 + r * (3 * x2 + r * (6 * x + r * 6)));
    }
    return s;
}

/* (t f(t))' = f(t) (4 - t / (1 - e^-t)), f = t^3 / (e^t - 1) */
static double dg(double t)
{
    double r = t < 1e-8 ? -1.0 + 0.5 * t : t / expm1(-t); /* -t / (1 - e^-t) */
    return integrand(t) * (4.0 + r);
}

static const double gl_x[5] = {0.14887433898163122, 0.43339539412924721, 0.67940956829902444,
                               0.86506336668898454, 0.97390652851717174};
static const double gl_w[5] = {0.29552422471475298, 0.26926671930999652, 0.21908636251598201,
                               0.14945134915058036, 0.066671344308688069};

/* int_{x1}^{x2} t^3 / (e^t - 1) dt, 0 <= x1 <= x2 <= inf; dx = x2 - x1 computed
 * from the wavenumber difference (x2 - x1 itself loses digits for narrow bands). */
static double xintegral(double x1, double x2, double dx)
{
    if (dx < 0.5) {
        double c = x1 + 0.5 * dx, h = 0.5 * dx, s = 0;
        for (int i = 0; i < 5; i++)
            s += gl_w[i] * (integrand(c - h * gl_x[i]) + integrand(c + h * gl_x[i]));
        return h * s;
    }
    if (x1 >= X_SPLIT)
        return upper(x1) - upper(x2);
    if (x2 <= X_SPLIT)
        return lower(x2) - lower(x1);
    return (lower(X_SPLIT) - lower(x1)) + (upper(X_SPLIT) - upper(x2));
}

static int bad_args(double nu1, double nu2, double t)
{
    return !(t > 0) || !isfinite(t) || !(nu1 >= 0) || !isfinite(nu1) || !(nu2 >= nu1);
}

double mimic_rad_planck(double nu, double t)
{
    if (!(nu >= 0) || !isfinite(nu) || !(t > 0) || !isfinite(t))
        return NAN;
    double x = C2_CM * nu / t;
    /* 2 h c^2 (100 nu)^3 / (e^x - 1) per m^-1, times 100 per cm^-1 */
    double c1 = 2.0 * MIMIC_RAD_PLANCK * MIMIC_RAD_LIGHT * MIMIC_RAD_LIGHT * 1e8;
    if (nu == 0)
        return 0;
    return c1 * nu * nu * (nu / expm1(x)); /* nu / expm1(x) stays finite for tiny nu */
}

double mimic_rad_planck_band(double nu1, double nu2, double t)
{
    if (bad_args(nu1, nu2, t))
        return NAN;
    return band_scale(t) * xintegral(C2_CM * nu1 / t, C2_CM * nu2 / t, C2_CM * (nu2 - nu1) / t);
}

double mimic_rad_planck_band_dt(double nu1, double nu2, double t)
{
    if (bad_args(nu1, nu2, t))
        return NAN;
    double x1 = C2_CM * nu1 / t, x2 = C2_CM * nu2 / t, kt4 = band_scale(t);
    double dx = C2_CM * (nu2 - nu1) / t, p = kt4 * xintegral(x1, x2, dx);
    /* x1 f(x1) - x2 f(x2) = -int_{x1}^{x2} (t f)' dt: by the same Gauss-Legendre
     * rule on narrow bands, free of the cancellation of two nearly equal values */
    double de;
    if (dx < 0.5) {
        double c = x1 + 0.5 * dx, h = 0.5 * dx, s = 0;
        for (int i = 0; i < 5; i++)
            s += gl_w[i] * (dg(c - h * gl_x[i]) + dg(c + h * gl_x[i]));
        de = -h * s;
    } else
        de = x1 * integrand(x1) - (isinf(x2) ? 0.0 : x2 * integrand(x2));
    return (4.0 * p + kt4 * de) / t;
}

int mimic_rad_planck_source(int n, const double *t, int ngpt, const double *nu1, const double *nu2,
                            const double *frac, double *src)
{
    if (n < 0 || ngpt < 1 || (n > 0 && (!t || !src)) || !nu1 || !nu2)
        return mimic_error(MIMIC_EARG, "planck_source: need n >= 0 temperatures, ngpt >= 1 and non-NULL t, nu1, nu2, "
                                       "src (got n=%d, ngpt=%d)", n, ngpt);
    for (int g = 0; g < ngpt; g++)
        if (!(nu1[g] >= 0) || !isfinite(nu1[g]) || !(nu2[g] >= nu1[g]))
            return mimic_error(MIMIC_EARG, "planck_source: g-point %d has band [%g, %g] cm^-1; limits must satisfy "
                                           "0 <= nu1 <= nu2 (nu2 may be inf)", g, nu1[g], nu2[g]);
    for (int i = 0; i < n; i++)
        if (!(t[i] > 0) || !isfinite(t[i]))
            return mimic_error(MIMIC_EARG, "planck_source: temperature %d is %g K; temperatures must be finite and > 0",
                               i, t[i]);
    if (frac)
        for (int64_t k = 0; k < (int64_t)n * ngpt; k++)
            if (!(frac[k] >= 0) || !isfinite(frac[k]))
                return mimic_error(MIMIC_EVALUE, "planck_source: Planck fraction [%d][%d] is %g; fractions must be "
                                                 "finite and >= 0 (check the gas optics)", (int)(k / ngpt),
                                   (int)(k % ngpt), frac[k]);
    for (int i = 0; i < n; i++) {
        double *s = src + (int64_t)i * ngpt;
        double p = 0;
        for (int g = 0; g < ngpt; g++) {
            if (g == 0 || nu1[g] != nu1[g - 1] || nu2[g] != nu2[g - 1])
                p = nu1[g] == nu2[g] ? mimic_rad_planck(nu1[g], t[i]) : mimic_rad_planck_band(nu1[g], nu2[g], t[i]);
            s[g] = frac ? frac[(int64_t)i * ngpt + g] * p : p;
        }
    }
    return MIMIC_OK;
}
