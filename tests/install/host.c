/* A C host built against an installed mimic only (tests/install/run): opens
 * the model file gen_model.lua wrote in DIR (argument 1), runs it on the raw
 * inputs of DIR/data.txt through the embedding API and compares with the
 * outputs listed there. Exit 0 when they agree to 1e-9 (relative). */
#include <mimic.h>

#include <math.h>
#include <stdio.h>

#define NMAX 64

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    char path[1024];
    snprintf(path, sizeof path, "%s/data.txt", argv[1]);
    FILE *f = fopen(path, "r");
    int n = 0;
    if (!f || fscanf(f, "%d", &n) != 1 || n < 1 || n > NMAX)
        return 2;
    static double x[NMAX][5], y[NMAX][3], heat[NMAX][2], flux[NMAX];
    for (int i = 0; i < n; i++)
        for (int j = 0; j < 5; j++)
            if (fscanf(f, "%lf", &x[i][j]) != 1)
                return 2;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < 3; j++)
            if (fscanf(f, "%lf", &y[i][j]) != 1)
                return 2;
    fclose(f);

    snprintf(path, sizeof path, "%s/model.h5", argv[1]);
    mimic_handle *h = NULL;
    if (mimic_open(path, NULL, &h) != MIMIC_OK) {
        fprintf(stderr, "open: %s\n", mimic_last_error(NULL));
        return 1;
    }
    /* t and q are column blocks of the row-major x[n][5]: strides 5 and 1. */
    mimic_array t = {&x[0][0], MIMIC_F64, 3, 5, 1}, q = {&x[0][3], MIMIC_F64, 2, 5, 1};
    mimic_array ht = {heat, MIMIC_F64, 2, 2, 1}, fl = {flux, MIMIC_F64, 1, 1, 1};
    int rc = mimic_bind(h, MIMIC_INPUT, "t", "K", &t);
    if (!rc) rc = mimic_bind(h, MIMIC_INPUT, "q", NULL, &q);
    if (!rc) rc = mimic_bind(h, MIMIC_OUTPUT, "heat", NULL, &ht);
    if (!rc) rc = mimic_bind(h, MIMIC_OUTPUT, "flux", NULL, &fl);
    if (!rc) rc = mimic_run(h, n);
    if (rc) {
        fprintf(stderr, "run: %s\n", mimic_last_error(h));
        mimic_close(&h);
        return 1;
    }
    double err = 0;
    for (int i = 0; i < n; i++) {
        double d[3] = {heat[i][0] - y[i][0], heat[i][1] - y[i][1], flux[i] - y[i][2]};
        for (int j = 0; j < 3; j++)
            err = fmax(err, fabs(d[j]) / (1 + fabs(y[i][j])));
    }
    printf("%s: %d samples, max relative difference %.3g\n", mimic_model_hash_of(h), n, err);
    mimic_close(&h);
    return err <= 1e-9 ? 0 : 1;
}
