/* Correlated-k reduction of the line-by-line model into the k-distribution
 * of rad_kdist.h (docs/radiation-kdist.md). */
#include "mimic/rad_kdist.h"
#include "mimic/rad_rte.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

int mimic_rad_kdist_alloc_(mimic_rad_kdist *k);
void mimic_rad_kdist_finish_(mimic_rad_kdist *k);

static const double RRTMGP_LO[16] = {10, 250, 500, 630, 700, 820, 980, 1080,
                                     1180, 1390, 1480, 1800, 2080, 2250, 2390, 2680};
static const double RRTMGP_HI[16] = {250, 500, 630, 700, 820, 980, 1080, 1180,
                                     1390, 1480, 1800, 2080, 2250, 2390, 2680, 3250};
enum { H2O = MIMIC_GAS_H2O, CO2 = MIMIC_GAS_CO2, O3 = MIMIC_GAS_O3, CH4 = MIMIC_GAS_CH4, N2O = MIMIC_GAS_N2O };
/* [band][lower, upper][s1, s2]: the two strongest absorbers of each band in
 * the LBL model for the lower and the upper atmosphere (docs table). */
static const int DEFAULT_KEY[16][2][2] = {
    {{H2O, O3}, {H2O, O3}},   {{H2O, CO2}, {H2O, O3}},  {{H2O, CO2}, {H2O, CO2}}, {{H2O, CO2}, {O3, CO2}},
    {{H2O, CO2}, {O3, CO2}},  {{H2O, CO2}, {O3, CO2}},  {{H2O, O3}, {O3, CO2}},   {{H2O, O3}, {O3, N2O}},
    {{H2O, CH4}, {CH4, N2O}}, {{H2O, CH4}, {H2O, CH4}}, {{H2O, CH4}, {H2O, CH4}}, {{H2O, CO2}, {H2O, O3}},
    {{H2O, N2O}, {N2O, O3}},  {{H2O, CO2}, {CO2, N2O}}, {{H2O, CO2}, {H2O, CO2}}, {{H2O, CH4}, {H2O, CH4}}};
/* 16 g-intervals: 0.04-0.12 wide over the bulk of the distribution (finer at
 * g -> 0, where the band's most transparent part sets the transmittance of
 * thick paths), then ever finer towards g = 1 where the strong line centres
 * are (the last interval is 7e-4 wide). */
static const double GB16[17] = {0,     0.04,  0.10,  0.19,  0.30,  0.42,   0.54,   0.66,  0.76,
                                0.845, 0.91,  0.955, 0.98,  0.992, 0.997,  0.9993, 1};

/* Representative pressures of the lower and upper parts for r_ref. */
#define P_REF_LOWER 50000.0
#define P_REF_UPPER 1000.0

double mimic_rad_kdist_ref_vmr(mimic_rad_gas gas, double p)
{
    double z = 7.0 * log(101325.0 / (p > 0 ? p : 1e-3)); /* km */
    switch (gas) {
    case MIMIC_GAS_H2O: {
        double v = 0.019 * exp(-z / 2.1);
        return v > 4e-6 ? v : 4e-6;
    }
    case MIMIC_GAS_CO2: return 415e-6;
    case MIMIC_GAS_O3: return (0.03 + 7.5 * exp(-((z - 27) / 8) * ((z - 27) / 8))) * 1e-6;
    case MIMIC_GAS_CH4: return 1.9e-6;
    case MIMIC_GAS_N2O: return 332e-9;
    case MIMIC_GAS_CO: return 1e-7;
    case MIMIC_GAS_O2: return 0.209;
    case MIMIC_GAS_N2: return 0.781;
    default: return 0;
    }
}

void mimic_rad_kdist_build_options_default(mimic_rad_kdist_build_options *o)
{
    memset(o, 0, sizeof *o);
    o->nband = 16;
    o->ngb = 16;
    o->np = 42;
    o->p_min = 1, o->p_max = 110000, o->p_split = 10000;
    o->nt = 14, o->t_min = 160, o->dt = 15;
    o->neta = 9;
    o->res = 1;
    o->gases = 0;
}

