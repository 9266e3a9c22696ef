/* HDF5 error handling shared by core/io and core/data (see h5util.h). */
#include "h5util.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* --- HDF5 error handling -------------------------------------------------------------- */
void quiet_begin(quiet *q)
{
    if (H5Eget_auto2(H5E_DEFAULT, &q->func, &q->data) < 0) {
        q->func = NULL;
        q->data = NULL;
    }
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

void quiet_end(const quiet *q)
{
    H5Eclear2(H5E_DEFAULT);
    H5Eset_auto2(H5E_DEFAULT, q->func, q->data);
}

static herr_t walk_cb(unsigned n, const H5E_error2_t *e, void *ud)
{
    h5err *c = ud;
    if (e->desc) {
        if (n == 0)
            snprintf(c->inner, sizeof c->inner, "%s", e->desc);
        if (strstr(e->desc, "truncated") || strstr(e->desc, "addr overflow"))
            c->truncated = true;
    }
    return 0;
}

/* Reads and clears the HDF5 error stack. */
void h5_collect(h5err *c)
{
    memset(c, 0, sizeof *c);
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, walk_cb, c);
    H5Eclear2(H5E_DEFAULT);
}

/* Records an error: the formatted message, then HDF5's innermost message if
 * the HDF5 error stack holds one. */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
int fail_h5(int code, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    h5err e;
    h5_collect(&e);
    if (e.inner[0])
        return mimic_error(code, "%s (HDF5: %s)", msg, e.inner);
    return mimic_error(code, "%s", msg);
}

void close_id(hid_t *id)
{
    if (*id < 0)
        return;
    switch (H5Iget_type(*id)) {
    case H5I_FILE: H5Fclose(*id); break;
    case H5I_GROUP: H5Gclose(*id); break;
    case H5I_DATASET: H5Dclose(*id); break;
    case H5I_DATATYPE: H5Tclose(*id); break;
    case H5I_DATASPACE: H5Sclose(*id); break;
    case H5I_ATTR: H5Aclose(*id); break;
    case H5I_GENPROP_LST: H5Pclose(*id); break;
    default: break;
    }
    *id = H5I_INVALID_HID;
}


int has_hdf5_signature(const char *path, int64_t size)
{
    static const unsigned char sig[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    int found = 0;
    for (int64_t off = 0; off + 8 <= size && !found; off = off ? 2 * off : 512) {
        unsigned char buf[8];
        if (fseeko(f, (off_t)off, SEEK_SET) != 0 || fread(buf, 1, 8, f) != 8)
            break;
        found = memcmp(buf, sig, 8) == 0;
    }
    fclose(f);
    return found;
}
