/* Neural gas optics benchmark: the surrogate (rad_nn.h: two MLPs through the
 * embedding API, then tau = k col_dry and renormalised Planck fractions) vs
 * the reference kernel (mimic_rad_gas_optics: k-table interpolation) on the
 * same layers, timed in the same run.
 *
 * Layers: every RFMIP column x layer of all 18 experiments (data/rfmip, or
 * $MIMIC_RFMIP_DIR): 18 x 100 x 60 = 108000 layers, read with mimic's HDF5
 * reader (mimic/data.h), gases as mimic.rfmip.load reads them; col_dry as
 * mimic_rad_lw_fluxes computes it. The kernels run one experiment (6000
 * layers) per call.
 * Surrogate: models/rad_lw_tau.h5 + models/rad_lw_planck.h5 when both exist
 * (+ models/rad_lw_guard.h5), else untrained MLPs of the default shape
 * 18 -> 64 -> 64 -> 256 (tanh), written here with the C API and the
 * contract's encoders (the time does not depend on the weights). Plan
 * precision float32 (MIMIC_BENCH_PRECISION=f64 for float64).
 *
 * Tables: (1) gas optics alone, µs per layer, 1 and 2 threads, median of
 * MIMIC_BENCH_REPEATS (default 5) repeats, the kernels alternating
 * experiment by experiment within a repeat; (2) FLOP and bytes per
 * layer of both kernels, counted analytically (printed with the rule used);
 * (3) the whole longwave scheme, mimic_rad_lw_fluxes over the 100 columns of
 * each experiment (one optics call of 60 layers per column), with each
 * kernel: the time, its ratio, the fraction of the reference scheme's time
 * in the optics callback (mimic/profile.h regions) and the Amdahl bound
 * that fraction and the optics-only ratio give (same alternation). The
 * machine's load average and OMP_WAIT_POLICY are printed: on a machine
 * shared with other jobs, libgomp's default spin-waiting makes 2-thread calls
 * of a column (60 rows) many times slower; run with OMP_WAIT_POLICY=passive
 * there. Nothing here asserts on speed. */
#include "mimic/data.h"
#include "mimic/embed.h"
#include "mimic/guard.h"
#include "mimic/modelfile.h"
#include "mimic/profile.h"
#include "mimic/rad_nn.h"
#include "mimic/rad_rte.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "benchutil.h"

#define NEXP 18
#define NF MIMIC_RAD_NN_NFEAT
#define HID 64

static int repeats = 5;

static void die_if(int failed, const char *what)
{
    if (failed) {
        fprintf(stderr, "bench_radiation: %s failed: %s\n", what, mimic_errmsg());
        exit(1);
    }
}

/* --- RFMIP --------------------------------------------------------------------------- */

typedef struct rfmip {
    int nsite, nlay;
    double *p_lay, *p_lev;          /* [site][lay], [site][lev] (same for every experiment) */
    double *sfc_emis;               /* [site] */
    double *t_lay, *t_lev, *t_sfc;  /* [exp][site][lay] ... */
    double *vmr;                    /* [exp][site][lay][NGAS] */
    mimic_rad_layer *lay;           /* [exp][site][lay] */
} rfmip;

static double *read_f64(mimic_h5 *f, const char *name, int64_t expect)
{
    mimic_h5_read_opts o = {.dtype = MIMIC_F64, .finite = true};
    mimic_tensor *t = mimic_h5_read(f, name, &o);
    die_if(!t, name);
    if (mimic_numel(t) != expect) {
        fprintf(stderr, "bench_radiation: %s has %lld values, expected %lld\n", name, (long long)mimic_numel(t),
                (long long)expect);
        exit(1);
    }
    double *v = malloc(sizeof(double) * (size_t)expect);
    memcpy(v, mimic_data(t), sizeof(double) * (size_t)expect);
    mimic_tensor_free(t);
    return v;
}

static double units_factor(mimic_h5 *f, const char *var)
{
    mimic_h5_attr a;
    die_if(mimic_h5_get_attr(f, var, "units", &a), "units attribute");
    double x = a.kind == MIMIC_H5_ATTR_NUMBER ? a.number : a.kind == MIMIC_H5_ATTR_STRING ? strtod(a.str, NULL) : 0;
    if (a.kind == MIMIC_H5_ATTR_STRING)
        mimic_free(a.str);
    if (!(x > 0)) {
        fprintf(stderr, "bench_radiation: units of %s are not a number\n", var);
        exit(1);
    }
    return x;
}

