/* Profiler benchmark: the cost of one mimic_prof_begin + mimic_prof_end pair
 * by region id (the documented cheapest path), against a bare pair of
 * clock_gettime(CLOCK_MONOTONIC) calls, the least any timing pair can cost,
 * measured in the same run.
 *
 * Protocol: 1e6 pairs per repeat (MIMIC_BENCH_PAIRS), repeats interleaved
 * (MIMIC_BENCH_REPEATS, default 9): within a repeat the two alternate in 10
 * slices, so a machine shared with other jobs slows them alike; medians of
 * the per-pair time. Also a nested pair (an inner region inside an open
 * outer one), the usual case in a time loop. Nothing here asserts on speed. */
#include "mimic/profile.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "benchutil.h"

#define GROUPS 10
#define KINDS 3
static const char *const kind_name[KINDS] = {"bare clock_gettime pair", "mimic_prof_begin + end (by id)",
                                             "the same, nested in an open region"};

int main(void)
{
    int repeats = getenv("MIMIC_BENCH_REPEATS") ? atoi(getenv("MIMIC_BENCH_REPEATS")) : 9;
    long pairs = getenv("MIMIC_BENCH_PAIRS") ? atol(getenv("MIMIC_BENCH_PAIRS")) : 1000000;
    if (repeats < 3)
        repeats = 3;
    if (pairs < GROUPS)
        pairs = GROUPS;
    mimic_profiler *p = mimic_profiler_new();
    if (!p) {
        fprintf(stderr, "bench_profile: mimic_profiler_new failed: %s\n", mimic_errmsg());
        return 1;
    }
    int outer = mimic_prof_region(p, "step"), inner = mimic_prof_region(p, "kernel");
    double *t = calloc((size_t)repeats * KINDS, sizeof *t);
    volatile double sink = 0; /* keeps the bare pair's calls and arithmetic */
    long per = pairs / GROUPS, fails = 0;
    for (long w = 0; w < per; w++) /* warm-up */
        fails += mimic_prof_begin(p, inner) != 0 || mimic_prof_end(p, inner) != 0;
    for (int r = 0; r < repeats; r++)
        for (int g = 0; g < GROUPS; g++)
            for (int k = 0; k < KINDS; k++) {
                if (k == 2)
                    fails += mimic_prof_begin(p, outer) != 0;
                double t0 = now();
                if (k == 0) {
                    for (long i = 0; i < per; i++) {
                        struct timespec a, b;
                        clock_gettime(CLOCK_MONOTONIC, &a);
                        clock_gettime(CLOCK_MONOTONIC, &b);
                        sink += (double)(b.tv_nsec - a.tv_nsec);
                    }
                } else {
                    for (long i = 0; i < per; i++)
                        fails += mimic_prof_begin(p, inner) != 0 || mimic_prof_end(p, inner) != 0;
                }
                t[k * repeats + r] += (now() - t0) / (double)(per * GROUPS);
                if (k == 2)
                    fails += mimic_prof_end(p, outer) != 0;
            }
    double med[KINDS];
    for (int k = 0; k < KINDS; k++)
        med[k] = median(t + k * repeats, repeats);
    mimic_prof_entry e;
    mimic_prof_get(p, inner, &e);
    printf("profiler overhead: %ld pairs per repeat, %d repeats (medians, ns per pair)\n\n", per * GROUPS, repeats);
    printf("| what | ns per pair | ratio to the bare pair |\n|---|---:|---:|\n");
    for (int k = 0; k < KINDS; k++)
        printf("| %s | %.1f | %.2f |\n", kind_name[k], med[k] * 1e9, med[k] / med[0]);
    printf("\n(region 'kernel' counted %lld calls; %ld calls failed)\n", (long long)e.calls, fails);
    mimic_profiler_free(p);
    free(t);
    return fails != 0;
}
