#!/usr/bin/python3
"""PyTorch state_dict -> mimic model file, verified.

  /usr/bin/python3 tools/pytorch_to_mimic.py ARCH.json STATE_DICT.pt OUT.h5 [--mimic build/bin/mimic]

A state_dict holds weights but not the architecture, so the architecture is
given as a mimic model description (JSON): the layers in order, with the
state_dict prefix of each layer that has weights.

  {"inputs":  [{"name": "state", "size": 5}],
   "outputs": [{"name": "tendency", "size": 3}],
   "layers": [{"type": "dense", "in": 5, "out": 16, "key": "0"},
              {"type": "tanh"},
              {"type": "residual", "layers": [{"type": "dense", "in": 16, "out": 16, "key": "2.f.0"},
                                              {"type": "relu"}]},
              {"type": "layernorm", "size": 16, "key": "3", "eps": 1e-5},
              {"type": "batchnorm1d", "size": 16, "key": "4", "eps": 1e-5},
              {"type": "leaky_relu", "slope": 0.1}, {"type": "elu", "alpha": 1.0},
              {"type": "sigmoid"}, {"type": "softplus"}, {"type": "identity"},
              {"type": "dense", "in": 16, "out": 3, "key": "5"}]}

Layer types are those of docs/model-format.md. The script rebuilds the network
in PyTorch (Debian's python3-torch), loads the state_dict strictly (every key
used, shapes checked; torch.load(weights_only=True) when available, which does
not run code from the file), exports ONNX (opset 17) and runs `mimic convert`,
which checks ONNX against mimic. It then runs PyTorch and the mimic model file
on the same 64 inputs and prints the maximum difference; a difference above
1e-4 (relative) is an error. Several input/output variables are concatenated
in order (the contract's sizes must add up).
"""
import json
import os
import struct
import subprocess
import sys
import tempfile

import torch
import torch.nn as tnn


class Residual(tnn.Module):
    def __init__(self, f):
        super().__init__()
        self.f = f

    def forward(self, x):
        return x + self.f(x)


def build(layers, sd, used):
    mods = []
    for spec in layers:
        t = spec["type"]
        if t == "dense":
            m = tnn.Linear(spec["in"], spec["out"], bias=spec.get("bias", True))
        elif t == "layernorm":
            m = tnn.LayerNorm(spec["size"], eps=spec.get("eps", 1e-5))
        elif t == "batchnorm1d":
            m = tnn.BatchNorm1d(spec["size"], eps=spec.get("eps", 1e-5))
        elif t == "residual":
            mods.append(Residual(build(spec["layers"], sd, used)))
            continue
        else:
            acts = {"relu": tnn.ReLU(), "tanh": tnn.Tanh(), "sigmoid": tnn.Sigmoid(), "identity": tnn.Identity(),
                    "leaky_relu": tnn.LeakyReLU(spec.get("slope", 0.01)), "elu": tnn.ELU(spec.get("alpha", 1.0)),
                    "softplus": tnn.Softplus(spec.get("beta", 1.0), spec.get("threshold", 20.0))}
            if t not in acts:
                raise SystemExit("pytorch_to_mimic: unknown layer type '%s'" % t)
            mods.append(acts[t])
            continue
        own = {k[len(spec["key"]) + 1:]: v for k, v in sd.items() if k.startswith(spec["key"] + ".")}
        used.update(spec["key"] + "." + k for k in own)
        m.load_state_dict(own, strict=True)  # missing/unexpected keys and shape mismatches are errors
        mods.append(m)
    return tnn.Sequential(*mods)


def main():
    args = sys.argv[1:]
    exe = "mimic"
    if "--mimic" in args:
        i = args.index("--mimic")
        exe = args[i + 1]
        del args[i:i + 2]
    if len(args) != 3:
        raise SystemExit(__doc__)
    arch, sdfile, out = args
    with open(arch) as f:
        desc = json.load(f)
    try:
        sd = torch.load(sdfile, map_location="cpu", weights_only=True)
    except TypeError:  # older torch: no weights_only
        sd = torch.load(sdfile, map_location="cpu")
    used = set()
    model = build(desc["layers"], sd, used).eval()
    unused = sorted(set(k for k in sd if not k.endswith("num_batches_tracked")) - used)
    if unused:
        raise SystemExit("pytorch_to_mimic: state_dict entries not used by the description: %s" % ", ".join(unused))
    nin = sum(v["size"] for v in desc["inputs"])
    nout = sum(v["size"] for v in desc["outputs"])
    if len(desc["inputs"]) != 1 or len(desc["outputs"]) != 1:
        raise SystemExit("pytorch_to_mimic: give one input and one output variable (ONNX import takes one of each)")
    torch.manual_seed(0)
    x = torch.rand(64, nin) + 0.5
    with torch.no_grad():
        y = model(x).double()
    if y.shape[1] != nout:
        raise SystemExit("pytorch_to_mimic: the network gives %d outputs, the description says %d" % (y.shape[1], nout))
    with tempfile.TemporaryDirectory() as d:
        onnx_path = os.path.join(d, "model.onnx")
        torch.onnx.export(model, x, onnx_path, input_names=[desc["inputs"][0]["name"]],
                          output_names=[desc["outputs"][0]["name"]], opset_version=17,
                          dynamic_axes={desc["inputs"][0]["name"]: {0: "batch"}, desc["outputs"][0]["name"]: {0: "batch"}})
        subprocess.run([exe, "convert", onnx_path, out], check=True)
        xin, yout = os.path.join(d, "x.bin"), os.path.join(d, "y.bin")
        x.double().numpy().astype("<f8").tofile(xin)
        script = ("local f = io.open(arg[2], 'rb'); local s = f:read('a'); f:close(); local t, at = {}, 1; "
                  "local m = mimic.load_model(arg[1]); for i = 1, #s // (8 * m.nin) do local r = {}; "
                  "for j = 1, m.nin do r[j], at = string.unpack('<d', s, at) end; t[i] = r end; "
                  "local y = m:forward(mimic.tensor(t, 'float64')); local o = io.open(arg[3], 'wb'); "
                  "for _, r in ipairs(y:totable()) do for _, v in ipairs(r) do o:write(string.pack('<d', v)) end end; "
                  "o:close()")
        sfile = os.path.join(d, "run.lua")
        with open(sfile, "w") as f:
            f.write(script)
        subprocess.run([exe, sfile, out, xin, yout], check=True)
        with open(yout, "rb") as f:
            raw = f.read()
        ym = torch.tensor(struct.unpack("<%dd" % (len(raw) // 8), raw), dtype=torch.float64).reshape(64, nout)
    diff = (ym - y).abs().max().item()
    scale = max(1.0, y.abs().max().item())
    print("pytorch_to_mimic: max |mimic - PyTorch| = %.3g on 64 samples (max |y| = %.3g)" % (diff, y.abs().max().item()))
    if not diff <= 1e-4 * scale:
        raise SystemExit("pytorch_to_mimic: the mimic model does not reproduce PyTorch")


if __name__ == "__main__":
    main()
