/* Finite-difference gradient checks shared by the autograd tests; include
 * after check.h and testutil.h. All static inline, as in testutil.h: a test
 * that uses a few of them compiles without unused warnings. */
#ifndef MIMIC_GRADCHECK_H
#define MIMIC_GRADCHECK_H

#include "mimic/autograd.h"
#include "mimic/ops.h"
#include "mimic/rng.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>

/* An op under test: its result from up to 3 inputs. */
typedef mimic_tensor *(*fd_fn)(mimic_tensor *const *in);

/* The index (one per dim) of element i of t in row-major order, contiguous or not. */
static inline void fd_unravel(const mimic_tensor *t, int64_t i, int64_t *idx)
{
    for (int d = t->ndim - 1; d >= 0; d--) {
        idx[d] = i % t->shape[d];
        i /= t->shape[d];
    }
}

/* sum(f(in) * w) with grad mode off, summed element by element with
 * mimic_get: a scalar whose gradient exercises a general upstream gradient,
 * computed without any differentiable op but f. */
static inline double fd_weighted(fd_fn f, mimic_tensor *const *in, const mimic_tensor *w)
{
    bool prev = mimic_set_grad_enabled(false);
    mimic_tensor *y = f(in);
    double s = 0;
    for (int64_t i = 0; i < mimic_numel(y); i++) {
        int64_t idx[MIMIC_MAX_DIMS];
        fd_unravel(y, i, idx);
        s += mimic_get(y, idx) * mimic_get(w, idx);
    }
    mimic_tensor_free(y);
    mimic_set_grad_enabled(prev);
    return s;
}

/* Worst |analytic - numeric| / (1 + |numeric|) of f's gradient over every
 * element of the nin float64 inputs (which it marks as requiring grad and
 * consumes): backward from f(in) with an upstream gradient w uniform in
 * [-1, 1) drawn from r, against central differences of fd_weighted.
 * INFINITY when the forward or backward fails (reported on stderr, prefixed
 * with `name` when not NULL) or an error is NaN. */
static inline double fd_worst_error(mimic_rng *r, const char *name, fd_fn f, mimic_tensor **in, int nin)
{
    const char *sep = name ? ": " : "";
    name = name ? name : "";
    for (int k = 0; k < nin; k++)
        mimic_set_requires_grad(in[k], true);
    mimic_tensor *y = f(in);
    double worst = INFINITY;
    if (!y) {
        fprintf(stderr, "%s%sforward failed: %s\n", name, sep, mimic_errmsg());
        goto done;
    }
    mimic_tensor *w = mimic_empty(y->ndim, y->shape, MIMIC_F64);
    mimic_rng_uniform(r, w, -1, 1);
    if (mimic_backward(y, w, false)) {
        fprintf(stderr, "%s%sbackward failed: %s\n", name, sep, mimic_errmsg());
        mimic_tensor_free(w);
        goto done;
    }
    worst = 0;
    const double h = 1e-6;
    for (int k = 0; k < nin && worst < INFINITY; k++) {
        mimic_tensor *g = mimic_grad(in[k]);
        for (int64_t i = 0; i < mimic_numel(in[k]); i++) {
            int64_t idx[MIMIC_MAX_DIMS];
            fd_unravel(in[k], i, idx);
            double x0 = mimic_get(in[k], idx);
            mimic_set(in[k], idx, x0 + h);
            double fp = fd_weighted(f, in, w);
            mimic_set(in[k], idx, x0 - h);
            double fm = fd_weighted(f, in, w);
            mimic_set(in[k], idx, x0);
            double num = (fp - fm) / (2 * h), err = fabs((g ? mimic_get(g, idx) : 0) - num) / (1 + fabs(num));
            if (!(err <= worst))
                worst = err != err ? INFINITY : err;
        }
    }
    mimic_tensor_free(w);
done:
    mimic_tensor_free(y);
    for (int k = 0; k < nin; k++)
        mimic_tensor_free(in[k]);
    return worst;
}

#endif
