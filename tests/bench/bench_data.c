/* Streaming under a memory budget: peak RSS of a process that iterates one
 * epoch of mimic.data.loader over a file much larger than its budget, beside
 * the same process reading the whole file into memory (the baseline), both
 * measured in this run. The child's peak RSS comes from wait4() (what
 * /usr/bin/time -v reports as "Maximum resident set size").
 *
 * Needs $MIMIC_BUILD/bin/mimic and lua/mimic/data.lua (run from the
 * repository root, as `make bench` does). */
#define _DEFAULT_SOURCE /* wait4 */
#include "mimic/data.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "benchutil.h"

#define ROWS 262144
#define FEAT 64
#define BLOCK 4096

/* Writes x [ROWS, FEAT] and y [ROWS, 1] a block at a time (the writer's own
 * memory stays small too). */
static int make_file(const char *path)
{
    mimic_h5 *f = mimic_h5_create(path);
    if (!f)
        return -1;
    mimic_tensor *x = mimic_empty(2, (int64_t[]){BLOCK, FEAT}, MIMIC_F32);
    mimic_tensor *y = mimic_empty(2, (int64_t[]){BLOCK, 1}, MIMIC_F32);
    int rc = x && y ? 0 : -1;
    mimic_h5_write_opts o = {.extendable = true, .nchunk = 2, .chunk = {1024, FEAT}};
    mimic_h5_write_opts oy = {.extendable = true, .nchunk = 2, .chunk = {1024, 1}};
    for (int64_t b = 0; rc == 0 && b < ROWS / BLOCK; b++) {
        float *px = mimic_data(x), *py = mimic_data(y);
        for (int64_t i = 0; i < BLOCK; i++) {
            for (int j = 0; j < FEAT; j++)
                px[i * FEAT + j] = (float)((b * BLOCK + i) % 1000) * 0.001f + (float)j;
            py[i] = (float)(b * BLOCK + i);
        }
        if (b == 0)
            rc = mimic_h5_write(f, "x", x, &o) || mimic_h5_write(f, "y", y, &oy);
        else
            rc = mimic_h5_append(f, "x", x) || mimic_h5_append(f, "y", y);
    }
    mimic_tensor_free(x);
    mimic_tensor_free(y);
    if (mimic_h5_close(f) != 0)
        rc = -1;
    return rc;
}

/* Runs `mimic -e script`; returns the child's peak RSS in KiB (-1 on failure). */
static long run(const char *exe, const char *script, double *secs)
{
    double t0 = now();
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        execl(exe, exe, "-e", script, (char *)NULL);
        _exit(127);
    }
    int status = 0;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return -1;
    *secs = now() - t0;
    return ru.ru_maxrss;
}

int main(void)
{
    const char *b = getenv("MIMIC_BUILD");
    char exe[512], path[] = "/tmp/mimic_bench_data_XXXXXX";
    snprintf(exe, sizeof exe, "%s/bin/mimic", b ? b : "build");
    /* The loader's per-batch ops are small: OpenMP workers would spin more
     * than they work and blur the timing. RSS, the point here, is unaffected. */
    setenv("OMP_NUM_THREADS", "1", 0);
    if (!getenv("LUA_PATH"))
        setenv("LUA_PATH", "lua/?.lua;lua/?/init.lua;;", 1);
    int fd = mkstemp(path);
    if (fd < 0)
        return 1;
    close(fd);
    if (make_file(path) != 0) {
        fprintf(stderr, "bench_data: cannot write %s: %s\n", path, mimic_errmsg());
        unlink(path);
        return 1;
    }
    const long budget = 8L << 20;
    double file_mb = (double)ROWS * (FEAT + 1) * 4 / (1 << 20);
    char stream[1024], whole[512];
    snprintf(stream, sizeof stream,
             "local d = require('mimic').data\n"
             "local L = d.loader{file = '%s', batch = 256, memory = %ld, seed = 1}\n"
             "local n = 0 for b in L:batches() do n = n + b.x:size(1) end\n"
             "assert(n == %d and L:memory().peak <= %ld)\n",
             path, budget, ROWS, budget);
    snprintf(whole, sizeof whole,
             "local d = require('mimic').data\n"
             "local x, y = d.read('%s', 'x'), d.read('%s', 'y')\n"
             "assert(x:size(1) == %d)\n",
             path, path, ROWS);
    const char *empty = "local d = require('mimic').data";
    double ts = 0, tw = 0, te = 0;
    long base = run(exe, empty, &te), rs = run(exe, stream, &ts), rw = run(exe, whole, &tw);
    unlink(path);
    if (rs < 0 || rw < 0 || base < 0) {
        fprintf(stderr, "bench_data: a child run failed (exe %s)\n", exe);
        return 1;
    }
    printf("file: %d rows x %d + 1 float32 = %.1f MiB; loader budget %.1f MiB\n\n", ROWS, FEAT, file_mb,
           (double)budget / (1 << 20));
    printf("| run | peak RSS (MiB) | above an idle mimic (MiB) | time (s) |\n|---|---|---|---|\n");
    printf("| idle `mimic` (baseline) | %.1f | 0 | %.2f |\n", base / 1024.0, te);
    printf("| loader, one epoch | %.1f | %.1f | %.2f |\n", rs / 1024.0, (rs - base) / 1024.0, ts);
    printf("| whole file read | %.1f | %.1f | %.2f |\n", rw / 1024.0, (rw - base) / 1024.0, tw);
    printf("\nstreaming uses %.2fx the extra memory of reading the whole file\n",
           (double)(rs - base) / (double)(rw - base > 0 ? rw - base : 1));
    return 0;
}
