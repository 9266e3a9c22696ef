/* Reductions (sum, mean, prod, var, std, norm, min, max), argmin/argmax and
 * cumsum.
 *
 * Order of operations, fixed by n alone: the n values are cut into blocks of
 * BLK; inside a block value i goes to accumulator lane i % 8 (in order) and
 * the 8 lanes meet in a fixed tree; blocks are combined by recursive halving.
 * So a result is the same for any thread count or chunking (threads only take
 * whole subtrees) and for any layout of the input (the column-tile path for
 * reductions over a non-inner dim follows the same order). float32 is
 * accumulated in double. var/std take two passes (mean, then squared
 * deviations), which is both deterministic and accurate.
 *
 * Autograd: mimic_reduce and mimic_cumsum record a node (the gradients are at
 * the end of this file); argmin/argmax are piecewise constant and record none. */
#include "../autograd/expr.h"
#include "../base/internal.h"
#include "mimic/ops.h"

#include <math.h>
#include <string.h>

/* clang reports an `omp simd` loop that calls libm (exp, pow, ...) as a failed
 * vectorisation; those loops are correct as scalar code. */
#if defined(__clang__)
#pragma clang diagnostic ignored "-Wpass-failed"
#endif

#define BLK 2048     /* values per leaf block */
#define TILE 64      /* output columns per task on the column-tile path */
#define PAR_DEPTH 6  /* a single long reduction is split into <= 2^6 subtrees */
#define MAXNAN(a, v) (((v != v) | (v > a)) ? v : a) /* NaN wins, as in NumPy */
#define MINNAN(a, v) (((v != v) | (v < a)) ? v : a)

/* Accumulation kinds: identity, per-value map (P: norm order, c: center),
 * and the combine rule used for lanes, tiles and blocks alike. */
#define KINDS(X)                                          \
    X(K_SUM, 0.0, x, a + v)                               \
    X(K_ABS, 0.0, fabs(x), a + v)                         \
    X(K_SQ, 0.0, x * x, a + v)                            \
    X(K_POW, 0.0, pow(fabs(x), P), a + v)                 \
    X(K_SSD, 0.0, (x - c) * (x - c), a + v)               \
    X(K_PROD, 1.0, x, a * v)                              \
    X(K_MAX, -INFINITY, x, MAXNAN(a, v))                  \
    X(K_MIN, INFINITY, x, MINNAN(a, v))                   \
    X(K_MAXABS, 0.0, fabs(x), MAXNAN(a, v))

#define KIND_ENUM(K, I, M, C) K,
typedef enum { KINDS(KIND_ENUM) K_COUNT } kind;
#define KIND_INIT(K, I, M, C) [K] = I,
static const double kind_init[] = {KINDS(KIND_INIT)};
_Static_assert(MIMIC_COUNT_OF(kind_init) == K_COUNT, "kind_init: one entry per kind");

#define KIND_FNS(K, I, M, C)                                                            \
    static inline double map_##K(double x, double P, double c)                          \
    {                                                                                   \
        (void)P;                                                                        \
        (void)c;                                                                        \
        return M;                                                                       \
    }                                                                                   \
    static inline double comb_##K(double a, double v) { return C; }
KINDS(KIND_FNS)

static double comb(kind k, double a, double v)
{
    switch (k) {
#define KIND_CASE(K, I, M, C) case K: return comb_##K(a, v);
        KINDS(KIND_CASE)
    default: return a;
    }
}

#define FOLD8(K, a)                                                                     \
    comb_##K(comb_##K(comb_##K(a[0], a[1]), comb_##K(a[2], a[3])),                       \
             comb_##K(comb_##K(a[4], a[5]), comb_##K(a[6], a[7])))

/* One block of m values at byte stride s. */
typedef double (*leaf_fn)(const char *p, int64_t s, int64_t m, double P, double c);
/* One block of m rows (byte stride srow) of nc contiguous columns: out[nc]. */
typedef void (*tleaf_fn)(const char *p, int64_t srow, int64_t nc, int64_t m, double P, const double *cen,
                         double *out);

#define LEAF_LOOP(K, LOAD)                                                              \
    for (; i + 8 <= m; i += 8)                                                          \
        for (int l = 0; l < 8; l++)                                                     \
            acc[l] = comb_##K(acc[l], map_##K(LOAD(i + l), P, c));                      \
    for (int l = 0; i < m; i++, l++)                                                    \
        acc[l] = comb_##K(acc[l], map_##K(LOAD(i), P, c));

#define LOAD_C(j) ((double)q[j])
#define LOAD_S(j) ((double)*(const T_ *)(p + (j) * s))
#define DEF_LEAVES(K, T, SUF)                                                           \
    static double leaf_##K##_##SUF(const char *p, int64_t s, int64_t m, double P, double c) \
    {                                                                                   \
        typedef T T_;                                                                   \
        double acc[8];                                                                  \
        for (int l = 0; l < 8; l++)                                                     \
            acc[l] = kind_init[K];                                                      \
        int64_t i = 0;                                                                  \
        const T_ *q = (const T_ *)p;                                                    \
        if (s == (int64_t)sizeof(T_)) {                                                 \
            LEAF_LOOP(K, LOAD_C)                                                        \
        } else {                                                                        \
            LEAF_LOOP(K, LOAD_S)                                                        \
        }                                                                               \
        return FOLD8(K, acc);                                                           \
    }                                                                                   \
    static void tleaf_##K##_##SUF(const char *p, int64_t srow, int64_t nc, int64_t m, double P, \
                                  const double *cen, double *out)                      \
    {                                                                                   \
        double acc[8][TILE];                                                            \
        for (int l = 0; l < 8; l++)                                                     \
            for (int64_t j = 0; j < nc; j++)                                            \
                acc[l][j] = kind_init[K];                                               \
        for (int64_t r = 0; r < m; r++) {                                               \
            const T *row = (const T *)(p + r * srow);                                   \
            double *a = acc[r & 7];                                                     \
            _Pragma("omp simd")                                                         \
            for (int64_t j = 0; j < nc; j++)                                            \
                a[j] = comb_##K(a[j], map_##K(row[j], P, cen[j]));                      \
        }                                                                               \
        for (int64_t j = 0; j < nc; j++) {                                              \
            double v[8];                                                                \
            for (int l = 0; l < 8; l++)                                                 \
                v[l] = acc[l][j];                                                       \
            out[j] = FOLD8(K, v);                                                       \
        }                                                                               \
    }
