/* A host simulation embedding a mimic surrogate (docs/embedding.md).
 *
 * 1-D premixed flame on a periodic grid: temperature T [K] and fuel mass
 * fraction Y [1] diffuse (same diffusivity for both, backward Euler, one
 * cyclic tridiagonal solve per field) and react by one Arrhenius step,
 *   dY/dt = -A Y exp(-Ta/T),   dT/dt = Q A Y exp(-Ta/T),
 * split from the diffusion (Lie splitting). The reaction is the expensive
 * local kernel: per cell and time step, `substeps` backward-Euler sub-steps,
 * each a Newton solve of the 2x2 system. Both operators conserve T + Q Y
 * exactly (up to rounding), which the run checks.
 *
 * The kernel's contract: inputs temperature [K] and fuel [1] after diffusion,
 * outputs the mean rates over the step, heat_release [K/s] = dT/dt and
 * fuel_rate [1/s] = dY/dt, so the host updates T += dt * heat_release.
 *
 *   host profile                   time the reference, Amdahl bound per region
 *   host generate FILE             reference runs -> training samples (HDF5)
 *   host run MODEL [--guard G]     reference and hybrid from the same state, compared
 *   host compare A B               largest differences between two --dump files
 *
 * Options: --cells N --steps N --substeps N --seed N --runs N (generate)
 * --hotspot T (run: at mid-run, 8 cells are set to T kelvin, both runs)
 * --residual K (run: flag cells where the surrogate's rates break the
 * conservation of T + Q Y by more than K kelvin over the step)
 * --threads N (mimic's threads per call, default 1) --host-threads N (run:
 * OpenMP threads of the host, each with its own mimic handle on its block of
 * cells; the reference kernel loop uses as many) --dump FILE (run: the hybrid's
 * final T then Y as raw float64) --oneoff S (run: seconds of data
 * generation + training, for the break-even) --no-fallback.
 *
 * Every mimic call's status is checked; on failure the host prints
 * mimic_last_error and stops. host.f90 is the same program in Fortran.
 */
#include <mimic/data.h>
#include <mimic/embed.h>
#include <mimic/guard.h>
#include <mimic/profile.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_HOST_THREADS 64

/* --- the physics ----------------------------------------------------------------- */
typedef struct params {
    int n, steps, substeps;
    double length, dx, dt, diff, a, ta, q, t0;
} params;

static params default_params(void)
{
    params p;
    p.n = 2048;
    p.steps = 200;
    p.substeps = 40;
    p.length = 0.1;     /* m */
    p.diff = 2e-5;      /* m^2/s, for T and Y (unit Lewis number) */
    p.a = 5e5;        /* 1/s */
    p.ta = 10000.0;     /* K, activation temperature */
    p.q = 1500.0;       /* K, temperature rise of burning Y = 1 */
    p.t0 = 300.0;       /* K, fresh gas */
    p.dt = 1.2e-3;      /* s */
    p.dx = p.length / p.n;
    return p;
}

/* The reference kernel: integrates the reaction over dt from (T, Y) and
 * returns the mean rates. Backward Euler sub-steps, Newton on the 2x2 system
 * (its iterates keep T + Q Y exactly, as the equations do). */
static void kernel(const params *p, double temp, double fuel, double *rate_t, double *rate_y)
{
    const double h = p->dt / p->substeps;
    double t = temp, y = fuel;
    for (int s = 0; s < p->substeps; s++) {
        const double to = t, yo = y;
        for (int it = 0; it < 30; it++) {
            const double e = exp(-p->ta / t);
            const double w = p->a * y * e;
            const double f1 = y - yo + h * w;
            const double f2 = t - to - p->q * h * w;
            const double wy = p->a * e, wt = w * p->ta / (t * t);
            const double j11 = 1.0 + h * wy, j12 = h * wt;
            const double j21 = -p->q * h * wy, j22 = 1.0 - p->q * h * wt;
            const double det = j11 * j22 - j12 * j21;
            const double dy = (f1 * j22 - f2 * j12) / det;
            const double dtemp = (j11 * f2 - j21 * f1) / det;
            y -= dy;
            t -= dtemp;
            if (y < 0.0) { /* overshoot past full burn: back onto the invariant */
                y = 0.0;
                t = to + p->q * yo;
            }
            if (fabs(dy) < 1e-12 && fabs(dtemp) < 1e-9)
                break;
        }
    }
    *rate_t = (t - temp) / p->dt;
    *rate_y = (y - fuel) / p->dt;
}

/* Backward-Euler diffusion on the periodic grid: (1 + 2r) u_i - r (u_i-1 +
 * u_i+1) = u_i^old. Constant coefficients, so the Thomas factors and the
 * Sherman-Morrison correction vector are computed once. */
typedef struct diffusion {
    int n;
    double r, gamma;
    double *cp;   /* modified super-diagonal of the Thomas sweep */
    double *bb;   /* modified diagonal (corners folded in) */
    double *z;    /* solution for the correction vector */
    double *work;
} diffusion;

