/* Training data in HDF5 / netCDF-4 files (see mimic/data.h).
 *
 * Every public function brackets its HDF5 calls with quiet_begin/quiet_end
 * (core/io/h5util.h): HDF5 prints its error stack by default and mimic never
 * prints.
 *
 * Reading goes through HDF5's own type conversion (byte order, integer
 * widths), so big-endian and int16 data need no code of ours; only the netCDF
 * conventions (fill -> NaN, unpacking) and the finite check run over the
 * values afterwards. */
#include "mimic/data.h"

#include "../io/h5util.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* --- the file object ------------------------------------------------------------------ */
struct mimic_h5 {
    hid_t file;
    char *path;
    bool writable;
    char **names; /* dataset list, built on demand, dropped by every write */
    int64_t n, cap;
};

static char *dup_str(const char *s)
{
    size_t n = strlen(s);
    char *p = mimic_malloc(n + 1);
    if (p)
        memcpy(p, s, n + 1);
    return p;
}

static void drop_names(mimic_h5 *f)
{
    for (int64_t i = 0; i < f->n; i++)
        mimic_free(f->names[i]);
    mimic_free(f->names);
    f->names = NULL;
    f->n = f->cap = 0;
}

static herr_t visit_cb(hid_t obj, const char *name, const H5O_info_t *info, void *ud)
{
    (void)obj;
    mimic_h5 *f = ud;
    if (info->type != H5O_TYPE_DATASET)
        return 0;
    if (f->n == f->cap) {
        int64_t cap = f->cap ? 2 * f->cap : 16;
        char **p = mimic_realloc(f->names, (size_t)cap * sizeof *p);
        if (!p)
            return -1;
        f->names = p;
        f->cap = cap;
    }
    if (!(f->names[f->n] = dup_str(name)))
        return -1;
    f->n++;
    return 0;
}

static int name_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int build_names(mimic_h5 *f)
{
    if (f->names)
        return MIMIC_OK;
    if (H5Ovisit(f->file, H5_INDEX_NAME, H5_ITER_INC, visit_cb, f) < 0) {
        drop_names(f);
        return mimic_errcode() == MIMIC_ENOMEM ? MIMIC_ENOMEM
                                               : fail_h5(MIMIC_EIO, "cannot list the datasets of '%s': corrupt file", f->path);
    }
    if (!f->names) { /* an empty file: a non-NULL list all the same */
        f->names = mimic_malloc(sizeof *f->names);
        if (!f->names)
            return MIMIC_ENOMEM;
        f->cap = 1;
    }
    qsort(f->names, (size_t)f->n, sizeof *f->names, name_cmp);
    return MIMIC_OK;
}

static void h5_free(mimic_h5 *f)
{
    drop_names(f);
    close_id(&f->file);
    mimic_free(f->path);
    mimic_free(f);
}

/* What the first bytes of a non-HDF5 file say it is, for the message. */
static int classify_foreign(const char *path, int64_t size)
{
    unsigned char head[4] = {0};
    FILE *fp = fopen(path, "rb");
    size_t got = fp ? fread(head, 1, 4, fp) : 0;
    if (fp)
        fclose(fp);
    if (got == 4 && head[0] == 'C' && head[1] == 'D' && head[2] == 'F' && (head[3] == 1 || head[3] == 2 || head[3] == 5))
        return mimic_error(MIMIC_EIO, "cannot open '%s': it is a netCDF-3 (%s) file, which is not HDF5; convert it to "
                                      "netCDF-4 with: nccopy -k nc4 '%s' out.nc",
                           path, head[3] == 1 ? "classic" : head[3] == 2 ? "64-bit offset" : "64-bit data", path);
    return mimic_error(MIMIC_EIO, "cannot open '%s': not an HDF5 or netCDF-4 file (%lld bytes without an HDF5 signature)",
                       path, (long long)size);
}

static hid_t access_plist(void)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0)
        return fapl;
    /* Strong close: closing the file closes anything still open in it. */
    if (H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG) < 0)
        close_id(&fapl);
#if H5_VERSION_GE(1, 10, 7) && !(H5_VERS_MAJOR == 1 && H5_VERS_MINOR == 12 && H5_VERS_RELEASE == 0)
    /* As in h5dict.c: parallel file systems often refuse flock(), and HDF5
     * would then open no file at all; lock where possible. */
    if (fapl >= 0 && H5Pset_file_locking(fapl, 1, 1) < 0)
        close_id(&fapl);
#endif
    return fapl;
}

static mimic_h5 *h5_open(const char *path, bool create)
{
    const char *fn = create ? "mimic_h5_create" : "mimic_h5_open";
    if (!path || !*path)
        return mimic_error(MIMIC_EARG, "%s: path is %s", fn, path ? "empty" : "NULL"), NULL;
    struct stat st;
    if (!create) {
        if (stat(path, &st) != 0)
            return mimic_error(MIMIC_EIO, "cannot open '%s': %s", path, errno == ENOENT ? "no such file" : strerror(errno)),
                   NULL;
        if (S_ISDIR(st.st_mode))
            return mimic_error(MIMIC_EIO, "cannot open '%s': it is a directory", path), NULL;
        int sig = has_hdf5_signature(path, (int64_t)st.st_size);
        if (sig < 0)
            return mimic_error(MIMIC_EIO, "cannot open '%s': %s", path, strerror(errno)), NULL;
        if (sig == 0)
            return classify_foreign(path, (int64_t)st.st_size), NULL;
    }
    mimic_h5 *f = mimic_calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->file = H5I_INVALID_HID;
    f->writable = create;
    if (!(f->path = dup_str(path))) {
        h5_free(f);
        return NULL;
    }
    hid_t fapl = access_plist();
    if (fapl < 0) {
        fail_h5(MIMIC_EINTERNAL, "%s: HDF5 property lists failed", fn);
        h5_free(f);
        return NULL;
    }
    f->file = create ? H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl) : H5Fopen(path, H5F_ACC_RDONLY, fapl);
    h5err e;
    h5_collect(&e); /* before any other HDF5 call, which would clear the stack */
    close_id(&fapl);
    if (f->file < 0) {
        if (create)
            mimic_error(MIMIC_EIO, "cannot create '%s' (HDF5: %s)", path, e.inner[0] ? e.inner : "no details");
        else if (e.truncated)
            mimic_error(MIMIC_EIO, "cannot open '%s': the file is truncated (%lld bytes; an interrupted copy or write?) "
                                   "(HDF5: %s)", path, (long long)st.st_size, e.inner);
        else
            mimic_error(MIMIC_EIO, "cannot open '%s': corrupt HDF5 file (HDF5: %s)", path, e.inner[0] ? e.inner : "no details");
        h5_free(f);
        return NULL;
    }
    return f;
}

