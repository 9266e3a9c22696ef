/* Autograd of views, copies, joining/indexing and sorting: the in-place rules
 * (fill/copy refused on tensors that require grad, version bumps through
 * views), second derivatives through view and index chains, the scatter ops'
 * values, errors and thread-count independence. Gradients of each op against
 * finite differences are in test_autograd.c (gradcases_shape.h). Backward is
 * driven with explicit upstream gradients, so nothing here depends on the
 * reductions being differentiable. */
#include "check.h"
#include "mimic/autograd.h"
#include "mimic/ops.h"
#include "mimic/rng.h"

#include "testutil.h"
#include "gradcheck.h"

static mimic_rng rng;

/* Element i (row-major) of any tensor, contiguous or not. */
static double el(const mimic_tensor *t, int64_t i)
{
    int64_t idx[MIMIC_MAX_DIMS];
    fd_unravel(t, i, idx);
    return mimic_get(t, idx);
}

static bool all_equal(const mimic_tensor *t, const double *want)
{
    if (!t)
        return false;
    for (int64_t i = 0; i < mimic_numel(t); i++)
        if (el(t, i) != want[i])
            return false;
    return true;
}

static mimic_tensor *leaf(mimic_dtype dt, int ndim, const int64_t *shape, const double *v)
{
    mimic_tensor *t = mk(dt, ndim, shape, v);
    mimic_set_requires_grad(t, true);
    return t;
}

TEST(test_fill_and_copy_into_a_tensor_that_requires_grad_are_refused)
{
    mimic_tensor *x = leaf(MIMIC_F64, SHAPE_OF(2, 2), (double[]){1, 2, 3, 4});
    mimic_tensor *y = mk(MIMIC_F64, SHAPE_OF(2), (double[]){5, 6});
    CHECK_ERR(mimic_fill(x, 0), MIMIC_ESTATE, "fill: in-place changes of a tensor that requires grad");
    CHECK_ERR(mimic_copy(x, y), MIMIC_ESTATE, "copy: in-place changes");
    /* A view of it requires grad too (it has a node), so writing through it is refused. */
    mimic_tensor *v = mimic_narrow(x, 0, 1, 1);
    CHECK(v && mimic_requires_grad(v) && strcmp(mimic_grad_fn_name(v), "narrow") == 0);
    CHECK_ERR(mimic_fill(v, 0), MIMIC_ESTATE, "fill:");
    CHECK(at(x, 2) == 3);
    /* Shape errors come first and change nothing. */
    uint64_t v0 = mimic_version(x);
    mimic_tensor *z = mk(MIMIC_F64, SHAPE_OF(3), (double[]){0, 0, 0});
    CHECK_ERR(mimic_copy(x, z), MIMIC_ESHAPE, "does not broadcast");
    CHECK(mimic_version(x) == v0);
    /* With grad mode off (an optimizer step) both work and bump the version. */
    bool prev = mimic_set_grad_enabled(false);
    CHECK_OK(mimic_copy(x, y));
    CHECK(at(x, 0) == 5 && at(x, 3) == 6 && mimic_version(x) == v0 + 1);
    CHECK_OK(mimic_fill(v, 9));
    CHECK(at(x, 2) == 9 && mimic_version(x) == v0 + 2);
    mimic_set_grad_enabled(prev);
    /* Copying out of a tensor that requires grad copies values only. */
    mimic_tensor *d = mimic_zeros(SHAPE_OF(2, 2), MIMIC_F64);
    CHECK_OK(mimic_copy(d, x));
    CHECK(!mimic_requires_grad(d) && at(d, 0) == 5);
    /* mimic_set is the raw accessor: no check, but the version moves. */
    mimic_set(x, (int64_t[]){0, 1}, 7);
    CHECK(at(x, 1) == 7 && mimic_version(x) == v0 + 3);
    mimic_tensor_free(d);
    mimic_tensor_free(z);
    mimic_tensor_free(v);
    mimic_tensor_free(y);
    mimic_tensor_free(x);
}

