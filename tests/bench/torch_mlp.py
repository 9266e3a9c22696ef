#!/usr/bin/python3
"""PyTorch baseline for tests/bench/bench_plan.c: float32 inference of the
same MLPs (LeakyReLU 0.2 between dense layers) under the same protocol --
2 threads, warm-up, >= 5 repeats interleaved, medians, preallocated outputs.

Two PyTorch variants, the better one is the baseline:
  module : model(x) under torch.inference_mode() (allocates each layer's output)
  prealloc: addmm(..., out=buf) + leaky_relu_ in place on preallocated buffers
Prints one line per (net, batch): "torch <net> <batch> <median seconds per call>".
Usage: torch_mlp.py [repeats]"""
import statistics
import time

import torch

import torchlib
from torchlib import NETS

BIG, SMALL = 131072, 64


def make_prealloc(model, batch):
    lins = [m for m in model if isinstance(m, torch.nn.Linear)]
    bufs = [torch.empty(batch, l.out_features) for l in lins]
    wts = [l.weight.t() for l in lins]

    def run(x):
        h = x
        for i, l in enumerate(lins):
            torch.addmm(l.bias, h, wts[i], out=bufs[i])
            if i < len(lins) - 1:
                torch.nn.functional.leaky_relu_(bufs[i], 0.2)
            h = bufs[i]
        return h

    return run


def main():
    repeats = torchlib.setup(7)
    with torch.inference_mode():
        for name, sizes in NETS.items():
            model = torchlib.mlp(sizes).eval()
            for batch in (BIG, SMALL):
                x = torch.rand(batch, sizes[0])
                calls = 1 if batch == BIG else 2000
                pre = make_prealloc(model, batch)
                variants = {"module": lambda: model(x), "prealloc": lambda: pre(x)}
                times = {k: [] for k in variants}
                for f in variants.values():  # warm-up
                    for _ in range(3 if batch == BIG else 200):
                        f()
                for _ in range(repeats):  # interleaved
                    for k, f in variants.items():
                        t0 = time.perf_counter()
                        for _ in range(calls):
                            f()
                        times[k].append((time.perf_counter() - t0) / calls)
                best = min(statistics.median(v) for v in times.values())
                print(f"torch {name} {batch} {best:.9g}", flush=True)


if __name__ == "__main__":
    main()