mimic_h5 *mimic_h5_open(const char *path)
{
    quiet q;
    quiet_begin(&q);
    mimic_h5 *f = h5_open(path, false);
    quiet_end(&q);
    return f;
}

mimic_h5 *mimic_h5_create(const char *path)
{
    quiet q;
    quiet_begin(&q);
    mimic_h5 *f = h5_open(path, true);
    quiet_end(&q);
    return f;
}

int mimic_h5_close(mimic_h5 *f)
{
    if (!f)
        return MIMIC_OK;
    quiet q;
    quiet_begin(&q);
    int rc = MIMIC_OK;
    if (f->writable && H5Fflush(f->file, H5F_SCOPE_GLOBAL) < 0)
        rc = fail_h5(MIMIC_EIO, "cannot write '%s'", f->path);
    h5_free(f);
    quiet_end(&q);
    return rc;
}

int64_t mimic_h5_count(mimic_h5 *f)
{
    if (!f)
        return 0;
    quiet q;
    quiet_begin(&q);
    int rc = build_names(f);
    quiet_end(&q);
    return rc == MIMIC_OK ? f->n : -1;
}

const char *mimic_h5_name(mimic_h5 *f, int64_t i)
{
    if (!f || mimic_h5_count(f) < 0 || i < 0 || i >= f->n)
        return NULL;
    return f->names[i];
}

/* --- opening a dataset by name ---------------------------------------------------------- */
/* Records "'f' has no dataset 'x'; it has: a, b, ..." */
static int missing(mimic_h5 *f, const char *name)
{
    char list[640];
    size_t k = 0;
    list[0] = '\0';
    int64_t shown = 0;
    if (build_names(f) == MIMIC_OK) {
        for (int64_t i = 0; i < f->n; i++) {
            size_t need = strlen(f->names[i]) + 2;
            if (k + need + 1 >= sizeof list - 24)
                break;
            k += (size_t)snprintf(list + k, sizeof list - k, "%s%s", shown ? ", " : "", f->names[i]);
            shown++;
        }
        if (f->n > shown)
            snprintf(list + k, sizeof list - k, "%s... (%lld more)", shown ? ", " : "", (long long)(f->n - shown));
    }
    if (shown == 0 && f->n == 0)
        return mimic_error(MIMIC_EIO, "'%s' has no dataset '%s'; the file holds no datasets", f->path, name);
    return mimic_error(MIMIC_EIO, "'%s' has no dataset '%s'; it has: %s", f->path, name, list);
}

/* Opens dataset `name`; records the error (listing what exists) on failure. */
static hid_t open_dataset(mimic_h5 *f, const char *name)
{
    if (!f)
        return mimic_error(MIMIC_EARG, "data file is NULL"), H5I_INVALID_HID;
    if (!name || !*name)
        return mimic_error(MIMIC_EARG, "dataset name is %s", name ? "empty" : "NULL"), H5I_INVALID_HID;
    /* H5Lexists needs every intermediate link to exist: check them in turn. */
    char buf[1024];
    if (snprintf(buf, sizeof buf, "%s", name) >= (int)sizeof buf)
        return mimic_error(MIMIC_EARG, "dataset name is too long"), H5I_INVALID_HID;
    for (char *p = buf + (buf[0] == '/');; p++) {
        char *slash = strchr(p, '/');
        if (slash)
            *slash = '\0';
        htri_t ex = H5Lexists(f->file, buf, H5P_DEFAULT);
        if (ex <= 0) {
            H5Eclear2(H5E_DEFAULT);
            return missing(f, name), H5I_INVALID_HID;
        }
        if (!slash)
            break;
        *slash = '/';
        p = slash;
    }
    H5O_info_t oi;
    if (H5Oget_info_by_name(f->file, name, &oi, H5P_DEFAULT) < 0)
        return fail_h5(MIMIC_EIO, "cannot read '%s' from '%s': corrupt file", name, f->path), H5I_INVALID_HID;
    if (oi.type != H5O_TYPE_DATASET) {
        if (oi.type == H5O_TYPE_GROUP)
            return mimic_error(MIMIC_EIO, "'%s' in '%s' is a group, not a dataset", name, f->path), H5I_INVALID_HID;
        return missing(f, name), H5I_INVALID_HID;
    }
    hid_t ds = H5Dopen2(f->file, name, H5P_DEFAULT);
    if (ds < 0)
        fail_h5(MIMIC_EIO, "cannot open dataset '%s' in '%s': corrupt file", name, f->path);
    return ds;
}

/* --- attributes -------------------------------------------------------------------------- */
/* A numeric scalar attribute of obj as double; false if absent or not numeric. */
static bool num_attr(hid_t obj, const char *attr, double *out)
{
    if (H5Aexists(obj, attr) <= 0) {
        H5Eclear2(H5E_DEFAULT);
        return false;
    }
    hid_t a = H5Aopen(obj, attr, H5P_DEFAULT), t = a >= 0 ? H5Aget_type(a) : H5I_INVALID_HID;
    hid_t sp = a >= 0 ? H5Aget_space(a) : H5I_INVALID_HID;
    bool ok = false;
    if (t >= 0 && sp >= 0 && (H5Tget_class(t) == H5T_INTEGER || H5Tget_class(t) == H5T_FLOAT)) {
        hssize_t n = H5Sget_simple_extent_npoints(sp);
        if (n >= 1 && n <= 64) {
            double v[64];
            if (H5Aread(a, H5T_NATIVE_DOUBLE, v) >= 0) {
                *out = v[0];
                ok = true;
            }
        }
    }
    close_id(&sp);
    close_id(&t);
    close_id(&a);
    H5Eclear2(H5E_DEFAULT);
    return ok;
}

