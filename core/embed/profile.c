/* The region profiler (mimic/profile.h).
 *
 * Times are kept as integer nanoseconds of CLOCK_MONOTONIC, so sums over
 * millions of calls do not lose the short ones to rounding. An open region
 * is a frame on a stack; a frame accumulates its children's time, so self
 * time is the frame's elapsed time minus what nested regions took.
 *
 * Memory: the region table grows when a region is created, the frame stack
 * when the nesting reaches a new depth. Begin/end at a depth seen before
 * allocate nothing, so a host's time loop allocates only on its first step.
 *
 * Recursion (a region opened again inside itself): every call adds its self
 * time, but total is added only when the outermost open call ends, so
 * total stays the wall time the region covered and never double counts. */
#include "mimic/profile.h"

#include <math.h>
#include <string.h>
#include <time.h>

typedef struct prof_region {
    char *name;
    int64_t calls;
    int64_t total_ns, self_ns;
    int open; /* calls of this region currently on the stack */
} prof_region;

typedef struct frame {
    int region;
    int64_t start_ns;
    int64_t child_ns; /* time of regions nested directly in this call */
} frame;

struct mimic_profiler {
    prof_region *r;
    int nr, cap_r;
    frame *stack;
    int depth, cap_stack;
    int64_t t0_ns;
};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

mimic_profiler *mimic_profiler_new(void)
{
    mimic_profiler *p = mimic_calloc(1, sizeof *p);
    if (!p)
        return NULL;
    /* Room for a few regions and levels up front: most profiles are small,
     * and the first begin of a run then allocates nothing either. */
    p->cap_r = 16;
    p->cap_stack = 8;
    p->r = mimic_calloc((size_t)p->cap_r, sizeof *p->r);
    p->stack = mimic_calloc((size_t)p->cap_stack, sizeof *p->stack);
    if (!p->r || !p->stack) {
        mimic_profiler_free(p);
        return NULL;
    }
    p->t0_ns = now_ns();
    return p;
}

void mimic_profiler_free(mimic_profiler *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->nr; i++)
        mimic_free(p->r[i].name);
    mimic_free(p->r);
    mimic_free(p->stack);
    mimic_free(p);
}

int mimic_prof_region(mimic_profiler *p, const char *name)
{
    if (!p)
        return mimic_error(MIMIC_EARG, "mimic_prof_region: profiler is NULL (create it with mimic_profiler_new)");
    if (!name || !name[0])
        return mimic_error(MIMIC_EARG, "mimic_prof_region: region name is %s; give a non-empty name",
                           name ? "empty" : "NULL");
    for (int i = 0; i < p->nr; i++)
        if (strcmp(p->r[i].name, name) == 0)
            return i;
    if (p->nr == p->cap_r) {
        if (p->cap_r > (1 << 28))
            return mimic_error(MIMIC_ENOMEM, "mimic_prof_region: too many regions (%d); reuse region names", p->nr);
        prof_region *nr = mimic_realloc(p->r, (size_t)p->cap_r * 2 * sizeof *nr);
        if (!nr)
            return MIMIC_ENOMEM;
        p->r = nr;
        p->cap_r *= 2;
    }
    size_t len = strlen(name);
    char *copy = mimic_malloc(len + 1);
    if (!copy)
        return MIMIC_ENOMEM;
    memcpy(copy, name, len + 1);
    p->r[p->nr] = (prof_region){.name = copy};
    return p->nr++;
}

static int check_region(const mimic_profiler *p, int region, const char *fn)
{
    if (!p)
        return mimic_error(MIMIC_EARG, "%s: profiler is NULL (create it with mimic_profiler_new)", fn);
    if (region < 0 || region >= p->nr)
        return mimic_error(MIMIC_EARG, "%s: region id %d does not exist (the profiler has %d; get ids from mimic_prof_region)",
                           fn, region, p->nr);
    return MIMIC_OK;
}

int mimic_prof_begin(mimic_profiler *p, int region)
{
    int rc = check_region(p, region, "mimic_prof_begin");
    if (rc)
        return rc;
    if (p->depth == p->cap_stack) {
        if (p->cap_stack > (1 << 24))
            return mimic_error(MIMIC_ESTATE, "mimic_prof_begin: regions nested %d deep; a begin without its end in a loop?",
                               p->depth);
        frame *ns = mimic_realloc(p->stack, (size_t)p->cap_stack * 2 * sizeof *ns);
        if (!ns)
            return MIMIC_ENOMEM;
        p->stack = ns;
        p->cap_stack *= 2;
    }
    p->r[region].calls++;
    p->r[region].open++;
    /* The clock is read last, so the bookkeeping above is not charged to the region. */
    p->stack[p->depth++] = (frame){.region = region, .child_ns = 0, .start_ns = now_ns()};
    return MIMIC_OK;
}

