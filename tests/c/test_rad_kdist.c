/* Radiation: the correlated-k reduction (kdist_build.c), the table container
 * and the reference gas-optics kernel (kdist.c). A tiny table (one or two
 * bands, H2O + CO2, few nodes) is built from a reduced line-by-line model;
 * references are the table entries themselves (interpolation), the LBL
 * spectra integrated directly over wavenumber (band means, transmittances),
 * and closed forms (linearity, sums). */
#include "check.h"
#include "mimic/io.h"
#include "mimic/rad_kdist.h"
#include "mimic/rad_rte.h"

#include <stdlib.h>
#include <unistd.h>

static mimic_rad_lbl *LBL;       /* H2O + CO2 lines, 600-730 cm^-1 */
static mimic_rad_kdist *KD;      /* one band 630-700, 4 pressures, 3 temperatures, 5 eta */
static const int KEY[4] = {MIMIC_GAS_CO2, MIMIC_GAS_H2O, MIMIC_GAS_CO2, MIMIC_GAS_H2O};
static const double BLO[1] = {630}, BHI[1] = {700};
static char TMPDIR_[256];

static void tiny_options(mimic_rad_kdist_build_options *o)
{
    mimic_rad_kdist_build_options_default(o);
    o->nband = 1, o->band_lo = BLO, o->band_hi = BHI, o->key = KEY;
    o->np = 4, o->p_min = 100, o->p_max = 1e5, o->p_split = 3000;
    o->nt = 3, o->t_min = 220, o->dt = 30;
    o->neta = 5;
    o->gases = (1u << MIMIC_GAS_H2O) | (1u << MIMIC_GAS_CO2);
}

static int64_t major_index(const mimic_rad_kdist *k, int b, int it, int slot, int ie)
{
    return ((((int64_t)b * k->nt + it) * k->nslot + slot) * k->neta + ie) * k->ngb;
}
static int64_t minor_index(const mimic_rad_kdist *k, int m, int b, int it, int slot)
{
    return ((((int64_t)m * k->nband + b) * k->nt + it) * k->nslot + slot) * k->ngb;
}

/* A layer at node pressure j, temperature t, whose key-species mixture has
 * parameter eta and column col (c1 + r_ref c2 = col * scale). */
static mimic_rad_layer layer_at(const mimic_rad_kdist *k, double p, double t, double eta, double scale)
{
    mimic_rad_layer L;
    memset(&L, 0, sizeof L);
    L.p = p, L.t = t, L.col_dry = 1e22;
    int part = p < k->p_split ? 1 : 0;
    L.vmr[k->key[0][part][0]] = eta * scale;
    L.vmr[k->key[0][part][1]] = (1 - eta) / k->r_ref[0][part] * scale;
    return L;
}

static int slot_of(const mimic_rad_kdist *k, int j)
{
    return j >= k->jsplit ? j + 1 : j;
}

TEST(table_shape)
{
    CHECK(KD->nband == 1 && KD->ngb == 16 && KD->ngpt == 16 && KD->np == 4 && KD->nslot == 5);
    CHECK(KD->jsplit >= 1 && KD->jsplit <= 2);
    CHECK_NEAR(KD->p_split, exp(KD->lnp[KD->jsplit]), 1e-9 * KD->p_split);
    mimic_rad_kdist_build_options o;
    mimic_rad_kdist_build_options_default(&o);
    /* 16 bands x 16 g x 14 T x 43 slots x (2 x 9 eta + 9 minor) floats + halocarbons */
    CHECK(mimic_rad_kdist_table_bytes(&o) == 4 * (16LL * 16 * 14 * 43 * (2 * 9 + 9) + 10 * 16));
    CHECK(mimic_rad_kdist_table_bytes(&o) <= 20000000);
    /* Planck fractions of every node sum to 1; k >= 0. */
    for (int64_t r = 0; r < (int64_t)KD->nt * KD->nslot * KD->neta; r++) {
        double s = 0;
        for (int g = 0; g < KD->ngb; g++) {
            s += KD->pfrac[r * KD->ngb + g];
            CHECK(KD->k_major[r * KD->ngb + g] >= 0);
        }
        CHECK_NEAR(s, 1, 1e-6);
    }
    /* k(g) is sorted within each row: the k-distribution is monotone. */
    for (int64_t r = 0; r < (int64_t)KD->nt * KD->nslot * KD->neta; r++)
        for (int g = 0; g + 1 < KD->ngb; g++)
            CHECK(KD->k_major[r * KD->ngb + g] <= KD->k_major[r * KD->ngb + g + 1] * (1 + 1e-6));
    /* Minor tables: the key species have none, the self continuum and nothing else has one */
    CHECK(KD->minor_mask[0][0] == (1u << MIMIC_KDIST_MINOR_H2O_SELF));
    CHECK(KD->minor_mask[0][1] == (1u << MIMIC_KDIST_MINOR_H2O_SELF));
}