static int get_attr(hid_t obj, const char *attr, mimic_h5_attr *out)
{
    memset(out, 0, sizeof *out);
    if (H5Aexists(obj, attr) <= 0) {
        H5Eclear2(H5E_DEFAULT);
        return MIMIC_OK;
    }
    hid_t a = H5Aopen(obj, attr, H5P_DEFAULT), t = a >= 0 ? H5Aget_type(a) : H5I_INVALID_HID;
    hid_t sp = a >= 0 ? H5Aget_space(a) : H5I_INVALID_HID, mt = H5I_INVALID_HID;
    int rc = MIMIC_OK;
    if (t < 0 || sp < 0) {
        rc = fail_h5(MIMIC_EIO, "cannot read attribute '%s'", attr);
        goto done;
    }
    hssize_t n = H5Sget_simple_extent_npoints(sp);
    H5T_class_t cls = H5Tget_class(t);
    out->n = n;
    if ((cls == H5T_INTEGER || cls == H5T_FLOAT) && n >= 1) {
        double *v = mimic_malloc((size_t)n * sizeof *v);
        if (!v) {
            rc = MIMIC_ENOMEM;
            goto done;
        }
        if (H5Aread(a, H5T_NATIVE_DOUBLE, v) < 0) {
            mimic_free(v);
            rc = fail_h5(MIMIC_EIO, "cannot read attribute '%s'", attr);
            goto done;
        }
        out->kind = MIMIC_H5_ATTR_NUMBER;
        out->number = v[0];
        mimic_free(v);
    } else if (cls == H5T_STRING && n == 1) {
        if (H5Tis_variable_str(t) > 0) {
            char *s = NULL;
            mt = H5Tcopy(H5T_C_S1);
            H5Tset_size(mt, H5T_VARIABLE);
            H5Tset_cset(mt, H5Tget_cset(t));
            if (H5Aread(a, mt, &s) < 0) {
                rc = fail_h5(MIMIC_EIO, "cannot read attribute '%s'", attr);
                goto done;
            }
            out->str = dup_str(s ? s : "");
            H5free_memory(s);
        } else {
            size_t sz = H5Tget_size(t);
            char *s = mimic_malloc(sz + 1);
            if (!s) {
                rc = MIMIC_ENOMEM;
                goto done;
            }
            mt = H5Tcopy(t);
            if (H5Aread(a, mt, s) < 0) {
                mimic_free(s);
                rc = fail_h5(MIMIC_EIO, "cannot read attribute '%s'", attr);
                goto done;
            }
            s[sz] = '\0';
            out->str = s;
        }
        if (!out->str)
            rc = MIMIC_ENOMEM;
        else
            out->kind = MIMIC_H5_ATTR_STRING;
    } else {
        out->kind = MIMIC_H5_ATTR_OTHER;
    }
done:
    close_id(&mt);
    close_id(&sp);
    close_id(&t);
    close_id(&a);
    return rc;
}

/* Opens a dataset or group by name ("" or "/" is the root). */
static hid_t open_object(mimic_h5 *f, const char *obj)
{
    if (!f)
        return mimic_error(MIMIC_EARG, "data file is NULL"), H5I_INVALID_HID;
    if (!obj || !*obj || strcmp(obj, "/") == 0)
        return H5Oopen(f->file, "/", H5P_DEFAULT);
    htri_t ex = H5Lexists(f->file, obj, H5P_DEFAULT);
    if (ex <= 0) {
        H5Eclear2(H5E_DEFAULT);
        /* maybe a missing parent group: report the datasets that exist */
        return missing(f, obj), H5I_INVALID_HID;
    }
    hid_t o = H5Oopen(f->file, obj, H5P_DEFAULT);
    if (o < 0)
        fail_h5(MIMIC_EIO, "cannot open '%s' in '%s'", obj, f->path);
    return o;
}

int mimic_h5_get_attr(mimic_h5 *f, const char *obj, const char *attr, mimic_h5_attr *out)
{
    if (!out || !attr)
        return mimic_error(MIMIC_EARG, "mimic_h5_get_attr: NULL argument");
    memset(out, 0, sizeof *out);
    quiet q;
    quiet_begin(&q);
    hid_t o = open_object(f, obj);
    int rc = o < 0 ? (mimic_errcode() ? mimic_errcode() : MIMIC_EIO) : get_attr(o, attr, out);
    close_id(&o);
    quiet_end(&q);
    return rc;
}

typedef struct names_buf {
    char *s;
    size_t len, cap;
    bool nomem;
} names_buf;

static herr_t attr_name_cb(hid_t loc, const char *name, const H5A_info_t *info, void *ud)
{
    (void)loc;
    (void)info;
    names_buf *b = ud;
    size_t n = strlen(name);
    if (b->len + n + 2 > b->cap) {
        size_t cap = (b->len + n + 2) * 2;
        char *p = mimic_realloc(b->s, cap);
        if (!p) {
            b->nomem = true;
            return -1;
        }
        b->s = p;
        b->cap = cap;
    }
    if (b->len)
        b->s[b->len++] = '\n';
    memcpy(b->s + b->len, name, n + 1);
    b->len += n;
    return 0;
}

char *mimic_h5_attr_names(mimic_h5 *f, const char *obj)
{
    quiet q;
    quiet_begin(&q);
    names_buf b = {0};
    hid_t o = open_object(f, obj);
    if (o >= 0) {
        hsize_t idx = 0;
        if (H5Aiterate2(o, H5_INDEX_NAME, H5_ITER_INC, &idx, attr_name_cb, &b) < 0) {
            if (!b.nomem)
                fail_h5(MIMIC_EIO, "cannot list the attributes of '%s'", obj);
            mimic_free(b.s);
            b.s = NULL;
        } else if (!b.s) {
            b.s = dup_str("");
        }
    }
    close_id(&o);
    quiet_end(&q);
    return b.s;
}

