/* Linear algebra: matmul/bmm/dot/outer against explicit loops in double, over
 * transposed, sliced, broadcast and 1-D operands, empty dims and errors. An
 * allocation-counting allocator checks that BLAS-compatible views are not copied. */
#include "check.h"
#include "testutil.h"
#include "mimic/ops.h"
#include "mimic/rng.h"

static mimic_rng rng;

/* r == a @ b under NumPy's rules, element by element in double; returns the
 * number of mismatches (each also counted as a check failure). */
static int check_matmul(const mimic_tensor *r, const mimic_tensor *a, const mimic_tensor *b, double tol)
{
    int ab = a->ndim > 2 ? a->ndim - 2 : 0, bb = b->ndim > 2 ? b->ndim - 2 : 0;
    int nb = ab > bb ? ab : bb;
    int64_t n = a->ndim == 1 ? 1 : a->shape[a->ndim - 2], k = a->shape[a->ndim - 1];
    int64_t m = b->ndim == 1 ? 1 : b->shape[b->ndim - 1];
    int64_t bshape[MIMIC_MAX_DIMS], nbatch = 1;
    for (int d = 0; d < nb; d++) {
        int da = d - (nb - ab), db = d - (nb - bb);
        int64_t sa = da >= 0 ? a->shape[da] : 1, sb = db >= 0 ? b->shape[db] : 1;
        bshape[d] = sa == 1 ? sb : sa;
        nbatch *= bshape[d];
    }
    int bad = 0;
    for (int64_t bi = 0; bi < nbatch; bi++) {
        int64_t bidx[MIMIC_MAX_DIMS], rem = bi;
        for (int d = nb - 1; d >= 0; d--) {
            bidx[d] = rem % bshape[d];
            rem /= bshape[d];
        }
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < m; j++) {
                int64_t ia[MIMIC_MAX_DIMS], ib[MIMIC_MAX_DIMS], ir[MIMIC_MAX_DIMS];
                for (int d = 0; d < ab; d++)
                    ia[d] = a->shape[d] == 1 ? 0 : bidx[nb - ab + d];
                for (int d = 0; d < bb; d++)
                    ib[d] = b->shape[d] == 1 ? 0 : bidx[nb - bb + d];
                double s = 0, sabs = 0;
                for (int64_t p = 0; p < k; p++) {
                    if (a->ndim == 1)
                        ia[0] = p;
                    else
                        ia[ab] = i, ia[ab + 1] = p;
                    if (b->ndim == 1)
                        ib[0] = p;
                    else
                        ib[bb] = p, ib[bb + 1] = j;
                    double x = mimic_get(a, ia) * mimic_get(b, ib);
                    s += x;
                    sabs += fabs(x);
                }
                int q = 0;
                for (int d = 0; d < nb; d++)
                    ir[q++] = bidx[d];
                if (a->ndim >= 2)
                    ir[q++] = i;
                if (b->ndim >= 2)
                    ir[q++] = j;
                double got = mimic_get(r, ir);
                if (!(fabs(got - s) <= tol * (1 + sabs))) {
                    if (bad++ < 5)
                        fprintf(stderr, "  matmul mismatch at batch %lld (%lld,%lld): %.9g vs %.9g\n",
                                (long long)bi, (long long)i, (long long)j, got, s);
                }
            }
    }
    if (bad)
        check_failures++;
    return bad;
}

#define TOL32 1e-5
#define TOL64 1e-12

TEST(test_matmul_2d_values)
{
    mimic_tensor *a = RAND(MIMIC_F32, 7, 5), *b = RAND(MIMIC_F32, 5, 3);
    mimic_tensor *r = mimic_matmul(a, b);
    CHECK_PTR(r);
    CHECK(r && r->dtype == MIMIC_F32 && SHAPE_IS(r, 7, 3));
    if (r)
        check_matmul(r, a, b, TOL32);
    mimic_tensor_free(r);
    mimic_tensor_free(a);
    mimic_tensor_free(b);

    /* Sizes past BLAS's block sizes, in float64. */
    a = RAND(MIMIC_F64, 67, 131);
    b = RAND(MIMIC_F64, 131, 45);
    r = mimic_matmul(a, b);
    CHECK(r && r->dtype == MIMIC_F64 && SHAPE_IS(r, 67, 45));
    if (r)
        check_matmul(r, a, b, TOL64);
    mimic_tensor_free(r);
    mimic_tensor_free(a);
    mimic_tensor_free(b);
}

