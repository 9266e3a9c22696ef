/* Joining and indexing: cat, stack, split, gather, index_select,
 * masked_select against explicit loops, any dtype, bounds errors. */
#include "check.h"
#include "testutil.h"
#include "mimic/ops.h"
#include "mimic/rng.h"

static mimic_rng rng;

/* Advance a row-major multi-index; false after the last. */
static bool next_idx(int ndim, const int64_t *shape, int64_t *idx)
{
    for (int d = ndim - 1; d >= 0; d--) {
        if (++idx[d] < shape[d])
            return true;
        idx[d] = 0;
    }
    return false;
}

static mimic_tensor *long_tensor(int n, const int64_t *v)
{
    mimic_tensor *t = mimic_empty(1, (int64_t[]){n}, MIMIC_I64);
    for (int64_t i = 0; i < n; i++)
        mimic_set(t, &i, (double)v[i]);
    return t;
}

TEST(test_cat)
{
    for (int dt = 0; dt < MIMIC_DTYPE_COUNT; dt++) {
        mimic_tensor *a = RAND((mimic_dtype)dt, 2, 3, 4), *bt = RAND((mimic_dtype)dt, 2, 4, 5);
        mimic_tensor *b = mimic_transpose(bt, 1, 2); /* [2,5,4], non-contiguous */
        mimic_tensor *e = mimic_empty(3, (int64_t[]){2, 0, 4}, (mimic_dtype)dt);
        mimic_tensor *ts[] = {a, e, b};
        mimic_tensor *r = mimic_cat(ts, 3, -2);
        CHECK(SHAPE_IS(r, 2, 8, 4) && r->dtype == (mimic_dtype)dt);
        int64_t idx[3] = {0, 0, 0};
        do {
            int64_t s[3] = {idx[0], idx[1], idx[2]};
            const mimic_tensor *src = a;
            if (s[1] >= 3) {
                s[1] -= 3;
                src = b;
            }
            if (r && mimic_get(r, idx) != mimic_get(src, s)) {
                CHECK(!"cat value");
                break;
            }
        } while (r && next_idx(3, r->shape, idx));
        mimic_tensor_free(r);
        mimic_tensor *r0 = mimic_cat((mimic_tensor *[]){a, a}, 2, 0);
        CHECK(SHAPE_IS(r0, 4, 3, 4));
        if (r0)
            CHECK(mimic_get(r0, (int64_t[]){3, 2, 1}) == mimic_get(a, (int64_t[]){1, 2, 1}));
        mimic_tensor_free(r0);
        mimic_tensor_free(a);
        mimic_tensor_free(b);
        mimic_tensor_free(bt);
        mimic_tensor_free(e);
    }
    /* float32 + float64 -> float64, exactly. */
    mimic_tensor *f = RAND(MIMIC_F32, 3), *d = RAND(MIMIC_F64, 2);
    mimic_tensor *r = mimic_cat((mimic_tensor *[]){f, d}, 2, 0);
    CHECK(SHAPE_IS(r, 5) && r->dtype == MIMIC_F64);
    if (r) {
        CHECK(mimic_get(r, (int64_t[]){2}) == mimic_get(f, (int64_t[]){2}));
        CHECK(mimic_get(r, (int64_t[]){4}) == mimic_get(d, (int64_t[]){1}));
    }
    mimic_tensor_free(r);
    mimic_tensor *l = RAND(MIMIC_I64, 3), *m = RAND(MIMIC_F32, 2, 3);
    CHECK_ERR_PTR(mimic_cat((mimic_tensor *[]){f, l}, 2, 0), MIMIC_EDTYPE,
                  "cat: the 2nd tensor is int64 but the 1st is float32");
    CHECK_ERR_PTR(mimic_cat((mimic_tensor *[]){f, m}, 2, 0), MIMIC_ESHAPE, "cat: the 2nd tensor has shape [2,3] but the 1st has [3]");
    mimic_tensor *m2 = RAND(MIMIC_F32, 2, 4);
    CHECK_ERR_PTR(mimic_cat((mimic_tensor *[]){m, m2}, 2, 0), MIMIC_ESHAPE, "all dims but the cat dim, dim -2, must match");
    mimic_tensor *ok = mimic_cat((mimic_tensor *[]){m, m2}, 2, 1);
    CHECK(SHAPE_IS(ok, 2, 7));
    mimic_tensor_free(ok);
    CHECK_ERR_PTR(mimic_cat((mimic_tensor *[]){m, m2}, 2, 2), MIMIC_EARG, "cat: dim 2 out of range");
    CHECK_ERR_PTR(mimic_cat(NULL, 0, 0), MIMIC_EARG, "at least one");
    mimic_tensor *s = mimic_scalar(1, MIMIC_F32);
    CHECK_ERR_PTR(mimic_cat((mimic_tensor *[]){s}, 1, 0), MIMIC_ESHAPE, "use stack");
    mimic_tensor_free(s);
    mimic_tensor_free(m2);
    mimic_tensor_free(m);
    mimic_tensor_free(l);
    mimic_tensor_free(f);
    mimic_tensor_free(d);
}

