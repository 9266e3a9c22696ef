/* Gradient-check cases of the reductions and linear algebra (included by
 * test_autograd.c). One case per registered name, so a case that covers
 * several variants adds their results: they broadcast together, and each
 * variant's gradient still shows in the total. Inputs are mostly transposed
 * (non-contiguous) views. More variants (matmul's one-gemm batch path, cumsum
 * over all dims, ties, zeros) are in test_autograd_ops.c. */

/* A view of t with its last two dims swapped (t is consumed). */
static mimic_tensor *rl_TL(mimic_tensor *t)
{
    mimic_tensor *v = mimic_transpose(t, -2, -1);
    mimic_tensor_free(t);
    return v;
}

/* Every other element of a fresh 1-D tensor of 2n: a strided 1-D view. */
static mimic_tensor *rl_strided(mimic_tensor *t)
{
    mimic_tensor *v = mimic_slice(t, 0, 0, t->shape[0], 2);
    mimic_tensor_free(t);
    return v;
}

/* a + b (both consumed; NULL propagates). */
static mimic_tensor *rl_add(mimic_tensor *a, mimic_tensor *b)
{
    mimic_tensor *r = a && b ? mimic_binary(MIMIC_ADD, a, b) : NULL;
    mimic_tensor_free(a);
    mimic_tensor_free(b);
    return r;
}

/* op over dim 1 with keepdim ([3,1]), over dim 0 without ([4]), over all
 * dims with ([1,1]) and without (0-dim), of a [3,4] input: all broadcast. */
static mimic_tensor *rl_variants(mimic_redop op, const mimic_tensor *x, double param)
{
    return rl_add(rl_add(mimic_reduce(op, x, -1, true, param), mimic_reduce(op, x, 0, false, param)),
                  rl_add(mimic_reduce(op, x, MIMIC_ALL_DIMS, true, param),
                         mimic_reduce(op, x, MIMIC_ALL_DIMS, false, param)));
}

/* Values away from 0 and (w.h.p.) distinct, so min/max/inf-norm have a
 * unique winner and prod no zero. */
#define REDUCE_CASE(NAME, OP, PARAM)                                                        \
    static void make_##NAME(mimic_tensor **in) { in[0] = rl_TL(AWAY0(4, 3)); }              \
    static mimic_tensor *call_##NAME(mimic_tensor *const *in) { return rl_variants(OP, in[0], PARAM); }
REDUCE_CASE(sum, MIMIC_SUM, 0)
REDUCE_CASE(mean, MIMIC_MEAN, 0)
REDUCE_CASE(prod, MIMIC_PROD, 0)
REDUCE_CASE(var, MIMIC_VAR, 1) /* sample variance (ddof 1) */
REDUCE_CASE(std, MIMIC_STD, 0)
REDUCE_CASE(min, MIMIC_MIN, 0)
REDUCE_CASE(max, MIMIC_MAX, 0)

/* Orders 2, 3, 1, 0.5 and INFINITY (each takes its own formula). */
static void make_norm(mimic_tensor **in) { in[0] = rl_TL(AWAY0(4, 3)); }
static mimic_tensor *call_norm(mimic_tensor *const *in)
{
    const mimic_tensor *x = in[0];
    return rl_add(rl_add(rl_add(mimic_reduce(MIMIC_NORM, x, 1, true, 2), mimic_reduce(MIMIC_NORM, x, 0, false, 3)),
                         rl_add(mimic_reduce(MIMIC_NORM, x, MIMIC_ALL_DIMS, false, 1),
                                mimic_reduce(MIMIC_NORM, x, -1, true, 0.5))),
                  mimic_reduce(MIMIC_NORM, x, 0, false, INFINITY));
}

static void make_cumsum(mimic_tensor **in) { in[0] = rl_TL(AWAY0(4, 3)); }
static mimic_tensor *call_cumsum(mimic_tensor *const *in)
{
    return rl_add(mimic_cumsum(in[0], 0), mimic_cumsum(in[0], -1));
}

/* A [3,1,3,4] (transposed) with B [3,4,3] (transposed): the batch dims
 * broadcast both ways ([3,1] with [3] -> [3,3]); plus the 1-D forms v @ B
 * ([3,3]), A @ v ([3,1,3]) and v @ v (0-dim), all broadcast to [3,3,3,3]. */
static void make_matmul(mimic_tensor **in)
{
    in[0] = rl_TL(AWAY0(3, 1, 4, 3)), in[1] = rl_TL(AWAY0(3, 3, 4)), in[2] = AWAY0(4);
}
static mimic_tensor *call_matmul(mimic_tensor *const *in)
{
    return rl_add(rl_add(mimic_matmul(in[0], in[1]), mimic_matmul(in[2], in[1])),
                  rl_add(mimic_matmul(in[0], in[2]), mimic_matmul(in[2], in[2])));
}

static void make_bmm(mimic_tensor **in) { in[0] = rl_TL(AWAY0(2, 4, 3)), in[1] = AWAY0(2, 4, 5); }
static mimic_tensor *call_bmm(mimic_tensor *const *in) { return mimic_bmm(in[0], in[1]); }

static void make_dot(mimic_tensor **in) { in[0] = AWAY0(5), in[1] = rl_strided(AWAY0(10)); }
static mimic_tensor *call_dot(mimic_tensor *const *in) { return mimic_dot(in[0], in[1]); }

static void make_outer(mimic_tensor **in) { in[0] = rl_strided(AWAY0(6)), in[1] = AWAY0(4); }
static mimic_tensor *call_outer(mimic_tensor *const *in) { return mimic_outer(in[0], in[1]); }

static const gcase cases_reduce_linalg[] = {
    CASE(sum), CASE(mean), CASE(prod), CASE(var), CASE(std), CASE(norm), CASE(min), CASE(max), CASE(cumsum),
    CASE(matmul), CASE(bmm), CASE(dot), CASE(outer), {NULL, NULL, NULL},
};
