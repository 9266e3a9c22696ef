/* Helpers shared by the C tests; include after check.h. All static inline, so
 * a test that uses a few of them compiles without unused warnings; the
 * allocator state lives in function-local statics for the same reason. */
#ifndef MIMIC_TESTUTIL_H
#define MIMIC_TESTUTIL_H

#include "mimic/model.h"
#include "mimic/rng.h"
#include "mimic/tensor.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* The shape of a literal list of sizes: SHAPE_OF(2, 3) is `2, (int64_t[]){2, 3}`. */
#define SHAPE_OF(...) (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (int64_t[]){__VA_ARGS__}

/* --- fault injection -------------------------------------------------------------
 * The counting allocator counts every allocation and can fail one of them (then
 * carries on), to prove a path allocates nothing or to walk its out-of-memory
 * exits one by one. Atomic: OpenMP threads allocate too. */
typedef struct test_alloc_state {
    atomic_long n_allocs;
    atomic_long fail_at; /* -1: none */
} test_alloc_state;

static inline test_alloc_state *test_alloc_state_get(void)
{
    static test_alloc_state s = {0, -1};
    return &s;
}
static inline long alloc_count(void) { return atomic_load(&test_alloc_state_get()->n_allocs); }
/* The k-th allocation from now (0: the next one) fails. */
static inline void alloc_fail_next(long k) { atomic_store(&test_alloc_state_get()->fail_at, alloc_count() + k); }
static inline void alloc_fail_none(void) { atomic_store(&test_alloc_state_get()->fail_at, -1); }
/* Scores one try of an out-of-memory sweep. An error other than ENOMEM counts
 * as neither, so the sweep's check of the totals catches it. */
static inline void oom_tally(bool succeeded, int *successes, int *failures)
{
    if (succeeded)
        (*successes)++;
    else
        *failures += mimic_errcode() == MIMIC_ENOMEM;
}

static inline void *count_alloc(void *ud, size_t n)
{
    (void)ud;
    test_alloc_state *s = test_alloc_state_get();
    if (atomic_fetch_add(&s->n_allocs, 1) == atomic_load(&s->fail_at))
        return NULL;
    return malloc(n);
}
static inline void *count_realloc(void *ud, void *p, size_t n)
{
    (void)ud;
    atomic_fetch_add(&test_alloc_state_get()->n_allocs, 1);
    return realloc(p, n);
}
static inline void plain_free(void *ud, void *p)
{
    (void)ud;
    free(p);
}
static inline void use_counting_allocator(void)
{
    mimic_set_allocator(&(mimic_allocator){count_alloc, count_realloc, plain_free, NULL});
}

/* The budget allocator grants `budget` (re)allocations, then fails every one
 * after: for sequences that must fail cleanly wherever memory runs out. */
static inline int *alloc_budget(void)
{
    static int budget;
    return &budget;
}
static inline void *budget_alloc(void *ud, size_t n)
{
    (void)ud;
    return (*alloc_budget())-- > 0 ? malloc(n) : NULL;
}
static inline void *budget_realloc(void *ud, void *p, size_t n)
{
    (void)ud;
    return (*alloc_budget())-- > 0 ? realloc(p, n) : NULL;
}
static inline void use_budget_allocator(int budget)
{
    *alloc_budget() = budget;
    mimic_set_allocator(&(mimic_allocator){budget_alloc, budget_realloc, plain_free, NULL});
}

/* --- tensors ---------------------------------------------------------------------- */
static inline bool same_shape(const mimic_tensor *t, int ndim, const int64_t *shape)
{
    if (!t || t->ndim != ndim)
        return false;
    for (int d = 0; d < ndim; d++)
        if (t->shape[d] != shape[d])
            return false;
    return true;
}
#define SHAPE_IS(t, ...) same_shape(t, SHAPE_OF(__VA_ARGS__))

