/* Tensor core: lifetime, views, copies, creation, wrapping host memory. */
#include "check.h"
#include "testutil.h"
#include "mimic/tensor.h"

TEST(test_empty_and_strides)
{
    mimic_tensor *t = mimic_empty(3, (int64_t[]){2, 3, 4}, MIMIC_F64);
    CHECK_PTR(t);
    CHECK(t->stride[0] == 12 && t->stride[1] == 4 && t->stride[2] == 1);
    CHECK(mimic_numel(t) == 24 && mimic_is_contiguous(t));
    CHECK(t->storage->nbytes == 24 * 8);
    mimic_tensor_free(t);
    mimic_tensor *z = mimic_zeros(2, (int64_t[]){0, 5}, MIMIC_F32);
    CHECK(z && mimic_numel(z) == 0 && mimic_is_contiguous(z));
    mimic_tensor_free(z);
    mimic_tensor *s = mimic_scalar(3.5, MIMIC_F32);
    CHECK(s && s->ndim == 0 && mimic_numel(s) == 1 && mimic_get(s, NULL) == 3.5);
    mimic_tensor_free(s);
}

TEST(test_shape_errors)
{
    CHECK_ERR_PTR(mimic_empty(9, (int64_t[9]){1}, MIMIC_F32), MIMIC_ESHAPE, "0 to 8");
    CHECK_ERR_PTR(mimic_empty(1, (int64_t[]){-2}, MIMIC_F32), MIMIC_ESHAPE, "negative");
    mimic_tensor *a = arange2(3, 4, MIMIC_F32);
    CHECK_ERR_PTR(mimic_view(a, 2, (int64_t[]){5, 2}), MIMIC_ESHAPE, "[5,2] has 10 elements but the tensor [3,4] has 12");
    CHECK_ERR_PTR(mimic_view(a, 2, (int64_t[]){-1, 5}), MIMIC_ESHAPE, "cannot infer");
    CHECK_ERR_PTR(mimic_select(a, 2, 0), MIMIC_EARG, "dim 2 out of range");
    CHECK_ERR_PTR(mimic_select(a, 0, 3), MIMIC_EARG, "index 3 is out of range");
    CHECK_ERR_PTR(mimic_expand(a, 2, (int64_t[]){3, 5}), MIMIC_ESHAPE, "cannot expand [3,4] to [3,5] (dim -1: 4 to 5; only size-1 dims");
    /* Dims in messages count from the end, so they read the same from C and Lua. */
    CHECK_ERR_PTR(mimic_expand(a, 3, (int64_t[]){-1, 3, 4}), MIMIC_ESHAPE, "-1 is not allowed for the new leading dim -3");
    CHECK_ERR_PTR(mimic_permute(a, (int[]){1, 1}), MIMIC_EARG, "permute: dim -1 appears twice");
    CHECK_ERR_PTR(mimic_permute(a, (int[]){0, -2}), MIMIC_EARG, "permute: dim -2 appears twice");
    CHECK_ERR_PTR(mimic_select(a, 1, 4), MIMIC_EARG, "select: index 4 is out of range for dim -1 of size 4");
    CHECK_ERR_PTR(mimic_slice(a, 0, 1, 5, 1), MIMIC_EARG, "slice: range [1, 5) is outside dim -2 of size 3");
    CHECK_ERR_PTR(mimic_flatten(a, 1, 0), MIMIC_EARG, "flatten: end dim -2 comes before start dim -1");
    CHECK_ERR_PTR(mimic_empty(2, (int64_t[]){2, -1}, MIMIC_F32), MIMIC_ESHAPE, "size -1 of dim -1 is negative");
    mimic_tensor_free(a);
}