static void load_rfmip(rfmip *r, const char *dir)
{
    char path[512];
    snprintf(path, sizeof path, "%s/multiple_input4MIPs_radiation_RFMIP_UColorado-RFMIP-1-2_none.nc", dir);
    mimic_h5 *f = mimic_h5_open(path);
    die_if(!f, "opening the RFMIP input (set MIMIC_RFMIP_DIR)");
    mimic_h5_info info;
    die_if(mimic_h5_info_get(f, "temp_layer", &info), "temp_layer");
    if (info.ndim != 3 || info.shape[0] != NEXP) {
        fprintf(stderr, "bench_radiation: temp_layer is not [18, site, layer]\n");
        exit(1);
    }
    int ns = r->nsite = (int)info.shape[1], nl = r->nlay = (int)info.shape[2];
    int64_t sl = (int64_t)ns * nl, sv = (int64_t)ns * (nl + 1);
    r->p_lay = read_f64(f, "pres_layer", sl);
    r->p_lev = read_f64(f, "pres_level", sv);
    r->sfc_emis = read_f64(f, "surface_emissivity", ns);
    r->t_lay = read_f64(f, "temp_layer", NEXP * sl);
    r->t_lev = read_f64(f, "temp_level", NEXP * sv);
    r->t_sfc = read_f64(f, "surface_temperature", NEXP * ns);
    r->vmr = calloc((size_t)(NEXP * sl * MIMIC_NGAS), sizeof(double));
    static const char *const var[MIMIC_NGAS] = {
        "water_vapor", "carbon_dioxide_GM", "ozone", "methane_GM", "nitrous_oxide_GM", "carbon_monoxide_GM",
        "oxygen_GM", "nitrogen_GM", "carbon_tetrachloride_GM", "cfc11_GM", "cfc12_GM", "hcfc22_GM", "hfc143a_GM",
        "hfc125_GM", "hfc23_GM", "hfc32_GM", "hfc134a_GM", "cf4_GM"};
    for (int g = 0; g < MIMIC_NGAS; g++) {
        int profile = g == MIMIC_GAS_H2O || g == MIMIC_GAS_O3;
        double k = units_factor(f, var[g]);
        double *v = read_f64(f, var[g], profile ? NEXP * sl : NEXP);
        for (int64_t i = 0; i < NEXP * sl; i++)
            r->vmr[i * MIMIC_NGAS + g] = k * (profile ? v[i] : v[i / sl]);
        free(v);
    }
    mimic_h5_close(f);
    r->lay = malloc(sizeof(mimic_rad_layer) * (size_t)(NEXP * sl));
    for (int e = 0; e < NEXP; e++)
        for (int s = 0; s < ns; s++)
            for (int l = 0; l < nl; l++) {
                int64_t i = (e * (int64_t)ns + s) * nl + l;
                mimic_rad_layer *L = r->lay + i;
                L->p = r->p_lay[s * nl + l];
                L->t = r->t_lay[i];
                memcpy(L->vmr, r->vmr + i * MIMIC_NGAS, sizeof L->vmr);
                const double *pl = r->p_lev + (int64_t)s * (nl + 1);
                L->col_dry = mimic_rad_col_dry(pl[l], pl[l + 1], L->vmr[MIMIC_GAS_H2O]);
            }
}

/* --- an untrained surrogate of the default shape ------------------------------------------- */

static float frand(void) { return (float)rand() / (float)RAND_MAX * 2 - 1; }