TEST(test_modifying_a_saved_tensor_through_a_view_is_caught)
{
    mimic_tensor *w = leaf(MIMIC_F64, SHAPE_OF(3), (double[]){1, 2, 3});
    mimic_tensor *a = mk(MIMIC_F64, SHAPE_OF(2, 3), (double[]){1, 2, 3, 4, 5, 6});
    mimic_tensor *ones = mimic_ones(SHAPE_OF(2, 3), MIMIC_F64);
    mimic_tensor *p = mimic_binary(MIMIC_MUL, w, a); /* dp/dw reads a */
    mimic_tensor *row = mimic_select(a, 0, 1);       /* a plain view: a needs no grad */
    CHECK(row && !mimic_requires_grad(row));
    CHECK_OK(mimic_fill(row, 0));
    CHECK_ERR(mimic_backward(p, ones, false), MIMIC_ESTATE, "'mul' needs for its gradient was modified in place");
    mimic_tensor_free(p);
    mimic_tensor_free(row);

    /* Sort's saved permutation is the indices the caller got back. */
    mimic_tensor *ix, *s = mimic_sort(w, 0, false, &ix);
    CHECK(s && ix && !mimic_requires_grad(ix) && strcmp(mimic_grad_fn_name(s), "sort") == 0);
    mimic_tensor *sv = mimic_narrow(ix, 0, 0, 2);
    CHECK_OK(mimic_fill(sv, 0));
    mimic_tensor *g3 = mimic_ones(SHAPE_OF(3), MIMIC_F64);
    CHECK_ERR(mimic_backward(s, g3, false), MIMIC_ESTATE, "'sort' needs");
    mimic_tensor_free(sv);
    mimic_tensor_free(ix);
    mimic_tensor_free(s);

    /* A view's gradient reads no values: changing the base after it is harmless... */
    mimic_tensor *x = leaf(MIMIC_F64, SHAPE_OF(2, 3), (double[]){1, 2, 3, 4, 5, 6});
    mimic_tensor *t = mimic_transpose(x, 0, 1);
    bool prev = mimic_set_grad_enabled(false);
    CHECK_OK(mimic_fill(x, 2));
    mimic_set_grad_enabled(prev);
    mimic_tensor *tw = mk(MIMIC_F64, SHAPE_OF(3, 2), (double[]){1, 2, 3, 4, 5, 6});
    CHECK_OK(mimic_backward(t, tw, false));
    CHECK(all_equal(mimic_grad(x), (double[]){1, 3, 5, 2, 4, 6}));
    /* ...but an op that read the view sees the change (one storage, one version). */
    mimic_tensor *sq = mimic_binary(MIMIC_MUL, t, t);
    prev = mimic_set_grad_enabled(false);
    mimic_tensor *col = mimic_select(x, 1, 0);
    CHECK_OK(mimic_fill(col, 1));
    mimic_set_grad_enabled(prev);
    CHECK_ERR(mimic_backward(sq, tw, false), MIMIC_ESTATE, "'mul' needs");
    mimic_tensor_free(col);
    mimic_tensor_free(sq);
    mimic_tensor_free(tw);
    mimic_tensor_free(t);
    mimic_tensor_free(x);
    mimic_tensor_free(g3);
    mimic_tensor_free(ones);
    mimic_tensor_free(a);
    mimic_tensor_free(w);
}

TEST(test_second_derivative_through_a_view_chain)
{
    /* r = reshape(narrow(transpose(x), 0, 1, 2)): r[2a+b] = x[b][a+1].
     * f = r^3 weighted by W: df/dx = 3 r^2 W there, 0 in column 0;
     * d/dx sum(df/dx * W2) = 6 r W W2. */
    mimic_tensor *x = leaf(MIMIC_F64, SHAPE_OF(2, 3), (double[]){1, 2, 3, 4, 5, 6});
    mimic_tensor *t = mimic_transpose(x, 0, 1);
    mimic_tensor *v = mimic_narrow(t, 0, 1, 2);
    mimic_tensor *r = mimic_reshape(v, 1, (int64_t[]){4});
    CHECK(r && strcmp(mimic_grad_fn_name(r), "reshape") == 0); /* a copy, but one node */
    mimic_tensor *r2 = mimic_binary(MIMIC_MUL, r, r), *f = mimic_binary(MIMIC_MUL, r2, r);
    mimic_tensor *W = mk(MIMIC_F64, SHAPE_OF(4), (double[]){1, 2, 3, 4});
    mimic_tensor *W2 = mk(MIMIC_F64, SHAPE_OF(2, 3), (double[]){10, 20, 30, 40, 50, 60});
    CHECK_OK(mimic_backward(f, W, true));
    mimic_tensor *g = mimic_grad(x);
    /* r = {x01, x11, x02, x12} = {2, 5, 3, 6} */
    CHECK(all_equal(g, (double[]){0, 3 * 4 * 1, 3 * 9 * 3, 0, 3 * 25 * 2, 3 * 36 * 4}));
    CHECK(g && mimic_requires_grad(g));
    mimic_tensor_retain(g);
    mimic_zero_grad(x);
    CHECK_OK(mimic_backward(g, W2, false));
    CHECK(all_equal(mimic_grad(x), (double[]){0, 6 * 2 * 1 * 20, 6 * 3 * 3 * 30, 0, 6 * 5 * 2 * 50, 6 * 6 * 4 * 60}));
    mimic_tensor_free(g);
    mimic_tensor_free(W2);
    mimic_tensor_free(W);
    mimic_tensor_free(f);
    mimic_tensor_free(r2);
    mimic_tensor_free(r);
    mimic_tensor_free(v);
    mimic_tensor_free(t);
    mimic_tensor_free(x);
}