#define KIND_LEAVES(K, I, M, C) DEF_LEAVES(K, float, f32) DEF_LEAVES(K, double, f64)
KINDS(KIND_LEAVES)

#define KIND_LEAF_ENTRY(K, I, M, C) [K] = {leaf_##K##_f32, leaf_##K##_f64},
#define KIND_TLEAF_ENTRY(K, I, M, C) [K] = {tleaf_##K##_f32, tleaf_##K##_f64},
static const leaf_fn leaves[][2] = {KINDS(KIND_LEAF_ENTRY)};    /* [kind][dtype] */
static const tleaf_fn tleaves[][2] = {KINDS(KIND_TLEAF_ENTRY)}; /* [kind][dtype] */
_Static_assert(MIMIC_COUNT_OF(leaves) == K_COUNT && MIMIC_COUNT_OF(tleaves) == K_COUNT, "one leaf per kind");
_Static_assert(MIMIC_F32 == 0 && MIMIC_F64 == 1, "leaf index = dtype");

/* --- sequences: n values in row-major order over merged dims ------------------- */
typedef struct {
    const char *base;
    int nd; /* 1: a plain strided line */
    int64_t shape[MIMIC_MAX_DIMS], stride[MIMIC_MAX_DIMS]; /* bytes */
    size_t es;
} seq;

static void seq_line(seq *q, const char *base, int64_t stride_bytes, size_t es)
{
    q->base = base;
    q->nd = 1;
    q->shape[0] = INT64_MAX;
    q->stride[0] = stride_bytes;
    q->es = es;
}

static void seq_tensor(seq *q, const mimic_tensor *t)
{
    mimic_iter it;
    size_t es = mimic_dtype_size(t->dtype);
    const int64_t *st[1] = {t->stride};
    mimic_iter_init(&it, t->ndim, t->shape, 1, st, &es);
    q->base = mimic_data(t);
    q->nd = it.ndim;
    q->es = es;
    for (int d = 0; d < it.ndim; d++) {
        q->shape[d] = it.shape[d];
        q->stride[d] = it.stride[0][d];
    }
    if (q->nd == 1)
        q->shape[0] = INT64_MAX;
}

/* Values [i0, i0+m) as a pointer and byte stride: in place when they lie on
 * one row, else gathered into buf (BLK elements). */
static const char *seq_get(const seq *q, int64_t i0, int64_t m, char *buf, int64_t *s)
{
    int nd = q->nd;
    if (nd == 1) {
        *s = q->stride[0];
        return q->base + i0 * q->stride[0];
    }
    int64_t len = q->shape[nd - 1], r = i0 / len, c = i0 % len;
    int64_t idx[MIMIC_MAX_DIMS];
    const char *p = q->base + c * q->stride[nd - 1];
    for (int d = nd - 2; d >= 0; d--) {
        idx[d] = r % q->shape[d];
        r /= q->shape[d];
        p += idx[d] * q->stride[d];
    }
    *s = q->stride[nd - 1];
    if (c + m <= len)
        return p;
    for (int64_t j = 0; j < m; j++) {
        if (q->es == 4) /* constant sizes: inlined moves, not calls */
            memcpy(buf + 4 * j, p, 4);
        else
            memcpy(buf + 8 * j, p, 8);
        p += q->stride[nd - 1];
        if (++c < len)
            continue;
        c = 0;
        p -= len * q->stride[nd - 1];
        for (int d = nd - 2; d >= 0; d--) {
            p += q->stride[d];
            if (++idx[d] < q->shape[d])
                break;
            p -= idx[d] * q->stride[d];
            idx[d] = 0;
        }
    }
    *s = (int64_t)q->es;
    return buf;
}

/* --- block trees ------------------------------------------------------------------ */
typedef struct {
    leaf_fn f;
    kind k;
    double P, c;
    const seq *q;
    int64_t n;
} ijob;

static double tree(const ijob *j, int64_t b0, int64_t b1, char *buf)
{
    if (b1 - b0 == 1) {
        int64_t i0 = b0 * BLK, m = j->n - i0 < BLK ? j->n - i0 : BLK, s;
        const char *p = seq_get(j->q, i0, m, buf, &s);
        return j->f(p, s, m, j->P, j->c);
    }
    int64_t mid = b0 + (b1 - b0) / 2;
    double l = tree(j, b0, mid, buf);
    return comb(j->k, l, tree(j, mid, b1, buf));
}

/* The subtrees at depth PAR_DEPTH (or leaves above it), left to right. */
static void split(int64_t b0, int64_t b1, int depth, int64_t *lo, int *cnt)
{
    if (depth == PAR_DEPTH || b1 - b0 == 1) {
        lo[(*cnt)++] = b0;
        return;
    }
    int64_t mid = b0 + (b1 - b0) / 2;
    split(b0, mid, depth + 1, lo, cnt);
    split(mid, b1, depth + 1, lo, cnt);
}

static double recombine(kind k, int64_t b0, int64_t b1, int depth, const double *v, int *pos)
{
    if (depth == PAR_DEPTH || b1 - b0 == 1)
        return v[(*pos)++];
    int64_t mid = b0 + (b1 - b0) / 2;
    double l = recombine(k, b0, mid, depth + 1, v, pos);
    return comb(k, l, recombine(k, mid, b1, depth + 1, v, pos));
}

