/* A minimal test harness: one binary per tests/c/test_*.c file. Each TEST is
 * one case; the binary prints "ok - name" or "not ok - name" per case (TAP
 * style), which tests/run counts. Failed checks print file:line and why. */
#ifndef MIMIC_CHECK_H
#define MIMIC_CHECK_H

#include "mimic/base.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static int check_failures; /* failed checks in the current test */
static int check_passed_tests, check_failed_tests;

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            check_failures++;                                                        \
        }                                                                            \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                                  \
    do {                                                                                       \
        double check_a_ = (double)(a), check_b_ = (double)(b);                                \
        if (!(fabs(check_a_ - check_b_) <= (tol))) {                                           \
            fprintf(stderr, "%s:%d: %s = %.17g, expected %s = %.17g (tol %g)\n", __FILE__,     \
                    __LINE__, #a, check_a_, #b, check_b_, (double)(tol));                      \
            check_failures++;                                                                  \
        }                                                                                      \
    } while (0)

/* A call that must succeed: a non-NULL pointer (CHECK_PTR) or a zero status
 * (CHECK_OK); on failure the error message is printed. */
#define CHECK_OK(expr)                                                                    \
    do {                                                                                  \
        if ((expr) != 0) {                                                                \
            fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #expr, mimic_errmsg()); \
            check_failures++;                                                             \
        }                                                                                 \
    } while (0)
#define CHECK_PTR(expr)                                                                   \
    do {                                                                                  \
        if ((expr) == NULL) {                                                             \
            fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #expr, mimic_errmsg()); \
            check_failures++;                                                             \
        }                                                                                 \
    } while (0)

/* Evaluate expr once; it must fail with code `code` and a message containing `sub`. */
#define CHECK_ERR_PTR(expr, code, sub) check_err_((expr) == NULL, code, sub, #expr, __FILE__, __LINE__)
#define CHECK_ERR(expr, code, sub) check_err_((expr) != 0, code, sub, #expr, __FILE__, __LINE__)

static inline void check_err_(int failed, int code, const char *sub, const char *what,
                              const char *file, int line)
{
    if (!failed) {
        fprintf(stderr, "%s:%d: %s succeeded, expected an error\n", file, line, what);
        check_failures++;
    } else if (mimic_errcode() != code || !strstr(mimic_errmsg(), sub)) {
        fprintf(stderr, "%s:%d: %s: got error %d \"%s\", expected %d containing \"%s\"\n", file,
                line, what, mimic_errcode(), mimic_errmsg(), code, sub);
        check_failures++;
    }
}

#define TEST(name) static void name(void)
#define RUN(name)                                                                          \
    do {                                                                                   \
        check_failures = 0;                                                                \
        mimic_clear_error();                                                               \
        name();                                                                            \
        printf("%s - %s\n", check_failures ? "not ok" : "ok", #name);                      \
        fflush(stdout);                                                                    \
        if (check_failures)                                                                \
            check_failed_tests++;                                                          \
        else                                                                               \
            check_passed_tests++;                                                          \
    } while (0)
#define CHECK_DONE() (check_failed_tests ? 1 : 0)

#endif
