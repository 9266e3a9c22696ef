/* Spectra and divergence of periodic fields (core/solvers/spectra/spectra.c). */
#include "check.h"
#include "mimic/spectra.h"

#include <stdlib.h>

static const double PI = 3.14159265358979323846;

/* f = a cos(2 pi (k . x) / n) + mean on a grid of the given shape. */
static double *mode_field(int ndim, const int64_t *shape, const int *k, double a, double mean)
{
    int64_t N = 1;
    for (int d = 0; d < ndim; d++)
        N *= shape[d];
    double *f = malloc((size_t)N * sizeof *f);
    for (int64_t i = 0; i < N; i++) {
        int64_t rest = i;
        double ph = 0;
        for (int d = ndim - 1; d >= 0; d--) {
            ph += 2 * PI * k[d] * (double)(rest % shape[d]) / (double)shape[d];
            rest /= shape[d];
        }
        f[i] = a * cos(ph) + mean;
    }
    return f;
}

static double mean_square(const double *f, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++)
        s += f[i] * f[i];
    return s / (double)n;
}

/* A single cosine mode of amplitude a lands in shell round(|k|) with power
 * a^2 / 2 (its mean square); the mean lands in shell 0 as mean^2. */
TEST(single_mode_2d)
{
    int64_t shape[2] = {32, 24};
    int k[2] = {3, 4}; /* |k| = 5 */
    double *f = mode_field(2, shape, k, 2.0, 0.5);
    int ns = mimic_spectrum_nshells(2, shape);
    CHECK(ns == 21); /* round(sqrt(16^2 + 12^2)) + 1 = 20 + 1 */
    double *p = calloc((size_t)ns, sizeof *p);
    int64_t *c = calloc((size_t)ns, sizeof *c);
    CHECK_OK(mimic_spectrum(2, shape, 1, f, ns, p, c));
    CHECK_NEAR(p[5], 2.0, 1e-12);
    CHECK_NEAR(p[0], 0.25, 1e-12);
    for (int s = 0; s < ns; s++)
        if (s != 0 && s != 5)
            CHECK_NEAR(p[s], 0, 1e-12);
    int64_t total = 0;
    for (int s = 0; s < ns; s++)
        total += c[s];
    CHECK(total == 32 * 24); /* every DFT mode counted once */
    CHECK(c[0] == 1);
    free(f), free(p), free(c);
}

TEST(single_mode_3d_odd)
{
    int64_t shape[3] = {9, 16, 15}; /* odd sizes: FFTW handles any size */
    int k[3] = {2, 0, 7};           /* |k| = 7.28 -> shell 7 */
    double *f = mode_field(3, shape, k, 1.0, 0.0);
    int ns = mimic_spectrum_nshells(3, shape);
    double *p = calloc((size_t)ns, sizeof *p);
    CHECK_OK(mimic_spectrum(3, shape, 1, f, ns, p, NULL));
    CHECK_NEAR(p[7], 0.5, 1e-12);
    double sum = 0;
    for (int s = 0; s < ns; s++)
        sum += p[s];
    CHECK_NEAR(sum, 0.5, 1e-12);
    free(f), free(p);
}

/* Nyquist mode of an even last dim: cos(pi i) has mean square 1. */
TEST(nyquist)
{
    int64_t shape[1] = {8};
    double f[8];
    for (int i = 0; i < 8; i++)
        f[i] = (i % 2) ? -1.0 : 1.0;
    int ns = mimic_spectrum_nshells(1, shape);
    CHECK(ns == 5);
    double p[5];
    CHECK_OK(mimic_spectrum(1, shape, 1, f, ns, p, NULL));
    CHECK_NEAR(p[4], 1.0, 1e-14);
    CHECK_NEAR(p[0] + p[1] + p[2] + p[3], 0, 1e-14);
}

/* Parseval: the shells sum to the mean square of random 2-D and 3-D fields,
 * summed over components. */
TEST(parseval)
{
    int64_t s2[2] = {17, 30}, s3[3] = {8, 10, 7};
    int64_t n2 = 17 * 30, n3 = 8 * 10 * 7;
    double *f = malloc((size_t)(2 * n3 > 2 * n2 ? 2 * n3 : 2 * n2) * sizeof *f);
    srand(7);
    for (int64_t i = 0; i < 2 * n2; i++)
        f[i] = rand() / (double)RAND_MAX - 0.3;
    int ns = mimic_spectrum_nshells(2, s2);
    double *p = calloc((size_t)ns, sizeof *p);
    CHECK_OK(mimic_spectrum(2, s2, 2, f, ns, p, NULL));
    double sum = 0;
    for (int s = 0; s < ns; s++)
        sum += p[s];
    CHECK_NEAR(sum, mean_square(f, n2) + mean_square(f + n2, n2), 1e-12);
    free(p);
    for (int64_t i = 0; i < n3; i++)
        f[i] = rand() / (double)RAND_MAX;
    ns = mimic_spectrum_nshells(3, s3);
    p = calloc((size_t)ns, sizeof *p);
    CHECK_OK(mimic_spectrum(3, s3, 1, f, ns, p, NULL));
    sum = 0;
    for (int s = 0; s < ns; s++)
        sum += p[s];
    CHECK_NEAR(sum, mean_square(f, n3), 1e-12);
    free(p), free(f);
}

