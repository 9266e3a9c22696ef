/* Checks shared by the op families, so every op words its errors the same way. */
#include "../base/internal.h"

int mimic_check_float(const char *fn, const mimic_tensor *t)
{
    if (t->dtype == MIMIC_F32 || t->dtype == MIMIC_F64)
        return MIMIC_OK;
    return mimic_error(MIMIC_EDTYPE, "%s: %s tensors are not supported; convert with :float() or :double()",
                       fn, mimic_dtype_name(t->dtype));
}

int mimic_check_out_shape(const char *fn, const mimic_tensor *out, int ndim, const int64_t *shape)
{
    bool same = out->ndim == ndim;
    for (int d = 0; same && d < ndim; d++)
        same = out->shape[d] == shape[d];
    if (same)
        return MIMIC_OK;
    char a[96], b[96];
    return mimic_error(MIMIC_ESHAPE, "%s: output has shape %s but the result has shape %s", fn,
                       mimic_shape_str(out->ndim, out->shape, a, sizeof a), mimic_shape_str(ndim, shape, b, sizeof b));
}
