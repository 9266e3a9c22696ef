/* The calling thread's last error: the one documented piece of global state
 * that every call may touch. Thread-local so that separate host threads never
 * see each other's messages. */
#include "internal.h"

#include <stdarg.h>
#include <stdio.h>

static _Thread_local char errbuf[1024];
static _Thread_local int errcode;

const char *mimic_errmsg(void) { return errbuf; }
int mimic_errcode(void) { return errcode; }

void mimic_clear_error(void)
{
    errbuf[0] = '\0';
    errcode = MIMIC_OK;
}

int mimic_error(int code, const char *fmt, ...)
{
    /* Format into a local copy first: fmt's arguments may point into errbuf
     * (a caller prefixing a message it got from mimic_errmsg()). */
    char tmp[sizeof errbuf];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    snprintf(errbuf, sizeof errbuf, "%s", tmp);
    errcode = code;
    return code;
}

const char *mimic_ordinal(int i, char *buf, size_t size)
{
    int n = i + 1, tens = n % 100;
    const char *suffix = "th";
    if (tens < 11 || tens > 13)
        suffix = n % 10 == 1 ? "st" : n % 10 == 2 ? "nd" : n % 10 == 3 ? "rd" : "th";
    snprintf(buf, size, "%d%s", n, suffix);
    return buf;
}
