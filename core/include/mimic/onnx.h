/* mimic — ONNX interoperability (libmimic_interop; docs/interop.md).
 *
 * Not part of libmimic: reading and writing ONNX's protobuf needs
 * libprotobuf-c, so these functions live in the separate library
 * libmimic_interop (core/interop/), which the Lua module and the `mimic`
 * executable link. A C host that converts models links
 *     -lmimic_interop -lmimic -lprotobuf-c (+ libmimic's own dependencies);
 * a host that only runs converted model files needs libmimic alone.
 *
 * Import (ONNX -> mimic records): a graph that is a chain over rows [n, F] of
 *   Gemm, MatMul (+ Add of a constant: the bias), Relu, LeakyRelu, Elu, Tanh,
 *   Sigmoid, Softplus, Identity, Dropout (inference: identity), Flatten /
 *   Reshape when they keep [n, F], BatchNormalization, LayerNormalization
 *   (last axis), Mul / Add / Sub / Div by a constant (an affine record),
 *   Add of an earlier value in the chain (x + f(x): residual records), and
 *   on [batch, C, spatial...] values (rows of C * prod(spatial) features,
 *   channels first): Conv, MaxPool, AveragePool, GlobalAveragePool,
 *   GlobalMaxPool, Flatten, Reshape to/from rows, Pad of zeros.
 * Any other operator is an error listing EVERY unsupported operator with its
 * node name; nothing is skipped. The graph's input and output names and
 * widths become the I/O contract (units ""), encoders are identity.
 * Reading never executes anything from the file: the protobuf is decoded
 * (a malformed or truncated file is MIMIC_EIO), the opset checked, every
 * initializer's type, shape, size and finiteness validated before use.
 *
 * Export (mimic -> ONNX, opset 17, IR version 8): dense -> Gemm (transB = 1),
 *   activations -> their operators (softplus with beta != 1 as
 *   Mul, Softplus, Div; gelu (tanh form) spelled out with Mul/Add/Tanh),
 *   layernorm -> LayerNormalization, batchnorm1d -> Mul + Add, residual
 *   blocks -> Add, spatial records -> Reshape + Conv / pools + Flatten, encoders -> element-wise operators before and after the
 *   network (so the ONNX graph maps raw inputs to raw outputs, as a host's
 *   mimic_run does). Several contract variables become several graph inputs
 *   joined by Concat (outputs: Split). Written atomically. ONNX stores
 *   attributes (slopes, eps) as float32: a double attribute is rounded.
 *   The importer reads back what the exporter writes for identity encoders,
 *   one input and one output variable, and no gelu (same records, same hash).
 */
#ifndef MIMIC_ONNX_H
#define MIMIC_ONNX_H

#include "modelfile.h"

/* The ONNX operator-set versions (default domain) the importer accepts. */
#define MIMIC_ONNX_OPSET_MIN 7
#define MIMIC_ONNX_OPSET_MAX 17
/* The opset the exporter writes. */
#define MIMIC_ONNX_OPSET_EXPORT 17

/* Reads the ONNX model at path into a new model (float32 or float64: the
 * graph input's element type) and, when info is not NULL, a new
 * mimic_model_info carrying the contract (graph input/output names, with '/'
 * and non-printable characters replaced by '_', and widths; units ""),
 * identity encoders and metadata (onnx_file, onnx_opset, onnx_producer).
 * The caller owns both: mimic_model_free, mimic_model_info_free. Returns NULL
 * with mimic_errmsg() on failure. */
mimic_model *mimic_onnx_import(const char *path, mimic_model_info **info);

/* Writes model + contract + encoders (either may be NULL: identity) as an
 * ONNX file at path, atomically. Borrows everything. */
int mimic_onnx_export(const char *path, const mimic_model *m, const mimic_contract *contract,
                      const mimic_encoder *input_enc, const mimic_encoder *output_enc);

#endif
