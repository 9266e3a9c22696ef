/* mimic — tensor dictionaries in HDF5 files: the checkpoint container.
 *
 * A tensor dictionary maps names to entries:
 *  - tensors (float32, float64, int64, bool; 0..8 dims, any size including 0),
 *    stored as HDF5 datasets;
 *  - scalars: 64-bit integers, doubles, byte strings and booleans, stored as
 *    HDF5 attributes of the group that holds them;
 *  - groups: a name "a/b/c" puts c in group b inside group a. Groups are
 *    created as needed and also listed when reading, so an empty group (an
 *    empty table in Lua) survives a round trip.
 * Names are non-empty components separated by '/', none of them "." or "..";
 * an entry name is used once (a tensor and a scalar cannot share "a/x").
 *
 * On disk: float32/float64/int64 are IEEE/two's-complement little-endian
 * datasets; bool is an HDF5 enum {FALSE = 0, TRUE = 1} over int8, as h5py
 * writes NumPy bools, so h5py and the HDF5 tools read the files directly.
 * Strings are fixed-length byte strings (NUL-terminated, or NUL-padded when
 * the string itself contains NUL bytes) and round-trip byte for byte.
 *
 * Writing is atomic: the file is assembled in memory, and mimic_dict_commit
 * writes it to "<path>.tmp.<pid>" (created by mimic_dict_create), fsyncs it
 * and renames it over <path>. On any failure the temporary file is removed
 * and an existing <path> is untouched, so a crash or a full disk during a
 * checkpoint never destroys the previous checkpoint. Memory: about twice the
 * file size at commit (HDF5 never writes to disk itself; see h5dict.c).
 *
 * Reading validates the whole file when it is opened (structure, dtypes,
 * ranks, sizes, overflow) and each dataset when it is read, and reports
 * missing, non-HDF5, truncated and corrupt files, missing names (listing the
 * ones that exist) and unsupported types as MIMIC_EIO / MIMIC_EDTYPE errors
 * with a message (mimic_errmsg). Objects mimic cannot represent (an int32
 * dataset, an array attribute, a soft link, ...) are listed with kind
 * MIMIC_DICT_UNSUPPORTED and a reason, so foreign files can still be listed.
 *
 * HDF5's own error printing is switched off for the duration of each call
 * (the previous setting is restored afterwards), so mimic never prints.
 *
 * Threads: HDF5 is usually built without thread safety; serialise all calls
 * (these and a host's own HDF5 calls) across threads.
 */
#ifndef MIMIC_IO_H
#define MIMIC_IO_H

#include "tensor.h"

typedef enum mimic_dict_kind {
    MIMIC_DICT_TENSOR = 0,  /* a dataset: dtype, ndim, shape */
    MIMIC_DICT_GROUP,       /* a group (may be empty) */
    MIMIC_DICT_INT,         /* scalar: int64 (i) */
    MIMIC_DICT_NUMBER,      /* scalar: double (d) */
    MIMIC_DICT_STRING,      /* scalar: bytes (s, len) */
    MIMIC_DICT_BOOL,        /* scalar: b */
    MIMIC_DICT_UNSUPPORTED  /* present but not representable: see reason */
} mimic_dict_kind;

/* --- writing ------------------------------------------------------------------ */
typedef struct mimic_dict_writer mimic_dict_writer;

/* Starts a new dictionary file that will replace `path` on commit. The
 * temporary file is created at once, next to path (same directory, so the
 * rename is atomic): a missing directory or a read-only file system fails
 * here. Returns NULL on failure. The writer is owned by the caller until
 * mimic_dict_commit or mimic_dict_discard, which both free it. */
mimic_dict_writer *mimic_dict_create(const char *path);

/* Adds an entry. Any layout of t is accepted (non-contiguous, broadcast,
 * 0-dim, 0-size); only its values are written. After a failed put the writer
 * is spoiled: further puts fail and commit removes the temporary file. */