/* Expected tau at a node from the table entries themselves. */
static void node_expect(const mimic_rad_kdist *k, const mimic_rad_layer *L, int slot, int it, int ie, double *tau,
                        double *pf)
{
    int part = L->p < k->p_split ? 1 : 0;
    double cmix = L->col_dry * (L->vmr[k->key[0][part][0]] + k->r_ref[0][part] * L->vmr[k->key[0][part][1]]);
    double h = L->vmr[MIMIC_GAS_H2O], cself = L->col_dry * h * h / (1 + h);
    const float *K = k->k_major + major_index(k, 0, it, slot, ie), *F = k->pfrac + major_index(k, 0, it, slot, ie);
    const float *S = k->k_minor + minor_index(k, MIMIC_KDIST_MINOR_H2O_SELF, 0, it, slot);
    for (int g = 0; g < k->ngb; g++) {
        tau[g] = cmix * K[g] + cself * S[g];
        pf[g] = F[g];
    }
}

TEST(exact_at_nodes)
{
    double tau[16], pf[16], et[16], ep[16];
    for (int j = 0; j < KD->np; j++)
        for (int it = 0; it < KD->nt; it++)
            for (int ie = 0; ie < KD->neta; ie++) {
                double eta = (double)ie / (KD->neta - 1);
                mimic_rad_layer L = layer_at(KD, exp(KD->lnp[j]), KD->tnode[it], eta, 1e-3);
                CHECK_OK(mimic_rad_gas_optics(KD, &L, 1, tau, pf));
                node_expect(KD, &L, slot_of(KD, j), it, ie, et, ep);
                for (int g = 0; g < 16; g++) {
                    CHECK_NEAR(tau[g], et[g], 1e-9 * et[g] + 1e-300);
                    CHECK_NEAR(pf[g], ep[g], 1e-9);
                }
            }
}

TEST(linear_between_nodes)
{
    double tau[16], pf[16], a[16], pa[16], b[16], pb[16];
    int j = KD->np - 2, it = 1, ie = 2; /* lower part: nodes j, j + 1 */
    double p0 = exp(KD->lnp[j]), p1 = exp(KD->lnp[j + 1]), eta = 0.5;
    /* halfway in T */
    for (int w = 1; w <= 3; w++) {
        double f = w / 4.0, t = KD->tnode[it] * (1 - f) + KD->tnode[it + 1] * f;
        mimic_rad_layer L = layer_at(KD, p0, t, eta, 1e-3), La = layer_at(KD, p0, KD->tnode[it], eta, 1e-3),
                        Lb = layer_at(KD, p0, KD->tnode[it + 1], eta, 1e-3);
        CHECK_OK(mimic_rad_gas_optics(KD, &L, 1, tau, pf));
        CHECK_OK(mimic_rad_gas_optics(KD, &La, 1, a, pa));
        CHECK_OK(mimic_rad_gas_optics(KD, &Lb, 1, b, pb));
        for (int g = 0; g < 16; g++) {
            CHECK_NEAR(tau[g], (1 - f) * a[g] + f * b[g], 1e-6 * tau[g]);
            CHECK_NEAR(pf[g], (1 - f) * pa[g] + f * pb[g], 1e-6);
        }
    }
    /* in ln p: tau / cmix is linear in ln p (cmix itself scales with col only) */
    for (int w = 1; w <= 3; w++) {
        double f = w / 4.0, p = exp(log(p0) * (1 - f) + log(p1) * f);
        mimic_rad_layer L = layer_at(KD, p, KD->tnode[it], 1.0, 1e-3), La = layer_at(KD, p0, KD->tnode[it], 1.0, 1e-3),
                        Lb = layer_at(KD, p1, KD->tnode[it], 1.0, 1e-3);
        CHECK_OK(mimic_rad_gas_optics(KD, &L, 1, tau, pf));
        CHECK_OK(mimic_rad_gas_optics(KD, &La, 1, a, pa));
        CHECK_OK(mimic_rad_gas_optics(KD, &Lb, 1, b, pb));
        for (int g = 0; g < 16; g++)
            CHECK_NEAR(tau[g], (1 - f) * a[g] + f * b[g], 1e-6 * tau[g]);
    }
    /* in eta (no H2O self term when H2O is held fixed: compare tau/cmix of the table) */
    {
        double e0 = (double)ie / (KD->neta - 1), e1 = (double)(ie + 1) / (KD->neta - 1), f = 0.3;
        mimic_rad_layer L = layer_at(KD, p0, KD->tnode[it], e0 * (1 - f) + e1 * f, 1e-3);
        CHECK_OK(mimic_rad_gas_optics(KD, &L, 1, tau, pf));
        int slot = slot_of(KD, j);
        const float *K0 = KD->k_major + major_index(KD, 0, it, slot, ie), *K1 = K0 + KD->ngb;
        const float *S = KD->k_minor + minor_index(KD, MIMIC_KDIST_MINOR_H2O_SELF, 0, it, slot);
        double h = L.vmr[MIMIC_GAS_H2O], cself = L.col_dry * h * h / (1 + h);
        double cmix = L.col_dry * 1e-3;
        for (int g = 0; g < 16; g++)
            CHECK_NEAR(tau[g], cmix * ((1 - f) * K0[g] + f * K1[g]) + cself * S[g], 1e-6 * tau[g]);
    }
}

