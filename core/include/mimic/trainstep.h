/* mimic — a compiled training step for small multilayer perceptrons.
 *
 * For a chain of dense layers, each optionally followed by one activation,
 * one call does a whole optimizer step in C: forward (one gemm per layer,
 * bias and activation in one pass, activations kept), the loss, the backward
 * (two gemms per layer, the bias gradient summed in the same pass as the
 * activation's derivative) straight into the flat gradient buffer, then the
 * Adam/AdamW/SGD update over the flat buffers. At these sizes a step is a few
 * µs of arithmetic per op, so the autograd path's per-op costs (allocation,
 * dispatch, graph bookkeeping) are most of its time; here they are gone.
 *
 * Parameters stay where they are: the step works on the flat parameter and
 * gradient buffers of mimic/optim.h (mimic_flatten_parameters), laid out as
 * the parameters of the layers in order, each dense layer's weight [out, in]
 * (row-major, PyTorch's nn.Linear layout) then its bias [out] if it has one.
 * So every other view of the parameters (a Lua model, its state_dict, an
 * optimizer) sees each update, and compiled and autograd steps can be mixed.
 * The optimizer state (moments, momentum buffer, step count, learning rate)
 * belongs to the caller and is passed to each step.
 *
 * Results equal the autograd path's to rounding (gemm blocking and summation
 * order differ), not bit for bit.
 *
 * Ownership: mimic_trainstep_new retains the two flat tensors (they stay
 * valid while the step lives) and allocates every buffer for batches of up
 * to max_batch rows; free with mimic_trainstep_free. Steps allocate nothing.
 * One thread at a time per object (its buffers are shared).
 */
#ifndef MIMIC_TRAINSTEP_H
#define MIMIC_TRAINSTEP_H

#include "model.h"
#include "tensor.h"

#include <stdbool.h>

typedef struct mimic_trainstep mimic_trainstep;

/* One layer: type "dense" (out = output width, bias = has a bias) or an
 * activation name of mimic/model.h ("relu", "leaky_relu" with p0 = slope,
 * "elu" p0 = alpha, "softplus" p0 = beta and p1 = threshold, "gelu" (tanh
 * form), "tanh", "sigmoid", "identity"). The first layer is dense; an
 * activation follows a dense layer (at most one per dense layer; "identity"
 * anywhere is skipped). Anything else is refused (MIMIC_EARG). */
typedef struct mimic_trainstep_layer {
    const char *type;
    int64_t out;
    bool bias;
    double p0, p1;
} mimic_trainstep_layer;

typedef enum mimic_trainstep_loss {
    MIMIC_LOSS_MSE,   /* (p - y)^2 */
    MIMIC_LOSS_L1,    /* |p - y| */
    MIMIC_LOSS_HUBER  /* 0.5 d^2 where |d| <= delta, else delta (|d| - delta / 2) */
} mimic_trainstep_loss;

typedef enum mimic_trainstep_optim_kind { MIMIC_OPTIM_SGD, MIMIC_OPTIM_ADAM, MIMIC_OPTIM_ADAMW } mimic_trainstep_optim_kind;

/* The update of one step, as mimic.optim (PyTorch's rules): Adam and AdamW as
 * mimic_adam_update (mimic/optim.h); SGD g' = g + wd p, buf = momentum buf +
 * (1 - dampening) g' (buf = g' when init_buffer: the buffer's first step),
 * nesterov: g' + momentum buf, else buf; p -= lr g'. State tensors are
 * borrowed, contiguous, of the parameters' dtype and element count. */
typedef struct mimic_trainstep_optim {
    mimic_trainstep_optim_kind kind;
    double lr, weight_decay;
    double beta1, beta2, eps; /* Adam, AdamW */
    int64_t step;             /* Adam, AdamW: the step count after this update, >= 1 */
    mimic_tensor *exp_avg, *exp_avg_sq, *max_exp_avg_sq; /* max_exp_avg_sq: amsgrad, else NULL */
    double momentum, dampening;   /* SGD */
    bool nesterov, init_buffer;
    mimic_tensor *momentum_buffer; /* SGD with momentum != 0, else NULL */
} mimic_trainstep_optim;

/* A step for layers[0..nlayers-1] on inputs of width nin, over the flat
 * buffers params and grads (1-D, contiguous, of dtype dt, as many elements as
 * the layers have parameters). The loss is MSE with mean reduction until
 * mimic_trainstep_set_loss changes it. */
mimic_trainstep *mimic_trainstep_new(mimic_dtype dt, int64_t nin, const mimic_trainstep_layer *layers, int nlayers,
                                     mimic_tensor *params, mimic_tensor *grads, int64_t max_batch);
void mimic_trainstep_free(mimic_trainstep *ts); /* NULL is fine */

/* delta: Huber's (> 0; ignored otherwise). sum: the loss is the sum over
 * every element instead of the mean. */
int mimic_trainstep_set_loss(mimic_trainstep *ts, mimic_trainstep_loss kind, double delta, bool sum);

/* Threads: a batch of 64 rows or more is processed as two row blocks, on two
 * threads when mimic_get_num_threads() > 1 (outside any parallel region),
 * and the results do not depend on which. n = 0 (default): each step object
 * times both ways and keeps the faster (on a machine with more runnable jobs
 * than cores, the threads' synchronisation can cost more than it saves);
 * 1 or 2: always that many. */
int mimic_trainstep_set_threads(mimic_trainstep *ts, int n);

/* One step on x [n, nin] and targets y [n, nout] (row-major, the step's
 * dtype), 1 <= n <= max_batch: *loss gets the loss, the gradient buffer the
 * gradients (overwritten, not added to), then `opt` updates the parameters
 * (opt NULL: no update, gradients only). If the loss is NaN or infinite,
 * there is no update and the gradients are zero (as after zero_grad in the
 * autograd path); the status is still MIMIC_OK: the caller decides. */
int mimic_trainstep_step(mimic_trainstep *ts, const void *x, const void *y, int64_t n,
                         const mimic_trainstep_optim *opt, double *loss);

mimic_dtype mimic_trainstep_dtype(const mimic_trainstep *ts);
int64_t mimic_trainstep_nin(const mimic_trainstep *ts);
int64_t mimic_trainstep_nout(const mimic_trainstep *ts);
int64_t mimic_trainstep_max_batch(const mimic_trainstep *ts);
int64_t mimic_trainstep_num_params(const mimic_trainstep *ts); /* elements the flat buffers must have */

#endif
