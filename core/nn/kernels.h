/* Row kernels of the inference plan, instantiated once per element type by
 * plan.c: it defines T (float/double), SFX(name) (a suffixed name) and the
 * functions EXP, EXPM1, LOG1P, TANH (libm's, except TANH for float: plan.c's
 * vectorisable tanhf_vec), then includes this file.
 *
 * Every kernel works on `rows` contiguous rows of `n` features and computes
 * each row from that row alone, in an order fixed by n: that is what makes
 * results independent of batch size and threads (deterministic mode relies on
 * it; only the BLAS gemm breaks it). Activations propagate NaN (comparisons
 * are written so that a NaN takes the branch returning the input). */

#include "act_kernel.h"

/* `omp simd`: the build is -O2 without -march by default, where GCC's cost
 * model may leave these loops scalar; they are the whole cost beside the gemm.
 * Vectorising them does not change any result (no reassociation). */
#ifndef SIMD
#define SIMD _Pragma("omp simd")
/* The same loops compiled for AVX-512 and AVX2 too, picked once at load time
 * for the CPU (GCC's function multiversioning): 2-4x wider than the -O2
 * default's SSE2. No FMA is enabled, so every version rounds the same. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define CLONES
#endif
#endif

/* The loop body for each activation, with the switch hoisted out of the
 * loops: relu, leaky relu and tanh (the common cases) then vectorise (tanh
 * only in float32, where TANH is inline; float64 calls libm per element). V(j) is the
 * pre-activation value of column j of row i. */
#define ACT_ROWS(act, a0, a1, rows, n, dst, V)                                                          \
    do {                                                                                               \
        switch (act) {                                                                                 \
        case MIMIC_ACT_IDENTITY:                                                                       \
            for (int64_t i = 0; i < (rows); i++)                                                       \
                SIMD for (int64_t j = 0; j < (n); j++)                                                 \
                    (dst)[i * (n) + j] = V(j);                                                         \
            break;                                                                                     \
        case MIMIC_ACT_RELU:                                                                           \
            for (int64_t i = 0; i < (rows); i++)                                                       \
                SIMD for (int64_t j = 0; j < (n); j++) {                                               \
                    T v_ = V(j);                                                                       \
                    (dst)[i * (n) + j] = v_ < 0 ? (T)0 : v_;                                           \
                }                                                                                      \
            break;                                                                                     \
        case MIMIC_ACT_LEAKY_RELU:                                                                     \
            for (int64_t i = 0; i < (rows); i++)                                                       \
                SIMD for (int64_t j = 0; j < (n); j++) {                                               \
                    T v_ = V(j);                                                                       \
                    (dst)[i * (n) + j] = v_ < 0 ? v_ * (a0) : v_;                                      \
                }                                                                                      \
            break;                                                                                     \
        case MIMIC_ACT_TANH:                                                                           \
            for (int64_t i = 0; i < (rows); i++)                                                       \
                SIMD for (int64_t j = 0; j < (n); j++)                                                 \
                    (dst)[i * (n) + j] = TANH(V(j));                                                   \
            break;                                                                                     \
        default:                                                                                       \
            for (int64_t i = 0; i < (rows); i++)                                                       \
                for (int64_t j = 0; j < (n); j++)                                                      \
                    (dst)[i * (n) + j] = SFX(act1)(V(j), act, a0, a1);                                 \
        }                                                                                              \
    } while (0)

/* dst = act(src + bias) (bias broadcast over rows; NULL: none). src may be dst. */
CLONES static void SFX(bias_act)(int64_t rows, int64_t n, const T *src, T *dst, const T *bias, mimic_activation act,
                          T a0, T a1)
{
    if (bias) {
#define V(j) (src[i * n + (j)] + bias[j])
        ACT_ROWS(act, a0, a1, rows, n, dst, V);
#undef V
    } else {
#define V(j) (src[i * n + (j)])
        ACT_ROWS(act, a0, a1, rows, n, dst, V);
#undef V
    }
}

/* dst = act(a + b): the end of a residual block. */
CLONES static void SFX(add_act)(int64_t rows, int64_t n, const T *a, const T *b, T *dst, mimic_activation act, T a0, T a1)
{
#define V(j) (a[i * n + (j)] + b[i * n + (j)])
    ACT_ROWS(act, a0, a1, rows, n, dst, V);
#undef V
}

