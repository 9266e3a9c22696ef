#!/usr/bin/python3
"""Evaluates an ONNX model with NumPy, independently of mimic: the reference
that `mimic convert` and tests/lua/test_onnx.lua compare mimic against.
Debian's python3-onnx (1.12) has no onnx.reference evaluator, so the
operators mimic converts are written here from the ONNX operator spec.

  /usr/bin/python3 tools/onnx_eval.py MODEL.onnx IN.bin OUT.bin

IN.bin: float64 little-endian, row-major [n, F], F = the sum of the graph
inputs' widths (several inputs take consecutive columns). OUT.bin gets the
graph outputs side by side, the same way. Runs onnx.checker.check_model first
and prints "checker: ok". Computes in float64.
"""
import sys

import numpy as np
import onnx
from onnx import numpy_helper


def attr(node, name, default):
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def windows(x, k, s, p, d, fill):
    """x [N, C, *S] -> padded strided windows [N, C, *O, *K] (copies)."""
    nd = len(k)
    x = np.pad(x, [(0, 0), (0, 0)] + [(pi, pi) for pi in p], constant_values=fill)
    out = [(x.shape[2 + i] - d[i] * (k[i] - 1) - 1) // s[i] + 1 for i in range(nd)]
    w = np.empty(x.shape[:2] + tuple(out) + tuple(k), dtype=x.dtype)
    for idx in np.ndindex(*k):
        sl = tuple(slice(idx[i] * d[i], idx[i] * d[i] + (out[i] - 1) * s[i] + 1, s[i]) for i in range(nd))
        w[(Ellipsis,) + idx] = x[(slice(None), slice(None)) + sl]
    return w


def geometry(node, nd, k):
    s = attr(node, "strides", [1] * nd)
    p = attr(node, "pads", [0] * 2 * nd)
    if list(p[:nd]) != list(p[nd:]) or attr(node, "ceil_mode", 0):
        raise SystemExit("onnx_eval.py: asymmetric pads / ceil_mode are not implemented")
    return list(k), list(s), list(p[:nd]), list(attr(node, "dilations", [1] * nd))


def run(model, feeds):
    env = dict(feeds)
    for t in model.graph.initializer:
        env[t.name] = numpy_helper.to_array(t).astype(np.float64) if numpy_helper.to_array(t).dtype.kind == "f" \
            else numpy_helper.to_array(t)
    for n in model.graph.node:
        i = [env[x] if x else None for x in n.input]
        op = n.op_type
        if op == "Constant":
            v = numpy_helper.to_array(attr(n, "value", None))
            r = v.astype(np.float64) if v.dtype.kind == "f" else v
        elif op == "Gemm":
            a = i[0].T if attr(n, "transA", 0) else i[0]
            b = i[1].T if attr(n, "transB", 0) else i[1]
            r = attr(n, "alpha", 1.0) * (a @ b)
            if len(i) > 2 and i[2] is not None:
                r = r + attr(n, "beta", 1.0) * i[2]
        elif op == "MatMul":
            r = i[0] @ i[1]
        elif op in ("Add", "Sub", "Mul", "Div"):
            r = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide}[op](i[0], i[1])
        elif op == "Relu":
            r = np.maximum(i[0], 0)
        elif op == "LeakyRelu":
            r = np.where(i[0] >= 0, i[0], attr(n, "alpha", 0.01) * i[0])
        elif op == "Elu":
            r = np.where(i[0] > 0, i[0], attr(n, "alpha", 1.0) * (np.exp(i[0]) - 1))
        elif op == "Tanh":
            r = np.tanh(i[0])
        elif op == "Sigmoid":
            r = 1 / (1 + np.exp(-i[0]))
        elif op == "Softplus":
            r = np.logaddexp(0, i[0])
        elif op in ("Exp", "Log", "Abs", "Sign"):
            r = {"Exp": np.exp, "Log": np.log, "Abs": np.abs, "Sign": np.sign}[op](i[0])
        elif op in ("Identity", "Dropout"):
            r = i[0]
        elif op == "Flatten":
            ax = attr(n, "axis", 1)
            r = i[0].reshape(int(np.prod(i[0].shape[:ax])), -1)
        elif op == "Reshape":
            shape = [i[0].shape[k] if s == 0 else s for k, s in enumerate(i[1])]
            r = i[0].reshape(shape)
        elif op == "BatchNormalization":
            x, s, b, mu, var = i[:5]
            r = (x - mu) / np.sqrt(var + attr(n, "epsilon", 1e-5)) * s + b
        elif op == "LayerNormalization":
            x = i[0]
            mu = x.mean(axis=-1, keepdims=True)
            var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
            r = (x - mu) / np.sqrt(var + attr(n, "epsilon", 1e-5)) * i[1]
            if len(i) > 2 and i[2] is not None:
                r = r + i[2]
        elif op == "Conv":
            x, w = i[0], i[1]
            nd, g = x.ndim - 2, attr(n, "group", 1)
            k, st, p, d = geometry(n, nd, w.shape[2:])
            win = windows(x, k, st, p, d, 0.0)  # [N, C, *O, *K]
            cg, og = x.shape[1] // g, w.shape[0] // g
            outs = []
            for gi in range(g):
                wi = win[:, gi * cg:(gi + 1) * cg]
                wg = w[gi * og:(gi + 1) * og]  # [og, cg, *K]
                axes_w = [1] + list(range(2, 2 + nd))
                axes_x = [1] + list(range(2 + nd, 2 + 2 * nd))
                o = np.tensordot(wi, wg, axes=(axes_x, axes_w))  # [N, *O, og]
                outs.append(np.moveaxis(o, -1, 1))
            r = np.concatenate(outs, axis=1)
            if len(i) > 2 and i[2] is not None:
                r = r + i[2].reshape((1, -1) + (1,) * nd)
        elif op in ("MaxPool", "AveragePool"):
            x = i[0]
            nd = x.ndim - 2
            k, st, p, d = geometry(n, nd, attr(n, "kernel_shape", None))
            ax = tuple(range(2 + nd, 2 + 2 * nd))
            if op == "MaxPool":
                r = windows(x, k, st, p, d, -np.inf).max(axis=ax)
            elif attr(n, "count_include_pad", 0):
                r = windows(x, k, st, p, d, 0.0).mean(axis=ax)
            else:
                r = windows(x, k, st, p, d, 0.0).sum(axis=ax) / windows(np.ones_like(x), k, st, p, d, 0.0).sum(axis=ax)
        elif op in ("GlobalAveragePool", "GlobalMaxPool"):
            ax = tuple(range(2, i[0].ndim))
            r = i[0].mean(axis=ax, keepdims=True) if op[6] == "A" else i[0].max(axis=ax, keepdims=True)
        elif op == "Pad":
            if np.any(i[1] != 0):
                raise SystemExit("onnx_eval.py: non-zero Pad is not implemented")
            r = i[0]
        elif op == "Concat":
            r = np.concatenate(i, axis=attr(n, "axis", 0))
        elif op == "Split":
            sizes = np.cumsum(i[1])[:-1]
            for name, part in zip(n.output, np.split(i[0], sizes, axis=attr(n, "axis", 0))):
                env[name] = part
            continue
        else:
            raise SystemExit("onnx_eval.py: operator %s (node %s) is not implemented here" % (op, n.name))
        env[n.output[0]] = r
    return [env[o.name] for o in model.graph.output]


def dims(v):
    return [d.dim_value for d in v.type.tensor_type.shape.dim[1:]]


def main():
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    model = onnx.load(sys.argv[1])
    onnx.checker.check_model(model)
    print("checker: ok")
    init = {t.name for t in model.graph.initializer}
    ins = [v for v in model.graph.input if v.name not in init]
    ws = [int(np.prod(dims(v))) for v in ins]
    x = np.fromfile(sys.argv[2], dtype="<f8").reshape(-1, sum(ws))
    feeds, at = {}, 0
    for v, w in zip(ins, ws):
        feeds[v.name] = x[:, at:at + w].reshape([x.shape[0]] + dims(v))  # rows: channels-first arrays
        at += w
    ys = run(model, feeds)
    np.concatenate([np.asarray(y, dtype=np.float64).reshape(x.shape[0], -1) for y in ys], axis=1).astype("<f8") \
        .tofile(sys.argv[3])


if __name__ == "__main__":
    main()
