/* mimic — inference: a model (an ordered list of layer records) and its
 * compiled execution plan. This is what a host calls inside its time loop.
 *
 * Model: built once from weights, then compiled. Every record is a type name,
 * a few numeric attributes and weight arrays (mimic_model_layer), so a model
 * file is a direct dump of the records. All layers work on rows of features:
 * an input is a row-major [n, nin] array, the output a row-major [n, nout].
 * One element type per model, float32 or float64; weights are passed in it.
 *
 * Layer records ("type": attributes; weights):
 *   "dense"       : -; weight [out, in] row-major (PyTorch's nn.Linear layout),
 *                   bias [out] (optional: NULL means zero)
 *   "relu", "tanh", "sigmoid", "identity", "gelu" (tanh approximation)
 *   "leaky_relu"  : slope
 *   "elu"         : alpha
 *   "softplus"    : beta, threshold (x itself where beta x > threshold)
 *   "layernorm"   : eps; weight [w], bias [w] (optional: NULL, NULL = no affine)
 *   "batchnorm1d" : -; scale [w], shift [w]: evaluation form y = x scale + shift,
 *                   folded from running stats by mimic_model_add_batchnorm
 *   "residual_begin" / "residual_end": y = x + f(x) where f is the records in
 *                   between (nestable); f must map width w to w.
 *
 * Spatial records (convolutional models). A row is still one sample: the
 * flattened [C, D, H, W] array (row-major, channels first; 1-D and 2-D
 * drop D, H), so the row contract, embedding and model files are unchanged.
 * Each record carries its geometry (mimic_spatial) and so its input and
 * output widths C * prod(size):
 *   "conv1d", "conv2d", "conv3d": weight [out_ch, in_ch/groups, k...]
 *                   (PyTorch's layout, stored as [out_ch, in_ch/groups*prod k]),
 *                   bias [out_ch] (optional); stride, padding, dilation,
 *                   groups, padding mode zeros or circular (periodic)
 *   "max_pool1d/2d/3d" : kernel, stride, padding (padding never wins), dilation
 *   "avg_pool1d/2d/3d" : kernel, stride, padding, count_include_pad (the
 *                   `circular` field: 1 = divide by prod k, 0 = by the
 *                   window's in-bounds count)
 *   "global_avg_pool", "global_max_pool": [C, spatial...] -> [C]
 *   "flatten"      : no-op on rows, recorded so a file reads like the model
 *   "upsample1d/2d/3d": nearest-neighbour upsampling by an integer factor
 *                   per dim (the `stride` field): out size = size * factor
 *   "upsample_linear1d/2d/3d": linear / bilinear / trilinear upsampling by
 *                   integer factors (`stride`), align_corners in `circular`:
 *                   PyTorch's taps with scale in/out (mimic_upsample)
 *   "conv_transpose1d/2d/3d": weight [in_ch, out_ch/groups, k...] (PyTorch's
 *                   layout, stored as [in_ch, out_ch/groups*prod k]), bias
 *                   [out_ch] (optional); stride, padding, dilation, groups,
 *                   output_padding (< stride or < dilation); zero padding.
 *                   Out size: (size - 1) stride - 2 pad + dil (k - 1) + 1 + out_pad
 *
 * Recurrent records. A row is one sample's sequence [T, F] (batch first,
 * row-major: step after step), T fixed when the model is built:
 *   "rnn_tanh", "rnn_relu", "lstm", "gru": one layer of PyTorch's RNN, LSTM,
 *                   GRU (gate order i, f, g, o and r, z, n), zero initial
 *                   state; [T, I] -> [T, H] (the hidden state of every step);
 *                   weight_ih [G H, I], weight_hh [G H, H], bias_ih, bias_hh
 *                   [G H] (both or neither). A multi-layer RNN is one record
 *                   per layer.
 *   "last_step"   : [T, H] -> [H], the last step (sequence to one)
 * Output size per dim: (size + 2 pad - dil (k - 1) - 1) / stride + 1 (floor).
 *
 * Plan: mimic_plan_new copies the weights (the model may be freed after) and
 * allocates every buffer once. mimic_plan_run then allocates nothing. It
 * processes the batch in chunks of at most `chunk` rows, spread over the
 * threads (mimic_set_num_threads) when there are several chunks; each chunk
 * runs the layer list with one sgemm/dgemm per dense layer, bias and
 * activation fused into one pass over its output. Workspace (bytes):
 *     slots * (2 + depth) * chunk * W * sizeof(element)
 * where slots = the thread count when the plan was made, depth = the deepest
 * residual nesting, W = the widest feature width of the model (input
 * included); plus the weights (same count as the model's, transposed to
 * [in, out] for the dense layers). mimic_plan_workspace_bytes reports it.
 *
 * Spatial records: a conv layer runs per sample, over tiles of `tile`
 * output positions: im2col of the tile into a column buffer [K, tile]
 * (K = in/groups * prod k) and one sgemm/dgemm per group into the output
 * rows (bias pre-filled, activation fused in the pass after). The gemm
 * shape never depends on the batch size. tile = max(16, 256 KiB / (K es))
 * capped at the output size. Pools run directly. Models with spatial
 * records pick chunk (when 0) from the same 256 KiB rule but down to 1 row.
 * Workspace then adds slots * max over conv layers of K * tile * es.
 * A transposed conv runs per sample over tiles of input positions: one gemm
 * per group (W_g^T times the tile) into a column buffer [out/groups * prod
 * k, tile], then scattered into the output (col2im; bias pre-filled).
 * Linear upsampling takes its taps (computed at plan time) per output.
 * A recurrent layer runs a chunk at once: the input projection of all rows
 * and steps is one gemm [rows T, I] x [I, G H] into a gate buffer, then each
 * step adds h_{t-1} W_hh^T with one gemm over the rows (GRU: beside it) and
 * applies the cell (float32: the plan's vectorised tanh, sigmoid(a) = (1 +
 * tanh(a/2)) / 2). Its scratch is chunk * (T G H + G H) elements; an
 * automatic chunk takes up to 64 rows while that stays within 8 MiB.
 * Workspace: the per-slot scratch is the largest of these (im2col, col2im,
 * gates), replacing the im2col term above.
 *
 * Deterministic mode: a row's output is bit-identical whatever the batch
 * size, chunking and thread count. BLAS gemm results can depend on the
 * matrix sizes (kernel blocking), so in this mode dense layers use mimic's
 * own kernel: each output is a dot product summed in input order (slower);
 * conv layers likewise (sum over K in order, independent of the tiling).
 *
 * Errors: NULL / negative status with mimic_errmsg(), as everywhere. A NaN or
 * Inf in the input is not an error: it propagates to the outputs it reaches.
 * A plan may be run from one thread at a time (its buffers are shared);
 * make one plan per host thread to run them concurrently.
 */
