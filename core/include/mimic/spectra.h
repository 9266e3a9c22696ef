/* mimic — spectra and field diagnostics of periodic fields (solvers side).
 *
 * Part of libmimic_solvers, NOT of libmimic: the spectra use FFTW3, which is
 * GPL, and libmimic (the runtime a host links) must stay free of it. A host
 * that links libmimic_solvers takes on FFTW's licence (docs/install.md).
 *
 * Fields are double arrays in row-major (C) order, last dim fastest:
 * a 3-D field of shape {n0, n1, n2} has f[(i*n1 + j)*n2 + k]. ndim is 1, 2
 * or 3; any sizes >= 1 (FFTW handles every size). The domain is periodic and
 * wavenumbers are integers (cycles per domain length); for a domain of
 * length L multiply by 2*pi/L to get physical wavenumbers.
 *
 * Nothing is kept between calls; outputs go to caller-provided arrays. Errors
 * are returned as MIMIC_E* codes with mimic_errmsg() set.
 *
 * Threads: FFTW's planner is not thread-safe, so these functions must not
 * run concurrently with each other or with the host's own FFTW planning
 * (unless the host has called fftw_make_planner_thread_safe()).
 */
#ifndef MIMIC_SPECTRA_H
#define MIMIC_SPECTRA_H

#include <stdint.h>

#include "base.h"

/* Number of shells of the radial spectrum of a field of this shape: shell s
 * holds the modes with s - 1/2 <= |k| < s + 1/2, where k ranges over the
 * integer wavenumbers -n/2..(n-1)/2 per dim; so s = 0 .. round(|k|max). */
int mimic_spectrum_nshells(int ndim, const int64_t *shape);

/* Radially averaged power spectrum of ncomp fields (e.g. the velocity
 * components), each of the given shape, stored one after another in f
 * (ncomp * prod(shape) doubles). Normalisation (Parseval): power[s] is the
 * sum over the modes k of shell s and over the components of |F_k|^2 / N^2,
 * F the unnormalised DFT and N = prod(shape), so
 *     sum_s power[s] = sum_c mean(f_c^2),
 * the mean square of the field (shell 0 holds the squared mean). The kinetic
 * energy spectrum of a velocity field is power / 2. "Radially averaged" is
 * this shell sum (the convention of turbulence codes), not a mean over the
 * shell's modes; count[s] (may be NULL) gets the number of modes per shell,
 * to form the mean if wanted. power and count: mimic_spectrum_nshells()
 * entries. */
int mimic_spectrum(int ndim, const int64_t *shape, int ncomp, const double *f, int nshells, double *power,
                   int64_t *count);

/* Spectrum error over the band of shells kmin..kmax (inclusive, clipped to
 * 0..n-1), counting only shells where ref > 0. */
typedef struct mimic_spectrum_err {
    int shells;        /* shells compared */
    double max_rel;    /* max |pred - ref| / ref */
    double mean_rel;   /* mean of the same */
    double rms_log10;  /* sqrt(mean (log10(pred / ref))^2); +inf if some pred <= 0 */
    double band_rel;   /* |sum pred - sum ref| / sum ref over the band (energy in the band) */
} mimic_spectrum_err;
int mimic_spectrum_error(int n, const double *pred, const double *ref, int kmin, int kmax,
                         mimic_spectrum_err *out);

/* Divergence of a periodic vector field by second-order central differences,
 * (u_d[i+1] - u_d[i-1]) / (2 h_d) summed over d, wrapping at the edges. Why
 * central differences and not spectral derivatives: they are what a
 * finite-volume / finite-difference solver's discrete continuity equation
 * sees, they are exact for the collocated second-order stencil, and they
 * need no FFT. u holds ndim components of the given shape, one after another
 * (component d is the velocity along dim d); h: ndim grid spacings (NULL: 1).
 * div: prod(shape) doubles. A field sin(2 pi x / L) along its dim gives
 * cos(...) * sin(2 pi h / L) / h: the stencil's known damping. */
int mimic_divergence(int ndim, const int64_t *shape, const double *u, const double *h, double *div);

#endif
