/* Creation of new tensors with given contents. */
#include "../base/internal.h"

#include <math.h>

mimic_tensor *mimic_full(int ndim, const int64_t *shape, double v, mimic_dtype dtype)
{
    mimic_tensor *t = mimic_empty(ndim, shape, dtype);
    if (t)
        mimic_fill(t, v);
    return t;
}

mimic_tensor *mimic_zeros(int ndim, const int64_t *shape, mimic_dtype dtype) { return mimic_full(ndim, shape, 0, dtype); }
mimic_tensor *mimic_ones(int ndim, const int64_t *shape, mimic_dtype dtype) { return mimic_full(ndim, shape, 1, dtype); }
mimic_tensor *mimic_scalar(double v, mimic_dtype dtype) { return mimic_full(0, NULL, v, dtype); }

mimic_tensor *mimic_arange(double start, double stop, double step, mimic_dtype dtype)
{
    if (step == 0 || !isfinite(step) || !isfinite(start) || !isfinite(stop)) {
        mimic_error(MIMIC_EARG, "arange: start, stop and step must be finite and step non-zero (got %g, %g, %g)",
                    start, stop, step);
        return NULL;
    }
    double len = ceil((stop - start) / step);
    if (len > 1e15) {
        mimic_error(MIMIC_ENOMEM, "arange: %g elements requested", len);
        return NULL;
    }
    int64_t n = len > 0 ? (int64_t)len : 0;
    mimic_tensor *t = mimic_empty(1, &n, dtype);
    if (t)
        for (int64_t i = 0; i < n; i++)
            mimic_set(t, &i, start + (double)i * step);
    return t;
}

mimic_tensor *mimic_linspace(double start, double stop, int64_t n, mimic_dtype dtype)
{
    if (n < 0) {
        mimic_error(MIMIC_EARG, "linspace: number of points %lld is negative", (long long)n);
        return NULL;
    }
    mimic_tensor *t = mimic_empty(1, &n, dtype);
    if (!t)
        return NULL;
    double step = n > 1 ? (stop - start) / (double)(n - 1) : 0;
    /* NumPy's rule: start + i*step, with the last point exactly stop. */
    for (int64_t i = 0; i < n; i++)
        mimic_set(t, &i, i == n - 1 && n > 1 ? stop : start + (double)i * step);
    return t;
}

mimic_tensor *mimic_eye(int64_t n, int64_t m, mimic_dtype dtype)
{
    if (m < 0)
        m = n;
    mimic_tensor *t = mimic_zeros(2, (int64_t[]){n, m}, dtype);
    if (t)
        for (int64_t i = 0; i < n && i < m; i++)
            mimic_set(t, (int64_t[]){i, i}, 1);
    return t;
}
