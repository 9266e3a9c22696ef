/* mimic solvers — radiation: neural-network gas optics, the surrogate of the
 * reference kernel (rad_kdist.h) run through the embedding API (embed.h).
 * Part of libmimic_solvers (docs/radiation-surrogate.md).
 *
 * A surrogate is two model files per pressure regime, both taking the same
 * per-layer feature vector (below):
 *   tau model:    input "features" [MIMIC_RAD_NN_NFEAT], output "k" [ngpt]:
 *                 optical depth per dry-air molecule, cm^2 (tau = k col_dry);
 *   planck model: input "features", output "planck_frac" [ngpt].
 * The contract's units of "features" must be MIMIC_RAD_NN_FEATURE_UNITS (the
 * version of the feature definition); "k" has units "cm^2", "planck_frac" "1".
 * Optionally a second pair for the upper atmosphere (p < p_split).
 */
#ifndef MIMIC_RAD_NN_H
#define MIMIC_RAD_NN_H

#include "embed.h"
#include "rad_kdist.h"

/* Features of one layer, in order:
 *   0 ln_p    ln(p / Pa)
 *   1 t       K
 *   2 ln_h2o  ln(h2o vmr), vmr floored at 1e-12
 *   3 ln_o3   ln(o3 vmr),  floored at 1e-12
 *   4 ln_co2  ln(co2 vmr), floored at 1e-12
 *   5 ch4, 6 n2o, 7 co     vmr in ppm (mol/mol x 1e6)
 *   8..17 the halocarbons ccl4, cfc11, cfc12, hcfc22, hfc143a, hfc125,
 *         hfc23, hfc32, hfc134a, cf4, vmr in ppb (mol/mol x 1e9)
 * O2 and N2 are not features (constant in RFMIP; their tiny absorption is
 * learnt at the RFMIP values). */
#define MIMIC_RAD_NN_NFEAT 18
#define MIMIC_RAD_NN_FEATURE_UNITS "mimic-rad-nn-features-1"

/* Short name of feature i ("ln_p", "t", ...), NULL if out of range. */
const char *mimic_rad_nn_feature_name(int i);

/* x[l][MIMIC_RAD_NN_NFEAT] for nlay layers. No checks beyond what gas optics
 * needs anyway: the caller passes valid layers. */
void mimic_rad_nn_features(const mimic_rad_layer *lay, int64_t nlay, double *x);

typedef struct mimic_rad_nn_options {
    const char *tau_path, *planck_path;             /* required */
    const char *tau_upper_path, *planck_upper_path; /* optional pair for p < p_split (both or none) */
    double p_split;                                 /* Pa; used with the upper pair */
    const char *guard_path;         /* optional guard file (guard.h) on the raw features; with
                                       the upper pair it applies to the lower pair, and
                                       guard_upper_path to the upper one */
    const char *guard_upper_path;
    mimic_options open;             /* passed to mimic_open (precision, threads, chunk...) */
} mimic_rad_nn_options;

typedef struct mimic_rad_nn mimic_rad_nn;

/* Opens the model files and checks them against the k-distribution `kd`
 * (borrowed, must outlive the surrogate): ngpt outputs, the feature units,
 * names. kd is also the fallback for layers the guard flags (and for NaN
 * outputs). Errors, with a message naming the model ("tau", "upper planck"...),
 * the file and the mismatch; *out is NULL: MIMIC_EARG (options), MIMIC_EIO
 * (missing or unreadable model or guard file: mimic_open's message),
 * MIMIC_EVALUE (a contract other than the one above). The guard is set on
 * the tau model's handle (checked once per layer). Each model file is one
 * embedding handle with opt.open (precision, num_threads, chunk,
 * deterministic, log). The caller owns *out: mimic_rad_nn_close. */
int mimic_rad_nn_open(const mimic_rad_nn_options *o, const mimic_rad_kdist *kd, mimic_rad_nn **out);
void mimic_rad_nn_close(mimic_rad_nn **s); /* sets *s = NULL; NULL fine */

/* Gas optics of nlay layers, same contract as mimic_rad_gas_optics:
 * tau[nlay][ngpt], planck_frac[nlay][ngpt] (non-negative, renormalised to sum
 * to 1 over each band's g-points). The inputs are checked as the reference
 * kernel checks them (MIMIC_EVALUE naming the layer; nothing written).
 * tau = max(k, 0) col_dry; fractions clamped at 0, then divided by their
 * band's sum. A layer goes to the reference kernel (its tau AND fractions)
 * when the guard flags it, a model gives a non-finite output for it, or a
 * band's fractions sum to 0. The models write straight into tau and
 * planck_frac (float64 rows); with the upper pair, layers are routed by
 * p < p_split (any order; a regime whose layers are not contiguous goes
 * through an internal buffer). Threads: the models run on opt.open.num_threads
 * (0: the caller's mimic_get_num_threads()), one when called inside an
 * OpenMP parallel region. Grows internal buffers when nlay (with the upper
 * pair: a regime's share of it) exceeds every earlier call (MIMIC_ENOMEM),
 * otherwise allocates nothing. One caller at a time per surrogate. */
int mimic_rad_nn_optics(mimic_rad_nn *s, const mimic_rad_layer *lay, int64_t nlay, double *tau,
                        double *planck_frac);

/* Fills a mimic_rad_optics (rad_rte.h) whose callback is the surrogate:
 * kd's nu1/nu2, weight NULL (s, opt not NULL; s must outlive opt's use), for
 * mimic_rad_lw_fluxes and mimic_rad_rce_run. */
void mimic_rad_nn_optics_fn(mimic_rad_nn *s, struct mimic_rad_optics *opt);

/* Counters since open: layers computed (successful calls only), and layers
 * that went to the reference kernel (flagged by the guard, non-finite
 * outputs, or unusable fractions). s NULL: zeros. */
typedef struct mimic_rad_nn_stats {
    int64_t layers, fallback;
} mimic_rad_nn_stats;
void mimic_rad_nn_get_stats(const mimic_rad_nn *s, mimic_rad_nn_stats *st);

/* The last error message of the surrogate (its handles' or its own; "" if
 * none); s NULL: the calling thread's mimic_errmsg(). */
const char *mimic_rad_nn_last_error(const mimic_rad_nn *s);

#endif