#ifndef MIMIC_MODEL_H
#define MIMIC_MODEL_H

#include "tensor.h"

#include <stdbool.h>

typedef struct mimic_model mimic_model;
typedef struct mimic_plan mimic_plan;

typedef enum mimic_activation {
    MIMIC_ACT_IDENTITY, MIMIC_ACT_RELU, MIMIC_ACT_LEAKY_RELU, MIMIC_ACT_ELU, MIMIC_ACT_GELU,
    MIMIC_ACT_TANH, MIMIC_ACT_SIGMOID, MIMIC_ACT_SOFTPLUS, MIMIC_ACT_COUNT
} mimic_activation;
/* "identity", "relu", ...: the record type names above; parse returns -1 if unknown. */
const char *mimic_activation_name(mimic_activation a);
int mimic_activation_parse(const char *name);

/* --- building a model (the caller owns it; free with mimic_model_free) --------- */
mimic_model *mimic_model_new(mimic_dtype dtype, int64_t nin);
void mimic_model_free(mimic_model *m); /* NULL is fine */
/* Weights are copied; pointers are to elements of the model's dtype. */
int mimic_model_add_dense(mimic_model *m, int64_t nout, const void *weight, const void *bias);
/* p0, p1: slope (leaky_relu), alpha (elu), beta and threshold (softplus); else ignored. */
int mimic_model_add_activation(mimic_model *m, mimic_activation act, double p0, double p1);
int mimic_model_add_layernorm(mimic_model *m, double eps, const void *weight, const void *bias);
/* Evaluation form from running stats: scale = weight / sqrt(var + eps), shift =
 * bias - mean * scale (weight, bias NULL: 1, 0). Folded in double precision. */
int mimic_model_add_batchnorm(mimic_model *m, double eps, const void *mean, const void *var,
                              const void *weight, const void *bias);
/* A record as stored (scale, shift), e.g. when read back from a file. */
int mimic_model_add_affine(mimic_model *m, const void *scale, const void *shift);
int mimic_model_begin_residual(mimic_model *m);
int mimic_model_end_residual(mimic_model *m); /* MIMIC_ESHAPE if f changed the width */

/* Geometry of a spatial record (unused trailing dims ignored). */
typedef struct mimic_spatial {
    int ndim;                      /* spatial dims, 1..3 */
    int64_t in_channels, out_channels, groups; /* pools: out = in, groups 1 */
    int64_t size[3];               /* input spatial size (D, H, W order) */
    int64_t kernel[3], stride[3], padding[3], dilation[3];
    int circular;                  /* conv: circular padding; avg pool: count_include_pad;
                                      linear upsample: align_corners */
    int64_t output_padding[3];     /* transposed conv only: extra output positions at the end */
} mimic_spatial;
/* The output spatial size of g in dim d (0 if the window does not fit). */
int64_t mimic_spatial_out(const mimic_spatial *g, int d);
/* The same for a transposed convolution (may be < 1 for a bad geometry). */
int64_t mimic_spatial_out_transposed(const mimic_spatial *g, int d);
/* Convolution; g->size must give the current width with g->in_channels.
 * weight [out, in/groups, k...] (PyTorch layout), bias [out] or NULL. */
