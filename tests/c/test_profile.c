/* The region profiler (core/embed/profile.c): inclusive and self times of
 * nested regions against busy-waits of known length, recursion, nesting
 * errors, reset, no allocation in begin/end after warm-up, out of memory,
 * and the Amdahl and break-even formulas against hand-computed values.
 *
 * Timing checks are one-sided where the machine can only add time (a busy
 * wait lasts at least what it asks for) and exact where the bookkeeping is
 * (self = total - children holds to the nanosecond). */
#include "check.h"
#include "testutil.h"

#include "mimic/profile.h"

#include <time.h>

/* Generous upper slack for a shared, loaded 2-core machine: only a gross
 * error (a region charged twice, a child's time missing) exceeds it. */
#define SLACK 0.25

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void busy(double seconds)
{
    double end = now() + seconds;
    while (now() < end) {
    }
}

static mimic_prof_entry get(const mimic_profiler *p, int id)
{
    mimic_prof_entry e = {0};
    CHECK_OK(mimic_prof_get(p, id, &e));
    return e;
}

/* outer { 6 ms; inner { 4 ms }; inner { 4 ms } }, then leaf { 3 ms } at top level. */
TEST(nested_times)
{
    mimic_profiler *p = mimic_profiler_new();
    CHECK_PTR(p);
    int outer = mimic_prof_region(p, "outer"), inner = mimic_prof_region(p, "inner");
    CHECK(outer == 0 && inner == 1);
    CHECK(mimic_prof_region(p, "outer") == 0); /* lookup, not a new region */
    double t0 = now();
    CHECK_OK(mimic_prof_begin(p, outer));
    busy(0.003);
    for (int k = 0; k < 2; k++) {
        CHECK_OK(mimic_prof_begin(p, inner));
        busy(0.004);
        CHECK_OK(mimic_prof_end(p, inner));
    }
    busy(0.003);
    CHECK_OK(mimic_prof_end(p, outer));
    int leaf = mimic_prof_region(p, "leaf");
    CHECK(leaf == 2);
    CHECK_OK(mimic_prof_begin(p, leaf));
    busy(0.003);
    CHECK_OK(mimic_prof_end(p, leaf));
    double wall = now() - t0;
    double elapsed = mimic_prof_elapsed(p);

    mimic_prof_entry eo = get(p, outer), ei = get(p, inner), el = get(p, leaf);
    CHECK(strcmp(eo.name, "outer") == 0 && strcmp(ei.name, "inner") == 0 && strcmp(el.name, "leaf") == 0);
    CHECK(eo.calls == 1 && ei.calls == 2 && el.calls == 1);
    CHECK(ei.total >= 0.008 && ei.total < 0.008 + SLACK);
    CHECK_NEAR(ei.self, ei.total, 1e-9); /* no children */
    CHECK(eo.total >= 0.014 && eo.total < 0.014 + SLACK);
    CHECK_NEAR(eo.self, eo.total - ei.total, 2e-9); /* self = total - children, exactly */
    CHECK(eo.self >= 0.006 && eo.self < 0.006 + SLACK);
    CHECK(el.total >= 0.003 && el.self == el.total);
    /* The regions cover less than the wall time around them, and elapsed more. */
    CHECK(eo.total + el.total <= wall + 1e-6);
    CHECK(elapsed >= wall);
    CHECK(mimic_prof_count(p) == 3);
    mimic_profiler_free(p);
}

/* A region opened inside itself: every call's self time counts, total only
 * once (the outermost call's wall time). */
TEST(recursion)
{
    mimic_profiler *p = mimic_profiler_new();
    int a = mimic_prof_region(p, "a");
    CHECK_OK(mimic_prof_begin(p, a));
    busy(0.002);
    CHECK_OK(mimic_prof_begin(p, a));
    busy(0.003);
    CHECK_OK(mimic_prof_end(p, a));
    CHECK_OK(mimic_prof_end(p, a));
    mimic_prof_entry e = get(p, a);
    CHECK(e.calls == 2);
    CHECK(e.total >= 0.005 && e.total < 0.005 + SLACK);
    CHECK_NEAR(e.self, e.total, 2e-9); /* inner self + outer self = outer wall time */
    mimic_profiler_free(p);
}

