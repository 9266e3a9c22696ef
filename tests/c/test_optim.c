/* Flat parameter/gradient buffers (mimic/optim.h): values and rebinding,
 * gradients landing in the flat buffer, re-flattening, re-attaching, the
 * refusals, ownership, and out-of-memory atomicity (ASan checks leaks). */
#include "check.h"
#include "mimic/autograd.h"
#include "mimic/ops.h"
#include "mimic/optim.h"

#include "testutil.h"

static bool in_storage(const mimic_tensor *t, const mimic_tensor *flat)
{
    return t->storage == flat->storage;
}

/* Three parameters: [2,3] 0..5, a scalar 10, [4] 20..23 (float32). */
static void make_params(mimic_tensor **p, mimic_dtype dt)
{
    p[0] = arange2(2, 3, dt);
    p[1] = mimic_scalar(10, dt);
    p[2] = mimic_arange(20, 24, 1, dt);
    for (int i = 0; i < 3; i++)
        mimic_set_requires_grad(p[i], true);
}
static void free_all(mimic_tensor **t, int n)
{
    for (int i = 0; i < n; i++)
        mimic_tensor_free(t[i]);
}

TEST(test_values_and_rebinding)
{
    mimic_tensor *p[3], *fp = NULL, *fg = NULL;
    make_params(p, MIMIC_F32);
    mimic_tensor *before[3] = {p[0], p[1], p[2]};
    mimic_storage *old = p[0]->storage;
    mimic_tensor *keep = mimic_detach(p[0]); /* another view of the old storage */
    CHECK_OK(mimic_flatten_parameters(p, 3, &fp, &fg));
    CHECK(fp && fg && fp->ndim == 1 && fp->shape[0] == 11 && fg->shape[0] == 11);
    CHECK(fp->dtype == MIMIC_F32 && fg->dtype == MIMIC_F32);
    const double want[11] = {0, 1, 2, 3, 4, 5, 10, 20, 21, 22, 23};
    for (int i = 0; i < 11; i++) {
        CHECK(at(fp, i) == want[i]);
        CHECK(at(fg, i) == 0);
    }
    for (int i = 0; i < 3; i++) {
        CHECK(p[i] == before[i]); /* same structs */
        CHECK(in_storage(p[i], fp) && mimic_is_contiguous(p[i]) && mimic_requires_grad(p[i]));
        CHECK(mimic_grad(p[i]) && in_storage(mimic_grad(p[i]), fg));
    }
    CHECK(SHAPE_IS(p[0], 2, 3) && p[1]->ndim == 0 && SHAPE_IS(p[2], 4));
    CHECK(p[0]->offset == 0 && p[1]->offset == 6 && p[2]->offset == 7);
    CHECK(mimic_grad(p[2])->offset == 7);
    /* The old storage lives on in the other view only. */
    CHECK(keep->storage == old && old->refcount == 1);
    mimic_tensor_free(keep);

    /* Writes go both ways. */
    ((float *)mimic_data(fp))[7] = -1;
    CHECK(mimic_get(p[2], (int64_t[]){0}) == -1);
    mimic_set(p[0], (int64_t[]){1, 2}, 99);
    CHECK(at(fp, 5) == 99);
    CHECK_OK(mimic_fill(fg, 0.5));
    CHECK(mimic_get(mimic_grad(p[1]), NULL) == 0.5);

    /* Ownership: the flat tensors can go first; the parameters stay valid. */
    mimic_tensor_free(fp);
    mimic_tensor_free(fg);
    CHECK(mimic_get(p[0], (int64_t[]){1, 2}) == 99);
    free_all(p, 3);
}

TEST(test_gradients_land_in_flat_buffer)
{
    mimic_tensor *p[3], *fp, *fg;
    make_params(p, MIMIC_F64);
    /* An existing gradient is carried over. */
    mimic_tensor *g = mimic_full(1, (int64_t[]){4}, 7, MIMIC_F64);
    CHECK_OK(mimic_set_grad(p[2], g));
    mimic_tensor_free(g);
    CHECK_OK(mimic_flatten_parameters(p, 3, &fp, &fg));
    CHECK(at(fg, 7) == 7 && at(fg, 10) == 7 && at(fg, 0) == 0);

    /* Backward of p0 * p1 and of p2 * 1 with upstream ones (only element-wise
     * ops, broadcasting the scalar p1): d/dp0 = p1 = 10, d/dp1 = sum(p0) = 15,
     * d/dp2 = 1 on top of the 7 already there. */
    mimic_tensor *one = mimic_scalar(1, MIMIC_F64);
    mimic_tensor *m = mimic_binary(MIMIC_MUL, p[0], p[1]), *m2 = mimic_binary(MIMIC_MUL, p[2], one);
    mimic_tensor *o1 = mimic_ones(2, (int64_t[]){2, 3}, MIMIC_F64), *o2 = mimic_ones(1, (int64_t[]){4}, MIMIC_F64);
    CHECK_OK(mimic_backward(m, o1, false));
    CHECK_OK(mimic_backward(m2, o2, false));
    const double want[11] = {10, 10, 10, 10, 10, 10, 15, 8, 8, 8, 8};
    for (int i = 0; i < 11; i++)
        CHECK_NEAR(at(fg, i), want[i], 0);
    for (int i = 0; i < 3; i++)
        CHECK(in_storage(mimic_grad(p[i]), fg)); /* accumulated in place, still slices */
    CHECK_OK(mimic_backward(m, o1, false));
    CHECK_NEAR(at(fg, 6), 30, 0);

    /* An update through the flat buffer moves the parameters. */
    CHECK_OK(mimic_binary_out(fp, MIMIC_SUB, fp, fg));
    CHECK_NEAR(mimic_get(p[1], NULL), 10 - 30, 0);
    mimic_tensor *fs[] = {one, m, m2, o1, o2, fp, fg};
    free_all(fs, 7);
    free_all(p, 3);
}

