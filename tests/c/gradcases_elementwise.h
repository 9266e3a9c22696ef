/* Gradient-check cases of the element-wise ops (included by test_autograd.c). */
#define UNARY_CASE(NAME, OP, GEN)                                                          \
    static void make_##NAME(mimic_tensor **in) { in[0] = GEN; }                            \
    static mimic_tensor *call_##NAME(mimic_tensor *const *in) { return mimic_unary(OP, in[0]); }
UNARY_CASE(neg, MIMIC_NEG, AWAY0(3, 4))
UNARY_CASE(abs, MIMIC_ABS, T2(AWAY0(4, 3)))
UNARY_CASE(exp, MIMIC_EXP, AWAY0(2, 3))
UNARY_CASE(log, MIMIC_LOG, UNIF(0.5, 2, 2, 3))
UNARY_CASE(sqrt, MIMIC_SQRT, UNIF(0.5, 2, 5))
UNARY_CASE(tanh, MIMIC_TANH, T2(AWAY0(3, 2)))
UNARY_CASE(sigmoid, MIMIC_SIGMOID, AWAY0(2, 3))
UNARY_CASE(relu, MIMIC_RELU, AWAY0(4, 3))
UNARY_CASE(sin, MIMIC_SIN, AWAY0(6))
UNARY_CASE(cos, MIMIC_COS, AWAY0(2, 3))
UNARY_CASE(square, MIMIC_SQUARE, AWAY0(3, 2))
UNARY_CASE(sign, MIMIC_SIGN, AWAY0(3))

#define BINARY_CASE(NAME, OP, GA, GB)                                                      \
    static void make_##NAME(mimic_tensor **in) { in[0] = GA, in[1] = GB; }                 \
    static mimic_tensor *call_##NAME(mimic_tensor *const *in) { return mimic_binary(OP, in[0], in[1]); }
/* Broadcasting both ways ([3,1,4] with [2,4]) and a transposed operand. */
BINARY_CASE(add, MIMIC_ADD, AWAY0(3, 1, 4), AWAY0(2, 4))
BINARY_CASE(sub, MIMIC_SUB, T2(AWAY0(4, 3)), AWAY0(4))
BINARY_CASE(mul, MIMIC_MUL, AWAY0(3, 1, 4), T2(AWAY0(4, 2)))
BINARY_CASE(div, MIMIC_DIV, AWAY0(2, 3), AWAY0(1, 3))
BINARY_CASE(pow, MIMIC_POW, UNIF(0.5, 2, 2, 3), AWAY0(3))
BINARY_CASE(maximum, MIMIC_MAXIMUM, AWAY0(3, 4), AWAY0(4))
BINARY_CASE(minimum, MIMIC_MINIMUM, AWAY0(3, 4), T2(AWAY0(4, 3)))

static void make_clamp(mimic_tensor **in) { in[0] = AWAY0(3, 4); }
static mimic_tensor *call_clamp(mimic_tensor *const *in) { return mimic_clamp(in[0], -0.9, 0.8); }
/* Inputs away from 0 (the kink), transposed: both slopes and a strided read. */
static void make_leaky_relu(mimic_tensor **in) { in[0] = T2(AWAY0(4, 3)); }
static mimic_tensor *call_leaky_relu(mimic_tensor *const *in) { return mimic_leaky_relu(in[0], 0.2); }
static void make_where(mimic_tensor **in) { in[0] = AWAY0(3, 4), in[1] = AWAY0(4), in[2] = AWAY0(3, 1); }
static mimic_tensor *call_where(mimic_tensor *const *in)
{
    mimic_tensor *zero = mimic_scalar(0, MIMIC_F64);
    mimic_tensor *c = mimic_compare(MIMIC_GT, in[0], zero); /* the condition: not differentiated */
    mimic_tensor *r = mimic_where(c, in[1], in[2]);
    mimic_tensor_free(c);
    mimic_tensor_free(zero);
    return r;
}

static const gcase cases_elementwise[] = {
    CASE(neg), CASE(abs), CASE(exp), CASE(log), CASE(sqrt), CASE(tanh), CASE(sigmoid), CASE(relu),
    CASE(sin), CASE(cos), CASE(square), CASE(sign),
    CASE(add), CASE(sub), CASE(mul), CASE(div), CASE(pow), CASE(maximum), CASE(minimum),
    CASE(clamp), CASE(leaky_relu), CASE(where), {NULL, NULL, NULL},
};