/* Positions in a list are English ordinals, so messages read the same from
 * C (0-based) and Lua (1-based). */
TEST(test_join_names_positions_by_ordinal)
{
    static const struct { int at; const char *want; } cases[] = {
        {1, "the 2nd tensor"}, {2, "the 3rd tensor"}, {3, "the 4th tensor"}, {10, "the 11th tensor"},
        {11, "the 12th tensor"}, {12, "the 13th tensor"}, {20, "the 21st tensor"}, {21, "the 22nd tensor"},
        {22, "the 23rd tensor"}, {100, "the 101st tensor"}, {110, "the 111th tensor"}, {111, "the 112th tensor"},
    };
    mimic_tensor *v = mimic_zeros(1, (int64_t[]){3}, MIMIC_F32), *m = mimic_zeros(2, (int64_t[]){2, 3}, MIMIC_F32);
    mimic_tensor *ts[112];
    char want[64];
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        for (int i = 0; i < 112; i++)
            ts[i] = v;
        ts[cases[c].at] = m;
        snprintf(want, sizeof want, "cat: %s has shape [2,3] but the 1st has [3]", cases[c].want);
        CHECK_ERR_PTR(mimic_cat(ts, 112, 0), MIMIC_ESHAPE, want);
        snprintf(want, sizeof want, "stack: %s has shape [2,3] but the 1st has [3]", cases[c].want);
        CHECK_ERR_PTR(mimic_stack(ts, 112, 0), MIMIC_ESHAPE, want);
        ts[cases[c].at] = NULL;
        snprintf(want, sizeof want, "cat: %s is NULL", cases[c].want);
        CHECK_ERR_PTR(mimic_cat(ts, 112, 0), MIMIC_EARG, want);
    }
    mimic_tensor_free(m);
    mimic_tensor_free(v);
}

TEST(test_stack)
{
    mimic_tensor *a = RAND(MIMIC_I64, 3, 4), *bt = RAND(MIMIC_I64, 4, 3), *b = mimic_transpose(bt, 0, 1);
    for (int dim = -3; dim < 3; dim++) {
        mimic_tensor *r = mimic_stack((mimic_tensor *[]){a, b}, 2, dim);
        int nd = dim < 0 ? dim + 3 : dim;
        int64_t want[3] = {3, 4, 4};
        want[nd] = 2;
        for (int d = 0, k = 0; d < 3; d++)
            if (d != nd)
                want[d] = a->shape[k++];
        CHECK(same_shape(r, 3, want) && r->dtype == MIMIC_I64);
        int64_t idx[3] = {0, 0, 0};
        do {
            int64_t s[2];
            for (int d = 0, k = 0; d < 3; d++)
                if (d != nd)
                    s[k++] = idx[d];
            const mimic_tensor *src = idx[nd] ? b : a;
            if (r && mimic_get(r, idx) != mimic_get(src, s)) {
                CHECK(!"stack value");
                break;
            }
        } while (r && next_idx(3, r->shape, idx));
        mimic_tensor_free(r);
    }
    mimic_tensor *s1 = mimic_scalar(1.5, MIMIC_F32), *s2 = mimic_scalar(2.5, MIMIC_F64);
    mimic_tensor *r = mimic_stack((mimic_tensor *[]){s1, s2}, 2, 0);
    CHECK(SHAPE_IS(r, 2) && r->dtype == MIMIC_F64 && mimic_get(r, (int64_t[]){1}) == 2.5);
    mimic_tensor_free(r);
    mimic_tensor *s3 = mimic_scalar(3, MIMIC_I64);
    CHECK_ERR_PTR(mimic_stack((mimic_tensor *[]){a, s3}, 2, 0), MIMIC_ESHAPE, "stack: the 2nd tensor has shape [] but the 1st has [3,4]");
    CHECK_ERR_PTR(mimic_stack((mimic_tensor *[]){a, s1}, 2, 0), MIMIC_EDTYPE, "stack: the 2nd tensor is float32 but the 1st is int64");
    mimic_tensor_free(s3);
    CHECK_ERR_PTR(mimic_stack((mimic_tensor *[]){a, a}, 2, 3), MIMIC_EARG, "stack: dim 3 out of range");
    mimic_tensor_free(s1);
    mimic_tensor_free(s2);
    mimic_tensor_free(a);
    mimic_tensor_free(b);
    mimic_tensor_free(bt);
}

