/* What onnx_import.c, onnx_export.c and onnx_eval.c share: decoding and
 * validating the protobuf (core/interop/onnx_common.c). Not installed. */
#ifndef MIMIC_ONNX_INTERNAL_H
#define MIMIC_ONNX_INTERNAL_H

#include "mimic/base.h"
#include "mimic/onnx.h"
#include "onnx.pb-c.h" /* generated into build/gen by the Makefile from onnx.proto */

#include <stdint.h>

/* Largest ONNX file read (weights inline): the file is held in memory once. */
#define ONNX_MAX_FILE_BYTES ((int64_t)1 << 30)
/* Per initializer: the model file's own bound (docs/model-format.md). */
#define ONNX_MAX_NUMEL ((int64_t)1 << 28)
#define ONNX_MAX_WIDTH ((int64_t)1 << 20)

/* protobuf-c allocations go through mimic's hooks (tests count them). */
extern ProtobufCAllocator onnx_allocator;

/* Reads and decodes path; NULL with mimic_errmsg() (MIMIC_EIO for a missing,
 * oversized, malformed or truncated file). Free with onnx_model_free. */
Onnx__ModelProto *onnx_read(const char *path);
void onnx_model_free(Onnx__ModelProto *mp);
/* The default-domain opset version, checked against MIMIC_ONNX_OPSET_MIN..MAX. */
int onnx_check_opset(const char *path, const Onnx__ModelProto *mp, int64_t *opset);

/* A constant (initializer or Constant node output) by name; NULL if none. */
const Onnx__TensorProto *onnx_find_const(const Onnx__GraphProto *g, const char *name);
/* A float/double constant as a new array of doubles (caller frees with
 * mimic_free), its dims (up to 4) and element count; validated: element type,
 * dims, count within bounds, data size, finiteness. `what` names it in errors. */
double *onnx_const_doubles(const char *path, const Onnx__TensorProto *t, const char *what, int64_t dims[4],
                           int *ndim, int64_t *numel);
/* An int64 constant (Reshape's shape) into out[max]; returns its count or < 0. */
int onnx_const_ints(const char *path, const Onnx__TensorProto *t, const char *what, int64_t *out, int max);

/* Attributes: the value, or def when absent. */
double onnx_attr_f(const Onnx__NodeProto *n, const char *name, double def);
int64_t onnx_attr_i(const Onnx__NodeProto *n, const char *name, int64_t def);
const Onnx__AttributeProto *onnx_attr(const Onnx__NodeProto *n, const char *name);

/* The graph's one real input (not an initializer): name, width F of [n, F],
 * element type. */
int onnx_graph_io(const char *path, const Onnx__GraphProto *g, const Onnx__ValueInfoProto **in,
                  int64_t *width, int32_t *elem);
/* The node's display name for messages: its name, or "#index" if unnamed. */
const char *onnx_node_label(const Onnx__NodeProto *n, int index, char buf[32]);

#endif