static double urand(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return ((*s >> 8) & 0xffffff) / 16777216.0;
}

/* (The kernel interpolates in float, the table's precision: 1e-6 relative
 * between nodes; node weights 0 and 1 are exact.) */
static void random_layers(mimic_rad_layer *L, int n, unsigned seed)
{
    for (int i = 0; i < n; i++) {
        memset(&L[i], 0, sizeof L[i]);
        L[i].p = exp(log(30) + urand(&seed) * log(2e5 / 30)); /* beyond the nodes on both sides */
        L[i].t = 180 + 150 * urand(&seed);
        L[i].col_dry = 1e21 + 1e23 * urand(&seed);
        L[i].vmr[MIMIC_GAS_H2O] = 1e-6 * exp(10 * urand(&seed));
        L[i].vmr[MIMIC_GAS_CO2] = 2e-4 + 1e-3 * urand(&seed);
        L[i].vmr[MIMIC_GAS_O3] = 1e-6 * urand(&seed); /* not in the tiny table: ignored */
    }
}

TEST(planck_fractions_and_positivity)
{
    enum { N = 50 };
    mimic_rad_layer L[N];
    double tau[N * 16], pf[N * 16];
    random_layers(L, N, 7);
    CHECK_OK(mimic_rad_gas_optics(KD, L, N, tau, pf));
    for (int i = 0; i < N; i++) {
        double s = 0;
        for (int g = 0; g < 16; g++) {
            CHECK(tau[i * 16 + g] >= 0 && isfinite(tau[i * 16 + g]));
            CHECK(pf[i * 16 + g] >= 0);
            s += pf[i * 16 + g];
        }
        CHECK_NEAR(s, 1, 1e-6);
    }
}

TEST(linear_in_column)
{
    enum { N = 20 };
    mimic_rad_layer L[N], L2[N];
    double tau[N * 16], tau2[N * 16], pf[N * 16];
    random_layers(L, N, 11);
    memcpy(L2, L, sizeof L);
    for (int i = 0; i < N; i++)
        L2[i].col_dry *= 2.5;
    CHECK_OK(mimic_rad_gas_optics(KD, L, N, tau, pf));
    CHECK_OK(mimic_rad_gas_optics(KD, L2, N, tau2, pf));
    for (int i = 0; i < N * 16; i++)
        CHECK_NEAR(tau2[i], 2.5 * tau[i], 1e-12 * tau2[i]);
    /* zero column: zero optical depth */
    L[0].col_dry = 0;
    CHECK_OK(mimic_rad_gas_optics(KD, L, 1, tau, pf));
    for (int g = 0; g < 16; g++)
        CHECK(tau[g] == 0);
}

/* An LBL spectrum of the tiny table's band (what the builder reduced). */
static mimic_rad_grid *band_grid(double p, double res)
{
    return mimic_rad_lbl_grid(LBL, BLO[0], BHI[0], p, res);
}

/* k(nu) per molecule of gas as the table defines it: lines (H2O with the
 * reference self-broadening) + the H2O foreign continuum (+ self per unit
 * mole fraction times q when q > 0). */
static void lbl_k(mimic_rad_gas gas, double p, double t, double q_self, const mimic_rad_grid *gr, double *k)
{
    double h = mimic_rad_kdist_ref_vmr(MIMIC_GAS_H2O, p), qr = h / (1 + h);
    CHECK_OK(mimic_rad_lbl_absorption(LBL, gas, p, t, h, MIMIC_RAD_LBL_LINES, gr->n, gr->nu, k));
    if (gas == MIMIC_GAS_H2O)
        for (int64_t i = 0; i < gr->n; i++)
            k[i] += mimic_rad_h2o_foreign_continuum(gr->nu[i], t, p * (1 - qr)) +
                    q_self * mimic_rad_h2o_self_continuum(gr->nu[i], t, p);
}

