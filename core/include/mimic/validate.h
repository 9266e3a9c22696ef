/* mimic — validation metrics: how well a surrogate reproduces its reference.
 *
 * Ordinary metrics mislead on their own (a good MSE hides rare, very wrong
 * predictions), so this header groups the ones a validation report needs:
 * per-column regression scores, error quantiles binned along a coordinate,
 * distribution comparisons (histograms, chi-square, Kolmogorov-Smirnov,
 * Wasserstein-1, Jensen-Shannon, 2-D holes, moments), classification scores
 * and a conservation check.
 *
 * Inputs: tensors of any dtype (float32/float64/int64/bool) and any layout;
 * values are read as double. "Per column" means along the last dim: a tensor
 * of shape [..., C] is C columns of numel/C samples each; a 0-dim or 1-D
 * tensor is one column. NaN or infinity in an input is refused with
 * MIMIC_EVALUE and a message naming the function, the argument and the
 * position ("validate_regression: pred has NaN at row 3, column 2", 0-based
 * as everywhere in C). All arithmetic is in double precision.
 *
 * Outputs go to arrays the caller provides (sizes stated per function);
 * nothing is kept. Degenerate cases give documented values rather than
 * errors; NaN in an output means "undefined" (e.g. an empty bin's mean).
 *
 * Statistics conventions (those of NumPy/SciPy, which the tests compare to):
 * quantiles interpolate linearly between order statistics (NumPy's default);
 * variance is the sample variance (ddof 1); skewness and kurtosis are the
 * biased moment estimators, kurtosis in excess of 3 (scipy.stats.skew /
 * kurtosis defaults); ranks of ties are averaged (scipy.stats.rankdata).
 */
#ifndef MIMIC_VALIDATE_H
#define MIMIC_VALIDATE_H

#include "tensor.h"

/* Number of columns of t: its last dim's size (1 for 0-dim and 1-D tensors). */
int64_t mimic_val_ncols(const mimic_tensor *t);

/* --- regression ---------------------------------------------------------------- */
typedef struct mimic_val_reg {
    int64_t n;       /* samples in the column */
    double bias;     /* mean(pred - ref) */
    double mae;      /* mean |pred - ref| */
    double rmse;     /* sqrt(mean (pred - ref)^2) */
    double max_abs;  /* max |pred - ref| */
    double rel;      /* mean |pred - ref| / max(|ref|, rel_floor) */
    double r2;       /* 1 - SS_res/SS_tot; constant ref: 1 if pred == ref, else 0 (scikit-learn's choice) */
    double pearson;  /* NaN if either column is constant */
    double spearman; /* Pearson of average ranks; NaN if either column is constant */
} mimic_val_reg;

/* pred and ref: same shape, at least one sample. out: mimic_val_ncols(ref)
 * entries. rel_floor >= 0 keeps the relative error finite where ref ~ 0 (with
 * rel_floor 0 and ref == 0, a term is 0 if pred == 0, else +inf). */
int mimic_val_regression(const mimic_tensor *pred, const mimic_tensor *ref, double rel_floor,
                         mimic_val_reg *out);

/* Quantiles of `value` in bins of `coord` (the "mean and 5-95 % band versus
 * height" figure). value has N elements (any shape, flattened); coord has N
 * elements, or N/C where C = mimic_val_ncols(value) (one coordinate per row,
 * shared by the row's columns: e.g. pressure per layer for errors at C
 * spectral points). edges: nbins+1 strictly increasing values; bin i is
 * [edges[i], edges[i+1]), the last bin also includes its right edge; values
 * outside are ignored. q: nq probabilities in [0, 1]. Outputs: count[nbins],
 * mean[nbins], quant[nbins*nq] (row-major: bin, then q); an empty bin has
 * count 0 and NaN means and quantiles. */
int mimic_val_binned_quantiles(const mimic_tensor *value, const mimic_tensor *coord, int nbins,
                               const double *edges, int nq, const double *q, int64_t *count,
                               double *mean, double *quant);

/* --- distributions -------------------------------------------------------------- */
/* Counts of the elements of x (all of them, flattened) in nbins bins given by
 * strictly increasing edges (as above). counts: nbins doubles. *outside (may
 * be NULL) gets the number of elements outside [edges[0], edges[nbins]]. */
int mimic_val_histogram(const mimic_tensor *x, int nbins, const double *edges, double *counts,
                        int64_t *outside);
/* Counts of (x, y) pairs (same numel) in nx*ny bins: counts[i*ny + j] for x bin
 * i and y bin j. */
int mimic_val_histogram2d(const mimic_tensor *x, const mimic_tensor *y, int nx, const double *ex,
                          int ny, const double *ey, double *counts, int64_t *outside);

/* Two-sample chi-square of histograms a and b (counts >= 0, any totals > 0):
 * the 2 x n contingency-table statistic (scipy.stats.chi2_contingency without
 * correction). Bins empty in both are skipped; dof = (non-empty bins) - 1.
 * p: upper tail of the chi-square distribution (1 when dof is 0). */
