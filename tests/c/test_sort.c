/* Sorting: sort and topk against a stable insertion sort, with ties, NaN,
 * int64 beyond 2^53, strided input, every dim, threaded rows, empty dims. */
#include "check.h"
#include "testutil.h"
#include "mimic/ops.h"
#include "mimic/rng.h"

#include <stdint.h>
#include <stdlib.h>

static mimic_rng rng;

/* Uniform on a coarse grid (so there are ties), with a NaN every `nan_every`. */
static mimic_tensor *rand_t(int ndim, const int64_t *shape, mimic_dtype dt, int nan_every)
{
    mimic_tensor *t = mimic_empty(ndim, shape, dt);
    mimic_rng_uniform(&rng, t, -4, 4);
    int64_t n = mimic_numel(t);
    mimic_tensor *flat = mimic_reshape(t, 1, &n); /* a view: t is contiguous */
    for (int64_t i = 0; i < n; i++) {
        double v = floor(mimic_get(flat, &i) * 2) / 2;
        mimic_set(flat, &i, nan_every && i % nan_every == 3 ? NAN : v);
    }
    mimic_tensor_free(flat);
    return t;
}

/* NumPy's ascending order: NaN after every number, NaNs equal to each other. */
static int cmp_asc(double x, double y)
{
    if (isnan(x) || isnan(y))
        return isnan(x) - isnan(y);
    return (x > y) - (x < y);
}

/* Checks values and indices of one sorted row against a stable insertion
 * sort of the input row; keeps the first k. */
static void check_rows(const mimic_tensor *t, int dim, bool desc, int64_t k, const mimic_tensor *v,
                       const mimic_tensor *ix)
{
    int64_t len = t->shape[dim], rows = mimic_numel(t) / (len ? len : 1);
    int64_t *perm = malloc(sizeof(int64_t) * (size_t)(len + 1));
    int bad = 0;
    for (int64_t r = 0; r < rows && len; r++) {
        int64_t idx[MIMIC_MAX_DIMS], rem = r;
        for (int d = t->ndim - 1; d >= 0; d--) {
            if (d == dim)
                continue;
            idx[d] = rem % t->shape[d];
            rem /= t->shape[d];
        }
        for (int64_t i = 0; i < len; i++) {
            int64_t j = i;
            idx[dim] = i;
            double x = mimic_get(t, idx);
            for (; j > 0; j--) {
                idx[dim] = perm[j - 1];
                int c = cmp_asc(x, mimic_get(t, idx));
                if ((desc ? -c : c) >= 0)
                    break;
                perm[j] = perm[j - 1];
            }
            perm[j] = i;
        }
        for (int64_t i = 0; i < k; i++) {
            int64_t o[MIMIC_MAX_DIMS];
            memcpy(o, idx, sizeof o);
            o[dim] = i;
            idx[dim] = perm[i];
            double want = mimic_get(t, idx), got = mimic_get(v, o);
            bool ok = isnan(want) ? isnan(got) : got == want;
            if (ix)
                ok = ok && mimic_get(ix, o) == (double)perm[i];
            if (!ok && bad++ < 5)
                fprintf(stderr, "  row %lld pos %lld: got %g (index %g), want %g (index %lld)\n", (long long)r,
                        (long long)i, got, ix ? mimic_get(ix, o) : -1.0, want, (long long)perm[i]);
        }
    }
    free(perm);
    if (bad)
        check_failures++;
}

static bool shape_with(const mimic_tensor *r, const mimic_tensor *t, int dim, int64_t k)
{
    if (!r || r->ndim != t->ndim)
        return false;
    for (int d = 0; d < t->ndim; d++)
        if (r->shape[d] != (d == dim ? k : t->shape[d]))
            return false;
    return true;
}

TEST(test_sort_values_and_indices)
{
    mimic_dtype dts[] = {MIMIC_F32, MIMIC_F64};
    for (int q = 0; q < 2; q++) {
        mimic_tensor *t = rand_t(3, (int64_t[]){4, 37, 5}, dts[q], 7);
        for (int dim = 0; dim < 3; dim++)
            for (int desc = 0; desc < 2; desc++) {
                mimic_tensor *ix = NULL, *v = mimic_sort(t, dim - 3, desc, &ix);
                CHECK(shape_with(v, t, dim, t->shape[dim]) && v->dtype == dts[q]);
                CHECK(shape_with(ix, t, dim, t->shape[dim]) && ix->dtype == MIMIC_I64);
                if (v && ix)
                    check_rows(t, dim, desc, t->shape[dim], v, ix);
                mimic_tensor_free(v);
                mimic_tensor_free(ix);
            }
        mimic_tensor_free(t);
    }
}

