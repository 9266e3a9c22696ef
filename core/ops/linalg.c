/* Linear algebra on BLAS: matmul (NumPy rules), bmm, dot, outer.
 *
 * Every operand matrix is described by (rows, cols, row stride, col stride).
 * Row-major with unit column stride goes to BLAS as NoTrans, column-major
 * (a transposed view) as Trans, each with its leading dimension, so
 * transposes and column slices are never copied. Only layouts BLAS cannot
 * express (a column step, a zero stride) are copied to contiguous first.
 * The allocating forms record autograd nodes; their gradients are products
 * with transposed views, so they take the same no-copy path. */
#include "../autograd/expr.h"
#include "../base/internal.h"
#include "mimic/ops.h"

#include <limits.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define SHAPE_STR(t) mimic_shape_str((t)->ndim, (t)->shape, (char[96]){0}, 96)

/* Below this many flops per product, batch entries run on separate threads
 * (each gemm single-threaded) instead of one threaded gemm after another. */
#define SMALL_GEMM_FLOPS (64 * 64 * 64)

typedef struct blas_mat {
    bool trans;
    int64_t ld;
} blas_mat;

/* Whether an r x c matrix with element strides (rs, cs) is a BLAS operand, and how. */
static bool blas_layout(int64_t r, int64_t c, int64_t rs, int64_t cs, blas_mat *m)
{
    int64_t c1 = c > 1 ? c : 1, r1 = r > 1 ? r : 1;
    if ((c <= 1 || cs == 1) && (r <= 1 || rs >= c1)) {
        m->trans = false;
        m->ld = r <= 1 ? c1 : rs;
    } else if ((r <= 1 || rs == 1) && (c <= 1 || cs >= r1)) {
        m->trans = true;
        m->ld = c <= 1 ? r1 : cs;
    } else {
        return false;
    }
    return m->ld <= INT_MAX;
}

static void gemm(mimic_dtype ct, int64_t M, int64_t N, int64_t K, const void *A, blas_mat la, const void *B,
                 blas_mat lb, void *C, blas_mat lc)
{
    if (lc.trans) {
        /* A column-major C is a row-major C^T = op(B)^T op(A)^T. */
        la.trans = !la.trans;
        lb.trans = !lb.trans;
        lc.trans = false;
        gemm(ct, N, M, K, B, lb, A, la, C, lc);
        return;
    }
    mimic_gemm_rm(ct, la.trans, lb.trans, M, N, K, A, la.ld, B, lb.ld, false, C, lc.ld);
}

/* The result's geometry under NumPy's matmul rules. */
typedef struct mm_plan {
    int64_t n, k, m;
    int nb;                         /* batch dims of the result */
    int64_t batch[MIMIC_MAX_DIMS];
    int ndim;                       /* result */
    int64_t shape[MIMIC_MAX_DIMS];
} mm_plan;

static int mm_plan_make(const char *fn, const mimic_tensor *a, const mimic_tensor *b, mm_plan *p)
{
    if (a->ndim == 0 || b->ndim == 0)
        return mimic_error(MIMIC_ESHAPE, "%s: shapes %s and %s: 0-dim operands are not allowed (use mul to scale)",
                           fn, SHAPE_STR(a), SHAPE_STR(b));
    int64_t ka = a->shape[a->ndim - 1], kb = b->ndim == 1 ? b->shape[0] : b->shape[b->ndim - 2];
    if (ka != kb)
        return mimic_error(MIMIC_ESHAPE, "%s: shapes %s and %s do not match (%lld ~= %lld)", fn, SHAPE_STR(a),
                           SHAPE_STR(b), (long long)ka, (long long)kb);
    p->k = ka;
    p->n = a->ndim == 1 ? 1 : a->shape[a->ndim - 2];
    p->m = b->ndim == 1 ? 1 : b->shape[b->ndim - 1];
    int ab = a->ndim > 2 ? a->ndim - 2 : 0, bb = b->ndim > 2 ? b->ndim - 2 : 0;
    p->nb = ab > bb ? ab : bb;
    for (int d = 0; d < p->nb; d++) {
        int da = d - (p->nb - ab), db = d - (p->nb - bb);
        int64_t sa = da >= 0 ? a->shape[da] : 1, sb = db >= 0 ? b->shape[db] : 1;
        if (sa != sb && sa != 1 && sb != 1)
            return mimic_error(MIMIC_ESHAPE, "%s: batch dims of %s and %s do not broadcast (%lld ~= %lld)", fn,
                               SHAPE_STR(a), SHAPE_STR(b), (long long)sa, (long long)sb);
        p->batch[d] = sa == 1 ? sb : sa;
    }
    p->ndim = p->nb;
    memcpy(p->shape, p->batch, sizeof p->batch);
    if (a->ndim >= 2)
        p->shape[p->ndim++] = p->n;
    if (b->ndim >= 2)
        p->shape[p->ndim++] = p->m;
    if (p->n > INT_MAX || p->k > INT_MAX || p->m > INT_MAX)
        return mimic_error(MIMIC_ESHAPE, "%s: shapes %s and %s: a matrix dim exceeds BLAS's limit of %d", fn,
                           SHAPE_STR(a), SHAPE_STR(b), INT_MAX);
    return MIMIC_OK;
}