TEST(test_matmul_mixed_and_out_dtype)
{
    mimic_tensor *a = RAND(MIMIC_F32, 4, 6), *b = RAND(MIMIC_F64, 6, 5);
    mimic_tensor *r = mimic_matmul(a, b);
    CHECK(r && r->dtype == MIMIC_F64 && SHAPE_IS(r, 4, 5));
    if (r)
        check_matmul(r, a, b, TOL64);
    mimic_tensor_free(r);
    /* float32 operands into a float64 output: computed in float32, converted. */
    mimic_tensor *b32 = mimic_to_dtype(b, MIMIC_F32);
    mimic_tensor *o = mimic_empty(2, (int64_t[]){4, 5}, MIMIC_F64);
    CHECK_OK(mimic_matmul_out(o, a, b32));
    check_matmul(o, a, b32, TOL32);
    mimic_tensor_free(o);
    mimic_tensor_free(b32);
    mimic_tensor_free(a);
    mimic_tensor_free(b);
}

/* Transposed and column-sliced operands and outputs go to BLAS as they are. */
TEST(test_matmul_views_without_copies)
{
    mimic_tensor *at = RAND(MIMIC_F32, 5, 7), *bt = RAND(MIMIC_F32, 3, 5);
    mimic_tensor *a = mimic_transpose(at, 0, 1), *b = mimic_transpose(bt, 0, 1); /* [7,5], [5,3] */
    mimic_tensor *wide = RAND(MIMIC_F32, 7, 12), *an = mimic_narrow(wide, 1, 2, 5); /* ld 12 */
    mimic_tensor *wideb = RAND(MIMIC_F32, 9, 3), *bn = mimic_narrow(wideb, 0, 3, 5);
    mimic_tensor *wt = RAND(MIMIC_F32, 8, 5), *wn = mimic_narrow(wt, 0, 1, 5), *ant = mimic_transpose(wn, 0, 1);
    mimic_tensor *o = mimic_empty(2, (int64_t[]){7, 3}, MIMIC_F32);
    mimic_tensor *oc = mimic_empty(2, (int64_t[]){3, 7}, MIMIC_F32), *ot = mimic_transpose(oc, 0, 1);
    const mimic_tensor *as[] = {a, an}, *bs[] = {b, bn};
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++)
            for (int q = 0; q < 2; q++) {
                mimic_tensor *out = q ? ot : o;
                long before = alloc_count();
                CHECK_OK(mimic_matmul_out(out, as[i], bs[j]));
                CHECK(alloc_count() == before);
                check_matmul(out, as[i], bs[j], TOL32);
            }
    CHECK(ant && SHAPE_IS(ant, 5, 5));
    mimic_tensor *o55 = mimic_empty(2, (int64_t[]){7, 5}, MIMIC_F32);
    long before = alloc_count();
    CHECK_OK(mimic_matmul_out(o55, a, ant));
    CHECK(alloc_count() == before);
    check_matmul(o55, a, ant, TOL32);
    mimic_tensor_free(o55);
    mimic_tensor_free(ant);
    mimic_tensor_free(wn);
    mimic_tensor_free(wt);
    mimic_tensor_free(o);
    mimic_tensor_free(ot);
    mimic_tensor_free(oc);
    mimic_tensor_free(an);
    mimic_tensor_free(wide);
    mimic_tensor_free(bn);
    mimic_tensor_free(wideb);
    mimic_tensor_free(a);
    mimic_tensor_free(b);
    mimic_tensor_free(at);
    mimic_tensor_free(bt);
}

/* Layouts BLAS cannot take (a column step, a zero stride) are copied and still right. */
TEST(test_matmul_irregular_layouts)
{
    mimic_tensor *big = RAND(MIMIC_F64, 6, 10), *a = mimic_slice(big, 1, 0, 10, 2); /* [6,5], col stride 2 */
    mimic_tensor *row = RAND(MIMIC_F64, 1, 4), *b = mimic_expand(row, 2, (int64_t[]){5, 4}); /* row stride 0 */
    mimic_tensor *obig = mimic_empty(2, (int64_t[]){6, 12}, MIMIC_F64);
    mimic_tensor *o = mimic_slice(obig, 1, 1, 9, 2); /* [6,4] with column step */
    CHECK_OK(mimic_matmul_out(o, a, b));
    check_matmul(o, a, b, TOL64);
    mimic_tensor_free(o);
    mimic_tensor_free(obig);
    mimic_tensor_free(a);
    mimic_tensor_free(big);
    mimic_tensor_free(b);
    mimic_tensor_free(row);
}

