/* Radiation: the neural gas optics adapter (nn_optics.c, rad_nn.h). Model
 * files are written here through the C API: one dense layer with known
 * weights and the contract's encoders, so k and the Planck fractions have
 * closed forms:
 *   tau model:    k_g = exp(mu_g + sig_g (c_g + w_g (t - T0) / TS))     (log + standard)
 *   planck model: raw_g = m_g + s_g (d_g + v_g (ln p - LP0))             (standard)
 * against which the adapter's tau = k col_dry and its clamped, per-band
 * renormalised fractions are checked. The k-distribution is the shipped table
 * (data/kdist/mimic-lw-kdist.h5, or $MIMIC_KDIST): it is the fallback, and
 * flagged layers must equal its values exactly. */
#include "check.h"
#include "mimic/guard.h"
#include "mimic/modelfile.h"
#include "mimic/rad_nn.h"
#include "mimic/rad_rte.h"

#include <stdlib.h>
#include <unistd.h>

#define NF MIMIC_RAD_NN_NFEAT
#define T0 250.0
#define TS 50.0
#define LP0 10.8 /* ln(49000 Pa) */

static mimic_rad_kdist *KD;
static int NG; /* KD->ngpt */
static char DIR_[256];

/* counting allocator: "no allocation after the buffers have grown" */
static long long NALLOC;
static void *count_alloc(void *ud, size_t n)
{
    (void)ud;
    NALLOC++;
    return malloc(n);
}
static void *count_realloc(void *ud, void *p, size_t n)
{
    (void)ud;
    NALLOC++;
    return realloc(p, n);
}
static void count_free(void *ud, void *p)
{
    (void)ud;
    free(p);
}

static const char *path_of(const char *name)
{
    static char buf[8][320];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", DIR_, name);
    return buf[k];
}

/* --- model files --------------------------------------------------------------------- */

/* Per-g parameters of a one-dense-layer model: out_g = A_g + B_g (C_g + W_g x_enc[feat]),
 * where x_enc = (x - x0) / xs is the standardised input feature `feat`. */
typedef struct lin_spec {
    const char *file, *in_name, *in_units, *out_name, *out_units;
    int64_t nin, nout;
    int feat;            /* the feature the outputs depend on */
    double x0, xs;       /* its standardisation */
    const double *A, *B, *C, *W;
    int log_out;         /* output encoder log then standard (tau), else standard */
} lin_spec;

static int save_linear(const lin_spec *s)
{
    int64_t nin = s->nin, nout = s->nout;
    double *w = calloc((size_t)(nin * nout), sizeof *w), *ia = calloc((size_t)nin, 8), *ib = calloc((size_t)nin, 8);
    for (int64_t g = 0; g < nout; g++)
        w[g * nin + s->feat] = s->W[g];
    for (int64_t i = 0; i < nin; i++)
        ia[i] = 0, ib[i] = 1;
    ia[s->feat] = s->x0, ib[s->feat] = s->xs;
    mimic_model *m = mimic_model_new(MIMIC_F64, nin);
    int rc = m ? mimic_model_add_dense(m, nout, w, s->C) : -1;
    mimic_io_var in = {s->in_name, s->in_units, nin}, out = {s->out_name, s->out_units, nout};
    mimic_contract c = {1, 1, &in, &out};
    mimic_enc_stage ist = {MIMIC_ENC_STANDARD, nin, ia, ib, 0, 0};
    mimic_enc_stage ost[2] = {{MIMIC_ENC_LOG, 0, NULL, NULL, 0, 0}, {MIMIC_ENC_STANDARD, nout, s->A, s->B, 0, 0}};
    mimic_encoder ie = {1, &ist}, oe = {s->log_out ? 2 : 1, s->log_out ? ost : ost + 1};
    if (!rc)
        rc = mimic_model_save(path_of(s->file), m, &c, &ie, &oe, NULL);
    mimic_model_free(m);
    free(w), free(ia), free(ib);
    return rc;
}

/* the tau model's parameters (lower: "tau.h5"; hot: w huge so k overflows above ~300 K) */
static double TA[256], TB[256], TC[256], TW[256], TWHOT[256];
/* the planck model's: raw_g = PA + PB (PC + PV (ln p - LP0)) */
static double PA[256], PB[256], PC[256], PV[256], PNEG[256];
/* upper pair: constant k and fractions (W = 0) */
static double UA[256], UC[256], ZERO[256], ONE[256], UPC[256];

static lin_spec tau_spec(const char *file)
{
    return (lin_spec){file, "features", MIMIC_RAD_NN_FEATURE_UNITS, "k", "cm^2", NF, NG, 1, T0, TS, TA, TB, TC, TW, 1};
}
static lin_spec pf_spec(const char *file)
{
    return (lin_spec){file, "features", MIMIC_RAD_NN_FEATURE_UNITS, "planck_frac", "1", NF, NG, 0, LP0, 1, PA, PB, PC,
                      PV, 0};
}