/* The whole tree; with par, its top subtrees run on threads (same result). */
static double tree_all(const ijob *j, bool par)
{
    int64_t nblk = (j->n + BLK - 1) / BLK;
    if (nblk == 0)
        return kind_init[j->k];
    if (!par || nblk < 4) {
        double buf[BLK];
        return tree(j, 0, nblk, (char *)buf);
    }
    int64_t lo[1 << PAR_DEPTH];
    double v[1 << PAR_DEPTH];
    int cnt = 0, pos = 0;
    split(0, nblk, 0, lo, &cnt);
    /* Nodes at the cut are contiguous block ranges: node i ends where i+1 starts. */
#pragma omp parallel for schedule(dynamic, 1)
    for (int i = 0; i < cnt; i++) {
        double buf[BLK];
        v[i] = tree(j, lo[i], i + 1 < cnt ? lo[i + 1] : nblk, (char *)buf);
    }
    return recombine(j->k, 0, nblk, 0, v, &pos);
}

typedef struct {
    tleaf_fn f;
    kind k;
    double P;
    const double *cen;
    const char *p;
    int64_t srow, nc, n;
} tjob;

static void ttree(const tjob *j, int64_t b0, int64_t b1, double *out)
{
    if (b1 - b0 == 1) {
        int64_t r0 = b0 * BLK, m = j->n - r0 < BLK ? j->n - r0 : BLK;
        j->f(j->p + r0 * j->srow, j->srow, j->nc, m, j->P, j->cen, out);
        return;
    }
    double tmp[TILE];
    int64_t mid = b0 + (b1 - b0) / 2;
    ttree(j, b0, mid, out);
    ttree(j, mid, b1, tmp);
    for (int64_t c = 0; c < j->nc; c++)
        out[c] = comb(j->k, out[c], tmp[c]);
}

static void ttree_all(const tjob *j, double *out)
{
    int64_t nblk = (j->n + BLK - 1) / BLK;
    if (nblk == 0)
        for (int64_t c = 0; c < j->nc; c++)
            out[c] = kind_init[j->k];
    else
        ttree(j, 0, nblk, out);
}

/* --- op semantics: which accumulation, and the final step ------------------------ */
static const char *const redop_names[] = {
    [MIMIC_SUM] = "sum", [MIMIC_MEAN] = "mean", [MIMIC_PROD] = "prod", [MIMIC_VAR] = "var",
    [MIMIC_STD] = "std", [MIMIC_NORM] = "norm", [MIMIC_MIN] = "min",  [MIMIC_MAX] = "max"};
_Static_assert(MIMIC_COUNT_OF(redop_names) == MIMIC_REDOP_COUNT, "redop_names: one entry per mimic_redop");

const char *mimic_redop_name(mimic_redop op) { return (unsigned)op < MIMIC_REDOP_COUNT ? redop_names[op] : "?"; }

static kind first_kind(mimic_redop op, double p)
{
    switch (op) {
    case MIMIC_PROD: return K_PROD;
    case MIMIC_MIN: return K_MIN;
    case MIMIC_MAX: return K_MAX;
    case MIMIC_NORM: return p == 1 ? K_ABS : p == 2 ? K_SQ : isinf(p) ? K_MAXABS : K_POW;
    default: return K_SUM; /* sum, mean, and the mean pass of var/std */
    }
}

static bool two_pass(mimic_redop op) { return op == MIMIC_VAR || op == MIMIC_STD; }

/* v: the accumulation (for var/std: the sum of squared deviations). */
static double finish(mimic_redop op, double p, int64_t n, double v)
{
    switch (op) {
    case MIMIC_MEAN: return v / (double)n;
    case MIMIC_VAR: return v / fmax((double)n - p, 0);
    case MIMIC_STD: return sqrt(v / fmax((double)n - p, 0));
    case MIMIC_NORM: return p == 2 ? sqrt(v) : p == 1 || isinf(p) ? v : pow(v, 1 / p);
    default: return v;
    }
}

typedef struct {
    mimic_redop op;
    double p; /* norm order, or var/std correction */
    int dt;   /* MIMIC_F32 or MIMIC_F64 */
} rctx;

static double reduce_seq(const rctx *r, const seq *q, int64_t n, bool par)
{
    kind k = first_kind(r->op, r->p);
    ijob j = {leaves[k][r->dt], k, r->p, 0, q, n};
    double v = tree_all(&j, par);
    if (two_pass(r->op)) {
        j = (ijob){leaves[K_SSD][r->dt], K_SSD, 0, v / (double)n, q, n};
        v = tree_all(&j, par);
    }
    return finish(r->op, r->p, n, v);
}

static void reduce_tile(const rctx *r, const char *p, int64_t srow, int64_t nc, int64_t n, double *res)
{
    static const double zeros[TILE];
    kind k = first_kind(r->op, r->p);
    tjob j = {tleaves[k][r->dt], k, r->p, zeros, p, srow, nc, n};
    ttree_all(&j, res);
    if (two_pass(r->op)) {
        double mean[TILE];
        for (int64_t c = 0; c < nc; c++)
            mean[c] = res[c] / (double)n;
        j.f = tleaves[K_SSD][r->dt];
        j.k = K_SSD;
        j.cen = mean;
        ttree_all(&j, res);
    }
    for (int64_t c = 0; c < nc; c++)
        res[c] = finish(r->op, r->p, n, res[c]);
}

/* --- shapes, outputs -------------------------------------------------------------- */
typedef struct {
    bool all; /* over every element (also any reduction of a 0-dim tensor) */
    int d;
    int64_t n, nout;
    int rnd;
    int64_t rshape[MIMIC_MAX_DIMS];
} plan;