TEST(nesting_errors)
{
    mimic_profiler *p = mimic_profiler_new();
    int a = mimic_prof_region(p, "alpha"), b = mimic_prof_region(p, "beta");
    CHECK_ERR(mimic_prof_end(p, a), MIMIC_ESTATE, "'alpha' ends but no region is open");
    CHECK_OK(mimic_prof_begin(p, a));
    CHECK_OK(mimic_prof_begin(p, b));
    CHECK_ERR(mimic_prof_end(p, a), MIMIC_ESTATE, "region 'alpha' ends but the innermost open region is 'beta'");
    CHECK_OK(mimic_prof_end(p, b)); /* the failed end changed nothing */
    CHECK_OK(mimic_prof_end(p, a));
    CHECK(get(p, a).calls == 1 && get(p, b).calls == 1);
    CHECK_ERR(mimic_prof_begin(p, 7), MIMIC_EARG, "region id 7 does not exist");
    CHECK_ERR(mimic_prof_end(p, -1), MIMIC_EARG, "region id -1 does not exist");
    CHECK_ERR(mimic_prof_region(p, ""), MIMIC_EARG, "empty");
    CHECK_ERR(mimic_prof_region(p, NULL), MIMIC_EARG, "NULL");
    CHECK_ERR(mimic_prof_begin(NULL, 0), MIMIC_EARG, "profiler is NULL");
    mimic_prof_entry e;
    CHECK_ERR(mimic_prof_get(p, 2, &e), MIMIC_EARG, "region id 2");
    CHECK_ERR(mimic_prof_get(p, 0, NULL), MIMIC_EARG, "NULL");
    CHECK(mimic_prof_count(NULL) < 0);
    CHECK(isnan(mimic_prof_elapsed(NULL)));
    mimic_profiler_free(p);
    mimic_profiler_free(NULL);
}

/* Names are copied: the caller's buffer may change or go away. */
TEST(names_copied)
{
    mimic_profiler *p = mimic_profiler_new();
    char buf[16] = "kernel";
    int k = mimic_prof_region(p, buf);
    strcpy(buf, "other");
    CHECK(strcmp(get(p, k).name, "kernel") == 0);
    CHECK(mimic_prof_region(p, "kernel") == k);
    CHECK(mimic_prof_region(p, buf) == k + 1);
    mimic_profiler_free(p);
}

TEST(reset)
{
    mimic_profiler *p = mimic_profiler_new();
    int a = mimic_prof_region(p, "a"), b = mimic_prof_region(p, "b");
    CHECK_OK(mimic_prof_begin(p, a));
    CHECK_OK(mimic_prof_begin(p, b));
    busy(0.002);
    CHECK_OK(mimic_prof_reset(p)); /* with regions open: they are forgotten */
    mimic_prof_entry e = get(p, a);
    CHECK(e.calls == 0 && e.total == 0 && e.self == 0);
    CHECK(mimic_prof_elapsed(p) < 0.002 + SLACK);
    CHECK_ERR(mimic_prof_end(p, b), MIMIC_ESTATE, "no region is open");
    CHECK(mimic_prof_region(p, "b") == b); /* ids survive */
    CHECK_OK(mimic_prof_begin(p, b));
    CHECK_OK(mimic_prof_end(p, b));
    CHECK(get(p, b).calls == 1 && get(p, a).calls == 0);
    mimic_profiler_free(p);
}

/* The stack grows when nesting first reaches a new depth (beyond the initial
 * room), and never again: a repeated loop allocates nothing. */
TEST(no_allocation_after_warmup)
{
    mimic_profiler *p = mimic_profiler_new();
    enum { DEPTH = 40, REGIONS = 40 };
    int id[REGIONS];
    char name[32];
    long before_regions = alloc_count();
    for (int i = 0; i < REGIONS; i++) {
        snprintf(name, sizeof name, "r%d", i);
        id[i] = mimic_prof_region(p, name);
        CHECK(id[i] == i);
    }
    CHECK(alloc_count() > before_regions + REGIONS); /* names + the table grew */
    long before_warmup = alloc_count();
    for (int d = 0; d < DEPTH; d++)
        CHECK_OK(mimic_prof_begin(p, id[d % REGIONS]));
    for (int d = DEPTH - 1; d >= 0; d--)
        CHECK_OK(mimic_prof_end(p, id[d % REGIONS]));
    CHECK(alloc_count() > before_warmup); /* deeper than the initial stack: it grew */
    long before = alloc_count();
    for (int rep = 0; rep < 1000; rep++) {
        for (int d = 0; d < DEPTH; d++)
            CHECK_OK(mimic_prof_begin(p, id[(d + rep) % REGIONS]));
        for (int d = DEPTH - 1; d >= 0; d--)
            CHECK_OK(mimic_prof_end(p, id[(d + rep) % REGIONS]));
        mimic_prof_entry e;
        CHECK_OK(mimic_prof_get(p, id[rep % REGIONS], &e));
    }
    CHECK_OK(mimic_prof_reset(p));
    CHECK(mimic_prof_region(p, "r3") == 3);
    CHECK(alloc_count() == before);
    CHECK(get(p, 0).calls == 0);
    mimic_profiler_free(p);
}

