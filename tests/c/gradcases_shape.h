/* Gradient-check cases of the views, copies, joining/indexing and sorting ops
 * (included by test_autograd.c). Negative dims throughout, and transposed
 * (non-contiguous) inputs where the layout changes the code path: reshape and
 * flatten of a transposed tensor copy instead of viewing. Index tensors and
 * masks are made inside call(), since only the float inputs are checked;
 * indices repeat, so the scatter-adds accumulate. */

/* One float input x = in[0] and a result expression in x. */
#define SHAPE_CASE(NAME, GEN, EXPR)                                                        \
    static void make_##NAME(mimic_tensor **in) { in[0] = GEN; }                            \
    static mimic_tensor *call_##NAME(mimic_tensor *const *in)                              \
    {                                                                                      \
        mimic_tensor *x = in[0];                                                           \
        return EXPR;                                                                       \
    }
SHAPE_CASE(view, AWAY0(2, 3, 4), mimic_view(x, 2, (int64_t[]){6, -1}))
SHAPE_CASE(reshape, T2(AWAY0(4, 3)), mimic_reshape(x, 2, (int64_t[]){2, 6}))
SHAPE_CASE(flatten, T2(AWAY0(4, 3)), mimic_flatten(x, 0, -1))
SHAPE_CASE(squeeze, AWAY0(3, 1, 2), mimic_squeeze(x, -2))
SHAPE_CASE(unsqueeze, T2(AWAY0(3, 2)), mimic_unsqueeze(x, -1))
SHAPE_CASE(transpose, AWAY0(2, 3, 4), mimic_transpose(x, -1, 0))
SHAPE_CASE(permute, AWAY0(2, 3, 4), mimic_permute(x, (int[]){-1, 0, 1}))
SHAPE_CASE(expand, AWAY0(3, 1), mimic_expand(x, 3, (int64_t[]){2, -1, 4}))
SHAPE_CASE(slice, T2(AWAY0(5, 4)), mimic_slice(x, -1, 1, 5, 2))
SHAPE_CASE(narrow, AWAY0(4, 3), mimic_narrow(x, -2, 1, 2))
SHAPE_CASE(select, T2(AWAY0(4, 3)), mimic_select(x, -1, 2))
SHAPE_CASE(contiguous, T2(AWAY0(4, 3)), mimic_contiguous(x))
SHAPE_CASE(clone, AWAY0(2, 3), mimic_clone(x))
SHAPE_CASE(to_dtype, T2(AWAY0(3, 2)), mimic_to_dtype(x, MIMIC_F64))
SHAPE_CASE(sort, T2(AWAY0(4, 3)), mimic_sort(x, -1, true, NULL))
SHAPE_CASE(topk, AWAY0(3, 5), mimic_topk(x, 2, -2, false, NULL))

static void make_cat(mimic_tensor **in) { in[0] = AWAY0(2, 3), in[1] = T2(AWAY0(4, 2)), in[2] = AWAY0(2, 1); }
static mimic_tensor *call_cat(mimic_tensor *const *in) { return mimic_cat(in, 3, -1); }
static void make_stack(mimic_tensor **in) { in[0] = AWAY0(2, 3), in[1] = T2(AWAY0(3, 2)); }
static mimic_tensor *call_stack(mimic_tensor *const *in) { return mimic_stack(in, 2, -1); }

/* f(x, index) for an index made in the call and freed after it. */
#define INDEX_CASE(NAME, GEN, IDX, EXPR)                                                   \
    static void make_##NAME(mimic_tensor **in) { in[0] = GEN; }                            \
    static mimic_tensor *call_##NAME(mimic_tensor *const *in)                              \
    {                                                                                      \
        mimic_tensor *x = in[0], *ix = IDX, *r = EXPR;                                     \
        mimic_tensor_free(ix);                                                             \
        return r;                                                                          \
    }
INDEX_CASE(gather, T2(AWAY0(4, 3)),
           mk(MIMIC_I64, SHAPE_OF(3, 5), (double[]){3, 0, 3, 1, 2, 0, 0, 2, 1, 3, 2, 2, 2, 0, 1}),
           mimic_gather(x, -1, ix))
INDEX_CASE(index_select, AWAY0(4, 3), mk(MIMIC_I64, SHAPE_OF(5), (double[]){2, 0, 2, 3, 2}),
           mimic_index_select(x, -2, ix))
INDEX_CASE(masked_select, AWAY0(3, 4), mk(MIMIC_BOOL, SHAPE_OF(4), (double[]){1, 0, 1, 1}),
           mimic_masked_select(x, ix))

/* f(t, index, src) with t = in[0], src = in[1]. */
#define SCATTER_CASE(NAME, GT, GS, IDX, EXPR)                                              \
    static void make_##NAME(mimic_tensor **in) { in[0] = GT, in[1] = GS; }                 \
    static mimic_tensor *call_##NAME(mimic_tensor *const *in)                              \
    {                                                                                      \
        mimic_tensor *t = in[0], *src = in[1], *ix = IDX, *r = EXPR;                       \
        mimic_tensor_free(ix);                                                             \
        return r;                                                                          \
    }
SCATTER_CASE(index_add, T2(AWAY0(3, 4)), AWAY0(4, 5), mk(MIMIC_I64, SHAPE_OF(5), (double[]){2, 0, 2, 1, 2}),
             mimic_index_add(t, -1, ix, src))
SCATTER_CASE(scatter_add, AWAY0(3, 4), T2(AWAY0(4, 2)),
             mk(MIMIC_I64, SHAPE_OF(2, 4), (double[]){0, 2, 1, 1, 0, 1, 1, 2}), mimic_scatter_add(t, -2, ix, src))
SCATTER_CASE(masked_scatter, AWAY0(3, 4), AWAY0(2, 3), mk(MIMIC_BOOL, SHAPE_OF(4), (double[]){0, 1, 1, 0}),
             mimic_masked_scatter(t, ix, src))
SCATTER_CASE(slice_scatter, T2(AWAY0(5, 4)), AWAY0(4, 2), NULL, mimic_slice_scatter(t, src, -1, 1, 5, 2))

static const gcase cases_shape[] = {
    CASE(view), CASE(reshape), CASE(flatten), CASE(squeeze), CASE(unsqueeze), CASE(transpose), CASE(permute),
    CASE(expand), CASE(slice), CASE(narrow), CASE(select), CASE(contiguous), CASE(clone), CASE(to_dtype),
    CASE(cat), CASE(stack), CASE(gather), CASE(index_select), CASE(masked_select), CASE(index_add),
    CASE(scatter_add), CASE(masked_scatter), CASE(slice_scatter), CASE(sort), CASE(topk), {NULL, NULL, NULL},
};