static void save_untrained(const char *path, int planck, const double *xmean, const double *xstd, int ngpt)
{
    mimic_model *m = mimic_model_new(MIMIC_F32, NF);
    int64_t w[4] = {NF, HID, HID, ngpt};
    for (int l = 0; l < 3; l++) {
        float *W = malloc(sizeof(float) * (size_t)(w[l] * w[l + 1])), *b = malloc(sizeof(float) * (size_t)w[l + 1]);
        for (int64_t i = 0; i < w[l] * w[l + 1]; i++)
            W[i] = frand() / sqrtf((float)w[l]);
        for (int64_t i = 0; i < w[l + 1]; i++)
            b[i] = frand() / sqrtf((float)w[l]);
        die_if(mimic_model_add_dense(m, w[l + 1], W, b), "add_dense");
        if (l < 2)
            die_if(mimic_model_add_activation(m, MIMIC_ACT_TANH, 0, 0), "add_activation");
        free(W), free(b);
    }
    double *ya = malloc(sizeof(double) * (size_t)ngpt), *yb = malloc(sizeof(double) * (size_t)ngpt);
    for (int g = 0; g < ngpt; g++) /* ln k ~ -50 +- 1 (k ~ 1e-22 cm^2); fractions 1/16 +- 0.01 */
        ya[g] = planck ? 1.0 / 16 : -50, yb[g] = planck ? 0.01 : 1;
    mimic_io_var in = {"features", MIMIC_RAD_NN_FEATURE_UNITS, NF};
    mimic_io_var out = {planck ? "planck_frac" : "k", planck ? "1" : "cm^2", ngpt};
    mimic_contract c = {1, 1, &in, &out};
    mimic_enc_stage is = {MIMIC_ENC_STANDARD, NF, xmean, xstd, 0, 0};
    mimic_enc_stage os[2] = {{MIMIC_ENC_LOG, 0, NULL, NULL, 0, 0}, {MIMIC_ENC_STANDARD, ngpt, ya, yb, 0, 0}};
    mimic_encoder ie = {1, &is}, oe = {planck ? 1 : 2, planck ? os + 1 : os};
    die_if(mimic_model_save(path, m, &c, &ie, &oe, NULL), "mimic_model_save");
    mimic_model_free(m);
    free(ya), free(yb);
}

/* --- timing helpers ----------------------------------------------------------------------- */

typedef struct optics_kernel {
    const char *name;
    mimic_rad_nn *nn; /* NULL: the reference */
} optics_kernel;

static const mimic_rad_kdist *KD;
static rfmip RF;

/* All 108000 layers, one experiment per call, the nk kernels alternating
 * experiment by experiment (a shared machine's load then slows them alike);
 * t[j] gets kernel j's total. */
static void time_optics(const optics_kernel *k, int nk, double *tau, double *pf, double *t)
{
    int64_t per = (int64_t)RF.nsite * RF.nlay;
    for (int j = 0; j < nk; j++)
        t[j] = 0;
    for (int e = 0; e < NEXP; e++) {
        const mimic_rad_layer *L = RF.lay + e * per;
        for (int j = 0; j < nk; j++) {
            double t0 = now();
            if (k[j].nn)
                die_if(mimic_rad_nn_optics(k[j].nn, L, per, tau, pf), "mimic_rad_nn_optics");
            else
                die_if(mimic_rad_gas_optics(KD, L, per, tau, pf), "mimic_rad_gas_optics");
            t[j] += now() - t0;
        }
    }
}

/* The optics callback wrapped in a profiler region. */
typedef struct timed_optics {
    mimic_rad_optics inner;
    mimic_profiler *prof;
    int region;
} timed_optics;

static int timed_fn(void *ud, const mimic_rad_layer *lay, int nlay, double *tau, double *pf)
{
    timed_optics *t = ud;
    mimic_prof_begin(t->prof, t->region);
    int rc = t->inner.fn(t->inner.ud, lay, nlay, tau, pf);
    mimic_prof_end(t->prof, t->region);
    return rc;
}

/* The longwave scheme over the 18 experiments with each of the two optics,
 * alternating experiment by experiment; wall[j] gets the total time with
 * optics j, optics_s[j] the part spent in its callback (a profiler region). */
static void time_scheme(const mimic_rad_optics *opt, double *up, double *dn, double *hr, double *wall,
                        double *optics_s)
{
    mimic_profiler *p = mimic_profiler_new();
    die_if(!p, "mimic_profiler_new");
    timed_optics t[2];
    mimic_rad_optics w[2];
    for (int j = 0; j < 2; j++) {
        char name[16];
        snprintf(name, sizeof name, "optics%d", j);
        t[j] = (timed_optics){opt[j], p, mimic_prof_region(p, name)};
        w[j] = opt[j];
        w[j].fn = timed_fn, w[j].ud = &t[j];
        wall[j] = 0;
    }
    int ns = RF.nsite, nl = RF.nlay;
    for (int e = 0; e < NEXP; e++) {
        mimic_rad_atm atm = {ns, nl, RF.p_lay, RF.t_lay + (int64_t)e * ns * nl, RF.p_lev,
                             RF.t_lev + (int64_t)e * ns * (nl + 1), RF.t_sfc + (int64_t)e * ns, RF.sfc_emis,
                             RF.vmr + (int64_t)e * ns * nl * MIMIC_NGAS};
        for (int j = 0; j < 2; j++) {
            double t0 = now();
            die_if(mimic_rad_lw_fluxes(&atm, &w[j], 1, up, dn, hr), "mimic_rad_lw_fluxes");
            wall[j] += now() - t0;
        }
    }
    for (int j = 0; j < 2; j++) {
        mimic_prof_entry pe;
        die_if(mimic_prof_get(p, t[j].region, &pe), "mimic_prof_get");
        optics_s[j] = pe.total;
    }
    mimic_profiler_free(p);
}