static void tridiag(const diffusion *d, const double *rhs, double *x)
{
    const int n = d->n;
    const double a = -d->r;
    double *cp = d->cp;
    /* forward sweep with precomputed cp; x holds d' */
    x[0] = rhs[0] / d->bb[0];
    for (int i = 1; i < n; i++) {
        const double m = d->bb[i] - a * cp[i - 1];
        x[i] = (rhs[i] - a * x[i - 1]) / m;
    }
    for (int i = n - 2; i >= 0; i--)
        x[i] -= cp[i] * x[i + 1];
}

static int diffusion_init(diffusion *d, const params *p)
{
    const int n = p->n;
    d->n = n;
    d->r = p->diff * p->dt / (p->dx * p->dx);
    const double b = 1.0 + 2.0 * d->r, a = -d->r, c = -d->r;
    d->gamma = -b;
    d->cp = malloc(sizeof(double) * (size_t)n);
    d->bb = malloc(sizeof(double) * (size_t)n);
    d->z = malloc(sizeof(double) * (size_t)n);
    d->work = malloc(sizeof(double) * (size_t)n);
    if (!d->cp || !d->bb || !d->z || !d->work)
        return -1;
    for (int i = 0; i < n; i++)
        d->bb[i] = b;
    d->bb[0] = b - d->gamma;
    d->bb[n - 1] = b - a * c / d->gamma; /* alpha = a (corner A[n-1][0]), beta = c */
    d->cp[0] = c / d->bb[0];
    for (int i = 1; i < n; i++)
        d->cp[i] = c / (d->bb[i] - a * d->cp[i - 1]);
    double *u = d->work;
    for (int i = 0; i < n; i++)
        u[i] = 0.0;
    u[0] = d->gamma;
    u[n - 1] = a;
    tridiag(d, u, d->z);
    return 0;
}

static void diffusion_free(diffusion *d)
{
    free(d->cp);
    free(d->bb);
    free(d->z);
    free(d->work);
}

/* u <- solution of the cyclic system with right-hand side u. */
static void diffuse(const diffusion *d, double *u)
{
    const int n = d->n;
    const double beta = -d->r;
    double *x = d->work;
    tridiag(d, u, x);
    const double fact = (x[0] + beta * x[n - 1] / d->gamma) / (1.0 + d->z[0] + beta * d->z[n - 1] / d->gamma);
    for (int i = 0; i < n; i++)
        u[i] = x[i] - fact * d->z[i];
}

/* Initial state: fresh gas whose fuel content varies smoothly along the
 * domain, ignited by four hot kernels at seed-dependent places. A small
 * integer hash gives the same numbers in C and Fortran. */
static double hash01(int seed, int k)
{
    unsigned v = (unsigned)seed * 2654435761u + (unsigned)k * 40503u + 12345u;
    v ^= v >> 13;
    v *= 1274126177u;
    v ^= v >> 16;
    return (double)(v % 100000u) / 100000.0;
}

static void initial_state(const params *p, int seed, double *temp, double *fuel)
{
    const double pi = 3.14159265358979323846;
    const double ph1 = 2.0 * pi * hash01(seed, 1), ph2 = 2.0 * pi * hash01(seed, 2);
    for (int i = 0; i < p->n; i++) {
        const double x = (i + 0.5) / p->n;
        fuel[i] = 0.75 + 0.12 * sin(2.0 * pi * x + ph1) + 0.08 * sin(6.0 * pi * x + ph2);
        temp[i] = p->t0;
    }
    for (int k = 0; k < 4; k++) {
        const double centre = (k + hash01(seed, 10 + k)) / 4.0;
        const double width = 0.01 + 0.01 * hash01(seed, 20 + k);
        const double peak = 1300.0 + 400.0 * hash01(seed, 30 + k);
        for (int i = 0; i < p->n; i++) {
            double x = (i + 0.5) / p->n - centre;
            x -= floor(x + 0.5); /* periodic distance */
            const double bump = (peak - p->t0) * exp(-(x * x) / (width * width));
            /* burnt gas where hot: keep T + Q Y at its fresh value */
            const double burnt = fmin(bump / p->q, fuel[i]);
            temp[i] += burnt * p->q;
            fuel[i] -= burnt;
        }
    }
}

static double energy(const params *p, const double *temp, const double *fuel)
{
    double s = 0.0;
    for (int i = 0; i < p->n; i++)
        s += temp[i] + p->q * fuel[i];
    return s * p->dx;
}

/* The hot spot: an ignition outside anything seen in training. */
static double inject_hotspot(const params *p, double hot, double *temp, double *fuel)
{
    const int i0 = p->n / 3;
    double added = 0.0;
    for (int i = i0; i < i0 + 8; i++) {
        added += (hot - temp[i]) * p->dx;
        temp[i] = hot;
    }
    (void)fuel;
    return added;
}

