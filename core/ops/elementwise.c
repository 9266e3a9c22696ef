/* Element-wise math, comparisons, clamp and where, with NumPy broadcasting.
 *
 * Each op's formula is written once (the X-macro lists below) and expanded
 * into one kernel per element type. A kernel gets one row from mimic_iter_run
 * and picks a plain loop for the common layouts (all contiguous, or one
 * operand a broadcast scalar), which `omp simd` lets GCC vectorise at -O2
 * (its default cost model will not version loops for aliasing), else a
 * strided loop. Operands whose dtype differs from the compute type go through
 * small stack buffers (chunk_row), so no call allocates beyond its result. */
#include "../autograd/expr.h"

#include <string.h>
#include <tgmath.h> /* exp(x) is expf for a float x: one formula serves both types */

#define SZ(T) ((int64_t)sizeof(T))
#define SIMD _Pragma("omp simd")
/* clang reports an `omp simd` loop that calls libm (exp, pow, ...) as a failed
 * vectorisation; those loops are correct as scalar code. */
#if defined(__clang__)
#pragma clang diagnostic ignored "-Wpass-failed"
#endif

typedef struct ew_ctx ew_ctx;
/* p[0]/s[0]: output; p[1..nin]: inputs; strides in bytes. */
typedef void (*ew_kernel)(const ew_ctx *e, int64_t n, char **p, const int64_t *s);
struct ew_ctx {
    ew_kernel k;
    int nin;
    mimic_dtype rt;      /* what the kernel writes */
    mimic_dtype out_dt;  /* what the output holds */
    mimic_dtype in_dt[3];
    mimic_dtype want[3]; /* what the kernel reads */
    double lo, hi;       /* clamp bounds */
};

/* --- loops ------------------------------------------------------------------ */
#define UN_LOOPS(TO, TI, EXPR)                                                        \
    if (s[0] == SZ(TO) && s[1] == SZ(TI)) {                                          \
        TO *o_ = (TO *)p[0];                                                         \
        const TI *a_ = (const TI *)p[1];                                             \
        SIMD for (int64_t i = 0; i < n; i++) {                                       \
            TI x = a_[i];                                                            \
            o_[i] = (TO)(EXPR);                                                      \
        }                                                                            \
    } else {                                                                         \
        char *o_ = p[0];                                                             \
        const char *a_ = p[1];                                                       \
        for (int64_t i = 0; i < n; i++, o_ += s[0], a_ += s[1]) {                    \
            TI x = *(const TI *)a_;                                                  \
            *(TO *)o_ = (TO)(EXPR);                                                  \
        }                                                                            \
    }

#define BIN_LOOPS(TO, TI, EXPR)                                                       \
    if (s[0] == SZ(TO) && s[1] == SZ(TI) && s[2] == SZ(TI)) {                        \
        TO *o_ = (TO *)p[0];                                                         \
        const TI *a_ = (const TI *)p[1], *b_ = (const TI *)p[2];                     \
        SIMD for (int64_t i = 0; i < n; i++) {                                       \
            TI x = a_[i], y = b_[i];                                                 \
            o_[i] = (TO)(EXPR);                                                      \
        }                                                                            \
    } else if (s[0] == SZ(TO) && s[1] == SZ(TI) && s[2] == 0) {                      \
        TO *o_ = (TO *)p[0];                                                         \
        const TI *a_ = (const TI *)p[1];                                             \
        const TI y = *(const TI *)p[2];                                              \
        SIMD for (int64_t i = 0; i < n; i++) {                                       \
            TI x = a_[i];                                                            \
            o_[i] = (TO)(EXPR);                                                      \
        }                                                                            \
    } else if (s[0] == SZ(TO) && s[1] == 0 && s[2] == SZ(TI)) {                      \
        TO *o_ = (TO *)p[0];                                                         \
        const TI *b_ = (const TI *)p[2];                                             \
        const TI x = *(const TI *)p[1];                                              \
        SIMD for (int64_t i = 0; i < n; i++) {                                       \
            TI y = b_[i];                                                            \
            o_[i] = (TO)(EXPR);                                                      \
        }                                                                            \
    } else {                                                                         \
        char *o_ = p[0];                                                             \
        const char *a_ = p[1], *b_ = p[2];                                           \
        for (int64_t i = 0; i < n; i++, o_ += s[0], a_ += s[1], b_ += s[2]) {        \
            TI x = *(const TI *)a_, y = *(const TI *)b_;                             \
            *(TO *)o_ = (TO)(EXPR);                                                  \
        }                                                                            \
    }

/* --- formulas ------------------------------------------------------------- */
/* One exp of -|x|: never overflows, and keeps full relative accuracy for x << 0. */
static inline float sigmoidf_(float x)
{
    float e = exp(-fabs(x)), r = 1 / (1 + e);
    return x >= 0 ? r : e * r;
}
static inline double sigmoid_(double x)
{
    double e = exp(-fabs(x)), r = 1 / (1 + e);
    return x >= 0 ? r : e * r;
}
#define SIGMOID(x) _Generic((x), float: sigmoidf_, default: sigmoid_)(x)

/* NaN must survive relu, sign, maximum and minimum (NumPy), hence the
 * comparisons that are false for NaN and the explicit x != x tests. */
