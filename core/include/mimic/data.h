/* mimic — training data in HDF5 / netCDF-4 files: datasets by path.
 *
 * Simulation output arrives as HDF5 or netCDF-4 files (netCDF-4 is HDF5
 * underneath). This interface reads any numeric dataset (float32/64,
 * int8..int64, uint8..uint64, either byte order, any filter HDF5 has, e.g.
 * gzip) into a float32, float64 or int64 tensor, whole or as a range of rows
 * (dim 0: a hyperslab, so streaming never loads the whole file), and writes
 * tensors as datasets, optionally chunked and gzip-compressed and extendable
 * along dim 0 (append rows as a simulation produces them).
 *
 * Layout: dims are read as stored. h5py and C/C++ write row-major (C order),
 * so a NumPy array of shape (n, f) reads as an [n, f] tensor. A file written
 * from Fortran (column-major) stores the reversed dims: a Fortran array
 * x(nlev, ncol) is a dataset of shape [ncol, nlev], which is also what
 * h5py/ncdump show; mimic reads it as [ncol, nlev] and never transposes.
 * Files mimic writes read in h5py with the same names and shapes.
 *
 * netCDF conventions (applied unless opts.raw): `_FillValue` (or, without
 * it, `missing_value`) elements become NaN in float output; packed data
 * (`scale_factor`, `add_offset`) is unpacked as raw * scale + offset;
 * dimension names come from DIMENSION_LIST (the dimension scales netCDF-4
 * and h5py's dims API write). netCDF's implicit default fill values (a
 * variable without a _FillValue attribute) are not treated as missing. A
 * netCDF-3 classic/64-bit file ("CDF\x01", "CDF\x02", "CDF\x05") is refused
 * with the command that converts it: nccopy -k nc4 in.nc out.nc.
 *
 * Errors (mimic_errmsg): a missing file, a missing dataset (the message lists
 * the datasets the file has), a non-HDF5 or truncated file (MIMIC_EIO); a
 * non-numeric dataset or a dtype conversion mimic refuses (MIMIC_EDTYPE); a
 * rank other than the one asked for (MIMIC_ESHAPE); a filter this HDF5
 * cannot decode, named, e.g. h5py's "lzf" (MIMIC_EIO); NaN/Inf with
 * opts.finite (MIMIC_EVALUE, with the element's 0-based index in the file,
 * as NumPy/h5py would index it).
 *
 * HDF5's error printing is switched off during every call (and restored), so
 * mimic never prints. Threads: serialise all HDF5 use (HDF5 is built without
 * thread safety).
 *
 * Ownership: a mimic_h5 belongs to the caller until mimic_h5_close. Tensors
 * returned are new references (mimic_tensor_free). Strings returned by
 * mimic_h5_name are owned by the file and valid until the next write to it
 * or its close.
 */
#ifndef MIMIC_DATA_H
#define MIMIC_DATA_H

#include "tensor.h"

typedef struct mimic_h5 mimic_h5;

/* Opens an existing file read-only. NULL on failure (see the errors above). */
mimic_h5 *mimic_h5_open(const char *path);
/* Creates a new file (an existing one is replaced) for writing; datasets
 * written can also be read back through the same handle. Not atomic: a
 * packing script that streams gigabytes cannot assemble them in memory as
 * checkpoints do (mimic/io.h); write to a new name and rename when done. */
mimic_h5 *mimic_h5_create(const char *path);
/* Flushes and closes; returns the status of the flush. NULL is fine. */
int mimic_h5_close(mimic_h5 *f);

/* The datasets in the file, full paths without the leading '/', sorted. */
int64_t mimic_h5_count(mimic_h5 *f);
const char *mimic_h5_name(mimic_h5 *f, int64_t i); /* NULL if out of range */

typedef struct mimic_h5_info {
    int ndim;
    int64_t shape[MIMIC_MAX_DIMS];
    char type[24];        /* as stored: "int16", "uint8", "float32", ... */
    bool is_float;        /* stored as floating point (else integer) */
    bool big_endian;
    bool chunked;
    int64_t chunk[MIMIC_MAX_DIMS];
    char filters[96];     /* e.g. "shuffle,deflate(4)"; "" if none */
    bool dims_unlimited;  /* dim 0 can grow (mimic_h5_append) */
    /* dimension names (netCDF / h5py dimension scales); "" when unnamed */
    char dim_names[MIMIC_MAX_DIMS][64];
    /* netCDF conventions found on the dataset */
    bool has_fill;
    double fill;
    double scale;         /* 1 when absent */
    double offset;        /* 0 when absent */
} mimic_h5_info;