static int make_models(void)
{
    for (int g = 0; g < NG; g++) {
        int b = g / KD->ngb, j = g % KD->ngb;
        TA[g] = -50 + 0.05 * j - 0.1 * b, TB[g] = 2, TC[g] = -0.5 + 0.01 * g, TW[g] = 0.2 + 0.001 * g;
        TWHOT[g] = 500;
        PA[g] = (j - 2) * (1 + 0.1 * b), PB[g] = 0.5, PC[g] = 0.2, PV[g] = 0.3 * (j % 3 == 0);
        PNEG[g] = b == 3 ? -5 : PA[g]; /* band 3 entirely negative: unusable */
        UA[g] = -45 - 0.02 * g, UC[g] = 0, ZERO[g] = 0, ONE[g] = 1, UPC[g] = 1 + j;
    }
    lin_spec s[16];
    int n = 0;
    s[n++] = tau_spec("tau.h5");
    s[n++] = pf_spec("pf.h5");
    s[n] = tau_spec("tau_hot.h5"), s[n++].W = TWHOT;
    s[n] = pf_spec("pf_neg.h5"), s[n++].A = PNEG;
    /* upper pair: k_g = exp(UA_g), raw fractions 1 + j */
    s[n] = tau_spec("tau_up.h5"), s[n].A = UA, s[n].B = ONE, s[n].C = UC, s[n++].W = ZERO;
    s[n] = pf_spec("pf_up.h5"), s[n].A = UPC, s[n].B = ONE, s[n].C = ZERO, s[n++].W = ZERO;
    /* contract mismatches */
    s[n] = tau_spec("bad_size.h5"), s[n++].nout = NG - 1;
    s[n] = tau_spec("bad_units.h5"), s[n++].in_units = "mimic-rad-nn-features-0";
    s[n] = tau_spec("bad_name.h5"), s[n].out_name = "tau", s[n++].out_units = "1";
    s[n] = tau_spec("bad_kunits.h5"), s[n++].out_units = "m^2";
    s[n] = tau_spec("bad_nin.h5"), s[n++].nin = NF - 1;
    for (int i = 0; i < n; i++)
        if (save_linear(&s[i]))
            return -1;
    return 0;
}

/* --- expected values ------------------------------------------------------------------ */

static void tau_hand(const mimic_rad_layer *L, const double *A, const double *B, const double *C, const double *W,
                     double *tau)
{
    for (int g = 0; g < NG; g++)
        tau[g] = exp(A[g] + B[g] * (C[g] + W[g] * (L->t - T0) / TS)) * L->col_dry;
}

static void pf_hand(const mimic_rad_layer *L, const double *A, const double *B, const double *C, const double *V,
                    double *pf)
{
    for (int b = 0; b < KD->nband; b++) {
        double sum = 0, *f = pf + b * KD->ngb;
        for (int j = 0; j < KD->ngb; j++) {
            int g = b * KD->ngb + j;
            f[j] = fmax(A[g] + B[g] * (C[g] + V[g] * (log(L->p) - LP0)), 0);
            sum += f[j];
        }
        for (int j = 0; j < KD->ngb; j++)
            f[j] /= sum;
    }
}

static mimic_rad_layer layer(double p, double t)
{
    mimic_rad_layer L;
    memset(&L, 0, sizeof L);
    L.p = p, L.t = t, L.col_dry = 2e23 * (1 + p / 1e5);
    L.vmr[MIMIC_GAS_H2O] = 3e-3 * p / 1e5 + 3e-6;
    L.vmr[MIMIC_GAS_CO2] = 4e-4, L.vmr[MIMIC_GAS_O3] = 5e-8, L.vmr[MIMIC_GAS_CH4] = 1.8e-6;
    L.vmr[MIMIC_GAS_N2O] = 3.2e-7, L.vmr[MIMIC_GAS_CO] = 1e-7, L.vmr[MIMIC_GAS_O2] = 0.209;
    L.vmr[MIMIC_GAS_N2] = 0.781, L.vmr[MIMIC_GAS_CFC11] = 2.3e-10, L.vmr[MIMIC_GAS_CFC12] = 5.2e-10;
    return L;
}

static mimic_rad_nn_options opts(const char *tau, const char *pf)
{
    mimic_rad_nn_options o;
    memset(&o, 0, sizeof o);
    o.tau_path = path_of(tau), o.planck_path = path_of(pf);
    o.open.precision = MIMIC_PRECISION_F64;
    return o;
}

static int rel_close(const double *a, const double *b, int64_t n, double tol)
{
    for (int64_t i = 0; i < n; i++)
        if (!(fabs(a[i] - b[i]) <= tol * fabs(b[i]) + 1e-300)) {
            fprintf(stderr, "  element %lld: %.17g vs expected %.17g\n", (long long)i, a[i], b[i]);
            return 0;
        }
    return 1;
}

/* Layers to_ref[i] != 0 must hold the reference kernel's values bit for bit,
 * the others the hand-computed surrogate (tau weights W) within tol. */