TEST(eta_limits_are_pure_species)
{
    /* Arithmetic means conserve the band mean: sum_g dg k_g = sum w k / W. */
    int j = KD->np - 1, it = 2;
    double p = exp(KD->lnp[j]), t = KD->tnode[it], tau[16], pf[16];
    mimic_rad_grid *gr = band_grid(p, 1);
    CHECK_PTR(gr);
    double *k = malloc((size_t)gr->n * sizeof *k), W = 0;
    for (int64_t i = 0; i < gr->n; i++)
        W += gr->w[i];
    for (int pure = 0; pure < 2; pure++) {
        mimic_rad_layer L;
        memset(&L, 0, sizeof L);
        L.p = p, L.t = t, L.col_dry = 2e24;
        mimic_rad_gas gas = pure == 0 ? MIMIC_GAS_CO2 : MIMIC_GAS_H2O;
        L.vmr[gas] = pure == 0 ? 4e-4 : mimic_rad_kdist_ref_vmr(MIMIC_GAS_H2O, p);
        double h = L.vmr[MIMIC_GAS_H2O];
        CHECK_OK(mimic_rad_gas_optics(KD, &L, 1, tau, pf));
        lbl_k(gas, p, t, pure ? h / (1 + h) : 0, gr, k);
        double mean_lbl = 0, mean_kd = 0;
        for (int64_t i = 0; i < gr->n; i++)
            mean_lbl += gr->w[i] * k[i];
        mean_lbl *= L.vmr[gas] * L.col_dry / W;
        for (int g = 0; g < 16; g++)
            mean_kd += (KD->gbound[g + 1] - KD->gbound[g]) * tau[g];
        CHECK_NEAR(mean_kd / mean_lbl, 1, 2e-6);
    }
    free(k);
    mimic_rad_grid_free(gr);
}

/* The core check of correlated-k: for a homogeneous path the k-distribution
 * reproduces the LBL band transmittance, integral of exp(-k u) over nu, for
 * absorber amounts from optically thin to thick (the LBL on a grid twice as
 * fine as the one the table was built on). */
TEST(transmittance_vs_lbl)
{
    double worst = 0, worst_e = 0;
    for (int j = 0; j < KD->np; j += 3) {
        double p = exp(KD->lnp[j]), t = KD->tnode[1];
        mimic_rad_grid *gr = band_grid(p, 0.5);
        CHECK_PTR(gr);
        double *kc = malloc((size_t)gr->n * sizeof *kc), *kh = malloc((size_t)gr->n * sizeof *kh), W = 0;
        lbl_k(MIMIC_GAS_CO2, p, t, 0, gr, kc);
        double hv = mimic_rad_kdist_ref_vmr(MIMIC_GAS_H2O, p);
        lbl_k(MIMIC_GAS_H2O, p, t, hv / (1 + hv), gr, kh);
        for (int64_t i = 0; i < gr->n; i++)
            W += gr->w[i];
        /* mix 0: pure CO2; 1: CO2 + H2O at the reference humidity; 2: traces
           of both (4 ppmv each), CO2 still dominating the absorption. (The
           Planck function is nearly flat over 630-700 cm^-1, so this band
           cannot show the Planck-fraction error of the first eta definition,
           which needed the 10-250 cm^-1 band; docs/radiation-kdist.md.) */
        for (int mix = 0; mix < 3; mix++)
            for (double col = 1e16; col <= 1e25; col *= 10) {
                mimic_rad_layer L;
                memset(&L, 0, sizeof L);
                L.p = p, L.t = t, L.col_dry = col;
                L.vmr[MIMIC_GAS_CO2] = mix == 2 ? 4e-6 : 4e-4;
                L.vmr[MIMIC_GAS_H2O] = mix == 2 ? 4e-6 : mix ? hv : 0;
                double tau[16], pf[16], tk = 0, tl = 0, ek = 0, el = 0, wb = 0;
                CHECK_OK(mimic_rad_gas_optics(KD, &L, 1, tau, pf));
                for (int g = 0; g < 16; g++) {
                    tk += (KD->gbound[g + 1] - KD->gbound[g]) * exp(-tau[g]);
                    ek += pf[g] * -expm1(-tau[g]);
                }
                for (int64_t i = 0; i < gr->n; i++) {
                    double ti = col * (L.vmr[MIMIC_GAS_CO2] * kc[i] + L.vmr[MIMIC_GAS_H2O] * kh[i]), b = gr->w[i] * mimic_rad_planck(gr->nu[i], t);
                    tl += gr->w[i] * exp(-ti);
                    el += b * -expm1(-ti);
                    wb += b;
                }
                tl /= W;
                el /= wb;
                /* Planck-weighted emissivity (what the Planck fractions are
                   for): measured worst 0.0046 */
                CHECK_NEAR(ek, el, 0.01);
                if (fabs(ek - el) > worst_e)
                    worst_e = fabs(ek - el);
                double err = fabs(tk - tl);
                if (err > worst)
                    worst = err;
                /* pure species: 0.005 in transmittance (measured worst
                   0.0037); a mixture (between eta nodes) 0.01 (0.0043) */
                CHECK_NEAR(tk, tl, mix ? 0.01 : 0.005);
            }
        free(kc), free(kh);
        mimic_rad_grid_free(gr);
    }
    fprintf(stderr, "# transmittance: worst |T_kdist - T_lbl| = %.4f, emissivity: worst %.4f\n", worst, worst_e);
}

