/* Counter-based random numbers (Philox4x32-10) and a libm-free normal sampler.
 * This file is compiled with -ffp-contract=off: a fused multiply-add would
 * change the last bits of the sampler on some machines. */
#include "mimic/rng.h"
#include "../autograd/graph.h"

#include <math.h>
#include <string.h>

void mimic_rng_init(mimic_rng *r, uint64_t seed)
{
    r->seed = seed;
    r->counter = 0;
}

void mimic_philox4x32(const uint32_t counter[4], const uint32_t key[2], uint32_t out[4])
{
    uint32_t c0 = counter[0], c1 = counter[1], c2 = counter[2], c3 = counter[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int round = 0; round < 10; round++) {
        uint64_t p0 = (uint64_t)0xD2511F53u * c0, p1 = (uint64_t)0xCD9E8D57u * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0, n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        c1 = (uint32_t)p1;
        c3 = (uint32_t)p0;
        c0 = n0;
        c2 = n2;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    out[0] = c0, out[1] = c1, out[2] = c2, out[3] = c3;
}

static void block(const mimic_rng *r, uint64_t k, uint32_t out[4])
{
    uint64_t c = r->counter + k;
    const uint32_t ctr[4] = {(uint32_t)c, (uint32_t)(c >> 32), 0, 0};
    const uint32_t key[2] = {(uint32_t)r->seed, (uint32_t)(r->seed >> 32)};
    mimic_philox4x32(ctr, key, out);
}

#define TWO_M24 (1.0 / 16777216.0)
#define TWO_M53 (1.0 / 9007199254740992.0)
static double u53(uint32_t lo, uint32_t hi) { return (double)((((uint64_t)hi << 32) | lo) >> 11) * TWO_M53; }

/* --- libm-free log and sin/cos ------------------------------------------------- */
double mimic_det_log(double x)
{
    int e;
    double m = frexp(x, &e); /* exact: m in [0.5, 1) */
    if (m < 0.70710678118654752440) {
        m *= 2;
        e--;
    }
    double s = (m - 1) / (m + 1), s2 = s * s;
    /* log(m) = 2 atanh(s) = 2s (1 + s2/3 + s2^2/5 + ...); |s| < 0.172 */
    double p = 1.0 / 23;
    static const double inv_odd[] = {1.0 / 21, 1.0 / 19, 1.0 / 17, 1.0 / 15, 1.0 / 13, 1.0 / 11,
                                     1.0 / 9,  1.0 / 7,  1.0 / 5,  1.0 / 3,  1.0};
    for (size_t i = 0; i < MIMIC_COUNT_OF(inv_odd); i++)
        p = p * s2 + inv_odd[i];
    const double ln2_hi = 6.93147180369123816490e-01, ln2_lo = 1.90821492927058770002e-10;
    return (double)e * ln2_hi + ((double)e * ln2_lo + 2 * s * p);
}

void mimic_det_sincos2pi(double u, double *sn, double *cs)
{
    double t = u * 4;
    double q = floor(t + 0.5); /* nearest quarter turn */
    double x = (t - q) * 1.57079632679489661923; /* |x| <= pi/4 */
    double x2 = x * x;
    /* Taylor series to x^19 / x^18: error < 1e-19 on |x| <= pi/4. */
    double sp = -1.0 / 121645100408832000.0, cp = -1.0 / 6402373705728000.0;
    static const double sc[] = {1.0 / 355687428096000.0, -1.0 / 1307674368000.0, 1.0 / 6227020800.0,
                                -1.0 / 39916800.0, 1.0 / 362880.0, -1.0 / 5040.0, 1.0 / 120.0, -1.0 / 6.0, 1.0};
    static const double cc[] = {1.0 / 20922789888000.0, -1.0 / 87178291200.0, 1.0 / 479001600.0,
                                -1.0 / 3628800.0, 1.0 / 40320.0, -1.0 / 720.0, 1.0 / 24.0, -1.0 / 2.0, 1.0};
    for (size_t i = 0; i < MIMIC_COUNT_OF(sc); i++) {
        sp = sp * x2 + sc[i];
        cp = cp * x2 + cc[i];
    }
    double s = x * sp, c = cp;
    switch ((int)q & 3) {
    case 0: *sn = s, *cs = c; break;
    case 1: *sn = c, *cs = -s; break;
    case 2: *sn = -s, *cs = -c; break;
    default: *sn = -c, *cs = s; break;
    }
}

/* --- fills ------------------------------------------------------------------------ */
enum { FILL_UNIFORM, FILL_NORMAL };
typedef struct {
    const mimic_rng *r;
    int kind;
    double a, b;
} fill_job;

/* Values for elements [i0, i1) of the fill, written to dst (contiguous). */
static void fill_range(const fill_job *j, mimic_dtype dt, void *dst, int64_t i0, int64_t i1)
{
    uint32_t w[4];
    for (int64_t i = i0; i < i1;) {
        double v[4];
        int per, k;
        if (j->kind == FILL_NORMAL) {
            per = 2;
            block(j->r, (uint64_t)(i / 2), w);
            double u1 = u53(w[0], w[1]) + TWO_M53; /* (0, 1]: log stays finite */
            double rad = sqrt(-2 * mimic_det_log(u1)), s, c;
            mimic_det_sincos2pi(u53(w[2], w[3]), &s, &c);
            v[0] = j->a + j->b * rad * c;
            v[1] = j->a + j->b * rad * s;
        } else if (dt == MIMIC_F32) {
            per = 4;
            block(j->r, (uint64_t)(i / 4), w);
            for (int q = 0; q < 4; q++)
                v[q] = j->a + (j->b - j->a) * ((double)(w[q] >> 8) * TWO_M24);
        } else {
            per = 2;
            block(j->r, (uint64_t)(i / 2), w);
            v[0] = j->a + (j->b - j->a) * u53(w[0], w[1]);
            v[1] = j->a + (j->b - j->a) * u53(w[2], w[3]);
        }
        for (k = (int)(i % per); k < per && i < i1; k++, i++) {
            if (dt == MIMIC_F32) {
                float f = (float)v[k];
                if (j->kind == FILL_UNIFORM && f >= (float)j->b && j->b > j->a)
                    f = nextafterf((float)j->b, (float)j->a); /* keep [lo, hi) after rounding */
                ((float *)dst)[i - i0] = f;
            } else {
                double d = v[k];
                if (j->kind == FILL_UNIFORM && d >= j->b && j->b > j->a)
                    d = nextafter(j->b, j->a);
                ((double *)dst)[i - i0] = d;
            }
        }
    }
}

static int fill(mimic_rng *r, mimic_tensor *t, int kind, double a, double b, const char *fn)
{
    if (t->dtype != MIMIC_F32 && t->dtype != MIMIC_F64)
        return mimic_error(MIMIC_EDTYPE, "%s: needs a float32 or float64 tensor, got %s", fn,
                           mimic_dtype_name(t->dtype));
    if (!isfinite(a) || !isfinite(b))
        return mimic_error(MIMIC_EARG, "%s: parameters must be finite (got %g, %g)", fn, a, b);
    int rc = mimic_ag_inplace(fn, t);
    if (rc)
        return rc;
    int64_t n = mimic_numel(t);
    mimic_tensor *dst = mimic_is_contiguous(t) ? t : mimic_empty(t->ndim, t->shape, t->dtype);
    if (!dst)
        return mimic_errcode();
    fill_job job = {r, kind, a, b};
    size_t es = mimic_dtype_size(t->dtype);
    char *base = mimic_data(dst);
    const int64_t chunk = 8192; /* a multiple of 4: chunks start on block boundaries */
    int64_t nchunk = (n + chunk - 1) / chunk;
#pragma omp parallel for schedule(static) if (n >= MIMIC_PARALLEL_MIN)
    for (int64_t c = 0; c < nchunk; c++) {
        int64_t i0 = c * chunk, i1 = i0 + chunk < n ? i0 + chunk : n;
        fill_range(&job, t->dtype, base + (size_t)i0 * es, i0, i1);
    }
    int per = kind == FILL_UNIFORM && t->dtype == MIMIC_F32 ? 4 : 2;
    r->counter += (uint64_t)((n + per - 1) / per);
    if (dst != t) {
        rc = mimic_copy(t, dst);
        mimic_tensor_free(dst);
    }
    return rc;
}

int mimic_rng_uniform(mimic_rng *r, mimic_tensor *t, double lo, double hi)
{
    if (hi < lo)
        return mimic_error(MIMIC_EARG, "uniform: upper bound %g is below lower bound %g", hi, lo);
    return fill(r, t, FILL_UNIFORM, lo, hi, "uniform");
}

int mimic_rng_normal(mimic_rng *r, mimic_tensor *t, double mean, double std)
{
    if (std < 0)
        return mimic_error(MIMIC_EARG, "normal: standard deviation %g is negative", std);
    return fill(r, t, FILL_NORMAL, mean, std, "normal");
}

/* Sequential 64-bit draws for algorithms that consume a variable amount. */
static uint64_t next64(mimic_rng *r, uint32_t w[4], int *used)
{
    if (*used >= 4) {
        block(r, 0, w);
        r->counter++;
        *used = 0;
    }
    uint64_t x = ((uint64_t)w[*used + 1] << 32) | w[*used];
    *used += 2;
    return x;
}

mimic_tensor *mimic_rng_permutation(mimic_rng *r, int64_t n)
{
    mimic_tensor *t = mimic_empty(1, &n, MIMIC_I64);
    if (!t)
        return NULL;
    int64_t *p = mimic_data(t);
    for (int64_t i = 0; i < n; i++)
        p[i] = i;
    uint32_t w[4];
    int used = 4;
    for (int64_t i = n - 1; i > 0; i--) {
        /* Lemire's unbiased bounded draw in [0, i]. */
        uint64_t range = (uint64_t)i + 1, x = next64(r, w, &used);
        unsigned __int128 m = (unsigned __int128)x * range;
        if ((uint64_t)m < range) {
            uint64_t thresh = -range % range;
            while ((uint64_t)m < thresh) {
                x = next64(r, w, &used);
                m = (unsigned __int128)x * range;
            }
        }
        int64_t j = (int64_t)(m >> 64), tmp = p[i];
        p[i] = p[j];
        p[j] = tmp;
    }
    return t;
}