TEST(test_non_contiguous_parameter_is_copied_in_order)
{
    mimic_tensor *base = arange2(2, 3, MIMIC_F32);
    mimic_tensor *t = mimic_transpose(base, 0, 1); /* [3,2]: 0 3 1 4 2 5 */
    mimic_tensor *fp, *fg;
    CHECK_OK(mimic_flatten_parameters(&t, 1, &fp, &fg));
    const double want[6] = {0, 3, 1, 4, 2, 5};
    for (int i = 0; i < 6; i++)
        CHECK(at(fp, i) == want[i]);
    CHECK(SHAPE_IS(t, 3, 2) && mimic_is_contiguous(t) && t->stride[0] == 2);
    CHECK(mimic_get(t, (int64_t[]){2, 1}) == 5);
    mimic_tensor *fs[] = {fp, fg, t, base};
    free_all(fs, 4);
}

TEST(test_same_list_again_shares_buffers)
{
    mimic_tensor *p[3], *fp, *fg, *fp2, *fg2, *fg3;
    make_params(p, MIMIC_F32);
    CHECK_OK(mimic_flatten_parameters(p, 3, &fp, &fg));
    CHECK_OK(mimic_flatten_parameters(p, 3, &fp2, &fg2));
    CHECK(fp2->storage == fp->storage && fg2->storage == fg->storage && fp2->shape[0] == 11);
    /* A dropped gradient is re-attached (as zeros), and a replaced one copied in. */
    CHECK_OK(mimic_fill(fg, 3));
    CHECK_OK(mimic_zero_grad(p[0]));
    mimic_tensor *g = mimic_full(0, NULL, -2, MIMIC_F32);
    CHECK_OK(mimic_set_grad(p[1], g));
    mimic_tensor_free(g);
    CHECK_OK(mimic_flat_attach_grads(p, 3, fg));
    CHECK(at(fg, 0) == 0 && at(fg, 5) == 0 && at(fg, 6) == -2 && at(fg, 7) == 3);
    for (int i = 0; i < 3; i++)
        CHECK(in_storage(mimic_grad(p[i]), fg));
    /* Without output pointers; with every gradient gone a new buffer is made. */
    CHECK_OK(mimic_flatten_parameters(p, 3, NULL, NULL));
    for (int i = 0; i < 3; i++)
        CHECK_OK(mimic_zero_grad(p[i]));
    CHECK_OK(mimic_flatten_parameters(p, 3, NULL, &fg3));
    CHECK(fg3->storage != fg->storage && at(fg3, 7) == 0 && in_storage(mimic_grad(p[2]), fg3));
    CHECK_ERR(mimic_flat_attach_grads(p, 3, fp), MIMIC_EARG, "not the flat gradient buffer");
    CHECK_ERR(mimic_flat_attach_grads(p, 2, fg), MIMIC_EARG, "not the flat gradient buffer");
    mimic_tensor *fs[] = {fp, fg, fp2, fg2, fg3};
    free_all(fs, 5);
    free_all(p, 3);
}