/* One operand as a batch of matrices: batch strides over the plan's batch
 * shape (0 where broadcast) and the matrix strides. */
typedef struct mm_operand {
    char *base;
    size_t esize;
    int64_t bstride[MIMIC_MAX_DIMS];
    int64_t r, c, rs, cs;
} mm_operand;

/* t's trailing two dims (or its one dim as a row, or as a column) over the plan's batch. */
static void mm_operand_of(const mimic_tensor *t, const mm_plan *p, int vec_as, int64_t r, int64_t c,
                          mm_operand *o)
{
    o->base = mimic_data(t);
    o->esize = mimic_dtype_size(t->dtype);
    o->r = r;
    o->c = c;
    int mdims = t->ndim >= 2 ? 2 : t->ndim;
    if (t->ndim >= 2) {
        o->rs = t->stride[t->ndim - 2];
        o->cs = t->stride[t->ndim - 1];
    } else if (vec_as == 0) { /* a row */
        o->rs = 0;
        o->cs = t->ndim ? t->stride[0] : 0;
    } else { /* a column */
        o->rs = t->ndim ? t->stride[0] : 0;
        o->cs = 0;
    }
    int tb = t->ndim - mdims;
    for (int d = 0; d < p->nb; d++) {
        int td = d - (p->nb - tb);
        o->bstride[d] = td < 0 || t->shape[td] == 1 ? 0 : t->stride[td];
    }
}

/* The output's matrices: its dims follow the plan's result shape. */
static void mm_output_of(const mimic_tensor *out, const mm_plan *p, bool a_vec, bool b_vec, mm_operand *o)
{
    o->base = mimic_data(out);
    o->esize = mimic_dtype_size(out->dtype);
    o->r = p->n;
    o->c = p->m;
    int d = p->nb;
    o->rs = a_vec ? 0 : out->stride[d++];
    o->cs = b_vec ? 0 : out->stride[d];
    for (int i = 0; i < p->nb; i++)
        o->bstride[i] = out->stride[i];
}

/* Address range [lo, hi) touched by t, to detect an output that overlaps an input. */
static void byte_span(const mimic_tensor *t, const char **lo, const char **hi)
{
    const char *p = mimic_data(t);
    int64_t ext = 0;
    for (int d = 0; d < t->ndim; d++) {
        if (t->shape[d] == 0) {
            *lo = *hi = p;
            return;
        }
        ext += (t->shape[d] - 1) * t->stride[d];
    }
    *lo = p;
    *hi = p + (size_t)(ext + 1) * mimic_dtype_size(t->dtype);
}

static bool overlaps(const mimic_tensor *x, const mimic_tensor *y)
{
    const char *xl, *xh, *yl, *yh;
    byte_span(x, &xl, &xh);
    byte_span(y, &yl, &yh);
    return xl < yh && yl < xh;
}