static int make_plan(const char *fn, const mimic_tensor *t, int dim, bool keepdim, plan *pl)
{
    pl->all = dim == MIMIC_ALL_DIMS || t->ndim == 0;
    if (dim != MIMIC_ALL_DIMS && (pl->d = mimic_dim(fn, dim, t->ndim)) < 0)
        return mimic_errcode();
    if (pl->all) {
        pl->d = -1;
        pl->n = mimic_numel(t);
        pl->nout = 1;
        pl->rnd = keepdim ? t->ndim : 0;
        for (int k = 0; k < pl->rnd; k++)
            pl->rshape[k] = 1;
        return MIMIC_OK;
    }
    pl->n = t->shape[pl->d];
    pl->nout = 1;
    pl->rnd = 0;
    for (int k = 0; k < t->ndim; k++) {
        if (k != pl->d)
            pl->nout *= t->shape[k];
        if (k != pl->d || keepdim)
            pl->rshape[pl->rnd++] = k == pl->d ? 1 : t->shape[k];
    }
    return MIMIC_OK;
}

/* NumPy's rule: min/max/argmin/argmax of nothing is an error (unless there
 * is no output either). */
static int check_nonempty(const char *fn, const mimic_tensor *t, const plan *pl)
{
    if (pl->n > 0 || pl->nout == 0)
        return MIMIC_OK;
    char s[96];
    mimic_shape_str(t->ndim, t->shape, s, sizeof s);
    if (pl->all)
        return mimic_error(MIMIC_ESHAPE, "%s: cannot reduce an empty dim (size 0); the tensor of shape %s "
                           "has no elements", fn, s);
    return mimic_error(MIMIC_ESHAPE, "%s: cannot reduce an empty dim (size 0); dim %d of shape %s has no "
                       "elements (slice the empty case out first)", fn, mimic_dim_from_end(pl->d, t->ndim), s);
}

/* *outp if given (shape checked), else a new tensor of dtype dt that the
 * caller owns. */
static int get_out(const char *fn, mimic_tensor **outp, const plan *pl, mimic_dtype dt)
{
    if (*outp)
        return mimic_check_out_shape(fn, *outp, pl->rnd, pl->rshape);
    *outp = mimic_empty(pl->rnd, pl->rshape, dt);
    return *outp ? MIMIC_OK : mimic_errcode();
}

static void store(char *p, mimic_dtype dt, double v)
{
    switch (dt) {
    case MIMIC_F32: *(float *)p = (float)v; break;
    case MIMIC_F64: *(double *)p = v; break;
    case MIMIC_I64: *(int64_t *)p = mimic_f2i64(v); break;
    default: *(uint8_t *)p = v != 0; break;
    }
}

/* The dims of t other than the reduced one (and `skip`), with t's and out's
 * byte strides, for walking output elements. */
typedef struct {
    int nd;
    int64_t size[MIMIC_MAX_DIMS], ist[MIMIC_MAX_DIMS], ost[MIMIC_MAX_DIMS];
} outer;

static int64_t out_stride(const mimic_tensor *out, const plan *pl, bool keepdim, int k)
{
    return out->stride[keepdim || k < pl->d ? k : k - 1] * (int64_t)mimic_dtype_size(out->dtype);
}

static void make_outer(outer *o, const mimic_tensor *t, const mimic_tensor *out, const plan *pl, bool keepdim,
                       int skip)
{
    int64_t es = (int64_t)mimic_dtype_size(t->dtype);
    o->nd = 0;
    for (int k = 0; k < t->ndim; k++) {
        if (k == pl->d || k == skip)
            continue;
        o->size[o->nd] = t->shape[k];
        o->ist[o->nd] = t->stride[k] * es;
        o->ost[o->nd] = out_stride(out, pl, keepdim, k);
        o->nd++;
    }
}

static void outer_offsets(const outer *o, int64_t i, int64_t *in_off, int64_t *out_off)
{
    int64_t a = 0, b = 0;
    for (int k = o->nd - 1; k >= 0; k--) {
        int64_t x = i % o->size[k];
        i /= o->size[k];
        a += x * o->ist[k];
        b += x * o->ost[k];
    }
    *in_off = a;
    *out_off = b;
}

static bool want_threads(const mimic_tensor *t)
{
    return mimic_numel(t) >= MIMIC_PARALLEL_MIN && mimic_get_num_threads() > 1;
}

static void reduce_run(const rctx *r, const mimic_tensor *t, const plan *pl, bool keepdim, mimic_tensor *out)
{
    const char *ib = mimic_data(t);
    char *ob = mimic_data(out);
    size_t es = mimic_dtype_size(t->dtype);
    bool par = want_threads(t);
    if (pl->nout == 0)
        return;
    if (pl->all || pl->nout == 1) {
        seq q;
        if (pl->all)
            seq_tensor(&q, t);
        else
            seq_line(&q, ib, t->stride[pl->d] * (int64_t)es, es);
        store(ob, out->dtype, reduce_seq(r, &q, pl->n, par));
        return;
    }
    /* Reducing a non-inner dim: walk TILE contiguous columns at once. */
    int cdim = -1;
    if (t->stride[pl->d] != 1 && pl->n > 1)
        for (int k = t->ndim - 1; k >= 0 && cdim < 0; k--)
            if (k != pl->d && t->shape[k] > 1 && t->stride[k] == 1)
                cdim = k;
    outer o;
    make_outer(&o, t, out, pl, keepdim, cdim);
    int64_t srow = t->stride[pl->d] * (int64_t)es;
    if (cdim < 0) {
#pragma omp parallel for schedule(static) if (par)
        for (int64_t i = 0; i < pl->nout; i++) {
            int64_t a, b;
            outer_offsets(&o, i, &a, &b);
            seq q;
            seq_line(&q, ib + a, srow, es);
            store(ob + b, out->dtype, reduce_seq(r, &q, pl->n, false));
        }
        return;
    }
    int64_t ncol = t->shape[cdim], ntile = (ncol + TILE - 1) / TILE, ntask = pl->nout / ncol * ntile;
    int64_t ostc = out_stride(out, pl, keepdim, cdim);
#pragma omp parallel for schedule(static) if (par && ntask > 1)
    for (int64_t i = 0; i < ntask; i++) {
        int64_t a, b, c0 = i % ntile * TILE, nc = ncol - c0 < TILE ? ncol - c0 : TILE;
        double res[TILE];
        outer_offsets(&o, i / ntile, &a, &b);
        reduce_tile(r, ib + a + c0 * (int64_t)es, srow, nc, pl->n, res);
        for (int64_t c = 0; c < nc; c++)
            store(ob + b + (c0 + c) * ostc, out->dtype, res[c]);
    }
}