int mimic_val_chi2(int n, const double *a, const double *b, double *chi2, int *dof, double *p);
/* Two-sample Kolmogorov-Smirnov statistic D = sup |F_a - F_b| and its
 * asymptotic p-value Q_KS(sqrt(n_a n_b / (n_a + n_b)) D), Q_KS the Kolmogorov
 * distribution's survival function (scipy.special.kolmogorov). */
int mimic_val_ks(const mimic_tensor *a, const mimic_tensor *b, double *d, double *p);
/* Survival function of the Kolmogorov distribution, P(K > x). */
double mimic_val_kolmogorov_sf(double x);
/* Wasserstein-1 (earth mover's) distance between the empirical distributions
 * of a and b: the integral of |F_a - F_b| (scipy.stats.wasserstein_distance). */
int mimic_val_wasserstein(const mimic_tensor *a, const mimic_tensor *b, double *w);
/* Jensen-Shannon divergence, base 2 (in [0, 1]), of two histograms
 * normalised to unit mass (the square of scipy.spatial.distance.jensenshannon
 * with base=2). Empty bins contribute 0. */
int mimic_val_js(int n, const double *p, const double *q, double *js);

/* Holes: bins populated in the reference but empty in the sample (what a
 * generator misses), and the opposite (spurious bins). Works on any binning,
 * e.g. the flattened counts of mimic_val_histogram2d. */
typedef struct mimic_val_holes {
    int64_t ref_bins;  /* bins with ref > 0 */
    int64_t holes;     /* ref > 0, sample == 0 */
    int64_t spurious;  /* ref == 0, sample > 0 */
    double hole_mass;  /* fraction of the reference's mass in holes */
    double spurious_mass; /* fraction of the sample's mass in spurious bins */
} mimic_val_holes;
int mimic_val_holes_count(int64_t n, const double *ref, const double *sample, mimic_val_holes *out);

typedef struct mimic_val_moments {
    int64_t n;
    double mean, var, skew, kurt; /* var ddof 1 (NaN if n < 2); skew, kurt NaN if var is 0 */
} mimic_val_moments;
/* Per column of x (out: mimic_val_ncols(x) entries). */
int mimic_val_moments_of(const mimic_tensor *x, mimic_val_moments *out);

/* --- classification -------------------------------------------------------------- */
/* Confusion matrix of integer labels in 0..k-1 (a float label must be an
 * integer): cm[t*k + p] counts samples of true class t predicted as p. */
int mimic_val_confusion(const mimic_tensor *pred, const mimic_tensor *truth, int k, int64_t *cm);

typedef struct mimic_val_class {
    int64_t n;
    double accuracy;
    double balanced_accuracy; /* mean recall over classes present in truth */
    double macro_precision, macro_recall, macro_f1; /* means over all k classes */
} mimic_val_class;
/* Scores from a confusion matrix. Per-class arrays (k entries each) may be
 * NULL. A class never predicted has precision 0, never present recall 0, and
 * F1 0 when precision + recall is 0 (scikit-learn's zero_division=0). */
int mimic_val_class_scores(int k, const int64_t *cm, mimic_val_class *out, double *precision,
                           double *recall, double *f1);

/* ROC curve of scores against binary labels (0/1; any non-zero is 1). Points
 * at each distinct score, from (0, 0) to (1, 1); *npoints of them. *fpr, *tpr
 * and *thr are new arrays (mimic_malloc; the caller frees them with
 * mimic_free); thr[0] is +inf. AUC by the trapezoid rule, which counts a tied
 * positive/negative pair as 1/2 (the Mann-Whitney U / (n_pos n_neg)). Needs
 * both classes (MIMIC_EVALUE otherwise). */
int mimic_val_roc(const mimic_tensor *score, const mimic_tensor *label, double *auc, int64_t *npoints,
                  double **fpr, double **tpr, double **thr);

/* Reliability diagram of probabilities in [0, 1] against binary labels:
 * nbins equal bins; count[nbins], mean_prob[nbins], frac_pos[nbins] (NaN for
 * an empty bin); *ece the expected calibration error
 * sum_i count_i/n |frac_pos_i - mean_prob_i|. */
int mimic_val_calibration(const mimic_tensor *prob, const mimic_tensor *label, int nbins, int64_t *count,
                          double *mean_prob, double *frac_pos, double *ece);

/* --- conservation ------------------------------------------------------------------ */
typedef struct mimic_val_conservation {
    double before, after;   /* global weighted sums */
    double global_rel;      /* |after - before| / |before| (absolute if before is 0) */
    double max_row_rel;     /* the same per row (sum over the last dim), worst row */
    double mean_row_rel;    /* and mean over rows */
} mimic_val_conservation;
/* before and after: same shape, [N, C] or [N] (then each element is a row).
 * weight: NULL, or C elements (e.g. layer masses) multiplying each column. */
int mimic_val_conservation_check(const mimic_tensor *before, const mimic_tensor *after,
                                 const mimic_tensor *weight, mimic_val_conservation *out);

#endif