TEST(test_split)
{
    mimic_tensor *t = RAND(MIMIC_F32, 7, 3);
    int n = -1;
    mimic_tensor **p = mimic_split(t, 3, 0, &n);
    CHECK(p && n == 3);
    for (int i = 0; p && i < n; i++) {
        CHECK(SHAPE_IS(p[i], i < 2 ? 3 : 1, 3));
        CHECK(p[i]->storage == t->storage); /* views */
        CHECK(mimic_get(p[i], (int64_t[]){0, 2}) == mimic_get(t, (int64_t[]){3 * i, 2}));
    }
    for (int i = 0; p && i < n; i++)
        mimic_tensor_free(p[i]);
    mimic_free(p);
    p = mimic_split(t, 5, -1, &n);
    CHECK(p && n == 1 && SHAPE_IS(p[0], 7, 3));
    if (p) {
        mimic_tensor_free(p[0]);
        mimic_free(p);
    }
    mimic_tensor *e = mimic_empty(2, (int64_t[]){0, 3}, MIMIC_F32);
    p = mimic_split(e, 2, 0, &n);
    CHECK(p && n == 1 && SHAPE_IS(p[0], 0, 3));
    if (p) {
        mimic_tensor_free(p[0]);
        mimic_free(p);
    }
    mimic_tensor_free(e);
    CHECK_ERR_PTR(mimic_split(t, 0, 0, &n), MIMIC_EARG, "split: piece size 0 must be >= 1");
    CHECK(n == 0);
    CHECK_ERR_PTR(mimic_split(t, 1, 2, &n), MIMIC_EARG, "dim 2 out of range");
    mimic_tensor_free(t);
}