/* The machine's load average (the bench shares the machine: say how busy it was). */
static void print_load(const char *when)
{
    FILE *f = fopen("/proc/loadavg", "r");
    char buf[128] = "unknown";
    if (f) {
        if (!fgets(buf, sizeof buf, f))
            snprintf(buf, sizeof buf, "unknown\n");
        fclose(f);
    }
    printf("load average %s: %s%s", when, buf, strchr(buf, '\n') ? "" : "\n");
}

/* --- analytic counts ------------------------------------------------------------------------ */

/* The reference kernel per layer (layer_optics in kdist.c), per band:
 * 8-corner interpolation of k and of the Planck fraction (16 FLOP per g-point
 * each: 8 multiplies, 8 adds), tau = halo + cmix k (2 per g-point), each
 * active minor absorber (mask bit set and column > 0) a 4-corner
 * interpolation scaled by its column and added (9 per g-point), 10
 * halocarbon terms (3 each); bytes: the float table entries read (8 x ngb x
 * 4 per major table, 4 x ngb x 4 per minor), the layer read (sizeof layer),
 * tau and fractions written (2 x ngpt x 8). Averaged over the RFMIP layers. */
static void reference_counts(double *flop, double *bytes)
{
    int64_t n = (int64_t)NEXP * RF.nsite * RF.nlay;
    double f = 0, b = 0;
    for (int64_t i = 0; i < n; i++) {
        const mimic_rad_layer *L = RF.lay + i;
        int part = L->p < KD->p_split ? 1 : 0;
        for (int band = 0; band < KD->nband; band++) {
            int nminor = 0;
            for (int m = 0; m < MIMIC_KDIST_NMINOR; m++) {
                double c = m == MIMIC_KDIST_MINOR_H2O_SELF ? L->vmr[MIMIC_GAS_H2O] : L->vmr[m];
                nminor += ((KD->minor_mask[band][part] >> m) & 1) && c > 0;
            }
            f += KD->ngb * (2 * 16 + 2 + 9 * nminor) + 10 * 3;
            b += 4.0 * KD->ngb * (2 * 8 + 4 * nminor);
        }
        b += sizeof(mimic_rad_layer) + 2.0 * KD->ngpt * 8;
    }
    *flop = f / (double)n, *bytes = b / (double)n;
}