static void check_layers(const mimic_rad_layer *L, int n, const int *to_ref, const double *tau, const double *pf,
                         const double *W, double tol)
{
    double *et = malloc(sizeof(double) * NG), *ep = malloc(sizeof(double) * NG);
    for (int i = 0; i < n; i++) {
        if (to_ref[i]) {
            CHECK_OK(mimic_rad_gas_optics(KD, &L[i], 1, et, ep));
            CHECK(memcmp(tau + i * NG, et, sizeof(double) * NG) == 0);
            CHECK(memcmp(pf + i * NG, ep, sizeof(double) * NG) == 0);
        } else {
            tau_hand(&L[i], TA, TB, TC, W, et);
            pf_hand(&L[i], PA, PB, PC, PV, ep);
            CHECK(rel_close(tau + i * NG, et, NG, tol));
            CHECK(rel_close(pf + i * NG, ep, NG, 1e-12));
        }
    }
    free(et), free(ep);
}

/* --- tests ------------------------------------------------------------------------------ */

TEST(features_of_a_hand_layer)
{
    mimic_rad_layer L = layer(50000, 260);
    L.vmr[MIMIC_GAS_O3] = 0; /* floored at 1e-12 */
    L.vmr[MIMIC_GAS_HFC32] = 1e-12;
    double x[NF];
    mimic_rad_nn_features(&L, 1, x);
    CHECK_NEAR(x[0], log(50000), 1e-15);
    CHECK(x[1] == 260);
    CHECK_NEAR(x[2], log(3e-3 * 0.5 + 3e-6), 1e-14);
    CHECK_NEAR(x[3], log(1e-12), 1e-14);
    CHECK_NEAR(x[4], log(4e-4), 1e-14);
    CHECK_NEAR(x[5], 1.8, 1e-14);   /* ch4 ppm */
    CHECK_NEAR(x[6], 0.32, 1e-15);  /* n2o ppm */
    CHECK_NEAR(x[7], 0.1, 1e-15);   /* co ppm */
    CHECK(x[8] == 0);               /* ccl4 */
    CHECK_NEAR(x[9], 0.23, 1e-15);  /* cfc11 ppb */
    CHECK_NEAR(x[10], 0.52, 1e-15); /* cfc12 ppb */
    CHECK_NEAR(x[15], 1e-3, 1e-18); /* hfc32 ppb */
    CHECK(strcmp(mimic_rad_nn_feature_name(0), "ln_p") == 0 && strcmp(mimic_rad_nn_feature_name(17), "cf4") == 0);
    CHECK(mimic_rad_nn_feature_name(18) == NULL && mimic_rad_nn_feature_name(-1) == NULL);
}

TEST(contract_mismatch_refused)
{
    mimic_rad_nn *s = (mimic_rad_nn *)&s;
    mimic_rad_nn_options o = opts("bad_size.h5", "pf.h5");
    CHECK_ERR(mimic_rad_nn_open(&o, KD, &s), MIMIC_EVALUE, "has 255 features but the k-distribution has 256");
    CHECK(s == NULL);
    CHECK(strstr(mimic_errmsg(), "bad_size.h5") != NULL);
    o = opts("bad_units.h5", "pf.h5");
    CHECK_ERR(mimic_rad_nn_open(&o, KD, &s), MIMIC_EVALUE, "units 'mimic-rad-nn-features-0'");
    CHECK(strstr(mimic_errmsg(), "bad_units.h5") && strstr(mimic_errmsg(), MIMIC_RAD_NN_FEATURE_UNITS));
    o = opts("bad_name.h5", "pf.h5");
    CHECK_ERR(mimic_rad_nn_open(&o, KD, &s), MIMIC_EVALUE, "has output 'tau'; the contract is 'k' [256]");
    o = opts("bad_kunits.h5", "pf.h5");
    CHECK_ERR(mimic_rad_nn_open(&o, KD, &s), MIMIC_EVALUE, "units 'm^2', expected 'cm^2'");
    o = opts("bad_nin.h5", "pf.h5");
    CHECK_ERR(mimic_rad_nn_open(&o, KD, &s), MIMIC_EVALUE, "'features' [17]");
    o = opts("pf.h5", "tau.h5"); /* swapped */
    CHECK_ERR(mimic_rad_nn_open(&o, KD, &s), MIMIC_EVALUE, "swapped");
    CHECK(strstr(mimic_errmsg(), "tau model") != NULL);
    o = opts("tau.h5", "bad_size.h5"); /* a tau file as the planck model */
    CHECK_ERR(mimic_rad_nn_open(&o, KD, &s), MIMIC_EVALUE, "planck model");
    /* the upper pair is checked the same way, and named */
    o = opts("tau.h5", "pf.h5");
    o.tau_upper_path = path_of("tau_up.h5"), o.planck_upper_path = path_of("bad_size.h5");
    o.p_split = KD->p_split;
    CHECK_ERR(mimic_rad_nn_open(&o, KD, &s), MIMIC_EVALUE, "upper planck model");
    CHECK(s == NULL);
}