TEST(test_views_share_storage)
{
    mimic_tensor *a = arange2(3, 4, MIMIC_F32);
    mimic_tensor *t = mimic_transpose(a, 0, 1);
    CHECK(t->shape[0] == 4 && t->shape[1] == 3 && t->stride[0] == 1 && t->stride[1] == 4);
    CHECK(!mimic_is_contiguous(t));
    CHECK(mimic_get(t, (int64_t[]){3, 2}) == 11);
    mimic_set(t, (int64_t[]){1, 2}, 100);
    CHECK(mimic_get(a, (int64_t[]){2, 1}) == 100);
    mimic_tensor_free(a); /* the view keeps the storage alive */
    CHECK(mimic_get(t, (int64_t[]){1, 2}) == 100);
    mimic_tensor *c = mimic_contiguous(t);
    CHECK(c != t && mimic_is_contiguous(c) && mimic_get(c, (int64_t[]){3, 2}) == 11);
    mimic_tensor *c2 = mimic_contiguous(c);
    CHECK(c2 == c);
    mimic_tensor_free(c2);
    CHECK_ERR_PTR(mimic_view(t, 1, (int64_t[]){12}), MIMIC_ESHAPE, "without a copy");
    mimic_tensor *r = mimic_reshape(t, 1, (int64_t[]){12});
    CHECK(r && mimic_get(r, (int64_t[]){1}) == 4 && r->storage != t->storage);
    mimic_tensor_free(r);
    mimic_tensor_free(c);
    mimic_tensor_free(t);
}

TEST(test_slice_select_narrow)
{
    mimic_tensor *a = arange2(4, 5, MIMIC_F32);
    mimic_tensor *s = mimic_slice(a, 1, 1, 5, 2); /* columns 1, 3 */
    CHECK(s->shape[0] == 4 && s->shape[1] == 2 && s->stride[1] == 2);
    CHECK(mimic_get(s, (int64_t[]){2, 1}) == 13);
    mimic_tensor *r = mimic_select(s, 0, 3);
    CHECK(r->ndim == 1 && mimic_get(r, (int64_t[]){0}) == 16);
    mimic_tensor *n = mimic_narrow(a, -1, 4, 1);
    CHECK(n->shape[1] == 1 && mimic_get(n, (int64_t[]){3, 0}) == 19);
    mimic_tensor *e = mimic_slice(a, 0, 2, 2, 1);
    CHECK(e->shape[0] == 0 && mimic_numel(e) == 0);
    mimic_tensor_free(e);
    mimic_tensor_free(n);
    mimic_tensor_free(r);
    mimic_tensor_free(s);
    mimic_tensor_free(a);
}

TEST(test_view_merges_and_splits)
{
    mimic_tensor *a = mimic_arange(0, 24, 1, MIMIC_F64);
    mimic_tensor *b = mimic_view(a, 3, (int64_t[]){2, 3, 4});
    mimic_tensor *p = mimic_permute(b, (int[]){1, 0, 2}); /* [3,2,4] */
    /* splitting p's contiguous last dim is a view; merging its first two is not */
    mimic_tensor *v = mimic_view(p, 4, (int64_t[]){3, 2, 2, 2});
    CHECK_PTR(v);
    if (v)
        CHECK(mimic_get(v, (int64_t[]){1, 1, 1, 1}) == mimic_get(p, (int64_t[]){1, 1, 3}));
    CHECK_ERR_PTR(mimic_view(p, 2, (int64_t[]){6, 4}), MIMIC_ESHAPE, "without a copy");
    mimic_tensor *u = mimic_unsqueeze(b, 1);
    CHECK(u->ndim == 4 && u->shape[1] == 1);
    mimic_tensor *q = mimic_squeeze(u, MIMIC_ALL_DIMS);
    CHECK(q->ndim == 3 && q->shape[0] == 2 && q->shape[2] == 4);
    mimic_tensor *f = mimic_flatten(b, 1, -1);
    CHECK(f->ndim == 2 && f->shape[1] == 12 && f->storage == a->storage);
    mimic_tensor *col = mimic_select(b, 2, 0);
    mimic_tensor *x = mimic_expand(col, 3, (int64_t[]){5, 2, 3});
    mimic_tensor_free(col); /* the expanded view keeps the storage */
    CHECK(x && x->stride[0] == 0 && mimic_get(x, (int64_t[]){4, 1, 2}) == 20);
    mimic_tensor_free(x);
    mimic_tensor_free(f);
    mimic_tensor_free(q);
    mimic_tensor_free(u);
    mimic_tensor_free(v);
    mimic_tensor_free(p);
    mimic_tensor_free(b);
    mimic_tensor_free(a);
}