/* A contiguous tensor holding vals (row-major). */
static inline mimic_tensor *mk(mimic_dtype dt, int ndim, const int64_t *shape, const double *vals)
{
    mimic_tensor *t = mimic_empty(ndim, shape, dt);
    int64_t n = mimic_numel(t);
    for (int64_t i = 0; i < n; i++) {
        switch (dt) {
        case MIMIC_F32: ((float *)mimic_data(t))[i] = (float)vals[i]; break;
        case MIMIC_F64: ((double *)mimic_data(t))[i] = vals[i]; break;
        case MIMIC_I64: ((int64_t *)mimic_data(t))[i] = (int64_t)vals[i]; break;
        default: ((uint8_t *)mimic_data(t))[i] = vals[i] != 0; break;
        }
    }
    return t;
}

/* Element i of a contiguous tensor, as double. */
static inline double at(const mimic_tensor *t, int64_t i)
{
    switch (t->dtype) {
    case MIMIC_F32: return ((const float *)mimic_data(t))[i];
    case MIMIC_F64: return ((const double *)mimic_data(t))[i];
    case MIMIC_I64: return (double)((const int64_t *)mimic_data(t))[i];
    default: return ((const uint8_t *)mimic_data(t))[i];
    }
}

/* [r, c] holding 0, 1, 2, ... row-major. */
static inline mimic_tensor *arange2(int64_t r, int64_t c, mimic_dtype dt)
{
    mimic_tensor *a = mimic_arange(0, (double)(r * c), 1, dt);
    mimic_tensor *v = mimic_view(a, 2, (int64_t[]){r, c});
    mimic_tensor_free(a);
    return v;
}

/* Random contents from r: floats uniform in [-1, 1); int64 large odd values
 * (few repeats, so a misplaced element shows); bool a pattern. */
static inline mimic_tensor *rand_tensor(mimic_rng *r, int ndim, const int64_t *shape, mimic_dtype dt)
{
    mimic_tensor *t = mimic_empty(ndim, shape, dt);
    if (dt == MIMIC_F32 || dt == MIMIC_F64) {
        mimic_rng_uniform(r, t, -1, 1);
    } else {
        int64_t n = mimic_numel(t);
        mimic_tensor *f = mimic_empty(ndim, shape, MIMIC_F64);
        mimic_rng_uniform(r, f, 0, 1);
        mimic_tensor *flat = mimic_reshape(f, 1, &n);
        for (int64_t i = 0; i < n; i++) {
            double u = mimic_get(flat, &i);
            mimic_set(flat, &i, dt == MIMIC_I64 ? (double)((int64_t)(u * 1e15) * 4 + 1) : (u < 0.5));
        }
        mimic_copy(t, f);
        mimic_tensor_free(flat);
        mimic_tensor_free(f);
    }
    return t;
}
/* RAND(MIMIC_F32, 2, 3): a random [2,3] tensor drawn from the including file's `rng`. */
#define RAND(dt, ...) rand_tensor(&rng, SHAPE_OF(__VA_ARGS__), dt)

/* --- scratch files ---------------------------------------------------------------- */
/* dir (n bytes) = /tmp/mimic_<name>_<pid>, created; test_dir_remove deletes it
 * with what it holds. */
static inline void test_dir_create(char *dir, size_t n, const char *name)
{
    snprintf(dir, n, "/tmp/mimic_%s_%d", name, (int)getpid());
    char cmd[400];
    snprintf(cmd, sizeof cmd, "mkdir -p %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "mkdir failed\n");
}
static inline void test_dir_remove(const char *dir)
{
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "rm failed\n");
}

/* --- inference plans -------------------------------------------------------------- */
/* Once warm (a first run of 40 rows), mimic_plan_run of m's plan allocates
 * nothing for 1..40 rows, deterministic or not (needs the counting allocator). */