int mimic_prof_end(mimic_profiler *p, int region)
{
    int64_t t = now_ns(); /* first, for the same reason */
    int rc = check_region(p, region, "mimic_prof_end");
    if (rc)
        return rc;
    if (p->depth == 0)
        return mimic_error(MIMIC_ESTATE, "mimic_prof_end: region '%s' ends but no region is open; call mimic_prof_begin first",
                           p->r[region].name);
    frame *f = &p->stack[p->depth - 1];
    if (f->region != region)
        return mimic_error(MIMIC_ESTATE,
                           "mimic_prof_end: region '%s' ends but the innermost open region is '%s'; end regions in "
                           "the reverse order of their begins",
                           p->r[region].name, p->r[f->region].name);
    int64_t elapsed = t - f->start_ns;
    prof_region *r = &p->r[region];
    r->self_ns += elapsed - f->child_ns;
    if (--r->open == 0)
        r->total_ns += elapsed;
    p->depth--;
    if (p->depth > 0)
        p->stack[p->depth - 1].child_ns += elapsed;
    return MIMIC_OK;
}

int mimic_prof_reset(mimic_profiler *p)
{
    if (!p)
        return mimic_error(MIMIC_EARG, "mimic_prof_reset: profiler is NULL (create it with mimic_profiler_new)");
    /* Open regions are forgotten too: after an error unwound a host's loop
     * mid-region, reset is how it starts clean. Region ids stay valid. */
    for (int i = 0; i < p->nr; i++) {
        p->r[i].calls = p->r[i].total_ns = p->r[i].self_ns = 0;
        p->r[i].open = 0;
    }
    p->depth = 0;
    p->t0_ns = now_ns();
    return MIMIC_OK;
}

int mimic_prof_count(const mimic_profiler *p)
{
    if (!p)
        return mimic_error(MIMIC_EARG, "mimic_prof_count: profiler is NULL (create it with mimic_profiler_new)");
    return p->nr;
}

int mimic_prof_get(const mimic_profiler *p, int region, mimic_prof_entry *e)
{
    int rc = check_region(p, region, "mimic_prof_get");
    if (rc)
        return rc;
    if (!e)
        return mimic_error(MIMIC_EARG, "mimic_prof_get: entry pointer is NULL; pass a mimic_prof_entry to fill");
    const prof_region *r = &p->r[region];
    *e = (mimic_prof_entry){.name = r->name, .calls = r->calls, .total = 1e-9 * (double)r->total_ns,
                            .self = 1e-9 * (double)r->self_ns};
    return MIMIC_OK;
}

double mimic_prof_elapsed(const mimic_profiler *p)
{
    if (!p) {
        mimic_error(MIMIC_EARG, "mimic_prof_elapsed: profiler is NULL (create it with mimic_profiler_new)");
        return NAN;
    }
    return 1e-9 * (double)(now_ns() - p->t0_ns);
}

/* Both formulas return NaN (with an error message) for arguments outside
 * their domain, so a host's report shows "nan" rather than a plausible lie. */
double mimic_amdahl_bound(double fraction, double cost_ratio)
{
    if (!(fraction >= 0 && fraction <= 1) || !(cost_ratio >= 0) || isinf(cost_ratio)) {
        mimic_error(MIMIC_EARG, "mimic_amdahl_bound: fraction %g must be in [0, 1] and cost ratio %g finite and >= 0",
                    fraction, cost_ratio);
        return NAN;
    }
    return 1 / ((1 - fraction) + fraction * cost_ratio);
}

double mimic_break_even_runs(double run_seconds, double speedup, double oneoff_seconds)
{
    if (!(run_seconds >= 0) || isinf(run_seconds) || !(speedup > 0) || !(oneoff_seconds >= 0) || isinf(oneoff_seconds)) {
        mimic_error(MIMIC_EARG,
                    "mimic_break_even_runs: run time %g s and one-off cost %g s must be finite and >= 0, speed-up %g > 0",
                    run_seconds, oneoff_seconds, speedup);
        return NAN;
    }
    double saved = run_seconds - run_seconds / speedup;
    if (!(saved > 0))
        return INFINITY;
    return oneoff_seconds / saved;
}