TEST(missing_file_and_bad_options)
{
    mimic_rad_nn *s = NULL;
    mimic_rad_nn_options o = opts("nowhere.h5", "pf.h5");
    CHECK_ERR(mimic_rad_nn_open(&o, KD, &s), MIMIC_EIO, "nowhere.h5");
    CHECK(strstr(mimic_errmsg(), "tau model") != NULL);
    o = opts("tau.h5", "pf.h5");
    o.guard_path = path_of("no_guard.h5");
    CHECK_ERR(mimic_rad_nn_open(&o, KD, &s), MIMIC_EIO, "no_guard.h5");
    o = opts("tau.h5", "pf.h5");
    o.planck_path = NULL;
    CHECK_ERR(mimic_rad_nn_open(&o, KD, &s), MIMIC_EARG, "planck_path is NULL");
    o = opts("tau.h5", "pf.h5");
    o.tau_upper_path = path_of("tau_up.h5");
    CHECK_ERR(mimic_rad_nn_open(&o, KD, &s), MIMIC_EARG, "planck_upper_path is NULL");
    o.planck_upper_path = path_of("pf_up.h5");
    CHECK_ERR(mimic_rad_nn_open(&o, KD, &s), MIMIC_EARG, "p_split");
    o = opts("tau.h5", "pf.h5");
    o.guard_upper_path = path_of("x.h5");
    CHECK_ERR(mimic_rad_nn_open(&o, KD, &s), MIMIC_EARG, "without the upper pair");
    CHECK_ERR(mimic_rad_nn_open(&o, NULL, &s), MIMIC_EARG, "k-distribution is NULL");
    CHECK_ERR(mimic_rad_nn_optics(NULL, NULL, 1, NULL, NULL), MIMIC_EARG, "NULL");
    mimic_rad_nn_close(NULL);
    mimic_rad_nn_close(&s);
}

/* tau = k col_dry with k from the tau model; fractions clamped at 0 and
 * renormalised per band; invalid layers are refused as the reference does. */
TEST(k_times_col_dry_and_renormalised_fractions)
{
    mimic_rad_nn *s = NULL;
    mimic_rad_nn_options o = opts("tau.h5", "pf.h5");
    CHECK_OK(mimic_rad_nn_open(&o, KD, &s));
    if (!s)
        return;
    enum { N = 7 };
    mimic_rad_layer L[N];
    for (int i = 0; i < N; i++)
        L[i] = layer(200 * pow(2.5, i), 200 + 15 * i);
    L[3].col_dry = 0; /* tau 0 */
    double *tau = malloc(sizeof(double) * N * NG), *pf = malloc(sizeof(double) * N * NG);
    double *et = malloc(sizeof(double) * NG), *ep = malloc(sizeof(double) * NG);
    CHECK_OK(mimic_rad_nn_optics(s, L, N, tau, pf));
    for (int i = 0; i < N; i++) {
        tau_hand(&L[i], TA, TB, TC, TW, et);
        pf_hand(&L[i], PA, PB, PC, PV, ep);
        CHECK(rel_close(tau + i * NG, et, NG, 1e-12));
        CHECK(rel_close(pf + i * NG, ep, NG, 1e-12));
        for (int b = 0; b < KD->nband; b++) {
            double sum = 0;
            for (int j = 0; j < KD->ngb; j++) {
                CHECK(pf[i * NG + b * KD->ngb + j] >= 0);
                sum += pf[i * NG + b * KD->ngb + j];
            }
            CHECK_NEAR(sum, 1, 1e-14);
        }
        CHECK(pf[i * NG + 0] == 0 && pf[i * NG + 1] == 0); /* raw < 0: clamped (j = 0, 1) */
    }
    CHECK(tau[3 * NG + 5] == 0);
    mimic_rad_nn_stats st;
    mimic_rad_nn_get_stats(s, &st);
    CHECK(st.layers == N && st.fallback == 0);
    /* the reference kernel's input checks, nothing counted */
    L[2].p = -1;
    CHECK_ERR(mimic_rad_nn_optics(s, L, N, tau, pf), MIMIC_EVALUE, "layer 2 has p = -1");
    CHECK(strstr(mimic_rad_nn_last_error(s), "layer 2") != NULL);
    L[2].p = 1000, L[4].vmr[MIMIC_GAS_CO2] = NAN;
    CHECK_ERR(mimic_rad_nn_optics(s, L, N, tau, pf), MIMIC_EVALUE, "vmr of co2");
    CHECK_ERR(mimic_rad_nn_optics(s, L, -1, tau, pf), MIMIC_EARG, "nlay");
    CHECK_OK(mimic_rad_nn_optics(s, L, 0, NULL, NULL));
    mimic_rad_nn_get_stats(s, &st);
    CHECK(st.layers == N && st.fallback == 0);
    mimic_rad_nn_close(&s);
    CHECK(s == NULL);
    free(tau), free(pf), free(et), free(ep);
}

/* A guard fitted on 240..260 K: layers outside get the reference kernel's
 * tau AND fractions, bit for bit; the others the surrogate's. */