static int set_attr(mimic_h5 *f, const char *obj, const char *attr, const double *v, const char *s)
{
    if (!f || !attr || !*attr)
        return mimic_error(MIMIC_EARG, "set_attr: NULL or empty argument");
    if (!f->writable)
        return mimic_error(MIMIC_ESTATE, "cannot set attribute '%s': '%s' is open read-only", attr, f->path);
    hid_t o = open_object(f, obj), t = H5I_INVALID_HID, sp = H5I_INVALID_HID, a = H5I_INVALID_HID;
    int rc = MIMIC_OK;
    if (o < 0)
        return mimic_errcode() ? mimic_errcode() : MIMIC_EIO;
    if (H5Aexists(o, attr) > 0)
        H5Adelete(o, attr);
    sp = H5Screate(H5S_SCALAR);
    if (s) {
        t = H5Tcopy(H5T_C_S1);
        H5Tset_size(t, strlen(s) + 1);
    } else {
        t = H5Tcopy(H5T_IEEE_F64LE);
    }
    if (sp < 0 || t < 0 || (a = H5Acreate2(o, attr, t, sp, H5P_DEFAULT, H5P_DEFAULT)) < 0 ||
        H5Awrite(a, s ? t : H5T_NATIVE_DOUBLE, s ? (const void *)s : (const void *)v) < 0)
        rc = fail_h5(MIMIC_EIO, "cannot write attribute '%s' of '%s' in '%s'", attr, obj ? obj : "/", f->path);
    close_id(&a);
    close_id(&t);
    close_id(&sp);
    close_id(&o);
    return rc;
}

int mimic_h5_set_attr_number(mimic_h5 *f, const char *obj, const char *attr, double v)
{
    quiet q;
    quiet_begin(&q);
    int rc = set_attr(f, obj, attr, &v, NULL);
    quiet_end(&q);
    return rc;
}

int mimic_h5_set_attr_string(mimic_h5 *f, const char *obj, const char *attr, const char *s)
{
    if (!s)
        return mimic_error(MIMIC_EARG, "mimic_h5_set_attr_string: string is NULL");
    quiet q;
    quiet_begin(&q);
    int rc = set_attr(f, obj, attr, NULL, s);
    quiet_end(&q);
    return rc;
}

/* --- describing a dataset ----------------------------------------------------------------- */
static void basename_of(const char *path, char *out, size_t n)
{
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    size_t len = strlen(b);
    if (len >= n)
        len = n - 1; /* names are advisory: cut, do not fail */
    memcpy(out, b, len);
    out[len] = '\0';
}

/* Dimension names from DIMENSION_LIST: one variable-length list of object
 * references per dim (HDF5 dimension scales, as netCDF-4 and h5py write
 * them). The scale's own name is the dimension's name in netCDF. Read by
 * hand because the dimension-scale API lives in libhdf5_hl, which mimic
 * does not link. Any problem leaves the names empty: names are advisory. */
static void dim_names(hid_t ds, int ndim, mimic_h5_info *info)
{
    if (H5Aexists(ds, "DIMENSION_LIST") <= 0) {
        H5Eclear2(H5E_DEFAULT);
        return;
    }
    hid_t a = H5Aopen(ds, "DIMENSION_LIST", H5P_DEFAULT), sp = H5I_INVALID_HID, mt = H5I_INVALID_HID;
    hvl_t vl[MIMIC_MAX_DIMS];
    bool read = false;
    if (a < 0 || (sp = H5Aget_space(a)) < 0 || H5Sget_simple_extent_npoints(sp) != ndim)
        goto done;
    mt = H5Tvlen_create(H5T_STD_REF_OBJ);
    if (mt < 0 || H5Aread(a, mt, vl) < 0)
        goto done;
    read = true;
    for (int d = 0; d < ndim; d++) {
        if (vl[d].len < 1 || !vl[d].p)
            continue;
        hobj_ref_t *ref = vl[d].p;
        hid_t sc = H5Rdereference2(ds, H5P_DEFAULT, H5R_OBJECT, ref);
        if (sc < 0)
            continue;
        char nm[256];
        ssize_t len = H5Iget_name(sc, nm, sizeof nm);
        if (len > 0)
            basename_of(nm, info->dim_names[d], sizeof info->dim_names[d]);
        H5Oclose(sc);
    }
done:
    if (read) {
        hsize_t dims[1] = {(hsize_t)ndim};
        hid_t msp = H5Screate_simple(1, dims, NULL);
        H5Dvlen_reclaim(mt, msp, H5P_DEFAULT, vl);
        close_id(&msp);
    }
    close_id(&mt);
    close_id(&sp);
    close_id(&a);
    H5Eclear2(H5E_DEFAULT);
}

