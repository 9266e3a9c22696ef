/* Spectra and field diagnostics of periodic fields (mimic/spectra.h).
 * FFTW lives only here, in libmimic_solvers: it is GPL and libmimic must not
 * depend on it (docs/architecture.md, "Layering"). */
#include "mimic/spectra.h"

#include <fftw3.h>
#include <limits.h>
#include <math.h>
#include <string.h>

/* Validates ndim/shape and returns prod(shape) (0 after recording an error). */
static int64_t field_size(const char *fn, int ndim, const int64_t *shape)
{
    if (ndim < 1 || ndim > 3) {
        mimic_error(MIMIC_EARG, "%s: ndim is %d, expected 1, 2 or 3", fn, ndim);
        return 0;
    }
    if (!shape) {
        mimic_error(MIMIC_EARG, "%s: shape is NULL", fn);
        return 0;
    }
    int64_t n = 1;
    for (int d = 0; d < ndim; d++) {
        /* FFTW takes int sizes; the total must also fit its int counts. */
        if (shape[d] < 1 || shape[d] > INT_MAX || n > INT_MAX / shape[d]) {
            mimic_error(MIMIC_EARG, "%s: size %lld of dim %d is out of range (1..%d, total below %d)", fn,
                        (long long)shape[d], d, INT_MAX, INT_MAX);
            return 0;
        }
        n *= shape[d];
    }
    return n;
}

/* Signed integer wavenumber of DFT index i along a dim of size n:
 * 0..n/2 then -(n-1)/2..-1 (the Nyquist index n/2 of an even n is +n/2; its
 * |k| is the same either way). */
static inline int64_t wavenumber(int64_t i, int64_t n) { return i <= n / 2 ? i : i - n; }

int mimic_spectrum_nshells(int ndim, const int64_t *shape)
{
    if (field_size("mimic_spectrum_nshells", ndim, shape) == 0)
        return -1;
    double k2 = 0;
    for (int d = 0; d < ndim; d++) {
        double kd = (double)(shape[d] / 2);
        k2 += kd * kd;
    }
    return (int)floor(sqrt(k2) + 0.5) + 1;
}

int mimic_spectrum(int ndim, const int64_t *shape, int ncomp, const double *f, int nshells, double *power,
                   int64_t *count)
{
    const char *fn = "mimic_spectrum";
    int64_t N = field_size(fn, ndim, shape);
    if (N == 0)
        return mimic_errcode();
    if (ncomp < 1 || !f || !power)
        return mimic_error(MIMIC_EARG, "%s: ncomp is %d (>= 1 needed) or f/power is NULL", fn, ncomp);
    int ns = mimic_spectrum_nshells(ndim, shape);
    if (nshells != ns)
        return mimic_error(MIMIC_EARG, "%s: nshells is %d, expected %d (mimic_spectrum_nshells)", fn, nshells, ns);
    for (int64_t i = 0; i < N * ncomp; i++)
        if (!isfinite(f[i]))
            return mimic_error(MIMIC_EVALUE, "%s: the field has %s at component %lld, element %lld (0-based)", fn,
                               isnan(f[i]) ? "NaN" : "an infinity", (long long)(i / N), (long long)(i % N));

    int n[3];
    for (int d = 0; d < ndim; d++)
        n[d] = (int)shape[d];
    int64_t nl = shape[ndim - 1], nh = nl / 2 + 1; /* r2c keeps half the last dim */
    int64_t outer = N / nl;
    /* A copy of each component is transformed: multi-dimensional r2c
     * transforms may overwrite their input, and f is the caller's. */
    double *in = mimic_malloc((size_t)N * sizeof *in);
    fftw_complex *out = mimic_malloc((size_t)(outer * nh) * sizeof *out);
    if (!in || !out) {
        mimic_free(in);
        mimic_free(out);
        return mimic_error(MIMIC_ENOMEM, "%s: out of memory for a field of %lld values", fn, (long long)N);
    }
    /* FFTW_ESTIMATE: no timing runs, so the plan (and the result, to the last
     * bit) does not depend on machine load, and planning does not touch the
     * arrays. The plan is made for these exact (possibly unaligned) arrays. */
    fftw_plan plan = fftw_plan_dft_r2c(ndim, n, in, out, FFTW_ESTIMATE);
    if (!plan) {
        mimic_free(in);
        mimic_free(out);
        return mimic_error(MIMIC_EINTERNAL, "%s: FFTW could not plan a transform of this shape", fn);
    }
    for (int s = 0; s < nshells; s++)
        power[s] = 0;
    if (count)
        for (int s = 0; s < nshells; s++)
            count[s] = 0;
    double norm = 1.0 / ((double)N * (double)N);
    for (int c = 0; c < ncomp; c++) {
        memcpy(in, f + (size_t)c * (size_t)N, (size_t)N * sizeof *in);
        fftw_execute(plan);
        for (int64_t o = 0; o < outer; o++) {
            /* The wavenumbers of the leading dims from the flat outer index. */
            double k2o = 0;
            int64_t rest = o;
            for (int d = ndim - 2; d >= 0; d--) {
                int64_t i = rest % shape[d];
                rest /= shape[d];
                double kd = (double)wavenumber(i, shape[d]);
                k2o += kd * kd;
            }
            for (int64_t j = 0; j < nh; j++) {
                double kl = (double)j, k = sqrt(k2o + kl * kl);
                int s = (int)floor(k + 0.5);
                /* Each stored j in 1..(nl-1)/2 stands for +j and its conjugate
                 * -j (same |k|, same |F|): weight 2. j = 0 and the Nyquist
                 * j = nl/2 of an even nl have no partner. */
                int w = (j == 0 || (nl % 2 == 0 && j == nl / 2)) ? 1 : 2;
                const double *z = out[o * nh + j];
                power[s] += w * (z[0] * z[0] + z[1] * z[1]) * norm;
                if (count && c == 0)
                    count[s] += w;
            }
        }
    }
    fftw_destroy_plan(plan);
    mimic_free(in);
    mimic_free(out);
    return MIMIC_OK;
}