TEST(test_copy_broadcast_convert)
{
    mimic_tensor *d = mimic_zeros(2, (int64_t[]){3, 4}, MIMIC_F64);
    mimic_tensor *row = mimic_arange(0, 4, 1, MIMIC_I64);
    CHECK_OK(mimic_copy(d, row));
    CHECK(mimic_get(d, (int64_t[]){2, 3}) == 3);
    mimic_tensor *bad = mimic_arange(0, 3, 1, MIMIC_F32);
    CHECK_ERR(mimic_copy(d, bad), MIMIC_ESHAPE, "[3] does not broadcast to destination [3,4]");
    mimic_tensor *b = mimic_to_dtype(d, MIMIC_BOOL);
    CHECK(mimic_get(b, (int64_t[]){1, 0}) == 0 && mimic_get(b, (int64_t[]){1, 2}) == 1);
    CHECK_OK(mimic_fill(d, -1.5));
    CHECK(mimic_get(d, (int64_t[]){1, 1}) == -1.5);
    mimic_tensor *t = mimic_transpose(d, 0, 1);
    CHECK_OK(mimic_fill(t, 2));
    CHECK(mimic_get(d, (int64_t[]){2, 3}) == 2);
    mimic_tensor_free(t);
    mimic_tensor_free(b);
    mimic_tensor_free(bad);
    mimic_tensor_free(row);
    mimic_tensor_free(d);
}

TEST(test_large_strided_copy_parallel)
{
    /* Big enough to take the threaded path; results must equal the serial rule. */
    mimic_tensor *a = mimic_arange(0, 600 * 700, 1, MIMIC_F64);
    mimic_tensor *m = mimic_view(a, 2, (int64_t[]){600, 700});
    mimic_tensor *t = mimic_transpose(m, 0, 1);
    mimic_tensor *c = mimic_contiguous(t);
    int bad = 0;
    const double *p = mimic_data(c);
    for (int64_t i = 0; i < 700; i++)
        for (int64_t j = 0; j < 600; j++)
            bad += p[i * 600 + j] != (double)(j * 700 + i);
    CHECK(bad == 0);
    mimic_tensor_free(c);
    mimic_tensor_free(t);
    mimic_tensor_free(m);
    mimic_tensor_free(a);
    /* batched transposes with ragged tile edges, converting dtype on the way */
    a = mimic_arange(0, 3 * 50 * 71, 1, MIMIC_F64);
    m = mimic_view(a, 3, (int64_t[]){3, 50, 71});
    t = mimic_permute(m, (int[]){0, 2, 1});
    c = mimic_to_dtype(t, MIMIC_F32);
    bad = 0;
    for (int64_t b = 0; b < 3; b++)
        for (int64_t i = 0; i < 71; i++)
            for (int64_t j = 0; j < 50; j++)
                bad += mimic_get(c, (int64_t[]){b, i, j}) != (double)(b * 3550 + j * 71 + i);
    CHECK(bad == 0);
    mimic_tensor_free(c);
    mimic_tensor_free(t);
    mimic_tensor_free(m);
    mimic_tensor_free(a);
}

