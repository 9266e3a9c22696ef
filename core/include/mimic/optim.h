/* mimic — flat parameter and gradient buffers for optimizers (the idea of
 * Torch7's getParameters).
 *
 * An optimizer step is a handful of element-wise ops over every parameter.
 * Run once per parameter tensor, that is many small calls; run over one flat
 * buffer holding all parameters back to back, it is a few long vector ops.
 * mimic_flatten_parameters moves the parameters into such a buffer without
 * changing their identity: each mimic_tensor struct is rebound in place to
 * view its slice of the new storage (same shape, contiguous strides), so
 * module code, Lua userdata and the autograd graph keep using the very same
 * objects. Likewise each parameter's gradient (mimic_grad) becomes a slice of
 * one flat gradient buffer; the backward engine adds into an existing
 * gradient in place, so gradients land directly in the flat buffer.
 *
 * Ownership: the flat storage is reference counted like any storage. The
 * returned flat tensors and every rebound parameter each hold a reference, so
 * dropping the optimizer (its flat tensors) leaves the parameters alive and
 * valid; the buffer goes when the last of them does. The parameters' previous
 * storages lose their reference from the parameters (other views of them, if
 * any, keep them alive but no longer see the parameters' values).
 *
 * Rules and limits:
 *  - All parameters are leaves of one float dtype (float32 or float64), and no
 *    two share memory (the same tensor twice, or views of one tensor): an
 *    update through the flat buffer must touch each value once.
 *  - A parameter belongs to at most one flat buffer. Flattening exactly the
 *    same list again (same tensors, same order) is allowed and returns views
 *    of the existing buffers, so several optimizers over one parameter list
 *    share them; any other list containing an already flattened parameter is
 *    refused.
 *  - Flatten before recording graphs with the parameters: a graph recorded
 *    earlier refers to the old storage's version counter, and its backward
 *    fails with the in-place-modification error.
 *  - Replacing or dropping a parameter's gradient (mimic_set_grad,
 *    mimic_zero_grad, backward with create_graph) detaches it from the flat
 *    gradient buffer; mimic_flat_attach_grads re-links it. Optimizers call it
 *    before each step.
 *  - Not safe while another thread uses the parameters.
 */
#ifndef MIMIC_OPTIM_H
#define MIMIC_OPTIM_H

#include "tensor.h"

/* Moves params[0..n-1] into one contiguous buffer and their gradients into
 * another (existing gradients are copied in, missing ones are zero), and sets
 * *flat_params / *flat_grads to new references to 1-D tensors over the two
 * buffers (parameter i occupies the elements after those of parameters
 * 0..i-1). Either output pointer may be NULL if that tensor is not wanted.
 * On failure nothing is changed. */
int mimic_flatten_parameters(mimic_tensor *const *params, int n, mimic_tensor **flat_params,
                             mimic_tensor **flat_grads);

/* Makes the gradient of every parameter the slice of flat_grads (as returned
 * by mimic_flatten_parameters for this list) that belongs to it again: a
 * gradient that was replaced is copied into its slice, a dropped one becomes
 * zeros there. Parameters still linked cost a pointer comparison. */
int mimic_flat_attach_grads(mimic_tensor *const *params, int n, mimic_tensor *flat_grads);

/* One Adam/AdamW update over flat buffers, in place, in one pass (PyTorch's
 * torch.optim rules; `step` is the count after this update, >= 1):
 *   g' = g + wd p              (Adam, wd != 0)      p = (1 - lr wd) p (AdamW)
 *   m = b1 m + (1 - b1) g'     v = b2 v + (1 - b2) g' g'
 *   vmax = max(vmax, v)        (amsgrad: vmax non-NULL; v̂ = vmax, else v)
 *   p += -(lr / (1 - b1^step)) m / (sqrt(v̂) / sqrt(1 - b2^step) + eps)
 * p, g, m, v (and vmax) are contiguous, of one float dtype and one element
 * count; each line is evaluated in the dtype, in the order written, with the
 * coefficients rounded to it, as the equivalent sequence of tensor ops. */
int mimic_adam_update(mimic_tensor *p, const mimic_tensor *g, mimic_tensor *m, mimic_tensor *v,
                      mimic_tensor *vmax, double lr, double beta1, double beta2, double eps, double weight_decay,
                      bool decoupled, int64_t step);

#endif