/* Out of memory while creating the profiler, its regions or a deeper stack
 * fails cleanly with ENOMEM, and what existed keeps working (ASan: no leak). */
TEST(out_of_memory)
{
    int ok = 0, failed = 0, tries = 0;
    for (int budget = 0; budget < 60; budget++, tries++) {
        use_budget_allocator(budget);
        mimic_profiler *p = mimic_profiler_new();
        bool good = p != NULL;
        char name[16];
        for (int i = 0; good && i < 20; i++) {
            snprintf(name, sizeof name, "r%d", i);
            good = mimic_prof_region(p, name) == i;
        }
        int opened = 0;
        while (good && opened < 20 && (good = mimic_prof_begin(p, opened) == MIMIC_OK))
            opened++;
        oom_tally(good, &ok, &failed);
        /* Still consistent after a failed begin: what was opened closes in order. */
        bool closed = true;
        while (opened > 0)
            closed &= mimic_prof_end(p, --opened) == MIMIC_OK;
        CHECK(closed);
        mimic_profiler_free(p);
    }
    use_counting_allocator();
    CHECK(ok + failed == tries && ok > 0 && failed > 0);
}

TEST(amdahl_and_break_even)
{
    /* f = 0.5 replaced 10x faster: 1 / (0.5 + 0.05) = 20/11. */
    CHECK_NEAR(mimic_amdahl_bound(0.5, 0.1), 20.0 / 11.0, 1e-14);
    /* f = 0.9, free surrogate: at most 10x. */
    CHECK_NEAR(mimic_amdahl_bound(0.9, 0.0), 10.0, 1e-12);
    CHECK_NEAR(mimic_amdahl_bound(0.0, 0.1), 1.0, 0);
    CHECK_NEAR(mimic_amdahl_bound(0.8, 1.0), 1.0, 1e-15); /* as costly as the kernel */
    CHECK_NEAR(mimic_amdahl_bound(0.25, 2.0), 0.8, 1e-15); /* slower: a slow-down */
    CHECK(isinf(mimic_amdahl_bound(1.0, 0.0)));
    CHECK(isnan(mimic_amdahl_bound(1.5, 0.1)));
    CHECK(mimic_errcode() == MIMIC_EARG && strstr(mimic_errmsg(), "fraction"));
    CHECK(isnan(mimic_amdahl_bound(0.5, -1)));
    CHECK(isnan(mimic_amdahl_bound(NAN, 0.1)));

    /* 100 s runs, 2x: 50 s saved per run; 1000 s one-off: 20 runs. */
    CHECK_NEAR(mimic_break_even_runs(100, 2, 1000), 20.0, 1e-12);
    /* 3600 s runs, 20/11 x: saves 3600 * 0.45 = 1620 s; 8100 s one-off: 5 runs. */
    CHECK_NEAR(mimic_break_even_runs(3600, 20.0 / 11.0, 8100), 5.0, 1e-10);
    CHECK_NEAR(mimic_break_even_runs(10, INFINITY, 5), 0.5, 1e-15);
    CHECK_NEAR(mimic_break_even_runs(10, 4, 0), 0.0, 0);
    CHECK(isinf(mimic_break_even_runs(100, 1, 1000)));   /* nothing saved */
    CHECK(isinf(mimic_break_even_runs(100, 0.5, 1000))); /* a slow-down never pays */
    CHECK(isinf(mimic_break_even_runs(0, 2, 1000)));
    CHECK(isnan(mimic_break_even_runs(100, 0, 1000)));
    CHECK(mimic_errcode() == MIMIC_EARG && strstr(mimic_errmsg(), "speed-up"));
    CHECK(isnan(mimic_break_even_runs(-1, 2, 1000)));
    CHECK(isnan(mimic_break_even_runs(100, 2, NAN)));
}

int main(void)
{
    use_counting_allocator();
    RUN(nested_times);
    RUN(recursion);
    RUN(nesting_errors);
    RUN(names_copied);
    RUN(reset);
    RUN(no_allocation_after_warmup);
    RUN(out_of_memory);
    RUN(amdahl_and_break_even);
    return CHECK_DONE();
}