static int reduce_impl(mimic_tensor **outp, mimic_redop op, const mimic_tensor *t, int dim, bool keepdim,
                       double param)
{
    if ((unsigned)op >= MIMIC_REDOP_COUNT)
        return mimic_error(MIMIC_EARG, "reduce: unknown op %d", (int)op);
    const char *fn = redop_names[op];
    int rc = mimic_check_float(fn, t);
    if (rc)
        return rc;
    if (op == MIMIC_NORM && !(param > 0))
        return mimic_error(MIMIC_EARG, "norm: the order p must be > 0 (1, 2, INFINITY for max |x|, ...); got %g",
                           param);
    plan pl;
    if ((rc = make_plan(fn, t, dim, keepdim, &pl)) ||
        ((op == MIMIC_MIN || op == MIMIC_MAX) && (rc = check_nonempty(fn, t, &pl))) ||
        (rc = get_out(fn, outp, &pl, t->dtype)))
        return rc;
    rctx r = {op, param, t->dtype};
    reduce_run(&r, t, &pl, keepdim, *outp);
    return MIMIC_OK;
}

static int reduce_backward(mimic_node *n, const mimic_tensor *g, mimic_tensor **gin);

mimic_tensor *mimic_reduce(mimic_redop op, const mimic_tensor *t, int dim, bool keepdim, double param)
{
    mimic_tensor *out = NULL;
    if (reduce_impl(&out, op, t, dim, keepdim, param) || !mimic_ag_wanted(1, &t))
        return out;
    mimic_node *n = mimic_ag_record(out, redop_names[op], reduce_backward, 1, &t);
    /* std, norm, min and max reuse their result in the backward. */
    bool save = op == MIMIC_STD || op == MIMIC_NORM || op == MIMIC_MIN || op == MIMIC_MAX;
    if (!n || (save && mimic_ag_save(n, out))) {
        mimic_tensor_free(out);
        return NULL;
    }
    if (op == MIMIC_SUM || op == MIMIC_MEAN)
        n->reads = 0;
    n->iarg[0] = op;
    n->iarg[1] = dim == MIMIC_ALL_DIMS || t->ndim == 0 ? -1 : mimic_dim(redop_names[op], dim, t->ndim);
    n->iarg[2] = keepdim;
    n->darg[0] = param;
    return out;
}

int mimic_reduce_out(mimic_tensor *out, mimic_redop op, const mimic_tensor *t, int dim, bool keepdim,
                     double param)
{
    if (!out)
        return mimic_error(MIMIC_EARG, "%s: out is NULL", mimic_redop_name(op));
    int rc = mimic_ag_out(mimic_redop_name(op), out, 1, &t);
    return rc ? rc : reduce_impl(&out, op, t, dim, keepdim, param);
}

mimic_tensor *mimic_sum_to(const mimic_tensor *t, int ndim, const int64_t *shape)
{
    int lead = t->ndim - ndim;
    bool ok = lead >= 0;
    for (int d = 0; ok && d < ndim; d++)
        ok = shape[d] == t->shape[lead + d] || shape[d] == 1;
    if (!ok) {
        char a[96], b[96];
        mimic_error(MIMIC_ESHAPE, "sum_to: %s does not broadcast to %s, so it cannot be summed back to it",
                    mimic_shape_str(ndim, shape, a, sizeof a), mimic_shape_str(t->ndim, t->shape, b, sizeof b));
        return NULL;
    }
    mimic_tensor *r = (mimic_tensor *)t;
    mimic_tensor_retain(r);
    /* Size-1 target dims first (keepdim, positions stable), then the leading ones. */
    for (int d = 0; d < ndim && r; d++)
        if (shape[d] == 1 && t->shape[lead + d] != 1) {
            mimic_tensor *s = mimic_reduce(MIMIC_SUM, r, lead + d, true, 0);
            mimic_tensor_free(r);
            r = s;
        }
    for (int d = 0; d < lead && r; d++) {
        mimic_tensor *s = mimic_reduce(MIMIC_SUM, r, 0, false, 0);
        mimic_tensor_free(r);
        r = s;
    }
    return r;
}

/* --- argmin / argmax ----------------------------------------------------------------- */
/* First index of the extreme among m >= 1 values; a NaN is the extreme (NumPy).
 * Two passes (extreme value and NaN flag, then its first position) instead of
 * one with a data-dependent branch per new extreme, which mispredicts on
 * short rows; both loops compile to maxss/minss and a predictable exit. */
