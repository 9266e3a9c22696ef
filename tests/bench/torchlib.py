"""Shared plumbing of the PyTorch baselines (tests/bench/torch_*.py), which
the benches run through /usr/bin/python3 beside mimic in the same run: the
common protocol (repeats from argv[1], 2 threads, seed 0), the warm-up and
timed loop with its "<prefix> <mode> <seconds>" lines, and the MLPs that
bench_plan.c and bench_train.lua share. Each script keeps its own workload.
Not a baseline itself; the scripts find it beside them (sys.path[0])."""
import sys
import time

import torch

NETS = {"7-64-64-256": [7, 64, 64, 256], "375-64-64-6": [375, 64, 64, 6], "10-128-128-10": [10, 128, 128, 10]}


def setup(default_repeats=5):
    """The bench protocol: returns the repeats (argv[1], else the default);
    2 threads, seed 0."""
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else default_repeats
    torch.set_num_threads(2)
    torch.manual_seed(0)
    return repeats


def mlp(sizes):
    """Dense layers of the given sizes with LeakyReLU(0.2) between them."""
    layers = []
    for i in range(len(sizes) - 1):
        layers.append(torch.nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(torch.nn.LeakyReLU(0.2))
    return torch.nn.Sequential(*layers)


def time_modes(prefix, modes, repeats):
    """One warm-up call of each mode (a dict name -> function, in order), then
    `repeats` rounds timing each once, printed as "<prefix> <name> <seconds>"."""
    for f in modes.values():
        f()
    for _ in range(repeats):
        for name, f in modes.items():
            t0 = time.perf_counter()
            f()
            print("%s %s %.6f" % (prefix, name, time.perf_counter() - t0), flush=True)