TEST(test_creation)
{
    mimic_tensor *a = mimic_arange(1, 2, 0.25, MIMIC_F64);
    CHECK(a->shape[0] == 4 && mimic_get(a, (int64_t[]){3}) == 1.75);
    mimic_tensor *b = mimic_arange(5, 0, -2, MIMIC_I64);
    CHECK(b->shape[0] == 3 && mimic_get(b, (int64_t[]){2}) == 1);
    CHECK_ERR_PTR(mimic_arange(0, 1, 0, MIMIC_F32), MIMIC_EARG, "step non-zero");
    mimic_tensor *l = mimic_linspace(0, 1, 5, MIMIC_F32);
    CHECK(mimic_get(l, (int64_t[]){4}) == 1 && mimic_get(l, (int64_t[]){1}) == 0.25);
    mimic_tensor *e = mimic_eye(3, 4, MIMIC_F32);
    CHECK(mimic_get(e, (int64_t[]){2, 2}) == 1 && mimic_get(e, (int64_t[]){2, 3}) == 0);
    mimic_tensor *f = mimic_full(1, (int64_t[]){3}, 7, MIMIC_I64);
    CHECK(mimic_get(f, (int64_t[]){2}) == 7);
    mimic_dtype dt;
    CHECK(mimic_dtype_parse("double", &dt) == 0 && dt == MIMIC_F64);
    CHECK_ERR(mimic_dtype_parse("half", &dt), MIMIC_EARG, "unknown dtype 'half'");
    mimic_tensor_free(f);
    mimic_tensor_free(e);
    mimic_tensor_free(l);
    mimic_tensor_free(b);
    mimic_tensor_free(a);
}

static int released;
static void on_release(void *ctx) { released += *(int *)ctx; }

TEST(test_wrap_host_memory)
{
    /* A Fortran-like column-major 3x2 array seen as a row-major [3,2] via strides. */
    double host[6] = {1, 2, 3, 4, 5, 6};
    int one = 1;
    released = 0;
    mimic_tensor *t = mimic_wrap(host, 2, (int64_t[]){3, 2}, (int64_t[]){1, 3}, MIMIC_F64, on_release, &one);
    CHECK(t && !t->storage->owned);
    CHECK(mimic_get(t, (int64_t[]){2, 1}) == 6);
    mimic_set(t, (int64_t[]){0, 1}, 40);
    CHECK(host[3] == 40);
    mimic_tensor *v = mimic_select(t, 1, 0);
    mimic_tensor_free(t);
    CHECK(released == 0); /* a view is alive */
    mimic_tensor_free(v);
    CHECK(released == 1);
    CHECK_ERR_PTR(mimic_wrap(NULL, 1, (int64_t[]){3}, NULL, MIMIC_F32, NULL, NULL), MIMIC_EARG, "data is NULL");
}

/* Fault injection: every allocation failure in a view-heavy sequence gives an
 * error, never a crash or a leak (ASan checks the leaks). */
TEST(test_out_of_memory_paths)
{
    int failures = 0;
    for (int budget = 0; budget < 40; budget++) {
        use_budget_allocator(budget);
        mimic_tensor *x = mimic_arange(0, 12, 1, MIMIC_F32);
        mimic_tensor *v = x ? mimic_view(x, 2, (int64_t[]){3, 4}) : NULL;
        mimic_tensor *t = v ? mimic_transpose(v, 0, 1) : NULL;
        mimic_tensor *c = t ? mimic_reshape(t, 1, (int64_t[]){12}) : NULL;
        if (!c) {
            failures++;
            CHECK(mimic_errcode() == MIMIC_ENOMEM);
        }
        mimic_set_allocator(NULL);
        mimic_tensor_free(c);
        mimic_tensor_free(t);
        mimic_tensor_free(v);
        mimic_tensor_free(x);
    }
    CHECK(failures > 3);
}

int main(void)
{
    RUN(test_empty_and_strides);
    RUN(test_shape_errors);
    RUN(test_views_share_storage);
    RUN(test_slice_select_narrow);
    RUN(test_view_merges_and_splits);
    RUN(test_copy_broadcast_convert);
    RUN(test_large_strided_copy_parallel);
    RUN(test_creation);
    RUN(test_wrap_host_memory);
    RUN(test_out_of_memory_paths);
    return CHECK_DONE();
}