static int describe(mimic_h5 *f, const char *name, hid_t ds, mimic_h5_info *info)
{
    memset(info, 0, sizeof *info);
    info->scale = 1;
    hid_t t = H5Dget_type(ds), sp = H5Dget_space(ds), dcpl = H5Dget_create_plist(ds);
    int rc = MIMIC_OK;
    if (t < 0 || sp < 0 || dcpl < 0) {
        rc = fail_h5(MIMIC_EIO, "cannot read '%s' from '%s': corrupt file", name, f->path);
        goto done;
    }
    H5T_class_t cls = H5Tget_class(t);
    size_t size = H5Tget_size(t);
    if (cls == H5T_INTEGER)
        snprintf(info->type, sizeof info->type, "%sint%zu", H5Tget_sign(t) == H5T_SGN_NONE ? "u" : "", size * 8);
    else if (cls == H5T_FLOAT)
        snprintf(info->type, sizeof info->type, "float%zu", size * 8);
    else
        snprintf(info->type, sizeof info->type, "%s",
                 cls == H5T_STRING ? "string" : cls == H5T_COMPOUND ? "compound" : cls == H5T_ENUM ? "enum"
                 : cls == H5T_REFERENCE ? "reference" : cls == H5T_VLEN ? "vlen" : cls == H5T_ARRAY ? "array" : "opaque");
    info->is_float = cls == H5T_FLOAT;
    if (cls == H5T_INTEGER || cls == H5T_FLOAT)
        info->big_endian = H5Tget_order(t) == H5T_ORDER_BE;
    int nd = H5Sget_simple_extent_ndims(sp);
    if (nd < 0 || nd > MIMIC_MAX_DIMS) {
        rc = nd < 0 ? fail_h5(MIMIC_EIO, "cannot read '%s' from '%s': corrupt dataspace", name, f->path)
                    : mimic_error(MIMIC_ESHAPE, "'%s' in '%s' has %d dims; mimic supports at most %d", name, f->path,
                                  nd, MIMIC_MAX_DIMS);
        goto done;
    }
    hsize_t dims[MIMIC_MAX_DIMS], maxd[MIMIC_MAX_DIMS];
    H5Sget_simple_extent_dims(sp, dims, maxd);
    info->ndim = nd;
    for (int d = 0; d < nd; d++)
        info->shape[d] = (int64_t)dims[d];
    info->dims_unlimited = nd > 0 && maxd[0] == H5S_UNLIMITED;
    if (H5Pget_layout(dcpl) == H5D_CHUNKED) {
        hsize_t ch[MIMIC_MAX_DIMS];
        info->chunked = true;
        if (H5Pget_chunk(dcpl, nd, ch) == nd)
            for (int d = 0; d < nd; d++)
                info->chunk[d] = (int64_t)ch[d];
    }
    int nf = H5Pget_nfilters(dcpl);
    size_t k = 0;
    for (int i = 0; i < nf; i++) {
        unsigned flags, cd[8];
        size_t ncd = 8;
        char fname[64] = "";
        H5Z_filter_t id = H5Pget_filter2(dcpl, (unsigned)i, &flags, &ncd, cd, sizeof fname, fname, NULL);
        if (k < sizeof info->filters)
            k += (size_t)snprintf(info->filters + k, sizeof info->filters - k, "%s%s", i ? "," : "",
                                  id == H5Z_FILTER_DEFLATE ? "deflate" : id == H5Z_FILTER_SHUFFLE ? "shuffle"
                                  : id == H5Z_FILTER_FLETCHER32 ? "fletcher32" : fname[0] ? fname : "unknown");
        if (id == H5Z_FILTER_DEFLATE && ncd >= 1 && k < sizeof info->filters)
            k += (size_t)snprintf(info->filters + k, sizeof info->filters - k, "(%u)", cd[0]);
    }
    double v;
    if (num_attr(ds, "_FillValue", &v) || num_attr(ds, "missing_value", &v)) {
        info->has_fill = true;
        info->fill = v;
    }
    if (num_attr(ds, "scale_factor", &v))
        info->scale = v;
    if (num_attr(ds, "add_offset", &v))
        info->offset = v;
    dim_names(ds, nd, info);
done:
    close_id(&dcpl);
    close_id(&sp);
    close_id(&t);
    return rc;
}

int mimic_h5_info_get(mimic_h5 *f, const char *name, mimic_h5_info *out)
{
    if (!out)
        return mimic_error(MIMIC_EARG, "mimic_h5_info_get: out is NULL");
    quiet q;
    quiet_begin(&q);
    hid_t ds = open_dataset(f, name);
    int rc = ds < 0 ? (mimic_errcode() ? mimic_errcode() : MIMIC_EIO) : describe(f, name, ds, out);
    close_id(&ds);
    quiet_end(&q);
    return rc;
}

/* --- reading ----------------------------------------------------------------------------- */
/* Every filter of the dataset must be available; else name it. HDF5 would
 * only say "required filter is not registered" at read time. */
static int check_filters(mimic_h5 *f, const char *name, hid_t ds)
{
    hid_t dcpl = H5Dget_create_plist(ds);
    if (dcpl < 0)
        return fail_h5(MIMIC_EIO, "cannot read '%s' from '%s': corrupt file", name, f->path);
    int nf = H5Pget_nfilters(dcpl), rc = MIMIC_OK;
    for (int i = 0; i < nf && rc == MIMIC_OK; i++) {
        unsigned flags, cd[8];
        size_t ncd = 8;
        char fname[64] = "";
        H5Z_filter_t id = H5Pget_filter2(dcpl, (unsigned)i, &flags, &ncd, cd, sizeof fname, fname, NULL);
        htri_t avail = id >= 0 ? H5Zfilter_avail(id) : 0;
        H5Eclear2(H5E_DEFAULT);
        if (avail <= 0) {
            const char *known = id == 32000 ? "lzf" : id == 32001 ? "blosc" : id == 32004 ? "lz4"
                              : id == 32008 ? "bitshuffle" : id == 32015 ? "zstd" : id == 307 ? "bzip2" : "";
            rc = mimic_error(MIMIC_EIO, "cannot read '%s' from '%s': it is compressed with the HDF5 filter '%s' (id %d), "
                                        "which this HDF5 library cannot decode; rewrite the file with gzip (h5py: "
                                        "compression='gzip'; or h5repack -f GZIP=4 in out) or install the filter plugin "
                                        "(HDF5_PLUGIN_PATH)",
                             name, f->path, known[0] ? known : fname[0] ? fname : "unknown", (int)id);
        }
    }
    close_id(&dcpl);
    return rc;
}

/* "[12,3]": the 0-based multi-index of flat element i of a block whose first
 * row is row0 of the file. */
static void index_str(int64_t i, int ndim, const int64_t *shape, int64_t row0, char *buf, size_t n)
{
    int64_t idx[MIMIC_MAX_DIMS];
    for (int d = ndim - 1; d >= 0; d--) {
        idx[d] = shape[d] ? i % shape[d] : 0;
        i = shape[d] ? i / shape[d] : 0;
    }
    if (ndim > 0)
        idx[0] += row0;
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int d = 0; d < ndim && k < n; d++)
        k += (size_t)snprintf(buf + k, n - k, "%s%lld", d ? "," : "", (long long)idx[d]);
    if (k < n)
        snprintf(buf + k, n - k, "]");
}

/* HDF5 clips values that do not fit the memory type (uint64 > INT64_MAX into
 * int64, float64 beyond FLT_MAX into float32) without a word. Abort instead,
 * and say so: a silently clipped sample is worse than an error. */
static H5T_conv_ret_t range_cb(H5T_conv_except_t ex, hid_t src, hid_t dst, void *sbuf, void *dbuf, void *ud)
{
    (void)src;
    (void)dst;
    (void)sbuf;
    (void)dbuf;
    if (ex == H5T_CONV_EXCEPT_RANGE_HI || ex == H5T_CONV_EXCEPT_RANGE_LOW) {
        *(bool *)ud = true;
        return H5T_CONV_ABORT;
    }
    return H5T_CONV_UNHANDLED;
}

