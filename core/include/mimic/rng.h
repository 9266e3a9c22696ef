/* mimic — random numbers from an explicit, counter-based generator.
 *
 * The generator is Philox4x32-10 (Salmon et al., SC'11): the k-th 128-bit block
 * is a pure function of (seed, k). A fill of n elements draws blocks
 * counter, counter+1, ... and element i of the fill reads a fixed word of a
 * fixed block, so a seed gives the same numbers on every machine, for any
 * thread count and any chunking of the work. The normal sampler is Box-Muller
 * with mimic's own log/sin/cos written in + - * / only (no libm), so it does not
 * vary with the C library either.
 *
 * Element i of a fill uses block counter + i/4, word i%4 (float32: 24 random
 * bits; int draws: 32 bits), or block counter + i/2, words 2(i%2)..+1 (float64:
 * 53 bits). Normals: elements 2j and 2j+1 come from block counter + j (two
 * 53-bit uniforms, Box-Muller), in both float32 and float64. After a fill the
 * counter advances by the number of blocks used.
 */
#ifndef MIMIC_RNG_H
#define MIMIC_RNG_H

#include "tensor.h"

typedef struct mimic_rng {
    uint64_t seed;
    uint64_t counter; /* next unused 128-bit block */
} mimic_rng;

/* Plain struct: no allocation. Copying it forks the stream (both draw the same). */
void mimic_rng_init(mimic_rng *r, uint64_t seed);

/* The raw generator: out = Philox4x32-10(counter, key). */
void mimic_philox4x32(const uint32_t counter[4], const uint32_t key[2], uint32_t out[4]);

/* Fills of a float tensor (any layout; elements counted in row-major order). */
int mimic_rng_uniform(mimic_rng *r, mimic_tensor *t, double lo, double hi); /* [lo, hi) */
int mimic_rng_normal(mimic_rng *r, mimic_tensor *t, double mean, double std);
/* A random permutation of 0..n-1 (int64), Fisher-Yates with unbiased draws. */
mimic_tensor *mimic_rng_permutation(mimic_rng *r, int64_t n);

/* Deterministic replacements for libm used by the sampler, exposed for tests. */
double mimic_det_log(double x);              /* x > 0, normal range */
void mimic_det_sincos2pi(double u, double *s, double *c); /* sin/cos of 2*pi*u, u in [0,1) */

#endif