static int check_options(const mimic_rad_kdist_build_options *o)
{
    static const char *fn = "kdist_build";
    if (!o)
        return mimic_error(MIMIC_EARG, "%s: options must not be NULL", fn);
    if (o->nband < 1 || o->nband > MIMIC_KDIST_MAX_BAND)
        return mimic_error(MIMIC_EARG, "%s: nband must be 1..%d (got %d)", fn, MIMIC_KDIST_MAX_BAND, o->nband);
    if ((o->band_lo == NULL) != (o->band_hi == NULL) || (o->band_lo && !o->key))
        return mimic_error(MIMIC_EARG, "%s: custom bands need band_lo, band_hi and key together", fn);
    for (int b = 0; o->band_lo && b < o->nband; b++) {
        if (!(o->band_lo[b] >= 10 && o->band_hi[b] > o->band_lo[b] && o->band_hi[b] <= 3250))
            return mimic_error(MIMIC_EARG, "%s: band %d is %g..%g cm^-1; bands must lie in 10..3250 with lo < hi", fn,
                               b, o->band_lo[b], o->band_hi[b]);
        for (int i = 0; i < 4; i++) {
            int s = o->key[b * 4 + i];
            if (s < 0 || s > MIMIC_GAS_N2O)
                return mimic_error(MIMIC_EARG, "%s: key species %d of band %d must be a line gas (H2O..N2O)", fn, s, b);
        }
        if (o->key[b * 4] == o->key[b * 4 + 1] || o->key[b * 4 + 2] == o->key[b * 4 + 3])
            return mimic_error(MIMIC_EARG, "%s: the two key species of band %d must differ", fn, b);
    }
    if (o->ngb < 1 || o->ngb > MIMIC_KDIST_MAX_GB || (!o->gbound && o->ngb != 16))
        return mimic_error(MIMIC_EARG, "%s: ngb must be 1..%d, and 16 unless gbound is given (got %d)", fn,
                           MIMIC_KDIST_MAX_GB, o->ngb);
    if (o->gbound) {
        if (o->gbound[0] != 0 || o->gbound[o->ngb] != 1)
            return mimic_error(MIMIC_EARG, "%s: gbound must start at 0 and end at 1", fn);
        for (int i = 0; i < o->ngb; i++)
            if (!(o->gbound[i + 1] > o->gbound[i]))
                return mimic_error(MIMIC_EARG, "%s: gbound must be strictly increasing (at %d)", fn, i);
    }
    if (o->np < 3 || o->np > 200 || !(o->p_min > 0) || !(o->p_max > o->p_min) || !isfinite(o->p_max) ||
        !(o->p_split > o->p_min && o->p_split < o->p_max))
        return mimic_error(MIMIC_EARG, "%s: need np in 3..200 and 0 < p_min < p_split < p_max (got np %d, %g, %g, %g)",
                           fn, o->np, o->p_min, o->p_split, o->p_max);
    if (o->nt < 2 || o->nt > 100 || !(o->t_min > 0) || !(o->dt > 0) || !isfinite(o->t_min + o->dt * o->nt))
        return mimic_error(MIMIC_EARG, "%s: need nt in 2..100, t_min > 0, dt > 0 (got %d, %g, %g)", fn, o->nt,
                           o->t_min, o->dt);
    if (o->neta < 2 || o->neta > 100)
        return mimic_error(MIMIC_EARG, "%s: neta must be 2..100 (got %d)", fn, o->neta);
    if (!(o->res > 0 && o->res <= 16))
        return mimic_error(MIMIC_EARG, "%s: res must be in (0, 16] (got %g)", fn, o->res);
    return 0;
}