#define UNOPS(X)                                                  \
    X(MIMIC_NEG, neg, -x)                                         \
    X(MIMIC_ABS, abs, fabs(x))                                    \
    X(MIMIC_EXP, exp, exp(x))                                     \
    X(MIMIC_LOG, log, log(x))                                     \
    X(MIMIC_SQRT, sqrt, sqrt(x))                                  \
    X(MIMIC_TANH, tanh, tanh(x))                                  \
    X(MIMIC_SIGMOID, sigmoid, SIGMOID(x))                         \
    X(MIMIC_RELU, relu, x < 0 ? 0 : x)                            \
    X(MIMIC_SIN, sin, sin(x))                                     \
    X(MIMIC_COS, cos, cos(x))                                     \
    X(MIMIC_SQUARE, square, x * x)                                \
    X(MIMIC_SIGN, sign, x > 0 ? 1 : x < 0 ? -1 : x)

#define BINOPS(X)                                                 \
    X(MIMIC_ADD, add, x + y)                                      \
    X(MIMIC_SUB, sub, x - y)                                      \
    X(MIMIC_MUL, mul, x * y)                                      \
    X(MIMIC_DIV, div, x / y)                                      \
    X(MIMIC_POW, pow, pow(x, y))                                  \
    X(MIMIC_MAXIMUM, maximum, ((x != x) | (x > y)) ? x : y)       \
    X(MIMIC_MINIMUM, minimum, ((x != x) | (x < y)) ? x : y)

/* IEEE comparisons already give NumPy's NaN rule: false except ne. */
#define CMPOPS(X)                                                 \
    X(MIMIC_EQ, eq, x == y)                                       \
    X(MIMIC_NE, ne, x != y)                                       \
    X(MIMIC_LT, lt, x < y)                                        \
    X(MIMIC_LE, le, x <= y)                                       \
    X(MIMIC_GT, gt, x > y)                                        \
    X(MIMIC_GE, ge, x >= y)

/* --- kernels and tables ------------------------------------------------------- */
#define KERNEL(NAME) static void NAME(const ew_ctx *e, int64_t n, char **p, const int64_t *s)