TEST(test_second_derivative_through_index_ops)
{
    /* y = index_select(x, idx) squared, weighted by W: dx_i = sum_{k: idx_k = i} 2 x_i W_k
     * (an index_add); d/dx sum(dx * W2) = sum_{k: idx_k = i} 2 W_k W2_i. */
    mimic_tensor *x = leaf(MIMIC_F64, SHAPE_OF(3), (double[]){1, 2, 3});
    mimic_tensor *idx = mk(MIMIC_I64, SHAPE_OF(4), (double[]){2, 0, 2, 1});
    mimic_tensor *y = mimic_index_select(x, 0, idx), *y2 = mimic_binary(MIMIC_MUL, y, y);
    mimic_tensor *W = mk(MIMIC_F64, SHAPE_OF(4), (double[]){1, 2, 3, 4});
    mimic_tensor *W2 = mk(MIMIC_F64, SHAPE_OF(3), (double[]){5, 6, 7});
    CHECK_OK(mimic_backward(y2, W, true));
    mimic_tensor *g = mimic_grad(x);
    CHECK(all_equal(g, (double[]){2 * 1 * 2, 2 * 2 * 4, 2 * 3 * 4}));
    mimic_tensor_retain(g);
    mimic_zero_grad(x);
    CHECK_OK(mimic_backward(g, W2, false));
    CHECK(all_equal(mimic_grad(x), (double[]){20, 48, 56}));
    mimic_tensor_free(g);
    mimic_zero_grad(x);

    /* The same through gather and sort (both scatter_add backwards). */
    mimic_tensor *gi = mk(MIMIC_I64, SHAPE_OF(4), (double[]){2, 0, 2, 1});
    mimic_tensor *s = mimic_sort(x, 0, true, NULL); /* {3, 2, 1} */
    mimic_tensor *ga = mimic_gather(s, 0, gi);      /* {1, 3, 1, 2} = x2.. : {x0, x2, x0, x1} */
    mimic_tensor *q = mimic_binary(MIMIC_MUL, ga, ga);
    CHECK_OK(mimic_backward(q, W, true));
    g = mimic_grad(x);
    CHECK(all_equal(g, (double[]){2 * 1 * (1 + 3), 2 * 2 * 4, 2 * 3 * 2}));
    mimic_tensor_retain(g);
    mimic_zero_grad(x);
    CHECK_OK(mimic_backward(g, W2, false));
    CHECK(all_equal(mimic_grad(x), (double[]){2 * 4 * 5, 2 * 4 * 6, 2 * 2 * 7}));
    mimic_tensor_free(g);
    mimic_tensor_free(q);
    mimic_tensor_free(ga);
    mimic_tensor_free(s);
    mimic_tensor_free(gi);
    mimic_tensor_free(W2);
    mimic_tensor_free(W);
    mimic_tensor_free(y2);
    mimic_tensor_free(y);
    mimic_tensor_free(idx);
    mimic_tensor_free(x);
}

