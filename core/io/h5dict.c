/* Tensor dictionaries in HDF5 files (see mimic/io.h): the checkpoint container.
 *
 * Every public function brackets its HDF5 calls with quiet_begin/quiet_end:
 * HDF5 prints its error stack to stderr by default, and mimic never prints.
 * Failures are turned into mimic errors that carry the innermost HDF5
 * message (which holds errno text such as "No space left on device").
 *
 * Every hid_t is closed on every path; files are opened with strong close
 * semantics as a second line of defence, so no HDF5 object outlives the
 * mimic object that opened it. */
#include "mimic/io.h"

#include "h5util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_DEPTH 64      /* group nesting; deeper means a hard-link cycle */
#define BOOL_FALSE "FALSE" /* h5py's names for the members of a NumPy bool enum */
#define BOOL_TRUE "TRUE"

/* --- small helpers --------------------------------------------------------------------- */
static char *dup_mem(const char *s, size_t n)
{
    char *p = mimic_malloc(n + 1);
    if (p) {
        if (n)
            memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}
static char *dup_str(const char *s) { return dup_mem(s, strlen(s)); }

static char *concat3(const char *a, const char *b, const char *c)
{
    size_t la = strlen(a), lb = strlen(b), lc = strlen(c);
    char *p = mimic_malloc(la + lb + lc + 1);
    if (p) {
        memcpy(p, a, la);
        memcpy(p + la, b, lb);
        memcpy(p + la + lb, c, lc + 1);
    }
    return p;
}

/* numel and bytes of a shape, false on overflow (a corrupt or hostile file). */
static bool shape_size(int ndim, const int64_t *shape, size_t esize, int64_t *numel, size_t *nbytes)
{
    int64_t n = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0)
            return false;
        if (shape[d] != 0 && n > INT64_MAX / shape[d])
            return false;
        n *= shape[d];
    }
    if ((uint64_t)n > SIZE_MAX / esize)
        return false;
    *numel = n;
    *nbytes = (size_t)n * esize;
    return true;
}

/* The rules of io.h: non-empty components separated by single '/', none "." or "..". */
static int check_name(const char *fn, const char *name)
{
    if (!name)
        return mimic_error(MIMIC_EARG, "%s: name is NULL", fn);
    const char *p = name;
    if (!*p)
        return mimic_error(MIMIC_EARG, "%s: name is empty", fn);
    for (;;) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        if (n == 0)
            return mimic_error(MIMIC_EARG, "%s: name '%s' has an empty component (names are parts separated by single '/')",
                               fn, name);
        if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
            return mimic_error(MIMIC_EARG, "%s: name '%s' has a component '.' or '..'", fn, name);
        if (!slash)
            return MIMIC_OK;
        p = slash + 1;
    }
}

/* The enum mimic writes for bool (int8 FALSE = 0, TRUE = 1); also the memory
 * type bools are read with (HDF5 converts enums by member name). */
static hid_t bool_type(void)
{
    hid_t t = H5Tenum_create(H5T_NATIVE_INT8);
    if (t < 0)
        return t;
    int8_t v = 0;
    if (H5Tenum_insert(t, BOOL_FALSE, &v) < 0)
        goto fail;
    v = 1;
    if (H5Tenum_insert(t, BOOL_TRUE, &v) < 0)
        goto fail;
    return t;
fail:
    H5Tclose(t);
    return H5I_INVALID_HID;
}

static bool is_bool_enum(hid_t t)
{
    if (H5Tget_class(t) != H5T_ENUM || H5Tget_size(t) != 1 || H5Tget_nmembers(t) != 2)
        return false;
    bool seen_false = false, seen_true = false;
    for (unsigned i = 0; i < 2; i++) {
        char *nm = H5Tget_member_name(t, i);
        signed char v = 0;
        if (!nm)
            return false;
        if (H5Tget_member_value(t, i, &v) >= 0) {
            seen_false |= strcmp(nm, BOOL_FALSE) == 0 && v == 0;
            seen_true |= strcmp(nm, BOOL_TRUE) == 0 && v == 1;
        }
        H5free_memory(nm);
    }
    return seen_false && seen_true;
}

/* File and memory types of a dtype: the caller closes both. */
static int dtype_types(mimic_dtype dt, hid_t *ftype, hid_t *mtype)
{
    switch (dt) {
    case MIMIC_F32: *ftype = H5Tcopy(H5T_IEEE_F32LE); *mtype = H5Tcopy(H5T_NATIVE_FLOAT); break;
    case MIMIC_F64: *ftype = H5Tcopy(H5T_IEEE_F64LE); *mtype = H5Tcopy(H5T_NATIVE_DOUBLE); break;
    case MIMIC_I64: *ftype = H5Tcopy(H5T_STD_I64LE); *mtype = H5Tcopy(H5T_NATIVE_INT64); break;
    case MIMIC_BOOL: *ftype = bool_type(); *mtype = bool_type(); break;
    default: *ftype = *mtype = H5I_INVALID_HID; return MIMIC_EDTYPE;
    }
    if (*ftype < 0 || *mtype < 0) {
        close_id(ftype);
        close_id(mtype);
        return MIMIC_EINTERNAL;
    }
    return MIMIC_OK;
}

/* A type's name for messages ("int32", "uint8", "float16", "string", ...). */
static void type_desc(hid_t t, char *buf, size_t n)
{
    size_t size = H5Tget_size(t);
    switch (H5Tget_class(t)) {
    case H5T_INTEGER:
        snprintf(buf, n, "%sint%zu", H5Tget_sign(t) == H5T_SGN_NONE ? "u" : "", size * 8);
        break;
    case H5T_FLOAT: snprintf(buf, n, "float%zu", size * 8); break;
    case H5T_STRING: snprintf(buf, n, "string"); break;
    case H5T_BITFIELD: snprintf(buf, n, "bitfield"); break;
    case H5T_OPAQUE: snprintf(buf, n, "opaque"); break;
    case H5T_COMPOUND: snprintf(buf, n, "compound"); break;
    case H5T_REFERENCE: snprintf(buf, n, "reference"); break;
    case H5T_ENUM: snprintf(buf, n, "enum"); break;
    case H5T_VLEN: snprintf(buf, n, "variable-length"); break;
    case H5T_ARRAY: snprintf(buf, n, "array"); break;
    default: snprintf(buf, n, "unknown-type"); break;
    }
}

/* The mimic dtype a dataset of file type t reads as; false (with a
 * description of t in desc) if none. */
static bool dataset_dtype(hid_t t, mimic_dtype *dt, char *desc, size_t n)
{
    H5T_class_t c = H5Tget_class(t);
    size_t size = H5Tget_size(t);
    if (c == H5T_FLOAT && (size == 4 || size == 8)) {
        *dt = size == 4 ? MIMIC_F32 : MIMIC_F64;
        return true;
    }
    if (c == H5T_INTEGER && size == 8 && H5Tget_sign(t) == H5T_SGN_2) {
        *dt = MIMIC_I64;
        return true;
    }
    if (is_bool_enum(t)) {
        *dt = MIMIC_BOOL;
        return true;
    }
    type_desc(t, desc, n);
    return false;
}

static hid_t object_create_plist(hid_t cls)
{
    /* No modification times in the file: the same content gives the same
     * bytes, so checkpoints can be compared and deduplicated. */
    hid_t p = H5Pcreate(cls);
    if (p >= 0 && H5Pset_obj_track_times(p, 0) < 0)
        close_id(&p);
    return p;
}