TEST(test_gather)
{
    mimic_tensor *t = RAND(MIMIC_F64, 4, 5), *tt = mimic_transpose(t, 0, 1); /* [5,4] strided */
    for (int dim = 0; dim < 2; dim++) {
        int64_t ish[2] = {3, 4};
        ish[dim] = 6; /* along dim the index may be longer than t */
        mimic_tensor *ix = mimic_empty(2, ish, MIMIC_I64);
        int64_t idx[2] = {0, 0};
        int64_t c = 0;
        do
            mimic_set(ix, idx, (double)((c++ * 7 + 3) % tt->shape[dim]));
        while (next_idx(2, ish, idx));
        mimic_tensor *r = mimic_gather(tt, dim, ix);
        CHECK(same_shape(r, 2, ish) && r->dtype == MIMIC_F64);
        idx[0] = idx[1] = 0;
        do {
            int64_t s[2] = {idx[0], idx[1]};
            s[dim] = (int64_t)mimic_get(ix, idx);
            if (r && mimic_get(r, idx) != mimic_get(tt, s)) {
                CHECK(!"gather value");
                break;
            }
        } while (r && next_idx(2, ish, idx));
        mimic_tensor_free(r);
        mimic_tensor_free(ix);
    }
    /* int64 data is copied bit-exactly. */
    mimic_tensor *l = RAND(MIMIC_I64, 2, 3);
    mimic_tensor *ix = mimic_zeros(2, (int64_t[]){2, 2}, MIMIC_I64);
    mimic_set(ix, (int64_t[]){1, 1}, 2);
    mimic_tensor *g = mimic_gather(l, 1, ix);
    CHECK(g && ((int64_t *)mimic_data(g))[3] == ((int64_t *)mimic_data(l))[5]);
    CHECK(g && ((int64_t *)mimic_data(g))[2] == ((int64_t *)mimic_data(l))[3]);
    mimic_tensor_free(g);
    mimic_set(ix, (int64_t[]){1, 0}, 3);
    CHECK_ERR_PTR(mimic_gather(l, 1, ix), MIMIC_EARG, "gather: index 3 is out of range for dim -1 of size 3");
    mimic_set(ix, (int64_t[]){1, 0}, -1);
    CHECK_ERR_PTR(mimic_gather(l, 1, ix), MIMIC_EARG, "index -1 is out of range");
    mimic_tensor *fx = mimic_zeros(2, (int64_t[]){2, 2}, MIMIC_F32);
    CHECK_ERR_PTR(mimic_gather(l, 1, fx), MIMIC_EDTYPE, "gather: index must be int64, got float32; convert it with :long()");
    mimic_tensor *big = mimic_zeros(2, (int64_t[]){3, 2}, MIMIC_I64);
    CHECK_ERR_PTR(mimic_gather(l, 1, big), MIMIC_ESHAPE, "gather: index of shape [3,2] does not fit tensor [2,3]");
    mimic_tensor *e = mimic_zeros(2, (int64_t[]){2, 0}, MIMIC_I64);
    g = mimic_gather(l, 1, e);
    CHECK(SHAPE_IS(g, 2, 0));
    mimic_tensor_free(g);
    mimic_tensor_free(e);
    mimic_tensor_free(big);
    mimic_tensor_free(fx);
    mimic_tensor_free(ix);
    mimic_tensor_free(l);
    mimic_tensor_free(tt);
    mimic_tensor_free(t);
}

TEST(test_index_select)
{
    mimic_tensor *base = RAND(MIMIC_F32, 4, 6, 5), *t = mimic_slice(base, 1, 0, 6, 2); /* [4,3,5] strided */
    int64_t iv[] = {2, 0, 2, 1};
    mimic_tensor *ix = long_tensor(4, iv);
    for (int dim = 0; dim < 3; dim++) {
        mimic_tensor *ixd = ix;
        if (dim == 0)
            ixd = long_tensor(4, (int64_t[]){3, 0, 3, 1});
        if (dim == 2)
            ixd = long_tensor(4, (int64_t[]){4, 0, 4, 2});
        mimic_tensor *r = mimic_index_select(t, dim, ixd);
        int64_t want[3] = {4, 3, 5};
        want[dim] = 4;
        CHECK(same_shape(r, 3, want));
        int64_t idx[3] = {0, 0, 0};
        do {
            int64_t s[3] = {idx[0], idx[1], idx[2]};
            s[dim] = (int64_t)mimic_get(ixd, &idx[dim]);
            if (r && mimic_get(r, idx) != mimic_get(t, s)) {
                CHECK(!"index_select value");
                break;
            }
        } while (r && next_idx(3, want, idx));
        mimic_tensor_free(r);
        if (ixd != ix)
            mimic_tensor_free(ixd);
    }
    mimic_tensor *e = mimic_empty(1, (int64_t[]){0}, MIMIC_I64);
    mimic_tensor *r = mimic_index_select(t, 1, e);
    CHECK(SHAPE_IS(r, 4, 0, 5));
    mimic_tensor_free(r);
    mimic_tensor *i3 = long_tensor(1, (int64_t[]){3});
    CHECK_ERR_PTR(mimic_index_select(t, 1, i3), MIMIC_EARG, "index_select: index 3 is out of range for dim -2 of size 3");
    mimic_tensor_free(i3);
    mimic_tensor *ix2 = mimic_zeros(2, (int64_t[]){2, 2}, MIMIC_I64);
    CHECK_ERR_PTR(mimic_index_select(t, 0, ix2), MIMIC_ESHAPE, "index must be 1-D");
    mimic_tensor *fx = mimic_zeros(1, (int64_t[]){2}, MIMIC_F64);
    CHECK_ERR_PTR(mimic_index_select(t, 0, fx), MIMIC_EDTYPE, ":long()");
    mimic_tensor_free(fx);
    mimic_tensor_free(ix2);
    mimic_tensor_free(e);
    mimic_tensor_free(ix);
    mimic_tensor_free(t);
    mimic_tensor_free(base);
}