TEST(test_split_cat_stack_gradients)
{
    mimic_tensor *x = leaf(MIMIC_F32, SHAPE_OF(5), (double[]){1, 2, 3, 4, 5});
    int n = 0;
    mimic_tensor **p = mimic_split(x, 2, -1, &n);
    CHECK(n == 3 && strcmp(mimic_grad_fn_name(p[2]), "narrow") == 0);
    mimic_tensor *w = mk(MIMIC_F32, SHAPE_OF(2), (double[]){10, 20});
    CHECK_OK(mimic_backward(p[1], w, false));
    CHECK_OK(mimic_backward(p[0], w, false));
    CHECK(all_equal(mimic_grad(x), (double[]){10, 20, 10, 20, 0}) && mimic_grad(x)->dtype == MIMIC_F32);
    mimic_zero_grad(x);
    /* float32 joined with float64: the result is float64, x's gradient float32. */
    mimic_tensor *d = leaf(MIMIC_F64, SHAPE_OF(5), (double[]){0, 0, 0, 0, 0});
    mimic_tensor *c = mimic_cat((mimic_tensor *[]){d, x}, 2, 0);
    mimic_tensor *s = mimic_stack((mimic_tensor *[]){x, d}, 2, -1);
    CHECK(c && c->dtype == MIMIC_F64 && SHAPE_IS(s, 5, 2));
    mimic_tensor *cw = mimic_arange(0, 10, 1, MIMIC_F64), *sw = mimic_reshape(cw, 2, (int64_t[]){5, 2});
    CHECK_OK(mimic_backward(c, cw, false));
    CHECK_OK(mimic_backward(s, sw, false));
    CHECK(all_equal(mimic_grad(x), (double[]){5 + 0, 6 + 2, 7 + 4, 8 + 6, 9 + 8}) && mimic_grad(x)->dtype == MIMIC_F32);
    CHECK(all_equal(mimic_grad(d), (double[]){0 + 1, 1 + 3, 2 + 5, 3 + 7, 4 + 9}));
    for (int i = 0; i < n; i++)
        mimic_tensor_free(p[i]);
    mimic_free(p);
    mimic_tensor_free(sw);
    mimic_tensor_free(cw);
    mimic_tensor_free(s);
    mimic_tensor_free(c);
    mimic_tensor_free(d);
    mimic_tensor_free(w);
    mimic_tensor_free(x);
}

TEST(test_copies_and_dtype_conversion)
{
    mimic_tensor *x = leaf(MIMIC_F32, SHAPE_OF(2, 2), (double[]){1, 2, 3, 4});
    mimic_tensor *d = mimic_to_dtype(x, MIMIC_F64);
    CHECK(d && d->dtype == MIMIC_F64 && strcmp(mimic_grad_fn_name(d), "to_dtype") == 0);
    mimic_tensor *w = mk(MIMIC_F64, SHAPE_OF(2, 2), (double[]){0.5, 1, 2, 4});
    CHECK_OK(mimic_backward(d, w, false));
    CHECK(mimic_grad(x)->dtype == MIMIC_F32 && all_equal(mimic_grad(x), (double[]){0.5, 1, 2, 4}));
    /* Integer results are cut off from the graph. */
    mimic_tensor *i = mimic_to_dtype(x, MIMIC_I64), *b = mimic_to_dtype(x, MIMIC_BOOL);
    CHECK(i && b && !mimic_requires_grad(i) && !mimic_requires_grad(b));
    /* contiguous of a contiguous tensor is the tensor itself: no node. */
    mimic_tensor *c = mimic_contiguous(x);
    CHECK(c == x && mimic_is_leaf(c));
    mimic_tensor *t = mimic_transpose(x, 0, 1), *ct = mimic_contiguous(t), *cl = mimic_clone(x);
    CHECK(strcmp(mimic_grad_fn_name(ct), "contiguous") == 0 && strcmp(mimic_grad_fn_name(cl), "clone") == 0);
    CHECK_ERR_PTR(mimic_to_dtype(x, (mimic_dtype)9), MIMIC_EDTYPE, "to_dtype: invalid dtype");
    /* Nothing is recorded with grad mode off. */
    bool prev = mimic_set_grad_enabled(false);
    mimic_tensor *v = mimic_view(x, 1, (int64_t[]){4}), *e = mimic_expand(v, 2, (int64_t[]){3, 4});
    CHECK(v && e && !mimic_requires_grad(v) && !mimic_requires_grad(e));
    mimic_set_grad_enabled(prev);
    mimic_tensor_free(e);
    mimic_tensor_free(v);
    mimic_tensor_free(cl);
    mimic_tensor_free(ct);
    mimic_tensor_free(t);
    mimic_tensor_free(c);
    mimic_tensor_free(b);
    mimic_tensor_free(i);
    mimic_tensor_free(w);
    mimic_tensor_free(d);
    mimic_tensor_free(x);
}