TEST(spectrum_errors)
{
    int64_t shape[2] = {4, 4};
    double f[16] = {0}, p[4];
    CHECK_ERR(mimic_spectrum(4, shape, 1, f, 4, p, NULL), MIMIC_EARG, "ndim is 4");
    CHECK_ERR(mimic_spectrum(2, shape, 1, f, 3, p, NULL), MIMIC_EARG, "nshells is 3, expected 4");
    int64_t bad[2] = {4, 0};
    CHECK_ERR(mimic_spectrum(2, bad, 1, f, 4, p, NULL), MIMIC_EARG, "size 0 of dim 1");
    f[5] = NAN;
    CHECK_ERR(mimic_spectrum(2, shape, 1, f, 4, p, NULL), MIMIC_EVALUE, "NaN at component 0, element 5");
}

TEST(spectrum_error_band)
{
    double ref[5] = {1, 1, 0.5, 0.25, 0}, pred[5] = {9, 1.1, 0.5, 0.2, 0.1};
    mimic_spectrum_err e;
    CHECK_OK(mimic_spectrum_error(5, pred, ref, 1, 10, &e)); /* kmax clipped to 4 */
    CHECK(e.shells == 3);                                     /* shell 4 has no reference energy */
    CHECK_NEAR(e.max_rel, 0.2, 1e-12);
    CHECK_NEAR(e.mean_rel, (0.1 + 0 + 0.2) / 3, 1e-12);
    CHECK_NEAR(e.rms_log10, sqrt((pow(log10(1.1), 2) + pow(log10(0.8), 2)) / 3), 1e-12);
    CHECK_NEAR(e.band_rel, fabs(1.9 - 1.75) / 1.75, 1e-12);
    CHECK_ERR(mimic_spectrum_error(5, pred, ref, 3, 2, &e), MIMIC_EARG, "empty band");
    pred[0] = -1;
    CHECK_ERR(mimic_spectrum_error(5, pred, ref, 0, 4, &e), MIMIC_EVALUE, "shell 0");
}

/* u = (cos(2 pi y/n), cos(2 pi x/n)) is divergence-free; u = (sin(2 pi x/n), 0)
 * has the central-difference divergence cos(2 pi x/n) sin(2 pi h/L)/h. */
TEST(divergence_2d)
{
    int64_t shape[2] = {16, 12};
    int64_t N = 16 * 12;
    double *u = malloc((size_t)(2 * N) * sizeof *u), *div = malloc((size_t)N * sizeof *div);
    for (int i = 0; i < 16; i++)
        for (int j = 0; j < 12; j++) {
            u[i * 12 + j] = cos(2 * PI * j / 12);
            u[N + i * 12 + j] = cos(2 * PI * i / 16);
        }
    CHECK_OK(mimic_divergence(2, shape, u, NULL, div));
    double mx = 0;
    for (int64_t i = 0; i < N; i++)
        mx = fmax(mx, fabs(div[i]));
    CHECK_NEAR(mx, 0, 1e-13);
    double h[2] = {1.0 / 16, 1.0 / 12}; /* unit domain */
    for (int i = 0; i < 16; i++)
        for (int j = 0; j < 12; j++) {
            u[i * 12 + j] = sin(2 * PI * i / 16);
            u[N + i * 12 + j] = 0;
        }
    CHECK_OK(mimic_divergence(2, shape, u, h, div));
    double damp = sin(2 * PI / 16) / (1.0 / 16);
    for (int i = 0; i < 16; i++)
        CHECK_NEAR(div[i * 12 + 5], cos(2 * PI * i / 16) * damp, 1e-12);
    h[1] = 0;
    CHECK_ERR(mimic_divergence(2, shape, u, h, div), MIMIC_EARG, "h[1]");
    free(u), free(div);
}

TEST(divergence_3d)
{
    int64_t shape[3] = {6, 5, 7};
    int64_t N = 6 * 5 * 7;
    double *u = malloc((size_t)(3 * N) * sizeof *u), *div = malloc((size_t)N * sizeof *div);
    /* u = (x, 0, 0) discretised periodically: interior points have div 1. */
    for (int64_t i = 0; i < 3 * N; i++)
        u[i] = i < N ? (double)(i / 35) : 0.0;
    CHECK_OK(mimic_divergence(3, shape, u, NULL, div));
    CHECK_NEAR(div[2 * 35 + 3 * 7 + 4], 1.0, 1e-14);
    CHECK_NEAR(div[0], (1.0 - 5.0) / 2, 1e-14); /* wraps at the edge */
    free(u), free(div);
}

int main(void)
{
    RUN(single_mode_2d);
    RUN(single_mode_3d_odd);
    RUN(nyquist);
    RUN(parseval);
    RUN(spectrum_errors);
    RUN(spectrum_error_band);
    RUN(divergence_2d);
    RUN(divergence_3d);
    return CHECK_DONE();
}