#define BETTER_MAX(x, b) ((x > b) | ((x != x) & (b == b)))
#define BETTER_MIN(x, b) ((x < b) | ((x != x) & (b == b)))
#define PICK_MAX(x, b) (x > b ? x : b)
#define PICK_MIN(x, b) (x < b ? x : b)
typedef int64_t (*scan_fn)(const char *p, int64_t s, int64_t m, double *best);
#define DEF_SCAN(NAME, T, PICK)                                                         \
    static int64_t NAME(const char *p, int64_t s, int64_t m, double *best)              \
    {                                                                                   \
        T b = *(const T *)p;                                                            \
        bool nan = b != b;                                                              \
        for (int64_t i = 1; i < m; i++) {                                               \
            T x = *(const T *)(p + i * s);                                              \
            b = PICK(x, b);                                                             \
            nan |= x != x;                                                              \
        }                                                                               \
        int64_t i = 0;                                                                  \
        if (nan) {                                                                      \
            while (*(const T *)(p + i * s) == *(const T *)(p + i * s))                  \
                i++;                                                                    \
            *best = NAN;                                                                \
        } else {                                                                        \
            while (*(const T *)(p + i * s) != b)                                        \
                i++;                                                                    \
            *best = b;                                                                  \
        }                                                                               \
        return i;                                                                       \
    }
DEF_SCAN(argmax_f32, float, PICK_MAX)
DEF_SCAN(argmax_f64, double, PICK_MAX)
DEF_SCAN(argmin_f32, float, PICK_MIN)
DEF_SCAN(argmin_f64, double, PICK_MIN)

typedef struct {
    scan_fn f;
    bool max;
    const seq *q;
} ajob;

static bool better(bool max, double x, double b) { return max ? BETTER_MAX(x, b) : BETTER_MIN(x, b); }

/* Values [i0, i1) (i1 > i0) of the sequence, block by block. */
static int64_t arg_range(const ajob *j, int64_t i0, int64_t i1, double *best)
{
    double buf[BLK], bv = 0;
    int64_t bi = i0;
    for (int64_t i = i0; i < i1; i += BLK) {
        int64_t m = i1 - i < BLK ? i1 - i : BLK, s;
        double v;
        const char *p = seq_get(j->q, i, m, (char *)buf, &s);
        int64_t k = j->f(p, s, m, &v);
        if (i == i0 || better(j->max, v, bv)) {
            bv = v;
            bi = i + k;
        }
    }
    *best = bv;
    return bi;
}

/* Chunks of whole blocks on threads, then merged left to right: ties keep the
 * earlier chunk, so the answer is the serial one. */
static int64_t arg_all(const ajob *j, int64_t n, bool par)
{
    double best;
    int64_t nblk = (n + BLK - 1) / BLK;
    if (!par || nblk < 4)
        return arg_range(j, 0, n, &best);
    enum { NCH = 64 };
    int64_t nch = nblk < NCH ? nblk : NCH, idx[NCH];
    double val[NCH];
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < nch; c++) {
        int64_t i0 = nblk * c / nch * BLK, i1 = nblk * (c + 1) / nch * BLK;
        idx[c] = arg_range(j, i0, i1 < n ? i1 : n, &val[c]);
    }
    int64_t bi = idx[0];
    best = val[0];
    for (int64_t c = 1; c < nch; c++)
        if (better(j->max, val[c], best)) {
            best = val[c];
            bi = idx[c];
        }
    return bi;
}

static mimic_tensor *arg_impl(bool max, const mimic_tensor *t, int dim, bool keepdim)
{
    const char *fn = max ? "argmax" : "argmin";
    plan pl;
    mimic_tensor *out = NULL;
    if (mimic_check_float(fn, t) || make_plan(fn, t, dim, keepdim, &pl) || check_nonempty(fn, t, &pl) ||
        get_out(fn, &out, &pl, MIMIC_I64) || pl.nout == 0)
        return out;
    scan_fn f = max ? (t->dtype == MIMIC_F64 ? argmax_f64 : argmax_f32)
                    : (t->dtype == MIMIC_F64 ? argmin_f64 : argmin_f32);
    size_t es = mimic_dtype_size(t->dtype);
    bool par = want_threads(t);
    int64_t *o = mimic_data(out); /* contiguous: new */
    seq q;
    ajob j = {f, max, &q};
    if (pl.all || pl.nout == 1) {
        if (pl.all)
            seq_tensor(&q, t);
        else
            seq_line(&q, mimic_data(t), t->stride[pl.d] * (int64_t)es, es);
        o[0] = arg_all(&j, pl.n, par);
        return out;
    }
    outer ou;
    make_outer(&ou, t, out, &pl, keepdim, -1);
    const char *ib = mimic_data(t);
    int64_t srow = t->stride[pl.d] * (int64_t)es;
#pragma omp parallel for schedule(static) if (par)
    for (int64_t i = 0; i < pl.nout; i++) {
        int64_t a, b;
        double best;
        outer_offsets(&ou, i, &a, &b);
        seq qi;
        seq_line(&qi, ib + a, srow, es);
        ajob ji = {f, max, &qi};
        *(int64_t *)((char *)o + b) = arg_range(&ji, 0, pl.n, &best);
    }
    return out;
}

mimic_tensor *mimic_argmin(const mimic_tensor *t, int dim, bool keepdim) { return arg_impl(false, t, dim, keepdim); }
mimic_tensor *mimic_argmax(const mimic_tensor *t, int dim, bool keepdim) { return arg_impl(true, t, dim, keepdim); }

/* --- cumsum ------------------------------------------------------------------------------ */
/* In place on a contiguous [outer, n, inner] block, accumulating in double. */
#define DEF_CUMSUM(NAME, T)                                                             \
    static void NAME(char *base, int64_t outer_n, int64_t n, int64_t inner, bool par)   \
    {                                                                                   \
        int64_t ntile = (inner + TILE - 1) / TILE;                                      \
        (void)par; /* unused without OpenMP */                                          \
        _Pragma("omp parallel for schedule(static) if (par)")                           \
        for (int64_t i = 0; i < outer_n * ntile; i++) {                                 \
            int64_t c0 = i % ntile * TILE, nc = inner - c0 < TILE ? inner - c0 : TILE;  \
            T *x = (T *)base + i / ntile * n * inner + c0;                              \
            double acc[TILE];                                                           \
            for (int64_t c = 0; c < nc; c++)                                            \
                acc[c] = x[c];                                                          \
            for (int64_t k = 1; k < n; k++) {                                           \
                T *row = x + k * inner;                                                 \
                _Pragma("omp simd")                                                     \
                for (int64_t c = 0; c < nc; c++) {                                      \
                    acc[c] += row[c];                                                   \
                    row[c] = (T)acc[c];                                                 \
                }                                                                       \
            }                                                                           \
        }                                                                               \
    }
