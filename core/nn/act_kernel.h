/* One activation of one element, instantiated per element type like
 * kernels.h (T, SFX, EXP, EXPM1, LOG1P, TANH defined by the includer): the
 * forward values shared by the inference plan (kernels.h) and the compiled
 * training step (trainstep_kernels.h). No include guard: included once per type. */

/* One element through an activation. GELU uses the tanh form (as nn.GELU);
 * softplus is max(z,0) + log1p(exp(-|z|)) / beta, stable for any z. */
static inline T SFX(act1)(T v, mimic_activation act, T a0, T a1)
{
    switch (act) {
    case MIMIC_ACT_RELU: return v < 0 ? (T)0 : v;
    case MIMIC_ACT_LEAKY_RELU: return v < 0 ? v * a0 : v;
    case MIMIC_ACT_ELU: return v < 0 ? a0 * EXPM1(v) : v;
    case MIMIC_ACT_GELU: {
        const T c = (T)0.7978845608028654; /* sqrt(2/pi) */
        return (T)0.5 * v * ((T)1 + TANH(c * (v + (T)0.044715 * v * v * v)));
    }
    case MIMIC_ACT_TANH: return TANH(v);
    case MIMIC_ACT_SIGMOID: return (T)1 / ((T)1 + EXP(-v));
    case MIMIC_ACT_SOFTPLUS: {
        T z = a0 * v;
        if (z > a1)
            return v;
        T az = z < 0 ? -z : z;
        return ((z > 0 ? z : (T)0) + LOG1P(EXP(-az))) / a0;
    }
    default: return v;
    }
}
