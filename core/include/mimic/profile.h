/* mimic — a profiler for named regions of a host simulation or a script: which
 * kernel is worth replacing, and what replacing it can give at best.
 *
 * Regions nest; each keeps calls, total (inclusive) and self (exclusive) wall
 * time. A profiler is an explicit object, used by one thread at a time (one
 * per thread in a threaded host; merge reports afterwards).
 *
 * Amdahl bound: a region taking fraction f of the run, replaced by a
 * surrogate costing c times the region's time (c = 0.1: 10x faster), gives
 * a whole-run speed-up of at most 1 / ((1 - f) + f c).
 * Break-even: with one-off costs T0 (data generation + training) and time
 * saved per run s = T_run - T_run / speedup, the surrogate pays off after
 * T0 / s runs.
 *
 * Ownership: mimic_profiler_new returns an object the caller frees with
 * mimic_profiler_free; names are copied.
 */
#ifndef MIMIC_PROFILE_H
#define MIMIC_PROFILE_H

#include "base.h"

typedef struct mimic_profiler mimic_profiler;

mimic_profiler *mimic_profiler_new(void);
void mimic_profiler_free(mimic_profiler *p); /* NULL is fine */

/* A region's id (created on first use; ids are 0, 1, ... in creation order).
 * Look it up once, outside the loop, then begin/end by id (cheapest path). */
int mimic_prof_region(mimic_profiler *p, const char *name);
/* begin/end must nest properly: ending a region that is not the innermost
 * open one is MIMIC_ESTATE naming both. */
int mimic_prof_begin(mimic_profiler *p, int region);
int mimic_prof_end(mimic_profiler *p, int region);
int mimic_prof_reset(mimic_profiler *p);

typedef struct mimic_prof_entry {
    const char *name;   /* belongs to the profiler */
    int64_t calls;
    double total;       /* seconds, inclusive of nested regions */
    double self;        /* seconds, exclusive */
} mimic_prof_entry;
int mimic_prof_count(const mimic_profiler *p);
int mimic_prof_get(const mimic_profiler *p, int region, mimic_prof_entry *e);
/* Wall time since creation (or the last reset): the run whose share regions take. */
double mimic_prof_elapsed(const mimic_profiler *p);

double mimic_amdahl_bound(double fraction, double cost_ratio);
/* Runs until one-off costs are repaid; INFINITY if nothing is saved. */
double mimic_break_even_runs(double run_seconds, double speedup, double oneoff_seconds);

#endif
