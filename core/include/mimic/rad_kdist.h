/* mimic solvers — radiation: the longwave correlated-k distribution (an
 * RRTMGP-style k-table reduced from the line-by-line model, rad_lbl.h) and
 * the REFERENCE gas-optics kernel that interpolates it (docs/radiation-kdist.md).
 * Part of libmimic_solvers.
 *
 * Table layout (float32, g-points fastest; "slot" = pressure node of a part):
 *   pressure nodes lnp[np] increasing; node jsplit (p = p_split) belongs to
 *   both parts, so the upper part (p < p_split) uses nodes 0..jsplit and the
 *   lower part nodes jsplit..np-1: nslot = np + 1 slots, slot = node for the
 *   upper part, node + 1 for the lower part. Interpolation never straddles
 *   the split.
 *   k_major [nband][nt][nslot][neta][ngb]  cm^2 per molecule of the key-species mixture
 *   pfrac   [nband][nt][nslot][neta][ngb]  Planck fraction of each g-point in its band
 *   k_minor [nminor][nband][nt][nslot][ngb] cm^2 per molecule of the minor absorber
 *   xsec    [nhalo][nband]                  band-mean cross-section, cm^2/molecule
 * Key species of (band, part): s1, s2 with eta = c1 / (c1 + r_ref c2), c_i
 * their columns; tau_major = (c1 + r_ref c2) k_major(eta). Minor absorbers
 * (MIMIC_KDIST_MINOR_*): the line gases, N2/O2 collision-induced, and the
 * H2O self continuum (per H2O molecule and per unit H2O mole fraction).
 */
#ifndef MIMIC_RAD_KDIST_H
#define MIMIC_RAD_KDIST_H

#include "rad_lbl.h"

#include <stdint.h>

#define MIMIC_KDIST_MAX_BAND 16
#define MIMIC_KDIST_MAX_GB 32    /* g-points per band */
#define MIMIC_KDIST_NHALO 10     /* MIMIC_GAS_CCL4 .. MIMIC_GAS_CF4 */
/* Minor absorbers: index m < MIMIC_GAS_N2 + 1 is the gas m (H2O..N2), then
 * the H2O self continuum. */
#define MIMIC_KDIST_MINOR_H2O_SELF 8
#define MIMIC_KDIST_NMINOR 9

typedef struct mimic_rad_kdist {
    int nband, ngb, ngpt;     /* ngpt = nband * ngb; g-point = band * ngb + ig */
    int np, nt, neta, nslot, jsplit;
    double band_lo[MIMIC_KDIST_MAX_BAND], band_hi[MIMIC_KDIST_MAX_BAND]; /* cm^-1 */
    double gbound[MIMIC_KDIST_MAX_GB + 1]; /* g-interval boundaries, 0 .. 1 */
    int key[MIMIC_KDIST_MAX_BAND][2][2];   /* [band][part 0 lower, 1 upper][species 0, 1]: mimic_rad_gas */
    double r_ref[MIMIC_KDIST_MAX_BAND][2]; /* eta = c1 / (c1 + r_ref c2); r_ref = band-mean k2 / k1 */
    double *lnp;                           /* [np] ln(p / Pa), increasing */
    double *tnode;                         /* [nt] K, uniform spacing */
    double p_split;                        /* Pa (= exp(lnp[jsplit])) */
    float *k_major, *pfrac, *k_minor, *xsec;
    /* per (band, part): which minor absorbers are non-zero (built at load). */
    uint16_t minor_mask[MIMIC_KDIST_MAX_BAND][2];
    /* band limits and weights per g-point, for mimic_rad_optics: [ngpt] */
    double *nu1, *nu2, *gweight;
} mimic_rad_kdist;

/* --- building from the line-by-line model ----------------------------------- */