TEST(guard_flags_go_to_the_reference)
{
    enum { NT = 40, N = 6 };
    double x[NT * NF];
    mimic_rad_layer tr[NT];
    for (int i = 0; i < NT; i++) {
        tr[i] = layer(2e4 + 2e3 * i, 240 + 20.0 * i / (NT - 1));
        mimic_rad_nn_features(&tr[i], 1, x + i * NF);
    }
    mimic_guard_options go = {0.0, 0, 0};
    mimic_guard *g = mimic_guard_fit(x, MIMIC_F64, NT, NF, &go);
    CHECK_PTR(g);
    CHECK_OK(mimic_guard_save(g, path_of("guard.h5")));
    mimic_guard_free(g);
    mimic_rad_nn *s = NULL;
    mimic_rad_nn_options o = opts("tau.h5", "pf.h5");
    o.guard_path = path_of("guard.h5");
    CHECK_OK(mimic_rad_nn_open(&o, KD, &s));
    if (!s)
        return;
    mimic_rad_layer L[N] = {layer(3e4, 250), layer(3e4, 300), layer(5e4, 245), layer(4e4, 200),
                            layer(4e4, 280), layer(3.5e4, 255)};
    int flagged[N] = {0, 1, 0, 1, 1, 0};
    double *tau = malloc(sizeof(double) * N * NG), *pf = malloc(sizeof(double) * N * NG);
    CHECK_OK(mimic_rad_nn_optics(s, L, N, tau, pf));
    check_layers(L, N, flagged, tau, pf, TW, 1e-12);
    mimic_rad_nn_stats st;
    mimic_rad_nn_get_stats(s, &st);
    CHECK(st.layers == N && st.fallback == 3);
    CHECK_OK(mimic_rad_nn_optics(s, L, 2, tau, pf));
    mimic_rad_nn_get_stats(s, &st);
    CHECK(st.layers == N + 2 && st.fallback == 4);
    mimic_rad_nn_close(&s);
    /* a guard of the wrong width is refused, naming the file */
    double x5[NT * 5];
    for (int i = 0; i < NT * 5; i++)
        x5[i] = i % 7;
    g = mimic_guard_fit(x5, MIMIC_F64, NT, 5, &go);
    CHECK_OK(mimic_guard_save(g, path_of("guard5.h5")));
    mimic_guard_free(g);
    o.guard_path = path_of("guard5.h5");
    CHECK_ERR(mimic_rad_nn_open(&o, KD, &s), MIMIC_EARG, "guard5.h5");
    free(tau), free(pf);
}

/* Non-finite outputs (k overflows above ~300 K) and unusable fractions (a
 * band all negative) go to the reference as well. */
TEST(nonfinite_outputs_go_to_the_reference)
{
    enum { N = 4 };
    mimic_rad_layer L[N] = {layer(3e4, 250), layer(3e4, 350), layer(6e4, 251), layer(8e4, 340)};
    double *tau = malloc(sizeof(double) * N * NG), *pf = malloc(sizeof(double) * N * NG);
    mimic_rad_nn *s = NULL;
    mimic_rad_nn_options o = opts("tau_hot.h5", "pf.h5");
    CHECK_OK(mimic_rad_nn_open(&o, KD, &s));
    CHECK_OK(mimic_rad_nn_optics(s, L, N, tau, pf));
    int hot[N];
    for (int i = 0; i < N; i++)
        hot[i] = L[i].t > 300;
    check_layers(L, N, hot, tau, pf, TWHOT, 1e-10);
    mimic_rad_nn_stats st;
    mimic_rad_nn_get_stats(s, &st);
    CHECK(st.layers == N && st.fallback == 2);
    mimic_rad_nn_close(&s);
    o = opts("tau.h5", "pf_neg.h5");
    CHECK_OK(mimic_rad_nn_open(&o, KD, &s));
    CHECK_OK(mimic_rad_nn_optics(s, L, N, tau, pf));
    int all[N] = {1, 1, 1, 1};
    check_layers(L, N, all, tau, pf, TW, 0);
    mimic_rad_nn_get_stats(s, &st);
    CHECK(st.layers == N && st.fallback == N);
    mimic_rad_nn_close(&s);
    free(tau), free(pf);
}

/* The upper pair for p < p_split: scattered and contiguous layers, with a
 * guard on the upper pair only. */