/* Batch entry i (row-major over bsh) of the product. */
static void mm_entry(mimic_dtype ct, int64_t i, int nb, const int64_t *bsh, const int64_t *sa, const int64_t *sb,
                     const int64_t *sc, int64_t rows, const mm_plan *p, const mm_operand *A, blas_mat la,
                     const mm_operand *B, blas_mat lb, const mm_operand *C, blas_mat lc)
{
    int64_t oa = 0, ob = 0, oc = 0, r = i;
    for (int d = nb - 1; d >= 0; d--) {
        int64_t j = r % bsh[d];
        r /= bsh[d];
        oa += j * sa[d];
        ob += j * sb[d];
        oc += j * sc[d];
    }
    gemm(ct, rows, p->m, p->k, A->base + oa * (int64_t)A->esize, la, B->base + ob * (int64_t)B->esize, lb,
         C->base + oc * (int64_t)C->esize, lc);
}

/* Run the gemms of A x B -> C over the batch. All three share dtype ct and
 * have BLAS layouts (checked by the caller). */
static void mm_run(mimic_dtype ct, const mm_plan *p, const mm_operand *A, const mm_operand *B,
                   const mm_operand *C)
{
    /* Drop batch dims of size 1, then fold trailing batch dims into the rows of
     * A and C when B does not move along them: [B,n,k] x [k,m] is one
     * [B*n,k] x [k,m] gemm, much faster than B small ones. */
    int nb = 0;
    int64_t bsh[MIMIC_MAX_DIMS], sa[MIMIC_MAX_DIMS], sb[MIMIC_MAX_DIMS], sc[MIMIC_MAX_DIMS];
    for (int d = 0; d < p->nb; d++)
        if (p->batch[d] != 1) {
            bsh[nb] = p->batch[d];
            sa[nb] = A->bstride[d];
            sb[nb] = B->bstride[d];
            sc[nb++] = C->bstride[d];
        }
    int64_t rows = p->n, ars = A->rs, crs = C->rs;
    blas_mat la, lb, lc, t1, t2;
    while (nb > 0 && sb[nb - 1] == 0) {
        int64_t s = bsh[nb - 1];
        int64_t nars = rows == 1 ? sa[nb - 1] : ars, ncrs = rows == 1 ? sc[nb - 1] : crs;
        if (rows > INT_MAX / s || sa[nb - 1] != rows * nars || sc[nb - 1] != rows * ncrs)
            break;
        if (!blas_layout(rows * s, p->k, nars, A->cs, &t1) || t1.trans ||
            !blas_layout(rows * s, p->m, ncrs, C->cs, &t2) || t2.trans)
            break;
        rows *= s;
        ars = nars;
        crs = ncrs;
        nb--;
    }
    /* The caller checked these layouts; folding keeps them valid. */
    blas_layout(rows, p->k, ars, A->cs, &la);
    blas_layout(p->k, p->m, B->rs, B->cs, &lb);
    blas_layout(rows, p->m, crs, C->cs, &lc);

    int64_t nbatch = 1;
    for (int d = 0; d < nb; d++)
        nbatch *= bsh[d];
    double flops = 2.0 * (double)rows * (double)p->k * (double)p->m;
    if (nbatch > 1 && flops < SMALL_GEMM_FLOPS && mimic_get_num_threads() > 1) {
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < nbatch; i++)
            mm_entry(ct, i, nb, bsh, sa, sb, sc, rows, p, A, la, B, lb, C, lc);
    } else {
        for (int64_t i = 0; i < nbatch; i++)
            mm_entry(ct, i, nb, bsh, sa, sb, sc, rows, p, A, la, B, lb, C, lc);
    }
}