TEST(test_scatter_values)
{
    mimic_tensor *t = mk(MIMIC_F64, SHAPE_OF(3, 2), (double[]){1, 2, 3, 4, 5, 6});
    mimic_tensor *ix = mk(MIMIC_I64, SHAPE_OF(3), (double[]){2, 0, 2});
    mimic_tensor *src = mk(MIMIC_F32, SHAPE_OF(3, 2), (double[]){10, 20, 30, 40, 50, 60});
    mimic_tensor *r = mimic_index_add(t, -2, ix, src);
    CHECK(r && r->dtype == MIMIC_F64 && all_equal(r, (double[]){31, 42, 3, 4, 65, 86}));
    CHECK(at(t, 0) == 1); /* t itself is untouched */
    mimic_tensor_free(r);
    /* Along the last dim, with a transposed src. */
    mimic_tensor *st = mk(MIMIC_F64, SHAPE_OF(3, 3), (double[]){1, 2, 3, 4, 5, 6, 7, 8, 9});
    mimic_tensor *sT = mimic_transpose(st, 0, 1); /* rows {1,4,7}, {2,5,8}, {3,6,9} */
    mimic_tensor *t3 = mimic_zeros(SHAPE_OF(3, 2), MIMIC_F64);
    mimic_tensor *ic = mk(MIMIC_I64, SHAPE_OF(3), (double[]){1, 1, 0});
    r = mimic_index_add(t3, 1, ic, sT);
    CHECK(all_equal(r, (double[]){7, 5, 8, 7, 9, 9}));
    mimic_tensor_free(r);

    /* scatter_add: out[index[i][j]][j] += src[i][j]. */
    mimic_tensor *si = mk(MIMIC_I64, SHAPE_OF(2, 2), (double[]){0, 2, 0, 1});
    mimic_tensor *ss = mk(MIMIC_F64, SHAPE_OF(2, 2), (double[]){1, 2, 3, 4});
    r = mimic_scatter_add(t, 0, si, ss);
    CHECK(all_equal(r, (double[]){1 + 1 + 3, 2, 3, 4 + 4, 5, 6 + 2}));
    mimic_tensor_free(r);
    /* int64 too; a 0-dim tensor is one slot. */
    mimic_tensor *ti = mk(MIMIC_I64, SHAPE_OF(2), (double[]){5, 7});
    mimic_tensor *i1 = mk(MIMIC_I64, SHAPE_OF(3), (double[]){1, 1, 0});
    mimic_tensor *v1 = mk(MIMIC_I64, SHAPE_OF(3), (double[]){1, 2, 3});
    r = mimic_scatter_add(ti, 0, i1, v1);
    CHECK(r && r->dtype == MIMIC_I64 && all_equal(r, (double[]){8, 10}));
    mimic_tensor_free(r);
    mimic_tensor *z0 = mimic_scalar(1, MIMIC_F64), *i0 = mimic_scalar(0, MIMIC_I64), *s0 = mimic_scalar(2, MIMIC_F64);
    r = mimic_scatter_add(z0, 0, i0, s0);
    CHECK(r && r->ndim == 0 && at(r, 0) == 3);
    mimic_tensor_free(r);

    /* slice_scatter and masked_scatter. */
    mimic_tensor *ms = mk(MIMIC_F64, SHAPE_OF(4), (double[]){-1, -2, -3, -4});
    mimic_tensor *ms2 = mimic_view(ms, 2, (int64_t[]){2, 2});
    r = mimic_slice_scatter(t, ms2, 0, 0, 3, 2); /* rows 0 and 2 */
    CHECK(all_equal(r, (double[]){-1, -2, 3, 4, -3, -4}));
    mimic_tensor_free(r);
    mimic_tensor_free(ms2);
    mimic_tensor *m = mk(MIMIC_BOOL, SHAPE_OF(3, 1), (double[]){1, 0, 1});
    r = mimic_masked_scatter(t, m, ms);
    CHECK(all_equal(r, (double[]){-1, -2, 3, 4, -3, -4}));
    mimic_tensor_free(r);

    mimic_tensor_free(ms);
    mimic_tensor_free(m);
    mimic_tensor_free(s0);
    mimic_tensor_free(i0);
    mimic_tensor_free(z0);
    mimic_tensor_free(v1);
    mimic_tensor_free(i1);
    mimic_tensor_free(ti);
    mimic_tensor_free(ss);
    mimic_tensor_free(si);
    mimic_tensor_free(ic);
    mimic_tensor_free(t3);
    mimic_tensor_free(sT);
    mimic_tensor_free(st);
    mimic_tensor_free(src);
    mimic_tensor_free(ix);
    mimic_tensor_free(t);
}

