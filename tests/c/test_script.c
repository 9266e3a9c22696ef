/* Lua scripts called from a C host (lua/include/mimic/script.h): zero-copy
 * inputs in both layouts and both float types, results copied back, the
 * interpreter's state kept between calls, inputs never outliving a call, and
 * every error path returning a status and a message instead of unwinding. */
#include "check.h"
#include "mimic/script.h"

#include <stdlib.h>
#include <unistd.h>

static char dir[256];

static const char *write_file(const char *name, const char *text)
{
    static char path[8][320];
    static int next;
    char *p = path[next++ % 8];
    snprintf(p, sizeof path[0], "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
    return p;
}

static const char *SCRIPT =
    "local mimic = require 'mimic'\n"
    "assert(mimic.nn.Linear, 'mimic.nn found on package.path')\n"
    "calls = 0\n"
    "-- x [n,2], y [n,1] -> a = 2*x1 - x2 + y [n,1], b = x*x [n,2]\n"
    "function combine(x, y)\n"
    "  calls = calls + 1\n"
    "  local a = x:narrow(2, 1, 1) * 2 - x:narrow(2, 2, 1) + y\n"
    "  return a, x * x\n"
    "end\n"
    "function rowsum(x) return x:sum(2, true) end\n"
    "function ncalls(x) return mimic.full({x:size(1), 1}, calls, 'float64') end\n"
    "function keep(x) kept = x:narrow(2, 1, 1); kept_box = x; return x:narrow(2, 1, 1) end\n"
    "function peek(x) return kept:clone() end\n"
    "function use_box(x) return kept_box:clone() end\n"
    "function fail(x) local t = {}; return t.missing.field end\n"
    "function raise(x) error('custom failure 42') end\n"
    "function one(x) return x end\n"
    "function two(x) return x, x end\n"
    "function wide(x) return mimic.cat({x, x}, 2) end\n"
    "function notensor(x) return 3 end\n"
    "function ints(x) return x:long() end\n"
    "function ident(x) return x end\n"
    "notfunc = 5\n";

static mimic_array arr(void *data, mimic_dtype dt, int64_t size, int64_t ss, int64_t fs)
{
    return (mimic_array){.data = data, .dtype = dt, .size = size, .sample_stride = ss, .feature_stride = fs};
}

enum { N = 5 };

TEST(test_row_major_f64)
{
    mimic_script *s = NULL;
    CHECK_OK(mimic_script_open(write_file("s.lua", SCRIPT), &s));
    if (!s) {
        fprintf(stderr, "%s\n", mimic_script_error(NULL));
        return;
    }
    double x[N][2], y[N][1], a[N][1], b[N][2];
    for (int i = 0; i < N; i++)
        x[i][0] = i + 0.5, x[i][1] = -2.0 * i, y[i][0] = 10.0 + i;
    mimic_array in[2] = {arr(x, MIMIC_F64, 2, 2, 1), arr(y, MIMIC_F64, 1, 1, 1)};
    mimic_array out[2] = {arr(a, MIMIC_F64, 1, 1, 1), arr(b, MIMIC_F64, 2, 2, 1)};
    CHECK_OK(mimic_script_call(s, "combine", 2, in, 2, out, N));
    for (int i = 0; i < N; i++) {
        CHECK_NEAR(a[i][0], 2 * x[i][0] - x[i][1] + y[i][0], 0);
        CHECK_NEAR(b[i][0], x[i][0] * x[i][0], 0);
        CHECK_NEAR(b[i][1], x[i][1] * x[i][1], 0);
    }
    CHECK(strcmp(mimic_script_error(s), "") == 0);
    /* the interpreter keeps its globals between calls */
    double c[N];
    mimic_array oc = arr(c, MIMIC_F64, 1, 1, 1);
    CHECK_OK(mimic_script_call(s, "combine", 2, in, 2, out, N));
    CHECK_OK(mimic_script_call(s, "ncalls", 1, in, 1, &oc, N));
    CHECK_NEAR(c[0], 2, 0);
    CHECK_NEAR(c[N - 1], 2, 0);
    /* inputs are read, never written */
    CHECK_NEAR(x[3][1], -6.0, 0);
    CHECK_OK(mimic_script_close(&s));
    CHECK(s == NULL);
    CHECK_OK(mimic_script_close(&s));
}

/* Column-major float32 (C x[feature][n], Fortran x(n, feature)), a strided
 * subset of the samples, and a float64 result written into a float32 array. */
TEST(test_column_major_f32)
{
    mimic_script *s = NULL;
    CHECK_OK(mimic_script_open(write_file("s.lua", SCRIPT), &s));
    float x[2][N], y[1][N], a[1][N], b[2][N];
    for (int i = 0; i < N; i++)
        x[0][i] = 0.25f * (float)i, x[1][i] = 3.0f - (float)i, y[0][i] = -1.0f;
    mimic_array in[2] = {arr(x, MIMIC_F32, 2, 1, N), arr(y, MIMIC_F32, 1, 1, N)};
    mimic_array out[2] = {arr(a, MIMIC_F32, 1, 1, N), arr(b, MIMIC_F32, 2, 1, N)};
    memset(b, 0, sizeof b);
    CHECK_OK(mimic_script_call(s, "combine", 2, in, 2, out, N));
    for (int i = 0; i < N; i++) {
        CHECK_NEAR(a[0][i], 2 * x[0][i] - x[1][i] + y[0][i], 1e-6);
        CHECK_NEAR(b[0][i], x[0][i] * x[0][i], 1e-6);
        CHECK_NEAR(b[1][i], x[1][i] * x[1][i], 1e-6);
    }
    /* every other sample of a row-major array; float32 in, float64 out */
    double xs[2 * N][2], r[N];
    for (int i = 0; i < 2 * N; i++)
        xs[i][0] = i, xs[i][1] = 100.0 * i;
    mimic_array ins = arr(xs, MIMIC_F64, 2, 4, 1), outr = arr(r, MIMIC_F64, 1, 1, 1);
    CHECK_OK(mimic_script_call(s, "rowsum", 1, &ins, 1, &outr, N));
    for (int i = 0; i < N; i++)
        CHECK_NEAR(r[i], 101.0 * (2 * i), 0);
    CHECK_OK(mimic_script_call(s, "rowsum", 1, in, 1, &outr, N));
    for (int i = 0; i < N; i++)
        CHECK_NEAR(r[i], (double)x[0][i] + (double)x[1][i], 0);
    /* n = 0 calls the function on empty tensors */
    CHECK_OK(mimic_script_call(s, "rowsum", 1, in, 1, &outr, 0));
    mimic_script_close(&s);
}

/* NaN is data, not an error. */
TEST(test_nan_passes)
{
    mimic_script *s = NULL;
    CHECK_OK(mimic_script_open(write_file("s.lua", SCRIPT), &s));
    double x[3] = {1, NAN, 3}, y[3] = {0, 0, 0};
    mimic_array in = arr(x, MIMIC_F64, 1, 1, 1), out = arr(y, MIMIC_F64, 1, 1, 1);
    CHECK_OK(mimic_script_call(s, "ident", 1, &in, 1, &out, 3));
    CHECK(y[0] == 1 && isnan(y[1]) && y[2] == 3);
    mimic_script_close(&s);
}

/* A script that keeps an input beyond the call never reaches the host's
 * memory afterwards: the box is closed, a view gets a private copy. */
TEST(test_inputs_do_not_outlive_the_call)
{
    mimic_script *s = NULL;
    CHECK_OK(mimic_script_open(write_file("s.lua", SCRIPT), &s));
    double *x = malloc(sizeof(double) * 2 * N), r[N];
    for (int i = 0; i < 2 * N; i++)
        x[i] = i;
    mimic_array in = arr(x, MIMIC_F64, 2, 2, 1), out = arr(r, MIMIC_F64, 1, 1, 1);
    CHECK_OK(mimic_script_call(s, "keep", 1, &in, 1, &out, N));
    for (int i = 0; i < 2 * N; i++)
        x[i] = -1;
    free(x); /* ASan would catch a later read through the kept view */
    double z[2 * N] = {0};
    mimic_array inz = arr(z, MIMIC_F64, 2, 2, 1);
    CHECK_OK(mimic_script_call(s, "peek", 1, &inz, 1, &out, N));
    for (int i = 0; i < N; i++)
        CHECK_NEAR(r[i], 2 * i, 0); /* the values at the time of the call */
    CHECK_ERR(mimic_script_call(s, "use_box", 1, &inz, 1, &out, N), MIMIC_EVALUE, "closed tensor");
    mimic_script_close(&s);
}

TEST(test_open_errors)
{
    mimic_script *s = (mimic_script *)&s;
    char missing[320];
    snprintf(missing, sizeof missing, "%s/no_such_script.lua", dir);
    CHECK_ERR(mimic_script_open(missing, &s), MIMIC_EIO, "no_such_script.lua");
    CHECK(s == NULL);
    CHECK(strstr(mimic_script_error(NULL), "no_such_script.lua") != NULL);
    CHECK_ERR(mimic_script_open(write_file("syntax.lua", "x = = 1\n"), &s), MIMIC_EVALUE, "syntax.lua:1:");
    CHECK(s == NULL);
    CHECK_ERR(mimic_script_open(write_file("boom.lua", "local a = 1\nerror('boom at load')\n"), &s), MIMIC_EVALUE,
              "boom.lua:2: boom at load");
    CHECK(strstr(mimic_errmsg(), "stack traceback") != NULL);
    CHECK(s == NULL);
    CHECK_ERR(mimic_script_open(write_file("exit.lua", "os.exit(3)\n"), &s), MIMIC_EVALUE, "os.exit is disabled");
    CHECK(s == NULL);
    CHECK_ERR(mimic_script_open(NULL, &s), MIMIC_EARG, "path is NULL");
    CHECK_ERR(mimic_script_open(missing, NULL), MIMIC_EARG, "out is NULL");
}

TEST(test_call_errors)
{
    mimic_script *s = NULL;
    CHECK_OK(mimic_script_open(write_file("s.lua", SCRIPT), &s));
    double x[N][2] = {{0}}, r1[N], r2[N][2];
    mimic_array in = arr(x, MIMIC_F64, 2, 2, 1), o1 = arr(r1, MIMIC_F64, 1, 1, 1);
    mimic_array o2[2] = {arr(r2, MIMIC_F64, 2, 2, 1), arr(r2, MIMIC_F64, 2, 2, 1)};
    CHECK_ERR(mimic_script_call(s, "fail", 1, &in, 1, &o1, N), MIMIC_EVALUE, "s.lua:15:");
    CHECK(strstr(mimic_script_error(s), "attempt to index a nil value") != NULL);
    CHECK(strstr(mimic_script_error(s), "stack traceback") != NULL);
    CHECK(strstr(mimic_script_error(s), "in function 'fail'") != NULL);
    CHECK_ERR(mimic_script_call(s, "raise", 1, &in, 1, &o1, N), MIMIC_EVALUE, "custom failure 42");
    CHECK_ERR(mimic_script_call(s, "nope", 1, &in, 1, &o1, N), MIMIC_EARG, "no function 'nope' (got a nil)");
    CHECK_ERR(mimic_script_call(s, "notfunc", 1, &in, 1, &o1, N), MIMIC_EARG, "(got a number)");
    CHECK_ERR(mimic_script_call(s, "one", 1, &in, 2, o2, N), MIMIC_ESHAPE, "returned 1 values; the host expects 2");
    CHECK_ERR(mimic_script_call(s, "two", 1, &in, 1, o2, N), MIMIC_ESHAPE, "returned 2 values; the host expects 1");
    CHECK_ERR(mimic_script_call(s, "wide", 1, &in, 1, o2, N), MIMIC_ESHAPE, "has shape [5,4]; the host expects [5,2]");
    CHECK_ERR(mimic_script_call(s, "one", 1, &in, 1, &o1, N), MIMIC_ESHAPE, "has shape [5,2]; the host expects [5,1]");
    CHECK_ERR(mimic_script_call(s, "notensor", 1, &in, 1, &o1, N), MIMIC_EDTYPE, "is a number");
    CHECK_ERR(mimic_script_call(s, "ints", 1, &in, 1, o2, N), MIMIC_EDTYPE, "is int64");
    mimic_array bad = arr(x, MIMIC_I64, 2, 2, 1);
    CHECK_ERR(mimic_script_call(s, "one", 1, &bad, 1, o2, N), MIMIC_EARG, "input 1 has dtype int64");
    bad = arr(x, MIMIC_F64, 2, -2, 1);
    CHECK_ERR(mimic_script_call(s, "one", 1, &bad, 1, o2, N), MIMIC_EARG, "strides");
    /* outputs whose samples (or features) would share one element */
    mimic_array shared = arr(r1, MIMIC_F64, 1, 0, 1);
    CHECK_ERR(mimic_script_call(s, "one", 1, &in, 1, &shared, N), MIMIC_EARG, "output 1 has a zero sample stride");
    shared = arr(r2, MIMIC_F64, 2, 2, 0);
    CHECK_ERR(mimic_script_call(s, "one", 1, &in, 1, &shared, N), MIMIC_EARG, "output 1 has a zero feature stride");
    /* a sample count beyond int is reported as it is (a broadcast input, nothing written) */
    mimic_array bcast = arr(x, MIMIC_F64, 2, 0, 1), big = arr(r1, MIMIC_F64, 1, 1, 1);
    CHECK_ERR(mimic_script_call(s, "notensor", 1, &bcast, 1, &big, 3000000000LL), MIMIC_EDTYPE,
              "shape [3000000000,1]");
    CHECK_ERR(mimic_script_call(s, NULL, 1, &in, 1, o2, N), MIMIC_EARG, "fn is NULL");
    CHECK_ERR(mimic_script_call(s, "one", 1, NULL, 1, o2, N), MIMIC_EARG, "arrays not NULL");
    /* the handle still works after every error, and a success clears its message */
    CHECK_OK(mimic_script_call(s, "one", 1, &in, 1, o2, N));
    CHECK(strcmp(mimic_script_error(s), "") == 0);
    mimic_script_close(&s);
    CHECK_ERR(mimic_script_call(s, "one", 1, &in, 1, o2, N), MIMIC_EARG, "handle is NULL");
    CHECK(strstr(mimic_script_error(s), "handle is NULL") != NULL);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/mimic_test_script_%d", (int)getpid());
    char cmd[300];
    snprintf(cmd, sizeof cmd, "mkdir -p %s", dir);
    if (system(cmd) != 0)
        return 1;
    RUN(test_row_major_f64);
    RUN(test_column_major_f32);
    RUN(test_nan_passes);
    RUN(test_inputs_do_not_outlive_the_call);
    RUN(test_open_errors);
    RUN(test_call_errors);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        return 1;
    return CHECK_DONE();
}