static mimic_tensor *h5_read(mimic_h5 *f, const char *name, const mimic_h5_read_opts *o)
{
    mimic_h5_read_opts def = {0};
    if (!o)
        o = &def;
    if (o->dtype != MIMIC_F32 && o->dtype != MIMIC_F64 && o->dtype != MIMIC_I64)
        return mimic_error(MIMIC_EARG, "reading '%s': dtype must be float32, float64 or int64", name ? name : ""), NULL;
    hid_t ds = open_dataset(f, name), fsp = H5I_INVALID_HID, msp = H5I_INVALID_HID, dxpl = H5I_INVALID_HID;
    mimic_tensor *t = NULL, *out = NULL;
    bool out_of_range = false;
    if (ds < 0)
        return NULL;
    mimic_h5_info info;
    if (describe(f, name, ds, &info) != MIMIC_OK)
        goto done;
    char shp[160];
    mimic_shape_str(info.ndim, info.shape, shp, sizeof shp);
    if (strncmp(info.type, "int", 3) != 0 && strncmp(info.type, "uint", 4) != 0 && !info.is_float) {
        mimic_error(MIMIC_EDTYPE, "cannot read '%s' from '%s': it holds %s data; mimic reads numeric datasets "
                                  "(float and integer)", name, f->path, info.type);
        goto done;
    }
    if (o->check_ndim && info.ndim != o->ndim) {
        mimic_error(MIMIC_ESHAPE, "'%s' in '%s' has %d dims %s; expected %d", name, f->path, info.ndim, shp, o->ndim);
        goto done;
    }
    bool packed = !o->raw && (info.scale != 1 || info.offset != 0);
    bool fill = !o->raw && info.has_fill;
    if (o->dtype == MIMIC_I64 && (info.is_float || packed)) {
        mimic_error(MIMIC_EDTYPE, "cannot read '%s' from '%s' as int64: it is %s%s; read it as float32 or float64",
                    name, f->path, packed ? "packed " : "", info.type);
        goto done;
    }
    if (check_filters(f, name, ds) != MIMIC_OK)
        goto done;
    int64_t shape[MIMIC_MAX_DIMS], row0 = 0;
    memcpy(shape, info.shape, sizeof shape);
    if ((fsp = H5Dget_space(ds)) < 0) {
        fail_h5(MIMIC_EIO, "cannot read '%s': corrupt dataspace", name);
        goto done;
    }
    if (o->rows) {
        if (info.ndim == 0) {
            mimic_error(MIMIC_ESHAPE, "cannot read rows of '%s' in '%s': it is a scalar (0 dims)", name, f->path);
            goto done;
        }
        if (o->start < 0 || o->count < 0 || o->start > info.shape[0] || o->count > info.shape[0] - o->start) {
            mimic_error(MIMIC_EARG, "cannot read rows %lld..%lld (0-based, end exclusive) of '%s' in '%s': it has %lld rows",
                        (long long)o->start, (long long)(o->start + o->count), name, f->path, (long long)info.shape[0]);
            goto done;
        }
        row0 = o->start;
        shape[0] = o->count;
        hsize_t start[MIMIC_MAX_DIMS] = {0}, count[MIMIC_MAX_DIMS];
        start[0] = (hsize_t)o->start;
        for (int d = 0; d < info.ndim; d++)
            count[d] = (hsize_t)shape[d];
        if (H5Sselect_hyperslab(fsp, H5S_SELECT_SET, start, NULL, count, NULL) < 0) {
            fail_h5(MIMIC_EINTERNAL, "cannot select rows of '%s'", name);
            goto done;
        }
    }
    /* Packed data is unpacked in double precision before any narrowing. */
    mimic_dtype rd = packed ? MIMIC_F64 : o->dtype;
    if (!(t = mimic_empty(info.ndim, shape, rd)))
        goto done;
    int64_t n = mimic_numel(t);
    if (n > 0) {
        hsize_t mdims[MIMIC_MAX_DIMS];
        for (int d = 0; d < info.ndim; d++)
            mdims[d] = (hsize_t)shape[d];
        msp = info.ndim ? H5Screate_simple(info.ndim, mdims, NULL) : H5Screate(H5S_SCALAR);
        dxpl = H5Pcreate(H5P_DATASET_XFER);
        hid_t mt = rd == MIMIC_F32 ? H5T_NATIVE_FLOAT : rd == MIMIC_F64 ? H5T_NATIVE_DOUBLE : H5T_NATIVE_INT64;
        if (msp < 0 || dxpl < 0 || H5Pset_type_conv_cb(dxpl, range_cb, &out_of_range) < 0 ||
            H5Dread(ds, mt, msp, fsp, dxpl, mimic_data(t)) < 0) {
            h5err he;
            h5_collect(&he);
            if (out_of_range) {
                mimic_error(MIMIC_EDTYPE, "cannot read '%s' (%s) from '%s' as %s: it holds values outside the %s range; "
                                          "read it as %s", name, info.type, f->path, mimic_dtype_name(rd),
                            mimic_dtype_name(rd), rd == MIMIC_F32 ? "float64" : "float64 (exact up to 2^53)");
                goto done;
            }
            mimic_error(MIMIC_EIO, "cannot read '%s' (%s %s) from '%s': %s (HDF5: %s)", name, info.type, shp, f->path,
                        he.truncated ? "the file is truncated" : "corrupt data", he.inner[0] ? he.inner : "no details");
            goto done;
        }
    }
    if (rd != MIMIC_I64 && (fill || packed || o->finite)) {
        /* fill -> NaN compares in the read type: the fill attribute has the
         * variable's type, and both convert the same way. */
        int64_t bad = -1;
        bool bad_fill = false;
        if (rd == MIMIC_F64) {
            double *p = mimic_data(t), fv = info.fill;
            for (int64_t i = 0; i < n; i++) {
                double v = p[i];
                if (fill && (v == fv || (fv != fv && v != v))) {
                    p[i] = NAN;
                    if (o->finite && bad < 0)
                        bad = i, bad_fill = true;
                    continue;
                }
                if (packed)
                    p[i] = v = v * info.scale + info.offset;
                if (o->finite && bad < 0 && !isfinite(v))
                    bad = i;
            }
        } else {
            float *p = mimic_data(t), fv = (float)info.fill;
            for (int64_t i = 0; i < n; i++) {
                float v = p[i];
                if (fill && (v == fv || (fv != fv && v != v))) {
                    p[i] = NAN;
                    if (o->finite && bad < 0)
                        bad = i, bad_fill = true;
                    continue;
                }
                if (o->finite && bad < 0 && !isfinite(v))
                    bad = i;
            }
        }
        if (bad >= 0) {
            char idx[160];
            index_str(bad, info.ndim, shape, row0, idx, sizeof idx);
            double v = rd == MIMIC_F64 ? ((double *)mimic_data(t))[bad] : ((float *)mimic_data(t))[bad];
            mimic_error(MIMIC_EVALUE, "'%s' in '%s' has %s at index %s (0-based, as NumPy indexes the file)%s; "
                                      "finite=true rejects NaN and Inf",
                        name, f->path, v != v ? "NaN" : v > 0 ? "+Inf" : "-Inf", idx,
                        bad_fill ? ", a missing value (_FillValue)" : "");
            goto done;
        }
    }
    if (rd != o->dtype) {
        out = mimic_to_dtype(t, o->dtype);
        goto done;
    }
    out = t;
    t = NULL;
done:
    mimic_tensor_free(t);
    close_id(&dxpl);
    close_id(&msp);
    close_id(&fsp);
    close_id(&ds);
    return out;
}