int64_t mimic_rad_kdist_table_bytes(const mimic_rad_kdist_build_options *o)
{
    if (check_options(o))
        return -1;
    int64_t slots = o->np + 1, ng = o->ngb, nb = o->nband;
    return (int64_t)sizeof(float) * (2 * nb * o->nt * slots * o->neta * ng + MIMIC_KDIST_NMINOR * nb * o->nt * slots * ng +
                                     MIMIC_KDIST_NHALO * nb);
}

/* Sorting: a stable LSD radix sort (3 passes of 11 bits) of the points by the
 * float32 bits of k (k >= 0, so the bits order like the values), carrying
 * the point index: ties stay in index order, so the result is deterministic.
 * The means themselves use the double k of each point. */
typedef struct kpair {
    uint32_t key;
    uint32_t i;
} kpair;

static void radix_sort(kpair *a, kpair *tmp, int64_t n)
{
    for (int pass = 0; pass < 3; pass++) {
        int sh = 11 * pass;
        int64_t cnt[2049] = {0};
        for (int64_t i = 0; i < n; i++)
            cnt[((a[i].key >> sh) & 2047) + 1]++;
        for (int d = 0; d < 2048; d++)
            cnt[d + 1] += cnt[d];
        for (int64_t i = 0; i < n; i++)
            tmp[cnt[(a[i].key >> sh) & 2047]++] = a[i];
        kpair *t = a;
        a = tmp, tmp = t;
    }
    /* three passes: the sorted data is in the original tmp; copy back */
    memcpy(tmp, a, (size_t)n * sizeof *a);
}