/* dst = act(src * scale + shift): batchnorm1d in evaluation form. */
CLONES static void SFX(affine_act)(int64_t rows, int64_t n, const T *src, T *dst, const T *scale, const T *shift,
                            mimic_activation act, T a0, T a1)
{
#define V(j) (src[i * n + (j)] * scale[j] + shift[j])
    ACT_ROWS(act, a0, a1, rows, n, dst, V);
#undef V
}

/* Layer norm over each row (biased variance, as PyTorch), sums in double so
 * float rows of any width keep full precision; then weight, bias, activation. */
static void SFX(layernorm_act)(int64_t rows, int64_t n, const T *src, T *dst, const T *w, const T *b, double eps,
                               mimic_activation act, T a0, T a1)
{
    for (int64_t i = 0; i < rows; i++) {
        const T *x = src + i * n;
        T *y = dst + i * n;
        double s = 0;
        for (int64_t j = 0; j < n; j++)
            s += (double)x[j];
        double mean = s / (double)n, q = 0;
        for (int64_t j = 0; j < n; j++) {
            double d = (double)x[j] - mean;
            q += d * d;
        }
        T inv = (T)(1.0 / sqrt(q / (double)n + eps)), mu = (T)mean;
        for (int64_t j = 0; j < n; j++) {
            T v = (x[j] - mu) * inv;
            if (w)
                v = v * w[j] + b[j];
            y[j] = SFX(act1)(v, act, a0, a1);
        }
    }
}

/* y[rows, nout] = x[rows, k] wt[k, nout] without BLAS, for deterministic mode:
 * each output is 0 + x0 w0 + x1 w1 + ... in input order, whatever the row
 * blocking (4 rows share each weight load) or the output block (16 columns
 * vectorised). No fused multiply-add contraction happens: C11 mode turns it
 * off in GCC, and the pragma does in Clang, so the remainder paths round
 * exactly like the blocked ones. */
#define DET_OB 16
CLONES static void SFX(dense_det)(int64_t rows, int64_t k, int64_t nout, const T *x, const T *wt, T *y)
{
#if defined(__clang__)
#pragma clang fp contract(off)
#endif
    int64_t i = 0;
    for (; i + 4 <= rows; i += 4) {
        const T *x0 = x + i * k, *x1 = x0 + k, *x2 = x1 + k, *x3 = x2 + k;
        for (int64_t o = 0; o < nout; o += DET_OB) {
            int64_t nb = nout - o < DET_OB ? nout - o : DET_OB;
            T a0[DET_OB] = {0}, a1[DET_OB] = {0}, a2[DET_OB] = {0}, a3[DET_OB] = {0};
            if (nb == DET_OB) {
                for (int64_t kk = 0; kk < k; kk++) {
                    const T *w = wt + kk * nout + o;
                    T v0 = x0[kk], v1 = x1[kk], v2 = x2[kk], v3 = x3[kk];
                    for (int j = 0; j < DET_OB; j++) {
                        a0[j] += v0 * w[j];
                        a1[j] += v1 * w[j];
                        a2[j] += v2 * w[j];
                        a3[j] += v3 * w[j];
                    }
                }
            } else {
                for (int64_t kk = 0; kk < k; kk++) {
                    const T *w = wt + kk * nout + o;
                    T v0 = x0[kk], v1 = x1[kk], v2 = x2[kk], v3 = x3[kk];
                    for (int64_t j = 0; j < nb; j++) {
                        a0[j] += v0 * w[j];
                        a1[j] += v1 * w[j];
                        a2[j] += v2 * w[j];
                        a3[j] += v3 * w[j];
                    }
                }
            }
            for (int64_t j = 0; j < nb; j++) {
                y[i * nout + o + j] = a0[j];
                y[(i + 1) * nout + o + j] = a1[j];
                y[(i + 2) * nout + o + j] = a2[j];
                y[(i + 3) * nout + o + j] = a3[j];
            }
        }
    }
    for (; i < rows; i++) {
        const T *x0 = x + i * k;
        for (int64_t o = 0; o < nout; o += DET_OB) {
            int64_t nb = nout - o < DET_OB ? nout - o : DET_OB;
            T a0[DET_OB] = {0};
            for (int64_t kk = 0; kk < k; kk++) {
                const T *w = wt + kk * nout + o;
                T v0 = x0[kk];
                for (int64_t j = 0; j < nb; j++)
                    a0[j] += v0 * w[j];
            }
            for (int64_t j = 0; j < nb; j++)
                y[i * nout + o + j] = a0[j];
        }
    }
}
#undef DET_OB
#undef ACT_ROWS