TEST(upper_lower_split_by_pressure)
{
    enum { N = 9 };
    mimic_rad_nn *s = NULL;
    mimic_rad_nn_options o = opts("tau.h5", "pf.h5");
    o.tau_upper_path = path_of("tau_up.h5"), o.planck_upper_path = path_of("pf_up.h5");
    o.p_split = KD->p_split;
    CHECK_OK(mimic_rad_nn_open(&o, KD, &s));
    if (!s)
        return;
    double ps = KD->p_split;
    mimic_rad_layer L[N] = {layer(0.5 * ps, 220), layer(2 * ps, 250), layer(0.1 * ps, 230),
                            layer(ps, 240),        layer(0.999 * ps, 260), layer(5 * ps, 270),
                            layer(8 * ps, 280),    layer(0.01 * ps, 210), layer(3 * ps, 290)};
    mimic_rad_layer L0[N]; /* interleaved, kept for the guard below */
    memcpy(L0, L, sizeof L);
    double *tau = malloc(sizeof(double) * N * NG), *pf = malloc(sizeof(double) * N * NG);
    double *et = malloc(sizeof(double) * NG), *ep = malloc(sizeof(double) * NG);
    for (int pass = 0; pass < 2; pass++) {
        /* pass 0: interleaved regimes; pass 1: sorted top-first (a contiguous prefix) */
        if (pass == 1)
            for (int i = 0; i < N; i++)
                for (int j = i + 1; j < N; j++)
                    if (L[j].p < L[i].p) {
                        mimic_rad_layer t = L[i];
                        L[i] = L[j], L[j] = t;
                    }
        CHECK_OK(mimic_rad_nn_optics(s, L, N, tau, pf));
        for (int i = 0; i < N; i++) {
            if (L[i].p < ps) {
                tau_hand(&L[i], UA, ONE, UC, ZERO, et);
                pf_hand(&L[i], UPC, ONE, ZERO, ZERO, ep);
            } else {
                tau_hand(&L[i], TA, TB, TC, TW, et);
                pf_hand(&L[i], PA, PB, PC, PV, ep);
            }
            CHECK(rel_close(tau + i * NG, et, NG, 1e-12));
            CHECK(rel_close(pf + i * NG, ep, NG, 1e-12));
        }
    }
    mimic_rad_nn_close(&s);
    /* a guard on the upper pair (fitted at 200..215 K) flags upper layers only */
    enum { NT = 30 };
    double x[NT * NF];
    for (int i = 0; i < NT; i++) {
        mimic_rad_layer t = layer(0.01 * ps + 0.03 * ps * i, 200 + 15.0 * i / (NT - 1));
        mimic_rad_nn_features(&t, 1, x + i * NF);
    }
    mimic_guard_options go = {0.0, 0, 0};
    mimic_guard *g = mimic_guard_fit(x, MIMIC_F64, NT, NF, &go);
    CHECK_OK(mimic_guard_save(g, path_of("guard_up.h5")));
    mimic_guard_free(g);
    o.guard_upper_path = path_of("guard_up.h5");
    CHECK_OK(mimic_rad_nn_open(&o, KD, &s));
    memcpy(L, L0, sizeof L);
    CHECK_OK(mimic_rad_nn_optics(s, L, N, tau, pf));
    int nfb = 0;
    for (int i = 0; i < N; i++) {
        if (L[i].p < ps && !(L[i].t <= 215 && L[i].p <= 0.88 * ps)) {
            CHECK_OK(mimic_rad_gas_optics(KD, &L[i], 1, et, ep));
            CHECK(memcmp(tau + i * NG, et, sizeof(double) * NG) == 0);
            nfb++;
        } else if (L[i].p < ps) {
            tau_hand(&L[i], UA, ONE, UC, ZERO, et);
            CHECK(rel_close(tau + i * NG, et, NG, 1e-12));
        } else {
            tau_hand(&L[i], TA, TB, TC, TW, et);
            CHECK(rel_close(tau + i * NG, et, NG, 1e-12));
        }
    }
    mimic_rad_nn_stats st;
    mimic_rad_nn_get_stats(s, &st);
    CHECK(nfb == 3 && st.layers == N && st.fallback == nfb);
    mimic_rad_nn_close(&s);
    free(tau), free(pf), free(et), free(ep);
}

/* More layers than one block (2048) with both regimes interleaved (so both go
 * through the scatter buffers) and guard flags in every block: each layer
 * still gets its own regime's values or the reference's. */
TEST(blocks_of_scattered_layers_with_flags)
{
    enum { N = 5000 };
    mimic_rad_nn *s = NULL;
    mimic_rad_nn_options o = opts("tau.h5", "pf.h5");
    o.tau_upper_path = path_of("tau_up.h5"), o.planck_upper_path = path_of("pf_up.h5");
    o.p_split = KD->p_split, o.guard_path = path_of("guard.h5"); /* from guard_flags_go_to_the_reference */
    CHECK_OK(mimic_rad_nn_open(&o, KD, &s));
    if (!s)
        return;
    mimic_rad_layer *L = malloc(sizeof *L * N);
    for (int i = 0; i < N; i++)
        L[i] = i % 2 ? layer(3e4 + 12.0 * i, i % 3 ? 250 : 300) : layer(0.5 * KD->p_split, 220);
    double *tau = malloc(sizeof(double) * N * NG), *pf = malloc(sizeof(double) * N * NG);
    double *et = malloc(sizeof(double) * NG), *ep = malloc(sizeof(double) * NG);
    CHECK_OK(mimic_rad_nn_optics(s, L, N, tau, pf));
    int nfb = 0, bad = 0;
    for (int i = 0; i < N && bad < 3; i++) {
        int ok;
        if (i % 2 && L[i].t > 260) {
            CHECK_OK(mimic_rad_gas_optics(KD, &L[i], 1, et, ep));
            ok = !memcmp(tau + (int64_t)i * NG, et, sizeof(double) * NG) && !memcmp(pf + (int64_t)i * NG, ep, sizeof(double) * NG);
            nfb++;
        } else {
            if (i % 2)
                tau_hand(&L[i], TA, TB, TC, TW, et), pf_hand(&L[i], PA, PB, PC, PV, ep);
            else
                tau_hand(&L[i], UA, ONE, UC, ZERO, et), pf_hand(&L[i], UPC, ONE, ZERO, ZERO, ep);
            ok = rel_close(tau + (int64_t)i * NG, et, NG, 1e-12) && rel_close(pf + (int64_t)i * NG, ep, NG, 1e-12);
        }
        if (!ok) {
            fprintf(stderr, "  layer %d differs\n", i);
            bad++;
        }
    }
    CHECK(bad == 0);
    mimic_rad_nn_stats st;
    mimic_rad_nn_get_stats(s, &st);
    CHECK(nfb == 833 && st.layers == N && st.fallback == nfb);
    mimic_rad_nn_close(&s);
    free(L), free(tau), free(pf), free(et), free(ep);
}