/* Planck fractions where the Planck function is steep across the band
 * (10-250 cm^-1, H2O + O3, a second tiny table): the Planck-weighted
 * emissivity of a moist 500 hPa layer with little ozone (eta far from the
 * balanced mixture under a mixing-ratio definition of eta) matches the LBL. */
TEST(planck_fractions_steep_band)
{
    mimic_rad_lbl_options lo;
    mimic_rad_lbl_options_default(&lo);
    lo.nu_min = 10, lo.nu_max = 250;
    lo.gases = (1u << MIMIC_GAS_H2O) | (1u << MIMIC_GAS_O3);
    mimic_rad_lbl *lbl = mimic_rad_lbl_new(&lo);
    static const double lo1[1] = {10}, hi1[1] = {250};
    static const int key[4] = {MIMIC_GAS_H2O, MIMIC_GAS_O3, MIMIC_GAS_H2O, MIMIC_GAS_O3};
    mimic_rad_kdist_build_options o;
    mimic_rad_kdist_build_options_default(&o);
    o.nband = 1, o.band_lo = lo1, o.band_hi = hi1, o.key = key;
    o.np = 3, o.p_min = 5000, o.p_max = 50000, o.p_split = 15000;
    o.nt = 2, o.t_min = 220, o.dt = 15, o.neta = 9, o.gases = lo.gases;
    mimic_rad_kdist *k = lbl ? mimic_rad_kdist_build(lbl, &o) : NULL;
    CHECK_PTR(k);
    if (!k) {
        mimic_rad_lbl_free(lbl);
        return;
    }
    double p = 50000, t = 220, worst = 0;
    mimic_rad_grid *gr = mimic_rad_lbl_grid(lbl, 10, 250, p, 1);
    double *tl = malloc((size_t)gr->n * sizeof *tl);
    for (double col = 1e22; col <= 1e25; col *= 10) {
        mimic_rad_layer L;
        memset(&L, 0, sizeof L);
        L.p = p, L.t = t, L.col_dry = col;
        L.vmr[MIMIC_GAS_H2O] = 1e-4, L.vmr[MIMIC_GAS_O3] = 1e-7;
        double tau[16], pf[16], ek = 0, el = 0, wb = 0;
        CHECK_OK(mimic_rad_gas_optics(k, &L, 1, tau, pf));
        for (int g = 0; g < 16; g++)
            ek += pf[g] * -expm1(-tau[g]);
        CHECK_OK(mimic_rad_lbl_layer_tau(lbl, &L, gr->n, gr->nu, tl));
        for (int64_t i = 0; i < gr->n; i++) {
            double b = gr->w[i] * mimic_rad_planck(gr->nu[i], t);
            el += b * -expm1(-tl[i]), wb += b;
        }
        el /= wb;
        /* measured worst 0.0033; with the first eta definition 0.23 */
        CHECK_NEAR(ek, el, 0.01);
        worst = fmax(worst, fabs(ek - el));
    }
    fprintf(stderr, "# steep band: worst Planck-weighted emissivity difference %.4f\n", worst);
    free(tl);
    mimic_rad_grid_free(gr);
    mimic_rad_kdist_free(k);
    mimic_rad_lbl_free(lbl);
}