mimic_tensor *mimic_h5_read(mimic_h5 *f, const char *name, const mimic_h5_read_opts *opts)
{
    quiet q;
    quiet_begin(&q);
    mimic_tensor *t = h5_read(f, name, opts);
    quiet_end(&q);
    return t;
}

static mimic_tensor *h5_read_mask(mimic_h5 *f, const char *name, const mimic_h5_read_opts *opts)
{
    mimic_h5_read_opts o = {.dtype = MIMIC_F64, .raw = true};
    if (opts) {
        o.rows = opts->rows;
        o.start = opts->start;
        o.count = opts->count;
    }
    mimic_h5_info info;
    hid_t ds = open_dataset(f, name);
    if (ds < 0)
        return NULL;
    int rc = describe(f, name, ds, &info);
    close_id(&ds);
    if (rc != MIMIC_OK)
        return NULL;
    /* The stored values as float64: exact for every fill a netCDF writer uses
     * (integers below 2^53, float32 and float64 values). */
    mimic_tensor *raw = h5_read(f, name, &o), *m = NULL;
    if (!raw)
        return NULL;
    if ((m = mimic_empty(raw->ndim, raw->shape, MIMIC_BOOL))) {
        const double *p = mimic_data(raw);
        uint8_t *q = mimic_data(m);
        int64_t n = mimic_numel(raw);
        double fv = info.fill;
        for (int64_t i = 0; i < n; i++)
            q[i] = info.has_fill && (p[i] == fv || (fv != fv && p[i] != p[i]));
    }
    mimic_tensor_free(raw);
    return m;
}

mimic_tensor *mimic_h5_read_mask(mimic_h5 *f, const char *name, const mimic_h5_read_opts *opts)
{
    quiet q;
    quiet_begin(&q);
    mimic_tensor *t = h5_read_mask(f, name, opts);
    quiet_end(&q);
    return t;
}

/* --- writing ----------------------------------------------------------------------------- */
static int dtype_types(mimic_dtype dt, hid_t *ftype, hid_t *mtype)
{
    switch (dt) {
    case MIMIC_F32: *ftype = H5T_IEEE_F32LE; *mtype = H5T_NATIVE_FLOAT; return MIMIC_OK;
    case MIMIC_F64: *ftype = H5T_IEEE_F64LE; *mtype = H5T_NATIVE_DOUBLE; return MIMIC_OK;
    case MIMIC_I64: *ftype = H5T_STD_I64LE; *mtype = H5T_NATIVE_INT64; return MIMIC_OK;
    case MIMIC_BOOL: *ftype = H5T_STD_U8LE; *mtype = H5T_NATIVE_UINT8; return MIMIC_OK;
    default: return mimic_error(MIMIC_EDTYPE, "cannot write a tensor of this dtype");
    }
}

/* t itself if contiguous (retained), else a packed copy. */
static mimic_tensor *packed_copy(const mimic_tensor *t)
{
    if (mimic_is_contiguous(t)) {
        mimic_tensor_retain((mimic_tensor *)t);
        return (mimic_tensor *)t;
    }
    mimic_tensor *p = mimic_empty(t->ndim, t->shape, t->dtype);
    if (p && mimic_copy(p, t) != MIMIC_OK) {
        mimic_tensor_free(p);
        return NULL;
    }
    return p;
}