int main(void)
{
    if (getenv("MIMIC_BENCH_REPEATS"))
        repeats = atoi(getenv("MIMIC_BENCH_REPEATS")) > 0 ? atoi(getenv("MIMIC_BENCH_REPEATS")) : 5;
    int f64 = getenv("MIMIC_BENCH_PRECISION") && strcmp(getenv("MIMIC_BENCH_PRECISION"), "f64") == 0;
    const char *kp = getenv("MIMIC_KDIST") ? getenv("MIMIC_KDIST") : "data/kdist/mimic-lw-kdist.h5";
    const char *rd = getenv("MIMIC_RFMIP_DIR") ? getenv("MIMIC_RFMIP_DIR") : "data/rfmip";
    mimic_rad_kdist *kd = mimic_rad_kdist_load(kp);
    die_if(!kd, "loading the k-distribution (set MIMIC_KDIST)");
    KD = kd;
    load_rfmip(&RF, rd);
    int64_t per = (int64_t)RF.nsite * RF.nlay, nall = NEXP * per;
    const int ngpt = kd->ngpt;

    /* the surrogate's files */
    char tau_path[512], pf_path[512], guard_path[512], dir[64] = "";
    int shipped = access("models/rad_lw_tau.h5", R_OK) == 0 && access("models/rad_lw_planck.h5", R_OK) == 0;
    double *x = malloc(sizeof(double) * (size_t)(nall * NF));
    mimic_rad_nn_features(RF.lay, nall, x);
    if (shipped) {
        snprintf(tau_path, sizeof tau_path, "models/rad_lw_tau.h5");
        snprintf(pf_path, sizeof pf_path, "models/rad_lw_planck.h5");
    } else {
        snprintf(dir, sizeof dir, "/tmp/mimic_bench_rad_XXXXXX");
        die_if(!mkdtemp(dir), "mkdtemp");
        double xm[NF] = {0}, xs[NF] = {0};
        for (int64_t i = 0; i < nall; i++)
            for (int j = 0; j < NF; j++)
                xm[j] += x[i * NF + j] / (double)nall;
        for (int64_t i = 0; i < nall; i++)
            for (int j = 0; j < NF; j++)
                xs[j] += pow(x[i * NF + j] - xm[j], 2) / (double)nall;
        for (int j = 0; j < NF; j++)
            xs[j] = fmax(sqrt(xs[j]), 1e-12);
        srand(7);
        snprintf(tau_path, sizeof tau_path, "%s/tau.h5", dir);
        snprintf(pf_path, sizeof pf_path, "%s/planck.h5", dir);
        save_untrained(tau_path, 0, xm, xs, ngpt);
        save_untrained(pf_path, 1, xm, xs, ngpt);
    }
    /* a guard: the shipped one, else fitted on these layers (ranges with a 5 %
     * margin + Mahalanobis distance at the largest training distance: it
     * flags none of them, so its row times the checks alone) */
    if (access("models/rad_lw_guard.h5", R_OK) == 0 && shipped) {
        snprintf(guard_path, sizeof guard_path, "models/rad_lw_guard.h5");
    } else {
        if (!dir[0]) {
            snprintf(dir, sizeof dir, "/tmp/mimic_bench_rad_XXXXXX");
            die_if(!mkdtemp(dir), "mkdtemp");
        }
        mimic_guard_options go = {0.05, 1, 1.0};
        mimic_guard *g = mimic_guard_fit(x, MIMIC_F64, nall, NF, &go);
        die_if(!g, "mimic_guard_fit");
        snprintf(guard_path, sizeof guard_path, "%s/guard.h5", dir);
        die_if(mimic_guard_save(g, guard_path), "mimic_guard_save");
        mimic_guard_free(g);
    }
    free(x);

    /* surrogates: 1 and 2 thread slots, with and without the guard */
    enum { NT = 2 };
    static const int thr[NT] = {1, 2};
    mimic_rad_nn *nn[NT][2];
    for (int t = 0; t < NT; t++)
        for (int gd = 0; gd < 2; gd++) {
            mimic_rad_nn_options o;
            memset(&o, 0, sizeof o);
            o.tau_path = tau_path, o.planck_path = pf_path;
            o.guard_path = gd ? guard_path : NULL;
            o.open.precision = f64 ? MIMIC_PRECISION_F64 : MIMIC_PRECISION_F32;
            o.open.num_threads = thr[t];
            die_if(mimic_rad_nn_open(&o, kd, &nn[t][gd]), "mimic_rad_nn_open");
        }
    double *tau = malloc(sizeof(double) * (size_t)(per * ngpt)), *pf = malloc(sizeof(double) * (size_t)(per * ngpt));

    printf("layers: %lld (RFMIP: %d experiments x %d sites x %d layers, read from %s), %d per call\n",
           (long long)nall, NEXP, RF.nsite, RF.nlay, rd, (int)per);
    printf("surrogate: %s, %s plan, 2 models 18 -> %d -> %d -> %d (tanh)%s\n",
           shipped ? "models/rad_lw_{tau,planck}.h5" : "UNTRAINED MLPs written by this bench (timing does not "
                                                       "depend on the weights)",
           f64 ? "float64" : "float32", HID, HID, ngpt, shipped ? " (shape assumed: see models/README.md)" : "");
    printf("guard: %s; repeats: %d (medians)\n", guard_path, repeats);
    print_load("at start (1, 5, 15 min; the machine has 2 cores, shared)");
    const char *wp = getenv("OMP_WAIT_POLICY");
    printf("OMP_WAIT_POLICY=%s%s\n", wp ? wp : "(unset: libgomp spins before sleeping)",
           wp ? "" : "; on a loaded machine 2-thread calls of a few rows lose most of their time to spinning "
                     "threads: OMP_WAIT_POLICY=passive");
    printf("\n");

    /* (1) optics alone */
    enum { NK = 3 };
    double med[NT][NK];
    int64_t fb[NT][NK];
    double *tt = malloc(sizeof(double) * (size_t)repeats * NK);
    for (int t = 0; t < NT; t++) {
        mimic_set_num_threads(thr[t]);
        optics_kernel k[NK] = {{"reference", NULL}, {"surrogate", nn[t][0]}, {"surrogate + guard", nn[t][1]}};
        double tk[NK];
        time_optics(k, NK, tau, pf, tk); /* warm-up */
        mimic_rad_nn_stats s0[NK], s1[NK];
        for (int j = 1; j < NK; j++)
            mimic_rad_nn_get_stats(k[j].nn, &s0[j]);
        for (int r = 0; r < repeats; r++) {
            time_optics(k, NK, tau, pf, tk);
            for (int j = 0; j < NK; j++)
                tt[j * repeats + r] = tk[j];
        }
        for (int j = 0; j < NK; j++) {
            med[t][j] = median(tt + j * repeats, repeats);
            fb[t][j] = 0;
            if (j) {
                mimic_rad_nn_get_stats(k[j].nn, &s1[j]);
                fb[t][j] = s1[j].fallback - s0[j].fallback;
            }
        }
    }
    printf("| gas optics of %lld layers | threads | s per pass | µs per layer | vs reference | fallback layers |\n",
           (long long)nall);
    printf("|---|---|---|---|---|---|\n");
    static const char *const kn[NK] = {"reference kernel (k-table)", "surrogate", "surrogate + guard"};
    for (int j = 0; j < NK; j++)
        for (int t = 0; t < NT; t++)
            printf("| %s | %d | %.4f | %.3f | %.2fx | %s%lld |\n", kn[j], thr[t], med[t][j], 1e6 * med[t][j] / (double)nall,
                   med[t][j] / med[t][0], j ? "" : "- ", j ? (long long)(fb[t][j] / repeats) : 0LL);
    printf("(vs reference: time ratio surrogate / reference, same thread count; > 1 means slower)\n\n");

    /* (2) analytic FLOP and bytes per layer */
    double rf, rb;
    reference_counts(&rf, &rb);
    int64_t widths[4] = {NF, HID, HID, ngpt};
    double macs = 0, wparams = 0, act = 0;
    for (int l = 0; l < 3; l++) {
        macs += (double)(widths[l] * widths[l + 1]);
        wparams += (double)(widths[l] * widths[l + 1] + widths[l + 1]);
        act += (double)widths[l + 1];
    }
    double es = f64 ? 8 : 4;
    int64_t chunk = (int64_t)(256 * 1024 / (2 * ngpt * es)) / 16 * 16;
    chunk = chunk < 32 ? 32 : chunk > 512 ? 512 : chunk;
    /* per model: 2 FLOP per multiply-add, + bias adds and tanh (1 each), +
     * input standardisation (2 per feature), output decoding (standard: 2,
     * + exp for the log stage of k: counted 1); per layer both models, + the
     * adapter: features (~5 logs, 10 multiplies: 15), tau = k col_dry (1 per
     * g-point), fractions clamp + sum + scale (3 per g-point). */
    double sf = 2 * (2 * macs + act + (act - ngpt) + 2 * NF) + (2 + 1) * ngpt + 2 * ngpt + 15 + ngpt + 3 * ngpt;
    /* bytes: weights read once per chunk of rows per model (shared by the
     * chunk), activations written and read once in the plan's precision,
     * features (host f64) read by each model, outputs written by the models
     * (f64) and read + written again by the adapter. */
    double sw = 2 * wparams * es / (double)chunk;
    double sa = 2 * (2 * (NF + act) * es + NF * 8.0) + 2 * ngpt * 8.0 + 2 * 2 * ngpt * 8.0 + NF * 8.0;
    printf("| per layer (analytic) | FLOP | bytes touched | FLOP / byte |\n|---|---|---|---|\n");
    printf("| reference kernel | %.0f | %.0f | %.2f |\n", rf, rb, rf / rb);
    printf("| surrogate (2 models + adapter) | %.0f | %.0f (weights %.0f + activations/IO %.0f) | %.2f |\n", sf,
           sw + sa, sw, sa, sf / (sw + sa));
    printf("reference: per band 8-corner interpolation of k and Planck fraction (16 FLOP/g-point each), tau "
           "(2/g-point), active minor absorbers (9/g-point each, mean over these layers), halocarbons (30); bytes = "
           "table floats read (8 x 16 x 4 B per major table, 4 x 16 x 4 B per minor) + layer + tau, fractions "
           "written.\n");
    printf("surrogate: 2 x (2 x %.0f multiply-adds + biases + tanh + encode/decode) + adapter; weights %.0f "
           "params/model read once per chunk of %lld rows (the plan's rule, model.h), activations in %s.\n\n", macs,
           wparams, (long long)chunk, f64 ? "float64" : "float32");

    /* (3) the longwave scheme */
    int ns = RF.nsite, nl = RF.nlay;
    double *up = malloc(sizeof(double) * (size_t)(ns * (nl + 1))), *dn = malloc(sizeof(double) * (size_t)(ns * (nl + 1)));
    double *hr = malloc(sizeof(double) * (size_t)(ns * nl));
    int sreps = repeats < 16 ? repeats : 16;
    printf("| longwave scheme, %d x %d columns (mimic_rad_lw_fluxes) | threads | s | optics s | optics fraction "
           "| speed-up | Amdahl bound (kernel c) | Amdahl bound (in-scheme c) | bound for c = 0 |\n"
           "|---|---|---|---|---|---|---|---|---|\n", NEXP, ns);
    for (int t = 0; t < NT; t++) {
        mimic_set_num_threads(thr[t]);
        mimic_rad_optics oref, onn;
        mimic_rad_kdist_optics(kd, &oref);
        mimic_rad_nn_optics_fn(nn[t][1], &onn);
        mimic_rad_optics both[2] = {oref, onn};
        double w[2][16], o[2][16], wr[2], or[2];
        time_scheme(both, up, dn, hr, wr, or); /* warm-up */
        for (int r = 0; r < sreps; r++) {
            time_scheme(both, up, dn, hr, wr, or);
            for (int j = 0; j < 2; j++)
                w[j][r] = wr[j], o[j][r] = or[j];
        }
        double W0 = median(w[0], sreps), W1 = median(w[1], sreps), O0 = median(o[0], sreps), O1 = median(o[1], sreps);
        double f = O0 / W0, ck = med[t][2] / med[t][0], cs = O1 / O0;
        printf("| reference kernel | %d | %.3f | %.3f | %.2f | 1 | - | - | %.2fx |\n", thr[t], W0, O0, f,
               mimic_amdahl_bound(f, 0));
        printf("| surrogate + guard | %d | %.3f | %.3f | %.2f | %.2fx | %.2fx (c = %.2f) | %.2fx (c = %.2f) | - |\n",
               thr[t], W1, O1, O1 / W1, W0 / W1, mimic_amdahl_bound(f, ck), ck, mimic_amdahl_bound(f, cs), cs);
    }
    printf("(speed-up: reference scheme time / surrogate scheme time; Amdahl bound 1 / ((1 - f) + f c), f = the "
           "reference scheme's optics fraction, c = surrogate / reference optics time: from table 1 (batches of "
           "%lld layers) or measured inside the scheme (one column of %d layers per call); < 1 is a slow-down)\n",
           (long long)per, nl);
    printf("(the reference kernel parallelises over layers from 64 layers per call: one column of %d runs on one "
           "thread; the surrogate's models split a 60-row call over the handle's threads)\n", nl);
    print_load("at end");

    for (int t = 0; t < NT; t++)
        for (int gd = 0; gd < 2; gd++)
            mimic_rad_nn_close(&nn[t][gd]);
    if (dir[0]) {
        char p[600];
        const char *files[] = {"tau.h5", "planck.h5", "guard.h5"};
        for (int i = 0; i < 3; i++) {
            snprintf(p, sizeof p, "%s/%s", dir, files[i]);
            unlink(p);
        }
        rmdir(dir);
    }
    free(tau), free(pf), free(tt), free(up), free(dn), free(hr);
    free(RF.p_lay), free(RF.p_lev), free(RF.sfc_emis), free(RF.t_lay), free(RF.t_lev), free(RF.t_sfc), free(RF.vmr);
    free(RF.lay);
    mimic_rad_kdist_free(kd);
    return 0;
}