#define UN_DEF(E, NAME, EXPR)                                                         \
    KERNEL(NAME##_f32) { (void)e; UN_LOOPS(float, float, EXPR) }                      \
    KERNEL(NAME##_f64) { (void)e; UN_LOOPS(double, double, EXPR) }
#define BIN_DEF(E, NAME, EXPR)                                                        \
    KERNEL(NAME##_f32) { (void)e; BIN_LOOPS(float, float, EXPR) }                     \
    KERNEL(NAME##_f64) { (void)e; BIN_LOOPS(double, double, EXPR) }
#define CMP_DEF(E, NAME, EXPR)                                                        \
    KERNEL(NAME##_f32) { (void)e; BIN_LOOPS(uint8_t, float, EXPR) }                   \
    KERNEL(NAME##_f64) { (void)e; BIN_LOOPS(uint8_t, double, EXPR) }                  \
    KERNEL(NAME##_i64) { (void)e; BIN_LOOPS(uint8_t, int64_t, EXPR) }
UNOPS(UN_DEF)
BINOPS(BIN_DEF)
CMPOPS(CMP_DEF)

/* Kernels are indexed by compute dtype: MIMIC_F32, MIMIC_F64 (and MIMIC_I64). */
typedef struct { const char *name; ew_kernel k[3]; } op_entry;
#define ENTRY2(E, NAME, EXPR) [E] = {#NAME, {NAME##_f32, NAME##_f64, NULL}},
#define ENTRY3(E, NAME, EXPR) [E] = {#NAME, {NAME##_f32, NAME##_f64, NAME##_i64}},
static const op_entry unops[] = {UNOPS(ENTRY2)};
static const op_entry binops[] = {BINOPS(ENTRY2)};
static const op_entry cmpops[] = {CMPOPS(ENTRY3)};
_Static_assert(MIMIC_COUNT_OF(unops) == MIMIC_UNOP_COUNT, "unops: one entry per mimic_unop");
_Static_assert(MIMIC_COUNT_OF(binops) == MIMIC_BINOP_COUNT, "binops: one entry per mimic_binop");
_Static_assert(MIMIC_COUNT_OF(cmpops) == MIMIC_CMPOP_COUNT, "cmpops: one entry per mimic_cmpop");
_Static_assert(MIMIC_F32 == 0 && MIMIC_F64 == 1 && MIMIC_I64 == 2, "kernel index = dtype");

/* min(max(x, lo), hi), NaN kept: the first comparison rewrites x in place. */
#define CLAMP_EXPR (x = x < lo ? lo : x) > hi ? hi : x
KERNEL(clamp_f32)
{
    const float lo = (float)e->lo, hi = (float)e->hi;
    UN_LOOPS(float, float, CLAMP_EXPR)
}
KERNEL(clamp_f64)
{
    const double lo = e->lo, hi = e->hi;
    UN_LOOPS(double, double, CLAMP_EXPR)
}

/* x > 0 ? x : slope * x, slope in e->lo: PyTorch's leaky_relu, one pass
 * instead of the compare + multiply + where it took when built from those
 * ops (same values: the product is the same single rounding). NaN stays
 * NaN (the comparison is false, NaN * slope is NaN). */
#define LEAKY_EXPR x > 0 ? x : slope * x
KERNEL(leaky_relu_f32)
{
    const float slope = (float)e->lo;
    UN_LOOPS(float, float, LEAKY_EXPR)
}
KERNEL(leaky_relu_f64)
{
    const double slope = e->lo;
    UN_LOOPS(double, double, LEAKY_EXPR)
}

/* The plain backward of leaky_relu in one pass: p[1] = x, p[2] = g. */
#define LEAKY_BACK_EXPR x > 0 ? y : y * slope
KERNEL(leaky_relu_back_f32)
{
    const float slope = (float)e->lo;
    BIN_LOOPS(float, float, LEAKY_BACK_EXPR)
}
KERNEL(leaky_relu_back_f64)
{
    const double slope = e->lo;
    BIN_LOOPS(double, double, LEAKY_BACK_EXPR)
}

/* where: p[1] is the bool condition, p[2] and p[3] the values. */
#define WHERE_DEF(NAME, T)                                                            \
    KERNEL(NAME)                                                                      \
    {                                                                                 \
        (void)e;                                                                      \
        if (s[0] == SZ(T) && s[1] == 1 && s[2] == SZ(T) && (s[3] == SZ(T) || s[3] == 0)) { \
            T *o_ = (T *)p[0];                                                        \
            const uint8_t *c_ = (const uint8_t *)p[1];                                \
            const T *a_ = (const T *)p[2];                                            \
            if (s[3] == 0) {                                                          \
                const T y = *(const T *)p[3];                                         \
                SIMD for (int64_t i = 0; i < n; i++) o_[i] = c_[i] ? a_[i] : y;       \
            } else {                                                                  \
                const T *b_ = (const T *)p[3];                                        \
                SIMD for (int64_t i = 0; i < n; i++) o_[i] = c_[i] ? a_[i] : b_[i];   \
            }                                                                         \
        } else {                                                                      \
            char *o_ = p[0];                                                          \
            const char *c_ = p[1], *a_ = p[2], *b_ = p[3];                            \
            for (int64_t i = 0; i < n; i++, o_ += s[0], c_ += s[1], a_ += s[2], b_ += s[3]) \
                *(T *)o_ = *(const uint8_t *)c_ ? *(const T *)a_ : *(const T *)b_;    \
        }                                                                             \
    }
WHERE_DEF(where_f32, float)
WHERE_DEF(where_f64, double)

/* --- dtype conversion of a row piece (mixed-dtype operands) ----------------- */
typedef void (*conv_fn)(int64_t n, char *d, int64_t ds, const char *q, int64_t qs);
#define CONV(NAME, TD, TS, EXPR)                                                      \
    static void NAME(int64_t n, char *d, int64_t ds, const char *q, int64_t qs)       \
    {                                                                                 \
        if (ds == SZ(TD) && qs == SZ(TS)) {                                           \
            TD *d_ = (TD *)d;                                                         \
            const TS *q_ = (const TS *)q;                                             \
            SIMD for (int64_t i = 0; i < n; i++) {                                    \
                TS x = q_[i];                                                         \
                d_[i] = (TD)(EXPR);                                                   \
            }                                                                         \
        } else {                                                                      \
            for (int64_t i = 0; i < n; i++, d += ds, q += qs) {                       \
                TS x = *(const TS *)q;                                                \
                *(TD *)d = (TD)(EXPR);                                                \
            }                                                                         \
        }                                                                             \
    }
#define CONV_TO(TD, SD, B)                                                            \
    CONV(cv_##SD##_f32, TD, float, B(x))                                              \
    CONV(cv_##SD##_f64, TD, double, B(x))                                             \
    CONV(cv_##SD##_i64, TD, int64_t, B(x))                                            \
    CONV(cv_##SD##_bool, TD, uint8_t, B(x))
#define AS_IS(x) x
#define NONZERO(x) (x != 0)
CONV_TO(float, f32, AS_IS)
CONV_TO(double, f64, AS_IS)
CONV_TO(int64_t, i64, AS_IS)
CONV_TO(uint8_t, bool, NONZERO)
static const conv_fn conv[MIMIC_DTYPE_COUNT][MIMIC_DTYPE_COUNT] = {
    [MIMIC_F32] = {cv_f32_f32, cv_f32_f64, cv_f32_i64, cv_f32_bool},
    [MIMIC_F64] = {cv_f64_f32, cv_f64_f64, cv_f64_i64, cv_f64_bool},
    [MIMIC_I64] = {cv_i64_f32, cv_i64_f64, cv_i64_i64, cv_i64_bool},
    [MIMIC_BOOL] = {cv_bool_f32, cv_bool_f64, cv_bool_i64, cv_bool_bool},
};

/* --- row drivers -------------------------------------------------------------- */
static void direct_row(void *ctx, int64_t n, char **p, const int64_t *s)
{
    const ew_ctx *e = ctx;
    e->k(e, n, p, s);
}

/* Converts mismatched inputs into stack buffers, runs the kernel, converts the
 * result into the output: CH elements at a time. */
static void chunk_row(void *ctx, int64_t n, char **p, const int64_t *s)
{
    enum { CH = 256 };
    const ew_ctx *e = ctx;
    double buf[1 + 3][CH]; /* double: aligned for every dtype */
    char *q[1 + 3];
    int64_t qs[1 + 3];
    bool out_direct = e->out_dt == e->rt;
    int64_t rs = (int64_t)mimic_dtype_size(e->rt);
    for (int64_t i0 = 0; i0 < n; i0 += CH) {
        int64_t m = n - i0 < CH ? n - i0 : CH;
        for (int k = 1; k <= e->nin; k++) {
            const char *src = p[k] + i0 * s[k];
            if (e->in_dt[k - 1] == e->want[k - 1]) {
                q[k] = (char *)src;
                qs[k] = s[k];
            } else {
                /* A broadcast (stride 0) input stays a scalar for the kernel. */
                qs[k] = s[k] == 0 ? 0 : (int64_t)mimic_dtype_size(e->want[k - 1]);
                q[k] = (char *)buf[k];
                conv[e->want[k - 1]][e->in_dt[k - 1]](s[k] == 0 ? 1 : m, q[k], qs[k], src, s[k]);
            }
        }
        char *dst = p[0] + i0 * s[0];
        q[0] = out_direct ? dst : (char *)buf[0];
        qs[0] = out_direct ? s[0] : rs;
        e->k(e, m, q, qs);
        if (!out_direct)
            conv[e->out_dt][e->rt](m, dst, s[0], q[0], rs);
    }
}

/* --- broadcasting, aliasing, dispatch ----------------------------------------- */
static int bshape(const char *fn, int na, const int64_t *sa, int nb, const int64_t *sb, int *nd,
                  int64_t *out)
{
    int n = na > nb ? na : nb;
    int64_t r[MIMIC_MAX_DIMS];
    for (int d = 0; d < n; d++) {
        int ia = d - (n - na), ib = d - (n - nb);
        int64_t x = ia >= 0 ? sa[ia] : 1, y = ib >= 0 ? sb[ib] : 1;
        if (x != y && x != 1 && y != 1) {
            char a[96], b[96];
            return mimic_error(MIMIC_ESHAPE, "%s: shapes %s and %s do not broadcast (dim %d: %lld vs %lld)", fn,
                               mimic_shape_str(na, sa, a, sizeof a), mimic_shape_str(nb, sb, b, sizeof b),
                               mimic_dim_from_end(d, n), (long long)x, (long long)y);
        }
        r[d] = x == 1 ? y : x;
    }
    *nd = n;
    memcpy(out, r, sizeof(int64_t) * (size_t)n);
    return MIMIC_OK;
}

int mimic_broadcast_shape(const char *fn, const mimic_tensor *a, const mimic_tensor *b, int *ndim,
                          int64_t *shape)
{
    return bshape(fn, a->ndim, a->shape, b->ndim, b->shape, ndim, shape);
}

/* Byte range [lo, hi) spanned by t's elements; empty for numel 0. */
static void byte_range(const mimic_tensor *t, uintptr_t *lo, uintptr_t *hi)
{
    int64_t ext = 0;
    for (int d = 0; d < t->ndim; d++) {
        if (t->shape[d] == 0) {
            *lo = *hi = 0;
            return;
        }
        ext += (t->shape[d] - 1) * t->stride[d];
    }
    *lo = (uintptr_t)mimic_data(t);
    *hi = *lo + (uintptr_t)((ext + 1) * (int64_t)mimic_dtype_size(t->dtype));
}

/* True when writing out element by element could change an input element
 * before it is read: the memories overlap and the layouts are not identical
 * (identical layouts are safe, each element being read before it is written). */
static bool unsafe_alias(const mimic_tensor *out, const mimic_tensor *in, int ndim, const int64_t *shape,
                         const int64_t *bst)
{
    uintptr_t a0, a1, b0, b1;
    byte_range(out, &a0, &a1);
    byte_range(in, &b0, &b1);
    if (a0 == a1 || b0 == b1 || a1 <= b0 || b1 <= a0)
        return false;
    if (mimic_data(out) != mimic_data(in) || mimic_dtype_size(out->dtype) != mimic_dtype_size(in->dtype))
        return true;
    for (int d = 0; d < ndim; d++)
        if (shape[d] > 1 && out->stride[d] != bst[d])
            return true;
    return false;
}

/* Runs e over the broadcast shape into out (shape already checked). */
static int ew_run(const char *fn, ew_ctx *e, mimic_tensor *out, const mimic_tensor *const *in, int ndim,
                  const int64_t *shape)
{
    for (int d = 0; d < ndim; d++)
        if (shape[d] > 1 && out->stride[d] == 0)
            return mimic_error(MIMIC_EARG, "%s: the output is a broadcast view (stride 0 in dim %d); "
                               "write into a tensor that owns its elements", fn, mimic_dim_from_end(d, ndim));
    e->out_dt = out->dtype;
    mimic_tensor *tmp[3] = {NULL, NULL, NULL};
    const mimic_tensor *op[3];
    int64_t bst[3][MIMIC_MAX_DIMS];
    const int64_t *strides[4] = {out->stride};
    size_t es[4] = {mimic_dtype_size(out->dtype)};
    char *base[4] = {mimic_data(out)};
    bool direct = e->out_dt == e->rt;
    int rc = MIMIC_OK;
    for (int k = 0; k < e->nin; k++) {
        op[k] = in[k];
        e->in_dt[k] = in[k]->dtype;
        mimic_broadcast_strides(in[k], ndim, bst[k]);
        if (unsafe_alias(out, in[k], ndim, shape, bst[k])) {
            /* The only extra allocation: a partly overlapping in-place call. */
            tmp[k] = mimic_clone(in[k]);
            if (!tmp[k]) {
                rc = mimic_errcode();
                goto done;
            }
            op[k] = tmp[k];
            mimic_broadcast_strides(op[k], ndim, bst[k]);
        }
        strides[k + 1] = bst[k];
        es[k + 1] = mimic_dtype_size(op[k]->dtype);
        base[k + 1] = mimic_data(op[k]);
        direct = direct && e->in_dt[k] == e->want[k];
    }
    mimic_iter it;
    mimic_iter_init(&it, ndim, shape, 1 + e->nin, strides, es);
    mimic_iter_run(&it, base, direct ? direct_row : chunk_row, e, true);
done:
    for (int k = 0; k < 3; k++)
        mimic_tensor_free(tmp[k]);
    return rc;
}

/* Into *outp, or into a new tensor of dtype e->rt when *outp is NULL (then
 * owned by the caller on success, freed on failure). */
static int ew_exec(const char *fn, ew_ctx *e, mimic_tensor **outp, const mimic_tensor *const *in, int ndim,
                   const int64_t *shape)
{
    if (*outp) {
        int rc = mimic_check_out_shape(fn, *outp, ndim, shape);
        return rc ? rc : ew_run(fn, e, *outp, in, ndim, shape);
    }
    mimic_tensor *out = mimic_empty(ndim, shape, e->rt);
    if (!out)
        return mimic_errcode();
    int rc = ew_run(fn, e, out, in, ndim, shape);
    if (rc)
        mimic_tensor_free(out);
    else
        *outp = out;
    return rc;
}

static mimic_dtype promote(const mimic_tensor *a, const mimic_tensor *b)
{
    return a->dtype == MIMIC_F64 || b->dtype == MIMIC_F64 ? MIMIC_F64 : MIMIC_F32;
}

/* --- public ---------------------------------------------------------------------- */
const char *mimic_unop_name(mimic_unop op) { return (unsigned)op < MIMIC_UNOP_COUNT ? unops[op].name : "?"; }
const char *mimic_binop_name(mimic_binop op) { return (unsigned)op < MIMIC_BINOP_COUNT ? binops[op].name : "?"; }
const char *mimic_cmpop_name(mimic_cmpop op) { return (unsigned)op < MIMIC_CMPOP_COUNT ? cmpops[op].name : "?"; }

static int unary_impl(mimic_tensor **out, mimic_unop op, const mimic_tensor *a)
{
    if ((unsigned)op >= MIMIC_UNOP_COUNT)
        return mimic_error(MIMIC_EARG, "unary: unknown op %d", (int)op);
    const char *fn = unops[op].name;
    int rc = mimic_check_float(fn, a);
    if (rc)
        return rc;
    ew_ctx e = {.k = unops[op].k[a->dtype], .nin = 1, .rt = a->dtype, .want = {a->dtype}};
    return ew_exec(fn, &e, out, &a, a->ndim, a->shape);
}

static int unary_backward(mimic_node *n, const mimic_tensor *g, mimic_tensor **gin);

/* Flags for record(): the backward uses the saved result / never reads the
 * inputs' values (so later in-place changes of them are harmless). */
enum { SAVE_RESULT = 1, READS_NOTHING = 2 };

/* Attach a node to a fresh result (arg and lo/hi for the backward); on
 * failure the result is freed. */
static mimic_tensor *record(mimic_tensor *out, const char *name, mimic_backward_fn bw, int nin,
                            const mimic_tensor *const *in, int64_t arg, int flags, double lo, double hi)
{
    if (!out || !mimic_ag_wanted(nin, in))
        return out;
    mimic_node *n = mimic_ag_record(out, name, bw, nin, in);
    if (!n || ((flags & SAVE_RESULT) && mimic_ag_save(n, out))) {
        mimic_tensor_free(out);
        return NULL;
    }
    if (flags & READS_NOTHING)
        n->reads = 0;
    n->iarg[0] = arg;
    n->darg[0] = lo;
    n->darg[1] = hi;
    return out;
}

static int unary_flags(mimic_unop op)
{
    if (op == MIMIC_EXP || op == MIMIC_SQRT || op == MIMIC_TANH || op == MIMIC_SIGMOID)
        return SAVE_RESULT; /* the backward reuses the result instead of recomputing it */
    return op == MIMIC_NEG || op == MIMIC_SIGN ? READS_NOTHING : 0;
}

mimic_tensor *mimic_unary(mimic_unop op, const mimic_tensor *a)
{
    mimic_tensor *out = NULL;
    unary_impl(&out, op, a);
    return record(out, mimic_unop_name(op), unary_backward, 1, &a, op, unary_flags(op), 0, 0);
}

int mimic_unary_out(mimic_tensor *out, mimic_unop op, const mimic_tensor *a)
{
    if (!out)
        return mimic_error(MIMIC_EARG, "%s: out is NULL", mimic_unop_name(op));
    int rc = mimic_ag_out(mimic_unop_name(op), out, 1, &a);
    return rc ? rc : unary_impl(&out, op, a);
}

static int binary_impl(mimic_tensor **out, mimic_binop op, const mimic_tensor *a, const mimic_tensor *b)
{
    if ((unsigned)op >= MIMIC_BINOP_COUNT)
        return mimic_error(MIMIC_EARG, "binary: unknown op %d", (int)op);
    const char *fn = binops[op].name;
    int rc, nd;
    int64_t shape[MIMIC_MAX_DIMS];
    if ((rc = mimic_check_float(fn, a)) || (rc = mimic_check_float(fn, b)) ||
        (rc = mimic_broadcast_shape(fn, a, b, &nd, shape)))
        return rc;
    mimic_dtype ct = promote(a, b);
    ew_ctx e = {.k = binops[op].k[ct], .nin = 2, .rt = ct, .want = {ct, ct}};
    const mimic_tensor *in[2] = {a, b};
    return ew_exec(fn, &e, out, in, nd, shape);
}

static int binary_backward(mimic_node *n, const mimic_tensor *g, mimic_tensor **gin);

mimic_tensor *mimic_binary(mimic_binop op, const mimic_tensor *a, const mimic_tensor *b)
{
    mimic_tensor *out = NULL;
    binary_impl(&out, op, a, b);
    const mimic_tensor *in[2] = {a, b};
    return record(out, mimic_binop_name(op), binary_backward, 2, in, op,
                  op == MIMIC_ADD || op == MIMIC_SUB ? READS_NOTHING : 0, 0, 0);
}

int mimic_binary_out(mimic_tensor *out, mimic_binop op, const mimic_tensor *a, const mimic_tensor *b)
{
    if (!out)
        return mimic_error(MIMIC_EARG, "%s: out is NULL", mimic_binop_name(op));
    const mimic_tensor *in[2] = {a, b};
    int rc = mimic_ag_out(mimic_binop_name(op), out, 2, in);
    return rc ? rc : binary_impl(&out, op, a, b);
}

static int compare_impl(mimic_tensor **out, mimic_cmpop op, const mimic_tensor *a, const mimic_tensor *b)
{
    if ((unsigned)op >= MIMIC_CMPOP_COUNT)
        return mimic_error(MIMIC_EARG, "compare: unknown op %d", (int)op);
    const char *fn = cmpops[op].name;
    int rc, nd;
    int64_t shape[MIMIC_MAX_DIMS];
    if ((rc = mimic_broadcast_shape(fn, a, b, &nd, shape)))
        return rc;
    /* Same-type operands compare natively (exact for int64); others as double. */
    mimic_dtype ct = a->dtype == b->dtype && a->dtype != MIMIC_BOOL ? a->dtype : MIMIC_F64;
    ew_ctx e = {.k = cmpops[op].k[ct], .nin = 2, .rt = MIMIC_BOOL, .want = {ct, ct}};
    const mimic_tensor *in[2] = {a, b};
    return ew_exec(fn, &e, out, in, nd, shape);
}

mimic_tensor *mimic_compare(mimic_cmpop op, const mimic_tensor *a, const mimic_tensor *b)
{
    mimic_tensor *out = NULL;
    compare_impl(&out, op, a, b);
    return out;
}

int mimic_compare_out(mimic_tensor *out, mimic_cmpop op, const mimic_tensor *a, const mimic_tensor *b)
{
    if (!out)
        return mimic_error(MIMIC_EARG, "%s: out is NULL", mimic_cmpop_name(op));
    int rc = mimic_ag_inplace(mimic_cmpop_name(op), out); /* comparisons have no gradient */
    return rc ? rc : compare_impl(&out, op, a, b);
}

static int clamp_impl(mimic_tensor **out, const mimic_tensor *a, double lo, double hi)
{
    int rc = mimic_check_float("clamp", a);
    if (rc)
        return rc;
    ew_ctx e = {.k = a->dtype == MIMIC_F64 ? clamp_f64 : clamp_f32, .nin = 1, .rt = a->dtype,
                .want = {a->dtype}, .lo = lo, .hi = hi};
    return ew_exec("clamp", &e, out, &a, a->ndim, a->shape);
}

static int clamp_backward(mimic_node *n, const mimic_tensor *g, mimic_tensor **gin);

mimic_tensor *mimic_clamp(const mimic_tensor *a, double lo, double hi)
{
    mimic_tensor *out = NULL;
    clamp_impl(&out, a, lo, hi);
    return record(out, "clamp", clamp_backward, 1, &a, 0, 0, lo, hi);
}

int mimic_clamp_out(mimic_tensor *out, const mimic_tensor *a, double lo, double hi)
{
    if (!out)
        return mimic_error(MIMIC_EARG, "clamp: out is NULL");
    int rc = mimic_ag_out("clamp", out, 1, &a);
    return rc ? rc : clamp_impl(&out, a, lo, hi);
}

static int leaky_relu_backward(mimic_node *n, const mimic_tensor *g, mimic_tensor **gin);

mimic_tensor *mimic_leaky_relu(const mimic_tensor *a, double slope)
{
    if (mimic_check_float("leaky_relu", a))
        return NULL;
    ew_ctx e = {.k = a->dtype == MIMIC_F64 ? leaky_relu_f64 : leaky_relu_f32, .nin = 1, .rt = a->dtype,
                .want = {a->dtype}, .lo = slope};
    mimic_tensor *out = NULL;
    ew_exec("leaky_relu", &e, &out, &a, a->ndim, a->shape);
    return record(out, "leaky_relu", leaky_relu_backward, 1, &a, 0, 0, slope, 0);
}

static int where_backward(mimic_node *n, const mimic_tensor *g, mimic_tensor **gin);

mimic_tensor *mimic_where(const mimic_tensor *cond, const mimic_tensor *a, const mimic_tensor *b)
{
    int nd;
    int64_t shape[MIMIC_MAX_DIMS];
    if (mimic_check_float("where", a) || mimic_check_float("where", b) ||
        mimic_broadcast_shape("where", cond, a, &nd, shape) ||
        bshape("where", nd, shape, b->ndim, b->shape, &nd, shape))
        return NULL;
    mimic_dtype ct = promote(a, b);
    ew_ctx e = {.k = ct == MIMIC_F64 ? where_f64 : where_f32, .nin = 3, .rt = ct,
                .want = {MIMIC_BOOL, ct, ct}};
    const mimic_tensor *in[3] = {cond, a, b};
    mimic_tensor *out = NULL;
    ew_exec("where", &e, &out, in, nd, shape);
    return record(out, "where", where_backward, 3, in, 0, 0, 0, 0);
}

/* --- gradients ---------------------------------------------------------------------
 * With grad mode off (plain backward) unary ops reuse their saved result; with
 * it on (create_graph) they recompute it from the input, so that the gradient
 * itself stays differentiable. */
static mimic_tensor *result_of(const mimic_node *n, mimic_unop op)
{
    return !mimic_grad_enabled() && n->saved ? E_ref(n->saved) : E_un(op, E_ref(n->in[0]));
}

static int unary_backward(mimic_node *n, const mimic_tensor *g, mimic_tensor **gin)
{
    const mimic_tensor *x = n->in[0];
    mimic_dtype dt = g->dtype;
    mimic_tensor *y, *r;
    switch ((mimic_unop)n->iarg[0]) {
    case MIMIC_NEG: r = E_un(MIMIC_NEG, E_ref(g)); break;
    case MIMIC_ABS: r = E_MUL(E_ref(g), E_un(MIMIC_SIGN, E_ref(x))); break;
    case MIMIC_EXP: r = E_MUL(E_ref(g), result_of(n, MIMIC_EXP)); break;
    case MIMIC_LOG: r = E_DIV(E_ref(g), E_ref(x)); break;
    case MIMIC_SQRT: r = E_DIV(E_ref(g), E_MUL(result_of(n, MIMIC_SQRT), E_num(2, dt))); break;
    case MIMIC_TANH: r = E_MUL(E_ref(g), E_SUB(E_num(1, dt), E_un(MIMIC_SQUARE, result_of(n, MIMIC_TANH)))); break;
    case MIMIC_SIGMOID:
        y = result_of(n, MIMIC_SIGMOID);
        r = E_MUL(E_ref(g), E_MUL(y ? E_ref(y) : NULL, E_SUB(E_num(1, dt), y)));
        break;
    case MIMIC_RELU: r = E_where(E_cmp(MIMIC_GT, E_ref(x), E_num(0, dt)), E_ref(g), E_num(0, dt)); break;
    case MIMIC_SIN: r = E_MUL(E_ref(g), E_un(MIMIC_COS, E_ref(x))); break;
    case MIMIC_COS: r = E_MUL(E_ref(g), E_un(MIMIC_NEG, E_un(MIMIC_SIN, E_ref(x)))); break;
    case MIMIC_SQUARE: r = E_MUL(E_ref(g), E_MUL(E_ref(x), E_num(2, dt))); break;
    default: r = mimic_zeros(g->ndim, g->shape, dt); break; /* sign: flat almost everywhere */
    }
    return E_set(gin, 0, r);
}

static int binary_backward(mimic_node *n, const mimic_tensor *g, mimic_tensor **gin)
{
    const mimic_tensor *a = n->in[0], *b = n->in[1];
    mimic_dtype dt = g->dtype;
    mimic_tensor *ga = NULL, *gb = NULL;
    bool na = mimic_node_needs(n, 0), nb = mimic_node_needs(n, 1);
    switch ((mimic_binop)n->iarg[0]) {
    case MIMIC_ADD: ga = na ? E_ref(g) : NULL, gb = nb ? E_ref(g) : NULL; break;
    case MIMIC_SUB: ga = na ? E_ref(g) : NULL, gb = nb ? E_un(MIMIC_NEG, E_ref(g)) : NULL; break;
    case MIMIC_MUL:
        ga = na ? E_MUL(E_ref(g), E_ref(b)) : NULL;
        gb = nb ? E_MUL(E_ref(g), E_ref(a)) : NULL;
        break;
    case MIMIC_DIV:
        ga = na ? E_DIV(E_ref(g), E_ref(b)) : NULL;
        gb = nb ? E_un(MIMIC_NEG, E_DIV(E_MUL(E_ref(g), E_ref(a)), E_un(MIMIC_SQUARE, E_ref(b)))) : NULL;
        break;
    case MIMIC_POW: /* d/da = b a^(b-1); d/db = a^b log a, taken as 0 where a <= 0 */
        ga = na ? E_MUL(E_ref(g), E_MUL(E_ref(b), E_bin(MIMIC_POW, E_ref(a), E_SUB(E_ref(b), E_num(1, dt))))) : NULL;
        gb = nb ? E_where(E_cmp(MIMIC_GT, E_ref(a), E_num(0, dt)),
                          E_MUL(E_ref(g), E_MUL(E_bin(MIMIC_POW, E_ref(a), E_ref(b)), E_un(MIMIC_LOG, E_ref(a)))),
                          E_num(0, dt))
                : NULL;
        break;
    default: { /* maximum/minimum: the gradient goes to the winner, split evenly on ties */
        mimic_cmpop win = n->iarg[0] == MIMIC_MAXIMUM ? MIMIC_GT : MIMIC_LT;
        mimic_tensor *half = E_MUL(E_ref(g), E_num(0.5, dt));
        ga = na ? E_where(E_cmp(win, E_ref(a), E_ref(b)), E_ref(g),
                          E_where(E_cmp(MIMIC_EQ, E_ref(a), E_ref(b)), half ? E_ref(half) : NULL, E_num(0, dt)))
                : NULL;
        gb = nb ? E_where(E_cmp(win, E_ref(b), E_ref(a)), E_ref(g),
                          E_where(E_cmp(MIMIC_EQ, E_ref(a), E_ref(b)), half ? E_ref(half) : NULL, E_num(0, dt)))
                : NULL;
        mimic_tensor_free(half);
        break;
    }
    }
    int rc = na ? E_set(gin, 0, E_sum_to(ga, a)) : MIMIC_OK;
    if (nb && rc == MIMIC_OK)
        rc = E_set(gin, 1, E_sum_to(gb, b));
    else
        mimic_tensor_free(gb);
    return rc;
}

static int clamp_backward(mimic_node *n, const mimic_tensor *g, mimic_tensor **gin)
{
    const mimic_tensor *x = n->in[0];
    mimic_dtype dt = g->dtype;
    mimic_tensor *inside = E_where(E_cmp(MIMIC_GE, E_ref(x), E_num(n->darg[0], x->dtype)), E_ref(g), E_num(0, dt));
    return E_set(gin, 0, E_where(E_cmp(MIMIC_LE, E_ref(x), E_num(n->darg[1], x->dtype)), inside, E_num(0, dt)));
}

/* g where x > 0, else slope * g (slope at 0, as PyTorch). */
static int leaky_relu_backward(mimic_node *n, const mimic_tensor *g, mimic_tensor **gin)
{
    const mimic_tensor *x = n->in[0];
    mimic_dtype dt = g->dtype;
    if (!mimic_grad_enabled()) {
        /* Plain backward: one fused pass instead of compare + multiply +
         * where (the same values: g, or the one rounding of g * slope). */
        mimic_dtype ct = promote(x, g);
        ew_ctx e = {.k = ct == MIMIC_F64 ? leaky_relu_back_f64 : leaky_relu_back_f32, .nin = 2, .rt = ct,
                    .want = {ct, ct}, .lo = n->darg[0]};
        const mimic_tensor *in[2] = {x, g};
        mimic_tensor *r = NULL;
        ew_exec("leaky_relu", &e, &r, in, g->ndim, g->shape);
        return E_set(gin, 0, r);
    }
    /* create_graph: built from differentiable ops, so the gradient has one. */
    return E_set(gin, 0, E_where(E_cmp(MIMIC_GT, E_ref(x), E_num(0, x->dtype)), E_ref(g),
                                 E_MUL(E_ref(g), E_num(n->darg[0], dt))));
}

static int where_backward(mimic_node *n, const mimic_tensor *g, mimic_tensor **gin)
{
    const mimic_tensor *c = n->in[0];
    mimic_dtype dt = g->dtype;
    int rc = MIMIC_OK;
    if (mimic_node_needs(n, 1))
        rc = E_set(gin, 1, E_sum_to(E_where(E_ref(c), E_ref(g), E_num(0, dt)), n->in[1]));
    if (rc == MIMIC_OK && mimic_node_needs(n, 2))
        rc = E_set(gin, 2, E_sum_to(E_where(E_ref(c), E_num(0, dt), E_ref(g)), n->in[2]));
    return rc;
}

#define OPDEF_UN(E, NAME, EXPR) {#NAME, unary_backward},
#define OPDEF_BIN(E, NAME, EXPR) {#NAME, binary_backward},
const mimic_opdef mimic_ops_elementwise[] = {
    UNOPS(OPDEF_UN) BINOPS(OPDEF_BIN){"clamp", clamp_backward}, {"leaky_relu", leaky_relu_backward},
    {"where", where_backward}, {NULL, NULL},
};