/* --- host state and mimic plumbing -------------------------------------------------- */
typedef struct host {
    params p;
    diffusion d;
    double *temp, *fuel, *rate_t, *rate_y;
    mimic_profiler *prof;
    int r_step, r_diff, r_source;
    double hot;         /* hot-spot temperature, 0: none */
    double injected;    /* energy added by the hot spot */
    int nthreads;       /* host threads (OpenMP) */
} host;

/* The cells [off, off + n) one host thread owns, and the mimic handle it
 * calls for them: a handle is used by one thread at a time, so a threaded
 * host opens one per thread, each bound to its own part of the arrays. */
typedef struct slice {
    host *h;
    int64_t off, n;
    mimic_handle *m;
} slice;

#define CHECK_PROF(call)                                                                    \
    do {                                                                                    \
        if ((call) != MIMIC_OK) {                                                          \
            fprintf(stderr, "host: %s failed: %s\n", #call, mimic_last_error(NULL));      \
            return -1;                                                                      \
        }                                                                                   \
    } while (0)

/* The fallback mimic calls for flagged samples: the reference kernel on the
 * bound inputs, writing the bound outputs. */
static int fallback(void *ud, const int64_t *idx, int64_t count)
{
    const slice *sl = ud;
    host *h = sl->h;
    for (int64_t k = 0; k < count; k++) {
        const int64_t i = sl->off + idx[k]; /* idx counts from the slice's first cell */
        kernel(&h->p, h->temp[i], h->fuel[i], &h->rate_t[i], &h->rate_y[i]);
        if (!isfinite(h->rate_t[i]))
            return mimic_error(MIMIC_EVALUE, "reference kernel: no finite rate at cell %lld (T = %g K)",
                               (long long)i, h->temp[i]);
    }
    return 0;
}

/* The host's conservation check mimic calls after the surrogate: the
 * reaction must keep T + Q Y, so (heat_release + Q fuel_rate) dt is the
 * energy the surrogate created or destroyed in a cell over the step, in K. */
static int residual(void *ud, const int64_t *idx, int64_t count, double *res)
{
    const slice *sl = ud;
    const host *h = sl->h;
    for (int64_t k = 0; k < count; k++) {
        const int64_t i = sl->off + idx[k];
        res[k] = (h->rate_t[i] + h->p.q * h->rate_y[i]) * h->p.dt;
    }
    return 0;
}

/* One run: reference (ns == 0) or hybrid (the surrogate fills rate_t and
 * rate_y through mimic_run, one handle per slice and host thread). Returns
 * 0, or -1 after printing the error. */
static int simulate(host *h, slice *sl, int ns)
{
    const params *p = &h->p;
    for (int s = 0; s < p->steps; s++) {
        if (h->hot > 0 && s == p->steps / 2)
            h->injected += inject_hotspot(p, h->hot, h->temp, h->fuel);
        CHECK_PROF(mimic_prof_begin(h->prof, h->r_step));
        CHECK_PROF(mimic_prof_begin(h->prof, h->r_diff));
        diffuse(&h->d, h->temp);
        diffuse(&h->d, h->fuel);
        CHECK_PROF(mimic_prof_end(h->prof, h->r_diff));
        CHECK_PROF(mimic_prof_begin(h->prof, h->r_source));
        if (ns > 0) {
            int bad = -1;
            /* Called inside the host's parallel region, each mimic_run runs on
             * its calling thread only: no nested teams, no oversubscription. */
#ifdef _OPENMP
#pragma omp parallel for num_threads(ns) schedule(static, 1) if (ns > 1)
#endif
            for (int b = 0; b < ns; b++)
                if (mimic_run(sl[b].m, sl[b].n) != MIMIC_OK) {
#ifdef _OPENMP
#pragma omp atomic write
#endif
                    bad = b;
                }
            if (bad >= 0) { /* each handle keeps its own last error */
                fprintf(stderr, "host: mimic_run failed at step %d: %s\n", s, mimic_last_error(sl[bad].m));
                return -1;
            }
        } else {
#ifdef _OPENMP
#pragma omp parallel for num_threads(h->nthreads) schedule(static) if (h->nthreads > 1)
#endif
            for (int i = 0; i < p->n; i++)
                kernel(p, h->temp[i], h->fuel[i], &h->rate_t[i], &h->rate_y[i]);
        }
        for (int i = 0; i < p->n; i++) {
            h->temp[i] += p->dt * h->rate_t[i];
            h->fuel[i] += p->dt * h->rate_y[i];
        }
        CHECK_PROF(mimic_prof_end(h->prof, h->r_source));
        CHECK_PROF(mimic_prof_end(h->prof, h->r_step));
    }
    return 0;
}

static int host_init(host *h, const params *p)
{
    memset(h, 0, sizeof *h);
    h->p = *p;
    const size_t bytes = sizeof(double) * (size_t)p->n;
    h->temp = malloc(bytes);
    h->fuel = malloc(bytes);
    h->rate_t = calloc((size_t)p->n, sizeof(double));
    h->rate_y = calloc((size_t)p->n, sizeof(double));
    if (!h->temp || !h->fuel || !h->rate_t || !h->rate_y || diffusion_init(&h->d, p)) {
        fprintf(stderr, "host: out of memory\n");
        return -1;
    }
    h->prof = mimic_profiler_new();
    if (!h->prof) {
        fprintf(stderr, "host: mimic_profiler_new failed: %s\n", mimic_last_error(NULL));
        return -1;
    }
    h->r_step = mimic_prof_region(h->prof, "step");
    h->r_diff = mimic_prof_region(h->prof, "diffusion");
    h->r_source = mimic_prof_region(h->prof, "source");
    if (h->r_step < 0 || h->r_diff < 0 || h->r_source < 0) {
        fprintf(stderr, "host: mimic_prof_region failed: %s\n", mimic_last_error(NULL));
        return -1;
    }
    return 0;
}

static void host_free(host *h)
{
    free(h->temp);
    free(h->fuel);
    free(h->rate_t);
    free(h->rate_y);
    diffusion_free(&h->d);
    mimic_profiler_free(h->prof);
}

static double region_seconds(const host *h, int region, int self)
{
    mimic_prof_entry e;
    if (mimic_prof_get(h->prof, region, &e) != MIMIC_OK)
        return NAN;
    return self ? e.self : e.total;
}

/* --- modes -------------------------------------------------------------------------- */
typedef struct opts {
    params p;
    int seed, runs, threads, fallback, host_threads;
    double hot, oneoff, residual;
    const char *guard, *dump;
} opts;

static int mode_profile(const opts *o)
{
    host h;
    if (host_init(&h, &o->p))
        return 1;
    initial_state(&h.p, o->seed, h.temp, h.fuel);
    CHECK_PROF(mimic_prof_reset(h.prof));
    if (simulate(&h, NULL, 0)) {
        host_free(&h);
        return 1;
    }
    const double run = mimic_prof_elapsed(h.prof);
    double tmin = INFINITY, tmax = -INFINITY, burnt = 0;
    for (int i = 0; i < h.p.n; i++) {
        tmin = fmin(tmin, h.temp[i]);
        tmax = fmax(tmax, h.temp[i]);
        burnt += h.temp[i] > 1000.0;
    }
    printf("reference run: %d cells, %d steps, %d reaction sub-steps per cell and step;\n"
           "final state: T in [%.0f, %.0f] K, %.0f burnt cells (T > 1000 K)\n\n",
           h.p.n, h.p.steps, h.p.substeps, tmin, tmax, burnt);
    printf("| region | calls | total (s) | self (s) | share of run |\n|---|---:|---:|---:|---:|\n");
    const int nreg = mimic_prof_count(h.prof);
    for (int r = 0; r < nreg; r++) {
        mimic_prof_entry e;
        CHECK_PROF(mimic_prof_get(h.prof, r, &e));
        printf("| %s | %lld | %.3f | %.3f | %.1f %% |\n", e.name, (long long)e.calls, e.total, e.self,
               100.0 * e.total / run);
    }
    printf("| (whole run) | 1 | %.3f | | 100.0 %% |\n\n", run);
    const double fs = region_seconds(&h, h.r_source, 0) / run, fd = region_seconds(&h, h.r_diff, 0) / run;
    printf("Amdahl bound on the whole-run speed-up if a region is replaced by a surrogate\n"
           "costing c times the region's time:\n\n");
    printf("| region | share f | c = 0.5 | c = 0.1 | c = 0.01 | c = 0 |\n|---|---:|---:|---:|---:|---:|\n");
    const double cs[4] = {0.5, 0.1, 0.01, 0.0};
    const char *names[2] = {"source", "diffusion"};
    const double f[2] = {fs, fd};
    for (int k = 0; k < 2; k++) {
        printf("| %s | %.3f |", names[k], f[k]);
        for (int j = 0; j < 4; j++)
            printf(" %.2fx |", mimic_amdahl_bound(f[k], cs[j]));
        printf("\n");
    }
    printf("\nworth replacing: %s (%.1f %% of the run)\n", fs > fd ? "source" : "diffusion",
           100.0 * (fs > fd ? fs : fd));
    host_free(&h);
    return 0;
}

/* A growable buffer of sample rows. */
typedef struct rows {
    double *x, *y;
    int64_t n, cap;
} rows;

static int rows_push(rows *r, double t, double f, double rt, double ry)
{
    if (r->n == r->cap) {
        const int64_t cap = r->cap ? 2 * r->cap : 65536;
        double *x = realloc(r->x, sizeof(double) * 2 * (size_t)cap);
        if (!x)
            return -1;
        r->x = x;
        double *y = realloc(r->y, sizeof(double) * 2 * (size_t)cap);
        if (!y)
            return -1;
        r->y = y;
        r->cap = cap;
    }
    r->x[2 * r->n] = t;
    r->x[2 * r->n + 1] = f;
    r->y[2 * r->n] = rt;
    r->y[2 * r->n + 1] = ry;
    r->n++;
    return 0;
}

#define CHECK_H5(call)                                                                       \
    do {                                                                                     \
        if ((call) != MIMIC_OK) {                                                           \
            fprintf(stderr, "host: %s failed: %s\n", #call, mimic_last_error(NULL));       \
            goto fail;                                                                       \
        }                                                                                    \
    } while (0)

/* Writes x [n, 2] and y [n, 2] (float64) with the units as attributes, to
 * FILE.part then renamed, so a crash never leaves a half-written file. */
static int write_samples(const char *path, const rows *r, const params *p, int runs)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.part", path);
    mimic_tensor *x = NULL, *y = NULL;
    mimic_h5 *f = mimic_h5_create(tmp);
    if (!f) {
        fprintf(stderr, "host: mimic_h5_create failed: %s\n", mimic_last_error(NULL));
        return -1;
    }
    const int64_t shape[2] = {r->n, 2};
    x = mimic_wrap(r->x, 2, shape, NULL, MIMIC_F64, NULL, NULL);
    y = mimic_wrap(r->y, 2, shape, NULL, MIMIC_F64, NULL, NULL);
    if (!x || !y) {
        fprintf(stderr, "host: mimic_wrap failed: %s\n", mimic_last_error(NULL));
        goto fail;
    }
    const mimic_h5_write_opts wo = {.gzip = 4, .shuffle = true};
    CHECK_H5(mimic_h5_write(f, "x", x, &wo));
    CHECK_H5(mimic_h5_write(f, "y", y, &wo));
    CHECK_H5(mimic_h5_set_attr_string(f, "x", "columns", "temperature [K], fuel [1]"));
    CHECK_H5(mimic_h5_set_attr_string(f, "y", "columns", "heat_release [K/s], fuel_rate [1/s]"));
    CHECK_H5(mimic_h5_set_attr_number(f, "", "dt", p->dt));
    CHECK_H5(mimic_h5_set_attr_number(f, "", "substeps", p->substeps));
    CHECK_H5(mimic_h5_set_attr_number(f, "", "cells", p->n));
    CHECK_H5(mimic_h5_set_attr_number(f, "", "runs", runs));
    CHECK_H5(mimic_h5_set_attr_string(f, "", "source", "examples/reaction_diffusion/host.c generate"));
    mimic_tensor_free(x);
    mimic_tensor_free(y);
    x = y = NULL;
    if (mimic_h5_close(f) != MIMIC_OK) {
        f = NULL;
        fprintf(stderr, "host: mimic_h5_close failed: %s\n", mimic_last_error(NULL));
        goto fail;
    }
    f = NULL;
    if (rename(tmp, path) != 0) {
        perror("host: rename");
        return -1;
    }
    return 0;
fail:
    mimic_tensor_free(x);
    mimic_tensor_free(y);
    if (f)
        mimic_h5_close(f);
    remove(tmp);
    return -1;
}

/* Reference runs for seeds 1..runs; every second step, every cell where
 * something happens (|dT| > 1e-3 K over the step) and every 16th quiet cell
 * become samples: quiet cells are most of the domain, and the surrogate must
 * learn them (no spurious ignition) without spending its capacity on them. */
static int mode_generate(const opts *o, const char *path)
{
    host h;
    rows r = {0};
    int rc = 1;
    if (host_init(&h, &o->p))
        return 1;
    const params *p = &h.p;
    int64_t quiet = 0;
    for (int run = 1; run <= o->runs; run++) {
        initial_state(p, run, h.temp, h.fuel);
        for (int s = 0; s < p->steps; s++) {
            diffuse(&h.d, h.temp);
            diffuse(&h.d, h.fuel);
            for (int i = 0; i < p->n; i++) {
                kernel(p, h.temp[i], h.fuel[i], &h.rate_t[i], &h.rate_y[i]);
                const int active = fabs(h.rate_t[i] * p->dt) > 1e-3;
                if (s % 2 == 0 && (active || quiet++ % 16 == 0))
                    if (rows_push(&r, h.temp[i], h.fuel[i], h.rate_t[i], h.rate_y[i])) {
                        fprintf(stderr, "host: out of memory\n");
                        goto done;
                    }
            }
            for (int i = 0; i < p->n; i++) {
                h.temp[i] += p->dt * h.rate_t[i];
                h.fuel[i] += p->dt * h.rate_y[i];
            }
        }
    }
    if (write_samples(path, &r, p, o->runs))
        goto done;
    printf("%s: %lld samples from %d reference runs (x: temperature [K], fuel [1]; y: heat_release [K/s], "
           "fuel_rate [1/s])\n",
           path, (long long)r.n, o->runs);
    rc = 0;
done:
    free(r.x);
    free(r.y);
    host_free(&h);
    return rc;
}

static int check_handle(int status, mimic_handle *m, const char *what)
{
    if (status != MIMIC_OK)
        fprintf(stderr, "host: %s failed: %s\n", what, mimic_last_error(m));
    return status != MIMIC_OK;
}

/* Opens the model for one slice of the host's cells, checks its contract
 * against what this host provides, binds the slice's part of the arrays,
 * sets the guard, the bounds, the residual check and the fallback. */
static mimic_handle *open_model(const char *path, const opts *o, slice *sl, int verbose)
{
    host *h = sl->h;
    mimic_options mo = {0};
    mo.num_threads = o->threads;
    mo.deterministic = 1; /* the Fortran host must reproduce this run exactly */
    mimic_handle *m = NULL;
    if (mimic_open(path, &mo, &m) != MIMIC_OK) {
        fprintf(stderr, "host: cannot open the model: %s\n", mimic_last_error(NULL));
        return NULL;
    }
    if (verbose)
        printf("model %s (%s)\n", path, mimic_model_hash_of(m));
    for (int which = 0; which < 2 && verbose; which++) {
        int count;
        if (check_handle(mimic_num_vars(m, which, &count), m, "mimic_num_vars"))
            goto fail;
        for (int i = 0; i < count; i++) {
            const char *name, *units;
            int64_t size;
            if (check_handle(mimic_var_info(m, which, i, &name, &units, &size), m, "mimic_var_info"))
                goto fail;
            printf("  %s %d: %s [%s] x %lld\n", which == MIMIC_INPUT ? "input " : "output", i, name, units,
                   (long long)size);
        }
    }
    /* Separate arrays per field (structure of arrays): one feature per
     * variable, consecutive samples 1 element apart. */
    const int64_t off = sl->off;
    const mimic_array at = {h->temp + off, MIMIC_F64, 1, 1, 1}, af = {h->fuel + off, MIMIC_F64, 1, 1, 1};
    const mimic_array rt = {h->rate_t + off, MIMIC_F64, 1, 1, 1}, rf = {h->rate_y + off, MIMIC_F64, 1, 1, 1};
    if (check_handle(mimic_bind(m, MIMIC_INPUT, "temperature", "K", &at), m, "mimic_bind(temperature)") ||
        check_handle(mimic_bind(m, MIMIC_INPUT, "fuel", "1", &af), m, "mimic_bind(fuel)") ||
        check_handle(mimic_bind(m, MIMIC_OUTPUT, "heat_release", "K/s", &rt), m, "mimic_bind(heat_release)") ||
        check_handle(mimic_bind(m, MIMIC_OUTPUT, "fuel_rate", "1/s", &rf), m, "mimic_bind(fuel_rate)"))
        goto fail;
    if (o->guard) {
        mimic_guard *g = mimic_guard_load(o->guard);
        if (!g) {
            fprintf(stderr, "host: cannot load the guard: %s\n", mimic_last_error(NULL));
            goto fail;
        }
        const int st = mimic_set_guard(m, g);
        mimic_guard_free(g); /* the handle keeps its own copy */
        if (check_handle(st, m, "mimic_set_guard"))
            goto fail;
    }
    /* Physical bounds: fuel is only consumed, heat only released. The
     * surrogate's near-zero outputs scatter around zero, so the bounds allow
     * what is negligible over a run (1 K/s is 1.2e-3 K per step). */
    if (check_handle(mimic_set_output_bounds(m, "fuel_rate", -INFINITY, 1e-3), m, "mimic_set_output_bounds") ||
        check_handle(mimic_set_output_bounds(m, "heat_release", -1.0, INFINITY), m, "mimic_set_output_bounds"))
        goto fail;
    if (o->residual > 0 &&
        check_handle(mimic_set_residual(m, residual, sl, o->residual), m, "mimic_set_residual"))
        goto fail;
    if (o->fallback && check_handle(mimic_set_fallback(m, fallback, sl), m, "mimic_set_fallback"))
        goto fail;
    return m;
fail:
    mimic_close(&m);
    return NULL;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static int mode_run(const opts *o, const char *model_path)
{
    host ref, hyb;
    slice sl[MAX_HOST_THREADS] = {{0}};
    const int ns = o->host_threads;
    int rc = 1;
    if (host_init(&ref, &o->p) || host_init(&hyb, &o->p))
        return 1;
    ref.hot = hyb.hot = o->hot;
    ref.nthreads = hyb.nthreads = ns;
    initial_state(&ref.p, o->seed, ref.temp, ref.fuel);
    memcpy(hyb.temp, ref.temp, sizeof(double) * (size_t)o->p.n);
    memcpy(hyb.fuel, ref.fuel, sizeof(double) * (size_t)o->p.n);
    const double e0 = energy(&ref.p, ref.temp, ref.fuel);

    double t = now();
    if (simulate(&ref, NULL, 0))
        goto done;
    const double t_ref = now() - t;

    for (int b = 0; b < ns; b++) { /* contiguous blocks of cells, one per host thread */
        sl[b].h = &hyb;
        sl[b].off = (int64_t)o->p.n * b / ns;
        sl[b].n = (int64_t)o->p.n * (b + 1) / ns - sl[b].off;
        if (!(sl[b].m = open_model(model_path, o, &sl[b], b == 0)))
            goto done;
    }
    t = now();
    if (simulate(&hyb, sl, ns))
        goto done;
    const double t_hyb = now() - t;
    mimic_stats st = {0}; /* summed over the handles */
    for (int b = 0; b < ns; b++) {
        mimic_stats sb;
        if (check_handle(mimic_get_stats(sl[b].m, &sb), sl[b].m, "mimic_get_stats"))
            goto done;
        st.surrogate += sb.surrogate;
        st.fallback += sb.fallback;
        for (int k = 0; k < MIMIC_NUM_FLAGS; k++)
            st.flagged[k] += sb.flagged[k];
        st.seconds = fmax(st.seconds, sb.seconds); /* they ran concurrently */
        st.fallback_seconds = fmax(st.fallback_seconds, sb.fallback_seconds);
    }

    const params *p = &o->p;
    double se_t = 0, se_y = 0, mx_t = 0, mx_y = 0, burnt_r = 0, burnt_h = 0;
    int finite = 1;
    for (int i = 0; i < p->n; i++) {
        const double dt_ = hyb.temp[i] - ref.temp[i], dy = hyb.fuel[i] - ref.fuel[i];
        if (!isfinite(hyb.temp[i]) || !isfinite(hyb.fuel[i]))
            finite = 0;
        se_t += dt_ * dt_;
        se_y += dy * dy;
        mx_t = fmax(mx_t, fabs(dt_));
        mx_y = fmax(mx_y, fabs(dy));
        burnt_r += ref.temp[i] > 1000.0;
        burnt_h += hyb.temp[i] > 1000.0;
    }
    if (!finite)
        mx_t = mx_y = se_t = se_y = NAN;
    const double rmse_t = sqrt(se_t / p->n), rmse_y = sqrt(se_y / p->n);
    const double drift_r = (energy(p, ref.temp, ref.fuel) - e0 - ref.injected) / e0;
    const double drift_h = (energy(p, hyb.temp, hyb.fuel) - e0 - hyb.injected) / e0;
    const double src_r = region_seconds(&ref, ref.r_source, 0), src_h = region_seconds(&hyb, hyb.r_source, 0);
    const double f = src_r / t_ref, c = src_h / src_r;

    printf("\na posteriori: %d cells, %d steps, seed %d%s", p->n, p->steps, o->seed,
           o->hot > 0 ? ", hot spot injected at mid-run" : "");
    if (ns > 1)
        printf(", %d host threads with a mimic handle each", ns);
    printf("\n\n");
    printf("| quantity | reference | hybrid |\n|---|---:|---:|\n");
    printf("| final T: RMSE / max error vs reference (K) | - | %.3g / %.3g |\n", rmse_t, mx_t);
    printf("| final Y: RMSE / max error vs reference | - | %.3g / %.3g |\n", rmse_y, mx_y);
    printf("| burnt cells (T > 1000 K) | %.0f | %.0f |\n", burnt_r, burnt_h);
    printf("| drift of the integral of T + Q Y (relative) | %.2e | %.2e |\n", drift_r, drift_h);
    printf("| source term (s) | %.3f | %.3f |\n", src_r, src_h);
    printf("| diffusion (s) | %.3f | %.3f |\n", region_seconds(&ref, ref.r_diff, 0),
           region_seconds(&hyb, hyb.r_diff, 0));
    printf("| whole run (s) | %.3f | %.3f |\n", t_ref, t_hyb);
    printf("| speed-up: source term / whole run | | %.2fx / %.2fx |\n", src_r / src_h, t_ref / t_hyb);
    printf("| Amdahl bound at the measured cost ratio c = %.3f (f = %.3f) | | %.2fx |\n", c, f,
           mimic_amdahl_bound(f, c));
    printf("| samples: surrogate / fallback | | %lld / %lld |\n", (long long)st.surrogate,
           (long long)st.fallback);
    printf("| time in mimic_run / of which fallback (s) | | %.3f / %.3f |\n", st.seconds, st.fallback_seconds);
    static const char *why[MIMIC_NUM_FLAGS] = {"input NaN", "range", "distance", "output NaN",
                                               "output bounds", "residual", "spread"};
    printf("| flagged samples by reason | |");
    for (int k = 0, first = 1; k < MIMIC_NUM_FLAGS; k++)
        if (st.flagged[k]) {
            printf("%s %s %lld", first ? "" : ",", why[k], (long long)st.flagged[k]);
            first = 0;
        }
    printf(" |\n");
    if (o->oneoff > 0) {
        const double speedup = t_ref / t_hyb;
        printf("| break-even (one-off cost %.1f s) | | %.1f runs |\n", o->oneoff,
               mimic_break_even_runs(t_ref, speedup, o->oneoff));
    }
    printf("\nsummary T_rmse=%.6g T_max=%.6g Y_rmse=%.6g Y_max=%.6g drift=%.3e finite=%d surrogate=%lld "
           "fallback=%lld\n",
           rmse_t, mx_t, rmse_y, mx_y, drift_h, finite, (long long)st.surrogate, (long long)st.fallback);
    if (o->dump) {
        FILE *fp = fopen(o->dump, "wb");
        if (!fp || fwrite(hyb.temp, sizeof(double), (size_t)p->n, fp) != (size_t)p->n ||
            fwrite(hyb.fuel, sizeof(double), (size_t)p->n, fp) != (size_t)p->n || fclose(fp) != 0) {
            perror("host: --dump");
            goto done;
        }
    }
    rc = 0;
done:
    for (int b = 0; b < ns; b++)
        mimic_close(&sl[b].m);
    host_free(&ref);
    host_free(&hyb);
    return rc;
}

/* Compares two --dump files: the largest difference in T and in Y. */
static int mode_compare(const char *a, const char *b, int n)
{
    double *x = malloc(sizeof(double) * 4 * (size_t)n);
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    const int ok = x && fa && fb && fread(x, sizeof(double), 2 * (size_t)n, fa) == 2 * (size_t)n &&
                   fread(x + 2 * n, sizeof(double), 2 * (size_t)n, fb) == 2 * (size_t)n;
    if (fa)
        fclose(fa);
    if (fb)
        fclose(fb);
    if (!ok) {
        fprintf(stderr, "host: cannot read %s and %s as %d cells of T and Y (float64)\n", a, b, n);
        free(x);
        return 1;
    }
    double dt_ = 0, dy = 0;
    for (int i = 0; i < n; i++) {
        dt_ = fmax(dt_, fabs(x[i] - x[2 * n + i]));
        dy = fmax(dy, fabs(x[n + i] - x[3 * n + i]));
    }
    printf("compare T_maxdiff=%.6g Y_maxdiff=%.6g\n", dt_, dy);
    free(x);
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: host profile | generate FILE | run MODEL [--guard FILE] | compare A B  [options]\n"
                    "options: --cells N --steps N --substeps N --seed N --runs N --hotspot KELVIN\n"
                    "         --residual KELVIN --threads N --host-threads N --dump FILE --oneoff SECONDS\n"
                    "         --no-fallback\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage();
        return 2;
    }
    opts o = {0};
    o.p = default_params();
    o.seed = 101;
    o.runs = 3;
    o.threads = 1;
    o.host_threads = 1;
    o.fallback = 1;
    const char *mode = argv[1], *arg = NULL, *arg2 = NULL;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (a[0] != '-') {
            if (!arg)
                arg = a;
            else
                arg2 = a;
            continue;
        }
        if (!strcmp(a, "--no-fallback")) {
            o.fallback = 0;
            continue;
        }
        if (!v) {
            usage();
            return 2;
        }
        i++;
        if (!strcmp(a, "--cells"))
            o.p.n = atoi(v);
        else if (!strcmp(a, "--steps"))
            o.p.steps = atoi(v);
        else if (!strcmp(a, "--substeps"))
            o.p.substeps = atoi(v);
        else if (!strcmp(a, "--seed"))
            o.seed = atoi(v);
        else if (!strcmp(a, "--runs"))
            o.runs = atoi(v);
        else if (!strcmp(a, "--threads"))
            o.threads = atoi(v);
        else if (!strcmp(a, "--host-threads"))
            o.host_threads = atoi(v);
        else if (!strcmp(a, "--hotspot"))
            o.hot = atof(v);
        else if (!strcmp(a, "--residual"))
            o.residual = atof(v);
        else if (!strcmp(a, "--oneoff"))
            o.oneoff = atof(v);
        else if (!strcmp(a, "--guard"))
            o.guard = v;
        else if (!strcmp(a, "--dump"))
            o.dump = v;
        else {
            usage();
            return 2;
        }
    }
    if (o.p.n < 16 || o.p.steps < 1 || o.p.substeps < 1 || o.host_threads < 1 ||
        o.host_threads > MAX_HOST_THREADS) {
        fprintf(stderr, "host: --cells must be >= 16, --steps and --substeps >= 1, --host-threads 1..%d\n",
                MAX_HOST_THREADS);
        return 2;
    }
    /* the grid spacing follows the cell count; the domain length stays */
    o.p.dx = o.p.length / o.p.n;
    if (!strcmp(mode, "profile"))
        return mode_profile(&o);
    if (!strcmp(mode, "generate") && arg)
        return mode_generate(&o, arg);
    if (!strcmp(mode, "run") && arg)
        return mode_run(&o, arg);
    if (!strcmp(mode, "compare") && arg && arg2)
        return mode_compare(arg, arg2, o.p.n);
    usage();
    return 2;
}