static int h5_write(mimic_h5 *f, const char *name, const mimic_tensor *t, const mimic_h5_write_opts *o)
{
    mimic_h5_write_opts def = {0};
    if (!o)
        o = &def;
    if (!f || !name || !*name || !t)
        return mimic_error(MIMIC_EARG, "mimic_h5_write: NULL or empty argument");
    if (!f->writable)
        return mimic_error(MIMIC_ESTATE, "cannot write '%s': '%s' is open read-only", name, f->path);
    if (o->gzip < 0 || o->gzip > 9)
        return mimic_error(MIMIC_EARG, "writing '%s': gzip level %d is out of range 0..9", name, o->gzip);
    if (o->nchunk && o->nchunk != t->ndim)
        return mimic_error(MIMIC_EARG, "writing '%s': the chunk shape has %d dims, the tensor %d", name, o->nchunk, t->ndim);
    if (o->extendable && t->ndim == 0)
        return mimic_error(MIMIC_EARG, "writing '%s': a 0-dim tensor cannot be extendable", name);
    htri_t ex = H5Lexists(f->file, name, H5P_DEFAULT);
    H5Eclear2(H5E_DEFAULT);
    if (ex > 0)
        return mimic_error(MIMIC_EARG, "cannot write '%s' to '%s': it exists already", name, f->path);
    hid_t ftype, mtype;
    int rc = dtype_types(t->dtype, &ftype, &mtype);
    if (rc != MIMIC_OK)
        return rc;
    mimic_tensor *p = packed_copy(t);
    if (!p)
        return mimic_errcode();
    hid_t sp = H5I_INVALID_HID, dcpl = H5Pcreate(H5P_DATASET_CREATE), lcpl = H5Pcreate(H5P_LINK_CREATE);
    hid_t ds = H5I_INVALID_HID;
    hsize_t dims[MIMIC_MAX_DIMS], maxd[MIMIC_MAX_DIMS], ch[MIMIC_MAX_DIMS];
    bool chunked = o->gzip > 0 || o->nchunk > 0 || o->extendable || o->shuffle;
    for (int d = 0; d < t->ndim; d++) {
        dims[d] = maxd[d] = (hsize_t)t->shape[d];
        ch[d] = dims[d] ? dims[d] : 1;
    }
    if (o->extendable)
        maxd[0] = H5S_UNLIMITED;
    if (chunked && t->ndim > 0) {
        if (o->nchunk) {
            for (int d = 0; d < t->ndim; d++) {
                if (o->chunk[d] < 1) {
                    rc = mimic_error(MIMIC_EARG, "writing '%s': chunk sizes must be >= 1", name);
                    goto done;
                }
                ch[d] = (hsize_t)o->chunk[d];
            }
        } else {
            /* Whole rows, about 1 MiB a chunk: streaming reads rows, and
             * HDF5's chunk cache (1 MiB by default) holds one chunk. */
            size_t rowbytes = mimic_dtype_size(t->dtype);
            for (int d = 1; d < t->ndim; d++)
                rowbytes *= (size_t)(ch[d]);
            hsize_t rows = (hsize_t)((1u << 20) / (rowbytes ? rowbytes : 1));
            ch[0] = rows < 1 ? 1 : rows;
            if (!o->extendable && ch[0] > dims[0] && dims[0] > 0)
                ch[0] = dims[0];
        }
    }
    if (lcpl >= 0)
        H5Pset_create_intermediate_group(lcpl, 1);
    sp = t->ndim ? H5Screate_simple(t->ndim, dims, maxd) : H5Screate(H5S_SCALAR);
    if (sp < 0 || dcpl < 0 || lcpl < 0 || (chunked && t->ndim > 0 && H5Pset_chunk(dcpl, t->ndim, ch) < 0) ||
        (o->shuffle && H5Pset_shuffle(dcpl) < 0) || (o->gzip > 0 && H5Pset_deflate(dcpl, (unsigned)o->gzip) < 0)) {
        rc = fail_h5(MIMIC_EIO, "cannot write '%s' to '%s': bad dataset options", name, f->path);
        goto done;
    }
    ds = H5Dcreate2(f->file, name, ftype, sp, lcpl, dcpl, H5P_DEFAULT);
    if (ds < 0 || (mimic_numel(p) > 0 && H5Dwrite(ds, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, mimic_data(p)) < 0))
        rc = fail_h5(MIMIC_EIO, "cannot write '%s' to '%s'", name, f->path);
done:
    drop_names(f);
    close_id(&ds);
    close_id(&sp);
    close_id(&dcpl);
    close_id(&lcpl);
    mimic_tensor_free(p);
    return rc;
}

int mimic_h5_write(mimic_h5 *f, const char *name, const mimic_tensor *t, const mimic_h5_write_opts *opts)
{
    quiet q;
    quiet_begin(&q);
    int rc = h5_write(f, name, t, opts);
    quiet_end(&q);
    return rc;
}

static int h5_append(mimic_h5 *f, const char *name, const mimic_tensor *t)
{
    if (!f || !t)
        return mimic_error(MIMIC_EARG, "mimic_h5_append: NULL argument");
    if (!f->writable)
        return mimic_error(MIMIC_ESTATE, "cannot append to '%s': '%s' is open read-only", name, f->path);
    hid_t ds = open_dataset(f, name), fsp = H5I_INVALID_HID, msp = H5I_INVALID_HID, ftype, mtype;
    mimic_tensor *p = NULL;
    int rc = MIMIC_OK;
    if (ds < 0)
        return mimic_errcode();
    mimic_h5_info info;
    if ((rc = describe(f, name, ds, &info)) != MIMIC_OK)
        goto done;
    if (!info.dims_unlimited) {
        rc = mimic_error(MIMIC_ESTATE, "cannot append to '%s' in '%s': it was not written extendable", name, f->path);
        goto done;
    }
    bool same = t->ndim == info.ndim;
    for (int d = 1; same && d < t->ndim; d++)
        same = t->shape[d] == info.shape[d];
    if (!same) {
        char a[160], b[160];
        rc = mimic_error(MIMIC_ESHAPE, "cannot append a %s tensor to '%s' of shape %s: the dims after the first must match",
                         mimic_shape_str(t->ndim, t->shape, a, sizeof a), name,
                         mimic_shape_str(info.ndim, info.shape, b, sizeof b));
        goto done;
    }
    if ((rc = dtype_types(t->dtype, &ftype, &mtype)) != MIMIC_OK || !(p = packed_copy(t))) {
        rc = rc ? rc : mimic_errcode();
        goto done;
    }
    if (t->shape[0] == 0)
        goto done;
    hsize_t dims[MIMIC_MAX_DIMS], start[MIMIC_MAX_DIMS] = {0}, count[MIMIC_MAX_DIMS];
    for (int d = 0; d < info.ndim; d++) {
        dims[d] = (hsize_t)info.shape[d];
        count[d] = (hsize_t)t->shape[d];
    }
    start[0] = dims[0];
    dims[0] += (hsize_t)t->shape[0];
    if (H5Dset_extent(ds, dims) < 0 || (fsp = H5Dget_space(ds)) < 0 ||
        H5Sselect_hyperslab(fsp, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
        (msp = H5Screate_simple(info.ndim, count, NULL)) < 0 ||
        H5Dwrite(ds, mtype, msp, fsp, H5P_DEFAULT, mimic_data(p)) < 0)
        rc = fail_h5(MIMIC_EIO, "cannot append to '%s' in '%s'", name, f->path);
done:
    mimic_tensor_free(p);
    close_id(&msp);
    close_id(&fsp);
    close_id(&ds);
    return rc;
}

int mimic_h5_append(mimic_h5 *f, const char *name, const mimic_tensor *t)
{
    quiet q;
    quiet_begin(&q);
    int rc = h5_append(f, name, t);
    quiet_end(&q);
    return rc;
}