typedef struct mimic_rad_kdist_build_options {
    int nband;                 /* 1..16; with band_lo NULL: the first nband RRTMGP bands */
    const double *band_lo, *band_hi; /* [nband] custom bands (cm^-1) or NULL */
    const int *key;            /* [nband][2][2] key species for custom bands (NULL = the default table) */
    int ngb;                   /* g-points per band, 1..32 */
    const double *gbound;      /* [ngb + 1] from 0 to 1 strictly increasing, or NULL: 16 defaults */
    int np;                    /* pressure nodes, log-uniform over [p_min, p_max], >= 3 */
    double p_min, p_max;       /* Pa; 1, 110000 */
    double p_split;            /* Pa, 10000; moved to the nearest node */
    int nt;                    /* temperature nodes t_min + i dt; 14 */
    double t_min, dt;          /* 160, 15 */
    int neta;                  /* eta nodes, uniform on [0, 1], >= 2; 9 */
    double res;                /* LBL grid resolution factor (mimic_rad_lbl_grid), 1 */
    uint32_t gases;            /* gases computed (mask, as the lbl's; 0 = all) */
} mimic_rad_kdist_build_options;

/* The full default: 16 RRTMGP bands, 16 g-points, 42 pressures 1..110000 Pa,
 * 14 temperatures 160..355 K, 9 eta values, res 1. */
void mimic_rad_kdist_build_options_default(mimic_rad_kdist_build_options *o);

/* Size in bytes of the float tables the options describe (before building). */
int64_t mimic_rad_kdist_table_bytes(const mimic_rad_kdist_build_options *o);

/* Reduces the LBL model to a k-distribution (docs/radiation-kdist.md). lbl
 * must have been made with every gas of o->gases. OpenMP inside. The caller
 * owns the result: mimic_rad_kdist_free. NULL on error. */
mimic_rad_kdist *mimic_rad_kdist_build(const mimic_rad_lbl *lbl, const mimic_rad_kdist_build_options *o);

void mimic_rad_kdist_free(mimic_rad_kdist *k); /* NULL is fine */

/* The reference profile used for eta_ref, r_ref and H2O self-broadening:
 * MLS-like vmr of each gas at pressure p (Pa). */
double mimic_rad_kdist_ref_vmr(mimic_rad_gas gas, double p);

/* --- files -------------------------------------------------------------------- */

/* Writes the table as an HDF5 tensor dictionary (io.h; atomic). `prov` is an
 * optional provenance text stored as the string "provenance"; each of its
 * lines of the form key=value (key alphanumeric or _) is also stored as the
 * string attribute "meta/<key>". */
int mimic_rad_kdist_save(const mimic_rad_kdist *k, const char *path, const char *prov);
/* Reads and validates (every entry present with its dtype and shape, sizes in
 * range, nodes increasing, values finite and >= 0, Planck fractions summing to
 * 1 per band). The caller owns the result. NULL with MIMIC_EIO/EVALUE. */
mimic_rad_kdist *mimic_rad_kdist_load(const char *path);

/* --- the reference kernel ----------------------------------------------------- */

/* Gas optics of nlay layers: tau[nlay][ngpt] (vertical optical depth) and
 * planck_frac[nlay][ngpt]. Trilinear interpolation in (ln p, T, eta) of the
 * key-species table with weights computed once per layer (RRTMGP's scheme),
 * bilinear (ln p, T) minor tables scaled by their columns, band-mean
 * halocarbon cross-sections. p and T outside the nodes are clamped to the
 * edge nodes. No allocation; OpenMP over layers when nlay >= 64 (each layer
 * is computed by one thread, so results are independent of the thread
 * count). Errors (nothing written): NULL pointers, nlay < 0, p, T not finite
 * and > 0, vmr or col_dry negative or not finite. */
int mimic_rad_gas_optics(const mimic_rad_kdist *k, const mimic_rad_layer *lay, int64_t nlay, double *tau,
                         double *planck_frac);

/* Fills a mimic_rad_optics (rad_rte.h) whose callback is the kernel; k is
 * borrowed and must outlive it. */
struct mimic_rad_optics;
void mimic_rad_kdist_optics(const mimic_rad_kdist *k, struct mimic_rad_optics *opt); /* k, opt not NULL */

#endif