DEF_CUMSUM(cumsum_f32, float)
DEF_CUMSUM(cumsum_f64, double)

static int cumsum_backward(mimic_node *n, const mimic_tensor *g, mimic_tensor **gin);

mimic_tensor *mimic_cumsum(const mimic_tensor *t, int dim)
{
    if (mimic_check_float("cumsum", t))
        return NULL;
    int d = dim == MIMIC_ALL_DIMS ? -1 : mimic_dim("cumsum", dim, t->ndim);
    if (dim != MIMIC_ALL_DIMS && d < 0)
        return NULL;
    /* The copy that cumsum then works in place on is not the op itself. */
    bool grad_was = mimic_set_grad_enabled(false);
    mimic_tensor *out = mimic_clone(t);
    mimic_set_grad_enabled(grad_was);
    if (!out)
        return NULL;
    int64_t numel = mimic_numel(t), outer_n = 1, n = numel, inner = 1;
    if (dim == MIMIC_ALL_DIMS) { /* NumPy's axis=None: over the flattened tensor, 1-D result */
        out->ndim = 1;
        out->shape[0] = numel;
        out->stride[0] = 1;
    } else if (t->ndim > 0) {
        n = t->shape[d];
        for (int k = 0; k < t->ndim; k++)
            if (k < d)
                outer_n *= t->shape[k];
            else if (k > d)
                inner *= t->shape[k];
    }
    if (numel > 0 && n > 1)
        (t->dtype == MIMIC_F64 ? cumsum_f64 : cumsum_f32)(mimic_data(out), outer_n, n, inner, want_threads(t));
    if (!mimic_ag_wanted(1, &t))
        return out;
    mimic_node *nd = mimic_ag_record(out, "cumsum", cumsum_backward, 1, &t);
    if (!nd) {
        mimic_tensor_free(out);
        return NULL;
    }
    nd->reads = 0;
    nd->iarg[0] = dim == MIMIC_ALL_DIMS ? -1 : d;
    return out;
}

/* --- gradients ---------------------------------------------------------------------
 * node->iarg: [0] the redop, [1] the reduced dim (-1: all), [2] keepdim;
 * darg[0] the op's param. Every formula is written with public ops (so under
 * create_graph it is recorded) and avoids a division by zero even in a branch
 * that `where` discards, because the discarded branch still receives a zero
 * gradient, and 0 * inf would turn second derivatives into NaN. */
static mimic_tensor *E_dup(mimic_tensor *t) { return t ? E_ref(t) : NULL; }

/* op over the node's reduced dims with keepdim, so the result broadcasts
 * against the input. Consumes t. */
static mimic_tensor *E_red(mimic_redop op, mimic_tensor *t, const mimic_node *n, double param)
{
    int d = (int)n->iarg[1];
    mimic_tensor *r = t ? mimic_reduce(op, t, d < 0 ? MIMIC_ALL_DIMS : d, true, param) : NULL;
    mimic_tensor_free(t);
    return r;
}

/* A result-shaped t with the reduced dim put back (size 1) when keepdim was
 * off; a full reduction's result broadcasts as it is. Consumes t. */
static mimic_tensor *kept(mimic_tensor *t, const mimic_node *n)
{
    if (!t || n->iarg[2] || n->iarg[1] < 0)
        return t;
    mimic_tensor *r = mimic_unsqueeze(t, (int)n->iarg[1]);
    mimic_tensor_free(t);
    return r;
}

/* The op's result, keepdim-shaped. Under create_graph it is recomputed from
 * the input when the formula differentiates through it (`diff`); otherwise
 * the saved result serves. */
static mimic_tensor *result_kept(const mimic_node *n, bool diff)
{
    if (n->saved && !(diff && mimic_grad_enabled()))
        return kept(E_ref(n->saved), n);
    return E_red((mimic_redop)n->iarg[0], E_ref(n->in[0]), n, n->darg[0]);
}

/* t with its zeros replaced by 1: a divisor that is never 0. Consumes t. */
static mimic_tensor *nonzero(mimic_tensor *t, mimic_dtype dt)
{
    mimic_tensor *z = E_cmp(MIMIC_EQ, E_dup(t), E_num(0, dt));
    return E_where(z, E_num(1, dt), t);
}

/* Where mask holds, v divided by the number of true entries of mask over the
 * reduced dims; 0 elsewhere. Min, max and the inf-norm send the gradient to
 * the extreme elements this way, split evenly on ties (as the element-wise
 * maximum does). Consumes mask and v. */
static mimic_tensor *split_ties(mimic_tensor *mask, mimic_tensor *v, const mimic_node *n, mimic_dtype dt)
{
    mimic_tensor *count = E_red(MIMIC_SUM, E_where(E_dup(mask), E_num(1, dt), E_num(0, dt)), n, 0);
    return E_where(mask, E_DIV(v, count), E_num(0, dt));
}

/* d prod / d x_i = the product of the others, exactly also at zeros: with
 * pnz the product of the nonzero entries, it is pnz / x_i when none of the
 * others is zero (pnz itself for the zero entry) and 0 when one is. The
 * second derivative treats the zero pattern as fixed, so it is exact away
 * from zeros only (at a single zero it misses d2/dx_i dx_zero). */