int mimic_dict_put_tensor(mimic_dict_writer *w, const char *name, const mimic_tensor *t);
int mimic_dict_put_int(mimic_dict_writer *w, const char *name, int64_t v);
int mimic_dict_put_number(mimic_dict_writer *w, const char *name, double v);
int mimic_dict_put_bool(mimic_dict_writer *w, const char *name, bool v);
/* len bytes of s (may contain NUL bytes). */
int mimic_dict_put_string(mimic_dict_writer *w, const char *name, const char *s, size_t len);
/* Creates the group `name` (and its parents) if it does not exist yet. */
int mimic_dict_put_group(mimic_dict_writer *w, const char *name);

/* Finishes the file: write, fsync and close the temporary file, rename it
 * over the target path (then a best-effort fsync of the directory). Frees w whatever the outcome; on
 * failure the temporary file is removed and the target is untouched. */
int mimic_dict_commit(mimic_dict_writer *w);
/* Abandons the file: removes the temporary file and frees w. NULL is fine. */
void mimic_dict_discard(mimic_dict_writer *w);

/* --- reading ------------------------------------------------------------------ */
typedef struct mimic_dict mimic_dict;

typedef struct mimic_dict_entry {
    const char *name;      /* full name, "a/b/c" (no leading '/') */
    mimic_dict_kind kind;
    /* MIMIC_DICT_TENSOR */
    mimic_dtype dtype;
    int ndim;
    int64_t shape[MIMIC_MAX_DIMS];
    /* scalars */
    int64_t i;
    double d;
    bool b;
    const char *s;         /* MIMIC_DICT_STRING: len bytes plus a terminating NUL */
    size_t len;
    const char *reason;    /* MIMIC_DICT_UNSUPPORTED: why, e.g. "int32 dataset" */
} mimic_dict_entry;

/* Opens and validates a dictionary file for reading; the file stays open
 * (tensors are read on demand) until mimic_dict_close. Returns NULL with
 * MIMIC_EIO for a missing, unreadable, non-HDF5, truncated or corrupt file. */
mimic_dict *mimic_dict_open(const char *path);
void mimic_dict_close(mimic_dict *d); /* NULL is fine */

/* The entries, sorted by name (strcmp order). Entries and the strings in them
 * are owned by d and valid until mimic_dict_close. */
int64_t mimic_dict_count(const mimic_dict *d);
const mimic_dict_entry *mimic_dict_entry_at(const mimic_dict *d, int64_t i); /* NULL if out of range */
/* The entry called name, or NULL (without recording an error) if none. */
const mimic_dict_entry *mimic_dict_find(const mimic_dict *d, const char *name);
/* The entry called name; if there is none, records MIMIC_EIO with a message
 * that lists the names the file has, and returns NULL. */
const mimic_dict_entry *mimic_dict_lookup(const mimic_dict *d, const char *name);

/* Reads a tensor entry into a new contiguous tensor (the caller owns it).
 * Fails for a missing name (listing what exists), a non-tensor entry, an
 * unsupported dataset, or data that cannot be read (corrupt/truncated). */
mimic_tensor *mimic_dict_get_tensor(mimic_dict *d, const char *name);
/* Reads a tensor entry into dst (any layout), whose dtype and shape must be
 * those in the file (MIMIC_EDTYPE / MIMIC_ESHAPE otherwise). Writes through
 * mimic_copy, so it obeys the autograd rules for in-place writes. */
int mimic_dict_read_into(mimic_dict *d, const char *name, mimic_tensor *dst);

/* Scalar entries. get_number accepts an integer entry too (converted). The
 * string is borrowed from d (valid until mimic_dict_close); len may be NULL. */
int mimic_dict_get_int(const mimic_dict *d, const char *name, int64_t *out);
int mimic_dict_get_number(const mimic_dict *d, const char *name, double *out);
int mimic_dict_get_bool(const mimic_dict *d, const char *name, bool *out);
const char *mimic_dict_get_string(const mimic_dict *d, const char *name, size_t *len);

/* "tensor", "group", "int", "number", "string", "bool", "unsupported". */
const char *mimic_dict_kind_name(mimic_dict_kind k);

#endif
