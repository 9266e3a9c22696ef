/* A host calling a Lua script through mimic/script.h (docs/embedding.md, "Lua
 * from the host"): the same states through the compiled model (mimic_run) and
 * through source.lua (the model plus physical constraints), compared on what
 * the constraints enforce. Links libmimic_lua (pkg-config mimic-lua).
 *
 *   script_demo MODEL SCRIPT      (the script reads the model from RD_MODEL)
 */
#include <mimic/embed.h>
#include <mimic/script.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define N 4096
#define Q 1500.0
#define DT 1.2e-3

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

/* What the constraints are about: energy created per cell over a step (K),
 * fuel driven below zero, fuel produced. */
static void report(const char *what, const double *fuel, const double *rt, const double *ry, double seconds)
{
    double worst = 0;
    int negative = 0, produced = 0;
    for (int i = 0; i < N; i++) {
        worst = fmax(worst, fabs((rt[i] + Q * ry[i]) * DT));
        negative += fuel[i] + DT * ry[i] < 0;
        produced += ry[i] > 0;
    }
    printf("| %s | %.3g | %d | %d | %.3f |\n", what, worst, negative, produced, 1e6 * seconds / N);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: script_demo MODEL SCRIPT  (and RD_MODEL=MODEL in the environment)\n");
        return 2;
    }
    static double temp[N], fuel[N], rt[2][N], ry[2][N];
    /* states across the flame: fresh, burning and burnt gas */
    for (int i = 0; i < N; i++) {
        const double s = (double)i / (N - 1);
        temp[i] = 300.0 + 1400.0 * s;
        fuel[i] = fmax(0.0, 0.93 * (1.0 - s) + 0.01 * sin(40.0 * s));
    }
    const mimic_array at = {temp, MIMIC_F64, 1, 1, 1}, af = {fuel, MIMIC_F64, 1, 1, 1};

    mimic_handle *h = NULL;
    const mimic_options mo = {.num_threads = 1};
    if (mimic_open(argv[1], &mo, &h) != MIMIC_OK) {
        fprintf(stderr, "script_demo: %s\n", mimic_last_error(NULL));
        return 1;
    }
    const mimic_array o0 = {rt[0], MIMIC_F64, 1, 1, 1}, o1 = {ry[0], MIMIC_F64, 1, 1, 1};
    if (mimic_bind(h, MIMIC_INPUT, "temperature", "K", &at) || mimic_bind(h, MIMIC_INPUT, "fuel", "1", &af) ||
        mimic_bind(h, MIMIC_OUTPUT, "heat_release", "K/s", &o0) || mimic_bind(h, MIMIC_OUTPUT, "fuel_rate", "1/s", &o1)) {
        fprintf(stderr, "script_demo: %s\n", mimic_last_error(h));
        mimic_close(&h);
        return 1;
    }
    int rc = mimic_run(h, N); /* the first call warms up (buffers, thread pool): timed below */
    double t0 = now();
    if (rc == MIMIC_OK)
        rc = mimic_run(h, N);
    const double t_model = now() - t0;
    if (rc != MIMIC_OK) {
        fprintf(stderr, "script_demo: mimic_run: %s\n", mimic_last_error(h));
        mimic_close(&h);
        return 1;
    }
    mimic_close(&h);

    mimic_script *s = NULL;
    if (mimic_script_open(argv[2], &s) != MIMIC_OK) {
        fprintf(stderr, "script_demo: %s\n", mimic_script_error(NULL));
        return 1;
    }
    const mimic_array in[2] = {at, af};
    mimic_array out[2] = {{rt[1], MIMIC_F64, 1, 1, 1}, {ry[1], MIMIC_F64, 1, 1, 1}};
    rc = mimic_script_call(s, "source", 2, in, 2, out, N);
    t0 = now();
    if (rc == MIMIC_OK)
        rc = mimic_script_call(s, "source", 2, in, 2, out, N);
    const double t_script = now() - t0;
    if (rc != MIMIC_OK) {
        fprintf(stderr, "script_demo: %s\n", mimic_script_error(s));
        mimic_script_close(&s);
        return 1;
    }
    /* errors come back as messages, never as a Lua error unwinding the host */
    rc = mimic_script_call(s, "no_such_function", 2, in, 2, out, N);
    printf("calling a missing function: status %d, \"%s\"\n\n", rc, mimic_script_error(s));
    mimic_script_close(&s);

    printf("%d states across the flame\n\n", N);
    printf("| path | max energy error per step (K) | cells driven below Y = 0 | cells producing fuel | us per sample |\n"
           "|---|---:|---:|---:|---:|\n");
    report("model file (mimic_run)", fuel, rt[0], ry[0], t_model);
    report("source.lua (mimic_script_call)", fuel, rt[1], ry[1], t_script);
    return 0;
}