/* An output that shares memory with an operand is computed into a temporary. */
TEST(test_matmul_out_aliases_operand)
{
    mimic_tensor *a = RAND(MIMIC_F32, 6, 6), *b = RAND(MIMIC_F32, 6, 6);
    mimic_tensor *want = mimic_matmul(a, b);
    CHECK_OK(mimic_matmul_out(a, a, b));
    for (int64_t i = 0; i < 6; i++)
        for (int64_t j = 0; j < 6; j++)
            CHECK_NEAR(mimic_get(a, (int64_t[]){i, j}), mimic_get(want, (int64_t[]){i, j}), 1e-6);
    mimic_tensor_free(want);
    mimic_tensor *bt = mimic_transpose(b, 0, 1);
    want = mimic_matmul(a, bt);
    CHECK_OK(mimic_matmul_out(b, a, bt));
    for (int64_t i = 0; i < 6; i++)
        for (int64_t j = 0; j < 6; j++)
            CHECK_NEAR(mimic_get(b, (int64_t[]){i, j}), mimic_get(want, (int64_t[]){i, j}), 1e-6);
    mimic_tensor_free(want);
    mimic_tensor_free(bt);
    mimic_tensor_free(a);
    mimic_tensor_free(b);
}

TEST(test_matmul_batch_broadcast)
{
    struct { int na; int64_t as[4]; int nb; int64_t bs[4]; int nr; int64_t rs[4]; } cases[] = {
        {4, {2, 1, 4, 3}, 3, {5, 3, 2}, 4, {2, 5, 4, 2}},
        {3, {3, 4, 5}, 2, {5, 2}, 3, {3, 4, 2}},    /* folds into one gemm */
        {3, {3, 1, 5}, 2, {5, 2}, 3, {3, 1, 2}},    /* folds with n = 1 */
        {2, {4, 5}, 3, {3, 5, 2}, 3, {3, 4, 2}},
        {3, {1, 4, 5}, 3, {3, 5, 6}, 3, {3, 4, 6}},
        {3, {3, 4, 5}, 3, {3, 5, 6}, 3, {3, 4, 6}},
        {3, {64, 8, 8}, 3, {64, 8, 8}, 3, {64, 8, 8}}, /* many small gemms: threaded over the batch */
        {4, {2, 3, 4, 5}, 2, {5, 6}, 4, {2, 3, 4, 6}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        mimic_tensor *a = rand_tensor(&rng, cases[c].na, cases[c].as, MIMIC_F32);
        mimic_tensor *b = rand_tensor(&rng, cases[c].nb, cases[c].bs, MIMIC_F32);
        mimic_tensor *r = mimic_matmul(a, b);
        CHECK(r && same_shape(r, cases[c].nr, cases[c].rs));
        if (r && check_matmul(r, a, b, TOL32))
            fprintf(stderr, "  in case %zu\n", c);
        /* With a preallocated output no allocation happens, folded or not. */
        if (r) {
            long before = alloc_count();
            CHECK_OK(mimic_matmul_out(r, a, b));
            CHECK(alloc_count() == before);
            check_matmul(r, a, b, TOL32);
        }
        mimic_tensor_free(r);
        mimic_tensor_free(a);
        mimic_tensor_free(b);
    }
    /* Non-contiguous batch dims: a permuted [4,3,5] -> [3,4,5], b batch-strided. */
    mimic_tensor *ap = RAND(MIMIC_F64, 4, 3, 5), *a = mimic_permute(ap, (int[]){1, 0, 2});
    mimic_tensor *bp = RAND(MIMIC_F64, 6, 5, 2), *b = mimic_slice(bp, 0, 0, 6, 2);
    mimic_tensor *r = mimic_matmul(a, b);
    CHECK(r && SHAPE_IS(r, 3, 4, 2));
    if (r)
        check_matmul(r, a, b, TOL64);
    mimic_tensor_free(r);
    /* A transposed output over a batch. */
    mimic_tensor *oc = mimic_empty(3, (int64_t[]){3, 2, 4}, MIMIC_F64), *ot = mimic_transpose(oc, 1, 2);
    CHECK_OK(mimic_matmul_out(ot, a, b));
    check_matmul(ot, a, b, TOL64);
    mimic_tensor_free(ot);
    mimic_tensor_free(oc);
    mimic_tensor_free(a);
    mimic_tensor_free(ap);
    mimic_tensor_free(b);
    mimic_tensor_free(bp);
}

TEST(test_matmul_1d)
{
    mimic_tensor *v5 = RAND(MIMIC_F32, 5), *m53 = RAND(MIMIC_F32, 5, 3), *m45 = RAND(MIMIC_F32, 4, 5);
    mimic_tensor *b253 = RAND(MIMIC_F32, 2, 5, 3), *b245 = RAND(MIMIC_F32, 2, 4, 5);
    mimic_tensor *w = RAND(MIMIC_F32, 10), *vs = mimic_slice(w, 0, 0, 10, 2); /* strided vector */
    struct { const mimic_tensor *a, *b; int nr; int64_t rs[3]; } cases[] = {
        {v5, v5, 0, {0}}, {v5, m53, 1, {3}}, {m45, v5, 1, {4}}, {v5, b253, 2, {2, 3}},
        {b245, v5, 2, {2, 4}}, {vs, v5, 0, {0}}, {m45, vs, 1, {4}}, {vs, m53, 1, {3}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        mimic_tensor *r = mimic_matmul(cases[c].a, cases[c].b);
        CHECK(r && same_shape(r, cases[c].nr, cases[c].rs));
        if (r && check_matmul(r, cases[c].a, cases[c].b, TOL32))
            fprintf(stderr, "  in case %zu\n", c);
        mimic_tensor_free(r);
    }
    mimic_tensor *d = mimic_dot(v5, vs);
    CHECK(d && d->ndim == 0);
    double s = 0;
    for (int64_t i = 0; i < 5; i++)
        s += mimic_get(v5, &i) * mimic_get(vs, &i);
    if (d)
        CHECK_NEAR(mimic_get(d, NULL), s, 1e-5);
    mimic_tensor_free(d);
    mimic_tensor_free(vs);
    mimic_tensor_free(w);
    mimic_tensor_free(v5);
    mimic_tensor_free(m53);
    mimic_tensor_free(m45);
    mimic_tensor_free(b253);
    mimic_tensor_free(b245);
}

TEST(test_matmul_empty_dims)
{
    mimic_tensor *a = mimic_zeros(2, (int64_t[]){0, 3}, MIMIC_F32), *b = RAND(MIMIC_F32, 3, 4);
    mimic_tensor *r = mimic_matmul(a, b);
    CHECK(r && SHAPE_IS(r, 0, 4));
    mimic_tensor_free(r);
    mimic_tensor_free(a);
    mimic_tensor_free(b);
    /* k = 0: an empty sum is zero, even into an output full of NaN. */
    a = mimic_zeros(2, (int64_t[]){3, 0}, MIMIC_F32);
    b = mimic_zeros(2, (int64_t[]){0, 4}, MIMIC_F64);
    mimic_tensor *o = mimic_full(2, (int64_t[]){3, 4}, NAN, MIMIC_F64);
    CHECK_OK(mimic_matmul_out(o, a, b));
    for (int64_t i = 0; i < 3; i++)
        for (int64_t j = 0; j < 4; j++)
            CHECK(mimic_get(o, (int64_t[]){i, j}) == 0);
    mimic_tensor_free(o);
    r = mimic_matmul(a, b);
    CHECK(r && SHAPE_IS(r, 3, 4) && r->dtype == MIMIC_F64 && mimic_get(r, (int64_t[]){2, 3}) == 0);
    mimic_tensor_free(r);
    mimic_tensor_free(a);
    mimic_tensor_free(b);
    a = mimic_zeros(3, (int64_t[]){0, 3, 4}, MIMIC_F32);
    b = RAND(MIMIC_F32, 4, 2);
    r = mimic_matmul(a, b);
    CHECK(r && SHAPE_IS(r, 0, 3, 2));
    mimic_tensor_free(r);
    mimic_tensor_free(a);
    mimic_tensor_free(b);
    a = mimic_zeros(3, (int64_t[]){2, 3, 0}, MIMIC_F32);
    b = mimic_zeros(1, (int64_t[]){0}, MIMIC_F32);
    r = mimic_matmul(a, b);
    CHECK(r && SHAPE_IS(r, 2, 3) && mimic_get(r, (int64_t[]){1, 2}) == 0);
    mimic_tensor_free(r);
    mimic_tensor *d = mimic_dot(b, b);
    CHECK(d && d->ndim == 0 && mimic_get(d, NULL) == 0);
    mimic_tensor_free(d);
    mimic_tensor_free(a);
    mimic_tensor_free(b);
}

TEST(test_matmul_errors)
{
    mimic_tensor *a = mimic_zeros(2, (int64_t[]){3, 4}, MIMIC_F32), *b = mimic_zeros(2, (int64_t[]){5, 2}, MIMIC_F32);
    CHECK_ERR_PTR(mimic_matmul(a, b), MIMIC_ESHAPE, "matmul: shapes [3,4] and [5,2] do not match (4 ~= 5)");
    mimic_tensor *v3 = mimic_zeros(1, (int64_t[]){3}, MIMIC_F32), *v4 = mimic_zeros(1, (int64_t[]){4}, MIMIC_F32);
    CHECK_ERR_PTR(mimic_matmul(v3, v4), MIMIC_ESHAPE, "matmul: shapes [3] and [4] do not match (3 ~= 4)");
    CHECK_ERR_PTR(mimic_matmul(a, v3), MIMIC_ESHAPE, "matmul: shapes [3,4] and [3] do not match (4 ~= 3)");
    mimic_tensor *x = mimic_zeros(3, (int64_t[]){2, 3, 4}, MIMIC_F32), *y = mimic_zeros(3, (int64_t[]){3, 4, 2}, MIMIC_F32);
    CHECK_ERR_PTR(mimic_matmul(x, y), MIMIC_ESHAPE, "batch dims of [2,3,4] and [3,4,2] do not broadcast (2 ~= 3)");
    mimic_tensor *s = mimic_scalar(2, MIMIC_F32);
    CHECK_ERR_PTR(mimic_matmul(s, a), MIMIC_ESHAPE, "0-dim");
    mimic_tensor *ai = mimic_zeros(2, (int64_t[]){3, 4}, MIMIC_I64);
    CHECK_ERR_PTR(mimic_matmul(ai, a), MIMIC_EDTYPE, "matmul: int64 tensors are not supported");
    mimic_tensor *bb = mimic_zeros(2, (int64_t[]){4, 2}, MIMIC_BOOL);
    CHECK_ERR_PTR(mimic_matmul(a, bb), MIMIC_EDTYPE, "bool");
    mimic_tensor *b42 = mimic_zeros(2, (int64_t[]){4, 2}, MIMIC_F32), *o = mimic_zeros(2, (int64_t[]){3, 3}, MIMIC_F32);
    CHECK_ERR(mimic_matmul_out(o, a, b42), MIMIC_ESHAPE, "matmul: output has shape [3,3] but the result has shape [3,2]");
    mimic_tensor *row = mimic_zeros(2, (int64_t[]){1, 2}, MIMIC_F32), *bo = mimic_expand(row, 2, (int64_t[]){3, 2});
    CHECK_ERR(mimic_matmul_out(bo, a, b42), MIMIC_EARG, "matmul: the output is a broadcast view (stride 0 in dim -2)");
    mimic_tensor_free(bo);
    mimic_tensor_free(row);
    CHECK_ERR_PTR(mimic_bmm(a, b42), MIMIC_ESHAPE, "bmm: expects 3-D tensors");
    mimic_tensor *z = mimic_zeros(3, (int64_t[]){3, 4, 2}, MIMIC_F32);
    CHECK_ERR_PTR(mimic_bmm(x, z), MIMIC_ESHAPE, "bmm: batch sizes of [2,3,4] and [3,4,2] differ (2 ~= 3)");
    mimic_tensor *z2 = mimic_zeros(3, (int64_t[]){2, 5, 2}, MIMIC_F32);
    CHECK_ERR_PTR(mimic_bmm(x, z2), MIMIC_ESHAPE, "bmm: shapes [2,3,4] and [2,5,2] do not match (4 ~= 5)");
    CHECK_ERR_PTR(mimic_dot(v3, v4), MIMIC_ESHAPE, "dot: shapes [3] and [4] do not match (3 ~= 4)");
    CHECK_ERR_PTR(mimic_dot(a, v4), MIMIC_ESHAPE, "dot: expects 1-D tensors, got [3,4] and [4]");
    CHECK_ERR_PTR(mimic_outer(a, v4), MIMIC_ESHAPE, "outer: expects 1-D tensors");
    mimic_tensor *vi = mimic_zeros(1, (int64_t[]){3}, MIMIC_I64);
    CHECK_ERR_PTR(mimic_outer(vi, v4), MIMIC_EDTYPE, "outer: int64");
    CHECK_ERR_PTR(mimic_dot(v3, vi), MIMIC_EDTYPE, "dot: int64");
    mimic_tensor *all[] = {a, b, v3, v4, x, y, s, ai, bb, b42, o, z, z2, vi};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        mimic_tensor_free(all[i]);
}

TEST(test_bmm_dot_outer)
{
    mimic_tensor *a = RAND(MIMIC_F64, 3, 4, 5), *bt = RAND(MIMIC_F64, 3, 6, 5), *b = mimic_transpose(bt, 1, 2);
    mimic_tensor *r = mimic_bmm(a, b);
    CHECK(r && SHAPE_IS(r, 3, 4, 6));
    if (r)
        check_matmul(r, a, b, TOL64);
    mimic_tensor_free(r);
    mimic_tensor *u = RAND(MIMIC_F32, 7), *wv = RAND(MIMIC_F64, 12), *v = mimic_slice(wv, 0, 1, 12, 3); /* [4] */
    mimic_tensor *o = mimic_outer(u, v);
    CHECK(o && SHAPE_IS(o, 7, 4) && o->dtype == MIMIC_F64);
    for (int64_t i = 0; o && i < 7; i++)
        for (int64_t j = 0; j < 4; j++)
            CHECK_NEAR(mimic_get(o, (int64_t[]){i, j}), mimic_get(u, &i) * mimic_get(v, &j), 1e-15);
    mimic_tensor_free(o);
    mimic_tensor *d = mimic_dot(u, u);
    double s = 0;
    for (int64_t i = 0; i < 7; i++)
        s += mimic_get(u, &i) * mimic_get(u, &i);
    CHECK(d && d->ndim == 0 && d->dtype == MIMIC_F32);
    if (d)
        CHECK_NEAR(mimic_get(d, NULL), s, 1e-6);
    mimic_tensor_free(d);
    mimic_tensor_free(u);
    mimic_tensor_free(v);
    mimic_tensor_free(wv);
    mimic_tensor_free(a);
    mimic_tensor_free(b);
    mimic_tensor_free(bt);
}

/* Every allocation failing in turn: ENOMEM, no leak (ASan), no crash. */
TEST(test_matmul_out_of_memory)
{
    mimic_tensor *big = RAND(MIMIC_F32, 6, 10), *a = mimic_slice(big, 1, 0, 10, 2); /* copied */
    mimic_tensor *b = RAND(MIMIC_F64, 5, 4);                                        /* converted */
    int failures = 0, successes = 0;
    for (long k = 0; k < 12; k++) {
        alloc_fail_next(k);
        mimic_tensor *r = mimic_matmul(a, b);
        alloc_fail_none();
        oom_tally(r != NULL, &successes, &failures);
        mimic_tensor_free(r);
    }
    CHECK(successes > 0 && failures + successes == 12);
    mimic_tensor_free(a);
    mimic_tensor_free(big);
    mimic_tensor_free(b);
}

int main(void)
{
    use_counting_allocator();
    mimic_rng_init(&rng, 1234);
    RUN(test_matmul_2d_values);
    RUN(test_matmul_mixed_and_out_dtype);
    RUN(test_matmul_views_without_copies);
    RUN(test_matmul_irregular_layouts);
    RUN(test_matmul_out_aliases_operand);
    RUN(test_matmul_batch_broadcast);
    RUN(test_matmul_1d);
    RUN(test_matmul_empty_dims);
    RUN(test_matmul_errors);
    RUN(test_bmm_dot_outer);
    RUN(test_matmul_out_of_memory);
    return CHECK_DONE();
}