/* out = a @ b under plan p; out has the result's shape, any dtype and layout. */
static int mm_into(mimic_tensor *out, const mimic_tensor *a, const mimic_tensor *b,
                   const mm_plan *p)
{
    mimic_dtype ct = a->dtype == MIMIC_F64 || b->dtype == MIMIC_F64 ? MIMIC_F64 : MIMIC_F32;
    bool a_vec = a->ndim == 1, b_vec = b->ndim == 1;
    mimic_tensor *ac = NULL, *bc = NULL, *tmp = NULL;
    int rc = MIMIC_OK;
    const mimic_tensor *A = a, *B = b;
    mm_operand oa, ob, oc;
    blas_mat lm;
    /* The conversions below are scratch of this one product: not recorded. */
    bool grad_was = mimic_set_grad_enabled(false);

    /* A mixed pair computes in float64; irregular layouts become contiguous. */
    mm_operand_of(A, p, 0, p->n, p->k, &oa);
    if (A->dtype != ct || !blas_layout(oa.r, oa.c, oa.rs, oa.cs, &lm)) {
        if (!(A = ac = mimic_to_dtype(a, ct))) {
            rc = mimic_errcode();
            goto done;
        }
        mm_operand_of(A, p, 0, p->n, p->k, &oa);
    }
    mm_operand_of(B, p, 1, p->k, p->m, &ob);
    if (B->dtype != ct || !blas_layout(ob.r, ob.c, ob.rs, ob.cs, &lm)) {
        if (!(B = bc = mimic_to_dtype(b, ct))) {
            rc = mimic_errcode();
            goto done;
        }
        mm_operand_of(B, p, 1, p->k, p->m, &ob);
    }
    mimic_tensor *C = out;
    mm_output_of(C, p, a_vec, b_vec, &oc);
    if (out->dtype != ct || !blas_layout(oc.r, oc.c, oc.rs, oc.cs, &lm) || overlaps(out, A) ||
        overlaps(out, B)) {
        if (!(C = tmp = mimic_empty(p->ndim, p->shape, ct))) {
            rc = mimic_errcode();
            goto done;
        }
        mm_output_of(C, p, a_vec, b_vec, &oc);
    }

    int64_t numel = 1;
    for (int d = 0; d < p->ndim; d++)
        numel *= p->shape[d];
    if (numel == 0) {
        /* nothing to compute */
    } else if (p->k == 0) {
        rc = mimic_fill(C, 0); /* an empty sum; some BLAS reject K = 0 */
    } else {
        mm_run(ct, p, &oa, &ob, &oc);
    }
    if (rc == MIMIC_OK && tmp)
        rc = mimic_copy(out, tmp);
done:
    mimic_set_grad_enabled(grad_was);
    mimic_tensor_free(ac);
    mimic_tensor_free(bc);
    mimic_tensor_free(tmp);
    return rc;
}

static int check_pair(const char *fn, const mimic_tensor *a, const mimic_tensor *b)
{
    if (!a || !b)
        return mimic_error(MIMIC_EARG, "%s: operand is NULL", fn);
    int rc = mimic_check_float(fn, a);
    return rc ? rc : mimic_check_float(fn, b);
}

static mimic_dtype result_dtype(const mimic_tensor *a, const mimic_tensor *b)
{
    return a->dtype == MIMIC_F64 || b->dtype == MIMIC_F64 ? MIMIC_F64 : MIMIC_F32;
}

/* Caller owns the result. */
static mimic_tensor *mm_new(const char *fn, const mimic_tensor *a, const mimic_tensor *b)
{
    mm_plan p;
    if (check_pair(fn, a, b) || mm_plan_make(fn, a, b, &p))
        return NULL;
    mimic_tensor *out = mimic_empty(p.ndim, p.shape, result_dtype(a, b));
    if (out && mm_into(out, a, b, &p)) {
        mimic_tensor_free(out);
        return NULL;
    }
    return out;
}

/* Attach a node for a @ b to a fresh result; on failure the result is freed. */
static mimic_tensor *record(mimic_tensor *out, const char *name, mimic_backward_fn bw, const mimic_tensor *a,
                            const mimic_tensor *b)
{
    const mimic_tensor *in[2] = {a, b};
    if (!out || !mimic_ag_wanted(2, in))
        return out;
    mimic_node *n = mimic_ag_record(out, name, bw, 2, in);
    if (!n) {
        mimic_tensor_free(out);
        return NULL;
    }
    /* Each operand's gradient reads only the other operand. */
    n->reads = (mimic_requires_grad(a) ? 2u : 0u) | (mimic_requires_grad(b) ? 1u : 0u);
    return out;
}

static int matmul_backward(mimic_node *n, const mimic_tensor *g, mimic_tensor **gin);
static int dot_backward(mimic_node *n, const mimic_tensor *g, mimic_tensor **gin);
static int outer_backward(mimic_node *n, const mimic_tensor *g, mimic_tensor **gin);