TEST(test_sort_nan_placement)
{
    mimic_tensor *t = mimic_empty(1, (int64_t[]){6}, MIMIC_F64);
    double in[] = {2, NAN, -1, 2, NAN, -INFINITY};
    for (int64_t i = 0; i < 6; i++)
        mimic_set(t, &i, in[i]);
    mimic_tensor *ix, *v = mimic_sort(t, 0, false, &ix);
    double wa[] = {-INFINITY, -1, 2, 2, NAN, NAN};
    int64_t ia[] = {5, 2, 0, 3, 1, 4};
    for (int64_t i = 0; v && i < 6; i++) {
        double g = mimic_get(v, &i);
        CHECK(isnan(wa[i]) ? isnan(g) : g == wa[i]);
        CHECK(mimic_get(ix, &i) == ia[i]);
    }
    mimic_tensor_free(v);
    mimic_tensor_free(ix);
    /* Descending: NaN counts as the largest, so it comes first; ties keep order. */
    v = mimic_sort(t, 0, true, &ix);
    int64_t id[] = {1, 4, 0, 3, 2, 5};
    for (int64_t i = 0; v && i < 6; i++)
        CHECK(mimic_get(ix, &i) == id[i]);
    mimic_tensor_free(v);
    mimic_tensor_free(ix);
    mimic_tensor_free(t);
}

TEST(test_sort_int64_exact)
{
    /* Neighbours above 2^53 differ only in bits a double would drop. */
    int64_t in[] = {(INT64_C(1) << 60) + 3, INT64_C(1) << 60, -5, (INT64_C(1) << 60) + 1, INT64_MAX, INT64_MIN, -5};
    int64_t want[] = {INT64_MIN, -5, -5, INT64_C(1) << 60, (INT64_C(1) << 60) + 1, (INT64_C(1) << 60) + 3, INT64_MAX};
    int64_t wix[] = {5, 2, 6, 1, 3, 0, 4};
    mimic_tensor *t = mimic_empty(1, (int64_t[]){7}, MIMIC_I64);
    memcpy(mimic_data(t), in, sizeof in);
    mimic_tensor *ix, *v = mimic_sort(t, 0, false, &ix);
    CHECK(v && v->dtype == MIMIC_I64);
    CHECK(v && memcmp(mimic_data(v), want, sizeof want) == 0);
    CHECK(ix && memcmp(mimic_data(ix), wix, sizeof wix) == 0);
    mimic_tensor_free(v);
    mimic_tensor_free(ix);
    v = mimic_topk(t, 3, 0, true, &ix);
    int64_t top[] = {INT64_MAX, (INT64_C(1) << 60) + 3, (INT64_C(1) << 60) + 1}, tix[] = {4, 0, 3};
    CHECK(v && v->shape[0] == 3 && memcmp(mimic_data(v), top, sizeof top) == 0);
    CHECK(ix && memcmp(mimic_data(ix), tix, sizeof tix) == 0);
    mimic_tensor_free(v);
    mimic_tensor_free(ix);
    mimic_tensor_free(t);
}

/* Long rows (many merge passes), a strided input, and enough rows to run on
 * threads (>= MIMIC_PARALLEL_MIN elements). */
TEST(test_sort_long_rows_strided)
{
    mimic_tensor *base = rand_t(2, (int64_t[]){1000, 300}, MIMIC_F32, 0);
    mimic_tensor *t = mimic_transpose(base, 0, 1); /* [300,1000], rows strided */
    for (int desc = 0; desc < 2; desc++) {
        mimic_tensor *ix, *v = mimic_sort(t, 1, desc, &ix);
        CHECK(shape_with(v, t, 1, 1000));
        if (v && ix)
            check_rows(t, 1, desc, 1000, v, ix);
        mimic_tensor_free(v);
        mimic_tensor_free(ix);
    }
    mimic_tensor *v = mimic_sort(t, 0, false, NULL); /* without indices */
    CHECK(shape_with(v, t, 0, 300));
    if (v)
        check_rows(t, 0, false, 300, v, NULL);
    mimic_tensor_free(v);
    mimic_tensor_free(t);
    mimic_tensor_free(base);
}

