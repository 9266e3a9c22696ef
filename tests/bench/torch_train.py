#!/usr/bin/python3
"""PyTorch baseline for tests/bench/bench_train.lua: one training epoch of the
same MLPs (LeakyReLU 0.2 between dense layers), float32, data in memory,
MSE loss, Adam lr 1e-3, batch 256, 131072 samples, 2 threads.

The loop is the plain PyTorch one -- zero_grad, forward, MSE, backward, Adam
step -- over slices of in-memory tensors (no DataLoader), i.e. the same work
the Lua bench does. One warm-up epoch per network, then `repeats` timed
epochs. bench_train.lua calls this with repeats = 1 once per round, so the
two sides' repeats interleave.
Prints one line per net: "torch_train <net> <seconds per epoch> ..." (every
timed epoch).
Usage: torch_train.py [repeats [net ...]]"""
import sys
import time

import torch

import torchlib
from torchlib import NETS

N, BATCH = 131072, 256


def epoch(model, opt, x, y):
    loss_fn = torch.nn.functional.mse_loss
    for s in range(0, N, BATCH):
        opt.zero_grad()
        loss = loss_fn(model(x[s:s + BATCH]), y[s:s + BATCH])
        loss.backward()
        opt.step()
    return loss.item()


def main():
    repeats = torchlib.setup()
    names = sys.argv[2:] or list(NETS)
    for name in names:
        sizes = NETS[name]
        model = torchlib.mlp(sizes)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        x, y = torch.rand(N, sizes[0]), torch.rand(N, sizes[-1])
        epoch(model, opt, x, y)  # warm-up
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            epoch(model, opt, x, y)
            times.append(time.perf_counter() - t0)
        print("torch_train", name, " ".join("%.6f" % t for t in times), flush=True)


if __name__ == "__main__":
    main()