mimic_tensor *mimic_matmul(const mimic_tensor *a, const mimic_tensor *b)
{
    return record(mm_new("matmul", a, b), "matmul", matmul_backward, a, b);
}

int mimic_matmul_out(mimic_tensor *out, const mimic_tensor *a, const mimic_tensor *b)
{
    mm_plan p;
    int rc;
    if (!out)
        return mimic_error(MIMIC_EARG, "matmul: output is NULL");
    const mimic_tensor *in[2] = {a, b};
    if ((rc = check_pair("matmul", a, b)) || (rc = mimic_ag_out("matmul", out, 2, in)) ||
        (rc = mm_plan_make("matmul", a, b, &p)) || (rc = mimic_check_out_shape("matmul", out, p.ndim, p.shape)))
        return rc;
    for (int d = 0; d < out->ndim; d++)
        if (out->shape[d] > 1 && out->stride[d] == 0)
            return mimic_error(MIMIC_EARG, "matmul: the output is a broadcast view (stride 0 in dim %d); "
                               "write into a tensor that owns its elements", mimic_dim_from_end(d, out->ndim));
    return mm_into(out, a, b, &p);
}

mimic_tensor *mimic_bmm(const mimic_tensor *a, const mimic_tensor *b)
{
    if (check_pair("bmm", a, b))
        return NULL;
    if (a->ndim != 3 || b->ndim != 3) {
        mimic_error(MIMIC_ESHAPE, "bmm: expects 3-D tensors [B,n,k] and [B,k,m], got %s and %s", SHAPE_STR(a),
                    SHAPE_STR(b));
        return NULL;
    }
    if (a->shape[0] != b->shape[0]) {
        mimic_error(MIMIC_ESHAPE, "bmm: batch sizes of %s and %s differ (%lld ~= %lld)", SHAPE_STR(a),
                    SHAPE_STR(b), (long long)a->shape[0], (long long)b->shape[0]);
        return NULL;
    }
    return record(mm_new("bmm", a, b), "bmm", matmul_backward, a, b);
}

mimic_tensor *mimic_dot(const mimic_tensor *a, const mimic_tensor *b)
{
    if (check_pair("dot", a, b))
        return NULL;
    if (a->ndim != 1 || b->ndim != 1) {
        mimic_error(MIMIC_ESHAPE, "dot: expects 1-D tensors, got %s and %s (use matmul for matrices)",
                    SHAPE_STR(a), SHAPE_STR(b));
        return NULL;
    }
    return record(mm_new("dot", a, b), "dot", dot_backward, a, b);
}

mimic_tensor *mimic_outer(const mimic_tensor *a, const mimic_tensor *b)
{
    if (check_pair("outer", a, b))
        return NULL;
    if (a->ndim != 1 || b->ndim != 1) {
        mimic_error(MIMIC_ESHAPE, "outer: expects 1-D tensors, got %s and %s", SHAPE_STR(a), SHAPE_STR(b));
        return NULL;
    }
    /* [n,1] x [1,m]: views, so BLAS reads the vectors in place. */
    mimic_tensor *ac = mimic_tensor_new_view(a, 2, (int64_t[]){a->shape[0], 1}, (int64_t[]){a->stride[0], 1},
                                             a->offset);
    mimic_tensor *bc = mimic_tensor_new_view(b, 2, (int64_t[]){1, b->shape[0]}, (int64_t[]){1, b->stride[0]},
                                             b->offset);
    mimic_tensor *r = ac && bc ? mm_new("outer", ac, bc) : NULL;
    mimic_tensor_free(ac);
    mimic_tensor_free(bc);
    return record(r, "outer", outer_backward, a, b);
}

/* --- gradients ---------------------------------------------------------------------
 * Written with public ops and views, so under create_graph they are recorded:
 * transposes are views that gemm reads in place, never copies. */