TEST(test_masked_select)
{
    mimic_tensor *t = RAND(MIMIC_F64, 3, 4);
    /* A float mask of one row, broadcast over the rows: nonzero (even NaN) is true. */
    mimic_tensor *m = mimic_zeros(1, (int64_t[]){4}, MIMIC_F32);
    mimic_set(m, (int64_t[]){1}, -2);
    mimic_set(m, (int64_t[]){3}, NAN);
    mimic_tensor *r = mimic_masked_select(t, m);
    CHECK(SHAPE_IS(r, 6) && r->dtype == MIMIC_F64);
    for (int64_t i = 0; r && i < 3; i++) {
        CHECK(mimic_get(r, (int64_t[]){2 * i}) == mimic_get(t, (int64_t[]){i, 1}));
        CHECK(mimic_get(r, (int64_t[]){2 * i + 1}) == mimic_get(t, (int64_t[]){i, 3}));
    }
    mimic_tensor_free(r);
    /* A bool mask over a transposed tensor: row-major order of the view. */
    mimic_tensor *tt = mimic_transpose(t, 0, 1); /* [4,3] */
    mimic_tensor *bm = RAND(MIMIC_BOOL, 4, 3);
    r = mimic_masked_select(tt, bm);
    int64_t idx[2] = {0, 0}, k = 0, bad = 0;
    do {
        if (mimic_get(bm, idx) != 0) {
            if (!r || k >= r->shape[0] || mimic_get(r, &k) != mimic_get(tt, idx))
                bad++;
            k++;
        }
    } while (next_idx(2, tt->shape, idx));
    CHECK(r && r->ndim == 1 && r->shape[0] == k && bad == 0);
    mimic_tensor_free(r);
    mimic_tensor *none = mimic_zeros(2, (int64_t[]){4, 3}, MIMIC_I64);
    r = mimic_masked_select(tt, none);
    CHECK(SHAPE_IS(r, 0));
    mimic_tensor_free(r);
    mimic_tensor *m3 = mimic_zeros(1, (int64_t[]){3}, MIMIC_BOOL);
    CHECK_ERR_PTR(mimic_masked_select(t, m3), MIMIC_ESHAPE,
                  "masked_select: mask of shape [3] does not broadcast to the tensor's shape [3,4]");
    mimic_tensor_free(m3);
    mimic_tensor_free(none);
    mimic_tensor_free(bm);
    mimic_tensor_free(tt);
    mimic_tensor_free(m);
    mimic_tensor_free(t);
}

/* Every allocation failing in turn: ENOMEM, no leak (ASan), no crash. */
TEST(test_out_of_memory)
{
    mimic_tensor *t = RAND(MIMIC_F32, 7, 3);
    int failures = 0, successes = 0;
    for (long k = 0; k < 8; k++) {
        int n = 0;
        alloc_fail_next(k);
        mimic_tensor **p = mimic_split(t, 2, 0, &n);
        alloc_fail_none();
        if (p)
            successes++;
        else
            failures += mimic_errcode() == MIMIC_ENOMEM && n == 0;
        for (int i = 0; i < n; i++)
            mimic_tensor_free(p[i]);
        mimic_free(p);
        alloc_fail_next(k);
        mimic_tensor *c = mimic_cat((mimic_tensor *[]){t, t}, 2, 1);
        alloc_fail_none();
        oom_tally(c != NULL, &successes, &failures);
        mimic_tensor_free(c);
    }
    CHECK(successes > 0 && failures + successes == 16);
    mimic_tensor_free(t);
}

int main(void)
{
    use_counting_allocator();
    mimic_rng_init(&rng, 99);
    RUN(test_cat);
    RUN(test_join_names_positions_by_ordinal);
    RUN(test_stack);
    RUN(test_split);
    RUN(test_gather);
    RUN(test_index_select);
    RUN(test_masked_select);
    RUN(test_out_of_memory);
    return CHECK_DONE();
}
