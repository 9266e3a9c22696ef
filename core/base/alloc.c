/* Allocation goes through replaceable hooks (SQLite's idea): tests count
 * allocations to prove a hot path allocates nothing, and inject failures to
 * walk the out-of-memory paths. */
#include "mimic/base.h"

#include <stdlib.h>
#include <string.h>

static void *default_alloc(void *ud, size_t n) { (void)ud; return malloc(n); }
static void *default_realloc(void *ud, void *p, size_t n) { (void)ud; return realloc(p, n); }
static void default_free(void *ud, void *p) { (void)ud; free(p); }

static mimic_allocator hooks = {default_alloc, default_realloc, default_free, NULL};

void mimic_set_allocator(const mimic_allocator *a)
{
    if (a)
        hooks = *a;
    else
        hooks = (mimic_allocator){default_alloc, default_realloc, default_free, NULL};
}

void *mimic_malloc(size_t size)
{
    if (size == 0)
        size = 1; /* a valid pointer for 0-size tensors keeps the code free of special cases */
    void *p = hooks.alloc(hooks.ud, size);
    if (!p)
        mimic_error(MIMIC_ENOMEM, "out of memory: could not allocate %zu bytes", size);
    return p;
}

void *mimic_calloc(size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size) {
        mimic_error(MIMIC_ENOMEM, "out of memory: %zu x %zu bytes overflows size_t", n, size);
        return NULL;
    }
    void *p = mimic_malloc(n * size);
    if (p)
        memset(p, 0, n * size);
    return p;
}

void *mimic_realloc(void *ptr, size_t size)
{
    if (size == 0)
        size = 1;
    void *p = hooks.realloc(hooks.ud, ptr, size);
    if (!p)
        mimic_error(MIMIC_ENOMEM, "out of memory: could not grow a buffer to %zu bytes", size);
    return p;
}

void mimic_free(void *ptr)
{
    if (ptr)
        hooks.free(hooks.ud, ptr);
}