TEST(threads_deterministic)
{
    enum { N = 300 };
    mimic_rad_layer *L = malloc(N * sizeof *L);
    double *a = malloc(N * 16 * sizeof *a), *b = malloc(N * 16 * sizeof *b), *pa = malloc(N * 16 * sizeof *pa),
           *pb = malloc(N * 16 * sizeof *pb);
    random_layers(L, N, 3);
    CHECK_OK(mimic_rad_gas_optics(KD, L, N, a, pa)); /* parallel over layers */
    for (int i = 0; i < N; i++)
        CHECK_OK(mimic_rad_gas_optics(KD, L + i, 1, b + i * 16, pb + i * 16));
    CHECK(memcmp(a, b, N * 16 * sizeof *a) == 0);
    CHECK(memcmp(pa, pb, N * 16 * sizeof *a) == 0);
    free(L), free(a), free(b), free(pa), free(pb);
}

static int same_table(const mimic_rad_kdist *x, const mimic_rad_kdist *y)
{
    int64_t nm = (int64_t)x->nband * x->nt * x->nslot * x->neta * x->ngb;
    int64_t nn = (int64_t)MIMIC_KDIST_NMINOR * x->nband * x->nt * x->nslot * x->ngb;
    return x->nband == y->nband && x->ngb == y->ngb && x->np == y->np && x->nt == y->nt && x->neta == y->neta &&
           x->jsplit == y->jsplit && !memcmp(x->lnp, y->lnp, x->np * sizeof(double)) &&
           !memcmp(x->tnode, y->tnode, x->nt * sizeof(double)) && !memcmp(x->k_major, y->k_major, nm * 4) &&
           !memcmp(x->pfrac, y->pfrac, nm * 4) && !memcmp(x->k_minor, y->k_minor, nn * 4) &&
           !memcmp(x->xsec, y->xsec, MIMIC_KDIST_NHALO * x->nband * 4) && !memcmp(x->key, y->key, sizeof x->key) &&
           !memcmp(x->r_ref, y->r_ref, sizeof x->r_ref) && !memcmp(x->gbound, y->gbound, sizeof x->gbound) &&
           !memcmp(x->minor_mask, y->minor_mask, sizeof x->minor_mask);
}

TEST(save_load_roundtrip)
{
    char path[300];
    snprintf(path, sizeof path, "%s/t.h5", TMPDIR_);
    CHECK_OK(mimic_rad_kdist_save(KD, path, "test table"));
    mimic_rad_kdist *k2 = mimic_rad_kdist_load(path);
    CHECK_PTR(k2);
    if (!k2)
        return;
    CHECK(same_table(KD, k2));
    mimic_dict *d = mimic_dict_open(path);
    CHECK_PTR(d);
    if (d) {
        const char *s = mimic_dict_get_string(d, "provenance", NULL);
        CHECK(s && strcmp(s, "test table") == 0);
        mimic_dict_close(d);
    }
    mimic_rad_layer L[5];
    double a[80], b[80], pa[80], pb[80];
    random_layers(L, 5, 5);
    CHECK_OK(mimic_rad_gas_optics(KD, L, 5, a, pa));
    CHECK_OK(mimic_rad_gas_optics(k2, L, 5, b, pb));
    CHECK(memcmp(a, b, sizeof a) == 0 && memcmp(pa, pb, sizeof pa) == 0);
    mimic_rad_kdist_free(k2);
    unlink(path);
}

/* Copies the saved table's entries into a new file, skipping `skip` or
 * replacing `bad` by a float32 tensor of shape {2} or a NaN-spoiled copy. */
static void copy_spoiled(const char *src, const char *dst, const char *skip, const char *wrong_shape,
                         const char *nan_in)
{
    mimic_dict *d = mimic_dict_open(src);
    mimic_dict_writer *w = mimic_dict_create(dst);
    for (int64_t i = 0; i < mimic_dict_count(d); i++) {
        const mimic_dict_entry *e = mimic_dict_entry_at(d, i);
        if (skip && !strcmp(e->name, skip))
            continue;
        if (e->kind == MIMIC_DICT_TENSOR) {
            mimic_tensor *t = mimic_dict_get_tensor(d, e->name);
            if (wrong_shape && !strcmp(e->name, wrong_shape)) {
                mimic_tensor_free(t);
                int64_t two = 2;
                t = mimic_empty(1, &two, e->dtype);
                memset(mimic_data(t), 0, 2 * mimic_dtype_size(e->dtype));
            }
            if (nan_in && !strcmp(e->name, nan_in))
                ((float *)mimic_data(t))[3] = NAN;
            mimic_dict_put_tensor(w, e->name, t);
            mimic_tensor_free(t);
        } else if (e->kind == MIMIC_DICT_INT) {
            mimic_dict_put_int(w, e->name, e->i);
        } else if (e->kind == MIMIC_DICT_STRING) {
            mimic_dict_put_string(w, e->name, e->s, e->len);
        }
    }
    CHECK_OK(mimic_dict_commit(w));
    mimic_dict_close(d);
}