TEST(test_topk)
{
    mimic_tensor *t = rand_t(2, (int64_t[]){6, 29}, MIMIC_F64, 5);
    int64_t ks[] = {0, 1, 4, 29};
    for (size_t q = 0; q < sizeof ks / sizeof ks[0]; q++)
        for (int largest = 0; largest < 2; largest++) {
            mimic_tensor *ix, *v = mimic_topk(t, ks[q], -1, largest, &ix);
            CHECK(shape_with(v, t, 1, ks[q]) && shape_with(ix, t, 1, ks[q]));
            if (v && ix)
                check_rows(t, 1, largest, ks[q], v, ix);
            mimic_tensor_free(v);
            mimic_tensor_free(ix);
        }
    mimic_tensor *ix = (mimic_tensor *)1;
    CHECK_ERR_PTR(mimic_topk(t, 30, 1, true, &ix), MIMIC_EARG, "topk: k = 30 is out of range for dim -1 of size 29");
    CHECK(ix == NULL);
    CHECK_ERR_PTR(mimic_topk(t, -1, 1, true, NULL), MIMIC_EARG, "k = -1 is out of range");
    CHECK_ERR_PTR(mimic_topk(t, 1, 2, true, NULL), MIMIC_EARG, "topk: dim 2 out of range");
    mimic_tensor_free(t);
}

TEST(test_sort_edge_cases)
{
    mimic_tensor *s = mimic_scalar(4.5, MIMIC_F32);
    mimic_tensor *ix, *v = mimic_sort(s, 0, false, &ix);
    CHECK(v && v->ndim == 0 && mimic_get(v, NULL) == 4.5 && ix && mimic_get(ix, NULL) == 0);
    mimic_tensor_free(v);
    mimic_tensor_free(ix);
    mimic_tensor_free(s);
    mimic_tensor *e = mimic_empty(2, (int64_t[]){3, 0}, MIMIC_F32);
    v = mimic_sort(e, 1, true, &ix);
    CHECK(shape_with(v, e, 1, 0) && shape_with(ix, e, 1, 0));
    mimic_tensor_free(v);
    mimic_tensor_free(ix);
    v = mimic_sort(e, 0, false, &ix);
    CHECK(shape_with(v, e, 0, 3));
    mimic_tensor_free(v);
    mimic_tensor_free(ix);
    v = mimic_topk(e, 0, 1, true, NULL);
    CHECK(shape_with(v, e, 1, 0));
    mimic_tensor_free(v);
    mimic_tensor_free(e);
    mimic_tensor *b = mimic_zeros(1, (int64_t[]){3}, MIMIC_BOOL);
    CHECK_ERR_PTR(mimic_sort(b, 0, false, NULL), MIMIC_EDTYPE, "sort: bool tensors are not supported");
    mimic_tensor_free(b);
    mimic_tensor *f = mimic_zeros(1, (int64_t[]){3}, MIMIC_F32);
    CHECK_ERR_PTR(mimic_sort(f, 1, false, NULL), MIMIC_EARG, "sort: dim 1 out of range");
    mimic_tensor_free(f);
}

/* Every allocation failing in turn: ENOMEM, no leak (ASan), no crash. */
TEST(test_out_of_memory)
{
    mimic_tensor *t = rand_t(2, (int64_t[]){40, 1000}, MIMIC_F32, 0); /* threaded rows */
    int failures = 0, successes = 0;
    for (long k = 0; k < 12; k++) {
        alloc_fail_next(k);
        mimic_tensor *ix, *r = mimic_sort(t, 1, true, &ix);
        alloc_fail_none();
        CHECK(r ? ix != NULL : ix == NULL);
        mimic_tensor_free(ix);
        oom_tally(r != NULL, &successes, &failures);
        mimic_tensor_free(r);
    }
    CHECK(successes > 0 && failures + successes == 12);
    mimic_tensor_free(t);
}

int main(void)
{
    use_counting_allocator();
    mimic_rng_init(&rng, 7);
    RUN(test_sort_values_and_indices);
    RUN(test_sort_nan_placement);
    RUN(test_sort_int64_exact);
    RUN(test_sort_long_rows_strided);
    RUN(test_topk);
    RUN(test_sort_edge_cases);
    RUN(test_out_of_memory);
    return CHECK_DONE();
}
