/* Internal (core/nn): the float32 tanh shared by the inference plan and the
 * compiled training step, so both compute the same activation values. */
#ifndef MIMIC_NN_TANH_VEC_H
#define MIMIC_NN_TANH_VEC_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* c ? p : q on the bits: GCC would otherwise push the arithmetic around a
 * select into the select's arms, where a possibly trapping operation is not
 * speculated (-ftrapping-math) and the loop keeps a branch. */
static inline double select_bits(int c, double p, double q)
{
    uint64_t pb, qb, mk = (uint64_t)0 - (uint64_t)(c != 0);
    memcpy(&pb, &p, sizeof pb);
    memcpy(&qb, &q, sizeof qb);
    pb = (pb & mk) | (qb & ~mk);
    memcpy(&p, &pb, sizeof p);
    return p;
}

/* tanh for the float32 plan, written to vectorise (libm's tanhf is a call
 * per element, ~150x a relu here). In double, exact to ~1e-14 relative,
 * then rounded once to float: at most 1 ulp from tanh (tests/c/test_kernels.c
 * sweeps the floats). |x| < 0.125: the odd Taylor series to x^13; above:
 * 1 - 2/(e^2|x| + 1), e^y = 2^k e^r with |r| <= ln2/2 (Taylor to r^11), |x|
 * clamped at 10 (where every float result is 1.0f already); then x's sign,
 * so -0 stays -0 and tanh(+-inf) = +-1. Both forms are computed for every
 * element and blended (no branch: `omp simd` loops vectorise); a NaN
 * reaches the result through the small form. */
static inline float tanhf_vec(float xf)
{
    double x = xf, a = fabs(x);
    double as = select_bits(a >= 0.125, 0, a), z = as * as; /* NaN stays NaN */
    double small = as + as * z * (-1.0 / 3 + z * (2.0 / 15 + z * (-17.0 / 315 + z * (62.0 / 2835 +
                   z * (-1382.0 / 155925 + z * (21844.0 / 6081075))))));
    double y = 2 * select_bits(a < 10, a, 10);      /* NaN: 20 */
    double kd = y * 0x1.71547652b82fep0 + 0x1.8p52; /* round(y / ln2) in the low bits */
    int64_t kb;
    memcpy(&kb, &kd, sizeof kb);
    kd -= 0x1.8p52;
    double r = (y - kd * 0x1.62e42fefp-1) - kd * 0x1.473de6af278edp-34; /* ln2 = hi + lo, k hi exact */
    double e = 1 + r * (1 + r * (1.0 / 2 + r * (1.0 / 6 + r * (1.0 / 24 + r * (1.0 / 120 + r * (1.0 / 720 +
               r * (1.0 / 5040 + r * (1.0 / 40320 + r * (1.0 / 362880 + r * (1.0 / 3628800 + r * (1.0 / 39916800)))))))))));
    int64_t sb = (kb - (int64_t)0x4338000000000000 + 1023) << 52; /* 2^k, 0 <= k <= 29 */
    double s;
    memcpy(&s, &sb, sizeof s);
    double large = 1 - 2 / (e * s + 1);
    /* a NaN fails both tests: the small form, which holds it */
    return (float)copysign(select_bits(a >= 0.125, large, small), x);
}

#endif