TEST(corrupt_files)
{
    char good[300], bad[300];
    snprintf(good, sizeof good, "%s/good.h5", TMPDIR_);
    snprintf(bad, sizeof bad, "%s/bad.h5", TMPDIR_);
    CHECK_OK(mimic_rad_kdist_save(KD, good, NULL));
    copy_spoiled(good, bad, "pfrac", NULL, NULL);
    CHECK_ERR_PTR(mimic_rad_kdist_load(bad), MIMIC_EIO, "pfrac");
    copy_spoiled(good, bad, "jsplit", NULL, NULL);
    CHECK_ERR_PTR(mimic_rad_kdist_load(bad), MIMIC_EIO, "jsplit");
    copy_spoiled(good, bad, NULL, "k_minor", NULL);
    CHECK_ERR_PTR(mimic_rad_kdist_load(bad), MIMIC_EIO, "k_minor");
    copy_spoiled(good, bad, NULL, "band_hi", NULL);
    CHECK_ERR_PTR(mimic_rad_kdist_load(bad), MIMIC_EIO, "band_hi");
    copy_spoiled(good, bad, NULL, NULL, "k_major");
    CHECK_ERR_PTR(mimic_rad_kdist_load(bad), MIMIC_EVALUE, "k_major");
    copy_spoiled(good, bad, NULL, NULL, "pfrac");
    CHECK_ERR_PTR(mimic_rad_kdist_load(bad), MIMIC_EVALUE, "pfrac");
    CHECK_ERR_PTR(mimic_rad_kdist_load("/nonexistent/dir/k.h5"), MIMIC_EIO, "");
    FILE *f = fopen(bad, "wb");
    fputs("not hdf5", f);
    fclose(f);
    CHECK_ERR_PTR(mimic_rad_kdist_load(bad), MIMIC_EIO, "");
    unlink(good), unlink(bad);
}

TEST(bad_inputs)
{
    mimic_rad_layer L = layer_at(KD, 5000, 250, 0.5, 1e-3);
    double tau[16], pf[16];
    CHECK_ERR(mimic_rad_gas_optics(NULL, &L, 1, tau, pf), MIMIC_EARG, "NULL");
    CHECK_ERR(mimic_rad_gas_optics(KD, NULL, 1, tau, pf), MIMIC_EARG, "NULL");
    CHECK_ERR(mimic_rad_gas_optics(KD, &L, 1, tau, NULL), MIMIC_EARG, "NULL");
    CHECK_ERR(mimic_rad_gas_optics(KD, &L, -1, tau, pf), MIMIC_EARG, "nlay");
    CHECK_OK(mimic_rad_gas_optics(KD, &L, 0, NULL, NULL));
    mimic_rad_layer B = L;
    B.p = 0;
    CHECK_ERR(mimic_rad_gas_optics(KD, &B, 1, tau, pf), MIMIC_EVALUE, "p =");
    B = L, B.t = NAN;
    CHECK_ERR(mimic_rad_gas_optics(KD, &B, 1, tau, pf), MIMIC_EVALUE, "T =");
    B = L, B.vmr[MIMIC_GAS_CH4] = -1e-6;
    CHECK_ERR(mimic_rad_gas_optics(KD, &B, 1, tau, pf), MIMIC_EVALUE, "ch4");
    B = L, B.col_dry = INFINITY;
    CHECK_ERR(mimic_rad_gas_optics(KD, &B, 1, tau, pf), MIMIC_EVALUE, "col_dry");

    mimic_rad_kdist_build_options o;
    tiny_options(&o);
    o.nband = 0;
    CHECK_ERR_PTR(mimic_rad_kdist_build(LBL, &o), MIMIC_EARG, "nband");
    tiny_options(&o);
    o.ngb = 8;
    CHECK_ERR_PTR(mimic_rad_kdist_build(LBL, &o), MIMIC_EARG, "ngb");
    double gb[3] = {0, 0.7, 0.6};
    o.ngb = 2, o.gbound = gb;
    CHECK_ERR_PTR(mimic_rad_kdist_build(LBL, &o), MIMIC_EARG, "gbound");
    tiny_options(&o);
    o.p_split = 1e6;
    CHECK_ERR_PTR(mimic_rad_kdist_build(LBL, &o), MIMIC_EARG, "p_split");
    tiny_options(&o);
    int key[4] = {MIMIC_GAS_CO2, MIMIC_GAS_CO2, MIMIC_GAS_CO2, MIMIC_GAS_H2O};
    o.key = key;
    CHECK_ERR_PTR(mimic_rad_kdist_build(LBL, &o), MIMIC_EARG, "differ");
    tiny_options(&o);
    o.gases |= 1u << MIMIC_GAS_O3; /* not in the lbl */
    CHECK_ERR_PTR(mimic_rad_kdist_build(LBL, &o), MIMIC_EARG, "o3");
    CHECK_ERR_PTR(mimic_rad_kdist_build(NULL, &o), MIMIC_EARG, "lbl");
    CHECK(mimic_rad_kdist_table_bytes(NULL) < 0);
    CHECK_ERR_PTR(mimic_rad_kdist_load(NULL), MIMIC_EARG, "NULL");
    CHECK_ERR(mimic_rad_kdist_save(NULL, "x", NULL), MIMIC_EARG, "NULL");
}