/* Buffers grow to the largest nlay, then calls allocate nothing; results do
 * not depend on the thread count or on how layers are batched. */
TEST(no_allocation_after_growth_and_threads)
{
    enum { N = 3000 };
    mimic_rad_layer *L = malloc(sizeof *L * N);
    for (int i = 0; i < N; i++)
        L[i] = layer(100 + 99000.0 * ((i * 37) % N) / N, 200 + 0.03 * i);
    double *tau = malloc(sizeof(double) * N * NG), *pf = malloc(sizeof(double) * N * NG);
    double *t1 = malloc(sizeof(double) * N * NG), *p1 = malloc(sizeof(double) * N * NG);
    mimic_rad_nn *s = NULL, *s1 = NULL;
    mimic_rad_nn_options o = opts("tau.h5", "pf.h5");
    o.open.deterministic = 1;
    o.open.num_threads = 2;
    CHECK_OK(mimic_rad_nn_open(&o, KD, &s));
    o.open.num_threads = 1;
    CHECK_OK(mimic_rad_nn_open(&o, KD, &s1));
    if (!s || !s1)
        return;
    CHECK_OK(mimic_rad_nn_optics(s, L, N, tau, pf));
    long long before = NALLOC;
    CHECK_OK(mimic_rad_nn_optics(s, L, N / 3, tau, pf));
    CHECK_OK(mimic_rad_nn_optics(s, L + 5, N - 5, tau + 5 * NG, pf + 5 * NG));
    CHECK_OK(mimic_rad_nn_optics(s, L, N, tau, pf));
    CHECK(NALLOC == before);
    /* one thread, in pieces of 60 layers */
    for (int i = 0; i < N; i += 60)
        CHECK_OK(mimic_rad_nn_optics(s1, L + i, N - i < 60 ? N - i : 60, t1 + (int64_t)i * NG, p1 + (int64_t)i * NG));
    CHECK(memcmp(tau, t1, sizeof(double) * N * NG) == 0);
    CHECK(memcmp(pf, p1, sizeof(double) * N * NG) == 0);
    mimic_rad_nn_close(&s);
    mimic_rad_nn_close(&s1);
    free(L), free(tau), free(pf), free(t1), free(p1);
}

/* mimic_rad_nn_optics_fn inside mimic_rad_lw_fluxes: the same fluxes as
 * the surrogate called on every layer at once, then the Planck sources and
 * the solver by hand (the driver's documented recipe). */
