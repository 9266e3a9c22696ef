/* Row kernels of the compiled training step, instantiated once per element
 * type by trainstep.c: it defines T (float/double), SFX(name), EXP, EXPM1,
 * LOG1P, TANH, GEMM (cblas_sgemm/dgemm), then includes this file.
 *
 * Matrices are row-major [rows, n]. Forward values are core/nn/kernels.h's
 * (act_kernel.h's act1, included before this file), derivatives the formulas of the autograd ops the
 * Lua layers are made of, so the two paths agree to rounding. */

#ifndef TS_SIMD
#define TS_SIMD _Pragma("omp simd")
/* As in kernels.h: AVX-512/AVX2 clones picked at load time, no FMA, so every
 * clone rounds alike. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define TS_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define TS_CLONES
#endif

#endif


/* d act / d z at pre-activation z with output a. At z == 0: relu 0, leaky
 * relu its slope, elu alpha (the Lua layers' conventions, PyTorch's). */
static inline T SFX(ts_dact)(T z, T a, mimic_activation act, T a0, T a1)
{
    switch (act) {
    case MIMIC_ACT_RELU: return z > 0 ? (T)1 : (T)0;
    case MIMIC_ACT_LEAKY_RELU: return z > 0 ? (T)1 : a0;
    case MIMIC_ACT_ELU: return z > 0 ? (T)1 : a0 * EXP(z);
    case MIMIC_ACT_GELU: {
        const T c = (T)0.7978845608028654, k = (T)0.044715;
        T t = TANH(c * (z + k * z * z * z));
        return (T)0.5 * ((T)1 + t) + (T)0.5 * z * ((T)1 - t * t) * c * ((T)1 + (T)3 * k * z * z);
    }
    case MIMIC_ACT_TANH: return (T)1 - a * a;
    case MIMIC_ACT_SIGMOID: return a * ((T)1 - a);
    case MIMIC_ACT_SOFTPLUS: {
        T bz = a0 * z;
        return bz > a1 ? (T)1 : (T)1 / ((T)1 + EXP(-bz));
    }
    default: return (T)1;
    }
}

/* z += bias (NULL: none), then a = act(z); a may be z (identity only). */
TS_CLONES static void SFX(ts_bias_act)(int64_t rows, int64_t n, T *z, T *a, const T *bias, mimic_activation act,
                                       T a0, T a1)
{
    if (bias)
        for (int64_t i = 0; i < rows; i++)
            TS_SIMD for (int64_t j = 0; j < n; j++) z[i * n + j] += bias[j];
    if (act == MIMIC_ACT_IDENTITY)
        return;
    int64_t m = rows * n;
    if (act == MIMIC_ACT_RELU) {
        TS_SIMD for (int64_t i = 0; i < m; i++) a[i] = z[i] < 0 ? (T)0 : z[i];
    } else if (act == MIMIC_ACT_LEAKY_RELU) {
        TS_SIMD for (int64_t i = 0; i < m; i++) a[i] = z[i] < 0 ? z[i] * a0 : z[i];
    } else {
        for (int64_t i = 0; i < m; i++)
            a[i] = SFX(act1)(z[i], act, a0, a1);
    }
}

/* g *= act'(z) in place (identity: unchanged), and acc[j] = the sum of column
 * j of the result (the bias gradient), in double; acc NULL: no sums. */
TS_CLONES static void SFX(ts_dact_colsum)(int64_t rows, int64_t n, T *g, const T *z, const T *a, mimic_activation act,
                                          T a0, T a1, double *acc)
{
    if (acc)
        for (int64_t j = 0; j < n; j++)
            acc[j] = 0;
    for (int64_t i = 0; i < rows; i++) {
        T *gi = g + i * n;
        const T *zi = z + i * n, *ai = a + i * n;
        switch (act) {
        case MIMIC_ACT_IDENTITY: break;
        case MIMIC_ACT_RELU:
            TS_SIMD for (int64_t j = 0; j < n; j++) gi[j] = zi[j] > 0 ? gi[j] : (T)0;
            break;
        case MIMIC_ACT_LEAKY_RELU:
            TS_SIMD for (int64_t j = 0; j < n; j++) gi[j] = zi[j] > 0 ? gi[j] : gi[j] * a0;
            break;
        default:
            for (int64_t j = 0; j < n; j++)
                gi[j] *= SFX(ts_dact)(zi[j], ai[j], act, a0, a1);
        }
        if (acc)
            TS_SIMD for (int64_t j = 0; j < n; j++) acc[j] += (double)gi[j];
    }
}