/* Describes dataset `name` ("group/var"; a leading '/' is accepted). */
int mimic_h5_info_get(mimic_h5 *f, const char *name, mimic_h5_info *out);

/* Options for reading; a zeroed struct reads everything as float32 with the
 * netCDF conventions applied. */
typedef struct mimic_h5_read_opts {
    mimic_dtype dtype;  /* MIMIC_F32, MIMIC_F64 or MIMIC_I64 (integers only,
                           no packing; fill values are kept as they are) */
    bool rows;          /* read only rows [start, start + count) of dim 0 */
    int64_t start, count;
    bool check_ndim;    /* fail with MIMIC_ESHAPE unless the rank is ndim */
    int ndim;
    bool finite;        /* fail with MIMIC_EVALUE on NaN/Inf (after fill -> NaN) */
    bool raw;           /* ignore _FillValue / scale_factor / add_offset */
} mimic_h5_read_opts;

/* Reads a dataset (or its rows) into a new contiguous tensor. opts may be NULL. */
mimic_tensor *mimic_h5_read(mimic_h5 *f, const char *name, const mimic_h5_read_opts *opts);

/* The missing-value mask of a dataset (or of its rows, opts->rows/start/
 * count; the other options are ignored): a bool tensor of the dataset's shape,
 * true where the stored value equals _FillValue (or missing_value), all
 * false without either attribute. For int64 reads, which keep fill values,
 * and for callers that prefer a mask to NaN. */
mimic_tensor *mimic_h5_read_mask(mimic_h5 *f, const char *name, const mimic_h5_read_opts *opts);

/* Options for writing; a zeroed struct writes a contiguous, uncompressed dataset. */
typedef struct mimic_h5_write_opts {
    int gzip;                         /* 0 (none) .. 9: deflate level, implies chunking */
    bool shuffle;                     /* byte-shuffle filter before gzip (better ratios) */
    int nchunk;                       /* 0: automatic chunks (when chunking is needed) */
    int64_t chunk[MIMIC_MAX_DIMS];    /* else the chunk shape, nchunk == t->ndim */
    bool extendable;                  /* dim 0 unlimited: rows can be appended */
} mimic_h5_write_opts;

/* Writes t (any layout, float32/float64/int64/bool as uint8) as a new dataset
 * `name`; parent groups are created as needed. opts may be NULL. */
int mimic_h5_write(mimic_h5 *f, const char *name, const mimic_tensor *t, const mimic_h5_write_opts *opts);
/* Appends t's rows to an extendable dataset: t's dims after the first must
 * match the dataset's (MIMIC_ESHAPE otherwise). */
int mimic_h5_append(mimic_h5 *f, const char *name, const mimic_tensor *t);

/* Attributes of a dataset or group (`obj`, "" or "/" for the root). */
int mimic_h5_set_attr_number(mimic_h5 *f, const char *obj, const char *attr, double v);
int mimic_h5_set_attr_string(mimic_h5 *f, const char *obj, const char *attr, const char *s);

typedef enum mimic_h5_attr_kind {
    MIMIC_H5_ATTR_NONE = 0,   /* no such attribute */
    MIMIC_H5_ATTR_NUMBER,     /* numeric; first element in number, count in n */
    MIMIC_H5_ATTR_STRING,     /* string (fixed or variable length) in str */
    MIMIC_H5_ATTR_OTHER       /* references, compounds, ...: not readable */
} mimic_h5_attr_kind;

typedef struct mimic_h5_attr {
    mimic_h5_attr_kind kind;
    double number;
    int64_t n;
    char *str;                /* mimic_malloc'd; free it with mimic_free */
} mimic_h5_attr;

/* Reads an attribute; a missing attribute is kind NONE (not an error). */
int mimic_h5_get_attr(mimic_h5 *f, const char *obj, const char *attr, mimic_h5_attr *out);
/* Names of the attributes of obj, separated by '\n', mimic_malloc'd. */
char *mimic_h5_attr_names(mimic_h5 *f, const char *obj);

#endif
