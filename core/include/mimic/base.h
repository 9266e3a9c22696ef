/* mimic — status codes, error messages, allocator hooks, threads.
 *
 * Conventions used by every mimic C function:
 *  - Functions that return a new object return a pointer, or NULL on failure.
 *  - Functions that act in place return an int status: MIMIC_OK (0) or a
 *    negative MIMIC_E* code.
 *  - On failure a message naming the problem (and, where there is one, the fix)
 *    is stored for the calling thread: read it with mimic_errmsg(), and the code
 *    with mimic_errcode(). Like errno, this state is thread-local and only
 *    meaningful right after a failed call.
 *  - Nothing in mimic prints to stdout, calls exit() or abort().
 *  - Messages must read right from C (0-based) and from the Lua binding
 *    (1-based), which passes them on unchanged. So a message names a dim of a
 *    tensor counting from the end ("dim -1" is the last, as broadcasting
 *    aligns dims), and a position in a list of tensors as an English ordinal
 *    ("the 2nd tensor"). Only the values a caller passed (a dim or element
 *    index out of range) are echoed in C's 0-based terms; the binding checks
 *    those itself before calling, with 1-based messages.
 *
 * Documented global state (everything else lives in explicit objects):
 *  - the calling thread's last error (thread-local);
 *  - the allocator hooks (set them before any other call);
 *  - the thread count, which is OpenMP's per-thread setting (see below).
 */
#ifndef MIMIC_BASE_H
#define MIMIC_BASE_H

#include <stddef.h>
#include <stdint.h>

#define MIMIC_VERSION "0.1.0"

enum {
    MIMIC_OK = 0,
    MIMIC_ENOMEM = -1,   /* out of memory */
    MIMIC_EARG = -2,     /* invalid argument (NULL, out of range, bad option) */
    MIMIC_ESHAPE = -3,   /* shapes do not match the operation's rule */
    MIMIC_EDTYPE = -4,   /* element type not supported by the operation */
    MIMIC_EIO = -5,      /* file missing, unreadable, truncated, wrong format */
    MIMIC_EVALUE = -6,   /* bad data value (NaN/Inf where not allowed, ...) */
    MIMIC_ESTATE = -7,   /* object used in a state that does not allow it */
    MIMIC_EINTERNAL = -8 /* a bug in mimic: please report it */
};

/* The calling thread's last error message ("" if none) and code (MIMIC_OK if none). */
const char *mimic_errmsg(void);
int mimic_errcode(void);
/* Forget the calling thread's last error. */
void mimic_clear_error(void);
/* Record an error for the calling thread; returns code, so `return mimic_error(...)`.
 * Used by mimic itself and by layers built on it (the Lua binding, hosts' wrappers). */
int mimic_error(int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Allocator hooks. malloc-like: mimic_malloc(0) may return NULL without error.
 * The defaults are malloc/realloc/free. `ud` is passed back to each hook.
 * Replace them only before any mimic object exists (tests use this to count
 * allocations and to inject failures). Passing NULL restores the defaults. */
typedef struct mimic_allocator {
    void *(*alloc)(void *ud, size_t size);
    void *(*realloc)(void *ud, void *ptr, size_t size);
    void (*free)(void *ud, void *ptr);
    void *ud;
} mimic_allocator;
void mimic_set_allocator(const mimic_allocator *a);
/* Allocate through the hooks. On failure they record MIMIC_ENOMEM and return NULL. */
void *mimic_malloc(size_t size);
void *mimic_calloc(size_t n, size_t size);
void *mimic_realloc(void *ptr, size_t size);
void mimic_free(void *ptr);

/* Threads. One setting governs all parallelism: mimic's own loops (OpenMP) and
 * BLAS. It is OpenMP's nthreads setting of the calling thread, which new
 * threads inherit. Inside a host's OpenMP parallel region mimic runs on the
 * calling thread only (nested parallelism stays off), so it never
 * oversubscribes. n <= 0 means "all cores". */
void mimic_set_num_threads(int n);
int mimic_get_num_threads(void);

#endif