static uint32_t fkey(double k)
{
    float f = (float)k;
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* One reduction: sorts kmix (with the index) and distributes each point's
 * quadrature weight over the g-intervals it overlaps; k_g is the arithmetic
 * mean of kmix over interval g, pf_g the share of sum w B in it, and, when
 * nminor > 0, km_g[m] the mean of minor spectrum m under the same ordering. */
static void reduce(int64_t n, const double *kmix, const double *w, const double *bw, int ngb, const double *gbound,
                   kpair *buf, int nminor, const double *const *kmin, double *kg, double *pf, double *kmg)
{
    double wsum = 0, bsum = 0, accw[MIMIC_KDIST_MAX_GB] = {0};
    for (int64_t i = 0; i < n; i++) {
        buf[i].key = fkey(kmix[i]), buf[i].i = (uint32_t)i;
        wsum += w[i], bsum += bw[i];
    }
    radix_sort(buf, buf + n, n);
    for (int g = 0; g < ngb; g++) {
        kg[g] = pf[g] = 0;
        for (int m = 0; m < nminor; m++)
            kmg[m * ngb + g] = 0;
    }
    double cum = 0;
    int g = 0;
    for (int64_t s = 0; s < n; s++) {
        int64_t i = buf[s].i;
        double rem = w[i];
        while (rem > 0) {
            double edge = g < ngb - 1 ? gbound[g + 1] * wsum : INFINITY;
            if (cum >= edge) {
                g++;
                continue;
            }
            double take = rem < edge - cum ? rem : edge - cum;
            double f = take / w[i];
            kg[g] += kmix[i] * take;
            pf[g] += bw[i] * f;
            accw[g] += take;
            for (int m = 0; m < nminor; m++)
                kmg[m * ngb + g] += kmin[m][i] * take;
            cum += take;
            rem -= take;
        }
    }
    for (g = 0; g < ngb; g++) {
        double a = accw[g] > 0 ? accw[g] : 1;
        kg[g] /= a;
        for (int m = 0; m < nminor; m++)
            kmg[m * ngb + g] /= a;
        pf[g] = bsum > 0 ? pf[g] / bsum : (gbound[g + 1] - gbound[g]);
    }
}

/* Spectra of one (band, p, T): index m < 8 the gas m (lines + foreign
 * continuum for H2O, CIA for N2/O2), 8 the H2O self continuum per unit H2O
 * mole fraction. Absent gases stay 0. */
static int spectra(const mimic_rad_lbl *lbl, uint32_t gases, double p, double t, const mimic_rad_grid *gr,
                   double *const *ks)
{
    int64_t n = gr->n;
    double h2o = mimic_rad_kdist_ref_vmr(MIMIC_GAS_H2O, p), q = h2o / (1 + h2o);
    for (int m = 0; m < MIMIC_KDIST_NMINOR; m++)
        memset(ks[m], 0, (size_t)n * sizeof(double));
    for (int m = 0; m <= MIMIC_GAS_N2; m++) {
        if (!(gases & (1u << m)))
            continue;
        unsigned parts = (m == MIMIC_GAS_N2 || m == MIMIC_GAS_O2) ? MIMIC_RAD_LBL_CONTINUUM : MIMIC_RAD_LBL_LINES;
        int rc = mimic_rad_lbl_absorption(lbl, (mimic_rad_gas)m, p, t, h2o, parts, n, gr->nu, ks[m]);
        if (rc)
            return rc;
    }
    if (gases & (1u << MIMIC_GAS_H2O))
        for (int64_t i = 0; i < n; i++) {
            ks[MIMIC_GAS_H2O][i] += mimic_rad_h2o_foreign_continuum(gr->nu[i], t, p * (1 - q));
            ks[MIMIC_KDIST_MINOR_H2O_SELF][i] = mimic_rad_h2o_self_continuum(gr->nu[i], t, p);
        }
    return 0;
}

mimic_rad_kdist *mimic_rad_kdist_build(const mimic_rad_lbl *lbl, const mimic_rad_kdist_build_options *o)
{
    if (!lbl) {
        mimic_error(MIMIC_EARG, "kdist_build: lbl must not be NULL");
        return NULL;
    }
    if (check_options(o))
        return NULL;
    uint32_t gases = o->gases ? o->gases : (1u << MIMIC_NGAS) - 1;
    mimic_rad_kdist *k = mimic_calloc(1, sizeof *k);
    if (!k)
        return NULL;
    k->nband = o->nband, k->ngb = o->ngb, k->np = o->np, k->nt = o->nt, k->neta = o->neta;
    if (mimic_rad_kdist_alloc_(k)) {
        mimic_rad_kdist_free(k);
        return NULL;
    }
    for (int i = 0; i <= k->ngb; i++)
        k->gbound[i] = o->gbound ? o->gbound[i] : GB16[i];
    double l0 = log(o->p_min), l1 = log(o->p_max);
    for (int j = 0; j < k->np; j++)
        k->lnp[j] = l0 + (l1 - l0) * j / (k->np - 1);
    int js = (int)floor((log(o->p_split) - l0) / (l1 - l0) * (k->np - 1) + 0.5);
    k->jsplit = js < 1 ? 1 : js > k->np - 2 ? k->np - 2 : js;
    k->p_split = exp(k->lnp[k->jsplit]);
    for (int i = 0; i < k->nt; i++)
        k->tnode[i] = o->t_min + o->dt * i;
    for (int b = 0; b < k->nband; b++) {
        k->band_lo[b] = o->band_lo ? o->band_lo[b] : RRTMGP_LO[b];
        k->band_hi[b] = o->band_hi ? o->band_hi[b] : RRTMGP_HI[b];
        for (int i = 0; i < 4; i++)
            k->key[b][i / 2][i % 2] = o->key ? o->key[b * 4 + i] : DEFAULT_KEY[b][i / 2][i % 2];
    }
    const int ngb = k->ngb, neta = k->neta, nt = k->nt, nslot = k->nslot;
    int nthr = 1;
#ifdef _OPENMP
    nthr = omp_get_max_threads();
#endif
    int rc = 0;
    /* Halocarbons: band means of the (p, T independent) cross-sections. */
    for (int b = 0; b < k->nband && !rc; b++) {
        mimic_rad_grid *gr = mimic_rad_grid_uniform(k->band_lo[b], k->band_hi[b], 0.1);
        double *x = gr ? mimic_malloc((size_t)gr->n * sizeof *x) : NULL;
        if (!x)
            rc = mimic_errcode() ? mimic_errcode() : MIMIC_ENOMEM;
        for (int h = 0; h < MIMIC_KDIST_NHALO && !rc; h++) {
            int gas = MIMIC_GAS_CCL4 + h;
            if (!(gases & (1u << gas)))
                continue;
            rc = mimic_rad_lbl_absorption(lbl, (mimic_rad_gas)gas, 1e4, 250, 0, MIMIC_RAD_LBL_CONTINUUM, gr->n, gr->nu,
                                          x);
            double s = 0, ws = 0;
            for (int64_t i = 0; i < gr->n && !rc; i++)
                s += x[i] * gr->w[i], ws += gr->w[i];
            k->xsec[h * k->nband + b] = (float)(s / ws);
        }
        mimic_free(x);
        mimic_rad_grid_free(gr);
    }
    /* r_ref = (band-mean k of s2) / (band-mean k of s1) at the part's
     * reference pressure and 250 K: the mixture eta k1 + (1 - eta) k2 / r_ref
     * then blends two spectra of the same band mean, and eta is about the
     * share of s1 in the absorption (c1 k1 / (c1 k1 + c2 k2) for band-mean
     * k). With the ratio of mixing ratios instead (the first version), eta
     * was ~0.03 for H2O vs O3 at 10-250 cm^-1, between an O3-ordered and an
     * H2O-ordered node, and the Planck fractions (not linear in eta there)
     * were badly wrong. Falls back to the vmr ratio if a mean is 0. */
    for (int b = 0; b < k->nband && !rc; b++)
        for (int part = 0; part < 2 && !rc; part++) {
            double pr = part ? P_REF_UPPER : P_REF_LOWER;
            int s1 = k->key[b][part][0], s2 = k->key[b][part][1];
            double r = mimic_rad_kdist_ref_vmr(s1, pr) / mimic_rad_kdist_ref_vmr(s2, pr);
            mimic_rad_grid *gr = mimic_rad_lbl_grid(lbl, k->band_lo[b], k->band_hi[b], pr, o->res);
            double *blk = gr ? mimic_malloc((size_t)gr->n * MIMIC_KDIST_NMINOR * sizeof(double)) : NULL;
            if (!blk) {
                rc = mimic_errcode() ? mimic_errcode() : MIMIC_ENOMEM;
                mimic_rad_grid_free(gr);
                break;
            }
            double *ks[MIMIC_KDIST_NMINOR];
            for (int m = 0; m < MIMIC_KDIST_NMINOR; m++)
                ks[m] = blk + (size_t)m * gr->n;
            rc = spectra(lbl, gases, pr, 250, gr, ks);
            double m1 = 0, m2 = 0;
            for (int64_t i = 0; i < gr->n && !rc; i++)
                m1 += gr->w[i] * ks[s1][i], m2 += gr->w[i] * ks[s2][i];
            if (m1 > 0 && m2 > 0 && isfinite(m2 / m1) && m2 / m1 > 1e-30 && m2 / m1 < 1e30)
                r = m2 / m1;
            k->r_ref[b][part] = r;
            mimic_free(blk);
            mimic_rad_grid_free(gr);
        }
    for (int j = 0; j < k->np && !rc; j++) {
        double p = exp(k->lnp[j]);
        for (int b = 0; b < k->nband && !rc; b++) {
            mimic_rad_grid *gr = mimic_rad_lbl_grid(lbl, k->band_lo[b], k->band_hi[b], p, o->res);
            if (!gr) {
                rc = mimic_errcode();
                break;
            }
            int64_t n = gr->n;
            /* 9 spectra, kmix per thread, B w, pairs per thread */
            double *blk = mimic_malloc((size_t)n * (MIMIC_KDIST_NMINOR + 1 + (size_t)nthr) * sizeof(double));
            kpair *pairs = mimic_malloc((size_t)n * 2 * (size_t)nthr * sizeof(kpair));
            if (!blk || !pairs) {
                mimic_free(blk), mimic_free(pairs), mimic_rad_grid_free(gr);
                rc = MIMIC_ENOMEM;
                break;
            }
            double *ks[MIMIC_KDIST_NMINOR];
            for (int m = 0; m < MIMIC_KDIST_NMINOR; m++)
                ks[m] = blk + (size_t)m * n;
            double *bw = blk + (size_t)MIMIC_KDIST_NMINOR * n, *kmix0 = bw + n;
            for (int it = 0; it < nt && !rc; it++) {
                double t = k->tnode[it];
                rc = spectra(lbl, gases, p, t, gr, ks);
                if (rc)
                    break;
                for (int64_t i = 0; i < n; i++)
                    bw[i] = gr->w[i] * mimic_rad_planck(gr->nu[i], t);
                for (int part = 0; part < 2; part++) {
                    /* node j serves the upper part if j <= jsplit, the lower if j >= jsplit */
                    if ((part == 1 && j > k->jsplit) || (part == 0 && j < k->jsplit))
                        continue;
                    int slot = j + (part ? 0 : 1);
                    int s1 = k->key[b][part][0], s2 = k->key[b][part][1];
                    double rr = k->r_ref[b][part];
                    double r1 = mimic_rad_kdist_ref_vmr(s1, p), r2 = mimic_rad_kdist_ref_vmr(s2, p);
                    double eta_ref = r1 / (r1 + rr * r2);
                    /* minors: every absorber that is not a key species here */
                    int mlist[MIMIC_KDIST_NMINOR], nm = 0;
                    const double *kmin[MIMIC_KDIST_NMINOR];
                    for (int m = 0; m < MIMIC_KDIST_NMINOR; m++)
                        if (m != s1 && m != s2 && (gases & (1u << (m == MIMIC_KDIST_MINOR_H2O_SELF ? 0 : m))))
                            mlist[nm] = m, kmin[nm++] = ks[m];
#pragma omp parallel for schedule(dynamic, 1)
                    for (int ie = 0; ie <= neta; ie++) {
                        int tid = 0;
#ifdef _OPENMP
                        tid = omp_get_thread_num();
#endif
                        double *kmix = kmix0 + (size_t)tid * n;
                        double eta = ie < neta ? (double)ie / (neta - 1) : eta_ref;
                        const double *k1 = ks[s1], *k2 = ks[s2];
                        double c2 = (1 - eta) / rr;
                        for (int64_t i = 0; i < n; i++)
                            kmix[i] = eta * k1[i] + c2 * k2[i];
                        double kg[MIMIC_KDIST_MAX_GB], pf[MIMIC_KDIST_MAX_GB];
                        double kmg[MIMIC_KDIST_NMINOR * MIMIC_KDIST_MAX_GB];
                        reduce(n, kmix, gr->w, bw, ngb, k->gbound, pairs + (size_t)tid * 2 * n, ie < neta ? 0 : nm, kmin,
                               kg, pf, kmg);
                        if (ie < neta) {
                            int64_t o0 = ((((int64_t)b * nt + it) * nslot + slot) * neta + ie) * ngb;
                            for (int g = 0; g < ngb; g++) {
                                k->k_major[o0 + g] = (float)kg[g];
                                k->pfrac[o0 + g] = (float)pf[g];
                            }
                        } else {
                            for (int q = 0; q < nm; q++) {
                                int64_t o0 = ((((int64_t)mlist[q] * k->nband + b) * nt + it) * nslot + slot) * ngb;
                                for (int g = 0; g < ngb; g++)
                                    k->k_minor[o0 + g] = (float)kmg[q * ngb + g];
                            }
                        }
                    }
                }
            }
            mimic_free(blk);
            mimic_free(pairs);
            mimic_rad_grid_free(gr);
        }
    }
    if (rc) {
        mimic_rad_kdist_free(k);
        return NULL;
    }
    mimic_rad_kdist_finish_(k);
    return k;
}
