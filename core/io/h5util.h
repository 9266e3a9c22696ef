/* HDF5 error handling shared by core/io and core/data (internal).
 *
 * HDF5 prints its error stack to stderr by default and mimic never prints:
 * every public function brackets its HDF5 calls with quiet_begin/quiet_end
 * (the host's own setting is restored afterwards). Failures become mimic
 * errors that carry HDF5's innermost message, which holds the errno text
 * ("No space left on device", ...). */
#ifndef MIMIC_H5UTIL_H
#define MIMIC_H5UTIL_H

#include "mimic/base.h"

#include <hdf5.h>
#include <stdbool.h>

/* Short names in the code, mimic_-prefixed symbols in the library. */
#define quiet_begin mimic_h5u_quiet_begin
#define quiet_end mimic_h5u_quiet_end
#define h5_collect mimic_h5u_collect
#define fail_h5 mimic_h5u_fail
#define close_id mimic_h5u_close_id
#define has_hdf5_signature mimic_h5u_has_signature

typedef struct quiet {
    H5E_auto2_t func;
    void *data;
} quiet;
void quiet_begin(quiet *q);
void quiet_end(const quiet *q);

typedef struct h5err {
    char inner[320]; /* the innermost (most specific) description */
    bool truncated;  /* HDF5 saw a file shorter than its metadata says */
} h5err;
/* Reads and clears the HDF5 error stack. */
void h5_collect(h5err *c);
/* Records an error: the formatted message, then HDF5's innermost message if
 * the error stack holds one. Returns code. */
int fail_h5(int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Whether the file holds the 8-byte HDF5 superblock signature at byte 0 or,
 * after a user block, at 512, 1024, 2048, ... (1 yes, 0 no, -1 unreadable):
 * tells "not HDF5" apart from "broken HDF5" in error messages. */
int has_hdf5_signature(const char *path, int64_t size);
/* Closes any HDF5 id (negative ids are skipped) and sets it to invalid. */
void close_id(hid_t *id);

#endif
