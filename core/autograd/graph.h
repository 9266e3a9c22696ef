/* Internal interface between the op families and the autograd engine: how an
 * op records a node on its result, and what a backward function receives. */
#ifndef MIMIC_GRAPH_H
#define MIMIC_GRAPH_H

#include "../base/internal.h"
#include "mimic/autograd.h"

typedef struct mimic_node mimic_node;
/* Given the gradient flowing into the node's result (gout, the result's shape
 * and dtype), set gin[i] to a new reference holding the gradient for input i,
 * for every i where mimic_node_needs(n, i); leave the others NULL. Written
 * with the public ops, so under create_graph the gradient is recorded too. */
typedef int (*mimic_backward_fn)(mimic_node *n, const mimic_tensor *gout, mimic_tensor **gin);

struct mimic_node {
    const char *name; /* the op, for error messages and grad_fn_name */
    mimic_backward_fn backward;
    int refcount;
    int out_ndim;
    int64_t out_shape[MIMIC_MAX_DIMS];
    mimic_dtype out_dtype;
    /* What the backward function needs besides the inputs, set by the op. */
    int64_t iarg[MIMIC_MAX_DIMS + 2];
    double darg[2];
    uint32_t reads;         /* bit i: backward reads input i's values (default: all) */
    mimic_tensor *saved;    /* retained; a detached tensor (e.g. the result's values, or indices) */
    uint64_t saved_version;
    /* Engine scratch, valid during one backward pass. */
    mimic_tensor *gacc;
    uint64_t mark;          /* the pass that last visited the node */
    int nin;
    uint64_t *in_version;   /* versions of the inputs when recorded */
    mimic_tensor *in[];     /* retained inputs */
};

/* Autograd state of a tensor (tensor->autograd), created on demand. */
typedef struct mimic_meta {
    bool requires_grad;
    mimic_tensor *grad; /* leaves only */
    mimic_node *node;   /* the op that made the tensor; NULL for a leaf */
} mimic_meta;

/* True when an op on these inputs must be recorded: grad mode is on and one
 * of them requires grad. NULL entries are skipped. */
bool mimic_ag_wanted(int nin, const mimic_tensor *const *in);
/* Record a node on result r (which must have no history yet). Returns the node
 * for the op to fill iarg/darg/saved, or NULL on out-of-memory (error set; r
 * is unchanged and the caller frees it). */
mimic_node *mimic_ag_record(mimic_tensor *r, const char *name, mimic_backward_fn bw, int nin,
                            const mimic_tensor *const *in);
/* Keep a detached view of t for the backward (e.g. the op's output). */
int mimic_ag_save(mimic_node *n, const mimic_tensor *t);
/* Whether input i of n needs a gradient. */
bool mimic_node_needs(const mimic_node *n, int i);

/* For in-place writes: fails (naming fn) when t requires grad and grad mode is
 * on, because an in-place change is not recorded; otherwise bumps t's
 * storage version. Every op that writes into an existing tensor calls it. */
int mimic_ag_inplace(const char *fn, mimic_tensor *t);

/* The differentiable ops of one family: each op file exports a table ending
 * with {NULL}; core/autograd/registry.c lists the tables, so tests can walk
 * every op (mimic_op_name). */
typedef struct mimic_opdef {
    const char *name;
    mimic_backward_fn backward;
} mimic_opdef;

/* For the out= forms: they are not recorded, so they fail when an input
 * requires grad (with grad mode on); otherwise as mimic_ag_inplace(out). */
int mimic_ag_out(const char *fn, mimic_tensor *out, int nin, const mimic_tensor *const *in);

/* Called by mimic_tensor_free when the last reference goes. */
void mimic_ag_free_meta(mimic_meta *m);

#endif