static inline void check_plan_allocates_nothing(const mimic_model *m)
{
    mimic_plan *p = mimic_plan_new(m, 0);
    size_t es = mimic_dtype_size(mimic_model_dtype(m));
    char *x = calloc((size_t)(40 * mimic_model_nin(m)), es), *y = calloc((size_t)(40 * mimic_model_nout(m)), es);
    CHECK_OK(mimic_plan_run(p, x, 40, y)); /* warm-up */
    long before = alloc_count();
    for (int det = 0; det < 2; det++) {
        mimic_plan_set_deterministic(p, det);
        for (int64_t n = 1; n <= 40; n = n * 3 + 1)
            CHECK_OK(mimic_plan_run(p, x, n, y));
    }
    CHECK(alloc_count() == before);
    free(x), free(y);
    mimic_plan_free(p);
}

/* Deterministic mode: every row of x (N rows of m's dtype and width) comes out
 * bit-identical whatever the batch it is in, the row's place there, the
 * chunk and the thread count (1 or 2; left at 2). */
static inline void check_plan_deterministic(const mimic_model *m, const void *x, int64_t N)
{
    size_t es = mimic_dtype_size(mimic_model_dtype(m));
    int64_t nin = mimic_model_nin(m), nout = mimic_model_nout(m);
    char *ref = calloc((size_t)(N * nout), es), *y = calloc((size_t)(N * nout), es);
    mimic_set_num_threads(1);
    mimic_plan *p1 = mimic_plan_new(m, 4);
    mimic_plan_set_deterministic(p1, true);
    CHECK_OK(mimic_plan_run(p1, x, N, ref));
    for (int thr = 1; thr <= 2; thr++) {
        mimic_set_num_threads(thr);
        for (int64_t chunk = 1; chunk <= 9; chunk += 4) {
            mimic_plan *p = mimic_plan_new(m, chunk);
            mimic_plan_set_deterministic(p, true);
            for (int64_t n = 1; n <= N; n += 5) {
                int64_t off = (N - n) / 2; /* a row at another position in the batch */
                CHECK_OK(mimic_plan_run(p, (const char *)x + (size_t)(off * nin) * es, n, y));
                CHECK(memcmp(y, ref + (size_t)(off * nout) * es, (size_t)(n * nout) * es) == 0);
            }
            mimic_plan_free(p);
        }
    }
    mimic_set_num_threads(2);
    mimic_plan_free(p1);
    free(ref), free(y);
}

/* --- hostile model-file edits (include ../fuzz/modelfile_edit.h before this file) --- */
#ifdef MIMIC_MODELFILE_EDIT_H
/* An edit of a valid file and the load error it must give. */
typedef struct bad_case {
    edit e;
    int code;
    const char *msg;
} bad_case;

#define STR(n, v) {.op = ED_STR, .name = n, .s = v, .slen = sizeof(v) - 1}

/* Each case applied alone to the file `base` (written to `edited`): loading
 * it fails with the case's code and a message containing its text, and
 * gives no info. `what` names the table in failure messages. */
static inline void check_bad_cases(const char *what, const char *base, const char *edited, const bad_case *cases, int n)
{
    for (int k = 0; k < n; k++) {
        if (mf_rewrite(base, edited, &cases[k].e, 1) != 0) {
            fprintf(stderr, "%s case %d (%s): rewrite failed: %s\n", what, k, cases[k].e.name, mimic_errmsg());
            check_failures++;
            continue;
        }
        mimic_model_info *info = NULL;
        mimic_model *r = mimic_model_load(edited, &info);
        if (r || mimic_errcode() != cases[k].code || !strstr(mimic_errmsg(), cases[k].msg)) {
            fprintf(stderr, "%s case %d (%s): got %s %d \"%s\", expected %d \"%s\"\n", what, k, cases[k].e.name,
                    r ? "success" : "error", mimic_errcode(), r ? "" : mimic_errmsg(), cases[k].code, cases[k].msg);
            check_failures++;
        }
        CHECK(info == NULL);
        mimic_model_info_free(info);
        mimic_model_free(r);
    }
}
#endif

#endif
