/* Helpers for writing backward formulas with the public ops. Each helper
 * consumes (frees) its tensor arguments and passes NULL through, so a formula
 * is one nested expression with no cleanup paths: the first failure leaves
 * NULL and the error message of that failure. */
#ifndef MIMIC_EXPR_H
#define MIMIC_EXPR_H

#include "graph.h"
#include "mimic/ops.h"

/* A new reference to a borrowed tensor, to hand to the helpers. */
static inline mimic_tensor *E_ref(const mimic_tensor *t)
{
    mimic_tensor_retain((mimic_tensor *)t);
    return (mimic_tensor *)t;
}
static inline mimic_tensor *E_num(double v, mimic_dtype dt) { return mimic_scalar(v, dt); }
static inline mimic_tensor *E_un(mimic_unop op, mimic_tensor *a)
{
    mimic_tensor *r = a ? mimic_unary(op, a) : NULL;
    mimic_tensor_free(a);
    return r;
}
static inline mimic_tensor *E_bin(mimic_binop op, mimic_tensor *a, mimic_tensor *b)
{
    mimic_tensor *r = a && b ? mimic_binary(op, a, b) : NULL;
    mimic_tensor_free(a);
    mimic_tensor_free(b);
    return r;
}
static inline mimic_tensor *E_cmp(mimic_cmpop op, mimic_tensor *a, mimic_tensor *b)
{
    mimic_tensor *r = a && b ? mimic_compare(op, a, b) : NULL;
    mimic_tensor_free(a);
    mimic_tensor_free(b);
    return r;
}
static inline mimic_tensor *E_where(mimic_tensor *c, mimic_tensor *a, mimic_tensor *b)
{
    mimic_tensor *r = c && a && b ? mimic_where(c, a, b) : NULL;
    mimic_tensor_free(c);
    mimic_tensor_free(a);
    mimic_tensor_free(b);
    return r;
}
/* Sum a gradient down to the shape of the input it belongs to. */
static inline mimic_tensor *E_sum_to(mimic_tensor *g, const mimic_tensor *like)
{
    mimic_tensor *r = g ? mimic_sum_to(g, like->ndim, like->shape) : NULL;
    mimic_tensor_free(g);
    return r;
}
#define E_ADD(a, b) E_bin(MIMIC_ADD, a, b)
#define E_SUB(a, b) E_bin(MIMIC_SUB, a, b)
#define E_MUL(a, b) E_bin(MIMIC_MUL, a, b)
#define E_DIV(a, b) E_bin(MIMIC_DIV, a, b)

/* gin[i] = r, or the error code of the failure that made r NULL. */
static inline int E_set(mimic_tensor **gin, int i, mimic_tensor *r)
{
    gin[i] = r;
    return r ? MIMIC_OK : mimic_errcode();
}

#endif
