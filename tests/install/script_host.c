/* A C host running a Lua script through an installed libmimic_lua
 * (mimic/script.h; tests/install/run): the script loads DIR/model.h5 with
 * mimic.load_model (pure-Lua modules from PREFIX/share/lua/5.4) and the host
 * calls it on float32 inputs stored feature-major (x[5][n]), comparing with
 * DIR/data.txt. Arguments: the script, DIR. */
#include <mimic/script.h>

#include <math.h>
#include <stdio.h>

#define NMAX 64

int main(int argc, char **argv)
{
    if (argc < 3)
        return 2;
    char path[1024];
    snprintf(path, sizeof path, "%s/data.txt", argv[2]);
    FILE *f = fopen(path, "r");
    int n = 0;
    if (!f || fscanf(f, "%d", &n) != 1 || n < 1 || n > NMAX)
        return 2;
    static float x[5][NMAX];
    static double y[NMAX][3], out[NMAX][3];
    for (int i = 0; i < n; i++)
        for (int j = 0; j < 5; j++) {
            double v;
            if (fscanf(f, "%lf", &v) != 1)
                return 2;
            x[j][i] = (float)v;
        }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < 3; j++)
            if (fscanf(f, "%lf", &y[i][j]) != 1)
                return 2;
    fclose(f);

    mimic_script *s = NULL;
    if (mimic_script_open(argv[1], &s) != MIMIC_OK) {
        fprintf(stderr, "open: %s\n", mimic_script_error(NULL));
        return 1;
    }
    mimic_array in = {x, MIMIC_F32, 5, 1, NMAX}, o = {out, MIMIC_F64, 3, 3, 1};
    int rc = mimic_script_call(s, "surrogate", 1, &in, 1, &o, n);
    if (rc) {
        fprintf(stderr, "call: %s\n", mimic_script_error(s));
        mimic_script_close(&s);
        return 1;
    }
    double err = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < 3; j++)
            err = fmax(err, fabs(out[i][j] - y[i][j]) / (1 + fabs(y[i][j])));
    printf("script: %d samples, max relative difference %.3g (float32 inputs)\n", n, err);
    mimic_script_close(&s);
    return err <= 1e-4 ? 0 : 1;
}