TEST(test_refusals_change_nothing)
{
    mimic_tensor *p[3], *fp = NULL, *fg = NULL;
    make_params(p, MIMIC_F32);
    mimic_storage *s0 = p[0]->storage;
    CHECK_ERR(mimic_flatten_parameters(p, 0, &fp, &fg), MIMIC_EARG, "no parameters");
    CHECK_ERR(mimic_flatten_parameters(NULL, 2, &fp, &fg), MIMIC_EARG, "no parameters");

    mimic_tensor *twice[] = {p[0], p[1], p[0]};
    CHECK_ERR(mimic_flatten_parameters(twice, 3, &fp, &fg), MIMIC_EARG,
              "the 1st and 3rd parameters are the same tensor");
    /* Views of a tensor that does not require grad are leaves. */
    mimic_tensor *base = arange2(2, 3, MIMIC_F32), *row = mimic_select(base, 0, 1), *views[] = {p[2], base, row};
    CHECK_ERR(mimic_flatten_parameters(views, 3, &fp, &fg), MIMIC_EARG,
              "the 2nd and 3rd parameters share memory");

    mimic_tensor *sum = mimic_binary(MIMIC_ADD, p[0], p[0]), *nonleaf[] = {p[1], sum};
    CHECK_ERR(mimic_flatten_parameters(nonleaf, 2, &fp, &fg), MIMIC_ESTATE,
              "the 2nd parameter is the result of 'add', not a leaf");

    mimic_tensor *d = mimic_scalar(1, MIMIC_F64), *mixed[] = {p[1], d};
    CHECK_ERR(mimic_flatten_parameters(mixed, 2, &fp, &fg), MIMIC_EDTYPE,
              "mixed dtypes: the 1st parameter is float32 but the 2nd is float64");
    mimic_tensor *l = mimic_scalar(1, MIMIC_I64), *ints[] = {l};
    CHECK_ERR(mimic_flatten_parameters(ints, 1, &fp, &fg), MIMIC_EDTYPE, "the 1st parameter is int64");
    CHECK(fp == NULL && fg == NULL && p[0]->storage == s0 && !mimic_grad(p[0]));

    /* Flattened into one list, a parameter cannot join another. */
    CHECK_OK(mimic_flatten_parameters(p, 2, &fp, &fg));
    mimic_tensor *other[] = {p[2], p[1]}, *fp2 = NULL;
    CHECK_ERR(mimic_flatten_parameters(other, 2, &fp2, NULL), MIMIC_ESTATE,
              "the 2nd parameter already belongs to the flat buffer of another optimizer");
    mimic_tensor *reordered[] = {p[1], p[0]};
    CHECK_ERR(mimic_flatten_parameters(reordered, 2, &fp2, NULL), MIMIC_ESTATE, "already belongs");
    CHECK_ERR(mimic_flatten_parameters(p, 1, &fp2, NULL), MIMIC_ESTATE, "already belongs");
    mimic_tensor *gl[] = {mimic_grad(p[0])};
    CHECK_ERR(mimic_flatten_parameters(gl, 1, &fp2, NULL), MIMIC_EARG, "a view of a flat gradient buffer");
    CHECK(fp2 == NULL);

    mimic_tensor *fs[] = {base, row, sum, d, l, fp, fg};
    free_all(fs, 7);
    free_all(p, 3);
}

/* Wherever memory runs out, flatten fails with ENOMEM and leaves the
 * parameters and their gradients as they were. */
TEST(test_out_of_memory_is_atomic)
{
    int failures = 0, successes = 0;
    for (int budget = 0; budget < 40; budget++) {
        mimic_tensor *p[3], *fp = NULL, *fg = NULL;
        make_params(p, MIMIC_F32);
        mimic_tensor *g = mimic_full(0, NULL, 4, MIMIC_F32);
        mimic_set_grad(p[1], g); /* p[1] has an autograd record; p[2]'s is made by set_requires_grad too */
        mimic_tensor *plain = mimic_arange(0, 3, 1, MIMIC_F32); /* no autograd record yet */
        mimic_tensor *all[] = {p[0], p[1], p[2], plain};
        mimic_storage *s[4];
        for (int i = 0; i < 4; i++)
            s[i] = all[i]->storage;
        use_budget_allocator(budget);
        int rc = mimic_flatten_parameters(all, 4, &fp, &fg);
        mimic_set_allocator(NULL);
        oom_tally(rc == MIMIC_OK, &successes, &failures);
        if (rc) {
            for (int i = 0; i < 4; i++)
                CHECK(all[i]->storage == s[i]);
            CHECK(mimic_grad(p[1]) == g && !mimic_grad(p[0]) && !mimic_grad(plain));
            CHECK(fp == NULL && fg == NULL);
        } else {
            CHECK(in_storage(plain, fp) && at(fg, 6) == 4 && at(fp, 13) == 2);
        }
        mimic_tensor_free(g);
        mimic_tensor_free(plain);
        mimic_tensor_free(fp);
        mimic_tensor_free(fg);
        free_all(p, 3);
    }
    CHECK(failures >= 5 && successes > 0 && failures + successes == 40);
}

int main(void)
{
    RUN(test_values_and_rebinding);
    RUN(test_gradients_land_in_flat_buffer);
    RUN(test_non_contiguous_parameter_is_copied_in_order);
    RUN(test_same_list_again_shares_buffers);
    RUN(test_refusals_change_nothing);
    RUN(test_out_of_memory_is_atomic);
    return CHECK_DONE();
}