static hid_t file_access_plist(void)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0)
        return fapl;
    /* Strong close: closing the file closes anything still open in it. */
    if (H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG) < 0)
        goto fail;
#if H5_VERSION_GE(1, 10, 2)
    /* The 1.8 object formats: readable by every HDF5 since 1.8, and able to
     * hold large attributes (dense attribute storage). */
    if (H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_V18) < 0)
        goto fail;
#endif
#if H5_VERSION_GE(1, 10, 7) && !(H5_VERS_MAJOR == 1 && H5_VERS_MINOR == 12 && H5_VERS_RELEASE == 0)
    /* Parallel file systems often refuse flock(); HDF5 would then fail to
     * open any file. Lock where possible, carry on where locks are off. */
    if (H5Pset_file_locking(fapl, 1, 1) < 0)
        goto fail;
#endif
    return fapl;
fail:
    H5Pclose(fapl);
    return H5I_INVALID_HID;
}

/* --- writing ------------------------------------------------------------------------- */
typedef struct mimic_dict mimic_dict;
static mimic_dict *dict_open(const char *path);
static void dict_free(mimic_dict *d);

/* The file is assembled in memory (HDF5's core driver) and written to disk by
 * mimic itself at commit. Why: when a write fails inside HDF5 (a full disk,
 * a quota), H5Fclose fails and HDF5 up to 1.14.0 leaves a freed file object
 * in its ID table, which crashes the process later, at exit at the latest
 * (HDFGroup/hdf5#2291). A checkpoint that fails must not take the run down
 * with it, so HDF5 never sees a disk here; the price is memory of about
 * twice the file size while committing. */
struct mimic_dict_writer {
    hid_t file;      /* in memory */
    int fd;          /* the temporary file, created (empty) by mimic_dict_create */
    char *path, *tmp;
    bool spoiled;
};

static void writer_free(mimic_dict_writer *w, bool remove_tmp)
{
    close_id(&w->file);
    if (w->fd >= 0)
        close(w->fd);
    if (remove_tmp && w->tmp && w->fd >= 0)
        unlink(w->tmp);
    mimic_free(w->tmp);
    mimic_free(w->path);
    mimic_free(w);
}

mimic_dict_writer *mimic_dict_create(const char *path)
{
    if (!path || !*path) {
        mimic_error(MIMIC_EARG, "mimic_dict_create: path is %s", path ? "empty" : "NULL");
        return NULL;
    }
    quiet q;
    quiet_begin(&q);
    mimic_dict_writer *w = mimic_calloc(1, sizeof *w);
    hid_t fapl = H5I_INVALID_HID, fcpl = H5I_INVALID_HID;
    char pid[32];
    snprintf(pid, sizeof pid, "%ld", (long)getpid());
    if (!w)
        goto fail;
    w->file = H5I_INVALID_HID;
    w->fd = -1;
    /* Next to the target, so that rename() stays within one file system. The
     * pid keeps concurrent writers (several ranks saving) from colliding. */
    if (!(w->path = dup_str(path)) || !(w->tmp = concat3(path, ".tmp.", pid)))
        goto fail;
    /* Created now, so that a missing directory or a read-only file system is
     * reported before any work is done. */
    w->fd = open(w->tmp, O_WRONLY | O_CREAT | O_TRUNC, 0666);
    if (w->fd < 0) {
        mimic_error(MIMIC_EIO, "cannot write '%s': creating the temporary file '%s' failed: %s", path, w->tmp,
                    strerror(errno));
        goto fail;
    }
    fapl = file_access_plist();
    fcpl = object_create_plist(H5P_FILE_CREATE);
    if (fapl < 0 || fcpl < 0 || H5Pset_fapl_core(fapl, (size_t)4 << 20, 0) < 0) {
        fail_h5(MIMIC_EINTERNAL, "cannot write '%s': HDF5 property lists failed", path);
        goto fail;
    }
    w->file = H5Fcreate(w->tmp, H5F_ACC_TRUNC, fcpl, fapl); /* the name only labels the in-memory file */
    if (w->file < 0) {
        fail_h5(MIMIC_EIO, "cannot write '%s': HDF5 could not create the file", path);
        goto fail;
    }
    close_id(&fapl);
    close_id(&fcpl);
    quiet_end(&q);
    return w;
fail:
    close_id(&fapl);
    close_id(&fcpl);
    if (w)
        writer_free(w, true);
    quiet_end(&q);
    return NULL;
}

/* Opens the group that holds `name` (creating missing parents) and points
 * *base at the last component. With make_last, the last component is opened
 * or created as a group too and returned instead (base = NULL). */
static hid_t open_parent(mimic_dict_writer *w, const char *fn, const char *name, bool make_last, const char **base)
{
    size_t len = strlen(name);
    char *buf = dup_mem(name, len);
    if (!buf)
        return H5I_INVALID_HID;
    hid_t g = H5Gopen2(w->file, "/", H5P_DEFAULT), gcpl = object_create_plist(H5P_GROUP_CREATE);
    if (g < 0 || gcpl < 0) {
        fail_h5(MIMIC_EIO, "%s: cannot open the root group of '%s'", fn, w->tmp);
        goto fail;
    }
    char *p = buf;
    for (;;) {
        char *slash = strchr(p, '/');
        if (!slash && !make_last) {
            *base = name + (p - buf);
            break;
        }
        if (slash)
            *slash = '\0';
        htri_t has_link = H5Lexists(g, p, H5P_DEFAULT);
        hid_t child = H5I_INVALID_HID;
        if (has_link > 0) {
            child = H5Oopen(g, p, H5P_DEFAULT);
            if (child >= 0 && H5Iget_type(child) != H5I_GROUP) {
                close_id(&child);
                mimic_error(MIMIC_EARG, "%s: '%s' is a tensor, so it cannot hold '%s'", fn, buf, name);
                goto fail;
            }
        } else if (has_link == 0) {
            htri_t has_attr = H5Aexists(g, p);
            if (has_attr > 0) {
                mimic_error(MIMIC_EARG, "%s: '%s' is a scalar, so it cannot hold '%s'", fn, buf, name);
                goto fail;
            }
            if (has_attr == 0)
                child = H5Gcreate2(g, p, H5P_DEFAULT, gcpl, H5P_DEFAULT);
        }
        if (child < 0) {
            fail_h5(MIMIC_EIO, "%s: cannot create group '%s' in '%s'", fn, buf, w->tmp);
            goto fail;
        }
        close_id(&g);
        g = child;
        if (!slash) {
            *base = NULL;
            break;
        }
        *slash = '/';
        p = slash + 1;
    }
    close_id(&gcpl);
    mimic_free(buf);
    return g;
fail:
    close_id(&g);
    close_id(&gcpl);
    mimic_free(buf);
    return H5I_INVALID_HID;
}

/* `base` must be free in group g: neither a link nor an attribute. */
static int check_free(hid_t g, const char *fn, const char *name, const char *base)
{
    htri_t l = H5Lexists(g, base, H5P_DEFAULT), a = l == 0 ? H5Aexists(g, base) : 0;
    if (l < 0 || a < 0)
        return fail_h5(MIMIC_EIO, "%s: cannot look up '%s'", fn, name);
    if (l > 0 || a > 0)
        return mimic_error(MIMIC_EARG, "%s: '%s' is written twice (each name holds one entry)", fn, name);
    return MIMIC_OK;
}