int mimic_model_add_conv(mimic_model *m, const mimic_spatial *g, const void *weight, const void *bias);
/* Max (max = true) or average pooling; g->out_channels and groups ignored. */
int mimic_model_add_pool(mimic_model *m, bool max, const mimic_spatial *g);
/* Global pooling over all spatial positions of `channels` channels. */
int mimic_model_add_global_pool(mimic_model *m, bool max, int64_t channels);
int mimic_model_add_flatten(mimic_model *m);
/* Nearest upsampling: g->stride[d] is the integer factor (1..64) of dim d;
 * kernel, padding, dilation, out_channels, groups ignored. */
int mimic_model_add_upsample(mimic_model *m, const mimic_spatial *g);
/* Linear (1-D), bilinear (2-D), trilinear (3-D) upsampling, integer factors
 * g->stride[d] (1..64); g->circular = align_corners. */
int mimic_model_add_upsample_linear(mimic_model *m, const mimic_spatial *g);
/* Transposed convolution; weight [in, out/groups, k...] (PyTorch layout),
 * bias [out] or NULL; g->circular must be 0. */
int mimic_model_add_conv_transpose(mimic_model *m, const mimic_spatial *g, const void *weight, const void *bias);

/* A recurrent layer: cell type, sequence length and sizes. */
typedef enum mimic_cell { MIMIC_CELL_RNN_TANH, MIMIC_CELL_RNN_RELU, MIMIC_CELL_LSTM, MIMIC_CELL_GRU,
                          MIMIC_CELL_COUNT } mimic_cell;
typedef struct mimic_recurrent {
    int cell;                    /* mimic_cell; -1 for a last_step record */
    int64_t seq_len, input_size, hidden_size; /* last_step: input = hidden = H */
} mimic_recurrent;
/* "rnn_tanh", ...: the record type names; parse returns -1 if unknown. */
const char *mimic_cell_name(mimic_cell c);
int mimic_cell_parse(const char *name);
/* One layer; the current width must be seq_len * input_size. Weights in
 * PyTorch's layout (w_ih [G H, I], w_hh [G H, H]); biases both or NULL. */
int mimic_model_add_recurrent(mimic_model *m, const mimic_recurrent *r, const void *w_ih, const void *w_hh,
                              const void *b_ih, const void *b_hh);
/* [T, H] -> [H]: seq_len must divide the current width. */
int mimic_model_add_last_step(mimic_model *m, int64_t seq_len);

/* A copy of m (closed) with every weight converted to dtype (float32 or
 * float64), record for record; the caller owns it. */
mimic_model *mimic_model_convert(const mimic_model *m, mimic_dtype dtype);

int64_t mimic_model_nin(const mimic_model *m);
int64_t mimic_model_nout(const mimic_model *m); /* width after the last record */
mimic_dtype mimic_model_dtype(const mimic_model *m);
int mimic_model_num_layers(const mimic_model *m);

/* Record i, for writers of model files. Pointers are borrowed from the model. */
typedef struct mimic_layer_info {
    const char *type;     /* the record type names above */
    int64_t in, out;      /* feature widths before and after */
    double attr[2];       /* as in the list above; 0 where unused */
    int nweights;         /* 0..4 (recurrent: weight_ih, weight_hh, bias_ih, bias_hh) */
    const char *weight_name[4]; /* "weight"/"bias" or "scale"/"shift"; NULL entries absent */
    const void *weight[4];
    int64_t weight_rows[4], weight_cols[4]; /* [rows, cols]; a vector is [1, w] */
    const mimic_spatial *spatial; /* conv / pool records: the geometry; else NULL */
    const mimic_recurrent *recurrent; /* recurrent and last_step records; else NULL */
} mimic_layer_info;
int mimic_model_layer(const mimic_model *m, int i, mimic_layer_info *info);

/* --- the execution plan (the caller owns it; free with mimic_plan_free) -------- */
/* chunk: the most rows processed at once per thread; 0 picks a cache-sized one.
 * Fails (MIMIC_ESTATE) if a residual block is still open. */
mimic_plan *mimic_plan_new(const mimic_model *m, int64_t chunk);
void mimic_plan_free(mimic_plan *p); /* NULL is fine */
int mimic_plan_set_deterministic(mimic_plan *p, bool on);
/* in: row-major [n, nin], out: row-major [n, nout], both of the plan's dtype,
 * not overlapping. n == 0 does nothing. Allocates nothing. */
int mimic_plan_run(mimic_plan *p, const void *in, int64_t n, void *out);
/* Tensor form: x is [n, nin] (or [nin], one row) of the plan's dtype, any
 * strides; returns a new [n, nout] tensor (allocates the result). */
mimic_tensor *mimic_plan_forward(mimic_plan *p, const mimic_tensor *x);

int64_t mimic_plan_nin(const mimic_plan *p);
int64_t mimic_plan_nout(const mimic_plan *p);
mimic_dtype mimic_plan_dtype(const mimic_plan *p);
int64_t mimic_plan_chunk(const mimic_plan *p);
int mimic_plan_slots(const mimic_plan *p);
size_t mimic_plan_workspace_bytes(const mimic_plan *p); /* the formula above */
size_t mimic_plan_weight_bytes(const mimic_plan *p);

#endif