static mimic_tensor *E_mm(mimic_tensor *a, mimic_tensor *b)
{
    mimic_tensor *r = a && b ? mimic_matmul(a, b) : NULL;
    mimic_tensor_free(a);
    mimic_tensor_free(b);
    return r;
}
static mimic_tensor *E_mT(mimic_tensor *t) /* the last two dims swapped */
{
    mimic_tensor *r = t ? mimic_transpose(t, -2, -1) : NULL;
    mimic_tensor_free(t);
    return r;
}
static mimic_tensor *E_unsqueeze(mimic_tensor *t, int dim)
{
    mimic_tensor *r = t ? mimic_unsqueeze(t, dim) : NULL;
    mimic_tensor_free(t);
    return r;
}
static mimic_tensor *E_squeeze(mimic_tensor *t, int dim)
{
    mimic_tensor *r = t ? mimic_squeeze(t, dim) : NULL;
    mimic_tensor_free(t);
    return r;
}
static mimic_tensor *E_rows(mimic_tensor *t) /* batch and row dims merged: [..., r, c] -> [B*r, c] */
{
    mimic_tensor *r = t ? mimic_flatten(t, 0, -2) : NULL;
    mimic_tensor_free(t);
    return r;
}

/* NumPy matmul (also bmm): a 1-D a is a row [1,k], a 1-D b a column [k,1];
 * in those terms gA = g Bt and gB = At g, with the promoted dims dropped
 * again and broadcast batch dims summed back (sum_to). */
static int matmul_backward(mimic_node *n, const mimic_tensor *g, mimic_tensor **gin)
{
    const mimic_tensor *a = n->in[0], *b = n->in[1];
    bool av = a->ndim == 1, bv = b->ndim == 1;
    mimic_tensor *g2 = E_ref(g);
    if (bv)
        g2 = E_unsqueeze(g2, g->ndim);
    if (av)
        g2 = E_unsqueeze(g2, g->ndim + bv - 1);
    int rc = MIMIC_OK;
    if (mimic_node_needs(n, 0)) {
        mimic_tensor *b2 = bv ? E_unsqueeze(E_ref(b), 1) : E_ref(b);
        mimic_tensor *ga = E_mm(g2 ? E_ref(g2) : NULL, E_mT(b2));
        rc = E_set(gin, 0, E_sum_to(av ? E_squeeze(ga, -2) : ga, a));
    }
    if (rc == MIMIC_OK && mimic_node_needs(n, 1)) {
        mimic_tensor *a2 = av ? E_unsqueeze(E_ref(a), 0) : E_ref(a), *gb;
        if (a->ndim > 2 && b->ndim <= 2) /* b is shared by the whole batch: one [k, B*n] x [B*n, m] gemm */
            gb = E_mm(E_mT(E_rows(a2)), E_rows(g2 ? E_ref(g2) : NULL));
        else
            gb = E_mm(E_mT(a2), g2 ? E_ref(g2) : NULL);
        rc = E_set(gin, 1, E_sum_to(bv ? E_squeeze(gb, -1) : gb, b));
    }
    mimic_tensor_free(g2);
    return rc;
}

static int dot_backward(mimic_node *n, const mimic_tensor *g, mimic_tensor **gin)
{
    int rc = MIMIC_OK;
    if (mimic_node_needs(n, 0))
        rc = E_set(gin, 0, E_MUL(E_ref(g), E_ref(n->in[1])));
    if (rc == MIMIC_OK && mimic_node_needs(n, 1))
        rc = E_set(gin, 1, E_MUL(E_ref(g), E_ref(n->in[0])));
    return rc;
}

/* out = a b^T: gA = g b, gB = g^T a (matmul's 1-D rules). */
static int outer_backward(mimic_node *n, const mimic_tensor *g, mimic_tensor **gin)
{
    int rc = MIMIC_OK;
    if (mimic_node_needs(n, 0))
        rc = E_set(gin, 0, E_mm(E_ref(g), E_ref(n->in[1])));
    if (rc == MIMIC_OK && mimic_node_needs(n, 1))
        rc = E_set(gin, 1, E_mm(E_ref(n->in[0]), E_ref(g)));
    return rc;
}

const mimic_opdef mimic_ops_linalg[] = {
    {"matmul", matmul_backward}, {"bmm", matmul_backward}, {"dot", dot_backward}, {"outer", outer_backward},
    {NULL, NULL},
};