/* For a new tensor or scalar `name`: opens the group that is to hold it in *g
 * (creating missing groups on the way; *base: name's last component) and
 * checks that base is free there. On failure *g may still be open: the
 * caller closes it (close_id). */
static int open_new_entry(mimic_dict_writer *w, const char *fn, const char *name, hid_t *g, const char **base)
{
    if ((*g = open_parent(w, fn, name, false, base)) < 0)
        return mimic_errcode() ? mimic_errcode() : MIMIC_EIO;
    return check_free(*g, fn, name, *base);
}

static int writer_check(mimic_dict_writer *w, const char *fn, const char *name)
{
    if (!w)
        return mimic_error(MIMIC_EARG, "%s: writer is NULL", fn);
    if (w->spoiled)
        return mimic_error(MIMIC_ESTATE, "%s: an earlier write to '%s' failed; discard the writer", fn, w->path);
    return check_name(fn, name);
}

/* Spoils the writer on failure (see io.h): the temporary file may hold half an entry. */
static int writer_rc(mimic_dict_writer *w, int rc)
{
    if (rc != MIMIC_OK && w)
        w->spoiled = true;
    return rc;
}

static int put_tensor(mimic_dict_writer *w, const char *name, const mimic_tensor *t)
{
    static const char fn[] = "save";
    int rc = writer_check(w, fn, name);
    if (rc != MIMIC_OK)
        return rc;
    if (!t)
        return mimic_error(MIMIC_EARG, "%s: tensor '%s' is NULL", fn, name);
    if ((unsigned)t->dtype >= MIMIC_DTYPE_COUNT || t->ndim < 0 || t->ndim > MIMIC_MAX_DIMS)
        return mimic_error(MIMIC_EARG, "%s: '%s' is not a valid tensor", fn, name);
    int64_t numel = mimic_numel(t);
    /* Write from contiguous memory: the tensor itself when it is, else a
     * packed copy (non-contiguous views, broadcast strides). mimic_copy does
     * not record autograd history, so a parameter is copied as plain data. */
    mimic_tensor *packed = NULL;
    const void *data = NULL;
    if (numel > 0) {
        if (mimic_is_contiguous(t)) {
            data = mimic_data(t);
        } else {
            packed = mimic_empty(t->ndim, t->shape, t->dtype);
            if (!packed)
                return MIMIC_ENOMEM;
            if ((rc = mimic_copy(packed, t)) != MIMIC_OK) {
                mimic_tensor_free(packed);
                return rc;
            }
            data = mimic_data(packed);
        }
    }
    const char *base;
    hid_t g = H5I_INVALID_HID, ftype = H5I_INVALID_HID, mtype = H5I_INVALID_HID;
    hid_t space = H5I_INVALID_HID, dcpl = H5I_INVALID_HID, ds = H5I_INVALID_HID;
    if ((rc = open_new_entry(w, fn, name, &g, &base)) != MIMIC_OK)
        goto done;
    hsize_t dims[MIMIC_MAX_DIMS];
    for (int d = 0; d < t->ndim; d++)
        dims[d] = (hsize_t)t->shape[d];
    space = t->ndim == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(t->ndim, dims, NULL);
    dcpl = object_create_plist(H5P_DATASET_CREATE);
    if (space < 0 || dcpl < 0 || dtype_types(t->dtype, &ftype, &mtype) != MIMIC_OK) {
        rc = fail_h5(MIMIC_EINTERNAL, "%s: cannot describe '%s' to HDF5", fn, name);
        goto done;
    }
    ds = H5Dcreate2(g, base, ftype, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (ds < 0) {
        rc = fail_h5(MIMIC_EIO, "%s: cannot create dataset '%s' in '%s'", fn, name, w->tmp);
        goto done;
    }
    if (numel > 0 && H5Dwrite(ds, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) {
        rc = fail_h5(MIMIC_EIO, "%s: cannot write '%s' to '%s'", fn, name, w->tmp);
        goto done;
    }
    rc = MIMIC_OK;
done:
    close_id(&ds);
    close_id(&dcpl);
    close_id(&space);
    close_id(&ftype);
    close_id(&mtype);
    close_id(&g);
    mimic_tensor_free(packed);
    return rc;
}

int mimic_dict_put_tensor(mimic_dict_writer *w, const char *name, const mimic_tensor *t)
{
    quiet q;
    quiet_begin(&q);
    int rc = writer_rc(w, put_tensor(w, name, t));
    quiet_end(&q);
    return rc;
}

/* A scalar attribute of file type ftype, written from buf of memory type mtype
 * (the function closes both types). */
static int put_attr(mimic_dict_writer *w, const char *fn, const char *name, hid_t ftype, hid_t mtype, const void *buf)
{
    int rc = writer_check(w, fn, name);
    const char *base;
    hid_t g = H5I_INVALID_HID, space = H5I_INVALID_HID, a = H5I_INVALID_HID;
    if (rc != MIMIC_OK)
        goto done;
    if (ftype < 0 || mtype < 0) {
        rc = fail_h5(MIMIC_EINTERNAL, "%s: cannot describe '%s' to HDF5", fn, name);
        goto done;
    }
    if ((rc = open_new_entry(w, fn, name, &g, &base)) != MIMIC_OK)
        goto done;
    if ((space = H5Screate(H5S_SCALAR)) < 0 || (a = H5Acreate2(g, base, ftype, space, H5P_DEFAULT, H5P_DEFAULT)) < 0) {
        rc = fail_h5(MIMIC_EIO, "%s: cannot create '%s' in '%s'", fn, name, w->tmp);
        goto done;
    }
    if (H5Awrite(a, mtype, buf) < 0) {
        rc = fail_h5(MIMIC_EIO, "%s: cannot write '%s' to '%s'", fn, name, w->tmp);
        goto done;
    }
    rc = MIMIC_OK;
done:
    close_id(&a);
    close_id(&space);
    close_id(&g);
    close_id(&ftype);
    close_id(&mtype);
    return writer_rc(w, rc);
}

int mimic_dict_put_int(mimic_dict_writer *w, const char *name, int64_t v)
{
    quiet q;
    quiet_begin(&q);
    int rc = put_attr(w, "save", name, H5Tcopy(H5T_STD_I64LE), H5Tcopy(H5T_NATIVE_INT64), &v);
    quiet_end(&q);
    return rc;
}

int mimic_dict_put_number(mimic_dict_writer *w, const char *name, double v)
{
    quiet q;
    quiet_begin(&q);
    int rc = put_attr(w, "save", name, H5Tcopy(H5T_IEEE_F64LE), H5Tcopy(H5T_NATIVE_DOUBLE), &v);
    quiet_end(&q);
    return rc;
}

int mimic_dict_put_bool(mimic_dict_writer *w, const char *name, bool v)
{
    quiet q;
    quiet_begin(&q);
    int8_t b = v ? 1 : 0;
    int rc = put_attr(w, "save", name, bool_type(), bool_type(), &b);
    quiet_end(&q);
    return rc;
}

/* Strings without NUL bytes: NUL-terminated fixed-length strings, what C, h5py
 * and h5dump expect. Strings with NUL bytes: an opaque type tagged "bytes",
 * since HDF5's string types cannot keep a trailing NUL. */
#define BYTES_TAG "bytes"

int mimic_dict_put_string(mimic_dict_writer *w, const char *name, const char *s, size_t len)
{
    static const char fn[] = "save";
    quiet q;
    quiet_begin(&q);
    int rc;
    if (!s && len) {
        rc = writer_rc(w, mimic_error(MIMIC_EARG, "%s: string '%s' is NULL", fn, name ? name : "?"));
    } else if (len && memchr(s, '\0', len)) {
        hid_t ft = H5Tcreate(H5T_OPAQUE, len);
        if (ft >= 0 && H5Tset_tag(ft, BYTES_TAG) < 0)
            close_id(&ft);
        rc = put_attr(w, fn, name, ft, ft >= 0 ? H5Tcopy(ft) : H5I_INVALID_HID, s);
    } else {
        char *buf = dup_mem(len ? s : "", len);
        hid_t ft = H5Tcopy(H5T_C_S1);
        if (ft >= 0 && (H5Tset_size(ft, len + 1) < 0 || H5Tset_strpad(ft, H5T_STR_NULLTERM) < 0))
            close_id(&ft);
        if (!buf) {
            close_id(&ft);
            rc = writer_rc(w, MIMIC_ENOMEM);
        } else {
            rc = put_attr(w, fn, name, ft, ft >= 0 ? H5Tcopy(ft) : H5I_INVALID_HID, buf);
        }
        mimic_free(buf);
    }
    quiet_end(&q);
    return rc;
}

int mimic_dict_put_group(mimic_dict_writer *w, const char *name)
{
    static const char fn[] = "save";
    quiet q;
    quiet_begin(&q);
    int rc = writer_check(w, fn, name);
    if (rc == MIMIC_OK) {
        const char *base;
        hid_t g = open_parent(w, fn, name, true, &base);
        rc = g < 0 ? (mimic_errcode() ? mimic_errcode() : MIMIC_EIO) : MIMIC_OK;
        close_id(&g);
    }
    rc = writer_rc(w, rc);
    quiet_end(&q);
    return rc;
}

static void fsync_dir_of(const char *path)
{
    /* The rename is durable only once the directory is synced. Best effort:
     * some file systems refuse fsync on a directory (EINVAL), and the rename
     * has already happened, so a failure here loses nothing but durability
     * against a power cut. */
    const char *slash = strrchr(path, '/');
    char dir[4096];
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == path)
        snprintf(dir, sizeof dir, "/");
    else if ((size_t)(slash - path) < sizeof dir)
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    else
        return;
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

/* Bob Jenkins' lookup3 hashlittle() (public domain), the checksum of HDF5
 * metadata (H5_checksum_lookup3). */
#define ROT32(x, k) (((x) << (k)) | ((x) >> (32 - (k))))
static uint32_t lookup3(const uint8_t *k, size_t n, uint32_t init)
{
    uint32_t a, b, c;
    a = b = c = 0xdeadbeefu + (uint32_t)n + init;
    while (n > 12) {
        a += k[0] | (uint32_t)k[1] << 8 | (uint32_t)k[2] << 16 | (uint32_t)k[3] << 24;
        b += k[4] | (uint32_t)k[5] << 8 | (uint32_t)k[6] << 16 | (uint32_t)k[7] << 24;
        c += k[8] | (uint32_t)k[9] << 8 | (uint32_t)k[10] << 16 | (uint32_t)k[11] << 24;
        a -= c; a ^= ROT32(c, 4); c += b;
        b -= a; b ^= ROT32(a, 6); a += c;
        c -= b; c ^= ROT32(b, 8); b += a;
        a -= c; a ^= ROT32(c, 16); c += b;
        b -= a; b ^= ROT32(a, 19); a += c;
        c -= b; c ^= ROT32(b, 4); b += a;
        n -= 12;
        k += 12;
    }
    if (n == 0)
        return c;
    uint8_t t[12] = {0};
    memcpy(t, k, n);
    a += t[0] | (uint32_t)t[1] << 8 | (uint32_t)t[2] << 16 | (uint32_t)t[3] << 24;
    b += t[4] | (uint32_t)t[5] << 8 | (uint32_t)t[6] << 16 | (uint32_t)t[7] << 24;
    c += t[8] | (uint32_t)t[9] << 8 | (uint32_t)t[10] << 16 | (uint32_t)t[11] << 24;
    c ^= b; c -= ROT32(b, 14);
    a ^= c; a -= ROT32(c, 11);
    b ^= a; b -= ROT32(a, 25);
    c ^= b; c -= ROT32(b, 16);
    a ^= c; a -= ROT32(c, 4);
    b ^= a; b -= ROT32(a, 14);
    c ^= b; c -= ROT32(b, 24);
    return c;
}

/* H5Fget_file_image clears the "open for writing" flag in the copy's
 * superblock but, before HDF5 1.14.7 / 2.0 (HDFGroup/hdf5#1915, fixed by
 * #5489), not the checksum over it: the image would not open. Superblocks of
 * version 2 and 3 (ours: the 1.8 format at byte 0) end in a lookup3 checksum
 * over their fixed part, which is recomputed here; with a fixed HDF5 this
 * rewrites the same value. */
static bool fix_superblock_checksum(uint8_t *img, size_t size)
{
    static const uint8_t sig[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
    if (size < 12 || memcmp(img, sig, 8) != 0)
        return false;
    if (img[8] < 2)
        return true; /* versions 0 and 1 carry no checksum */
    size_t len = 12 + 4 * (size_t)img[9]; /* 4 addresses of img[9] bytes each */
    if (img[8] > 3 || size < len + 4)
        return false;
    uint32_t sum = lookup3(img, len, 0);
    for (int i = 0; i < 4; i++)
        img[len + (size_t)i] = (uint8_t)(sum >> (8 * i));
    return true;
}

static int write_all(int fd, const char *buf, size_t n)
{
    while (n > 0) {
        ssize_t k = write(fd, buf, n > ((size_t)1 << 30) ? (size_t)1 << 30 : n);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        buf += k;
        n -= (size_t)k;
    }
    return 0;
}

int mimic_dict_commit(mimic_dict_writer *w)
{
    if (!w)
        return mimic_error(MIMIC_EARG, "mimic_dict_commit: writer is NULL");
    quiet q;
    quiet_begin(&q);
    int rc = MIMIC_OK;
    char *image = NULL;
    if (w->spoiled) {
        rc = mimic_error(MIMIC_ESTATE, "cannot save '%s': an earlier write failed; the file was left unchanged", w->path);
        goto fail;
    }
    /* The image flushes HDF5's metadata; closing the in-memory file after it
     * writes nothing anywhere. */
    ssize_t size = H5Fflush(w->file, H5F_SCOPE_GLOBAL) < 0 ? -1 : H5Fget_file_image(w->file, NULL, 0);
    if (size <= 0) {
        rc = fail_h5(MIMIC_EIO, "cannot save '%s': HDF5 could not finish the file; '%s' was left unchanged", w->path,
                     w->path);
        goto fail;
    }
    if (!(image = mimic_malloc((size_t)size))) {
        rc = mimic_error(MIMIC_ENOMEM, "cannot save '%s': out of memory for the %lld-byte file; '%s' was left unchanged",
                         w->path, (long long)size, w->path);
        goto fail;
    }
    if (H5Fget_file_image(w->file, image, (size_t)size) != size) {
        rc = fail_h5(MIMIC_EIO, "cannot save '%s': HDF5 could not finish the file; '%s' was left unchanged", w->path,
                     w->path);
        goto fail;
    }
    close_id(&w->file);
    if (!fix_superblock_checksum((uint8_t *)image, (size_t)size)) {
        rc = mimic_error(MIMIC_EINTERNAL, "cannot save '%s': HDF5 produced a file image mimic does not recognise; '%s' "
                                          "was left unchanged", w->path, w->path);
        goto fail;
    }
    /* close() is checked too: network file systems report write errors there. */
    int fd = w->fd;
    w->fd = -1;
    const char *step = write_all(fd, image, (size_t)size) ? "writing" : fsync(fd) ? "fsync of" : NULL;
    int err = errno;
    if (close(fd) != 0 && !step) {
        step = "closing";
        err = errno;
    }
    if (step) {
        unlink(w->tmp);
        rc = mimic_error(MIMIC_EIO, "cannot save '%s': %s '%s' failed (%s); '%s' was left unchanged", w->path, step,
                         w->tmp, strerror(err), w->path);
        goto fail;
    }
    /* Read the new file's structure back before it replaces anything: the
     * file image above depends on HDF5 internals (see fix_superblock_checksum). */
    mimic_dict *check = dict_open(w->tmp);
    if (!check) {
        char why[512];
        snprintf(why, sizeof why, "%s", mimic_errmsg());
        int code = mimic_errcode() == MIMIC_ENOMEM ? MIMIC_ENOMEM : MIMIC_EINTERNAL;
        unlink(w->tmp);
        rc = mimic_error(code, "cannot save '%s': the written file does not read back (%s); '%s' was left "
                                          "unchanged", w->path, why, w->path);
        goto fail;
    }
    dict_free(check);
    if (rename(w->tmp, w->path) != 0) {
        err = errno;
        unlink(w->tmp);
        rc = mimic_error(MIMIC_EIO, "cannot save '%s': renaming '%s' over it failed (%s); '%s' was left unchanged",
                         w->path, w->tmp, strerror(err), w->path);
        goto fail;
    }
    fsync_dir_of(w->path);
    mimic_free(image);
    writer_free(w, false);
    quiet_end(&q);
    return MIMIC_OK;
fail:
    mimic_free(image);
    writer_free(w, true);
    quiet_end(&q);
    return rc;
}

void mimic_dict_discard(mimic_dict_writer *w)
{
    if (!w)
        return;
    quiet q;
    quiet_begin(&q);
    writer_free(w, true);
    quiet_end(&q);
}

/* --- reading ----------------------------------------------------------------------------- */
struct mimic_dict {
    hid_t file;
    char *path;
    mimic_dict_entry *e;
    int64_t n, cap;
};

typedef struct walk_ctx {
    mimic_dict *d;
    const char *prefix; /* "" or "a/b/" */
    int depth;
    int rc;             /* a mimic error recorded inside a callback */
} walk_ctx;

static mimic_dict_entry *add_entry(walk_ctx *c, const char *base, mimic_dict_kind kind)
{
    mimic_dict *d = c->d;
    if (d->n == d->cap) {
        int64_t cap = d->cap ? 2 * d->cap : 32;
        mimic_dict_entry *e = mimic_realloc(d->e, (size_t)cap * sizeof *e);
        if (!e) {
            c->rc = MIMIC_ENOMEM;
            return NULL;
        }
        d->e = e;
        d->cap = cap;
    }
    mimic_dict_entry *e = &d->e[d->n];
    memset(e, 0, sizeof *e);
    if (!(e->name = concat3(c->prefix, base, ""))) {
        c->rc = MIMIC_ENOMEM;
        return NULL;
    }
    e->kind = kind;
    d->n++;
    return e;
}

static int set_unsupported(walk_ctx *c, mimic_dict_entry *e, const char *reason)
{
    e->kind = MIMIC_DICT_UNSUPPORTED;
    if (!(e->reason = dup_str(reason)))
        return c->rc = MIMIC_ENOMEM;
    return MIMIC_OK;
}

/* Reads a string attribute: fixed-length (NULL-terminated, NUL- or
 * space-padded) or variable-length, as other tools write them. */
static int read_string_attr(hid_t a, hid_t t, mimic_dict_entry *e, walk_ctx *c)
{
    hid_t mt = H5Tcopy(H5T_C_S1);
    int rc = MIMIC_OK;
    if (mt < 0)
        return -1;
    htri_t vl = H5Tis_variable_str(t);
    if (vl > 0) {
        char *p = NULL;
        if (H5Tset_size(mt, H5T_VARIABLE) < 0 || H5Aread(a, mt, &p) < 0) {
            rc = -1;
        } else {
            e->len = p ? strlen(p) : 0;
            if (!(e->s = dup_mem(p ? p : "", e->len)))
                rc = c->rc = MIMIC_ENOMEM;
            if (p)
                H5free_memory(p);
        }
    } else if (vl == 0) {
        size_t size = H5Tget_size(t);
        H5T_str_t pad = H5Tget_strpad(t);
        char *buf = size ? mimic_malloc(size + 1) : NULL;
        if (!buf) {
            rc = c->rc = MIMIC_ENOMEM;
        } else if (H5Tset_size(mt, size) < 0 || H5Tset_strpad(mt, pad) < 0 || H5Aread(a, mt, buf) < 0) {
            mimic_free(buf);
            rc = -1;
        } else {
            size_t len = size;
            if (pad == H5T_STR_NULLTERM || pad == H5T_STR_NULLPAD)
                len = strnlen(buf, size);
            else
                while (len > 0 && buf[len - 1] == ' ')
                    len--;
            buf[len] = '\0';
            e->s = buf;
            e->len = len;
        }
    } else {
        rc = -1;
    }
    H5Tclose(mt);
    return rc;
}

/* Classifies and reads one attribute (a scalar entry). Returns < 0 with
 * c->rc == 0 for an HDF5 failure, with c->rc set for a mimic error. */
static int read_attr(hid_t a, mimic_dict_entry *e, walk_ctx *c)
{
    hid_t t = H5Aget_type(a), s = H5Aget_space(a);
    int rc = -1;
    char desc[64];
    if (t < 0 || s < 0)
        goto done;
    H5S_class_t sc = H5Sget_simple_extent_type(s);
    if (sc != H5S_SCALAR) {
        hssize_t np = H5Sget_simple_extent_npoints(s);
        type_desc(t, desc, sizeof desc);
        char why[128];
        snprintf(why, sizeof why, "%lld-element %s array attribute", (long long)(np < 0 ? 0 : np), desc);
        rc = set_unsupported(c, e, why);
        goto done;
    }
    H5T_class_t cls = H5Tget_class(t);
    size_t size = H5Tget_size(t);
    if (cls == H5T_INTEGER && size <= 8) {
        if (H5Tget_sign(t) == H5T_SGN_NONE && size == 8) {
            uint64_t u;
            if (H5Aread(a, H5T_NATIVE_UINT64, &u) < 0)
                goto done;
            if (u > (uint64_t)INT64_MAX) {
                rc = set_unsupported(c, e, "uint64 attribute beyond the int64 range");
                goto done;
            }
            e->i = (int64_t)u;
        } else if (H5Aread(a, H5T_NATIVE_INT64, &e->i) < 0) {
            goto done;
        }
        e->kind = MIMIC_DICT_INT;
        rc = 0;
    } else if (cls == H5T_FLOAT && size <= 8) {
        if (H5Aread(a, H5T_NATIVE_DOUBLE, &e->d) < 0)
            goto done;
        e->kind = MIMIC_DICT_NUMBER;
        rc = 0;
    } else if (is_bool_enum(t)) {
        hid_t mt = bool_type();
        int8_t v = -1;
        herr_t r = mt < 0 ? -1 : H5Aread(a, mt, &v);
        if (mt >= 0)
            H5Tclose(mt);
        if (r < 0)
            goto done;
        if (v != 0 && v != 1) {
            rc = set_unsupported(c, e, "bool attribute with a value other than FALSE and TRUE");
            goto done;
        }
        e->kind = MIMIC_DICT_BOOL;
        e->b = v == 1;
        rc = 0;
    } else if (cls == H5T_STRING) {
        e->kind = MIMIC_DICT_STRING;
        rc = read_string_attr(a, t, e, c);
    } else if (cls == H5T_OPAQUE) {
        char *tag = H5Tget_tag(t);
        bool bytes = tag && strcmp(tag, BYTES_TAG) == 0;
        if (tag)
            H5free_memory(tag);
        if (!bytes) {
            rc = set_unsupported(c, e, "opaque attribute");
            goto done;
        }
        char *buf = mimic_malloc(size + 1);
        if (!buf) {
            rc = c->rc = MIMIC_ENOMEM;
            goto done;
        }
        if (H5Aread(a, t, buf) < 0) {
            mimic_free(buf);
            goto done;
        }
        buf[size] = '\0';
        e->kind = MIMIC_DICT_STRING;
        e->s = buf;
        e->len = size;
        rc = 0;
    } else {
        type_desc(t, desc, sizeof desc);
        char why[96];
        snprintf(why, sizeof why, "%s attribute", desc);
        rc = set_unsupported(c, e, why);
    }
done:
    if (t >= 0)
        H5Tclose(t);
    if (s >= 0)
        H5Sclose(s);
    return rc;
}

static herr_t attr_cb(hid_t loc, const char *name, const H5A_info_t *info, void *ud)
{
    (void)info;
    walk_ctx *c = ud;
    if (strchr(name, '/') || strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
        c->rc = mimic_error(MIMIC_EIO, "cannot read '%s': attribute '%s' of '/%s' has a name mimic cannot use",
                            c->d->path, name, c->prefix);
        return -1;
    }
    mimic_dict_entry *e = add_entry(c, name, MIMIC_DICT_UNSUPPORTED);
    if (!e)
        return -1;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    if (a < 0)
        return -1;
    int rc = read_attr(a, e, c);
    H5Aclose(a);
    return rc < 0 ? -1 : 0;
}

/* Records what a dataset holds (dtype, shape) or why mimic cannot read it. */
static int describe_dataset(hid_t ds, mimic_dict_entry *e, walk_ctx *c)
{
    hid_t t = H5Dget_type(ds), s = H5Dget_space(ds);
    int rc = -1;
    char desc[64], why[160];
    if (t < 0 || s < 0)
        goto done;
    mimic_dtype dt = MIMIC_F32;
    bool known = dataset_dtype(t, &dt, desc, sizeof desc);
    H5S_class_t sc = H5Sget_simple_extent_type(s);
    int ndim = 0;
    hsize_t dims[H5S_MAX_RANK];
    if (sc == H5S_SIMPLE) {
        ndim = H5Sget_simple_extent_ndims(s);
        if (ndim < 0 || H5Sget_simple_extent_dims(s, dims, NULL) < 0)
            goto done;
    } else if (sc != H5S_SCALAR) {
        rc = set_unsupported(c, e, "dataset with an empty (null) dataspace");
        goto done;
    }
    if (!known) {
        snprintf(why, sizeof why, "%s dataset", desc);
        rc = set_unsupported(c, e, why);
        goto done;
    }
    if (ndim > MIMIC_MAX_DIMS) {
        snprintf(why, sizeof why, "%d-dim dataset (mimic tensors have at most %d dims)", ndim, MIMIC_MAX_DIMS);
        rc = set_unsupported(c, e, why);
        goto done;
    }
    int64_t numel;
    size_t nbytes;
    for (int d = 0; d < ndim; d++)
        e->shape[d] = dims[d] > (hsize_t)INT64_MAX ? -1 : (int64_t)dims[d]; /* -1: an overflow below */
    if (!shape_size(ndim, e->shape, mimic_dtype_size(dt), &numel, &nbytes)) {
        rc = set_unsupported(c, e, "dataset whose size overflows this machine's address range");
        goto done;
    }
    e->kind = MIMIC_DICT_TENSOR;
    e->dtype = dt;
    e->ndim = ndim;
    rc = 0;
done:
    if (t >= 0)
        H5Tclose(t);
    if (s >= 0)
        H5Sclose(s);
    return rc;
}

static int walk_group(walk_ctx *c, hid_t g);

static herr_t link_cb(hid_t g, const char *name, const H5L_info_t *info, void *ud)
{
    walk_ctx *c = ud;
    if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
        c->rc = mimic_error(MIMIC_EIO, "cannot read '%s': '/%s' holds a link named '%s'", c->d->path, c->prefix, name);
        return -1;
    }
    mimic_dict_entry *e = add_entry(c, name, MIMIC_DICT_UNSUPPORTED);
    if (!e)
        return -1;
    if (info->type != H5L_TYPE_HARD) {
        /* Soft and external links are not followed: an external link would
         * make reading a checkpoint open some other file. */
        return set_unsupported(c, e, info->type == H5L_TYPE_SOFT ? "soft link" : "external or user-defined link") ? -1 : 0;
    }
    hid_t o = H5Oopen(g, name, H5P_DEFAULT);
    if (o < 0)
        return -1;
    int rc = -1;
    switch (H5Iget_type(o)) {
    case H5I_GROUP: {
        e->kind = MIMIC_DICT_GROUP;
        char *prefix = concat3(c->prefix, name, "/");
        if (!prefix) {
            c->rc = MIMIC_ENOMEM;
            break;
        }
        walk_ctx sub = {c->d, prefix, c->depth + 1, 0};
        rc = walk_group(&sub, o);
        c->rc = sub.rc;
        mimic_free(prefix);
        break;
    }
    case H5I_DATASET: rc = describe_dataset(o, e, c); break;
    case H5I_DATATYPE: rc = set_unsupported(c, e, "named datatype") ? -1 : 0; break;
    default: rc = set_unsupported(c, e, "object of unknown kind") ? -1 : 0; break;
    }
    H5Oclose(o);
    return rc < 0 ? -1 : 0;
}

static int walk_group(walk_ctx *c, hid_t g)
{
    if (c->depth > MAX_DEPTH) {
        c->rc = mimic_error(MIMIC_EIO, "cannot read '%s': groups nest deeper than %d levels at '%s' (a cycle of links?)",
                            c->d->path, MAX_DEPTH, c->prefix);
        return -1;
    }
    hsize_t idx = 0;
    if (H5Aiterate2(g, H5_INDEX_NAME, H5_ITER_INC, &idx, attr_cb, c) < 0)
        return -1;
    idx = 0;
    if (H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, &idx, link_cb, c) < 0)
        return -1;
    return 0;
}

static int entry_cmp(const void *a, const void *b)
{
    return strcmp(((const mimic_dict_entry *)a)->name, ((const mimic_dict_entry *)b)->name);
}

static void dict_free(mimic_dict *d)
{
    for (int64_t i = 0; i < d->n; i++) {
        mimic_free((void *)d->e[i].name);
        mimic_free((void *)d->e[i].s);
        mimic_free((void *)d->e[i].reason);
    }
    mimic_free(d->e);
    close_id(&d->file);
    mimic_free(d->path);
    mimic_free(d);
}

static mimic_dict *dict_open(const char *path)
{
    if (!path || !*path) {
        mimic_error(MIMIC_EARG, "mimic_dict_open: path is %s", path ? "empty" : "NULL");
        return NULL;
    }
    struct stat st;
    if (stat(path, &st) != 0) {
        if (errno == ENOENT)
            mimic_error(MIMIC_EIO, "cannot open '%s': no such file", path);
        else
            mimic_error(MIMIC_EIO, "cannot open '%s': %s", path, strerror(errno));
        return NULL;
    }
    if (S_ISDIR(st.st_mode)) {
        mimic_error(MIMIC_EIO, "cannot open '%s': it is a directory", path);
        return NULL;
    }
    int sig = has_hdf5_signature(path, (int64_t)st.st_size);
    if (sig < 0) {
        mimic_error(MIMIC_EIO, "cannot open '%s': %s", path, strerror(errno));
        return NULL;
    }
    if (sig == 0) {
        mimic_error(MIMIC_EIO, "cannot open '%s': not an HDF5 file (%lld bytes without an HDF5 signature)", path,
                    (long long)st.st_size);
        return NULL;
    }
    mimic_dict *d = mimic_calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->file = H5I_INVALID_HID;
    if (!(d->path = dup_str(path))) {
        dict_free(d);
        return NULL;
    }
    hid_t fapl = file_access_plist(), root = H5I_INVALID_HID;
    h5err e;
    if (fapl >= 0)
        d->file = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    h5_collect(&e); /* now: every HDF5 call clears the error stack */
    close_id(&fapl);
    if (d->file < 0) {
        if (e.truncated)
            mimic_error(MIMIC_EIO, "cannot open '%s': the file is truncated (%lld bytes; an interrupted copy or write?) "
                                   "(HDF5: %s)", path, (long long)st.st_size, e.inner);
        else
            mimic_error(MIMIC_EIO, "cannot open '%s': corrupt HDF5 file (HDF5: %s)", path,
                        e.inner[0] ? e.inner : "no details");
        dict_free(d);
        return NULL;
    }
    walk_ctx c = {d, "", 0, 0};
    root = H5Gopen2(d->file, "/", H5P_DEFAULT);
    if (root < 0 || walk_group(&c, root) < 0) {
        if (!c.rc)
            fail_h5(MIMIC_EIO, "cannot read '%s': corrupt HDF5 file", path);
        close_id(&root);
        dict_free(d);
        return NULL;
    }
    close_id(&root);
    if (d->n > 1)
        qsort(d->e, (size_t)d->n, sizeof *d->e, entry_cmp);
    for (int64_t i = 1; i < d->n; i++)
        if (strcmp(d->e[i - 1].name, d->e[i].name) == 0) {
            /* HDF5 allows an attribute and a link of one name in a group;
             * a dictionary cannot hold both. */
            mimic_error(MIMIC_EIO, "cannot read '%s': '%s' is both an attribute and an object", path, d->e[i].name);
            dict_free(d);
            return NULL;
        }
    return d;
}

mimic_dict *mimic_dict_open(const char *path)
{
    quiet q;
    quiet_begin(&q);
    mimic_dict *d = dict_open(path);
    quiet_end(&q);
    return d;
}

void mimic_dict_close(mimic_dict *d)
{
    if (!d)
        return;
    quiet q;
    quiet_begin(&q);
    dict_free(d);
    quiet_end(&q);
}

int64_t mimic_dict_count(const mimic_dict *d) { return d ? d->n : 0; }

const mimic_dict_entry *mimic_dict_entry_at(const mimic_dict *d, int64_t i)
{
    return d && i >= 0 && i < d->n ? &d->e[i] : NULL;
}

const mimic_dict_entry *mimic_dict_find(const mimic_dict *d, const char *name)
{
    if (!d || !name || d->n == 0)
        return NULL;
    mimic_dict_entry key = {.name = name};
    return bsearch(&key, d->e, (size_t)d->n, sizeof *d->e, entry_cmp);
}

const mimic_dict_entry *mimic_dict_lookup(const mimic_dict *d, const char *name)
{
    if (!d)
        return mimic_error(MIMIC_EARG, "mimic_dict_lookup: dict is NULL"), NULL;
    const mimic_dict_entry *e = mimic_dict_find(d, name);
    if (e)
        return e;
    /* List what exists, as much as fits in an error message. */
    char list[640];
    size_t k = 0;
    int64_t shown = 0;
    list[0] = '\0';
    for (int64_t i = 0; i < d->n; i++) {
        if (d->e[i].kind == MIMIC_DICT_GROUP)
            continue;
        size_t need = strlen(d->e[i].name) + 2;
        if (k + need + 1 >= sizeof list - 24)
            break;
        k += (size_t)snprintf(list + k, sizeof list - k, "%s%s", shown ? ", " : "", d->e[i].name);
        shown++;
    }
    int64_t total = 0;
    for (int64_t i = 0; i < d->n; i++)
        total += d->e[i].kind != MIMIC_DICT_GROUP;
    if (total > shown)
        snprintf(list + k, sizeof list - k, "%s... (%lld more)", shown ? ", " : "", (long long)(total - shown));
    if (total == 0)
        mimic_error(MIMIC_EIO, "'%s' has no entry '%s'; the file holds no entries", d->path, name ? name : "(null)");
    else
        mimic_error(MIMIC_EIO, "'%s' has no entry '%s'; it has: %s", d->path, name ? name : "(null)", list);
    return NULL;
}

const char *mimic_dict_kind_name(mimic_dict_kind k)
{
    switch (k) {
    case MIMIC_DICT_TENSOR: return "tensor";
    case MIMIC_DICT_GROUP: return "group";
    case MIMIC_DICT_INT: return "int";
    case MIMIC_DICT_NUMBER: return "number";
    case MIMIC_DICT_STRING: return "string";
    case MIMIC_DICT_BOOL: return "bool";
    case MIMIC_DICT_UNSUPPORTED: return "unsupported";
    }
    return "?";
}

static const char *article(mimic_dict_kind k) { return k == MIMIC_DICT_INT ? "an" : "a"; }

/* The entry `name`, which must be of kind `want` (or, for numbers, an int). */
static const mimic_dict_entry *lookup_kind(const mimic_dict *d, const char *name, mimic_dict_kind want)
{
    const mimic_dict_entry *e = mimic_dict_lookup(d, name);
    if (!e)
        return NULL;
    if (e->kind == want || (want == MIMIC_DICT_NUMBER && e->kind == MIMIC_DICT_INT))
        return e;
    if (e->kind == MIMIC_DICT_UNSUPPORTED)
        mimic_error(MIMIC_EDTYPE, "'%s' in '%s' is an unsupported %s; mimic reads float32, float64, int64 and bool tensors "
                                  "and scalar numbers, strings and booleans",
                    name, d->path, e->reason);
    else
        mimic_error(MIMIC_EDTYPE, "'%s' in '%s' is %s %s, not %s %s", name, d->path, article(e->kind),
                    mimic_dict_kind_name(e->kind), article(want), mimic_dict_kind_name(want));
    return NULL;
}

static mimic_tensor *get_tensor(mimic_dict *d, const char *name)
{
    const mimic_dict_entry *e = lookup_kind(d, name, MIMIC_DICT_TENSOR);
    if (!e)
        return NULL;
    mimic_tensor *t = NULL, *out = NULL;
    hid_t ds = H5Dopen2(d->file, name, H5P_DEFAULT), ft = H5I_INVALID_HID, mt = H5I_INVALID_HID;
    hid_t dcpl = H5I_INVALID_HID;
    char shp[160];
    mimic_shape_str(e->ndim, e->shape, shp, sizeof shp);
    if (ds < 0 || (ft = H5Dget_type(ds)) < 0 || (dcpl = H5Dget_create_plist(ds)) < 0) {
        fail_h5(MIMIC_EIO, "cannot read '%s' from '%s': corrupt file", name, d->path);
        goto done;
    }
    int64_t numel = 0;
    size_t nbytes = 0;
    shape_size(e->ndim, e->shape, mimic_dtype_size(e->dtype), &numel, &nbytes); /* checked at open */
    if (numel > 0) {
        /* Before allocating: an uncompressed dataset must hold exactly its
         * bytes, within the file. A corrupt header could otherwise claim
         * terabytes, or point past the end of a cut-off file. */
        H5D_layout_t layout = H5Pget_layout(dcpl);
        int nfilters = H5Pget_nfilters(dcpl);
        hsize_t stored = H5Dget_storage_size(ds), want = (hsize_t)numel * H5Tget_size(ft);
        if ((layout == H5D_CONTIGUOUS || layout == H5D_COMPACT) && nfilters == 0) {
            if (stored == 0) {
                mimic_error(MIMIC_EIO, "cannot read '%s' from '%s': the dataset (%s %s) holds no data; it was created "
                                       "but never written", name, d->path, mimic_dtype_name(e->dtype), shp);
                goto done;
            }
            if (stored != want) {
                mimic_error(MIMIC_EIO, "cannot read '%s' from '%s': corrupt file: the dataset (%s %s) holds %llu bytes "
                                       "where its shape needs %llu", name, d->path, mimic_dtype_name(e->dtype), shp,
                            (unsigned long long)stored, (unsigned long long)want);
                goto done;
            }
            haddr_t off = layout == H5D_CONTIGUOUS ? H5Dget_offset(ds) : HADDR_UNDEF;
            hsize_t fsize = 0;
            if (off != HADDR_UNDEF && H5Fget_filesize(d->file, &fsize) >= 0 && (off > fsize || want > fsize - off)) {
                mimic_error(MIMIC_EIO, "cannot read '%s' from '%s': the file is truncated: the dataset's data ends at "
                                       "byte %llu, the file has %llu", name, d->path,
                            (unsigned long long)(off + want), (unsigned long long)fsize);
                goto done;
            }
        }
    }
    if (!(t = mimic_empty(e->ndim, e->shape, e->dtype)))
        goto done;
    hid_t unused = H5I_INVALID_HID;
    if (dtype_types(e->dtype, &unused, &mt) != MIMIC_OK) {
        fail_h5(MIMIC_EINTERNAL, "cannot read '%s': HDF5 types failed", name);
        goto done;
    }
    close_id(&unused);
    if (numel > 0 && H5Dread(ds, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, mimic_data(t)) < 0) {
        h5err he;
        h5_collect(&he);
        mimic_error(MIMIC_EIO, "cannot read '%s' from '%s': %s (HDF5: %s)", name, d->path,
                    he.truncated ? "the file is truncated" : "corrupt data", he.inner[0] ? he.inner : "no details");
        goto done;
    }
    if (e->dtype == MIMIC_BOOL) {
        /* Values outside the enum convert to 0xff: a corrupt file, not a bool. */
        const uint8_t *b = mimic_data(t);
        for (int64_t i = 0; i < numel; i++)
            if (b[i] > 1) {
                mimic_error(MIMIC_EIO, "cannot read '%s' from '%s': corrupt bool data (element %lld is neither FALSE "
                                       "nor TRUE)", name, d->path, (long long)i);
                goto done;
            }
    }
    out = t;
    t = NULL;
done:
    mimic_tensor_free(t);
    close_id(&mt);
    close_id(&ft);
    close_id(&dcpl);
    close_id(&ds);
    return out;
}

mimic_tensor *mimic_dict_get_tensor(mimic_dict *d, const char *name)
{
    quiet q;
    quiet_begin(&q);
    mimic_tensor *t = get_tensor(d, name);
    quiet_end(&q);
    return t;
}

int mimic_dict_read_into(mimic_dict *d, const char *name, mimic_tensor *dst)
{
    if (!dst)
        return mimic_error(MIMIC_EARG, "mimic_dict_read_into: destination tensor is NULL");
    const mimic_dict_entry *e = lookup_kind(d, name, MIMIC_DICT_TENSOR);
    if (!e)
        return mimic_errcode();
    char fs[160], ts[160];
    if (e->dtype != dst->dtype)
        return mimic_error(MIMIC_EDTYPE, "cannot read '%s' from '%s': it is %s %s in the file but the tensor is %s %s",
                           name, d->path, mimic_dtype_name(e->dtype), mimic_shape_str(e->ndim, e->shape, fs, sizeof fs),
                           mimic_dtype_name(dst->dtype), mimic_shape_str(dst->ndim, dst->shape, ts, sizeof ts));
    bool same = e->ndim == dst->ndim;
    for (int k = 0; same && k < e->ndim; k++)
        same = e->shape[k] == dst->shape[k];
    if (!same)
        return mimic_error(MIMIC_ESHAPE, "cannot read '%s' from '%s': its shape is %s in the file but the tensor's is %s",
                           name, d->path, mimic_shape_str(e->ndim, e->shape, fs, sizeof fs),
                           mimic_shape_str(dst->ndim, dst->shape, ts, sizeof ts));
    mimic_tensor *t = mimic_dict_get_tensor(d, name);
    if (!t)
        return mimic_errcode();
    int rc = mimic_copy(dst, t);
    mimic_tensor_free(t);
    return rc;
}

int mimic_dict_get_int(const mimic_dict *d, const char *name, int64_t *out)
{
    const mimic_dict_entry *e = lookup_kind(d, name, MIMIC_DICT_INT);
    if (!e)
        return mimic_errcode();
    *out = e->i;
    return MIMIC_OK;
}

int mimic_dict_get_number(const mimic_dict *d, const char *name, double *out)
{
    const mimic_dict_entry *e = lookup_kind(d, name, MIMIC_DICT_NUMBER);
    if (!e)
        return mimic_errcode();
    *out = e->kind == MIMIC_DICT_INT ? (double)e->i : e->d;
    return MIMIC_OK;
}

int mimic_dict_get_bool(const mimic_dict *d, const char *name, bool *out)
{
    const mimic_dict_entry *e = lookup_kind(d, name, MIMIC_DICT_BOOL);
    if (!e)
        return mimic_errcode();
    *out = e->b;
    return MIMIC_OK;
}

const char *mimic_dict_get_string(const mimic_dict *d, const char *name, size_t *len)
{
    const mimic_dict_entry *e = lookup_kind(d, name, MIMIC_DICT_STRING);
    if (!e)
        return NULL;
    if (len)
        *len = e->len;
    return e->s;
}