/* The loss summed over the m elements of p against y (in double), and its
 * gradient times `scale` into g. */
TS_CLONES static double SFX(ts_loss)(int64_t m, const T *p, const T *y, T *g, mimic_trainstep_loss kind, T delta,
                                     T scale)
{
    double s = 0;
    switch (kind) {
    case MIMIC_LOSS_MSE: {
        const T two = (T)2 * scale;
        _Pragma("omp simd reduction(+ : s)") for (int64_t i = 0; i < m; i++) {
            T d = p[i] - y[i];
            s += (double)d * (double)d;
            g[i] = d * two;
        }
        break;
    }
    case MIMIC_LOSS_L1:
        for (int64_t i = 0; i < m; i++) {
            T d = p[i] - y[i];
            s += d < 0 ? -(double)d : (double)d;
            g[i] = d > 0 ? scale : d < 0 ? -scale : (T)0; /* sign(d); a NaN passes through */
            if (d != d)
                g[i] = d;
        }
        break;
    case MIMIC_LOSS_HUBER:
        for (int64_t i = 0; i < m; i++) {
            T d = p[i] - y[i], ad = d < 0 ? -d : d;
            if (ad <= delta) {
                s += 0.5 * (double)d * (double)d;
                g[i] = d * scale;
            } else {
                s += (double)delta * ((double)ad - 0.5 * (double)delta);
                g[i] = (d > 0 ? delta : -delta) * scale;
                if (d != d)
                    g[i] = d;
            }
        }
        break;
    }
    return s;
}

/* SGD over n elements (mimic/trainstep.h), in the order of mimic.optim's ops. */
TS_CLONES static void SFX(ts_sgd)(int64_t n, T *p, const T *g, T *buf, bool init, T lr, T wd, T mom, T damp1,
                                  bool nesterov)
{
    for (int64_t i = 0; i < n; i++) {
        T gi = g[i];
        if (wd != 0)
            gi = p[i] * wd + gi;
        if (buf) {
            T b = init ? gi : buf[i] * mom + (damp1 != 1 ? gi * damp1 : gi);
            buf[i] = b;
            gi = nesterov ? b * mom + gi : b;
        }
        p[i] = p[i] - gi * lr;
    }
}

/* Adam/AdamW over n elements: the arithmetic of mimic_adam_update
 * (core/optim/flat.c), the constants rounded to T by the caller, each
 * operation one rounding in T in the same order (no FMA in any clone), so the
 * values are the same. (GCC vectorises these loops only with -fno-math-errno,
 * which the build does not set: sqrtf keeps a libm call for errno's sake; so
 * trainstep.c runs the common float32 case through explicit AVX2 code.) */
#define TS_ADAM_HEAD                                                                                   \
    T gi = G[i], pi = P[i];                                                                            \
    pi = decoupled ? pi * keep : pi;                                                                   \
    gi = l2 ? pi * wd + gi : gi;                                                                       \
    T mi = M[i] * b1 + gi * c1;                                                                        \
    T vi = V[i] * b2 + (gi * c2) * gi;                                                                 \
    M[i] = mi;                                                                                         \
    V[i] = vi;
TS_CLONES static void SFX(ts_adam)(int64_t n, T *P, const T *G, T *M, T *V, T *VM, bool decoupled,
                                               bool l2, T b1, T c1, T b2, T c2, T wd, T keep, T nss, T b2s, T ep)
{
    if (VM) {
        TS_SIMD for (int64_t i = 0; i < n; i++) {
            TS_ADAM_HEAD
            T old = VM[i];
            T vh = ((old != old) | (old > vi)) ? old : vi; /* maximum_: NaN wins */
            VM[i] = vh;
            P[i] = pi + (mi * nss) / (SQRT(vh) / b2s + ep);
        }
    } else {
        TS_SIMD for (int64_t i = 0; i < n; i++) {
            TS_ADAM_HEAD
            P[i] = pi + (mi * nss) / (SQRT(vi) / b2s + ep);
        }
    }
}
#undef TS_ADAM_HEAD

/* g += g2 over n elements (the second batch part's gradient), before SGD. */
TS_CLONES static void SFX(ts_add)(int64_t n, T *g, const T *g2)
{
    TS_SIMD for (int64_t i = 0; i < n; i++) g[i] = g[i] + g2[i];
}