/* The kernel plugs into the longwave solver: fluxes of a small column. */
static int failing_optics(void *ud, const mimic_rad_layer *lay, int nlay, double *tau, double *pf)
{
    (void)ud;
    return mimic_rad_gas_optics(NULL, lay, nlay, tau, pf);
}

TEST(solver_callback)
{
    enum { NL = 8 };
    double plev[NL + 1], tlev[NL + 1], play[NL], tlay[NL], vmr[NL * MIMIC_NGAS] = {0}, tsfc = 290, emis = 1;
    for (int i = 0; i <= NL; i++) {
        plev[i] = 1e5 * pow((double)i / NL, 2) + (i == 0 ? 100 : 0);
        tlev[i] = 210 + 80.0 * i / NL;
    }
    for (int i = 0; i < NL; i++) {
        play[i] = 0.5 * (plev[i] + plev[i + 1]);
        tlay[i] = 0.5 * (tlev[i] + tlev[i + 1]);
        vmr[i * MIMIC_NGAS + MIMIC_GAS_CO2] = 4e-4;
        vmr[i * MIMIC_NGAS + MIMIC_GAS_H2O] = 1e-5 + 1e-2 * pow((double)i / NL, 3);
    }
    mimic_rad_atm atm = {1, NL, play, tlay, plev, tlev, &tsfc, &emis, vmr};
    mimic_rad_optics opt;
    mimic_rad_kdist_optics(KD, &opt);
    CHECK(opt.ngpt == 16 && opt.nu1[0] == 630 && opt.nu2[15] == 700);
    double up[NL + 1], dn[NL + 1];
    CHECK_OK(mimic_rad_lw_fluxes(&atm, &opt, 1, up, dn, NULL));
    /* CO2 at 15 um: nearly opaque, so OLR below the surface band emission */
    double sfc = 3.14159265358979 * mimic_rad_planck_band(630, 700, tsfc);
    CHECK(up[0] > 0 && up[0] < sfc && dn[NL] > 0.5 * sfc && dn[0] == 0);
    opt.fn = failing_optics;
    CHECK_ERR(mimic_rad_lw_fluxes(&atm, &opt, 1, up, dn, NULL), MIMIC_EARG, "gas_optics");
}

int main(void)
{
    snprintf(TMPDIR_, sizeof TMPDIR_, "/tmp/mimic_kdist_XXXXXX");
    if (!mkdtemp(TMPDIR_))
        return 1;
    mimic_rad_lbl_options lo;
    mimic_rad_lbl_options_default(&lo);
    lo.nu_min = 600, lo.nu_max = 730;
    lo.gases = (1u << MIMIC_GAS_H2O) | (1u << MIMIC_GAS_CO2);
    LBL = mimic_rad_lbl_new(&lo);
    mimic_rad_kdist_build_options o;
    tiny_options(&o);
    KD = LBL ? mimic_rad_kdist_build(LBL, &o) : NULL;
    if (!KD) {
        fprintf(stderr, "building the tiny table failed: %s\n", mimic_errmsg());
        return 1;
    }
    RUN(table_shape);
    RUN(exact_at_nodes);
    RUN(linear_between_nodes);
    RUN(planck_fractions_and_positivity);
    RUN(linear_in_column);
    RUN(eta_limits_are_pure_species);
    RUN(transmittance_vs_lbl);
    RUN(planck_fractions_steep_band);
    RUN(threads_deterministic);
    RUN(save_load_roundtrip);
    RUN(corrupt_files);
    RUN(bad_inputs);
    RUN(solver_callback);
    mimic_rad_kdist_free(KD);
    mimic_rad_lbl_free(LBL);
    rmdir(TMPDIR_);
    return check_failed_tests ? 1 : 0;
}