TEST(optics_fn_in_lw_fluxes)
{
    enum { NC = 3, NL = 12, NV = NL + 1 };
    double plev[NC * NV], tlev[NC * NV], play[NC * NL], tlay[NC * NL], vmr[NC * NL * MIMIC_NGAS];
    double tsfc[NC] = {290, 300, 280}, emis[NC] = {1, 0.95, 0.98};
    mimic_rad_layer *L = malloc(sizeof *L * NC * NL);
    for (int c = 0; c < NC; c++) {
        for (int i = 0; i < NV; i++) {
            plev[c * NV + i] = 1e5 * pow((double)i / NL, 2) + (i == 0 ? 50 : 0) + 1000 * c * (i > 0);
            tlev[c * NV + i] = 210 + (80.0 + 5 * c) * i / NL;
        }
        for (int i = 0; i < NL; i++) {
            int k = c * NL + i;
            play[k] = 0.5 * (plev[c * NV + i] + plev[c * NV + i + 1]);
            tlay[k] = 0.5 * (tlev[c * NV + i] + tlev[c * NV + i + 1]);
            mimic_rad_layer t = layer(play[k], tlay[k]);
            memcpy(vmr + (int64_t)k * MIMIC_NGAS, t.vmr, sizeof t.vmr);
            L[k] = t;
            L[k].col_dry = mimic_rad_col_dry(plev[c * NV + i], plev[c * NV + i + 1], t.vmr[MIMIC_GAS_H2O]);
        }
    }
    mimic_rad_nn *s = NULL;
    mimic_rad_nn_options o = opts("tau.h5", "pf.h5");
    o.open.deterministic = 1;
    CHECK_OK(mimic_rad_nn_open(&o, KD, &s));
    if (!s)
        return;
    mimic_rad_atm atm = {NC, NL, play, tlay, plev, tlev, tsfc, emis, vmr};
    mimic_rad_optics opt;
    mimic_rad_nn_optics_fn(s, &opt);
    CHECK(opt.ngpt == NG && opt.nu1 == KD->nu1 && opt.nu2 == KD->nu2 && opt.weight == NULL && opt.ud == s);
    double up[NC * NV], dn[NC * NV], hr[NC * NL];
    CHECK_OK(mimic_rad_lw_fluxes(&atm, &opt, 1, up, dn, hr));
    mimic_rad_nn_stats st;
    mimic_rad_nn_get_stats(s, &st);
    CHECK(st.layers == NC * NL && st.fallback == 0);

    /* by hand */
    size_t nl = (size_t)NC * NL * NG;
    double *tau = malloc(nl * 8), *pf = malloc(nl * 8), *lay_src = malloc(nl * 8);
    double *lev_frac = malloc((size_t)NC * NV * NG * 8), *lev_src = malloc((size_t)NC * NV * NG * 8);
    double *sfc_src = malloc((size_t)NC * NG * 8);
    CHECK_OK(mimic_rad_nn_optics(s, L, NC * NL, tau, pf));
    for (int c = 0; c < NC; c++) {
        const double *f = pf + (size_t)c * NL * NG;
        double *lf = lev_frac + (size_t)c * NV * NG;
        for (int g = 0; g < NG; g++) {
            lf[g] = f[g];
            lf[NL * NG + g] = f[(NL - 1) * NG + g];
        }
        for (int l = 1; l < NL; l++)
            for (int g = 0; g < NG; g++)
                lf[l * NG + g] = 0.5 * (f[(l - 1) * NG + g] + f[l * NG + g]);
        CHECK_OK(mimic_rad_planck_source(NL, tlay + c * NL, NG, KD->nu1, KD->nu2, f, lay_src + (size_t)c * NL * NG));
        CHECK_OK(mimic_rad_planck_source(NV, tlev + c * NV, NG, KD->nu1, KD->nu2, lf, lev_src + (size_t)c * NV * NG));
        CHECK_OK(mimic_rad_planck_source(1, tsfc + c, NG, KD->nu1, KD->nu2, f + (NL - 1) * NG, sfc_src + c * NG));
    }
    mimic_rad_lw_input in = {NC, NL, NG, 1, tau, lay_src, lev_src, sfc_src, emis, NULL, NULL};
    double up2[NC * NV], dn2[NC * NV];
    mimic_rad_lw_output out = {up2, dn2, NULL, NULL};
    CHECK_OK(mimic_rad_lw_solve(&in, &out));
    CHECK(rel_close(up, up2, NC * NV, 1e-12));
    CHECK(rel_close(dn + 1, dn2 + 1, NC * NV - 1, 1e-12));
    CHECK(up[0] > 50 && up[0] < 500 && dn[NL] > 10);
    mimic_rad_nn_close(&s);
    free(L), free(tau), free(pf), free(lay_src), free(lev_frac), free(lev_src), free(sfc_src);
}

int main(void)
{
    mimic_allocator a = {count_alloc, count_realloc, count_free, NULL};
    mimic_set_allocator(&a);
    const char *kp = getenv("MIMIC_KDIST") ? getenv("MIMIC_KDIST") : "data/kdist/mimic-lw-kdist.h5";
    KD = mimic_rad_kdist_load(kp);
    if (!KD) {
        fprintf(stderr, "the k-distribution %s: %s (run from the repository root, or set MIMIC_KDIST)\n", kp,
                mimic_errmsg());
        return 1;
    }
    NG = KD->ngpt;
    if (NG != 256 || KD->ngb != 16) {
        fprintf(stderr, "this test expects the shipped 16 x 16 table, got %d x %d\n", KD->nband, KD->ngb);
        return 1;
    }
    snprintf(DIR_, sizeof DIR_, "/tmp/mimic_radnn_XXXXXX");
    if (!mkdtemp(DIR_) || make_models()) {
        fprintf(stderr, "making the model files failed: %s\n", mimic_errmsg());
        return 1;
    }
    RUN(features_of_a_hand_layer);
    RUN(contract_mismatch_refused);
    RUN(missing_file_and_bad_options);
    RUN(k_times_col_dry_and_renormalised_fractions);
    RUN(guard_flags_go_to_the_reference);
    RUN(nonfinite_outputs_go_to_the_reference);
    RUN(upper_lower_split_by_pressure);
    RUN(blocks_of_scattered_layers_with_flags);
    RUN(no_allocation_after_growth_and_threads);
    RUN(optics_fn_in_lw_fluxes);
    const char *files[] = {"tau.h5", "pf.h5", "tau_hot.h5", "pf_neg.h5", "tau_up.h5", "pf_up.h5", "bad_size.h5",
                           "bad_units.h5", "bad_name.h5", "bad_kunits.h5", "bad_nin.h5", "guard.h5", "guard5.h5",
                           "guard_up.h5"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++)
        unlink(path_of(files[i]));
    rmdir(DIR_);
    mimic_rad_kdist_free(KD);
    return check_failed_tests ? 1 : 0;
}