static mimic_tensor *prod_grad(const mimic_node *n, mimic_tensor *ge, mimic_dtype dt)
{
    const mimic_tensor *x = n->in[0];
    mimic_tensor *iz = E_where(E_cmp(MIMIC_EQ, E_ref(x), E_num(0, dt)), E_num(1, dt), E_num(0, dt));
    mimic_tensor *nz = nonzero(E_ref(x), dt);
    mimic_tensor *zeros = E_red(MIMIC_SUM, E_dup(iz), n, 0);
    mimic_tensor *others = E_DIV(E_red(MIMIC_PROD, E_dup(nz), n, 0), nz);
    /* zeros - iz: how many of the other entries are zero */
    return E_MUL(ge, E_where(E_cmp(MIMIC_EQ, zeros, iz), others, E_num(0, dt)));
}

static mimic_tensor *norm_grad(const mimic_node *n, mimic_tensor *ge, mimic_dtype dt)
{
    const mimic_tensor *x = n->in[0];
    double p = n->darg[0];
    if (p == 1)
        return E_MUL(ge, E_un(MIMIC_SIGN, E_ref(x)));
    if (isinf(p)) {
        mimic_tensor *mask = E_cmp(MIMIC_EQ, E_un(MIMIC_ABS, E_ref(x)), result_kept(n, false));
        return split_ties(mask, E_MUL(ge, E_un(MIMIC_SIGN, E_ref(x))), n, dt);
    }
    /* sign(x) (|x| / norm)^(p-1); a zero norm means x = 0 and a zero gradient */
    mimic_tensor *y = nonzero(result_kept(n, true), dt);
    if (p == 2)
        return E_MUL(ge, E_DIV(E_ref(x), y));
    mimic_tensor *r = E_MUL(E_un(MIMIC_SIGN, E_ref(x)),
                            E_bin(MIMIC_POW, E_DIV(E_un(MIMIC_ABS, E_ref(x)), y), E_num(p - 1, dt)));
    if (p < 1) /* |x|^(p-1) is infinite at 0, where the gradient is taken as 0 */
        r = E_where(E_cmp(MIMIC_EQ, E_ref(x), E_num(0, dt)), E_num(0, dt), r);
    return E_MUL(ge, r);
}

static mimic_tensor *E_expand(mimic_tensor *t, const mimic_tensor *like)
{
    mimic_tensor *r = t ? mimic_expand(t, like->ndim, like->shape) : NULL;
    mimic_tensor_free(t);
    return r;
}

static int reduce_backward(mimic_node *n, const mimic_tensor *g, mimic_tensor **gin)
{
    const mimic_tensor *x = n->in[0];
    mimic_dtype dt = x->dtype;
    double p = n->darg[0];
    double count = (double)(n->iarg[1] < 0 ? mimic_numel(x) : x->shape[n->iarg[1]]);
    double denom = fmax(count - p, 0); /* var/std: as the forward divides */
    mimic_tensor *ge = kept(E_ref(g), n), *r;
    switch ((mimic_redop)n->iarg[0]) {
    case MIMIC_SUM: r = E_expand(ge, x); break;
    case MIMIC_MEAN: r = E_expand(E_DIV(ge, E_num(count, dt)), x); break;
    case MIMIC_PROD: r = prod_grad(n, ge, dt); break;
    case MIMIC_VAR: /* 2 (x - mean) / (n - ddof) */
        r = E_MUL(E_MUL(ge, E_num(2 / denom, dt)), E_SUB(E_ref(x), E_red(MIMIC_MEAN, E_ref(x), n, 0)));
        break;
    case MIMIC_STD: /* (x - mean) / ((n - ddof) std); std = 0 means x - mean = 0 */
        r = E_DIV(E_MUL(ge, E_SUB(E_ref(x), E_red(MIMIC_MEAN, E_ref(x), n, 0))),
                  E_MUL(nonzero(result_kept(n, true), dt), E_num(denom, dt)));
        break;
    case MIMIC_NORM: r = norm_grad(n, ge, dt); break;
    default: /* min, max */
        r = split_ties(E_cmp(MIMIC_EQ, E_ref(x), result_kept(n, false)), ge, n, dt);
        break;
    }
    return E_set(gin, 0, r);
}

/* The gradient of a cumulative sum is the cumulative sum taken from the other
 * end: flip, cumsum, flip back (index_select with a reversed arange). */
static int cumsum_backward(mimic_node *n, const mimic_tensor *g, mimic_tensor **gin)
{
    const mimic_tensor *x = n->in[0];
    int d = n->iarg[0] < 0 ? 0 : (int)n->iarg[0]; /* over all dims, g is the flat 1-D result */
    mimic_tensor *r = E_ref(g);
    if (g->ndim > 0 && g->shape[d] > 1) {
        mimic_tensor *rev = mimic_arange((double)g->shape[d] - 1, -1, -1, MIMIC_I64);
        mimic_tensor *f = rev ? mimic_index_select(r, d, rev) : NULL;
        mimic_tensor *c = f ? mimic_cumsum(f, d) : NULL;
        mimic_tensor_free(r);
        r = c ? mimic_index_select(c, d, rev) : NULL;
        mimic_tensor_free(c);
        mimic_tensor_free(f);
        mimic_tensor_free(rev);
    }
    if (r && n->iarg[0] < 0 && x->ndim != 1) {
        mimic_tensor *v = mimic_reshape(r, x->ndim, x->shape);
        mimic_tensor_free(r);
        r = v;
    }
    return E_set(gin, 0, r);
}

const mimic_opdef mimic_ops_reduce[] = {
    {"sum", reduce_backward},  {"mean", reduce_backward}, {"prod", reduce_backward},
    {"var", reduce_backward},  {"std", reduce_backward},  {"norm", reduce_backward},
    {"min", reduce_backward},  {"max", reduce_backward},  {"cumsum", cumsum_backward},
    {NULL, NULL},
};
