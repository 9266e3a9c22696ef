/* mimic — reverse-mode automatic differentiation (define-by-run).
 *
 * A float tensor can be marked as requiring a gradient. While grad mode is on,
 * every op whose inputs include such a tensor records a node on its result:
 * the op's backward function, the inputs (retained) and what the backward
 * needs. mimic_backward walks the recorded graph from a result in reverse
 * topological order and adds d(result)/d(leaf) into each leaf's .grad.
 *
 * - Gradients accumulate across backward calls until mimic_zero_grad.
 * - Backward functions are written with the same public ops, so with
 *   create_graph the gradient itself is recorded (second derivatives, e.g. a
 *   gradient penalty).
 * - Grad mode is per thread (documented global state, like the last error):
 *   mimic_set_grad_enabled(false) for inference and optimizer updates.
 * - Each storage has a version counter that every in-place write bumps; a node
 *   remembers the versions of the tensors its backward reads, and backward
 *   fails with a clear error if one was modified in place since.
 * - The graph lives as long as the tensors that hold it: freeing a result
 *   frees its nodes that nothing else references.
 */
#ifndef MIMIC_AUTOGRAD_H
#define MIMIC_AUTOGRAD_H

#include "tensor.h"

/* Mark a tensor (float32/float64) as a leaf whose gradient is wanted; `on` =
 * false clears the mark (only on leaves). */
int mimic_set_requires_grad(mimic_tensor *t, bool on);
bool mimic_requires_grad(const mimic_tensor *t);
/* True if t was produced by a recorded op (not a leaf). */
bool mimic_is_leaf(const mimic_tensor *t);
/* The accumulated gradient of a leaf: a borrowed reference (valid until the
 * next mimic_zero_grad or backward), or NULL if none yet. */
mimic_tensor *mimic_grad(const mimic_tensor *t);
/* Replace (or with g == NULL drop) the gradient of t; g is retained. */
int mimic_set_grad(mimic_tensor *t, mimic_tensor *g);
int mimic_zero_grad(mimic_tensor *t);
/* Name of the op that produced t ("add", "matmul", ...), or NULL for a leaf. */
const char *mimic_grad_fn_name(const mimic_tensor *t);

/* d(root)/d(leaves) added into the leaves' gradients. grad_root is the
 * gradient flowing into root (same shape); NULL means 1 and needs a
 * one-element root. With create_graph the computation is itself recorded. */
int mimic_backward(mimic_tensor *root, const mimic_tensor *grad_root, bool create_graph);

/* Grad mode of the calling thread; returns the previous setting. */
bool mimic_set_grad_enabled(bool on);
bool mimic_grad_enabled(void);

/* A new view of t's data with no history and no gradient requirement. */
mimic_tensor *mimic_detach(mimic_tensor *t);

/* The names of all differentiable ops, i = 0, 1, ... until NULL. */
const char *mimic_op_name(int i);

/* The storage's version counter (bumped by every in-place write). */
uint64_t mimic_version(const mimic_tensor *t);

#endif