int mimic_spectrum_error(int n, const double *pred, const double *ref, int kmin, int kmax,
                         mimic_spectrum_err *out)
{
    const char *fn = "mimic_spectrum_error";
    if (n < 1 || !pred || !ref || !out)
        return mimic_error(MIMIC_EARG, "%s: n is %d (>= 1 needed) or an array is NULL", fn, n);
    if (kmin < 0)
        kmin = 0;
    if (kmax > n - 1)
        kmax = n - 1;
    if (kmin > kmax)
        return mimic_error(MIMIC_EARG, "%s: empty band %d..%d for %d shells", fn, kmin, kmax, n);
    for (int s = 0; s < n; s++)
        if (!isfinite(pred[s]) || !isfinite(ref[s]) || pred[s] < 0 || ref[s] < 0)
            return mimic_error(MIMIC_EVALUE, "%s: shell %d has pred %g, ref %g; spectra must be finite and >= 0",
                               fn, s, pred[s], ref[s]);
    int m = 0;
    double maxr = 0, sumr = 0, sumlog = 0, sp = 0, sr = 0;
    for (int s = kmin; s <= kmax; s++) {
        sp += pred[s];
        sr += ref[s];
        if (ref[s] <= 0)
            continue; /* no reference energy: no relative error defined */
        double r = fabs(pred[s] - ref[s]) / ref[s];
        double l = pred[s] > 0 ? log10(pred[s] / ref[s]) : INFINITY;
        maxr = r > maxr ? r : maxr;
        sumr += r;
        sumlog += l * l;
        m++;
    }
    out->shells = m;
    out->max_rel = m ? maxr : NAN;
    out->mean_rel = m ? sumr / m : NAN;
    out->rms_log10 = m ? sqrt(sumlog / m) : NAN;
    out->band_rel = sr > 0 ? fabs(sp - sr) / sr : NAN;
    return MIMIC_OK;
}

int mimic_divergence(int ndim, const int64_t *shape, const double *u, const double *h, double *div)
{
    const char *fn = "mimic_divergence";
    int64_t N = field_size(fn, ndim, shape);
    if (N == 0)
        return mimic_errcode();
    if (!u || !div)
        return mimic_error(MIMIC_EARG, "%s: u or div is NULL", fn);
    for (int d = 0; d < ndim; d++)
        if (h && !(h[d] > 0 && isfinite(h[d])))
            return mimic_error(MIMIC_EARG, "%s: spacing h[%d] is %g, expected > 0", fn, d, h[d]);
    for (int64_t i = 0; i < N; i++)
        div[i] = 0;
    int64_t stride = N; /* elements per step along dim d (row-major) */
    for (int d = 0; d < ndim; d++) {
        int64_t n = shape[d];
        stride /= n;
        double inv = 1.0 / (2.0 * (h ? h[d] : 1.0));
        const double *ud = u + (size_t)d * (size_t)N;
        for (int64_t i = 0; i < N; i++) {
            int64_t id = (i / stride) % n; /* index along dim d */
            int64_t up = id + 1 == n ? i - (n - 1) * stride : i + stride;
            int64_t dn = id == 0 ? i + (n - 1) * stride : i - stride;
            div[i] += (ud[up] - ud[dn]) * inv;
        }
    }
    return MIMIC_OK;
}