TEST(test_scatter_errors)
{
    mimic_tensor *t = mimic_zeros(SHAPE_OF(3, 2), MIMIC_F32);
    mimic_tensor *ix = mk(MIMIC_I64, SHAPE_OF(2), (double[]){0, 3});
    mimic_tensor *src = mimic_ones(SHAPE_OF(2, 2), MIMIC_F32);
    mimic_tensor *bad = mimic_ones(SHAPE_OF(2, 3), MIMIC_F32), *fi = mimic_zeros(SHAPE_OF(2), MIMIC_F32);
    mimic_tensor *b = mimic_zeros(SHAPE_OF(3, 2), MIMIC_BOOL), *bs = mimic_zeros(SHAPE_OF(2, 2), MIMIC_BOOL);
    mimic_tensor *li = mimic_zeros(SHAPE_OF(2, 2), MIMIC_I64);
    CHECK_ERR_PTR(mimic_index_add(t, 0, ix, src), MIMIC_EARG, "index_add: index 3 is out of range for dim -2");
    CHECK_ERR_PTR(mimic_index_add(t, 0, fi, src), MIMIC_EDTYPE, "index must be int64");
    CHECK_ERR_PTR(mimic_index_add(t, 0, ix, bad), MIMIC_ESHAPE, "index_add: src of shape [2,3]");
    CHECK_ERR_PTR(mimic_index_add(t, 2, ix, src), MIMIC_EARG, "dim 2 out of range");
    CHECK_ERR_PTR(mimic_index_add(b, 0, ix, bs), MIMIC_EDTYPE, "bool tensors cannot be added");
    CHECK_ERR_PTR(mimic_index_add(t, 0, li, src), MIMIC_ESHAPE, "index must be 1-D");
    CHECK_ERR_PTR(mimic_index_add(t, 0, ix, li), MIMIC_EDTYPE, "src is int64 but the tensor is float32");
    CHECK_ERR_PTR(mimic_scatter_add(t, 0, li, bad), MIMIC_ESHAPE, "scatter_add: index [2,2] and src [2,3]");
    mimic_tensor *l3 = mk(MIMIC_I64, SHAPE_OF(2, 2), (double[]){0, 1, 2, -1});
    CHECK_ERR_PTR(mimic_scatter_add(t, 0, l3, src), MIMIC_EARG, "scatter_add: index -1 is out of range");
    CHECK_ERR_PTR(mimic_slice_scatter(t, src, 0, 0, 3, 1), MIMIC_ESHAPE, "does not match the slice's shape [3,2]");
    CHECK_ERR_PTR(mimic_slice_scatter(t, src, 0, 2, 5, 1), MIMIC_EARG, "range [2, 5) is outside");
    CHECK_ERR_PTR(mimic_masked_scatter(t, b, src), MIMIC_ESHAPE, "src has 4 elements but the mask selects 0");
    CHECK_ERR_PTR(mimic_masked_scatter(t, bad, src), MIMIC_ESHAPE, "mask of shape [2,3] does not broadcast");
    CHECK_ERR_PTR(mimic_index_add(NULL, 0, ix, src), MIMIC_EARG, "NULL");
    mimic_tensor_free(l3);
    mimic_tensor_free(li);
    mimic_tensor_free(bs);
    mimic_tensor_free(b);
    mimic_tensor_free(fi);
    mimic_tensor_free(bad);
    mimic_tensor_free(src);
    mimic_tensor_free(ix);
    mimic_tensor_free(t);
}

/* Sums in index order, whatever the thread count: bit-identical to a plain
 * sequential loop with 1 and with 2 threads. Large enough to use threads. */
TEST(test_scatter_adds_do_not_depend_on_thread_count)
{
    enum { R = 64, C = 1024, N = 512 };
    mimic_tensor *t = RAND(MIMIC_F32, R, C), *src = RAND(MIMIC_F32, N, C);
    mimic_tensor *u = mimic_empty(SHAPE_OF(N, C), MIMIC_F64);
    mimic_rng_uniform(&rng, u, 0, R);
    mimic_tensor *sidx = mimic_to_dtype(u, MIMIC_I64);              /* [N, C] in [0, R) */
    mimic_tensor *iidx = mimic_select(sidx, 1, 7);                    /* [N], a strided index */
    mimic_tensor *ref_i = mimic_clone(t), *ref_s = mimic_clone(t);
    float *ri = mimic_data(ref_i), *rs = mimic_data(ref_s);
    const float *sv = mimic_data(src);
    const int64_t *si = mimic_data(sidx);
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < C; c++) {
            ri[si[n * C + 7] * C + c] += sv[n * C + c];
            rs[si[n * C + c] * C + c] += sv[n * C + c];
        }
    int prev = mimic_get_num_threads();
    for (int th = 1; th <= 2; th++) {
        mimic_set_num_threads(th);
        mimic_tensor *a = mimic_index_add(t, 0, iidx, src), *b = mimic_scatter_add(t, 0, sidx, src);
        CHECK(a && memcmp(mimic_data(a), ri, sizeof(float) * R * C) == 0);
        CHECK(b && memcmp(mimic_data(b), rs, sizeof(float) * R * C) == 0);
        mimic_tensor_free(a);
        mimic_tensor_free(b);
    }
    mimic_set_num_threads(prev);
    mimic_tensor_free(ref_s);
    mimic_tensor_free(ref_i);
    mimic_tensor_free(iidx);
    mimic_tensor_free(sidx);
    mimic_tensor_free(u);
    mimic_tensor_free(src);
    mimic_tensor_free(t);
}

/* Every allocation failing in turn through a recorded chain and its backward:
 * an error or a success, never a crash or a leak (ASan). */
TEST(test_out_of_memory_while_recording)
{
    mimic_tensor *x = leaf(MIMIC_F64, SHAPE_OF(3, 4), (double[]){1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12});
    mimic_tensor *ix = mk(MIMIC_I64, SHAPE_OF(3), (double[]){1, 0, 1});
    mimic_tensor *w = mimic_ones(SHAPE_OF(2, 3, 1), MIMIC_F64);
    int successes = 0, failures = 0;
    bool ok = false;
    for (int budget = 0; budget < 120; budget++) {
        mimic_zero_grad(x);
        use_budget_allocator(budget);
        mimic_tensor *t = mimic_transpose(x, 0, 1);                 /* [4,3] */
        mimic_tensor *n = t ? mimic_narrow(t, 0, 1, 2) : NULL;      /* [2,3] */
        mimic_tensor *s = n ? mimic_index_select(n, 1, ix) : NULL;  /* [2,3] */
        mimic_tensor *r = s ? mimic_reshape(s, 3, (int64_t[]){2, 3, 1}) : NULL;
        mimic_tensor *sorted = r ? mimic_sort(r, 1, false, NULL) : NULL;
        ok = sorted && mimic_backward(sorted, w, false) == MIMIC_OK;
        mimic_set_allocator(NULL);
        oom_tally(ok, &successes, &failures);
        mimic_tensor_free(sorted);
        mimic_tensor_free(r);
        mimic_tensor_free(s);
        mimic_tensor_free(n);
        mimic_tensor_free(t);
    }
    CHECK(successes > 0 && failures > 10 && successes + failures == 120);
    /* The last run had memory enough: columns 1, 2 of x, its row 1 selected twice. */
    CHECK(ok && all_equal(mimic_grad(x), (double[]){0, 1, 1, 0, 0, 2, 2, 0, 0, 0, 0, 0}));
    mimic_tensor_free(w);
    mimic_tensor_free(ix);
    mimic_tensor_free(x);
}

int main(void)
{
    mimic_rng_init(&rng, 31);
    RUN(test_fill_and_copy_into_a_tensor_that_requires_grad_are_refused);
    RUN(test_modifying_a_saved_tensor_through_a_view_is_caught);
    RUN(test_second_derivative_through_a_view_chain);
    RUN(test_second_derivative_through_index_ops);
    RUN(test_split_cat_stack_gradients);
    RUN(test_copies_and_dtype_conversion);
    RUN(test_scatter_values);
    RUN(test_scatter_errors);
    RUN(test_scatter_adds_do_not_depend_on_thread_count);
    RUN(test_out_of_memory_while_recording);
    return CHECK_DONE();
}
